//! `steward.toml`: the control plane's own configuration, in two stages — a file struct
//! with defaults and doc comments, validated once into [`ServerConfig`].

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

use steward_model::TrustDomain;

/// Environment variables that override the file (flags override both).
pub mod env {
    pub const CONFIG: &str = "STEWARD_CONFIG";
    pub const LISTEN: &str = "STEWARD_LISTEN";
    pub const DATA_DIR: &str = "STEWARD_DATA_DIR";
    pub const DATABASE_URL: &str = "STEWARD_DATABASE_URL";
    pub const TRUST_DOMAIN: &str = "STEWARD_TRUST_DOMAIN";
    pub const SERVER: &str = "STEWARD_SERVER";
    pub const TOKEN: &str = "STEWARD_TOKEN";
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
pub const DEFAULT_DATA_DIR: &str = "./steward-data";
pub const DEFAULT_TRUST_DOMAIN: &str = "steward.local";
/// Largest admin request body, other than governance uploads.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest governance repository upload (plan / apply).
pub const DEFAULT_MAX_APPLY_BYTES: usize = 256 * 1024 * 1024;

/// The file form of `steward.toml`. Every field is optional; unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the control plane listens on, e.g. `127.0.0.1:8470`.
    pub listen: Option<String>,
    /// Directory of the embedded SQLite store (ignored when `database_url` is set).
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to run on PostgreSQL; unset for the embedded store.
    pub database_url: Option<String>,
    /// SPIFFE trust domain every identity must belong to.
    pub trust_domain: Option<String>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub evidence: EvidenceFile,
    #[serde(default)]
    pub tokens: TokensFile,
    #[serde(default)]
    pub enforcement: EnforcementFile,
    #[serde(default)]
    pub posture: PostureFile,
    /// Serve HTTPS (and accept client certificates, RFC 8705) instead of plain HTTP.
    pub tls: Option<TlsFile>,
    /// Where Prometheus scrapes `/metrics` (a listener of its own, plain HTTP, no
    /// credential: keep it on an internal address). Unset: not served.
    pub metrics_listen: Option<String>,
}

/// `[tls]`: the server's certificate and key, PEM.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The token service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// The URL clients reach Steward at: `iss` of every token and the base of the
    /// discovery, JWKS and token endpoint URLs. Default `http://<listen>`.
    pub issuer: Option<String>,
    /// File holding the base64 32-byte key-encryption key that seals signing keys at rest
    /// (a mounted secret). Default: `<data_dir>/key-encryption-key`, created on first start.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Or: the environment variable holding it.
    pub key_encryption_key_env: Option<String>,
    /// Lifetime of a token when neither the request, the identity nor its plane sets one.
    pub default_ttl_secs: Option<u64>,
    /// Longest lifetime of any token, whatever the planes say.
    pub max_ttl_secs: Option<u64>,
    /// How long a rotated-out key keeps verifying (and stays in the JWKS). At least
    /// `max_ttl_secs + clock_skew_secs`, so every token it signed can expire first.
    pub key_overlap_secs: Option<u64>,
    /// Rotate the signing key when it is this old (e.g. 2592000 for 30 days); unset:
    /// only on demand (`steward keys rotate`). Longer than `key_overlap_secs`, so at
    /// most two keys are published at once.
    pub rotation_period_secs: Option<u64>,
    /// Clock difference tolerated on `exp`, `nbf` and `iat`.
    pub clock_skew_secs: Option<u64>,
    /// Longest lifetime accepted for a `private_key_jwt` client assertion.
    pub assertion_max_lifetime_secs: Option<u64>,
    /// Most hops a delegation chain (`act`) may record.
    pub max_delegation_depth: Option<usize>,
}

impl TokenConfig {
    /// Points the default issuer at the address actually bound (port 0 picks one).
    pub fn listening_on(&mut self, addr: SocketAddr) {
        if !self.issuer_configured {
            let scheme = if self.issuer.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            self.issuer = format!("{scheme}://{addr}");
        }
    }
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    File(PathBuf),
    Env(String),
    /// `<data_dir>/key-encryption-key`, generated if missing: fine for one machine, but a
    /// copy of the data directory then carries its key along.
    DataDir(PathBuf),
}

