//! Revoke once, verify everywhere.
//!
//! - `POST /admin/v1/revocations` revokes a token, an identity, a trusted issuer, a
//!   signing key or a plane in one store transaction (with its evidence event) and pushes
//!   it at once to every stream this replica serves.
//! - `GET /enforcement/v1/revocations` is the push channel: server-sent events, a snapshot
//!   or the revocations after the point's last epoch, then each new one as it commits,
//!   and a heartbeat every few seconds (the confirmation that keeps points from failing
//!   closed).
//! - `POST /enforcement/v1/points/report` registers a point and records the bundle
//!   version and epoch it applied: its acknowledgement and its heartbeat. Reports are
//!   group-committed (one transaction for a burst) and an epoch never issued is flagged.
//! - `GET /admin/v1/revocations/{epoch}/verification` waits until every live point has
//!   acknowledged; `GET /admin/v1/enforcement/points` lists points and their drift.
//!
//! **Several replicas:** revocations, reports and registry changes all live in the shared
//! database. Each replica's hub catches up from it when woken by its own revocations, by
//! PostgreSQL `NOTIFY` from the others (`steward_revocations`, and `steward_changes` for
//! every admin change), and once a second regardless (a missed notification, a restart);
//! a registry change made elsewhere (seen in the admin change log) reloads this replica's
//! policy engine and keys.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use steward_audit::{Event, EventKind};
use steward_enforce::PointIdentity;
use steward_model::{PlaneId, Revocation, RevocationKind, SpiffeId};
use steward_store::{CHANGE_CHANNEL, PointReport, PointRow, REVOCATION_CHANNEL, StoreError};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::AppState;
use crate::api::{PointStatus, PointsResponse, RevokeRequest, RevokeResponse, Verification};
use crate::auth::{Caller, Ingest};
use crate::error::ApiError;
use crate::extract::{Json, Query};

/// Revocations read from the store per round trip while catching up.
const CATCH_UP_PAGE: i64 = 1_000;
/// How often a replica looks at the shared database even without a notification.
const POLL: Duration = Duration::from_secs(1);
/// Most points one report may register (one process hosts a handful).
const MAX_POINTS_PER_REPORT: usize = 256;
/// Longest `wait_secs` of a verification.
const MAX_VERIFY_WAIT_SECS: u64 = 300;

type ReportJob = (Vec<PointReport>, oneshot::Sender<bool>);

/// This replica's view of the revocation order, and the streams' wake-up signals.
pub(crate) struct Hub {
    /// Every revocation, in epoch order: the entry of epoch `e` is at index `e - 1`.
    log: RwLock<Vec<Revocation>>,
    latest: watch::Sender<i64>,
    closing: watch::Sender<bool>,
    catching_up: tokio::sync::Mutex<()>,
    /// The newest admin change this replica's policy engine was built after.
    pub(crate) seen_change: AtomicI64,
    heartbeat: Duration,
    liveness: Duration,
    reports: mpsc::Sender<ReportJob>,
    report_rx: Mutex<Option<mpsc::Receiver<ReportJob>>>,
    /// Woken after every committed batch of reports.
    acked: Notify,
    /// The epoch each point last acknowledged here (for `revocation.acknowledged` events).
    acknowledged: AckedEpochs,
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

