//! The admin API over real HTTP, on both store backends: authentication, roles, bad
//! input, and the OpenAPI document kept in step with the router.

// Test helpers outside `#[test]` functions fail the test on any error, like the tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use steward_api::RouteId;
use steward_governance::read_dir;
use steward_server::config::{FileConfig, Overrides};
use steward_server::{LocalServer, bootstrap};
use steward_store::Store;
use steward_testkit::{example_repo, postgres_url};

struct Env {
    base: String,
    admin: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _server: LocalServer,
}

/// Small body limit so the 413 path is cheap to reach.
const TEST_MAX_BODY: usize = 8 * 1024;

async fn start(database_url: Option<String>) -> Env {
    start_with(database_url, "").await
}

/// [`start`] with more configuration (TOML appended to the test's own).
async fn start_with(database_url: Option<String>, extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut file = FileConfig::parse(
        "test",
        &format!("[limits]\nmax_body_bytes = {TEST_MAX_BODY}\n{extra}"),
    )
    .unwrap();
    file.trust_domain = Some("acme.example".into());
    let config = file
        .resolve(Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().into()),
            database_url,
            trust_domain: None,
        })
        .unwrap();
    let server = LocalServer::start(config).await.unwrap();
    assert!(
        bootstrap(server.store()).await.unwrap().is_none(),
        "bootstrap happens once"
    );
    Env {
        base: server.base.clone(),
        admin: server.admin_token.clone(),
        http: reqwest::Client::new(),
        _dir: dir,
        _server: server,
    }
}

/// The path of `route` with `params` filled in (percent-encoded), as the router spells it.
fn path(route: RouteId, params: &[&str]) -> String {
    route.route().path_with(params)
}

/// The method of `route`, as reqwest spells it.
fn method_of(route: RouteId) -> Method {
    Method::from_bytes(route.route().method.as_str().as_bytes()).unwrap()
}

impl Env {
    /// The absolute URL of `route` with `params` filled in.
    fn url(&self, route: RouteId, params: &[&str]) -> String {
        format!("{}{}", self.base, path(route, params))
    }

    /// Calls `route` with its method and `params` filled in.
    async fn route(
        &self,
        route: RouteId,
        params: &[&str],
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(method_of(route), &path(route, params), token, body)
            .await
    }

    /// Calls `route` with `query` (`k=v&…`, already encoded) appended and no body.
    async fn query(
        &self,
        route: RouteId,
        params: &[&str],
        query: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let path = format!("{}?{query}", path(route, params));
        self.call(method_of(route), &path, token, None).await
    }

