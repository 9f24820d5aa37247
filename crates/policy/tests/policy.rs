//! The layered policy model against the example repository and deliberately broken ones:
//! real Cedar policies, real schema validation, real decisions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use steward_governance::{Desired, SourceFile, parse, read_dir};
use steward_model::{Action, TrustDomain};
use steward_policy::analysis::{RecordedDecision, entitlements, replay, run_tests};
use steward_policy::{AccessRequest, Engine, HttpPath, OwnedAddress, PolicyError, Target};
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-24 10:00 UTC);

fn example_files() -> Vec<SourceFile> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/governance");
    read_dir(&root).unwrap()
}

fn desired(files: &[SourceFile]) -> Desired {
    parse(files, &TrustDomain::new("acme.example").unwrap()).unwrap()
}

fn example() -> Engine {
    Engine::from_desired(&desired(&example_files()), NOW).unwrap()
}

/// What the repository says an identity's owner intended.
fn intended(principal: &str) -> Vec<steward_model::Entitlement> {
    let d = desired(&example_files());
    d.identities
        .values()
        .find(|i| i.spiffe_id.as_str() == principal)
        .map(|i| i.intended.clone())
        .unwrap_or_default()
}

/// The example repository with one file replaced or added.
fn with_file(path: &str, content: &str) -> Vec<SourceFile> {
    let mut files: Vec<SourceFile> = example_files()
        .into_iter()
        .filter(|f| f.path != path)
        .collect();
    files.push(SourceFile {
        path: path.into(),
        content: content.into(),
    });
    files
}

