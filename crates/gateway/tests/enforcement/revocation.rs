//! Revoke once, verify everywhere: a revocation reaches every point of a
//! gateway over the push stream, is acknowledged, and no cached allow survives it; a
//! dropped stream catches up without gaps; a control plane out of reach past the
//! staleness limit makes every point fail closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_api::RouteId;

use super::{AUDIENCE, CALLER, ControlPlane, OUTSIDER, echo_upstream, gateway, gateway_at};

/// The `jti` of a token (its payload, unverified: the test made it).
pub fn jti(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// Revokes and waits (up to 10 s) until every live point acknowledged; returns the
/// verification and how long revoke + verify took.
pub async fn revoke_and_verify(cp: &ControlPlane, body: Value) -> (Value, Duration) {
    let started = Instant::now();
    let (st, r) = cp.route(RouteId::Revoke, &[], Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let epoch = r["revocation"]["epoch"].as_i64().unwrap();
    let (st, v) = cp
        .query(
            RouteId::RevocationVerification,
            &[&epoch.to_string()],
            "wait_secs=10",
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["complete"], true, "{v}");
    (v, started.elapsed())
}

/// Waits until the gateway's points have registered with the control plane.
pub async fn registered(cp: &ControlPlane, ids: &[&str]) {
    for _ in 0..200 {
        let (_, points) = cp.route(RouteId::EnforcementPoints, &[], None).await;
        let have: Vec<&str> = points["points"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["id"].as_str()).collect())
            .unwrap_or_default();
        if ids.iter().all(|id| have.contains(id)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("points {ids:?} never registered");
}

const POINTS: [&str; 4] = [
    "gateway:edge-test",
    "nginx:edge-test",
    "rabbitmq:edge-test",
    "ext_authz:edge-test",
];
const PATH: &str = "/v1/charges/ch_1";

/// What the proxy, the nginx endpoint and ext_authz answer for `token` on [`PATH`]:
/// (proxy status, proxy body, nginx status, ext_authz allowed).
async fn every_layer(
    gw: &steward_gateway::Running,
    token: &str,
) -> (StatusCode, Value, StatusCode, bool) {
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("http://{}{PATH}", gw.proxies[0]))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let proxy = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let nginx = http
        .get(format!("http://{}/nginx/auth", gw.auth.unwrap()))
        .header("x-original-method", "GET")
        .header("x-original-uri", PATH)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status();
    let mut grpc = super::ext_authz_client(gw).await;
    let answer = grpc
        .check(super::real_servers::check_request(
            "GET",
            PATH,
            Some(token),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    (
        proxy,
        body,
        nginx,
        answer.status.as_ref().unwrap().code == 0,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_layer_and_no_cached_allow_survives() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "").await;
    registered(&cp, &POINTS).await;
    let first = cp.token(CALLER, AUDIENCE).await;
    let second = cp.token(CALLER, AUDIENCE).await;

    // Warm every cache: the validator has seen the token's signature many times.
    for _ in 0..20 {
        let (proxy, body, nginx, envoy) = every_layer(&gw, &first).await;
        assert_eq!(
            (proxy, nginx, envoy),
            (StatusCode::OK, StatusCode::OK, true),
            "{body}"
        );
    }

    // Revoke that one token: every point acknowledges, then refuses it at once.
    let (v, took) = revoke_and_verify(
        &cp,
        json!({"kind": "token", "target": jti(&first), "reason": "token leaked"}),
    )
    .await;
    let acked: Vec<&str> = v["acknowledged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for id in POINTS {
        assert!(acked.contains(&id), "{id} did not acknowledge: {v}");
    }
    eprintln!("token revocation acknowledged by every point in {took:?}");
    let (proxy, body, nginx, envoy) = every_layer(&gw, &first).await;
    assert_eq!(proxy, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert_eq!(nginx, StatusCode::UNAUTHORIZED);
    assert!(!envoy, "ext_authz allowed a revoked token");
    // Only that token: the identity's other token still works.
    let (proxy, _, nginx, envoy) = every_layer(&gw, &second).await;
    assert_eq!(
        (proxy, nginx, envoy),
        (StatusCode::OK, StatusCode::OK, true)
    );

    // Revoke the identity: its remaining token stops too, everywhere.
    let _ = revoke_and_verify(
        &cp,
        json!({"kind": "identity", "target": CALLER, "reason": "host compromised"}),
    )
    .await;
    let (proxy, body, nginx, envoy) = every_layer(&gw, &second).await;
    assert_eq!(proxy, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(nginx, StatusCode::UNAUTHORIZED);
    assert!(!envoy);
    assert_eq!(gw.source.revocations().epoch(), 2);
    // The feed notes its acknowledgement when the control plane answers the report,
    // which can be a moment after the verification saw it recorded.
    for _ in 0..100 {
        if gw.feed.status().acknowledged_epoch == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.feed.status().acknowledged_epoch, 2);
    // The control plane lists the points as current.
    let (_, points) = cp.route(RouteId::EnforcementPoints, &[], None).await;
    assert_eq!(points["epoch"], 2);
    for p in points["points"].as_array().unwrap() {
        assert_eq!(p["epoch"], 2, "{p}");
        assert_eq!(p["live"], true, "{p}");
        assert_eq!(p["behind_epoch"], false, "{p}");
        assert_eq!(p["environment"], "prod", "{p}");
    }
    gw.shutdown(Duration::from_secs(2)).await;
}

/// A TCP relay in front of the control plane that can cut every connection and refuse
/// new ones, like a network partition.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().push(task);
            }
        });
        Self {
            addr,
            up,
            connections,
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.connections.lock().drain(..) {
            c.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_catches_up_and_a_silent_control_plane_fails_closed() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let target: SocketAddr = cp.base.trim_start_matches("http://").parse().unwrap();
    let relay = Relay::start(target).await;
    let gw = gateway_at(
        &cp,
        &format!("http://{}", relay.addr),
        upstream,
        "max_staleness_secs = 3\nreport_secs = 1\nstream_idle_secs = 2",
        "",
    )
    .await;
    registered(&cp, &POINTS).await;
    let token = cp.token(CALLER, AUDIENCE).await;
    let outsider = cp.token(OUTSIDER, AUDIENCE).await;
    let (proxy, _, _, _) = every_layer(&gw, &token).await;
    assert_eq!(proxy, StatusCode::OK);

    // Partition: the stream is cut, and two revocations happen meanwhile.
    relay.down();
    for body in [
        json!({"kind": "token", "target": jti(&token), "reason": "leaked"}),
        json!({"kind": "identity", "target": OUTSIDER, "reason": "retired"}),
    ] {
        let (st, r) = cp.route(RouteId::Revoke, &[], Some(body)).await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
    }
    let (_, v) = cp
        .route(RouteId::RevocationVerification, &["2"], None)
        .await;
    assert_eq!(
        v["complete"], false,
        "the cut-off points have not applied it: {v}"
    );

    // Past the staleness limit every layer fails closed, whatever the token.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let (proxy, body, nginx, envoy) = every_layer(&gw, &token).await;
    assert_eq!(proxy, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("max_staleness_secs"),
        "{body}"
    );
    assert_eq!(nginx, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!envoy);
    assert!(gw.source.status().stale);
    // An orchestrator takes it out of rotation: not ready, saying why; still live.
    let probe = |path: &'static str| {
        let url = format!("http://{}{path}", gw.auth.unwrap());
        async move { reqwest::get(url).await.unwrap() }
    };
    let ready = probe("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["ready"], false, "{ready}");
    assert!(
        ready["checks"]["bundle"]
            .as_str()
            .unwrap()
            .contains("max_staleness_secs"),
        "{ready}"
    );
    assert_eq!(probe("/livez").await.status(), StatusCode::OK);

    // The network heals: the stream resumes after its last epoch, both revocations apply
    // in order, and the points acknowledge.
    relay.up();
    let (st, v) = cp
        .query(RouteId::RevocationVerification, &["2"], "wait_secs=15")
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(gw.source.revocations().epoch(), 2);
    assert!(gw.feed.status().reconnects >= 1);
    gw.source.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(probe("/readyz").await.status(), StatusCode::OK);
    let (proxy, body, _, _) = every_layer(&gw, &token).await;
    assert_eq!(proxy, StatusCode::UNAUTHORIZED, "{body}");
    let (proxy, body, _, _) = every_layer(&gw, &outsider).await;
    assert_eq!(proxy, StatusCode::UNAUTHORIZED, "{body}");
    let fresh = cp.token(CALLER, AUDIENCE).await;
    let (proxy, body, _, _) = every_layer(&gw, &fresh).await;
    assert_eq!(proxy, StatusCode::OK, "{body}");
    gw.shutdown(Duration::from_secs(2)).await;
}

/// Decommissioning an identity revokes it in the same transaction: the epoch is pushed,
/// every point acknowledges it, and the identity's outstanding token is refused at every
/// layer with the revocation as the reason (not merely a policy deny).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommissioning_revokes_outstanding_tokens_everywhere() {
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "").await;
    registered(&cp, &POINTS).await;
    let token = cp.token(CALLER, AUDIENCE).await;
    let (proxy, body, nginx, envoy) = every_layer(&gw, &token).await;
    assert_eq!(
        (proxy, nginx, envoy),
        (StatusCode::OK, StatusCode::OK, true),
        "{body}"
    );
    let (st, record) = cp
        .route(
            RouteId::IdentityLifecycle,
            &[CALLER],
            Some(json!({"state": "decommissioned", "reason": "service retired"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{record}");
    assert_eq!(record["state"], "decommissioned");
    let (_, list) = cp.route(RouteId::ListRevocations, &[], None).await;
    let revocation = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == CALLER)
        .cloned()
        .unwrap_or_else(|| panic!("no revocation for the decommissioned identity: {list}"));
    assert_eq!(revocation["kind"], "identity");
    let epoch = revocation["epoch"].as_i64().unwrap();
    let (_, v) = cp
        .query(
            RouteId::RevocationVerification,
            &[&epoch.to_string()],
            "wait_secs=10",
        )
        .await;
    assert_eq!(v["complete"], true, "{v}");
    let (proxy, body, nginx, envoy) = every_layer(&gw, &token).await;
    assert_eq!(proxy, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert_eq!(nginx, StatusCode::UNAUTHORIZED);
    assert!(!envoy);
    gw.shutdown(Duration::from_secs(2)).await;
}
