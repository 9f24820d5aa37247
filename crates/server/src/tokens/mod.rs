//! The token service: the control plane's signing keys (sealed at rest under the
//! key-encryption key, rotated with an overlap window), the directory of clients and their
//! registered keys, and the OAuth token endpoint with discovery documents.
//!
//! Keys live in the store so every replica signs with the same key; each replica reloads
//! them every [`KEY_REFRESH`] and after a rotation it made itself.

mod discovery;
mod endpoint;
mod exchange;
mod federation;
mod introspect;
mod jit;
mod oauth_error;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use steward_governance::State;
use steward_model::{IdentityKind, LifecycleState, PlaneTree};
use steward_store::{Actor, SigningKeyRow, Store};
use steward_token::{Kek, PublicKey, ReplayCache, SigningKey, Validator};

use crate::config::{KekSource, TokenConfig};

pub use discovery::{
    jwks, keys_list, keys_rotate, oauth_metadata, openid_configuration, spiffe_bundle,
};
pub use endpoint::token;
pub use introspect::introspect;
pub use jit::approve_route as approve_jit;

/// How often each replica rereads the signing keys (another replica's rotation, a retired
/// key's overlap ending).
pub const KEY_REFRESH: Duration = Duration::from_secs(30);
/// Oldest a client secret may get when no plane sets `max_credential_age_days`.
pub const DEFAULT_MAX_SECRET_AGE_DAYS: u64 = 90;

/// Why a client secret made at `created` is too old at `now`, if it is.
pub fn secret_too_old(created: i64, max_days: u64, now: i64) -> Option<String> {
    let age_days = (now - created).max(0) / 86_400;
    (now - created > (max_days as i64).saturating_mul(86_400)).then(|| {
        format!(
            "the client secret is {age_days} days old, more than the {max_days} days its plane allows (max_credential_age_days); rotate it"
        )
    })
}

/// Largest token request body.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 64 * 1024;
/// Live client assertions remembered for replay detection.
const REPLAY_CAPACITY: usize = 1_000_000;

/// Why the control plane could not start: its token service's keys (it refuses to serve
/// without a usable key), its store or its port.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("key-encryption key: {0}")]
    Kek(String),
    #[error("signing keys: {0}")]
    Keys(String),
    #[error(transparent)]
    Store(#[from] steward_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    #[error(
        "the store already holds admin credentials: an in-process server starts on a fresh store, so it can hand out the bootstrap credential"
    )]
    NotFresh,
}

/// The keys in force at one moment.
pub struct KeyRing {
    signer: SigningKey,
    /// Signs policy bundles: the oldest key still published (see `load_ring`), so a
    /// rotation never leaves an enforcement point unable to verify the next bundle.
    bundle_signer: SigningKey,
    /// The signing key's public half and every retired key still in its overlap window.
    published: Vec<PublicKey>,
    validator: Arc<Validator>,
    /// Grows with every change of the published set: keys ever made plus keys whose
    /// overlap ended (both only grow). The SPIFFE bundle's `spiffe_sequence`.
    pub sequence: i64,
    /// When the signing key was made (Unix seconds): its age is what scheduled rotation
    /// and the key-age metric read.
    pub signer_made_at: i64,
}

impl KeyRing {
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// The key policy bundles are signed with.
    pub fn bundle_signer(&self) -> &SigningKey {
        &self.bundle_signer
    }

    /// The shared validator for tokens of this control plane (every published key).
    pub fn validator(&self) -> Arc<Validator> {
        self.validator.clone()
    }

    pub(crate) fn public_keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.published.iter()
    }

    /// The `kid`s published now, the signing key's first.
    pub fn kids(&self) -> Vec<&str> {
        self.published.iter().map(PublicKey::kid).collect()
    }
}

/// A legacy-key identity's static secret: its SHA-256 (hex) and when it was made.
#[derive(Debug)]
pub struct ClientSecret {
    pub hash: String,
    pub created: i64,
}

