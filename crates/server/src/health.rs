//! Readiness (`GET /readyz`): whether this control plane can do its work now, for an
//! orchestrator deciding where to send requests. Liveness (`/livez`) only says the
//! process serves.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::AppState;

/// How long the store has to answer the readiness query.
const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// 200 when every check passes, else 503; either way each check's result. The endpoint
/// needs no credential, so a failed check says what failed and points at the log, where
/// the error itself is written: a store or policy error can name hosts or policy text.
pub async fn readyz(State(s): State<AppState>) -> Response {
    let mut checks = Map::new();
    let mut ready = true;
    let mut check = |name: &str, result: Result<(), String>| {
        let value = match result {
            Ok(()) => json!("ok"),
            Err(why) => {
                ready = false;
                json!(why)
            }
        };
        checks.insert(name.into(), value);
    };
    let store = match tokio::time::timeout(STORE_DEADLINE, s.store.latest_change_seq()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store does not answer");
            Err("the store does not answer (the server's log says why)".to_owned())
        }
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            STORE_DEADLINE.as_secs()
        )),
    };
    check("store", store);
    let engine = s.engine().map(drop).map_err(|why| {
        tracing::warn!(error = %why, "readiness: no policy engine");
        "not loaded: every decision is denied (the server's log says why)".to_owned()
    });
    check("policy_engine", engine);
    let keys = s.tokens.ring().filter(|ring| !ring.kids().is_empty());
    check(
        "signing_keys",
        keys.map(drop)
            .ok_or_else(|| "no signing key is loaded".to_owned()),
    );
    check(
        "evidence_writer",
        if s.evidence.running() {
            Ok(())
        } else {
            Err("the evidence writer stopped: restart the server".into())
        },
    );
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"ready": ready, "checks": Value::Object(checks)})),
    )
        .into_response()
}