    /// Ends every open stream (server shutdown: streams never end on their own).
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    fn entries(&self, after: i64, max: usize) -> Vec<Revocation> {
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
    fn in_force(&self, now: i64) -> Vec<Revocation> {
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

/// Starts this replica's hub tasks: the catch-up loop and the report writer.
pub(crate) fn spawn(s: AppState) {
    let rx = s.hub.report_rx.lock().take();
    if let Some(rx) = rx {
        tokio::spawn(write_reports(s.clone(), rx));
    }
    tokio::spawn(run(s));
}

async fn run(s: AppState) {
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

async fn next_notification(
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
async fn after_others_revoked(s: &AppState, fresh: &[Revocation]) {
    if fresh.iter().any(|r| r.kind == RevocationKind::Key)
        && let Err(e) = s.tokens.refresh(&s.store).await
    {
        tracing::error!(error = %e, "cannot reload the signing keys after a key revocation");
    }
}

/// Reloads the policy engine and keys when another replica changed the registry.
async fn follow_other_replicas(s: &AppState) {
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

async fn write_reports(s: AppState, mut rx: mpsc::Receiver<ReportJob>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < 1_000
            && let Ok(more) = rx.try_recv()
        {
            jobs.push(more);
        }
        let reports: Vec<PointReport> = jobs.iter().flat_map(|(r, _)| r.clone()).collect();
        let ok = match s.store.record_point_reports(&reports).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot record enforcement point reports");
                false
            }
        };
        for (_, done) in jobs {
            let _ = done.send(ok);
        }
        s.hub.acked.notify_waiters();
    }
}

/// `POST /admin/v1/revocations` (central admin).
pub(crate) async fn revoke(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<RevokeRequest>,
) -> Result<(StatusCode, axum::Json<RevokeResponse>), ApiError> {
    caller.require_central("revoking")?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1_000 || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "give a `reason` of 1 to 1,000 characters on one line: it goes into the evidence log",
        ));
    }
    let target = req.target.trim();
    if target.is_empty() || target.len() > 512 || target.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "`target` must be 1 to 512 characters without control characters",
        ));
    }
    if req.decommission && req.kind != RevocationKind::Identity {
        return Err(ApiError::bad_request(
            "`decommission` only applies to an identity",
        ));
    }
    let (revocation, note) =
        revoke_now(&s, req.kind, target, reason, req.decommission, &caller.0).await?;
    let points = statuses(&s).await?;
    let live_points = points.points.iter().filter(|p| p.live).count();
    Ok((
        StatusCode::CREATED,
        axum::Json(RevokeResponse {
            revocation,
            live_points,
            note,
        }),
    ))
}

/// When a revocation of "everything issued so far" can be forgotten: every token the
/// control plane signed before now has expired by then (the longest lifetime plus skew).
pub(crate) fn revocation_until(s: &AppState) -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    now + s.tokens.config.max_ttl_secs as i64 + s.tokens.config.clock_skew_secs as i64
}

/// Revokes `target` (already checked for length and control characters), pushes it, and
/// brings this replica's engine and keys up to date. Also used by access reviews. Returns
/// the revocation and a note for the operator, if any.
pub(crate) async fn revoke_now(
    s: &AppState,
    kind: RevocationKind,
    target: &str,
    reason: &str,
    decommission: bool,
    actor: &steward_store::Actor,
) -> Result<(Revocation, Option<String>), ApiError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let skew = s.tokens.config.clock_skew_secs as i64;
    // Every token a revocation of tokens-so-far covers has expired by then.
    let window = s.tokens.config.max_ttl_secs as i64 + skew;
    let mut note = None;
    let until = match kind {
        RevocationKind::Token => match token_expiry(s, target, now, window).await? {
            Some(exp) => Some(exp + skew),
            None => {
                // No issuance record: maybe a typo, maybe a token whose record was lost.
                // A revoked jti costs nothing, an unrevoked live one everything.
                tracing::warn!(jti = %target, "revoking a token with no issuance record, for the longest token lifetime");
                note = Some(format!(
                    "no issuance of token `{target}` is recorded in the last {window}s; it is revoked anyway, for the longest token lifetime"
                ));
                Some(now + window)
            }
        },
        RevocationKind::Identity => {
            SpiffeId::parse(target.to_owned())
                .map_err(|e| ApiError::bad_request(format!("`target`: {e}")))?;
            Some(now + window)
        }
        RevocationKind::Plane => {
            PlaneId::new(target.to_owned())
                .map_err(|e| ApiError::bad_request(format!("`target`: {e}")))?;
            Some(now + window)
        }
        RevocationKind::Issuer | RevocationKind::Key => None,
    };
    let request = steward_store::RevokeRequest {
        kind,
        target: target.to_owned(),
        reason: reason.to_owned(),
        revoked_at: now,
        until,
        decommission,
    };
    let revocation = s.store.revoke(&request, actor).await?;
    tracing::info!(epoch = revocation.epoch, kind = %revocation.kind, target = %revocation.target, actor = %actor.credential_id, "revoked");
    // Push first: the streams should not wait for the engine rebuild.
    catch_up(s).await?;
    match revocation.kind {
        RevocationKind::Identity | RevocationKind::Plane => s.reload_policy().await?,
        RevocationKind::Key => {
            if let Err(e) = s.tokens.refresh(&s.store).await {
                tracing::error!(error = %e, "cannot reload the signing keys after a key revocation");
            }
        }
        RevocationKind::Token | RevocationKind::Issuer => {}
    }
    Ok((revocation, note))
}

