//! Decision endpoints for gateways and brokers that ask over HTTP:
//!
//! - nginx `auth_request`: `GET /nginx/auth` with the original method and URI in
//!   `X-Original-Method` / `X-Original-URI` (set by the snippet in docs/enforcement.md);
//!   answers 200 (with the verified identity in `X-Steward-Identity`), 401 or 403.
//! - RabbitMQ `rabbitmq_auth_backend_http`: `/rabbitmq/{user,vhost,resource,topic}`
//!   (GET query or POST form), answering `allow` / `deny` in the body. The workload's
//!   token is the AMQP password and its SPIFFE ID the username.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use steward_enforce::trace::TraceContext;
use steward_enforce::{
    Carried, Challenge, Credential, EnforcementPoint, Origin, Outcome, Presented, Seen, Unreadable,
    Verdict, request_address,
};
use steward_model::Action;
use steward_policy::{OwnedAddress, Target};
use steward_token::Proof;

use crate::config::AuthConfig;
use crate::credential::{IDENTITY_HEADER, header_field};
use crate::request_headers::HttpHeaders;

/// Most broker sessions remembered (one per username); expired ones are pruned first.
const MAX_SESSIONS: usize = 100_000;

/// State of the decision endpoints.
pub struct AuthEndpoints {
    config: AuthConfig,
    nginx: EnforcementPoint,
    rabbitmq: EnforcementPoint,
    /// username → (token, expiry): the broker asks about resources by username only, so
    /// the token a user logged in with is kept until it expires and re-validated on every
    /// check (expiry and revocation apply mid-connection, on the next channel).
    sessions: Mutex<HashMap<String, (String, i64)>>,
}

