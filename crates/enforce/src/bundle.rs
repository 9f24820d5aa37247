//! The signed policy bundle: everything an enforcement point needs to decide on its own —
//! the registry, the policy, and the keys tokens are signed with — as one JWS from the
//! control plane.
//!
//! The bundle is signed with the control plane's token signing key under its own `typ`, so
//! a bundle can never pass as a token nor a token as a bundle. A point trusts a bundle
//! signed by a key it already trusts (its configured anchor, then the keys of the last
//! bundle it accepted), which carries key rotations along: the next key is published in a
//! bundle signed by the current one.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use steward_model::PolicyBundle;
use steward_model::{Capability, CapabilityId, Identity, Plane, PlaneId, Settings};
use steward_policy::{Engine, EngineInput};
use steward_token::{Jwk, PublicKey, SigningKey, Validator, jws};

use crate::EnforceError;

/// The `format` of bundles this version understands.
pub const BUNDLE_FORMAT: &str = "steward.bundle/1";
/// The JWS `typ` of a bundle.
pub const BUNDLE_TYP: &str = "steward-bundle+jwt";
/// Largest bundle accepted (a registry of 100,000 identities is ~40 MB encoded).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024 * 1024;

/// What the control plane hands every enforcement point.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    /// The policy version decisions made with this bundle are recorded against.
    pub policy_version: i64,
    /// When the control plane built it (seconds since the epoch); never goes backwards.
    pub issued_at: i64,
    /// The token issuer (`iss`) and the keys its tokens and the next bundles are signed
    /// with.
    pub issuer: String,
    pub keys: Vec<Jwk>,
    pub clock_skew_secs: i64,
    pub root_settings: Settings,
    pub planes: BTreeMap<PlaneId, Plane>,
    pub capabilities: BTreeMap<CapabilityId, Capability>,
    pub identities: Vec<Identity>,
    pub policy: PolicyBundle,
}

impl Bundle {
    /// Signs the bundle as a compact JWS.
    pub fn sign(&self, key: &SigningKey) -> Result<String, EnforceError> {
        jws::encode(key, BUNDLE_TYP, self).map_err(|e| EnforceError::Signature(e.to_string()))
    }

    /// Verifies `text` with one of `trusted` and decodes it.
    pub fn verify(text: &str, trusted: &[PublicKey]) -> Result<Self, EnforceError> {
        let jws = jws::decode(text.trim(), MAX_BUNDLE_BYTES)
            .map_err(|e| EnforceError::Malformed(e.to_string()))?;
        if jws.header.typ.as_deref() != Some(BUNDLE_TYP) {
            return Err(EnforceError::Malformed(format!(
                "`typ` is {:?}, not `{BUNDLE_TYP}`: this is not a policy bundle",
                jws.header.typ
            )));
        }
        let kid = jws
            .header
            .kid
            .as_deref()
            .ok_or_else(|| EnforceError::Signature("no `kid`".into()))?;
        let key = trusted.iter().find(|k| k.kid() == kid).ok_or_else(|| {
            EnforceError::Signature(format!(
                "signed by key `{kid}`, which this enforcement point does not trust (trusted: {})",
                trusted
                    .iter()
                    .map(PublicKey::kid)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        jws.verify(key)
            .map_err(|e| EnforceError::Signature(e.to_string()))?;
        let bundle: Self = jws
            .claims()
            .map_err(|e| EnforceError::Malformed(e.to_string()))?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(EnforceError::Malformed(format!(
                "format `{}` is not `{BUNDLE_FORMAT}`; upgrade this enforcement point",
                bundle.format
            )));
        }
        if bundle.keys.is_empty() {
            return Err(EnforceError::Malformed("the bundle lists no keys".into()));
        }
        Ok(bundle)
    }

    /// The token keys, parsed.
    pub fn public_keys(&self) -> Result<Vec<PublicKey>, EnforceError> {
        self.keys
            .iter()
            .map(|k| {
                k.to_public_key()
                    .map_err(|e| EnforceError::Malformed(format!("key `{}`: {e}", k.thumbprint())))
            })
            .collect()
    }

    /// Compiles the policy over the registry and builds the validator: the decision
    /// machinery of one bundle.
    /// Compiles the bundle into an enforcer whose validator consults `revocations` on
    /// every token.
    pub fn enforcer(
        &self,
        revocations: std::sync::Arc<dyn steward_token::RevocationCheck>,
    ) -> Result<Enforcer, EnforceError> {
        let keys = self.public_keys()?;
        let engine = Engine::build(EngineInput {
            planes: &self.planes,
            root_settings: &self.root_settings,
            identities: self.identities.clone(),
            capabilities: &self.capabilities,
            bundle: &self.policy,
            version: self.policy_version,
            now: time::OffsetDateTime::now_utc(),
        })
        .map_err(|e| EnforceError::Compile(e.to_string()))?;
        let mut registered_keys: HashMap<String, Vec<PublicKey>> = HashMap::new();
        for identity in &self.identities {
            let keys: Vec<PublicKey> = identity
                .credentials
                .public_keys
                .iter()
                .filter_map(|k| steward_token::client_public_key(k).ok())
                .collect();
            if !keys.is_empty() {
                registered_keys.insert(identity.spiffe_id.to_string(), keys);
            }
        }
        Ok(Enforcer {
            registered_keys,
            validator: Validator::new(self.issuer.clone(), keys.clone(), self.clock_skew_secs)
                .with_revocation(revocations),
            engine,
            keys,
            issued_at: self.issued_at,
            policy_version: self.policy_version,
        })
    }
}

/// One bundle's decision machinery: immutable, swapped whole when a new bundle arrives.
pub struct Enforcer {
    /// Each identity's registered public keys (what its signed messages verify with).
    registered_keys: HashMap<String, Vec<PublicKey>>,
    pub(crate) validator: Validator,
    pub(crate) engine: Engine,
    keys: Vec<PublicKey>,
    issued_at: i64,
    policy_version: i64,
}

impl Enforcer {
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The public keys `spiffe_id` registered (empty if none, or unknown).
    pub fn registered_keys(&self, spiffe_id: &str) -> &[PublicKey] {
        self.registered_keys
            .get(spiffe_id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The keys the next bundle may be signed with.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    pub fn policy_version(&self) -> i64 {
        self.policy_version
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    proptest::proptest! {
        /// Whatever arrives as a bundle, verification answers (no panic) and never accepts
        /// it without the trusted key's signature.
        #[test]
        fn verify_never_panics_or_accepts_garbage(text in "\\PC{0,400}", parts in proptest::collection::vec("[A-Za-z0-9_-]{0,60}", 3)) {
            let (key, _) = SigningKey::generate().unwrap();
            let trusted = [key.public_key().clone()];
            proptest::prop_assert!(Bundle::verify(&text, &trusted).is_err());
            proptest::prop_assert!(Bundle::verify(&parts.join("."), &trusted).is_err());
        }
    }
}
