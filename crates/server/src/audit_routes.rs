//! Evidence endpoints: search, verify, stats, and ingest of foreign decision records.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use steward_model::timestamp;

use steward_api::{
    AuditStats, FlaggedRecord, HourOfDecisions, IngestAnswer, StoredEvent, VerifyAnswer,
};
use steward_audit::{CHECKPOINTS_FORMAT, CheckpointsExport, Event, EventKind, Record, SCHEMA};
use steward_governance::Diagnostic;
use steward_model::Role;
use steward_store::EvidenceFilter;

use crate::AppState;
use crate::auth::{Caller, Ingest};
use crate::error::ApiError;
use crate::evidence::EvidenceError;
use crate::extract::{Json, Query};
use crate::point_auth::ReportCaller;

/// Most records one ingest request may carry.
pub const MAX_INGEST_RECORDS: usize = 1_000;
/// Largest size of one ingested record, as sent: what enforcement points keep their
/// records under.
pub const MAX_INGEST_RECORD_BYTES: usize = steward_enforce::MAX_RECORD_BYTES;
/// Largest ingest request body: a full batch of the largest records, plus framing.
pub const MAX_INGEST_BODY_BYTES: usize = MAX_INGEST_RECORDS * MAX_INGEST_RECORD_BYTES + 64 * 1024;
const MAX_EVENTS_PAGE: i64 = 1_000;

