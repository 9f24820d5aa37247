//! The one check of an identity against the registry it would join, shared by the
//! repository path (`parse`) and the API path (`POST /admin/v1/identities`), so an
//! identity refused in YAML is refused through the API with the same words.
//!
//! It lives here rather than in `model` because a registered client key is checked by
//! parsing it (`steward_token::client_public_key`), and `token` sits above `model`.

use steward_model::{CapabilityId, PlaneId, TrustDomain, label_problems, validate_environment};

use crate::{DesiredIdentity, credential_problems};

/// Whether an owner may own an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerStanding {
    Current,
    /// Known, but removed (the API's registry keeps removed owners; a repository
    /// removes one by leaving it out).
    Removed,
    Unknown,
}

/// What an identity is checked against: the trust domain and the planes, owners,
/// capabilities and environments of the registry it would join.
pub trait IdentityRegistry {
    fn trust_domain(&self) -> &TrustDomain;
    /// The root plane or a declared one.
    fn plane_declared(&self, plane: &PlaneId) -> bool;
    /// Whether `owner` may own an identity.
    fn owner(&self, owner: &str) -> OwnerStanding;
    fn capability_declared(&self, capability: &CapabilityId) -> bool;
    /// The environments `plane` allows, after inheritance; `None` allows any.
    fn allowed_environments(&self, plane: &PlaneId) -> Option<Vec<String>>;
}

/// Every problem with `identity` in `registry`, each a phrase that reads after the
/// identity's name ("plane `x` is not declared"). Empty means it may be registered.
pub fn identity_problems(
    identity: &DesiredIdentity,
    registry: &impl IdentityRegistry,
) -> Vec<String> {
    let mut problems = Vec::new();
    let trust_domain = registry.trust_domain();
    if !identity.spiffe_id.is_in(trust_domain) {
        problems.push(format!("is outside the trust domain `{trust_domain}`"));
    }
    if !registry.plane_declared(&identity.plane) {
        problems.push(format!("plane `{}` is not declared", identity.plane));
    }
    match registry.owner(&identity.owner) {
        OwnerStanding::Current => {}
        OwnerStanding::Removed => problems.push(format!(
            "owner `{}` has been removed: choose a current owner",
            identity.owner
        )),
        OwnerStanding::Unknown => problems.push(format!(
            "owner `{}` is not declared (every identity needs an accountable owner)",
            identity.owner
        )),
    }
    if let Err(e) = validate_environment(&identity.environment) {
        problems.push(e.to_string());
    } else if let Some(envs) = registry.allowed_environments(&identity.plane)
        && !envs.contains(&identity.environment)
    {
        problems.push(format!(
            "environment `{}` is not allowed in plane `{}` (allowed: {})",
            identity.environment,
            identity.plane,
            envs.join(", ")
        ));
    }
    problems.extend(label_problems(&identity.labels));
    for e in &identity.intended {
        if !registry.capability_declared(&e.capability) {
            problems.push(format!(
                "intended capability `{}` is not declared",
                e.capability
            ));
        }
        if e.actions.is_empty() {
            problems.push(format!(
                "intended capability `{}` lists no actions",
                e.capability
            ));
        }
    }
    problems.extend(credential_problems(&identity.credentials));
    problems
}
