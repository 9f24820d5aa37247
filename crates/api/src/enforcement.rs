//! What enforcement points receive from the control plane (no admin feature needed).

use serde::{Deserialize, Serialize};

/// `GET /enforcement/v1/egress-secrets/{id}`: the secret a gateway injects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleasedSecret {
    pub id: String,
    pub value: String,
    /// When this value was set: changes on every rotation.
    pub created_at: String,
}

/// One enforcement point a process registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointIdentity {
    /// Unique across the deployment, e.g. `gateway:edge-1`.
    pub id: String,
    /// `gateway`, `egress`, `nginx`, `rabbitmq`, `ext_authz`, `consumer` …
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// `POST /enforcement/v1/points/report`: a process's points, the policy bundle version
/// they run and the revocation epoch they applied (registration, heartbeat and
/// acknowledgement in one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointReportRequest {
    pub points: Vec<PointIdentity>,
    pub bundle_version: i64,
    pub epoch: i64,
}

/// The control plane's answer to a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointReportAnswer {
    /// The newest epoch: a point behind it knows it is.
    pub epoch: i64,
    /// Why the report was flagged (an epoch never issued), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<String>,
}

/// `GET /.well-known/openid-configuration` and `GET /.well-known/oauth-authorization-server`
/// (OpenID Connect Discovery 1.0, RFC 8414): what relying parties and clients read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub tls_client_certificate_bound_access_tokens: bool,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Required by OpenID discovery; Steward has no end users or authorization endpoint,
    /// so like other workload issuers it names only the JWT signing algorithm.
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub claims_supported: Vec<String>,
    pub spiffe_trust_domain: String,
    pub spiffe_bundle_endpoint: String,
    /// Token introspection (RFC 7662), for validators that must see revocations. Optional
    /// so metadata from a control plane without it still reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// How a caller of the introspection endpoint authenticates (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
}

/// `POST /oauth2/introspect` (RFC 7662 §2.2): whether a token is in force now, and if it
/// is, what it says, so a resource server validating tokens with its own library learns
/// of revocations. An inactive answer is `{"active": false}` and nothing else, whatever
/// the reason, so the answer never tells a caller more than that.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introspection {
    /// Whether the token is in force now and the caller may know of it.
    pub active: bool,
    /// Space-separated capability ids the token is limited to, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The identity the token was issued to (a Steward token's client is its subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `DPoP` for a token bound to a DPoP key (it must come with a proof), else `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The token's expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// When the token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// When the token becomes valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The identity the token speaks for (its SPIFFE ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// A string for one audience, an array for several, as in the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
    /// The issuer: this control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The token's id, the one revocations and evidence records name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The token's sender binding (RFC 7800), for the resource server to check the proof
    /// it was presented with: `jkt` (DPoP) or `x5t#S256` (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
    /// The delegation chain of an exchanged token (RFC 8693 §4.1), as in the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// The subject's environment, as in the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The subject's plane, as in the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<String>,
    /// The newest revocation epoch this answer took into account: every revocation up to
    /// it was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_epoch: Option<i64>,
}

/// `GET /.well-known/authzen-configuration` (AuthZEN PDP metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzenConfiguration {
    pub policy_decision_point: String,
    pub access_evaluation_endpoint: String,
    pub access_evaluations_endpoint: String,
    /// How a caller authenticates to the evaluation endpoints: `steward_admin_credential`
    /// (`Authorization: Bearer stw_…`, any role) and `oauth_bearer` (a Steward access
    /// token of an identity granted the enforcement point role `decide`), so a PEP knows
    /// it can use its own short-lived token.
    #[serde(default)]
    pub credentials_supported: Vec<String>,
    /// The audience an `oauth_bearer` token must carry (this control plane's issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_bearer_audience: Option<String>,
    /// Where such a token is obtained (`client_credentials` with `private_key_jwt` or
    /// mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
}
