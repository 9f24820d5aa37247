//! The evidence writer: group commit for evidence events.
//!
//! Producers hand events to a bounded queue; one task drains it and appends everything
//! waiting (up to a batch limit) in one transaction, so logging costs the request path a
//! queue push, not a commit. `record` waits until the batch is durable — what the API
//! acknowledges survives `kill -9`. When the store is down the writer keeps its batch
//! and retries; the queue fills, and then producers either get an error (fail closed, the
//! default) or their events are counted as lost and logged loudly — as configured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use steward_audit::Event;
use steward_store::Store;

/// What to do when the queue is full because the store cannot keep up or is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowPolicy {
    /// Refuse the producer's work (the API answers 503): nothing is lost silently.
    #[default]
    FailClosed,
    /// Accept the work, drop the event, count it and log an error.
    ReportLoss,
}

/// Why an event was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    #[error("the evidence queue is full ({0} events waiting): the store is down or too slow")]
    Overloaded(usize),
    #[error("the evidence writer has stopped")]
    Stopped,
}

struct Submission {
    events: Vec<Event>,
    ack: Option<oneshot::Sender<Vec<i64>>>,
}

impl Submission {
    /// Decision records nobody waits for: the only submissions a batch may linger for.
    fn may_linger(&self) -> bool {
        self.ack.is_none()
            && self
                .events
                .iter()
                .all(|e| e.kind == steward_audit::EventKind::AccessDecision)
    }
}

/// Handle for producers; cheap to clone.
#[derive(Clone)]
pub struct EvidenceWriter {
    queue: mpsc::Sender<Submission>,
    capacity: usize,
    policy: OverflowPolicy,
    lost: Arc<AtomicU64>,
    /// Wakes a lingering writer: something that must not wait was queued.
    urgent: Arc<tokio::sync::Notify>,
}

/// How long a record nobody waits for (a decision, a revocation acknowledgement) may wait
/// for room in a full evidence queue before the overflow policy applies: long enough to
/// ride out a checkpoint or a slow disk flush
/// (the queue itself holds well under a second at tens of thousands of decisions a
/// second), short enough that a store that is really down turns into fail-closed
/// answers quickly.
pub const RECORD_GRACE: Duration = Duration::from_millis(250);

/// Most events appended in one transaction.
pub const MAX_BATCH_EVENTS: usize = 2_000;

impl EvidenceWriter {
    /// Starts the writer task. `capacity` bounds the queued submissions.
    pub fn spawn(
        store: Store,
        capacity: usize,
        policy: OverflowPolicy,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let urgent = Arc::new(tokio::sync::Notify::new());
        let handle = tokio::spawn(run(store, rx, urgent.clone()));
        (
            Self {
                queue: tx,
                capacity,
                policy,
                lost: Arc::new(AtomicU64::new(0)),
                urgent,
            },
            handle,
        )
    }

    /// Queues a submission; one that may not linger cuts a lingering batch short.
    fn send(&self, s: Submission) -> Result<(), mpsc::error::TrySendError<Submission>> {
        let urgent = !s.may_linger();
        self.queue.try_send(s)?;
        if urgent {
            self.urgent.notify_one();
        }
        Ok(())
    }

    /// Waits until everything queued before this call is durable (or has failed for
    /// good): for a reader that must see an event another request just queued.
    pub async fn flush(&self) -> Result<(), EvidenceError> {
        self.record(Vec::new()).await.map(|_| ())
    }

    /// Appends `events` and waits until they are durable; returns their sequence numbers.
    /// A full queue is waited on for up to [`RECORD_GRACE`] (a burst of decision records
    /// must not turn a token's issuance into a refusal), then refused.
    pub async fn record(&self, events: Vec<Event>) -> Result<Vec<i64>, EvidenceError> {
        let (ack, done) = oneshot::channel();
        let s = match self.send(Submission {
            events,
            ack: Some(ack),
        }) {
            Ok(()) => return done.await.map_err(|_| EvidenceError::Stopped),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(EvidenceError::Stopped),
            Err(mpsc::error::TrySendError::Full(s)) => s,
        };
        match tokio::time::timeout(RECORD_GRACE, self.queue.reserve()).await {
            Ok(Ok(permit)) => permit.send(s),
            Ok(Err(_)) => return Err(EvidenceError::Stopped),
            Err(_) => return Err(EvidenceError::Overloaded(self.capacity)),
        }
        self.urgent.notify_one();
        done.await.map_err(|_| EvidenceError::Stopped)
    }