impl AuthEndpoints {
    pub fn new(config: AuthConfig, point: &EnforcementPoint) -> Self {
        Self {
            config,
            nginx: point.sibling("nginx"),
            rabbitmq: point.sibling("rabbitmq"),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn router(self: Arc<Self>) -> Router {
        let mut router = Router::new();
        if self.config.nginx_audience.is_some() {
            router = router.route("/nginx/auth", any(nginx_auth));
        }
        if self.config.rabbitmq_audience.is_some() {
            router = router
                .route("/rabbitmq/user", get(rabbit_user).post(rabbit_user))
                .route("/rabbitmq/vhost", get(rabbit_vhost).post(rabbit_vhost))
                .route(
                    "/rabbitmq/resource",
                    get(rabbit_resource).post(rabbit_resource),
                )
                .route("/rabbitmq/topic", get(rabbit_topic).post(rabbit_topic));
        }
        let probes = crate::health::routes(self.nginx.source().clone(), self.nginx.log().clone());
        router
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/status", get(status))
            .with_state(self)
            .merge(probes)
    }
}

/// `GET /status`: the bundle in force (policy version, age, staleness) and the decision
/// log's counters, for operators and drift checks.
async fn status(State(s): State<Arc<AuthEndpoints>>) -> Response {
    let source = s.nginx.source().status();
    let refusing = s.nginx.log().refusing();
    let code = if source.stale || refusing.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        axum::Json(json!({
            "point": s.nginx.name().split_once(':').map_or("", |(_, n)| n),
            "environment": s.nginx.environment(),
            "bundle": source,
            "decisions": s.nginx.log().stats(),
            "records_refused": refusing,
        })),
    )
        .into_response()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The client certificate nginx received, as the snippet passes it
/// (`$ssl_client_escaped_cert`, URL-escaped PEM; the header is left out when the
/// connection had none, and the snippet's value replaces any the client sent).
fn client_certificate(headers: &HeaderMap) -> steward_enforce::PeerCertificate<'_> {
    use steward_enforce::PeerCertificate;
    let mut values = headers.get_all(CLIENT_CERT_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => PeerCertificate::None,
        (Some(v), None) => v
            .to_str()
            .map_or(PeerCertificate::Unreadable, PeerCertificate::EscapedPem),
        (Some(_), Some(_)) => PeerCertificate::Unreadable,
    }
}

/// The header the nginx snippet carries the client certificate in.
const CLIENT_CERT_HEADER: &str = "x-ssl-client-cert";

async fn nginx_auth(State(s): State<Arc<AuthEndpoints>>, headers: HeaderMap) -> Response {
    let Some(audience) = s.config.nginx_audience.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (Some(method), Some(uri)) = (
        headers.get("x-original-method"),
        headers.get("x-original-uri"),
    ) else {
        tracing::error!(
            "nginx did not send X-Original-Method and X-Original-URI: the auth_request location is misconfigured (see docs/enforcement.md); refusing"
        );
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "misconfigured", "reason": "X-Original-Method and X-Original-URI are required"})),
        )
            .into_response();
    };
    let trace = TraceContext::continue_or_start(header_text(&headers, "traceparent"));
    let request_headers = HttpHeaders(&headers);
    let seen = Seen {
        received: std::time::Instant::now(),
        token: None,
        proof: Proof::None,
        audience,
        target: match (method.to_str(), uri.to_str()) {
            (Ok(method), Ok(uri)) => {
                // nginx passes the client's headers on to the subrequest: a gRPC call is
                // decided as its gRPC method, as at every layer.
                request_address(method, uri, header_text(&headers, "content-type"), |h| {
                    headers.contains_key(h)
                })
                .map(Target::Address)
            }
            // Bytes a header may carry but a request line may not: nothing to decide on.
            _ => Err(Unreadable {
                address: format!(
                    "http {} {}",
                    String::from_utf8_lossy(method.as_bytes()).escape_debug(),
                    String::from_utf8_lossy(uri.as_bytes()).escape_debug()
                )
                .chars()
                .take(300)
                .collect(),
                reason: "the original method or URI holds bytes that are not visible ASCII".into(),
            }),
        },
        action: None,
        correlation_id: Some(&trace.trace_id),
        context: Default::default(),
        // nginx passes the client's headers (and those its configuration sets) on.
        carried: Carried {
            headers: Some(&request_headers),
            message: None,
            arguments: None,
        },
    };
    // nginx passes the client's `Authorization` and `DPoP` headers on to the subrequest
    // as sent (repeated ones too); the snippet adds where the request was sent.
    let presented = Presented {
        authorization: header_field(&headers, header::AUTHORIZATION.as_str()),
        dpop: header_field(&headers, "dpop"),
        method: method.to_str().unwrap_or_default(),
        origin: Origin::Request {
            scheme: header_text(&headers, "x-original-scheme"),
            host: header_text(&headers, "x-original-host"),
        },
        target: uri.to_str().unwrap_or_default(),
        origin_hint: "the nginx snippet must send `X-Original-Scheme` and `X-Original-Host` (deploy/nginx/steward-auth-location.conf)",
        certificate: client_certificate(&headers),
    };
    let read = s.nginx.read_credential(&presented);
    let (verdict, challenge) = s.nginx.check_credential(&read, seen);
    let mut answer = http_answer(&verdict, challenge, &trace);
    if verdict.outcome == Outcome::Malformed {
        // nginx passes on only 401 and 403 from an auth subrequest (anything else becomes
        // a 500), so an unreadable request is forbidden; the body says why.
        *answer.status_mut() = StatusCode::FORBIDDEN;
    }
    answer
}

