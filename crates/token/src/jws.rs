//! JWS compact serialization (RFC 7515) restricted to what Steward trusts: ES256, a `kid`
//! naming a key we already hold, and no header that would make us fetch or trust a key
//! from the token itself.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::TokenError;
use crate::keys::{ALG, PublicKey, SigningKey};

/// Largest token accepted by default; refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The protected header, after the checks in [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// One of the algorithms the caller accepts.
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// The embedded public key, only ever accepted by [`decode_dpop`].
    pub jwk: Option<crate::keys::Jwk>,
}

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct Jws<'a> {
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Jws<'_> {
    /// Checks the signature with `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), TokenError> {
        key.verify(self.signing_input.as_bytes(), &self.signature)
    }

    /// The signed bytes and the signature, for verifiers of other key types.
    pub fn signed_parts(&self) -> (&[u8], &[u8]) {
        (self.signing_input.as_bytes(), &self.signature)
    }

    /// The payload as JSON, *unverified* unless [`Jws::verify`] succeeded.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, TokenError> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            // serde quotes the offending value, which came from the (unverified) token.
            let detail: String = e.to_string().chars().take(120).collect();
            TokenError::Malformed(format!("the payload is not the expected JSON: {detail}"))
        })
    }
}

fn part<'a>(parts: &mut std::str::Split<'a, char>, name: &str) -> Result<&'a str, TokenError> {
    parts.next().ok_or_else(|| {
        TokenError::Malformed(format!(
            "no {name}: a JWS compact token has three parts separated by `.`"
        ))
    })
}

fn unb64(text: &str, name: &str) -> Result<Vec<u8>, TokenError> {
    B64URL
        .decode(text)
        .map_err(|_| TokenError::Malformed(format!("the {name} is not unpadded base64url")))
}

/// Splits and decodes `token`, checking the header. Refuses tokens longer than `max_bytes`
/// before looking at them.
pub fn decode(token: &str, max_bytes: usize) -> Result<Jws<'_>, TokenError> {
    decode_with(token, max_bytes, false, &[ALG])
}

/// Like [`decode`], for a token from a trusted external issuer: ES256 or RS256, and the
/// informational `x5t`/`x5t#S256` headers some issuers add are tolerated.
pub fn decode_foreign(token: &str, max_bytes: usize) -> Result<Jws<'_>, TokenError> {
    decode_with(token, max_bytes, false, &[ALG, "RS256"])
}

/// Like [`decode`], for a DPoP proof (RFC 9449): the header must carry the client's public
/// key as `jwk` (public members only), which the proof is then verified with.
pub fn decode_dpop(token: &str, max_bytes: usize) -> Result<Jws<'_>, TokenError> {
    decode_with(token, max_bytes, true, &[ALG])
}

fn decode_with<'a>(
    token: &'a str,
    max_bytes: usize,
    dpop: bool,
    algs: &[&str],
) -> Result<Jws<'a>, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge {
            len: token.len(),
            max: max_bytes,
        });
    }
    let mut parts = token.split('.');
    let header_b64 = part(&mut parts, "header")?;
    let payload_b64 = part(&mut parts, "payload")?;
    let sig_b64 = part(&mut parts, "signature")?;
    if parts.next().is_some() {
        return Err(TokenError::Malformed(
            "more than three parts (an encrypted JWE is not accepted)".into(),
        ));
    }
    let header = check_header(&unb64(header_b64, "header")?, dpop, algs)?;
    let payload = unb64(payload_b64, "payload")?;
    let signature = unb64(sig_b64, "signature")?;
    let signing_input = token
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or_else(|| TokenError::Malformed("cannot find the signing input".into()))?;
    Ok(Jws {
        header,
        signing_input,
        payload,
        signature,
    })
}

fn check_header(raw: &[u8], dpop: bool, algs: &[&str]) -> Result<Header, TokenError> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw)
        .map_err(|_| TokenError::Malformed("the header is not a JSON object".into()))?;
    let text = |name: &str| -> Result<Option<String>, TokenError> {
        match map.get(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(TokenError::Header(format!("`{name}` must be a string"))),
        }
    };
    for name in map.keys() {
        match name.as_str() {
            "alg" | "kid" | "typ" => {}
            "jwk" if dpop => {}
            // Issuers such as GitHub Actions and Azure AD add certificate thumbprints; they
            // never choose the key (the issuer's declared keys and `kid` do).
            "x5t" | "x5t#S256" if algs.len() > 1 => {}
            "crit" => {
                return Err(TokenError::Header(
                    "`crit` names extensions Steward does not understand; such a token must be refused (RFC 7515 §4.1.11)".into(),
                ));
            }
            "jku" | "x5u" => {
                return Err(TokenError::Header(format!(
                    "`{name}` points at a key URL; Steward never fetches keys named by a token"
                )));
            }
            "jwk" | "x5c" => {
                return Err(TokenError::Header(format!(
                    "`{name}` embeds a key; Steward never trusts a key carried by the token it signs"
                )));
            }
            other => {
                return Err(TokenError::Header(format!(
                    "unsupported header parameter `{}`",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    let alg = text("alg")?;
    match alg.as_deref() {
        Some(a) if algs.contains(&a) => {}
        None => return Err(TokenError::Header("no `alg`".into())),
        Some(alg) if alg.eq_ignore_ascii_case("none") => {
            return Err(TokenError::Header("alg `none` is never accepted".into()));
        }
        Some(alg) if alg.starts_with("HS") => {
            return Err(TokenError::Header(format!(
                "symmetric alg `{}` is refused: only {}",
                alg.chars().take(20).collect::<String>(),
                algs.join(", ")
            )));
        }
        Some(alg) => {
            return Err(TokenError::Header(format!(
                "alg `{}` is not accepted: only {}",
                alg.chars().take(20).collect::<String>(),
                algs.join(", ")
            )));
        }
    }
    let jwk = match map.get("jwk") {
        None if dpop => {
            return Err(TokenError::Header(
                "a DPoP proof carries its public key as `jwk`".into(),
            ));
        }
        None => None,
        Some(serde_json::Value::Object(members)) => {
            if members.contains_key("d") {
                return Err(TokenError::Header(
                    "the `jwk` carries a private key (`d`); send only the public key".into(),
                ));
            }
            Some(
                serde_json::from_value(serde_json::Value::Object(members.clone()))
                    .map_err(|_| TokenError::Header("`jwk` is not an EC public key".into()))?,
            )
        }
        Some(_) => return Err(TokenError::Header("`jwk` must be an object".into())),
    };
    Ok(Header {
        alg: alg.unwrap_or_default(),
        kid: text("kid")?,
        typ: text("typ")?,
        jwk,
    })
}

/// Signs `payload` as a compact JWS with `key`, its `kid`, and `typ`.
pub fn encode(key: &SigningKey, typ: &str, payload: &impl Serialize) -> Result<String, TokenError> {
    let header = serde_json::json!({"alg": ALG, "kid": key.kid(), "typ": typ});
    let payload = serde_json::to_vec(payload)
        .map_err(|e| TokenError::Malformed(format!("cannot encode claims: {e}")))?;
    let mut out = B64URL.encode(header.to_string());
    out.push('.');
    out.push_str(&B64URL.encode(payload));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&B64URL.encode(sig));
    Ok(out)
}
