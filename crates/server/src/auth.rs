//! Admin authentication: bearer credentials `stw_<id>_<secret>`, stored as SHA-256.
//!
//! Credentials are 256-bit random secrets, so a fast hash is enough (no password
//! stretching needed) and lookups are by id, with a constant-time hash comparison.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};

use steward_model::{PlaneId, Role};
use steward_store::{Actor, NewCredential, Store, StoreError};

use crate::AppState;
use crate::error::ApiError;

const PREFIX: &str = "stw_";
/// Longest Authorization header value considered; anything longer is refused unread.
const MAX_TOKEN_LEN: usize = 256;

/// A freshly minted credential: the token is shown once and never stored.
pub struct Minted {
    pub id: String,
    pub token: String,
    pub hash: String,
}

/// Mints a new random credential.
pub fn mint() -> Result<Minted, getrandom::Error> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = hex::encode(id);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let token = format!("{PREFIX}{id}_{secret}");
    let hash = hash_token(&token);
    Ok(Minted { id, token, hash })
}

/// A static client secret for a legacy-key identity: `sts_` and 256 random bits.
pub fn mint_secret() -> Result<String, getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    Ok(format!(
        "sts_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    ))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates the first central-admin credential when the store has none, returning its
/// token so the caller can show it once.
pub async fn bootstrap(store: &Store) -> Result<Option<String>, StoreError> {
    if store.has_credentials().await? {
        return Ok(None);
    }
    Ok(Some(
        central_admin(store, "bootstrap", &Actor::system()).await?,
    ))
}

/// A fresh central-admin credential made by whoever can start the control plane on its
/// store, for when every admin credential is lost (a bootstrap printed once and gone).
/// Host access is the authority here, so the creation is recorded like any other: in the
/// admin change log and the evidence chain, by the actor `host-recovery`.
pub async fn recover_admin(store: &Store) -> Result<String, StoreError> {
    let actor = Actor {
        credential_id: "host-recovery".into(),
        name: "steward serve --new-admin-credential-file".into(),
        role: Role::CentralAdmin,
    };
    let name = format!("recovery {}", steward_model::timestamp::now());
    central_admin(store, &name, &actor).await
}

async fn central_admin(store: &Store, name: &str, actor: &Actor) -> Result<String, StoreError> {
    let minted = mint().map_err(|e| StoreError::NoRandomness(e.to_string()))?;
    let new = NewCredential {
        id: minted.id,
        name: name.into(),
        role: Role::CentralAdmin,
        token_hash: minted.hash,
        expires_at: None,
    };
    store.create_credential(&new, actor).await?;
    Ok(minted.token)
}

/// The authenticated caller of an admin request.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

/// Authenticates the bearer credential of a request, whatever its role.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Actor, ApiError> {
    admin_credential(&parts.headers, state).await
}

/// Authenticates the admin credential in `headers`, whatever its role: for handlers
/// that take either an admin credential or another kind of caller (token introspection).
pub(crate) async fn admin_credential(
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Result<Actor, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::unauthorized(
            "an admin credential is required: send `Authorization: Bearer stw_…` (exactly one header)",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not readable text"))?;
    if value.len() > MAX_TOKEN_LEN {
        return Err(ApiError::unauthorized(
            "the Authorization header is too long",
        ));
    }
    let token = value
        .strip_prefix("Bearer ")
        .ok_or_else(|| {
            ApiError::unauthorized("use the Bearer scheme: `Authorization: Bearer stw_…`")
        })?
        .trim();
    let id = token
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .ok_or_else(|| {
            ApiError::unauthorized("the credential is not a Steward admin credential")
        })?;
    let presented = hash_token(token);
    if let Some((actor, expires_at)) = state.credentials.get(&presented) {
        expired(&actor.credential_id, expires_at.as_deref())?;
        return Ok(actor);
    }
    let record = state.store.credential(id).await.map_err(ApiError::from)?;
    let invalid = || ApiError::unauthorized("the admin credential is unknown or revoked");
    let record = record.ok_or_else(invalid)?;
    if !constant_time_eq(record.token_hash.as_bytes(), hash_token(token).as_bytes())
        || record.revoked_at.is_some()
    {
        return Err(invalid());
    }
    expired(&record.id, record.expires_at.as_deref())?;
    let actor = Actor {
        credential_id: record.id,
        name: record.name,
        role: record.role,
    };
    state
        .credentials
        .put(presented, actor.clone(), record.expires_at);
    Ok(actor)
}

/// Refuses a credential past its `expires_at`, saying when and what to do.
fn expired(id: &str, expires_at: Option<&str>) -> Result<(), ApiError> {
    let Some(at) = expires_at else {
        return Ok(());
    };
    if at <= steward_model::timestamp::now().as_str() {
        return Err(ApiError::unauthorized(format!(
            "the admin credential `{id}` expired at {at}; ask a central admin for a new one (`steward credential create --expires-in …`)"
        )));
    }
    Ok(())
}

/// How long a verified credential is trusted without asking the store again. A revocation
/// through this server takes effect at once (the cache is cleared); one made through
/// another replica sharing the database takes effect within this time.
pub const CREDENTIAL_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
const CREDENTIAL_CACHE_MAX: usize = 10_000;

/// Verified credentials by the SHA-256 of the presented token, so a busy enforcement
/// point's every request does not cost a store round trip.
#[derive(Default)]
pub(crate) struct CredentialCache {
    entries: parking_lot::Mutex<std::collections::HashMap<String, Cached>>,
}

/// A verified credential, its expiry (checked on every use) and when it was verified.
type Cached = (Actor, Option<String>, std::time::Instant);

impl CredentialCache {
    fn get(&self, token_hash: &str) -> Option<(Actor, Option<String>)> {
        let entries = self.entries.lock();
        entries
            .get(token_hash)
            .filter(|(_, _, at)| at.elapsed() < CREDENTIAL_CACHE_TTL)
            .map(|(actor, expires_at, _)| (actor.clone(), expires_at.clone()))
    }

    fn put(&self, token_hash: String, actor: Actor, expires_at: Option<String>) {
        let mut entries = self.entries.lock();
        if entries.len() >= CREDENTIAL_CACHE_MAX {
            entries.retain(|_, (_, _, at)| at.elapsed() < CREDENTIAL_CACHE_TTL);
            if entries.len() >= CREDENTIAL_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(token_hash, (actor, expires_at, std::time::Instant::now()));
    }

    /// Forgets every verified credential (after a revocation).
    pub(crate) fn clear(&self) {
        self.entries.lock().clear();
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = authenticate(parts, state).await?;
        if actor.role == Role::Ingestor {
            return Err(ApiError::forbidden(
                "an ingestor credential may only submit evidence records (POST /admin/v1/audit/ingest, /enforcement/v1/decisions), fetch the policy bundle (GET /enforcement/v1/bundle) and ask for decisions (/access/v1/…)",
            ));
        }
        Ok(Caller(actor))
    }
}

/// The authenticated caller of the decision API: any valid admin credential, or an
/// identity granted the enforcement point role `decide` with its own token. A decision
/// reveals no more than the enforcement point asking already enforces.
#[derive(Debug, Clone)]
pub struct Decider(pub Actor);

impl FromRequestParts<AppState> for Decider {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let route = parts.uri.path().to_owned();
        let caller = crate::point_auth::authenticate(
            &parts.headers,
            state,
            steward_model::PointRole::Decide,
            &route,
            |_| Ok(()),
        )
        .await?;
        Ok(Decider(caller.actor))
    }
}

/// The authenticated caller of the evidence ingest endpoint: an ingestor or central admin.
#[derive(Debug, Clone)]
pub struct Ingest(pub Actor);

impl FromRequestParts<AppState> for Ingest {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = authenticate(parts, state).await?;
        match actor.role {
            Role::Ingestor | Role::CentralAdmin => Ok(Ingest(actor)),
            ref other => Err(ApiError::forbidden(format!(
                "submitting evidence needs the ingestor or central-admin role; this credential is {other}"
            ))),
        }
    }
}

impl Caller {
    pub fn role(&self) -> &Role {
        &self.0.role
    }

    /// Central admins only.
    pub fn require_central(&self, what: &str) -> Result<(), ApiError> {
        match self.role() {
            Role::CentralAdmin => Ok(()),
            other => Err(ApiError::forbidden(format!(
                "{what} needs the central-admin role; this credential is {other}"
            ))),
        }
    }

    /// Any role that may change things (not auditors).
    pub fn require_writer(&self, what: &str) -> Result<(), ApiError> {
        match self.role() {
            Role::Auditor => Err(ApiError::forbidden(format!(
                "{what} changes state; the auditor role is read-only"
            ))),
            _ => Ok(()),
        }
    }

    /// Central admins, or a plane admin whose subtree contains `plane`.
    pub async fn require_plane(
        &self,
        store: &Store,
        plane: &PlaneId,
        what: &str,
    ) -> Result<(), ApiError> {
        match self.role() {
            Role::CentralAdmin => Ok(()),
            Role::Auditor | Role::Ingestor => Err(ApiError::forbidden(format!(
                "{what} changes state; the auditor role is read-only"
            ))),
            Role::PlaneAdmin { plane: own } => {
                let subtree = store.plane_subtree(own).await?;
                if subtree.contains(plane) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(format!(
                        "{what} touches plane `{plane}`, outside plane `{own}` and the planes beneath it that this plane-admin credential administers"
                    )))
                }
            }
        }
    }

    /// The planes whose objects this caller may see in listings; `None` means all.
    pub async fn visible_planes(&self, store: &Store) -> Result<Option<Vec<PlaneId>>, ApiError> {
        match self.role() {
            Role::PlaneAdmin { plane } => Ok(Some(store.plane_subtree(plane).await?)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_unique_and_hash_matches() {
        let a = mint().unwrap();
        let b = mint().unwrap();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(&format!("stw_{}_", a.id)));
        assert_eq!(hash_token(&a.token), a.hash);
        assert!(constant_time_eq(a.hash.as_bytes(), a.hash.as_bytes()));
        assert!(!constant_time_eq(a.hash.as_bytes(), b.hash.as_bytes()));
    }
}
