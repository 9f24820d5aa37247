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
}

/// `GET /.well-known/authzen-configuration` (AuthZEN PDP metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzenConfiguration {
    pub policy_decision_point: String,
    pub access_evaluation_endpoint: String,
    pub access_evaluations_endpoint: String,
}
