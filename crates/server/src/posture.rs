//! `GET /admin/v1/posture`: loads what posture needs from the store and hands it to the
//! pure core (`steward_posture::assess`), off the async runtime; the last report is cached.

use std::collections::HashMap;

use axum::extract::State;
use serde::Deserialize;
use steward_api::{IdentityRecord, PostureReport};
use steward_model::timestamp;
use steward_model::{PlaneId, PlaneSettings};
use steward_posture::{Inputs, Params, Used};
use steward_store::IdentityFilter;
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;

const DEFAULT_WINDOW_DAYS: u64 = 30;
const MAX_WINDOW_DAYS: u64 = 366;
const DEFAULT_MAX_ANALYSED: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostureQuery {
    window_days: Option<u64>,
    stale_days: Option<u64>,
    /// Days after registration before unused permissions are judged (0: at once);
    /// `[posture] observation_days` when unset.
    observation_days: Option<u64>,
    plane: Option<String>,
    /// One identity's posture only (its inventory entry and findings).
    identity: Option<String>,
    max_analysed: Option<usize>,
}

fn days(field: &str, v: Option<u64>) -> Result<u64, ApiError> {
    match v {
        None => Ok(DEFAULT_WINDOW_DAYS),
        Some(d) if (1..=MAX_WINDOW_DAYS).contains(&d) => Ok(d),
        Some(d) => Err(ApiError::bad_request(format!(
            "`{field}` must be between 1 and {MAX_WINDOW_DAYS} days, not {d}"
        ))),
    }
}

impl AppState {
    /// Posture's parameters when a caller sets none: the defaults and the configured
    /// observation window (the compliance report judges with these).
    pub(crate) fn default_posture_params(&self) -> Params {
        Params {
            window_days: DEFAULT_WINDOW_DAYS,
            stale_days: DEFAULT_WINDOW_DAYS,
            observation_days: self.inner.posture_observation_days,
            max_analysed: DEFAULT_MAX_ANALYSED,
        }
    }
}

/// `GET /admin/v1/posture?window_days=&stale_days=&observation_days=&plane=&identity=&max_analysed=`:
/// any admin role; a plane admin sees its planes only.
pub(crate) async fn posture(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<PostureQuery>,
) -> Result<axum::Json<PostureReport>, ApiError> {
    let defaults = s.default_posture_params();
    let observation_days = match q.observation_days {
        None => defaults.observation_days,
        Some(d) if d <= MAX_WINDOW_DAYS => d,
        Some(d) => {
            return Err(ApiError::bad_request(format!(
                "`observation_days` must be between 0 and {MAX_WINDOW_DAYS} days, not {d}"
            )));
        }
    };
    let max_analysed = q.max_analysed.unwrap_or(defaults.max_analysed);
    if max_analysed > 100_000 {
        return Err(ApiError::bad_request(
            "`max_analysed` must be at most 100000",
        ));
    }
    let params = Params {
        window_days: days("window_days", q.window_days)?,
        stale_days: days("stale_days", q.stale_days)?,
        observation_days,
        max_analysed,
    };
    let visible = caller.visible_planes(&s.store).await?;
    if let Some(id) = &q.identity {
        // One identity: read straight from the store (cheap), not through the cache of
        // the last full report.
        let record = s
            .store
            .identity(id)
            .await?
            .filter(|r| {
                visible
                    .as_ref()
                    .is_none_or(|v| v.contains(&r.identity.plane))
            })
            .ok_or_else(|| ApiError::not_found(format!("identity `{id}` does not exist")))?;
        return Ok(axum::Json(
            compute(&s, Subjects::One(Box::new(record)), params).await?,
        ));
    }
    let scope: Option<Vec<PlaneId>> = match (&q.plane, visible) {
        (None, v) => v,
        (Some(p), v) => {
            let id = PlaneId::new(p.clone())
                .map_err(|e| ApiError::bad_request(format!("`plane`: {e}")))?;
            if v.as_ref().is_some_and(|v| !v.contains(&id)) {
                return Err(ApiError::not_found(format!("plane `{p}` does not exist")));
            }
            Some(s.store.plane_subtree(&id).await?)
        }
    };
    Ok(axum::Json(report(&s, scope, params).await?))
}

/// How long a computed report is answered as current while the registry has not changed.
/// After that it is still answered at once while a fresh one is computed in the
/// background (usage may be this much behind); every admin change recomputes first.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

type CacheKey = (Option<Vec<PlaneId>>, Params, i64);

struct Cached {
    at: std::time::Instant,
    key: CacheKey,
    report: std::sync::Arc<PostureReport>,
}

/// The last report computed, keyed by its parameters and the admin change it saw.
#[derive(Default)]
pub(crate) struct PostureCache {
    last: tokio::sync::Mutex<Option<Cached>>,
    refreshing: std::sync::atomic::AtomicBool,
}

