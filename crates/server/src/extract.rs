//! Request extractors whose rejections are JSON errors like every other answer.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json` with a JSON error body that says what was wrong, and strict about UTF-8:
/// JSON text is UTF-8 (RFC 8259 §8.1), and serde_json checks only the strings it keeps,
/// so a body with other bytes in a member nobody reads would otherwise be taken.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        if let Err(e) = std::str::from_utf8(&body) {
            return Err(ApiError::bad_request(format!(
                "malformed JSON body: not UTF-8 (byte {} is not part of a UTF-8 character; JSON text is UTF-8, RFC 8259 §8.1)",
                e.valid_up_to()
            )));
        }
        axum::Json::<T>::from_bytes(&body)
            .map(|axum::Json(v)| Json(v))
            .map_err(|r: JsonRejection| {
                ApiError::bad_request(format!("malformed JSON body: {}", r.body_text()))
            })
    }
}

/// `application/json` or an `application/*+json` type, as `axum::Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
}

fn bytes_rejection(b: BytesRejection) -> ApiError {
    if b.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is larger than this endpoint accepts (see `limits` in steward.toml)",
        )
    } else {
        ApiError::bad_request(format!("cannot read the body: {}", b.body_text()))
    }
}

/// `axum::extract::Query` with a JSON error body.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("bad query parameters: {}", e.body_text()))
            })
    }
}

/// Largest page a listing returns.
const MAX_PAGE: i64 = 1000;
const DEFAULT_PAGE: i64 = 100;

/// The page size a listing's `limit` asks for: the default when absent, refused outside
/// 1..=the largest page.
pub(crate) fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MAX_PAGE}, not {n}"
        ))),
    }
}
