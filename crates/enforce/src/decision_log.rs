//! Decision records, from the point that decided to the control plane's evidence log.
//!
//! Records are queued without waiting (the request path never waits on the network) and
//! shipped in batches to `POST /enforcement/v1/decisions`. While the control plane is
//! unreachable, batches are retried with backoff and the queue fills; once it is full,
//! [`DecisionLog::submit`] refuses and the caller denies: no decision goes unrecorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use steward_audit::{Event, EventKind};
use steward_policy::{AccessRequest, Decision, Target};
use tokio::sync::mpsc;

use crate::EnforceError;

/// Most records per shipped batch (the control plane's limit).
const BATCH: usize = 1_000;

/// How long the shipper waits for more records before posting a batch. Short batches keep
/// the control plane's ingestion in small, even steps (a 20 ms window made bursts that,
/// on a shared host, showed in the point's p99); a busy fleet may want longer ones.
pub const DEFAULT_SHIP_INTERVAL: Duration = Duration::from_millis(5);

/// Counters of one log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LogStats {
    pub shipped: u64,
    /// Records the control plane refused (logged loudly; never silently).
    pub refused: u64,
    /// Records queued and not yet shipped.
    pub waiting: usize,
}

#[derive(Default)]
struct Counters {
    shipped: AtomicU64,
    refused: AtomicU64,
    waiting: AtomicUsize,
}

/// The queue of decision records of one enforcement point.
#[derive(Clone)]
pub struct DecisionLog {
    tx: mpsc::Sender<Event>,
    capacity: usize,
    counters: Arc<Counters>,
}

impl DecisionLog {
    /// Ships records to the control plane at `base_url` with `credential` (an ingestor or
    /// central-admin credential), gathering up to `interval` per batch. Spawns the shipping
    /// task on the current runtime.
    pub fn ship_to(
        base_url: &str,
        credential: String,
        capacity: usize,
        interval: Duration,
        http: reqwest::Client,
    ) -> Self {
        let (log, rx) = Self::channel(capacity);
        let url = format!(
            "{}/enforcement/v1/decisions",
            base_url.trim_end_matches('/')
        );
        tokio::spawn(ship(
            rx,
            url,
            credential,
            interval,
            http,
            log.counters.clone(),
        ));
        log
    }

    /// A log whose records are handed to `rx` (in-process consumers and tests).
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Event>) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        (
            Self {
                tx,
                capacity,
                counters: Arc::default(),
            },
            rx,
        )
    }

    /// Queues one record, or refuses when the queue is full or the shipper stopped.
    pub fn submit(&self, event: Event) -> Result<(), EnforceError> {
        self.counters.waiting.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(EnforceError::LogFull(self.capacity))
            }
        }
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            shipped: self.counters.shipped.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
            waiting: self.counters.waiting.load(Ordering::Relaxed),
        }
    }

    /// Waits until every queued record was shipped (or refused), at most `timeout`.
    /// Returns how many are still waiting.
    pub async fn flush(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let waiting = self.counters.waiting.load(Ordering::Relaxed);
            if waiting == 0 || tokio::time::Instant::now() >= deadline {
                return waiting;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Marks `n` records as handled by an in-process consumer of [`DecisionLog::channel`].
    pub fn mark_shipped(&self, n: usize) {
        self.counters.shipped.fetch_add(n as u64, Ordering::Relaxed);
        self.counters.waiting.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The body of `POST /enforcement/v1/decisions`.
#[derive(serde::Serialize)]
struct Batch<'a> {
    records: &'a [Event],
}

async fn ship(
    mut rx: mpsc::Receiver<Event>,
    url: String,
    credential: String,
    interval: Duration,
    http: reqwest::Client,
    counters: Arc<Counters>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        // Gather what is already queued, and what arrives within a moment, into one POST.
        let gather_until = tokio::time::Instant::now() + interval;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(gather_until, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                _ => break,
            }
        }
        // Encoded once, straight from the events (no intermediate JSON tree), and resent
        // as is on retries.
        let body = match serde_json::to_vec(&Batch { records: &batch }) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => {
                counters
                    .refused
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                counters.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
                tracing::error!(error = %e, records = batch.len(), "DECISION RECORDS CANNOT BE ENCODED; they are not in the evidence log");
                continue;
            }
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let sent = http
                .post(&url)
                .bearer_auth(&credential)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    counters
                        .shipped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break;
                }
                Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                    let status = r.status().as_u16();
                    let text = crate::answer_text(r).await;
                    counters
                        .refused
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tracing::error!(
                        status,
                        records = batch.len(),
                        answer = %text,
                        "DECISION RECORDS REFUSED by the control plane; they are not in the evidence log"
                    );
                    break;
                }
                Ok(r) => {
                    tracing::warn!(
                        status = r.status().as_u16(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "the control plane did not take decision records; retrying"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot ship decision records; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        counters.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
    }
}

/// The evidence record of one decision; `details.request` keeps what a replay needs.
/// Shared by the control plane's decision API and every enforcement point.
pub fn decision_event(
    d: &Decision,
    request: Option<&AccessRequest>,
    principal: Option<String>,
    enforcement_point: &str,
    correlation: Option<&str>,
) -> Event {
    let now = time::OffsetDateTime::now_utc();
    let mut e = Event::new(
        EventKind::AccessDecision,
        crate::trace::event_id(now),
        now.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    );
    e.plane = d.plane.clone();
    e.principal = principal;
    e.action = d.action.map(|a| a.as_str().to_owned());
    e.destination.capability = d.capability.clone();
    if let Some(Target::Address(a)) = request.map(|r| &r.target) {
        e.destination.address = Some(a.to_string());
    }
    if let Some(chain) = request
        .and_then(|r| r.context.get("delegation_chain"))
        .and_then(Value::as_array)
    {
        e.actor_chain = chain
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    e.decision = steward_audit::Decision {
        outcome: Some(if d.allowed {
            steward_audit::Outcome::Allow
        } else {
            steward_audit::Outcome::Deny
        }),
        policies: d.policies.clone(),
        reasons: d.reasons.iter().chain(d.errors.iter()).cloned().collect(),
        exception: (!d.exceptions.is_empty()).then(|| d.exceptions.join(",")),
    };
    e.policy_version = Some(d.policy_version);
    e.enforcement_point = Some(enforcement_point.to_owned());
    e.correlation_id = correlation.map(str::to_owned);
    if let Some(r) = request {
        e.details = json!({ "request": r });
    }
    e
}
