//! `POST /oauth2/token` (RFC 6749 §4.4 client credentials, clients authenticated with
//! `private_key_jwt`, RFC 7523). Form-encoded in, JSON out, errors as RFC 6749 §5.2,
//! every answer `Cache-Control: no-store`, every outcome in the evidence log.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use steward_audit::{Event, EventKind, Outcome};
use steward_model::LifecycleState;
use steward_token::{
    AssertionRules, Audience, Claims, Confirmation, DpopRequest, JWT_BEARER_ASSERTION,
    decode_client_assertion, jws, verify_dpop,
};

use super::oauth_error::{OAuthError, no_store};
use super::{TokenService, now_unix};
use crate::AppState;

/// `grant_type` values.
const CLIENT_CREDENTIALS: &str = "client_credentials";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A token request's grant type as a metrics label: the grants served here, else
/// `other` (what a caller sends is never a label).
fn grant_label(grant: Option<&str>) -> &'static str {
    match grant {
        Some(CLIENT_CREDENTIALS) => "client_credentials",
        Some(TOKEN_EXCHANGE) => "token_exchange",
        None => "none",
        Some(_) => "other",
    }
}
/// Parameters in one request, at most.
const MAX_PARAMS: usize = 32;
/// Capabilities in one `scope`, at most.
const MAX_SCOPES: usize = 32;
/// Longest audience accepted.
const MAX_AUDIENCE: usize = 512;
/// How old (by its `iat`) a DPoP proof may be.
const DPOP_MAX_AGE_SECS: i64 = 60;

/// What the evidence record of one request needs, filled in as the request is checked.
#[derive(Default)]
pub(super) struct Attempt {
    grant_type: Option<String>,
    /// The client the assertion claimed to be, before it was verified.
    pub(super) claimed: Option<String>,
    /// The client once authenticated.
    pub(super) principal: Option<String>,
    /// The authenticated caller's plane.
    pub(super) plane: Option<String>,
    /// The registered key the client assertion was signed with.
    assertion_kid: Option<String>,
    /// For a token exchange: the subject token and the actor chain.
    hop: Option<super::exchange::Hop>,
    /// `private_key_jwt`, `client_secret_basic`, `client_secret_post`,
    /// `self_signed_tls_client_auth`, `federated`, or at the introspection endpoint
    /// `admin_credential`.
    pub(super) client_auth: Option<&'static str>,
    /// For a federated token: the issuer and the external subject.
    federation: Option<Value>,
    /// For a just-in-time credential: the workflow.
    jit: Option<super::jit::Jit>,
    /// The W3C trace the client asked in (`traceparent`), so the token's record joins
    /// the trace of the work it was got for (an agent's task: token, tool calls, the
    /// APIs they reach).
    trace_id: Option<String>,
}

struct Issued {
    claims: Claims,
    token: String,
    ttl: i64,
    kid: String,
}

/// The token endpoint.
pub async fn token(
    State(s): State<AppState>,
    peer: Option<axum::Extension<crate::tls::ClientCertificate>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let mut attempt = Attempt {
        trace_id: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(steward_enforce::trace::TraceContext::parse)
            .map(|t| t.trace_id),
        ..Attempt::default()
    };
    let result = match &body {
        Ok(body) => {
            let peer = crate::tls::peer_thumbprint(peer.as_ref());
            let peer = peer.as_deref();
            issue(&s, &headers, peer, body, &mut attempt).await
        }
        Err(_) => Err(OAuthError::invalid_request(format!(
            "the request body is unreadable or larger than {} bytes",
            super::MAX_TOKEN_REQUEST_BYTES
        ))),
    };
    match result {
        Ok(issued) => {
            // The client gets the token only once its record is durable: a crash after the
            // answer must not leave a token nobody can find (and revoke by what it was).
            if let Err(e) = s
                .evidence
                .record(vec![issued_event(&attempt, &issued)])
                .await
            {
                tracing::error!(error = %e, "token not issued: its evidence could not be recorded");
                return OAuthError::unavailable(
                    "the evidence log cannot take the record of this token; try again shortly",
                )
                .into_response();
            }
            s.metrics
                .tokens
                .issued(grant_label(attempt.grant_type.as_deref()));
            let mut body = serde_json::Map::new();
            body.insert("access_token".into(), json!(issued.token));
            let bound = issued.claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
            body.insert(
                "token_type".into(),
                json!(if bound { "DPoP" } else { "Bearer" }),
            );
            body.insert("expires_in".into(), json!(issued.ttl));
            if let Some(scope) = &issued.claims.scope {
                body.insert("scope".into(), json!(scope));
            }
            if attempt.hop.is_some() {
                body.insert(
                    "issued_token_type".into(),
                    json!(super::exchange::ISSUED_TOKEN_TYPE),
                );
            }
            no_store((StatusCode::OK, axum::Json(body)).into_response())
        }
        Err(e) => {
            s.metrics
                .tokens
                .refused(grant_label(attempt.grant_type.as_deref()), e.error);
            if let Err(err) = s.evidence.submit(vec![refused_event(&attempt, &e)]) {
                tracing::error!(error = %err, "a refused token request could not be recorded");
            }
            e.into_response()
        }
    }
}

