//! The reverse proxy: validate, authorize, strip the inbound credential and any identity
//! headers the client made up, forward the verified identity and trace context, stream
//! both bodies. Refusals are JSON with the reason; an unreachable upstream is a 502.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use steward_enforce::trace::TraceContext;
use steward_enforce::{EnforcementPoint, Outcome, Seen, Verdict};
use steward_policy::{OwnedAddress, Target};
use steward_token::Proof;
use tokio::net::TcpListener;

use crate::config::ProxyConfig;
use crate::credential::{IDENTITY_HEADER, bearer, is_steward_header};

type Body = BoxBody<Bytes, hyper::Error>;

/// One proxy listener's shared state.
pub struct Proxy {
    config: ProxyConfig,
    point: EnforcementPoint,
    client: Client<HttpConnector, Incoming>,
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

impl Proxy {
    pub fn new(config: ProxyConfig, point: EnforcementPoint) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            config,
            point,
            client,
        }
    }

    pub fn point(&self) -> &EnforcementPoint {
        &self.point
    }

    fn refusal(&self, verdict: &Verdict, trace: &TraceContext) -> Response<Body> {
        let (status, code) = match verdict.outcome {
            Outcome::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Outcome::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Outcome::Unavailable | Outcome::Allow => {
                (StatusCode::SERVICE_UNAVAILABLE, "enforcement_unavailable")
            }
        };
        let mut r = json_response(
            status,
            json!({
                "error": code,
                "reason": verdict.reason(),
                "decision_id": verdict.event_id,
                "trace_id": trace.trace_id,
                "policy_version": verdict.decision.policy_version,
            }),
        );
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3.
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        r
    }

    /// Handles one request end to end.
    pub async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let trace = TraceContext::continue_or_start(
            req.headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok()),
        );
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let mut seen = Seen {
            token: None,
            proof: Proof::None,
            audience: &self.config.audience,
            target: Target::Address(OwnedAddress::Http { method, path }),
            action: None,
            correlation_id: Some(&trace.trace_id),
            context: Default::default(),
        };
        let verdict = match bearer(req.headers().get_all(header::AUTHORIZATION).iter()) {
            Ok(token) => {
                seen.token = token;
                self.point.check(&seen)
            }
            Err(why) => self.point.refuse_credential(&seen, why),
        };
        if !verdict.allowed() {
            tracing::info!(
                point = %self.point.name(),
                trace_id = %trace.trace_id,
                outcome = ?verdict.outcome,
                reason = %verdict.reason(),
                "refused"
            );
            return self.refusal(&verdict, &trace);
        }
        // Forward: the upstream sees the verified identity, never the client's credential
        // or identity headers it made up.
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let uri: Uri = match format!("{}{path_and_query}", self.config.upstream).parse() {
            Ok(u) => u,
            Err(_) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "bad_request", "reason": "the request target cannot be forwarded"}),
                );
            }
        };
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        headers.remove(header::AUTHORIZATION);
        headers.remove("dpop");
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| is_steward_header(k.as_str()))
            .cloned()
            .collect();
        for k in spoofed {
            headers.remove(k);
        }
        if let Some(principal) = verdict
            .principal
            .as_deref()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            headers.insert(IDENTITY_HEADER, principal);
        }
        if let Ok(v) = HeaderValue::from_str(&verdict.event_id) {
            headers.insert("x-steward-decision-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&trace.child().to_string()) {
            headers.insert("traceparent", v);
        }
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            headers.insert("x-forwarded-for", v);
        }
        if let Some(authority) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(header::HOST, authority);
        }
        *req.uri_mut() = uri;
        *req.version_mut() = hyper::Version::HTTP_11;
        let sent =
            tokio::time::timeout(self.config.upstream_timeout, self.client.request(req)).await;
        match sent {
            Ok(Ok(mut response)) => {
                strip_hop_by_hop(response.headers_mut());
                response.map(BodyExt::boxed)
            }
            Ok(Err(e)) => {
                tracing::error!(
                    point = %self.point.name(),
                    upstream = %self.config.upstream,
                    trace_id = %trace.trace_id,
                    error = %e,
                    "the upstream cannot be reached"
                );
                json_response(
                    StatusCode::BAD_GATEWAY,
                    json!({"error": "upstream_unavailable", "reason": "the upstream service cannot be reached", "trace_id": trace.trace_id}),
                )
            }
            Err(_) => {
                tracing::error!(
                    point = %self.point.name(),
                    upstream = %self.config.upstream,
                    trace_id = %trace.trace_id,
                    timeout_secs = self.config.upstream_timeout.as_secs(),
                    "the upstream did not answer in time"
                );
                json_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    json!({"error": "upstream_timeout", "reason": "the upstream service did not answer in time", "trace_id": trace.trace_id}),
                )
            }
        }
    }
}

/// Serves `proxy` on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` resolves, then
/// lets open requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(proxy.config.header_read_timeout)
        .max_buf_size(proxy.config.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(proxy.config.max_header_bytes as u32);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let proxy = proxy.clone();
                let service = hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("requests still open after the drain time; closing them");
        }
    }
}
