//! The inventory and its findings.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Value, json};
use steward_api::{
    AgentTools, ClientKeyUse, CredentialSummary, EnvironmentUse, Finding, FindingKind,
    IdentityRecord, InventoryItem, PermissionSummary, PostureReport, PostureSummary, Severity,
};
use steward_model::{LifecycleState, timestamp};
use steward_policy::Engine;
use time::OffsetDateTime;

use crate::inputs::Inputs;

/// Exceptions granted this many times for one identity and capability are reported.
const RENEWALS_FLAGGED: i64 = 3;
/// Exceptions expiring within this many days are reported.
const EXCEPTION_NOTICE_DAYS: i64 = 7;
/// Two client keys of one identity both obtaining tokens for longer than this are
/// reported as shared: a key rotation overlaps for minutes or hours, not days.
const SHARED_OVERLAP: time::Duration = time::Duration::hours(24);

/// What a report covers and how far back it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    /// Days of evidence that count as use.
    pub window_days: u64,
    /// Active identities not used for this many days (and registered before) are stale.
    pub stale_days: u64,
    /// Days after an identity's registration before its unused permissions are judged:
    /// a new identity has had no time to use anything yet.
    pub observation_days: u64,
    /// Most identities whose effective permissions are computed (the most sensitive first).
    pub max_analysed: usize,
}

/// One identity's permissions as the policy answers them (`capability:action`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysed {
    /// Everything the policy allows it in its own environment.
    pub effective: BTreeSet<String>,
    /// Of those, what its owner did not declare in `intended`.
    pub beyond_intended: BTreeSet<String>,
}

/// Effective permissions (capability:action) of at most `max_analysed` identities, the
/// most sensitive first, and those of them beyond each identity's intended list, spread
/// over the cores (call it off an async runtime).
pub fn effective_permissions(
    engine: &Engine,
    records: &[IdentityRecord],
    max_analysed: usize,
    now: OffsetDateTime,
) -> HashMap<String, Analysed> {
    // The most sensitive first: restricted, then confidential, … (then by SPIFFE ID).
    let mut candidates: Vec<&IdentityRecord> = records
        .iter()
        .filter(|r| r.identity.state != LifecycleState::Decommissioned)
        .collect();
    candidates.sort_by_key(|r| std::cmp::Reverse(r.identity.classification));
    let analyse: Vec<(String, Vec<steward_model::Entitlement>)> = candidates
        .into_iter()
        .take(max_analysed)
        .map(|r| {
            (
                r.identity.spiffe_id.to_string(),
                r.identity.intended.clone(),
            )
        })
        .collect();
    // One decision per capability × action per identity: spread the identities over the
    // cores (each thread keeps its own share, no shared state).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = analyse.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = analyse
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .filter_map(|(id, intended)| {
                            let r = steward_policy::analysis::entitlements(
                                engine, id, intended, None, now,
                            )?;
                            Some((
                                id.clone(),
                                Analysed {
                                    effective: r
                                        .effective
                                        .iter()
                                        .map(|p| format!("{}:{}", p.capability, p.action))
                                        .collect(),
                                    beyond_intended: r
                                        .excess
                                        .iter()
                                        .map(|(c, a)| format!("{c}:{a}"))
                                        .collect(),
                                },
                            ))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join().unwrap_or_else(|_| {
                    tracing::error!("the effective-permission analysis of a share of identities failed; they are reported as not analysed");
                    Vec::new()
                })
            })
            .collect::<HashMap<_, _>>()
    })
}

