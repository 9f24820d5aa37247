//! Client authentication with `private_key_jwt` (RFC 7523 §2.2, §3): a short-lived JWT the
//! client signs with a key it registered, naming itself as `iss` and `sub` and the token
//! endpoint as `aud`, used once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;

use crate::TokenError;
use crate::claims::Audience;
use crate::jws::{self, Jws, MAX_TOKEN_BYTES};
use crate::keys::PublicKey;
use crate::validate::check_times;

/// `client_assertion_type` for a JWT assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What Steward requires of an assertion.
#[derive(Debug, Clone)]
pub struct AssertionRules {
    /// Accepted `aud` values: the token endpoint URL and the issuer.
    pub audiences: Vec<String>,
    /// Longest `exp - now` accepted, in seconds.
    pub max_lifetime: i64,
    pub skew: i64,
}

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
}

/// A decoded assertion whose signature is not yet checked: its subject says which
/// client's keys to check it with.
#[derive(Debug)]
pub struct UnverifiedAssertion<'a> {
    jws: Jws<'a>,
    claims: AssertionClaims,
}

/// A verified, fresh, first-seen assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub client_id: String,
    pub jti: String,
    pub kid: String,
}

/// Decodes `assertion` and checks `iss == sub`. Nothing in it is trusted yet.
pub fn decode_client_assertion(assertion: &str) -> Result<UnverifiedAssertion<'_>, TokenError> {
    let jws = jws::decode(assertion, MAX_TOKEN_BYTES)?;
    if jws.header.typ.as_deref() == Some("dpop+jwt") {
        return Err(TokenError::Header(
            "a DPoP proof is not a client assertion".into(),
        ));
    }
    let claims: AssertionClaims = jws.claims()?;
    if claims.iss != claims.sub {
        return Err(TokenError::Claim {
            claim: "iss",
            problem: "a client assertion's `iss` and `sub` must both be the client id".into(),
        });
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(TokenError::Claim {
            claim: "jti",
            problem: "must be a non-empty unique id of at most 256 characters".into(),
        });
    }
    Ok(UnverifiedAssertion { jws, claims })
}

impl UnverifiedAssertion<'_> {
    /// The client the assertion claims to come from.
    pub fn client_id(&self) -> &str {
        &self.claims.sub
    }

    /// Checks the signature against the client's registered `keys`, the audience, the
    /// lifetime, and that the `jti` was not used before (recording it).
    pub fn verify(
        self,
        keys: &[PublicKey],
        rules: &AssertionRules,
        now: i64,
        replay: &ReplayCache,
    ) -> Result<VerifiedAssertion, TokenError> {
        // The registered `kid`, or the key's RFC 7638 thumbprint (what many client
        // libraries put in `kid` by default).
        let key = match &self.jws.header.kid {
            Some(kid) => keys
                .iter()
                .find(|k| k.kid() == kid || k.thumbprint() == kid)
                .ok_or_else(|| TokenError::UnknownKey(kid.chars().take(64).collect()))?,
            None => keys
                .iter()
                .find(|k| self.jws.verify(k).is_ok())
                .ok_or(TokenError::Signature)?,
        };
        self.jws.verify(key)?;
        let c = &self.claims;
        if !rules.audiences.iter().any(|a| c.aud.contains(a)) {
            return Err(TokenError::Claim {
                claim: "aud",
                problem: format!(
                    "must name the token endpoint (`{}`)",
                    rules.audiences.join("` or `")
                ),
            });
        }
        check_times(c.exp, c.nbf, c.iat, now, rules.skew)?;
        if c.exp - now > rules.max_lifetime + rules.skew {
            return Err(TokenError::Claim {
                claim: "exp",
                problem: format!(
                    "the assertion lives {} s; at most {} s are accepted",
                    c.exp - now,
                    rules.max_lifetime
                ),
            });
        }
        let issued = c.iat.unwrap_or(c.exp - rules.max_lifetime);
        replay.remember("assertion", &c.sub, &c.jti, issued, c.exp, now, rules.skew)?;
        Ok(VerifiedAssertion {
            client_id: c.sub.clone(),
            jti: c.jti.clone(),
            kid: key.kid().to_string(),
        })
    }
}

