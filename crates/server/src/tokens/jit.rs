//! Just-in-time credentials (R8): `client_credentials` with `workflow=<id>` names a
//! workflow declared in the governance repository. The client must be one of its
//! requesters; policy must approve, now, some action on every capability of the scope
//! with `task_scope` = the workflow id in the request context; the credential is limited
//! to the workflow's scope and `max_ttl_secs`. Asking again renews it — only while all of
//! that still holds. Every step is an evidence event.

use std::collections::BTreeMap;

use steward_token::Claims;

use super::Client;
use super::endpoint::OAuthError;
use crate::AppState;

/// What the evidence record of a JIT credential adds.
#[derive(Debug, Clone)]
pub struct Jit {
    pub workflow: String,
    /// A credential for this client and workflow was issued before (since start).
    pub renewal: bool,
    /// The policies that approved it.
    pub approved_by: Vec<String>,
}

/// Applies the workflow named in the request, if any, to `claims`.
pub fn approve(
    s: &AppState,
    form: &BTreeMap<String, String>,
    client_id: &str,
    client: &Client,
    claims: &mut Claims,
) -> Result<Option<Jit>, OAuthError> {
    let Some(id) = form.get("workflow") else {
        return Ok(None);
    };
    let directory = s.tokens.directory();
    let workflow = directory.workflow(id).ok_or_else(|| {
        OAuthError::invalid_request(format!(
            "no workflow `{}` is declared",
            id.chars().take(80).collect::<String>()
        ))
    })?;
    if !workflow.requesters.iter().any(|r| r.as_str() == client_id) {
        return Err(OAuthError::unauthorized_client(format!(
            "`{client_id}` is not a requester of workflow `{id}`"
        )));
    }
    let scope: Vec<String> = match form.get("scope") {
        Some(asked) => {
            let asked: Vec<String> = asked
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(wider) = asked
                .iter()
                .find(|a| !workflow.scope.iter().any(|c| c.as_str() == a.as_str()))
            {
                return Err(OAuthError::invalid_scope(format!(
                    "`{wider}` is outside workflow `{id}`'s scope"
                )));
            }
            asked
        }
        None => workflow.scope.iter().map(ToString::to_string).collect(),
    };
    let engine = s
        .engine()
        .map_err(|e| OAuthError::unavailable(format!("policy unavailable: {e}")))?;
    let mut context = serde_json::Map::new();
    context.insert("environment".into(), client.environment.clone().into());
    context.insert("task_scope".into(), id.clone().into());
    let at = time::OffsetDateTime::now_utc();
    let mut approved_by = Vec::new();
    for capability in &scope {
        let allowed =
            steward_policy::analysis::permissions_on(&engine, client_id, capability, &context, at);
        if allowed.is_empty() {
            return Err(OAuthError::invalid_grant(format!(
                "policy does not approve workflow `{id}` for `{client_id}` on `{capability}` now"
            )));
        }
        approved_by.extend(allowed.into_iter().flat_map(|p| p.policies));
    }
    approved_by.sort();
    approved_by.dedup();
    claims.exp = claims.exp.min(claims.iat + workflow.max_ttl_secs as i64);
    claims.scope = Some(scope.join(" "));
    claims.workflow = Some(id.clone());
    claims.task_scope = Some(id.clone());
    Ok(Some(Jit {
        workflow: id.clone(),
        renewal: s.tokens.note_jit(client_id, id),
        approved_by,
    }))
}