/// The posture report from what was read: effective permissions (when an engine is
/// loaded; without one nothing is analysed), the inventory, its findings and the counts.
pub fn assess(
    inputs: Inputs,
    engine: Option<&Engine>,
    params: Params,
    now: OffsetDateTime,
) -> PostureReport {
    let started = std::time::Instant::now();
    let effective = engine
        .map(|e| effective_permissions(e, &inputs.records, params.max_analysed, now))
        .unwrap_or_default();
    let analysed = started.elapsed();
    let tools: HashSet<String> = engine
        .map(|e| {
            e.index()
                .tool_capabilities()
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (inventory, findings) = inventory_and_findings(inputs, &effective, &tools, now, &params);
    tracing::info!(
        identities = inventory.len(),
        findings = findings.len(),
        analysed = effective.len(),
        analysis_ms = analysed.as_millis() as u64,
        findings_ms = (started.elapsed() - analysed).as_millis() as u64,
        "posture assessed"
    );
    let summary = summarise(&inventory, &findings, effective.len());
    PostureReport {
        generated_at: timestamp::format(now),
        window_days: params.window_days,
        stale_days: params.stale_days,
        observation_days: params.observation_days,
        summary,
        findings,
        inventory,
    }
}

/// An agent's permissions narrowed to its tools.
fn agent_tools(p: &PermissionSummary, tools: &HashSet<String>) -> AgentTools {
    let tool = |perm: &&String| {
        perm.split_once(':')
            .is_some_and(|(capability, _)| tools.contains(capability))
    };
    let only = |perms: &[String]| perms.iter().filter(tool).cloned().collect::<Vec<_>>();
    AgentTools {
        intended: only(&p.intended),
        allowed: p.effective.as_deref().map(only),
        used: only(&p.used),
        unused: only(&p.unused),
    }
}

/// The inventory and its findings from what was read and analysed.
fn inventory_and_findings(
    inputs: Inputs,
    analysed: &HashMap<String, Analysed>,
    tools: &HashSet<String>,
    now: OffsetDateTime,
    params: &Params,
) -> (Vec<InventoryItem>, Vec<Finding>) {
    let Inputs {
        settings,
        exceptions,
        records,
        removed,
        secrets,
        reviewed,
        mut used,
        active,
        exception_grants,
        non_expiring_credentials,
    } = inputs;
    let mut inventory = Vec::with_capacity(records.len());
    let mut findings = Vec::new();
    let stale_cutoff = timestamp::format(now - time::Duration::days(params.stale_days as i64));
    for r in &records {
        let i = &r.identity;
        let id = i.spiffe_id.to_string();
        let u = used.remove(&id).unwrap_or_default();
        let secret_age = secrets
            .get(&id)
            .and_then(|t| timestamp::parse(t))
            .map(|t| (now - t).whole_days());
        let credentials = CredentialSummary {
            registered_keys: i.credentials.public_keys.len(),
            tls_certificates: i.credentials.tls_certificates.len(),
            client_secret_age_days: secret_age,
            active_tokens: active.get(&id).copied().unwrap_or(0),
            tokens_issued: u.tokens,
            last_token_issued: u.last_token.clone(),
        };
        let intended: Vec<String> = i
            .intended
            .iter()
            .flat_map(|e| {
                e.actions
                    .iter()
                    .map(move |a| format!("{}:{a}", e.capability))
            })
            .collect();
        let a = analysed.get(&id);
        let unused: Vec<String> = a
            .map(|a| a.effective.difference(&u.permissions).cloned().collect())
            .unwrap_or_default();
        let permissions = PermissionSummary {
            intended,
            effective: a.map(|a| a.effective.iter().cloned().collect()),
            used: u.permissions.iter().cloned().collect(),
            unused,
            beyond_intended: a
                .map(|a| a.beyond_intended.iter().cloned().collect())
                .unwrap_or_default(),
            observed_until: observed_until(&r.created_at, params.observation_days, now),
        };
        let agent_tools = (i.kind == steward_model::IdentityKind::Agent)
            .then(|| agent_tools(&permissions, tools));
        let item = InventoryItem {
            spiffe_id: id.clone(),
            plane: i.plane.to_string(),
            owner: i.owner.clone(),
            owner_removed: r.orphaned || removed.contains_key(&i.owner),
            environment: i.environment.clone(),
            kind: i.kind,
            state: i.state,
            created_at: r.created_at.clone(),
            credentials,
            last_used: u.last.clone(),
            last_reviewed: reviewed.get(&id).cloned(),
            permissions,
            environments_used: u.environments.into_values().collect(),
            client_keys_used: u.keys.into_values().collect(),
            agent_tools,
        };
        let settings = settings.of(&i.plane);
        let rules = Rules {
            max_credential_age_days: settings.max_credential_age_days,
            stale_cutoff: &stale_cutoff,
            stale_days: params.stale_days,
            window_days: params.window_days,
            observation_days: params.observation_days,
        };
        findings.extend(identity_findings(
            &item,
            removed.get(&i.owner),
            i.classification,
            &rules,
        ));
        if let Some(cadence) = settings.review_cadence_days {
            let cutoff = timestamp::format(now - time::Duration::days(cadence as i64));
            findings.extend(unreviewed(&item, cadence, &cutoff));
        }
        inventory.push(item);
    }
    let visible_ids: HashSet<&str> = inventory.iter().map(|i| i.spiffe_id.as_str()).collect();
    for e in exceptions.values() {
        let left = e.expires_at - now;
        if e.is_active(now)
            && left.whole_days() < EXCEPTION_NOTICE_DAYS
            && visible_ids.contains(e.principal.as_str())
        {
            let (plane, owner) = inventory
                .iter()
                .find(|i| i.spiffe_id == e.principal.as_str())
                .map(|i| (i.plane.clone(), e.owner.clone()))
                .unwrap_or_default();
            findings.push(finding(
                FindingKind::ExceptionNearExpiry,
                Severity::Low,
                &e.id,
                plane,
                owner,
                format!(
                    "exception `{}` lifting {} for {} on {} expires in {} h: renew it deliberately or let the guardrail apply",
                    e.id,
                    e.lifts.join(", "),
                    e.principal,
                    e.capability,
                    left.whole_hours()
                ),
                json!({"expires_at": timestamp::format(e.expires_at), "ticket": e.ticket, "reason": e.reason, "principal": e.principal, "capability": e.capability}),
            ));
        }
    }
    for (principal, capability, grants, last) in exception_grants {
        if grants < RENEWALS_FLAGGED {
            continue;
        }
        let Some(item) = inventory.iter().find(|i| i.spiffe_id == principal) else {
            continue;
        };
        findings.push(finding(
            FindingKind::ExceptionRenewed,
            Severity::Medium,
            &format!("{principal}:{capability}"),
            item.plane.clone(),
            item.owner.clone(),
            format!(
                "an exception for `{capability}` was granted {grants} times; make the access a reviewed policy, or stop renewing it"
            ),
            json!({"principal": principal, "capability": capability, "grants": grants, "last_granted": last}),
        ));
    }
    for c in non_expiring_credentials {
        findings.push(finding(
            FindingKind::NonExpiringAdminCredential,
            Severity::Medium,
            &c.id,
            c.role.plane().map(ToString::to_string).unwrap_or_default(),
            c.created_by.clone(),
            format!(
                "admin credential `{}` ({}, {}) never expires: recreate it with `--expires-in`, or give the enforcement point it serves an identity of its own",
                c.id, c.name, c.role
            ),
            json!({"name": c.name, "role": c.role, "created_at": c.created_at, "created_by": c.created_by}),
        ));
    }
    findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(&b.id)));
    (inventory, findings)
}

