//! Per-hop delegation: `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`
//! (RFC 8693) with a Steward token as the subject token. The authenticated client is the
//! actor: the subject token must have been issued to it (its `aud`), and the new token is
//! for the next hop only, limited to a subset of the subject token's scope, recording the
//! client in `act`, no longer-lived than the subject token, within the configured depth,
//! and only for capabilities policy lets the client `delegate`.

use std::collections::BTreeMap;

use steward_model::{Action, LifecycleState};
use steward_policy::{AccessRequest, Target};
use steward_token::{Claims, DelegationError, Expectations, Proof, TokenError, delegate_claims};

use super::Client;
use super::oauth_error::OAuthError;
use crate::AppState;

/// `subject_token_type` / `requested_token_type` values Steward accepts (RFC 8693 §3).
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// What the answer's `issued_token_type` says.
pub const ISSUED_TOKEN_TYPE: &str = JWT_TYPE;

/// What the evidence record of an exchange adds.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The subject token's `jti`.
    pub subject_token_id: String,
    /// Actors, the current one first (the `act` chain flattened).
    pub chain: Vec<String>,
}

/// Turns `claims` (prepared for the client) into the delegated token's claims.
/// `dpop_jkt` is the thumbprint of the key of the request's verified DPoP proof, if it
/// sent one: a DPoP-bound subject token is exchanged only with a proof of its key (else
/// whoever copied it could trade it for an unbound one), and the new token is bound to
/// that key too.
pub fn delegate(
    s: &AppState,
    form: &BTreeMap<String, String>,
    client_id: &str,
    client: &Client,
    claims: &mut Claims,
    dpop_jkt: Option<&str>,
) -> Result<Hop, OAuthError> {
    if form.contains_key("actor_token") {
        return Err(OAuthError::invalid_request(
            "`actor_token` is not accepted: the authenticated client is the actor",
        ));
    }
    for (param, optional) in [
        ("subject_token_type", false),
        ("requested_token_type", true),
    ] {
        match form.get(param).map(String::as_str) {
            Some(JWT_TYPE | ACCESS_TOKEN_TYPE) => {}
            None if optional => {}
            None => return Err(OAuthError::invalid_request(format!("`{param}` is missing"))),
            Some(_) => {
                return Err(OAuthError::invalid_request(format!(
                    "`{param}` must be `{JWT_TYPE}` or `{ACCESS_TOKEN_TYPE}`"
                )));
            }
        }
    }
    let subject_token = form
        .get("subject_token")
        .ok_or_else(|| OAuthError::invalid_request("`subject_token` is missing"))?;
    let ring = s
        .tokens
        .ring()
        .ok_or_else(|| OAuthError::unavailable("signing keys unavailable"))?;
    // The subject token must have been issued to this client, in its environment, and
    // if it is DPoP-bound, come with a proof of its key.
    let subject = ring
        .validator()
        .validate(
            subject_token,
            &Expectations {
                audience: client_id,
                environment: Some(&client.environment),
                now: claims.iat,
                proof: dpop_jkt.map_or(Proof::None, Proof::Dpop),
            },
        )
        .map_err(|e| match e {
            TokenError::Binding(_) if dpop_jkt.is_some() => {
                OAuthError::invalid_dpop_proof(format!("subject token: {e}"))
            }
            TokenError::Binding(_) => OAuthError::invalid_request(format!(
                "the subject token is sender-bound ({e}): exchange it with a `DPoP` proof for the token endpoint, signed with the key it is bound to (its `cnf.jkt`)"
            )),
            _ => OAuthError::invalid_request(format!("subject token: {e}")),
        })?;
    if subject.sub == client_id {
        return Err(OAuthError::invalid_request(
            "the subject token is the client's own: there is nothing to delegate",
        ));
    }
    let engine = s
        .engine()
        .map_err(|e| OAuthError::unavailable(format!("policy unavailable: {e}")))?;
    if engine.state_of(&subject.sub) != Some(LifecycleState::Active) {
        return Err(OAuthError::invalid_request(format!(
            "subject `{}` is not an active identity",
            subject.sub
        )));
    }
    let delegated = delegate_claims(
        claims.clone(),
        &subject,
        client_id,
        form.get("scope").map(String::as_str),
        s.tokens.config.max_delegation_depth,
    )
    .map_err(|e| match e {
        DelegationError::TooDeep { .. } => OAuthError::invalid_request(e.to_string()),
        _ => OAuthError::invalid_scope(e.to_string()),
    })?;
    let scope: Vec<&str> = delegated
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .collect();
    let mut context = serde_json::Map::new();
    context.insert("environment".into(), client.environment.clone().into());
    let mut chain = vec![client_id.to_owned()];
    chain.extend(subject.actors().map(str::to_owned));
    context.insert(
        "delegation_chain".into(),
        serde_json::Value::from(chain.clone()),
    );
    // The task the subject's token was given travels with the delegated token, so policy
    // may allow a hop only within one (an agent narrowing its task's token for a tool).
    if let Some(task) = &subject.task_scope {
        context.insert("task_scope".into(), task.clone().into());
    }
    if let Some(tier) = &subject.model_tier {
        context.insert("model_tier".into(), tier.clone().into());
    }
    let at = time::OffsetDateTime::now_utc();
    for capability in &scope {
        let d = engine.decide(&AccessRequest {
            principal: client_id.to_owned(),
            target: Target::Capability((*capability).to_owned()),
            action: Some(Action::Delegate),
            context: context.clone(),
            at,
        });
        if !d.allowed {
            return Err(OAuthError::invalid_scope(format!(
                "policy does not allow `{client_id}` to delegate `{capability}`: {}",
                d.reasons
                    .iter()
                    .chain(d.errors.iter())
                    .next()
                    .map_or("no permit matches", String::as_str)
            )));
        }
    }
    *claims = delegated;
    Ok(Hop {
        subject_token_id: subject.jti.clone(),
        chain,
    })
}
