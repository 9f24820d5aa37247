//! Steward's enforcement points in one process (`steward gateway`): reverse proxies in
//! front of upstream services, the decision endpoints nginx (`auth_request`) and RabbitMQ
//! (`rabbitmq_auth_backend_http`) call, and the Envoy ext_authz gRPC service. Every one of
//! them decides through the same [`steward_enforce::EnforcementPoint`] — the same bundle,
//! validator, catalog and policy — so a request gets the same answer at every layer.

mod auth_endpoints;
pub mod broker_sessions;
pub mod config;
pub mod credential;
pub mod egress;
pub mod ext_authz;
mod health;
pub mod mcp;
pub mod proxy;
mod request_headers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use steward_enforce::{
    BundleSource, ControlPlaneAuth, DecisionLog, EnforcementPoint, FeedConfig, PointIdentity,
    RevocationFeed, RevocationHook, SourceConfig,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth_endpoints::AuthEndpoints;
pub use config::GatewayConfig;

/// Why the gateway cannot start. Messages never carry the credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("configuration: `{field}`: {message}")]
    Config { field: String, message: String },
    #[error("cannot read {what}: {message}")]
    Io { what: String, message: String },
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
    /// An egress secret could not be fetched or is not current.
    #[error("egress secret `{id}`: {problem}")]
    Egress { id: String, problem: String },
    /// An AI API request body that cannot be decided.
    #[error("{0}")]
    AiBody(String),
}

/// The figures a gateway keeps elsewhere, read into its metrics at each scrape: the
/// bundle in force and how fresh it is, the revocation epoch applied, and the decision
/// records on their way to the control plane.
fn register_gauges(
    registry: &steward_metrics::Registry,
    source: &Arc<BundleSource>,
    log: &DecisionLog,
) {
    let s = source.clone();
    registry.gauge_from(
        "bundle_policy_version",
        "Policy version of the bundle in force (0: none yet)",
        move || s.status().policy_version.unwrap_or(0),
    );
    let s = source.clone();
    registry.gauge_from(
        "bundle_contact_age_seconds",
        "Seconds since the control plane last confirmed the bundle (-1: never)",
        move || {
            s.status()
                .seconds_since_contact
                .map_or(-1, |age| i64::try_from(age).unwrap_or(i64::MAX))
        },
    );
    let s = source.clone();
    registry.gauge_from(
        "bundle_stale",
        "1 while the bundle or the revocation set is older than max_staleness_secs (every request is refused)",
        move || i64::from(s.status().stale),
    );
    let s = source.clone();
    registry.gauge_from(
        "revocation_epoch",
        "Revocation epoch applied at this gateway",
        move || s.status().revocation_epoch,
    );
    let l = log.clone();
    registry.gauge_from(
        "decision_records_waiting",
        "Decision records queued for the control plane, not yet shipped",
        move || i64::try_from(l.stats().waiting).unwrap_or(i64::MAX),
    );
    let l = log.clone();
    registry.counter_from(
        "decision_records_shipped",
        "Decision records the control plane took",
        move || l.stats().shipped,
    );
    let l = log.clone();
    registry.counter_from(
        "decision_records_refused",
        "Decision records the control plane refused (they are lost: alert on any)",
        move || l.stats().refused,
    );
}

/// How long open requests may finish after a shutdown is asked for.
pub const DRAIN: Duration = Duration::from_secs(10);

