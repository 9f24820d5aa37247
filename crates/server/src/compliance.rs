//! `GET /admin/v1/compliance`: gathers the facts from the store and the posture report,
//! and has `steward_posture::compliance` judge the controls (JSON, or HTML for auditors).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use steward_api::ComplianceReport;
use steward_model::Role;
use steward_posture::compliance::{Facts, TOOL_SCAN, render_html};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComplianceQuery {
    format: Option<String>,
}

/// `GET /admin/v1/compliance?format=json|html`: central admins and auditors (it covers
/// every plane).
pub(crate) async fn compliance(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<ComplianceQuery>,
) -> Result<Response, ApiError> {
    if !matches!(caller.role(), Role::CentralAdmin | Role::Auditor) {
        return Err(ApiError::forbidden(
            "the compliance report covers every plane: it needs the central-admin or auditor role",
        ));
    }
    let html = match q.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`format` must be json or html, not `{}`",
                other.chars().take(20).collect::<String>()
            )));
        }
    };
    let report = build(&s).await?;
    if html {
        let mut response = render_html(&report).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(axum::Json(report).into_response())
}

pub(crate) async fn build(s: &AppState) -> Result<ComplianceReport, ApiError> {
    // The counts come from the evidence roll-up: bring it up to date first.
    s.store.roll_up_usage(i64::MAX).await?;
    let checkpoints = s.store.checkpoints().await?;
    let points = s.store.enforcement_points().await?;
    let facts = Facts {
        counts: s.store.counts().await?,
        kinds: s
            .store
            .evidence_kinds()
            .await?
            .into_iter()
            .map(|(k, n, last)| (k, (n, last)))
            .collect(),
        checkpoints: checkpoints.len(),
        newest_checkpoint: checkpoints.last().map(|c| c.tree_size),
        revocation_epoch: s.store.revocation_epoch().await?,
        points: points.len(),
        flagged_points: points.iter().filter(|p| p.flagged.is_some()).count(),
        campaigns: s.store.campaigns().await?.len(),
        posture: crate::posture::report(s, None, s.default_posture_params()).await?,
        policy_versions: s.store.policy_versions(1_000).await?.len(),
        egress_secrets: s.store.egress_secrets().await?.len(),
        tool_decisions: s.store.recent_tool_decisions(TOOL_SCAN).await?,
    };
    Ok(steward_posture::compliance::report(&facts))
}
