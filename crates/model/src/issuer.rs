use serde::{Deserialize, Serialize};

use crate::PlaneId;

/// A trusted external issuer (Kubernetes, CI OIDC, another SPIFFE trust domain, a cloud
/// IdP) with its explicit trust boundary. The token service gives these meaning; the
/// registry keeps them as declared so that plans and evidence show exactly what is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedIssuer {
    pub id: String,
    pub plane: PlaneId,
    /// The exact `iss` value tokens must carry.
    pub issuer: String,
    /// Where keys come from: a JWKS URL, or `None` when `jwks` is inline.
    pub jwks_uri: Option<String>,
    /// Inline JWKS document, as declared.
    pub jwks: Option<serde_json::Value>,
    /// `sub` patterns accepted from this issuer (`*` wildcard).
    pub allowed_subjects: Vec<String>,
    /// The audience the external token must carry.
    pub audience: String,
    /// Claim mapping onto a Steward identity, as declared (identity template, environment …).
    pub claim_mapping: serde_json::Value,
}
