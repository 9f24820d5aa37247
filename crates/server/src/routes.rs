//! The admin API routes. Each handler authenticates (the `Caller` extractor), checks the
//! role, then calls the store; the store records every change.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, delete, get, post, put};
use serde::Deserialize;

use steward_governance::{Desired, MAX_LISTED_CHANGES, SourceFile};
use steward_model::{LifecycleState, PlaneId, Role};
use steward_store::{IdentityFilter, NewCredential};

use crate::AppState;
use crate::auth::{Caller, mint};
use crate::error::ApiError;
use crate::extract::{Json, Query, page_size};
use steward_api::*;
use steward_api::{BodyLimit, RouteId};

/// The router, built from [`steward_api::ROUTES`]: each route gets its handler (the
/// match below is exhaustive, so a route cannot go unserved) and its body limit.
pub(crate) fn router(max_body: usize, max_apply: usize) -> Router<AppState> {
    let mut router = Router::new();
    for route in steward_api::ROUTES {
        let limit = match route.body {
            BodyLimit::Repository => max_apply,
            // A full ingest batch (1,000 records of up to 16 KiB) must fit, whatever the
            // admin limit.
            BodyLimit::Ingest => crate::audit_routes::MAX_INGEST_BODY_BYTES,
            // Token requests are small; a larger body is refused with an OAuth error.
            BodyLimit::TokenRequest => crate::tokens::MAX_TOKEN_REQUEST_BYTES,
            BodyLimit::Standard => max_body,
        };
        router = router.route(
            route.path,
            handler(route.id).layer(DefaultBodyLimit::max(limit)),
        );
    }
    router
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/openapi.yaml") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method; see docs/openapi.yaml",
            )
        })
}

/// The handler of each route, with the route's method.
fn handler(id: RouteId) -> MethodRouter<AppState> {
    use crate::{
        audit_routes, authzen, compliance, console, egress, enforcement, policy, posture, reviews,
        revocation, tokens,
    };
    use RouteId as R;
    match id {
        R::Healthz | R::Livez => get(|| async { "ok\n" }),
        R::Readyz => get(crate::health::readyz),
        R::OpenidConfiguration => get(tokens::openid_configuration),
        R::OauthMetadata => get(tokens::oauth_metadata),
        R::SpiffeBundle => get(tokens::spiffe_bundle),
        R::AuthzenConfiguration => get(authzen::configuration),
        R::Jwks => get(tokens::jwks),
        R::Token => post(tokens::token),
        R::Introspect => post(tokens::introspect),
        R::ConsoleRedirect => get(console::redirect),
        R::ConsoleIndex => get(console::index),
        R::ConsoleScript => get(console::script),
        R::ConsoleStyle => get(console::style),
        R::Whoami => get(whoami),
        R::Status => get(status),
        R::ConfigPlan => post(plan),
        R::ConfigApply => post(apply),
        R::ConfigVersions => get(versions),
        R::Planes => get(planes),
        R::Owners => get(owners),
        R::RemoveOwner => delete(remove_owner),
        R::ListIdentities => get(list_identities),
        R::CreateIdentity => post(create_identity),
        R::GetIdentity => get(get_identity),
        R::IdentityLifecycle => post(lifecycle),
        R::CreateClientSecret => post(create_client_secret),
        R::RevokeClientSecret => delete(revoke_client_secret),
        R::AddClientKey => post(add_client_key),
        R::RemoveClientKey => delete(remove_client_key),
        R::IdentityEntitlements => get(policy::identity_entitlements),
        R::Capabilities => get(capabilities),
        R::Issuers => get(issuers),
        R::Policies => get(policies),
        R::ListCredentials => get(credentials),
        R::CreateCredential => post(create_credential),
        R::RevokeCredential => delete(revoke_credential),
        R::Changes => get(changes),
        R::Keys => get(tokens::keys_list),
        R::RotateKeys => post(tokens::keys_rotate),
        R::ApproveWorkflow => post(tokens::approve_jit),
        R::AuditEvents => get(audit_routes::events),
        R::AuditVerify => get(audit_routes::verify),
        R::AuditStats => get(audit_routes::stats),
        R::AuditCheckpoints => get(audit_routes::checkpoints),
        R::AuditChain => get(audit_routes::chain),
        R::AuditTimeline => get(audit_routes::timeline),
        R::AuditIngest => post(audit_routes::ingest),
        R::PolicyDiff => get(policy::diff),
        R::PolicyVersions => get(policy::versions),
        R::PolicyVersion => get(policy::version),
        R::PolicyRollback => post(policy::rollback),
        R::EnforcementPoints => get(revocation::points),
        R::Posture => get(posture::posture),
        R::Compliance => get(compliance::compliance),
        R::ListReviews => get(reviews::list),
        R::StartReview => post(reviews::start),
        R::GetReview => get(reviews::show),
        R::DecideReview => post(reviews::decide),
        R::ListRevocations => get(revocation::list),
        R::Revoke => post(revocation::revoke),
        R::RevocationVerification => get(revocation::verification),
        R::ListEgressSecrets => get(egress::list),
        R::SetEgressSecret => put(egress::set),
        R::DeleteEgressSecret => delete(egress::delete),
        R::Evaluation => post(authzen::evaluation),
        R::Evaluations => post(authzen::evaluations),
        R::Bundle => get(enforcement::bundle),
        R::RevocationStream => get(revocation::stream),
        R::PointReport => post(revocation::report),
        R::Decisions => post(audit_routes::enforcement_decisions),
        R::ReleaseEgressSecret => get(egress::release),
    }
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
) -> ApiResult<steward_api::RegistryCounts> {
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

async fn versions(
    _caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Vec<steward_api::ConfigVersion>> {
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
) -> ApiResult<Vec<steward_api::OwnerRecord>> {
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
    planes: steward_model::PlaneSettings,
    /// Every owner, and whether it was removed.
    owners: std::collections::BTreeMap<String, bool>,
    capabilities: std::collections::BTreeSet<steward_model::CapabilityId>,
}

impl StoreRegistry {
    async fn load(s: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            trust_domain: s.trust_domain().clone(),
            planes: steward_model::PlaneSettings::from_planes(s.store.planes().await?),
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
        self.planes.tree().contains(plane)
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
        self.planes.of(plane).environments
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
            steward_model::RevokedIdentity::Decommissioned,
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
) -> Result<(StatusCode, axum::Json<ClientSecret>), ApiError> {
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
        axum::Json(ClientSecret {
            spiffe_id: id,
            client_secret: minted,
            created_at,
            note: "shown once; only its hash is stored. Every use is flagged in the evidence log."
                .into(),
        }),
    ))
}

/// `DELETE /admin/v1/identities/{id}/client-secret`
async fn revoke_client_secret(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<ClientSecretRevoked> {
    writable_identity(&s, &caller, &id, "revoking a client secret").await?;
    let revoked = s.store.revoke_client_secret(&id, &caller.0).await?;
    s.reload_policy().await?;
    Ok(axum::Json(ClientSecretRevoked {
        spiffe_id: id,
        revoked,
    }))
}

async fn add_client_key(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(key): Json<steward_model::ClientKey>,
) -> Result<impl IntoResponse, ApiError> {
    writable_identity(&s, &caller, &id, "registering a client key").await?;
    // The same checks a key in the repository gets: a usable P-256 key.
    let candidate = steward_model::Credentials {
        public_keys: vec![key.clone()],
        ..Default::default()
    };
    let problems = steward_governance::credential_problems(&candidate);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(problems.join("; ")));
    }
    let record = s
        .store
        .edit_client_keys(&id, steward_store::ClientKeyEdit::Add(key), &caller.0)
        .await?;
    s.reload_policy().await?;
    Ok((StatusCode::CREATED, axum::Json(record)))
}

