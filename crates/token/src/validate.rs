//! The one validation path for Steward tokens, shared by every enforcement point:
//! signature and `kid`, issuer, audience, expiry and not-before with a small skew,
//! environment, sender binding, and the revocation hook. Tokens whose signature was
//! checked once are remembered, so a token seen before costs a hash lookup plus the claim
//! checks (which are never cached: time moves and revocations arrive).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::TokenError;
use crate::claims::Claims;
use crate::jws::{self, MAX_TOKEN_BYTES};
use crate::keys::PublicKey;

/// Consulted on every validation, cached or not. Returns why the token is revoked, if it is.
/// The revocation service fills it; until then [`NoRevocation`].
pub trait RevocationCheck: Send + Sync {
    /// `kid` is the key the token's signature verified with.
    fn revoked(&self, kid: &str, claims: &Claims) -> Option<String>;
}

/// Nothing is revoked.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRevocation;

impl RevocationCheck for NoRevocation {
    fn revoked(&self, _: &str, _: &Claims) -> Option<String> {
        None
    }
}

/// The proof of possession the presenter showed, already verified by the caller (the TLS
/// layer for a certificate, the DPoP checker for a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proof<'a> {
    #[default]
    None,
    /// SHA-256 thumbprint (base64url) of the client certificate of this connection.
    ClientCert(&'a str),
    /// RFC 7638 thumbprint of the key that signed a valid DPoP proof.
    Dpop(&'a str),
}

/// The RFC 8705 thumbprint of a DER certificate (base64url SHA-256): what a
/// certificate-bound token's `cnf.x5t#S256` names, and what [`Proof::ClientCert`] carries.
pub fn certificate_thumbprint(der: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// What the caller expects of the token.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// This hop's audience: the token's `aud` must contain it.
    pub audience: &'a str,
    /// The environment of the enforcement point; `None` skips the check.
    pub environment: Option<&'a str>,
    /// Seconds since the Unix epoch.
    pub now: i64,
    pub proof: Proof<'a>,
}

/// Validates Steward tokens against a fixed key set. Build a new one when keys change.
pub struct Validator {
    issuer: String,
    keys: HashMap<String, PublicKey>,
    skew: i64,
    max_bytes: usize,
    revocation: Arc<dyn RevocationCheck>,
    cache: Cache,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// A validator for tokens from `issuer` signed by one of `keys`, allowing `skew_secs`
    /// of clock difference.
    pub fn new(
        issuer: impl Into<String>,
        keys: impl IntoIterator<Item = PublicKey>,
        skew_secs: i64,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            keys: keys.into_iter().map(|k| (k.kid().to_string(), k)).collect(),
            skew: skew_secs.max(0),
            max_bytes: MAX_TOKEN_BYTES,
            revocation: Arc::new(NoRevocation),
            cache: Cache::new(DEFAULT_CACHE_ENTRIES),
        }
    }

    /// Consults `hook` on every validation.
    pub fn with_revocation(mut self, hook: Arc<dyn RevocationCheck>) -> Self {
        self.revocation = hook;
        self
    }

    /// Refuses tokens longer than `max` bytes.
    pub fn with_max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The seconds of clock difference this validator tolerates: enforcement points allow
    /// the same on a DPoP proof's `iat` as on the token's times.
    pub fn skew(&self) -> i64 {
        self.skew
    }

    /// Validates `token` for `expect`, returning its claims.
    pub fn validate(
        &self,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<Arc<Claims>, TokenError> {
        let (kid, claims) = self.verified(token, expect.now)?;
        self.check_claims(&kid, &claims, expect)?;
        Ok(claims)
    }

    /// Whether `token` is in force at `now` as the control plane that issued it sees it,
    /// for token introspection (RFC 7662): size, signature, `kid`, issuer, times and the
    /// revocation hook, as [`Validator::validate`] checks them. Audience, environment and
    /// sender binding are left to the resource server asking: it knows who it is, where
    /// it runs and what proof came with the token. `exp` gets no skew: the clock asked is
    /// the one that set it, so a token is never reported active past its own `exp`.
    pub fn introspect(&self, token: &str, now: i64) -> Result<Arc<Claims>, TokenError> {
        let (kid, claims) = self.verified(token, now)?;
        if now >= claims.exp {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now,
            });
        }
        check_times(
            claims.exp,
            Some(claims.nbf),
            Some(claims.iat),
            now,
            self.skew,
        )?;
        self.check_revocation(&kid, &claims)?;
        Ok(claims)
    }

    /// The signing `kid` and claims of `token` once its size, signature, header and issuer
    /// check out, from the cache when its signature verified before.
    fn verified(&self, token: &str, now: i64) -> Result<(Arc<str>, Arc<Claims>), TokenError> {
        if token.len() > self.max_bytes {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: self.max_bytes,
            });
        }
        let hash = self.cache.hash(token);
        if let Some(hit) = self.cache.get(hash, token, &self.keys) {
            return Ok(hit);
        }
        let (kid, claims) = self.verify_signature(token)?;
        let (kid, claims) = (Arc::<str>::from(kid), Arc::new(claims));
        self.cache
            .put(hash, token, kid.clone(), claims.clone(), now);
        Ok((kid, claims))
    }

    /// Signature, `kid`, header and issuer: what does not change with time.
    fn verify_signature(&self, token: &str) -> Result<(String, Claims), TokenError> {
        let jws = jws::decode(token, self.max_bytes)?;
        match jws.header.typ.as_deref() {
            None | Some("JWT") | Some("JOSE") | Some("at+jwt") => {}
            Some(other) => {
                return Err(TokenError::Header(format!(
                    "typ `{}` is not an access token",
                    other.chars().take(20).collect::<String>()
                )));
            }
        }
        let kid = jws.header.kid.clone().ok_or_else(|| {
            TokenError::Header("no `kid`: Steward tokens name their signing key".into())
        })?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.chars().take(64).collect()))?;
        jws.verify(key)?;
        let claims: Claims = jws.claims()?;
        if claims.iss != self.issuer {
            return Err(TokenError::Claim {
                claim: "iss",
                problem: format!(
                    "`{}` is not this control plane (`{}`)",
                    clip(&claims.iss),
                    self.issuer
                ),
            });
        }
        if !claims.sub.starts_with("spiffe://") {
            return Err(TokenError::Claim {
                claim: "sub",
                problem: "not a SPIFFE ID".into(),
            });
        }
        Ok((kid, claims))
    }

    fn check_claims(
        &self,
        kid: &str,
        claims: &Claims,
        expect: &Expectations<'_>,
    ) -> Result<(), TokenError> {
        check_times(
            claims.exp,
            Some(claims.nbf),
            Some(claims.iat),
            expect.now,
            self.skew,
        )?;
        if !claims.aud.contains(expect.audience) {
            return Err(TokenError::Claim {
                claim: "aud",
                problem: format!("the token is not for `{}`", clip(expect.audience)),
            });
        }
        if let Some(env) = expect.environment
            && claims.environment.as_deref() != Some(env)
        {
            return Err(TokenError::Claim {
                claim: "environment",
                problem: format!(
                    "a `{}` token presented in `{env}`",
                    claims.environment.as_deref().unwrap_or("(none)")
                ),
            });
        }
        check_binding(claims, expect.proof)?;
        self.check_revocation(kid, claims)
    }

    /// The revocation hook: the one revocation check of every validation.
    fn check_revocation(&self, kid: &str, claims: &Claims) -> Result<(), TokenError> {
        match self.revocation.revoked(kid, claims) {
            Some(why) => Err(TokenError::Revoked(why)),
            None => Ok(()),
        }
    }
}

