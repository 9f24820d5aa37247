//! Steward's control plane: the admin API over the store.
//!
//! Every route except `/healthz` requires an admin credential; every change is made
//! through the store, which writes the admin change log in the same transaction.

mod audit_routes;
mod auth;
pub mod authzen;
mod compliance;
pub mod config;
mod console;
mod egress;
mod enforcement;
mod error;
pub mod evidence;
mod extract;
mod health;
mod local;
pub mod metrics;
mod point_auth;
pub mod policy;
mod posture;
pub mod replay;
mod reviews;
mod revocation;
mod routes;
pub mod tls;
pub mod tokens;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use auth::{bootstrap, recover_admin};
pub use config::{ConfigError, FileConfig, Overrides, ServerConfig};
pub use error::ApiError;
pub use local::LocalServer;
use steward_model::TrustDomain;
use steward_store::Store;
pub use tokens::StartError;

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Group-commit writer for evidence events.
    pub evidence: evidence::EvidenceWriter,
    policy: Arc<policy::PolicySlot>,
    credentials: Arc<auth::CredentialCache>,
    /// Signing keys, clients and the replay cache of the token endpoint.
    pub tokens: Arc<tokens::TokenService>,
    /// Revocations in epoch order, their streams and the points' reports.
    hub: Arc<revocation::Hub>,
    /// The last posture report, reused for a minute while nothing changes.
    posture: Arc<posture::PostureCache>,
    /// What `/metrics` serves.
    pub metrics: metrics::ServerMetrics,
    inner: Arc<Settings>,
}

struct Settings {
    trust_domain: TrustDomain,
    ingest_max_skew: std::time::Duration,
    /// Ingested records refused since start (counted, never chained).
    ingest_refused: std::sync::atomic::AtomicU64,
    max_body_bytes: usize,
    max_apply_bytes: usize,
    listen_limits: steward_listen::Limits,
    /// Posture's default observation window (`[posture] observation_days`).
    posture_observation_days: u64,
}

impl AppState {
    /// Builds the state, starts the evidence writer and checkpoint tasks (they stop with
    /// the runtime) and loads the policy engine. A policy that fails to load leaves every
    /// decision denied, with the reason logged; the admin API still serves so it can be
    /// fixed.
    ///
    /// Fails only when the token service cannot open its keys (a missing or wrong
    /// key-encryption key): serving without them would hide the misconfiguration.
    pub async fn new(store: Store, config: &ServerConfig) -> Result<Self, tokens::StartError> {
        let tokens = Arc::new(tokens::TokenService::start(&store, config.tokens.clone()).await?);
        let _refresh = tokens::spawn_refresh(tokens.clone(), store.clone());
        let state = Self::without_policy(store, config, tokens);
        // Revocations already made are in force before the first request.
        if let Err(e) = revocation::catch_up(&state).await {
            tracing::error!(error = %e, "the revocations could not be loaded; they are retried every second");
        }
        revocation::spawn(state.clone());
        let _expiries = evidence::spawn_exception_expiry(state.clone());
        if let Err(e) = state.reload_policy().await {
            tracing::error!(error = %e.message, "the policy engine could not be loaded; every decision is denied");
        }
        Ok(state)
    }

    fn without_policy(
        store: Store,
        config: &ServerConfig,
        tokens: Arc<tokens::TokenService>,
    ) -> Self {
        let (evidence, _writer) = evidence::EvidenceWriter::spawn(
            store.clone(),
            config.evidence_queue_capacity,
            config.evidence_overflow,
        );
        let _checkpoints =
            evidence::spawn_checkpoints(store.clone(), tokens.clone(), config.checkpoint_interval);
        let _usage = evidence::spawn_usage_roll_up(store.clone());
        if let Some(keep) = config.evidence_retention {
            let _retention = evidence::spawn_retention(store.clone(), tokens.clone(), keep);
        }
        let state = Self {
            store,
            evidence,
            policy: Arc::new(policy::PolicySlot::new(tokens.derived())),
            credentials: Arc::new(auth::CredentialCache::default()),
            tokens,
            hub: Arc::new(revocation::Hub::new(
                config.heartbeat,
                config.point_liveness,
            )),
            posture: Arc::default(),
            metrics: metrics::ServerMetrics::new(),
            inner: Arc::new(Settings {
                trust_domain: config.trust_domain.clone(),
                ingest_max_skew: config.ingest_max_skew,
                ingest_refused: std::sync::atomic::AtomicU64::new(0),
                max_body_bytes: config.max_body_bytes,
                max_apply_bytes: config.max_apply_bytes,
                listen_limits: config.listen_limits,
                posture_observation_days: config.posture_observation_days,
            }),
        };
        state.register_gauges();
        state
    }

