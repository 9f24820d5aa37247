//! The demo's enforcement step: a `steward gateway` in front of a small payments API,
//! the same decision at the proxy and at the broker's auth endpoint, an event published
//! with a signed publisher header and handled by a consumer, and the whole trace.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use steward_api::{
    ApiClient, CreateCredentialRequest, CreatedCredential, EventQuery, IdentityRecord,
    RevokeRequest, RouteId,
};
use steward_enforce::trace::TraceContext;
use steward_messaging::{Consumer, Delivery, Destination, Publisher};
use steward_model::{Action, Entitlement, RevocationKind, Role};
use steward_token::{SigningKey, jws};

use crate::demo_tokens::{field, intends, workload};

const API: &str = "spiffe://acme.example/ns/payments/sa/refund-api";
const WORKER: &str = "spiffe://acme.example/ns/payments/sa/refund-worker";
const SHOP: &str = "spiffe://acme.example/ns/orders/sa/storefront";
const AUDIENCE: &str = "spiffe://acme.example/ns/payments/sa/payments-api";
const BROKER: &str = "spiffe://acme.example/broker/rabbitmq";
const TRACE: &str = "9f3c2a7d5e8b4c1fa0b1c2d3e4f50617";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Registers `id`, intending `intended`, with a fresh key and returns the key as PKCS#8.
async fn register(
    admin: &ApiClient,
    id: &str,
    plane: &str,
    owner: &str,
    intended: Vec<Entitlement>,
) -> Result<Vec<u8>> {
    let (key, pkcs8) = SigningKey::generate()?;
    let _: IdentityRecord = admin
        .create_identity(&workload(
            id,
            plane,
            owner,
            "registered by the demo's enforcement step",
            intended,
            "demo-1",
            &key,
        )?)
        .await?;
    Ok(pkcs8)
}

