//! The error answer every route gives, and the errors of using the API.

use serde::{Deserialize, Serialize};
use steward_model::Diagnostic;

/// The body of every error answer: `{"error": "<code>", "message": "<what was wrong and
/// what to do>"}`, with the repository locations when a governance file was at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status it came with (not part of the body).
    #[serde(skip)]
    pub status: u16,
    /// A stable code: `invalid_request`, `unauthorized`, `forbidden`, `not_found`, ….
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.error)
    }
}

/// The token endpoint's error answer (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`, `invalid_dpop_proof`
    /// or `temporarily_unavailable`.
    pub error: String,
    pub error_description: String,
}

/// What went wrong building a request or calling the API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("a `plane-admin` credential needs `plane`")]
    PlaneAdminWithoutPlane,
    #[error("`plane` only goes with role `plane-admin`")]
    PlaneWithoutPlaneAdmin,
    #[error(
        "the control plane address `{0}` is not a URL: write it with its scheme, e.g. http://127.0.0.1:8470 (STEWARD_SERVER or --server)"
    )]
    NotAUrl(String),
    /// The server could not be reached; `hint` says the usual cause.
    #[error("cannot reach the control plane at {base}: {detail}.{hint}")]
    Unreachable {
        base: String,
        detail: String,
        hint: &'static str,
    },
    /// The server answered with an error.
    #[error("{0}")]
    Server(ErrorBody),
    /// The server answered something this client does not understand.
    #[error("unexpected answer to {method} {path}: {detail}")]
    UnexpectedAnswer {
        method: &'static str,
        path: String,
        detail: String,
    },
}

impl Error {
    /// The server's error answer, if that is what this is.
    pub fn server(&self) -> Option<&ErrorBody> {
        match self {
            Error::Server(body) => Some(body),
            _ => None,
        }
    }
}
