//! The policy engine in force, and the admin routes about policy: versions, diff,
//! rollback and an identity's entitlements.
//!
//! The engine is immutable; every change to what it decides over (apply, lifecycle
//! change, new identity, rollback) builds a new one off the async runtime and swaps it in
//! whole before the change is acknowledged, so a suspension takes effect for the next
//! decision. Until a policy is loaded, or if the stored one cannot be compiled, every
//! decision is a deny that says why.

use std::sync::Arc;

use axum::extract::{Path, State};
use parking_lot::RwLock;
use serde::Deserialize;
use steward_api::{PolicyDiff, PolicyVersion, PolicyVersionBody, RollbackRequest};
use steward_model::EntitlementReport;
use steward_policy::analysis::entitlements;
use steward_policy::{Engine, EngineInput};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Query};

/// The engine in force, or why there is none.
/// Everything requests read that is derived from the registry and the policy: built
/// together after each change and swapped in one step, so no request sees the new
/// registry's token directory beside the old policy engine, or the reverse.
pub(crate) struct Derived {
    /// The engine deciding requests, or why every request is denied.
    pub(crate) engine: Result<Arc<Engine>, String>,
    /// Who may obtain tokens, and how (the token service reads it).
    pub(crate) directory: Arc<crate::tokens::Directory>,
}

/// The one slot [`Derived`] lives in, shared by the policy routes and the token service.
pub(crate) struct DerivedSlot(RwLock<Arc<Derived>>);

impl Default for DerivedSlot {
    fn default() -> Self {
        Self(RwLock::new(Arc::new(Derived {
            engine: Err("the policy has not been loaded yet".into()),
            directory: Arc::default(),
        })))
    }
}

impl DerivedSlot {
    /// What is in force now.
    pub(crate) fn current(&self) -> Arc<Derived> {
        self.0.read().clone()
    }

    fn swap(&self, next: Derived) {
        *self.0.write() = Arc::new(next);
    }
}

pub(crate) struct PolicySlot {
    derived: Arc<DerivedSlot>,
    /// Serialises rebuilds so an older build never replaces a newer one.
    rebuilding: tokio::sync::Mutex<()>,
    /// The signed bundle for enforcement points, rebuilt after each change.
    pub(crate) bundles: crate::enforcement::BundleCache,
}

impl PolicySlot {
    /// A slot over `derived`, the token service's.
    pub(crate) fn new(derived: Arc<DerivedSlot>) -> Self {
        Self {
            derived,
            rebuilding: tokio::sync::Mutex::new(()),
            bundles: Default::default(),
        }
    }
}

impl AppState {
    /// The engine deciding requests now, or the reason every request is denied.
    pub fn engine(&self) -> Result<Arc<Engine>, String> {
        self.policy.derived.current().engine.clone()
    }

