//! Requests and answers of the admin API (`docs/openapi.yaml` describes the same shapes).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::records::{Campaign, Credential, PolicyVersion, ReviewItem};
use steward_governance::{Plan, SourceFile};
use steward_model::{
    AdminRole, Classification, Entitlement, IdentityKind, LifecycleState, PlaneId, Role, SpiffeId,
};

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
    pub replay: Replay,
}

/// What the dry-run of a plan found: recorded decisions the candidate policy would
/// decide the other way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Replay {
    pub days: u32,
    /// Decisions replayed.
    pub replayed: usize,
    /// Decisions that could not be replayed: ingested from foreign enforcement points, or
    /// refused before a request could be formed (unknown subject type, say).
    pub skipped: usize,
    /// Whether only the newest decisions (a fixed maximum) were replayed.
    pub truncated: bool,
    pub flips: Vec<steward_model::Flip>,
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
    /// Seconds until it stops working; absent: never expires (posture flags it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

impl CreateCredentialRequest {
    /// A request for `role`.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role: role.kind(),
            plane: role.plane().cloned(),
            expires_in_secs: None,
        }
    }

    /// The role the request asks for, checked for a consistent plane.
    pub fn resolved_role(&self) -> Result<Role, crate::Error> {
        match (self.role, &self.plane) {
            (AdminRole::CentralAdmin, None) => Ok(Role::CentralAdmin),
            (AdminRole::Auditor, None) => Ok(Role::Auditor),
            (AdminRole::Ingestor, None) => Ok(Role::Ingestor),
            (AdminRole::PlaneAdmin, Some(p)) => Ok(Role::PlaneAdmin { plane: p.clone() }),
            (AdminRole::PlaneAdmin, None) => Err(crate::Error::PlaneAdminWithoutPlane),
            (_, Some(_)) => Err(crate::Error::PlaneWithoutPlaneAdmin),
        }
    }
}

/// A new credential: the token is shown here once and never again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedCredential {
    pub credential: Credential,
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

/// `POST /admin/v1/revocations`: what to revoke and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub kind: steward_model::RevocationKind,
    /// The `jti`, SPIFFE ID, trusted issuer id, `kid` or plane id.
    pub target: String,
    /// Why: it goes into the evidence log.
    pub reason: String,
    /// For an identity: decommission it (one-way) instead of suspending it.
    #[serde(default)]
    pub decommission: bool,
}

/// A revocation as recorded, and how many live points must acknowledge it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeResponse {
    pub revocation: steward_model::Revocation,
    pub live_points: usize,
    /// What the operator should know about it (e.g. a token with no issuance record,
    /// revoked for the longest token lifetime anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An enforcement point as the control plane sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointStatus {
    pub id: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The ingestor credential it reports with.
    pub credential: String,
    pub bundle_version: i64,
    pub epoch: i64,
    pub last_seen: String,
    pub seconds_since_seen: i64,
    /// Heard from within the liveness window.
    pub live: bool,
    /// Its policy bundle is older than the current policy version.
    pub behind_bundle: bool,
    /// It has not applied the newest revocation.
    pub behind_epoch: bool,
    /// Something it reported cannot be true (an epoch never issued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<String>,
}

/// `GET /admin/v1/enforcement/points`: every point and what is current.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointsResponse {
    pub policy_version: i64,
    pub epoch: i64,
    pub liveness_secs: u64,
    pub points: Vec<PointStatus>,
}

/// `GET /admin/v1/revocations/{epoch}/verification`: which live points applied it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub epoch: i64,
    /// At least one point is live and every live point acknowledged the epoch (or a
    /// later one). With no live point it is `false` at once: nothing shows the revocation
    /// in force.
    pub complete: bool,
    pub acknowledged: Vec<PointStatus>,
    /// Live points that have not acknowledged it yet (or whose acknowledgement is flagged).
    pub lagging: Vec<PointStatus>,
    /// Points not heard from within the liveness window: not waited for, listed so they
    /// are not forgotten (they fail closed once their staleness limit passes).
    pub not_live: Vec<PointStatus>,
    /// Milliseconds from the request until the answer.
    pub waited_ms: u64,
}

/// `POST /admin/v1/identities/{id}/client-secret`: a legacy-key identity's new static
/// secret, shown once (only its hash is stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientSecret {
    pub spiffe_id: String,
    pub client_secret: String,
    pub created_at: String,
    pub note: String,
}

/// `DELETE /admin/v1/identities/{id}/client-secret`: whether there was one to revoke.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientSecretRevoked {
    pub spiffe_id: String,
    pub revoked: bool,
}

/// `PUT /admin/v1/egress-secrets/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEgressSecret {
    pub value: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// `POST /admin/v1/reviews`: a campaign to start.
pub struct StartRequest {
    pub name: Option<String>,
    /// Only this plane and its subtree (required for a plane admin).
    pub plane: Option<String>,
    /// Days the owners have (default 14).
    pub due_days: Option<u64>,
    /// Every identity in scope, not only those due on their plane's cadence.
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// `POST /admin/v1/reviews/{id}/decisions`: one attestation.
pub struct DecisionRequest {
    pub spiffe_id: String,
    /// `keep`, `reduce` or `revoke`.
    pub decision: String,
    pub note: String,
    /// For `reduce`: the permissions (`capability:action`) to remove.
    #[serde(default)]
    pub reduce: Vec<String>,
}

/// A campaign and (the caller's share of) its items.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignView {
    pub campaign: Campaign,
    pub items: Vec<ReviewItem>,
}

/// One policy version with its bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyVersionBody {
    #[serde(flatten)]
    pub version: PolicyVersion,
    pub bundle: steward_model::PolicyBundle,
}

/// Roll back: publish version `to` again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub to: i64,
    /// Refuse unless this is still the current policy version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// A line diff between two policy versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyDiff {
    pub from: i64,
    pub to: i64,
    pub diff: String,
}

/// Body of `POST /admin/v1/workflows/{id}/approvals`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The requester (SPIFFE ID) the approval is for.
    pub requester: String,
    /// How long the approval stays usable, in seconds (default 3600, at most 86400).
    #[serde(default)]
    pub valid_secs: Option<u64>,
    /// Why (a ticket, an incident): goes into the change log and the evidence.
    pub note: String,
}

/// A token signing key's place in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Signs new tokens.
    Signing,
    /// No longer signs; still published so tokens it signed validate until they expire.
    Verifying,
    /// Neither signs nor is published.
    Retired,
}

impl KeyState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Verifying => "verifying",
            Self::Retired => "retired",
        }
    }
}

/// One token signing key (public facts only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKeyInfo {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub created_at: String,
    pub retired_at: Option<String>,
    /// Until when tokens it signed still validate.
    pub verifies_until: Option<String>,
}

/// `GET /admin/v1/keys`: every signing key ever made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeysList {
    pub keys: Vec<SigningKeyInfo>,
}

/// `POST /admin/v1/keys/rotate`: the new key, and until when the previous one verifies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRotated {
    pub kid: String,
    pub previous: Option<String>,
    pub previous_verifies_until: Option<String>,
    pub checked_at: String,
}
