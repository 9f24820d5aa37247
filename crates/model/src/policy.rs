//! Policy-related objects a governance repository declares besides the Cedar text:
//! request-context attributes the policies may read, and time-bound exceptions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

use crate::identity::enum_str;
use crate::{Action, CapabilityId, SpiffeId};

/// The value type of a declared request-context attribute. Kept to the few types an
/// enforcement point can fill from what it sees, so every PEP can send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ContextType {
    #[serde(rename = "string")]
    String,
    #[serde(rename = "long")]
    Long,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "set<string>")]
    StringSet,
}

enum_str!(ContextType { String => "string", Long => "long", Bool => "bool", StringSet => "set<string>" });

/// An organisation-specific request-context attribute (for example `amount_minor` or
/// `partner_id`). Declared attributes are optional in every request: policies test them
/// with `context has name`, so a PEP that cannot supply one gets the fail-closed branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ContextType,
    #[serde(default)]
    pub description: String,
}

/// A time-bound exception (break-glass or a migration waiver): it lifts the named
/// exceptionable guardrails for one principal on one capability until `expires_at`.
/// It never grants anything by itself: a plane policy must still permit the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyException {
    pub id: String,
    /// The accountable owner (an owner id of the registry).
    pub owner: String,
    pub reason: String,
    /// The change or incident ticket that approved it.
    pub ticket: String,
    pub principal: SpiffeId,
    pub capability: CapabilityId,
    /// Ids of the guardrails it lifts; each must be annotated `@exceptionable("true")`.
    pub lifts: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

impl PolicyException {
    /// Whether the exception still applies at `now`. Expiry needs no action from anyone.
    pub fn is_active(&self, now: time::OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

impl fmt::Display for PolicyException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exception {} ({} on {}, until {})",
            self.id,
            self.principal,
            self.capability,
            crate::timestamp::format(self.expires_at)
        )
    }
}

/// A named workflow that may obtain just-in-time credentials: who may ask, for which
/// capabilities, for how long at most. Each credential is approved by policy at the moment
/// it is asked for (the request carries `task_scope` = the workflow id), so a renewal works
/// only while policy still allows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub id: String,
    pub plane: crate::PlaneId,
    #[serde(default)]
    pub description: String,
    /// Identities that may request credentials for this workflow.
    pub requesters: Vec<SpiffeId>,
    /// The capabilities a credential of this workflow is limited to.
    pub scope: Vec<CapabilityId>,
    /// Longest lifetime of one credential, in seconds.
    pub max_ttl_secs: u64,
    /// Admin credential names whose approval each credential needs. Empty: policy
    /// approves (see above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

/// A recorded decision that a candidate policy would decide the other way (the dry-run
/// of a plan lists these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flip {
    pub event_id: String,
    pub time: String,
    pub principal: String,
    pub capability: Option<String>,
    pub action: Option<Action>,
    pub was: bool,
    pub now: bool,
    /// The candidate's deciding policies and reasons.
    pub policies: Vec<String>,
    pub reasons: Vec<String>,
}

/// One (capability, action) pair the policy allows an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub capability: String,
    pub action: Action,
    /// The permits that grant it.
    pub policies: Vec<String>,
    /// Exceptions it depends on (it stops when they expire).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<String>,
}

/// Effective against intended entitlements of one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementReport {
    pub principal: String,
    /// The context the permissions were computed under.
    pub context: Map<String, Value>,
    pub effective: Vec<Permission>,
    /// What the owner declared in the governance repository (`intended:`).
    pub intended: Vec<(String, Action)>,
    /// Allowed but not intended: candidates for removal (least privilege).
    pub excess: Vec<(String, Action)>,
    /// Intended but not allowed: the policy does not yet grant what the owner expects.
    pub missing: Vec<(String, Action)>,
}