/// A client of the token endpoint: an identity with registered keys or a client secret.
#[derive(Debug)]
pub struct Client {
    pub plane: String,
    pub environment: String,
    pub kind: IdentityKind,
    pub state: LifecycleState,
    pub keys: Vec<PublicKey>,
    /// The identity's own token lifetime.
    pub ttl: Option<u64>,
    /// Its plane's inherited `max_token_ttl_secs`.
    pub plane_max_ttl: Option<u64>,
    /// A legacy-key identity's client secret.
    pub secret: Option<ClientSecret>,
    /// Its plane's inherited `max_credential_age_days`.
    pub max_credential_age_days: Option<u64>,
    /// Thumbprints of client certificates that authenticate it (mutual TLS).
    pub tls_certificates: Vec<String>,
    /// What it may do at the control plane as an enforcement point.
    pub point: Option<steward_model::PointGrant>,
}

/// Clients by SPIFFE ID, rebuilt with the policy engine after every registry change.
#[derive(Debug, Default)]
pub struct Directory {
    clients: HashMap<String, Client>,
    /// Trusted external issuers by their exact `iss`.
    issuers: HashMap<String, Vec<Arc<federation::Issuer>>>,
    /// Each plane's inherited `max_token_ttl_secs`.
    plane_max_ttl: HashMap<String, Option<u64>>,
    /// Just-in-time workflows by id.
    workflows: HashMap<String, steward_model::Workflow>,
}

impl Directory {
    /// Every identity that registered keys or holds a client secret. A key that does not
    /// parse (it was checked at apply, so only a corrupt row) is left out, with a warning.
    pub fn build(state: &State, secrets: &[steward_store::ClientSecretRow]) -> Self {
        let mut by_id: HashMap<&str, &steward_store::ClientSecretRow> =
            secrets.iter().map(|s| (s.spiffe_id.as_str(), s)).collect();
        let mut clients = HashMap::new();
        let tree = PlaneTree::new(&state.planes);
        for stored in state.identities.values() {
            let i = &stored.identity;
            let secret = by_id.remove(i.spiffe_id.as_str()).map(|s| ClientSecret {
                hash: s.secret_hash.clone(),
                created: steward_model::timestamp::to_unix(&s.created_at).unwrap_or(0),
            });
            if i.credentials.public_keys.is_empty()
                && secret.is_none()
                && i.credentials.tls_certificates.is_empty()
            {
                continue;
            }
            let keys = i
                .credentials
                .public_keys
                .iter()
                .filter_map(|k| match steward_token::client_public_key(k) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        tracing::warn!(identity = %i.spiffe_id, kid = %k.kid, error = %e, "registered key ignored");
                        None
                    }
                })
                .collect();
            let settings = tree.effective_settings(&state.root_settings, &i.plane);
            clients.insert(
                i.spiffe_id.to_string(),
                Client {
                    plane: i.plane.to_string(),
                    environment: i.environment.clone(),
                    kind: i.kind,
                    state: i.state,
                    keys,
                    ttl: i.credentials.token_ttl_secs,
                    plane_max_ttl: settings.max_token_ttl_secs,
                    secret,
                    max_credential_age_days: settings.max_credential_age_days,
                    tls_certificates: i.credentials.tls_certificates.clone(),
                    point: i.credentials.enforcement_point.clone(),
                },
            );
        }
        let plane_max_ttl = state
            .planes
            .keys()
            .map(|p| {
                let s = tree.effective_settings(&state.root_settings, p);
                (p.to_string(), s.max_token_ttl_secs)
            })
            .collect();
        Self {
            clients,
            issuers: federation::issuers(state),
            plane_max_ttl,
            workflows: state
                .workflows
                .iter()
                .map(|(id, w)| (id.clone(), w.clone()))
                .collect(),
        }
    }

    pub fn client(&self, spiffe_id: &str) -> Option<&Client> {
        self.clients.get(spiffe_id)
    }

    /// The trusted issuers whose `iss` is exactly `iss`.
    pub fn issuers_for(&self, iss: &str) -> Option<&[Arc<federation::Issuer>]> {
        self.issuers.get(iss).map(Vec::as_slice)
    }

    pub fn workflow(&self, id: &str) -> Option<&steward_model::Workflow> {
        self.workflows.get(id)
    }

    /// A plane's inherited `max_token_ttl_secs`.
    pub fn plane_max_ttl(&self, plane: &str) -> Option<u64> {
        self.plane_max_ttl.get(plane).copied().flatten()
    }
}

