//! The dry-run of a plan: the access decisions recorded in the last N days, replayed
//! against the candidate policy and registry at the time each was made, listing those
//! that would flip. The candidate comes loaded (`steward_governance::load`), so its
//! policy already passed the publish checks.

use steward_api::Replay;
use steward_governance::Desired;
use steward_model::Flip;
use steward_model::{Identity, LifecycleState};
use steward_policy::analysis::{RecordedDecision, replay};
use steward_policy::{AccessRequest, Engine};
use steward_store::EvidenceFilter;

use crate::AppState;
use crate::error::ApiError;

/// Most recorded decisions one dry-run replays (the newest).
pub const MAX_REPLAY: i64 = 20_000;
const DEFAULT_DAYS: u32 = 7;

pub(crate) async fn dry_run(
    s: &AppState,
    desired: Desired,
    days: Option<u32>,
) -> Result<Replay, ApiError> {
    let days = days.unwrap_or(DEFAULT_DAYS);
    if days == 0 {
        return Ok(Replay::default());
    }
    let since = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
    let events = s
        .store
        .evidence_search(&EvidenceFilter {
            kind: Some("access.decision".into()),
            since: Some(steward_model::timestamp::format(since)),
            newest_first: true,
            limit: MAX_REPLAY,
            ..Default::default()
        })
        .await?;
    let truncated = events.len() as i64 >= MAX_REPLAY;
    let mut recorded = Vec::with_capacity(events.len());
    let mut skipped = 0;
    for e in events {
        let request = e
            .event
            .details
            .get("request")
            .cloned()
            .and_then(|r| serde_json::from_value::<AccessRequest>(r).ok());
        match (request, e.event.decision.outcome) {
            (Some(request), Some(outcome)) => recorded.push(RecordedDecision {
                event_id: e.event.id,
                request,
                allowed: outcome == steward_audit::Outcome::Allow,
            }),
            _ => skipped += 1,
        }
    }
    let replayed = recorded.len();
    let state = s.store.load_state().await?;
    let flips =
        tokio::task::spawn_blocking(move || -> Result<Vec<Flip>, steward_policy::PolicyError> {
            // The candidate registry: the repository's identities (keeping states the API set
            // where the repository does not pin one) plus those created through the API.
            let mut identities: Vec<Identity> = desired
                .identities
                .values()
                .map(|d| {
                    d.to_identity(
                        d.state
                            .or_else(|| {
                                state.identities.get(&d.spiffe_id).map(|s| s.identity.state)
                            })
                            .unwrap_or(LifecycleState::Active),
                    )
                })
                .collect();
            identities.extend(
                state
                    .identities
                    .into_values()
                    .filter(|s| {
                        !s.managed && !desired.identities.contains_key(&s.identity.spiffe_id)
                    })
                    .map(|s| s.identity),
            );
            let engine =
                Engine::for_repository(&desired, identities, time::OffsetDateTime::now_utc())?;
            Ok(replay(&engine, &recorded))
        })
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(Replay {
        days,
        replayed,
        skipped,
        truncated,
        flips,
    })
}
