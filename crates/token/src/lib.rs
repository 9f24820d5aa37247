//! Steward's credentials: the control plane's ES256 keys and their sealing,
//! JWS compact tokens with JWT-SVID claims, client assertions, and [`Validator`] — the one
//! validation path every enforcement point calls. Pure: time is passed in, keys are handed
//! over by the caller, nothing is read from disk or network.

pub mod assertion;
pub mod claims;
pub mod delegation;
pub mod dpop;
mod error;
pub mod federation;
pub mod foreign;
pub mod jws;
pub mod keys;
pub mod validate;

pub use assertion::{
    AssertionRules, JWT_BEARER_ASSERTION, ReplayCache, VerifiedAssertion, decode_client_assertion,
};
pub use claims::{Actor, Audience, Claims, Confirmation};
pub use delegation::{DelegationError, delegate_claims};
pub use dpop::{
    CheckedProof, DpopRequest, ProofKeys, access_token_hash, check_dpop, new_dpop_proof, sign_dpop,
    verify_dpop,
};
pub use error::TokenError;
pub use federation::{FederationError, Mapped, check_mapped, map_claims};
pub use foreign::{ForeignKeySet, ForeignRules, validate_foreign};
pub use keys::{ALG, Jwk, Kek, PublicKey, SigningKey, client_public_key};
pub use validate::{
    Expectations, NoRevocation, Proof, RevocationCheck, Validator, certificate_thumbprint,
};

/// A JWKS document (RFC 7517 §5) for `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a PublicKey>) -> serde_json::Value {
    serde_json::json!({ "keys": keys.into_iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}
