//! Tokens from trusted external issuers: Kubernetes service-account tokens, CI OIDC
//! tokens, JWT-SVIDs of other trust domains. Validated against the issuer's declared keys
//! (ES256 or RS256) and trust boundary — exact `iss`, the audience Steward requires, an
//! allowed subject pattern — and mapped onto a registered identity by explicit templates.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Map, Value};

use crate::TokenError;
use crate::claims::Audience;
use crate::jws;
use crate::keys::{Jwk, PublicKey};
use crate::validate::check_times;

/// Largest external token accepted.
pub const MAX_FOREIGN_TOKEN_BYTES: usize = 16 * 1024;

/// One key of an external issuer.
#[derive(Debug, Clone)]
enum ForeignKey {
    Ec(PublicKey),
    Rsa {
        kid: Option<String>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl ForeignKey {
    fn kid(&self) -> Option<&str> {
        match self {
            ForeignKey::Ec(k) => Some(k.kid()),
            ForeignKey::Rsa { kid, .. } => kid.as_deref(),
        }
    }

    fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        match (self, alg) {
            (ForeignKey::Ec(k), "ES256") => k.verify(message, signature),
            (ForeignKey::Rsa { n, e, .. }, "RS256") => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .map_err(|_| TokenError::Signature),
            _ => Err(TokenError::Header(format!(
                "alg `{alg}` does not match the key type"
            ))),
        }
    }
}

/// An external issuer's keys, parsed from its JWKS.
#[derive(Debug, Clone, Default)]
pub struct ForeignKeySet {
    keys: Vec<ForeignKey>,
}

impl ForeignKeySet {
    /// Parses a JWKS document. EC P-256 and RSA (2048 bits or more) signing keys are kept;
    /// any other key is an error, so a mistyped key is noticed when it is declared.
    pub fn from_jwks(jwks: &Value) -> Result<Self, TokenError> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| TokenError::Key("a JWKS is an object with a `keys` array".into()))?;
        let mut keys = Vec::new();
        for (i, k) in list.iter().enumerate() {
            let field = |name: &str| k.get(name).and_then(Value::as_str);
            // `sig` in a JWKS, `jwt-svid` in a SPIFFE bundle (another trust domain's).
            if field("use").is_some_and(|u| u != "sig" && u != "jwt-svid") {
                continue;
            }
            let key = match field("kty") {
                Some("EC") => {
                    let jwk: Jwk = serde_json::from_value(k.clone())
                        .map_err(|e| TokenError::Key(format!("key {i}: {e}")))?;
                    ForeignKey::Ec(
                        jwk.to_public_key()
                            .map_err(|e| TokenError::Key(format!("key {i}: {e}")))?,
                    )
                }
                Some("RSA") => {
                    let part = |name: &str| -> Result<Vec<u8>, TokenError> {
                        let v = field(name).ok_or_else(|| {
                            TokenError::Key(format!("key {i}: RSA key without `{name}`"))
                        })?;
                        B64URL.decode(v).map_err(|_| {
                            TokenError::Key(format!("key {i}: `{name}` is not base64url"))
                        })
                    };
                    let n = part("n")?;
                    let significant = n.iter().skip_while(|b| **b == 0).count();
                    if significant < 256 {
                        return Err(TokenError::Key(format!(
                            "key {i}: RSA keys shorter than 2048 bits are refused"
                        )));
                    }
                    ForeignKey::Rsa {
                        kid: field("kid").map(str::to_owned),
                        n,
                        e: part("e")?,
                    }
                }
                other => {
                    return Err(TokenError::Key(format!(
                        "key {i}: kty `{}` is not supported (EC P-256 or RSA)",
                        other.unwrap_or("(none)")
                    )));
                }
            };
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(TokenError::Key("the JWKS holds no signing key".into()));
        }
        Ok(Self { keys })
    }

    /// Whether a key with this `kid` is in the set (to decide whether to refetch).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }
}

/// The trust boundary of one issuer.
#[derive(Debug, Clone, Copy)]
pub struct ForeignRules<'a> {
    /// The exact `iss`.
    pub issuer: &'a str,
    /// The audience the token must carry.
    pub audience: &'a str,
    /// `sub` patterns; `*` matches any run of characters.
    pub allowed_subjects: &'a [String],
    pub now: i64,
    pub skew: i64,
}

