//! The reverse proxy: validate, authorize, strip the inbound credential and any identity
//! headers the client made up, forward the verified identity and trace context, stream
//! both bodies. Refusals are JSON with the reason; an unreachable upstream is a 502.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use steward_enforce::trace::TraceContext;
use steward_enforce::{
    Carried, Challenge, Credential, CredentialError, EnforcementPoint, Origin, Outcome,
    PeerCertificate, Presented, Seen, Verdict, request_address,
};
use steward_listen::Peer;
use steward_listen::tls::ClientCertificate;
use steward_policy::{OwnedAddress, Target};
use steward_token::Proof;
use tokio::net::TcpListener;

use crate::GatewayError;
use crate::config::{ProxyConfig, UpstreamProtocol};
use crate::credential::{IDENTITY_HEADER, header_field, is_steward_header};
use crate::egress::{EgressSecrets, ai_request};
use crate::request_headers::HttpHeaders;

type Body = BoxBody<Bytes, hyper::Error>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// One proxy listener's shared state.
pub struct Proxy {
    config: ProxyConfig,
    point: EnforcementPoint,
    upstream: Upstream,
    /// Egress mode: where the injected secret comes from.
    secrets: Option<Arc<EgressSecrets>>,
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

/// The request's `content-type`, when it is readable text.
fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// A refusal a gRPC client understands: a trailers-only response (HTTP 200, the status in
/// `grpc-status` and the reason in `grpc-message`, percent-encoded as gRPC requires), with
/// the decision and trace ids beside it as metadata.
fn grpc_refusal(verdict: &Verdict, trace: &TraceContext) -> Response<Body> {
    // UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, UNAVAILABLE.
    let code = match verdict.outcome {
        Outcome::Unauthenticated => "16",
        Outcome::Forbidden => "7",
        Outcome::Malformed => "3",
        Outcome::Unavailable | Outcome::Allow => "14",
    };
    let message: String = verdict
        .reason()
        .bytes()
        .flat_map(|b| {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                vec![b as char]
            } else {
                format!("%{b:02X}").chars().collect()
            }
        })
        .collect();
    let mut r = Response::new(full(Bytes::new()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from_static(code));
    for (name, value) in [
        ("grpc-message", message),
        ("x-steward-decision-id", verdict.event_id.clone()),
        ("x-steward-trace-id", trace.trace_id.clone()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}

/// Headers that carry a client certificate, or a verdict on one, when a TLS-terminating
/// proxy in front sets them (Envoy's XFCC, nginx's and others' conventions, RFC 9440).
/// This proxy terminates TLS itself: a client sending one is making it up, and the
/// upstream must never take it as checked.
const CLIENT_CERTIFICATE_HEADERS: [&str; 10] = [
    "x-forwarded-client-cert",
    "x-ssl-client-cert",
    "x-ssl-client-escaped-cert",
    "x-ssl-client-verify",
    "x-client-cert",
    "x-client-verify",
    "ssl-client-cert",
    "ssl-client-verify",
    "client-cert",
    "client-cert-chain",
];

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

/// TLS settings for `https://` upstreams: the system roots, or the configured CA file.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, GatewayError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| GatewayError::Io {
                    what: format!("upstream_ca_file `{}`", path.display()),
                    message: e.to_string(),
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(GatewayError::Config {
                    field: "upstream_ca_file".into(),
                    message: format!("`{}` holds no usable certificate", path.display()),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Config {
            field: "upstream".into(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The clients a proxy reaches its upstream with, one per HTTP it may speak.
struct Upstream {
    protocol: UpstreamProtocol,
    /// HTTP/1.1; on `https://` in `auto`, whatever ALPN agrees.
    http1: Client<Connector, Body>,
    /// HTTP/2 only: with prior knowledge (h2c) on `http://`, ALPN `h2` on `https://`.
    http2: Client<Connector, Body>,
}

impl Upstream {
    fn new(config: &ProxyConfig) -> Result<Self, GatewayError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let tls = tls_config(config.upstream_ca_file.as_deref())?;
        let builder = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
        };
        let http1 = match config.upstream_protocol {
            // Offer both by ALPN; an http:// upstream gets HTTP/1.1 from this client.
            UpstreamProtocol::Auto => builder().enable_all_versions().wrap_connector(http.clone()),
            UpstreamProtocol::Http1 | UpstreamProtocol::Http2 => {
                builder().enable_http1().wrap_connector(http.clone())
            }
        };
        let http2 = builder().enable_http2().wrap_connector(http);
        let client = |connector, h2_only| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .http2_only(h2_only)
                .build(connector)
        };
        Ok(Self {
            protocol: config.upstream_protocol,
            http1: client(http1, false),
            http2: client(http2, true),
        })
    }

    /// The client for a request, and the version to send it as: gRPC needs HTTP/2, which
    /// `auto` speaks to an `http://` upstream with prior knowledge.
    fn client(&self, grpc: bool) -> (&Client<Connector, Body>, hyper::Version) {
        match (self.protocol, grpc) {
            (UpstreamProtocol::Http2, _) | (UpstreamProtocol::Auto, true) => {
                (&self.http2, hyper::Version::HTTP_2)
            }
            (UpstreamProtocol::Http1 | UpstreamProtocol::Auto, _) => {
                (&self.http1, hyper::Version::HTTP_11)
            }
        }
    }
}

impl Proxy {
    /// A proxy for `config`, deciding with `point`; `secrets` for an egress proxy.
    pub fn new(
        config: ProxyConfig,
        point: EnforcementPoint,
        secrets: Option<Arc<EgressSecrets>>,
    ) -> Result<Self, GatewayError> {
        Ok(Self {
            upstream: Upstream::new(&config)?,
            config,
            point,
            secrets,
        })
    }

    /// The enforcement point this proxy decides with.
    pub fn point(&self) -> &EnforcementPoint {
        &self.point
    }

    fn refusal(
        &self,
        verdict: &Verdict,
        challenge: Challenge,
        trace: &TraceContext,
        grpc: bool,
    ) -> Response<Body> {
        if grpc {
            return grpc_refusal(verdict, trace);
        }
        let (status, code) = match verdict.outcome {
            Outcome::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Outcome::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Outcome::Malformed => (StatusCode::BAD_REQUEST, "bad_request"),
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
            // RFC 6750 §3, RFC 9449 §7.1: in the scheme the client used.
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge.header_value()),
            );
        }
        r
    }

    /// What the request presents for its credential: the DPoP proof's `htu` is checked
    /// against `public_url` when configured, else the request's own host (with `https`
    /// when this listener speaks TLS); a bearer token carries the thumbprint of the
    /// client certificate this listener's own handshake verified, never one a header
    /// claims.
    fn presented<'a>(
        &'a self,
        req: &'a Request<Incoming>,
        certificate: Option<&'a ClientCertificate>,
    ) -> Presented<'a> {
        let headers = req.headers();
        let origin = match &self.config.public_url {
            Some(url) => Origin::Configured(url),
            None => Origin::Request {
                scheme: Some(if self.config.tls.is_some() {
                    "https"
                } else {
                    "http"
                }),
                host: req
                    .uri()
                    .authority()
                    .map(|a| a.as_str())
                    .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok())),
            },
        };
        Presented {
            authorization: header_field(headers, header::AUTHORIZATION.as_str()),
            dpop: header_field(headers, "dpop"),
            method: req.method().as_str(),
            origin,
            target: req.uri().path(),
            origin_hint: "set `public_url` in this `[[proxy]]` section to the URL clients use",
            certificate: certificate
                .map_or(PeerCertificate::None, |c| PeerCertificate::Der(c.der())),
        }
    }

    /// Handles one request from `peer` end to end.
    pub async fn handle(&self, req: Request<Incoming>, peer: &Peer) -> Response<Body> {
        let trace = TraceContext::continue_or_start(
            req.headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok()),
        );
        let grpc = steward_enforce::is_grpc(content_type(req.headers()));
        let authorized = self.authorize(&req, peer.certificate.as_ref(), &trace);
        let (verdict, forward_path, credential) = match authorized {
            Ok(allowed) => allowed,
            Err(refusal) => return *refusal,
        };
        let (parts, body) = req.into_parts();
        let body = match self.inspected_body(body, credential, &trace).await {
            Ok(body) => body,
            Err(refusal) => return *refusal,
        };
        let mut req = Request::from_parts(parts, body);
        // Forward: the upstream sees the verified identity, never the client's credential
        // or identity headers it made up.
        let forwarded = forward_path.map(|p| format!("{}{p}", self.config.upstream).parse::<Uri>());
        let uri: Uri = match forwarded {
            Some(Ok(u)) => u,
            _ => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "bad_request", "reason": "the request target cannot be forwarded"}),
                );
            }
        };
        forwarded_headers(req.headers_mut(), &verdict, &trace, peer.addr, &uri);
        if let Err(refusal) = self.inject_egress_secret(req.headers_mut(), &trace) {
            return *refusal;
        }
        *req.uri_mut() = uri;
        let (client, version) = self.upstream.client(grpc);
        *req.version_mut() = version;
        self.send_upstream(client, req, &trace).await
    }

    /// The decision on the request's method, normalised path and credential. Allowed:
    /// the verdict, the path to forward (the one decided on, never the raw one) and,
    /// when tools are decided from the body, the verified credential to decide them with.
    fn authorize(
        &self,
        req: &Request<Incoming>,
        certificate: Option<&ClientCertificate>,
        trace: &TraceContext,
    ) -> Result<(Verdict, Option<String>, Option<ToolCredential>), Refusal> {
        let address = request_address(
            req.method().as_str(),
            req.uri().path(),
            content_type(req.headers()),
            |h| req.headers().contains_key(h),
        );
        // What is forwarded is the path decided on, never the raw one: the upstream must
        // not serve another resource than the one policy allowed.
        let forward_path = match &address {
            Ok(OwnedAddress::Http { path, .. }) => Some(match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            }),
            Ok(OwnedAddress::Grpc { service, method }) => Some(format!("/{service}/{method}")),
            _ => None,
        };
        let headers = HttpHeaders(req.headers());
        let seen = Seen {
            received: std::time::Instant::now(),
            token: None,
            proof: Proof::None,
            audience: &self.config.audience,
            target: address.map(Target::Address),
            action: None,
            correlation_id: Some(&trace.trace_id),
            context: Default::default(),
            carried: Carried {
                headers: Some(&headers),
                message: None,
                arguments: None,
            },
        };
        let read = self
            .point
            .read_credential(&self.presented(req, certificate));
        let (verdict, challenge) = self.point.check_credential(&read, seen);
        if !verdict.allowed() {
            tracing::info!(
                point = %self.point.name(),
                trace_id = %trace.trace_id,
                outcome = ?verdict.outcome,
                reason = %verdict.reason(),
                "refused"
            );
            let grpc = steward_enforce::is_grpc(content_type(req.headers()));
            return Err(Box::new(self.refusal(&verdict, challenge, trace, grpc)));
        }
        let credential = self
            .config
            .tools_from_body
            .then(|| ToolCredential::new(&read, req.headers()));
        Ok((verdict, forward_path, credential))
    }

    /// The body to forward. With tool decisions on, it is read whole (bounded in size and
    /// time) and every tool it offers the model must be allowed first.
    async fn inspected_body(
        &self,
        body: Incoming,
        credential: Option<ToolCredential>,
        trace: &TraceContext,
    ) -> Result<Body, Refusal> {
        // Only with tool decisions on is there a credential to decide them with.
        let Some(credential) = credential else {
            return Ok(body.boxed());
        };
        // Read whole before deciding, but no longer than the upstream would wait: a body
        // trickled in a byte at a time must not hold the request (and its slot) open.
        let collected = tokio::time::timeout(
            self.config.upstream_timeout,
            Limited::new(body, self.config.max_inspected_body_bytes).collect(),
        )
        .await;
        let bytes = match collected {
            Err(_) => {
                return Err(Box::new(json_response(
                    StatusCode::REQUEST_TIMEOUT,
                    json!({"error": "body_timeout", "reason": format!("the request body did not arrive within {}s (upstream_timeout_secs)", self.config.upstream_timeout.as_secs()), "trace_id": trace.trace_id}),
                )));
            }
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<LengthLimitError>() => {
                return Err(Box::new(json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({"error": "body_too_large", "reason": format!("the request body is larger than the {} bytes inspected for tool decisions (max_inspected_body_bytes)", self.config.max_inspected_body_bytes), "trace_id": trace.trace_id}),
                )));
            }
            Ok(Err(_)) => {
                return Err(Box::new(json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "bad_request", "reason": "the request body could not be read", "trace_id": trace.trace_id}),
                )));
            }
        };
        if let Some(refused) = self.decide_tools(&bytes, &credential, trace) {
            return Err(Box::new(refused));
        }
        Ok(full(bytes))
    }

    /// Puts the egress secret (a third-party API key) in its header, when this route
    /// brokers one. Without a current secret the request is refused, never sent bare.
    fn inject_egress_secret(
        &self,
        headers: &mut HeaderMap,
        trace: &TraceContext,
    ) -> Result<(), Refusal> {
        let Some(egress) = &self.config.egress else {
            return Ok(());
        };
        let secret = self
            .secrets
            .as_ref()
            .ok_or_else(|| GatewayError::Egress {
                id: egress.secret.clone(),
                problem: "no egress secret source".into(),
            })
            .and_then(|s| s.get(&egress.secret));
        let value = match secret {
            Ok(v) => egress.format.replace("{secret}", &v),
            Err(why) => {
                let why = why.to_string();
                tracing::error!(point = %self.point.name(), reason = %why, "egress refused: no current secret");
                return Err(Box::new(json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "enforcement_unavailable", "reason": why, "trace_id": trace.trace_id}),
                )));
            }
        };
        let name = HeaderName::from_bytes(egress.header.as_bytes());
        match (name, HeaderValue::from_str(&value)) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                headers.remove(&name);
                headers.insert(name, value);
            }
            _ => {
                return Err(Box::new(json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "enforcement_unavailable", "reason": "the egress secret cannot be put in a header", "trace_id": trace.trace_id}),
                )));
            }
        }
        Ok(())
    }

    /// Sends the request upstream with `client`, within `upstream_timeout`.
    async fn send_upstream(
        &self,
        client: &Client<Connector, Body>,
        req: Request<Body>,
        trace: &TraceContext,
    ) -> Response<Body> {
        let sent = tokio::time::timeout(self.config.upstream_timeout, client.request(req)).await;
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

/// The headers the upstream gets: hop-by-hop headers and the client's credential gone,
/// any `x-steward-*` the client made up dropped, the verified identity, the decision id,
/// the trace, `x-forwarded-for` and the upstream's host added.
fn forwarded_headers(
    headers: &mut HeaderMap,
    verdict: &Verdict,
    trace: &TraceContext,
    peer: SocketAddr,
    uri: &Uri,
) {
    // `TE: trailers` says the client takes trailers (gRPC's status is one); it is the
    // one hop-by-hop header passed on, as the upstream then knows it may send them.
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    headers.remove(header::AUTHORIZATION);
    headers.remove("dpop");
    for h in CLIENT_CERTIFICATE_HEADERS {
        headers.remove(h);
    }
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
}

/// A response that ends the request here (a refusal or an error), boxed so the
/// allowed path's `Result` stays small.
type Refusal = Box<Response<Body>>;

/// The credential an allowed request was checked with, kept to decide the tools its body
/// offers: the token and, for DPoP, the thumbprint of the proof's key (the proof itself
/// is spent: checking it again would refuse it as a replay).
struct ToolCredential {
    token: Option<String>,
    dpop_jkt: Option<String>,
    /// The request's headers: declared context attributes are read from them for each
    /// tool, as for the request itself.
    headers: HeaderMap,
}

impl ToolCredential {
    fn new(read: &Result<Credential<'_>, CredentialError>, headers: &HeaderMap) -> Self {
        let credential = read.as_ref().ok();
        Self {
            token: credential.and_then(Credential::token).map(str::to_owned),
            dpop_jkt: credential.and_then(|c| match c.proof() {
                Proof::Dpop(jkt) => Some(jkt.to_owned()),
                _ => None,
            }),
            headers: headers.clone(),
        }
    }
}

impl Proxy {
    /// Decides each tool an AI request offers; the refusal to send, if any.
    fn decide_tools(
        &self,
        body: &[u8],
        credential: &ToolCredential,
        trace: &TraceContext,
    ) -> Option<Response<Body>> {
        let ai = match ai_request(body) {
            Ok(ai) => ai,
            Err(why) => {
                let why = why.to_string();
                return Some(json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "bad_request", "reason": why, "trace_id": trace.trace_id}),
                ));
            }
        };
        let (token, proof) = match &credential.dpop_jkt {
            Some(jkt) => (credential.token.as_deref(), Proof::Dpop(jkt)),
            None => (credential.token.as_deref(), Proof::None),
        };
        let challenge = if credential.dpop_jkt.is_some() {
            Challenge::DpopToken
        } else {
            Challenge::Bearer
        };
        let mut context = serde_json::Map::new();
        if let Some(model) = ai.model {
            context.insert("model".into(), model.into());
        }
        for tool in ai.tools {
            let verdict = self.point.check(&Seen {
                received: std::time::Instant::now(),
                token,
                proof,
                audience: &self.config.audience,
                target: Ok(Target::Address(OwnedAddress::Tool { name: tool.clone() })),
                action: None,
                correlation_id: Some(&trace.trace_id),
                context: context.clone(),
                carried: Carried {
                    headers: Some(&HttpHeaders(&credential.headers)),
                    message: None,
                    arguments: None,
                },
            });
            if !verdict.allowed() {
                tracing::info!(point = %self.point.name(), tool = %tool, reason = %verdict.reason(), "tool refused");
                let mut r = self.refusal(&verdict, challenge, trace, false);
                if let Ok(v) = HeaderValue::from_str(&tool) {
                    r.headers_mut().insert("x-steward-refused-tool", v);
                }
                return Some(r);
            }
        }
        None
    }
}

