//! The push channel points follow (server-sent events).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;

use super::hub::Hub;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use crate::point_auth::BundleCaller;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    after: Option<i64>,
}

/// `GET /enforcement/v1/revocations`: the push channel (server-sent events). Resumes
/// after `Last-Event-ID` or `?after=`; a new point (0) or one ahead of this control plane
/// gets a `snapshot` of the revocations in force.
pub(crate) async fn stream(
    BundleCaller(caller): BundleCaller,
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let named = headers
        .get("steward-enforcement-point")
        .and_then(|v| v.to_str().ok());
    caller
        .require_point(
            &s,
            named,
            steward_api::RouteId::RevocationStream.route().path,
        )
        .await?;
    let actor = caller.actor;
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ApiError::bad_request("`Last-Event-ID` must be a revocation epoch (a number)")
            })
        })
        .transpose()?;
    let after = from_header.or(q.after).unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            "`after` must be an epoch (0 or more)",
        ));
    }
    let point = header_text(&headers, "steward-enforcement-point");
    let hub = s.hub.clone();
    let latest = hub.latest();
    let mut pending = VecDeque::new();
    let sent = if after == 0 || after > latest {
        if after > latest {
            tracing::warn!(point = %point, after, latest, "a point resumed from an epoch this control plane never issued; sending it a snapshot");
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let snapshot = serde_json::json!({"epoch": latest, "revocations": hub.in_force(now)});
        pending.push_back(
            SseEvent::default()
                .event("snapshot")
                .id(latest.to_string())
                .data(snapshot.to_string()),
        );
        latest
    } else {
        after
    };
    tracing::info!(point = %point, credential = %actor.name, after, latest, "revocation stream opened");
    let mut heartbeat = tokio::time::interval(hub.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    let state = Streaming {
        latest: hub.latest.subscribe(),
        closing: hub.closing.subscribe(),
        hub,
        sent,
        pending,
        heartbeat,
    };
    let events = futures_util::stream::unfold(state, |mut st| async move {
        st.next().await.map(|e| (Ok::<_, Infallible>(e), st))
    });
    let mut response = Sse::new(events).into_response();
    let h = response.headers_mut();
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    // Proxies such as nginx must not buffer the stream.
    h.insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

pub(super) struct Streaming {
    hub: Arc<Hub>,
    latest: watch::Receiver<i64>,
    closing: watch::Receiver<bool>,
    sent: i64,
    pending: VecDeque<SseEvent>,
    heartbeat: tokio::time::Interval,
}

impl Streaming {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if *self.closing.borrow() {
                return None;
            }
            let latest = *self.latest.borrow_and_update();
            if latest > self.sent {
                for r in self.hub.entries(self.sent, 1_000) {
                    self.sent = r.epoch;
                    let data = serde_json::to_string(&r).unwrap_or_default();
                    self.pending.push_back(
                        SseEvent::default()
                            .event("revocation")
                            .id(r.epoch.to_string())
                            .data(data),
                    );
                }
                continue;
            }
            tokio::select! {
                changed = self.latest.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.closing.changed() => return None,
                _ = self.heartbeat.tick() => {
                    self.pending.push_back(
                        SseEvent::default()
                            .event("heartbeat")
                            .data(serde_json::json!({"epoch": self.sent}).to_string()),
                    );
                }
            }
        }
    }
}

pub(super) fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .chars()
        .take(128)
        .collect()
}
