//! A gateway that holds an identity of its own: no static `stw_` secret, a short-lived
//! token by `private_key_jwt` that it renews itself, every control-plane call made with
//! it — and revoking the identity cuts the gateway off (it fails closed).

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_api::RouteId;
use steward_gateway::GatewayConfig;
use steward_token::SigningKey;

use super::revocation::registered;
use super::{AUDIENCE, CALLER, ControlPlane, echo_upstream};

/// The gateway's own identity.
const EDGE: &str = "spiffe://acme.example/ns/payments/sa/edge-gateway";
const PATH: &str = "/v1/charges/ch_1";

/// Registers [`EDGE`] granted `bundle` and `report` for point `edge-id`, with tokens
/// living `ttl` seconds; returns its private key as a PKCS#8 PEM.
async fn register_edge(cp: &ControlPlane, ttl: u64) -> String {
    let (key, pkcs8) = SigningKey::generate().unwrap();
    let jwk = key.public_key().jwk();
    let (st, body) = cp
        .route(
            RouteId::CreateIdentity,
            &[],
            Some(json!({
                "spiffe_id": EDGE, "plane": "payments", "owner": "payments-team",
                "environment": "prod", "kind": "service", "classification": "internal",
                "credentials": {
                    "token_ttl_secs": ttl,
                    "public_keys": [{"kid": "edge-1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}],
                    "enforcement_point": {"roles": ["bundle", "report"], "points": ["edge-id"]},
                },
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// How many tokens were issued to [`EDGE`].
async fn issued_to_edge(cp: &ControlPlane) -> usize {
    let (st, events) = cp
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=credential.issued&limit=1000",
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["principal"] == EDGE)
        .count()
}

async fn through_proxy(gw: &steward_gateway::Running, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("http://{}{PATH}", gw.proxies[0]))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_runs_on_its_own_identity_renews_and_is_cut_off_by_revocation() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let pem = register_edge(&cp, 3).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("edge.pem"), pem).unwrap();
    let text = format!(
        r#"
name = "edge-id"
environment = "prod"
[control_plane]
url = "{base}"
identity = "{EDGE}"
key_file = "edge.pem"
refresh_secs = 1
max_staleness_secs = 4
report_secs = 1
[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
audience = "{AUDIENCE}"
"#,
        base = cp.base,
    );
    let config = GatewayConfig::parse(&text, dir.path()).unwrap();
    assert!(
        !format!("{config:?}").contains("PRIVATE KEY"),
        "the key never reaches a log line"
    );
    let gw = steward_gateway::start(config).await.unwrap();
    gw.source.wait_ready(Duration::from_secs(20)).await.unwrap();
    registered(&cp, &["gateway:edge-id"]).await;
    let (_, points) = cp.route(RouteId::EnforcementPoints, &[], None).await;
    let point = points["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "gateway:edge-id")
        .cloned()
        .unwrap();
    assert_eq!(point["credential"], EDGE, "{point}");

    let caller = cp.token(CALLER, AUDIENCE).await;
    assert_eq!(through_proxy(&gw, &caller).await, StatusCode::OK);

    // Three-second tokens: past several lifetimes the gateway renewed by itself and
    // still decides, with a fresh bundle and its reports and records accepted.
    let first = issued_to_edge(&cp).await;
    assert!(first >= 1, "the gateway got a token");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let renewed = issued_to_edge(&cp).await;
    assert!(
        renewed >= first + 2,
        "renewed before each expiry ({first} then {renewed})"
    );
    assert_eq!(through_proxy(&gw, &caller).await, StatusCode::OK);
    let status = gw.source.status();
    assert!(!status.stale, "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, events) = cp
            .query(RouteId::AuditEvents, &[], "kind=access.decision&limit=1000")
            .await;
        let shipped = events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == Value::String(format!("enforcement:{EDGE}")));
        if shipped {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway's decision records arrive under its identity"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Revoking the identity cuts the gateway off: its token is refused at once, its
    // bundle and revocation feed go unconfirmed, and past max_staleness it refuses all.
    let (st, body) = cp
        .route(
            RouteId::Revoke,
            &[],
            Some(json!({"kind": "identity", "target": EDGE, "reason": "gateway host retired"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = through_proxy(&gw, &caller).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a revoked gateway identity fails closed (still {status})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, refused) = cp
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=credential.refused&limit=1000",
        )
        .await;
    assert!(
        refused.as_array().unwrap().iter().any(|e| {
            e["action"] == "enforcement.point_refused" && e["details"]["claimed_subject"] == EDGE
        }),
        "the refusals of the revoked gateway are evidence: {refused}"
    );
    gw.shutdown(Duration::from_secs(1)).await;
}
