//! What a trusted issuer's claim mapping makes of a validated foreign token: the pure rules
//! of federation. The token service validates the token (`foreign::validate_foreign`),
//! calls [`map_claims`], looks the identity up in its registry, and calls
//! [`check_mapped`] before it issues anything.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};
use steward_model::{Identity, LifecycleState, SpiffeId, TrustDomain};

use crate::TokenError;
use crate::foreign::render;

/// The identity and attributes a foreign token maps onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub identity: SpiffeId,
    /// The environment the token speaks for, when the issuer maps one.
    pub environment: Option<String>,
    pub model_tier: Option<String>,
    pub task_scope: Option<String>,
}

/// Why a validated foreign token maps onto no identity it may obtain a token for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    #[error("no identity mapping")]
    NoIdentityMapping,
    /// A template names a claim the token lacks, or a claim is not a plain name.
    #[error("{0}")]
    Template(TokenError),
    #[error("mapped identity `{id}`: {problem}")]
    NotASpiffeId { id: String, problem: String },
    #[error("mapped identity `{0}` is outside the trust domain")]
    OutsideTrustDomain(String),
    #[error("mapped identity `{id}` is {state}")]
    NotActive { id: String, state: LifecycleState },
    #[error("mapped identity `{id}` belongs to plane `{plane}`, outside the issuer's planes")]
    OutsidePlanes { id: String, plane: String },
    #[error("the token maps to environment `{mapped}`, but `{id}` is registered in `{registered}`")]
    OtherEnvironment {
        id: String,
        mapped: String,
        registered: String,
    },
}

/// Fills the issuer's `mapping` templates (`identity`, `environment`, `model_tier`,
/// `task_scope`) from `claims`. The identity must be a SPIFFE ID of `trust_domain`.
pub fn map_claims(
    mapping: &BTreeMap<String, String>,
    claims: &Map<String, Value>,
    trust_domain: &TrustDomain,
) -> Result<Mapped, FederationError> {
    let template = |key: &str| {
        mapping
            .get(key)
            .map(|t| render(t, claims).map_err(FederationError::Template))
            .transpose()
    };
    let id = template("identity")?.ok_or(FederationError::NoIdentityMapping)?;
    let identity = SpiffeId::parse(id.clone()).map_err(|e| FederationError::NotASpiffeId {
        id: id.clone(),
        problem: e.to_string(),
    })?;
    if !identity.is_in(trust_domain) {
        return Err(FederationError::OutsideTrustDomain(id));
    }
    Ok(Mapped {
        identity,
        environment: template("environment")?,
        model_tier: template("model_tier")?,
        task_scope: template("task_scope")?,
    })
}

/// Whether the registered `identity` the token mapped onto may be federated: active, in
/// one of the issuer's `planes` (its plane and those beneath), and in the environment
/// the token maps to, if it maps one.
pub fn check_mapped(
    mapped: &Mapped,
    identity: &Identity,
    planes: &HashSet<String>,
) -> Result<(), FederationError> {
    let id = || mapped.identity.to_string();
    if identity.state != LifecycleState::Active {
        return Err(FederationError::NotActive {
            id: id(),
            state: identity.state,
        });
    }
    if !planes.contains(identity.plane.as_str()) {
        return Err(FederationError::OutsidePlanes {
            id: id(),
            plane: identity.plane.to_string(),
        });
    }
    if let Some(env) = &mapped.environment
        && *env != identity.environment
    {
        return Err(FederationError::OtherEnvironment {
            id: id(),
            mapped: env.clone(),
            registered: identity.environment.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn td() -> TrustDomain {
        TrustDomain::new("acme.example").unwrap()
    }

    fn mapping(identity: &str, environment: Option<&str>) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([("identity".to_owned(), identity.to_owned())]);
        if let Some(e) = environment {
            m.insert("environment".into(), e.into());
        }
        m
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn identity(plane: &str, environment: &str, state: LifecycleState) -> Identity {
        serde_json::from_value(json!({
            "spiffe_id": "spiffe://acme.example/ci/deploy/prod", "plane": plane,
            "owner": "platform-team", "environment": environment, "kind": "pipeline",
            "classification": "internal", "description": "", "labels": {}, "state": state,
            "intended": []
        }))
        .unwrap()
    }

    #[test]
    fn a_mapped_identity_is_checked_against_state_planes_and_environment() {
        let m = map_claims(
            &mapping(
                "spiffe://acme.example/ci/deploy/{environment}",
                Some("{environment}"),
            ),
            &claims(json!({"environment": "prod", "sub": "repo:acme/deploy"})),
            &td(),
        )
        .unwrap();
        assert_eq!(m.identity.as_str(), "spiffe://acme.example/ci/deploy/prod");
        let planes = HashSet::from(["platform".to_owned()]);
        assert_eq!(
            check_mapped(
                &m,
                &identity("platform", "prod", LifecycleState::Active),
                &planes
            ),
            Ok(())
        );
        assert!(matches!(
            check_mapped(
                &m,
                &identity("payments", "prod", LifecycleState::Active),
                &planes
            ),
            Err(FederationError::OutsidePlanes { .. })
        ));
        assert!(matches!(
            check_mapped(
                &m,
                &identity("platform", "staging", LifecycleState::Active),
                &planes
            ),
            Err(FederationError::OtherEnvironment { .. })
        ));
        assert!(matches!(
            check_mapped(
                &m,
                &identity("platform", "prod", LifecycleState::Suspended),
                &planes
            ),
            Err(FederationError::NotActive { .. })
        ));
    }

    #[test]
    fn a_mapping_without_identity_or_outside_the_domain_is_refused() {
        let c = claims(json!({"sub": "x"}));
        assert_eq!(
            map_claims(&BTreeMap::new(), &c, &td()),
            Err(FederationError::NoIdentityMapping)
        );
        assert!(matches!(
            map_claims(&mapping("spiffe://evil.example/{sub}", None), &c, &td()),
            Err(FederationError::OutsideTrustDomain(_))
        ));
        assert!(matches!(
            map_claims(&mapping("spiffe://acme.example/{missing}", None), &c, &td()),
            Err(FederationError::Template(_))
        ));
    }

    proptest::proptest! {
        /// Whatever a foreign issuer puts in a claim, the mapped identity stays in the
        /// trust domain and the claim fills exactly the one segment the template gives it:
        /// no `/`, `..` or `%` smuggles in another path.
        #[test]
        fn a_claim_cannot_move_the_mapped_identity(sub in ".{0,40}") {
            let c = claims(json!({ "sub": sub }));
            let template = "spiffe://acme.example/ci/{sub}/prod";
            if let Ok(m) = map_claims(&mapping(template, None), &c, &td()) {
                proptest::prop_assert!(m.identity.is_in(&td()));
                proptest::prop_assert_eq!(
                    m.identity.as_str().to_owned(),
                    format!("spiffe://acme.example/ci/{sub}/prod")
                );
                proptest::prop_assert!(!sub.contains('/') && !sub.contains('%') && sub != ".." && sub != ".");
            }
            // A template that puts the claim where the trust domain goes never leaves it.
            if let Ok(m) = map_claims(&mapping("spiffe://{sub}/x", None), &c, &td()) {
                proptest::prop_assert_eq!(sub.as_str(), "acme.example");
                proptest::prop_assert!(m.identity.is_in(&td()));
            }
        }
    }
}