async fn issue(
    s: &AppState,
    headers: &HeaderMap,
    peer: Option<&str>,
    body: &[u8],
    attempt: &mut Attempt,
) -> Result<Issued, OAuthError> {
    let form = parse_form(headers, body)?;
    let grant = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("`grant_type` is missing"))?;
    attempt.grant_type = Some(grant.clone());
    let exchange = match grant.as_str() {
        CLIENT_CREDENTIALS => false,
        TOKEN_EXCHANGE => true,
        other => {
            return Err(OAuthError::unsupported_grant_type(format!(
                "`{}` is not supported; use `{CLIENT_CREDENTIALS}` or `{TOKEN_EXCHANGE}`",
                clip(other)
            )));
        }
    };
    let tokens = &s.tokens;
    let asked = match form.get("expires_in") {
        None => None,
        Some(v) => Some(v.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
            OAuthError::invalid_request("`expires_in` must be a positive number of seconds")
        })?),
    };
    let now = now_unix();
    // The DPoP proof, verified once (its `jti` is spent): an exchange's bound subject
    // token needs it before the new token is bound to it.
    let mut dpop: Option<Option<String>> = None;
    let mut claims = if exchange && !client_authenticates(headers, peer, &form) {
        // Federation: the external subject token is the credential.
        attempt.client_auth = Some("federated");
        let fed = super::federation::federate(s, &form, now).await?;
        attempt.principal = Some(fed.id.clone());
        attempt.plane = Some(fed.plane.clone());
        attempt.federation = Some(fed.details.clone());
        let audience = audience(&form)?;
        let plane_max = tokens.directory().plane_max_ttl(&fed.plane);
        let ttl = lifetime(tokens, asked, fed.ttl, plane_max).min(fed.not_after - now);
        let mut claims = base_claims(
            tokens,
            &fed.id,
            &fed.environment,
            &fed.plane,
            audience,
            now,
            ttl,
        );
        claims.model_tier = fed.model_tier;
        claims.task_scope = fed.task_scope;
        claims.federated_by = Some(fed.issuer_id);
        claims.ctx = (!fed.context.is_empty()).then_some(fed.context);
        claims.scope = scope(s, &fed.id, &form)?;
        claims
    } else {
        let client_id = active_client(
            tokens,
            headers,
            peer,
            &form,
            &tokens.token_endpoint(),
            attempt,
        )?;
        let directory = tokens.directory();
        let client = directory
            .client(&client_id)
            .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let audience = audience(&form)?;
        let ttl = lifetime(tokens, asked, client.ttl, client.plane_max_ttl);
        let mut claims = base_claims(
            tokens,
            &client_id,
            &client.environment,
            &client.plane,
            audience,
            now,
            ttl,
        );
        if exchange {
            let proof = dpop.insert(dpop_binding(tokens, headers, now)?);
            attempt.hop = Some(super::exchange::delegate(
                s,
                &form,
                &client_id,
                client,
                &mut claims,
                proof.as_deref(),
            )?);
        } else if let Some(jit) =
            super::jit::approve(s, &form, &client_id, client, &mut claims).await?
        {
            attempt.jit = Some(jit);
        } else {
            claims.scope = scope(s, &client_id, &form)?;
        }
        claims
    };
    let ttl = claims.exp - now;
    if ttl <= 0 {
        return Err(OAuthError::invalid_request(
            "the subject token expires now: there is no lifetime left to issue",
        ));
    }
    let dpop = match dpop {
        Some(verified) => verified,
        None => dpop_binding(tokens, headers, now)?,
    };
    if let Some(jkt) = dpop {
        claims.cnf = Some(Confirmation {
            jkt: Some(jkt),
            x5t_s256: None,
        });
    } else if let Some(cert) = peer {
        // RFC 8705 §3: a token asked for over mutual TLS is bound to that certificate.
        claims.cnf = Some(Confirmation {
            jkt: None,
            x5t_s256: Some(cert.to_owned()),
        });
    }
    let ring = tokens
        .ring()
        .ok_or_else(|| OAuthError::unavailable("signing keys unavailable"))?;
    let token = jws::encode(ring.signer(), "JWT", &claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthError::unavailable("the token could not be signed")
    })?;
    Ok(Issued {
        token,
        ttl,
        kid: ring.signer().kid().to_owned(),
        claims,
    })
}