/// Validates an external token; returns its claims.
pub fn validate_foreign(
    token: &str,
    keys: &ForeignKeySet,
    rules: &ForeignRules<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let jws = jws::decode_foreign(token, MAX_FOREIGN_TOKEN_BYTES)?;
    let (message, signature) = jws.signed_parts();
    let alg = jws.header.alg.as_str();
    let verified = match &jws.header.kid {
        Some(kid) => keys
            .keys
            .iter()
            .find(|k| k.kid() == Some(kid))
            .ok_or_else(|| TokenError::UnknownKey(kid.chars().take(64).collect()))?
            .verify(alg, message, signature),
        None => {
            if keys
                .keys
                .iter()
                .any(|k| k.verify(alg, message, signature).is_ok())
            {
                Ok(())
            } else {
                Err(TokenError::Signature)
            }
        }
    };
    verified?;
    let claims: Map<String, Value> = jws.claims()?;
    let text = |name: &'static str| -> Result<&str, TokenError> {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or(TokenError::Claim {
                claim: name,
                problem: "missing or not a string".into(),
            })
    };
    let number = |name: &'static str| claims.get(name).and_then(Value::as_i64);
    if text("iss")? != rules.issuer {
        return Err(TokenError::Claim {
            claim: "iss",
            problem: format!("not `{}`", rules.issuer),
        });
    }
    let aud: Audience = claims
        .get("aud")
        .cloned()
        .and_then(|a| serde_json::from_value(a).ok())
        .ok_or(TokenError::Claim {
            claim: "aud",
            problem: "missing".into(),
        })?;
    if !aud.contains(rules.audience) {
        return Err(TokenError::Claim {
            claim: "aud",
            problem: format!("the token is not for `{}`", rules.audience),
        });
    }
    let exp = number("exp").ok_or(TokenError::Claim {
        claim: "exp",
        problem: "missing: tokens without an expiry are refused".into(),
    })?;
    check_times(exp, number("nbf"), number("iat"), rules.now, rules.skew)?;
    let sub = text("sub")?;
    if !rules.allowed_subjects.iter().any(|p| glob(p, sub)) {
        return Err(TokenError::Claim {
            claim: "sub",
            problem: format!(
                "`{}` matches none of the issuer's allowed subjects",
                sub.chars().take(120).collect::<String>()
            ),
        });
    }
    Ok(claims)
}

/// `*` matches any run of characters (also empty); everything else literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middles: Vec<&str> = parts.collect();
    let Some((last, middles)) = middles.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for middle in middles {
        match rest.find(middle) {
            Some(i) => rest = rest.get(i + middle.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Fills `{claim.path}` placeholders of `template` from `claims`. A path walks nested
/// objects; keys that themselves contain dots (`kubernetes.io`) are matched whole first.
/// Values must be non-empty strings of `[A-Za-z0-9._-]` so a claim cannot inject a path.
pub fn render(template: &str, claims: &Map<String, Value>) -> Result<String, TokenError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}').ok_or_else(|| TokenError::Claim {
            claim: "claim_mapping",
            problem: format!("unclosed `{{` in `{template}`"),
        })?;
        let path = &after[..end];
        let value = lookup(claims, path).ok_or_else(|| TokenError::Claim {
            claim: "claim_mapping",
            problem: format!("the token has no claim `{path}`"),
        })?;
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(TokenError::Claim {
                claim: "claim_mapping",
                problem: format!(
                    "claim `{path}` is not a plain name (letters, digits, `.`, `_`, `-`)"
                ),
            });
        }
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a str> {
    let parts: Vec<&str> = path.split('.').collect();
    for i in (1..=parts.len()).rev() {
        let (head, tail) = parts.split_at(i);
        let Some(v) = claims.get(&head.join(".")) else {
            continue;
        };
        if tail.is_empty() {
            return v.as_str();
        }
        if let Some(found) = v.as_object().and_then(|obj| lookup(obj, &tail.join("."))) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(
            "system:serviceaccount:payments:*",
            "system:serviceaccount:payments:api"
        ));
        assert!(!glob(
            "system:serviceaccount:payments:*",
            "system:serviceaccount:kube-system:x"
        ));
        assert!(glob(
            "repo:acme/*:environment:prod",
            "repo:acme/deploy:environment:prod"
        ));
        assert!(!glob(
            "repo:acme/*:environment:prod",
            "repo:acme/deploy:environment:dev"
        ));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert!(glob("*", "") && glob("a*b*c", "abc") && !glob("a*b*c", "acb"));
    }

    #[test]
    fn templates_walk_nested_and_dotted_claims() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api"}},
            "pipeline": "deploy", "environment": "prod", "evil": "../admin",
        }))
        .unwrap();
        assert_eq!(
            render("spiffe://acme.example/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}", &claims).unwrap(),
            "spiffe://acme.example/ns/payments/sa/api"
        );
        assert_eq!(render("{environment}", &claims).unwrap(), "prod");
        assert!(
            render("{missing}", &claims)
                .unwrap_err()
                .to_string()
                .contains("no claim")
        );
        assert!(
            render("x/{evil}", &claims)
                .unwrap_err()
                .to_string()
                .contains("plain name")
        );
    }
}
