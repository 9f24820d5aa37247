//! `steward gateway` configuration (TOML): the control plane to follow, and the listeners
//! to serve — reverse proxies, the nginx/RabbitMQ decision endpoints, Envoy ext_authz.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use steward_token::{Jwk, PublicKey};

use crate::GatewayError;

/// Default seconds between bundle refreshes.
pub const DEFAULT_REFRESH_SECS: u64 = 5;
/// Default seconds the last good bundle keeps deciding without the control plane.
pub const DEFAULT_MAX_STALENESS_SECS: u64 = 300;
/// Default seconds between reports (heartbeats) to the control plane.
pub const DEFAULT_REPORT_SECS: u64 = 5;
/// Default seconds a silent revocation stream is kept before it is reopened.
pub const DEFAULT_STREAM_IDLE_SECS: u64 = 30;
/// Default decision records queued while the control plane is unreachable.
pub const DEFAULT_DECISION_QUEUE: usize = 100_000;
/// Default seconds a client has to send its request headers (slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Default seconds the upstream has to start answering.
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 30;
/// Default largest request head (request line and headers).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    environment: String,
    control_plane: ControlPlaneFile,
    #[serde(default)]
    proxy: Vec<ProxyFile>,
    auth: Option<AuthFile>,
    ext_authz: Option<ExtAuthzFile>,
    #[serde(default)]
    mcp: Vec<McpFile>,
    metrics: Option<MetricsFile>,
}

/// `[metrics]`: where Prometheus scrapes `/metrics` (a listener of its own, so no
/// upstream path is shadowed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsFile {
    listen: String,
}

/// `[[mcp]]`: an MCP enforcement point in front of one MCP server (Streamable HTTP).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpFile {
    listen: String,
    /// The server's name in the catalog's `mcp` mappings.
    server: String,
    upstream: String,
    resource: String,
    authorization_server: Option<String>,
    max_body_bytes: Option<usize>,
    max_argument_bytes: Option<usize>,
    upstream_timeout_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    /// `[mcp.tls]`: as `[proxy.tls]`.
    tls: Option<ProxyTlsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlPlaneFile {
    url: String,
    credential_env: Option<String>,
    credential_file: Option<PathBuf>,
    identity: Option<String>,
    key_file: Option<PathBuf>,
    trusted_keys_file: Option<PathBuf>,
    refresh_secs: Option<u64>,
    max_staleness_secs: Option<u64>,
    decision_queue: Option<usize>,
    ship_interval_ms: Option<u64>,
    report_secs: Option<u64>,
    stream_idle_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    listen: String,
    upstream: String,
    audience: String,
    header_read_timeout_secs: Option<u64>,
    upstream_timeout_secs: Option<u64>,
    max_header_bytes: Option<usize>,
    max_connections: Option<usize>,
    /// `ingress` (default) or `egress`.
    mode: Option<String>,
    egress_secret: Option<String>,
    inject_header: Option<String>,
    inject_format: Option<String>,
    tools_from_body: Option<bool>,
    max_inspected_body_bytes: Option<usize>,
    upstream_ca_file: Option<PathBuf>,
    public_url: Option<String>,
    /// `auto` (default), `http1` or `http2`.
    upstream_protocol: Option<String>,
    tls: Option<ProxyTlsFile>,
}

/// `[proxy.tls]`: serve the proxy's listener over TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyTlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    /// `none`, `optional` (default) or `required`.
    client_certificates: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    listen: String,
    header_read_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    nginx_audience: Option<String>,
    rabbitmq_audience: Option<String>,
    rabbitmq_management_url: Option<String>,
    rabbitmq_management_user: Option<String>,
    rabbitmq_management_password_env: Option<String>,
    rabbitmq_management_password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtAuthzFile {
    listen: String,
    audience: String,
    client_certificate: Option<String>,
    header_read_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
}