/// Whether the request carries any client authentication (else a token exchange is a
/// federation: the external subject token is the credential).
fn client_authenticates(
    headers: &HeaderMap,
    peer: Option<&str>,
    form: &BTreeMap<String, String>,
) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || (peer.is_some() && form.contains_key("client_id"))
        || ["client_secret", "client_assertion", "client_assertion_type"]
            .iter()
            .any(|k| form.contains_key(*k))
}

/// The smallest of what was asked (or the default), the identity's own lifetime, its
/// plane's inherited maximum and the configured maximum, in seconds.
fn lifetime(
    tokens: &TokenService,
    asked: Option<u64>,
    identity: Option<u64>,
    plane: Option<u64>,
) -> i64 {
    [
        Some(asked.unwrap_or(tokens.config.default_ttl_secs)),
        identity,
        plane,
        Some(tokens.config.max_ttl_secs),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(tokens.config.default_ttl_secs) as i64
}

/// The claims of a token for `sub`, before scope, delegation and binding.
fn base_claims(
    tokens: &TokenService,
    sub: &str,
    environment: &str,
    plane: &str,
    audience: String,
    now: i64,
    ttl: i64,
) -> Claims {
    Claims {
        iss: tokens.config.issuer.clone(),
        sub: sub.to_owned(),
        aud: Audience::One(audience),
        exp: now + ttl,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        environment: Some(environment.to_owned()),
        plane: Some(plane.to_owned()),
        scope: None,
        act: None,
        cnf: None,
        workflow: None,
        model_tier: None,
        task_scope: None,
        federated_by: None,
        ctx: None,
    }
}

/// The thumbprint of the key a `DPoP` proof header (RFC 9449) binds the token to, if the
/// client sent one.
fn dpop_binding(
    tokens: &TokenService,
    headers: &HeaderMap,
    now: i64,
) -> Result<Option<String>, OAuthError> {
    let mut proofs = headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(OAuthError::invalid_dpop_proof("send one `DPoP` header"));
    }
    let proof = proof
        .to_str()
        .map_err(|_| OAuthError::invalid_dpop_proof("the `DPoP` header is not text"))?;
    let endpoint = tokens.token_endpoint();
    let req = DpopRequest {
        method: "POST",
        url: &endpoint,
        access_token: None,
        now,
        max_age: DPOP_MAX_AGE_SECS,
        skew: tokens.config.clock_skew_secs as i64,
    };
    verify_dpop(proof, &req, tokens.replay())
        .map(Some)
        .map_err(|e| OAuthError::invalid_dpop_proof(format!("DPoP proof: {e}")))
}

/// Authenticates the calling client (as [`authenticate`]) and checks that its identity may
/// act now: registered and active. Returns its SPIFFE ID. The token and introspection
/// endpoints both authenticate their callers here; `endpoint` is the URL called, which a
/// client assertion may name as its audience.
pub(super) fn active_client(
    tokens: &TokenService,
    headers: &HeaderMap,
    peer: Option<&str>,
    form: &BTreeMap<String, String>,
    endpoint: &str,
    attempt: &mut Attempt,
) -> Result<String, OAuthError> {
    let client_id = authenticate(tokens, headers, peer, form, endpoint, attempt)?;
    let directory = tokens.directory();
    let client = directory
        .client(&client_id)
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    attempt.plane = Some(client.plane.clone());
    if client.state != LifecycleState::Active {
        return Err(OAuthError::invalid_client(format!(
            "identity `{client_id}` is {}; it cannot authenticate as a client",
            client.state
        )));
    }
    Ok(client_id)
}

