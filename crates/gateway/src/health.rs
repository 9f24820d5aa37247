//! `/livez` and `/readyz` for orchestrators, served on the `[metrics]` and `[auth]`
//! listeners (never on a proxy's, where they would shadow the upstream's paths).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use steward_enforce::{BundleSource, DecisionLog};

/// The probes: live while the process serves; ready while a fresh bundle is in force
/// and the control plane takes the decision records (otherwise every request is refused,
/// so traffic is better sent to another gateway).
pub fn routes(source: Arc<BundleSource>, log: DecisionLog) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let (source, log) = (source.clone(), log.clone());
                async move { readiness(&source, &log) }
            }),
        )
}

fn readiness(source: &BundleSource, log: &DecisionLog) -> Response {
    let bundle = source.current().map(drop).map_err(|e| e.to_string());
    let records = match log.refusing() {
        None => Ok(()),
        Some(why) => Err(format!("the control plane refuses decision records: {why}")),
    };
    let ready = bundle.is_ok() && records.is_ok();
    let shown = |r: Result<(), String>| r.map_or_else(|why| json!(why), |()| json!("ok"));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "ready": ready,
            "checks": {"bundle": shown(bundle), "decision_records": shown(records)},
        })),
    )
        .into_response()
}
