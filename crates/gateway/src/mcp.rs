//! The MCP enforcement point: in front of one MCP server on the Streamable HTTP
//! transport. It validates the agent's token (its audience must be this point's resource
//! URL), then decides each JSON-RPC message on its own: a `tools/call` through the
//! catalog's `mcp` mapping (refused calls never reach the server and are answered with a
//! tool result marked `isError`, the reason in its text), a `tools/list` answer filtered to
//! the tools the caller may call. Methods it does not decide are refused, never passed
//! through; what it cannot parse is a JSON-RPC parse error. The agent's token is never
//! forwarded: the server sees the verified identity header instead.

mod messages;
mod sse;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::{Value, json};
use steward_enforce::trace::TraceContext;
use steward_enforce::{
    Carried, Challenge, Credential, EnforcementPoint, Origin, PeerCertificate, Presented, Seen,
    Unreadable,
};
use steward_listen::tls::ClientCertificate;
use steward_model::McpKind;
use steward_policy::{OwnedAddress, Target};
use steward_token::Proof;

use crate::config::McpConfig;
use crate::credential::{IDENTITY_HEADER, header_field};
use crate::request_headers::HttpHeaders;

pub use messages::{Decided, parse_error};

/// A response that ends the request here, boxed so the allowed path's `Result` stays small.
type Refusal = Box<Response>;

/// The header a Streamable HTTP session is named by.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Sessions remembered at once; the oldest is forgotten first (its agent starts a new one).
pub const MAX_SESSIONS: usize = 100_000;

/// One `[[mcp]]` point's shared state.
pub struct McpPoint {
    config: McpConfig,
    point: EnforcementPoint,
    http: reqwest::Client,
    /// Which identity opened each session: another one presenting it is refused.
    sessions: Mutex<HashMap<String, (String, std::time::Instant)>>,
}

/// The agent a request's token was verified for.
pub(crate) struct Caller {
    token: String,
    /// What the token was shown to be bound to, so each message is validated with it.
    bound: Bound,
    pub(crate) principal: String,
}

/// The proof of possession a request showed, kept past the request's credential: the
/// DPoP proof is spent once recorded (checking it again would refuse it as a replay), so
/// only the key's thumbprint it proved is kept.
enum Bound {
    None,
    Dpop(String),
    Certificate(String),
}

impl Bound {
    fn of(credential: &Credential<'_>) -> Self {
        match credential.proof() {
            Proof::None => Self::None,
            Proof::Dpop(jkt) => Self::Dpop(jkt.to_owned()),
            Proof::ClientCert(thumbprint) => Self::Certificate(thumbprint.to_owned()),
        }
    }

    fn proof(&self) -> Proof<'_> {
        match self {
            Self::None => Proof::None,
            Self::Dpop(jkt) => Proof::Dpop(jkt),
            Self::Certificate(thumbprint) => Proof::ClientCert(thumbprint),
        }
    }
}

