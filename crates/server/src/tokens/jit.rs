//! Just-in-time credentials: `client_credentials` with `workflow=<id>` names a
//! workflow declared in the governance repository. The client must be one of its
//! requesters; the credential must be approved — by policy (some action allowed, now, on
//! every capability of the scope with `task_scope` = the workflow id in the request
//! context), or, when the workflow lists approvers, by an unexpired approval one of them
//! recorded; it is limited to the workflow's scope and `max_ttl_secs`. Asking again renews
//! it — only while all of that still holds. Every step is an evidence event.

use std::collections::BTreeMap;

use steward_token::Claims;

use super::Client;
use super::oauth_error::OAuthError;
use crate::AppState;

/// What the evidence record of a JIT credential adds.
#[derive(Debug, Clone)]
pub struct Jit {
    pub workflow: String,
    /// A credential for this client and workflow was issued before (since start).
    pub renewal: bool,
    /// The policies that approved it (policy approval).
    pub approved_by: Vec<String>,
    /// The approval that approved it (approver approval): who, when, until when.
    pub approval: Option<String>,
}

/// Applies the workflow named in the request, if any, to `claims`.
pub async fn approve(
    s: &AppState,
    form: &BTreeMap<String, String>,
    client_id: &str,
    client: &Client,
    claims: &mut Claims,
) -> Result<Option<Jit>, OAuthError> {
    let Some(id) = form.get("workflow") else {
        return Ok(None);
    };
    let workflow = s.tokens.directory().workflow(id).cloned().ok_or_else(|| {
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
    let (approved_by, approval) = if workflow.approvers.is_empty() {
        (policy_approval(s, id, client_id, client, &scope)?, None)
    } else {
        let approval = approver_approval(s, id, client_id, &workflow.approvers).await?;
        (Vec::new(), Some(approval))
    };
    claims.exp = claims.exp.min(claims.iat + workflow.max_ttl_secs as i64);
    claims.scope = Some(scope.join(" "));
    claims.workflow = Some(id.clone());
    claims.task_scope = Some(id.clone());
    Ok(Some(Jit {
        workflow: id.clone(),
        renewal: s.tokens.note_jit(client_id, id),
        approved_by,
        approval,
    }))
}

/// Policy approves when it allows some action on every capability of the scope, with
/// `task_scope` = the workflow id. Returns the approving policies.
fn policy_approval(
    s: &AppState,
    id: &str,
    client_id: &str,
    client: &Client,
    scope: &[String],
) -> Result<Vec<String>, OAuthError> {
    let engine = s
        .engine()
        .map_err(|e| OAuthError::unavailable(format!("policy unavailable: {e}")))?;
    let mut context = serde_json::Map::new();
    context.insert("environment".into(), client.environment.clone().into());
    context.insert("task_scope".into(), id.into());
    let at = time::OffsetDateTime::now_utc();
    let mut approved_by = Vec::new();
    for capability in scope {
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
    Ok(approved_by)
}

/// A listed approver approves by recording an approval for this requester; any unexpired
/// one counts. Returns who approved, when, until when.
async fn approver_approval(
    s: &AppState,
    id: &str,
    client_id: &str,
    approvers: &[String],
) -> Result<String, OAuthError> {
    let now = time::OffsetDateTime::now_utc();
    let approvals = s
        .store
        .jit_approvals(id, client_id)
        .await
        .map_err(|_| OAuthError::unavailable("approvals cannot be read"))?;
    // Only approvals by someone still listed count: removing an approver withdraws theirs.
    let active = approvals.into_iter().find(|a| {
        let listed = approvers
            .iter()
            .any(|name| a.approved_by.starts_with(&format!("{name} (")));
        listed && steward_model::timestamp::parse(&a.expires_at).is_some_and(|until| until > now)
    });
    match active {
        Some(a) => Ok(format!(
            "{} at {}, until {}",
            a.approved_by, a.approved_at, a.expires_at
        )),
        None => Err(OAuthError::invalid_grant(format!(
            "workflow `{id}` needs an approval by one of {} for `{client_id}`; none is active (steward jit approve)",
            approvers.join(", ")
        ))),
    }
}

/// Longest an approval may stay usable.
const MAX_APPROVAL_SECS: u64 = 86_400;
const DEFAULT_APPROVAL_SECS: u64 = 3_600;

/// `POST /admin/v1/workflows/{id}/approvals`: a listed approver approves JIT credentials
/// of one requester for a while.
pub async fn approve_route(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: crate::auth::Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    crate::extract::Json(req): crate::extract::Json<steward_api::ApprovalRequest>,
) -> Result<(axum::http::StatusCode, axum::Json<steward_api::JitApproval>), crate::ApiError> {
    use crate::ApiError;
    caller.require_writer("approving a just-in-time credential")?;
    let workflow = s
        .tokens
        .directory()
        .workflow(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no workflow `{id}` is declared")))?;
    caller
        .require_plane(
            &s.store,
            &workflow.plane,
            "approving a just-in-time credential",
        )
        .await?;
    if workflow.approvers.is_empty() {
        return Err(ApiError::bad_request(format!(
            "workflow `{id}` lists no approvers: policy approves its credentials"
        )));
    }
    if !workflow.approvers.contains(&caller.0.name) {
        return Err(ApiError::forbidden(format!(
            "`{}` is not a listed approver of workflow `{id}` (approvers: {})",
            caller.0.name,
            workflow.approvers.join(", ")
        )));
    }
    if !workflow
        .requesters
        .iter()
        .any(|r| r.as_str() == req.requester)
    {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a requester of workflow `{id}`",
            req.requester
        )));
    }
    if req.note.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`note` must say why (a ticket or an incident): it goes into the evidence",
        ));
    }
    let secs = req.valid_secs.unwrap_or(DEFAULT_APPROVAL_SECS);
    if secs == 0 || secs > MAX_APPROVAL_SECS {
        return Err(ApiError::bad_request(format!(
            "`valid_secs` must be between 1 and {MAX_APPROVAL_SECS}"
        )));
    }
    let now = super::now_unix();
    let approval = steward_api::JitApproval {
        id: uuid::Uuid::new_v4().to_string(),
        workflow: id,
        requester: req.requester,
        approved_by: caller.0.label(),
        approved_at: steward_model::timestamp::from_unix(now),
        expires_at: steward_model::timestamp::from_unix(now + secs as i64),
        note: req.note,
    };
    s.store.approve_jit(&approval, &caller.0).await?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(approval)))
}
