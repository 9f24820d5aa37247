//! This replica's view of the revocation order: catching up from the store and waking
//! the streams.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use steward_model::Revocation;
use steward_store::StoreError;
use tokio::sync::{Notify, mpsc, watch};

use super::reports::AckedEpochs;
use crate::AppState;

/// Revocations read from the store per round trip while catching up.
const CATCH_UP_PAGE: i64 = 1_000;

/// A batch of point reports and who waits for its commit.
pub(super) type ReportJob = (
    Vec<steward_store::PointReport>,
    tokio::sync::oneshot::Sender<bool>,
);

/// This replica's view of the revocation order, and the streams' wake-up signals.
pub(crate) struct Hub {
    /// Every revocation, in epoch order: the entry of epoch `e` is at index `e - 1`.
    pub(super) log: RwLock<Vec<Revocation>>,
    pub(super) latest: watch::Sender<i64>,
    pub(super) closing: watch::Sender<bool>,
    pub(super) catching_up: tokio::sync::Mutex<()>,
    /// The newest admin change this replica's policy engine was built after.
    pub(crate) seen_change: AtomicI64,
    pub(super) heartbeat: Duration,
    pub(super) liveness: Duration,
    pub(super) reports: mpsc::Sender<ReportJob>,
    pub(super) report_rx: Mutex<Option<mpsc::Receiver<ReportJob>>>,
    /// Woken after every committed batch of reports.
    pub(super) acked: Notify,
    /// The epoch each point last acknowledged here (for `revocation.acknowledged` events).
    pub(super) acknowledged: AckedEpochs,
}

impl Hub {
    pub(crate) fn new(heartbeat: Duration, liveness: Duration) -> Self {
        let (reports, rx) = mpsc::channel(4_096);
        Self {
            log: RwLock::new(Vec::new()),
            latest: watch::channel(0).0,
            closing: watch::channel(false).0,
            catching_up: tokio::sync::Mutex::new(()),
            seen_change: AtomicI64::new(0),
            heartbeat,
            liveness,
            reports,
            report_rx: Mutex::new(Some(rx)),
            acked: Notify::new(),
            acknowledged: AckedEpochs::default(),
        }
    }

    /// The newest epoch this replica knows.
    pub(crate) fn latest(&self) -> i64 {
        *self.latest.borrow()
    }

    /// How many reporting points have not acknowledged the newest epoch, and how many
    /// epochs the furthest behind is missing.
    pub(crate) fn acknowledgement_lag(&self) -> (usize, i64) {
        self.acknowledged.behind(self.latest())
    }

    /// Ends every open stream (server shutdown: streams never end on their own).
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    pub(super) fn entries(&self, after: i64, max: usize) -> Vec<Revocation> {
        let start = usize::try_from(after.max(0)).unwrap_or(usize::MAX);
        self.log
            .read()
            .iter()
            .skip(start)
            .take(max)
            .cloned()
            .collect()
    }

    /// The revocations points must still hold at `now` (the snapshot for a new point).
    pub(super) fn in_force(&self, now: i64) -> Vec<Revocation> {
        self.log
            .read()
            .iter()
            .filter(|r| r.until.is_none_or(|u| u > now))
            .cloned()
            .collect()
    }
}

/// Reads revocations this replica has not seen yet, applies them to the token service's
/// set and wakes the streams. Returns the new ones.
pub(crate) async fn catch_up(s: &AppState) -> Result<Vec<Revocation>, StoreError> {
    let hub = &s.hub;
    let _one = hub.catching_up.lock().await;
    let mut fresh = Vec::new();
    loop {
        let last = hub.log.read().len() as i64;
        let batch = s.store.revocations_after(last, CATCH_UP_PAGE).await?;
        if batch.is_empty() {
            break;
        }
        let mut log = hub.log.write();
        for r in batch {
            if r.epoch != log.len() as i64 + 1 {
                tracing::error!(
                    epoch = r.epoch,
                    expected = log.len() + 1,
                    "the stored revocations have a gap; stopping here"
                );
                return Ok(fresh);
            }
            if let Err(gap) = s.tokens.revocations().apply(r.clone()) {
                tracing::error!(error = %gap, "revocation not applied to the token service");
            }
            log.push(r.clone());
            fresh.push(r);
        }
    }
    if let Some(last) = fresh.last() {
        hub.latest.send_replace(last.epoch);
    }
    Ok(fresh)
}
