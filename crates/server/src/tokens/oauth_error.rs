//! The token endpoint's error answers (RFC 6749 §5.2), shared by every grant.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An RFC 6749 §5.2 error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    pub(super) error: &'static str,
    pub(super) description: String,
    /// The client tried HTTP Basic: a 401 then names the scheme (RFC 6749 §5.2).
    basic_challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }
    pub(super) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub(super) fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
    pub(super) fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
    pub(super) fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }
    pub(super) fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    pub(super) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    pub(super) fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }
    pub(super) fn invalid_dpop_proof(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", d)
    }
    /// The client tried HTTP Basic: a 401 then names the scheme.
    pub(super) fn challenge_basic(&mut self) {
        self.basic_challenge = true;
    }
    pub(super) fn unavailable(d: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            d,
        )
    }
}

/// Token answers and their errors are never cached (RFC 6749 §5.1).
pub(super) fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = no_store(
            (
                self.status,
                axum::Json(steward_api::OAuthErrorBody {
                    error: self.error.to_owned(),
                    error_description: self.description,
                }),
            )
                .into_response(),
        );
        if self.basic_challenge && self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"steward\""),
            );
        }
        r
    }
}
