//! Access reviews: campaigns on the planes' `review_cadence_days`. Each owner sees
//! their identities' effective permissions as of the campaign's start and attests keep,
//! reduce (naming the permissions to remove from policy) or revoke — which really
//! revokes: the identity is suspended and the revocation pushed to every enforcement
//! point before the attestation is recorded. Every attestation is a `review.attested`
//! evidence event.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use steward_api::{Campaign, CampaignView, DecisionRequest, ReviewItem, StartRequest};
use steward_model::timestamp;
use steward_model::{LifecycleState, PlaneId, RevocationKind, Role};
use steward_store::{IdentityFilter, NewItem};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query};

/// Largest campaign: one plane at a time beyond this.
const MAX_ITEMS: usize = 10_000;
const DEFAULT_DUE_DAYS: u64 = 14;

/// `POST /admin/v1/reviews`: starts a campaign.
pub(crate) async fn start(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<StartRequest>,
) -> Result<(StatusCode, axum::Json<Campaign>), ApiError> {
    let plane = req
        .plane
        .as_deref()
        .map(|p| {
            PlaneId::new(p.to_owned()).map_err(|e| ApiError::bad_request(format!("`plane`: {e}")))
        })
        .transpose()?;
    match (caller.role(), &plane) {
        (Role::CentralAdmin, _) => {}
        (Role::PlaneAdmin { .. }, Some(p)) => {
            let visible = caller.visible_planes(&s.store).await?.unwrap_or_default();
            if !visible.contains(p) {
                return Err(ApiError::forbidden(format!(
                    "plane `{p}` is outside this credential's planes"
                )));
            }
        }
        (Role::PlaneAdmin { .. }, None) => {
            return Err(ApiError::bad_request(
                "a plane admin starts campaigns for a `plane` of its own",
            ));
        }
        (other, _) => {
            return Err(ApiError::forbidden(format!(
                "starting an access review needs the central-admin or plane-admin role; this credential is {other}"
            )));
        }
    }
    let due_days = req.due_days.unwrap_or(DEFAULT_DUE_DAYS);
    if !(1..=365).contains(&due_days) {
        return Err(ApiError::bad_request(
            "`due_days` must be between 1 and 365",
        ));
    }
    let name = req.name.unwrap_or_else(|| "access review".into());
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "`name` must be 1 to 200 characters on one line",
        ));
    }
    let scope = match &plane {
        Some(p) => Some(s.store.plane_subtree(p).await?),
        None => None,
    };
    let settings = steward_model::PlaneSettings::from_planes(s.store.planes().await?);
    let last: std::collections::HashMap<String, String> =
        s.store.last_reviews().await?.into_iter().collect();
    let now = OffsetDateTime::now_utc();
    let identities = s
        .store
        .identities(&IdentityFilter {
            planes: scope,
            limit: i64::MAX,
            ..Default::default()
        })
        .await?;
    let due: Vec<_> = identities
        .into_iter()
        .map(|r| r.identity)
        .filter(|i| i.state != LifecycleState::Decommissioned)
        .filter(|i| {
            if req.all {
                return true;
            }
            let cadence = settings.of(&i.plane).review_cadence_days;
            cadence.is_some_and(|days| {
                let cutoff = timestamp::format(now - time::Duration::days(days as i64));
                last.get(i.spiffe_id.as_str()).is_none_or(|at| *at < cutoff)
            })
        })
        .collect();
    if due.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            "no identity in scope is due for review on its plane's review_cadence_days; pass `all: true` to review them anyway",
        ));
    }
    if due.len() > MAX_ITEMS {
        return Err(ApiError::bad_request(format!(
            "{} identities are due; start one campaign per `plane` (at most {MAX_ITEMS} each)",
            due.len()
        )));
    }
    let engine = s
        .engine()
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "policy_unavailable", why))?;
    let items: Vec<NewItem> = tokio::task::spawn_blocking(move || {
        due.into_iter()
            .map(|i| {
                let id = i.spiffe_id.to_string();
                let permissions =
                    steward_policy::analysis::entitlements(&engine, &id, &i.intended, None, now)
                        .map(|r| {
                            r.effective
                                .iter()
                                .map(|p| format!("{}:{}", p.capability, p.action))
                                .collect()
                        })
                        .unwrap_or_default();
                (id, i.plane.to_string(), i.owner.clone(), permissions)
            })
            .collect()
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let id = format!("rev-{}", &uuid::Uuid::now_v7().simple().to_string()[..12]);
    let due_at = timestamp::format(now + time::Duration::days(due_days as i64));
    let campaign = s
        .store
        .create_campaign(
            &id,
            name.trim(),
            plane.as_ref().map(PlaneId::as_str),
            &due_at,
            &items,
            &caller.0,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(campaign)))
}

