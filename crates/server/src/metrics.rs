//! The control plane's metrics: its API requests, the decisions it takes (AuthZEN), the
//! tokens it issues and refuses, and the evidence queue — one registry per server
//! ([`steward_metrics::Registry`]), served at `/metrics` on `metrics_listen`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use steward_metrics::{
    DecisionMetrics, Histogram, HttpMetrics, LayerDecisions, Registry, TokenMetrics,
    exponential_buckets,
};

/// What the control plane counts.
#[derive(Debug, Clone)]
pub struct ServerMetrics {
    pub registry: Arc<Registry>,
    pub http: HttpMetrics,
    /// AuthZEN's decisions (layer `authzen`).
    pub authzen: LayerDecisions,
    pub tokens: TokenMetrics,
    /// How long rebuilding the policy engine from the store took (each apply, each
    /// change seen from another replica).
    pub engine_rebuild_seconds: Histogram,
}

impl ServerMetrics {
    /// A fresh registry with the control plane's metric sets.
    pub fn new() -> Self {
        let registry = Registry::new();
        // 10 ms to ~160 s: a small repository takes milliseconds, a million identities
        // tens of seconds.
        let engine_rebuild_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 15));
        registry.register(
            "policy_engine_rebuild_seconds",
            "Time to rebuild the policy engine from the store",
            engine_rebuild_seconds.clone(),
        );
        Self {
            http: HttpMetrics::register(&registry),
            authzen: DecisionMetrics::register(&registry).layer("authzen"),
            tokens: TokenMetrics::register(&registry),
            engine_rebuild_seconds,
            registry,
        }
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts each request to a declared route by its template (never the path as sent)
/// and status, with its duration.
pub async fn count_request(
    State(http): State<HttpMetrics>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(
        || steward_metrics::UNMATCHED_ROUTE.to_owned(),
        |m| m.as_str().to_owned(),
    );
    let started = Instant::now();
    let response = next.run(req).await;
    http.observe(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