/// When token `jti` expires, from the evidence of its issuance, or `None` when no
/// issuance within the longest lifetime is recorded. One recorded as already expired is
/// refused: nothing to revoke.
async fn token_expiry(
    s: &AppState,
    jti: &str,
    now: i64,
    window: i64,
) -> Result<Option<i64>, ApiError> {
    // Steward issues UUIDs; anything else (a foreign jti) has no issuance record here,
    // and only a UUID may reach the store's lookup (it cannot carry `LIKE` wildcards).
    if uuid::Uuid::parse_str(jti).is_err() {
        return Ok(None);
    }
    let since = steward_model::timestamp::from_unix(now - window);
    let issued = s.store.issued_token(jti, &since).await?;
    let Some(event) = issued else {
        return Ok(None);
    };
    let exp = event
        .details
        .get("expires_at")
        .and_then(serde_json::Value::as_str)
        .and_then(steward_model::timestamp::to_unix)
        .unwrap_or(now + window);
    if exp <= now {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            format!("token `{jti}` has already expired; nothing to revoke"),
        ));
    }
    Ok(Some(exp))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /admin/v1/revocations`: the revocation order, oldest first.
pub(crate) async fn list(
    _caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<Revocation>>, ApiError> {
    let limit = crate::routes::page_size(q.limit)?;
    Ok(axum::Json(
        s.store
            .revocations_after(q.after.unwrap_or(0).max(0), limit)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    after: Option<i64>,
}

/// `GET /enforcement/v1/revocations`: the push channel (server-sent events). Resumes
/// after `Last-Event-ID` or `?after=`; a new point (0) or one ahead of this control plane
/// gets a `snapshot` of the revocations in force.
pub(crate) async fn stream(
    Ingest(actor): Ingest,
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ApiError::bad_request("`Last-Event-ID` must be a revocation epoch (a number)")
            })
        })
        .transpose()?;
    let after = from_header.or(q.after).unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            "`after` must be an epoch (0 or more)",
        ));
    }
    let point = header_text(&headers, "steward-enforcement-point");
    let hub = s.hub.clone();
    let latest = hub.latest();
    let mut pending = VecDeque::new();
    let sent = if after == 0 || after > latest {
        if after > latest {
            tracing::warn!(point = %point, after, latest, "a point resumed from an epoch this control plane never issued; sending it a snapshot");
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let snapshot = serde_json::json!({"epoch": latest, "revocations": hub.in_force(now)});
        pending.push_back(
            SseEvent::default()
                .event("snapshot")
                .id(latest.to_string())
                .data(snapshot.to_string()),
        );
        latest
    } else {
        after
    };
    tracing::info!(point = %point, credential = %actor.name, after, latest, "revocation stream opened");
    let mut heartbeat = tokio::time::interval(hub.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    let state = Streaming {
        latest: hub.latest.subscribe(),
        closing: hub.closing.subscribe(),
        hub,
        sent,
        pending,
        heartbeat,
    };
    let events = futures_util::stream::unfold(state, |mut st| async move {
        st.next().await.map(|e| (Ok::<_, Infallible>(e), st))
    });
    let mut response = Sse::new(events).into_response();
    let h = response.headers_mut();
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    // Proxies such as nginx must not buffer the stream.
    h.insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

struct Streaming {
    hub: Arc<Hub>,
    latest: watch::Receiver<i64>,
    closing: watch::Receiver<bool>,
    sent: i64,
    pending: VecDeque<SseEvent>,
    heartbeat: tokio::time::Interval,
}

impl Streaming {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if *self.closing.borrow() {
                return None;
            }
            let latest = *self.latest.borrow_and_update();
            if latest > self.sent {
                for r in self.hub.entries(self.sent, 1_000) {
                    self.sent = r.epoch;
                    let data = serde_json::to_string(&r).unwrap_or_default();
                    self.pending.push_back(
                        SseEvent::default()
                            .event("revocation")
                            .id(r.epoch.to_string())
                            .data(data),
                    );
                }
                continue;
            }
            tokio::select! {
                changed = self.latest.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.closing.changed() => return None,
                _ = self.heartbeat.tick() => {
                    self.pending.push_back(
                        SseEvent::default()
                            .event("heartbeat")
                            .data(serde_json::json!({"epoch": self.sent}).to_string()),
                    );
                }
            }
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .chars()
        .take(128)
        .collect()
}

/// What a point reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportBody {
    points: Vec<PointIdentity>,
    bundle_version: i64,
    epoch: i64,
}

/// The control plane's answer to a report.
#[derive(Debug, Serialize)]
pub(crate) struct ReportAnswer {
    /// The newest epoch: a point behind it knows it is.
    epoch: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    flagged: Option<String>,
}

fn valid_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "`{field}` must be 1 to 128 characters without control characters"
        )));
    }
    Ok(())
}

/// `POST /enforcement/v1/points/report` (ingestor): registration, heartbeat and
/// acknowledgement in one.
pub(crate) async fn report(
    Ingest(actor): Ingest,
    State(s): State<AppState>,
    Json(body): Json<ReportBody>,
) -> Result<axum::Json<ReportAnswer>, ApiError> {
    if body.points.is_empty() || body.points.len() > MAX_POINTS_PER_REPORT {
        return Err(ApiError::bad_request(format!(
            "report 1 to {MAX_POINTS_PER_REPORT} points"
        )));
    }
    for p in &body.points {
        valid_name("points[].id", &p.id)?;
        valid_name("points[].kind", &p.kind)?;
        valid_name("points[].name", &p.name)?;
        if let Some(env) = &p.environment {
            valid_name("points[].environment", env)?;
        }
    }
    if body.epoch < 0 || body.bundle_version < 0 {
        return Err(ApiError::bad_request(
            "`epoch` and `bundle_version` must be 0 or more",
        ));
    }
    speaks_only_for_its_own_points(&s, &actor, &body).await?;
    let mut latest = s.hub.latest();
    if body.epoch > latest {
        // Another replica may have committed it a moment ago.
        latest = s.store.revocation_epoch().await?;
    }
    let flagged = (body.epoch > latest).then(|| {
        format!(
            "acknowledged epoch {} but the newest revocation is epoch {latest}",
            body.epoch
        )
    });
    if let Some(why) = &flagged {
        tracing::warn!(points = ?body.points.iter().map(|p| &p.id).collect::<Vec<_>>(), credential = %actor.name, "{why}");
    }
    let reports: Vec<PointReport> = body
        .points
        .iter()
        .map(|p| PointReport {
            id: p.id.clone(),
            kind: p.kind.clone(),
            name: p.name.clone(),
            environment: p.environment.clone(),
            credential: actor.name.clone(),
            credential_id: actor.credential_id.clone(),
            bundle_version: body.bundle_version,
            epoch: body.epoch,
            flagged: flagged.clone(),
        })
        .collect();
    let (done, written) = oneshot::channel();
    s.hub
        .reports
        .send((reports, done))
        .await
        .map_err(|_| ApiError::internal())?;
    if !written.await.unwrap_or(false) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the report could not be recorded; retry",
        ));
    }
    if flagged.is_none() {
        let (events, moved) = acknowledged_evidence(&s, &actor.name, &body);
        if !events.is_empty()
            && let Err(e) = s
                .evidence
                .submit_within(events, crate::evidence::RECORD_GRACE)
                .await
        {
            // Forgotten again, so the point's next report (its heartbeat) records them.
            for (id, before) in moved {
                s.hub.acknowledged.restore(&id, body.epoch, before);
            }
            tracing::error!(error = %e, "revocation acknowledgements not recorded as evidence; they will be recorded on the point's next report");
        }
    }
    Ok(axum::Json(ReportAnswer {
        epoch: latest,
        flagged,
    }))
}

/// A report may speak only for the points its credential registered: a point is bound to
/// the credential that first reported it, and one bound to another live credential is
/// refused (403) and the attempt recorded, so one gateway's credential cannot acknowledge
/// revocations for a point that is down. A point whose credential was revoked is taken
/// over by the next credential that reports it (recorded too).
async fn speaks_only_for_its_own_points(
    s: &AppState,
    actor: &steward_store::Actor,
    body: &ReportBody,
) -> Result<(), ApiError> {
    let mut foreign = Vec::new();
    let mut taken_over = Vec::new();
    for p in &body.points {
        match s.store.point_owner(&p.id).await? {
            Some(owner) if owner.credential_id == actor.credential_id => {}
            Some(owner) => {
                let label = format!("{} ({})", owner.credential, owner.credential_id);
                if owner.live {
                    foreign.push((p.id.clone(), label));
                } else {
                    taken_over.push((p.id.clone(), label));
                }
            }
            None => {}
        }
    }
    if foreign.is_empty() && taken_over.is_empty() {
        return Ok(());
    }
    let now = steward_model::timestamp::now();
    let event = |action: &str, points: &[(String, String)]| {
        let mut e = Event::new(
            EventKind::AdminAction,
            uuid::Uuid::now_v7().to_string(),
            now.clone(),
        );
        e.action = Some(action.to_owned());
        e.principal = Some(actor.label());
        e.actor_chain = vec![actor.label()];
        e.details = serde_json::json!({
            "points": points.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            "bound_to": points.iter().map(|(_, c)| c).collect::<Vec<_>>(),
            "epoch": body.epoch,
        });
        e
    };
    if let Some((id, owner)) = foreign.first() {
        let mut e = event("enforcement.report_refused", &foreign);
        e.decision.outcome = Some(steward_audit::Outcome::Deny);
        e.decision.reasons =
            vec!["a report may speak only for the points its own credential registered".into()];
        // Recorded before answering: the attempt is evidence whether or not it recurs.
        s.evidence.record(vec![e]).await.map_err(|err| {
            tracing::error!(error = %err, "a refused point report could not be recorded");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the report could not be recorded; retry",
            )
        })?;
        tracing::warn!(credential = %actor.label(), point = %id, bound_to = %owner, "refused a report for a point of another credential");
        return Err(ApiError::forbidden(format!(
            "point `{id}` reports through credential {owner}; a report may speak only for the points its own credential registered (revoke that credential to move the point to this one)"
        )));
    }
    s.evidence
        .record(vec![event("enforcement.point_taken_over", &taken_over)])
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the report could not be recorded; retry",
            )
        })?;
    tracing::info!(credential = %actor.label(), points = ?taken_over, "points of a revoked credential now report through this one");
    Ok(())
}

/// The epoch each point last acknowledged, as far as the evidence log knows: an
/// acknowledgement is recorded once, when a point's epoch moves forward, and
/// [`AckedEpochs::restore`] takes a move back when its record could not be queued.
#[derive(Default)]
struct AckedEpochs(Mutex<HashMap<String, i64>>);

impl AckedEpochs {
    /// Moves `point` to `epoch`; the epoch it had before when that is a move forward.
    fn advance(&self, point: &str, epoch: i64) -> Option<i64> {
        let mut known = self.0.lock();
        let before = known.get(point).copied().unwrap_or(0);
        if epoch <= before {
            return None;
        }
        known.insert(point.to_owned(), epoch);
        Some(before)
    }

    /// Undoes `advance(point, epoch)` unless a later report has moved `point` on since.
    fn restore(&self, point: &str, epoch: i64, before: i64) {
        let mut known = self.0.lock();
        if known.get(point) == Some(&epoch) {
            known.insert(point.to_owned(), before);
        }
    }
}

/// One `revocation.acknowledged` event per point whose applied epoch moved forward, and
/// the (point, previous epoch) of each move.
fn acknowledged_evidence(
    s: &AppState,
    credential: &str,
    body: &ReportBody,
) -> (Vec<Event>, Vec<(String, i64)>) {
    let now = steward_model::timestamp::now();
    let mut events = Vec::new();
    let mut moved = Vec::new();
    for p in &body.points {
        let Some(before) = s.hub.acknowledged.advance(&p.id, body.epoch) else {
            continue;
        };
        moved.push((p.id.clone(), before));
        let mut e = Event::new(
            EventKind::RevocationAcknowledged,
            uuid::Uuid::now_v7().to_string(),
            now.clone(),
        );
        e.enforcement_point = Some(p.id.clone());
        e.action = Some("revocation.apply".into());
        e.policy_version = Some(body.bundle_version);
        e.details = serde_json::json!({
            "epoch": body.epoch,
            "previous_epoch": before,
            "credential": credential,
        });
        events.push(e);
    }
    (events, moved)
}

async fn statuses(s: &AppState) -> Result<PointsResponse, ApiError> {
    let rows = s.store.enforcement_points().await?;
    // The version this replica's engine runs: what a current bundle carries.
    let policy_version = s.engine().map(|e| e.version()).unwrap_or(0);
    let epoch = s.hub.latest().max(s.store.revocation_epoch().await?);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let liveness = s.hub.liveness.as_secs() as i64;
    let points = rows
        .into_iter()
        .map(|p| status(p, now, liveness, policy_version, epoch))
        .collect();
    Ok(PointsResponse {
        policy_version,
        epoch,
        liveness_secs: s.hub.liveness.as_secs(),
        points,
    })
}

fn status(p: PointRow, now: i64, liveness: i64, policy_version: i64, epoch: i64) -> PointStatus {
    let since = (now - p.last_seen_unix).max(0);
    PointStatus {
        live: since <= liveness,
        behind_bundle: p.bundle_version < policy_version,
        behind_epoch: p.epoch < epoch,
        seconds_since_seen: since,
        id: p.id,
        kind: p.kind,
        name: p.name,
        environment: p.environment,
        credential: p.credential,
        bundle_version: p.bundle_version,
        epoch: p.epoch,
        last_seen: p.last_seen,
        flagged: p.flagged,
    }
}

/// `GET /admin/v1/enforcement/points`.
pub(crate) async fn points(
    _caller: Caller,
    State(s): State<AppState>,
) -> Result<axum::Json<PointsResponse>, ApiError> {
    Ok(axum::Json(statuses(&s).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyQuery {
    wait_secs: Option<u64>,
}

/// `GET /admin/v1/revocations/{epoch}/verification?wait_secs=N`: which live points have
/// applied the epoch, waiting up to N seconds for all of them.
pub(crate) async fn verification(
    _caller: Caller,
    State(s): State<AppState>,
    Path(epoch): Path<i64>,
    Query(q): Query<VerifyQuery>,
) -> Result<axum::Json<Verification>, ApiError> {
    let wait = q.wait_secs.unwrap_or(0);
    if wait > MAX_VERIFY_WAIT_SECS {
        return Err(ApiError::bad_request(format!(
            "`wait_secs` must be at most {MAX_VERIFY_WAIT_SECS}"
        )));
    }
    let newest = s.store.revocation_epoch().await?;
    if epoch < 1 || epoch > newest {
        return Err(ApiError::not_found(format!(
            "no revocation has epoch {epoch}; the newest is {newest}"
        )));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(wait);
    loop {
        let all = statuses(&s).await?;
        let mut v = Verification {
            epoch,
            complete: false,
            acknowledged: Vec::new(),
            lagging: Vec::new(),
            not_live: Vec::new(),
            waited_ms: 0,
        };
        for p in all.points {
            if !p.live {
                v.not_live.push(p);
            } else if p.epoch >= epoch && p.flagged.is_none() {
                v.acknowledged.push(p);
            } else {
                v.lagging.push(p);
            }
        }
        // Verified means every live point applied it — and that there is one: with no
        // point live, nothing has shown the revocation in force anywhere (and there is
        // nothing to wait for).
        let none_live = v.acknowledged.is_empty() && v.lagging.is_empty();
        v.complete = v.lagging.is_empty() && !none_live;
        if v.complete || none_live || Instant::now() >= deadline {
            v.waited_ms = started.elapsed().as_millis() as u64;
            return Ok(axum::Json(v));
        }
        let acked = s.hub.acked.notified();
        tokio::select! {
            _ = acked => {}
            _ = tokio::time::sleep(Duration::from_millis(25)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AckedEpochs;

    /// An acknowledgement is recorded once per move forward; a move taken back (its
    /// record could not be queued) is recorded on the next report, unless a newer epoch
    /// was acknowledged meanwhile.
    #[test]
    fn a_restored_acknowledgement_is_recorded_again() {
        let acked = AckedEpochs::default();
        assert_eq!(acked.advance("gw", 3), Some(0));
        assert_eq!(
            acked.advance("gw", 3),
            None,
            "the same epoch again is no news"
        );
        assert_eq!(acked.advance("gw", 2), None, "an older epoch is no news");
        acked.restore("gw", 3, 0);
        assert_eq!(
            acked.advance("gw", 3),
            Some(0),
            "recorded on the next report"
        );

        assert_eq!(acked.advance("gw", 5), Some(3));
        acked.restore("gw", 3, 0);
        assert_eq!(acked.advance("gw", 5), None, "a newer move is kept");
        assert_eq!(acked.advance("other", 1), Some(0), "points are independent");
    }
}
