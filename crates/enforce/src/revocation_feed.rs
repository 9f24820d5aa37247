//! Keeping a point's [`RevocationSet`] current: a server-sent-events stream from the
//! control plane (`GET /enforcement/v1/revocations`), applied strictly in epoch order, and
//! acknowledged (`POST /enforcement/v1/points/report`) once applied — after the hooks that
//! act on it (closing a revoked identity's broker connections) have run.
//!
//! A dropped stream reconnects from the last applied epoch (`?after=` and
//! `Last-Event-ID`), so nothing is skipped; a gap in the epochs makes the feed reconnect
//! and catch up instead of applying out of order. The same report, sent every
//! `report_every`, is the point's heartbeat: its bundle version and epoch for drift.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use steward_api::{PointIdentity, PointReportRequest, RouteId};
use steward_model::Revocation;

use crate::EnforceError;
use crate::source::BundleSource;

/// Where the feed comes from and how often the point reports.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// The control plane's base URL.
    pub url: String,
    /// How the point authenticates: an ingestor (or central-admin) credential, or its
    /// own identity's token.
    pub credential: crate::ControlPlaneAuth,
    /// The points this process registers; they share one revocation set.
    pub points: Vec<PointIdentity>,
    /// How often to report (heartbeat) when nothing happens.
    pub report_every: Duration,
    /// A stream silent for this long is considered dead and reopened (the control plane
    /// sends a heartbeat every few seconds).
    pub idle_timeout: Duration,
}

/// Acts on revocations once applied, before they are acknowledged.
pub trait RevocationHook: Send + Sync {
    fn applied<'a>(
        &'a self,
        revocations: &'a [Revocation],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// What `status` reports about the feed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FeedStatus {
    pub connected: bool,
    pub epoch: i64,
    pub acknowledged_epoch: i64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

/// The largest event the feed accepts (a snapshot of many revocations).
const MAX_EVENT_BYTES: usize = 32 * 1024 * 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The feed of one process; see the module documentation.
pub struct RevocationFeed {
    config: FeedConfig,
    http: reqwest::Client,
    source: Arc<BundleSource>,
    hooks: Vec<Arc<dyn RevocationHook>>,
    acknowledged: AtomicI64,
    reconnects: AtomicU64,
    state: Mutex<(bool, Option<String>)>,
}

#[derive(serde::Deserialize)]
struct Snapshot {
    epoch: i64,
    revocations: Vec<Revocation>,
}

impl RevocationFeed {
    /// A feed for `source`'s revocation set. From now on the set counts as stale until the
    /// feed first connects.
    pub fn new(
        config: FeedConfig,
        http: reqwest::Client,
        source: Arc<BundleSource>,
        hooks: Vec<Arc<dyn RevocationHook>>,
    ) -> Arc<Self> {
        source.revocations().expect_feed();
        Arc::new(Self {
            config,
            http,
            source,
            hooks,
            acknowledged: AtomicI64::new(0),
            reconnects: AtomicU64::new(0),
            state: Mutex::new((false, None)),
        })
    }

    pub fn status(&self) -> FeedStatus {
        let (connected, last_error) = self.state.lock().clone();
        FeedStatus {
            connected,
            epoch: self.source.revocations().epoch(),
            acknowledged_epoch: self.acknowledged.load(Ordering::SeqCst),
            reconnects: self.reconnects.load(Ordering::SeqCst),
            last_error,
        }
    }

    /// Runs the stream (reconnecting forever) and the periodic report.
    pub fn spawn(self: &Arc<Self>) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
        let me = self.clone();
        let stream = tokio::spawn(async move { me.run_stream().await });
        let me = self.clone();
        let reports = tokio::spawn(async move {
            loop {
                me.source
                    .revocations()
                    .prune(time::OffsetDateTime::now_utc().unix_timestamp());
                if let Err(e) = me.report().await {
                    tracing::warn!(error = %e, "cannot report to the control plane");
                }
                tokio::time::sleep(me.config.report_every).await;
            }
        });
        (stream, reports)
    }

