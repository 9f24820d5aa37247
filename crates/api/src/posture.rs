//! The posture and compliance reports (`GET /admin/v1/posture`, `GET
//! /admin/v1/compliance`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use steward_model::{IdentityKind, LifecycleState};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    /// The name the API and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The owner was removed, or the identity was decommissioned but still holds
    /// credentials.
    Orphaned,
    /// Active, but not used within the stale window.
    Stale,
    /// Effective permissions the owner intended but that were never used within the
    /// window; judged only once the identity is older than the observation window, since
    /// a new identity has had no time to use anything.
    OverPrivileged,
    /// Effective permissions the owner never intended: the policy grants more than the
    /// identity's `intended` list. A fact of the policy, reported from the first day.
    BeyondIntended,
    /// A static client secret (legacy-key identity).
    StaticSecret,
    /// A static secret older than its plane's `max_credential_age_days`.
    RotationOverdue,
    /// A policy exception that expires soon.
    ExceptionNearExpiry,
    /// Not attested in an access review within its plane's `review_cadence_days`.
    Unreviewed,
    /// An exception granted again and again for the same identity and capability: a
    /// standing privilege in disguise.
    ExceptionRenewed,
    /// Used in an environment other than the one it is registered for.
    CrossEnvironment,
    /// Several client keys obtaining tokens for one identity at the same time, for days:
    /// several workloads share it.
    SharedIdentity,
    /// A live admin credential (`stw_…`) without an expiry: the long-lived static secret
    /// Steward exists to remove. Give it `--expires-in`, or move the point it serves to
    /// an identity of its own.
    NonExpiringAdminCredential,
    /// An AI agent allowed tools it did not call within the window: its tool access is
    /// broader than its tasks use. Judged once it is older than the observation window.
    AgentToolsUnused,
}

impl FindingKind {
    /// The OWASP Non-Human Identities Top 10 (2025) risks this finding is evidence of.
    pub fn owasp(self) -> &'static [&'static str] {
        match self {
            Self::Orphaned => &["NHI1:2025 Improper Offboarding"],
            Self::Stale => &["NHI1:2025 Improper Offboarding"],
            Self::OverPrivileged => &["NHI5:2025 Overprivileged NHI"],
            Self::BeyondIntended => &["NHI5:2025 Overprivileged NHI"],
            Self::StaticSecret => &[
                "NHI7:2025 Long-Lived Secrets",
                "NHI4:2025 Insecure Authentication",
            ],
            Self::RotationOverdue => &["NHI7:2025 Long-Lived Secrets", "NHI2:2025 Secret Leakage"],
            Self::ExceptionNearExpiry => &["NHI5:2025 Overprivileged NHI"],
            Self::ExceptionRenewed => &["NHI5:2025 Overprivileged NHI"],
            Self::Unreviewed => &[
                "NHI1:2025 Improper Offboarding",
                "NHI5:2025 Overprivileged NHI",
            ],
            Self::CrossEnvironment => &["NHI8:2025 Environment Isolation", "NHI9:2025 NHI Reuse"],
            Self::SharedIdentity => &["NHI9:2025 NHI Reuse"],
            Self::NonExpiringAdminCredential => &["NHI7:2025 Long-Lived Secrets"],
            Self::AgentToolsUnused => &["NHI5:2025 Overprivileged NHI"],
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across reports: `<kind>:<subject>`.
    pub id: String,
    pub kind: FindingKind,
    pub severity: Severity,
    /// The identity (SPIFFE ID) or, for an exception, the exception id.
    pub subject: String,
    pub plane: String,
    /// The owner to act.
    pub owner: String,
    pub summary: String,
    /// The facts behind it (times, counts, the unused permissions …).
    pub evidence: Value,
    pub owasp: Vec<String>,
}

/// Credentials an identity holds or was issued.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CredentialSummary {
    pub registered_keys: usize,
    pub tls_certificates: usize,
    /// Age in days of its static client secret, if it has one.
    pub client_secret_age_days: Option<i64>,
    /// Tokens issued to it and not yet expired (revoked ones included).
    pub active_tokens: i64,
    /// Tokens issued to it since first recorded, counted for the grant types and client
    /// keys it used within the window.
    pub tokens_issued: i64,
    pub last_token_issued: Option<String>,
}

