//! The CLI's text output, checked by snapshot (`cargo insta review` after an intended
//! change): what an operator reads is reviewed like code.

#![allow(clippy::expect_used)]

use serde_json::json;
use steward_api::{
    AdminChange, Campaign, CampaignView, PointsResponse, PostureReport, RegistryCounts,
    RevokeResponse, StoredEvent, Verification,
};

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a fixture of the wire type")
}

fn point(id: &str, live: bool, epoch: i64, flagged: Option<&str>) -> serde_json::Value {
    json!({
        "id": id, "kind": "gateway", "name": id, "environment": "prod",
        "credential": "cred_1", "bundle_version": 4, "epoch": epoch,
        "last_seen": "2026-12-07T10:00:00.000Z", "seconds_since_seen": if live { 2 } else { 400 },
        "live": live, "behind_bundle": false, "behind_epoch": epoch < 7, "flagged": flagged
    })
}

#[test]
fn plan_of_the_example_repository() {
    let files = steward_governance::read_dir(&steward_testkit::example_repo()).expect("example");
    let td = steward_model::TrustDomain::new("acme.example").expect("trust domain");
    let desired = steward_governance::parse(&files, &td).expect("the example parses");
    let plan =
        steward_governance::plan(&steward_governance::State::default(), &desired).expect("a plan");
    insta::assert_snapshot!(crate::output::plan(&plan, 0));
}

#[test]
fn status_and_changes() {
    let counts: RegistryCounts = from(json!({
        "config_version": 3, "planes": 4, "owners": 3,
        "identities": {"active": 5, "suspended": 1, "decommissioned": 2},
        "identities_by_kind": {"service": 4, "agent": 2},
        "orphaned_identities": 1, "capabilities": 6, "issuers": 1, "policies": 3
    }));
    insta::assert_snapshot!("status", crate::commands::status_text(&counts));
    let changes: Vec<AdminChange> = from(json!([
        {"seq": 1, "at": "2026-12-07T09:00:00.000Z", "actor": "bootstrap (cred_1)", "role": "central-admin",
         "action": "config.apply", "target": "version 1", "before": null, "after": {"version": 1}},
        {"seq": 2, "at": "2026-12-07T09:05:00.000Z", "actor": "bootstrap (cred_1)", "role": "central-admin",
         "action": "identity.lifecycle", "target": "spiffe://acme.example/ns/payments/sa/ledger",
         "before": {"state": "active"}, "after": {"state": "suspended"}}
    ]));
    insta::assert_snapshot!("changes", crate::commands::changes_text(&changes));
}

#[test]
fn enforcement_points_and_a_verification() {
    let points: PointsResponse = from(json!({
        "policy_version": 4, "epoch": 7, "liveness_secs": 30,
        "points": [point("gateway:edge-1", true, 7, None), point("nginx:ingress", true, 6, None),
                   point("gateway:old", false, 3, Some("reported epoch 9, never issued"))]
    }));
    insta::assert_snapshot!("points", crate::output::points_text(&points));
    let v: Verification = from(json!({
        "epoch": 7, "complete": false, "waited_ms": 1500,
        "acknowledged": [point("gateway:edge-1", true, 7, None)],
        "lagging": [point("nginx:ingress", true, 6, None)],
        "not_live": [point("gateway:old", false, 3, None)]
    }));
    insta::assert_snapshot!("verification", crate::revoke_cmd::verification_text(&v));
    let r: RevokeResponse = from(json!({
        "revocation": {"epoch": 7, "kind": "identity", "target": "spiffe://acme.example/ns/payments/sa/ledger",
                       "revoked_at": 1796637600, "planes": ["payments"],
                       "reason": "key leaked in a build log", "actor": "bootstrap (cred_1)"},
        "live_points": 2
    }));
    insta::assert_snapshot!("revoked", crate::revoke_cmd::revoked_text(&r));
}

