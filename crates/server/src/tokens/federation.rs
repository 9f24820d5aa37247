//! Federation: `token-exchange` with a token from a trusted external issuer
//! (Kubernetes service-account token, CI OIDC token, another trust domain's JWT-SVID) as
//! the subject token and no client authentication — the external token is the credential.
//! It must match one declared issuer's trust boundary exactly; its claims are mapped by the
//! issuer's explicit templates onto a registered, active identity of the issuer's plane
//! (or a plane beneath it), in the environment the mapping names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use steward_governance::State;
use steward_model::TrustedIssuer;
use steward_token::foreign::{ForeignKeySet, ForeignRules, validate_foreign};
use steward_token::{FederationError, check_mapped, map_claims};

use super::oauth_error::OAuthError;
use crate::AppState;

/// How long fetched issuer keys are used before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` refetches the keys, at most this often.
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(30);
/// Largest JWKS document fetched.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// A trusted issuer, ready to check tokens.
#[derive(Debug)]
pub struct Issuer {
    pub id: String,
    pub issuer: String,
    pub audience: String,
    pub allowed_subjects: Vec<String>,
    /// `identity`, `environment`, `model_tier`, `task_scope` templates.
    pub mapping: BTreeMap<String, String>,
    /// `claim_mapping.context`: `ctx` member → the external claim copied into it.
    pub context: BTreeMap<String, String>,
    /// The issuer's plane and every plane beneath it: where mapped identities may live.
    pub planes: HashSet<String>,
    pub inline_keys: Option<Arc<ForeignKeySet>>,
    pub jwks_uri: Option<String>,
}

/// The trusted issuers by `iss`, built with the directory.
pub fn issuers(state: &State) -> HashMap<String, Vec<Arc<Issuer>>> {
    let mut out: HashMap<String, Vec<Arc<Issuer>>> = HashMap::new();
    for i in state.issuers.values() {
        out.entry(i.issuer.clone())
            .or_default()
            .push(Arc::new(issuer(state, i)));
    }
    out
}

fn issuer(state: &State, i: &TrustedIssuer) -> Issuer {
    // The issuer's plane and the planes beneath it.
    let mut planes: HashSet<String> = steward_model::PlaneTree::new(&state.planes)
        .subtree(&i.plane)
        .iter()
        .map(ToString::to_string)
        .collect();
    if i.plane.as_str() == steward_model::ROOT_PLANE {
        planes.extend(state.planes.keys().map(|p| p.to_string()));
    }
    let mapping = i
        .claim_mapping
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let context = i
        .claim_mapping
        .get("context")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let inline_keys = i
        .jwks
        .as_ref()
        .and_then(|doc| match ForeignKeySet::from_jwks(doc) {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                tracing::warn!(issuer = %i.id, error = %e, "inline keys ignored");
                None
            }
        });
    Issuer {
        id: i.id.clone(),
        issuer: i.issuer.clone(),
        audience: i.audience.clone(),
        allowed_subjects: i.allowed_subjects.clone(),
        mapping,
        context,
        planes,
        inline_keys,
        jwks_uri: i.jwks_uri.clone(),
    }
}

struct Cached {
    keys: Arc<ForeignKeySet>,
    fetched: Instant,
}

/// Keys fetched from issuers' `jwks_uri`, cached.
pub struct JwksCache {
    http: reqwest::Client,
    cache: tokio::sync::Mutex<HashMap<String, Cached>>,
}