async fn token(admin: &ApiClient, id: &str, pkcs8: &[u8], audience: &str) -> Result<String> {
    let key = SigningKey::from_pkcs8(pkcs8)?;
    let endpoint = admin.url(RouteId::Token, &[]);
    let assertion = jws::encode(
        &key,
        "JWT",
        &json!({"iss": id, "sub": id, "aud": endpoint, "iat": now(), "exp": now() + 60,
                "jti": uuid::Uuid::new_v4().to_string()}),
    )?;
    let (status, body) = admin
        .token_request(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
            ("audience", audience),
        ])
        .await?;
    if !(200..300).contains(&status) {
        bail!("the token request for {id} was refused: {body}");
    }
    Ok(body
        .get("access_token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

/// A stand-in for the payments API behind the gateway: answers with what it was told.
async fn payments_api() -> Result<std::net::SocketAddr> {
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let h = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        axum::Json(json!({
            "identity": h("x-steward-identity"),
            "traceparent": h("traceparent"),
            "saw_authorization": headers.contains_key("authorization"),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Starts a `steward gateway` named `name` in prod with the points of `sections`,
/// following the demo's control plane with a fresh ingestor credential (`label`); returns
/// it once its first policy bundle is in, with that credential.
pub(crate) async fn start_gateway(
    admin: &ApiClient,
    name: &str,
    label: &str,
    sections: &str,
) -> Result<(steward_gateway::Running, CreatedCredential)> {
    let ingestor: CreatedCredential = admin
        .create_credential(&CreateCredentialRequest::new(label, Role::Ingestor))
        .await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("credential"), &ingestor.token)?;
    let config = steward_gateway::GatewayConfig::parse(
        &format!(
            "name = \"{name}\"\nenvironment = \"prod\"\n[control_plane]\nurl = \"{base}\"\ncredential_file = \"credential\"\n{sections}",
            base = admin.base()
        ),
        dir.path(),
    )?;
    let gw = steward_gateway::start(config).await?;
    gw.source
        .wait_ready(Duration::from_secs(20))
        .await
        .map_err(anyhow::Error::msg)?;
    Ok((gw, ingestor))
}

/// What the enforcement step leaves running for the revocation step.
pub(crate) struct Running {
    gw: steward_gateway::Running,
    api_key: Vec<u8>,
}

pub(crate) async fn enforcement(admin: &ApiClient, au: &ApiClient) -> Result<Running> {
    // Two workloads with their own keys (the refund worker is in the example repo). The
    // refund API intends what the payments plane granted it in the tokens step; the
    // storefront intends nothing of the payments plane, and gets nothing.
    let api_key = register(
        admin,
        API,
        "payments",
        "payments-team",
        vec![
            intends("payments.refund", &[Action::Write, Action::Publish])?,
            intends("payments.read", &[Action::Read])?,
        ],
    )
    .await?;
    let shop_key = register(admin, SHOP, "commerce", "commerce-team", Vec::new()).await?;
    let upstream = payments_api().await?;
    let (gw, ingestor) = start_gateway(
        admin,
        "edge-demo",
        "edge gateway (steward gateway)",
        &format!(
            r#"[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
audience = "{AUDIENCE}"
[auth]
listen = "127.0.0.1:0"
rabbitmq_audience = "{BROKER}"
"#
        ),
    )
    .await?;
    let status = gw.source.status();
    println!(
        "steward gateway `edge-demo` runs a proxy on http://{} in front of the payments API, deciding in process with the signed policy bundle (policy version {}).",
        gw.proxies.first().context("no proxy")?,
        status.policy_version.unwrap_or(0)
    );

    let http = reqwest::Client::new();
    let proxy = format!("http://{}", gw.proxies.first().context("no proxy")?);
    let api_token = token(admin, API, &api_key, AUDIENCE).await?;
    let shop_token = token(admin, SHOP, &shop_key, AUDIENCE).await?;

    // 1. A refund request through the gateway, with a trace id.
    let resp = http
        .post(format!("{proxy}/v1/charges/ch_42/refunds"))
        .bearer_auth(&api_token)
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .header(
            "x-steward-identity",
            "spiffe://acme.example/ns/payments/sa/admin",
        )
        .send()
        .await?;
    let status = resp.status();
    let seen: Value = resp.json().await?;
    println!(
        "{API} POST /v1/charges/ch_42/refunds → {status}; the API sees identity {} (the client's forged X-Steward-Identity was dropped), credential forwarded: {}, traceparent {}.",
        field(&seen, "identity"),
        seen.get("saw_authorization")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        field(&seen, "traceparent")
    );
    let resp = http
        .post(format!("{proxy}/v1/charges/ch_42/refunds"))
        .bearer_auth(&shop_token)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    println!(
        "{SHOP} asks the same → {status}: {}",
        field(&body, "reason")
    );
    let resp = http
        .post(format!("{proxy}/v1/charges/ch_42/refunds"))
        .send()
        .await?;
    println!("Without a token → {}.", resp.status());

    // 2. The API publishes a refund command: signed publisher header, the request's trace.
    let trace =
        TraceContext::parse(field(&seen, "traceparent")).unwrap_or_else(TraceContext::new_root);
    let publisher = Publisher::new(API, SigningKey::from_pkcs8(&api_key)?, 300);
    let destination = Destination {
        vhost: "/payments".into(),
        exchange: "payments.commands".into(),
        routing_key: "refund.requested".into(),
    };
    let body = br#"{"charge":"ch_42","amount_minor":1200}"#;
    let headers = publisher.headers(body, &destination, Some(&trace))?;
    println!(
        "The payments API publishes refund.requested with headers traceparent and steward-publisher (a JWS by its own key).",
    );
    // RabbitMQ would ask the gateway's HTTP auth backend; the demo asks it the same way
    // (CI drives a real broker).
    let auth = format!("http://{}", gw.auth.context("no auth listener")?);
    for (who, key) in [(API, &api_key), (SHOP, &shop_key)] {
        let broker_token = token(admin, who, key, BROKER).await?;
        let login = http
            .post(format!("{auth}/rabbitmq/user"))
            .form(&[("username", who), ("password", broker_token.as_str())])
            .send()
            .await?
            .text()
            .await?;
        let publish = http
            .post(format!("{auth}/rabbitmq/topic"))
            .form(&[
                ("username", who),
                ("vhost", "/payments"),
                ("resource", "topic"),
                ("name", "payments.commands"),
                ("permission", "write"),
                ("routing_key", "refund.requested"),
            ])
            .send()
            .await?
            .text()
            .await?;
        println!(
            "RabbitMQ asks Steward for {who}: login {login}, publish to payments.commands/refund.requested {publish}."
        );
    }

    // 3. The refund worker consumes: verifies the publisher, decides both sides.
    let source = steward_enforce::BundleSource::new(
        steward_enforce::SourceConfig {
            url: admin.base().to_owned(),
            credential: ingestor.token.clone().into(),
            point: "refund-worker".into(),
            refresh: Duration::from_secs(5),
            max_staleness: Duration::from_secs(300),
            anchor: Vec::new(),
        },
        reqwest::Client::new(),
    );
    source.refresh().await?;
    let log = steward_enforce::DecisionLog::ship_to(
        admin.base(),
        ingestor.token.clone(),
        1000,
        steward_enforce::DEFAULT_SHIP_INTERVAL,
        reqwest::Client::new(),
    );
    let consumer = Consumer::new(
        WORKER,
        steward_enforce::EnforcementPoint::new(
            "consumer",
            "refund-worker",
            "prod",
            source,
            log.clone(),
        ),
    );
    let delivery = |headers: &BTreeMap<String, String>, body: &[u8]| {
        consumer.accept(&Delivery {
            headers,
            body,
            destination: &destination,
            queue: "payments.refund-requests",
        })
    };
    match delivery(&headers, body) {
        Ok(a) => println!(
            "The refund worker accepts the message: publisher {} verified with its registered key, trace {}.",
            a.publisher, a.trace.trace_id
        ),
        Err(r) => println!("The refund worker refused the message: {}", r.reason),
    }
    if let Err(r) = delivery(&headers, br#"{"charge":"ch_42","amount_minor":990000}"#) {
        println!(
            "A copy whose amount was changed in transit is refused: {}.",
            r.reason
        );
    }
    let left =
        log.flush(Duration::from_secs(10)).await + gw.log.flush(Duration::from_secs(10)).await;
    if left > 0 {
        println!("({left} decision records are still on their way to the evidence log.)");
    }

    // 4. The trace, as `steward audit trace` prints it.
    print_trace(au, TRACE).await?;
    Ok(Running { gw, api_key })
}

/// Prints the trace `trace_id` as `steward audit trace` does, from the evidence log.
pub(crate) async fn print_trace(au: &ApiClient, trace_id: &str) -> Result<()> {
    let events: Vec<steward_api::StoredEvent> = au
        .audit_events(&EventQuery {
            correlation_id: Some(trace_id.into()),
            ..EventQuery::default()
        })
        .await?;
    println!("\n$ steward audit trace {trace_id}");
    print!("{}", crate::commands::trace_text(trace_id, &events));
    Ok(())
}

/// Revokes the payments API mid-traffic: every point of the gateway acknowledges, and the
/// next request is refused.
pub(crate) async fn revocation(admin: &ApiClient, running: Running) -> Result<()> {
    let Running { gw, api_key } = running;
    let proxy = format!("http://{}", gw.proxies.first().context("no proxy")?);
    let api_token = token(admin, API, &api_key, AUDIENCE).await?;
    // Traffic: the payments API calls through the gateway every 10 ms.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let traffic = tokio::spawn({
        let (proxy, api_token) = (proxy.clone(), api_token.clone());
        async move {
            let http = reqwest::Client::new();
            let mut seen: Vec<(std::time::Instant, u16)> = Vec::new();
            while !*stopped.borrow_and_update() {
                // Each request counts from when it was sent.
                let sent = std::time::Instant::now();
                if let Ok(r) = http
                    .get(format!("{proxy}/v1/charges/ch_42"))
                    .bearer_auth(&api_token)
                    .send()
                    .await
                {
                    seen.push((sent, r.status().as_u16()));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = stopped.changed() => {}
                }
            }
            seen
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("$ steward revoke identity {API} --reason \"credential leak suspected\" --verify");
    let started = std::time::Instant::now();
    let revoked: steward_api::RevokeResponse = admin
        .revoke(&RevokeRequest {
            kind: RevocationKind::Identity,
            target: API.into(),
            reason: "credential leak suspected".into(),
            decommission: false,
        })
        .await?;
    let verification: steward_api::Verification = admin
        .revocation_verification(revoked.revocation.epoch, Some(10))
        .await?;
    let acknowledged = started.elapsed();
    print!(
        "Revoked identity `{API}` at epoch {}: suspended, pushed to every connected point.\n{}",
        revoked.revocation.epoch,
        crate::revoke_cmd::verification_text(&verification)
    );
    println!(
        "Revoke call to last acknowledgement: {} ms (the token would otherwise have stayed valid for up to its lifetime).",
        acknowledged.as_millis()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(true);
    let seen = traffic.await.context("the traffic task failed")?;
    let before = seen
        .iter()
        .filter(|(t, s)| *t < started && *s == 200)
        .count();
    let after_ack = seen
        .iter()
        .filter(|(t, _)| *t > started + acknowledged)
        .collect::<Vec<_>>();
    let refused_after = after_ack.iter().filter(|(_, s)| *s == 401).count();
    println!(
        "Traffic through the gateway: {before} requests allowed before the revocation; after the acknowledgement {refused_after} of {} refused (401).",
        after_ack.len()
    );
    let resp = reqwest::Client::new()
        .get(format!("{proxy}/v1/charges/ch_42"))
        .bearer_auth(&api_token)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    println!(
        "The next request with the same token → {status}: {}",
        field(&body, "reason")
    );
    let points: steward_api::PointsResponse = admin.enforcement_points().await?;
    println!("\n$ steward status   (enforcement points)");
    print!("{}", crate::output::points_text(&points));
    gw.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
