//! DPoP proofs (RFC 9449): a JWT the client signs, per request, with the key its token is
//! bound to. Verifying one yields the key's thumbprint, which the token's `cnf.jkt` must
//! equal ([`crate::Proof::Dpop`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::TokenError;
use crate::assertion::ReplayCache;
use crate::jws;
use crate::keys::{ALG, Jwk, PublicKey, SigningKey};

/// Largest DPoP proof accepted.
const MAX_PROOF_BYTES: usize = 4 * 1024;

/// The request the proof must describe.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The URL the client sent the request to (query and fragment are ignored).
    pub url: &'a str,
    /// The access token presented with the proof (checked against `ath`); `None` at the
    /// token endpoint, where there is none yet.
    pub access_token: Option<&'a str>,
    /// Seconds since the Unix epoch.
    pub now: i64,
    /// How old (by `iat`) a proof may be.
    pub max_age: i64,
    /// Seconds of clock difference tolerated on `iat`.
    pub skew: i64,
}

#[derive(Debug, Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
}

/// Checks `proof` for `req` and records its `jti`; returns the RFC 7638 thumbprint of the
/// key that signed it.
pub fn verify_dpop(
    proof: &str,
    req: &DpopRequest<'_>,
    replay: &ReplayCache,
) -> Result<String, TokenError> {
    check_dpop(proof, req, None)?.remember(replay, req.now, req.skew)
}

/// Holders' keys parsed from recent DPoP proofs, by their JWK. A client signs every proof
/// with the same key, so parsing its point and hashing its thumbprint is paid once per
/// key instead of on every request. Bounded: when full it starts over, so a caller
/// sending proofs under endless fresh keys costs memory for at most `max_keys` of them.
#[derive(Debug)]
pub struct ProofKeys {
    max_keys: usize,
    parsed: Mutex<HashMap<Jwk, Arc<PublicKey>>>,
}

impl ProofKeys {
    /// A cache holding at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        Self {
            max_keys,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The verifier for `jwk`, parsed now unless it was before. A JWK that does not parse
    /// is never kept.
    fn get(&self, jwk: &Jwk) -> Result<Arc<PublicKey>, TokenError> {
        if let Some(key) = self.parsed.lock().get(jwk) {
            return Ok(key.clone());
        }
        let key = Arc::new(jwk.to_public_key()?);
        let mut parsed = self.parsed.lock();
        if parsed.len() >= self.max_keys {
            parsed.clear();
        }
        parsed.insert(jwk.clone(), key.clone());
        Ok(key)
    }
}

/// A DPoP proof whose signature, method, URL, age and `ath` checked out, not yet recorded
/// as used. An enforcement point records it ([`CheckedProof::remember`]) only once the
/// token it came with validated, so a caller without a valid token cannot fill the
/// replay cache and lock out the clients that have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    jkt: String,
    jti: String,
    iat: i64,
    until: i64,
}

impl CheckedProof {
    /// The RFC 7638 thumbprint of the key that signed the proof: what a bound token's
    /// `cnf.jkt` must equal ([`crate::Proof::Dpop`]).
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// Records the proof's `jti` as used; refuses a proof seen before (or made before
    /// `replay` started). Returns the thumbprint.
    pub fn remember(self, replay: &ReplayCache, now: i64, skew: i64) -> Result<String, TokenError> {
        replay.remember(
            "DPoP proof",
            &self.jkt,
            &self.jti,
            self.iat,
            self.until,
            now,
            skew,
        )?;
        Ok(self.jkt)
    }
}

