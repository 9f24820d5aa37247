//! Analyses on top of the engine: effective permissions against the intended
//! entitlements an owner declared, policy unit tests, and the replay of recorded decisions
//! against a candidate policy. All of them are computed by asking the engine, never by
//! reading the policy text.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use steward_model::{Action, Entitlement, EntitlementReport, Flip, Permission};
use steward_model::{Expectation, PolicyTest};

use crate::schema::ACTIONS;
use crate::{AccessRequest, Decision, Engine, Target};

/// The context of a request made from the identity's own environment, and nothing else.
/// `None` for an identity the engine does not know.
pub fn home_context(engine: &Engine, principal: &str) -> Option<Map<String, Value>> {
    let environment = engine.environment_of(principal)?;
    let mut m = Map::new();
    m.insert("environment".into(), Value::String(environment.to_owned()));
    Some(m)
}

/// Every action policy allows `principal` on `capability` in `context`: one decision per
/// action, exactly what enforcement points would get.
pub fn permissions_on(
    engine: &Engine,
    principal: &str,
    capability: &str,
    context: &Map<String, Value>,
    at: time::OffsetDateTime,
) -> Vec<Permission> {
    ACTIONS
        .into_iter()
        .filter_map(|action| {
            let d = engine.decide_uncached(&AccessRequest {
                principal: principal.to_owned(),
                target: Target::Capability(capability.to_owned()),
                action: Some(action),
                context: context.clone(),
                at,
            });
            d.allowed.then(|| Permission {
                capability: capability.to_owned(),
                action,
                policies: d.policies,
                exceptions: d.exceptions,
            })
        })
        .collect()
}

/// Every (capability, action) the policy allows `principal` under `context` (by default
/// the identity's own environment and nothing else): one decision per pair, so the answer
/// is exactly what enforcement points would get. `intended` is what the owner declared
/// (the registry's `intended`; the engine does not keep it).
pub fn entitlements(
    engine: &Engine,
    principal: &str,
    intended: &[Entitlement],
    context: Option<Map<String, Value>>,
    at: time::OffsetDateTime,
) -> Option<EntitlementReport> {
    let context = match context {
        Some(c) => c,
        None => home_context(engine, principal)?,
    };
    let mut effective = Vec::new();
    for capability in engine.capability_ids() {
        effective.extend(permissions_on(engine, principal, capability, &context, at));
    }
    let intended: BTreeSet<(String, Action)> = intended
        .iter()
        .flat_map(|e| e.actions.iter().map(|a| (e.capability.to_string(), *a)))
        .collect();
    let allowed: BTreeSet<(String, Action)> = effective
        .iter()
        .map(|p| (p.capability.clone(), p.action))
        .collect();
    Some(EntitlementReport {
        principal: principal.to_owned(),
        context,
        excess: allowed.difference(&intended).cloned().collect(),
        missing: intended.difference(&allowed).cloned().collect(),
        intended: intended.into_iter().collect(),
        effective,
    })
}

/// The result of one policy unit test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub passed: bool,
    /// What was wrong, for a failed test.
    pub problem: Option<String>,
    pub decision: Decision,
}

/// Runs the repository's policy tests against an engine built from the same repository.
pub fn run_tests(
    engine: &Engine,
    tests: &[PolicyTest],
    now: time::OffsetDateTime,
) -> Vec<TestOutcome> {
    tests
        .iter()
        .map(|t| {
            let decision = engine.decide_uncached(&AccessRequest {
                principal: t.principal.clone(),
                target: Target::Capability(t.capability.clone()),
                action: t.action,
                context: t.context.clone(),
                at: t.at.unwrap_or(now),
            });
            let want_allow = t.expect == Expectation::Allow;
            let mut problems = Vec::new();
            if decision.allowed != want_allow {
                problems.push(format!(
                    "expected {}, got {}",
                    if want_allow { "allow" } else { "deny" },
                    if decision.allowed { "allow" } else { "deny" }
                ));
            }
            let missing: Vec<&str> = t
                .decided_by
                .iter()
                .filter(|p| !decision.policies.contains(p))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "expected {} among the deciding policies, got [{}]",
                    missing.join(", "),
                    decision.policies.join(", ")
                ));
            }
            TestOutcome {
                name: t.name.clone(),
                file: t.file.clone(),
                line: t.line,
                passed: problems.is_empty(),
                problem: (!problems.is_empty()).then(|| problems.join("; ")),
                decision,
            }
        })
        .collect()
}

/// A decision recorded in the evidence log, ready to be replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedDecision {
    pub event_id: String,
    pub request: AccessRequest,
    pub allowed: bool,
}

/// Replays recorded decisions against `candidate` at the time each was made, and lists
/// those whose outcome would change.
pub fn replay(candidate: &Engine, recorded: &[RecordedDecision]) -> Vec<Flip> {
    recorded
        .iter()
        .filter_map(|r| {
            let d = candidate.decide_uncached(&r.request);
            (d.allowed != r.allowed).then(|| Flip {
                event_id: r.event_id.clone(),
                time: steward_model::timestamp::format(r.request.at),
                principal: r.request.principal.clone(),
                capability: d.capability.clone(),
                action: d.action,
                was: r.allowed,
                now: d.allowed,
                policies: d.policies,
                reasons: d.reasons,
            })
        })
        .collect()
}