/// A reverse proxy in front of one upstream.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    /// `http://host:port`, optionally with a path prefix.
    pub upstream: String,
    /// The audience tokens must carry to pass (the upstream's SPIFFE ID).
    pub audience: String,
    pub header_read_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_header_bytes: usize,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Egress mode: the secret to inject.
    pub egress: Option<EgressConfig>,
    /// Decide every tool an AI API request body offers the model.
    pub tools_from_body: bool,
    /// Largest body read for `tools_from_body` (others are streamed, never buffered).
    pub max_inspected_body_bytes: usize,
    /// PEM certificates trusted for an `https://` upstream instead of the system roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// The URL clients reach this proxy at (`https://api.example.com`, optionally with a
    /// path prefix), without a trailing `/`. A DPoP proof names the URL its request was
    /// sent to (`htu`); behind TLS termination or another proxy the request no longer
    /// says it, so this does. Unset: `http://` (`https://` with `tls`) and the request's
    /// `Host`.
    pub public_url: Option<String>,
    /// Which HTTP the proxy speaks to its upstream.
    pub upstream_protocol: UpstreamProtocol,
    /// TLS on the listener: clients connect with `https://` (and may present a client
    /// certificate that certificate-bound tokens need).
    pub tls: Option<ProxyTls>,
}

/// Default largest MCP request body (one JSON-RPC message or batch).
pub const DEFAULT_MCP_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default largest `arguments` of one tool call, as JSON.
pub const DEFAULT_MCP_MAX_ARGUMENT_BYTES: usize = 64 * 1024;

/// An MCP enforcement point: agents reach one MCP server through it, each JSON-RPC
/// message decided on its own.
#[derive(Debug, Clone)]
pub struct McpConfig {
    pub listen: SocketAddr,
    /// The server's name, as the catalog's `mcp` mappings name it.
    pub server: String,
    /// The MCP server's endpoint (`http://host:port/mcp`).
    pub upstream: String,
    /// The URL agents reach this point at: the OAuth resource (RFC 8707/9728) tokens
    /// must name as their audience. Its path is the path served.
    pub resource: String,
    /// The path of `resource`, where JSON-RPC is served.
    pub path: String,
    /// Where agents get tokens (the control plane unless set), as the metadata says.
    pub authorization_server: String,
    pub max_body_bytes: usize,
    pub max_argument_bytes: usize,
    pub upstream_timeout: Duration,
    pub limits: steward_listen::Limits,
    /// Serve over TLS, asking for client certificates (certificate-bound tokens).
    pub tls: Option<ProxyTls>,
}

/// Which HTTP a proxy speaks to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// `https://`: whatever ALPN agrees (HTTP/2 or HTTP/1.1). `http://`: HTTP/1.1, and
    /// HTTP/2 with prior knowledge (h2c) for gRPC calls, which HTTP/1.1 cannot carry.
    #[default]
    Auto,
    /// HTTP/1.1 only (gRPC calls cannot pass).
    Http1,
    /// HTTP/2 only: with prior knowledge (h2c) on `http://`, by ALPN on `https://`.
    Http2,
}

/// A proxy's or MCP point's listener TLS, read and checked when the configuration is.
#[derive(Debug, Clone)]
pub struct ProxyTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_certificates: steward_listen::tls::ClientCertificates,
    /// The server configuration built from them.
    pub server: std::sync::Arc<rustls::ServerConfig>,
}

/// What an egress proxy injects.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// The egress secret's id in the control plane.
    pub secret: String,
    /// The header it goes in (lowercase), replacing any the workload sent.
    pub header: String,
    /// The header value, with `{secret}` where the secret goes.
    pub format: String,
}

/// Default largest body inspected for tool decisions.
pub const DEFAULT_MAX_INSPECTED_BODY_BYTES: usize = 1024 * 1024;

/// The decision endpoints for nginx `auth_request` and RabbitMQ's HTTP auth backend.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub listen: SocketAddr,
    /// Head and body deadlines and the connection cap of the listener.
    pub limits: steward_listen::Limits,
    pub nginx_audience: Option<String>,
    pub rabbitmq_audience: Option<String>,
    /// The broker's management API, to close a revoked identity's open connections.
    pub rabbitmq_management: Option<ManagementConfig>,
}

/// RabbitMQ's management HTTP API and an administrator it accepts (an internal user:
/// the HTTP backend would ask Steward about it).
#[derive(Clone)]
pub struct ManagementConfig {
    pub url: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for ManagementConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The Envoy ext_authz gRPC service.
#[derive(Debug, Clone)]
pub struct ExtAuthzConfig {
    pub listen: SocketAddr,
    pub audience: String,
    /// Where the client certificate of a checked request is read from.
    pub client_certificate: CertificateFrom,
    /// First-byte and request deadlines and the connection cap of the gRPC listener.
    pub limits: steward_listen::Limits,
}

/// Where ext_authz learns the client certificate of the request it checks, to hold a
/// certificate-bound token to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateFrom {
    /// `attributes.source.certificate`: the certificate Envoy itself received from the
    /// client it terminated TLS for. The default, and what a client cannot write.
    #[default]
    Source,
    /// The `x-forwarded-client-cert` header, for meshes where TLS ends at another Envoy
    /// that writes it (`forward_client_cert_details: SANITIZE_SET`, with the hash). A
    /// client's own XFCC must never reach the point, so only set this when the edge
    /// replaces it.
    Xfcc,
}