fn finding(
    kind: FindingKind,
    severity: Severity,
    subject: &str,
    plane: String,
    owner: String,
    summary: String,
    evidence: Value,
) -> Finding {
    Finding {
        id: format!(
            "{}:{subject}",
            serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
        kind,
        severity,
        subject: subject.to_owned(),
        plane,
        owner,
        summary,
        evidence,
        owasp: kind.owasp().iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// When an identity registered at `created_at` leaves the observation window, if that is
/// still ahead of `now` (an unreadable time is judged at once: it hides nothing).
fn observed_until(created_at: &str, observation_days: u64, now: OffsetDateTime) -> Option<String> {
    let end = timestamp::parse(created_at)? + time::Duration::days(observation_days as i64);
    (now < end).then(|| timestamp::format(end))
}

/// What one identity's findings are judged against.
struct Rules<'a> {
    /// Its plane's.
    max_credential_age_days: Option<u64>,
    stale_cutoff: &'a str,
    stale_days: u64,
    window_days: u64,
    observation_days: u64,
}

fn identity_findings(
    item: &InventoryItem,
    owner_removed_at: Option<&String>,
    classification: steward_model::Classification,
    rules: &Rules<'_>,
) -> Vec<Finding> {
    let &Rules {
        max_credential_age_days,
        stale_cutoff,
        stale_days,
        window_days,
        observation_days,
    } = rules;
    let mut out = Vec::new();
    let c = &item.credentials;
    let holds =
        c.registered_keys + c.tls_certificates + usize::from(c.client_secret_age_days.is_some());
    let mk = |kind, severity, summary: String, evidence| {
        finding(
            kind,
            severity,
            &item.spiffe_id,
            item.plane.clone(),
            item.owner.clone(),
            summary,
            evidence,
        )
    };
    let live = item.state != LifecycleState::Decommissioned;
    if item.owner_removed && live {
        out.push(mk(
            FindingKind::Orphaned,
            if holds > 0 { Severity::High } else { Severity::Medium },
            format!(
                "owner `{}` was removed; reassign the identity or decommission it",
                item.owner
            ),
            json!({"owner": item.owner, "owner_removed_at": owner_removed_at, "credentials_held": holds, "state": item.state}),
        ));
    } else if !live && (holds > 0 || c.active_tokens > 0) {
        out.push(mk(
            FindingKind::Orphaned,
            Severity::High,
            "decommissioned but still holds credentials; remove its keys and secrets".into(),
            json!({"registered_keys": c.registered_keys, "tls_certificates": c.tls_certificates, "client_secret_age_days": c.client_secret_age_days, "active_tokens": c.active_tokens}),
        ));
    }
    if item.state == LifecycleState::Active
        && item.created_at.as_str() < stale_cutoff
        && item.last_used.as_deref().is_none_or(|t| t < stale_cutoff)
    {
        out.push(mk(
            FindingKind::Stale,
            Severity::Medium,
            format!("not used in the last {stale_days} days; suspend or decommission it if it is no longer needed"),
            json!({"last_used": item.last_used, "created_at": item.created_at, "stale_days": stale_days}),
        ));
    }
    let p = &item.permissions;
    let active = item.state == LifecycleState::Active;
    let severity = if classification == steward_model::Classification::Restricted {
        Severity::High
    } else {
        Severity::Medium
    };
    // Granted but never intended: a fact of the policy, true from the first day.
    if active && !p.beyond_intended.is_empty() {
        let used: Vec<&String> = p
            .beyond_intended
            .iter()
            .filter(|b| p.used.contains(b))
            .collect();
        out.push(mk(
            FindingKind::BeyondIntended,
            severity,
            format!(
                "the policy grants {} permission(s) its owner never intended ({}){}; narrow the policy to the `intended` list, or declare them in `intended` if it needs them",
                p.beyond_intended.len(),
                sample(&p.beyond_intended),
                if used.is_empty() {
                    String::new()
                } else {
                    format!(", {} of them used in the last {window_days} days", used.len())
                }
            ),
            json!({"beyond_intended": p.beyond_intended, "used": used, "intended": p.intended, "window_days": window_days}),
        ));
    }
    // Intended but unused: only judged once there was time to use it. What is beyond the
    // intended list is reported above, whether used or not.
    let unused: Vec<&String> = p
        .unused
        .iter()
        .filter(|u| !p.beyond_intended.contains(u))
        .collect();
    if active && p.observed_until.is_none() && !unused.is_empty() {
        out.push(mk(
            FindingKind::OverPrivileged,
            severity,
            format!(
                "{} of the {} intended permission(s) the policy grants were not used in the last {window_days} days ({}); if it no longer needs them, narrow the policy and its `intended` list",
                unused.len(),
                p.effective
                    .as_ref()
                    .map_or(0, |e| e.len().saturating_sub(p.beyond_intended.len())),
                sample(&unused)
            ),
            json!({"unused": unused, "used": p.used, "intended": p.intended, "window_days": window_days, "observation_days": observation_days}),
        ));
    }
    // An agent allowed tools its tasks never call: every one is a call a prompt injection
    // could make. Allowed counts, intended or not.
    if let Some(tools) = &item.agent_tools
        && active
        && p.observed_until.is_none()
        && !tools.unused.is_empty()
    {
        out.push(mk(
            FindingKind::AgentToolsUnused,
            severity,
            format!(
                "the agent may call {} tool(s) it did not call in the last {window_days} days ({}); narrow what it may call to what its tasks use",
                tools.unused.len(),
                sample(&tools.unused)
            ),
            json!({"unused": tools.unused, "allowed": tools.allowed, "used": tools.used, "intended": tools.intended, "window_days": window_days}),
        ));
    }
    let elsewhere: Vec<&EnvironmentUse> = item
        .environments_used
        .iter()
        .filter(|e| !item.environment.is_empty() && e.environment != item.environment)
        .collect();
    if live && !elsewhere.is_empty() {
        let succeeded = elsewhere.iter().any(|e| e.allowed + e.tokens > 0);
        let names: Vec<&str> = elsewhere.iter().map(|e| e.environment.as_str()).collect();
        out.push(mk(
            FindingKind::CrossEnvironment,
            if succeeded { Severity::High } else { Severity::Medium },
            format!(
                "registered for `{}` but {} in {} within the last {window_days} days; give each environment its own identity",
                item.environment,
                if succeeded { "used" } else { "tried (and refused)" },
                names.join(", ")
            ),
            json!({"registered_environment": item.environment, "environments": elsewhere, "window_days": window_days}),
        ));
    }
    if live && let Some((a, b, overlap)) = shared_keys(&item.client_keys_used) {
        out.push(mk(
            FindingKind::SharedIdentity,
            Severity::Medium,
            format!(
                "client keys `{}` and `{}` both obtained tokens for {} h at the same time: several workloads appear to share this identity; give each its own",
                a.key,
                b.key,
                overlap.whole_hours()
            ),
            json!({"keys": [a, b], "overlap_hours": overlap.whole_hours(), "window_days": window_days}),
        ));
    }
    if let Some(age) = c.client_secret_age_days
        && live
    {
        match max_credential_age_days {
            Some(max) if age > max as i64 => out.push(mk(
                FindingKind::RotationOverdue,
                Severity::High,
                format!("its static client secret is {age} days old, over its plane's {max}; rotate it (`steward identity secret`) or move to private_key_jwt"),
                json!({"age_days": age, "max_credential_age_days": max}),
            )),
            _ => out.push(mk(
                FindingKind::StaticSecret,
                Severity::Medium,
                format!("authenticates with a static client secret ({age} days old); move it to private_key_jwt"),
                json!({"age_days": age, "max_credential_age_days": max_credential_age_days}),
            )),
        }
    } else if live && item.kind == steward_model::IdentityKind::LegacyKey {
        // A legacy-key identity authenticates with a static key by definition; without a
        // Steward client secret that key is held elsewhere, and nobody tracks its age.
        out.push(mk(
            FindingKind::StaticSecret,
            Severity::Medium,
            "a legacy static-key identity whose key Steward does not hold, so its age is unknown; issue it a client secret (`steward identity secret`) to have rotation enforced and every use flagged, or move it to private_key_jwt".into(),
            json!({"kind": item.kind, "age_days": null, "max_credential_age_days": max_credential_age_days}),
        ));
    }
    out
}

/// The first few permissions of a list, for a finding's one-line summary (the evidence
/// has them all).
fn sample<S: AsRef<str>>(permissions: &[S]) -> String {
    const SHOWN: usize = 3;
    let mut s = permissions
        .iter()
        .take(SHOWN)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if permissions.len() > SHOWN {
        s.push_str(&format!(" and {} more", permissions.len() - SHOWN));
    }
    s
}

/// The pair of client keys whose periods of use overlap the longest, if longer than
/// [`SHARED_OVERLAP`].
fn shared_keys(keys: &[ClientKeyUse]) -> Option<(&ClientKeyUse, &ClientKeyUse, time::Duration)> {
    let period = |k: &ClientKeyUse| Some((timestamp::parse(&k.first)?, timestamp::parse(&k.last)?));
    let mut best = None;
    for (i, a) in keys.iter().enumerate() {
        for b in keys.iter().skip(i + 1) {
            let (Some((a0, a1)), Some((b0, b1))) = (period(a), period(b)) else {
                continue;
            };
            let overlap = a1.min(b1) - a0.max(b0);
            if overlap > SHARED_OVERLAP && best.as_ref().is_none_or(|(_, _, o)| overlap > *o) {
                best = Some((a, b, overlap));
            }
        }
    }
    best
}

/// An active identity registered before the cadence's cutoff and not attested since.
fn unreviewed(item: &InventoryItem, cadence: u64, cutoff: &str) -> Option<Finding> {
    let due = item.state == LifecycleState::Active
        && item.created_at.as_str() < cutoff
        && item.last_reviewed.as_deref().is_none_or(|t| t < cutoff);
    due.then(|| {
        finding(
            FindingKind::Unreviewed,
            Severity::Low,
            &item.spiffe_id,
            item.plane.clone(),
            item.owner.clone(),
            format!("not attested in an access review for over {cadence} days (its plane's review_cadence_days); start one with `steward review start`"),
            json!({"last_reviewed": item.last_reviewed, "review_cadence_days": cadence}),
        )
    })
}

fn summarise(inventory: &[InventoryItem], findings: &[Finding], analysed: usize) -> PostureSummary {
    let mut s = PostureSummary {
        identities: inventory.len(),
        findings: findings.len(),
        analysed,
        ..Default::default()
    };
    for i in inventory {
        *s.by_state.entry(i.state.to_string()).or_default() += 1;
        if i.permissions.effective.is_none() && i.state != LifecycleState::Decommissioned {
            s.not_analysed += 1;
        }
        if i.state == LifecycleState::Active && i.permissions.observed_until.is_some() {
            s.observing += 1;
        }
    }
    for f in findings {
        *s.by_severity.entry(f.severity).or_default() += 1;
        *s.by_kind.entry(f.kind).or_default() += 1;
        for o in &f.owasp {
            *s.by_owasp.entry(o.clone()).or_default() += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Used;
    use steward_model::IdentityKind;

    fn item(state: LifecycleState, created: &str, last_used: Option<&str>) -> InventoryItem {
        InventoryItem {
            spiffe_id: "spiffe://acme.example/x".into(),
            plane: "payments".into(),
            owner: "payments-team".into(),
            owner_removed: false,
            environment: "prod".into(),
            kind: IdentityKind::Service,
            state,
            created_at: created.into(),
            credentials: CredentialSummary::default(),
            last_used: last_used.map(str::to_owned),
            last_reviewed: None,
            permissions: PermissionSummary::default(),
            environments_used: Vec::new(),
            client_keys_used: Vec::new(),
            agent_tools: None,
        }
    }

    fn total(
        kind: &str,
        outcome: Option<&str>,
        env: &str,
        key: Option<&str>,
        n: i64,
        first: &str,
        last: &str,
    ) -> steward_model::UsageTotal {
        steward_model::UsageTotal {
            principal: "spiffe://acme.example/x".into(),
            kind: kind.into(),
            capability: (kind == "access.decision").then(|| "payments.charges".into()),
            action: Some(
                if kind == "access.decision" {
                    "read"
                } else {
                    "client_credentials"
                }
                .into(),
            ),
            outcome: outcome.map(str::to_owned),
            environment: Some(env.into()),
            credential: key.map(str::to_owned),
            count: n,
            first: first.into(),
            last: last.into(),
        }
    }

    /// NHI8/NHI9: use in another environment, refused or not, and client keys used side
    /// by side for days are findings; a key rotation's short overlap is not.
    #[test]
    fn other_environments_and_shared_keys() {
        let window = "2026-10-29T00:00:00Z";
        let mut u = Used::default();
        for t in [
            total(
                "access.decision",
                Some("allow"),
                "prod",
                None,
                40,
                "2026-11-01T00:00:00Z",
                "2026-11-27T00:00:00Z",
            ),
            total(
                "access.decision",
                Some("deny"),
                "staging",
                None,
                3,
                "2026-11-02T00:00:00Z",
                "2026-11-03T00:00:00Z",
            ),
            // Outside the window: not counted.
            total(
                "access.decision",
                Some("allow"),
                "dev",
                None,
                9,
                "2026-09-01T00:00:00Z",
                "2026-09-02T00:00:00Z",
            ),
            // k1 rotated to k2 with a two-hour overlap.
            total(
                "credential.issued",
                None,
                "prod",
                Some("k1"),
                30,
                "2026-11-01T00:00:00Z",
                "2026-11-10T02:00:00Z",
            ),
            total(
                "credential.issued",
                None,
                "prod",
                Some("k2"),
                30,
                "2026-11-10T00:00:00Z",
                "2026-11-27T00:00:00Z",
            ),
        ] {
            u.add(&t, window);
        }
        assert_eq!(u.permissions.len(), 1);
        assert_eq!(u.tokens, 60);
        assert_eq!(u.last.as_deref(), Some("2026-11-27T00:00:00Z"));
        let mut i = item(
            LifecycleState::Active,
            "2026-01-01T00:00:00Z",
            u.last.as_deref(),
        );
        i.environments_used = u.environments.clone().into_values().collect();
        i.client_keys_used = u.keys.clone().into_values().collect();
        assert_eq!(
            i.environments_used
                .iter()
                .map(|e| (e.environment.as_str(), e.allowed, e.denied, e.tokens))
                .collect::<Vec<_>>(),
            [("prod", 40, 0, 60), ("staging", 0, 3, 0)]
        );
        let f = run(&i, None);
        assert_eq!(kinds(&f), [FindingKind::CrossEnvironment]);
        assert_eq!(f[0].severity, Severity::Medium, "only refused attempts");
        assert!(f[0].owasp.iter().any(|o| o.starts_with("NHI8")));

        // A third key used alongside k2 for a week: shared; an allowed decision in
        // staging makes the environment finding high.
        for t in [
            total(
                "credential.issued",
                None,
                "prod",
                Some("k3"),
                5,
                "2026-11-15T00:00:00Z",
                "2026-11-22T00:00:00Z",
            ),
            total(
                "access.decision",
                Some("allow"),
                "staging",
                None,
                1,
                "2026-11-05T00:00:00Z",
                "2026-11-05T00:00:00Z",
            ),
        ] {
            u.add(&t, window);
        }
        i.environments_used = u.environments.into_values().collect();
        i.client_keys_used = u.keys.into_values().collect();
        let f = run(&i, None);
        assert_eq!(
            kinds(&f),
            [FindingKind::CrossEnvironment, FindingKind::SharedIdentity]
        );
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[1].evidence["overlap_hours"], 7 * 24);
        assert_eq!(f[1].evidence["keys"][0]["key"], "k2");
        assert_eq!(f[1].evidence["keys"][1]["key"], "k3");
        assert_eq!(f[1].owasp, ["NHI9:2025 NHI Reuse"]);
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    fn run(i: &InventoryItem, max_age: Option<u64>) -> Vec<Finding> {
        identity_findings(
            i,
            None,
            steward_model::Classification::Internal,
            &Rules {
                max_credential_age_days: max_age,
                stale_cutoff: "2026-10-29T00:00:00Z",
                stale_days: 30,
                window_days: 30,
                observation_days: 14,
            },
        )
    }

    /// A restricted payments service registered at `created`, intending
    /// `payments.charge:invoke` and `payments.read:read`.
    fn record(created: &str, kind: &str) -> IdentityRecord {
        serde_json::from_value(json!({
            "spiffe_id": "spiffe://acme.example/x",
            "plane": "payments",
            "owner": "payments-team",
            "environment": "prod",
            "kind": kind,
            "classification": "restricted",
            "description": "",
            "labels": {},
            "state": "active",
            "intended": [
                {"capability": "payments.charge", "actions": ["invoke"]},
                {"capability": "payments.read", "actions": ["read"]}
            ],
            "managed": true,
            "orphaned": false,
            "created_at": created,
            "updated_at": created
        }))
        .unwrap()
    }

    /// One identity's inventory entry and findings, as of 2026-11-28, with `analysed` as
    /// its computed permissions and `payments.charge:invoke` used in the window.
    fn assess_one(created: &str, analysed: Analysed) -> (InventoryItem, Vec<Finding>) {
        assess_as("service", &HashSet::new(), created, analysed)
    }

    /// [`assess_one`] for an identity of `kind`, with `tools` the capabilities agents
    /// call as tools.
    fn assess_as(
        kind: &str,
        tools: &HashSet<String>,
        created: &str,
        analysed: Analysed,
    ) -> (InventoryItem, Vec<Finding>) {
        let now = time::macros::datetime!(2026-11-28 00:00 UTC);
        let mut used = Used::default();
        used.permissions.insert("payments.charge:invoke".into());
        used.last = Some("2026-11-27T00:00:00Z".into());
        let inputs = Inputs {
            settings: steward_model::PlaneSettings::default(),
            exceptions: Default::default(),
            records: vec![record(created, kind)],
            removed: HashMap::new(),
            secrets: HashMap::new(),
            reviewed: HashMap::from([(
                "spiffe://acme.example/x".to_owned(),
                "2026-11-27T00:00:00Z".to_owned(),
            )]),
            used: HashMap::from([("spiffe://acme.example/x".to_owned(), used)]),
            active: HashMap::new(),
            exception_grants: Vec::new(),
            non_expiring_credentials: Vec::new(),
        };
        let params = Params {
            window_days: 30,
            stale_days: 30,
            observation_days: 14,
            max_analysed: 100,
        };
        let analysed = HashMap::from([("spiffe://acme.example/x".to_owned(), analysed)]);
        let (mut inventory, findings) =
            inventory_and_findings(inputs, &analysed, tools, now, &params);
        (inventory.remove(0), findings)
    }

    /// An agent's entry shows its tools intended, allowed, used and unused; a tool it may
    /// call but never did is a finding once the observation window has passed, whether
    /// or not it was intended. Its other permissions are not tools.
    #[test]
    fn agents_allowed_tools_they_do_not_call_are_reported() {
        let tools: HashSet<String> = ["payments.charge", "support.refund_tool"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let allowed = Analysed {
            effective: perms(&[
                "payments.charge:invoke",
                "payments.read:read",
                "support.refund_tool:invoke",
            ]),
            beyond_intended: perms(&["support.refund_tool:invoke"]),
        };
        let (item, findings) = assess_as("agent", &tools, "2026-11-01T00:00:00Z", allowed.clone());
        let t = item.agent_tools.as_ref().unwrap();
        assert_eq!(t.intended, ["payments.charge:invoke"]);
        assert_eq!(
            t.allowed.as_deref().unwrap(),
            ["payments.charge:invoke", "support.refund_tool:invoke"]
        );
        assert_eq!(t.used, ["payments.charge:invoke"]);
        assert_eq!(t.unused, ["support.refund_tool:invoke"]);
        let f = findings
            .iter()
            .find(|f| f.kind == FindingKind::AgentToolsUnused)
            .unwrap_or_else(|| panic!("{findings:#?}"));
        assert_eq!(f.evidence["unused"], json!(["support.refund_tool:invoke"]));
        assert_eq!(f.owasp, ["NHI5:2025 Overprivileged NHI"]);
        // Inside the observation window: shown, not judged. A service has no tool view.
        let (item, findings) = assess_as("agent", &tools, "2026-11-20T00:00:00Z", allowed.clone());
        assert!(item.agent_tools.is_some());
        assert!(!kinds(&findings).contains(&FindingKind::AgentToolsUnused));
        let (item, _) = assess_as("service", &tools, "2026-11-01T00:00:00Z", allowed);
        assert!(item.agent_tools.is_none());
    }

    fn perms(p: &[&str]) -> BTreeSet<String> {
        p.iter().map(|p| (*p).to_owned()).collect()
    }

    /// An identity younger than the observation window gets no finding for what it has
    /// not used yet; its inventory entry says until when its usage is being observed.
    #[test]
    fn unused_permissions_wait_for_the_observation_window() {
        let exactly_intended = Analysed {
            effective: perms(&["payments.charge:invoke", "payments.read:read"]),
            beyond_intended: BTreeSet::new(),
        };
        let (item, findings) = assess_one("2026-11-20T00:00:00Z", exactly_intended.clone());
        assert_eq!(item.permissions.unused, ["payments.read:read"]);
        assert_eq!(
            item.permissions.observed_until.as_deref(),
            Some("2026-12-04T00:00:00.000Z")
        );
        assert!(findings.is_empty(), "{findings:#?}");

        // Past the window: the unused intended permission is a finding.
        let (item, findings) = assess_one("2026-11-01T00:00:00Z", exactly_intended);
        assert_eq!(item.permissions.observed_until, None);
        assert_eq!(kinds(&findings), [FindingKind::OverPrivileged]);
        let f = &findings[0];
        assert_eq!(f.severity, Severity::High, "a restricted identity");
        assert_eq!(f.evidence["unused"], json!(["payments.read:read"]));
        assert_eq!(f.evidence["observation_days"], 14);
        assert!(
            f.summary
                .starts_with("1 of the 2 intended permission(s) the policy grants were not used"),
            "{}",
            f.summary
        );
        assert_eq!(f.owasp, ["NHI5:2025 Overprivileged NHI"]);
    }

    /// What the policy grants beyond the intended list is reported at once, inside the
    /// observation window too, and once: not again as unused.
    #[test]
    fn permissions_beyond_intended_are_reported_at_once() {
        let broad = Analysed {
            effective: perms(&[
                "payments.charge:invoke",
                "payments.read:read",
                "payments.refund:invoke",
                "payments.refund:write",
                "ledger.post:invoke",
                "billing.export:read",
            ]),
            beyond_intended: perms(&[
                "billing.export:read",
                "ledger.post:invoke",
                "payments.refund:invoke",
                "payments.refund:write",
            ]),
        };
        let (item, findings) = assess_one("2026-11-27T00:00:00Z", broad.clone());
        assert!(item.permissions.observed_until.is_some());
        assert_eq!(kinds(&findings), [FindingKind::BeyondIntended]);
        let f = &findings[0];
        assert_eq!(f.id, "beyond_intended:spiffe://acme.example/x");
        assert_eq!(f.severity, Severity::High);
        assert_eq!(
            f.evidence["beyond_intended"].as_array().map(Vec::len),
            Some(4)
        );
        assert!(
            f.summary.contains("4 permission(s) its owner never intended (billing.export:read, ledger.post:invoke, payments.refund:invoke and 1 more)"),
            "{}",
            f.summary
        );
        assert_eq!(f.owasp, ["NHI5:2025 Overprivileged NHI"]);

        // Past the window the unused intended permission is judged too, and only it.
        let (_, findings) = assess_one("2026-01-01T00:00:00Z", broad);
        assert_eq!(
            kinds(&findings),
            [FindingKind::BeyondIntended, FindingKind::OverPrivileged]
        );
        assert_eq!(
            findings[1].evidence["unused"],
            json!(["payments.read:read"])
        );
        assert!(
            findings[1].summary.starts_with("1 of the 2 intended"),
            "{}",
            findings[1].summary
        );
    }

    #[test]
    fn the_observation_window_starts_at_registration() {
        let now = time::macros::datetime!(2026-11-28 00:00 UTC);
        assert_eq!(
            observed_until("2026-11-27T00:00:00Z", 14, now).as_deref(),
            Some("2026-12-11T00:00:00.000Z")
        );
        assert_eq!(observed_until("2026-11-14T00:00:00Z", 14, now), None);
        assert_eq!(observed_until("2026-11-27T00:00:00Z", 0, now), None);
        assert_eq!(observed_until("not a time", 14, now), None);
    }

    #[test]
    fn stale_only_when_old_and_unused() {
        let old = "2026-01-01T00:00:00Z";
        assert_eq!(
            kinds(&run(&item(LifecycleState::Active, old, None), None)),
            [FindingKind::Stale]
        );
        let used = item(LifecycleState::Active, old, Some("2026-11-27T00:00:00Z"));
        assert!(run(&used, None).is_empty());
        let new = item(LifecycleState::Active, "2026-11-20T00:00:00Z", None);
        assert!(run(&new, None).is_empty(), "registered within the window");
        let suspended = item(LifecycleState::Suspended, old, None);
        assert!(run(&suspended, None).is_empty());
    }

    #[test]
    fn decommissioned_with_credentials_and_secrets_past_rotation() {
        let mut d = item(LifecycleState::Decommissioned, "2026-11-20T00:00:00Z", None);
        d.credentials.registered_keys = 1;
        let f = run(&d, None);
        assert_eq!(kinds(&f), [FindingKind::Orphaned]);
        assert_eq!(f[0].severity, Severity::High);
        let mut s = item(LifecycleState::Active, "2026-11-20T00:00:00Z", None);
        s.credentials.client_secret_age_days = Some(120);
        assert_eq!(kinds(&run(&s, Some(90))), [FindingKind::RotationOverdue]);
        assert_eq!(kinds(&run(&s, Some(365))), [FindingKind::StaticSecret]);
        assert!(
            run(&s, Some(90))[0]
                .owasp
                .iter()
                .any(|o| o.starts_with("NHI7"))
        );
        // A legacy-key identity is one from the day it is registered, secret or not.
        s.kind = IdentityKind::LegacyKey;
        s.credentials.client_secret_age_days = None;
        let f = run(&s, Some(90));
        assert_eq!(kinds(&f), [FindingKind::StaticSecret]);
        assert!(f[0].evidence["age_days"].is_null());
        s.state = LifecycleState::Decommissioned;
        assert!(run(&s, Some(90)).is_empty());
    }

    #[test]
    fn unreviewed_within_the_cadence_only() {
        let mut i = item(LifecycleState::Active, "2026-01-01T00:00:00Z", None);
        let cutoff = "2026-08-30T00:00:00Z";
        assert!(unreviewed(&i, 90, cutoff).is_some());
        i.last_reviewed = Some("2026-10-01T00:00:00Z".into());
        assert!(unreviewed(&i, 90, cutoff).is_none());
        i.last_reviewed = Some("2026-05-01T00:00:00Z".into());
        assert_eq!(
            unreviewed(&i, 90, cutoff).map(|f| f.kind),
            Some(FindingKind::Unreviewed)
        );
    }
}