async fn remove_client_key(
    caller: Caller,
    State(s): State<AppState>,
    Path((id, kid)): Path<(String, String)>,
) -> ApiResult<IdentityRecord> {
    writable_identity(&s, &caller, &id, "removing a client key").await?;
    let record = s
        .store
        .edit_client_keys(&id, steward_store::ClientKeyEdit::Remove(kid), &caller.0)
        .await?;
    s.reload_policy().await?;
    Ok(axum::Json(record))
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

async fn credentials(caller: Caller, State(s): State<AppState>) -> ApiResult<Vec<Credential>> {
    if matches!(caller.role(), Role::PlaneAdmin { .. }) {
        return Err(ApiError::forbidden(
            "listing admin credentials needs the central-admin or auditor role",
        ));
    }
    Ok(axum::Json(
        s.store
            .credentials()
            .await?
            .iter()
            .map(steward_store::CredentialRecord::public)
            .collect(),
    ))
}

/// Longest lifetime an expiring admin credential may be given.
const MAX_CREDENTIAL_SECS: u64 = 10 * 366 * 24 * 3600;

async fn create_credential(
    caller: Caller,
    State(s): State<AppState>,
    Json(req): Json<CreateCredentialRequest>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_central("creating an admin credential")?;
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(ApiError::bad_request("`name` must be 1-128 characters"));
    }
    let role = req
        .resolved_role()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let expires_at = match req.expires_in_secs {
        None => None,
        Some(secs) if (1..=MAX_CREDENTIAL_SECS).contains(&secs) => {
            Some(steward_model::timestamp::from_unix(
                time::OffsetDateTime::now_utc().unix_timestamp() + secs as i64,
            ))
        }
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "`expires_in_secs` must be between 1 and {MAX_CREDENTIAL_SECS} (10 years)"
            )));
        }
    };
    let minted = mint().map_err(|_| ApiError::internal())?;
    let new = NewCredential {
        id: minted.id,
        name: req.name,
        role,
        token_hash: minted.hash,
        expires_at,
    };
    let credential = s.store.create_credential(&new, &caller.0).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedCredential {
            credential: credential.public(),
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
) -> ApiResult<Vec<steward_api::AdminChange>> {
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
