//! The validated desired state a governance repository declares, as plain data.
//!
//! The governance parser produces it; the policy compiler, the enforcement bundle, the
//! store and the server consume it. It lives here rather than beside the parser so that
//! what only reads configuration (every gateway) does not link the YAML parser.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

use crate::{
    Action, Capability, CapabilityId, Classification, ContextAttribute, Entitlement, IdentityKind,
    LifecycleState, Owner, Plane, PlaneId, PolicyException, Settings, SpiffeId, TrustedIssuer,
};

/// One problem in a governance repository, located in the file that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Path relative to the repository root, `/`-separated.
    pub file: String,
    /// 1-based line; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// The kinds of object a governance repository declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    Settings,
    Plane,
    Owner,
    Capability,
    Issuer,
    Policy,
    ContextAttribute,
    Exception,
    Workflow,
    Identity,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Settings => "settings",
            Self::Plane => "plane",
            Self::Owner => "owner",
            Self::Capability => "capability",
            Self::Issuer => "issuer",
            Self::Policy => "policy",
            Self::ContextAttribute => "request_context attribute",
            Self::Exception => "exception",
            Self::Workflow => "workflow",
            Self::Identity => "identity",
        })
    }
}

/// An identity as the repository declares it. `state: None` means the repository does not
/// manage the lifecycle state (suspensions made through the API are left alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredIdentity {
    pub spiffe_id: SpiffeId,
    pub plane: PlaneId,
    pub owner: String,
    pub environment: String,
    pub kind: IdentityKind,
    pub classification: Classification,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub state: Option<LifecycleState>,
    pub intended: Vec<Entitlement>,
    pub credentials: crate::Credentials,
}

impl DesiredIdentity {
    /// The registry identity this declaration describes, in `state` (the pinned state if
    /// the repository gives one; callers pass what else applies).
    pub fn to_identity(&self, state: LifecycleState) -> crate::Identity {
        crate::Identity {
            spiffe_id: self.spiffe_id.clone(),
            plane: self.plane.clone(),
            owner: self.owner.clone(),
            environment: self.environment.clone(),
            kind: self.kind,
            classification: self.classification,
            description: self.description.clone(),
            labels: self.labels.clone(),
            state,
            intended: self.intended.clone(),
            credentials: self.credentials.clone(),
        }
    }
}

/// A `.cedar` file: its plane comes from its directory (`policies/<plane>/…`; files directly
/// under `policies/` belong to the root plane and are central guardrails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    pub path: String,
    pub plane: PlaneId,
    pub text: String,
}

/// What a policy test expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    Allow,
    Deny,
}

/// A policy unit test from the repository: a request and the decision it must get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyTest {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub principal: String,
    pub capability: String,
    pub action: Option<Action>,
    pub context: serde_json::Map<String, serde_json::Value>,
    pub at: Option<time::OffsetDateTime>,
    pub expect: Expectation,
    pub decided_by: Vec<String>,
}

/// The policy half of a configuration: what decides requests besides the registry. Kept
/// as one versioned document so policy versions can be listed, diffed and rolled back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyBundle {
    pub policies: BTreeMap<String, PolicyFile>,
    pub context_attributes: BTreeMap<String, ContextAttribute>,
    pub exceptions: BTreeMap<String, PolicyException>,
    /// Just-in-time workflows (absent from bundles published before they existed).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workflows: BTreeMap<String, crate::Workflow>,
}

impl PolicyBundle {
    /// SHA-256 over the canonical JSON form.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(h.finalize())
    }
}

/// The whole desired state a repository declares, validated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desired {
    pub root_settings: Settings,
    /// Declared planes, without the implicit root.
    pub planes: BTreeMap<PlaneId, Plane>,
    pub owners: BTreeMap<String, Owner>,
    pub identities: BTreeMap<SpiffeId, DesiredIdentity>,
    pub capabilities: BTreeMap<CapabilityId, Capability>,
    pub issuers: BTreeMap<String, TrustedIssuer>,
    pub policies: BTreeMap<String, PolicyFile>,
    /// Declared request-context attributes, by name.
    pub context_attributes: BTreeMap<String, ContextAttribute>,
    /// Exceptions, by id (expired ones stay: they are history, and inactive).
    pub exceptions: BTreeMap<String, PolicyException>,
    /// Just-in-time workflows, by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workflows: BTreeMap<String, crate::Workflow>,
    /// Policy unit tests. Not part of the configuration: they change no decision, so they
    /// are left out of the digest and never stored.
    #[serde(skip)]
    pub policy_tests: Vec<PolicyTest>,
    /// Where each object was declared: (kind, id) → (file, line). Used to place errors that
    /// only the plan can find (for example un-decommissioning).
    #[serde(skip)]
    pub locations: BTreeMap<(ObjectKind, String), (String, usize)>,
}

impl Desired {
    /// SHA-256 over the canonical JSON form: equal repositories give equal digests.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        // Serialising BTreeMaps of plain data cannot fail; an empty digest input would
        // still give a stable (if meaningless) value.
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// The policy half of this configuration.
    pub fn policy_bundle(&self) -> PolicyBundle {
        PolicyBundle {
            policies: self.policies.clone(),
            context_attributes: self.context_attributes.clone(),
            exceptions: self.exceptions.clone(),
            workflows: self.workflows.clone(),
        }
    }

    /// Where an object was declared, as a diagnostic location.
    pub fn locate(&self, kind: ObjectKind, id: &str) -> (String, usize) {
        self.locations
            .get(&(kind, id.to_owned()))
            .cloned()
            .unwrap_or_else(|| ("(repository)".into(), 0))
    }
}
