//! Keeping the policy bundle current: fetch it from the control plane, verify its
//! signature against keys already trusted, compile it, swap it in; and refuse to decide
//! with a bundle that has not been confirmed for longer than the configured staleness.

use std::sync::Arc;

use parking_lot::RwLock;
use std::time::{Duration, Instant};

use steward_api::RouteId;
use steward_token::{Jwk, PublicKey};

use crate::EnforceError;
use crate::bundle::{Bundle, Enforcer};
use crate::revocation::RevocationSet;

/// Where the bundle comes from and how fresh it must be.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The control plane's base URL.
    pub url: String,
    /// How the point authenticates: an ingestor (or central-admin) credential, or its
    /// own identity's token.
    pub credential: crate::ControlPlaneAuth,
    /// This enforcement point's name, reported with every fetch.
    pub point: String,
    /// How often to ask for a newer bundle.
    pub refresh: Duration,
    /// How long the last good bundle keeps deciding without the control plane
    /// confirming it; after that every request is refused.
    pub max_staleness: Duration,
    /// Keys trusted to sign the first bundle. Empty: take the control plane's JWKS on
    /// first contact (trust on first use, logged).
    pub anchor: Vec<PublicKey>,
}

struct Slot {
    enforcer: Option<Arc<Enforcer>>,
    trusted: Vec<PublicKey>,
    etag: Option<String>,
    last_contact: Option<Instant>,
    last_error: Option<String>,
}

/// What `status` reports about the bundle in force.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    pub policy_version: Option<i64>,
    pub issued_at: Option<i64>,
    pub seconds_since_contact: Option<u64>,
    pub stale: bool,
    pub last_error: Option<String>,
    /// The revocation epoch applied.
    pub revocation_epoch: i64,
}

/// The bundle in force at one enforcement point.
pub struct BundleSource {
    config: SourceConfig,
    http: reqwest::Client,
    slot: RwLock<Slot>,
    revocations: Arc<RevocationSet>,
}

impl BundleSource {
    pub fn new(config: SourceConfig, http: reqwest::Client) -> Arc<Self> {
        Arc::new(Self {
            slot: RwLock::new(Slot {
                enforcer: None,
                trusted: config.anchor.clone(),
                etag: None,
                last_contact: None,
                last_error: None,
            }),
            config,
            http,
            revocations: Arc::new(RevocationSet::default()),
        })
    }

    /// The revocations every enforcer of this source consults (kept current by a
    /// [`crate::RevocationFeed`]).
    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    /// The configuration this source was made with.
    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// The enforcer to decide with, or why every request must be refused now.
    pub fn current(&self) -> Result<Arc<Enforcer>, EnforceError> {
        let slot = self.slot.read();
        let (Some(enforcer), Some(contact)) = (&slot.enforcer, slot.last_contact) else {
            return Err(EnforceError::NoBundle {
                last_error: slot.last_error.clone(),
            });
        };
        let age = contact.elapsed();
        if age > self.config.max_staleness {
            return Err(EnforceError::StaleBundle {
                age_secs: age.as_secs(),
                max_secs: self.config.max_staleness.as_secs(),
                last_error: slot.last_error.clone(),
            });
        }
        self.revocations.fresh(self.config.max_staleness)?;
        Ok(enforcer.clone())
    }

    pub fn status(&self) -> SourceStatus {
        let slot = self.slot.read();
        SourceStatus {
            policy_version: slot.enforcer.as_ref().map(|e| e.policy_version()),
            issued_at: slot.enforcer.as_ref().map(|e| e.issued_at()),
            seconds_since_contact: slot.last_contact.map(|c| c.elapsed().as_secs()),
            stale: slot
                .last_contact
                .is_none_or(|c| c.elapsed() > self.config.max_staleness)
                || self.revocations.fresh(self.config.max_staleness).is_err(),
            last_error: slot.last_error.clone(),
            revocation_epoch: self.revocations.epoch(),
        }
    }

