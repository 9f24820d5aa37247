//! DPoP proofs (RFC 9449): a JWT the client signs, per request, with the key its token is
//! bound to. Verifying one yields the key's thumbprint, which the token's `cnf.jkt` must
//! equal ([`crate::Proof::Dpop`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::TokenError;
use crate::assertion::ReplayCache;
use crate::jws;

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
    let key = jwk.to_public_key()?;
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
    if c.iat > req.now + req.skew {
        return Err(TokenError::NotYetValid {
            nbf: c.iat,
            now: req.now,
        });
    }
    if c.iat < req.now - req.max_age - req.skew {
        return Err(TokenError::Expired {
            exp: c.iat + req.max_age,
            now: req.now,
        });
    }
    match (req.access_token, &c.ath) {
        (Some(token), Some(ath)) => {
            if *ath != B64URL.encode(Sha256::digest(token.as_bytes())) {
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
    let jkt = key.thumbprint().to_owned();
    replay.remember(
        "dpop",
        &jkt,
        &c.jti,
        c.iat,
        c.iat + req.max_age,
        req.now,
        req.skew,
    )?;
    Ok(jkt)
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