/// How the gateway authenticates to the control plane.
#[derive(Clone)]
pub enum ControlPlaneCredential {
    /// A static admin credential (`credential_env` / `credential_file`): an ingestor.
    Secret(String),
    /// Its own registered identity (`identity` + `key_file`): short-lived tokens it
    /// renews itself.
    Identity(steward_enforce::PointIdentityKey),
}

impl std::fmt::Debug for ControlPlaneCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(..)"),
            Self::Identity(id) => f.debug_tuple("Identity").field(id).finish(),
        }
    }
}

/// A resolved gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub name: String,
    pub environment: String,
    pub control_plane: String,
    pub credential: ControlPlaneCredential,
    pub trusted_keys: Vec<PublicKey>,
    pub refresh: Duration,
    pub max_staleness: Duration,
    pub decision_queue: usize,
    /// How long decision records are gathered into one batch for the control plane.
    pub ship_interval: Duration,
    /// How often the points report their bundle and revocation epoch (heartbeat).
    pub report: Duration,
    /// A revocation stream silent this long is reopened.
    pub stream_idle: Duration,
    pub proxies: Vec<ProxyConfig>,
    pub auth: Option<AuthConfig>,
    pub ext_authz: Option<ExtAuthzConfig>,
    pub mcp: Vec<McpConfig>,
    /// Where `/metrics` is served (Prometheus text), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