impl McpPoint {
    /// A point for `config`, deciding with `point`.
    pub fn new(config: McpConfig, point: EnforcementPoint, http: reqwest::Client) -> Self {
        Self {
            config,
            point,
            http,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The routes: JSON-RPC at the resource's path, its RFC 9728 metadata beside.
    pub fn router(self: Arc<Self>) -> Router {
        let path = self.config.path.clone();
        Router::new()
            .route(&metadata_path(&path), get(metadata))
            .route(
                &path,
                get(handle_stream).post(handle_post).delete(handle_stream),
            )
            .with_state(self)
    }

    /// The scheme, host and port agents reach this point at (`resource` without its
    /// path): where the metadata is served and what a DPoP proof's `htu` starts with.
    fn origin(&self) -> &str {
        let r = &self.config.resource;
        let origin_end = r
            .split_once("://")
            .map(|(s, rest)| s.len() + 3 + rest.find('/').unwrap_or(rest.len()))
            .unwrap_or(r.len());
        r.get(..origin_end).unwrap_or(r)
    }

    /// Where the protected resource metadata is served, as an absolute URL.
    fn metadata_url(&self) -> String {
        format!("{}{}", self.origin(), metadata_path(&self.config.path))
    }

    /// A 401 whose `WWW-Authenticate` points at the metadata (MCP authorization,
    /// RFC 9728 §5.1) in the scheme the agent used, recorded like every refusal.
    fn unauthorized(
        &self,
        headers: &HeaderMap,
        trace: &TraceContext,
        reason: String,
        challenge: Option<Challenge>,
    ) -> Refusal {
        let carried = HttpHeaders(headers);
        let seen = self.seen(
            None,
            &carried,
            trace,
            Ok(self.address(McpKind::Tool, "")),
            Default::default(),
            None,
        );
        let verdict = self.point.refuse_credential(&seen, reason);
        let metadata = format!("resource_metadata=\"{}\"", self.metadata_url());
        // No credential: where to get one. A refused one: the same, and what was wrong.
        let challenge = match challenge {
            None => format!("Bearer {metadata}"),
            Some(Challenge::Bearer) => format!("Bearer {metadata}, error=\"invalid_token\""),
            Some(Challenge::DpopToken) => {
                format!("DPoP algs=\"ES256\", {metadata}, error=\"invalid_token\"")
            }
            Some(Challenge::DpopProof) => {
                format!("DPoP algs=\"ES256\", {metadata}, error=\"invalid_dpop_proof\"")
            }
        };
        let mut r = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "error": "unauthenticated",
                "reason": verdict.reason(),
                "decision_id": verdict.event_id,
                "trace_id": trace.trace_id,
            })),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Box::new(r)
    }

    /// The verified caller, or the 401 to answer with. The credential is read as at
    /// every other point: a bearer token (bound to the connection's client certificate,
    /// when it says so), or a DPoP-bound token with a proof made for this request's
    /// method and URL (`resource`) and recorded as used.
    fn authenticate(&self, req: &Request, trace: &TraceContext) -> Result<Caller, Refusal> {
        let headers = req.headers();
        let certificate = req.extensions().get::<ClientCertificate>();
        let presented = Presented {
            authorization: header_field(headers, header::AUTHORIZATION.as_str()),
            dpop: header_field(headers, "dpop"),
            method: req.method().as_str(),
            origin: Origin::Configured(self.origin()),
            target: req.uri().path(),
            origin_hint: "set `resource` in this `[[mcp]]` section to the URL agents use",
            certificate: certificate
                .map_or(PeerCertificate::None, |c| PeerCertificate::Der(c.der())),
        };
        let credential = match self.point.read_credential(&presented) {
            Ok(Credential::None) => {
                return Err(self.unauthorized(
                    headers,
                    trace,
                    "no credential: send `Authorization: Bearer <Steward token>` for this resource"
                        .into(),
                    None,
                ));
            }
            Ok(c) => c,
            Err(e) => {
                return Err(self.unauthorized(headers, trace, e.to_string(), Some(e.challenge())));
            }
        };
        match self
            .point
            .authenticate_credential(&credential, &self.config.resource)
        {
            Ok(claims) => Ok(Caller {
                token: credential.token().unwrap_or_default().to_owned(),
                bound: Bound::of(&credential),
                principal: claims.sub.clone(),
            }),
            Err(e) => Err(self.unauthorized(
                headers,
                trace,
                format!(
                    "{e} (ask for a token with `resource={}`)",
                    self.config.resource
                ),
                Some(e.challenge()),
            )),
        }
    }

    /// Refuses a session another identity opened (recorded), or one this point never saw
    /// (404: the client starts a new session, as the transport says).
    fn check_session(
        &self,
        headers: &HeaderMap,
        caller: &Caller,
        trace: &TraceContext,
    ) -> Result<(), Refusal> {
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            return Ok(());
        };
        let owner = self.sessions.lock().get(id).map(|(p, _)| p.clone());
        match owner {
            Some(p) if p == caller.principal => Ok(()),
            Some(_) => {
                let carried = HttpHeaders(headers);
                let seen = self.seen(Some(caller), &carried, trace, Ok(self.address(McpKind::Tool, "")), Default::default(), None);
                let verdict = self.point.refuse_credential(&seen, "the MCP session was opened by another identity".into());
                tracing::warn!(point = %self.point.name(), principal = %caller.principal, "a session of another identity was presented");
                Err(Box::new((StatusCode::FORBIDDEN, axum::Json(json!({"error": "forbidden", "reason": verdict.reason(), "decision_id": verdict.event_id}))).into_response()))
            }
            None => Err(Box::new((StatusCode::NOT_FOUND, axum::Json(json!({"error": "unknown_session", "reason": "this MCP session is not known here: start a new one (initialize without `Mcp-Session-Id`)"}))).into_response())),
        }
    }

    fn remember_session(&self, response: &reqwest::Response, caller: &Caller) {
        let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        let mut sessions = self.sessions.lock();
        if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(id) {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            id.to_owned(),
            (caller.principal.clone(), std::time::Instant::now()),
        );
    }

    fn address(&self, kind: McpKind, name: &str) -> Target {
        Target::Address(OwnedAddress::Mcp {
            server: self.config.server.clone(),
            kind,
            name: name.to_owned(),
        })
    }

    fn seen<'a>(
        &'a self,
        caller: Option<&'a Caller>,
        headers: &'a HttpHeaders<'a>,
        trace: &'a TraceContext,
        target: Result<Target, Unreadable>,
        context: serde_json::Map<String, Value>,
        arguments: Option<&'a serde_json::Map<String, Value>>,
    ) -> Seen<'a> {
        Seen {
            received: std::time::Instant::now(),
            token: caller.map(|c| c.token.as_str()),
            proof: caller.map_or(Proof::None, |c| c.bound.proof()),
            audience: &self.config.resource,
            target,
            action: None,
            correlation_id: Some(&trace.trace_id),
            context,
            carried: Carried {
                headers: Some(headers),
                message: None,
                arguments,
            },
        }
    }

    /// The request to the MCP server: a fresh set of headers (never the agent's
    /// credential or cookies), the transport's own and the verified identity. The
    /// routing headers go only where they were checked against the body (a POST), and the
    /// `Mcp-Param-*` mirrors of arguments, which the server checks against them, with
    /// them.
    fn upstream_request(
        &self,
        method: reqwest::Method,
        headers: &HeaderMap,
        caller: &Caller,
        trace: &TraceContext,
    ) -> reqwest::RequestBuilder {
        let post = method == reqwest::Method::POST;
        let mut req = self.http.request(method, &self.config.upstream);
        for name in [
            header::ACCEPT.as_str(),
            SESSION_HEADER,
            "mcp-protocol-version",
            "last-event-id",
        ] {
            if let Some(v) = headers.get(name) {
                req = req.header(name, v.clone());
            }
        }
        if post {
            for (name, v) in headers {
                let n = name.as_str();
                if n == "mcp-method" || n == "mcp-name" || n.starts_with("mcp-param-") {
                    req = req.header(name, v.clone());
                }
            }
        }
        req.header(IDENTITY_HEADER, caller.principal.as_str())
            .header("traceparent", trace.child().to_string())
    }
}