    /// Verifies, compiles and installs a bundle (the text of a JWS), if it is not older
    /// than the one in force.
    pub fn install(&self, text: &str) -> Result<i64, EnforceError> {
        let trusted = self.slot.read().trusted.clone();
        let bundle = Bundle::verify(text, &trusted)?;
        let held = || self.slot.read().enforcer.as_ref().map(|e| e.issued_at());
        let rollback = |held: Option<i64>| match held {
            Some(held) if bundle.issued_at < held => Err(EnforceError::Rollback {
                issued_at: bundle.issued_at,
                held,
            }),
            _ => Ok(()),
        };
        rollback(held())?;
        let enforcer = bundle.enforcer(self.revocations.clone())?;
        let version = enforcer.policy_version();
        let mut slot = self.slot.write();
        // Checked again under the write lock: another install may have won meanwhile.
        rollback(slot.enforcer.as_ref().map(|e| e.issued_at()))?;
        slot.trusted = enforcer.keys().to_vec();
        slot.enforcer = Some(Arc::new(enforcer));
        slot.last_contact = Some(Instant::now());
        slot.last_error = None;
        Ok(version)
    }

    /// Asks the control plane for a newer bundle once. `Ok(true)` when a new bundle was
    /// installed, `Ok(false)` when the one in force is current.
    pub async fn refresh(self: &Arc<Self>) -> Result<bool, EnforceError> {
        let result = self.fetch().await;
        if let Err(e) = &result {
            self.slot.write().last_error = Some(e.to_string());
        }
        result
    }

    async fn fetch(self: &Arc<Self>) -> Result<bool, EnforceError> {
        let base = self.config.url.trim_end_matches('/');
        let needs_anchor = self.slot.read().trusted.is_empty();
        if needs_anchor {
            let keys = self.fetch_jwks(base).await?;
            tracing::warn!(
                keys = ?keys.iter().map(PublicKey::kid).collect::<Vec<_>>(),
                "no bundle signing keys configured (control_plane.trusted_keys_file): trusting the control plane's JWKS on first use"
            );
            self.slot.write().trusted = keys;
        }
        let etag = self.slot.read().etag.clone();
        let mut request = self
            .http
            .get(format!("{base}{}", RouteId::Bundle.route().path))
            .header("steward-enforcement-point", self.config.point.as_str())
            .bearer_auth(self.config.credential.bearer()?)
            .timeout(Duration::from_secs(60));
        if let Some(etag) = &etag {
            request = request.header("if-none-match", etag);
        }
        let response = request.send().await.map_err(|e| unreachable(base, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            let mut slot = self.slot.write();
            if slot.enforcer.is_some() {
                slot.last_contact = Some(Instant::now());
                slot.last_error = None;
                return Ok(false);
            }
        }
        let response = crate::success(response).await?;
        let new_etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| unreachable(base, &e))?;
        let me = self.clone();
        let version = tokio::task::spawn_blocking(move || me.install(&text))
            .await
            .map_err(|e| EnforceError::Compile(e.to_string()))??;
        self.slot.write().etag = new_etag;
        tracing::info!(policy_version = version, "policy bundle installed");
        Ok(true)
    }

    async fn fetch_jwks(&self, base: &str) -> Result<Vec<PublicKey>, EnforceError> {
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<Jwk>,
        }
        let response = self
            .http
            .get(format!("{base}{}", RouteId::Jwks.route().path))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unreachable(base, &e))?;
        if !response.status().is_success() {
            return Err(EnforceError::Refused {
                status: response.status().as_u16(),
                message: format!("GET {} failed", RouteId::Jwks.route().path),
            });
        }
        let jwks: Jwks = response
            .json()
            .await
            .map_err(|e| EnforceError::Malformed(format!("the JWKS: {e}")))?;
        jwks.keys
            .iter()
            .map(|k| {
                k.to_public_key()
                    .map_err(|e| EnforceError::Malformed(format!("a JWKS key: {e}")))
            })
            .collect()
    }

    /// Refreshes now and then every `refresh`, forever (a task per point).
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                match me.refresh().await {
                    Ok(_) if failing => {
                        tracing::info!("the control plane is reachable again");
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !failing {
                            tracing::error!(error = %e, "cannot refresh the policy bundle; the last good one keeps deciding until it is stale");
                        }
                        failing = true;
                    }
                }
                tokio::time::sleep(me.config.refresh).await;
            }
        })
    }

    /// Waits until a bundle is in force, at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), EnforceError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.current() {
                Ok(_) => return Ok(()),
                Err(why) if Instant::now() >= deadline => return Err(why),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

pub(crate) fn unreachable(base: &str, e: &reqwest::Error) -> EnforceError {
    // reqwest's message names the URL (no credential) and the cause.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    EnforceError::Unreachable {
        url: base.to_owned(),
        message,
    }
}