/// The token service's state, shared by every request.
pub struct TokenService {
    pub config: TokenConfig,
    kek: Kek,
    ring: RwLock<Arc<KeyRing>>,
    /// The directory lives with the policy engine: both are swapped in one step.
    derived: Arc<crate::policy::DerivedSlot>,
    replay: ReplayCache,
    jwks: federation::JwksCache,
    /// (client, workflow) pairs that got a JIT credential since start: a new one renews.
    jit_issued: parking_lot::Mutex<std::collections::HashSet<(String, String)>>,
    /// Every revocation in force, consulted by the validator of subject tokens and by
    /// federation; kept current by the revocation hub.
    revocations: Arc<steward_enforce::RevocationSet>,
}

impl TokenService {
    /// Opens the key-encryption key and the signing keys (creating the first key on a new
    /// store).
    pub async fn start(store: &Store, config: TokenConfig) -> Result<Self, StartError> {
        let kek = load_kek(&config.kek)?;
        let revocations = Arc::new(steward_enforce::RevocationSet::default());
        let ring = load_ring(store, &kek, &config, &revocations).await?;
        Ok(Self {
            revocations,
            replay: ReplayCache::new(now_unix(), REPLAY_CAPACITY),
            config,
            kek,
            ring: RwLock::new(Arc::new(ring)),
            derived: Arc::default(),
            jwks: federation::JwksCache::new(),
            jit_issued: Default::default(),
        })
    }

    /// The revocations in force (filled by the revocation hub).
    pub fn revocations(&self) -> &Arc<steward_enforce::RevocationSet> {
        &self.revocations
    }

    /// Seals a secret under the key-encryption key, bound to `label` (egress secrets).
    pub fn seal(&self, label: &str, secret: &[u8]) -> Result<String, steward_token::TokenError> {
        self.kek.seal(label, secret)
    }

    /// The key-encryption key, for other keys sealed at rest (the evidence checkpoint key).
    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    /// Opens what [`TokenService::seal`] sealed under the same `label`.
    pub fn open(&self, label: &str, sealed: &str) -> Result<Vec<u8>, steward_token::TokenError> {
        self.kek.open(label, sealed)
    }

    pub fn ring(&self) -> Option<Arc<KeyRing>> {
        Some(self.ring.read().clone())
    }

    /// Who may obtain tokens now.
    pub fn directory(&self) -> Arc<Directory> {
        self.derived.current().directory.clone()
    }

    /// The slot the directory and the policy engine are swapped in together.
    pub(crate) fn derived(&self) -> Arc<crate::policy::DerivedSlot> {
        self.derived.clone()
    }

    /// Rereads the keys from the store.
    pub async fn refresh(&self, store: &Store) -> Result<(), StartError> {
        let ring = load_ring(store, &self.kek, &self.config, &self.revocations).await?;
        *self.ring.write() = Arc::new(ring);
        Ok(())
    }

    /// A new signing key takes over at once; the old one verifies until the overlap
    /// window ends. Returns (new kid, old kid, old key verifies until).
    pub async fn rotate(
        &self,
        store: &Store,
        actor: &Actor,
    ) -> Result<(String, Option<String>, String), StartError> {
        let row = new_key_row(&self.kek)?;
        let until =
            steward_model::timestamp::from_unix(now_unix() + self.config.key_overlap_secs as i64);
        let old = store.rotate_signing_key(&row, &until, actor).await?;
        self.refresh(store).await?;
        Ok((row.kid, old, until))
    }

    /// The scheduled rotation period, if any.
    pub fn rotation_period_secs(&self) -> Option<u64> {
        self.config.rotation_period_secs
    }