fn invalid(field: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Config {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn addr(field: &str, text: &str) -> Result<SocketAddr, GatewayError> {
    text.parse().map_err(|_| {
        invalid(
            field,
            format!("`{text}` is not an address like 127.0.0.1:8443"),
        )
    })
}

fn positive(field: &str, v: Option<u64>, default: u64) -> Result<Duration, GatewayError> {
    match v {
        Some(0) => Err(invalid(field, "must be greater than 0")),
        Some(v) => Ok(Duration::from_secs(v)),
        None => Ok(Duration::from_secs(default)),
    }
}

fn positive_count(field: &str, v: Option<usize>, default: usize) -> Result<usize, GatewayError> {
    match v {
        Some(0) => Err(invalid(field, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// The `[section]`'s listener limits (`header_read_timeout_secs`,
/// `body_read_timeout_secs`, `max_connections`), defaults for those unset.
fn listener_limits(
    section: &str,
    header_read: Option<u64>,
    body_read: Option<u64>,
    max_connections: Option<usize>,
) -> Result<steward_listen::Limits, GatewayError> {
    Ok(steward_listen::Limits {
        header_read: positive(
            &format!("{section}.header_read_timeout_secs"),
            header_read,
            steward_listen::DEFAULT_HEADER_READ_SECS,
        )?,
        body_read: positive(
            &format!("{section}.body_read_timeout_secs"),
            body_read,
            steward_listen::DEFAULT_BODY_READ_SECS,
        )?,
        max_connections: positive_count(
            &format!("{section}.max_connections"),
            max_connections,
            steward_listen::DEFAULT_MAX_CONNECTIONS,
        )?,
        drain: Duration::from_secs(steward_listen::DEFAULT_DRAIN_SECS),
    })
}

impl GatewayConfig {
    /// Reads and resolves a configuration file; relative paths are relative to it.
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let text = std::fs::read_to_string(path).map_err(|e| GatewayError::Io {
            what: format!("the configuration file `{}`", path.display()),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, GatewayError> {
        let file: File = toml::from_str(text).map_err(|e| GatewayError::Config {
            field: "(file)".into(),
            message: e.to_string(),
        })?;
        let cp = &file.control_plane;
        if !(cp.url.starts_with("http://") || cp.url.starts_with("https://")) {
            return Err(invalid(
                "control_plane.url",
                "must be an http:// or https:// URL",
            ));
        }
        let credential = control_plane_credential(cp, base)?;
        let trusted_keys = match &cp.trusted_keys_file {
            None => Vec::new(),
            Some(p) => read_jwks(&base.join(p))?,
        };
        let mut proxies = Vec::new();
        for (i, p) in file.proxy.iter().enumerate() {
            let field = |f: &str| format!("proxy[{i}].{f}");
            if !(p.upstream.starts_with("http://") || p.upstream.starts_with("https://")) {
                return Err(invalid(
                    &field("upstream"),
                    "must be an http:// or https:// URL",
                ));
            }
            let egress = match (p.mode.as_deref().unwrap_or("ingress"), &p.egress_secret) {
                ("ingress", None) => None,
                ("ingress", Some(_)) => {
                    return Err(invalid(
                        &field("egress_secret"),
                        "only an egress proxy (mode = \"egress\") injects a secret",
                    ));
                }
                ("egress", None) => {
                    return Err(invalid(
                        &field("egress_secret"),
                        "an egress proxy names the egress secret it injects",
                    ));
                }
                ("egress", Some(id)) => {
                    let format = p
                        .inject_format
                        .clone()
                        .unwrap_or_else(|| "Bearer {secret}".to_owned());
                    if !format.contains("{secret}") {
                        return Err(invalid(&field("inject_format"), "must contain `{secret}`"));
                    }
                    let header = p
                        .inject_header
                        .clone()
                        .unwrap_or_else(|| "authorization".to_owned())
                        .to_ascii_lowercase();
                    if hyper::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                        return Err(invalid(&field("inject_header"), "is not a header name"));
                    }
                    Some(EgressConfig {
                        secret: id.clone(),
                        header,
                        format,
                    })
                }
                (other, _) => {
                    return Err(invalid(
                        &field("mode"),
                        format!("`{other}` is not `ingress` or `egress`"),
                    ));
                }
            };
            if p.audience.trim().is_empty() {
                return Err(invalid(&field("audience"), "must not be empty"));
            }
            proxies.push(ProxyConfig {
                listen: addr(&field("listen"), &p.listen)?,
                upstream: p.upstream.trim_end_matches('/').to_owned(),
                audience: p.audience.clone(),
                header_read_timeout: positive(
                    &field("header_read_timeout_secs"),
                    p.header_read_timeout_secs,
                    DEFAULT_HEADER_READ_TIMEOUT_SECS,
                )?,
                upstream_timeout: positive(
                    &field("upstream_timeout_secs"),
                    p.upstream_timeout_secs,
                    DEFAULT_UPSTREAM_TIMEOUT_SECS,
                )?,
                max_header_bytes: match p.max_header_bytes {
                    Some(n) if n < 1024 => {
                        return Err(invalid(&field("max_header_bytes"), "must be at least 1024"));
                    }
                    Some(n) => n,
                    None => DEFAULT_MAX_HEADER_BYTES,
                },
                max_connections: positive_count(
                    &field("max_connections"),
                    p.max_connections,
                    steward_listen::DEFAULT_MAX_CONNECTIONS,
                )?,
                egress,
                tools_from_body: p.tools_from_body.unwrap_or(false),
                max_inspected_body_bytes: p
                    .max_inspected_body_bytes
                    .unwrap_or(DEFAULT_MAX_INSPECTED_BODY_BYTES),
                upstream_ca_file: p.upstream_ca_file.as_ref().map(|f| base.join(f)),
                public_url: match &p.public_url {
                    None => None,
                    Some(url) => Some(public_url(&field("public_url"), url)?),
                },
                upstream_protocol: upstream_protocol(
                    &field("upstream_protocol"),
                    p.upstream_protocol.as_deref(),
                )?,
                tls: match &p.tls {
                    None => None,
                    Some(t) => Some(proxy_tls(&field("tls"), t, base)?),
                },
            });
        }
        let auth = match &file.auth {
            None => None,
            Some(a) => Some(AuthConfig {
                listen: addr("auth.listen", &a.listen)?,
                limits: listener_limits(
                    "auth",
                    a.header_read_timeout_secs,
                    a.body_read_timeout_secs,
                    a.max_connections,
                )?,
                nginx_audience: a.nginx_audience.clone(),
                rabbitmq_audience: a.rabbitmq_audience.clone(),
                rabbitmq_management: management(a, base)?,
            }),
        };
        let ext_authz = match &file.ext_authz {
            None => None,
            Some(e) => Some(ExtAuthzConfig {
                listen: addr("ext_authz.listen", &e.listen)?,
                audience: e.audience.clone(),
                client_certificate: match e.client_certificate.as_deref() {
                    None | Some("source") => CertificateFrom::Source,
                    Some("xfcc") => CertificateFrom::Xfcc,
                    Some(other) => {
                        return Err(invalid(
                            "ext_authz.client_certificate",
                            format!(
                                "`{other}` is not a place to read the client certificate from; use `source` (what Envoy received, the default) or `xfcc` (the x-forwarded-client-cert header an edge Envoy sets)"
                            ),
                        ));
                    }
                },
                limits: listener_limits(
                    "ext_authz",
                    e.header_read_timeout_secs,
                    e.body_read_timeout_secs,
                    e.max_connections,
                )?,
            }),
        };
        if matches!(credential, ControlPlaneCredential::Identity(_))
            && let Some(i) = proxies.iter().position(|p| p.egress.is_some())
        {
            return Err(invalid(
                &format!("proxy[{i}].egress_secret"),
                "egress secrets are released to ingestor credentials only: run an egress proxy with credential_env or credential_file",
            ));
        }
        let mut mcp = Vec::new();
        for (i, m) in file.mcp.iter().enumerate() {
            mcp.push(mcp_config(&format!("mcp[{i}]"), m, &cp.url, base)?);
        }
        if proxies.is_empty() && auth.is_none() && ext_authz.is_none() && mcp.is_empty() {
            return Err(invalid(
                "(file)",
                "nothing to serve: configure at least one [[proxy]], [[mcp]], [auth] or [ext_authz]",
            ));
        }
        if file.environment.trim().is_empty() || file.name.trim().is_empty() {
            return Err(invalid("name/environment", "must not be empty"));
        }
        let refresh = positive(
            "control_plane.refresh_secs",
            cp.refresh_secs,
            DEFAULT_REFRESH_SECS,
        )?;
        let max_staleness = positive(
            "control_plane.max_staleness_secs",
            cp.max_staleness_secs,
            DEFAULT_MAX_STALENESS_SECS,
        )?;
        if refresh >= max_staleness {
            return Err(invalid(
                "control_plane.refresh_secs",
                format!(
                    "{}s is not shorter than max_staleness_secs ({}s): the bundle would go stale between two refreshes",
                    refresh.as_secs(),
                    max_staleness.as_secs()
                ),
            ));
        }
        let report = positive(
            "control_plane.report_secs",
            cp.report_secs,
            DEFAULT_REPORT_SECS,
        )?;
        let stream_idle = positive(
            "control_plane.stream_idle_secs",
            cp.stream_idle_secs,
            DEFAULT_STREAM_IDLE_SECS,
        )?;
        let ship_interval = match cp.ship_interval_ms {
            None => steward_enforce::DEFAULT_SHIP_INTERVAL,
            Some(ms) if ms <= 1_000 => Duration::from_millis(ms),
            Some(ms) => {
                return Err(invalid(
                    "control_plane.ship_interval_ms",
                    format!(
                        "{ms} ms is more than 1000: decision records would wait too long to reach the evidence log"
                    ),
                ));
            }
        };
        Ok(Self {
            report,
            stream_idle,
            ship_interval,
            name: file.name,
            environment: file.environment,
            control_plane: cp.url.trim_end_matches('/').to_owned(),
            credential,
            trusted_keys,
            refresh,
            max_staleness,
            decision_queue: cp.decision_queue.unwrap_or(DEFAULT_DECISION_QUEUE).max(1),
            proxies,
            auth,
            ext_authz,
            mcp,
            metrics_listen: match &file.metrics {
                Some(m) => Some(addr("metrics.listen", &m.listen)?),
                None => None,
            },
        })
    }
}

/// One `[[mcp]]` section, checked: URLs, the server name as mappings must spell it, the
/// path served (the resource's).
fn mcp_config(
    section: &str,
    m: &McpFile,
    control_plane: &str,
    base: &Path,
) -> Result<McpConfig, GatewayError> {
    let field = |f: &str| format!("{section}.{f}");
    if !(m.upstream.starts_with("http://") || m.upstream.starts_with("https://")) {
        return Err(invalid(
            &field("upstream"),
            "must be an http:// or https:// URL",
        ));
    }
    if let Some(why) = steward_model::mcp_name_problem(&m.server) {
        return Err(invalid(&field("server"), format!("the server name {why}")));
    }
    let resource = public_url(&field("resource"), &m.resource)?;
    let after_scheme = resource.split_once("://").map_or("", |(_, r)| r);
    let path = match after_scheme.find('/') {
        Some(i) => after_scheme.get(i..).unwrap_or("/").to_owned(),
        None => "/".to_owned(),
    };
    let limits = listener_limits(section, m.header_read_timeout_secs, None, m.max_connections)?;
    let tls = match &m.tls {
        Some(t) => Some(proxy_tls(&field("tls"), t, base)?),
        None => None,
    };
    if tls.is_some() && !resource.starts_with("https://") {
        return Err(invalid(
            &field("resource"),
            format!(
                "`{resource}` must be an https:// URL when the point serves TLS ([mcp.tls]): agents' tokens and DPoP proofs name it"
            ),
        ));
    }
    Ok(McpConfig {
        listen: addr(&field("listen"), &m.listen)?,
        server: m.server.clone(),
        upstream: m.upstream.clone(),
        path,
        resource,
        authorization_server: m
            .authorization_server
            .clone()
            .unwrap_or_else(|| control_plane.trim_end_matches('/').to_owned()),
        max_body_bytes: positive_count(
            &field("max_body_bytes"),
            m.max_body_bytes,
            DEFAULT_MCP_MAX_BODY_BYTES,
        )?,
        max_argument_bytes: positive_count(
            &field("max_argument_bytes"),
            m.max_argument_bytes,
            DEFAULT_MCP_MAX_ARGUMENT_BYTES,
        )?,
        upstream_timeout: positive(
            &field("upstream_timeout_secs"),
            m.upstream_timeout_secs,
            DEFAULT_UPSTREAM_TIMEOUT_SECS,
        )?,
        limits,
        tls,
    })
}

/// A `public_url`: `http(s)://host[:port][/prefix]`, no query, fragment or credentials;
/// returned without a trailing `/` (the request's path follows it).
fn public_url(field: &str, url: &str) -> Result<String, GatewayError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            invalid(
                field,
                format!("`{url}` must be an http:// or https:// URL, e.g. https://api.example.com"),
            )
        })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid(field, format!("`{url}` names no host")));
    }
    if let Some(c) = url
        .chars()
        .find(|c| matches!(c, '?' | '#' | '@') || c.is_whitespace())
    {
        return Err(invalid(
            field,
            format!(
                "`{url}` holds `{}`: write only the scheme, host, port and path prefix clients use",
                c.escape_debug()
            ),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `[control_plane]`'s one way to authenticate: a static credential (from the
/// environment or a file) or an identity with its key file.
fn control_plane_credential(
    cp: &ControlPlaneFile,
    base: &Path,
) -> Result<ControlPlaneCredential, GatewayError> {
    let one_of = "set exactly one of credential_env or credential_file (an ingestor credential: `steward credential create --role ingestor`), or identity with key_file (the gateway's own identity, granted `credentials.enforcement_point` in the governance repository)";
    let secret = match (&cp.credential_env, &cp.credential_file) {
        (Some(var), None) => Some(std::env::var(var).map_err(|_| {
            invalid(
                "control_plane.credential_env",
                format!("environment variable `{var}` is not set"),
            )
        })?),
        (None, Some(p)) => Some(read_secret("control_plane.credential_file", &base.join(p))?),
        (None, None) => None,
        _ => return Err(invalid("control_plane", one_of)),
    };
    match (secret, &cp.identity, &cp.key_file) {
        (Some(secret), None, None) => {
            if secret.is_empty() {
                return Err(invalid("control_plane", "the credential is empty"));
            }
            Ok(ControlPlaneCredential::Secret(secret))
        }
        (None, Some(id), Some(key_file)) => {
            let id = steward_model::SpiffeId::parse(id.clone()).map_err(|e| {
                invalid(
                    "control_plane.identity",
                    format!("`{id}` is not a SPIFFE ID: {e}"),
                )
            })?;
            let path = base.join(key_file);
            let text = std::fs::read_to_string(&path).map_err(|e| GatewayError::Io {
                what: format!("control_plane.key_file `{}`", path.display()),
                message: e.to_string(),
            })?;
            let key = steward_token::SigningKey::from_pkcs8_pem(&text).map_err(|e| {
                invalid(
                    "control_plane.key_file",
                    format!("`{}`: {e}", path.display()),
                )
            })?;
            Ok(ControlPlaneCredential::Identity(
                steward_enforce::PointIdentityKey {
                    spiffe_id: id.to_string(),
                    key: std::sync::Arc::new(key),
                },
            ))
        }
        (None, Some(_), None) => Err(invalid(
            "control_plane.key_file",
            "an identity needs the private key registered for it (`steward identity key create ID --out KEY.pem`)",
        )),
        (None, None, Some(_)) => Err(invalid(
            "control_plane.identity",
            "a key_file needs the identity (SPIFFE ID) it is registered for",
        )),
        _ => Err(invalid("control_plane", one_of)),
    }
}

/// `upstream_protocol`: `auto` unless set.
fn upstream_protocol(field: &str, value: Option<&str>) -> Result<UpstreamProtocol, GatewayError> {
    match value {
        None | Some("auto") => Ok(UpstreamProtocol::Auto),
        Some("http1") => Ok(UpstreamProtocol::Http1),
        Some("http2") => Ok(UpstreamProtocol::Http2),
        Some(other) => Err(invalid(
            field,
            format!(
                "`{other}` is not `auto` (ALPN on https://, HTTP/1.1 and h2c for gRPC on http://), `http1` or `http2` (h2c on http://)"
            ),
        )),
    }
}

/// `[proxy.tls]`: the files (relative to the configuration) read now, so `--check` and
/// start-up say what is wrong with them.
fn proxy_tls(field: &str, t: &ProxyTlsFile, base: &Path) -> Result<ProxyTls, GatewayError> {
    use steward_listen::tls::ClientCertificates;
    let client_certificates = match t.client_certificates.as_deref() {
        None | Some("optional") => ClientCertificates::Optional,
        Some("none") => ClientCertificates::None,
        Some("required") => ClientCertificates::Required,
        Some(other) => {
            return Err(invalid(
                &format!("{field}.client_certificates"),
                format!(
                    "`{other}` is not `none`, `optional` (asked for, certificate-bound tokens work) or `required`"
                ),
            ));
        }
    };
    let cert_file = base.join(&t.cert_file);
    let key_file = base.join(&t.key_file);
    let server = steward_listen::tls::server_config(&cert_file, &key_file, client_certificates)
        .map_err(|e| invalid(field, e.to_string()))?;
    Ok(ProxyTls {
        cert_file,
        key_file,
        client_certificates,
        server,
    })
}

/// A secret kept in a file (trailing newline dropped); the error names the field and the
/// path, never the content.
fn read_secret(field: &str, path: &Path) -> Result<String, GatewayError> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| GatewayError::Io {
            what: format!("{field} `{}`", path.display()),
            message: e.to_string(),
        })?
        .trim()
        .to_owned())
}

/// `[auth] rabbitmq_management_*`: the URL, the user and one password source, or none.
fn management(a: &AuthFile, base: &Path) -> Result<Option<ManagementConfig>, GatewayError> {
    let password_set = a.rabbitmq_management_password_env.is_some()
        || a.rabbitmq_management_password_file.is_some();
    match (
        &a.rabbitmq_management_url,
        &a.rabbitmq_management_user,
        password_set,
    ) {
        (None, None, false) => Ok(None),
        (Some(url), Some(user), true) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "auth.rabbitmq_management_url",
                    "must be an http:// or https:// URL (e.g. http://127.0.0.1:15672)",
                ));
            }
            let password = match (
                &a.rabbitmq_management_password_env,
                &a.rabbitmq_management_password_file,
            ) {
                (Some(var), None) => std::env::var(var).map_err(|_| {
                    invalid(
                        "auth.rabbitmq_management_password_env",
                        format!("environment variable `{var}` is not set"),
                    )
                })?,
                (None, Some(p)) => {
                    read_secret("auth.rabbitmq_management_password_file", &base.join(p))?
                }
                _ => {
                    return Err(invalid(
                        "auth.rabbitmq_management_password_env",
                        "set one of rabbitmq_management_password_env or rabbitmq_management_password_file, not both",
                    ));
                }
            };
            Ok(Some(ManagementConfig {
                url: url.trim_end_matches('/').to_owned(),
                user: user.clone(),
                password,
            }))
        }
        _ => Err(invalid(
            "auth.rabbitmq_management_url",
            "set rabbitmq_management_url, rabbitmq_management_user and a password (rabbitmq_management_password_env or _file) together",
        )),
    }
}