    async fn run_stream(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let result = self.stream_once().await;
            self.set_state(false, result.as_ref().err().map(ToString::to_string));
            match result {
                Ok(()) => {
                    tracing::info!("the control plane closed the revocation stream; reconnecting");
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "revocation stream lost; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            self.reconnects.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn set_state(&self, connected: bool, error: Option<String>) {
        let mut s = self.state.lock();
        s.0 = connected;
        if error.is_some() || connected {
            s.1 = error;
        }
    }

    /// One connection: applies events until it ends. `Ok` when the server closed it.
    async fn stream_once(&self) -> Result<(), EnforceError> {
        let base = self.config.url.trim_end_matches('/');
        let set = self.source.revocations();
        let after = set.epoch();
        let point = self
            .config
            .points
            .first()
            .map(|p| p.id.as_str())
            .unwrap_or("-");
        let response = self
            .http
            .get(format!(
                "{base}{}?after={after}",
                RouteId::RevocationStream.route().path
            ))
            .header("accept", "text/event-stream")
            .header("last-event-id", after.to_string())
            .header("steward-enforcement-point", point)
            .bearer_auth(self.config.credential.bearer()?)
            .send()
            .await
            .map_err(|e| crate::source::unreachable(base, &e))?;
        let mut response = crate::success(response).await?;
        self.set_state(true, None);
        set.confirm();
        let mut parser = SseParser::default();
        loop {
            let chunk = tokio::time::timeout(self.config.idle_timeout, response.chunk())
                .await
                .map_err(|_| EnforceError::Unreachable {
                    url: base.to_owned(),
                    message: format!(
                        "no event on the revocation stream for {}s",
                        self.config.idle_timeout.as_secs()
                    ),
                })?
                .map_err(|e| crate::source::unreachable(base, &e))?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            let mut applied = Vec::new();
            for event in parser.push(&chunk)? {
                applied.extend(self.handle(&event)?);
                set.confirm();
            }
            if !applied.is_empty() {
                for hook in &self.hooks {
                    hook.applied(&applied).await;
                }
                if let Err(e) = self.report().await {
                    tracing::warn!(error = %e, epoch = set.epoch(), "cannot acknowledge the revocation epoch; will retry with the next report");
                }
            }
        }
    }

    /// Applies one event; returns the revocations newly in force.
    fn handle(&self, event: &SseEvent) -> Result<Vec<Revocation>, EnforceError> {
        let set = self.source.revocations();
        let malformed =
            |e: serde_json::Error| EnforceError::Malformed(format!("revocation event: {e}"));
        match event.event.as_str() {
            "snapshot" => {
                let snap: Snapshot = serde_json::from_str(&event.data).map_err(malformed)?;
                tracing::info!(
                    epoch = snap.epoch,
                    revocations = snap.revocations.len(),
                    "revocation snapshot applied"
                );
                set.replace(snap.epoch, snap.revocations.clone());
                Ok(snap.revocations)
            }
            "revocation" => {
                let r: Revocation = serde_json::from_str(&event.data).map_err(malformed)?;
                match set.apply(r.clone()) {
                    Ok(true) => {
                        tracing::info!(epoch = r.epoch, kind = %r.kind, target = %r.target, "revocation applied");
                        Ok(vec![r])
                    }
                    Ok(false) => Ok(Vec::new()),
                    Err(gap) => Err(EnforceError::Malformed(gap.to_string())),
                }
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Reports this process's points, bundle version and applied epoch: the
    /// acknowledgement and the heartbeat.
    pub async fn report(&self) -> Result<(), EnforceError> {
        let base = self.config.url.trim_end_matches('/');
        let epoch = self.source.revocations().epoch();
        let body = PointReportRequest {
            points: self.config.points.clone(),
            bundle_version: self.source.status().policy_version.unwrap_or(0),
            epoch,
        };
        let response = self
            .http
            .post(format!("{base}{}", RouteId::PointReport.route().path))
            .bearer_auth(self.config.credential.bearer()?)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| crate::source::unreachable(base, &e))?;
        crate::success(response).await?;
        self.acknowledged.fetch_max(epoch, Ordering::SeqCst);
        Ok(())
    }
}

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// An incremental `text/event-stream` parser (the WHATWG format: `field: value` lines,
/// events ended by a blank line, `:` comments).
#[derive(Default)]
pub(crate) struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, EnforceError> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(EnforceError::Malformed(format!(
                "a revocation event is larger than {MAX_EVENT_BYTES} bytes"
            )));
        }
        let mut out = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data || !self.current.event.is_empty() {
                    let mut event = std::mem::take(&mut self.current);
                    if event.event.is_empty() {
                        event.event = "message".into();
                    }
                    out.push(event);
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => self.current.event = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                "id" => self.current.id = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_anywhere() {
        let text = b": hello\n\nevent: revocation\nid: 3\ndata: {\"a\":\ndata: 1}\n\nevent: heartbeat\r\ndata: {}\r\n\r\n";
        for split in 0..text.len() {
            let mut p = SseParser::default();
            let (a, b) = text.split_at(split);
            let mut events = p.push(a).unwrap();
            events.extend(p.push(b).unwrap());
            assert_eq!(events.len(), 2, "split at {split}");
            assert_eq!(events[0].event, "revocation");
            assert_eq!(events[0].data, "{\"a\":\n1}");
            assert_eq!(events[0].id.as_deref(), Some("3"));
            assert_eq!(events[1].event, "heartbeat");
        }
    }

    proptest::proptest! {
        /// Any bytes get an answer, and where the stream is cut does not change it: the
        /// events of the chunks are the events of the whole (until the first error).
        #[test]
        fn chunking_never_changes_the_events(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..16)) {
            let mut p = SseParser::default();
            let mut chunked = Vec::new();
            let mut failed = false;
            for c in &chunks {
                match p.push(c) {
                    Ok(events) => chunked.extend(events),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let whole: Vec<u8> = chunks.concat();
            match SseParser::default().push(&whole) {
                Ok(events) if !failed => proptest::prop_assert_eq!(chunked, events),
                Ok(_) => proptest::prop_assert!(false, "the chunks failed where the whole did not"),
                Err(_) => {}
            }
        }

        /// Well-formed events come out whole, however the stream is cut.
        #[test]
        fn well_formed_events_survive_any_cut(ids in proptest::collection::vec(1u32..1000, 1..6), cut in 1usize..40) {
            let text: String = ids.iter().map(|i| format!("event: revocation\nid: {i}\ndata: {{\"epoch\":{i}}}\n\n")).collect();
            let mut p = SseParser::default();
            let mut seen = Vec::new();
            for chunk in text.as_bytes().chunks(cut) {
                seen.extend(p.push(chunk).unwrap());
            }
            let got: Vec<String> = seen.iter().filter_map(|e| e.id.clone()).collect();
            let want: Vec<String> = ids.iter().map(ToString::to_string).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