/// Whether a caller who sees `visible` planes (`None`: all) may see `campaign`: a plane
/// admin sees the campaigns started for one of its planes, nothing else. The one rule
/// for listing, showing and attesting.
fn campaign_visible(visible: Option<&[PlaneId]>, campaign: &Campaign) -> bool {
    match visible {
        None => true,
        Some(planes) => campaign
            .plane
            .as_deref()
            .is_some_and(|p| planes.iter().any(|v| v.as_str() == p)),
    }
}

/// The campaign `id`, or 404 also when the caller may not see it (a plane admin learns
/// nothing of other planes' campaigns).
async fn visible_campaign(
    s: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Campaign, Option<Vec<PlaneId>>), ApiError> {
    let missing = || ApiError::not_found(format!("review campaign `{id}` does not exist"));
    let campaign = s.store.campaign(id).await?.ok_or_else(missing)?;
    let visible = caller.visible_planes(&s.store).await?;
    if !campaign_visible(visible.as_deref(), &campaign) {
        return Err(missing());
    }
    Ok((campaign, visible))
}

/// `GET /admin/v1/reviews`: campaigns with their progress (a plane admin: those of its
/// planes).
pub(crate) async fn list(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<axum::Json<Vec<Campaign>>, ApiError> {
    let visible = caller.visible_planes(&s.store).await?;
    let all = s.store.campaigns().await?;
    Ok(axum::Json(
        all.into_iter()
            .filter(|c| campaign_visible(visible.as_deref(), c))
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowQuery {
    owner: Option<String>,
    /// Only items not attested yet.
    #[serde(default)]
    pending: bool,
}

/// `GET /admin/v1/reviews/{id}?owner=&pending=`: the campaign and its items (an owner's
/// review queue with `owner`).
pub(crate) async fn show(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<axum::Json<CampaignView>, ApiError> {
    let (campaign, visible) = visible_campaign(&s, &caller, &id).await?;
    let items = s
        .store
        .review_items(&id)
        .await?
        .into_iter()
        .filter(|i| {
            visible
                .as_ref()
                .is_none_or(|v| v.iter().any(|p| p.as_str() == i.plane))
        })
        .filter(|i| q.owner.as_ref().is_none_or(|o| *o == i.owner))
        .filter(|i| !q.pending || i.decision.is_none())
        .collect();
    Ok(axum::Json(CampaignView { campaign, items }))
}

/// `POST /admin/v1/reviews/{id}/decisions`: attests one identity.
pub(crate) async fn decide(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(req): Json<DecisionRequest>,
) -> Result<axum::Json<ReviewItem>, ApiError> {
    if !matches!(caller.role(), Role::CentralAdmin | Role::PlaneAdmin { .. }) {
        return Err(ApiError::forbidden(format!(
            "attesting an access review needs the central-admin or plane-admin role; this credential is {}",
            caller.role()
        )));
    }
    let note = req.note.trim();
    if note.is_empty() || note.len() > 1_000 || note.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "give a `note` of 1 to 1,000 characters on one line: it goes into the evidence log",
        ));
    }
    visible_campaign(&s, &caller, &id).await?;
    let items = s.store.review_items(&id).await?;
    let item = items
        .iter()
        .find(|i| i.spiffe_id == req.spiffe_id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "`{}` is not in review campaign `{id}`",
                req.spiffe_id.chars().take(200).collect::<String>()
            ))
        })?;
    if let Some(visible) = caller.visible_planes(&s.store).await?
        && !visible.iter().any(|p| p.as_str() == item.plane)
    {
        return Err(ApiError::not_found(format!(
            "`{}` is not in review campaign `{id}`",
            req.spiffe_id
        )));
    }
    match (req.decision.as_str(), req.reduce.is_empty()) {
        ("keep" | "revoke", true) => {}
        ("reduce", false) => {
            if let Some(p) = req.reduce.iter().find(|p| !item.permissions.contains(p)) {
                return Err(ApiError::bad_request(format!(
                    "`{p}` is not one of the identity's effective permissions in this campaign"
                )));
            }
        }
        ("reduce", true) => {
            return Err(ApiError::bad_request(
                "`reduce` names the permissions (`capability:action`) to remove",
            ));
        }
        ("keep" | "revoke", false) => {
            return Err(ApiError::bad_request(
                "`reduce` goes only with `decision: reduce`",
            ));
        }
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "`decision` must be keep, reduce or revoke, not `{}`",
                other.chars().take(40).collect::<String>()
            )));
        }
    }
    if item.decision.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            format!(
                "`{}` was already attested in campaign `{id}`",
                item.spiffe_id
            ),
        ));
    }
    if req.decision == "revoke" {
        // Revoke first: a recorded "revoke" always means the identity was revoked.
        crate::revocation::revoke_now(
            &s,
            RevocationKind::Identity,
            &item.spiffe_id,
            &format!("access review {id}: {note}"),
            steward_model::RevokedIdentity::Suspended,
            &caller.0,
        )
        .await?;
    }
    let attested = s
        .store
        .attest(
            &id,
            &item.spiffe_id,
            &req.decision,
            &req.reduce,
            note,
            &caller.0,
        )
        .await?;
    Ok(axum::Json(attested))
}
