//! The policy part of `steward demo`: decisions through the AuthZEN API showing each layer
//! at work, an exception that expires during the demo, and the analyses.

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use steward_api::{
    ActionObject, ApiClient, ApplyRequest, ApplyResponse, Entity, EvaluationItem,
    EvaluationRequest, EvaluationResponse, EvaluationsOptions, EvaluationsRequest,
    EvaluationsResponse, EvaluationsSemantic, EventQuery, PlanRequest, PlanResponse, PolicyVersion,
    PolicyVersionBody,
};
use steward_governance::SourceFile;
use steward_model::EntitlementReport;

use crate::output;

const ORDERS_API: &str = "spiffe://acme.example/ns/orders/sa/orders-api";
const GATEWAY: &str = "spiffe://acme.example/ns/partners/sa/partner-gateway";
const AGENT: &str = "spiffe://acme.example/agents/prod/support-assistant";
const SEPA: &str = "spiffe://acme.example/eu/ns/payments/sa/sepa-gateway";
const EXPORTER: &str = "spiffe://acme.example/legacy/billing-exporter";

/// An AuthZEN subject, resource or action object of `kind` without properties.
fn entity(kind: &str, id: &str) -> Entity {
    Entity {
        kind: kind.into(),
        id: id.into(),
        properties: Map::new(),
    }
}

fn workload(id: &str) -> Entity {
    entity("workload", id)
}

fn capability(id: &str) -> Entity {
    entity("capability", id)
}

fn action(name: &str) -> ActionObject {
    ActionObject {
        name: name.into(),
        properties: Map::new(),
    }
}

