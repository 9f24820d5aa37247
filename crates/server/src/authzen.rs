//! The OpenID AuthZEN Authorization API 1.0: `POST /access/v1/evaluation`,
//! `POST /access/v1/evaluations` and `GET /.well-known/authzen-configuration`.
//!
//! Subjects are workloads (`type: workload`, `id`: SPIFFE ID). Resources are capabilities
//! (`type: capability`) or the transport addresses enforcement points see (`http`,
//! `grpc`, `amqp`, `queue`, `tool`), resolved through the capability catalog. Actions are
//! Steward's seven. Anything else is a deny with the reason, never an allow. Every
//! decision is queued to the evidence log without waiting for the disk; when the log
//! cannot take it (fail-closed overflow), the answer is a deny.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use steward_api::{
    AuthzenConfiguration, EvaluationItem, EvaluationRequest, EvaluationResponse,
    EvaluationsRequest, EvaluationsResponse, EvaluationsSemantic, RouteId,
};
use steward_model::Action;
use steward_policy::{AccessRequest, Decision, OwnedAddress, Target};

use crate::AppState;
use crate::auth::Decider;
use crate::error::ApiError;
use crate::extract::Json;

/// Most evaluations one batch may carry.
pub const MAX_EVALUATIONS: usize = 1_000;
/// Longest identifier accepted (a subject's or resource's `id` and `type`, an action's
/// `name`): a SPIFFE ID's own limit. Every decision is recorded with its request, so
/// what a caller sends bounds what the append-only log keeps.
pub const MAX_IDENTIFIER_BYTES: usize = 2_048;
/// Largest `context`, and largest `properties` of each object, of one evaluation, as JSON.
pub const MAX_CONTEXT_BYTES: usize = 4_096;

/// `GET /.well-known/authzen-configuration`: built from the configured issuer, as the
/// OpenID discovery document is, never from the request's `Host` or
/// `X-Forwarded-Proto` (a client must not choose where a PEP is told to send requests).
pub(crate) async fn configuration(State(s): State<AppState>) -> axum::Json<AuthzenConfiguration> {
    let base = s.tokens.config.issuer.trim_end_matches('/');
    axum::Json(AuthzenConfiguration {
        policy_decision_point: base.to_owned(),
        access_evaluation_endpoint: format!("{base}{}", RouteId::Evaluation.route().path),
        access_evaluations_endpoint: format!("{base}{}", RouteId::Evaluations.route().path),
        credentials_supported: vec![
            "steward_admin_credential".to_owned(),
            "oauth_bearer".to_owned(),
        ],
        oauth_bearer_audience: Some(s.tokens.config.issuer.clone()),
        token_endpoint: Some(s.tokens.token_endpoint()),
    })
}

pub(crate) async fn evaluation(
    caller: Decider,
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<EvaluationRequest>,
) -> Response {
    let item = EvaluationItem {
        subject: Some(req.subject),
        resource: Some(req.resource),
        action: Some(req.action),
        context: req.context,
    };
    if let Err(e) = bounded(&item, "") {
        return e.into_response();
    }
    let request_id = request_id(&headers);
    let answer = decide(
        &s,
        &caller,
        &item,
        &EvaluationItem::default(),
        request_id.as_deref(),
        grace_until(),
    )
    .await;
    with_request_id(axum::Json(answer), request_id)
}

pub(crate) async fn evaluations(
    caller: Decider,
    State(s): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<EvaluationsRequest>,
) -> Result<Response, ApiError> {
    if req.evaluations.len() > MAX_EVALUATIONS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_EVALUATIONS} evaluations per request, not {}",
            req.evaluations.len()
        )));
    }
    bounded(&req.defaults, "")?;
    let items = if req.evaluations.is_empty() {
        vec![EvaluationItem::default()]
    } else {
        req.evaluations
    };
    for (i, item) in items.iter().enumerate() {
        bounded(item, &format!("evaluations[{i}]."))?;
    }
    for (i, item) in items.iter().enumerate() {
        let missing: Vec<&str> = [
            (
                "subject",
                item.subject.is_none() && req.defaults.subject.is_none(),
            ),
            (
                "resource",
                item.resource.is_none() && req.defaults.resource.is_none(),
            ),
            (
                "action",
                item.action.is_none() && req.defaults.action.is_none(),
            ),
        ]
        .into_iter()
        .filter_map(|(k, m)| m.then_some(k))
        .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request(format!(
                "evaluations[{i}] has no {} and the request gives no default",
                missing.join(", ")
            )));
        }
    }
    let request_id = request_id(&headers);
    let semantic = req.options.evaluations_semantic;
    let mut out = Vec::with_capacity(items.len());
    // One grace for the whole batch: a full queue must not hold it once per item.
    let until = grace_until();
    for item in &items {
        let answer = decide(
            &s,
            &caller,
            item,
            &req.defaults,
            request_id.as_deref(),
            until,
        )
        .await;
        let decision = answer.decision;
        out.push(answer);
        match (semantic, decision) {
            (EvaluationsSemantic::DenyOnFirstDeny, false)
            | (EvaluationsSemantic::PermitOnFirstPermit, true) => break,
            _ => {}
        }
    }
    Ok(with_request_id(
        axum::Json(EvaluationsResponse { evaluations: out }),
        request_id,
    ))
}