fn metadata_path(path: &str) -> String {
    if path == "/" {
        "/.well-known/oauth-protected-resource".to_owned()
    } else {
        format!("/.well-known/oauth-protected-resource{path}")
    }
}

/// RFC 9728 protected resource metadata: what an MCP client reads to learn where to get a
/// token for this resource.
/// The protected resource metadata (RFC 9728): where tokens come from, and that DPoP-
/// and (over TLS with client certificates) certificate-bound tokens are accepted.
async fn metadata(State(mcp): State<Arc<McpPoint>>) -> Response {
    let certificates =
        mcp.config.tls.as_ref().is_some_and(|t| {
            t.client_certificates != steward_listen::tls::ClientCertificates::None
        });
    axum::Json(json!({
        "resource": mcp.config.resource,
        "authorization_servers": [mcp.config.authorization_server],
        "bearer_methods_supported": ["header"],
        "resource_name": format!("MCP server `{}` (through Steward)", mcp.config.server),
        "dpop_signing_alg_values_supported": ["ES256"],
        "dpop_bound_access_tokens_required": false,
        "tls_client_certificate_bound_access_tokens": certificates,
    }))
    .into_response()
}

fn trace_of(headers: &HeaderMap) -> TraceContext {
    TraceContext::continue_or_start(headers.get("traceparent").and_then(|v| v.to_str().ok()))
}

