//! What the control plane serves its enforcement points: the signed policy
//! bundle (`GET /enforcement/v1/bundle`) and the intake of their decision records
//! (`POST /enforcement/v1/decisions`).
//!
//! The bundle is built from the store on demand and cached until the registry, the policy
//! or the published keys change; `ETag`/`If-None-Match` let a point confirm it is current
//! without downloading it again (the confirmation is what keeps it from going stale).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use steward_enforce::{BUNDLE_FORMAT, Bundle};

use crate::AppState;
use crate::error::ApiError;
use crate::point_auth::BundleCaller;

/// A signed bundle and the state it was built from.
pub(crate) struct SignedBundle {
    generation: u64,
    key_sequence: i64,
    etag: String,
    text: Arc<str>,
}

/// The cache of the signed bundle; `generation` grows with every registry or policy change.
#[derive(Default)]
pub(crate) struct BundleCache {
    pub(crate) generation: std::sync::atomic::AtomicU64,
    built: tokio::sync::Mutex<Option<Arc<SignedBundle>>>,
}

async fn signed(s: &AppState) -> Result<Arc<SignedBundle>, ApiError> {
    let ring = s.tokens.ring().ok_or_else(ApiError::internal)?;
    let cache = &s.policy.bundles;
    let mut built = cache.built.lock().await;
    let generation = cache.generation.load(Ordering::SeqCst);
    if let Some(b) = built.as_ref()
        && b.generation == generation
        && b.key_sequence == ring.sequence
    {
        return Ok(b.clone());
    }
    let state = s.store.load_state().await?;
    let (version, policy) = match s.store.policy_bundle(None).await? {
        Some((v, b)) => (v.version, b),
        None => (0, Default::default()),
    };
    let mut bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        policy_version: version,
        // Set once the content is known to have changed (below).
        issued_at: 0,
        issuer: s.tokens.config.issuer.clone(),
        keys: ring.public_keys().map(|k| k.jwk().clone()).collect(),
        clock_skew_secs: s.tokens.config.clock_skew_secs as i64,
        root_settings: state.root_settings,
        planes: state.planes,
        capabilities: state.capabilities,
        identities: state
            .identities
            .into_values()
            .map(|stored| stored.identity)
            .collect(),
        policy,
    };
    // The ETag names the content, not the build: a reload that changed nothing (another
    // replica's change seen twice, a lifecycle step that touched no field a point reads)
    // keeps the signed text, so points get 304 instead of fetching it again.
    let content = serde_json::to_vec(&bundle).map_err(|_| ApiError::internal())?;
    let digest = Sha256::digest(&content);
    let etag = format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or_default()));
    if let Some(b) = built.as_ref()
        && b.etag == etag
        && b.key_sequence == ring.sequence
    {
        let same = Arc::new(SignedBundle {
            generation,
            key_sequence: b.key_sequence,
            etag,
            text: b.text.clone(),
        });
        *built = Some(same.clone());
        return Ok(same);
    }
    bundle.issued_at = time::OffsetDateTime::now_utc().unix_timestamp();
    let ring2 = ring.clone();
    let text = tokio::task::spawn_blocking(move || bundle.sign(ring2.bundle_signer()))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot sign the policy bundle");
            ApiError::internal()
        })?;
    let signed = Arc::new(SignedBundle {
        generation,
        key_sequence: ring.sequence,
        etag,
        text: text.into(),
    });
    *built = Some(signed.clone());
    Ok(signed)
}

/// `GET /enforcement/v1/bundle`: the signed bundle (`application/jwt`), or 304 when the
/// point's `If-None-Match` names the current one.
pub(crate) async fn bundle(
    BundleCaller(caller): BundleCaller,
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let named = headers
        .get("steward-enforcement-point")
        .and_then(|v| v.to_str().ok());
    caller
        .require_point(&s, named, steward_api::RouteId::Bundle.route().path)
        .await?;
    let actor = caller.actor;
    let signed = signed(&s).await?;
    let point = named.unwrap_or("-").chars().take(128).collect::<String>();
    let etag = HeaderValue::from_str(&signed.etag).map_err(|_| ApiError::internal())?;
    let current = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == signed.etag));
    tracing::debug!(point = %point, credential = %actor.name, current, "bundle requested");
    if current {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (header::ETAG, etag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwt"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        signed.text.to_string(),
    )
        .into_response())
}
