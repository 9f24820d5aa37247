//! The HTTP edge of every error: typed errors become a status code and a JSON body
//! `{"error": "<code>", "message": "<what was wrong and what to do>"}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use steward_governance::{Diagnostic, GovernanceError};
use steward_store::StoreError;

/// An error answer of the admin API.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            diagnostics: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A token refused at a point-facing route says why where OAuth clients look
        // (RFC 6750 §3): the description is the message, kept to header-safe text.
        let challenge = (self.code == "invalid_token").then(|| {
            let description: String = self
                .message
                .chars()
                .map(|c| match c {
                    '"' | '\\' => '\'',
                    c if c.is_ascii() && !c.is_ascii_control() => c,
                    _ => '?',
                })
                .collect();
            format!(
                "Bearer realm=\"steward\", error=\"invalid_token\", error_description=\"{description}\""
            )
        });
        let body = steward_api::ErrorBody {
            status: self.status.as_u16(),
            error: self.code.to_owned(),
            message: self.message,
            diagnostics: self.diagnostics,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(value) = challenge.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        } else if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"steward-admin\""),
            );
        }
        resp
    }
}

impl From<GovernanceError> for ApiError {
    fn from(e: GovernanceError) -> Self {
        match e {
            GovernanceError::Invalid(diagnostics) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_configuration",
                message: format!(
                    "the governance repository has {} problem(s); nothing was applied",
                    diagnostics.len()
                ),
                diagnostics,
            },
            GovernanceError::TooLarge(m) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m)
            }
            GovernanceError::Policy(p) => p.into(),
            // Unreadable uploads, and whatever a later release adds: the message says it.
            _ => Self::bad_request(e.to_string()),
        }
    }
}

impl From<steward_policy::PolicyError> for ApiError {
    fn from(e: steward_policy::PolicyError) -> Self {
        match e {
            steward_policy::PolicyError::Invalid(diagnostics) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_policy",
                message: format!(
                    "the policy has {} problem(s); nothing was published",
                    diagnostics.len()
                ),
                diagnostics,
            },
            other => {
                tracing::error!(error = %other, "policy engine build failed");
                Self::internal()
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::AlreadyExists { .. } | StoreError::ManagedByRepository { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::VersionConflict { .. } => {
                Self::new(StatusCode::CONFLICT, "version_conflict", e.to_string())
            }
            StoreError::Lifecycle(_)
            | StoreError::CreatedDecommissioned
            | StoreError::InvalidName(_)
            | StoreError::OwnerMissing { .. }
            | StoreError::OwnerRemoved { .. }
            | StoreError::OwnerAlreadyRemoved { .. }
            | StoreError::CurrentSigningKey { .. }
            | StoreError::AlreadyRevoked { .. }
            | StoreError::AlreadyAttested { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", e.to_string())
            }
            StoreError::Governance(g) => g.into(),
            other => {
                // Logged here, where it is handled; the client gets no internals.
                tracing::error!(error = %other, "store failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store failed; the server log has the details",
                )
            }
        }
    }
}
