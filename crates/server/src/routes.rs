//! The admin API routes. Each handler authenticates (the `Caller` extractor), checks the
//! role, then calls the store; the store records every change.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use serde::Deserialize;

use steward_governance::{Desired, MAX_LISTED_CHANGES, SourceFile};
use steward_model::{LifecycleState, PlaneId, Role};
use steward_store::{IdentityFilter, IdentityRecord, NewCredential};

use crate::AppState;
use crate::api::*;
use crate::auth::{Caller, mint};
use crate::error::ApiError;
use crate::extract::{Json, Query};

/// Largest page a listing returns.
const MAX_PAGE: i64 = 1000;
const DEFAULT_PAGE: i64 = 100;

pub(crate) fn router(max_body: usize, max_apply: usize) -> Router<AppState> {
    let config = Router::new()
        .route("/admin/v1/config/plan", post(plan))
        .route("/admin/v1/config/apply", post(apply))
        .layer(DefaultBodyLimit::max(max_apply));
    // A full ingest batch (1,000 records of up to 16 KiB) must fit, whatever the admin limit.
    let ingest = Router::new()
        .route("/admin/v1/audit/ingest", post(crate::audit_routes::ingest))
        .route(
            "/enforcement/v1/decisions",
            post(crate::audit_routes::enforcement_decisions),
        )
        .layer(DefaultBodyLimit::max(
            crate::audit_routes::MAX_INGEST_BODY_BYTES,
        ));
    // Token requests are small; a larger body is refused with an OAuth error.
    let oauth = Router::new()
        .route("/oauth2/token", post(crate::tokens::token))
        .layer(DefaultBodyLimit::max(
            crate::tokens::MAX_TOKEN_REQUEST_BYTES,
        ));
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(crate::tokens::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(crate::tokens::oauth_metadata),
        )
        .route(
            "/.well-known/spiffe-bundle",
            get(crate::tokens::spiffe_bundle),
        )
        .route("/oauth2/jwks", get(crate::tokens::jwks))
        .route("/admin/v1/keys", get(crate::tokens::keys_list))
        .route("/admin/v1/keys/rotate", post(crate::tokens::keys_rotate))
        .route(
            "/admin/v1/workflows/{id}/approvals",
            post(crate::tokens::approve_jit),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/admin/v1/whoami", get(whoami))
        .route("/admin/v1/status", get(status))
        .route("/admin/v1/config/versions", get(versions))
        .route("/admin/v1/planes", get(planes))
        .route("/admin/v1/owners", get(owners))
        .route("/admin/v1/owners/{id}", delete(remove_owner))
        .route(
            "/admin/v1/identities",
            get(list_identities).post(create_identity),
        )
        .route("/admin/v1/identities/{id}", get(get_identity))
        .route("/admin/v1/identities/{id}/lifecycle", post(lifecycle))
        .route(
            "/admin/v1/identities/{id}/client-secret",
            post(create_client_secret).delete(revoke_client_secret),
        )
        .route("/admin/v1/capabilities", get(capabilities))
        .route("/admin/v1/issuers", get(issuers))
        .route("/admin/v1/policies", get(policies))
        .route(
            "/admin/v1/credentials",
            get(credentials).post(create_credential),
        )
        .route("/admin/v1/credentials/{id}", delete(revoke_credential))
        .route("/admin/v1/changes", get(changes))
        .route("/admin/v1/audit/events", get(crate::audit_routes::events))
        .route("/admin/v1/audit/verify", get(crate::audit_routes::verify))
        .route("/admin/v1/audit/stats", get(crate::audit_routes::stats))
        .route(
            "/admin/v1/audit/checkpoints",
            get(crate::audit_routes::checkpoints),
        )
        .route("/admin/v1/audit/chain", get(crate::audit_routes::chain))
        .route(
            "/admin/v1/audit/timeline",
            get(crate::audit_routes::timeline),
        )
        .route("/admin/v1/policy/diff", get(crate::policy::diff))
        .route("/console", get(crate::console::redirect))
        .route("/console/", get(crate::console::index))
        .route("/console/app.js", get(crate::console::script))
        .route("/console/app.css", get(crate::console::style))
        .route(
            "/admin/v1/identities/{id}/entitlements",
            get(crate::policy::identity_entitlements),
        )
        .route("/admin/v1/policy/versions", get(crate::policy::versions))
        .route(
            "/admin/v1/policy/versions/{version}",
            get(crate::policy::version),
        )
        .route("/admin/v1/policy/rollback", post(crate::policy::rollback))
        .route(
            "/.well-known/authzen-configuration",
            get(crate::authzen::configuration),
        )
        .route("/enforcement/v1/bundle", get(crate::enforcement::bundle))
        .route(
            "/enforcement/v1/revocations",
            get(crate::revocation::stream),
        )
        .route(
            "/enforcement/v1/points/report",
            post(crate::revocation::report),
        )
        .route(
            "/admin/v1/enforcement/points",
            get(crate::revocation::points),
        )
        .route("/admin/v1/posture", get(crate::posture::posture))
        .route("/admin/v1/compliance", get(crate::compliance::compliance))
        .route(
            "/admin/v1/reviews",
            get(crate::reviews::list).post(crate::reviews::start),
        )
        .route("/admin/v1/reviews/{id}", get(crate::reviews::show))
        .route(
            "/admin/v1/reviews/{id}/decisions",
            post(crate::reviews::decide),
        )
        .route(
            "/admin/v1/revocations",
            get(crate::revocation::list).post(crate::revocation::revoke),
        )
        .route(
            "/admin/v1/revocations/{epoch}/verification",
            get(crate::revocation::verification),
        )
        .route(
            "/enforcement/v1/egress-secrets/{id}",
            get(crate::egress::release),
        )
        .route("/admin/v1/egress-secrets", get(crate::egress::list))
        .route(
            "/admin/v1/egress-secrets/{id}",
            put(crate::egress::set).delete(crate::egress::delete),
        )
        .route("/access/v1/evaluation", post(crate::authzen::evaluation))
        .route("/access/v1/evaluations", post(crate::authzen::evaluations))
        .layer(DefaultBodyLimit::max(max_body))
        .merge(config)
        .merge(ingest)
        .merge(oauth)
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/openapi.yaml") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method; see docs/openapi.yaml",
            )
        })
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