    /// Sends `method` to `path` as given: for requests the route table would not
    /// produce (an unknown path, a wrong method); [`Env::route`] otherwise.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn apply_example(&self) {
        self.apply_files(&read_dir(&example_repo()).unwrap()).await;
    }

    /// Applies a governance repository as the bootstrap admin; it must succeed.
    async fn apply_files(&self, files: &[steward_governance::SourceFile]) {
        let (st, body) = self
            .route(
                RouteId::ConfigApply,
                &[],
                Some(&self.admin),
                Some(json!({ "files": files })),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
    }

    async fn credential(&self, name: &str, role: &str, plane: Option<&str>) -> String {
        let mut body = json!({ "name": name, "role": role });
        if let Some(p) = plane {
            body["plane"] = json!(p);
        }
        let (st, resp) = self
            .route(
                RouteId::CreateCredential,
                &[],
                Some(&self.admin),
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{resp}");
        assert!(
            resp["credential"].get("token_hash").is_none(),
            "hashes never leave the server"
        );
        resp["token"].as_str().unwrap().to_owned()
    }
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Slow and silent clients cannot hold the control plane's listener: a partial head, a
/// connection that sends nothing and a body that trickles in are cut at their deadlines,
/// and a crowd of them (more than the connection cap) delays a normal request only until
/// they are cut.
#[tokio::test]
async fn slow_clients_are_cut_and_cannot_hold_the_listener() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = start_with(
        None,
        "header_read_timeout_secs = 1\nbody_read_timeout_secs = 1\nmax_connections = 16\n",
    )
    .await;
    let addr: std::net::SocketAddr = env.base.trim_start_matches("http://").parse().unwrap();
    async fn answer_within(s: &mut tokio::net::TcpStream, secs: u64) -> Option<String> {
        let mut buf = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(secs),
            s.read_to_end(&mut buf),
        )
        .await
        .ok()
        .map(|_| String::from_utf8_lossy(&buf).into_owned())
    }
    let started = std::time::Instant::now();
    let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(
            format!(
                "GET {} HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                path(RouteId::Status, &[])
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        answer_within(&mut partial, 5).await.is_some(),
        "a partial head was not cut"
    );
    assert!(
        answer_within(&mut silent, 5).await.is_some(),
        "a silent connection was not cut"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A body sent a byte at a time is cut at its deadline, with the reason.
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(
            format!(
                "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{",
                path(RouteId::CreateCredential, &[]),
                env.admin
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = String::new();
    while started.elapsed() < std::time::Duration::from_secs(6) {
        if trickle.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 2048];
        if let Ok(Ok(n)) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            trickle.read(&mut buf),
        )
        .await
        {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || answer.contains("did not arrive") {
                break;
            }
        }
    }
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(answer.contains("did not arrive within 1s"), "{answer:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Forty slow clients, more than the cap of 16: a normal request still gets through
    // once they are cut.
    let mut crowd = Vec::new();
    for _ in 0..40 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        crowd.push(s);
    }
    let started = std::time::Instant::now();
    let (st, _) = env
        .route(RouteId::Status, &[], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    drop(crowd);
}

/// When the evidence log cannot take decision records (here: another process holds
/// SQLite's write lock and the writer's small queue fills), AuthZEN answers deny with the
/// reason, after waiting at most one grace per request, a batch included; once the store
/// is back, decisions are allowed again and every accepted record is chained.
#[tokio::test]
async fn authzen_denies_when_the_evidence_log_cannot_take_the_record() {
    use sqlx::{Connection, Executor};
    let env = start_with(None, "[evidence]\nqueue_capacity = 2\n").await;
    env.apply_example().await;
    let allowed = evaluation(
        ORDERS_API,
        json!({"type": "capability", "id": "payments.charge"}),
        "invoke",
        json!({"environment": "prod"}),
    );
    let ask = |body: Value| {
        let env = &env;
        async move {
            let started = std::time::Instant::now();
            let (st, resp) = env
                .route(RouteId::Evaluation, &[], Some(&env.admin), Some(body))
                .await;
            assert_eq!(st, StatusCode::OK, "{resp}");
            (resp, started.elapsed())
        }
    };
    assert_eq!(ask(allowed.clone()).await.0["decision"], true);

    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        env._dir.path().join(steward_store::SQLITE_FILE).display()
    );
    let mut blocker = sqlx::AnyConnection::connect(&url).await.unwrap();
    blocker.execute("BEGIN EXCLUSIVE").await.unwrap();
    // The writer takes what is queued and waits for the lock; then the queue fills.
    let mut denied = None;
    for _ in 0..50 {
        let (resp, took) = ask(allowed.clone()).await;
        if resp["decision"] == false {
            denied = Some((resp, took));
            break;
        }
    }
    let (resp, took) = denied.expect("a full evidence queue must turn decisions into denies");
    let reasons = resp["context"]["reasons"].to_string();
    assert!(
        reasons.contains("the evidence log cannot take the decision record"),
        "{reasons}"
    );
    assert!(
        took >= steward_server::evidence::RECORD_GRACE,
        "the record waited for room first ({took:?})"
    );

    // A batch of 50 waits for one grace in all, not one per evaluation.
    let started = std::time::Instant::now();
    let (st, batch) = env
        .route(
            RouteId::Evaluations,
            &[],
            Some(&env.admin),
            Some(json!({
                "subject": allowed["subject"],
                "action": allowed["action"],
                "context": allowed["context"],
                "evaluations": vec![json!({"resource": allowed["resource"]}); 50],
            })),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(st, StatusCode::OK, "{batch}");
    let decisions: Vec<&Value> = batch["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["decision"])
        .collect();
    assert_eq!(decisions, vec![&json!(false); 50]);
    assert!(
        took < steward_server::evidence::RECORD_GRACE * 8,
        "50 evaluations shared one grace ({took:?})"
    );

    blocker.execute("COMMIT").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if ask(allowed.clone()).await.0["decision"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "decisions are allowed again once the store is back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (st, report) = env
        .route(RouteId::AuditVerify, &[], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $(#[tokio::test] async fn $name() { super::$name(super::start(None).await).await; })* }
        mod on_postgres { $(#[tokio::test] async fn $name() {
            if let Some(url) = steward_testkit::postgres_url(stringify!($name)).await {
                super::$name(super::start(Some(url)).await).await;
            }
        })* }
    };
}

#[path = "api/tokens.rs"]
mod tokens;
use tokens::{
    a_client_assertion_is_single_use, a_suspended_identity_gets_no_token,
    an_issuance_is_evidence_without_the_token, dpop_binds_tokens_to_the_client_key,
    every_refusal_names_its_oauth_error_and_is_evidence,
    federation_maps_trusted_tokens_onto_identities,
    introspection_answers_the_audience_and_admins_only,
    introspection_sees_revocation_suspension_and_expiry, jit_approvals_by_listed_approvers,
    jit_credentials_follow_the_workflow_and_policy,
    key_rotation_signs_anew_and_keeps_old_tokens_valid, legacy_client_secrets_are_flagged,
    malformed_token_requests_are_refused, token_exchange_delegates_one_hop_at_a_time,
    token_exchange_takes_a_dpop_bound_subject_token_with_its_proof,
    tokens_are_discoverable_issued_and_third_party_valid,
};

#[path = "api/revocation.rs"]
mod revocation;
use revocation::{
    revocations_are_pushed_acknowledged_and_verified,
    verification_without_a_live_point_is_refused_at_once,
};
#[path = "api/points.rs"]
mod points;
use points::{
    a_point_identity_calls_with_its_own_token,
    admin_credentials_expire_and_lasting_ones_are_findings,
};
#[path = "api/posture.rs"]
mod posture;
use posture::{
    access_reviews_attest_and_revoke, compliance_report_maps_controls_to_evidence,
    posture_reports_inventory_and_findings, the_timeline_counts_allowed_and_denied_apart,
};

both_backends!(
    a_point_identity_calls_with_its_own_token,
    admin_credentials_expire_and_lasting_ones_are_findings,
    revocations_are_pushed_acknowledged_and_verified,
    verification_without_a_live_point_is_refused_at_once,
    posture_reports_inventory_and_findings,
    access_reviews_attest_and_revoke,
    compliance_report_maps_controls_to_evidence,
    the_timeline_counts_allowed_and_denied_apart,
    tokens_are_discoverable_issued_and_third_party_valid,
    a_client_assertion_is_single_use,
    every_refusal_names_its_oauth_error_and_is_evidence,
    malformed_token_requests_are_refused,
    an_issuance_is_evidence_without_the_token,
    key_rotation_signs_anew_and_keeps_old_tokens_valid,
    a_suspended_identity_gets_no_token,
    token_exchange_delegates_one_hop_at_a_time,
    token_exchange_takes_a_dpop_bound_subject_token_with_its_proof,
    dpop_binds_tokens_to_the_client_key,
    legacy_client_secrets_are_flagged,
    federation_maps_trusted_tokens_onto_identities,
    jit_credentials_follow_the_workflow_and_policy,
    jit_approvals_by_listed_approvers,
    introspection_answers_the_audience_and_admins_only,
    introspection_sees_revocation_suspension_and_expiry,
    every_admin_route_needs_a_credential,
    bad_input_gets_json_errors,
    invalid_repository_is_refused_with_locations,
    plane_admin_stays_in_its_planes,
    identity_checks_agree_between_repository_and_api,
    auditor_reads_but_never_writes,
    changes_are_recorded_with_before_and_after,
    evidence_endpoints_search_verify_and_ingest,
    authzen_decisions_follow_the_layers_and_are_evidence,
    authzen_refuses_malformed_and_denies_the_unknown,
    policy_publication_versions_and_rollback,
);

/// Every (method, path) the router serves: the route table the router is built from.
fn routes() -> Vec<(String, String)> {
    let mut out: Vec<_> = steward_api::ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
        .collect();
    out.sort();
    out
}

#[test]
fn openapi_documents_every_route_and_nothing_else() {
    let spec: Value = yaml_serde::from_str(include_str!("../../../docs/openapi.yaml")).unwrap();
    let mut documented = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    documented.sort();
    let served = routes();
    assert!(served.len() >= 15, "route extraction broke: {served:?}");
    assert_eq!(documented, served);
    // What the document says about credentials is what the table says: `security: []`
    // exactly on the routes that take no admin credential.
    for route in steward_api::ROUTES {
        let op = &spec["paths"][route.path][route.method.as_str().to_lowercase()];
        let open = op["security"].as_array().is_some_and(|s| s.is_empty());
        assert_eq!(
            open,
            route.access != steward_api::Access::Credential,
            "{} {}: `security` in docs/openapi.yaml disagrees with the route table",
            route.method.as_str(),
            route.path
        );
    }
}

async fn every_admin_route_needs_a_credential(env: Env) {
    // The orchestrator's probes need none; readiness names each check.
    let (st, ready) = env
        .call(Method::GET, &path(RouteId::Readyz, &[]), None, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true, "{ready}");
    for check in ["store", "policy_engine", "signing_keys", "evidence_writer"] {
        assert_eq!(ready["checks"][check], "ok", "{ready}");
    }
    for route in steward_api::ROUTES {
        let path = route.path_with(&["x"]);
        let method = method_of(route.id);
        let (st, body) = env.call(method.clone(), &path, None, Some(json!({}))).await;
        if route.access == steward_api::Access::Public {
            assert_eq!(st, StatusCode::OK, "{path}");
            continue;
        }
        if route.access == steward_api::Access::OAuthClient {
            // The token endpoint authenticates clients, not admins (RFC 6749 §5.2).
            assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "invalid_request", "{body}");
            continue;
        }
        assert_error(st, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        let (st, _) = env
            .call(method, &path, Some("stw_000000000000_wrong"), None)
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Malformed, foreign, duplicated and oversized credentials.
    let url = env.url(RouteId::Whoami, &[]);
    for header in [
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Bearer",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "bearer stw_x_y",
        &format!("Bearer {}", "a".repeat(5000)),
    ] {
        let resp = env
            .http
            .get(&url)
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert!(resp.headers().get("www-authenticate").is_some());
    }
    let resp = env
        .http
        .get(&url)
        .header("Authorization", format!("Bearer {}", env.admin))
        .header("Authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "two Authorization headers are refused"
    );
    // A tampered secret with a valid id fails.
    let mut tampered = env.admin.clone();
    tampered.pop();
    tampered.push(if env.admin.ends_with('A') { 'B' } else { 'A' });
    let (st, _) = env.route(RouteId::Whoami, &[], Some(&tampered), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, me) = env
        .route(RouteId::Whoami, &[], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(me["role"], "central-admin");
    // Revoked credentials stop working at once.
    let token = env.credential("temp", "auditor", None).await;
    let id = token.split('_').nth(1).unwrap().to_owned();
    let (st, _) = env
        .route(RouteId::RevokeCredential, &[&id], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = env.route(RouteId::Whoami, &[], Some(&token), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

async fn bad_input_gets_json_errors(env: Env) {
    let t = Some(env.admin.as_str());
    let raw = |body: &'static str, ctype: &'static str| {
        env.http
            .post(env.url(RouteId::CreateIdentity, &[]))
            .bearer_auth(&env.admin)
            .header("Content-Type", ctype)
            .body(body)
            .send()
    };
    let resp = raw("{not json", "application/json").await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let resp = raw("{}", "text/plain").await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big =
        Box::leak(format!("{{\"x\":\"{}\"}}", "a".repeat(TEST_MAX_BODY * 2)).into_boxed_str());
    let resp = raw(big, "application/json").await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "too_large");
    let (st, body) = env.route(RouteId::CreateIdentity, &[], t, Some(json!({ "spiffe_id": "spiffe://acme.example/a", "plane": "root", "owner": "o", "environment": "dev", "kind": "robot" }))).await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        body["message"].as_str().unwrap().contains("robot"),
        "{body}"
    );
    let (st, body) = env.route(RouteId::CreateIdentity, &[], t, Some(json!({ "spiffe_id": "spiffe://evil.example/a", "plane": "root", "owner": "o", "environment": "dev", "kind": "service" }))).await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("outside the trust domain"),
        "{body}"
    );
    let (st, body) = env.route(RouteId::CreateIdentity, &[], t, Some(json!({ "spiffe_id": "spiffe://acme.example/a", "plane": "root", "owner": "o", "environment": "dev", "kind": "service", "extra": 1 }))).await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    for q in [
        "limit=0",
        "limit=100000",
        "kind=robot",
        "state=zombie",
        "plane=Bad%20Plane",
        "unknown=1",
        "orphaned=maybe",
    ] {
        let (st, body) = env.query(RouteId::ListIdentities, &[], q, t).await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // An endpoint the table does not have, and a method its route does not take.
    let (st, body) = env.call(Method::GET, "/admin/v1/nope", t, None).await;
    assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
    let (st, body) = env.call(Method::PUT, "/admin/v1/identities", t, None).await;
    assert_error(
        st,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let (st, body) = env
        .route(
            RouteId::GetIdentity,
            &["spiffe://acme.example/none"],
            t,
            None,
        )
        .await;
    assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
    let (st, body) = env.route(RouteId::RemoveOwner, &["ghost"], t, None).await;
    assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
    let (st, body) = env
        .route(
            RouteId::CreateCredential,
            &[],
            t,
            Some(json!({ "name": "x", "role": "plane-admin" })),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (st, body) = env
        .route(
            RouteId::CreateCredential,
            &[],
            t,
            Some(json!({ "name": "x", "role": "plane-admin", "plane": "ghost" })),
        )
        .await;
    assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
}

async fn invalid_repository_is_refused_with_locations(env: Env) {
    let mut files = read_dir(&example_repo()).unwrap();
    files.push(steward_governance::SourceFile { path: "identities/bad.yaml".into(), content: "identities:\n  - spiffe_id: spiffe://acme.example/x\n    plane: payments\n    owner: ghost\n    environment: prod\n    kind: service\n".into() });
    files.push(steward_governance::SourceFile {
        path: "planes-extra.yaml".into(),
        content: "planes:\n  - id: payments\n".into(),
    });
    let (st, body) = env
        .route(
            RouteId::ConfigApply,
            &[],
            Some(&env.admin),
            Some(json!({ "files": files })),
        )
        .await;
    assert_error(
        st,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_configuration",
    );
    let diags = body["diagnostics"].as_array().unwrap();
    assert!(
        diags.iter().any(|d| d["file"] == "planes-extra.yaml"
            && d["line"] == 2
            && d["message"].as_str().unwrap().contains("declared twice")),
        "{body}"
    );
    let (_, status) = env
        .route(RouteId::Status, &[], Some(&env.admin), None)
        .await;
    assert_eq!(status["config_version"], 0, "nothing applied");
    // The same answer from plan.
    let (st, _) = env
        .route(
            RouteId::ConfigPlan,
            &[],
            Some(&env.admin),
            Some(json!({ "files": files })),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // Apply against a stale plan is a conflict.
    env.apply_example().await;
    let good = read_dir(&example_repo()).unwrap();
    let (st, body) = env
        .route(
            RouteId::ConfigApply,
            &[],
            Some(&env.admin),
            Some(json!({ "files": good, "expected_version": 0 })),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, "version_conflict");
}

/// One corpus of bad identities through both doors: each is refused by
/// `POST /admin/v1/identities` and by the repository parser with the same problems.
async fn identity_checks_agree_between_repository_and_api(env: Env) {
    env.apply_example().await;
    let base = |path: &str| identity_body(path, "payments", "prod");
    let with = |path: &str, field: &str, value: Value| {
        let mut b = base(path);
        b[field] = value;
        b
    };
    let cases = [
        with("c/td", "spiffe_id", json!("spiffe://evil.example/c/td")),
        with("c/plane", "plane", json!("nowhere")),
        with("c/owner", "owner", json!("ghost-team")),
        with("c/env", "environment", json!("Prod!")),
        json!({"spiffe_id": "spiffe://acme.example/c/env-plane", "plane": "payments-eu", "owner": "payments-team", "environment": "dev", "kind": "service"}),
        with("c/label", "labels", json!({"bad key": "x"})),
        with(
            "c/intended",
            "intended",
            json!([{"capability": "no.such", "actions": ["read"]}, {"capability": "orders.read", "actions": []}]),
        ),
        with(
            "c/key",
            "credentials",
            json!({"public_keys": [{"kid": "k1", "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}),
        ),
        json!({"spiffe_id": "spiffe://acme.example/c/many", "plane": "nowhere", "owner": "ghost-team", "environment": "prod", "kind": "service", "labels": {"": "x"}}),
    ];
    let td = steward_model::TrustDomain::new("acme.example").unwrap();
    for case in cases {
        let id = case["spiffe_id"].as_str().unwrap().to_owned();
        // The repository door: the example plus this identity (YAML reads JSON).
        let mut files = read_dir(&example_repo()).unwrap();
        files.push(steward_governance::SourceFile {
            path: "identities/zz-case.yaml".into(),
            content: format!("identities:\n  - {case}\n"),
        });
        let diags = match steward_governance::parse(&files, &td) {
            Err(steward_governance::GovernanceError::Invalid(d)) => d,
            other => panic!("{id}: the repository accepted it: {other:?}"),
        };
        let prefix = format!("identity `{id}`: ");
        let from_repo: Vec<&str> = diags
            .iter()
            .filter_map(|d| d.message.strip_prefix(&prefix))
            .collect();
        assert!(!from_repo.is_empty(), "{id}: {diags:?}");
        // The API door.
        let (st, body) = env
            .route(
                RouteId::CreateIdentity,
                &[],
                Some(&env.admin),
                Some(case.clone()),
            )
            .await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(
            body["message"].as_str().unwrap(),
            format!("{prefix}{}", from_repo.join("; ")),
            "{id}"
        );
    }
    // Only the store knows removed owners: the API says so, in the same phrasing.
    let (st, body) = env
        .route(
            RouteId::RemoveOwner,
            &["payments-team"],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            Some(&env.admin),
            Some(base("c/removed-owner")),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        body["message"],
        "identity `spiffe://acme.example/c/removed-owner`: owner `payments-team` has been removed: choose a current owner"
    );
}

fn identity_body(path: &str, plane: &str, env_name: &str) -> Value {
    json!({ "spiffe_id": format!("spiffe://acme.example/{path}"), "plane": plane, "owner": "payments-team", "environment": env_name, "kind": "service" })
}

async fn plane_admin_stays_in_its_planes(env: Env) {
    env.apply_example().await;
    let pa = env
        .credential("payments on-call", "plane-admin", Some("payments"))
        .await;
    let pa = Some(pa.as_str());
    // Its own plane and the child plane payments-eu.
    let (st, body) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            pa,
            Some(identity_body("t/one", "payments", "test")),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            pa,
            Some(identity_body("t/two", "payments-eu", "prod")),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    // The child plane's environments are enforced.
    let (st, body) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            pa,
            Some(identity_body("t/three", "payments-eu", "dev")),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    // Not a sibling plane, not the root.
    for plane in ["partners", "root"] {
        let (st, body) = env
            .route(
                RouteId::CreateIdentity,
                &[],
                pa,
                Some(identity_body("t/x", plane, "prod")),
            )
            .await;
        assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(&format!("plane `{plane}`")),
            "{body}"
        );
    }
    let (_, page) = env
        .query(RouteId::ListIdentities, &[], "limit=1000", pa)
        .await;
    let planes: std::collections::BTreeSet<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["plane"].as_str().unwrap())
        .collect();
    assert_eq!(planes, ["payments", "payments-eu"].into_iter().collect());
    let (st, _) = env
        .query(RouteId::ListIdentities, &[], "plane=partners", pa)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let foreign = "spiffe://acme.example/ns/partners/sa/partner-gateway";
    let (st, _) = env.route(RouteId::GetIdentity, &[foreign], pa, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = env
        .route(
            RouteId::IdentityLifecycle,
            &[foreign],
            pa,
            Some(json!({ "state": "suspended", "reason": "x" })),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    client_keys_through_the_api(&env, pa, foreign).await;
    for (route, param) in [
        (RouteId::ConfigApply, None),
        (RouteId::ConfigPlan, None),
        (RouteId::ListCredentials, None),
        (RouteId::Changes, None),
        (RouteId::RemoveOwner, Some("payments-team")),
    ] {
        let body =
            (route.route().method == steward_api::Method::Post).then(|| json!({ "files": [] }));
        let (st, body) = env.route(route, param.as_slice(), pa, body).await;
        assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
    }
}

/// Client keys of an API-registered identity change through the API, checked like a
/// repository's keys; a repository-managed identity's keys do not, and a plane admin
/// reaches only its planes' identities.
async fn client_keys_through_the_api(env: &Env, pa: Option<&str>, foreign: &str) {
    let own = "spiffe://acme.example/t/one";
    let signing = steward_token::SigningKey::generate().unwrap().0;
    let jwk = signing.public_key().jwk();
    let key = json!({"kid": "k-1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y});
    let add = |id: &'static str, body: Value| {
        let id = id.to_owned();
        async move {
            env.route(RouteId::AddClientKey, &[&id], pa, Some(body))
                .await
        }
    };
    let (st, body) = add(
        own,
        json!({"kid": "bad", "kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}),
    )
    .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (st, body) = add(own, key.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["credentials"]["public_keys"][0]["kid"], "k-1");
    let (st, body) = add(own, key.clone()).await;
    assert_error(st, &body, StatusCode::CONFLICT, "conflict");
    let (st, _) = env
        .route(RouteId::AddClientKey, &[foreign], pa, Some(key.clone()))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let managed = "spiffe://acme.example/ns/payments/sa/payments-api";
    let (st, body) = env
        .route(RouteId::AddClientKey, &[managed], pa, Some(key))
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, "conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("governance repository"),
        "{body}"
    );
    let (st, _) = env
        .route(RouteId::RemoveClientKey, &[own, "k-2"], pa, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = env
        .route(RouteId::RemoveClientKey, &[own, "k-1"], pa, None)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body["credentials"].get("public_keys").is_none(), "{body}");
}

async fn auditor_reads_but_never_writes(env: Env) {
    env.apply_example().await;
    let au = env.credential("auditor", "auditor", None).await;
    let au = Some(au.as_str());
    for route in [
        RouteId::Status,
        RouteId::Planes,
        RouteId::Owners,
        RouteId::ListIdentities,
        RouteId::Capabilities,
        RouteId::Issuers,
        RouteId::Policies,
        RouteId::ListCredentials,
        RouteId::Changes,
        RouteId::ConfigVersions,
    ] {
        let (st, body) = env.route(route, &[], au, None).await;
        assert_eq!(st, StatusCode::OK, "{}: {body}", path(route, &[]));
    }
    let id = "spiffe://acme.example/ns/payments/sa/refund-worker";
    let writes = [
        (
            RouteId::CreateIdentity,
            None,
            identity_body("a/b", "payments", "test"),
        ),
        (
            RouteId::IdentityLifecycle,
            Some(id),
            json!({ "state": "suspended", "reason": "x" }),
        ),
        (RouteId::ConfigApply, None, json!({ "files": [] })),
        (
            RouteId::CreateCredential,
            None,
            json!({ "name": "x", "role": "central-admin" }),
        ),
        (RouteId::RemoveOwner, Some("payments-team"), json!(null)),
    ];
    for (route, param, body) in writes {
        let (st, resp) = env.route(route, param.as_slice(), au, Some(body)).await;
        assert_error(st, &resp, StatusCode::FORBIDDEN, "forbidden");
    }
    let (_, changes) = env.route(RouteId::Changes, &[], au, None).await;
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["action"] != "identity.suspend"),
        "nothing changed"
    );
}

async fn changes_are_recorded_with_before_and_after(env: Env) {
    env.apply_example().await;
    let id = "spiffe://acme.example/ns/payments/sa/refund-worker";
    let (st, _) = env
        .route(
            RouteId::IdentityLifecycle,
            &[id],
            Some(&env.admin),
            Some(json!({ "state": "suspended", "reason": "INC-7" })),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, changes) = env
        .route(RouteId::Changes, &[], Some(&env.admin), None)
        .await;
    let last = changes.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "identity.suspend");
    assert_eq!(
        last["target"],
        "spiffe://acme.example/ns/payments/sa/refund-worker"
    );
    assert_eq!(last["before"]["state"], "active");
    assert_eq!(
        last["after"],
        json!({ "state": "suspended", "reason": "INC-7" })
    );
    assert!(last["actor"].as_str().unwrap().starts_with("bootstrap ("));
    assert!(last["at"].as_str().unwrap().ends_with('Z'));
    let _ = postgres_url;
    let _ = Store::connect;
}

fn foreign_decision(id: &str, time: &str) -> Value {
    json!({
        "schema": "steward.evidence/1",
        "id": id,
        "time": time,
        "kind": "access.decision",
        "principal": "spiffe://acme.example/ns/payments/sa/payments-api",
        "action": "invoke",
        "destination": { "capability": "payments.refund", "address": "http POST /v1/refunds/42" },
        "decision": { "outcome": "deny", "policies": ["opa:refunds.rego"] },
        "correlation_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "source": "claims-to-be-steward"
    })
}

async fn evidence_endpoints_search_verify_and_ingest(env: Env) {
    env.apply_example().await;
    let au = env.credential("auditor", "auditor", None).await;
    let au = Some(au.as_str());
    let (st, events) = env
        .query(RouteId::AuditEvents, &[], "kind=config.applied", au)
        .await;
    assert_eq!(st, StatusCode::OK, "{events}");
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(
        events[0]["seq"], 3,
        "seq 1 is the bootstrap credential's creation, 2 the first signing key's"
    );
    let ing = env.credential("foreign-pdp", "ingestor", None).await;
    let ing = Some(ing.as_str());
    // An ingestor can do nothing else.
    let (st, body) = env.route(RouteId::Status, &[], ing, None).await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
    // Auditors and plane admins cannot ingest.
    let (st, body) = env
        .route(
            RouteId::AuditIngest,
            &[],
            au,
            Some(json!({ "records": [] })),
        )
        .await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");

    let now = steward_model::timestamp::now();
    let (st, body) = env.route(RouteId::AuditIngest, &[], ing, Some(json!({ "records": [foreign_decision("f-1", &now), foreign_decision("f-2", &now)] }))).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["accepted"], 2);
    // The principal's plane (payments) requires `policy_version` and `plane` besides the
    // central fields: the records lack both, and are chained flagged, not lost.
    assert_eq!(body["flagged"][0]["index"], 0, "{body}");
    assert_eq!(
        body["flagged"][0]["missing"],
        json!(["policy_version", "plane"]),
        "{body}"
    );
    assert_eq!(body["flagged"].as_array().unwrap().len(), 2, "{body}");
    let mut complete = foreign_decision("f-9", &now);
    complete["plane"] = json!("payments");
    complete["policy_version"] = json!(1);
    let (st, body) = env
        .route(
            RouteId::AuditIngest,
            &[],
            ing,
            Some(json!({ "records": [complete] })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert!(body.get("flagged").is_none(), "{body}");
    // A record cannot pick a laxer plane than its principal's: the root's fields would
    // not ask for a capability, payments' do.
    let mut lax = foreign_decision("f-10", &now);
    lax["plane"] = json!("root");
    lax["destination"] = json!({"address": "http POST /v1/refunds/42"});
    lax["details"] = json!("a note");
    let (st, body) = env
        .route(
            RouteId::AuditIngest,
            &[],
            ing,
            Some(json!({ "records": [lax] })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["flagged"][0]["missing"],
        json!(["policy_version", "capability"]),
        "{body}"
    );
    let (_, found) = env
        .query(
            RouteId::AuditEvents,
            &[],
            "correlation_id=4bf92f3577b34da6a3ce929d0e0e4736&decision=deny",
            au,
        )
        .await;
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 4);
    assert_eq!(
        found[0]["source"], "ingest:foreign-pdp",
        "provenance comes from the credential"
    );
    assert_eq!(found[0]["enforcement_point"], "foreign-pdp");
    assert_eq!(
        found[0]["details"]["missing_audit_fields"],
        json!(["policy_version", "plane"]),
        "the chained record says what it lacks"
    );

    // Bad records: the whole batch is refused, counted, never chained.
    let (_, before) = env.route(RouteId::AuditStats, &[], au, None).await;
    let mut unknown_field = foreign_decision("f-4", &now);
    unknown_field["extra"] = json!(1);
    let mut wrong_kind = foreign_decision("f-5", &now);
    wrong_kind["kind"] = json!("config.applied");
    let mut no_outcome = foreign_decision("f-6", &now);
    no_outcome["decision"] = json!({});
    let mut huge = foreign_decision("f-7", &now);
    huge["message"] = json!({ "blob": "x".repeat(20_000) });
    let bad = vec![
        foreign_decision("f-3", "2020-01-01T00:00:00Z"),
        unknown_field,
        wrong_kind,
        no_outcome,
        huge,
        json!("not an object"),
        foreign_decision("f-8", &now),
    ];
    let (st, body) = env
        .route(
            RouteId::AuditIngest,
            &[],
            ing,
            Some(json!({ "records": bad })),
        )
        .await;
    assert_error(
        st,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_records",
    );
    let diags = body["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 6, "{body}");
    assert_eq!(diags[0]["file"], "records[0]");
    assert!(
        diags[0]["message"]
            .as_str()
            .unwrap()
            .contains("behind the control plane's clock"),
        "{body}"
    );
    assert!(
        diags[1]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field"),
        "{body}"
    );
    assert!(
        diags[2]["message"]
            .as_str()
            .unwrap()
            .contains("only `access.decision`"),
        "{body}"
    );
    assert!(
        diags[4]["message"].as_str().unwrap().contains("bytes"),
        "{body}"
    );
    let (_, after) = env.route(RouteId::AuditStats, &[], au, None).await;
    assert_eq!(after["head_seq"], before["head_seq"], "nothing chained");
    assert_eq!(
        after["ingest_refused"].as_u64().unwrap(),
        before["ingest_refused"].as_u64().unwrap() + 7
    );
    let (st, _) = env
        .route(
            RouteId::AuditIngest,
            &[],
            ing,
            Some(json!({ "records": [] })),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, report) = env.route(RouteId::AuditVerify, &[], au, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["events"].as_i64().unwrap() >= 5);
    for q in [
        "kind=nope",
        "decision=maybe",
        "since=yesterday",
        "order=sideways",
        "limit=0",
    ] {
        let (st, body) = env.query(RouteId::AuditEvents, &[], q, au).await;
        assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let pa = env.credential("pay", "plane-admin", Some("payments")).await;
    let (st, _) = env.route(RouteId::AuditEvents, &[], Some(&pa), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

const ORDERS_API: &str = "spiffe://acme.example/ns/orders/sa/orders-api";
const GATEWAY: &str = "spiffe://acme.example/ns/partners/sa/partner-gateway";

fn evaluation(subject: &str, resource: Value, action: &str, context: Value) -> Value {
    json!({"subject": {"type": "workload", "id": subject}, "resource": resource, "action": {"name": action}, "context": context})
}

async fn authzen_decisions_follow_the_layers_and_are_evidence(env: Env) {
    env.apply_example().await;
    let ingestor = env.credential("edge", "ingestor", None).await;
    // Allowed by a plane's cross-plane grant; any credential may ask.
    let resp = env
        .http
        .post(env.url(RouteId::Evaluation, &[]))
        .bearer_auth(&ingestor)
        .header("X-Request-ID", "req-42")
        .json(&evaluation(
            ORDERS_API,
            json!({"type": "capability", "id": "payments.charge"}),
            "invoke",
            json!({"environment": "prod"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["decision"], true, "{body}");
    assert_eq!(
        body["context"]["policies"],
        json!(["payments-grant-charge-to-orders-api"])
    );
    assert_eq!(body["context"]["policy_version"], 1);
    let allow_id = body["context"]["id"].as_str().unwrap().to_owned();

    // A transport address, resolved by the catalog.
    let (st, body) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(evaluation(
                GATEWAY,
                json!({"type": "http", "id": "/v1/orders/7", "properties": {"method": "GET"}}),
                "access",
                json!({"environment": "prod"}),
            )),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (
            body["decision"].clone(),
            body["context"]["capability"].clone()
        ),
        (json!(true), json!("orders.read")),
        "{body}"
    );

    // Forbid wins over the commerce grant.
    let (_, body) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(evaluation(
                GATEWAY,
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                json!({"environment": "staging"}),
            )),
        )
        .await;
    assert_eq!(body["decision"], false);
    assert_eq!(body["context"]["policies"], json!(["GR-1"]));

    // Batch semantics.
    let batch = |semantic: &str| {
        json!({
        "subject": {"type": "workload", "id": ORDERS_API},
        "context": {"environment": "prod"},
        "options": {"evaluations_semantic": semantic},
        "evaluations": [
            {"resource": {"type": "capability", "id": "payments.refund"}, "action": {"name": "invoke"}},
            {"resource": {"type": "capability", "id": "payments.charge"}, "action": {"name": "invoke"}},
            {"resource": {"type": "capability", "id": "orders.read"}, "action": {"name": "read"}, "context": {"environment": "dev"}}
        ]})
    };
    let decisions = |body: &Value| {
        body["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["decision"].as_bool().unwrap())
            .collect::<Vec<_>>()
    };
    let (st, body) = env
        .route(
            RouteId::Evaluations,
            &[],
            Some(&env.admin),
            Some(batch("execute_all")),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(decisions(&body), [false, true, false]);
    let (_, body) = env
        .route(
            RouteId::Evaluations,
            &[],
            Some(&env.admin),
            Some(batch("deny_on_first_deny")),
        )
        .await;
    assert_eq!(decisions(&body), [false]);
    let (_, body) = env
        .route(
            RouteId::Evaluations,
            &[],
            Some(&env.admin),
            Some(batch("permit_on_first_permit")),
        )
        .await;
    assert_eq!(decisions(&body), [false, true]);

    // Suspension takes effect for the very next decision.
    let (st, body) = env
        .route(
            RouteId::IdentityLifecycle,
            &[ORDERS_API],
            Some(&env.admin),
            Some(json!({"state": "suspended", "reason": "key leak"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, body) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(evaluation(
                ORDERS_API,
                json!({"type": "capability", "id": "payments.charge"}),
                "invoke",
                json!({"environment": "prod"}),
            )),
        )
        .await;
    assert_eq!(body["decision"], false);
    assert_eq!(body["context"]["policies"], json!(["GR-2"]));

    // Every decision is in the evidence log, asynchronously.
    let mut found = Value::Null;
    for _ in 0..50 {
        let (_, events) = env
            .query(
                RouteId::AuditEvents,
                &[],
                "kind=access.decision&limit=100",
                Some(&env.admin),
            )
            .await;
        if events.as_array().unwrap().len() >= 7 {
            found = events;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let events = found.as_array().expect("decisions reach the evidence log");
    let first = events
        .iter()
        .find(|e| e["id"] == allow_id.as_str())
        .unwrap();
    assert_eq!(first["decision"]["outcome"], "allow");
    assert_eq!(first["correlation_id"], "req-42");
    assert_eq!(first["enforcement_point"], "authzen:edge");
    assert_eq!(first["destination"]["capability"], "payments.charge");
    assert_eq!(first["details"]["request"]["principal"], ORDERS_API);
    // The apply recorded the repository's exception as evidence of its own.
    let (_, granted) = env
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=exception.granted",
            Some(&env.admin),
        )
        .await;
    let granted = granted.as_array().unwrap();
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(
        granted[0]["decision"]["exception"],
        "ex-billing-exporter-static-key"
    );
    assert_eq!(granted[0]["details"]["lifts"], json!(["GR-3"]));
    assert_eq!(granted[0]["details"]["ticket"], "SEC-2291");
    let (_, report) = env
        .route(RouteId::AuditVerify, &[], Some(&env.admin), None)
        .await;
    assert_eq!(report["ok"], true, "{report}");
}

async fn authzen_refuses_malformed_and_denies_the_unknown(env: Env) {
    env.apply_example().await;
    // Malformed: 400 with a JSON error.
    for body in [
        json!({"subject": {"type": "workload", "id": ORDERS_API}}),
        json!({"subject": "x", "resource": {}, "action": {}}),
        json!([1, 2]),
    ] {
        let (st, resp) = env
            .route(RouteId::Evaluation, &[], Some(&env.admin), Some(body))
            .await;
        assert_error(st, &resp, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Not UTF-8 (RFC 8259 §8.1), even in a member the request would ignore (found by the
    // `authzen_request` fuzz target: serde_json does not check strings it skips).
    let mut raw = serde_json::to_vec(&evaluation(
        ORDERS_API,
        json!({"type": "capability", "id": "orders.read"}),
        "read",
        json!({"environment": "prod"}),
    ))
    .unwrap();
    raw.pop();
    raw.extend_from_slice(b",\"note\":\"\xdd\"}");
    let answer = env
        .http
        .post(env.url(RouteId::Evaluation, &[]))
        .bearer_auth(&env.admin)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let st = answer.status();
    let resp: Value = answer.json().await.unwrap();
    assert_error(st, &resp, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        resp["message"].as_str().unwrap().contains("not UTF-8"),
        "{resp}"
    );
    let (st, resp) = env
        .route(
            RouteId::Evaluations,
            &[],
            Some(&env.admin),
            Some(json!({"evaluations": [{"action": {"name": "read"}}]})),
        )
        .await;
    assert_error(st, &resp, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        resp["message"]
            .as_str()
            .unwrap()
            .contains("evaluations[0] has no subject, resource"),
        "{resp}"
    );
    let many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let (st, _) = env
        .route(
            RouteId::Evaluations,
            &[],
            Some(&env.admin),
            Some(json!({"evaluations": many})),
        )
        .await;
    assert!(
        st == StatusCode::BAD_REQUEST || st == StatusCode::PAYLOAD_TOO_LARGE,
        "{st}"
    );
    // Over-long identifiers and contexts are refused, so no request can make its decision
    // record large (each is kept, append-only).
    let long = "x".repeat(steward_server::authzen::MAX_IDENTIFIER_BYTES + 1);
    let bulky: serde_json::Map<String, Value> = (0..60)
        .map(|i| (format!("k{i}"), Value::from("v".repeat(90))))
        .chain([("environment".to_owned(), Value::from("prod"))])
        .collect();
    for (route, body, field) in [
        (
            RouteId::Evaluation,
            evaluation(
                &format!("spiffe://acme.example/{long}"),
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                json!({"environment": "prod"}),
            ),
            "`subject.id`",
        ),
        (
            RouteId::Evaluation,
            evaluation(
                ORDERS_API,
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                Value::Object(bulky.clone()),
            ),
            "`context`",
        ),
        (
            RouteId::Evaluations,
            json!({"subject": {"type": "workload", "id": ORDERS_API}, "evaluations": [
                {"resource": {"type": "capability", "id": "orders.read"}, "action": {"name": "read"}},
                {"resource": {"type": "capability", "id": long}, "action": {"name": "read"}},
            ]}),
            "`evaluations[1].resource.id`",
        ),
    ] {
        let (st, resp) = env.route(route, &[], Some(&env.admin), Some(body)).await;
        assert_error(st, &resp, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(resp["message"].as_str().unwrap().contains(field), "{resp}");
    }
    // Unknown types, principals, capabilities and bad context: deny with a reason.
    let cases = [
        (
            json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "capability", "id": "orders.read"}, "action": {"name": "read"}, "context": {"environment": "prod"}}),
            "subject type `user`",
        ),
        (
            evaluation(
                ORDERS_API,
                json!({"type": "document", "id": "x"}),
                "read",
                json!({"environment": "prod"}),
            ),
            "resource type `document`",
        ),
        (
            evaluation(
                ORDERS_API,
                json!({"type": "capability", "id": "orders.read"}),
                "can_read",
                json!({"environment": "prod"}),
            ),
            "action `can_read`",
        ),
        (
            evaluation(
                "spiffe://acme.example/ghost",
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                json!({"environment": "prod"}),
            ),
            "not a registered identity",
        ),
        (
            evaluation(
                ORDERS_API,
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                json!({}),
            ),
            "context.environment is required",
        ),
        (
            evaluation(
                ORDERS_API,
                json!({"type": "http", "id": "/nope", "properties": {"method": "GET"}}),
                "access",
                json!({"environment": "prod"}),
            ),
            "no capability in the catalog maps",
        ),
        (
            evaluation(
                ORDERS_API,
                json!({"type": "http", "id": "/v1/orders/1"}),
                "access",
                json!({"environment": "prod"}),
            ),
            "needs properties.method",
        ),
    ];
    for (body, why) in cases {
        let (st, resp) = env
            .route(RouteId::Evaluation, &[], Some(&env.admin), Some(body))
            .await;
        assert_eq!(st, StatusCode::OK, "{resp}");
        assert_eq!(resp["decision"], false, "{why}: {resp}");
        assert!(
            resp["context"]["reason_admin"]["en"]
                .as_str()
                .unwrap()
                .contains(why),
            "{why}: {resp}"
        );
    }
    // The PDP metadata comes from the configured issuer, whatever Host a client sends.
    let meta: Value = env
        .http
        .get(env.url(RouteId::AuthzenConfiguration, &[]))
        .header("host", "evil.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, oidc) = env
        .route(RouteId::OpenidConfiguration, &[], None, None)
        .await;
    assert_eq!(meta["policy_decision_point"], oidc["issuer"], "{meta}");
    assert!(!meta.to_string().contains("evil.example"), "{meta}");
    assert_eq!(
        meta["access_evaluations_endpoint"],
        format!(
            "{}{}",
            oidc["issuer"].as_str().unwrap(),
            path(RouteId::Evaluations, &[])
        )
    );
}

async fn policy_publication_versions_and_rollback(env: Env) {
    env.apply_example().await;
    let mut files = read_dir(&example_repo()).unwrap();
    // A plane policy reaching into another plane is refused with the policy named.
    files.push(steward_governance::SourceFile {
        path: "policies/partners/grab.cedar".into(),
        content: "@id(\"partners-grab\")\npermit (principal, action, resource == Steward::Capability::\"payments.refund\");\n".into(),
    });
    for route in [RouteId::ConfigApply, RouteId::ConfigPlan] {
        let (st, body) = env
            .route(route, &[], Some(&env.admin), Some(json!({"files": files})))
            .await;
        assert_error(
            st,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
        );
        let d = &body["diagnostics"][0];
        assert_eq!(d["file"], "policies/partners/grab.cedar", "{body}");
        assert!(
            d["message"].as_str().unwrap().contains("outside its plane"),
            "{body}"
        );
    }
    files.pop();
    // A decision to replay, then a candidate that withdraws the grant behind it.
    let (_, body) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(evaluation(
                GATEWAY,
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                json!({"environment": "prod"}),
            )),
        )
        .await;
    assert_eq!(body["decision"], true);
    let commerce = files
        .iter_mut()
        .find(|f| f.path == "policies/commerce/commerce.cedar")
        .unwrap();
    let start = commerce
        .content
        .find("// Partners: the partner gateway")
        .unwrap();
    let end = commerce
        .content
        .find("// Platform: the end-to-end suite")
        .unwrap();
    commerce.content.replace_range(start..end, "");
    let mut plan = Value::Null;
    for _ in 0..50 {
        let (st, body) = env
            .route(
                RouteId::ConfigPlan,
                &[],
                Some(&env.admin),
                Some(json!({"files": files, "replay_days": 1})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{body}");
        if body["replay"]["replayed"].as_u64().unwrap() >= 1 {
            plan = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        plan["replay"]["flips"].as_array().unwrap().len(),
        1,
        "{plan}"
    );
    assert_eq!(plan["replay"]["flips"][0]["principal"], GATEWAY);
    assert_eq!(plan["replay"]["flips"][0]["was"], true);
    assert!(
        plan["policy_diff"]
            .as_str()
            .unwrap()
            .contains("-@id(\"commerce-grant-orders-read-to-partner-gateway\")"),
        "{plan}"
    );

    let (st, body) = env
        .route(
            RouteId::ConfigApply,
            &[],
            Some(&env.admin),
            Some(json!({"files": files})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, versions) = env
        .route(RouteId::PolicyVersions, &[], Some(&env.admin), None)
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    assert_eq!(versions[0]["version"], 2);
    let (_, body) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(evaluation(
                GATEWAY,
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                json!({"environment": "prod"}),
            )),
        )
        .await;
    assert_eq!(body["decision"], false);
    assert_eq!(body["context"]["policy_version"], 2);

    // Roll back: a plane admin may not; a central admin may, guarded by the version.
    let pa = env
        .credential("payments admin", "plane-admin", Some("payments"))
        .await;
    let (st, body) = env
        .route(
            RouteId::PolicyRollback,
            &[],
            Some(&pa),
            Some(json!({"to": 1})),
        )
        .await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
    let (st, body) = env
        .route(
            RouteId::PolicyRollback,
            &[],
            Some(&env.admin),
            Some(json!({"to": 1, "expected_version": 1})),
        )
        .await;
    assert_error(st, &body, StatusCode::CONFLICT, "version_conflict");
    let (st, body) = env
        .route(
            RouteId::PolicyRollback,
            &[],
            Some(&env.admin),
            Some(json!({"to": 9})),
        )
        .await;
    assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
    let (st, body) = env
        .route(
            RouteId::PolicyRollback,
            &[],
            Some(&env.admin),
            Some(json!({"to": 1, "expected_version": 2})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        (body["version"].clone(), body["reason"].clone()),
        (json!(3), json!("rollback to 1"))
    );
    let (_, body) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(evaluation(
                GATEWAY,
                json!({"type": "capability", "id": "orders.read"}),
                "read",
                json!({"environment": "prod"}),
            )),
        )
        .await;
    assert_eq!(body["decision"], true, "{body}");
    assert_eq!(body["context"]["policy_version"], 3);
    let (_, v1) = env
        .route(RouteId::PolicyVersion, &["1"], Some(&env.admin), None)
        .await;
    let (_, v3) = env
        .route(RouteId::PolicyVersion, &["3"], Some(&env.admin), None)
        .await;
    assert_eq!(v1["bundle"], v3["bundle"]);
    let (_, changes) = env
        .query(RouteId::Changes, &[], "limit=1000", Some(&env.admin))
        .await;
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "policy.rollback"),
        "{changes}"
    );

    // Entitlements: effective vs intended, with the identity's visibility.
    let (st, report) = env
        .route(
            RouteId::IdentityEntitlements,
            &[ORDERS_API],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["missing"], json!([]));
    assert!(
        report["effective"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["capability"] == "payments.charge" && p["action"] == "invoke")
    );
    let (st, body) = env
        .route(
            RouteId::IdentityEntitlements,
            &[ORDERS_API],
            Some(&pa),
            None,
        )
        .await;
    assert_error(st, &body, StatusCode::NOT_FOUND, "not_found");
}