    /// Queues `events` without waiting (decision logging off the request path). On a full
    /// queue, follows the overflow policy.
    pub fn submit(&self, events: Vec<Event>) -> Result<(), EvidenceError> {
        let n = events.len() as u64;
        match self.send(Submission { events, ack: None }) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(EvidenceError::Stopped),
            Err(mpsc::error::TrySendError::Full(_)) => self.overflow(n),
        }
    }

    /// [`EvidenceWriter::submit`], but on a full queue first waits up to `grace` for
    /// room: a burst the writer absorbs within that costs the producer latency instead of
    /// a refusal (for a decision, a fail-closed deny of a request policy allows). Past
    /// `grace` the overflow policy applies as in `submit`.
    pub async fn submit_within(
        &self,
        events: Vec<Event>,
        grace: Duration,
    ) -> Result<(), EvidenceError> {
        let s = match self.send(Submission { events, ack: None }) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(EvidenceError::Stopped),
            Err(mpsc::error::TrySendError::Full(s)) => s,
        };
        let urgent = !s.may_linger();
        match tokio::time::timeout(grace, self.queue.reserve()).await {
            Ok(Ok(permit)) => permit.send(s),
            Ok(Err(_)) => return Err(EvidenceError::Stopped),
            Err(_) => return self.overflow(s.events.len() as u64),
        }
        if urgent {
            self.urgent.notify_one();
        }
        Ok(())
    }

    /// What a full queue means for `n` events under the configured policy.
    fn overflow(&self, n: u64) -> Result<(), EvidenceError> {
        match self.policy {
            OverflowPolicy::FailClosed => Err(EvidenceError::Overloaded(self.capacity)),
            OverflowPolicy::ReportLoss => {
                let total = self.lost.fetch_add(n, Ordering::Relaxed) + n;
                tracing::error!(
                    lost = n,
                    total_lost = total,
                    "EVIDENCE LOST: the evidence queue is full; events were dropped as configured (overflow = report-loss)"
                );
                Ok(())
            }
        }
    }

    /// Events dropped under `report-loss` since start.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Submissions queued for the writer and not yet taken.
    pub fn queued(&self) -> usize {
        self.capacity.saturating_sub(self.queue.capacity())
    }

    /// Whether the writer task still takes submissions (it stops only if it died).
    pub fn running(&self) -> bool {
        !self.queue.is_closed()
    }
}

/// How long the writer lets a small batch of unawaited decision records grow before
/// committing it. Nobody waits for those, and every commit rewrites the pages at the end
/// of the log and of each index: at 20,000 decisions/s, commits of a few dozen events
/// spent more on rewriting those pages than on the events (measured: 5-8 % more AuthZEN
/// decisions/s with the linger). Anything else queued meanwhile — a waited-for
/// submission, a token's issuance — ends the linger: those are committed at once.
pub const LINGER: Duration = Duration::from_millis(4);
/// Batches at least this large are committed at once.
const LINGER_BELOW: usize = 256;

/// Moves waiting submissions into `batch` until it holds [`MAX_BATCH_EVENTS`]; returns
/// the events it holds.
fn drain(rx: &mut mpsc::Receiver<Submission>, batch: &mut Vec<Submission>) -> usize {
    let mut count = batch.iter().map(|s| s.events.len()).sum::<usize>();
    while count < MAX_BATCH_EVENTS {
        match rx.try_recv() {
            Ok(s) => {
                count += s.events.len();
                batch.push(s);
            }
            Err(_) => break,
        }
    }
    count
}