    /// The figures kept elsewhere, read into the metrics at each scrape.
    fn register_gauges(&self) {
        let registry = &self.metrics.registry;
        let evidence = self.evidence.clone();
        registry.counter_from(
            "evidence_records_lost",
            "Evidence records dropped by the overflow policy (alert on any)",
            move || evidence.lost(),
        );
        let evidence = self.evidence.clone();
        registry.gauge_from(
            "evidence_queue_depth",
            "Evidence submissions waiting for the writer",
            move || i64::try_from(evidence.queued()).unwrap_or(i64::MAX),
        );
        let hub = self.hub.clone();
        registry.gauge_from(
            "revocation_epoch",
            "The newest revocation epoch this control plane knows",
            move || hub.latest(),
        );
        let hub = self.hub.clone();
        registry.gauge_from(
            "revocation_points_behind",
            "Enforcement points whose last acknowledged revocation epoch is older than the newest",
            move || i64::try_from(hub.acknowledgement_lag().0).unwrap_or(i64::MAX),
        );
        let hub = self.hub.clone();
        registry.gauge_from(
            "revocation_max_epochs_behind",
            "Revocation epochs the furthest-behind enforcement point has not acknowledged",
            move || hub.acknowledgement_lag().1,
        );
        let tokens = self.tokens.clone();
        registry.gauge_from(
            "signing_key_age_seconds",
            "Age of the token and bundle signing key in force",
            move || {
                tokens
                    .ring()
                    .map_or(0, |r| tokens::now_unix() - r.signer_made_at)
            },
        );
        let period = self.tokens.rotation_period_secs();
        registry.gauge_from(
            "signing_key_rotation_period_seconds",
            "tokens.rotation_period_secs (0: rotated only on demand)",
            move || period.map_or(0, |p| i64::try_from(p).unwrap_or(i64::MAX)),
        );
        let inner = self.inner.clone();
        registry.counter_from(
            "decision_records_refused",
            "Decision records from enforcement points refused at ingestion (never chained)",
            move || {
                inner
                    .ingest_refused
                    .load(std::sync::atomic::Ordering::Relaxed)
            },
        );
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.inner.trust_domain
    }

    /// Ends the open revocation streams (for servers not started through [`serve`]).
    pub fn close_streams(&self) {
        self.hub.close();
    }
}

/// The admin API router, each request counted in the server's metrics.
pub fn router(state: AppState) -> Router {
    let http = state.metrics.http.clone();
    routes::router(state.inner.max_body_bytes, state.inner.max_apply_bytes)
        .route_layer(axum::middleware::from_fn_with_state(
            http,
            metrics::count_request,
        ))
        .with_state(state)
}

/// Serves `/metrics` (Prometheus) on `listener` for as long as the process runs, with
/// the same connection limits as the API.
pub async fn serve_metrics(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let limits = state.inner.listen_limits;
    let router = state.metrics.registry.clone().router();
    steward_listen::serve(listener, router, limits, std::future::pending()).await
}

/// Opens the store the configuration names.
pub async fn open_store(config: &ServerConfig) -> Result<Store, steward_store::StoreError> {
    match &config.database_url {
        Some(url) => Store::connect(url).await,
        None => Store::open_data_dir(&config.data_dir).await,
    }
}

/// Serves the admin API on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let limits = state.inner.listen_limits;
    // Connections are capped, heads and bodies have deadlines, sockets send at once (no
    // Nagle: revocation streams write small chunks that must not wait for the peer's
    // delayed ACK): see `steward_listen`.
    steward_listen::serve(listener, router(state), limits, async move {
        shutdown.await;
        // Revocation streams never end on their own; end them so the drain can finish.
        hub.close();
    })
    .await
}
