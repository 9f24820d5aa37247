//! Egress secrets: third-party API keys kept sealed in the control plane and
//! released only to enforcement points, which inject them into egress requests so the
//! workloads behind never hold them.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use steward_api::{EgressSecret, ReleasedSecret, SetEgressSecret};

use crate::AppState;
use crate::auth::{Caller, Ingest};
use crate::error::ApiError;
use crate::extract::Json;

/// Largest egress secret accepted.
pub const MAX_EGRESS_SECRET_BYTES: usize = 8 * 1024;

fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "an egress secret id is 1-64 characters of a-z, 0-9, `-`, `_` and `.`",
        ))
    }
}

fn label(id: &str) -> String {
    format!("egress:{id}")
}

pub(crate) async fn set(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(req): Json<SetEgressSecret>,
) -> Result<(StatusCode, axum::Json<EgressSecret>), ApiError> {
    caller.require_central("setting an egress secret")?;
    check_id(&id)?;
    if req.value.is_empty() || req.value.len() > MAX_EGRESS_SECRET_BYTES {
        return Err(ApiError::bad_request(format!(
            "`value` must be 1-{MAX_EGRESS_SECRET_BYTES} bytes"
        )));
    }
    if req.value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "`value` contains control characters (it is injected into an HTTP header)",
        ));
    }
    let sealed = s
        .tokens
        .seal(&label(&id), req.value.as_bytes())
        .map_err(|_| ApiError::internal())?;
    s.store
        .set_egress_secret(&id, &sealed, req.description.trim(), &caller.0)
        .await?;
    let row = s
        .store
        .egress_secret(&id)
        .await?
        .ok_or_else(ApiError::internal)?;
    tracing::info!(id = %id, actor = %caller.0.credential_id, "egress secret set");
    Ok((StatusCode::OK, axum::Json(row.public())))
}

pub(crate) async fn list(
    _caller: Caller,
    State(s): State<AppState>,
) -> Result<axum::Json<Vec<EgressSecret>>, ApiError> {
    Ok(axum::Json(
        s.store
            .egress_secrets()
            .await?
            .iter()
            .map(steward_store::EgressSecretRow::public)
            .collect(),
    ))
}

pub(crate) async fn delete(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_central("deleting an egress secret")?;
    if s.store.delete_egress_secret(&id, &caller.0).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "egress secret `{id}` does not exist"
        )))
    }
}

/// `GET /enforcement/v1/egress-secrets/{id}`: the value, for an enforcement point.
pub(crate) async fn release(
    Ingest(actor): Ingest,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = s.store.egress_secret(&id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "egress secret `{id}` does not exist; set it with `steward egress-secret set {id}`"
        ))
    })?;
    let value = s.tokens.open(&label(&id), &row.sealed).map_err(|e| {
        tracing::error!(id = %id, error = %e, "an egress secret does not open with the key-encryption key");
        ApiError::internal()
    })?;
    let value = String::from_utf8(value).map_err(|_| ApiError::internal())?;
    // No secret leaves without its evidence: the release is chained (durably) first.
    let mut event = steward_audit::Event::new(
        steward_audit::EventKind::AdminAction,
        uuid::Uuid::now_v7().to_string(),
        steward_model::timestamp::now(),
    );
    event.action = Some("egress_secret.release".into());
    event.principal = Some(actor.label());
    event.actor_chain = vec![actor.label()];
    event.details = serde_json::json!({
        "target": id,
        "role": actor.role.to_string(),
        "secret_set_at": row.created_at,
    });
    s.evidence.record(vec![event]).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "evidence_unavailable",
            format!("the release cannot be recorded ({e}); retry later"),
        )
    })?;
    tracing::info!(id = %id, to = %actor.name, "egress secret released to an enforcement point");
    let mut response = axum::Json(ReleasedSecret {
        id,
        value,
        created_at: row.created_at,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