/// Refuses (400) an item whose identifiers or context exceed their limits, naming the
/// field: the decision record of a request has a small fixed size.
fn bounded(item: &EvaluationItem, at: &str) -> Result<(), ApiError> {
    let id = |field: &str, v: &str| {
        if v.len() > MAX_IDENTIFIER_BYTES {
            Err(ApiError::bad_request(format!(
                "`{at}{field}` is {} bytes; at most {MAX_IDENTIFIER_BYTES} are accepted",
                v.len()
            )))
        } else {
            Ok(())
        }
    };
    let json = |field: &str, v: &Map<String, Value>| {
        let size = serde_json::to_string(v)
            .map(|t| t.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CONTEXT_BYTES {
            Err(ApiError::bad_request(format!(
                "`{at}{field}` is {size} bytes of JSON; at most {MAX_CONTEXT_BYTES} are accepted"
            )))
        } else {
            Ok(())
        }
    };
    for (name, entity) in [("subject", &item.subject), ("resource", &item.resource)] {
        if let Some(e) = entity {
            id(&format!("{name}.id"), &e.id)?;
            id(&format!("{name}.type"), &e.kind)?;
            json(&format!("{name}.properties"), &e.properties)?;
        }
    }
    if let Some(a) = &item.action {
        id("action.name", &a.name)?;
        json("action.properties", &a.properties)?;
    }
    if let Some(c) = &item.context {
        json("context", c)?;
    }
    Ok(())
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|h| h.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
}

fn with_request_id(body: impl IntoResponse, request_id: Option<String>) -> Response {
    let mut response = body.into_response();
    if let Some(id) = request_id.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// Turns an AuthZEN item (with defaults) into a Steward request, or the reason it cannot.
fn to_request(
    item: &EvaluationItem,
    defaults: &EvaluationItem,
) -> Result<AccessRequest, (Option<Action>, String)> {
    let subject = item
        .subject
        .as_ref()
        .or(defaults.subject.as_ref())
        .ok_or((None, "no subject".to_owned()))?;
    let resource = item
        .resource
        .as_ref()
        .or(defaults.resource.as_ref())
        .ok_or((None, "no resource".to_owned()))?;
    let action = item
        .action
        .as_ref()
        .or(defaults.action.as_ref())
        .ok_or((None, "no action".to_owned()))?;
    let mut context = defaults.context.clone().unwrap_or_default();
    if let Some(own) = &item.context {
        context.extend(own.clone());
    }
    if !matches!(subject.kind.as_str(), "workload" | "identity" | "spiffe") {
        return Err((
            None,
            format!(
                "subject type `{}` is not supported: Steward decides for workloads (`type: workload`, `id`: SPIFFE ID)",
                subject.kind
            ),
        ));
    }
    let parsed = Action::parse(&action.name);
    let address_action = || -> Result<Option<Action>, (Option<Action>, String)> {
        match (action.name.as_str(), parsed) {
            ("access", _) => Ok(None),
            (_, Some(a)) => Ok(Some(a)),
            (other, None) => Err((
                None,
                format!(
                    "action `{other}` is not one of invoke, read, write, publish, consume, delegate, admin (or `access` for a transport resource)"
                ),
            )),
        }
    };
    let prop = |k: &str| {
        resource
            .properties
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let need = |k: &str| {
        prop(k).ok_or_else(|| {
            (
                parsed,
                format!("resource type `{}` needs properties.{k}", resource.kind),
            )
        })
    };
    let (target, action) = match resource.kind.as_str() {
        "capability" => match parsed {
            Some(a) => (Target::Capability(resource.id.clone()), Some(a)),
            None => {
                return Err((
                    None,
                    format!(
                        "action `{}` is not one of invoke, read, write, publish, consume, delegate, admin",
                        action.name
                    ),
                ));
            }
        },
        "http" => {
            // Decided on the path's normal form, as every enforcement point decides it.
            let raw = prop("path").unwrap_or_else(|| resource.id.clone());
            let address = steward_enforce::http_address(&need("method")?, &raw)
                .map_err(|unreadable| (parsed, unreadable.reason))?;
            (Target::Address(address), address_action()?)
        }
        "grpc" => {
            let full = resource.id.trim_start_matches('/');
            let (service, method) = match (prop("service"), prop("method")) {
                (Some(s), Some(m)) => (s, m),
                _ => full
                    .split_once('/')
                    .map(|(s, m)| (s.to_owned(), m.to_owned()))
                    .ok_or_else(|| {
                        (
                            parsed,
                            "grpc resources name `package.Service/Method` in `id`".to_owned(),
                        )
                    })?,
            };
            (
                Target::Address(OwnedAddress::Grpc { service, method }),
                address_action()?,
            )
        }
        "amqp" => (
            Target::Address(OwnedAddress::Amqp {
                vhost: prop("vhost").unwrap_or_else(|| "/".into()),
                exchange: need("exchange")?,
                routing_key: prop("routing_key").unwrap_or_else(|| resource.id.clone()),
            }),
            address_action()?,
        ),
        "queue" => (
            Target::Address(OwnedAddress::Queue {
                name: resource.id.clone(),
            }),
            address_action()?,
        ),
        "tool" => (
            Target::Address(OwnedAddress::Tool {
                name: resource.id.clone(),
            }),
            address_action()?,
        ),
        other => {
            return Err((
                parsed,
                format!(
                    "resource type `{other}` is not supported: use capability, http, grpc, amqp, queue or tool"
                ),
            ));
        }
    };
    Ok(AccessRequest {
        principal: subject.id.clone(),
        target,
        action,
        context,
        at: time::OffsetDateTime::now_utc(),
    })
}

/// Until when a request's decision records may wait for room in a full evidence queue.
fn grace_until() -> tokio::time::Instant {
    tokio::time::Instant::now() + crate::evidence::RECORD_GRACE
}

async fn decide(
    s: &AppState,
    caller: &Decider,
    item: &EvaluationItem,
    defaults: &EvaluationItem,
    request_id: Option<&str>,
    grace_until: tokio::time::Instant,
) -> EvaluationResponse {
    let started = std::time::Instant::now();
    let request = to_request(item, defaults);
    let mut decision = match (&request, s.engine()) {
        (Err((action, reason)), engine) => Decision {
            allowed: false,
            capability: None,
            action: *action,
            plane: None,
            policies: Vec::new(),
            reasons: vec![reason.clone()],
            exceptions: Vec::new(),
            errors: Vec::new(),
            policy_version: engine.map(|e| e.version()).unwrap_or(0),
        },
        (Ok(_), Err(why)) => Decision {
            allowed: false,
            capability: None,
            action: None,
            plane: None,
            policies: Vec::new(),
            reasons: vec![why],
            exceptions: Vec::new(),
            errors: Vec::new(),
            policy_version: 0,
        },
        (Ok(r), Ok(engine)) => engine.decide(r),
    };
    if !decision.errors.is_empty() {
        tracing::warn!(errors = ?decision.errors, "policy evaluation error; denied");
    }
    let principal = item
        .subject
        .as_ref()
        .or(defaults.subject.as_ref())
        .map(|e| e.id.clone());
    let event = steward_enforce::decision_event(
        &decision,
        request.as_ref().ok(),
        principal,
        &format!("authzen:{}", caller.0.name),
        request_id,
    );
    let event_id = event.id.clone();
    if let Err(e) = s
        .evidence
        .submit_within(
            vec![event],
            grace_until.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await
    {
        tracing::error!(error = %e, "a decision could not be queued for the evidence log; denied");
        decision.allowed = false;
        decision.reasons.push(format!(
            "the evidence log cannot take the decision record ({e}); denied"
        ));
    }
    let outcome = match (&request, decision.allowed) {
        (_, true) => "allow",
        (Err(_), false) => "malformed",
        (Ok(_), false) => "deny",
    };
    s.metrics
        .authzen
        .observe(outcome, started.elapsed().as_secs_f64());
    EvaluationResponse {
        decision: decision.allowed,
        context: json!({
            "id": event_id,
            "policy_version": decision.policy_version,
            "capability": decision.capability,
            "action": decision.action,
            "policies": decision.policies,
            "reasons": decision.reasons,
            "exceptions": decision.exceptions,
            "reason_admin": {"en": decision.reasons.join("; ")},
        }),
    }
}