/// Reads a JWKS file (the control plane's `/oauth2/jwks`, saved when it was trusted).
fn read_jwks(path: &Path) -> Result<Vec<PublicKey>, GatewayError> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Jwk>,
    }
    let field = "control_plane.trusted_keys_file";
    let text = std::fs::read_to_string(path).map_err(|e| GatewayError::Io {
        what: format!("{field} `{}`", path.display()),
        message: e.to_string(),
    })?;
    let jwks: Jwks = serde_json::from_str(&text)
        .map_err(|e| invalid(field, format!("not a JWKS document: {e}")))?;
    if jwks.keys.is_empty() {
        return Err(invalid(field, "the JWKS lists no keys"));
    }
    jwks.keys
        .iter()
        .map(|k| {
            k.to_public_key()
                .map_err(|e| invalid(field, format!("a key does not parse: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn proxy_with(extra: &str) -> Result<GatewayConfig, GatewayError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credential"), "stw_x_y").unwrap();
        GatewayConfig::parse(
            &format!(
                r#"
name = "t"
environment = "prod"
[control_plane]
url = "http://127.0.0.1:1"
credential_file = "credential"
[[proxy]]
listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:2"
audience = "spiffe://acme.example/api"
{extra}
"#
            ),
            dir.path(),
        )
    }

    /// `public_url` is what DPoP proofs are checked against: a plain scheme, host and
    /// optional prefix, kept without its trailing slash; anything else names the field.
    #[test]
    fn public_url_is_checked_and_trimmed() {
        assert_eq!(proxy_with("").unwrap().proxies[0].public_url, None);
        for (given, kept) in [
            ("https://api.example.com/", "https://api.example.com"),
            (
                "https://api.example.com:8443/payments",
                "https://api.example.com:8443/payments",
            ),
            ("http://10.0.0.1", "http://10.0.0.1"),
        ] {
            let config = proxy_with(&format!("public_url = \"{given}\"")).unwrap();
            assert_eq!(config.proxies[0].public_url.as_deref(), Some(kept));
        }
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://",
            "https://api.example.com/?x=1",
            "https://user@api.example.com",
            "https://api.example.com/#top",
        ] {
            let e = proxy_with(&format!("public_url = \"{bad}\""))
                .unwrap_err()
                .to_string();
            assert!(e.contains("proxy[0].public_url"), "{bad}: {e}");
        }
    }

    /// Where ext_authz reads client certificates from: Envoy's own `source` unless XFCC
    /// is asked for by name; a misspelling names the field and the choices.
    #[test]
    fn ext_authz_client_certificate_is_one_of_two() {
        let with = |line: &str| {
            proxy_with(&format!(
                "[ext_authz]\nlisten = \"127.0.0.1:0\"\naudience = \"a\"\n{line}"
            ))
        };
        let from = |line: &str| with(line).unwrap().ext_authz.unwrap().client_certificate;
        assert_eq!(from(""), CertificateFrom::Source);
        assert_eq!(
            from("client_certificate = \"source\""),
            CertificateFrom::Source
        );
        assert_eq!(from("client_certificate = \"xfcc\""), CertificateFrom::Xfcc);
        let e = with("client_certificate = \"header\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ext_authz.client_certificate") && e.contains("xfcc"),
            "{e}"
        );
    }

    /// Which HTTP goes upstream: `auto` unless named; a misspelling names the field and
    /// the choices.
    #[test]
    fn upstream_protocol_is_one_of_three() {
        let of = |line: &str| proxy_with(line).map(|c| c.proxies[0].upstream_protocol);
        assert_eq!(of("").unwrap(), UpstreamProtocol::Auto);
        assert_eq!(
            of("upstream_protocol = \"auto\"").unwrap(),
            UpstreamProtocol::Auto
        );
        assert_eq!(
            of("upstream_protocol = \"http1\"").unwrap(),
            UpstreamProtocol::Http1
        );
        assert_eq!(
            of("upstream_protocol = \"http2\"").unwrap(),
            UpstreamProtocol::Http2
        );
        let e = of("upstream_protocol = \"h3\"").unwrap_err().to_string();
        assert!(
            e.contains("proxy[0].upstream_protocol") && e.contains("http2"),
            "{e}"
        );
    }
}