impl JwksCache {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The keys at `uri`: cached for [`JWKS_TTL`], refetched early (at most every
    /// [`JWKS_REFETCH_MIN`]) when `kid` is unknown. A failed fetch falls back to the keys
    /// fetched before, if any.
    async fn keys(&self, uri: &str, kid: Option<&str>) -> Result<Arc<ForeignKeySet>, String> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(uri) {
            let age = c.fetched.elapsed();
            let kid_known = kid.is_none_or(|k| c.keys.has_kid(k));
            if age < JWKS_TTL && (kid_known || age < JWKS_REFETCH_MIN) {
                return Ok(c.keys.clone());
            }
        }
        match self.fetch(uri).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                cache.insert(
                    uri.to_owned(),
                    Cached {
                        keys: keys.clone(),
                        fetched: Instant::now(),
                    },
                );
                Ok(keys)
            }
            Err(e) => match cache.get(uri) {
                Some(c) => {
                    tracing::warn!(uri, error = %e, "issuer keys could not be refreshed; using the keys fetched before");
                    Ok(c.keys.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self, uri: &str) -> Result<ForeignKeySet, String> {
        let resp = self
            .http
            .get(uri)
            .send()
            .await
            .map_err(|e| format!("cannot fetch {uri}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{uri} answered {}", resp.status()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n as usize > MAX_JWKS_BYTES)
        {
            return Err(format!(
                "{uri}: the key set is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        let body = resp.bytes().await.map_err(|e| format!("{uri}: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "{uri}: the key set is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| format!("{uri}: not JSON: {e}"))?;
        ForeignKeySet::from_jwks(&doc).map_err(|e| format!("{uri}: {e}"))
    }
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The identity a federated token is for, and what bounds its token.
pub struct Federated {
    pub id: String,
    pub environment: String,
    pub plane: String,
    pub ttl: Option<u64>,
    /// The external token's `exp`: the Steward token never outlives it.
    pub not_after: i64,
    pub model_tier: Option<String>,
    pub task_scope: Option<String>,
    /// The `ctx` claim: request-context attributes copied from the external token's
    /// claims as the issuer's `claim_mapping.context` says.
    pub context: Map<String, Value>,
    /// The trusted issuer's id (the token's `federated_by` claim).
    pub issuer_id: String,
    /// For the evidence record.
    pub details: Value,
}

/// Checks the external subject token and maps it onto an identity.
pub async fn federate(
    s: &AppState,
    form: &BTreeMap<String, String>,
    now: i64,
) -> Result<Federated, OAuthError> {
    match form.get("subject_token_type").map(String::as_str) {
        Some(
            "urn:ietf:params:oauth:token-type:jwt"
            | "urn:ietf:params:oauth:token-type:id_token"
            | "urn:ietf:params:oauth:token-type:access_token",
        ) => {}
        None => {
            return Err(OAuthError::invalid_request(
                "`subject_token_type` is missing",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "`subject_token_type` must be a JWT (`urn:ietf:params:oauth:token-type:jwt`, `…:id_token` or `…:access_token`)",
            ));
        }
    }
    let token = form
        .get("subject_token")
        .ok_or_else(|| OAuthError::invalid_request("`subject_token` is missing"))?;
    // Which issuer: the unverified `iss` only picks the trust boundary to check against.
    let peek =
        steward_token::jws::decode_foreign(token, steward_token::foreign::MAX_FOREIGN_TOKEN_BYTES)
            .map_err(|e| OAuthError::invalid_request(format!("subject token: {e}")))?;
    let kid = peek.header.kid.clone();
    let unverified: serde_json::Map<String, Value> = peek
        .claims()
        .map_err(|e| OAuthError::invalid_request(format!("subject token: {e}")))?;
    let iss = unverified
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss == s.tokens.config.issuer {
        return Err(OAuthError::invalid_client(
            "exchanging a Steward token delegates a hop: authenticate as the actor (private_key_jwt)",
        ));
    }
    let directory = s.tokens.directory();
    let candidates = directory.issuers_for(iss).ok_or_else(|| {
        OAuthError::invalid_request(format!(
            "subject token: issuer `{}` is not trusted",
            iss.chars().take(120).collect::<String>()
        ))
    })?;
    let skew = s.tokens.config.clock_skew_secs as i64;
    let mut last_err = None;
    let mut unavailable = None;
    for issuer in candidates {
        if let Some(why) = s.tokens.revocations().issuer_revoked(&issuer.id) {
            last_err = Some(why);
            continue;
        }
        let keys = match (&issuer.inline_keys, &issuer.jwks_uri) {
            (Some(k), _) => k.clone(),
            (None, Some(uri)) => match s.tokens.jwks().keys(uri, kid.as_deref()).await {
                Ok(keys) => keys,
                Err(e) => {
                    // Another declaration of the same issuer may still hold usable keys.
                    tracing::error!(issuer = %issuer.id, error = %e, "issuer keys unavailable");
                    unavailable = Some(issuer.id.clone());
                    continue;
                }
            },
            (None, None) => continue,
        };
        let rules = ForeignRules {
            issuer: &issuer.issuer,
            audience: &issuer.audience,
            allowed_subjects: &issuer.allowed_subjects,
            now,
            skew,
        };
        match validate_foreign(token, &keys, &rules) {
            Ok(claims) => return map(s, issuer, &claims).await,
            Err(e) => last_err = Some(format!("issuer `{}`: {e}", issuer.id)),
        }
    }
    if let (None, Some(id)) = (&last_err, unavailable) {
        return Err(OAuthError::unavailable(format!(
            "the keys of issuer `{id}` are unavailable"
        )));
    }
    Err(OAuthError::invalid_request(format!(
        "subject token: {}",
        last_err.unwrap_or_else(|| "no usable keys for its issuer".into())
    )))
}

async fn map(
    s: &AppState,
    issuer: &Issuer,
    claims: &serde_json::Map<String, Value>,
) -> Result<Federated, OAuthError> {
    let refuse = |why: FederationError| {
        OAuthError::invalid_request(format!("issuer `{}`: {why}", issuer.id))
    };
    let mapped = map_claims(&issuer.mapping, claims, s.trust_domain()).map_err(refuse)?;
    let id = mapped.identity.to_string();
    let record = s
        .store
        .identity(&id)
        .await
        .map_err(|_| OAuthError::unavailable("the registry is unavailable"))?
        .ok_or_else(|| {
            OAuthError::invalid_request(format!(
                "issuer `{}`: mapped identity `{id}` is not registered",
                issuer.id
            ))
        })?;
    let identity = record.identity;
    check_mapped(&mapped, &identity, &issuer.planes).map_err(refuse)?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    Ok(Federated {
        details: json!({
            "issuer_id": issuer.id,
            "external_iss": issuer.issuer,
            "external_sub": claims.get("sub"),
            "external_jti": claims.get("jti"),
        }),
        id,
        environment: identity.environment,
        plane: identity.plane.to_string(),
        ttl: identity.credentials.token_ttl_secs,
        not_after: exp,
        model_tier: mapped.model_tier,
        task_scope: mapped.task_scope,
        context: issuer
            .context
            .iter()
            .filter_map(|(member, claim)| Some((member.clone(), claims.get(claim)?.clone())))
            .collect(),
        issuer_id: issuer.id.clone(),
    })
}