/// Authenticates the client with `private_key_jwt`, mutual TLS or a legacy client
/// secret; returns its SPIFFE ID. A client assertion's audience must be `endpoint` or
/// the issuer.
fn authenticate(
    tokens: &TokenService,
    headers: &HeaderMap,
    peer: Option<&str>,
    form: &BTreeMap<String, String>,
    endpoint: &str,
    attempt: &mut Attempt,
) -> Result<String, OAuthError> {
    let basic = basic_credentials(headers)?;
    let methods = usize::from(basic.is_some())
        + usize::from(form.contains_key("client_secret"))
        + usize::from(
            form.contains_key("client_assertion") || form.contains_key("client_assertion_type"),
        );
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method (RFC 6749 §2.3)",
        ));
    }
    if let Some((id, secret)) = basic {
        return secret_auth(tokens, &id, &secret, "client_secret_basic", attempt).map_err(
            |mut e| {
                e.challenge_basic();
                e
            },
        );
    }
    if let Some(secret) = form.get("client_secret") {
        let id = form
            .get("client_id")
            .ok_or_else(|| OAuthError::invalid_request("`client_secret` needs `client_id`"))?;
        return secret_auth(tokens, id, secret, "client_secret_post", attempt);
    }
    if methods == 0
        && let (Some(cert), Some(id)) = (peer, form.get("client_id"))
    {
        return certificate_auth(tokens, id, cert, attempt);
    }
    attempt.client_auth = Some("private_key_jwt");
    let assertion = match (
        form.get("client_assertion_type").map(String::as_str),
        form.get("client_assertion"),
    ) {
        (Some(JWT_BEARER_ASSERTION), Some(a)) => a,
        (Some(JWT_BEARER_ASSERTION), None) => {
            return Err(OAuthError::invalid_request("`client_assertion` is missing"));
        }
        (Some(other), _) => {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type `{}` is not supported; use `{JWT_BEARER_ASSERTION}`",
                clip(other)
            )));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "`client_assertion_type` is missing",
            ));
        }
        (None, None) => {
            return Err(OAuthError::invalid_client(format!(
                "authenticate with private_key_jwt: send `client_assertion_type={JWT_BEARER_ASSERTION}` and a `client_assertion` signed with a key registered for the identity"
            )));
        }
    };
    let unverified = decode_client_assertion(assertion)
        .map_err(|e| OAuthError::invalid_client(format!("client assertion: {e}")))?;
    let client_id = unverified.client_id().to_owned();
    attempt.claimed = Some(clip(&client_id));
    if let Some(id) = form.get("client_id")
        && *id != client_id
    {
        return Err(OAuthError::invalid_client(
            "`client_id` does not match the client assertion's subject",
        ));
    }
    let directory = tokens.directory();
    let client = directory.client(&client_id).ok_or_else(|| {
        OAuthError::invalid_client(format!(
            "no identity `{}` with keys registered for private_key_jwt",
            clip(&client_id)
        ))
    })?;
    let rules = AssertionRules {
        audiences: vec![endpoint.to_owned(), tokens.config.issuer.clone()],
        max_lifetime: tokens.config.assertion_max_lifetime_secs as i64,
        skew: tokens.config.clock_skew_secs as i64,
    };
    let verified = unverified
        .verify(&client.keys, &rules, now_unix(), tokens.replay())
        .map_err(|e| OAuthError::invalid_client(format!("client assertion: {e}")))?;
    attempt.assertion_kid = Some(verified.kid);
    attempt.principal = Some(client_id.clone());
    Ok(client_id)
}