fn problems(files: &[SourceFile]) -> Vec<String> {
    match Engine::from_desired(&desired(files), NOW) {
        Ok(_) => panic!("the policy was accepted"),
        Err(PolicyError::Invalid(diags)) => diags.iter().map(|d| d.to_string()).collect(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn ctx(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn request(principal: &str, capability: &str, action: Action, context: Value) -> AccessRequest {
    AccessRequest {
        principal: principal.into(),
        target: Target::Capability(capability.into()),
        action: Some(action),
        context: ctx(context),
        at: NOW,
    }
}

const ORDERS_API: &str = "spiffe://acme.example/ns/orders/sa/orders-api";
const EXPORTER: &str = "spiffe://acme.example/legacy/billing-exporter";
const GATEWAY: &str = "spiffe://acme.example/ns/partners/sa/partner-gateway";

#[test]
fn the_example_repository_passes_its_own_policy_tests() {
    let d = desired(&example_files());
    assert!(d.policy_tests.len() >= 10, "{}", d.policy_tests.len());
    let engine = Engine::from_desired(&d, NOW).unwrap();
    let outcomes = run_tests(&engine, &d.policy_tests, NOW);
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn a_failing_policy_test_says_what_it_got() {
    let files = with_file(
        "tests/extra.yaml",
        "policy_tests:\n  - name: wrong on purpose\n    principal: spiffe://acme.example/ns/orders/sa/orders-api\n    capability: payments.charge\n    action: invoke\n    context: {environment: prod}\n    expect: deny\n    decided_by: [GR-1]\n",
    );
    let d = desired(&files);
    let engine = Engine::from_desired(&d, NOW).unwrap();
    let outcomes = run_tests(&engine, &d.policy_tests, NOW);
    let bad = outcomes
        .iter()
        .find(|o| o.name == "wrong on purpose")
        .unwrap();
    assert!(!bad.passed);
    let problem = bad.problem.as_deref().unwrap();
    assert!(problem.contains("expected deny, got allow"), "{problem}");
    assert!(problem.contains("GR-1"), "{problem}");
    assert_eq!((bad.file.as_str(), bad.line), ("tests/extra.yaml", 2));
}

/// An agent's model tier (from its federated token) is in the request context, so a
/// guardrail can refuse a tier; a request without one takes the `has` branch.
#[test]
fn the_model_tier_reaches_policy() {
    let files = with_file(
        "policies/model-tiers.cedar",
        "@id(\"GR-tier\")\nforbid (principal, action, resource) when { context has model_tier && context.model_tier == \"experimental\" };\n",
    );
    let engine = Engine::from_desired(&desired(&files), NOW).unwrap();
    for (tier, allowed) in [
        (None, true),
        (Some("frontier"), true),
        (Some("experimental"), false),
    ] {
        let mut context = json!({"environment": "prod"});
        if let Some(t) = tier {
            context["model_tier"] = json!(t);
        }
        let d = engine.decide(&request(ORDERS_API, "orders.read", Action::Read, context));
        assert_eq!(d.allowed, allowed, "{tier:?}: {d:?}");
        if !allowed {
            assert_eq!(d.policies, ["GR-tier"]);
        }
    }
    let d = engine.decide(&request(
        ORDERS_API,
        "orders.read",
        Action::Read,
        json!({"environment": "prod", "model_tier": 3}),
    ));
    assert!(!d.allowed);
    assert!(
        d.reasons[0].contains("context.model_tier must be a string"),
        "{d:?}"
    );
    // A repository cannot declare its own `model_tier`: it is the token's.
    let declared = with_file(
        "request-context.yaml",
        "request_context:\n  - name: model_tier\n    type: string\n",
    );
    let err = parse(&declared, &TrustDomain::new("acme.example").unwrap()).unwrap_err();
    assert!(err.to_string().contains("model_tier"), "{err}");
}

/// Values the catalog fixes for a capability reach every decision on it, overriding what
/// the caller says: here `data_class: restricted` on orders.read, which GR-5 refuses to
/// identities classified below confidential.
#[test]
fn a_capability_fixes_request_context_the_caller_cannot_override() {
    let mut files = example_files();
    let f = files
        .iter_mut()
        .find(|f| f.content.contains("- id: orders.read"))
        .unwrap();
    f.content = f.content.replacen(
        "- id: orders.read\n",
        "- id: orders.read\n    context: {data_class: restricted}\n",
        1,
    );
    let d = desired(&files);
    assert_eq!(
        d.capabilities
            .values()
            .find(|c| c.id.as_str() == "orders.read")
            .unwrap()
            .context["data_class"],
        "restricted"
    );
    let plain = example();
    let fixed = Engine::from_desired(&d, NOW).unwrap();
    let internal = d
        .identities
        .values()
        .find(|i| {
            i.classification == steward_model::Classification::Internal
                && plain
                    .decide(&request(
                        i.spiffe_id.as_str(),
                        "orders.read",
                        Action::Read,
                        json!({"environment": i.environment}),
                    ))
                    .allowed
        })
        .expect("an internal identity the example lets read orders");
    let id = internal.spiffe_id.as_str();
    for said in [json!(null), json!("public")] {
        let mut context = json!({"environment": internal.environment});
        if !said.is_null() {
            context["data_class"] = said.clone();
        }
        let d = fixed.decide(&request(id, "orders.read", Action::Read, context));
        assert!(!d.allowed, "{said}: {d:?}");
        assert_eq!(d.policies, ["GR-5"], "{d:?}");
    }
}

#[test]
fn a_plane_permit_never_overrides_a_central_forbid() {
    // The commerce plane explicitly grants the partner gateway orders.read; served outside
    // the gateway's environment, GR-1 forbids, and forbid wins.
    let engine = example();
    let allowed = engine.decide(&request(
        GATEWAY,
        "orders.read",
        Action::Read,
        json!({"environment": "prod"}),
    ));
    assert!(allowed.allowed, "{allowed:?}");
    assert_eq!(
        allowed.policies,
        ["commerce-grant-orders-read-to-partner-gateway"]
    );
    let denied = engine.decide(&request(
        GATEWAY,
        "orders.read",
        Action::Read,
        json!({"environment": "staging"}),
    ));
    assert!(!denied.allowed);
    assert_eq!(denied.policies, ["GR-1"]);
    assert!(
        denied.reasons[0].contains("central guardrail, forbid"),
        "{:?}",
        denied.reasons
    );

    // Even a plane permit written to allow everything in its plane cannot beat GR-2.
    let files = with_file(
        "policies/partners/partners.cedar",
        "@id(\"partners-allow-all\")\npermit (principal, action, resource);\n",
    );
    let engine = Engine::from_desired(&desired(&files), NOW).unwrap();
    let suspended = "spiffe://acme.example/partners/initech/test/orders-integration";
    let d = engine.decide(&request(
        suspended,
        "partner.orders.submit",
        Action::Write,
        json!({"environment": "test"}),
    ));
    assert!(!d.allowed);
    assert_eq!(d.policies, ["GR-2"]);
}

#[test]
fn plane_policies_are_confined_to_their_plane() {
    // An unconstrained permit in the partners plane does not reach payments capabilities.
    let files = with_file(
        "policies/partners/partners.cedar",
        "@id(\"partners-allow-all\")\npermit (principal, action, resource);\n",
    );
    let engine = Engine::from_desired(&desired(&files), NOW).unwrap();
    let d = engine.decide(&request(
        GATEWAY,
        "payments.read",
        Action::Read,
        json!({"environment": "prod"}),
    ));
    assert!(!d.allowed, "{d:?}");
    let d = engine.decide(&request(
        GATEWAY,
        "partner.orders.submit",
        Action::Read,
        json!({"environment": "prod"}),
    ));
    assert!(d.allowed, "{d:?}");

    // Naming another plane's capability is refused at publish time.
    let p = problems(&with_file(
        "policies/partners/grab.cedar",
        "// grab\n@id(\"partners-grab-payments\")\npermit (principal, action, resource == Steward::Capability::\"payments.refund\");\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("policies/partners/grab.cedar:2:"), "{p:?}");
    assert!(p[0].contains("partners-grab-payments"), "{p:?}");
    assert!(p[0].contains("outside its plane"), "{p:?}");
    assert!(p[0].contains("belongs to plane `payments`"), "{p:?}");

    // Also when hidden in the condition, or via another plane.
    let p = problems(&with_file(
        "policies/partners/grab.cedar",
        "@id(\"a\")\npermit (principal, action, resource) when { resource == Steward::Capability::\"payments.refund\" };\n@id(\"b\")\npermit (principal, action, resource in Steward::Plane::\"payments\");\n",
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].contains(":1:") && p[0].contains("`a`"), "{p:?}");
    assert!(
        p[1].contains(":3:") && p[1].contains("plane `payments` is not `partners`"),
        "{p:?}"
    );

    // A parent plane may govern its child's capabilities.
    let files = with_file(
        "policies/payments/child.cedar",
        "@id(\"payments-eu-read\")\npermit (principal, action == Steward::Action::\"read\", resource == Steward::Capability::\"payments.sepa.transfer\") when { principal.plane == \"payments\" };\n",
    );
    Engine::from_desired(&desired(&files), NOW).unwrap();
}

#[test]
fn publishing_refuses_what_breaks_the_rules() {
    // A central permit.
    let p = problems(&with_file(
        "policies/extra.cedar",
        "@id(\"GR-99\")\npermit (principal, action, resource);\n",
    ));
    assert!(
        p[0].contains("central guardrails") && p[0].contains("must be `forbid`"),
        "{p:?}"
    );
    // Missing and duplicate ids.
    let p = problems(&with_file(
        "policies/extra.cedar",
        "forbid (principal, action, resource) when { false };\n@id(\"GR-1\")\nforbid (principal, action, resource) when { false };\n",
    ));
    assert!(
        p.iter()
            .any(|m| m.contains("extra.cedar:1:") && m.contains("needs an `@id")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`GR-1` is used twice (first at policies/extra.cedar:2)")),
        "{p:?}"
    );
    // Cedar validation against the schema.
    let p = problems(&with_file(
        "policies/extra.cedar",
        "\n\n@id(\"GR-98\")\nforbid (principal, action, resource) when { principal.clearance == \"x\" };\n",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("policies/extra.cedar:3:")
            && p[0].contains("fails Cedar validation")
            && p[0].contains("clearance"),
        "{p:?}"
    );
    // An undeclared context attribute.
    let p = problems(&with_file(
        "policies/extra.cedar",
        "@id(\"GR-97\")\nforbid (principal, action, resource) when { context.ticket_id == \"T-1\" };\n",
    ));
    assert!(p[0].contains("fails Cedar validation"), "{p:?}");
    // Syntax errors carry their line.
    let p = problems(&with_file(
        "policies/extra.cedar",
        "@id(\"GR-96\")\nforbid (principal, action, resource)\nwhen { principal.kind == };\n",
    ));
    assert!(
        p[0].starts_with("policies/extra.cedar:3:") && p[0].contains("Cedar syntax error"),
        "{p:?}"
    );
    // Exceptionable permits make no sense.
    let p = problems(&with_file(
        "policies/payments/extra.cedar",
        "@id(\"x\")\n@exceptionable(\"true\")\npermit (principal, action, resource);\n",
    ));
    assert!(
        p[0].contains("only `forbid` policies can be exceptionable"),
        "{p:?}"
    );
    // Templates.
    let p = problems(&with_file(
        "policies/payments/extra.cedar",
        "@id(\"t\")\npermit (principal == ?principal, action, resource);\n",
    ));
    assert!(p[0].contains("templates"), "{p:?}");
}

#[test]
fn exceptions_lift_only_exceptionable_guardrails_within_the_maximum() {
    let exception = |lifts: &str, expires: &str| {
        format!(
            "exceptions:\n  - id: ex-1\n    owner: payments-team\n    reason: r\n    ticket: T-1\n    principal: {ORDERS_API}\n    capability: payments.charge\n    lifts: [{lifts}]\n    expires_at: {expires}\n"
        )
    };
    let p = problems(&with_file(
        "exceptions.yaml",
        &exception("GR-1", "2026-11-30T00:00:00Z"),
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("exceptions.yaml:2:")
            && p[0].contains("`GR-1`, which is not annotated @exceptionable"),
        "{p:?}"
    );
    let p = problems(&with_file(
        "exceptions.yaml",
        &exception("GR-404", "2026-11-30T00:00:00Z"),
    ));
    assert!(p[0].contains("not a policy id"), "{p:?}");
    let p = problems(&with_file(
        "exceptions.yaml",
        &exception("GR-3", "2027-06-01T00:00:00Z"),
    ));
    assert!(p[0].contains("more than 30 days away"), "{p:?}");
    // The central maximum is a setting.
    let settings = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/governance/settings.yaml"),
    )
    .unwrap();
    let mut files = with_file(
        "exceptions.yaml",
        &exception("GR-3", "2026-12-01T00:00:00Z"),
    );
    files.retain(|f| f.path != "settings.yaml");
    files.push(SourceFile {
        path: "settings.yaml".into(),
        content: settings.replace("settings:\n", "settings:\n  max_exception_days: 3\n"),
    });
    let p = problems(&files);
    assert!(p[0].contains("more than 3 days away"), "{p:?}");
    // Malformed exceptions are caught by the parser with their line.
    let err = parse(
        &with_file("exceptions.yaml", &exception("GR-3", "next tuesday")),
        &TrustDomain::new("acme.example").unwrap(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("problem"), "{err}");
}

#[test]
fn an_exception_stops_working_when_it_expires() {
    let engine = example();
    let mut r = request(
        EXPORTER,
        "billing.export",
        Action::Read,
        json!({"environment": "prod"}),
    );
    r.at = datetime!(2026-12-14 23:59:59 UTC);
    let d = engine.decide(&r);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.exceptions, ["ex-billing-exporter-static-key"]);
    assert!(
        d.reasons.iter().any(|r| r
            .contains("GR-3 lifted by exception ex-billing-exporter-static-key (ticket SEC-2291")),
        "{:?}",
        d.reasons
    );
    r.at = datetime!(2026-12-15 00:00:00 UTC);
    let d = engine.decide(&r);
    assert!(!d.allowed);
    assert!(d.exceptions.is_empty());
    assert_eq!(d.policies, ["GR-3"]);
    // It never grants by itself: `admin` is permitted by no policy.
    r.at = datetime!(2026-12-01 00:00:00 UTC);
    r.action = Some(Action::Admin);
    let d = engine.decide(&r);
    assert!(!d.allowed);
    assert!(d.exceptions.is_empty());
}

#[test]
fn bad_requests_are_denied_with_a_reason() {
    let engine = example();
    let cases = [
        (
            request(
                "spiffe://acme.example/nobody",
                "orders.read",
                Action::Read,
                json!({"environment": "prod"}),
            ),
            "not a registered identity",
        ),
        (
            request(
                ORDERS_API,
                "no.such.capability",
                Action::Read,
                json!({"environment": "prod"}),
            ),
            "not in the catalog",
        ),
        (
            request(ORDERS_API, "orders.read", Action::Read, json!({})),
            "context.environment is required",
        ),
        (
            request(
                ORDERS_API,
                "orders.read",
                Action::Read,
                json!({"environment": 7}),
            ),
            "context.environment must be a string",
        ),
        (
            request(
                ORDERS_API,
                "orders.read",
                Action::Read,
                json!({"environment": "prod", "data_class": "secret"}),
            ),
            "not one of public",
        ),
        (
            request(
                ORDERS_API,
                "orders.read",
                Action::Read,
                json!({"environment": "prod", "amount_minor": "ten"}),
            ),
            "context.amount_minor must be a long",
        ),
        (
            request(
                ORDERS_API,
                "orders.read",
                Action::Read,
                json!({"environment": "prod", "delegation_chain": [1]}),
            ),
            "list of strings",
        ),
    ];
    for (r, why) in cases {
        let d = engine.decide(&r);
        assert!(!d.allowed, "{r:?}");
        assert!(
            d.reasons.iter().any(|x| x.contains(why)),
            "{why}: {:?}",
            d.reasons
        );
    }
    let mut r = request(
        ORDERS_API,
        "orders.read",
        Action::Read,
        json!({"environment": "prod"}),
    );
    r.action = None;
    assert!(!engine.decide(&r).allowed);
    // Undeclared context attributes cannot matter to any policy; they are ignored.
    let d = engine.decide(&request(
        ORDERS_API,
        "orders.read",
        Action::Read,
        json!({"environment": "prod", "traceparent": "00-x"}),
    ));
    assert!(d.allowed, "{d:?}");
}

#[test]
fn transport_addresses_resolve_through_the_catalog() {
    let engine = example();
    let address = |a: OwnedAddress| AccessRequest {
        principal: ORDERS_API.into(),
        target: Target::Address(a),
        action: None,
        context: ctx(json!({"environment": "prod"})),
        at: NOW,
    };
    let d = engine.decide(&address(OwnedAddress::Http {
        method: "GET".into(),
        path: HttpPath::parse("/v1/orders/42").unwrap(),
    }));
    assert!(d.allowed, "{d:?}");
    assert_eq!(
        (d.capability.as_deref(), d.action),
        (Some("orders.read"), Some(Action::Read))
    );
    let d = engine.decide(&address(OwnedAddress::Grpc {
        service: "orders.v1.Orders".into(),
        method: "Get".into(),
    }));
    assert_eq!(d.capability.as_deref(), Some("orders.read"));
    let d = engine.decide(&address(OwnedAddress::Http {
        method: "GET".into(),
        path: HttpPath::parse("/nowhere").unwrap(),
    }));
    assert!(!d.allowed);
    assert!(
        d.reasons[0].contains("no capability in the catalog maps http GET /nowhere"),
        "{d:?}"
    );
    let mut r = address(OwnedAddress::Http {
        method: "GET".into(),
        path: HttpPath::parse("/v1/orders/42").unwrap(),
    });
    r.action = Some(Action::Write);
    let d = engine.decide(&r);
    assert!(
        !d.allowed && d.reasons[0].contains("does not match"),
        "{d:?}"
    );
}

#[test]
fn an_evaluation_error_is_a_deny() {
    // The forbid overflows for large amounts; Cedar skips an erroring policy, which would
    // let the permit through. Steward denies instead.
    let files = with_file(
        "policies/payments/overflow.cedar",
        "@id(\"payments-overflow\")\nforbid (principal, action, resource == Steward::Capability::\"payments.charge\") when { context has amount_minor && context.amount_minor * 4611686018427387904 < 0 };\n",
    );
    let engine = Engine::from_desired(&desired(&files), NOW).unwrap();
    let d = engine.decide(&request(
        ORDERS_API,
        "payments.charge",
        Action::Invoke,
        json!({"environment": "prod", "amount_minor": 1}),
    ));
    assert!(d.allowed, "{d:?}");
    let d = engine.decide(&request(
        ORDERS_API,
        "payments.charge",
        Action::Invoke,
        json!({"environment": "prod", "amount_minor": 4}),
    ));
    assert!(!d.allowed, "{d:?}");
    assert!(
        !d.errors.is_empty() && d.errors[0].contains("overflow"),
        "{d:?}"
    );
    assert!(d.reasons[0].contains("failing closed"), "{d:?}");
}

#[test]
fn effective_permissions_are_computed_and_compared_with_intent() {
    let engine = example();
    let report = entitlements(&engine, ORDERS_API, &intended(ORDERS_API), None, NOW).unwrap();
    let has = |cap: &str, a: Action| {
        report
            .effective
            .iter()
            .any(|p| p.capability == cap && p.action == a)
    };
    assert!(has("payments.charge", Action::Invoke));
    assert!(has("orders.read", Action::Read));
    assert!(!has("payments.refund", Action::Invoke));
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    // The example grants exactly what the owner declared.
    assert!(report.excess.is_empty(), "{:?}", report.excess);
    // A plane-wide permit grants the commerce plane's services more than declared.
    let broad = with_file(
        "policies/commerce/broad.cedar",
        "@id(\"commerce-everything\")\npermit (principal, action, resource)\nwhen { principal.plane == \"commerce\" };\n",
    );
    let engine = Engine::from_desired(&desired(&broad), NOW).unwrap();
    let report = entitlements(&engine, ORDERS_API, &intended(ORDERS_API), None, NOW).unwrap();
    assert!(
        report
            .excess
            .contains(&("orders.read".to_owned(), Action::Write)),
        "{:?}",
        report.excess
    );
    assert!(
        !report
            .excess
            .contains(&("payments.charge".to_owned(), Action::Invoke))
    );
    let engine = example();

    // The agent's intended refund tool needs human approval and an amount: missing under
    // the baseline context, present with them.
    let agent = "spiffe://acme.example/agents/prod/support-assistant";
    let report = entitlements(&engine, agent, &intended(agent), None, NOW).unwrap();
    assert!(
        report
            .missing
            .contains(&("support.tool.refund_payment".to_owned(), Action::Invoke)),
        "{report:?}"
    );
    let with = ctx(json!({"environment": "prod", "human_approved": true, "amount_minor": 100}));
    let report = entitlements(&engine, agent, &intended(agent), Some(with), NOW).unwrap();
    assert!(
        !report
            .missing
            .contains(&("support.tool.refund_payment".to_owned(), Action::Invoke)),
        "{report:?}"
    );
    assert!(entitlements(&engine, "spiffe://acme.example/nobody", &[], None, NOW).is_none());
}

/// Least privilege in the example: every identity's effective permissions are exactly
/// its intended list. In its own environment alone, nothing beyond the list is allowed;
/// with the context its requests carry (its partner, the EU region, an approved session
/// and a small amount), everything on the list is, except for the suspended partner.
#[test]
fn the_example_grants_exactly_what_each_identity_intends() {
    let d = desired(&example_files());
    let engine = Engine::from_desired(&d, NOW).unwrap();
    assert!(d.identities.len() >= 16, "{}", d.identities.len());
    let mut problems = Vec::new();
    for i in d.identities.values() {
        let id = i.spiffe_id.as_str();
        let home = entitlements(&engine, id, &i.intended, None, NOW).unwrap();
        if !home.excess.is_empty() {
            problems.push(format!("{id} gets more than it intends: {:?}", home.excess));
        }
        let mut context = ctx(json!({
            "environment": i.environment,
            "data_region": "eu-west-1",
            "human_approved": true,
            "amount_minor": 100
        }));
        if let Some(partner) = i.labels.get("partner") {
            context.insert("partner_id".into(), partner.clone().into());
        }
        let full = entitlements(&engine, id, &i.intended, Some(context), NOW).unwrap();
        if !full.excess.is_empty() {
            problems.push(format!("{id} gets more than it intends: {:?}", full.excess));
        }
        let active = i
            .state
            .is_none_or(|s| s == steward_model::LifecycleState::Active);
        if active && !full.missing.is_empty() {
            problems.push(format!("{id} lacks what it intends: {:?}", full.missing));
        }
        if !active && !full.effective.is_empty() {
            problems.push(format!(
                "{id} is not active but may act: {:?}",
                full.effective
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn replay_lists_the_decisions_a_candidate_policy_would_flip() {
    let current = example();
    let recorded: Vec<RecordedDecision> = [
        request(
            EXPORTER,
            "billing.export",
            Action::Read,
            json!({"environment": "prod"}),
        ),
        request(
            ORDERS_API,
            "payments.charge",
            Action::Invoke,
            json!({"environment": "prod"}),
        ),
        request(
            GATEWAY,
            "orders.read",
            Action::Read,
            json!({"environment": "prod"}),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, r)| RecordedDecision {
        event_id: format!("ev-{i}"),
        allowed: current.decide(&r).allowed,
        request: r,
    })
    .collect();
    assert!(recorded.iter().all(|r| r.allowed));
    assert!(replay(&current, &recorded).is_empty());

    // Candidate: the exception is withdrawn and the orders grant removed.
    let mut files = with_file("exceptions.yaml", "");
    let commerce = files
        .iter()
        .find(|f| f.path == "policies/commerce/commerce.cedar")
        .unwrap()
        .content
        .clone();
    let start = commerce.find("// Partners: the partner gateway").unwrap();
    let end = commerce.find("// Platform: the end-to-end suite").unwrap();
    let trimmed = format!("{}{}", &commerce[..start], &commerce[end..]);
    files.retain(|f| f.path != "policies/commerce/commerce.cedar");
    files.push(SourceFile {
        path: "policies/commerce/commerce.cedar".into(),
        content: trimmed,
    });
    let candidate = Engine::from_desired(&desired(&files), NOW).unwrap();
    let flips = replay(&candidate, &recorded);
    let ids: Vec<&str> = flips.iter().map(|f| f.event_id.as_str()).collect();
    assert_eq!(ids, ["ev-0", "ev-2"]);
    assert!(flips.iter().all(|f| f.was && !f.now));
    assert_eq!(flips[0].policies, ["GR-3"]);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn engine() -> &'static Engine {
        static ENGINE: OnceLock<Engine> = OnceLock::new();
        ENGINE.get_or_init(example)
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z_.:/*#-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the caller sends as context, principal or address, the engine answers;
        /// it allows only a registered principal with a served-in environment.
        #[test]
        fn decide_answers_any_request(
            context in proptest::collection::btree_map(
                prop_oneof![Just("environment".to_owned()), Just("data_class".to_owned()), Just("amount_minor".to_owned()), Just("delegation_chain".to_owned()), Just("human_approved".to_owned()), "[a-z_]{1,10}"],
                json_value(), 0..6),
            principal in prop_oneof![Just(ORDERS_API.to_owned()), Just(GATEWAY.to_owned()), "[ -~]{0,40}"],
            path in "/([a-z0-9*]{1,8}/){0,4}[a-z0-9*]{0,8}",
            method in prop_oneof![Just("GET".to_owned()), Just("POST".to_owned()), "[A-Z]{0,6}"],
        ) {
            let req = AccessRequest {
                principal: principal.clone(),
                target: Target::Address(OwnedAddress::Http { method, path: HttpPath::parse(&path).unwrap() }),
                action: None,
                context: context.into_iter().collect(),
                at: NOW,
            };
            let d = engine().decide(&req);
            // The cached answer (this request again) is exactly the evaluated one.
            prop_assert_eq!(&engine().decide(&req), &d);
            prop_assert_eq!(&engine().decide_uncached(&req), &d);
            if d.allowed {
                prop_assert!(engine().knows(&principal));
                prop_assert!(req.context.get("environment").is_some_and(Value::is_string));
                prop_assert!(!d.policies.is_empty());
            } else {
                prop_assert!(!d.reasons.is_empty() || !d.errors.is_empty());
            }
        }

        /// Arbitrary policy text is refused with diagnostics or compiled, never a panic.
        #[test]
        fn compile_answers_any_policy_text(text in "[ -~\n]{0,200}", plane in prop_oneof![Just("policies/x.cedar"), Just("policies/payments/x.cedar")]) {
            let mut files = example_files();
            files.push(SourceFile { path: plane.into(), content: format!("@id(\"p\")\n{text}") });
            if let Ok(d) = parse(&files, &TrustDomain::new("acme.example").unwrap()) {
                let _ = Engine::from_desired(&d, NOW);
            }
        }
    }
}