async fn whoami(caller: Caller) -> ApiResult<WhoAmI> {
    let a = caller.0;
    Ok(axum::Json(WhoAmI {
        credential_id: a.credential_id,
        name: a.name,
        role: a.role,
    }))
}

async fn status(
    _caller: Caller,
    State(s): State<AppState>,
) -> ApiResult<steward_store::RegistryCounts> {
    Ok(axum::Json(s.store.counts().await?))
}

/// Loads uploaded files off the async runtime (a large repository takes a while): parsed,
/// and refused if its policy breaks the layering rules or fails Cedar validation.
async fn load_files(s: &AppState, files: Vec<SourceFile>) -> Result<Desired, ApiError> {
    let td = s.trust_domain().clone();
    tokio::task::spawn_blocking(move || {
        steward_governance::load(&files, &td, time::OffsetDateTime::now_utc())
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(ApiError::from)
}

async fn plan(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<PlanRequest>,
) -> ApiResult<PlanResponse> {
    if matches!(caller.role(), Role::PlaneAdmin { .. }) {
        return Err(ApiError::forbidden(
            "planning the whole governance repository needs the central-admin or auditor role",
        ));
    }
    let desired = load_files(&s, req.files).await?;
    let (version, plan) = s.store.plan(&desired).await?;
    let current = s
        .store
        .policy_bundle(None)
        .await?
        .map(|(_, b)| b)
        .unwrap_or_default();
    let policy_diff = steward_policy::bundle_diff(&current, &desired.policy_bundle());
    let replay = crate::replay::dry_run(&s, desired.clone(), req.replay_days).await?;
    Ok(axum::Json(PlanResponse {
        version,
        digest: desired.digest(),
        plan: plan.truncated(MAX_LISTED_CHANGES),
        policy_diff,
        replay,
    }))
}

async fn apply(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<ApplyRequest>,
) -> ApiResult<ApplyResponse> {
    caller.require_central("applying the governance repository")?;
    let started = std::time::Instant::now();
    let desired = load_files(&s, req.files).await?;
    let parsed = started.elapsed();
    let applied = s
        .store
        .apply_revoking_until(
            &desired,
            req.expected_version,
            &caller.0,
            Some(crate::revocation::revocation_until(&s)),
        )
        .await?;
    if applied.changed {
        // Identities removed from the repository were revoked in the apply: push them.
        crate::revocation::catch_up(&s).await?;
        s.reload_policy().await?;
    }
    tracing::info!(
        version = applied.version,
        changed = applied.changed,
        changes = applied.plan.summary.total(),
        actor = %caller.0.credential_id,
        parse_ms = parsed.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "configuration applied"
    );
    Ok(axum::Json(ApplyResponse {
        version: applied.version,
        changed: applied.changed,
        plan: applied.plan.truncated(MAX_LISTED_CHANGES),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<i64>,
}

pub(crate) fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MAX_PAGE}, not {n}"
        ))),
    }
}