/// The HTTP answer of a verdict for a gateway asking on a request's behalf: 200 with the
/// identity and trace headers to forward, or the refusal status with a JSON reason (and
/// for a 401, `challenge`).
pub(crate) fn http_answer(
    verdict: &Verdict,
    challenge: Challenge,
    trace: &TraceContext,
) -> Response {
    let status = StatusCode::from_u16(verdict.outcome.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = (
        status,
        axum::Json(json!({
            "decision": verdict.allowed(),
            "reason": verdict.reason(),
            "decision_id": verdict.event_id,
            "trace_id": trace.trace_id,
        })),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&verdict.event_id) {
        headers.insert("x-steward-decision-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&trace.child().to_string()) {
        headers.insert("traceparent", v);
    }
    match verdict.outcome {
        Outcome::Allow => {
            if let Some(v) = verdict
                .principal
                .as_deref()
                .and_then(|p| HeaderValue::from_str(p).ok())
            {
                headers.insert(IDENTITY_HEADER, v);
            }
        }
        Outcome::Unauthenticated => {
            // nginx passes a 401's challenge on to the client.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge.header_value()),
            );
        }
        _ => {}
    }
    response
}

#[derive(Deserialize)]
struct UserQuery {
    username: String,
    password: Option<String>,
}

#[derive(Deserialize)]
struct VhostQuery {
    username: String,
    vhost: String,
}

#[derive(Deserialize)]
struct ResourceQuery {
    username: String,
    vhost: String,
    resource: String,
    name: String,
    permission: String,
    routing_key: Option<String>,
}

fn allow() -> Response {
    "allow".into_response()
}

fn deny() -> Response {
    "deny".into_response()
}

impl AuthEndpoints {
    /// The token of a logged-in broker user, if its session is still live.
    fn session(&self, username: &str) -> Option<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let sessions = self.sessions.lock();
        sessions
            .get(username)
            .filter(|(_, exp)| *exp > now)
            .map(|(t, _)| t.clone())
    }

    /// Forgets every session whose token is now revoked; returns (username, why).
    pub(crate) fn forget_revoked_sessions(&self) -> Vec<(String, String)> {
        let Ok(enforcer) = self.rabbitmq.source().current() else {
            // Stale or unloaded: every check is refused anyway.
            return Vec::new();
        };
        let audience = self.config.rabbitmq_audience.as_deref().unwrap_or_default();
        let expect = steward_token::Expectations {
            audience,
            environment: Some(self.rabbitmq.environment()),
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            proof: Proof::None,
        };
        let mut sessions = self.sessions.lock();
        let mut revoked = Vec::new();
        sessions.retain(
            |user, (token, _)| match enforcer.validator().validate(token, &expect) {
                Err(steward_token::TokenError::Revoked(why)) => {
                    revoked.push((user.clone(), why));
                    false
                }
                _ => true,
            },
        );
        revoked
    }

    fn remember(&self, username: &str, token: &str, exp: i64) {
        let mut sessions = self.sessions.lock();
        if sessions.len() >= MAX_SESSIONS {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            sessions.retain(|_, (_, e)| *e > now);
            if sessions.len() >= MAX_SESSIONS {
                tracing::warn!(
                    "the broker session table is full of live sessions; refusing new logins"
                );
                return;
            }
        }
        sessions.insert(username.to_owned(), (token.to_owned(), exp));
    }

    fn rabbit_seen<'a>(
        &'a self,
        token: &'a str,
        target: Target,
        action: Option<Action>,
    ) -> Seen<'a> {
        Seen {
            received: std::time::Instant::now(),
            token: Some(token),
            proof: Proof::None,
            audience: self.config.rabbitmq_audience.as_deref().unwrap_or_default(),
            target: Ok(target),
            action,
            correlation_id: None,
            context: Default::default(),
            // A broker's resource and topic checks carry no headers: only the token's
            // `ctx` and the catalog's fixed values reach policy here.
            carried: Carried::default(),
        }
    }
}

/// A broker login's token (its password), as a credential: a bearer token, since the
/// broker reports no client certificate and no proof.
fn bearer(token: &str) -> Credential<'_> {
    Credential::Bearer {
        token,
        certificate: None,
    }
}

async fn rabbit_user(State(s): State<Arc<AuthEndpoints>>, Form(q): Form<UserQuery>) -> Response {
    let audience = s.config.rabbitmq_audience.as_deref().unwrap_or_default();
    let Some(token) = q.password.as_deref().filter(|p| !p.is_empty()) else {
        tracing::info!(username = %q.username, "broker login refused: no token as the password");
        return deny();
    };
    match s.rabbitmq.authenticate_credential(&bearer(token), audience) {
        Ok(claims) if claims.sub == q.username => {
            s.remember(&q.username, token, claims.exp);
            allow()
        }
        Ok(claims) => {
            tracing::info!(username = %q.username, subject = %claims.sub, "broker login refused: the username is not the token's subject");
            deny()
        }
        Err(why) => {
            tracing::info!(username = %q.username, reason = %why, "broker login refused");
            deny()
        }
    }
}