/// A started gateway: where it listens, and how to stop it.
pub struct Running {
    /// Bound addresses of the `[[proxy]]` listeners, in configuration order.
    pub proxies: Vec<SocketAddr>,
    /// Bound addresses of the `[[mcp]]` points, in configuration order.
    pub mcp: Vec<SocketAddr>,
    /// Where `/metrics` is served (`[metrics]`).
    pub metrics: Option<SocketAddr>,
    pub auth: Option<SocketAddr>,
    pub ext_authz: Option<SocketAddr>,
    pub source: Arc<BundleSource>,
    pub log: DecisionLog,
    /// The revocation feed every point of this process shares.
    pub feed: Arc<RevocationFeed>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    refreshers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets open requests finish (up to `drain`), then ships the
    /// remaining decision records (up to `drain` again).
    pub async fn shutdown(self, drain: Duration) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for r in self.refreshers {
            r.abort();
        }
        let left = self.log.flush(drain).await;
        if left > 0 {
            tracing::error!(
                records = left,
                "decision records could not be shipped before exit; they are not in the evidence log"
            );
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError::Bind {
            addr,
            message: e.to_string(),
        })
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Binds every configured listener, loads the first bundle (requests are refused with 503
/// until one is in force), and starts serving.
pub async fn start(config: GatewayConfig) -> Result<Running, GatewayError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| GatewayError::Config {
            field: "control_plane".into(),
            message: e.to_string(),
        })?;
    let credential = match &config.credential {
        config::ControlPlaneCredential::Secret(s) => ControlPlaneAuth::secret(s.clone()),
        config::ControlPlaneCredential::Identity(id) => {
            ControlPlaneAuth::identity(&config.control_plane, id.clone(), http.clone())
        }
    };
    let mut refreshers = Vec::new();
    if let Some(id) = credential.spiffe_id() {
        match credential.renew().await {
            Ok(_) => tracing::info!(identity = %id, "control-plane token obtained"),
            Err(e) => {
                tracing::error!(identity = %id, error = %e, "no control-plane token yet; every request is refused until one is obtained");
            }
        }
        refreshers.extend(credential.spawn_renewer());
    }
    let source = BundleSource::new(
        SourceConfig {
            url: config.control_plane.clone(),
            credential: credential.clone(),
            point: config.name.clone(),
            refresh: config.refresh,
            max_staleness: config.max_staleness,
            anchor: config.trusted_keys.clone(),
        },
        http.clone(),
    );
    let log = DecisionLog::ship_to(
        &config.control_plane,
        credential.clone(),
        config.decision_queue,
        config.ship_interval,
        http.clone(),
    );
    let registry = steward_metrics::Registry::new();
    let point = EnforcementPoint::new(
        "gateway",
        &config.name,
        config.environment.clone(),
        source.clone(),
        log.clone(),
    )
    .with_metrics(steward_metrics::DecisionMetrics::register(&registry));
    register_gauges(&registry, &source, &log);
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut proxies = Vec::new();
    let secret_ids: Vec<String> = config
        .proxies
        .iter()
        .filter_map(|p| p.egress.as_ref().map(|e| e.secret.clone()))
        .collect();
    let secrets = (!secret_ids.is_empty()).then(|| {
        Arc::new(egress::EgressSecrets::new(
            &config.control_plane,
            credential.clone(),
            http.clone(),
            config.max_staleness,
        ))
    });
    if let Some(s) = &secrets {
        for id in &secret_ids {
            if let Err(e) = s.refresh(id).await {
                tracing::error!(error = %e, "egress secret not loaded; its proxy refuses requests until it is");
            }
        }
        refreshers.push(s.spawn_refresher(secret_ids));
    }
    for p in &config.proxies {
        let listener = bind(p.listen).await?;
        proxies.push(listener.local_addr().unwrap_or(p.listen));
        let kind = if p.egress.is_some() {
            "egress"
        } else {
            "gateway"
        };
        let proxy = Arc::new(proxy::Proxy::new(
            p.clone(),
            point.sibling(kind),
            secrets.clone(),
        )?);
        tasks.push(tokio::spawn(proxy::serve(
            listener,
            proxy,
            stopped(stop_rx.clone()),
            DRAIN,
        )));
    }
    let mut mcp_points = Vec::new();
    for m in &config.mcp {
        let listener = bind(m.listen).await?;
        mcp_points.push(listener.local_addr().unwrap_or(m.listen));
        let router = Arc::new(mcp::McpPoint::new(
            m.clone(),
            point.sibling("mcp"),
            http.clone(),
        ))
        .router();
        let shutdown = stopped(stop_rx.clone());
        let limits = m.limits;
        let tls = m.tls.as_ref().map(|t| t.server.clone());
        tasks.push(tokio::spawn(async move {
            let served = match tls {
                Some(config) => {
                    steward_listen::tls::serve_tls(listener, router, limits, config, shutdown).await
                }
                None => steward_listen::serve(listener, router, limits, shutdown).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "the MCP point stopped");
            }
        }));
    }
    let mut auth = None;
    let mut hooks: Vec<Arc<dyn RevocationHook>> = Vec::new();
    if let Some(a) = &config.auth {
        let listener = bind(a.listen).await?;
        auth = Some(listener.local_addr().unwrap_or(a.listen));
        let endpoints = Arc::new(AuthEndpoints::new(a.clone(), &point));
        if a.rabbitmq_audience.is_some() {
            hooks.push(Arc::new(broker_sessions::BrokerSessions::new(
                endpoints.clone(),
                a.rabbitmq_management.clone(),
                http.clone(),
            )));
        }
        let router = endpoints.router();
        let shutdown = stopped(stop_rx.clone());
        let limits = a.limits;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = steward_listen::serve(listener, router, limits, shutdown).await {
                tracing::error!(error = %e, "the decision endpoints stopped");
            }
        }));
    }
    let mut ext_authz = None;
    if let Some(e) = &config.ext_authz {
        let listener = bind(e.listen).await?;
        ext_authz = Some(listener.local_addr().unwrap_or(e.listen));
        let service = envoy_types::ext_authz::v3::pb::AuthorizationServer::new(
            ext_authz::ExtAuthz::new(e.audience.clone(), &point, e.client_certificate),
        );
        let shutdown = stopped(stop_rx.clone());
        // Served like every other listener (connection cap, first-byte deadline, request
        // bodies bounded), over HTTP/2 with prior knowledge as gRPC clients speak it.
        let router = tonic::service::Routes::new(service)
            .prepare()
            .into_axum_router();
        let limits = e.limits;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = steward_listen::serve(listener, router, limits, shutdown).await {
                tracing::error!(error = %e, "the ext_authz service stopped");
            }
        }));
    }
    let mut metrics = None;
    if let Some(at) = config.metrics_listen {
        let listener = bind(at).await?;
        metrics = Some(listener.local_addr().unwrap_or(at));
        let router = registry
            .clone()
            .router()
            .merge(health::routes(source.clone(), log.clone()));
        let shutdown = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            let limits = steward_listen::Limits::default();
            if let Err(e) = steward_listen::serve(listener, router, limits, shutdown).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        }));
    }
    if let Err(e) = source.refresh().await {
        tracing::error!(error = %e, "no policy bundle yet; every request is refused until one loads");
    }
    let refresher = source.spawn_refresher();
    refreshers.push(refresher);
    let feed = RevocationFeed::new(
        FeedConfig {
            url: config.control_plane.clone(),
            credential,
            points: point_identities(&config),
            report_every: config.report,
            idle_timeout: config.stream_idle,
        },
        http.clone(),
        source.clone(),
        hooks,
    );
    let (stream, reports) = feed.spawn();
    refreshers.extend([stream, reports]);
    tracing::info!(
        name = %config.name,
        environment = %config.environment,
        proxies = ?proxies,
        auth = ?auth,
        ext_authz = ?ext_authz,
        "gateway started"
    );
    Ok(Running {
        proxies,
        metrics,
        mcp: mcp_points,
        auth,
        ext_authz,
        source,
        log,
        feed,
        stop,
        tasks,
        refreshers,
    })
}

/// The enforcement points this configuration serves, as registered with the control
/// plane: one per protocol kind, `<kind>:<name>`.
fn point_identities(config: &GatewayConfig) -> Vec<PointIdentity> {
    let mut kinds = Vec::new();
    if config.proxies.iter().any(|p| p.egress.is_none()) {
        kinds.push("gateway");
    }
    if config.proxies.iter().any(|p| p.egress.is_some()) {
        kinds.push("egress");
    }
    if let Some(a) = &config.auth {
        if a.nginx_audience.is_some() {
            kinds.push("nginx");
        }
        if a.rabbitmq_audience.is_some() {
            kinds.push("rabbitmq");
        }
    }
    if config.ext_authz.is_some() {
        kinds.push("ext_authz");
    }
    if !config.mcp.is_empty() {
        kinds.push("mcp");
    }
    kinds
        .into_iter()
        .map(|kind| PointIdentity {
            id: format!("{kind}:{}", config.name),
            kind: kind.to_owned(),
            name: config.name.clone(),
            environment: Some(config.environment.clone()),
        })
        .collect()
}
