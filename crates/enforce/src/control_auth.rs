//! How an enforcement point authenticates to the control plane: a static admin
//! credential (`stw_…`, never expiring unless it was made to), or its own registered
//! identity — a short-lived Steward token from the token endpoint by `private_key_jwt`,
//! renewed by the point itself well before it expires, so no long-lived secret sits on
//! the point and revoking the identity cuts it off.
//!
//! Every control-plane call (bundle, revocation stream, reports, decision records,
//! egress secrets) asks [`ControlPlaneAuth::bearer`] for the value to send; nothing
//! here logs a token or a key.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use steward_api::RouteId;
use steward_token::{SigningKey, jws};

use crate::EnforceError;

/// Seconds a client assertion is valid for (the token endpoint accepts at most 300).
const ASSERTION_SECS: i64 = 60;
/// The assertion type of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest wait between failed renewals.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Shortest wait before a renewal, whatever the token's lifetime.
const MIN_RENEW: Duration = Duration::from_secs(1);

/// The identity an enforcement point runs as, and the key registered for it.
#[derive(Clone)]
pub struct PointIdentityKey {
    /// The identity's SPIFFE ID.
    pub spiffe_id: String,
    /// Its private key (the public half is registered in the governance repository).
    pub key: Arc<SigningKey>,
}

impl std::fmt::Debug for PointIdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointIdentityKey")
            .field("spiffe_id", &self.spiffe_id)
            .field("kid", &self.key.kid())
            .finish_non_exhaustive()
    }
}

/// What a point sends as its bearer to the control plane. Cloning shares the token.
#[derive(Clone)]
pub struct ControlPlaneAuth(Arc<Inner>);

enum Inner {
    Secret(String),
    Identity(Tokens),
}

struct Tokens {
    url: String,
    identity: PointIdentityKey,
    http: reqwest::Client,
    current: RwLock<Held>,
}

#[derive(Default)]
struct Held {
    token: Option<(String, std::time::Instant)>,
    last_error: Option<String>,
}

impl std::fmt::Debug for ControlPlaneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Inner::Secret(_) => f.write_str("ControlPlaneAuth::Secret(..)"),
            Inner::Identity(t) => write!(f, "ControlPlaneAuth::Identity({})", t.identity.spiffe_id),
        }
    }
}

impl From<String> for ControlPlaneAuth {
    fn from(secret: String) -> Self {
        Self::secret(secret)
    }
}

impl ControlPlaneAuth {
    /// A static admin credential (ingestor or central admin).
    pub fn secret(secret: String) -> Self {
        Self(Arc::new(Inner::Secret(secret)))
    }

    /// The point's own identity: tokens from the control plane at `url`. No token is
    /// held until [`ControlPlaneAuth::renew`] (or the renewer) gets one.
    pub fn identity(url: &str, identity: PointIdentityKey, http: reqwest::Client) -> Self {
        Self(Arc::new(Inner::Identity(Tokens {
            url: url.trim_end_matches('/').to_owned(),
            identity,
            http,
            current: RwLock::new(Held::default()),
        })))
    }

    /// The identity this point runs as, if it runs as one.
    pub fn spiffe_id(&self) -> Option<&str> {
        match &*self.0 {
            Inner::Secret(_) => None,
            Inner::Identity(t) => Some(&t.identity.spiffe_id),
        }
    }

    /// The bearer to send now, or why there is none (no token yet, or the last one
    /// expired and could not be renewed).
    pub fn bearer(&self) -> Result<String, EnforceError> {
        match &*self.0 {
            Inner::Secret(s) => Ok(s.clone()),
            Inner::Identity(t) => {
                let held = t.current.read();
                match &held.token {
                    Some((token, until)) if std::time::Instant::now() < *until => Ok(token.clone()),
                    _ => Err(EnforceError::NoControlPlaneToken {
                        identity: t.identity.spiffe_id.clone(),
                        last_error: held.last_error.clone(),
                    }),
                }
            }
        }
    }