    /// Rebuilds the engine from the store. A policy that no longer compiles leaves the
    /// deny-everything state in place, logged, rather than the old engine: the store is
    /// the truth.
    pub async fn reload_policy(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.policy.rebuilding.lock().await;
        let started = std::time::Instant::now();
        // Read before loading: a change committed meanwhile is reloaded again later.
        let change = self.store.latest_change_seq().await?;
        let state = self.store.load_state().await?;
        let secrets = self.store.client_secrets().await?;
        let directory = Arc::new(crate::tokens::Directory::build(&state, &secrets));
        let bundle = self.store.policy_bundle(None).await?;
        let built = tokio::task::spawn_blocking(move || {
            let (version, bundle) = match bundle {
                Some((v, b)) => (v.version, b),
                None => (0, Default::default()),
            };
            Engine::build(EngineInput {
                planes: &state.planes,
                root_settings: &state.root_settings,
                identities: state.identities.into_values().map(|s| s.identity).collect(),
                capabilities: &state.capabilities,
                bundle: &bundle,
                version,
                now: time::OffsetDateTime::now_utc(),
            })
        })
        .await
        .map_err(|_| ApiError::internal())?;
        self.metrics
            .engine_rebuild_seconds
            .observe(started.elapsed().as_secs_f64());
        let next = match built {
            Ok(engine) => {
                tracing::info!(policy_version = engine.version(), "policy engine loaded");
                Ok(Arc::new(engine))
            }
            Err(e) => {
                tracing::error!(error = %e, "the stored policy does not compile; every decision is denied until a valid policy is applied");
                Err(format!(
                    "the stored policy does not compile ({e}); denying everything"
                ))
            }
        };
        self.policy.derived.swap(Derived {
            engine: next,
            directory,
        });
        self.policy
            .bundles
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.hub
            .seen_change
            .fetch_max(change, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionsQuery {
    limit: Option<i64>,
}

pub(crate) async fn versions(
    _caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<VersionsQuery>,
) -> Result<axum::Json<Vec<PolicyVersion>>, ApiError> {
    let limit = crate::extract::page_size(q.limit)?;
    Ok(axum::Json(s.store.policy_versions(limit).await?))
}

pub(crate) async fn version(
    _caller: Caller,
    State(s): State<AppState>,
    Path(v): Path<i64>,
) -> Result<axum::Json<PolicyVersionBody>, ApiError> {
    match s.store.policy_bundle(Some(v)).await? {
        Some((version, bundle)) => Ok(axum::Json(PolicyVersionBody { version, bundle })),
        None => Err(ApiError::not_found(format!(
            "policy version {v} does not exist; list them with `steward policy versions` (GET /admin/v1/policy/versions)"
        ))),
    }
}

pub(crate) async fn rollback(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<RollbackRequest>,
) -> Result<axum::Json<PolicyVersion>, ApiError> {
    caller.require_central("rolling back the policy")?;
    let Some((_, bundle)) = s.store.policy_bundle(Some(req.to)).await? else {
        return Err(ApiError::not_found(format!(
            "policy version {} does not exist",
            req.to
        )));
    };
    // The old bundle must still compile against today's registry (a capability it names
    // may have gone since).
    let state = s.store.load_state().await?;
    tokio::task::spawn_blocking(move || {
        steward_policy::compile(
            &bundle,
            &state.planes,
            &state.capabilities,
            &state.root_settings,
            time::OffsetDateTime::now_utc(),
        )
        .map(|_| ())
    })
    .await
    .map_err(|_| ApiError::internal())??;
    let published = s
        .store
        .rollback_policy(req.to, req.expected_version, &caller.0)
        .await?;
    s.reload_policy().await?;
    tracing::info!(to = req.to, version = published.version, actor = %caller.0.credential_id, "policy rolled back");
    Ok(axum::Json(published))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntitlementsQuery {
    /// Environment to compute under (default: the identity's own).
    environment: Option<String>,
}

pub(crate) async fn identity_entitlements(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EntitlementsQuery>,
) -> Result<axum::Json<EntitlementReport>, ApiError> {
    // Same visibility as the identity itself.
    let record = s.store.identity(&id).await?;
    let record = match (record, caller.visible_planes(&s.store).await?) {
        (Some(r), None) => r,
        (Some(r), Some(planes)) if planes.contains(&r.identity.plane) => r,
        _ => {
            return Err(ApiError::not_found(format!(
                "identity `{id}` does not exist"
            )));
        }
    };
    let intended = record.identity.intended;
    let engine = s.engine().map_err(|why| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "policy_unavailable",
            why,
        )
    })?;
    let context = q.environment.map(|env| {
        let mut m = serde_json::Map::new();
        m.insert("environment".into(), serde_json::Value::String(env));
        m
    });
    let report = tokio::task::spawn_blocking(move || {
        entitlements(
            &engine,
            &id,
            &intended,
            context,
            time::OffsetDateTime::now_utc(),
        )
    })
    .await
    .map_err(|_| ApiError::internal())?;
    report.map(axum::Json).ok_or_else(|| {
        ApiError::not_found("the identity is not in the policy engine yet; retry in a moment")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffQuery {
    from: i64,
    to: i64,
}

/// `GET /admin/v1/policy/diff?from=A&to=B`.
pub(crate) async fn diff(
    _caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<DiffQuery>,
) -> Result<axum::Json<PolicyDiff>, ApiError> {
    let load = |v: i64| {
        let s = s.clone();
        async move {
            s.store
                .policy_bundle(Some(v))
                .await?
                .map(|(_, b)| b)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "policy version {v} does not exist; list them with `steward policy versions` (GET /admin/v1/policy/versions)"
                    ))
                })
        }
    };
    let (a, b) = (load(q.from).await?, load(q.to).await?);
    Ok(axum::Json(PolicyDiff {
        from: q.from,
        to: q.to,
        diff: steward_policy::bundle_diff(&a, &b),
    }))
}