/// Checks `proof` for `req` without recording it: [`verify_dpop`] without the replay
/// check, which the caller must still make ([`CheckedProof::remember`]) before relying on
/// the proof. With `keys`, the holder's key is parsed once for all its proofs.
pub fn check_dpop(
    proof: &str,
    req: &DpopRequest<'_>,
    keys: Option<&ProofKeys>,
) -> Result<CheckedProof, TokenError> {
    let jws = jws::decode_dpop(proof, MAX_PROOF_BYTES)?;
    if jws.header.typ.as_deref() != Some("dpop+jwt") {
        return Err(TokenError::Header(
            "a DPoP proof has `typ: dpop+jwt`".into(),
        ));
    }
    let jwk = jws
        .header
        .jwk
        .as_ref()
        .ok_or_else(|| TokenError::Header("no `jwk`".into()))?;
    let key = match keys {
        Some(keys) => keys.get(jwk)?,
        None => Arc::new(jwk.to_public_key()?),
    };
    jws.verify(&key)?;
    let c: ProofClaims = jws.claims()?;
    if c.jti.is_empty() || c.jti.len() > 256 {
        return Err(TokenError::Claim {
            claim: "jti",
            problem: "must be a unique id of 1 to 256 characters".into(),
        });
    }
    if !c.htm.eq_ignore_ascii_case(req.method) {
        return Err(TokenError::Claim {
            claim: "htm",
            problem: format!(
                "the proof is for `{}`, the request is `{}`",
                clip(&c.htm),
                req.method
            ),
        });
    }
    if normalize(&c.htu) != normalize(req.url) {
        return Err(TokenError::Claim {
            claim: "htu",
            problem: format!(
                "the proof is for `{}`, the request went to `{}`",
                clip(&c.htu),
                normalize(req.url)
            ),
        });
    }
    // Said of the proof, not of a token: the token's own times are checked apart.
    if c.iat > req.now + req.skew {
        return Err(TokenError::Claim {
            claim: "iat",
            problem: format!(
                "the proof is not valid before {} (now {}): check the client's clock",
                c.iat, req.now
            ),
        });
    }
    if c.iat < req.now - req.max_age - req.skew {
        return Err(TokenError::Claim {
            claim: "iat",
            problem: format!(
                "the proof expired: it was made at {}, more than {} s before now ({})",
                c.iat, req.max_age, req.now
            ),
        });
    }
    match (req.access_token, &c.ath) {
        (Some(token), Some(ath)) => {
            if *ath != access_token_hash(token) {
                return Err(TokenError::Claim {
                    claim: "ath",
                    problem: "the proof was made for another access token".into(),
                });
            }
        }
        (Some(_), None) => {
            return Err(TokenError::Claim {
                claim: "ath",
                problem: "a proof sent with an access token must carry its hash".into(),
            });
        }
        (None, _) => {}
    }
    Ok(CheckedProof {
        jkt: key.thumbprint().to_owned(),
        until: c.iat + req.max_age,
        iat: c.iat,
        jti: c.jti,
    })
}

/// The `ath` a proof sent with `access_token` carries: the base64url SHA-256 of the
/// token (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    B64URL.encode(Sha256::digest(access_token.as_bytes()))
}

/// Signs a DPoP proof over `claims` with `key`: header `typ: dpop+jwt`, ES256, and the
/// public key as `jwk` (without `kid`). For clients, tests and benchmarks; the claims
/// are taken as given, so a test can make the wrong ones.
pub fn sign_dpop(key: &SigningKey, claims: &serde_json::Value) -> Result<String, TokenError> {
    let mut jwk = serde_json::to_value(key.public_key().jwk())
        .map_err(|e| TokenError::Key(format!("cannot encode the public key: {e}")))?;
    if let Some(members) = jwk.as_object_mut() {
        members.remove("kid");
    }
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": ALG, "jwk": jwk});
    let mut out = B64URL.encode(header.to_string());
    out.push('.');
    out.push_str(&B64URL.encode(claims.to_string()));
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&B64URL.encode(signature));
    Ok(out)
}

/// A fresh proof for one request: a random `jti`, `iat` = `now`, the method and URL, and
/// the `ath` of the token it is sent with (none at the token endpoint).
pub fn new_dpop_proof(
    key: &SigningKey,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<String, TokenError> {
    let mut claims = serde_json::json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": url,
        "iat": now,
    });
    if let (Some(token), Some(members)) = (access_token, claims.as_object_mut()) {
        members.insert("ath".into(), access_token_hash(token).into());
    }
    sign_dpop(key, &claims)
}

/// `scheme://host[:port]/path`, lower-cased scheme and host, default ports dropped, query
/// and fragment removed (RFC 9449 §4.3).
fn normalize(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    for (s, port) in [("http", ":80"), ("https", ":443")] {
        if scheme == s
            && let Some(stripped) = authority.strip_suffix(port)
        {
            authority = stripped.to_owned();
        }
    }
    format!("{scheme}://{authority}{path}")
}

fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A proof made with `new_dpop_proof` verifies for its request and token; checking
    /// records nothing, remembering records it once.
    #[test]
    fn made_proofs_check_and_are_remembered_once() {
        let (key, _) = SigningKey::generate().unwrap();
        let now = 1_800_000_000;
        let url = "https://api.example.com/v1/charges";
        let proof = new_dpop_proof(&key, "GET", url, Some("tok"), now).unwrap();
        let req = DpopRequest {
            method: "GET",
            url: "https://API.example.com:443/v1/charges?page=2",
            access_token: Some("tok"),
            now,
            max_age: 60,
            skew: 5,
        };
        let replay = ReplayCache::kept_by(now, 10, "this test");
        let checked = check_dpop(&proof, &req, None).unwrap();
        assert_eq!(checked.thumbprint(), key.public_key().thumbprint());
        assert_eq!(
            check_dpop(&proof, &req, None).unwrap(),
            checked,
            "checking records nothing"
        );
        checked.clone().remember(&replay, now, 5).unwrap();
        let e = checked.remember(&replay, now, 5).unwrap_err().to_string();
        assert!(e.contains("already used"), "{e}");
        // Made before the cache started: the keeper is named.
        let late = ReplayCache::kept_by(now + 1, 10, "this enforcement point");
        let e = check_dpop(&proof, &req, None)
            .unwrap()
            .remember(&late, now + 1, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("before this enforcement point started"), "{e}");
        // Another token's hash.
        let e = check_dpop(
            &proof,
            &DpopRequest {
                access_token: Some("other"),
                ..req
            },
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("another access token"), "{e}");
    }

    /// The key cache changes no outcome: a holder's later proofs check through the cached
    /// key; a proof naming that key but signed by another is still refused; a JWK that
    /// differs in any member is parsed (and judged) on its own; a full cache starts over.
    #[test]
    fn cached_keys_decide_as_fresh_ones() {
        let (holder, _) = SigningKey::generate().unwrap();
        let (thief, _) = SigningKey::generate().unwrap();
        let now = 1_800_000_000;
        let url = "https://api.example.com/v1/charges";
        let req = DpopRequest {
            method: "GET",
            url,
            access_token: None,
            now,
            max_age: 60,
            skew: 5,
        };
        let keys = ProofKeys::new(2);
        for _ in 0..3 {
            let proof = new_dpop_proof(&holder, "GET", url, None, now).unwrap();
            let checked = check_dpop(&proof, &req, Some(&keys)).unwrap();
            assert_eq!(checked.thumbprint(), holder.public_key().thumbprint());
        }
        // The holder's key in the header, the thief's signature.
        let mut jwk = serde_json::to_value(holder.public_key().jwk()).unwrap();
        jwk.as_object_mut().unwrap().remove("kid");
        let claims = serde_json::json!({"jti": "x", "htm": "GET", "htu": url, "iat": now});
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": ALG, "jwk": jwk});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let forged = format!(
            "{input}.{}",
            B64URL.encode(thief.sign(input.as_bytes()).unwrap())
        );
        assert!(check_dpop(&forged, &req, Some(&keys)).is_err());
        // The same point with another `alg`: a different JWK, refused on its own terms.
        jwk["alg"] = "RS256".into();
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": ALG, "jwk": jwk});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let other_alg = format!(
            "{input}.{}",
            B64URL.encode(holder.sign(input.as_bytes()).unwrap())
        );
        let e = check_dpop(&other_alg, &req, Some(&keys))
            .unwrap_err()
            .to_string();
        assert!(e.contains("RS256"), "{e}");
        // More keys than it holds: it starts over and still checks each.
        for _ in 0..3 {
            let (k, _) = SigningKey::generate().unwrap();
            let proof = new_dpop_proof(&k, "GET", url, None, now).unwrap();
            check_dpop(&proof, &req, Some(&keys)).unwrap();
            assert!(keys.parsed.lock().len() <= 2);
        }
    }
}