/// The token service's validated settings.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    /// Whether `issuer` was configured (else it follows the bound address).
    pub issuer_configured: bool,
    pub kek: KekSource,
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
    pub key_overlap_secs: u64,
    /// Scheduled rotation: the signing key's greatest age, if any.
    pub rotation_period_secs: Option<u64>,
    pub clock_skew_secs: u64,
    pub assertion_max_lifetime_secs: u64,
    pub max_delegation_depth: usize,
}

pub const DEFAULT_TOKEN_TTL_SECS: u64 = 600;
pub const DEFAULT_MAX_TOKEN_TTL_SECS: u64 = 3600;
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;
pub const DEFAULT_ASSERTION_MAX_LIFETIME_SECS: u64 = 300;
pub const DEFAULT_MAX_DELEGATION_DEPTH: usize = 4;
/// File name of the generated key-encryption key inside the data directory.
pub const KEK_FILE: &str = "key-encryption-key";

impl TokensFile {
    fn resolve(
        self,
        listen: SocketAddr,
        data_dir: &std::path::Path,
    ) -> Result<TokenConfig, ConfigError> {
        let invalid = |field, message: String| ConfigError::Invalid { field, message };
        let issuer_configured = self.issuer.is_some();
        let issuer = self.issuer.unwrap_or_else(|| format!("http://{listen}"));
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.ends_with('/')
            || issuer.contains(['?', '#', ' '])
        {
            return Err(invalid(
                "tokens.issuer",
                format!(
                    "`{issuer}` must be an http(s) URL without a trailing `/`, query or fragment, e.g. `https://steward.example.com`"
                ),
            ));
        }
        let kek = match (self.key_encryption_key_file, self.key_encryption_key_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "tokens.key_encryption_key_file",
                    "set either `key_encryption_key_file` or `key_encryption_key_env`, not both"
                        .into(),
                ));
            }
            (Some(f), None) => KekSource::File(f),
            (None, Some(v)) if v.is_empty() => {
                return Err(invalid(
                    "tokens.key_encryption_key_env",
                    "must name a variable".into(),
                ));
            }
            (None, Some(v)) => KekSource::Env(v),
            (None, None) => KekSource::DataDir(data_dir.join(KEK_FILE)),
        };
        let secs = |field, v: Option<u64>, default: u64| match v {
            Some(0) => Err(invalid(field, "must be greater than 0".into())),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let max_ttl_secs = secs(
            "tokens.max_ttl_secs",
            self.max_ttl_secs,
            DEFAULT_MAX_TOKEN_TTL_SECS,
        )?;
        let default_ttl_secs = secs(
            "tokens.default_ttl_secs",
            self.default_ttl_secs,
            DEFAULT_TOKEN_TTL_SECS.min(max_ttl_secs),
        )?;
        if default_ttl_secs > max_ttl_secs {
            return Err(invalid(
                "tokens.default_ttl_secs",
                format!("{default_ttl_secs} is more than `max_ttl_secs` ({max_ttl_secs})"),
            ));
        }
        let clock_skew_secs = self.clock_skew_secs.unwrap_or(DEFAULT_CLOCK_SKEW_SECS);
        if clock_skew_secs > 300 {
            return Err(invalid(
                "tokens.clock_skew_secs",
                "more than 300 s of skew would keep expired tokens alive; fix the clocks instead"
                    .into(),
            ));
        }
        let min_overlap = max_ttl_secs + clock_skew_secs;
        let key_overlap_secs = self.key_overlap_secs.unwrap_or(2 * max_ttl_secs);
        if key_overlap_secs < min_overlap {
            return Err(invalid(
                "tokens.key_overlap_secs",
                format!(
                    "{key_overlap_secs} s is shorter than `max_ttl_secs` + `clock_skew_secs` ({min_overlap} s): tokens signed just before a rotation would stop verifying before they expire"
                ),
            ));
        }
        let rotation_period_secs = match self.rotation_period_secs {
            Some(p) if p <= key_overlap_secs => {
                return Err(invalid(
                    "tokens.rotation_period_secs",
                    format!(
                        "{p} s is not longer than `key_overlap_secs` ({key_overlap_secs} s): a key would be rotated out before the one it replaced stopped verifying, and keys would pile up in the JWKS"
                    ),
                ));
            }
            other => other,
        };
        Ok(TokenConfig {
            issuer,
            issuer_configured,
            kek,
            default_ttl_secs,
            max_ttl_secs,
            key_overlap_secs,
            rotation_period_secs,
            clock_skew_secs,
            assertion_max_lifetime_secs: secs(
                "tokens.assertion_max_lifetime_secs",
                self.assertion_max_lifetime_secs,
                DEFAULT_ASSERTION_MAX_LIFETIME_SECS,
            )?,
            max_delegation_depth: match self.max_delegation_depth {
                Some(0) => {
                    return Err(invalid(
                        "tokens.max_delegation_depth",
                        "must be at least 1 (one hop)".into(),
                    ));
                }
                Some(d) if d > 32 => {
                    return Err(invalid(
                        "tokens.max_delegation_depth",
                        format!("{d} hops is more than the 32 a token can carry"),
                    ));
                }
                Some(d) => d,
                None => DEFAULT_MAX_DELEGATION_DEPTH,
            },
        })
    }
}