/// An environment an identity was used in within the window: decisions made there and
/// tokens issued for it (counted since first recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentUse {
    pub environment: String,
    pub allowed: i64,
    pub denied: i64,
    pub tokens: i64,
    pub last: String,
}

/// A client key an identity obtained tokens with, used within the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientKeyUse {
    /// The key id (`kid` of the client assertion).
    pub key: String,
    pub tokens: i64,
    pub first: String,
    pub last: String,
}

/// Intended vs effective vs used permissions (`capability:action`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PermissionSummary {
    pub intended: Vec<String>,
    /// `None` when not analysed in this report (over `max_analysed`, or decommissioned).
    pub effective: Option<Vec<String>>,
    pub used: Vec<String>,
    /// Effective but never used in the window.
    pub unused: Vec<String>,
    /// Effective but not intended: what the policy grants beyond the owner's declaration
    /// (empty when not analysed).
    #[serde(default)]
    pub beyond_intended: Vec<String>,
    /// Set while the identity is younger than the observation window: its usage is still
    /// being observed, so unused permissions are not judged before this time.
    #[serde(default)]
    pub observed_until: Option<String>,
}

/// An AI agent's tools (capabilities an MCP tool or an offered tool maps onto), as
/// `capability:action`: what its owner intended, what the policy allows it, what it
/// called in the window and what it was allowed but never called.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentTools {
    pub intended: Vec<String>,
    /// `None` when its permissions were not analysed in this report.
    pub allowed: Option<Vec<String>>,
    pub used: Vec<String>,
    pub unused: Vec<String>,
}

/// One identity in the inventory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryItem {
    pub spiffe_id: String,
    pub plane: String,
    pub owner: String,
    pub owner_removed: bool,
    pub environment: String,
    pub kind: IdentityKind,
    pub state: LifecycleState,
    pub created_at: String,
    pub credentials: CredentialSummary,
    /// The newest allowed decision or issued credential in the window.
    pub last_used: Option<String>,
    /// When it was last attested in an access review.
    pub last_reviewed: Option<String>,
    pub permissions: PermissionSummary,
    /// Environments it was used in within the window.
    pub environments_used: Vec<EnvironmentUse>,
    /// Client keys it obtained tokens with within the window.
    pub client_keys_used: Vec<ClientKeyUse>,
    /// For an AI agent: its tools intended, allowed, used and unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_tools: Option<AgentTools>,
}

/// Counts for the overview.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostureSummary {
    pub identities: usize,
    pub by_state: BTreeMap<String, usize>,
    pub findings: usize,
    pub by_severity: BTreeMap<Severity, usize>,
    pub by_kind: BTreeMap<FindingKind, usize>,
    pub by_owasp: BTreeMap<String, usize>,
    /// Identities whose effective permissions were computed.
    pub analysed: usize,
    /// Active or suspended identities left out of the effective-permission analysis.
    pub not_analysed: usize,
    /// Active identities still inside the observation window: their unused permissions
    /// are not judged yet.
    #[serde(default)]
    pub observing: usize,
}

/// `GET /admin/v1/posture`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostureReport {
    pub generated_at: String,
    pub window_days: u64,
    pub stale_days: u64,
    /// Days after an identity's registration before its unused permissions are judged.
    #[serde(default)]
    pub observation_days: u64,
    pub summary: PostureSummary,
    pub findings: Vec<Finding>,
    pub inventory: Vec<InventoryItem>,
}

/// How well a control is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Steward does it and the evidence shows it working.
    Evidenced,
    /// In place, with open findings or not yet exercised.
    Partial,
    /// No evidence: Steward does not cover it (yet), or nothing backs it.
    Gap,
}

impl Status {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evidenced => "evidenced",
            Self::Partial => "partial",
            Self::Gap => "gap",
        }
    }
}

/// One piece of evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub label: String,
    pub value: String,
    /// The evidence event kind it counts, and the newest such event's sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_seq: Option<i64>,
}

/// One control of a framework.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    pub id: String,
    pub title: String,
    pub status: Status,
    /// What Steward does for it.
    pub how: String,
    pub evidence: Vec<Evidence>,
    /// What is missing or open.
    pub gaps: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Framework {
    pub id: String,
    pub name: String,
    pub controls: Vec<Control>,
}

/// `GET /admin/v1/compliance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComplianceReport {
    pub generated_at: String,
    pub frameworks: Vec<Framework>,
    /// Controls per status over every framework.
    pub summary: BTreeMap<String, usize>,
}