async fn rabbit_vhost(State(s): State<Arc<AuthEndpoints>>, Form(q): Form<VhostQuery>) -> Response {
    // Access to a vhost is the login itself; every resource in it is decided separately.
    match s.session(&q.username) {
        Some(token) => match s.rabbitmq.authenticate_credential(
            &bearer(&token),
            s.config.rabbitmq_audience.as_deref().unwrap_or_default(),
        ) {
            Ok(_) => allow(),
            Err(why) => {
                tracing::info!(username = %q.username, vhost = %q.vhost, reason = %why, "vhost refused");
                deny()
            }
        },
        None => deny(),
    }
}

async fn rabbit_resource(
    State(s): State<Arc<AuthEndpoints>>,
    Form(q): Form<ResourceQuery>,
) -> Response {
    let Some(token) = s.session(&q.username) else {
        return deny();
    };
    let checks: Vec<(Target, Option<Action>)> = match (q.resource.as_str(), q.permission.as_str()) {
        ("queue", "read") => vec![(
            Target::Address(OwnedAddress::Queue {
                name: q.name.clone(),
            }),
            None,
        )],
        ("queue", _) => {
            // Declaring (configure) or binding (write) a queue administers its capability.
            let Ok(enforcer) = s.rabbitmq.source().current() else {
                return deny();
            };
            let resolved = enforcer
                .engine()
                .index()
                .lookup(&steward_model::Address::Queue { name: &q.name });
            match resolved {
                Some(r) => vec![(
                    Target::Capability(r.capability.to_string()),
                    Some(Action::Admin),
                )],
                None => vec![(
                    Target::Address(OwnedAddress::Queue {
                        name: q.name.clone(),
                    }),
                    Some(Action::Admin),
                )],
            }
        }
        ("exchange", permission) => {
            // The broker checks an exchange without the routing key: allow if the policy
            // allows some capability mapped on it; topic exchanges are then checked per
            // routing key (`/rabbitmq/topic`).
            let Ok(enforcer) = s.rabbitmq.source().current() else {
                return deny();
            };
            let on = enforcer.engine().index().on_exchange(&q.vhost, &q.name);
            if on.is_empty() {
                tracing::info!(vhost = %q.vhost, exchange = %q.name, "exchange refused: no capability is mapped on it");
                let seen = s.rabbit_seen(
                    &token,
                    Target::Address(OwnedAddress::Amqp {
                        vhost: q.vhost.clone(),
                        exchange: q.name.clone(),
                        routing_key: String::new(),
                    }),
                    None,
                );
                s.rabbitmq.check(&seen);
                return deny();
            }
            on.into_iter()
                .map(|r| {
                    let action = match permission {
                        "write" => r.action,
                        _ => Action::Admin,
                    };
                    (Target::Capability(r.capability.to_string()), Some(action))
                })
                .collect()
        }
        _ => return deny(),
    };
    for (target, action) in checks {
        if s.rabbitmq
            .check(&s.rabbit_seen(&token, target, action))
            .allowed()
        {
            return allow();
        }
    }
    deny()
}

async fn rabbit_topic(
    State(s): State<Arc<AuthEndpoints>>,
    Form(q): Form<ResourceQuery>,
) -> Response {
    let Some(token) = s.session(&q.username) else {
        return deny();
    };
    let action = match q.permission.as_str() {
        "write" => None,
        "read" => Some(Action::Consume),
        _ => return deny(),
    };
    let target = Target::Address(OwnedAddress::Amqp {
        vhost: q.vhost.clone(),
        exchange: q.name.clone(),
        routing_key: q.routing_key.clone().unwrap_or_default(),
    });
    if s.rabbitmq
        .check(&s.rabbit_seen(&token, target, action))
        .allowed()
    {
        allow()
    } else {
        deny()
    }
}