/// The evidence log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceFile {
    /// Submissions that may wait for the writer before the overflow policy applies.
    pub queue_capacity: Option<usize>,
    /// `fail-closed` (refuse work when evidence cannot be written) or `report-loss`.
    pub overflow: Option<crate::evidence::OverflowPolicy>,
    /// Seconds between signed checkpoints of the chain head.
    pub checkpoint_interval_secs: Option<u64>,
    /// Largest difference between an ingested record's time and now, in seconds.
    pub ingest_max_skew_secs: Option<u64>,
    /// Keep evidence this many days; older events are pruned hourly (the chain stays
    /// verifiable from a signed checkpoint at the new start). Unset: keep forever.
    pub retention_days: Option<u64>,
}

/// `[enforcement]`: how the control plane keeps its enforcement points current.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforcementFile {
    /// Seconds between heartbeats on each revocation stream (default 5).
    pub heartbeat_secs: Option<u64>,
    /// A point not heard from for this many seconds is not live: `revoke --verify` does
    /// not wait for it and `status` flags it stale (default 30).
    pub point_liveness_secs: Option<u64>,
}

/// `[posture]`: how posture judges what it sees.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostureFile {
    /// Days after an identity's registration before its unused permissions become
    /// findings: before that, its usage is still being observed (default 14; 0 judges at
    /// once). A request's `observation_days` overrides it.
    pub observation_days: Option<u64>,
}

/// Request size limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_body_bytes: Option<usize>,
    pub max_apply_bytes: Option<usize>,
    /// Seconds a request head may take to arrive (and an idle connection may wait for its
    /// next request); a slower client is disconnected (default 10).
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a request body may take to arrive after its head (default 60; raise it for
    /// large `steward apply` uploads over slow links).
    pub body_read_timeout_secs: Option<u64>,
    /// Connections served at once; more wait in the accept queue (default 4096).
    pub max_connections: Option<usize>,
}

/// Validated runtime configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub trust_domain: TrustDomain,
    pub max_body_bytes: usize,
    pub max_apply_bytes: usize,
    /// How long a client may take and how many may connect at once.
    pub listen_limits: steward_listen::Limits,
    pub evidence_queue_capacity: usize,
    pub evidence_overflow: crate::evidence::OverflowPolicy,
    pub checkpoint_interval: std::time::Duration,
    pub ingest_max_skew: std::time::Duration,
    pub evidence_retention: Option<std::time::Duration>,
    pub tokens: TokenConfig,
    pub tls: Option<crate::tls::TlsConfig>,
    pub heartbeat: std::time::Duration,
    pub point_liveness: std::time::Duration,
    /// Posture's default observation window, in days.
    pub posture_observation_days: u64,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// Two weeks: long enough for daily and weekly jobs to have run, short enough that an
/// unneeded grant does not go unreported for a whole review cycle.
pub const DEFAULT_OBSERVATION_DAYS: u64 = 14;
/// The longest observation window, as posture's other windows.
pub const MAX_OBSERVATION_DAYS: u64 = 366;
pub const DEFAULT_EVIDENCE_QUEUE: usize = 10_000;
pub const DEFAULT_CHECKPOINT_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_INGEST_MAX_SKEW_SECS: u64 = 300;
pub const DEFAULT_HEARTBEAT_SECS: u64 = 5;
pub const DEFAULT_POINT_LIVENESS_SECS: u64 = 30;

