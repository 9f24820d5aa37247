//! Revocation over the admin and enforcement APIs: revoke, push, acknowledge,
//! verify, drift, and the bad input around them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use steward_api::RouteId;
use steward_token::SigningKey;

use super::Env;
use super::tokens::{CLIENT, register_client};

/// An open revocation stream and the events parsed from it so far.
pub(crate) struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    pub(crate) async fn open(env: &Env, credential: &str, after: Option<&str>) -> Stream {
        let mut req = env
            .http
            .get(env.url(RouteId::RevocationStream, &[]))
            .bearer_auth(credential);
        if let Some(a) = after {
            req = req.header("last-event-id", a);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "server-sent events"
        );
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event that is not a heartbeat: (event, id, data).
    pub(crate) async fn next(&mut self) -> (String, Option<String>, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event == "heartbeat" || event.is_empty() {
                    continue;
                }
                return (event, id, serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

pub(crate) async fn ingestor(env: &Env) -> String {
    let (st, body) = env
        .route(
            RouteId::CreateCredential,
            &[],
            Some(&env.admin),
            Some(json!({"name": "edge-gateway", "role": "ingestor"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn report(env: &Env, credential: &str, id: &str, epoch: i64) -> (StatusCode, Value) {
    let response = env
        .http
        .post(env.url(RouteId::PointReport, &[]))
        .bearer_auth(credential)
        .json(&json!({
            "points": [{"id": id, "kind": "gateway", "name": "edge", "environment": "prod"}],
            "bundle_version": 1,
            "epoch": epoch,
        }))
        .send()
        .await
        .unwrap();
    let st = response.status();
    (st, response.json().await.unwrap_or(Value::Null))
}

/// One point as `GET /admin/v1/enforcement/points` lists it (the list's epoch must be 2).
async fn point_status(env: &Env, id: &str) -> Value {
    let (_, points) = env
        .route(RouteId::EnforcementPoints, &[], Some(&env.admin), None)
        .await;
    assert_eq!(points["epoch"], 2, "{points}");
    points["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no point `{id}`: {points}"))
}

async fn revoke(env: &Env, body: Value) -> (StatusCode, Value) {
    env.route(RouteId::Revoke, &[], Some(&env.admin), Some(body))
        .await
}

pub(crate) async fn token_id(env: &Env, key: &SigningKey) -> String {
    let claims = super::tokens::claims_of(&super::tokens::client_token(env, key).await);
    claims["jti"].as_str().unwrap().to_owned()
}

/// With no enforcement point live, a revocation is not verified — nothing shows it in
/// force — and the server says so at once instead of waiting out the timeout.
pub(crate) async fn verification_without_a_live_point_is_refused_at_once(env: Env) {
    let key = SigningKey::generate().unwrap().0;
    register_client(&env, &key).await;
    let jti = token_id(&env, &key).await;
    let (st, body) = revoke(
        &env,
        json!({"kind": "token", "target": jti, "reason": "no point is running yet"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["live_points"], 0);
    let started = std::time::Instant::now();
    let (st, v) = env
        .query(
            RouteId::RevocationVerification,
            &["1"],
            "wait_secs=20",
            Some(&env.admin),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["complete"], false, "{v}");
    assert_eq!(v["acknowledged"], json!([]), "{v}");
    assert_eq!(v["lagging"], json!([]), "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered without waiting: {v}"
    );
}

pub(crate) async fn revocations_are_pushed_acknowledged_and_verified(env: Env) {
    let key = SigningKey::generate().unwrap().0;
    register_client(&env, &key).await;
    let jti = token_id(&env, &key).await;
    let cred = ingestor(&env).await;

    // A new point gets a snapshot of what is in force: nothing yet.
    let mut stream = Stream::open(&env, &cred, None).await;
    let (event, id, data) = stream.next().await;
    assert_eq!((event.as_str(), id.as_deref()), ("snapshot", Some("0")));
    assert_eq!(data, json!({"epoch": 0, "revocations": []}));
    assert_eq!(
        report(&env, &cred, "gateway:edge", 0).await.0,
        StatusCode::OK
    );

    // Revoke the token: pushed at once, verified once acknowledged.
    let (st, body) = revoke(
        &env,
        json!({"kind": "token", "target": jti, "reason": "leaked in a CI log"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["revocation"]["epoch"], 1);
    assert_eq!(body["live_points"], 1);
    assert!(body["revocation"]["until"].as_i64().unwrap() > 0);
    let (event, id, data) = stream.next().await;
    assert_eq!((event.as_str(), id.as_deref()), ("revocation", Some("1")));
    assert_eq!(data["target"], jti.as_str());
    assert_eq!(data["kind"], "token");

    let (st, v) = env
        .route(
            RouteId::RevocationVerification,
            &["1"],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["complete"], false);
    assert_eq!(v["lagging"][0]["id"], "gateway:edge");
    // A verification waiting for the acknowledgement returns when it lands.
    let waiting = env.query(
        RouteId::RevocationVerification,
        &["1"],
        "wait_secs=10",
        Some(&env.admin),
    );
    let ack = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        report(&env, &cred, "gateway:edge", 1).await
    };
    let ((st, v), (ack_st, ack)) = tokio::join!(waiting, ack);
    assert_eq!(ack_st, StatusCode::OK, "{ack}");
    assert_eq!(ack["epoch"], 1);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["acknowledged"][0]["id"], "gateway:edge");
    assert!(v["waited_ms"].as_u64().unwrap() < 10_000);

    // Repeating the token revocation is refused; so are unknown and malformed targets
    // (but not unknown token ids: see the end).
    for (body, want) in [
        (
            json!({"kind": "token", "target": jti, "reason": "again"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "identity", "target": "spiffe://acme.example/nobody", "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"kind": "identity", "target": "not a spiffe id", "reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"kind": "plane", "target": "no-such-plane", "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"kind": "issuer", "target": "no-such-issuer", "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"kind": "key", "target": "no-such-kid", "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"kind": "identity", "target": CLIENT, "reason": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"kind": "identity", "target": CLIENT}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"kind": "galaxy", "target": "x", "reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"kind": "plane", "target": "payments", "reason": "x", "decommission": true}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, answer) = revoke(&env, body.clone()).await;
        assert_eq!(st, want, "{body} → {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    // The signing key in use cannot be revoked: it says what to do instead.
    let (_, keys) = env.route(RouteId::Keys, &[], Some(&env.admin), None).await;
    let kid = keys["keys"][0]["kid"]
        .as_str()
        .or_else(|| keys[0]["kid"].as_str())
        .unwrap()
        .to_owned();
    let (st, answer) = revoke(&env, json!({"kind": "key", "target": kid, "reason": "x"})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("steward keys rotate")
    );
    // Only central admins revoke.
    let (_, auditor) = env
        .route(
            RouteId::CreateCredential,
            &[],
            Some(&env.admin),
            Some(json!({"name": "auditor", "role": "auditor"})),
        )
        .await;
    let (st, _) = env
        .route(
            RouteId::Revoke,
            &[],
            auditor["token"].as_str(),
            Some(json!({"kind": "identity", "target": CLIENT, "reason": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Revoking the identity suspends it; a point resuming from epoch 1 gets epoch 2 only.
    let (st, body) = revoke(
        &env,
        json!({"kind": "identity", "target": CLIENT, "reason": "compromised host"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["revocation"]["epoch"], 2);
    let (_, identity) = env
        .route(RouteId::GetIdentity, &[CLIENT], Some(&env.admin), None)
        .await;
    assert_eq!(identity["state"], "suspended", "{identity}");
    let mut resumed = Stream::open(&env, &cred, Some("1")).await;
    let (event, id, data) = resumed.next().await;
    assert_eq!((event.as_str(), id.as_deref()), ("revocation", Some("2")));
    assert_eq!(data["target"], CLIENT);
    let (event, _, _) = stream.next().await;
    assert_eq!(event, "revocation", "the first stream got it too");
    // A fresh point's snapshot holds both.
    let mut fresh = Stream::open(&env, &cred, Some("0")).await;
    let (event, _, data) = fresh.next().await;
    assert_eq!(event, "snapshot");
    assert_eq!(data["epoch"], 2);
    assert_eq!(data["revocations"].as_array().unwrap().len(), 2);
    // A malformed resume point is refused.
    let st = env
        .http
        .get(env.url(RouteId::RevocationStream, &[]))
        .bearer_auth(&cred)
        .header("last-event-id", "soon")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Admin credentials other than ingestor/central cannot open the stream.
    let st = env
        .http
        .get(env.url(RouteId::RevocationStream, &[]))
        .bearer_auth(auditor["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A point acknowledging an epoch never issued is flagged, and so shown.
    let (st, answer) = report(&env, &cred, "gateway:liar", 99).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        answer["flagged"].as_str().unwrap().contains("epoch 99"),
        "{answer}"
    );
    assert!(point_status(&env, "gateway:liar").await["flagged"].is_string());
    let edge = point_status(&env, "gateway:edge").await;
    assert_eq!(edge["live"], true);
    assert_eq!(edge["epoch"], 1);
    assert_eq!(edge["behind_epoch"], true);
    assert_eq!(edge["credential"], "edge-gateway");
    let (_, v) = env
        .route(
            RouteId::RevocationVerification,
            &["2"],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(v["complete"], false);
    let lagging: Vec<&str> = v["lagging"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(lagging, ["gateway:edge", "gateway:liar"], "{v}");
    // A flag is cleared by the point's next consistent report, and the impossible epoch
    // never counted: the point acknowledges epoch 2 only when it says so.
    let (st, answer) = report(&env, &cred, "gateway:liar", 1).await;
    assert_eq!(st, StatusCode::OK, "{answer}");
    assert!(answer.get("flagged").is_none(), "{answer}");
    let liar = point_status(&env, "gateway:liar").await;
    assert!(liar["flagged"].is_null(), "{liar}");
    assert_eq!(liar["epoch"], 1, "{liar}");
    // Another ingestor cannot speak for a point bound to this one's credential: the
    // report is refused and recorded, and verification still waits for the real point.
    let impostor = ingestor(&env).await;
    let (st, answer) = report(&env, &impostor, "gateway:edge", 2).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("its own credential"),
        "{answer}"
    );
    let (_, v) = env
        .route(
            RouteId::RevocationVerification,
            &["2"],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(v["complete"], false, "{v}");
    let (_, refused) = env
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=admin.action&action=enforcement.report_refused",
            Some(&env.admin),
        )
        .await;
    let refused = refused.as_array().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["details"]["points"][0], "gateway:edge");
    assert_eq!(refused[0]["decision"]["outcome"], "deny");
    let (st, _) = env
        .route(
            RouteId::RevocationVerification,
            &["3"],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Malformed reports are refused.
    for body in [
        json!({"points": [], "bundle_version": 1, "epoch": 0}),
        json!({"points": [{"id": "", "kind": "g", "name": "n"}], "bundle_version": 1, "epoch": 0}),
        json!({"points": [{"id": "a", "kind": "g", "name": "n"}], "bundle_version": 1, "epoch": -1}),
        json!({"points": [{"id": "a", "kind": "g", "name": "n"}], "epoch": 0}),
    ] {
        let st = env
            .http
            .post(env.url(RouteId::PointReport, &[]))
            .bearer_auth(&cred)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(st.is_client_error(), "{body}: {st}");
    }

    // The revocations listing, and the evidence: who revoked what, who applied it.
    let (_, list) = env
        .route(RouteId::ListRevocations, &[], Some(&env.admin), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["reason"], "compromised host");
    let (_, issued) = env
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=revocation.issued",
            Some(&env.admin),
        )
        .await;
    let issued = issued.as_array().unwrap();
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert!(issued.iter().any(|e| e["principal"] == CLIENT));
    let acked = super::tokens::events_when(&env, "kind=revocation.acknowledged", |events| {
        !events.is_empty()
    })
    .await;
    assert_eq!(acked[0]["enforcement_point"], "gateway:edge");
    assert_eq!(acked[0]["details"]["epoch"], 1);

    // A token id with no issuance record is revoked all the same (its record may be what
    // was lost), for the longest token lifetime, and the answer says so.
    for jti in [uuid::Uuid::new_v4().to_string(), "a-foreign-jti".to_owned()] {
        let (st, body) = revoke(
            &env,
            json!({"kind": "token", "target": jti, "reason": "seen in a leaked log"}),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
        assert_eq!(body["revocation"]["target"], jti.as_str());
        assert!(
            body["revocation"]["until"].as_i64().unwrap()
                >= time::OffsetDateTime::now_utc().unix_timestamp() + 3_000,
            "{body}"
        );
        assert!(
            body["note"].as_str().unwrap().contains("revoked anyway"),
            "{body}"
        );
    }
}