/// The posture of the identities in `scope` (`None`: every plane). Reused from the cache
/// when computed with the same parameters and no admin change since: as is within
/// [`CACHE_TTL`], and after that answered at once while a background task recomputes it
/// (so the console's overview stays fast at 100,000 identities). Concurrent callers
/// wait for one computation.
pub(crate) async fn report(
    s: &AppState,
    scope: Option<Vec<PlaneId>>,
    params: Params,
) -> Result<PostureReport, ApiError> {
    use std::sync::atomic::Ordering;
    let change = s.store.latest_change_seq().await?;
    let key: CacheKey = (scope.clone(), params, change);
    let mut last = s.posture.last.lock().await;
    if let Some(c) = last.as_ref()
        && c.key == key
    {
        if c.at.elapsed() >= CACHE_TTL && !s.posture.refreshing.swap(true, Ordering::AcqRel) {
            let s = s.clone();
            tokio::spawn(async move {
                let subjects = Subjects::Planes(scope);
                match compute(&s, subjects, params).await {
                    Ok(r) => {
                        *s.posture.last.lock().await = Some(Cached {
                            at: std::time::Instant::now(),
                            key,
                            report: std::sync::Arc::new(r),
                        })
                    }
                    Err(e) => {
                        tracing::error!(error = %e.message, "posture refresh failed; the previous report is still answered")
                    }
                }
                s.posture.refreshing.store(false, Ordering::Release);
            });
        }
        return Ok(c.report.as_ref().clone());
    }
    let report = compute(s, Subjects::Planes(scope), params).await?;
    *last = Some(Cached {
        at: std::time::Instant::now(),
        key,
        report: std::sync::Arc::new(report.clone()),
    });
    Ok(report)
}

/// Whose posture a report covers.
enum Subjects {
    /// Every identity of these planes (`None`: all).
    Planes(Option<Vec<PlaneId>>),
    One(Box<IdentityRecord>),
}

async fn compute(
    s: &AppState,
    subjects: Subjects,
    params: Params,
) -> Result<PostureReport, ApiError> {
    let now = OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let inputs = load_inputs(s, subjects, params.window_days, params.stale_days, now).await?;
    tracing::debug!(
        read_ms = started.elapsed().as_millis() as u64,
        "posture inputs read"
    );
    let engine = s.engine().ok();
    tokio::task::spawn_blocking(move || {
        steward_posture::assess(inputs, engine.as_deref(), params, now)
    })
    .await
    .map_err(|_| ApiError::internal())
}

/// Everything posture reads from the store, read once.
async fn load_inputs(
    s: &AppState,
    subjects: Subjects,
    window_days: u64,
    stale_days: u64,
    now: OffsetDateTime,
) -> Result<Inputs, ApiError> {
    let since = timestamp::format(now - time::Duration::days(window_days.max(stale_days) as i64));
    let settings = PlaneSettings::from_planes(s.store.planes().await?);
    let exceptions = s
        .store
        .policy_bundle(None)
        .await?
        .map(|(_, b)| b.exceptions)
        .unwrap_or_default();
    let every_plane = matches!(subjects, Subjects::Planes(None));
    let (records, only): (Vec<IdentityRecord>, Option<String>) = match subjects {
        Subjects::Planes(scope) => (
            s.store
                .identities(&IdentityFilter {
                    planes: scope,
                    limit: i64::MAX,
                    ..Default::default()
                })
                .await?,
            None,
        ),
        Subjects::One(r) => {
            let id = r.identity.spiffe_id.to_string();
            (vec![*r], Some(id))
        }
    };
    let removed: HashMap<String, String> = s
        .store
        .owners()
        .await?
        .into_iter()
        .filter_map(|o| o.removed_at.map(|at| (o.owner.id.clone(), at)))
        .collect();
    let secrets: HashMap<String, String> = s
        .store
        .client_secrets()
        .await?
        .into_iter()
        .map(|c| (c.spiffe_id, c.created_at))
        .collect();
    let reviewed: HashMap<String, String> = s.store.last_reviews().await?.into_iter().collect();
    // Usage: the roll-up of the evidence log, brought up to date first (the background
    // task keeps it within seconds, so this is usually a no-op).
    s.store.roll_up_usage(i64::MAX).await?;
    let mut used: HashMap<String, Used> = HashMap::new();
    let window_start = timestamp::format(now - time::Duration::days(window_days as i64));
    for t in s.store.usage_totals_since(&since, only.as_deref()).await? {
        used.entry(t.principal.clone())
            .or_default()
            .add(&t, &window_start);
    }
    let longest_token = time::Duration::seconds(
        (s.tokens.config.max_ttl_secs + s.tokens.config.clock_skew_secs) as i64,
    );
    let active: HashMap<String, i64> = s
        .store
        .active_tokens(
            &timestamp::format(now - longest_token),
            &timestamp::format(now),
        )
        .await?
        .into_iter()
        .collect();

    // Admin credentials belong to no plane: only a report over every plane lists them.
    let non_expiring_credentials = if every_plane {
        s.store
            .credentials()
            .await?
            .into_iter()
            .filter(|c| c.revoked_at.is_none() && c.expires_at.is_none())
            .map(|c| c.public())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Inputs {
        non_expiring_credentials,
        settings,
        exceptions,
        records,
        removed,
        secrets,
        reviewed,
        used,
        active,
        exception_grants: s.store.exception_grants().await?,
    })
}
