//! Registry records as the API serves them. The store fills these types; fields only the
//! store needs (token hashes, ciphertexts) never live here, so they cannot be served.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use steward_audit::Event;
use steward_model::{Identity, Owner, Role};

/// An identity with its registry bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    #[serde(flatten)]
    pub identity: Identity,
    /// Managed by the governance repository (`false`: created through the API).
    pub managed: bool,
    /// Its owner was removed: an orphan finding.
    pub orphaned: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// An owner with its removal mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    #[serde(flatten)]
    pub owner: Owner,
    pub removed_at: Option<String>,
}

/// One applied governance configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    pub version: i64,
    pub applied_at: String,
    pub applied_by: String,
    pub digest: String,
    pub summary: serde_json::Value,
}

/// Headline numbers of the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCounts {
    pub config_version: i64,
    pub planes: i64,
    pub owners: i64,
    /// Identities by lifecycle state.
    pub identities: BTreeMap<String, i64>,
    /// Identities not decommissioned, by kind (`service`, `agent`, `partner` …).
    #[serde(default)]
    pub identities_by_kind: BTreeMap<String, i64>,
    pub orphaned_identities: i64,
    pub capabilities: i64,
    pub issuers: i64,
    pub policies: i64,
}

/// One entry of the admin change log: who changed what, when, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminChange {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// An admin credential as the API shows it (its token is never stored, only a hash the
/// API never shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
    /// When it stops working; absent: never (posture flags such credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// A campaign and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    /// The plane (and its subtree) it covers; `None`: every plane.
    pub plane: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub due_at: String,
    pub items: i64,
    pub decided: i64,
}

/// One identity to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub campaign_id: String,
    pub spiffe_id: String,
    pub plane: String,
    pub owner: String,
    /// Effective permissions (`capability:action`) when the campaign started.
    pub permissions: Vec<String>,
    /// `keep`, `reduce` or `revoke`, once attested.
    pub decision: Option<String>,
    /// For `reduce`: the permissions to remove.
    pub reduce: Vec<String>,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
}

/// One published policy version (without its body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub version: i64,
    /// The configuration version current when it was published.
    pub config_version: i64,
    pub created_at: String,
    pub created_by: String,
    /// `apply`, or `rollback to N`.
    pub reason: String,
    pub digest: String,
}

/// A listed approver's approval of a just-in-time credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JitApproval {
    pub id: String,
    pub workflow: String,
    pub requester: String,
    /// The approving admin credential, as `name (id)`.
    pub approved_by: String,
    pub approved_at: String,
    pub expires_at: String,
    pub note: String,
}

/// An event as stored: its place in the chain and the event itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub hash: String,
    #[serde(flatten)]
    pub event: Event,
}

/// An egress secret as the API lists it: never its value, not even sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressSecret {
    pub id: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
}
