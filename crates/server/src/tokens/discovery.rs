//! Discovery documents (OpenID Connect Discovery 1.0, RFC 8414), the JWKS, the SPIFFE
//! trust bundle, and the admin routes that list and rotate the signing keys.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use steward_api::{KeyRotated, KeyState, KeysList, RouteId, ServerMetadata, SigningKeyInfo};

use super::{KeyRing, now_unix};
use crate::auth::Caller;
use crate::{ApiError, AppState};

/// How long relying parties may cache the JWKS and the bundle. Short: a rotated-in key
/// signs at once, and validators that refetch on an unknown `kid` are not universal.
const KEYS_MAX_AGE_SECS: u64 = 60;

fn metadata(s: &AppState) -> ServerMetadata {
    let iss = &s.tokens.config.issuer;
    let strings = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    ServerMetadata {
        issuer: iss.clone(),
        jwks_uri: format!("{iss}{}", RouteId::Jwks.route().path),
        token_endpoint: s.tokens.token_endpoint(),
        grant_types_supported: strings(&[
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ]),
        token_endpoint_auth_methods_supported: strings(&[
            "private_key_jwt",
            "self_signed_tls_client_auth",
            "client_secret_basic",
            "client_secret_post",
        ]),
        tls_client_certificate_bound_access_tokens: true,
        token_endpoint_auth_signing_alg_values_supported: strings(&[steward_token::ALG]),
        dpop_signing_alg_values_supported: strings(&[steward_token::ALG]),
        response_types_supported: strings(&["id_token"]),
        subject_types_supported: strings(&["public"]),
        id_token_signing_alg_values_supported: strings(&[steward_token::ALG]),
        claims_supported: strings(&[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "environment",
            "plane",
            "scope",
            "act",
            "cnf",
        ]),
        spiffe_trust_domain: s.trust_domain().as_str().to_owned(),
        spiffe_bundle_endpoint: format!("{iss}{}", RouteId::SpiffeBundle.route().path),
        introspection_endpoint: Some(s.tokens.introspection_endpoint()),
        // The client authentication the token endpoint takes. Admin credentials work
        // too, but the metadata registry has no name for them (docs/tokens.md says so).
        introspection_endpoint_auth_methods_supported: strings(&[
            "private_key_jwt",
            "self_signed_tls_client_auth",
            "client_secret_basic",
            "client_secret_post",
        ]),
    }
}

fn cached(body: impl serde::Serialize, max_age: u64) -> Response {
    let mut r = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

/// `GET /.well-known/openid-configuration`
pub async fn openid_configuration(State(s): State<AppState>) -> Response {
    cached(metadata(&s), 3600)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414): the same metadata.
pub async fn oauth_metadata(State(s): State<AppState>) -> Response {
    cached(metadata(&s), 3600)
}

fn ring(s: &AppState) -> Result<std::sync::Arc<KeyRing>, ApiError> {
    s.tokens.ring().ok_or_else(ApiError::internal)
}

/// `GET /oauth2/jwks`: every key that may have signed a live token.
pub async fn jwks(State(s): State<AppState>) -> Result<Response, ApiError> {
    let ring = ring(&s)?;
    Ok(cached(
        steward_token::jwks(ring.public_keys()),
        KEYS_MAX_AGE_SECS,
    ))
}

/// `GET /.well-known/spiffe-bundle`: the trust domain's bundle (SPIFFE Trust Domain and
/// Bundle spec): the same keys marked `use: jwt-svid`, a sequence number that grows with
/// every change, and a refresh hint.
pub async fn spiffe_bundle(State(s): State<AppState>) -> Result<Response, ApiError> {
    let ring = ring(&s)?;
    let keys: Vec<Value> = ring
        .public_keys()
        .map(|k| {
            let mut jwk = k.jwk().clone();
            jwk.use_ = Some("jwt-svid".into());
            jwk.alg = None;
            json!(jwk)
        })
        .collect();
    Ok(cached(
        json!({
            "keys": keys,
            "spiffe_sequence": ring.sequence,
            "spiffe_refresh_hint": KEYS_MAX_AGE_SECS,
        }),
        KEYS_MAX_AGE_SECS,
    ))
}

/// `GET /admin/v1/keys`: every signing key ever made, with its state. Public halves only.
pub async fn keys_list(
    State(s): State<AppState>,
    _caller: Caller,
) -> Result<axum::Json<KeysList>, ApiError> {
    let now = now_unix();
    let rows = s.store.signing_keys().await?;
    let keys = rows
        .iter()
        .map(|r| {
            let until = r
                .publish_until
                .as_deref()
                .and_then(steward_model::timestamp::to_unix);
            let state = match (&r.retired_at, until) {
                (None, _) => KeyState::Signing,
                (Some(_), Some(u)) if u > now => KeyState::Verifying,
                _ => KeyState::Retired,
            };
            SigningKeyInfo {
                kid: r.kid.clone(),
                alg: r.alg.clone(),
                state,
                created_at: r.created_at.clone(),
                retired_at: r.retired_at.clone(),
                verifies_until: r.publish_until.clone(),
            }
        })
        .collect();
    Ok(axum::Json(KeysList { keys }))
}

/// `POST /admin/v1/keys/rotate` (central admins): a new key signs from now on; the old one
/// verifies until the overlap window ends.
pub async fn keys_rotate(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<KeyRotated>, ApiError> {
    caller.require_central("rotating the signing key")?;
    let (kid, previous, until) = s.tokens.rotate(&s.store, &caller.0).await.map_err(|e| {
        tracing::error!(error = %e, "key rotation failed");
        ApiError::internal()
    })?;
    tracing::info!(kid = %kid, previous = ?previous, "signing key rotated");
    Ok(axum::Json(KeyRotated {
        previous_verifies_until: previous.as_ref().map(|_| until),
        kid,
        previous,
        checked_at: steward_model::timestamp::from_unix(now_unix()),
    }))
}