async fn run(store: Store, mut rx: mpsc::Receiver<Submission>, urgent: Arc<tokio::sync::Notify>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let count = drain(&mut rx, &mut batch);
        if count < LINGER_BELOW && batch.iter().all(Submission::may_linger) {
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                () = urgent.notified() => {}
            }
            drain(&mut rx, &mut batch);
        }
        let sizes: Vec<usize> = batch.iter().map(|s| s.events.len()).collect();
        let events: Vec<Event> = batch
            .iter_mut()
            .flat_map(|s| std::mem::take(&mut s.events))
            .collect();
        // Canonical JSON for a batch of up to 2,000 events is milliseconds of CPU: made on
        // a blocking thread, so a tokio worker that serves requests is never held by it.
        let (events, mut bodies) = match tokio::task::spawn_blocking(move || {
            let bodies = steward_store::canonical_bodies(&events);
            (events, bodies)
        })
        .await
        {
            Ok((events, Ok(bodies))) => (events, Some(bodies)),
            Ok((events, Err(e))) => {
                tracing::error!(error = %e, "cannot encode evidence events");
                (events, None)
            }
            Err(e) => {
                tracing::error!(error = %e, "EVIDENCE WRITER STOPPED: the evidence encoding task failed; producers now fail closed");
                return;
            }
        };
        let mut backoff = Duration::from_millis(50);
        let seqs = loop {
            let appended = match bodies.take() {
                Some(b) => store.append_evidence_prepared(&events, b).await,
                None => store.append_evidence(&events).await,
            };
            match appended {
                Ok(seqs) => break seqs,
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), retry_in_ms = backoff.as_millis() as u64, "cannot append evidence; keeping the batch and retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        let mut offset = 0;
        for (s, n) in batch.into_iter().zip(sizes) {
            if let Some(ack) = s.ack {
                let _ = ack.send(
                    seqs.get(offset..offset + n)
                        .map(<[i64]>::to_vec)
                        .unwrap_or_default(),
                );
            }
            offset += n;
        }
    }
}

/// The checkpoint key, or `None` after logging why `feature` is disabled.
async fn load_signer(
    store: &Store,
    kek: &steward_token::Kek,
    feature: &str,
) -> Option<steward_audit::CheckpointSigner> {
    match store.checkpoint_signer(kek).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "no checkpoint key: evidence {feature} disabled");
            None
        }
    }
}

/// Signs a checkpoint of the head every `interval` while the head moves.
pub fn spawn_checkpoints(
    store: Store,
    tokens: Arc<crate::tokens::TokenService>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(signer) = load_signer(&store, tokens.kek(), "checkpoints").await else {
            return;
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.checkpoint_now(&signer).await {
                Ok(Some(cp)) => {
                    tracing::debug!(tree_size = cp.tree_size, "evidence checkpoint signed")
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot write an evidence checkpoint"),
            }
        }
    })
}

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Prunes evidence older than `keep`, at start and then hourly.
pub fn spawn_retention(
    store: Store,
    tokens: Arc<crate::tokens::TokenService>,
    keep: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(signer) = load_signer(&store, tokens.kek(), "retention").await else {
            return;
        };
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        loop {
            tick.tick().await;
            let cutoff = steward_model::timestamp::format(time::OffsetDateTime::now_utc() - keep);
            // Usage totals must have seen the events before they go.
            if let Err(e) = store.roll_up_usage(i64::MAX).await {
                tracing::error!(error = %e, "usage roll-up failed; retention waits for it");
                continue;
            }
            match store.prune_evidence(&cutoff, &signer).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(pruned = n, %cutoff, "evidence retention pruned old events; a signed checkpoint marks the new start")
                }
                Err(e) => tracing::error!(error = %e, "evidence retention failed"),
            }
        }
    })
}

/// How often expired exceptions are looked for.
const EXCEPTION_EXPIRY_EVERY: Duration = Duration::from_secs(30);

/// Records each exception of the policy in force once it has expired (`exception.expired`,
/// once across replicas): an auditor sees when a time-bound exception stopped, without
/// reading the policy's history.
pub fn spawn_exception_expiry(s: crate::AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Recorded (id, expiry) pairs, so each costs the store one write, not one a tick.
        let mut recorded = std::collections::HashSet::new();
        let mut tick = tokio::time::interval(EXCEPTION_EXPIRY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            record_expired_exceptions(&s, &mut recorded).await;
        }
    })
}