/// The members of a JSON object (`json!({...})`).
fn members(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `subject` does `verb` on `resource`, in `context` (a JSON object).
fn request(subject: Entity, resource: Entity, verb: &str, context: Value) -> EvaluationRequest {
    EvaluationRequest {
        subject,
        resource,
        action: action(verb),
        context: Some(members(context)),
    }
}

/// Asks the decision API and prints one line plus the deciding reason.
async fn ask(admin: &ApiClient, what: &str, req: &EvaluationRequest) -> Result<EvaluationResponse> {
    let r: EvaluationResponse = admin.evaluation(req).await?;
    let reasons: Vec<&str> = r
        .context
        .get("reasons")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!("{} {what}", if r.decision { "ALLOW" } else { "DENY " });
    for reason in reasons {
        println!("        {reason}");
    }
    Ok(r)
}

pub(crate) async fn decisions(admin: &ApiClient) -> Result<()> {
    let config = admin.authzen_configuration().await?;
    println!(
        "AuthZEN 1.0 decision API: {}",
        config.access_evaluation_endpoint
    );
    let prod = || json!({"environment": "prod"});
    ask(
        admin,
        "orders-api invokes payments.charge in prod (a grant the payments plane wrote for commerce)",
        &request(workload(ORDERS_API), capability("payments.charge"), "invoke", prod()),
    )
    .await?;
    let http = Entity {
        properties: members(json!({"method": "GET"})),
        ..entity("http", "/v1/orders/42")
    };
    ask(
        admin,
        "partner-gateway: HTTP GET /v1/orders/42 in prod (resolved through the capability catalog)",
        &request(workload(GATEWAY), http, "access", prod()),
    )
    .await?;
    ask(
        admin,
        "partner-gateway reads orders.read, served in staging (the commerce grant loses to a central forbid)",
        &request(
            workload(GATEWAY),
            capability("orders.read"),
            "read",
            json!({"environment": "staging"}),
        ),
    )
    .await?;
    ask(
        admin,
        "support assistant calls the refund_payment tool for EUR 30 without human approval",
        &request(
            workload(AGENT),
            entity("tool", "refund_payment"),
            "invoke",
            json!({"environment": "prod", "amount_minor": 3000}),
        ),
    )
    .await?;
    ask(
        admin,
        "the same call in a session a human approved",
        &request(
            workload(AGENT),
            entity("tool", "refund_payment"),
            "invoke",
            json!({"environment": "prod", "amount_minor": 3000, "human_approved": true}),
        ),
    )
    .await?;
    ask(
        admin,
        "EU SEPA gateway transfers from us-east-1 (the payments-eu plane's own forbid)",
        &request(
            workload(SEPA),
            capability("payments.sepa.transfer"),
            "invoke",
            json!({"environment": "prod", "data_region": "us-east-1"}),
        ),
    )
    .await?;
    ask(
        admin,
        "a subject of type `user` (Steward decides for workloads only)",
        &request(
            entity("user", "alice"),
            capability("orders.read"),
            "read",
            prod(),
        ),
    )
    .await?;
    let item = |resource: &str, verb: &str| EvaluationItem {
        resource: Some(capability(resource)),
        action: Some(action(verb)),
        ..EvaluationItem::default()
    };
    let batch: EvaluationsResponse = admin
        .evaluations(&EvaluationsRequest {
            defaults: EvaluationItem {
                subject: Some(workload(ORDERS_API)),
                context: Some(members(prod())),
                ..EvaluationItem::default()
            },
            evaluations: vec![
                item("orders.read", "read"),
                item("payments.refund", "invoke"),
                item("payments.charge", "invoke"),
            ],
            options: EvaluationsOptions {
                evaluations_semantic: EvaluationsSemantic::DenyOnFirstDeny,
            },
        })
        .await?;
    println!(
        "Batch of 3 with deny_on_first_deny: {} answered ({}).",
        batch.evaluations.len(),
        batch
            .evaluations
            .iter()
            .map(|e| if e.decision { "allow" } else { "deny" })
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Try one by hand: steward authorize --principal {ORDERS_API} --capability payments.charge --action invoke -c environment=prod"
    );
    Ok(())
}

pub(crate) async fn exception(admin: &ApiClient, files: &[SourceFile]) -> Result<Vec<SourceFile>> {
    let body = request(
        workload(EXPORTER),
        capability("payments.read"),
        "read",
        json!({"environment": "prod"}),
    );
    ask(
        admin,
        "the legacy billing exporter (static key) reads payments.read",
        &body,
    )
    .await?;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let expires_at = steward_model::timestamp::format(expires);
    // Least privilege: the exporter's policy grants it billing.export alone, so the
    // incident needs the payments plane's permit and Security's exception (which never
    // grants by itself; it only lifts the guardrail).
    let mut with_exception = files.to_vec();
    with_exception.push(SourceFile {
        path: "policies/payments/incident-4711.cedar".into(),
        content: format!(
            "// INC-4711: the billing exporter reconciles a failed settlement run.\n@id(\"payments-incident-4711-exporter-reads-payments\")\npermit (\n  principal == Steward::Identity::\"{EXPORTER}\",\n  action == Steward::Action::\"read\",\n  resource == Steward::Capability::\"payments.read\"\n);\n"
        ),
    });
    with_exception.push(SourceFile {
        path: "exceptions-incident.yaml".into(),
        content: format!(
            "exceptions:\n  - id: ex-incident-4711\n    owner: mira-okafor\n    reason: reconcile a failed settlement run during incident INC-4711\n    ticket: INC-4711\n    principal: {EXPORTER}\n    capability: payments.read\n    lifts: [GR-3]\n    expires_at: {expires_at}\n"
        ),
    });
    let applied: ApplyResponse = admin
        .apply(&ApplyRequest {
            files: with_exception.clone(),
            expected_version: None,
        })
        .await?;
    println!(
        "The payments plane permits the exporter to read payments for INC-4711, and Security grants exception ex-incident-4711 (ticket INC-4711), lifting GR-3 until {expires_at}: configuration version {}.",
        applied.version
    );
    ask(
        admin,
        "the billing exporter reads payments.read again",
        &body,
    )
    .await?;
    let wait = expires - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
    println!("…{expires_at} has passed; nobody touched the exception.");
    let r = ask(
        admin,
        "the billing exporter reads payments.read once more",
        &body,
    )
    .await?;
    anyhow::ensure!(!r.decision, "the expired exception still worked");
    let used: Vec<steward_api::StoredEvent> = admin
        .audit_events(&EventQuery {
            kind: Some("access.decision".into()),
            principal: Some(EXPORTER.into()),
            limit: Some(100),
            ..EventQuery::default()
        })
        .await?;
    for e in used.iter().filter(|e| e.event.decision.exception.is_some()) {
        println!(
            "Evidence #{}: {} {} allowed under exception {}.",
            e.seq,
            e.event.action.as_deref().unwrap_or("?"),
            e.event.destination.capability.as_deref().unwrap_or("?"),
            e.event.decision.exception.as_deref().unwrap_or("?")
        );
    }
    Ok(with_exception)
}

pub(crate) async fn analysis(admin: &ApiClient, files: &[SourceFile]) -> Result<()> {
    let report: EntitlementReport = admin.entitlements(ORDERS_API, None).await?;
    println!(
        "orders-api: {} effective permission(s), {} intended; allowed but not intended: {}; intended but missing: {}.",
        report.effective.len(),
        report.intended.len(),
        report.excess.len(),
        report.missing.len()
    );
    if report.excess.is_empty() {
        println!(
            "  Least privilege: the policy grants orders-api exactly what its owner intended."
        );
    }
    for (c, a) in report.excess.iter().take(3) {
        println!("  excess: {a} {c}");
    }
    // A candidate policy: commerce withdraws the partner gateway's orders grant.
    let mut candidate = files.to_vec();
    let commerce = candidate
        .iter_mut()
        .find(|f| f.path == "policies/commerce/commerce.cedar")
        .context("the example repository has policies/commerce/commerce.cedar")?;
    if let (Some(start), Some(end)) = (
        commerce.content.find("// Partners: the partner gateway"),
        commerce.content.find("// Platform: the end-to-end suite"),
    ) {
        commerce.content.replace_range(start..end, "");
    }
    let plan: PlanResponse = admin
        .plan(&PlanRequest {
            files: candidate,
            replay_days: Some(1),
        })
        .await?;
    println!("Candidate: commerce removes commerce-grant-orders-read-to-partner-gateway.");
    print!("{}", output::plan(&plan.plan, plan.version));
    print!("{}", output::policy_plan(&plan));
    println!(
        "(Replays use each decision's own time: the exporter's request from before the exception was granted is allowed by the candidate, which still holds it.)"
    );
    let versions: Vec<PolicyVersion> = admin.policy_versions(None).await?;
    println!("Policy versions:");
    for v in &versions {
        println!(
            "  {} ({}, config {}): {}…",
            v.version,
            v.reason,
            v.config_version,
            v.digest.get(..12).unwrap_or("")
        );
    }
    if versions.len() >= 2 {
        let a: PolicyVersionBody = admin.policy_version(1).await?;
        let b: PolicyVersionBody = admin.policy_version(2).await?;
        println!("steward policy diff 1 2:");
        for line in steward_policy::bundle_diff(&a.bundle, &b.bundle)
            .lines()
            .filter(|l| !l.starts_with(' '))
            .take(12)
        {
            println!("  {line}");
        }
    }
    Ok(())
}