/// What was wrong with the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file `{path}`: {message}")]
    Parse { path: String, message: String },
    #[error("`{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// Overrides from environment variables and flags, highest precedence last applied.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub trust_domain: Option<String>,
}

impl FileConfig {
    /// Parses `steward.toml` text; `path` is only used in messages.
    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads a config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Applies overrides and validates.
    pub fn resolve(self, o: Overrides) -> Result<ServerConfig, ConfigError> {
        let listen = o
            .listen
            .or(self.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen.parse().map_err(|_| ConfigError::Invalid {
            field: "listen",
            message: format!("`{listen}` is not an address like `127.0.0.1:8470`"),
        })?;
        let trust_domain = o
            .trust_domain
            .or(self.trust_domain)
            .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned());
        let trust_domain = TrustDomain::new(trust_domain).map_err(|e| ConfigError::Invalid {
            field: "trust_domain",
            message: e.to_string(),
        })?;
        let database_url = o
            .database_url
            .or(self.database_url)
            .filter(|u| !u.is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::Invalid {
                field: "database_url",
                message: "must start with `postgres://` (or `sqlite:`); leave it unset for the embedded store".into(),
            });
        }
        let positive = |field, v: Option<usize>, default| match v {
            Some(0) => Err(ConfigError::Invalid {
                field,
                message: "must be greater than 0".into(),
            }),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let data_dir = o
            .data_dir
            .or(self.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let tls = self.tls.map(|t| crate::tls::TlsConfig {
            cert_file: t.cert_file,
            key_file: t.key_file,
        });
        let mut tokens = self.tokens.resolve(listen, &data_dir)?;
        if tls.is_some() && !tokens.issuer_configured {
            tokens.issuer = format!("https://{listen}");
        }
        let heartbeat = positive(
            "enforcement.heartbeat_secs",
            self.enforcement.heartbeat_secs.map(|v| v as usize),
            DEFAULT_HEARTBEAT_SECS as usize,
        )? as u64;
        let point_liveness = positive(
            "enforcement.point_liveness_secs",
            self.enforcement.point_liveness_secs.map(|v| v as usize),
            DEFAULT_POINT_LIVENESS_SECS as usize,
        )? as u64;
        if point_liveness <= heartbeat {
            return Err(ConfigError::Invalid {
                field: "enforcement.point_liveness_secs",
                message: format!(
                    "must be longer than enforcement.heartbeat_secs ({heartbeat}); points report about that often"
                ),
            });
        }
        let posture_observation_days = match self.posture.observation_days {
            Some(d) if d > MAX_OBSERVATION_DAYS => {
                return Err(ConfigError::Invalid {
                    field: "posture.observation_days",
                    message: format!(
                        "must be at most {MAX_OBSERVATION_DAYS} days, not {d} (0 judges unused permissions at once)"
                    ),
                });
            }
            Some(d) => d,
            None => DEFAULT_OBSERVATION_DAYS,
        };
        let metrics_listen = match &self.metrics_listen {
            Some(text) => Some(text.parse().map_err(|_| ConfigError::Invalid {
                field: "metrics_listen",
                message: format!("`{text}` is not an address like `127.0.0.1:9464`"),
            })?),
            None => None,
        };
        Ok(ServerConfig {
            listen,
            metrics_listen,
            posture_observation_days,
            heartbeat: std::time::Duration::from_secs(heartbeat),
            point_liveness: std::time::Duration::from_secs(point_liveness),
            tokens,
            tls,
            data_dir,
            database_url,
            trust_domain,
            max_body_bytes: positive(
                "limits.max_body_bytes",
                self.limits.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
            )?,
            max_apply_bytes: positive(
                "limits.max_apply_bytes",
                self.limits.max_apply_bytes,
                DEFAULT_MAX_APPLY_BYTES,
            )?,
            listen_limits: steward_listen::Limits {
                header_read: std::time::Duration::from_secs(positive(
                    "limits.header_read_timeout_secs",
                    self.limits.header_read_timeout_secs.map(|v| v as usize),
                    steward_listen::DEFAULT_HEADER_READ_SECS as usize,
                )? as u64),
                body_read: std::time::Duration::from_secs(positive(
                    "limits.body_read_timeout_secs",
                    self.limits.body_read_timeout_secs.map(|v| v as usize),
                    steward_listen::DEFAULT_BODY_READ_SECS as usize,
                )? as u64),
                max_connections: positive(
                    "limits.max_connections",
                    self.limits.max_connections,
                    steward_listen::DEFAULT_MAX_CONNECTIONS,
                )?,
                drain: std::time::Duration::from_secs(steward_listen::DEFAULT_DRAIN_SECS),
            },
            evidence_queue_capacity: positive(
                "evidence.queue_capacity",
                self.evidence.queue_capacity,
                DEFAULT_EVIDENCE_QUEUE,
            )?,
            evidence_overflow: self.evidence.overflow.unwrap_or_default(),
            checkpoint_interval: std::time::Duration::from_secs(positive(
                "evidence.checkpoint_interval_secs",
                self.evidence.checkpoint_interval_secs.map(|v| v as usize),
                DEFAULT_CHECKPOINT_INTERVAL_SECS as usize,
            )? as u64),
            ingest_max_skew: std::time::Duration::from_secs(
                self.evidence
                    .ingest_max_skew_secs
                    .unwrap_or(DEFAULT_INGEST_MAX_SKEW_SECS),
            ),
            evidence_retention: match self.evidence.retention_days {
                Some(0) => {
                    return Err(ConfigError::Invalid {
                        field: "evidence.retention_days",
                        message: "must be greater than 0 (leave it unset to keep evidence forever)"
                            .into(),
                    });
                }
                Some(days) => Some(std::time::Duration::from_secs(days.saturating_mul(86_400))),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let f = FileConfig::parse(
            "steward.toml",
            "listen = \"127.0.0.1:9000\"\ntrust_domain = \"acme.example\"\n",
        )
        .unwrap();
        let c = f
            .resolve(Overrides {
                listen: Some("127.0.0.1:9100".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.trust_domain.as_str(), "acme.example");
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn evidence_settings() {
        let c = FileConfig::parse(
            "s",
            "[evidence]\nretention_days = 30\noverflow = \"report-loss\"\n",
        )
        .unwrap()
        .resolve(Overrides::default())
        .unwrap();
        assert_eq!(
            c.evidence_retention,
            Some(std::time::Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            c.evidence_overflow,
            crate::evidence::OverflowPolicy::ReportLoss
        );
        let err = FileConfig::parse("s", "[evidence]\nretention_days = 0\n")
            .unwrap()
            .resolve(Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("evidence.retention_days"), "{err}");
        let err = FileConfig::parse("s", "[evidence]\noverflow = \"shrug\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn posture_settings() {
        let c = FileConfig::parse("s", "")
            .unwrap()
            .resolve(Overrides::default())
            .unwrap();
        assert_eq!(c.posture_observation_days, DEFAULT_OBSERVATION_DAYS);
        let c = FileConfig::parse("s", "[posture]\nobservation_days = 0\n")
            .unwrap()
            .resolve(Overrides::default())
            .unwrap();
        assert_eq!(c.posture_observation_days, 0);
        let err = FileConfig::parse("s", "[posture]\nobservation_days = 400\n")
            .unwrap()
            .resolve(Overrides::default())
            .unwrap_err();
        assert!(
            err.to_string().contains("posture.observation_days"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = FileConfig::parse("steward.toml", "listne = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `listne`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = FileConfig::parse("s", "trust_domain = \"Bad Domain\"")
            .unwrap()
            .resolve(Overrides::default())
            .unwrap_err();
        assert!(err.to_string().starts_with("`trust_domain`"), "{err}");
        let err = FileConfig::parse("s", "database_url = \"mysql://x\"")
            .unwrap()
            .resolve(Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
        let err = FileConfig::parse("s", "[limits]\nmax_body_bytes = 0")
            .unwrap()
            .resolve(Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("limits.max_body_bytes"), "{err}");
    }
}
