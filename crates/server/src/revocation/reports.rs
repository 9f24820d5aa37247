//! Points' reports (registration, heartbeat, acknowledgement), their group-committed
//! writes, and the verification of a revocation across the live points.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use parking_lot::Mutex;
use serde::Deserialize;
use steward_audit::{Event, EventKind};
use steward_store::{PointReport, PointRow};
use tokio::sync::{mpsc, oneshot};

use super::hub::ReportJob;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::point_auth::ReportCaller;
use steward_api::{
    PointReportAnswer, PointReportRequest, PointStatus, PointsResponse, Verification,
};

/// Most points one report may register (one process hosts a handful).
const MAX_POINTS_PER_REPORT: usize = 256;
/// Longest `wait_secs` of a verification.
const MAX_VERIFY_WAIT_SECS: u64 = 300;

pub(super) async fn write_reports(s: AppState, mut rx: mpsc::Receiver<ReportJob>) {
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

pub(super) fn valid_name(field: &str, value: &str) -> Result<(), ApiError> {
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
    ReportCaller(caller): ReportCaller,
    State(s): State<AppState>,
    Json(body): Json<PointReportRequest>,
) -> Result<axum::Json<PointReportAnswer>, ApiError> {
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
    // An identity speaks only for the points its grant names; then, like a credential,
    // only for points not bound to another live caller.
    let path = steward_api::RouteId::PointReport.route().path;
    for p in &body.points {
        caller.require_point(&s, Some(&p.id), path).await?;
        caller.require_point(&s, Some(&p.name), path).await?;
    }
    let actor = caller.actor;
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
    Ok(axum::Json(PointReportAnswer {
        epoch: latest,
        flagged,
    }))
}

/// A report may speak only for the points its credential registered: a point is bound to
/// the credential that first reported it, and one bound to another live credential is
/// refused (403) and the attempt recorded, so one gateway's credential cannot acknowledge
/// revocations for a point that is down. A point whose credential was revoked is taken
/// over by the next credential that reports it (recorded too).
pub(super) async fn speaks_only_for_its_own_points(
    s: &AppState,
    actor: &steward_store::Actor,
    body: &PointReportRequest,
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
pub(super) struct AckedEpochs(Mutex<HashMap<String, i64>>);

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

    /// How many points have acknowledged an epoch older than `latest`, and how many
    /// epochs the furthest behind is missing.
    pub(super) fn behind(&self, latest: i64) -> (usize, i64) {
        let known = self.0.lock();
        let behind = known.values().filter(|e| **e < latest).count();
        let lag = known.values().map(|e| latest - e).max().unwrap_or(0).max(0);
        (behind, lag)
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
pub(super) fn acknowledged_evidence(
    s: &AppState,
    credential: &str,
    body: &PointReportRequest,
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

pub(super) async fn statuses(s: &AppState) -> Result<PointsResponse, ApiError> {
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

pub(super) fn status(
    p: PointRow,
    now: i64,
    liveness: i64,
    policy_version: i64,
    epoch: i64,
) -> PointStatus {
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
