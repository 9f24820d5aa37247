//! `steward-bench gateway`: the issue-6 targets, side by side in one run on loopback.
//!
//! - `wrk` straight to a small upstream (the baseline), through `steward gateway` (token
//!   validation, address lookup, policy decision, decision record, forwarding), and through
//!   nginx as a plain reverse proxy without any authorization (the peer);
//! - the decision endpoints on their own: nginx `auth_request` (`wrk`), the RabbitMQ topic
//!   check (`wrk`) and Envoy ext_authz `Check` (a tonic gRPC client, since wrk speaks no
//!   gRPC);
//! - DPoP: the same request in turn with a bearer token, with a bearer token and an
//!   unchecked proof-sized `DPoP` header, and with a DPoP-bound token and a fresh proof, on
//!   one connection, beside one ES256 verify timed before each request;
//! - mutual TLS: the same request over TLS alternately with a certificate-bound token on a
//!   connection presenting its client certificate and with a bearer token on one without.
//!
//! The control plane runs in this process on its own runtime and takes every decision
//! record the gateway ships, as it would in production (there on another machine).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use serde_json::json;
use steward_api::RouteId;
use steward_token::{SigningKey, jws};

use crate::policy::{Latency, Runs, wrk_post, wrk_run};

const CLIENT: &str = "spiffe://acme.example/ns/payments/sa/bench-gateway-client";
/// The payments plane's grant to [`CLIENT`], which the benchmark registers through the
/// API (registering an identity grants nothing): reading charges, publishing refund
/// commands and calling the MCP tool `lookup_order` ([`MCP_CAPABILITY`]), exactly what it
/// intends ([`client_intended`]).
pub(crate) const CLIENT_GRANT: &str = r#"@id("payments-bench-gateway-client")
permit (
  principal == Steward::Identity::"spiffe://acme.example/ns/payments/sa/bench-gateway-client",
  action,
  resource
)
when {
  (resource == Steward::Capability::"payments.read" && action == Steward::Action::"read") ||
  (resource == Steward::Capability::"payments.refund" && action == Steward::Action::"publish") ||
  (resource == Steward::Capability::"payments.mcp.lookup_order" && action == Steward::Action::"invoke")
};
"#;

/// The catalog entry the MCP row's calls are decided against: the bundled example has no
/// `mcp` mapping, so the benchmark adds one for its own MCP server ([`mcp_server`]).
pub(crate) const MCP_CAPABILITY: &str = r#"capabilities:
  - id: payments.mcp.lookup_order
    plane: payments
    classification: confidential
    description: Look an order up through the benchmark's MCP server.
    mappings:
      - mcp: {server: support, tool: lookup_order}
"#;

