//! Prometheus metrics for the control plane and the gateway.
//!
//! Each component owns a [`Registry`] rather than sharing a process-wide one, so two
//! components in one process (the demo, the tests) count apart, and a test can read the
//! exact figures its own requests produced. The metric sets used by more than one
//! component live here, so each metric has one name and one meaning wherever it is
//! recorded: [`DecisionMetrics`] at every enforcement layer and at AuthZEN,
//! [`HttpMetrics`] for an HTTP API.
//!
//! Labels are bounded by construction: a layer, an outcome, a route template, a status
//! code, a grant type, an error code. Never an identity, a token id, a path as sent or any
//! other value a caller chooses, so a caller cannot grow the series count.

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Histograms: the shared sets below use them, and a component registers its own.
pub use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// The OpenMetrics text format's media type, which Prometheus asks for and parses.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Code run just before each scrape, to read a figure that is kept elsewhere (a queue's
/// depth, the bundle in force) into its gauge.
type Refresh = Box<dyn Fn() + Send + Sync>;

/// One component's metrics (every name gets the `steward_` prefix), and what refreshes
/// its gauges before a scrape.
pub struct Registry {
    inner: Mutex<prometheus_client::registry::Registry>,
    refresh: Mutex<Vec<Refresh>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry whose metrics are all named `steward_…`.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(prometheus_client::registry::Registry::with_prefix(
                "steward",
            )),
            refresh: Mutex::new(Vec::new()),
        })
    }

    /// Registers `metric` as `steward_<name>` (a counter's `_total` is added when
    /// encoded). `help` says what it counts, in the unit its name ends with.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.inner.lock().register(name, help, metric);
    }

    /// A gauge registered as `steward_<name>`, set by `read` before each scrape.
    pub fn gauge_from(
        &self,
        name: &str,
        help: &str,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) {
        let gauge = Gauge::<i64>::default();
        self.register(name, help, gauge.clone());
        self.refresh.lock().push(Box::new(move || {
            gauge.set(read());
        }));
    }

    /// A counter registered as `steward_<name>_total`, brought up to `read` (a count kept
    /// elsewhere, that only grows) before each scrape.
    pub fn counter_from(
        &self,
        name: &str,
        help: &str,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        let counter = Counter::<u64>::default();
        self.register(name, help, counter.clone());
        self.refresh.lock().push(Box::new(move || {
            let now = read();
            let was = counter.get();
            if now > was {
                counter.inc_by(now - was);
            }
        }));
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        for refresh in self.refresh.lock().iter() {
            refresh();
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.lock());
        out
    }

    /// `GET /metrics`, for Prometheus to scrape.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let registry = self.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
                        registry.render(),
                    )
                }
            }),
        )
    }
}

/// The labels of a decision: the layer that took it (`proxy`, `nginx`, `ext_authz`,
/// `rabbitmq`, `mcp`, `authzen`, …) and its outcome (`allow`, `deny`, `unauthenticated`,
/// `malformed`, `unavailable`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub layer: String,
    pub outcome: &'static str,
}

/// The layer alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabels {
    pub layer: String,
}

/// Access decisions, wherever they are taken: how many by layer and outcome, and how
/// long each took from the request's arrival to its verdict.
#[derive(Clone, Debug)]
pub struct DecisionMetrics {
    decisions: Family<DecisionLabels, Counter>,
    seconds: Family<LayerLabels, Histogram>,
}

impl DecisionMetrics {
    /// Registers the decision metrics in `registry`.
    pub fn register(registry: &Registry) -> Self {
        let m = Self {
            decisions: Family::default(),
            // 50 µs to ~0.8 s.
            seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 15))
            }),
        };
        registry.register(
            "decisions",
            "Access decisions taken, by enforcement layer and outcome",
            m.decisions.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time from a request's arrival to its decision, by enforcement layer",
            m.seconds.clone(),
        );
        m
    }

    /// The series of one layer, made now with every outcome at zero: counting through
    /// them on the request path takes no lock and allocates nothing, and a rate over an
    /// outcome that has not happened yet reads 0 rather than no data.
    pub fn layer(&self, layer: &str) -> LayerDecisions {
        let counts = OUTCOMES.map(|outcome| {
            self.decisions
                .get_or_create(&DecisionLabels {
                    layer: layer.to_owned(),
                    outcome,
                })
                .clone()
        });
        let seconds = self
            .seconds
            .get_or_create(&LayerLabels {
                layer: layer.to_owned(),
            })
            .clone();
        LayerDecisions { counts, seconds }
    }
}

/// Every decision outcome, as labels.
pub const OUTCOMES: [&str; 5] = [
    "allow",
    "deny",
    "unauthenticated",
    "malformed",
    "unavailable",
];