/// `exp` / `nbf` / `iat` against `now` with `skew` seconds of tolerance.
pub(crate) fn check_times(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: i64,
    skew: i64,
) -> Result<(), TokenError> {
    if now >= exp.saturating_add(skew) {
        return Err(TokenError::Expired { exp, now });
    }
    for t in [nbf, iat].into_iter().flatten() {
        if t > now.saturating_add(skew) {
            return Err(TokenError::NotYetValid { nbf: t, now });
        }
    }
    Ok(())
}

fn check_binding(claims: &Claims, proof: Proof<'_>) -> Result<(), TokenError> {
    let Some(cnf) = &claims.cnf else {
        // A DPoP proof beside a token bound to nothing proves nothing about the token
        // (RFC 9449 §7.1): whoever holds it would pass with any key of their own.
        return match proof {
            Proof::Dpop(_) => Err(TokenError::Binding(
                "the token is not bound to a key, so a DPoP proof cannot vouch for it; send it with `Authorization: Bearer`, or get a DPoP-bound token".into(),
            )),
            _ => Ok(()),
        };
    };
    if let Some(want) = &cnf.x5t_s256 {
        return match proof {
            Proof::ClientCert(got) if got == want => Ok(()),
            Proof::ClientCert(_) => Err(TokenError::Binding(
                "the token is bound to another client certificate".into(),
            )),
            _ => Err(TokenError::Binding(
                "the token is bound to a client certificate; present it over mutual TLS".into(),
            )),
        };
    }
    if let Some(want) = &cnf.jkt {
        return match proof {
            Proof::Dpop(got) if got == want => Ok(()),
            Proof::Dpop(_) => Err(TokenError::Binding(
                "the DPoP proof is signed by another key than the token is bound to".into(),
            )),
            _ => Err(TokenError::Binding(
                "the token is DPoP-bound; send it with `Authorization: DPoP` and a DPoP proof"
                    .into(),
            )),
        };
    }
    Err(TokenError::Binding(
        "`cnf` names no binding Steward knows".into(),
    ))
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Tokens held by the validation cache before the oldest are dropped.
const DEFAULT_CACHE_ENTRIES: usize = 100_000;
const SHARDS: usize = 16;

struct Entry {
    token: Box<str>,
    kid: Arc<str>,
    claims: Arc<Claims>,
}

/// Tokens whose signature verified, keyed by a keyed hash of the whole token (compared in
/// full on a hit). Sharded so concurrent validations rarely wait for each other.
struct Cache {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<u64, Entry>>>,
    per_shard: usize,
}

impl Cache {
    fn new(entries: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (entries / SHARDS).max(1),
        }
    }

    fn hash(&self, token: &str) -> u64 {
        self.hasher.hash_one(token)
    }

    fn shard(&self, hash: u64) -> Option<&Mutex<HashMap<u64, Entry>>> {
        self.shards.get((hash as usize) % SHARDS)
    }

    fn get(
        &self,
        hash: u64,
        token: &str,
        keys: &HashMap<String, PublicKey>,
    ) -> Option<(Arc<str>, Arc<Claims>)> {
        let shard = self.shard(hash)?.lock();
        let e = shard.get(&hash)?;
        (&*e.token == token && keys.contains_key(&*e.kid))
            .then(|| (e.kid.clone(), e.claims.clone()))
    }

    fn put(&self, hash: u64, token: &str, kid: Arc<str>, claims: Arc<Claims>, now: i64) {
        let Some(mut shard) = self.shard(hash).map(|m| m.lock()) else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| e.claims.exp > now);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(
            hash,
            Entry {
                token: token.into(),
                kid,
                claims,
            },
        );
    }
}