/// What [`CLIENT`] intends, as the API takes it.
fn client_intended() -> serde_json::Value {
    json!([
        {"capability": "payments.read", "actions": ["read"]},
        {"capability": "payments.refund", "actions": ["publish"]},
        {"capability": "payments.mcp.lookup_order", "actions": ["invoke"]}
    ])
}
const AUDIENCE: &str = "spiffe://acme.example/ns/payments/sa/payments-api";
const BROKER: &str = "spiffe://acme.example/broker/rabbitmq";
/// An allowed read of `payments.read` (`GET /v1/charges/**`).
const PATH: &str = "/v1/charges/ch_1";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A small upstream answering `ok` to everything (on the caller's runtime).
async fn upstream() -> Result<std::net::SocketAddr> {
    let app = axum::Router::new().fallback(|| async { "ok\n" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The resource the `[[mcp]]` point serves: the audience of the agent's token for it.
const MCP_RESOURCE: &str = "http://mcp.bench/mcp";
/// One allowed `tools/call` (the catalog maps `support`/`lookup_order` to a capability
/// [`CLIENT`] holds), sent as it is straight to the MCP server and through the point.
const MCP_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","arguments":{"order":"o-1"}}}"#;
/// Only the MCP server's own answer carries this text: a refusal by the point (a 200 whose
/// result is marked `isError`) names the tool and the reason instead.
const MCP_ANSWER_TEXT: &str = "order o-1: shipped";

/// A minimal MCP server (Streamable HTTP, JSON answers, no session) on the caller's
/// runtime: it parses each POSTed JSON-RPC request as a real server would and answers a
/// `tools/call` with a `CallToolResult`, anything else with an empty result, so the row
/// measures the point and not the tool.
async fn mcp_server() -> Result<std::net::SocketAddr> {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|body: axum::Json<serde_json::Value>| async move {
            let m = body.0;
            let result = if m.get("method").and_then(serde_json::Value::as_str)
                == Some("tools/call")
            {
                json!({"content": [{"type": "text", "text": MCP_ANSWER_TEXT}], "isError": false})
            } else {
                json!({})
            };
            axum::Json(json!({"jsonrpc": "2.0", "id": m.get("id"), "result": result}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// `wrk` POSTing [`MCP_CALL`] to `url` (with `bearer` when given) on `connections`
/// connections, reading every answer: any that is not the MCP server's allowed result (a
/// non-2xx, a JSON-RPC error, or a refusal marked `isError`) fails the run, since a
/// refused call never reaches the server and would be measured as a faster one. The same
/// script runs straight and through the point, so reading the bodies costs both alike.
fn wrk_mcp(
    url: &str,
    bearer: Option<&str>,
    connections: usize,
    duration: Duration,
) -> Result<Option<Latency>> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("mcp.lua");
    let counts = dir.path().join("counts");
    let authorization = bearer
        .map(|t| format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &script,
        format!(
            r#"wrk.method = "POST"
wrk.body = [==[{MCP_CALL}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
{authorization}local threads = {{}}
function setup(thread) table.insert(threads, thread) end
allowed = 0
other = 0
sample = ""
function response(status, headers, body)
  if status == 200 and string.find(body, [==[{MCP_ANSWER_TEXT}]==], 1, true)
      and string.find(body, '"isError":false', 1, true) then
    allowed = allowed + 1
  else
    other = other + 1
    if sample == "" then sample = status .. " " .. body end
  end
end
function done(summary, latency, requests)
  local a, o, s = 0, 0, ""
  for _, t in ipairs(threads) do
    a = a + t:get("allowed")
    o = o + t:get("other")
    if s == "" then s = t:get("sample") end
  end
  local f = io.open([==[{}]==], "w")
  f:write(a .. "\n" .. o .. "\n" .. s)
  f:close()
end
"#,
            counts.display()
        ),
    )?;
    let Some(l) = wrk_run(
        &["-s".to_owned(), script.display().to_string()],
        url,
        connections,
        duration,
        false,
    )?
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&counts).context("wrk wrote no answer counts")?;
    let mut lines = text.splitn(3, '\n');
    let allowed: u64 = lines.next().unwrap_or("").trim().parse()?;
    let other: u64 = lines.next().unwrap_or("").trim().parse()?;
    if other > 0 || allowed == 0 {
        bail!(
            "{url}: {other} of {} tools/call answers were not the allowed result, e.g. {}",
            allowed + other,
            lines.next().unwrap_or("(none)")
        );
    }
    Ok(Some(l))
}

async fn token(base: &str, key: &SigningKey, audience: &str) -> Result<String> {
    token_bound(base, key, audience, None).await
}

/// A token for [`CLIENT`], bound to `holder`'s key (DPoP) when given.
async fn token_bound(
    base: &str,
    key: &SigningKey,
    audience: &str,
    holder: Option<&SigningKey>,
) -> Result<String> {
    let assertion = jws::encode(
        key,
        "JWT",
        &json!({"iss": CLIENT, "sub": CLIENT, "aud": crate::api_url(base, RouteId::Token, &[]),
                "iat": now(), "exp": now() + 60, "jti": uuid_like()}),
    )?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", steward_token::JWT_BEARER_ASSERTION)
        .append_pair("client_assertion", &assertion)
        .append_pair("audience", audience)
        .append_pair("expires_in", "900")
        .finish();
    let endpoint = crate::api_url(base, RouteId::Token, &[]);
    let mut req = reqwest::Client::new().post(&endpoint);
    if let Some(holder) = holder {
        req = req.header(
            "dpop",
            steward_token::new_dpop_proof(holder, "POST", &endpoint, None, now())?,
        );
    }
    let resp = req
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let v: serde_json::Value = resp.json().await?;
    v.get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no token: {v}"))
}

/// A self-signed certificate for `name` and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

impl Pem {
    fn generate(name: &str) -> Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])?.self_signed(&key)?;
        Ok(Self {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    fn identity(&self) -> Result<reqwest::Identity> {
        Ok(reqwest::Identity::from_pem(
            format!("{}{}", self.cert, self.key).as_bytes(),
        )?)
    }

    fn root(&self) -> Result<reqwest::Certificate> {
        Ok(reqwest::Certificate::from_pem(self.cert.as_bytes())?)
    }

    /// Writes `<stem>.pem` and `<stem>-key.pem` under `dir`.
    fn write(&self, dir: &Path, stem: &str) -> Result<()> {
        std::fs::write(dir.join(format!("{stem}.pem")), &self.cert)?;
        std::fs::write(dir.join(format!("{stem}-key.pem")), &self.key)?;
        Ok(())
    }
}

/// A token for [`CLIENT`] bound to `client`'s certificate (`cnf.x5t#S256`): asked for
/// over mutual TLS, the control plane's state served over TLS for the one request.
async fn token_over_mtls(
    server: &crate::InProcessServer,
    key: &SigningKey,
    client: &Pem,
    dir: &Path,
) -> Result<String> {
    let cp_cert = Pem::generate("127.0.0.1")?;
    cp_cert.write(dir, "control-plane")?;
    let config = steward_server::tls::server_config(&steward_server::tls::TlsConfig {
        cert_file: dir.join("control-plane.pem"),
        key_file: dir.join("control-plane-key.pem"),
    })?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = server.state.clone();
    let served = server.runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        steward_server::tls::serve_tls(listener, state, config, async {
            let _ = stopped.await;
        })
        .await
    });
    // The assertion names the token endpoint as the control plane knows it.
    let assertion = jws::encode(
        key,
        "JWT",
        &json!({"iss": CLIENT, "sub": CLIENT, "aud": crate::api_url(&server.base, RouteId::Token, &[]),
                "iat": now(), "exp": now() + 60, "jti": uuid_like()}),
    )?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", steward_token::JWT_BEARER_ASSERTION)
        .append_pair("client_assertion", &assertion)
        .append_pair("audience", AUDIENCE)
        .append_pair("expires_in", "900")
        .finish();
    let resp = reqwest::Client::builder()
        .add_root_certificate(cp_cert.root()?)
        .identity(client.identity()?)
        .build()?
        .post(format!(
            "https://{addr}{}",
            RouteId::Token.route().path_with(&[])
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    let v: serde_json::Value = resp.json().await?;
    let _ = stop.send(());
    served.await??;
    v.get("access_token")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no certificate-bound token: {v}"))
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

/// nginx as a plain reverse proxy to `upstream` (no authorization): the peer.
struct Nginx {
    /// Stopped with SIGTERM when dropped, so its workers stop too (killing the master
    /// alone left them running, and spending CPU, through the rest of the benchmark).
    _child: steward_testkit::Reaped,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(binary: &Path, upstream: std::net::SocketAddr) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("tmp"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                r#"daemon off; worker_processes auto; user root; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  upstream app {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://app; }}
  }}
}}
"#
            ),
        )?;
        let child = std::process::Command::new(binary)
            .args([
                "-p",
                &d,
                "-c",
                &format!("{d}/nginx.conf"),
                "-e",
                &format!("{d}/error.log"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Self {
                    _child: steward_testkit::Reaped(child),
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("nginx did not start")
    }
}

/// `connections` concurrent gRPC callers of `Check` for `duration`.
async fn ext_authz_load(
    addr: std::net::SocketAddr,
    token: &str,
    connections: usize,
    duration: Duration,
) -> Result<Latency> {
    let mut headers = std::collections::HashMap::new();
    headers.insert("authorization".to_owned(), format!("Bearer {token}"));
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: PATH.into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let mut client = AuthorizationClient::connect(format!("http://{addr}")).await?;
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let (mut us, mut refused) = (Vec::new(), 0u64);
            while started.elapsed() < duration {
                let t = Instant::now();
                let answer = client.check(request.clone()).await?.into_inner();
                us.push(t.elapsed().as_secs_f64() * 1e6);
                // UNAVAILABLE: failed closed (decision log full), counted like wrk's 503s.
                if answer.status.as_ref().is_some_and(|s| s.code == 14) {
                    refused += 1;
                    continue;
                }
                if let Some(status) = answer.status.filter(|s| s.code != 0) {
                    bail!(
                        "ext_authz denied an allowed request under load: code {} {}",
                        status.code,
                        status.message
                    );
                }
            }
            Ok((us, refused))
        }));
    }
    let (mut all, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (us, r) = t.await??;
        all.extend(us);
        refused += r;
    }
    let mut l = crate::policy::summarise(all, started.elapsed(), 0);
    let answered = l.per_sec;
    let total = answered * started.elapsed().as_secs_f64();
    if total > 0.0 {
        l.per_sec = answered * (total - refused as f64).max(0.0) / total;
    }
    l.refused = refused;
    Ok(l)
}

/// What DPoP adds to a request through the gateway, on one connection: the same
/// request in turn with the bearer token, with the bearer token and an unchecked `DPoP`
/// header of a proof's size, and with a DPoP-bound token and a fresh proof. Before each
/// request, whatever its kind, the client makes a proof and verifies it (timed: the
/// peer), so every request follows the same client work and the same idle gap at the
/// gateway; only what the request carries differs.
struct DpopFigures {
    bearer: Latency,
    /// The bearer request carrying a proof-sized `DPoP` header the gateway ignores (a
    /// bearer token has no proof): what the extra header bytes cost, apart from checking
    /// them.
    bearer_with_header: Latency,
    dpop: Latency,
    /// Median and p99 of one ES256 verify repeated in a tight loop (one message, one
    /// signature: the warmest a verify gets), µs.
    verify_p50_us: f64,
    verify_p99_us: f64,
    /// Median of one ES256 verify of a fresh proof, timed between the requests: the
    /// verify the gateway makes, in the conditions it makes it, µs.
    inline_p50_us: f64,
}

/// The three kinds of request [`dpop_load`] sends in turn.
#[derive(Clone, Copy, PartialEq)]
enum DpopKind {
    Bearer,
    BearerWithHeader,
    Dpop,
}

async fn dpop_load(
    url: &str,
    bearer: &str,
    bound: &str,
    holder: &SigningKey,
    duration: Duration,
) -> Result<DpopFigures> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let (mut b_us, mut h_us, mut d_us, mut inline_us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    let kinds = [DpopKind::Bearer, DpopKind::BearerWithHeader, DpopKind::Dpop];
    for kind in kinds.iter().cycle() {
        if started.elapsed() >= duration && *kind == DpopKind::Bearer {
            break;
        }
        // The same client work before every request: a fresh proof, and the peer — one
        // ES256 verify of its signature, timed here, as cold as the gateway's is.
        let proof = steward_token::new_dpop_proof(holder, "GET", url, Some(bound), now())?;
        let (input, signature) = proof.rsplit_once('.').context("a proof has three parts")?;
        let signature = B64URL.decode(signature)?;
        let t = Instant::now();
        holder.public_key().verify(input.as_bytes(), &signature)?;
        inline_us.push(t.elapsed().as_secs_f64() * 1e6);
        let request = match kind {
            DpopKind::Bearer => client.get(url).bearer_auth(bearer),
            DpopKind::BearerWithHeader => client.get(url).bearer_auth(bearer).header("dpop", proof),
            DpopKind::Dpop => client
                .get(url)
                .header("authorization", format!("DPoP {bound}"))
                .header("dpop", proof),
        };
        let t = Instant::now();
        let resp = request.send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if !status.is_success() {
            bail!(
                "the gateway refused a {} request: {status} {}",
                if *kind == DpopKind::Dpop {
                    "DPoP"
                } else {
                    "bearer"
                },
                String::from_utf8_lossy(&body)
            );
        }
        match kind {
            DpopKind::Bearer => b_us.push(us),
            DpopKind::BearerWithHeader => h_us.push(us),
            DpopKind::Dpop => d_us.push(us),
        }
    }
    let wall = started.elapsed() / 3;
    let message = b"an ES256 signature over a DPoP proof's header and claims";
    let signature = holder.sign(message)?;
    let key = holder.public_key();
    let mut verify_us = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let t = Instant::now();
        key.verify(message, &signature)?;
        verify_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let verify = crate::policy::summarise(verify_us, Duration::from_secs(1), 0);
    let inline = crate::policy::summarise(inline_us, Duration::from_secs(1), 0);
    Ok(DpopFigures {
        bearer: crate::policy::summarise(b_us, wall, 0),
        bearer_with_header: crate::policy::summarise(h_us, wall, 0),
        dpop: crate::policy::summarise(d_us, wall, 0),
        verify_p50_us: verify.median_us,
        verify_p99_us: verify.p99_us,
        inline_p50_us: inline.median_us,
    })
}

/// What a certificate-bound token adds over TLS: the same request alternately on two
/// kept-alive TLS connections (handshakes done before timing), one presenting the client
/// certificate with a token bound to it, the other a bearer token without a certificate.
struct MtlsFigures {
    bearer: Latency,
    bound: Latency,
}

async fn mtls_load(
    url: &str,
    (plain, bearer): (&reqwest::Client, &str),
    (with_cert, bound): (&reqwest::Client, &str),
    duration: Duration,
) -> Result<MtlsFigures> {
    // Open both connections (and do both handshakes) before anything is timed.
    for (client, token) in [(plain, bearer), (with_cert, bound)] {
        let resp = client.get(url).bearer_auth(token).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!(
                "the gateway refused a request over TLS: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let (mut b_us, mut c_us) = (Vec::new(), Vec::new());
    let started = Instant::now();
    while started.elapsed() < duration {
        for (client, token, times) in [(plain, bearer, &mut b_us), (with_cert, bound, &mut c_us)] {
            let t = Instant::now();
            let resp = client.get(url).bearer_auth(token).send().await?;
            let status = resp.status();
            resp.bytes().await?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            if !status.is_success() {
                bail!("the gateway refused a request over TLS: {status}");
            }
        }
    }
    let wall = started.elapsed() / 2;
    Ok(MtlsFigures {
        bearer: crate::policy::summarise(b_us, wall, 0),
        bound: crate::policy::summarise(c_us, wall, 0),
    })
}

/// The median of a few figures (0 for none).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `, N refused …` when a phase had refusals: the decision log filled because the
/// co-located control plane chained records slower than the point decided, and the point
/// failed closed (503) rather than decide unrecorded.
fn refused_note(refused: u64) -> String {
    if refused == 0 {
        String::new()
    } else {
        format!(" ({refused} answered 503 over all runs: the decision log was full)")
    }
}

/// Reports how far the control plane's evidence ingestion fell behind during a phase,
/// then lets it catch up so each phase starts from an empty queue.
async fn settle(log: &steward_enforce::DecisionLog, phase: &str) {
    let stats = log.stats();
    let started = Instant::now();
    let left = log.flush(Duration::from_secs(120)).await;
    eprintln!(
        "  after {phase}: {} decision records were waiting to be chained ({} shipped so far); caught up in {:.1} s{}",
        stats.waiting,
        stats.shipped,
        started.elapsed().as_secs_f64(),
        if left > 0 {
            format!(", {left} still waiting")
        } else {
            String::new()
        }
    );
}

fn header(name: &str, value: &str) -> [String; 2] {
    ["-H".to_owned(), format!("{name}: {value}")]
}

pub async fn run(
    seconds: u64,
    connections: usize,
    runs: usize,
    nginx: Option<PathBuf>,
    pin: bool,
) -> Result<()> {
    steward_server::tls::install_crypto_provider();
    let server = if pin {
        let (request_path, control_plane) = crate::pin::split()?;
        // Everything running now (the tokio workers that will serve the gateway and the
        // upstream, and later spawn wrk and nginx) goes to the request path's core first.
        crate::pin::whole_process(&request_path)?;
        eprintln!(
            "pinned: load tool, upstream, gateway and nginx on CPU {request_path}; control plane on CPU {control_plane}"
        );
        crate::InProcessServer::example_on(Some(control_plane))?
    } else {
        crate::InProcessServer::example()?
    };
    let http = reqwest::Client::new();
    let key = crate::tokens::register_client(&http, &server, CLIENT, client_intended()).await?;
    let resp = http
        .post(crate::api_url(&server.base, RouteId::CreateCredential, &[]))
        .bearer_auth(&server.token)
        .json(&json!({"name": "bench gateway", "role": "ingestor"}))
        .send()
        .await?;
    let ingestor: serde_json::Value = resp.json().await?;
    let ingestor = ingestor
        .get("token")
        .and_then(serde_json::Value::as_str)
        .context("no ingestor credential")?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("credential"), ingestor)?;
    let up = upstream().await?;
    let mcp_up = mcp_server().await?;
    let gateway_cert = Pem::generate("127.0.0.1")?;
    gateway_cert.write(dir.path(), "gateway")?;
    let config = steward_gateway::GatewayConfig::parse(
        &format!(
            r#"
name = "bench"
environment = "prod"
[control_plane]
url = "{base}"
credential_file = "credential"
[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://{up}"
audience = "{AUDIENCE}"
[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://{up}"
audience = "{AUDIENCE}"
[proxy.tls]
cert_file = "gateway.pem"
key_file = "gateway-key.pem"
[auth]
listen = "127.0.0.1:0"
nginx_audience = "{AUDIENCE}"
rabbitmq_audience = "{BROKER}"
[ext_authz]
listen = "127.0.0.1:0"
audience = "{AUDIENCE}"
[[mcp]]
listen = "127.0.0.1:0"
server = "support"
upstream = "http://{mcp_up}/mcp"
resource = "{MCP_RESOURCE}"
"#,
            base = server.base
        ),
        dir.path(),
    )?;
    let gw = steward_gateway::start(config).await?;
    gw.source
        .wait_ready(Duration::from_secs(30))
        .await
        .map_err(anyhow::Error::msg)?;
    let web = token(&server.base, &key, AUDIENCE).await?;
    let holder = SigningKey::generate()?.0;
    let bound = token_bound(&server.base, &key, AUDIENCE, Some(&holder)).await?;
    let broker = token(&server.base, &key, BROKER).await?;
    let agent = token(&server.base, &key, MCP_RESOURCE).await?;
    let mcp_direct_url = format!("http://{mcp_up}/mcp");
    let mcp_url = format!("http://{}/mcp", gw.mcp.first().context("no MCP point")?);
    let client_cert = Pem::generate("bench-gateway-client.acme.example")?;
    let cert_bound = token_over_mtls(&server, &key, &client_cert, dir.path()).await?;
    let tls_url = format!(
        "https://{}{PATH}",
        gw.proxies.get(1).context("no TLS proxy")?
    );
    let tls_client = |identity: Option<reqwest::Identity>| -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .add_root_certificate(gateway_cert.root()?);
        if let Some(identity) = identity {
            b = b.identity(identity);
        }
        Ok(b.build()?)
    };
    let (tls_plain, tls_with_cert) = (
        tls_client(None)?,
        tls_client(Some(client_cert.identity()?))?,
    );
    let auth = format!("http://{}", gw.auth.context("no auth listener")?);
    let login = http
        .post(format!("{auth}/rabbitmq/user"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("username", CLIENT)
                .append_pair("password", &broker)
                .finish(),
        )
        .send()
        .await?
        .text()
        .await?;
    if login != "allow" {
        bail!("the broker login was refused: {login}");
    }
    let nginx = match nginx.filter(|p| p.exists()) {
        Some(bin) => Some(Nginx::start(&bin, up)?),
        None => {
            eprintln!("nginx not found: the nginx peer is skipped (apt-get install nginx)");
            None
        }
    };
    let duration = Duration::from_secs(seconds);
    let bearer = header("Authorization", &format!("Bearer {web}"));
    let gateway_url = format!("http://{}{PATH}", gw.proxies.first().context("no proxy")?);
    let topic_body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", CLIENT)
        .append_pair("vhost", "/payments")
        .append_pair("resource", "topic")
        .append_pair("name", "payments.commands")
        .append_pair("permission", "write")
        .append_pair("routing_key", "refund.requested")
        .finish();
    let ext_addr = gw.ext_authz.context("no ext_authz listener")?;
    let (mut direct, mut through, mut peer, mut nginx_ep, mut rabbit, mut envoy) = (
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
        Runs::default(),
    );
    let blocking_with = |args: Vec<String>, url: String, c: usize| {
        tokio::task::spawn_blocking(move || wrk_run(&args, &url, c, duration, true))
    };
    let blocking = |args: Vec<String>, url: String| blocking_with(args, url, connections);
    let (mut direct1, mut through1) = (Runs::default(), Runs::default());
    let (mut bearer1, mut header1, mut dpop1) = (Runs::default(), Runs::default(), Runs::default());
    let (mut mcp_direct1, mut mcp_through1) = (Runs::default(), Runs::default());
    let (mut tls_bearer1, mut tls_bound1) = (Runs::default(), Runs::default());
    let (mut verify_p50, mut verify_p99, mut verify_inline) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let d = blocking(Vec::new(), format!("http://{up}{PATH}"))
            .await??
            .context("wrk is not installed (apt-get install wrk)")?;
        let g = blocking(bearer.to_vec(), gateway_url.clone())
            .await??
            .context("wrk")?;
        settle(&gw.log, "gateway").await;
        // Added latency without queueing: one connection, one request at a time.
        let d1 = blocking_with(Vec::new(), format!("http://{up}{PATH}"), 1)
            .await??
            .context("wrk")?;
        let g1 = blocking_with(bearer.to_vec(), gateway_url.clone(), 1)
            .await??
            .context("wrk")?;
        settle(&gw.log, "gateway, one connection").await;
        eprintln!(
            "run {run}/{runs}, one connection: direct p50 {:.0} µs p99 {:.0} µs | gateway p50 {:.0} µs p99 {:.0} µs",
            d1.median_us, d1.p99_us, g1.median_us, g1.p99_us
        );
        direct1.push(&d1);
        through1.push(&g1);
        // The same method for tools/call: straight to the MCP server, then through the
        // MCP point, each answer checked to be the allowed result.
        let md = {
            let url = mcp_direct_url.clone();
            tokio::task::spawn_blocking(move || wrk_mcp(&url, None, 1, duration))
                .await??
                .context("wrk")?
        };
        let mg = {
            let (url, agent) = (mcp_url.clone(), agent.clone());
            tokio::task::spawn_blocking(move || wrk_mcp(&url, Some(&agent), 1, duration))
                .await??
                .context("wrk")?
        };
        settle(&gw.log, "MCP point, one connection").await;
        eprintln!(
            "run {run}/{runs}, MCP tools/call, one connection: direct p50 {:.0} µs p99 {:.0} µs ({:.0}/s) | MCP point p50 {:.0} µs p99 {:.0} µs ({:.0}/s) | added p50 {:.0} µs, plain HTTP added p50 {:.0} µs",
            md.median_us,
            md.p99_us,
            md.per_sec,
            mg.median_us,
            mg.p99_us,
            mg.per_sec,
            mg.median_us - md.median_us,
            g1.median_us - d1.median_us
        );
        mcp_direct1.push(&md);
        mcp_through1.push(&mg);
        let p = dpop_load(&gateway_url, &web, &bound, &holder, duration).await?;
        settle(&gw.log, "gateway, DPoP").await;
        eprintln!(
            "run {run}/{runs}, DPoP (one connection, in turn): bearer p50 {:.0} µs | bearer + unchecked DPoP header p50 {:.0} µs | DPoP p50 {:.0} µs | one ES256 verify p50 {:.1} µs in the request loop, {:.1} µs in a tight loop",
            p.bearer.median_us,
            p.bearer_with_header.median_us,
            p.dpop.median_us,
            p.inline_p50_us,
            p.verify_p50_us
        );
        bearer1.push(&p.bearer);
        header1.push(&p.bearer_with_header);
        dpop1.push(&p.dpop);
        verify_p50.push(p.verify_p50_us);
        verify_p99.push(p.verify_p99_us);
        verify_inline.push(p.inline_p50_us);
        let m = mtls_load(
            &tls_url,
            (&tls_plain, &web),
            (&tls_with_cert, &cert_bound),
            duration,
        )
        .await?;
        settle(&gw.log, "gateway, mutual TLS").await;
        eprintln!(
            "run {run}/{runs}, TLS (two connections, alternating): bearer p50 {:.0} µs | certificate-bound p50 {:.0} µs",
            m.bearer.median_us, m.bound.median_us
        );
        tls_bearer1.push(&m.bearer);
        tls_bound1.push(&m.bound);
        let n = match &nginx {
            Some(n) => blocking(Vec::new(), format!("http://127.0.0.1:{}{PATH}", n.port)).await??,
            None => None,
        };
        let mut ep_args = bearer.to_vec();
        ep_args.extend(header("X-Original-Method", "GET"));
        ep_args.extend(header("X-Original-URI", PATH));
        let e = blocking(ep_args, format!("{auth}/nginx/auth"))
            .await??
            .context("wrk")?;
        settle(&gw.log, "nginx auth_request").await;
        let r = {
            let (auth, body) = (auth.clone(), topic_body.clone());
            tokio::task::spawn_blocking(move || {
                wrk_post(
                    &auth,
                    "/rabbitmq/topic",
                    "application/x-www-form-urlencoded",
                    None,
                    &[body],
                    connections,
                    duration,
                    true,
                )
            })
            .await??
            .context("wrk")?
        };
        settle(&gw.log, "rabbitmq topic").await;
        let x = ext_authz_load(ext_addr, &web, connections, duration).await?;
        settle(&gw.log, "ext_authz").await;
        eprintln!(
            "run {run}/{runs}: direct {:.0}/s p50 {:.0} µs p99 {:.0} µs | gateway {:.0}/s p50 {:.0} µs p99 {:.0} µs | nginx proxy {} | nginx auth_request {:.0}/s p99 {:.0} µs | rabbitmq topic {:.0}/s p99 {:.0} µs | ext_authz {:.0}/s p99 {:.0} µs",
            d.per_sec,
            d.median_us,
            d.p99_us,
            g.per_sec,
            g.median_us,
            g.p99_us,
            n.as_ref().map_or("-".to_owned(), |n| format!(
                "{:.0}/s p50 {:.0} µs p99 {:.0} µs",
                n.per_sec, n.median_us, n.p99_us
            )),
            e.per_sec,
            e.p99_us,
            r.per_sec,
            r.p99_us,
            x.per_sec,
            x.p99_us
        );
        direct.push(&d);
        through.push(&g);
        if let Some(n) = &n {
            peer.push(n);
        }
        nginx_ep.push(&e);
        rabbit.push(&r);
        envoy.push(&x);
    }
    let stats = gw.log.stats();
    gw.shutdown(Duration::from_secs(10)).await;
    let gateway_refused = through.refused() + through1.refused();
    let (d_rps, d_p50, d_p99) = direct.medians();
    let (g_rps, g_p50, g_p99) = through.medians();
    println!(
        "gateway benchmark (wrk -t1 -c{connections}, {seconds} s per run, GET {PATH} allowed by policy; medians of {runs}):"
    );
    println!(
        "  direct to upstream:        {d_rps:>8.0} req/s  p50 {d_p50:>6.0} µs  p99 {d_p99:>6.0} µs"
    );
    println!(
        "  through steward gateway:   {g_rps:>8.0} req/s  p50 {g_p50:>6.0} µs  p99 {g_p99:>6.0} µs{}",
        refused_note(gateway_refused)
    );
    let (_, d1_p50, d1_p99) = direct1.medians();
    let (g1_rps, g1_p50, g1_p99) = through1.medians();
    println!(
        "    throughput {:.2} of direct (target >= 0.60); under this load added p50 {:.0} µs, p99 {:.0} µs",
        g_rps / d_rps,
        g_p50 - d_p50,
        g_p99 - d_p99
    );
    println!(
        "  one connection (no queueing): direct p50 {d1_p50:.0} µs p99 {d1_p99:.0} µs; gateway p50 {g1_p50:.0} µs p99 {g1_p99:.0} µs ({g1_rps:.0} req/s)"
    );
    println!(
        "    added latency p50 {:.0} µs (target <= 150: {:.2}x), p99 {:.0} µs (target <= 1000: {:.2}x)",
        g1_p50 - d1_p50,
        (g1_p50 - d1_p50) / 150.0,
        g1_p99 - d1_p99,
        (g1_p99 - d1_p99) / 1000.0
    );
    let (md_rps, md_p50, md_p99) = mcp_direct1.medians();
    let (mg_rps, mg_p50, mg_p99) = mcp_through1.medians();
    println!(
        "  MCP tools/call, one connection (the same allowed call straight to the MCP server and through the MCP point with the agent's token): direct p50 {md_p50:.0} µs p99 {md_p99:.0} µs ({md_rps:.0} req/s); MCP point p50 {mg_p50:.0} µs p99 {mg_p99:.0} µs ({mg_rps:.0} decisions/s)"
    );
    println!(
        "    added latency p50 {:.0} µs, p99 {:.0} µs; against the plain HTTP request's added p50 {:.0} µs: {:.2}x (target <= 1.5)",
        mg_p50 - md_p50,
        mg_p99 - md_p99,
        g1_p50 - d1_p50,
        (mg_p50 - md_p50) / (g1_p50 - d1_p50).max(0.001)
    );
    let (_, b1_p50, b1_p99) = bearer1.medians();
    let (_, h1_p50, _) = header1.medians();
    let (p1_rps, p1_p50, p1_p99) = dpop1.medians();
    let (v_p50, v_p99, v_inline) = (
        median(verify_p50),
        median(verify_p99),
        median(verify_inline),
    );
    println!(
        "  DPoP, one connection (the same GET in turn with the bearer token, the bearer token + an unchecked DPoP header, and a DPoP-bound token + a fresh proof; each after the same client work): bearer p50 {b1_p50:.0} µs p99 {b1_p99:.0} µs; DPoP p50 {p1_p50:.0} µs p99 {p1_p99:.0} µs ({p1_rps:.0} req/s)"
    );
    println!(
        "    the proof's bytes alone (bearer + an unchecked DPoP header) add p50 {:.0} µs; checking them adds the rest",
        h1_p50 - b1_p50
    );
    println!(
        "    DPoP adds p50 {:.0} µs, p99 {:.0} µs over bearer; one ES256 verify of a request's proof, timed between the requests: p50 {v_inline:.1} µs (added p50 = {:.2} of those, target <= 1); the same verify repeated in a tight loop: p50 {v_p50:.1} µs p99 {v_p99:.1} µs ({:.2} of those)",
        p1_p50 - b1_p50,
        p1_p99 - b1_p99,
        (p1_p50 - b1_p50) / v_inline.max(0.001),
        (p1_p50 - b1_p50) / v_p50.max(0.001)
    );
    let (_, t_b_p50, t_b_p99) = tls_bearer1.medians();
    let (t_c_rps, t_c_p50, t_c_p99) = tls_bound1.medians();
    println!(
        "  mutual TLS, one connection each (the same GET over TLS alternately with a bearer token and no client certificate, and with a certificate-bound token and its certificate): bearer p50 {t_b_p50:.0} µs p99 {t_b_p99:.0} µs; certificate-bound p50 {t_c_p50:.0} µs p99 {t_c_p99:.0} µs ({t_c_rps:.0} req/s)"
    );
    println!(
        "    the certificate binding adds p50 {:.0} µs, p99 {:.0} µs over bearer",
        t_c_p50 - t_b_p50,
        t_c_p99 - t_b_p99
    );
    if nginx.is_some() {
        let (n_rps, n_p50, n_p99) = peer.medians();
        println!(
            "  through nginx (plain proxy, no auth): {n_rps:>8.0} req/s  p50 {n_p50:>6.0} µs  p99 {n_p99:>6.0} µs; steward gateway / nginx throughput {:.2}, added p50 vs nginx {:.0} µs",
            g_rps / n_rps,
            g_p50 - n_p50
        );
    }
    for (name, figures) in [
        ("nginx auth_request endpoint", nginx_ep),
        ("RabbitMQ topic endpoint", rabbit),
        ("Envoy ext_authz Check (gRPC)", envoy),
    ] {
        let refused = figures.refused();
        let (rps, p50, p99) = figures.medians();
        println!(
            "  {name:<30} {rps:>8.0} decisions/s  p50 {p50:>6.0} µs  p99 {p99:>6.0} µs{}",
            refused_note(refused)
        );
    }
    println!(
        "  decision records shipped to the control plane: {} (refused {}, waiting {})",
        stats.shipped, stats.refused, stats.waiting
    );
    drop(nginx);
    server.stop()
}
