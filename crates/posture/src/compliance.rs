//! Compliance evidence: NIST CSF 2.0, the OWASP Non-Human Identities Top 10 (2025),
//! CSA MAESTRO and the NIST AI RMF, control by control, mapped to the concrete evidence
//! Steward holds — counts, evidence event kinds with the sequence number of the newest
//! event (look it up with `steward audit search`), findings, review results — and the
//! controls that lack evidence shown as gaps. JSON for machines, HTML (printable to PDF)
//! for auditors.

use std::collections::BTreeMap;

use steward_api::{
    ComplianceReport, Control, Evidence, FindingKind, Framework, PostureReport, Status,
};
use steward_audit::EventKind;
use steward_model::IdentityKind;

/// What the controls are judged on, gathered once.
pub struct Facts {
    pub counts: steward_api::RegistryCounts,
    pub kinds: BTreeMap<String, (i64, i64)>,
    pub checkpoints: usize,
    /// The size the newest signed checkpoint vouches for.
    pub newest_checkpoint: Option<i64>,
    pub revocation_epoch: i64,
    /// Enforcement points registered, and how many of them are flagged (a report that
    /// cannot be true).
    pub points: usize,
    pub flagged_points: usize,
    pub campaigns: usize,
    pub posture: PostureReport,
    pub policy_versions: usize,
    pub egress_secrets: usize,
    /// Decisions on AI tool addresses among the newest decisions: (count, newest seq).
    pub tool_decisions: (i64, Option<i64>),
}

impl Facts {
    fn events(&self, kind: EventKind) -> i64 {
        self.kinds.get(kind.as_str()).map_or(0, |k| k.0)
    }

    /// The events of `kind` as evidence: how many, and the newest one's sequence number
    /// to look up (`steward audit search`).
    fn event(&self, label: &str, kind: EventKind) -> Evidence {
        let (n, last) = self.kinds.get(kind.as_str()).copied().unwrap_or((0, 0));
        Evidence {
            label: label.into(),
            value: n.to_string(),
            event_kind: Some(kind.as_str().into()),
            latest_seq: (n > 0).then_some(last),
        }
    }

    /// The signed checkpoints, citing the newest one's size (the last event it vouches for).
    fn checkpoint_evidence(&self) -> Evidence {
        Evidence {
            label: "signed checkpoints (the newest vouches for the log up to this event)".into(),
            value: self.checkpoints.to_string(),
            event_kind: None,
            latest_seq: self.newest_checkpoint,
        }
    }