/// `Authorization: Basic` client credentials (RFC 6749 §2.3.1: each part form-encoded,
/// then base64). Any other scheme is refused.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = |why: &str| {
        let mut e = OAuthError::invalid_client(format!("`Authorization` header: {why}"));
        e.challenge_basic();
        e
    };
    if values.next().is_some() {
        return Err(bad("send it once"));
    }
    let value = value.to_str().map_err(|_| bad("not text"))?;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(bad(
            "only `Basic` client credentials are accepted here (or private_key_jwt in the body)",
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("not base64 of `client_id:client_secret`"))?;
    // Split at the last `:`: RFC 6749 clients percent-encode both parts, but many send a
    // SPIFFE ID's `:` as is, and Steward's secrets never contain one.
    let (id, secret) = decoded
        .rsplit_once(':')
        .ok_or_else(|| bad("not `client_id:client_secret`"))?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Mutual TLS (RFC 8705 §2.2, `self_signed_tls_client_auth`): the connection's client
/// certificate must be one the identity pinned. Returns its SPIFFE ID.
fn certificate_auth(
    tokens: &TokenService,
    id: &str,
    cert: &str,
    attempt: &mut Attempt,
) -> Result<String, OAuthError> {
    attempt.claimed = Some(clip(id));
    attempt.client_auth = Some("self_signed_tls_client_auth");
    let directory = tokens.directory();
    let pinned = directory
        .client(id)
        .is_some_and(|c| c.tls_certificates.iter().any(|t| t == cert));
    if !pinned {
        return Err(OAuthError::invalid_client(format!(
            "the client certificate of this connection is not one `{}` registered",
            clip(id)
        )));
    }
    attempt.principal = Some(id.to_owned());
    Ok(id.to_owned())
}

/// Checks a legacy-key identity's static client secret; returns its SPIFFE ID.
fn secret_auth(
    tokens: &TokenService,
    id: &str,
    secret: &str,
    method: &'static str,
    attempt: &mut Attempt,
) -> Result<String, OAuthError> {
    attempt.claimed = Some(clip(id));
    attempt.client_auth = Some(method);
    let directory = tokens.directory();
    let stored = directory
        .client(id)
        .filter(|c| c.kind == steward_model::IdentityKind::LegacyKey)
        .and_then(|c| c.secret.as_ref().map(|s| (c, s)));
    let Some((client, stored)) = stored else {
        return Err(OAuthError::invalid_client(format!(
            "no client secret is registered for `{}` (client secrets are only for legacy-key identities)",
            clip(id)
        )));
    };
    if !crate::auth::constant_time_eq(
        crate::auth::hash_token(secret).as_bytes(),
        stored.hash.as_bytes(),
    ) {
        return Err(OAuthError::invalid_client("wrong client secret"));
    }
    let max_days = client
        .max_credential_age_days
        .unwrap_or(super::DEFAULT_MAX_SECRET_AGE_DAYS);
    if let Some(problem) = super::secret_too_old(stored.created, max_days, now_unix()) {
        return Err(OAuthError::invalid_client(problem));
    }
    attempt.principal = Some(id.to_owned());
    Ok(id.to_owned())
}

/// The one audience of the token: `audience` (RFC 8693) or `resource` (RFC 8707).
fn audience(form: &BTreeMap<String, String>) -> Result<String, OAuthError> {
    let aud = match (form.get("audience"), form.get("resource")) {
        (Some(a), None) | (None, Some(a)) => a,
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "send either `audience` or `resource`, not both",
            ));
        }
        (None, None) => {
            return Err(OAuthError::invalid_request(
                "name the audience: `audience=<SPIFFE ID or URL of the service that will receive the token>`",
            ));
        }
    };
    if aud.is_empty()
        || aud.len() > MAX_AUDIENCE
        || aud.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(OAuthError::invalid_target(format!(
            "the audience must be one non-empty value of at most {MAX_AUDIENCE} characters without spaces"
        )));
    }
    Ok(aud.clone())
}

/// The requested scope, if any: capability ids on each of which policy allows the client
/// at least one action now. A scope only narrows a token; it never adds a permission.
fn scope(
    s: &AppState,
    client: &str,
    form: &BTreeMap<String, String>,
) -> Result<Option<String>, OAuthError> {
    let Some(raw) = form.get("scope") else {
        return Ok(None);
    };
    let items: Vec<&str> = raw.split(' ').filter(|i| !i.is_empty()).collect();
    if items.is_empty() || items.len() > MAX_SCOPES {
        return Err(OAuthError::invalid_scope(format!(
            "`scope` lists 1 to {MAX_SCOPES} capability ids separated by spaces"
        )));
    }
    let engine = s
        .engine()
        .map_err(|e| OAuthError::unavailable(format!("the scope cannot be checked: {e}")))?;
    let context = steward_policy::analysis::home_context(&engine, client).ok_or_else(|| {
        OAuthError::invalid_scope("the policy engine does not know this identity yet")
    })?;
    let now = time::OffsetDateTime::now_utc();
    for item in &items {
        if steward_policy::analysis::permissions_on(&engine, client, item, &context, now).is_empty()
        {
            return Err(OAuthError::invalid_scope(format!(
                "`{}`: policy allows this identity no action on it (or no such capability)",
                clip(item)
            )));
        }
    }
    Ok(Some(items.join(" ")))
}

