//! `POST /oauth2/introspect` (RFC 7662): whether a Steward token is in force now, for
//! services that validate tokens with their own library (PyJWT, go-spiffe, py-spiffe)
//! and so never see a revocation.
//!
//! Who may ask, and about which tokens:
//! - a registered workload, authenticated as at the token endpoint (`private_key_jwt`,
//!   mutual TLS, a legacy-key client secret) and active, about tokens whose `aud` names
//!   it: the resource server the token was presented to;
//! - an admin credential (`Authorization: Bearer stw_…`): central admins, auditors and
//!   ingestors (the credential enforcement points run with) about any token, a plane
//!   admin about tokens of its planes (the token's `plane` in its subtree).
//!
//! A token the caller may not ask about gets `{"active": false}`, exactly as an invalid
//! one does, so a caller learns nothing of tokens not meant for it. Refused requests are
//! `credential.refused` evidence like the token endpoint's; answers are not recorded (an
//! answer grants and changes nothing: the resource server's own decision is the event).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use steward_api::Introspection;
use steward_model::{LifecycleState, Role};
use steward_store::Actor;
use steward_token::Claims;

use super::endpoint::{Attempt, active_client, parse_form, refused_event};
use super::now_unix;
use super::oauth_error::{OAuthError, no_store};
use crate::AppState;

/// What `action` the evidence record of a refused introspection names.
const ACTION: &str = "introspect";
/// The `enforcement_point` of that record.
const POINT: &str = "introspection-endpoint";

/// Who asked, once authenticated.
enum Asker {
    /// A registered workload, by SPIFFE ID.
    Workload(String),
    /// An admin credential.
    Admin(Actor),
}

/// The introspection endpoint: every answer `no-store`, every refusal on record.
pub async fn introspect(
    State(s): State<AppState>,
    peer: Option<axum::Extension<crate::tls::ClientCertificate>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let mut attempt = Attempt::default();
    let result = match &body {
        Ok(body) => {
            let peer = crate::tls::peer_thumbprint(peer.as_ref());
            let peer = peer.as_deref();
            answer(&s, &headers, peer, body, &mut attempt).await
        }
        Err(_) => Err(OAuthError::invalid_request(format!(
            "the request body is unreadable or larger than {} bytes",
            super::MAX_TOKEN_REQUEST_BYTES
        ))),
    };
    match result {
        Ok(answer) => no_store((StatusCode::OK, axum::Json(answer)).into_response()),
        Err(e) => {
            let mut event = refused_event(&attempt, &e);
            event.action = Some(ACTION.into());
            event.enforcement_point = Some(POINT.into());
            if let Err(err) = s.evidence.submit(vec![event]) {
                tracing::error!(error = %err, "a refused introspection request could not be recorded");
            }
            e.into_response()
        }
    }
}

async fn answer(
    s: &AppState,
    headers: &HeaderMap,
    peer: Option<&str>,
    body: &[u8],
    attempt: &mut Attempt,
) -> Result<Introspection, OAuthError> {
    let form = parse_form(headers, body)?;
    let asker = authenticate(s, headers, peer, &form, attempt).await?;
    // `token_type_hint` is accepted and not needed: every token Steward knows is an
    // access token (RFC 7662 §2.1 lets the server ignore the hint).
    let token = form
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("`token` is missing"))?;
    // Read before the check: every revocation up to this epoch is in the set checked.
    let epoch = s.tokens.revocations().epoch();
    let ring = s
        .tokens
        .ring()
        .ok_or_else(|| OAuthError::unavailable("signing keys unavailable"))?;
    let who = match &asker {
        Asker::Workload(id) => id.clone(),
        Asker::Admin(actor) => actor.label(),
    };
    let claims = match ring.validator().introspect(token, now_unix()) {
        Ok(claims) => claims,
        Err(e) => {
            // The reason never carries the token (`TokenError` says what, not the value).
            tracing::debug!(caller = %who, reason = %e, "introspection: inactive");
            return Ok(inactive());
        }
    };
    if !may_ask(s, &asker, &claims).await? {
        tracing::debug!(caller = %who, jti = %claims.jti, "introspection: not the caller's to ask about; inactive");
        return Ok(inactive());
    }
    if let Some(id) = not_active(s, &claims)? {
        tracing::debug!(caller = %who, jti = %claims.jti, identity = %id, "introspection: identity not active; inactive");
        return Ok(inactive());
    }
    tracing::debug!(caller = %who, jti = %claims.jti, epoch, "introspection: active");
    Ok(active(&claims, epoch))
}