    /// Whether the control was exercised: an event of one of `kinds` is in the log.
    fn exercised_by(&self, kinds: &[EventKind]) -> Exercised {
        if kinds.iter().any(|k| self.events(*k) > 0) {
            Ok(())
        } else {
            Err(format!(
                "not exercised: no {} event in the evidence log yet",
                kinds
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        }
    }

    fn findings(&self, kinds: &[FindingKind]) -> usize {
        kinds
            .iter()
            .map(|k| self.posture.summary.by_kind.get(k).copied().unwrap_or(0))
            .sum()
    }

    /// Identities of `kind` that are not decommissioned.
    fn of_kind(&self, kind: IdentityKind) -> i64 {
        self.counts
            .identities_by_kind
            .get(kind.as_str())
            .copied()
            .unwrap_or(0)
    }

    fn identities(&self) -> i64 {
        self.counts.identities.values().sum()
    }
}

fn fact(label: &str, value: impl ToString) -> Evidence {
    Evidence {
        label: label.into(),
        value: value.to_string(),
        event_kind: None,
        latest_seq: None,
    }
}

/// `Ok` when the evidence shows a control in use; else what is missing ("not exercised").
type Exercised = Result<(), String>;

/// A control that is evidenced unless `open` findings exist (then partial, named) or the
/// events that would show it in use are absent (then partial, "not exercised"): a count
/// of registered things is never evidence that a control works.
fn judged(
    id: &str,
    title: &str,
    how: &str,
    evidence: Vec<Evidence>,
    open: Vec<String>,
    exercised: Exercised,
) -> Control {
    let mut gaps = open;
    if let Err(missing) = exercised {
        gaps.push(missing);
    }
    Control {
        id: id.into(),
        title: title.into(),
        status: if gaps.is_empty() {
            Status::Evidenced
        } else {
            Status::Partial
        },
        how: how.into(),
        evidence,
        gaps,
    }
}

fn gap(id: &str, title: &str, why: &str) -> Control {
    Control {
        id: id.into(),
        title: title.into(),
        status: Status::Gap,
        how: String::new(),
        evidence: Vec::new(),
        gaps: vec![why.into()],
    }
}

fn open(f: &Facts, kinds: &[FindingKind], what: &str) -> Vec<String> {
    let n = f.findings(kinds);
    if n == 0 {
        Vec::new()
    } else {
        vec![format!("{n} open {what} finding(s) (`steward posture`)")]
    }
}

/// The log's integrity is shown by a signed checkpoint, not by its size.
fn signed_checkpoints(f: &Facts) -> Exercised {
    if f.checkpoints > 0 {
        Ok(())
    } else {
        Err("not exercised: no signed checkpoint yet".into())
    }
}

/// Tool calls are shown authorised only by decisions on tool addresses, not by agents
/// existing.
fn tool_calls_decided(f: &Facts) -> Exercised {
    if f.tool_decisions.0 > 0 {
        Ok(())
    } else {
        Err(format!(
            "not exercised: no decision on an AI tool among the newest {TOOL_SCAN} decisions"
        ))
    }
}

/// An agent control needs agents to apply to, and the events showing it in use.
fn agents_and(f: &Facts, agents: i64, kinds: &[EventKind]) -> Exercised {
    if agents == 0 {
        return Err("not exercised: no agent identity is registered".into());
    }
    f.exercised_by(kinds)
}

/// Decisions searched for tool calls (newest first): bounds the report's cost on a long log.
/// Newest decisions scanned for decisions on AI tool addresses.
pub const TOOL_SCAN: i64 = 100_000;

fn nist_csf(f: &Facts) -> Framework {
    let orphans = f.counts.orphaned_identities;
    let stale_points = f.flagged_points;
    Framework {
        id: "nist-csf-2.0".into(),
        name: "NIST Cybersecurity Framework 2.0".into(),
        controls: vec![
            judged(
                "GV.RR-02",
                "Roles, responsibilities, and authorities related to cybersecurity risk management are established, communicated, understood, and enforced",
                "Every non-human identity has an accountable owner in the governance repository; admin roles (central, plane, auditor, ingestor) are enforced by the API.",
                vec![
                    fact("identities", f.identities()),
                    fact("owners", f.counts.owners),
                    fact("identities whose owner was removed", orphans),
                    f.event("applied configuration versions", EventKind::ConfigApplied),
                    f.event("admin changes under a role", EventKind::AdminAction),
                ],
                if orphans > 0 {
                    vec![format!("{orphans} identities have no current owner")]
                } else {
                    Vec::new()
                },
                f.exercised_by(&[EventKind::ConfigApplied, EventKind::AdminAction]),
            ),
            judged(
                "ID.AM-02",
                "Inventories of software, services, and systems managed by the organization are maintained",
                "The registry is the inventory of non-human identities (plane, owner, environment, kind, credentials), applied from version-controlled governance files.",
                vec![
                    fact("identities by state", format!("{:?}", f.counts.identities)),
                    fact("configuration version", f.counts.config_version),
                    f.event("applied configuration versions", EventKind::ConfigApplied),
                ],
                Vec::new(),
                f.exercised_by(&[EventKind::ConfigApplied]),
            ),
            judged(
                "PR.AA-01",
                "Identities and credentials for authorized users, services, and hardware are managed by the organization",
                "Short-lived tokens issued against registered keys; static secrets flagged and aged; signing keys rotated with an overlap window.",
                vec![
                    f.event("tokens issued", EventKind::CredentialIssued),
                    f.event(
                        "tokens delegated (token exchange)",
                        EventKind::CredentialExchanged,
                    ),
                    f.event(
                        "tokens federated from trusted issuers",
                        EventKind::CredentialFederated,
                    ),
                ],
                open(
                    f,
                    &[FindingKind::StaticSecret, FindingKind::RotationOverdue],
                    "static or overdue secret",
                ),
                f.exercised_by(&[EventKind::CredentialIssued]),
            ),
            judged(
                "PR.AA-03",
                "Users, services, and hardware are authenticated",
                "private_key_jwt, mutual TLS or DPoP at the token endpoint; every enforcement point validates the token (signature, audience, environment, binding, revocation).",
                vec![
                    f.event("refused credential requests", EventKind::CredentialRefused),
                    f.event("access decisions", EventKind::AccessDecision),
                ],
                Vec::new(),
                f.exercised_by(&[EventKind::AccessDecision]),
            ),
            judged(
                "PR.AA-05",
                "Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and reviewed, and incorporate the principles of least privilege and separation of duties",
                "Layered Cedar policy (central guardrails, plane policy, time-bound exceptions), versioned; enforced identically at every layer; access reviews attest keep/reduce/revoke.",
                vec![
                    fact("policy versions", f.policy_versions),
                    f.event("access decisions", EventKind::AccessDecision),
                    f.event("review attestations", EventKind::ReviewAttested),
                    fact("review campaigns", f.campaigns),
                ],
                open(
                    f,
                    &[
                        FindingKind::BeyondIntended,
                        FindingKind::OverPrivileged,
                        FindingKind::Unreviewed,
                    ],
                    "over-privilege or review",
                ),
                f.exercised_by(&[EventKind::ReviewAttested]),
            ),
            judged(
                "PR.PS-04",
                "Log records are generated and made available for continuous monitoring",
                "One hash-chained evidence log for issuance, decisions, revocations, reviews and admin changes, with signed checkpoints; exportable as OCSF.",
                vec![
                    fact(
                        "evidence events",
                        f.kinds.values().map(|k| k.0).sum::<i64>(),
                    ),
                    f.checkpoint_evidence(),
                ],
                Vec::new(),
                signed_checkpoints(f),
            ),
            judged(
                "DE.CM-09",
                "Computing hardware and software, runtime environments, and their data are monitored to find potentially adverse events",
                "Every enforcement point reports its policy bundle and revocation epoch; drift and silence are flagged (`steward status`).",
                vec![
                    fact("enforcement points", f.points),
                    fact("points flagged", stale_points),
                    f.event("access decisions", EventKind::AccessDecision),
                ],
                if stale_points > 0 {
                    vec![format!("{stale_points} enforcement point(s) flagged")]
                } else {
                    Vec::new()
                },
                if f.points == 0 {
                    Err("not exercised: no enforcement point has reported".into())
                } else {
                    f.exercised_by(&[EventKind::AccessDecision])
                },
            ),
            judged(
                "RS.MI-01",
                "Incidents are contained",
                "Central revocation of tokens, identities, issuers, keys and planes, pushed to every enforcement point and verified by acknowledgement.",
                vec![
                    f.event("revocations", EventKind::RevocationIssued),
                    f.event(
                        "acknowledgements by enforcement points",
                        EventKind::RevocationAcknowledged,
                    ),
                    fact("revocation epoch", f.revocation_epoch),
                ],
                Vec::new(),
                f.exercised_by(&[EventKind::RevocationAcknowledged]),
            ),
        ],
    }
}

fn owasp(f: &Facts) -> Framework {
    Framework {
        id: "owasp-nhi-top10-2025".into(),
        name: "OWASP Non-Human Identities Top 10 (2025)".into(),
        controls: vec![
            judged(
                "NHI1:2025",
                "Improper Offboarding",
                "Lifecycle states (decommissioning is one-way), owners, stale and orphan findings, access reviews.",
                vec![
                    fact(
                        "orphaned / stale / unreviewed findings",
                        f.findings(&[
                            FindingKind::Orphaned,
                            FindingKind::Stale,
                            FindingKind::Unreviewed,
                        ]),
                    ),
                    f.event("lifecycle changes", EventKind::IdentityLifecycle),
                ],
                open(
                    f,
                    &[
                        FindingKind::Orphaned,
                        FindingKind::Stale,
                        FindingKind::Unreviewed,
                    ],
                    "offboarding",
                ),
                f.exercised_by(&[EventKind::IdentityLifecycle, EventKind::RevocationIssued]),
            ),
            judged(
                "NHI2:2025",
                "Secret Leakage",
                "Third-party API keys stay sealed in the control plane and are injected by the egress gateway; workloads hold short-lived tokens; a leaked token is revoked centrally.",
                vec![
                    fact("egress secrets held sealed", f.egress_secrets),
                    f.event("short-lived tokens issued", EventKind::CredentialIssued),
                    f.event("revocations", EventKind::RevocationIssued),
                ],
                open(f, &[FindingKind::RotationOverdue], "overdue secret"),
                f.exercised_by(&[EventKind::CredentialIssued]),
            ),
            judged(
                "NHI3:2025",
                "Vulnerable Third-Party NHI",
                "Partner identities are registered with owners, planes and least-privilege policy; external issuers are trusted only within declared subject patterns.",
                vec![
                    fact("partner identities", f.of_kind(IdentityKind::Partner)),
                    fact("trusted issuers", f.counts.issuers),
                    f.event(
                        "tokens federated from trusted issuers",
                        EventKind::CredentialFederated,
                    ),
                ],
                Vec::new(),
                f.exercised_by(&[EventKind::CredentialFederated]),
            ),
            judged(
                "NHI4:2025",
                "Insecure Authentication",
                "Asymmetric client authentication (private_key_jwt, mTLS), sender-bound tokens (DPoP), static secrets flagged on every use.",
                vec![
                    f.event("tokens issued", EventKind::CredentialIssued),
                    f.event("refused credential requests", EventKind::CredentialRefused),
                ],
                open(f, &[FindingKind::StaticSecret], "static secret"),
                f.exercised_by(&[EventKind::CredentialIssued, EventKind::CredentialRefused]),
            ),
            judged(
                "NHI5:2025",
                "Overprivileged NHI",
                "Effective vs intended vs used permissions; findings for grants beyond the intended list (at once) and for unused permissions (after the observation window); access reviews.",
                vec![
                    fact(
                        "over-privilege findings",
                        f.findings(&[
                            FindingKind::BeyondIntended,
                            FindingKind::OverPrivileged,
                            FindingKind::AgentToolsUnused,
                        ]),
                    ),
                    f.event("review attestations", EventKind::ReviewAttested),
                ],
                open(
                    f,
                    &[
                        FindingKind::BeyondIntended,
                        FindingKind::OverPrivileged,
                        FindingKind::AgentToolsUnused,
                        FindingKind::ExceptionNearExpiry,
                    ],
                    "over-privilege",
                ),
                f.exercised_by(&[EventKind::ReviewAttested]),
            ),
            judged(
                "NHI6:2025",
                "Insecure Cloud Deployment Configurations",
                "CI/CD and Kubernetes workloads federate their platform tokens instead of holding static cloud credentials.",
                vec![f.event("federated tokens", EventKind::CredentialFederated)],
                Vec::new(),
                f.exercised_by(&[EventKind::CredentialFederated]),
            ),
            judged(
                "NHI7:2025",
                "Long-Lived Secrets",
                "Token lifetimes capped centrally and per plane; static secrets aged against max_credential_age_days.",
                vec![
                    fact(
                        "static-secret findings",
                        f.findings(&[FindingKind::StaticSecret, FindingKind::RotationOverdue]),
                    ),
                    f.event("short-lived tokens issued", EventKind::CredentialIssued),
                ],
                open(
                    f,
                    &[FindingKind::StaticSecret, FindingKind::RotationOverdue],
                    "long-lived secret",
                ),
                f.exercised_by(&[EventKind::CredentialIssued]),
            ),
            judged(
                "NHI8:2025",
                "Environment Isolation",
                "Tokens carry their environment and are refused in another; central guardrails forbid cross-environment access; use of an identity outside its environment is a finding.",
                vec![
                    f.event("access decisions", EventKind::AccessDecision),
                    fact(
                        "cross-environment findings",
                        f.findings(&[FindingKind::CrossEnvironment]),
                    ),
                ],
                open(f, &[FindingKind::CrossEnvironment], "cross-environment use"),
                f.exercised_by(&[EventKind::AccessDecision]),
            ),
            judged(
                "NHI9:2025",
                "NHI Reuse",
                "Usage is rolled up per identity, environment and client key: one identity used across environments, or several client keys obtaining its tokens side by side for over a day, is a finding.",
                vec![
                    f.event("credentials issued", EventKind::CredentialIssued),
                    fact(
                        "reuse findings",
                        f.findings(&[FindingKind::CrossEnvironment, FindingKind::SharedIdentity]),
                    ),
                ],
                open(
                    f,
                    &[FindingKind::CrossEnvironment, FindingKind::SharedIdentity],
                    "reuse",
                ),
                f.exercised_by(&[EventKind::CredentialIssued]),
            ),
            gap(
                "NHI10:2025",
                "Human Use of NHI",
                "not detected yet: Steward does not yet report interactive (human) use of a workload identity",
            ),
        ],
    }
}

fn maestro(f: &Facts) -> Framework {
    let agents = f.of_kind(IdentityKind::Agent);
    Framework {
        id: "csa-maestro".into(),
        name: "CSA MAESTRO (agentic AI threat modelling), by layer".into(),
        controls: vec![
            judged(
                "L3",
                "Agent Frameworks: tool calls are authorised",
                "The egress gateway decides every tool an agent offers a model against the catalog before the provider is called.",
                vec![
                    fact("agent identities", agents),
                    Evidence {
                        label: "tool-call decisions (newest decisions)".into(),
                        value: f.tool_decisions.0.to_string(),
                        event_kind: Some(EventKind::AccessDecision.as_str().into()),
                        latest_seq: f.tool_decisions.1,
                    },
                ],
                Vec::new(),
                tool_calls_decided(f),
            ),
            judged(
                "L5",
                "Evaluation and Observability: agent actions are traceable",
                "Every decision carries the request's trace id; `steward audit trace` follows it across layers.",
                vec![f.event("access decisions", EventKind::AccessDecision)],
                Vec::new(),
                f.exercised_by(&[EventKind::AccessDecision]),
            ),
            judged(
                "L6",
                "Security and Compliance: tamper-evident evidence",
                "Hash-chained evidence with signed checkpoints; this report.",
                vec![f.checkpoint_evidence()],
                Vec::new(),
                signed_checkpoints(f),
            ),
            judged(
                "L7",
                "Agent Ecosystem: agent identity, delegation and revocation",
                "Agents have registered identities with owners; delegation narrows per hop (act chain); a compromised agent is revoked everywhere.",
                vec![
                    fact("agent identities", agents),
                    f.event("delegated tokens", EventKind::CredentialExchanged),
                    f.event("revocations", EventKind::RevocationIssued),
                ],
                Vec::new(),
                agents_and(f, agents, &[EventKind::CredentialExchanged]),
            ),
        ],
    }
}

fn ai_rmf(f: &Facts) -> Framework {
    let agents = f.of_kind(IdentityKind::Agent);
    Framework {
        id: "nist-ai-rmf-1.0".into(),
        name: "NIST AI Risk Management Framework 1.0, by function".into(),
        controls: vec![
            judged(
                "GOVERN",
                "Accountability for AI agents is assigned",
                "Every agent identity has an owner and a plane; policy changes are versioned and attributed.",
                vec![
                    fact("agent identities", agents),
                    fact("policy versions", f.policy_versions),
                    f.event("applied configuration versions", EventKind::ConfigApplied),
                ],
                Vec::new(),
                agents_and(f, agents, &[EventKind::ConfigApplied]),
            ),
            judged(
                "MAP",
                "AI agents and their context are inventoried",
                "Agents are in the inventory with model tier and task scope from federation.",
                vec![
                    fact("agent identities", agents),
                    f.event("federated tokens", EventKind::CredentialFederated),
                ],
                Vec::new(),
                agents_and(f, agents, &[EventKind::CredentialFederated]),
            ),
            judged(
                "MEASURE",
                "Agent behaviour is monitored",
                "Every agent decision (tool calls included) is in the evidence log; over-privilege is measured against use.",
                vec![f.event("access decisions", EventKind::AccessDecision)],
                open(f, &[FindingKind::OverPrivileged], "over-privilege"),
                f.exercised_by(&[EventKind::AccessDecision]),
            ),
            judged(
                "MANAGE",
                "Risks are responded to",
                "Agents are revoked centrally with verified propagation; access reviews remove what is not needed.",
                vec![
                    f.event("revocations", EventKind::RevocationIssued),
                    f.event("review attestations", EventKind::ReviewAttested),
                ],
                Vec::new(),
                f.exercised_by(&[EventKind::RevocationIssued]),
            ),
        ],
    }
}

/// Every framework's controls judged on `facts`, with the count per status.
pub fn report(facts: &Facts) -> ComplianceReport {
    let frameworks = vec![nist_csf(facts), owasp(facts), maestro(facts), ai_rmf(facts)];
    let mut summary = BTreeMap::new();
    for c in frameworks.iter().flat_map(|f| &f.controls) {
        *summary.entry(c.status.as_str().to_owned()).or_insert(0) += 1;
    }
    ComplianceReport {
        generated_at: facts.posture.generated_at.clone(),
        frameworks,
        summary,
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained page (no scripts, no external resources) that prints well to PDF.
pub fn render_html(r: &ComplianceReport) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Steward compliance evidence</title><style>\
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#111}h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:2px solid #333}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #bbb;padding:.35rem .5rem;vertical-align:top;text-align:left}\
.evidenced{color:#155724;font-weight:600}.partial{color:#856404;font-weight:600}.gap{color:#721c24;font-weight:600}\
small{color:#555}@media print{body{margin:0}h2{page-break-before:always}h2:first-of-type{page-break-before:avoid}tr{page-break-inside:avoid}}\
</style></head><body>",
    );
    out.push_str(&format!(
        "<h1>Steward compliance evidence</h1><p>Generated {} · controls: {}</p>",
        escape(&r.generated_at),
        escape(
            &r.summary
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    ));
    for f in &r.frameworks {
        out.push_str(&format!(
            "<h2 id=\"{}\">{}</h2><table><tr><th>Control</th><th>Status</th><th>How Steward supports it</th><th>Evidence</th><th>Gaps</th></tr>",
            escape(&f.id),
            escape(&f.name)
        ));
        for c in &f.controls {
            let status = serde_json::to_value(c.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let evidence = c
                .evidence
                .iter()
                .map(|e| {
                    format!(
                        "{}: <b>{}</b>{}",
                        escape(&e.label),
                        escape(&e.value),
                        match (&e.event_kind, e.latest_seq) {
                            (Some(k), Some(seq)) =>
                                format!(" <small>({} , newest #{seq})</small>", escape(k)),
                            (Some(k), None) => format!(" <small>({})</small>", escape(k)),
                            _ => String::new(),
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("<br>");
            let gaps = c
                .gaps
                .iter()
                .map(|g| escape(g))
                .collect::<Vec<_>>()
                .join("<br>");
            out.push_str(&format!(
                "<tr><td><b>{}</b><br>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{evidence}</td><td>{gaps}</td></tr>",
                escape(&c.id),
                escape(&c.title),
                escape(&c.how)
            ));
        }
        out.push_str("</table>");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
