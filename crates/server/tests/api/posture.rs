//! Posture and access reviews over the admin API: the inventory, findings
//! with their OWASP NHI mapping, review campaigns and attestations (revoke revokes).

use reqwest::StatusCode;
use serde_json::json;
use steward_api::RouteId;
use steward_token::SigningKey;

use super::Env;
use super::revocation::token_id;
use super::tokens::{CLIENT, register_client, segment};

/// Posture: the inventory says what each identity holds and used; findings
/// name the owner to act and the OWASP NHI risk; plane admins see their planes only.
pub(crate) async fn posture_reports_inventory_and_findings(env: Env) {
    let key = SigningKey::generate().unwrap().0;
    register_client(&env, &key).await;
    let _ = token_id(&env, &key).await;
    // Reading a charge from `environment` through the AuthZEN API: the decision.
    let read_charge = |environment: &'static str| {
        env.route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(json!({
                "subject": {"type": "workload", "id": CLIENT},
                "resource": {"type": "http", "id": "/v1/charges/ch_1", "properties": {"method": "GET"}},
                "action": {"name": "access"},
                "context": {"environment": environment},
            })),
        )
    };
    // One allowed decision: that permission is used.
    let (st, d) = read_charge("prod").await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["decision"], true, "{d}");
    // The same prod identity tried from staging (refused by the environment guardrail).
    let (st, d) = read_charge("staging").await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["decision"], false, "{d}");
    // A static secret, and an owner who left.
    let exporter = "spiffe://acme.example/legacy/billing-exporter";
    let (st, _) = env
        .route(
            RouteId::CreateClientSecret,
            &[exporter],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = env
        .route(
            RouteId::RemoveOwner,
            &["partner-integrations"],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    // Registered a moment ago, the client is inside the observation window: its unused
    // permission is listed, not judged, and the report says its usage is being observed.
    let (st, observing) = env
        .route(RouteId::Posture, &[], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{observing}");
    assert_eq!(observing["observation_days"], 14);
    assert!(observing["summary"]["observing"].as_u64().unwrap() >= 1);
    let client = observing["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["spiffe_id"] == CLIENT)
        .cloned()
        .unwrap();
    assert_eq!(
        client["permissions"]["unused"],
        json!(["payments.charge:invoke"]),
        "{client}"
    );
    assert!(
        client["permissions"]["observed_until"].is_string(),
        "{client}"
    );
    assert!(
        !observing["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "over_privileged" || f["kind"] == "beyond_intended"),
        "{}",
        observing["findings"]
    );
    // Judged at once (no observation window), the same unused permission is a finding.
    let (st, report) = env
        .query(
            RouteId::Posture,
            &[],
            "observation_days=0",
            Some(&env.admin),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["observation_days"], 0);
    let item = report["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["spiffe_id"] == CLIENT)
        .cloned()
        .unwrap();
    assert_eq!(item["credentials"]["registered_keys"], 1);
    assert_eq!(item["credentials"]["tokens_issued"], 1, "{item}");
    assert_eq!(item["credentials"]["active_tokens"], 1, "{item}");
    assert_eq!(item["client_keys_used"][0]["key"], "test-1", "{item}");
    assert_eq!(item["client_keys_used"][0]["tokens"], 1, "{item}");
    let envs: Vec<(&str, i64, i64, i64)> = item["environments_used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["environment"].as_str().unwrap(),
                e["allowed"].as_i64().unwrap(),
                e["denied"].as_i64().unwrap(),
                e["tokens"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(envs, [("prod", 1, 0, 1), ("staging", 0, 1, 0)], "{item}");
    assert!(item["last_used"].is_string());
    let used: Vec<&str> = item["permissions"]["used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(used.len(), 1, "{item}");
    let effective = item["permissions"]["effective"].as_array().unwrap();
    assert!(effective.iter().any(|p| p == used[0]), "used ⊆ effective");
    let unused = item["permissions"]["unused"].as_array().unwrap();
    assert_eq!(unused.len(), effective.len() - 1);
    assert!(!unused.iter().any(|p| p == used[0]));

    let finding = |id: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no finding {id}: {}", report["findings"]))
    };
    let over = finding(&format!("over_privileged:{CLIENT}"));
    assert_eq!(over["owner"], "payments-team");
    assert_eq!(over["owasp"][0], "NHI5:2025 Overprivileged NHI");
    assert_eq!(
        over["evidence"]["unused"].as_array().unwrap().len(),
        unused.len()
    );
    assert_eq!(
        over["evidence"]["unused"],
        json!(["payments.charge:invoke"])
    );
    let elsewhere = finding(&format!("cross_environment:{CLIENT}"));
    assert_eq!(elsewhere["severity"], "medium", "refused attempts only");
    assert_eq!(elsewhere["evidence"]["registered_environment"], "prod");
    assert_eq!(
        elsewhere["evidence"]["environments"][0]["environment"],
        "staging"
    );
    assert_eq!(elsewhere["owasp"][0], "NHI8:2025 Environment Isolation");
    let orphan = finding("orphaned:spiffe://acme.example/ns/partners/sa/partner-gateway");
    assert_eq!(orphan["owasp"][0], "NHI1:2025 Improper Offboarding");
    assert!(
        orphan["evidence"]["owner_removed_at"].is_string(),
        "{orphan}"
    );
    let secret = finding(&format!("static_secret:{exporter}"));
    assert!(
        secret["owasp"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_str().unwrap().starts_with("NHI7"))
    );
    assert_eq!(secret["evidence"]["age_days"], 0);
    // Findings come most severe first; the summary counts them.
    let severities: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    let rank = |s: &str| {
        ["critical", "high", "medium", "low"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    assert!(
        severities.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{severities:?}"
    );
    assert_eq!(report["summary"]["findings"], severities.len());
    assert!(
        report["summary"]["by_owasp"]["NHI1:2025 Improper Offboarding"]
            .as_u64()
            .unwrap()
            >= 1
    );

    // An exception renewed again and again becomes a finding; a grant beyond what the
    // client intends is one at once, inside the observation window.
    let mut files = super::tokens::example_with_client();
    files.push(steward_governance::SourceFile {
        path: "policies/payments/token-test-ledger.cedar".into(),
        content: format!(
            "@id(\"payments-token-test-ledger\")\npermit (\n  principal == Steward::Identity::\"{CLIENT}\",\n  action == Steward::Action::\"invoke\",\n  resource == Steward::Capability::\"ledger.post\"\n);\n"
        ),
    });
    for round in 1..=2 {
        for f in files.iter_mut().filter(|f| f.path == "exceptions.yaml") {
            f.content =
                f.content
                    .replacen("ticket: SEC-2291", &format!("ticket: SEC-2291-r{round}"), 1);
        }
        env.apply_files(&files).await;
    }
    let (_, renewed) = env
        .route(RouteId::Posture, &[], Some(&env.admin), None)
        .await;
    let f = renewed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "exception_renewed")
        .cloned()
        .unwrap_or_else(|| panic!("no exception_renewed finding: {}", renewed["findings"]));
    assert_eq!(f["evidence"]["grants"], 3, "{f}");
    assert_eq!(f["evidence"]["capability"], "billing.export");
    let beyond = renewed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == format!("beyond_intended:{CLIENT}"))
        .cloned()
        .unwrap_or_else(|| panic!("no beyond_intended finding: {}", renewed["findings"]));
    assert_eq!(
        beyond["evidence"]["beyond_intended"],
        json!(["ledger.post:invoke"])
    );
    assert_eq!(beyond["severity"], "medium", "a confidential identity");
    assert_eq!(beyond["owasp"][0], "NHI5:2025 Overprivileged NHI");

    // A plane admin sees its planes only; bad parameters are refused.
    let payments = env
        .credential("payments on-call", "plane-admin", Some("payments"))
        .await;
    let (st, mine) = env
        .route(RouteId::Posture, &[], Some(&payments), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let planes: std::collections::BTreeSet<&str> = mine["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["plane"].as_str().unwrap())
        .collect();
    assert!(
        planes.iter().all(|p| p.starts_with("payments")),
        "{planes:?}"
    );
    assert!(
        !mine["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"].as_str().unwrap().contains("partner-gateway"))
    );
    let (st, _) = env
        .query(RouteId::Posture, &[], "plane=commerce", Some(&payments))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // One identity's posture; outside the caller's planes it does not exist.
    let (st, one) = env
        .query(
            RouteId::Posture,
            &[],
            &format!("max_analysed=0&identity={}", segment(CLIENT)),
            Some(&payments),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{one}");
    assert_eq!(one["inventory"].as_array().unwrap().len(), 1);
    assert_eq!(
        one["inventory"][0]["permissions"]["used"],
        item["permissions"]["used"]
    );
    assert!(one["inventory"][0]["permissions"]["effective"].is_null());
    assert!(
        one["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "cross_environment")
    );
    let partner = "spiffe://acme.example/ns/partners/sa/partner-gateway";
    let (st, _) = env
        .query(
            RouteId::Posture,
            &[],
            &format!("identity={}", segment(partner)),
            Some(&payments),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    for bad in [
        "window_days=0",
        "stale_days=9999",
        "observation_days=367",
        "surprise=1",
        "max_analysed=1000000",
        "plane=Not%20A%20Plane",
    ] {
        let (st, body) = env
            .query(RouteId::Posture, &[], bad, Some(&env.admin))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // Without analysis, effective permissions are reported as unknown, not as none.
    let (_, cheap) = env
        .query(RouteId::Posture, &[], "max_analysed=0", Some(&env.admin))
        .await;
    assert_eq!(cheap["summary"]["analysed"], 0);
    assert!(cheap["summary"]["not_analysed"].as_u64().unwrap() > 0);
    assert!(
        !cheap["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "over_privileged")
    );
}

/// A campaign lists the identities due, with their effective permissions; each owner's
/// queue; keep, reduce and revoke attestations are evidence, and revoke suspends the
/// identity and pushes the revocation.
pub(crate) async fn access_reviews_attest_and_revoke(env: Env) {
    env.apply_example().await;
    // The example's planes review every 30–90 days: never-attested identities are due.
    let (st, campaign) = env
        .route(
            RouteId::StartReview,
            &[],
            Some(&env.admin),
            Some(json!({"name": "Q4 payments", "plane": "payments", "due_days": 7})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{campaign}");
    let due_first = campaign["items"].as_i64().unwrap();
    let id = campaign["id"].as_str().unwrap().to_owned();
    assert!(campaign["items"].as_i64().unwrap() >= 3);
    assert_eq!(campaign["decided"], 0);
    let worker = "spiffe://acme.example/ns/payments/sa/refund-worker";
    let api = "spiffe://acme.example/ns/payments/sa/payments-api";
    let (_, view) = env
        .query(
            RouteId::GetReview,
            &[&id],
            "owner=payments-team&pending=true",
            Some(&env.admin),
        )
        .await;
    let items = view["items"].as_array().unwrap();
    assert!(items.iter().all(|i| i["owner"] == "payments-team"));
    let worker_item = items.iter().find(|i| i["spiffe_id"] == worker).unwrap();
    let perms = worker_item["permissions"].as_array().unwrap();
    assert!(
        perms.iter().any(|p| p == "payments.refund:consume"),
        "{worker_item}"
    );

    let decide = |body: serde_json::Value| {
        let env = &env;
        let id = id.clone();
        async move {
            env.route(RouteId::DecideReview, &[&id], Some(&env.admin), Some(body))
                .await
        }
    };
    // Bad attestations are refused with the reason.
    for (body, want) in [
        (
            json!({"spiffe_id": worker, "decision": "maybe", "note": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"spiffe_id": worker, "decision": "keep", "note": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"spiffe_id": worker, "decision": "reduce", "note": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"spiffe_id": worker, "decision": "reduce", "note": "x", "reduce": ["ledger.nothing:admin"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"spiffe_id": "spiffe://acme.example/nobody", "decision": "keep", "note": "x"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (st, answer) = decide(body.clone()).await;
        assert_eq!(st, want, "{body}: {answer}");
    }
    let (st, kept) = decide(json!({"spiffe_id": worker, "decision": "reduce", "note": "books through the ledger's queue now", "reduce": ["ledger.post:invoke"]})).await;
    assert_eq!(st, StatusCode::OK, "{kept}");
    assert_eq!(kept["decision"], "reduce");
    let (st, again) = decide(json!({"spiffe_id": worker, "decision": "keep", "note": "x"})).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "attested once: {again}"
    );
    // Revoke really revokes: suspended, with a revocation epoch.
    let (st, revoked) =
        decide(json!({"spiffe_id": api, "decision": "revoke", "note": "no longer needed"})).await;
    assert_eq!(st, StatusCode::OK, "{revoked}");
    let (_, identity) = env
        .route(RouteId::GetIdentity, &[api], Some(&env.admin), None)
        .await;
    assert_eq!(identity["state"], "suspended");
    let (_, revocations) = env
        .route(RouteId::ListRevocations, &[], Some(&env.admin), None)
        .await;
    assert_eq!(revocations[0]["target"], api);
    assert!(revocations[0]["reason"].as_str().unwrap().contains(&id));
    // Progress, the evidence, and the inventory's last review.
    let (_, list) = env
        .route(RouteId::ListReviews, &[], Some(&env.admin), None)
        .await;
    assert_eq!(list[0]["decided"], 2);
    assert_eq!(list[0]["name"], "Q4 payments");
    let (_, events) = env
        .query(
            RouteId::AuditEvents,
            &[],
            "kind=review.attested",
            Some(&env.admin),
        )
        .await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "review.revoke" && e["principal"] == api)
    );
    assert!(
        events
            .iter()
            .any(|e| e["details"]["reduce"][0] == "ledger.post:invoke")
    );
    let (_, report) = env
        .query(RouteId::Posture, &[], "plane=payments", Some(&env.admin))
        .await;
    let reviewed = report["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["spiffe_id"] == worker)
        .unwrap()["last_reviewed"]
        .clone();
    assert!(reviewed.is_string(), "{reviewed}");
    // Attested identities are not due again within the cadence.
    let (st, next) = env
        .route(
            RouteId::StartReview,
            &[],
            Some(&env.admin),
            Some(json!({"plane": "payments"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{next}");
    assert_eq!(next["items"].as_i64().unwrap(), due_first - 2);
    // Roles: an auditor reads, never attests; a plane admin starts only for its planes.
    let auditor = env.credential("auditor", "auditor", None).await;
    let (st, _) = env
        .route(RouteId::GetReview, &[&id], Some(&auditor), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = env
        .route(
            RouteId::DecideReview,
            &[&id],
            Some(&auditor),
            Some(json!({"spiffe_id": worker, "decision": "keep", "note": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let payments = env
        .credential("payments lead", "plane-admin", Some("payments"))
        .await;
    let (st, _) = env
        .route(
            RouteId::StartReview,
            &[],
            Some(&payments),
            Some(json!({"plane": "commerce", "all": true})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = env
        .route(RouteId::GetReview, &["rev-nope"], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Another plane's campaign: hidden from the list, and by id it is as if it did not
    // exist (a plane admin learns nothing of other planes), to read or to attest.
    let (st, commerce) = env
        .route(
            RouteId::StartReview,
            &[],
            Some(&env.admin),
            Some(json!({"plane": "commerce", "all": true})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{commerce}");
    let other = commerce["id"].as_str().unwrap();
    let (_, listed) = env
        .route(RouteId::ListReviews, &[], Some(&payments), None)
        .await;
    assert!(
        listed.as_array().unwrap().iter().all(|c| c["id"] != other),
        "{listed}"
    );
    let (st, body) = env
        .route(RouteId::GetReview, &[other], Some(&payments), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.to_string().contains("commerce"), "{body}");
    let (st, _) = env
        .route(
            RouteId::DecideReview,
            &[other],
            Some(&payments),
            Some(json!({"spiffe_id": worker, "decision": "keep", "note": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Its own plane's campaign it reads.
    let (st, _) = env
        .route(RouteId::GetReview, &[&id], Some(&payments), None)
        .await;
    assert_eq!(st, StatusCode::OK);
}

/// The compliance report maps each framework's controls to evidence, shows gaps, and
/// renders as escaped, script-free HTML; plane admins cannot read it.
pub(crate) async fn compliance_report_maps_controls_to_evidence(env: Env) {
    env.apply_example().await;
    // An identity whose description carries markup: nothing of it may execute.
    let (st, _) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            Some(&env.admin),
            Some(json!({
                "spiffe_id": "spiffe://acme.example/ns/payments/sa/xss", "plane": "payments",
                "owner": "payments-team", "environment": "prod", "kind": "agent",
                "classification": "internal", "description": "<script>alert(1)</script>",
                "labels": {"team": "<img src=x onerror=alert(1)>"},
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, report) = env
        .route(RouteId::Compliance, &[], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    let frameworks: Vec<&str> = report["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        frameworks,
        [
            "nist-csf-2.0",
            "owasp-nhi-top10-2025",
            "csa-maestro",
            "nist-ai-rmf-1.0"
        ]
    );
    let control = |fw: usize, id: &str| {
        report["frameworks"][fw]["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap()
    };
    // Applied configuration is cited with the newest event's sequence number.
    let inventory = control(0, "ID.AM-02");
    assert_eq!(inventory["status"], "evidenced", "{inventory}");
    assert!(
        inventory["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_kind"] == "config.applied" && e["latest_seq"].as_i64().unwrap() > 0)
    );
    // Nothing was ever revoked: containment is in place but not exercised.
    let contain = control(0, "RS.MI-01");
    assert_eq!(contain["status"], "partial");
    // Reuse is detected, but no credential was issued yet: not exercised.
    let reuse = control(1, "NHI9:2025");
    assert_eq!(reuse["status"], "partial", "{reuse}");
    // Agents exist, but no tool call was ever decided: "tool calls are authorised" is not
    // evidenced by agents existing.
    let tools = control(2, "L3");
    assert_eq!(tools["status"], "partial", "{tools}");
    assert!(
        tools["gaps"][0].as_str().unwrap().contains("not exercised"),
        "{tools}"
    );
    // Every control that says "evidenced" cites an event that happened.
    for fw in report["frameworks"].as_array().unwrap() {
        for c in fw["controls"].as_array().unwrap() {
            if c["status"] == "evidenced" {
                assert!(
                    c["evidence"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e["latest_seq"].as_i64().is_some_and(|s| s > 0)),
                    "{c}"
                );
            }
        }
    }
    // One decision on a tool, and the control cites it.
    let (st, d) = env
        .route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(json!({
                "subject": {"type": "workload", "id": "spiffe://acme.example/agents/prod/support-assistant"},
                "resource": {"type": "tool", "id": "lookup_order"},
                "action": {"name": "access"},
                "context": {"environment": "prod"},
            })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{d}");
    let seq_after = {
        let mut found = None;
        for _ in 0..50 {
            let (_, report) = env
                .route(RouteId::Compliance, &[], Some(&env.admin), None)
                .await;
            let l3 = report["frameworks"][2]["controls"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == "L3")
                .cloned()
                .unwrap();
            if l3["status"] == "evidenced" {
                found = l3["evidence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find_map(|e| e["latest_seq"].as_i64());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        found
    };
    assert!(
        seq_after.is_some_and(|s| s > 0),
        "the tool decision is cited"
    );
    // What Steward does not detect is a gap, said plainly.
    let human = control(1, "NHI10:2025");
    assert_eq!(human["status"], "gap");
    assert!(human["gaps"][0].as_str().unwrap().contains("not detected"));
    assert!(report["summary"]["gap"].as_u64().unwrap() >= 1);
    // HTML: escaped, no script.
    let html = env
        .http
        .get(format!("{}?format=html", env.url(RouteId::Compliance, &[])))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap();
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = html.text().await.unwrap();
    assert!(html.contains("NIST Cybersecurity Framework 2.0"));
    assert!(!html.contains("<script"), "no script in the report");
    assert!(html.contains("@media print"));
    // Roles and bad input.
    let auditor = env.credential("auditor", "auditor", None).await;
    let (st, _) = env
        .route(RouteId::Compliance, &[], Some(&auditor), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let plane = env
        .credential("payments lead", "plane-admin", Some("payments"))
        .await;
    let (st, _) = env
        .route(RouteId::Compliance, &[], Some(&plane), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = env
        .query(RouteId::Compliance, &[], "format=pdf", Some(&env.admin))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// The console's decision chart reads `GET /admin/v1/audit/timeline`: allowed and denied
/// decisions counted apart, per UTC hour, whichever layer decided (the AuthZEN API here,
/// and an enforcement point's shipped record); auditors may read it, plane admins not.
pub(crate) async fn the_timeline_counts_allowed_and_denied_apart(env: Env) {
    env.apply_example().await;
    let first_hour = steward_model::timestamp::now()[..13].to_owned();
    let (st, hours) = env
        .query(RouteId::AuditTimeline, &[], "hours=24", Some(&env.admin))
        .await;
    assert_eq!((st, hours.clone()), (StatusCode::OK, json!([])), "{hours}");
    let ask = |subject: &str, capability: &str, action: &str, environment: &str| {
        env.route(
            RouteId::Evaluation,
            &[],
            Some(&env.admin),
            Some(json!({
                "subject": {"type": "workload", "id": subject},
                "resource": {"type": "capability", "id": capability},
                "action": {"name": action},
                "context": {"environment": environment},
            })),
        )
    };
    let orders = "spiffe://acme.example/ns/orders/sa/orders-api";
    let partner = "spiffe://acme.example/ns/partners/sa/partner-gateway";
    for (subject, capability, action, environment, want) in [
        (orders, "payments.charge", "invoke", "prod", true),
        (orders, "payments.charge", "invoke", "prod", true),
        (partner, "orders.read", "read", "staging", false),
    ] {
        let (st, d) = ask(subject, capability, action, environment).await;
        assert_eq!((st, &d["decision"]), (StatusCode::OK, &json!(want)), "{d}");
    }
    let record = json!({
        "schema": "steward.evidence/1",
        "id": "timeline-deny-1",
        "time": steward_model::timestamp::now(),
        "kind": "access.decision",
        "principal": orders,
        "action": "consume",
        "decision": {"outcome": "deny"},
        "enforcement_point": "consumer:refunds",
    });
    let (st, body) = env
        .route(
            RouteId::Decisions,
            &[],
            Some(&env.admin),
            Some(json!({"records": [record]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");

    let (st, hours) = env
        .query(RouteId::AuditTimeline, &[], "hours=24", Some(&env.admin))
        .await;
    assert_eq!(st, StatusCode::OK, "{hours}");
    let last_hour = steward_model::timestamp::now()[..13].to_owned();
    let hours = hours.as_array().unwrap();
    // One hour, or two when the test ran across an hour's end.
    assert!(!hours.is_empty() && hours.len() <= 2, "{hours:?}");
    for h in hours {
        let hour = h["hour"].as_str().unwrap();
        assert!(
            hour == first_hour || hour == last_hour,
            "{hour} is not {first_hour} or {last_hour}"
        );
    }
    let sum = |k: &str| hours.iter().map(|h| h[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!((sum("allowed"), sum("denied")), (2, 2), "{hours:?}");

    let auditor = env.credential("auditor", "auditor", None).await;
    let (st, same) = env
        .query(RouteId::AuditTimeline, &[], "hours=24", Some(&auditor))
        .await;
    assert_eq!((st, same.as_array().unwrap()), (StatusCode::OK, hours));
    let plane = env
        .credential("payments lead", "plane-admin", Some("payments"))
        .await;
    let (st, _) = env
        .query(RouteId::AuditTimeline, &[], "hours=24", Some(&plane))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = env
        .query(RouteId::AuditTimeline, &[], "hours=0", Some(&env.admin))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}