fn require_reader(caller: &Caller) -> Result<(), ApiError> {
    match caller.role() {
        Role::CentralAdmin | Role::Auditor => Ok(()),
        other => Err(ApiError::forbidden(format!(
            "reading the evidence log needs the central-admin or auditor role; this credential is {other}"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    principal: Option<String>,
    plane: Option<String>,
    kind: Option<String>,
    action: Option<String>,
    capability: Option<String>,
    decision: Option<String>,
    correlation_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
    order: Option<String>,
}

/// A time bound from a query, rewritten in the stored form so the store can compare it
/// with stored times as text.
fn time_bound(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    v.map(|t| {
        timestamp::normalize(&t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{field}` `{t}` is not an RFC 3339 time like 2026-11-23T10:00:00Z"
            ))
        })
    })
    .transpose()
}

pub(crate) async fn events(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<axum::Json<Vec<StoredEvent>>, ApiError> {
    require_reader(&caller)?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=MAX_EVENTS_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "`limit` must be between 1 and {MAX_EVENTS_PAGE}, not {n}"
            )));
        }
    };
    if let Some(k) = &q.kind
        && EventKind::parse(k).is_none()
    {
        let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(ApiError::bad_request(format!(
            "`kind` `{k}` is not one of {}",
            all.join(", ")
        )));
    }
    if let Some(d) = &q.decision
        && d != "allow"
        && d != "deny"
    {
        return Err(ApiError::bad_request(format!(
            "`decision` must be `allow` or `deny`, not `{d}`"
        )));
    }
    let since = time_bound("since", q.since)?;
    let until = time_bound("until", q.until)?;
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "`order` must be `asc` or `desc`, not `{o}`"
            )));
        }
    };
    let filter = EvidenceFilter {
        principal: q.principal,
        plane: q.plane,
        kind: q.kind,
        action: q.action,
        capability: q.capability,
        outcome: q.decision,
        correlation_id: q.correlation_id,
        since,
        until,
        after_seq: q.after,
        newest_first,
        limit,
    };
    Ok(axum::Json(s.store.evidence_search(&filter).await?))
}

pub(crate) async fn verify(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<axum::Json<VerifyAnswer>, ApiError> {
    require_reader(&caller)?;
    let report = s.store.verify_evidence_trusting(s.tokens.kek()).await?;
    let explanations = report.problems.iter().map(ToString::to_string).collect();
    Ok(axum::Json(VerifyAnswer {
        ok: report.ok(),
        report,
        explanations,
    }))
}

/// `GET /admin/v1/audit/checkpoints`: the checkpoint keys' public halves, every signed
/// checkpoint and every signed retention prune — what to keep elsewhere so that a copy
/// of the log can be verified without trusting this database.
pub(crate) async fn checkpoints(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<axum::Json<CheckpointsExport>, ApiError> {
    require_reader(&caller)?;
    // Only the keys the key-encryption key vouches for: the one to keep elsewhere.
    let trusted = s.store.trusted_checkpoint_keys(s.tokens.kek()).await?;
    let keys = s
        .store
        .checkpoint_keys()
        .await?
        .into_iter()
        .filter(|k| trusted.contains(&k.public_key))
        .collect();
    Ok(axum::Json(CheckpointsExport {
        format: CHECKPOINTS_FORMAT.to_owned(),
        keys,
        checkpoints: s.store.checkpoints().await?,
        prunes: s.store.prunes().await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// Most records one page of the chain carries.
const MAX_CHAIN_PAGE: i64 = 10_000;

/// `GET /admin/v1/audit/chain`: records exactly as hashed (`seq`, `prev_hash`, `hash`,
/// the canonical `body`), after `after`, for an export that verifies offline.
pub(crate) async fn chain(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<ChainQuery>,
) -> Result<axum::Json<Vec<Record>>, ApiError> {
    require_reader(&caller)?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(format!(
            "`after` must be 0 or more, not {after}"
        )));
    }
    let limit = match q.limit {
        None => 1_000,
        Some(n) if (1..=MAX_CHAIN_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "`limit` must be between 1 and {MAX_CHAIN_PAGE}, not {n}"
            )));
        }
    };
    Ok(axum::Json(s.store.evidence_records(after, limit).await?))
}

pub(crate) async fn stats(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<axum::Json<AuditStats>, ApiError> {
    require_reader(&caller)?;
    let head = s.store.evidence_head().await?;
    Ok(axum::Json(AuditStats {
        head_seq: head.seq,
        head_hash: head.hash,
        checkpoints: s.store.checkpoints().await?.len(),
        ingest_refused: s.inner.ingest_refused.load(Ordering::Relaxed),
        evidence_lost: s.evidence.lost(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestRequest {
    /// Kept as received and decoded one by one, so each bad record is named by its index
    /// and no intermediate JSON tree is built.
    records: Vec<Box<serde_json::value::RawValue>>,
}

/// Marks the records that lack a field their plane's `required_audit_fields` asks for
/// (the plane is the principal's registered one — a record cannot choose a laxer plane —
/// else the record's own): they are kept — refusing would lose the decision — but carry
/// `details.missing_audit_fields`, and are returned.
fn flag_missing_audit_fields(s: &AppState, events: &mut [Event]) -> Vec<FlaggedRecord> {
    let Ok(engine) = s.engine() else {
        return Vec::new();
    };
    let mut flagged = Vec::new();
    for (index, e) in events.iter_mut().enumerate() {
        let plane = e
            .principal
            .as_deref()
            .and_then(|p| engine.plane_of(p))
            .map(str::to_owned)
            .or_else(|| e.plane.clone());
        let missing: Vec<String> = engine
            .required_audit_fields(plane.as_deref())
            .iter()
            .filter(|f| !e.carries(f))
            .cloned()
            .collect();
        if missing.is_empty() {
            continue;
        }
        match &mut e.details {
            serde_json::Value::Object(d) => {
                d.insert("missing_audit_fields".into(), missing.clone().into());
            }
            details => {
                // Details that are not an object are kept whole, beside the mark.
                let sent = std::mem::take(details);
                *details = if sent.is_null() {
                    serde_json::json!({ "missing_audit_fields": missing })
                } else {
                    serde_json::json!({ "sent": sent, "missing_audit_fields": missing })
                };
            }
        }
        flagged.push(FlaggedRecord { index, missing });
    }
    flagged
}

/// How far from the control plane's clock a record's time may be.
#[derive(Clone, Copy)]
struct Window {
    past: std::time::Duration,
    future: std::time::Duration,
}

/// Checks one submitted record and normalises its provenance to `<kind>:<credential>`.
fn check_record(
    raw: &serde_json::value::RawValue,
    kind: &str,
    source: &str,
    now: time::OffsetDateTime,
    window: Window,
) -> Result<Event, String> {
    // Bounded as sent; the stored form omits empty fields and adds only the provenance.
    let size = raw.get().len();
    if size > MAX_INGEST_RECORD_BYTES {
        return Err(format!(
            "record is {size} bytes; at most {MAX_INGEST_RECORD_BYTES} are accepted"
        ));
    }
    let mut e: Event =
        serde_json::from_str(raw.get()).map_err(|e| format!("not a {SCHEMA} event: {e}"))?;
    if e.schema != SCHEMA {
        return Err(format!("`schema` must be `{SCHEMA}`, not `{}`", e.schema));
    }
    if e.kind != EventKind::AccessDecision {
        return Err(format!(
            "only `access.decision` records may be ingested, not `{}`",
            e.kind
        ));
    }
    if e.id.trim().is_empty() || e.id.len() > 128 {
        return Err("`id` must be 1-128 characters".into());
    }
    if e.principal.as_deref().is_none_or(str::is_empty) {
        return Err("`principal` (the SPIFFE ID decided about) is required".into());
    }
    if e.decision.outcome.is_none() {
        return Err("`decision.outcome` (`allow` or `deny`) is required".into());
    }
    let at = timestamp::parse(&e.time)
        .ok_or_else(|| format!("`time` `{}` is not an RFC 3339 time", e.time))?;
    let (drift, allowed) = if at > now {
        (at - now, window.future)
    } else {
        (now - at, window.past)
    };
    if drift > allowed {
        return Err(format!(
            "`time` `{}` is {}s {} the control plane's clock; at most {}s is accepted",
            e.time,
            drift.whole_seconds(),
            if at > now { "ahead of" } else { "behind" },
            allowed.as_secs()
        ));
    }
    // Kept in the stored form, so searches by time find it like any other event.
    e.time = timestamp::format(at);
    // Provenance is the credential's, never the record's own claim.
    e.source = format!("{kind}:{source}");
    if e.enforcement_point.is_none() {
        e.enforcement_point = Some(source.to_owned());
    }
    Ok(e)
}

pub(crate) async fn ingest(
    Ingest(actor): Ingest,
    State(s): State<AppState>,
    Json(req): Json<IngestRequest>,
) -> Result<(StatusCode, axum::Json<IngestAnswer>), ApiError> {
    let skew = s.inner.ingest_max_skew;
    take_records(&s, &actor.name, req, "ingest", skew).await
}

/// How far in the past an enforcement point's buffered decision record may be: it kept
/// deciding (and queueing) while the control plane was unreachable.
pub const ENFORCEMENT_MAX_RECORD_AGE: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

/// `POST /enforcement/v1/decisions`: decision records of Steward's own enforcement points.
pub(crate) async fn enforcement_decisions(
    ReportCaller(caller): ReportCaller,
    State(s): State<AppState>,
    Json(req): Json<IngestRequest>,
) -> Result<(StatusCode, axum::Json<IngestAnswer>), ApiError> {
    if caller.grant.is_some() {
        // An identity ships records only of the points it speaks for.
        #[derive(Deserialize)]
        struct Named {
            enforcement_point: Option<String>,
        }
        let path = steward_api::RouteId::Decisions.route().path;
        let mut seen = std::collections::BTreeSet::new();
        for raw in &req.records {
            let point = serde_json::from_str::<Named>(raw.get())
                .ok()
                .and_then(|n| n.enforcement_point);
            if seen.insert(point.clone()) {
                caller.require_point(&s, point.as_deref(), path).await?;
            }
        }
    }
    let actor = caller.actor;
    let past = ENFORCEMENT_MAX_RECORD_AGE.max(s.inner.ingest_max_skew);
    take_records(&s, &actor.name, req, "enforcement", past).await
}

/// Checks and chains a batch of records, all or nothing. Records may be up to `max_past`
/// old and at most the ingest skew ahead of the control plane's clock.
async fn take_records(
    s: &AppState,
    credential: &str,
    req: IngestRequest,
    source_kind: &str,
    max_past: std::time::Duration,
) -> Result<(StatusCode, axum::Json<IngestAnswer>), ApiError> {
    let n = req.records.len();
    if n == 0 || n > MAX_INGEST_RECORDS {
        s.inner
            .ingest_refused
            .fetch_add(n as u64, Ordering::Relaxed);
        return Err(ApiError::bad_request(format!(
            "send 1-{MAX_INGEST_RECORDS} records per request, not {n}"
        )));
    }
    let now = time::OffsetDateTime::now_utc();
    let mut events = Vec::with_capacity(n);
    let mut problems = Vec::new();
    for (i, raw) in req.records.into_iter().enumerate() {
        let window = Window {
            past: max_past,
            future: s.inner.ingest_max_skew,
        };
        match check_record(&raw, source_kind, credential, now, window) {
            Ok(e) => events.push(e),
            Err(message) => problems.push(Diagnostic {
                file: format!("records[{i}]"),
                line: 0,
                message,
            }),
        }
    }
    if !problems.is_empty() {
        // All or nothing: a batch with a bad record is refused whole, and counted.
        s.inner
            .ingest_refused
            .fetch_add(n as u64, Ordering::Relaxed);
        tracing::warn!(source = %credential, refused = n, bad = problems.len(), "ingested evidence refused");
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_records",
            message: format!(
                "{} of {n} records are invalid; none was chained",
                problems.len()
            ),
            diagnostics: problems,
        });
    }
    let flagged = flag_missing_audit_fields(s, &mut events);
    if !flagged.is_empty() {
        tracing::warn!(source = %credential, flagged = flagged.len(), "ingested records lack fields their plane's required_audit_fields asks for; chained and marked");
    }
    let seqs = s.evidence.record(events).await.map_err(|e| match e {
        EvidenceError::Overloaded(_) | EvidenceError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "evidence_unavailable",
            e.to_string(),
        ),
    })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(IngestAnswer {
            accepted: seqs.len(),
            seqs,
            flagged,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimelineQuery {
    hours: Option<i64>,
}

/// `GET /admin/v1/audit/timeline?hours=24`: access decisions per hour (readers).
pub(crate) async fn timeline(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<TimelineQuery>,
) -> Result<axum::Json<Vec<HourOfDecisions>>, ApiError> {
    require_reader(&caller)?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=24 * 31).contains(&hours) {
        return Err(ApiError::bad_request(
            "`hours` must be between 1 and 744 (31 days)",
        ));
    }
    let since = timestamp::format(time::OffsetDateTime::now_utc() - time::Duration::hours(hours));
    s.store.roll_up_usage(i64::MAX).await?;
    Ok(axum::Json(
        s.store
            .decisions_per_hour(&since)
            .await?
            .into_iter()
            .map(|(hour, allowed, denied)| HourOfDecisions {
                hour,
                allowed,
                denied,
            })
            .collect(),
    ))
}