/// Single-use `jti`s, kept until the assertion expires. The cache lives in memory, so it
/// cannot vouch for assertions made before it started: those are refused (a client makes
/// a fresh one) rather than risk a replay across a restart.
#[derive(Debug)]
pub struct ReplayCache {
    since: i64,
    max_entries: usize,
    /// Who keeps the cache, as a refusal names it ("the control plane").
    keeper: &'static str,
    seen: Mutex<Remembered>,
}

/// The live `jti`s, findable by value and by when they stop mattering, so forgetting the
/// expired ones costs only what is forgotten: a full cache under load is not rescanned on
/// every request.
#[derive(Debug, Default)]
struct Remembered {
    until: HashMap<Arc<str>, i64>,
    by_expiry: BTreeSet<(i64, Arc<str>)>,
}

impl Remembered {
    /// Drops every entry that no freshness check would accept any more (live through
    /// `until + skew` inclusive).
    fn forget_expired(&mut self, now: i64, skew: i64) {
        while self
            .by_expiry
            .first()
            .is_some_and(|(until, _)| until.saturating_add(skew) < now)
        {
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.until.remove(&key);
            }
        }
    }
}

impl ReplayCache {
    /// A cache that started at `now`, holding at most `max_entries` live assertions.
    pub fn new(now: i64, max_entries: usize) -> Self {
        Self::kept_by(now, max_entries, "the control plane")
    }

    /// [`ReplayCache::new`] for a cache another process keeps (`keeper`, e.g. "this
    /// enforcement point"), so a refused proof made before it started names what restarted.
    pub fn kept_by(now: i64, max_entries: usize, keeper: &'static str) -> Self {
        Self {
            since: now,
            max_entries,
            keeper,
            seen: Mutex::new(Remembered::default()),
        }
    }

    /// Records the single-use `jti` of `what` (an assertion, a DPoP proof) from `who`,
    /// valid until `until`; refuses one seen before, or made before the cache started.
    #[allow(clippy::too_many_arguments)]
    pub fn remember(
        &self,
        what: &str,
        who: &str,
        jti: &str,
        issued: i64,
        until: i64,
        now: i64,
        skew: i64,
    ) -> Result<(), TokenError> {
        // Anything made before the cache started may have been used already: refuse it.
        if issued < self.since {
            return Err(TokenError::Replay(format!(
                "the {what} was made before {} started; make a fresh one",
                self.keeper
            )));
        }
        let mut seen = self.seen.lock();
        seen.forget_expired(now, skew);
        let key: Arc<str> = format!("{what}\u{0}{who}\u{0}{jti}").into();
        if seen.until.contains_key(&key) {
            return Err(TokenError::Replay(format!(
                "this {what} `jti` was already used"
            )));
        }
        if seen.until.len() >= self.max_entries {
            return Err(TokenError::Replay(
                "too many live single-use values to remember; try again shortly".into(),
            ));
        }
        seen.until.insert(key.clone(), until);
        seen.by_expiry.insert((until, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_full_cache_refuses_until_entries_expire_and_never_forgets_a_live_one() {
        let cache = ReplayCache::new(100, 3);
        for (jti, until) in [("a", 110), ("b", 120), ("c", 130)] {
            cache
                .remember("proof", "k", jti, 100, until, 100, 5)
                .unwrap();
        }
        // Full, nothing expired: refused, and the live ones are still refused as replays.
        let full = cache.remember("proof", "k", "d", 100, 140, 100, 5);
        assert!(full.unwrap_err().to_string().contains("too many"));
        assert!(cache.remember("proof", "k", "a", 100, 110, 115, 5).is_err());
        // `a` lives through 110 + 5; at 116 it is forgotten and its slot is free.
        cache.remember("proof", "k", "d", 100, 140, 116, 5).unwrap();
        assert!(cache.remember("proof", "k", "e", 100, 140, 116, 5).is_err());
        assert!(cache.remember("proof", "k", "b", 100, 120, 116, 5).is_err());
        // Once everything expired, a jti may come again (its freshness checks refuse it
        // elsewhere); the cache holds only what is live.
        cache.remember("proof", "k", "b", 100, 200, 500, 5).unwrap();
        assert_eq!(cache.seen.lock().until.len(), 1);
        assert_eq!(cache.seen.lock().by_expiry.len(), 1);
    }
}
