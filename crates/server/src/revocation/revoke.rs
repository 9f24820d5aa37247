//! Revoking: the admin route, the path access reviews and decommissioning share, and
//! the revocation list.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use steward_model::{PlaneId, Revocation, RevocationKind, RevokedIdentity, SpiffeId};

use super::hub::catch_up;
use super::reports::statuses;
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use steward_api::{RevokeRequest, RevokeResponse};

/// `POST /admin/v1/revocations` (central admin).
pub(crate) async fn revoke(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<RevokeRequest>,
) -> Result<(StatusCode, axum::Json<RevokeResponse>), ApiError> {
    caller.require_central("revoking")?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1_000 || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "give a `reason` of 1 to 1,000 characters on one line: it goes into the evidence log",
        ));
    }
    let target = req.target.trim();
    if target.is_empty() || target.len() > 512 || target.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "`target` must be 1 to 512 characters without control characters",
        ));
    }
    if req.decommission && req.kind != RevocationKind::Identity {
        return Err(ApiError::bad_request(
            "`decommission` only applies to an identity",
        ));
    }
    let (revocation, note) = revoke_now(
        &s,
        req.kind,
        target,
        reason,
        if req.decommission {
            RevokedIdentity::Decommissioned
        } else {
            RevokedIdentity::Suspended
        },
        &caller.0,
    )
    .await?;
    let points = statuses(&s).await?;
    let live_points = points.points.iter().filter(|p| p.live).count();
    Ok((
        StatusCode::CREATED,
        axum::Json(RevokeResponse {
            revocation,
            live_points,
            note,
        }),
    ))
}

/// When a revocation of "everything issued so far" can be forgotten: every token the
/// control plane signed before now has expired by then (the longest lifetime plus skew).
pub(crate) fn revocation_until(s: &AppState) -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    now + s.tokens.config.max_ttl_secs as i64 + s.tokens.config.clock_skew_secs as i64
}

/// Revokes `target` (already checked for length and control characters), pushes it, and
/// brings this replica's engine and keys up to date. Also used by access reviews. Returns
/// the revocation and a note for the operator, if any.
pub(crate) async fn revoke_now(
    s: &AppState,
    kind: RevocationKind,
    target: &str,
    reason: &str,
    identity: RevokedIdentity,
    actor: &steward_store::Actor,
) -> Result<(Revocation, Option<String>), ApiError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let skew = s.tokens.config.clock_skew_secs as i64;
    // Every token a revocation of tokens-so-far covers has expired by then.
    let window = s.tokens.config.max_ttl_secs as i64 + skew;
    let mut note = None;
    let until = match kind {
        RevocationKind::Token => match token_expiry(s, target, now, window).await? {
            Some(exp) => Some(exp + skew),
            None => {
                // No issuance record: maybe a typo, maybe a token whose record was lost.
                // A revoked jti costs nothing, an unrevoked live one everything.
                tracing::warn!(jti = %target, "revoking a token with no issuance record, for the longest token lifetime");
                note = Some(format!(
                    "no issuance of token `{target}` is recorded in the last {window}s; it is revoked anyway, for the longest token lifetime"
                ));
                Some(now + window)
            }
        },
        RevocationKind::Identity => {
            SpiffeId::parse(target.to_owned())
                .map_err(|e| ApiError::bad_request(format!("`target`: {e}")))?;
            Some(now + window)
        }
        RevocationKind::Plane => {
            PlaneId::new(target.to_owned())
                .map_err(|e| ApiError::bad_request(format!("`target`: {e}")))?;
            Some(now + window)
        }
        RevocationKind::Issuer | RevocationKind::Key => None,
    };
    let request = steward_store::RevokeRequest {
        kind,
        target: target.to_owned(),
        reason: reason.to_owned(),
        revoked_at: now,
        until,
        identity,
    };
    let revocation = s.store.revoke(&request, actor).await?;
    tracing::info!(epoch = revocation.epoch, kind = %revocation.kind, target = %revocation.target, actor = %actor.credential_id, "revoked");
    // Push first: the streams should not wait for the engine rebuild.
    catch_up(s).await?;
    match revocation.kind {
        RevocationKind::Identity | RevocationKind::Plane => s.reload_policy().await?,
        RevocationKind::Key => {
            if let Err(e) = s.tokens.refresh(&s.store).await {
                tracing::error!(error = %e, "cannot reload the signing keys after a key revocation");
            }
        }
        RevocationKind::Token | RevocationKind::Issuer => {}
    }
    Ok((revocation, note))
}

/// When token `jti` expires, from the evidence of its issuance, or `None` when no
/// issuance within the longest lifetime is recorded. One recorded as already expired is
/// refused: nothing to revoke.
pub(super) async fn token_expiry(
    s: &AppState,
    jti: &str,
    now: i64,
    window: i64,
) -> Result<Option<i64>, ApiError> {
    // Steward issues UUIDs; anything else (a foreign jti) has no issuance record here,
    // and only a UUID may reach the store's lookup (it cannot carry `LIKE` wildcards).
    if uuid::Uuid::parse_str(jti).is_err() {
        return Ok(None);
    }
    let since = steward_model::timestamp::from_unix(now - window);
    let issued = s.store.issued_token(jti, &since).await?;
    let Some(event) = issued else {
        return Ok(None);
    };
    let exp = event
        .details
        .get("expires_at")
        .and_then(serde_json::Value::as_str)
        .and_then(steward_model::timestamp::to_unix)
        .unwrap_or(now + window);
    if exp <= now {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            format!("token `{jti}` has already expired; nothing to revoke"),
        ));
    }
    Ok(Some(exp))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// `GET /admin/v1/revocations`: the revocation order, oldest first.
pub(crate) async fn list(
    _caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<Revocation>>, ApiError> {
    let limit = crate::extract::page_size(q.limit)?;
    Ok(axum::Json(
        s.store
            .revocations_after(q.after.unwrap_or(0).max(0), limit)
            .await?,
    ))
}