/// The form body as a map; a repeated parameter is an error (RFC 6749 §3.2).
pub(super) fn parse_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, OAuthError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "this endpoint takes `Content-Type: application/x-www-form-urlencoded`",
        ));
    }
    let mut form = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if form.len() >= MAX_PARAMS {
            return Err(OAuthError::invalid_request(format!(
                "more than {MAX_PARAMS} parameters"
            )));
        }
        let key = k.into_owned();
        if form.contains_key(&key) {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{}` is repeated",
                clip(&key)
            )));
        }
        form.insert(key, v.into_owned());
    }
    Ok(form)
}

/// `s` cut to 120 characters, for echoing what a caller sent in an error or a record.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

fn event(kind: EventKind, attempt: &Attempt) -> Event {
    let mut e = Event::new(
        kind,
        uuid::Uuid::now_v7().to_string(),
        steward_model::timestamp::from_unix(now_unix()),
    );
    e.principal = attempt.principal.clone();
    e.plane = attempt.plane.clone();
    e.action = attempt.grant_type.as_deref().map(clip);
    e.enforcement_point = Some("token-endpoint".into());
    e.correlation_id = attempt.trace_id.clone();
    e
}

fn issued_event(attempt: &Attempt, issued: &Issued) -> Event {
    let kind = match (&attempt.hop, &attempt.federation) {
        (Some(_), _) => EventKind::CredentialExchanged,
        (None, Some(_)) => EventKind::CredentialFederated,
        (None, None) => EventKind::CredentialIssued,
    };
    let mut e = event(kind, attempt);
    e.token_id = Some(issued.claims.jti.clone());
    e.decision.outcome = Some(Outcome::Allow);
    e.details = json!({
        "client_auth": attempt.client_auth,
        "client_key": attempt.assertion_kid,
        "audience": issued.claims.aud,
        "scope": issued.claims.scope,
        "environment": issued.claims.environment,
        "expires_at": steward_model::timestamp::from_unix(issued.claims.exp),
        "ttl_secs": issued.ttl,
        "signing_kid": issued.kid,
        "binding": issued.claims.cnf.as_ref().map(|c| json!({"dpop_jkt": c.jkt, "x5t#S256": c.x5t_s256})),
    });
    if attempt
        .client_auth
        .is_some_and(|m| m.starts_with("client_secret"))
    {
        // Every use of a static secret is flagged.
        e.decision.reasons = vec![
            "legacy static client secret used (identity kind legacy-key); move it to private_key_jwt".into(),
        ];
        if let Some(d) = e.details.as_object_mut() {
            d.insert("legacy_credential".into(), json!(true));
        }
    }
    if let (Some(fed), Some(d)) = (&attempt.federation, e.details.as_object_mut()) {
        d.insert("federation".into(), fed.clone());
        d.insert("model_tier".into(), json!(issued.claims.model_tier));
        d.insert("task_scope".into(), json!(issued.claims.task_scope));
        // What Steward vouched for in `ctx`, for the auditor asking why a policy saw it.
        if let Some(ctx) = &issued.claims.ctx {
            d.insert("ctx".into(), json!(ctx));
        }
    }
    if let Some(jit) = &attempt.jit {
        e.decision.policies = jit.approved_by.clone();
        e.decision.reasons = vec![format!(
            "just-in-time credential for workflow `{}` ({}), approved by {}",
            jit.workflow,
            if jit.renewal {
                "renewal"
            } else {
                "first issue"
            },
            jit.approval.as_deref().unwrap_or("policy")
        )];
        if let Some(d) = e.details.as_object_mut() {
            d.insert(
                "jit".into(),
                json!({"workflow": jit.workflow, "renewal": jit.renewal}),
            );
        }
    }
    if let Some(hop) = &attempt.hop {
        // The event is about the subject; the chain names who acted, current actor first.
        e.principal = Some(issued.claims.sub.clone());
        e.plane = issued.claims.plane.clone();
        e.actor_chain = hop.chain.clone();
        if let Some(d) = e.details.as_object_mut() {
            d.insert("subject_token_id".into(), json!(hop.subject_token_id));
            d.insert("depth".into(), json!(hop.chain.len()));
        }
    }
    e
}

/// The `credential.refused` record of a refused request.
pub(super) fn refused_event(attempt: &Attempt, err: &OAuthError) -> Event {
    let mut e = event(EventKind::CredentialRefused, attempt);
    e.decision.outcome = Some(Outcome::Deny);
    e.decision.reasons = vec![format!("{}: {}", err.error, err.description)];
    e.details = json!({ "error": err.error, "claimed_client": attempt.claimed });
    e
}