async fn versions(
    _caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Vec<steward_store::ConfigVersion>> {
    Ok(axum::Json(
        s.store.config_versions(page_size(q.limit)?).await?,
    ))
}

async fn planes(
    _caller: Caller,
    State(s): State<AppState>,
) -> ApiResult<Vec<steward_model::Plane>> {
    Ok(axum::Json(s.store.planes().await?))
}

async fn owners(
    _caller: Caller,
    State(s): State<AppState>,
) -> ApiResult<Vec<steward_store::OwnerRecord>> {
    Ok(axum::Json(s.store.owners().await?))
}

async fn remove_owner(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<OwnerRemoved> {
    caller.require_central("removing an owner")?;
    let orphaned = s.store.remove_owner(&id, &caller.0).await?;
    Ok(axum::Json(OwnerRemoved {
        owner: id,
        orphaned_identities: orphaned,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityQuery {
    plane: Option<String>,
    environment: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    owner: Option<String>,
    orphaned: Option<bool>,
    after: Option<String>,
    limit: Option<i64>,
}

async fn list_identities(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<IdentityQuery>,
) -> ApiResult<Page<IdentityRecord>> {
    let limit = page_size(q.limit)?;
    if let Some(k) = &q.kind {
        steward_model::IdentityKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`kind` `{k}` is not one of service, agent, pipeline, partner, legacy-key"
            ))
        })?;
    }
    if let Some(st) = &q.state {
        LifecycleState::parse(st).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`state` `{st}` is not one of active, suspended, decommissioned"
            ))
        })?;
    }
    let visible = caller.visible_planes(&s.store).await?;
    let planes = match (&q.plane, visible) {
        (Some(p), visible) => {
            let p = PlaneId::new(p.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if let Some(v) = &visible
                && !v.contains(&p)
            {
                return Err(ApiError::forbidden(format!(
                    "plane `{p}` is outside the planes this credential administers"
                )));
            }
            Some(s.store.plane_subtree(&p).await?)
        }
        (None, visible) => visible,
    };
    let filter = IdentityFilter {
        planes,
        environment: q.environment,
        kind: q.kind,
        state: q.state,
        owner: q.owner,
        orphaned: q.orphaned,
        after: q.after,
        limit: limit + 1,
    };
    let mut items = s.store.identities(&filter).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|i| i.identity.spiffe_id.to_string())
    } else {
        None
    };
    Ok(axum::Json(Page { items, next }))
}

async fn get_identity(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<IdentityRecord> {
    Ok(axum::Json(visible_identity(&s, &caller, &id).await?))
}

async fn create_identity(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<CreateIdentityRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller
        .require_plane(&s.store, &req.plane, "registering an identity")
        .await?;
    let candidate = steward_governance::DesiredIdentity {
        spiffe_id: req.spiffe_id,
        plane: req.plane,
        owner: req.owner,
        environment: req.environment,
        kind: req.kind,
        classification: req.classification,
        description: req.description,
        labels: req.labels,
        state: None,
        intended: req.intended,
        credentials: req.credentials,
    };
    let registry = StoreRegistry::load(&s).await?;
    let problems = steward_governance::identity_problems(&candidate, &registry);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "identity `{}`: {}",
            candidate.spiffe_id,
            problems.join("; ")
        )));
    }
    let identity = candidate.to_identity(LifecycleState::Active);
    let record = s.store.create_identity(&identity, &caller.0).await?;
    s.reload_policy().await?;
    Ok((StatusCode::CREATED, axum::Json(record)))
}