    /// Rotates the signing key if it is older than `tokens.rotation_period_secs` (checked
    /// under the store's write lock: replicas rotate once between them). Returns what
    /// [`TokenService::rotate`] does when it rotated.
    pub async fn rotate_if_due(
        &self,
        store: &Store,
    ) -> Result<Option<(String, Option<String>, String)>, StartError> {
        let Some(period) = self.config.rotation_period_secs else {
            return Ok(None);
        };
        let made_before = now_unix() - i64::try_from(period).unwrap_or(i64::MAX);
        // The key in force is known here: only when it looks due is a key made and the
        // store's write lock taken (where another replica's rotation is seen).
        if self.ring.read().signer_made_at >= made_before {
            return Ok(None);
        }
        let row = new_key_row(&self.kek)?;
        let until =
            steward_model::timestamp::from_unix(now_unix() + self.config.key_overlap_secs as i64);
        let rotated = store
            .rotate_signing_key_made_before(&row, &until, Some(made_before), &Actor::rotation())
            .await?;
        let Some(old) = rotated else {
            return Ok(None);
        };
        self.refresh(store).await?;
        Ok(Some((row.kid, old, until)))
    }

    /// Records a JIT credential for `client` in `workflow`; whether it renews an earlier one.
    pub fn note_jit(&self, client: &str, workflow: &str) -> bool {
        !self
            .jit_issued
            .lock()
            .insert((client.to_owned(), workflow.to_owned()))
    }

    /// Keys fetched from trusted issuers' `jwks_uri`.
    pub fn jwks(&self) -> &federation::JwksCache {
        &self.jwks
    }

    pub fn replay(&self) -> &ReplayCache {
        &self.replay
    }

    /// `{issuer}/oauth2/token`: the `aud` client assertions must name.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.config.issuer)
    }

    /// `{issuer}/oauth2/introspect`: the introspection endpoint discovery advertises, and
    /// the `aud` a client assertion sent there may name.
    pub fn introspection_endpoint(&self) -> String {
        format!(
            "{}{}",
            self.config.issuer,
            steward_api::RouteId::Introspect.route().path
        )
    }
}

/// Rereads the keys every [`KEY_REFRESH`]; a failure keeps the old keys and is logged.
pub fn spawn_refresh(service: Arc<TokenService>, store: Store) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_REFRESH);
        tick.tick().await;
        loop {
            tick.tick().await;
            match service.rotate_if_due(&store).await {
                Ok(Some((kid, old, until))) => {
                    tracing::info!(%kid, previous = ?old, previous_verifies_until = %until, "the signing key reached tokens.rotation_period_secs and was rotated");
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the scheduled signing-key rotation failed; retried at the next check");
                }
            }
            if let Err(e) = service.refresh(&store).await {
                tracing::error!(error = %e, "signing keys could not be reloaded; keeping the previous ones");
            }
        }
    })
}

pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn new_key_row(kek: &Kek) -> Result<SigningKeyRow, StartError> {
    let (key, pkcs8) = SigningKey::generate().map_err(|e| StartError::Keys(e.to_string()))?;
    let sealed = kek
        .seal(key.kid(), &pkcs8)
        .map_err(|e| StartError::Keys(e.to_string()))?;
    let public_jwk = serde_json::to_string(key.public_key().jwk())
        .map_err(|e| StartError::Keys(e.to_string()))?;
    Ok(SigningKeyRow {
        kid: key.kid().to_owned(),
        alg: steward_token::ALG.to_owned(),
        public_jwk,
        sealed_private: sealed,
        created_at: steward_model::timestamp::now(),
        retired_at: None,
        publish_until: None,
    })
}

