//! The enforcement core: what every enforcement point — `steward gateway`,
//! the Envoy ext_authz service, the nginx `auth_request` and RabbitMQ endpoints — does
//! with a request, so the same request gets the same decision at every layer.
//!
//! 1. [`BundleSource`] holds the signed policy bundle fetched from the control plane
//!    ([`Bundle`]: the registry, the policy, the token keys) and keeps it current; past the
//!    configured staleness it answers "unavailable" and every request is refused.
//! 2. [`EnforcementPoint::check`] validates the token with the shared
//!    [`steward_token::Validator`], resolves the transport address through the capability
//!    catalog, decides with the compiled policy, and queues the decision record (with the
//!    request's trace id as correlation id) to [`DecisionLog`], which ships it to the
//!    control plane's evidence log. A record that cannot be queued turns the answer into a
//!    deny.

mod bundle;
mod certificate;
mod context;
mod control_auth;
mod credential;
mod decision_log;
mod point;
mod revocation;
mod revocation_feed;
mod source;
pub mod trace;

pub use bundle::{BUNDLE_FORMAT, BUNDLE_TYP, Bundle, Enforcer, MAX_BUNDLE_BYTES};
pub use certificate::PeerCertificate;
pub use context::{Carried, HeaderValue, RequestHeaders, read_declared};
pub use control_auth::{ControlPlaneAuth, PointIdentityKey};
pub use credential::{
    Challenge, Credential, CredentialError, DPOP_MAX_AGE_SECS, HeaderField, MAX_DPOP_PROOFS,
    Origin, Presented, Scheme, authorization,
};
pub use decision_log::{
    DEFAULT_SHIP_INTERVAL, DecisionLog, LogStats, MAX_RECORD_BYTES, decision_event,
};
pub use point::{
    EnforcementPoint, METHOD_OVERRIDE_HEADERS, Outcome, Seen, Unreadable, Verdict, http_address,
    http_address_checked, is_grpc, request_address,
};
pub use revocation::{EpochGap, RevocationSet};
pub use revocation_feed::{FeedConfig, FeedStatus, RevocationFeed, RevocationHook};
pub use source::{BundleSource, SourceConfig, SourceStatus};
/// The points a process registers are named in the control plane's wire type.
pub use steward_api::PointIdentity;

/// Why a bundle, a fetch or a decision record failed. Messages never carry a token or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnforceError {
    #[error("the policy bundle's signature does not verify: {0}")]
    Signature(String),
    #[error("the policy bundle is malformed: {0}")]
    Malformed(String),
    #[error("the policy bundle does not compile here: {0}")]
    Compile(String),
    #[error(
        "the policy bundle from {issued_at} is older than the one in force ({held}); refusing to go back"
    )]
    Rollback { issued_at: i64, held: i64 },
    #[error("cannot reach the control plane at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the control plane refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error(
        "the decision log is full ({0} records waiting); denying rather than deciding unrecorded"
    )]
    LogFull(usize),
    #[error("a decision record cannot be encoded ({0}); denying rather than deciding unrecorded")]
    RecordEncode(String),
    #[error("no policy bundle has been loaded yet{}; denying", last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NoBundle { last_error: Option<String> },
    #[error(
        "the policy bundle was last confirmed by the control plane {age_secs}s ago, more than the {max_secs}s allowed (max_staleness_secs); denying until it is reachable{}",
        last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    StaleBundle {
        age_secs: u64,
        max_secs: u64,
        last_error: Option<String>,
    },
    #[error(
        "the revocation feed was last confirmed {age_secs}s ago, more than the {max_secs}s allowed (max_staleness_secs); denying until the control plane is reachable"
    )]
    StaleRevocations { age_secs: u64, max_secs: u64 },
    #[error("the revocation feed has not connected yet; denying")]
    RevocationsNotConnected,
    #[error("the token was refused: {0}")]
    TokenRefused(steward_token::TokenError),
    /// The point runs as an identity and holds no token in force for the control plane.
    #[error(
        "no control-plane token for `{identity}` yet{}; is its key registered and the identity granted `credentials.enforcement_point`?",
        last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    NoControlPlaneToken {
        identity: String,
        last_error: Option<String>,
    },
}

/// The answer itself when it is a success, else the control plane's refusal with the start
/// of its body.
pub(crate) async fn success(
    response: reqwest::Response,
) -> Result<reqwest::Response, EnforceError> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    Err(EnforceError::Refused {
        status,
        message: answer_text(response).await,
    })
}

/// The start of an HTTP answer's body, for error messages (never the whole of it).
pub(crate) async fn answer_text(response: reqwest::Response) -> String {
    response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(400)
        .collect()
}