/// One layer's decision series ([`DecisionMetrics::layer`]).
#[derive(Clone, Debug)]
pub struct LayerDecisions {
    counts: [Counter; 5],
    seconds: Histogram,
}

impl LayerDecisions {
    /// Counts one decision with `outcome` (one of [`OUTCOMES`]) taken in `seconds`.
    pub fn observe(&self, outcome: &str, seconds: f64) {
        let at = OUTCOMES.iter().position(|o| *o == outcome);
        if let Some(count) = at.and_then(|i| self.counts.get(i)) {
            count.inc();
        }
        self.seconds.observe(seconds);
    }
}

/// The labels of an HTTP request: the route as declared (`/v1/identities/{id}`, never
/// the path as sent) and the status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabels {
    pub route: String,
    pub status: u16,
}

/// The route alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Requests to an HTTP API: how many by route and status, and how long each took.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RouteStatusLabels, Counter>,
    seconds: Family<RouteLabels, Histogram>,
}

/// The route label of a request that matched no declared route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

impl HttpMetrics {
    /// Registers the HTTP metrics in `registry`.
    pub fn register(registry: &Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            // 0.5 ms to ~8 s.
            seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_5, 2.0, 15))
            }),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            m.seconds.clone(),
        );
        m
    }

    /// Counts one request to `route` (a declared template, or [`UNMATCHED_ROUTE`])
    /// answered with `status` in `seconds`.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RouteStatusLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
        self.seconds
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }
}

/// The labels of a token request: its grant type (as Steward names the grants it
/// serves, `other` for anything else) and, for a refusal, the OAuth error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant: &'static str,
}

/// A refused token request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantErrorLabels {
    pub grant: &'static str,
    pub error: &'static str,
}

/// Token issuance: tokens issued and requests refused, by grant (and error).
#[derive(Clone, Debug)]
pub struct TokenMetrics {
    issued: Family<GrantLabels, Counter>,
    refused: Family<GrantErrorLabels, Counter>,
}

impl TokenMetrics {
    /// Registers the token metrics in `registry`.
    pub fn register(registry: &Registry) -> Self {
        let m = Self {
            issued: Family::default(),
            refused: Family::default(),
        };
        registry.register(
            "tokens_issued",
            "Access tokens issued, by grant type",
            m.issued.clone(),
        );
        registry.register(
            "token_refusals",
            "Token requests refused, by grant type and OAuth error code",
            m.refused.clone(),
        );
        m
    }

    /// Counts a token issued under `grant`.
    pub fn issued(&self, grant: &'static str) {
        self.issued.get_or_create(&GrantLabels { grant }).inc();
    }

    /// Counts a token request under `grant` refused with `error`.
    pub fn refused(&self, grant: &'static str, error: &'static str) {
        self.refused
            .get_or_create(&GrantErrorLabels { grant, error })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn registries_count_apart_and_render_openmetrics() {
        let (a, b) = (Registry::new(), Registry::new());
        let (da, db) = (
            DecisionMetrics::register(&a).layer("proxy"),
            DecisionMetrics::register(&b).layer("nginx"),
        );
        da.observe("allow", 0.000_2);
        da.observe("allow", 0.000_3);
        da.observe("deny", 0.01);
        db.observe("allow", 0.001);
        let text = a.render();
        assert!(
            text.contains("steward_decisions_total{layer=\"proxy\",outcome=\"unavailable\"} 0"),
            "every outcome is there from the start: {text}"
        );
        assert!(
            text.contains("steward_decisions_total{layer=\"proxy\",outcome=\"allow\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("steward_decisions_total{layer=\"proxy\",outcome=\"deny\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("steward_decision_duration_seconds_count{layer=\"proxy\"} 3"),
            "{text}"
        );
        assert!(
            !text.contains("nginx"),
            "another registry's figures: {text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn gauges_are_read_at_scrape_time() {
        let r = Registry::new();
        let depth = Arc::new(std::sync::atomic::AtomicI64::new(3));
        let read = depth.clone();
        r.gauge_from("queue_depth", "Records waiting", move || {
            read.load(std::sync::atomic::Ordering::Relaxed)
        });
        let shipped = Arc::new(std::sync::atomic::AtomicU64::new(5));
        let read_shipped = shipped.clone();
        r.counter_from("shipped", "Records shipped", move || {
            read_shipped.load(std::sync::atomic::Ordering::Relaxed)
        });
        let text = r.render();
        assert!(text.contains("steward_queue_depth 3"), "{text}");
        assert!(text.contains("steward_shipped_total 5"), "{text}");
        depth.store(7, std::sync::atomic::Ordering::Relaxed);
        shipped.store(9, std::sync::atomic::Ordering::Relaxed);
        let text = r.render();
        assert!(text.contains("steward_queue_depth 7"), "{text}");
        assert!(text.contains("steward_shipped_total 9"), "{text}");
    }
}
