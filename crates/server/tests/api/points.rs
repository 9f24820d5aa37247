//! Enforcement points with identities of their own: a short-lived token from
//! `private_key_jwt` instead of a static `stw_` secret, scoped by the repository's grant
//! to roles and point names; expired tokens and revoked identities refused and recorded.

use super::*;
use steward_token::{SigningKey, jws};

/// A gateway's identity: fetches the bundle, reports and decides for point `edge-1`.
const EDGE: &str = "spiffe://acme.example/ns/payments/sa/edge-gateway";
/// An AuthZEN caller's identity: decides only.
const PEP: &str = "spiffe://acme.example/ns/payments/sa/authzen-pep";

/// Registers `id` through the API with `key` and the enforcement point `grant`.
async fn register_point(env: &Env, id: &str, key: &SigningKey, grant: Value, ttl: u64) {
    let jwk = key.public_key().jwk();
    let (st, body) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            Some(&env.admin),
            Some(json!({
                "spiffe_id": id, "plane": "payments", "owner": "payments-team",
                "environment": "prod", "kind": "service", "classification": "internal",
                "credentials": {
                    "token_ttl_secs": ttl,
                    "public_keys": [{"kid": "p-1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}],
                    "enforcement_point": grant,
                },
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// A token for `id` by `private_key_jwt`, for `audience`.
async fn point_token(env: &Env, id: &str, key: &SigningKey, audience: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let a = jws::encode(
        key,
        "JWT",
        &json!({
            "iss": id, "sub": id, "aud": env.url(RouteId::Token, &[]),
            "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
        }),
    )
    .unwrap();
    let (st, _, body) = super::tokens::post_form(
        env,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", super::tokens::BEARER),
            ("client_assertion", &a),
            ("audience", audience),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// The status, `WWW-Authenticate` and body of a bundle fetch naming `point`.
async fn fetch_bundle(
    env: &Env,
    token: &str,
    point: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = env
        .http
        .get(env.url(RouteId::Bundle, &[]))
        .bearer_auth(token);
    if let Some(p) = point {
        req = req.header("steward-enforcement-point", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn report_body(id: &str, name: &str) -> Value {
    json!({
        "points": [{"id": id, "kind": "gateway", "name": name, "environment": "prod"}],
        "bundle_version": 1,
        "epoch": 0,
    })
}

fn decision_record(point: &str) -> Value {
    json!({
        "schema": "steward.evidence/1",
        "id": uuid::Uuid::new_v4().to_string(),
        "time": steward_model::timestamp::now(),
        "kind": "access.decision",
        "principal": "spiffe://acme.example/ns/orders/sa/orders-api",
        "action": "invoke",
        "destination": {"capability": "payments.charge", "address": "http POST /v1/charges"},
        "decision": {"outcome": "allow"},
        "enforcement_point": point,
    })
}

/// The refusals of point calls of `kind` recorded for `id`: verified as the principal,
/// or claimed by a token that did not verify.
async fn refusals(env: &Env, kind: &str, id: &str) -> Vec<Value> {
    let (st, events) = env
        .query(
            RouteId::AuditEvents,
            &[],
            &format!("kind={kind}&action=enforcement.point_refused"),
            Some(&env.admin),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["principal"] == id || e["details"]["claimed_subject"] == id)
        .cloned()
        .collect()
}

/// A point identity gets a token by `private_key_jwt` for the control plane, fetches the
/// bundle, reports, ships decision records and asks AuthZEN — for its own point only;
/// another point or a role it lacks is 403, a token for another audience and a revoked
/// identity are 401 `invalid_token`; every refusal is evidence.
pub(crate) async fn a_point_identity_calls_with_its_own_token(env: Env) {
    env.apply_example().await;
    let edge_key = SigningKey::generate().unwrap().0;
    let pep_key = SigningKey::generate().unwrap().0;
    register_point(
        &env,
        EDGE,
        &edge_key,
        json!({"roles": ["bundle", "report", "decide"], "points": ["edge-1"]}),
        600,
    )
    .await;
    register_point(&env, PEP, &pep_key, json!({"roles": ["decide"]}), 600).await;

    // The metadata says both kinds of caller are accepted, and for which audience.
    let (st, meta) = env
        .route(RouteId::AuthzenConfiguration, &[], None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        meta["credentials_supported"],
        json!(["steward_admin_credential", "oauth_bearer"])
    );
    assert_eq!(meta["oauth_bearer_audience"], env.base);
    let audience = meta["oauth_bearer_audience"].as_str().unwrap().to_owned();

    let token = point_token(&env, EDGE, &edge_key, &audience).await;
    let (st, _, bundle) = fetch_bundle(&env, &token, Some("edge-1")).await;
    assert_eq!(st, StatusCode::OK, "{bundle}");
    let (st, _, body) = fetch_bundle(&env, &token, Some("gateway:edge-1")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // Another point, or none named: 403.
    let (st, _, body) = fetch_bundle(&env, &token, Some("edge-2")).await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("edge-2"),
        "{body}"
    );
    let (st, _, body) = fetch_bundle(&env, &token, None).await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");

    let (st, body) = env
        .route(
            RouteId::PointReport,
            &[],
            Some(&token),
            Some(report_body("gateway:edge-1", "edge-1")),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = env
        .route(
            RouteId::PointReport,
            &[],
            Some(&token),
            Some(report_body("gateway:edge-2", "edge-2")),
        )
        .await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
    let (_, points) = env
        .route(RouteId::EnforcementPoints, &[], Some(&env.admin), None)
        .await;
    let listed: Vec<&Value> = points["points"].as_array().unwrap().iter().collect();
    assert!(
        listed
            .iter()
            .any(|p| p["id"] == "gateway:edge-1" && p["credential"] == EDGE),
        "{points}"
    );
    assert!(
        !listed.iter().any(|p| p["id"] == "gateway:edge-2"),
        "{points}"
    );

    let (st, body) = env
        .route(
            RouteId::Decisions,
            &[],
            Some(&token),
            Some(json!({"records": [decision_record("gateway:edge-1")]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = env
        .route(
            RouteId::Decisions,
            &[],
            Some(&token),
            Some(json!({"records": [decision_record("gateway:edge-1"), decision_record("nginx:edge-2")]})),
        )
        .await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");

    let ask = json!({
        "subject": {"type": "workload", "id": "spiffe://acme.example/ns/orders/sa/orders-api"},
        "resource": {"type": "capability", "id": "payments.charge"},
        "action": {"name": "invoke"},
        "context": {"environment": "prod"},
    });
    let (st, body) = env
        .route(RouteId::Evaluation, &[], Some(&token), Some(ask.clone()))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["decision"], true, "{body}");

    // The AuthZEN caller decides, and may not fetch the bundle or report: 403.
    let pep = point_token(&env, PEP, &pep_key, &audience).await;
    let (st, body) = env
        .route(RouteId::Evaluation, &[], Some(&pep), Some(ask.clone()))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, _, body) = fetch_bundle(&env, &pep, Some("edge-1")).await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("`bundle`"),
        "{body}"
    );
    let (st, body) = env
        .route(
            RouteId::PointReport,
            &[],
            Some(&pep),
            Some(report_body("gateway:edge-1", "edge-1")),
        )
        .await;
    assert_error(st, &body, StatusCode::FORBIDDEN, "forbidden");
    // A point token is no admin credential.
    let (st, body) = env.route(RouteId::Status, &[], Some(&token), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");

    // A token for another audience: 401 invalid_token, with the reason.
    let other = point_token(
        &env,
        EDGE,
        &edge_key,
        "spiffe://acme.example/ns/payments/sa/ledger",
    )
    .await;
    let (st, challenge, body) = fetch_bundle(&env, &other, Some("edge-1")).await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    let challenge = challenge.unwrap();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.contains("aud"), "{challenge}");

    // Revoking the identity cuts its token off at once, everywhere.
    let (st, body) = env
        .route(
            RouteId::Revoke,
            &[],
            Some(&env.admin),
            Some(json!({"kind": "identity", "target": EDGE, "reason": "gateway host compromised"})),
        )
        .await;
    assert!(st.is_success(), "{body}");
    let (st, challenge, body) = fetch_bundle(&env, &token, Some("edge-1")).await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        challenge.unwrap().contains("invalid_token"),
        "the challenge names the error"
    );
    let (st, body) = env
        .route(RouteId::Evaluation, &[], Some(&token), Some(ask))
        .await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    let (st, body) = env
        .route(
            RouteId::PointReport,
            &[],
            Some(&token),
            Some(report_body("gateway:edge-1", "edge-1")),
        )
        .await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "invalid_token");

    // Every refusal is evidence: the 403s with the identity, the 401s too.
    let forbidden = refusals(&env, "admin.action", EDGE).await;
    assert!(forbidden.len() >= 4, "{forbidden:?}");
    assert!(forbidden.iter().all(|e| e["decision"]["outcome"] == "deny"));
    let refused = refusals(&env, "credential.refused", EDGE).await;
    assert!(refused.len() >= 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|e| e["details"]["route"] == "/enforcement/v1/points/report"),
        "{refused:?}"
    );
}

/// An expired point token is refused with a clear reason and recorded.
#[tokio::test]
async fn an_expired_point_token_is_refused_and_recorded() {
    let env = start_with(None, "[tokens]\nclock_skew_secs = 0\n").await;
    env.apply_example().await;
    let key = SigningKey::generate().unwrap().0;
    register_point(
        &env,
        EDGE,
        &key,
        json!({"roles": ["bundle", "report", "decide"], "points": ["edge-1"]}),
        1,
    )
    .await;
    let token = point_token(&env, EDGE, &key, &env.base).await;
    let (st, _, body) = fetch_bundle(&env, &token, Some("edge-1")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let (st, challenge, body) = fetch_bundle(&env, &token, Some("edge-1")).await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert!(challenge.unwrap().contains("expired"));
    let (st, body) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&token),
            Some(json!({
                "subject": {"type": "workload", "id": EDGE},
                "resource": {"type": "capability", "id": "payments.charge"},
                "action": {"name": "invoke"},
            })),
        )
        .await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    // Recorded with the subject it claims apart (an expired token proves nothing).
    let (st, events) = env
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=credential.refused&action=enforcement.point_refused",
            Some(&env.admin),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{events}");
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events.iter().all(|e| e["decision"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("expired")
            && e["details"]["claimed_subject"] == EDGE
            && e.get("principal").is_none()),
        "{events:?}"
    );
}

/// An admin credential may be given an expiry and is refused after it, saying so;
/// posture flags the live ones that never expire.
pub(crate) async fn admin_credentials_expire_and_lasting_ones_are_findings(env: Env) {
    let (st, body) = env
        .route(
            RouteId::CreateCredential,
            &[],
            Some(&env.admin),
            Some(json!({"name": "short", "role": "auditor", "expires_in_secs": 0})),
        )
        .await;
    assert_error(st, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (st, created) = env
        .route(
            RouteId::CreateCredential,
            &[],
            Some(&env.admin),
            Some(json!({"name": "short", "role": "auditor", "expires_in_secs": 2})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let short = created["token"].as_str().unwrap().to_owned();
    let id = created["credential"]["id"].as_str().unwrap().to_owned();
    assert!(created["credential"]["expires_at"].is_string(), "{created}");
    let (st, body) = env.route(RouteId::Whoami, &[], Some(&short), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (st, body) = env.route(RouteId::Whoami, &[], Some(&short), None).await;
    assert_error(st, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("expired") && message.contains(&id),
        "{message}"
    );

    let (st, lasting) = env
        .route(
            RouteId::CreateCredential,
            &[],
            Some(&env.admin),
            Some(json!({"name": "edge forever", "role": "ingestor"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{lasting}");
    let lasting_id = lasting["credential"]["id"].as_str().unwrap();
    let (st, report) = env
        .route(RouteId::Posture, &[], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    let flagged: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "non_expiring_admin_credential")
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert!(flagged.contains(&lasting_id), "{flagged:?}");
    assert!(!flagged.contains(&id.as_str()), "{flagged:?}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == lasting_id)
        .unwrap();
    assert_eq!(finding["owasp"][0], "NHI7:2025 Long-Lived Secrets");
}