/// One pass of [`spawn_exception_expiry`]; returns how many expiries it recorded.
pub(crate) async fn record_expired_exceptions(
    s: &crate::AppState,
    recorded: &mut std::collections::HashSet<(String, time::OffsetDateTime)>,
) -> usize {
    let Ok(engine) = s.engine() else { return 0 };
    let now = time::OffsetDateTime::now_utc();
    let mut n = 0;
    for e in engine.compiled().exceptions() {
        let key = (e.id.clone(), e.expires_at);
        if e.is_active(now) || recorded.contains(&key) {
            continue;
        }
        match s.store.record_exception_expiry(e, engine.version()).await {
            Ok(new) => {
                if new {
                    tracing::info!(exception = %e.id, principal = %e.principal, "exception expired; recorded");
                    n += 1;
                }
                recorded.insert(key);
            }
            Err(err) => {
                tracing::error!(error = %err, exception = %e.id, "cannot record an exception's expiry; retrying");
            }
        }
    }
    n
}

/// How often the usage roll-up folds new evidence in (posture also catches up itself).
const ROLL_UP_EVERY: Duration = Duration::from_secs(5);
/// Events the periodic roll-up folds per transaction. At 20,000 decisions/s, 5 s of
/// evidence folded at once was a burst of a few hundred milliseconds on one of two cores,
/// and every request due meanwhile queued behind it (the AuthZEN p99's 5-second
/// clusters). Steps of 2,000 cost the same per event (measured on SQLite: 3.7 µs with
/// 1,000 distinct aggregates, as with 20,000) and last a few milliseconds each.
const ROLL_UP_STEP: i64 = 2_000;