async fn load_ring(
    store: &Store,
    kek: &Kek,
    config: &TokenConfig,
    revocations: &Arc<steward_enforce::RevocationSet>,
) -> Result<KeyRing, StartError> {
    let mut rows = store.signing_keys().await?;
    if !rows.iter().any(|r| r.retired_at.is_none()) {
        let first = new_key_row(kek)?;
        if store.insert_first_signing_key(&first).await? {
            tracing::info!(kid = %first.kid, "created the first token signing key");
        }
        rows = store.signing_keys().await?;
    }
    let now = now_unix();
    let active = rows
        .iter()
        .find(|r| r.retired_at.is_none())
        .ok_or_else(|| StartError::Keys("no signing key in the store".into()))?;
    let pkcs8 = kek
        .open(&active.kid, &active.sealed_private)
        .map_err(|e| StartError::Keys(e.to_string()))?;
    let signer = SigningKey::from_pkcs8(&pkcs8).map_err(|e| StartError::Keys(e.to_string()))?;
    if signer.kid() != active.kid {
        return Err(StartError::Keys(format!(
            "the stored key `{}` opens to a different key `{}`",
            active.kid,
            signer.kid()
        )));
    }
    let mut published = vec![signer.public_key().clone()];
    // The retired key whose overlap ends first: every bundle issued since it was made
    // lists it, so every enforcement point updated since trusts a bundle it signs.
    let mut oldest: Option<(i64, &SigningKeyRow)> = None;
    for r in rows.iter().filter(|r| r.retired_at.is_some()) {
        let Some(until) = r
            .publish_until
            .as_deref()
            .and_then(steward_model::timestamp::to_unix)
        else {
            continue;
        };
        if until <= now {
            continue;
        }
        if oldest.is_none_or(|(u, _)| until < u) {
            oldest = Some((until, r));
        }
        let jwk: steward_token::Jwk = serde_json::from_str(&r.public_jwk)
            .map_err(|e| StartError::Keys(format!("stored public key `{}`: {e}", r.kid)))?;
        let key = jwk
            .to_public_key()
            .map_err(|e| StartError::Keys(format!("stored public key `{}`: {e}", r.kid)))?;
        published.push(key);
    }
    let bundle_signer = match oldest {
        Some((_, row)) => {
            let pkcs8 = kek
                .open(&row.kid, &row.sealed_private)
                .map_err(|e| StartError::Keys(e.to_string()))?;
            SigningKey::from_pkcs8(&pkcs8).map_err(|e| StartError::Keys(e.to_string()))?
        }
        None => SigningKey::from_pkcs8(&pkcs8).map_err(|e| StartError::Keys(e.to_string()))?,
    };
    let gone = rows.iter().filter(|r| r.retired_at.is_some()).count() + 1 - published.len();
    let sequence = (rows.len() + gone) as i64;
    let validator = Validator::new(
        config.issuer.clone(),
        published.iter().cloned(),
        config.clock_skew_secs as i64,
    )
    .with_revocation(revocations.clone());
    Ok(KeyRing {
        signer_made_at: steward_model::timestamp::to_unix(&active.created_at).unwrap_or(now),
        signer,
        bundle_signer,
        published,
        validator: Arc::new(validator),
        sequence,
    })
}

/// Reads the key-encryption key the configuration names, creating none: for tools that
/// work on an existing store (a backup, a restore) and must not invent a key.
pub fn existing_kek(source: &KekSource) -> Result<Kek, StartError> {
    let (path, what) = match source {
        KekSource::DataDir(path) => (path, "the default next to the data"),
        KekSource::File(path) => (path, "tokens.key_encryption_key_file"),
        KekSource::Env(_) => return load_kek(source),
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        StartError::Kek(format!(
            "cannot read the key-encryption key `{}` ({what}): {e}",
            path.display()
        ))
    })?;
    Kek::from_base64(&text).map_err(|e| StartError::Kek(e.to_string()))
}

