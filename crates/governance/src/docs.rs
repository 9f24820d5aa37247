//! The file format: what a YAML file of the governance repository may contain.
//!
//! Every YAML file is a mapping with any of the top-level keys below; lists from several
//! files are merged, so a team may split identities across as many files as it likes.
//! Unknown keys are errors: in a security configuration a typo must not be ignored.

use serde::Deserialize;
use std::collections::BTreeMap;

use steward_model::{
    Action, Capability, CapabilityId, Classification, ContextAttribute, Entitlement, IdentityKind,
    LifecycleState, OwnerKind, PlaneId, Settings, SpiffeId, TransportMapping,
};

use steward_model::Expectation;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDoc {
    /// Central (root plane) settings.
    #[serde(default)]
    pub settings: Option<Settings>,
    #[serde(default)]
    pub planes: Vec<PlaneDoc>,
    #[serde(default)]
    pub owners: Vec<OwnerDoc>,
    #[serde(default)]
    pub identities: Vec<IdentityDoc>,
    #[serde(default)]
    pub capabilities: Vec<CapabilityDoc>,
    #[serde(default)]
    pub issuers: Vec<IssuerDoc>,
    /// Organisation-specific request-context attributes policies may read.
    /// A `source` is written as a one-key map (`source: {header: x-amount-minor}`).
    #[serde(default, with = "yaml_serde::with::singleton_map_recursive")]
    pub request_context: Vec<ContextAttribute>,
    /// Time-bound exceptions to exceptionable guardrails.
    #[serde(default)]
    pub exceptions: Vec<ExceptionDoc>,
    /// Named workflows that may obtain just-in-time credentials.
    #[serde(default)]
    pub workflows: Vec<steward_model::Workflow>,
    /// Policy unit tests: a request and the decision it must get.
    #[serde(default)]
    pub policy_tests: Vec<PolicyTestDoc>,
    /// Client keys kept apart from their identity (a file per key, as
    /// `steward identity key create` writes them), merged into the identity's
    /// `credentials.public_keys`.
    #[serde(default)]
    pub client_keys: Vec<ClientKeyDoc>,
}

/// One client key of a declared identity, in a file of its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientKeyDoc {
    pub identity: SpiffeId,
    pub key: steward_model::ClientKey,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExceptionDoc {
    pub id: String,
    pub owner: String,
    pub reason: String,
    pub ticket: String,
    pub principal: SpiffeId,
    pub capability: CapabilityId,
    pub lifts: Vec<String>,
    /// RFC 3339, for example `2026-12-01T00:00:00Z`.
    pub expires_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyTestDoc {
    pub name: String,
    pub principal: String,
    pub capability: String,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub context: serde_json::Map<String, serde_json::Value>,
    /// RFC 3339 time of the request; default: when the test runs.
    #[serde(default)]
    pub at: Option<String>,
    pub expect: Expectation,
    /// Policy ids that must decide the request (the determining policies).
    #[serde(default)]
    pub decided_by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaneDoc {
    pub id: PlaneId,
    #[serde(default = "PlaneId::root")]
    pub parent: PlaneId,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnerDoc {
    pub id: String,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub kind: OwnerKind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityDoc {
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
    pub state: Option<LifecycleState>,
    #[serde(default)]
    pub intended: Vec<Entitlement>,
    #[serde(default)]
    pub credentials: steward_model::Credentials,
}

fn internal() -> Classification {
    Classification::Internal
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapabilityDoc {
    pub id: CapabilityId,
    pub plane: PlaneId,
    pub classification: Classification,
    #[serde(default)]
    pub description: String,
    /// Written as `- http: {method: GET, path: /x}`: one-key maps, not YAML tags.
    #[serde(default, with = "yaml_serde::with::singleton_map_recursive")]
    pub mappings: Vec<TransportMapping>,
    /// Request-context values fixed for every request to it (`data_class: restricted`).
    #[serde(default)]
    pub context: std::collections::BTreeMap<String, serde_json::Value>,
}

impl From<CapabilityDoc> for Capability {
    fn from(d: CapabilityDoc) -> Self {
        Capability {
            id: d.id,
            plane: d.plane,
            classification: d.classification,
            description: d.description,
            mappings: d.mappings,
            context: d.context,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssuerDoc {
    pub id: String,
    #[serde(default = "PlaneId::root")]
    pub plane: PlaneId,
    pub issuer: String,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default)]
    pub allowed_subjects: Vec<String>,
    pub audience: String,
    #[serde(default)]
    pub claim_mapping: BTreeMap<String, serde_json::Value>,
}
