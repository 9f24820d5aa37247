//! Following the other replicas: notifications, polling, and reloading after their
//! changes.

use std::sync::atomic::Ordering;

use steward_model::{Revocation, RevocationKind};
use steward_store::{CHANGE_CHANNEL, REVOCATION_CHANNEL, StoreError};

use super::hub::catch_up;
use super::reports::write_reports;
use crate::AppState;

/// How often a replica looks at the shared database even without a notification.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts this replica's hub tasks: the catch-up loop and the report writer.
pub(crate) fn spawn(s: AppState) {
    let rx = s.hub.report_rx.lock().take();
    if let Some(rx) = rx {
        tokio::spawn(write_reports(s.clone(), rx));
    }
    tokio::spawn(run(s));
}

pub(super) async fn run(s: AppState) {
    let mut listener = match s.store.listen(&[REVOCATION_CHANNEL, CHANGE_CHANNEL]).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other replicas' revocations; polling every second instead");
            None
        }
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // What to look at: revocations, registry changes, or (on the tick) both.
        let (revocations, changes) = tokio::select! {
            _ = tick.tick() => (true, true),
            n = next_notification(&mut listener) => match n {
                Ok((channel, _)) => (channel == REVOCATION_CHANNEL, channel == CHANGE_CHANNEL),
                Err(e) => {
                    tracing::warn!(error = %e, "the notification listener lost its connection; reconnecting");
                    tokio::time::sleep(POLL).await;
                    (true, true)
                }
            }
        };
        if revocations {
            match catch_up(&s).await {
                Ok(fresh) => after_others_revoked(&s, &fresh).await,
                Err(e) => tracing::error!(error = %e, "cannot read revocations"),
            }
        }
        if changes {
            follow_other_replicas(&s).await;
        }
    }
}

pub(super) async fn next_notification(
    listener: &mut Option<steward_store::Notifications>,
) -> Result<(String, String), StoreError> {
    match listener {
        Some(l) => l.recv().await,
        None => std::future::pending().await,
    }
}

/// Revocations made by another replica (or before a restart) change what this one
/// serves too: keys leave the key ring; identity and plane suspensions are picked up by
/// [`follow_other_replicas`] through the change log.
pub(super) async fn after_others_revoked(s: &AppState, fresh: &[Revocation]) {
    if fresh.iter().any(|r| r.kind == RevocationKind::Key)
        && let Err(e) = s.tokens.refresh(&s.store).await
    {
        tracing::error!(error = %e, "cannot reload the signing keys after a key revocation");
    }
}

/// Reloads the policy engine and keys when another replica changed the registry.
pub(super) async fn follow_other_replicas(s: &AppState) {
    let seq = match s.store.latest_change_seq().await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the admin change log");
            return;
        }
    };
    if seq <= s.hub.seen_change.load(Ordering::SeqCst) {
        return;
    }
    tracing::info!(change = seq, "the registry changed elsewhere; reloading");
    if let Err(e) = s.reload_policy().await {
        tracing::error!(error = %e.message, "cannot reload the policy engine");
    }
    if let Err(e) = s.tokens.refresh(&s.store).await {
        tracing::error!(error = %e, "cannot reload the signing keys");
    }
}
