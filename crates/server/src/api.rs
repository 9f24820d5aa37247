//! Wire types of the admin API (API boundary: the CLI, tests and other clients use
//! these; `docs/openapi.yaml` describes the same shapes).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use steward_governance::{Plan, SourceFile};
use steward_model::{
    AdminRole, Classification, Entitlement, IdentityKind, LifecycleState, PlaneId, Role, SpiffeId,
};
use steward_store::CredentialRecord;

/// A governance repository, shipped as its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    pub files: Vec<SourceFile>,
    /// Replay the access decisions of the last N days against the candidate policy
    /// (default 7; 0 skips the dry-run).
    #[serde(default)]
    pub replay_days: Option<u32>,
}

/// Apply: the files, and optionally the version the plan was made against.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub files: Vec<SourceFile>,
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// What a plan would do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanResponse {
    /// The version the plan was computed against.
    pub version: i64,
    /// SHA-256 of the desired state.
    pub digest: String,
    /// The changes (at most a few thousand listed; `plan.summary` counts all).
    pub plan: Plan,
    /// Line diff of the policy in force against the repository's (empty: no change).
    pub policy_diff: String,
    /// The dry-run: recorded decisions the candidate policy would decide differently.
    pub replay: crate::replay::Replay,
}

/// What an apply did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyResponse {
    pub version: i64,
    pub changed: bool,
    pub plan: Plan,
}

/// Registering an identity through the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIdentityRequest {
    pub spiffe_id: SpiffeId,
    pub plane: PlaneId,
    pub owner: String,
    pub environment: String,
    pub kind: IdentityKind,
    #[serde(default = "internal")]
    pub classification: Classification,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub intended: Vec<Entitlement>,
    /// Keys for `private_key_jwt` and the token lifetime.
    #[serde(default)]
    pub credentials: steward_model::Credentials,
}

fn internal() -> Classification {
    Classification::Internal
}

/// Moving an identity along its lifecycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRequest {
    pub state: LifecycleState,
    pub reason: String,
}

/// Result of removing an owner: the identities it leaves orphaned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerRemoved {
    pub owner: String,
    pub orphaned_identities: Vec<String>,
}

/// Creating an admin credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCredentialRequest {
    pub name: String,
    pub role: AdminRole,
    /// Required for `plane-admin`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<PlaneId>,
}

impl CreateCredentialRequest {
    /// A request for `role`.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role: role.kind(),
            plane: role.plane().cloned(),
        }
    }

    /// The role the request asks for, checked for a consistent plane.
    pub fn resolved_role(&self) -> Result<Role, String> {
        match (self.role, &self.plane) {
            (AdminRole::CentralAdmin, None) => Ok(Role::CentralAdmin),
            (AdminRole::Auditor, None) => Ok(Role::Auditor),
            (AdminRole::Ingestor, None) => Ok(Role::Ingestor),
            (AdminRole::PlaneAdmin, Some(p)) => Ok(Role::PlaneAdmin { plane: p.clone() }),
            (AdminRole::PlaneAdmin, None) => Err("a `plane-admin` credential needs `plane`".into()),
            (_, Some(_)) => Err("`plane` only goes with role `plane-admin`".into()),
        }
    }
}

/// A new credential: the token is shown here once and never again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedCredential {
    pub credential: CredentialRecord,
    pub token: String,
}

/// Who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    pub credential_id: String,
    pub name: String,
    #[serde(flatten)]
    pub role: Role,
}

/// A page of results with the cursor for the next one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `null` on the last page.
    pub next: Option<String>,
}