    /// Gets a fresh token now; returns its lifetime. A static credential has nothing to
    /// renew (`Ok(None)`).
    pub async fn renew(&self) -> Result<Option<Duration>, EnforceError> {
        let Inner::Identity(t) = &*self.0 else {
            return Ok(None);
        };
        match t.fetch().await {
            Ok((token, ttl)) => {
                let mut held = t.current.write();
                held.token = Some((token, std::time::Instant::now() + ttl));
                held.last_error = None;
                Ok(Some(ttl))
            }
            Err(e) => {
                t.current.write().last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Keeps the token current: renews at two thirds of its lifetime, and after a failure
    /// retries with backoff (1 s doubling to 30 s) while the old token lasts and after.
    /// `None` for a static credential.
    pub fn spawn_renewer(&self) -> Option<tokio::task::JoinHandle<()>> {
        let Inner::Identity(t) = &*self.0 else {
            return None;
        };
        let id = t.identity.spiffe_id.clone();
        let me = self.clone();
        Some(tokio::spawn(async move {
            let mut retry = Duration::from_secs(1);
            let mut wait = me.next_renewal();
            loop {
                tokio::time::sleep(wait).await;
                match me.renew().await {
                    Ok(Some(ttl)) => {
                        tracing::info!(identity = %id, expires_in_secs = ttl.as_secs(), "control-plane token renewed");
                        retry = Duration::from_secs(1);
                        wait = renew_after(ttl);
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(identity = %id, error = %e, retry_in_secs = retry.as_secs(), "cannot renew the control-plane token; retrying");
                        wait = retry;
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
            }
        }))
    }

    /// When to renew the token held now.
    fn next_renewal(&self) -> Duration {
        let Inner::Identity(t) = &*self.0 else {
            return MIN_RENEW;
        };
        match &t.current.read().token {
            Some((_, until)) => {
                let left = until.saturating_duration_since(std::time::Instant::now());
                renew_after(left)
            }
            None => MIN_RENEW,
        }
    }
}

/// Two thirds into `ttl`: well before expiry, leaving a third for retries.
fn renew_after(ttl: Duration) -> Duration {
    (ttl * 2 / 3).max(MIN_RENEW)
}

impl Tokens {
    /// One token request: discovery for the issuer and token endpoint, then
    /// `client_credentials` with a fresh assertion, for the issuer as audience.
    async fn fetch(&self) -> Result<(String, Duration), EnforceError> {
        let base = &self.url;
        let discovery = self
            .http
            .get(format!(
                "{base}{}",
                RouteId::OpenidConfiguration.route().path
            ))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| crate::source::unreachable(base, &e))?;
        let meta: serde_json::Value = crate::success(discovery)
            .await?
            .json()
            .await
            .map_err(|e| crate::source::unreachable(base, &e))?;
        let text = |k: &str| {
            meta.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    EnforceError::Malformed(format!(
                        "the control plane's discovery document has no `{k}`"
                    ))
                })
        };
        let issuer = text("issuer")?;
        let endpoint = text("token_endpoint")?;
        let id = self.identity.spiffe_id.as_str();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let assertion = jws::encode(
            &self.identity.key,
            "JWT",
            &serde_json::json!({"iss": id, "sub": id, "aud": endpoint, "iat": now,
                "exp": now + ASSERTION_SECS, "jti": uuid::Uuid::new_v4().to_string()}),
        )
        .map_err(|e| EnforceError::Malformed(format!("cannot sign the client assertion: {e}")))?;
        let response = self
            .http
            .post(&endpoint)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.as_str()),
                ("audience", issuer.as_str()),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| crate::source::unreachable(base, &e))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let field = |k: &str| body.get(k).and_then(serde_json::Value::as_str);
        if !(200..300).contains(&status) {
            // An OAuth error names what was wrong; it never carries the assertion.
            return Err(EnforceError::Refused {
                status,
                message: format!(
                    "the token endpoint refused `{id}`: {} {}",
                    field("error").unwrap_or("error"),
                    field("error_description").unwrap_or("")
                ),
            });
        }
        let token = field("access_token")
            .ok_or_else(|| {
                EnforceError::Malformed("the token answer has no `access_token`".into())
            })?
            .to_owned();
        let ttl = body
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                EnforceError::Malformed("the token answer has no `expires_in`".into())
            })?;
        Ok((token, Duration::from_secs(ttl)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_well_before_expiry() {
        assert_eq!(
            renew_after(Duration::from_secs(600)),
            Duration::from_secs(400)
        );
        assert_eq!(renew_after(Duration::from_millis(900)), MIN_RENEW);
    }

    #[test]
    fn no_token_is_a_clear_refusal_not_an_empty_bearer() {
        let key = Arc::new(SigningKey::generate().unwrap().0);
        let auth = ControlPlaneAuth::identity(
            "http://127.0.0.1:1",
            PointIdentityKey {
                spiffe_id: "spiffe://acme.example/ns/edge/sa/gateway".into(),
                key,
            },
            reqwest::Client::new(),
        );
        let err = auth.bearer().unwrap_err().to_string();
        assert!(
            err.contains("spiffe://acme.example/ns/edge/sa/gateway"),
            "{err}"
        );
        assert_eq!(
            ControlPlaneAuth::secret("stw_x".into()).bearer().unwrap(),
            "stw_x"
        );
        assert!(!format!("{:?}", ControlPlaneAuth::secret("stw_x".into())).contains("stw_x"));
    }
}