/// The registry as the store holds it, for the identity check an API registration
/// shares with the repository path. (The store re-checks the owner and plane inside its
/// write transaction: one may be removed between this check and the insert.)
struct StoreRegistry {
    trust_domain: steward_model::TrustDomain,
    planes: std::collections::BTreeMap<PlaneId, steward_model::Plane>,
    root_settings: steward_model::Settings,
    /// Every owner, and whether it was removed.
    owners: std::collections::BTreeMap<String, bool>,
    capabilities: std::collections::BTreeSet<steward_model::CapabilityId>,
}

impl StoreRegistry {
    async fn load(s: &AppState) -> Result<Self, ApiError> {
        let mut planes = std::collections::BTreeMap::new();
        let mut root_settings = steward_model::Settings::default();
        for p in s.store.planes().await? {
            if p.id.is_root() {
                root_settings = p.settings;
            } else {
                planes.insert(p.id.clone(), p);
            }
        }
        Ok(Self {
            trust_domain: s.trust_domain().clone(),
            planes,
            root_settings,
            owners: s
                .store
                .owners()
                .await?
                .into_iter()
                .map(|o| (o.owner.id, o.removed_at.is_some()))
                .collect(),
            capabilities: s
                .store
                .capabilities()
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect(),
        })
    }
}

impl steward_governance::IdentityRegistry for StoreRegistry {
    fn trust_domain(&self) -> &steward_model::TrustDomain {
        &self.trust_domain
    }
    fn plane_declared(&self, plane: &PlaneId) -> bool {
        plane.is_root() || self.planes.contains_key(plane)
    }
    fn owner(&self, owner: &str) -> steward_governance::OwnerStanding {
        match self.owners.get(owner) {
            Some(false) => steward_governance::OwnerStanding::Current,
            Some(true) => steward_governance::OwnerStanding::Removed,
            None => steward_governance::OwnerStanding::Unknown,
        }
    }
    fn capability_declared(&self, capability: &steward_model::CapabilityId) -> bool {
        self.capabilities.contains(capability)
    }
    fn allowed_environments(&self, plane: &PlaneId) -> Option<Vec<String>> {
        steward_model::PlaneTree::new(&self.planes)
            .effective_settings(&self.root_settings, plane)
            .environments
    }
}

async fn lifecycle(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(req): Json<LifecycleRequest>,
) -> ApiResult<IdentityRecord> {
    caller.require_writer("changing an identity's lifecycle")?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`reason` must say why (it goes into the admin change log)",
        ));
    }
    // As for reads: a plane admin learns nothing of identities outside its planes.
    // (With `require_writer` above, this is the whole plane check: no second subtree load.)
    let current = visible_identity(&s, &caller, &id).await?;
    if req.state == LifecycleState::Decommissioned
        && current.identity.state != LifecycleState::Decommissioned
    {
        // Decommissioning revokes in the same transaction (its outstanding tokens die at
        // every point), pushes the epoch and reloads: the revocation path, one-way.
        crate::revocation::revoke_now(
            &s,
            steward_model::RevocationKind::Identity,
            &id,
            &req.reason,
            true,
            &caller.0,
        )
        .await?;
        let record = s
            .store
            .identity(&id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("identity `{id}` does not exist")))?;
        return Ok(axum::Json(record));
    }
    let record = s
        .store
        .set_identity_state(&id, req.state, &req.reason, &caller.0)
        .await?;
    // A suspension must hold for the very next decision.
    s.reload_policy().await?;
    Ok(axum::Json(record))
}

/// The identity `id` if the caller may see it. Outside a plane admin's planes the answer
/// is the same as for a missing identity: plane admins learn nothing of other planes.
async fn visible_identity(
    s: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<IdentityRecord, ApiError> {
    let record = s
        .store
        .identity(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("identity `{id}` does not exist")))?;
    if let Some(v) = caller.visible_planes(&s.store).await?
        && !v.contains(&record.identity.plane)
    {
        return Err(ApiError::not_found(format!(
            "identity `{id}` does not exist"
        )));
    }
    Ok(record)
}