#[test]
fn posture_with_findings_and_inventory() {
    let report: PostureReport = from(json!({
        "generated_at": "2026-12-07T10:00:00.000Z", "window_days": 30, "stale_days": 30, "observation_days": 14,
        "summary": {"identities": 3, "by_state": {"active": 3}, "findings": 3,
                    "by_severity": {"high": 2, "medium": 1}, "by_kind": {"over_privileged": 1, "beyond_intended": 1, "stale": 1},
                    "by_owasp": {"NHI1:2025 Improper Offboarding": 1, "NHI5:2025 Overprivileged NHI": 2},
                    "analysed": 3, "not_analysed": 0, "observing": 1},
        "findings": [
            {"id": "beyond_intended:spiffe://acme.example/ns/payments/sa/api", "kind": "beyond_intended",
             "severity": "high", "subject": "spiffe://acme.example/ns/payments/sa/api", "plane": "payments",
             "owner": "payments-team", "summary": "the policy grants 1 permission(s) its owner never intended (ledger.post:invoke); narrow the policy to the `intended` list, or declare them in `intended` if it needs them",
             "evidence": {}, "owasp": ["NHI5:2025 Overprivileged NHI"]},
            {"id": "over_privileged:spiffe://acme.example/ns/payments/sa/ledger", "kind": "over_privileged",
             "severity": "high", "subject": "spiffe://acme.example/ns/payments/sa/ledger", "plane": "payments",
             "owner": "payments-team", "summary": "1 of the 2 intended permission(s) the policy grants were not used in the last 30 days (payments.refunds:write); if it no longer needs them, narrow the policy and its `intended` list",
             "evidence": {}, "owasp": ["NHI5:2025 Overprivileged NHI"]},
            {"id": "stale:spiffe://acme.example/ns/commerce/sa/orders", "kind": "stale", "severity": "medium",
             "subject": "spiffe://acme.example/ns/commerce/sa/orders", "plane": "commerce", "owner": "commerce-team",
             "summary": "not used in 30 days", "evidence": {}, "owasp": ["NHI1:2025 Improper Offboarding"]}
        ],
        "inventory": [{
            "spiffe_id": "spiffe://acme.example/ns/payments/sa/ledger", "plane": "payments", "owner": "payments-team",
            "owner_removed": false, "environment": "prod", "kind": "service", "state": "active",
            "created_at": "2026-11-01T00:00:00.000Z",
            "credentials": {"registered_keys": 1, "tls_certificates": 0, "client_secret_age_days": null,
                            "active_tokens": 3, "tokens_issued": 40, "last_token_issued": "2026-12-07T09:59:00.000Z"},
            "last_used": "2026-12-07T09:59:30.000Z", "last_reviewed": null,
            "permissions": {"intended": ["payments.charges:read", "payments.refunds:write"], "effective": ["payments.charges:read", "payments.refunds:write"],
                            "used": ["payments.charges:read"], "unused": ["payments.refunds:write"],
                            "beyond_intended": [], "observed_until": null},
            "environments_used": [], "client_keys_used": []
        }, {
            "spiffe_id": "spiffe://acme.example/ns/payments/sa/settlement", "plane": "payments", "owner": "payments-team",
            "owner_removed": false, "environment": "prod", "kind": "service", "state": "active",
            "created_at": "2026-12-01T00:00:00.000Z",
            "credentials": {"registered_keys": 1, "tls_certificates": 0, "client_secret_age_days": null,
                            "active_tokens": 0, "tokens_issued": 0, "last_token_issued": null},
            "last_used": null, "last_reviewed": null,
            "permissions": {"intended": ["payments.charges:read"], "effective": ["payments.charges:read"],
                            "used": [], "unused": ["payments.charges:read"],
                            "beyond_intended": [], "observed_until": "2026-12-15T00:00:00.000Z"},
            "environments_used": [], "client_keys_used": []
        }]
    }));
    insta::assert_snapshot!("posture", crate::posture_cmd::text(&report, true));
}

#[test]
fn reviews_and_events() {
    let campaign: Campaign = from(json!({
        "id": "rev_1", "name": "Q4 access review", "plane": "payments", "created_at": "2026-12-01T00:00:00.000Z",
        "created_by": "bootstrap (cred_1)", "due_at": "2026-12-15T00:00:00.000Z", "items": 2, "decided": 1
    }));
    insta::assert_snapshot!(
        "campaigns",
        crate::review_cmd::campaigns_text(std::slice::from_ref(&campaign))
    );
    let view: CampaignView = from(json!({
        "campaign": campaign,
        "items": [
            {"campaign_id": "rev_1", "spiffe_id": "spiffe://acme.example/ns/payments/sa/ledger", "plane": "payments",
             "owner": "payments-team", "permissions": ["payments.charges:read"], "decision": "keep", "reduce": [],
             "note": "still needed for settlement", "decided_by": "payments lead (cred_2)", "decided_at": "2026-12-02T00:00:00.000Z"},
            {"campaign_id": "rev_1", "spiffe_id": "spiffe://acme.example/ns/payments/sa/batch", "plane": "payments",
             "owner": "payments-team", "permissions": ["payments.refunds:write"], "decision": null, "reduce": [],
             "note": null, "decided_by": null, "decided_at": null}
        ]
    }));
    insta::assert_snapshot!("campaign", crate::review_cmd::items_text(&view));
    let events: Vec<StoredEvent> = from(json!([
        {"seq": 41, "hash": "ab12", "schema": "steward.evidence/1", "id": "ev_1", "time": "2026-12-07T10:00:00.000Z",
         "kind": "credential.issued", "plane": "payments", "principal": "spiffe://acme.example/ns/payments/sa/ledger",
         "action": "client_credentials", "token_id": "jti_1", "correlation_id": "trace-1"},
        {"seq": 42, "hash": "cd34", "schema": "steward.evidence/1", "id": "ev_2", "time": "2026-12-07T10:00:01.000Z",
         "kind": "access.decision", "plane": "payments", "principal": "spiffe://acme.example/ns/payments/sa/ledger",
         "action": "write", "destination": {"capability": "payments.refunds", "address": "POST /refunds"},
         "decision": {"outcome": "deny", "policies": ["guardrail-no-refunds-from-batch"], "reasons": ["refunds need a human"]},
         "enforcement_point": "gateway:edge-1", "correlation_id": "trace-1"}
    ]));
    insta::assert_snapshot!("events", crate::commands::events_text(&events));
    insta::assert_snapshot!("trace", crate::commands::trace_text("trace-1", &events));
}

/// Every command's arguments are consistent (clap checks names, flags and groups only
/// when a command is parsed; this checks them all at once).
#[test]
fn every_command_definition_is_consistent() {
    use clap::CommandFactory;
    crate::Cli::command().debug_assert();
}