/// Serves `proxy` on `listener` (HTTP/1.1 and HTTP/2; over TLS when configured, with
/// the client certificate of each connection) until `shutdown` resolves, then lets open
/// requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let limits = steward_listen::Limits {
        header_read: proxy.config.header_read_timeout,
        // Bodies stream to the upstream, bounded by `upstream_timeout`.
        body_read: proxy.config.upstream_timeout,
        max_connections: proxy.config.max_connections,
        drain,
    };
    let mut builder = steward_listen::http_builder(&limits);
    builder
        .http1()
        .max_buf_size(proxy.config.max_header_bytes.max(8192));
    builder
        .http2()
        .max_header_list_size(proxy.config.max_header_bytes as u32);
    let tls = proxy.config.tls.as_ref().map(|t| t.server.clone());
    let serving = proxy.clone();
    let served =
        steward_listen::serve_peers(listener, &limits, builder, tls, shutdown, move |peer| {
            let proxy = serving.clone();
            let peer = Arc::new(peer);
            hyper::service::service_fn(move |req| {
                let (proxy, peer) = (proxy.clone(), peer.clone());
                async move { Ok::<_, Infallible>(proxy.handle(req, &peer).await) }
            })
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, point = %proxy.point.name(), "the proxy listener stopped");
    }
}