/// Folds new evidence into the usage totals every [`ROLL_UP_EVERY`], so a posture run
/// reads aggregates that are at most a few seconds behind: in steps of
/// [`ROLL_UP_STEP`], each followed by a pause as long as it took, so the roll-up takes at
/// most about half of one core while requests are being served.
pub fn spawn_usage_roll_up(store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ROLL_UP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut folded = 0;
            loop {
                let started = tokio::time::Instant::now();
                match store.roll_up_usage(ROLL_UP_STEP).await {
                    Ok(r) => {
                        folded += r.events;
                        if r.events == 0 || r.through_seq >= r.head_seq {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "usage roll-up failed; retried in 5 s");
                        break;
                    }
                }
                tokio::time::sleep(started.elapsed()).await;
            }
            if folded > 0 {
                tracing::debug!(events = folded, "usage roll-up");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, Executor};
    use steward_audit::EventKind;

    fn event(n: usize) -> Event {
        let mut e = Event::new(
            EventKind::AccessDecision,
            format!("t-{n}"),
            "2026-11-23T10:00:00Z",
        );
        e.principal = Some("spiffe://acme.example/a".into());
        e
    }

    /// A new store, and a connection (as from another process) holding its write lock
    /// until the test commits it.
    async fn store_locked_by_another_writer() -> (tempfile::TempDir, Store, sqlx::AnyConnection) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        sqlx::any::install_default_drivers();
        let url = format!(
            "sqlite://{}",
            dir.path().join(steward_store::SQLITE_FILE).display()
        );
        let mut blocker = sqlx::AnyConnection::connect(&url).await.unwrap();
        blocker.execute("BEGIN EXCLUSIVE").await.unwrap();
        (dir, store, blocker)
    }

    /// While the store cannot take writes, the writer holds its batch, the queue fills to
    /// its bound, and then producers are refused (fail closed) or their events are counted
    /// as lost (report loss). When the store comes back everything accepted is written.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_blocked_store_fills_the_bounded_queue_then_applies_the_policy() {
        for policy in [OverflowPolicy::FailClosed, OverflowPolicy::ReportLoss] {
            let (_dir, store, mut blocker) = store_locked_by_another_writer().await;
            let (writer, _task) = EvidenceWriter::spawn(store.clone(), 4, policy);
            let first = tokio::spawn({
                let writer = writer.clone();
                async move { writer.record(vec![event(0)]).await }
            });
            tokio::time::sleep(Duration::from_millis(200)).await; // the writer is now stuck on the lock
            let mut accepted = 0;
            let mut refused = 0;
            for n in 1..=10 {
                match writer.submit(vec![event(n)]) {
                    Ok(()) => accepted += 1,
                    Err(EvidenceError::Overloaded(_)) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            match policy {
                OverflowPolicy::FailClosed => {
                    assert_eq!(
                        (accepted, refused),
                        (4, 6),
                        "the queue holds 4, the rest is refused"
                    );
                    assert_eq!(writer.lost(), 0);
                }
                OverflowPolicy::ReportLoss => {
                    assert_eq!((accepted, refused), (10, 0));
                    assert_eq!(writer.lost(), 6, "six events counted as lost");
                }
            }
            blocker.execute("COMMIT").await.unwrap();
            let seqs = first.await.unwrap().unwrap();
            assert_eq!(seqs, vec![1]);
            writer.record(vec![event(99)]).await.unwrap();
            // Everything the queue accepted was written, in order, after the first event.
            assert_eq!(store.evidence_head().await.unwrap().seq, 1 + 4 + 1);
            assert!(store.verify_evidence().await.unwrap().ok());
        }
    }

    /// A decision record that finds the queue full waits for room up to its grace: a
    /// stall shorter than that costs latency, not a refusal; a longer one is refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_queue_makes_submissions_wait_up_to_their_grace() {
        let (_dir, store, mut blocker) = store_locked_by_another_writer().await;
        let (writer, _task) = EvidenceWriter::spawn(store.clone(), 4, OverflowPolicy::FailClosed);
        // The writer takes one submission and blocks on the lock (waited for here: on a
        // busy host it may take a while to get to it); four more fill the queue.
        writer
            .submit_within(vec![event(0)], Duration::from_millis(10))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while writer.queue.capacity() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the writer never took it"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Past its linger (a batch of decision records waits LINGER to grow): blocked.
        tokio::time::sleep(LINGER * 25).await;
        for n in 1..5 {
            writer
                .submit_within(vec![event(n)], Duration::from_millis(10))
                .await
                .unwrap();
        }
        // A short grace runs out while the lock is held: refused, fail closed.
        let refused = writer
            .submit_within(vec![event(5)], Duration::from_millis(50))
            .await;
        assert!(
            matches!(refused, Err(EvidenceError::Overloaded(4))),
            "{refused:?}"
        );
        // Six producers with a long grace wait; the lock goes away after 300 ms.
        let waiting: Vec<_> = (6..12)
            .map(|n| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .submit_within(vec![event(n)], Duration::from_secs(10))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            waiting.iter().all(|w| !w.is_finished()),
            "they wait for room"
        );
        blocker.execute("COMMIT").await.unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(store.evidence_head().await.unwrap().seq, 5 + 6);
        assert!(store.verify_evidence().await.unwrap().ok());
    }

    /// The periodic roll-up folds a backlog larger than one step in several steps, until
    /// it has caught up with the log: all within its first tick (the next is 5 s later).
    #[tokio::test(flavor = "multi_thread")]
    async fn the_periodic_roll_up_folds_a_backlog_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let events: Vec<Event> = (0..2 * ROLL_UP_STEP as usize + 500).map(event).collect();
        store.append_evidence(&events).await.unwrap();
        let task = spawn_usage_roll_up(store.clone());
        let deadline = tokio::time::Instant::now() + ROLL_UP_EVERY - Duration::from_secs(1);
        loop {
            // Folding nothing reports where the roll-up stands.
            let r = store.roll_up_usage(0).await.unwrap();
            if r.through_seq == events.len() as i64 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the roll-up stopped at {} of {}",
                r.through_seq,
                r.head_seq
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        let totals = store
            .usage_totals_since("2000-01-01T00:00:00Z", None)
            .await
            .unwrap();
        assert_eq!(
            totals.iter().map(|t| t.count).sum::<i64>(),
            events.len() as i64
        );
    }

    /// What was queued without waiting — lingering decision records and a token's
    /// issuance — is durable once `flush` returns, and in the order it was queued.
    #[tokio::test(flavor = "multi_thread")]
    async fn flush_makes_everything_queued_before_it_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let (writer, _task) = EvidenceWriter::spawn(store.clone(), 64, OverflowPolicy::FailClosed);
        for n in 0..3 {
            writer.submit(vec![event(n)]).unwrap();
        }
        let mut issued = event(3);
        issued.kind = EventKind::CredentialIssued;
        writer.submit(vec![issued]).unwrap();
        writer.flush().await.unwrap();
        let head = store.evidence_head().await.unwrap();
        assert_eq!(head.seq, 4);
        let records = store.evidence_records(0, 10).await.unwrap();
        let kinds: Vec<bool> = records
            .iter()
            .map(|r| r.body.contains("credential.issued"))
            .collect();
        assert_eq!(kinds, [false, false, false, true]);
    }
}