/// GET (the server's stream) and DELETE (ending a session): authenticated and passed on;
/// they carry no message to decide.
async fn handle_stream(State(mcp): State<Arc<McpPoint>>, req: Request) -> Response {
    let trace = trace_of(req.headers());
    let caller = match mcp.authenticate(&req, &trace) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if let Err(r) = mcp.check_session(req.headers(), &caller, &trace) {
        return *r;
    }
    let method = if req.method() == axum::http::Method::DELETE {
        reqwest::Method::DELETE
    } else {
        reqwest::Method::GET
    };
    let sent = mcp
        .upstream_request(method, req.headers(), &caller, &trace)
        .send();
    let filter = AnswerFilter {
        mcp: mcp.clone(),
        caller,
        headers: req.headers().clone(),
        trace: trace.clone(),
        sent: None,
    };
    match tokio::time::timeout(mcp.config.upstream_timeout, sent).await {
        Ok(Ok(resp)) => passed_on(resp, Vec::new(), filter),
        _ => upstream_unavailable(&trace),
    }
}

fn upstream_unavailable(trace: &TraceContext) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(json!({"error": "upstream_unavailable", "reason": "the MCP server cannot be reached or did not answer in time", "trace_id": trace.trace_id})),
    )
        .into_response()
}

/// POST: one JSON-RPC message or a batch, each decided, the allowed ones forwarded.
async fn handle_post(State(mcp): State<Arc<McpPoint>>, req: Request) -> Response {
    let trace = trace_of(req.headers());
    let caller = match mcp.authenticate(&req, &trace) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (parts, body) = req.into_parts();
    if let Err(r) = mcp.check_session(&parts.headers, &caller, &trace) {
        return *r;
    }
    let bytes = match axum::body::to_bytes(body, mcp.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(messages::error_response(Value::Null, messages::INVALID_REQUEST, &format!("the request body is larger than {} bytes (max_body_bytes) or could not be read", mcp.config.max_body_bytes))),
            )
                .into_response();
        }
    };
    let Ok(parsed) = serde_json::from_slice::<Value>(&bytes) else {
        return (StatusCode::BAD_REQUEST, axum::Json(parse_error())).into_response();
    };
    if let Some(refusal) = messages::routing_headers_disagree(&parts.headers, &parsed) {
        return (StatusCode::BAD_REQUEST, axum::Json(refusal)).into_response();
    }
    let headers = HttpHeaders(&parts.headers);
    let decided = messages::decide_all(&mcp, &caller, &headers, &trace, parsed);
    let decided = match decided {
        Ok(d) => d,
        Err(refusal) => return (StatusCode::BAD_REQUEST, axum::Json(refusal)).into_response(),
    };
    if decided.forward.is_empty() {
        return local_answer(decided.batch, decided.answers);
    }
    let body = if decided.batch {
        Value::Array(decided.forward)
    } else {
        decided.forward.into_iter().next().unwrap_or(Value::Null)
    };
    let sent = mcp
        .upstream_request(reqwest::Method::POST, &parts.headers, &caller, &trace)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send();
    let resp = match tokio::time::timeout(mcp.config.upstream_timeout, sent).await {
        Ok(Ok(resp)) => resp,
        _ => return upstream_unavailable(&trace),
    };
    mcp.remember_session(&resp, &caller);
    if resp.status() == reqwest::StatusCode::ACCEPTED && !decided.answers.is_empty() {
        return local_answer(decided.batch, decided.answers);
    }
    let mut filter = AnswerFilter {
        mcp: mcp.clone(),
        caller,
        headers: parts.headers.clone(),
        trace,
        sent: Some(decided.sent),
    };
    if is_json(resp.headers()) {
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let session = resp.headers().get(SESSION_HEADER).cloned();
        let Ok(answer) = resp.json::<Value>().await else {
            return upstream_unavailable(&filter.trace);
        };
        let answer = filter.apply(answer);
        let answer = match (answer, decided.answers.is_empty()) {
            (Some(answer), true) => answer,
            (None, true) => return StatusCode::ACCEPTED.into_response(),
            (answer, false) => {
                let mut all = match answer {
                    Some(Value::Array(a)) => a,
                    Some(one) => vec![one],
                    None => Vec::new(),
                };
                all.extend(decided.answers);
                Value::Array(all)
            }
        };
        let mut r = (status, axum::Json(answer)).into_response();
        if let Some(s) = session.and_then(|s| HeaderValue::from_bytes(s.as_bytes()).ok()) {
            r.headers_mut().insert(SESSION_HEADER, s);
        }
        return r;
    }
    passed_on(resp, decided.answers, filter)
}