/// An admin credential (`Authorization: Bearer …`), or else a client authenticated as at
/// the token endpoint.
async fn authenticate(
    s: &AppState,
    headers: &HeaderMap,
    peer: Option<&str>,
    form: &std::collections::BTreeMap<String, String>,
    attempt: &mut Attempt,
) -> Result<Asker, OAuthError> {
    let bearer = headers.get_all(header::AUTHORIZATION).iter().any(|v| {
        v.as_bytes()
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
    });
    if !bearer {
        let endpoint = s.tokens.introspection_endpoint();
        return active_client(&s.tokens, headers, peer, form, &endpoint, attempt)
            .map(Asker::Workload);
    }
    attempt.client_auth = Some("admin_credential");
    if ["client_secret", "client_assertion", "client_assertion_type"]
        .iter()
        .any(|k| form.contains_key(*k))
    {
        return Err(OAuthError::invalid_request(
            "use exactly one way to authenticate: an admin credential or client authentication (RFC 6749 §2.3)",
        ));
    }
    let actor = crate::auth::admin_credential(headers, s)
        .await
        .map_err(|e| {
            if e.status.is_server_error() {
                OAuthError::unavailable("admin credentials cannot be checked now")
            } else {
                OAuthError::invalid_client(e.message)
            }
        })?;
    attempt.principal = Some(actor.label());
    attempt.plane = actor.role.plane().map(ToString::to_string);
    Ok(Asker::Admin(actor))
}

/// Whether `asker` may learn about this token: a workload about tokens for it, a plane
/// admin about tokens of its planes, other admin roles about any.
async fn may_ask(s: &AppState, asker: &Asker, claims: &Claims) -> Result<bool, OAuthError> {
    let actor = match asker {
        Asker::Workload(id) => return Ok(claims.aud.contains(id)),
        Asker::Admin(actor) => actor,
    };
    match &actor.role {
        Role::CentralAdmin | Role::Auditor | Role::Ingestor => Ok(true),
        Role::PlaneAdmin { plane } => {
            let Some(of) = claims.plane.as_deref() else {
                return Ok(false);
            };
            let subtree = s.store.plane_subtree(plane).await.map_err(|e| {
                tracing::error!(error = %e, "introspection: cannot read the plane tree");
                OAuthError::unavailable("the registry is unavailable")
            })?;
            Ok(subtree.iter().any(|p| p.as_str() == of))
        }
    }
}

/// The subject or an actor of the token that is not an active registered identity now
/// (suspended, decommissioned, removed), if one is.
fn not_active(s: &AppState, claims: &Claims) -> Result<Option<String>, OAuthError> {
    let engine = s
        .engine()
        .map_err(|e| OAuthError::unavailable(format!("the registry is unavailable: {e}")))?;
    Ok(std::iter::once(claims.sub.as_str())
        .chain(claims.actors())
        .find(|id| engine.state_of(id) != Some(LifecycleState::Active))
        .map(str::to_owned))
}

/// The answer for anything not in force, or not the caller's to ask about.
fn inactive() -> Introspection {
    Introspection::default()
}

/// The answer for a token in force: its claims as RFC 7662 §2.2 names them, with
/// Steward's own.
fn active(claims: &Claims, epoch: i64) -> Introspection {
    let dpop = claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
    Introspection {
        active: true,
        scope: claims.scope.clone(),
        // The client that asked for the token: the current actor of a delegated token,
        // the subject otherwise.
        client_id: Some(claims.actors().next().unwrap_or(&claims.sub).to_owned()),
        token_type: Some(if dpop { "DPoP" } else { "Bearer" }.to_owned()),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        nbf: Some(claims.nbf),
        sub: Some(claims.sub.clone()),
        aud: serde_json::to_value(&claims.aud).ok(),
        iss: Some(claims.iss.clone()),
        jti: Some(claims.jti.clone()),
        cnf: claims
            .cnf
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
        act: claims
            .act
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok()),
        environment: claims.environment.clone(),
        plane: claims.plane.clone(),
        revocation_epoch: Some(epoch),
    }
}