/// The identity `id` if the caller may change it.
async fn writable_identity(
    s: &AppState,
    caller: &Caller,
    id: &str,
    what: &str,
) -> Result<IdentityRecord, ApiError> {
    caller.require_writer(what)?;
    visible_identity(s, caller, id).await
}

/// `POST /admin/v1/identities/{id}/client-secret`: a new static secret for a legacy-key
/// identity, shown once; the previous one stops working.
async fn create_client_secret(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    let record = writable_identity(&s, &caller, &id, "issuing a client secret").await?;
    if record.identity.kind != steward_model::IdentityKind::LegacyKey {
        return Err(ApiError::bad_request(format!(
            "identity `{id}` is of kind {}: only legacy-key identities may hold a static client secret; register a public key for private_key_jwt instead",
            record.identity.kind
        )));
    }
    if record.identity.state != LifecycleState::Active {
        return Err(ApiError::bad_request(format!(
            "identity `{id}` is {}",
            record.identity.state
        )));
    }
    let minted = crate::auth::mint_secret().map_err(|e| {
        tracing::error!(error = %e, "no randomness");
        ApiError::internal()
    })?;
    let created_at = s
        .store
        .set_client_secret(&id, &crate::auth::hash_token(&minted), &caller.0)
        .await?;
    s.reload_policy().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({
            "spiffe_id": id,
            "client_secret": minted,
            "created_at": created_at,
            "note": "shown once; only its hash is stored. Every use is flagged in the evidence log.",
        })),
    ))
}

/// `DELETE /admin/v1/identities/{id}/client-secret`
async fn revoke_client_secret(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    writable_identity(&s, &caller, &id, "revoking a client secret").await?;
    let revoked = s.store.revoke_client_secret(&id, &caller.0).await?;
    s.reload_policy().await?;
    Ok(axum::Json(
        serde_json::json!({ "spiffe_id": id, "revoked": revoked }),
    ))
}

async fn capabilities(
    _caller: Caller,
    State(s): State<AppState>,
) -> ApiResult<Vec<steward_model::Capability>> {
    Ok(axum::Json(s.store.capabilities().await?))
}

async fn issuers(
    _caller: Caller,
    State(s): State<AppState>,
) -> ApiResult<Vec<steward_model::TrustedIssuer>> {
    Ok(axum::Json(s.store.issuers().await?))
}

async fn policies(
    _caller: Caller,
    State(s): State<AppState>,
) -> ApiResult<Vec<steward_governance::PolicyFile>> {
    Ok(axum::Json(s.store.policies().await?))
}

async fn credentials(
    caller: Caller,
    State(s): State<AppState>,
) -> ApiResult<Vec<steward_store::CredentialRecord>> {
    if matches!(caller.role(), Role::PlaneAdmin { .. }) {
        return Err(ApiError::forbidden(
            "listing admin credentials needs the central-admin or auditor role",
        ));
    }
    Ok(axum::Json(s.store.credentials().await?))
}

async fn create_credential(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<CreateCredentialRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_central("creating an admin credential")?;
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(ApiError::bad_request("`name` must be 1-128 characters"));
    }
    let role = req.resolved_role().map_err(ApiError::bad_request)?;
    let minted = mint().map_err(|_| ApiError::internal())?;
    let new = NewCredential {
        id: minted.id,
        name: req.name,
        role,
        token_hash: minted.hash,
    };
    let credential = s.store.create_credential(&new, &caller.0).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedCredential {
            credential,
            token: minted.token,
        }),
    ))
}

async fn revoke_credential(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_central("revoking an admin credential")?;
    s.store.revoke_credential(&id, &caller.0).await?;
    s.credentials.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn changes(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Vec<steward_store::AdminChange>> {
    if matches!(caller.role(), Role::PlaneAdmin { .. }) {
        return Err(ApiError::forbidden(
            "the admin change log needs the central-admin or auditor role",
        ));
    }
    Ok(axum::Json(
        s.store
            .admin_changes(q.after.unwrap_or(0), page_size(q.limit)?)
            .await?,
    ))
}