/// Reads the key-encryption key; the default (`<data_dir>/key-encryption-key`) is created
/// on first start, readable by the owner only.
fn load_kek(source: &KekSource) -> Result<Kek, StartError> {
    let text = match source {
        KekSource::Env(var) => std::env::var(var).map_err(|_| {
            StartError::Kek(format!(
                "environment variable `{var}` (tokens.key_encryption_key_env) is not set"
            ))
        })?,
        KekSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            StartError::Kek(format!(
                "cannot read `{}` (tokens.key_encryption_key_file): {e}",
                path.display()
            ))
        })?,
        KekSource::DataDir(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = Kek::generate_base64().map_err(|e| StartError::Kek(e.to_string()))?;
                write_private(path, &text).map_err(|e| {
                    StartError::Kek(format!("cannot create `{}`: {e}", path.display()))
                })?;
                tracing::warn!(
                    path = %path.display(),
                    "generated a key-encryption key next to the data; in production set tokens.key_encryption_key_file to a mounted secret"
                );
                text
            }
            Err(e) => {
                return Err(StartError::Kek(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )));
            }
        },
    };
    Kek::from_base64(&text).map_err(|e| StartError::Kek(e.to_string()))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token service on `dir`'s store whose keys overlap for one second, rotated on
    /// schedule every `period` seconds if given.
    fn short_lived_keys(dir: &std::path::Path, period: Option<u64>) -> TokenConfig {
        let mut file = crate::config::FileConfig::default();
        file.tokens.max_ttl_secs = Some(1);
        file.tokens.clock_skew_secs = Some(0);
        file.tokens.key_overlap_secs = Some(1);
        file.tokens.rotation_period_secs = period;
        file.resolve(crate::config::Overrides {
            data_dir: Some(dir.into()),
            ..Default::default()
        })
        .unwrap()
        .tokens
    }

    /// A key younger than the rotation period stays; once older it is rotated, once, by
    /// whichever replica checks first, and recorded in the change log as the schedule's.
    #[tokio::test]
    async fn keys_rotate_on_schedule_once_between_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let config = short_lived_keys(dir.path(), Some(2));
        let one = TokenService::start(&store, config.clone()).await.unwrap();
        let two = TokenService::start(&store, config).await.unwrap();
        let first = one.ring().unwrap().kids()[0].to_owned();
        assert!(
            one.rotate_if_due(&store).await.unwrap().is_none(),
            "not due yet"
        );
        tokio::time::sleep(Duration::from_millis(3_100)).await;
        let (new, old, _) = one.rotate_if_due(&store).await.unwrap().unwrap();
        assert_eq!(old.as_deref(), Some(first.as_str()));
        // The other replica sees a fresh key: nothing to do.
        assert!(two.rotate_if_due(&store).await.unwrap().is_none());
        two.refresh(&store).await.unwrap();
        assert_eq!(two.ring().unwrap().signer().kid(), new);
        let rotations = store
            .signing_keys()
            .await
            .unwrap()
            .iter()
            .filter(|k| k.retired_at.is_some())
            .count();
        assert_eq!(rotations, 1);
        let changes = store.admin_changes(0, 100).await.unwrap();
        let rotated: Vec<_> = changes
            .iter()
            .filter(|c| c.action == "keys.rotate")
            .collect();
        assert_eq!(rotated.len(), 1, "{changes:?}");
        assert!(rotated[0].actor.contains("scheduled"), "{changes:?}");
    }

    /// A rotation period no longer than the overlap is refused when the file is read.
    #[test]
    fn a_rotation_period_within_the_overlap_is_refused() {
        let mut file = crate::config::FileConfig::default();
        file.tokens.key_overlap_secs = Some(7_200);
        file.tokens.rotation_period_secs = Some(3_600);
        let e = file
            .resolve(crate::config::Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokens.rotation_period_secs"), "{e}");
    }

    /// After a rotation the old key verifies during the overlap, then leaves the set.
    #[tokio::test]
    async fn a_rotated_key_leaves_after_its_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let service = TokenService::start(&store, short_lived_keys(dir.path(), None))
            .await
            .unwrap();
        let first = service.ring().unwrap().kids()[0].to_owned();
        let (new, old, _) = service.rotate(&store, &Actor::system()).await.unwrap();
        assert_eq!(old.as_deref(), Some(first.as_str()));
        assert_eq!(
            service.ring().unwrap().kids(),
            [new.as_str(), first.as_str()]
        );
        tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
        service.refresh(&store).await.unwrap();
        assert_eq!(service.ring().unwrap().kids(), [new.as_str()]);
        // A restart with the same key-encryption key reopens the same signing key.
        let again = TokenService::start(&store, service.config.clone())
            .await
            .unwrap();
        assert_eq!(again.ring().unwrap().signer().kid(), new);
    }

    #[test]
    fn secrets_expire_with_the_plane_maximum() {
        let day = 86_400;
        assert_eq!(secret_too_old(0, 30, 30 * day), None);
        let msg = secret_too_old(0, 30, 31 * day).unwrap();
        assert!(
            msg.contains("31 days old") && msg.contains("30 days"),
            "{msg}"
        );
        assert_eq!(
            secret_too_old(10 * day, 30, 0),
            None,
            "a clock behind is not too old"
        );
    }
}