/// What a request answered entirely here gets: the refusals, or 202 for notifications.
fn local_answer(batch: bool, answers: Vec<Value>) -> Response {
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let body = if batch {
        Value::Array(answers)
    } else {
        answers.into_iter().next().unwrap_or(Value::Null)
    };
    axum::Json(body).into_response()
}

fn is_json(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"))
}

/// Passes the server's answer on as it streams: an event stream event by event (with
/// local answers first, each message checked by the filter), anything else as it is.
fn passed_on(resp: reqwest::Response, answers: Vec<Value>, filter: AnswerFilter) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = Response::builder().status(status);
    for name in [
        reqwest::header::CONTENT_TYPE.as_str(),
        SESSION_HEADER,
        "cache-control",
    ] {
        if let Some(v) = resp.headers().get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    let body = sse::relay(resp, answers, filter);
    out.body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Checks what the MCP server sends back before the agent sees it: an answer goes on only
/// to a request that was forwarded to it, once (a server answering a call it was never
/// sent, say one refused here, is not believed), and list answers keep only what the
/// caller may use. Requests and notifications from the server pass.
pub(crate) struct AnswerFilter {
    mcp: Arc<McpPoint>,
    caller: Caller,
    headers: HeaderMap,
    trace: TraceContext,
    /// The requests forwarded in this exchange that await an answer, by id, with what
    /// each lists (`None`: not a list). `None` for the server's own stream (GET), which
    /// answers no request of its own: answers there are not relayed.
    sent: Option<Vec<(Value, Option<McpKind>)>>,
}

impl AnswerFilter {
    /// `message` as the agent may see it, or `None` when nothing of it may pass.
    pub(crate) fn apply(&mut self, message: Value) -> Option<Value> {
        match message {
            Value::Array(all) => {
                let kept: Vec<Value> = all.into_iter().filter_map(|m| self.apply(m)).collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            // The server's own requests and notifications; one that also carries a
            // `result` or `error` could pass for an answer, so it is not relayed.
            one if one.get("method").is_some() => {
                (one.get("result").is_none() && one.get("error").is_none()).then_some(one)
            }
            mut one => {
                let id = one.get("id").cloned().unwrap_or(Value::Null);
                let awaited = self.sent.as_mut().and_then(|sent| {
                    let at = sent.iter().position(|(s, _)| *s == id)?;
                    Some(sent.remove(at).1)
                });
                let Some(kind) = awaited else {
                    tracing::warn!(point = %self.mcp.point.name(), trace_id = %self.trace.trace_id, id = %id, "the MCP server answered a request it was not sent (or twice); the answer is dropped");
                    return None;
                };
                if let Some(kind) = kind {
                    self.filter_list(&mut one, kind);
                }
                Some(one)
            }
        }
    }

    /// Removes from a list answer every entry the caller may not use (each decided and
    /// recorded, as an offered tool is at the egress proxy). An entry without its name is
    /// removed too: what cannot be decided is not offered.
    fn filter_list(&self, answer: &mut Value, kind: McpKind) {
        let Some((_, _, at, member)) = messages::LISTS.iter().find(|(_, k, _, _)| *k == kind)
        else {
            return;
        };
        if let Some(entries) = answer.pointer_mut(at).and_then(Value::as_array_mut) {
            let headers = HttpHeaders(&self.headers);
            entries.retain(|e| {
                e.get(*member).and_then(Value::as_str).is_some_and(|name| {
                    messages::allowed(&self.mcp, &self.caller, &headers, &self.trace, kind, name)
                })
            });
        }
    }
}

/// The bytes of one event-stream event carrying `message`.
pub(crate) fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}
