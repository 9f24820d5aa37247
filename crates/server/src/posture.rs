//! Posture: the inventory of non-human identities — owner, plane, credentials
//! outstanding, last use, intended vs effective vs used permissions — and the
//! findings that follow from it, each with its severity, the evidence behind it, the
//! owner to act and its place in the OWASP Non-Human Identities Top 10 (2025).
//!
//! "Used" comes from the evidence log: allowed `access.decision` events (any enforcement
//! point, the decision API, ingested foreign decisions) and issued credentials, in one
//! grouped scan of the window. "Effective" is computed by deciding every capability and
//! action for the identity in its own environment — exactly what enforcement points would
//! get — for at most `max_analysed` identities per report (it costs one decision per
//! capability and action each); the others are counted as not analysed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_model::timestamp;
use steward_model::{IdentityKind, LifecycleState, PlaneId, PlaneTree};
use steward_store::{IdentityFilter, IdentityRecord};
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;

pub(crate) const DEFAULT_WINDOW_DAYS: u64 = 30;
const MAX_WINDOW_DAYS: u64 = 366;
pub(crate) const DEFAULT_MAX_ANALYSED: usize = 100;
/// Exceptions granted this many times for one identity and capability are reported.
const RENEWALS_FLAGGED: i64 = 3;
/// Exceptions expiring within this many days are reported.
const EXCEPTION_NOTICE_DAYS: i64 = 7;
/// Two client keys of one identity both obtaining tokens for longer than this are
/// reported as shared: a key rotation overlaps for minutes or hours, not days.
const SHARED_OVERLAP: time::Duration = time::Duration::hours(24);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    /// The name the API and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The owner was removed, or the identity was decommissioned but still holds
    /// credentials.
    Orphaned,
    /// Active, but not used within the stale window.
    Stale,
    /// Effective permissions never used within the window.
    OverPrivileged,
    /// A static client secret (legacy-key identity).
    StaticSecret,
    /// A static secret older than its plane's `max_credential_age_days`.
    RotationOverdue,
    /// A policy exception that expires soon.
    ExceptionNearExpiry,
    /// Not attested in an access review within its plane's `review_cadence_days`.
    Unreviewed,
    /// An exception granted again and again for the same identity and capability: a
    /// standing privilege in disguise.
    ExceptionRenewed,
    /// Used in an environment other than the one it is registered for.
    CrossEnvironment,
    /// Several client keys obtaining tokens for one identity at the same time, for days:
    /// several workloads share it.
    SharedIdentity,
}

impl FindingKind {
    /// The OWASP Non-Human Identities Top 10 (2025) risks this finding is evidence of.
    pub fn owasp(self) -> &'static [&'static str] {
        match self {
            Self::Orphaned => &["NHI1:2025 Improper Offboarding"],
            Self::Stale => &["NHI1:2025 Improper Offboarding"],
            Self::OverPrivileged => &["NHI5:2025 Overprivileged NHI"],
            Self::StaticSecret => &[
                "NHI7:2025 Long-Lived Secrets",
                "NHI4:2025 Insecure Authentication",
            ],
            Self::RotationOverdue => &["NHI7:2025 Long-Lived Secrets", "NHI2:2025 Secret Leakage"],
            Self::ExceptionNearExpiry => &["NHI5:2025 Overprivileged NHI"],
            Self::ExceptionRenewed => &["NHI5:2025 Overprivileged NHI"],
            Self::Unreviewed => &[
                "NHI1:2025 Improper Offboarding",
                "NHI5:2025 Overprivileged NHI",
            ],
            Self::CrossEnvironment => &["NHI8:2025 Environment Isolation", "NHI9:2025 NHI Reuse"],
            Self::SharedIdentity => &["NHI9:2025 NHI Reuse"],
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across reports: `<kind>:<subject>`.
    pub id: String,
    pub kind: FindingKind,
    pub severity: Severity,
    /// The identity (SPIFFE ID) or, for an exception, the exception id.
    pub subject: String,
    pub plane: String,
    /// The owner to act.
    pub owner: String,
    pub summary: String,
    /// The facts behind it (times, counts, the unused permissions …).
    pub evidence: Value,
    pub owasp: Vec<String>,
}

/// Credentials an identity holds or was issued.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CredentialSummary {
    pub registered_keys: usize,
    pub tls_certificates: usize,
    /// Age in days of its static client secret, if it has one.
    pub client_secret_age_days: Option<i64>,
    /// Tokens issued to it and not yet expired (revoked ones included).
    pub active_tokens: i64,
    /// Tokens issued to it since first recorded, counted for the grant types and client
    /// keys it used within the window.
    pub tokens_issued: i64,
    pub last_token_issued: Option<String>,
}

/// An environment an identity was used in within the window: decisions made there and
/// tokens issued for it (counted since first recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentUse {
    pub environment: String,
    pub allowed: i64,
    pub denied: i64,
    pub tokens: i64,
    pub last: String,
}

/// A client key an identity obtained tokens with, used within the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientKeyUse {
    /// The key id (`kid` of the client assertion).
    pub key: String,
    pub tokens: i64,
    pub first: String,
    pub last: String,
}

/// Intended vs effective vs used permissions (`capability:action`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PermissionSummary {
    pub intended: Vec<String>,
    /// `None` when not analysed in this report (over `max_analysed`, or decommissioned).
    pub effective: Option<Vec<String>>,
    pub used: Vec<String>,
    /// Effective but never used in the window.
    pub unused: Vec<String>,
}

/// One identity in the inventory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryItem {
    pub spiffe_id: String,
    pub plane: String,
    pub owner: String,
    pub owner_removed: bool,
    pub environment: String,
    pub kind: IdentityKind,
    pub state: LifecycleState,
    pub created_at: String,
    pub credentials: CredentialSummary,
    /// The newest allowed decision or issued credential in the window.
    pub last_used: Option<String>,
    /// When it was last attested in an access review.
    pub last_reviewed: Option<String>,
    pub permissions: PermissionSummary,
    /// Environments it was used in within the window.
    pub environments_used: Vec<EnvironmentUse>,
    /// Client keys it obtained tokens with within the window.
    pub client_keys_used: Vec<ClientKeyUse>,
}

/// Counts for the overview.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PostureSummary {
    pub identities: usize,
    pub by_state: BTreeMap<String, usize>,
    pub findings: usize,
    pub by_severity: BTreeMap<Severity, usize>,
    pub by_kind: BTreeMap<FindingKind, usize>,
    pub by_owasp: BTreeMap<String, usize>,
    /// Identities whose effective permissions were computed.
    pub analysed: usize,
    /// Active or suspended identities left out of the effective-permission analysis.
    pub not_analysed: usize,
}

/// `GET /admin/v1/posture`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostureReport {
    pub generated_at: String,
    pub window_days: u64,
    pub stale_days: u64,
    pub summary: PostureSummary,
    pub findings: Vec<Finding>,
    pub inventory: Vec<InventoryItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostureQuery {
    window_days: Option<u64>,
    stale_days: Option<u64>,
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

/// What the evidence says one identity did in the window.
#[derive(Default)]
struct Used {
    permissions: BTreeSet<String>,
    last: Option<String>,
    tokens: i64,
    last_token: Option<String>,
    environments: BTreeMap<String, EnvironmentUse>,
    keys: BTreeMap<String, ClientKeyUse>,
}

impl Used {
    /// Folds one usage aggregate in; `window_start` bounds what counts as used now.
    fn add(&mut self, t: &steward_store::UsageTotal, window_start: &str) {
        if !(t.kind == "access.decision" || t.kind.starts_with("credential.")) {
            return;
        }
        let in_window = t.last.as_str() >= window_start;
        let decision = t.kind == "access.decision";
        let allowed = t.outcome.as_deref() == Some("allow");
        if decision {
            if allowed {
                if in_window && let (Some(c), Some(a)) = (&t.capability, &t.action) {
                    self.permissions.insert(format!("{c}:{a}"));
                }
                newer(&mut self.last, &t.last);
            }
        } else {
            self.tokens += t.count;
            newer(&mut self.last_token, &t.last);
            newer(&mut self.last, &t.last);
            if in_window && let Some(k) = &t.credential {
                let u = self.keys.entry(k.clone()).or_insert_with(|| ClientKeyUse {
                    key: k.clone(),
                    first: t.first.clone(),
                    last: t.last.clone(),
                    ..Default::default()
                });
                u.tokens += t.count;
                u.first = u.first.clone().min(t.first.clone());
                u.last = u.last.clone().max(t.last.clone());
            }
        }
        if in_window && let Some(env) = &t.environment {
            let u = self.environments.entry(env.clone()).or_default();
            u.environment = env.clone();
            match (decision, allowed) {
                (true, true) => u.allowed += t.count,
                (true, false) => u.denied += t.count,
                (false, _) => u.tokens += t.count,
            }
            if u.last < t.last {
                u.last = t.last.clone();
            }
        }
    }
}

fn newer(a: &mut Option<String>, b: &str) {
    // RFC 3339 UTC times of one writer compare as text.
    if a.as_deref().is_none_or(|x| x < b) {
        *a = Some(b.to_owned());
    }
}

/// `GET /admin/v1/posture?window_days=&stale_days=&plane=&identity=&max_analysed=`: any
/// admin role; a plane admin sees its planes only.
pub(crate) async fn posture(
    caller: Caller,
    State(s): State<AppState>,
    Query(q): Query<PostureQuery>,
) -> Result<axum::Json<PostureReport>, ApiError> {
    let window_days = days("window_days", q.window_days)?;
    let stale_days = days("stale_days", q.stale_days)?;
    let max_analysed = q.max_analysed.unwrap_or(DEFAULT_MAX_ANALYSED);
    if max_analysed > 100_000 {
        return Err(ApiError::bad_request(
            "`max_analysed` must be at most 100000",
        ));
    }
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
            compute(
                &s,
                Subjects::One(Box::new(record)),
                window_days,
                stale_days,
                max_analysed,
            )
            .await?,
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
    Ok(axum::Json(
        report(&s, scope, window_days, stale_days, max_analysed).await?,
    ))
}

/// How long a computed report is answered as current while the registry has not changed.
/// After that it is still answered at once while a fresh one is computed in the
/// background (usage may be this much behind); every admin change recomputes first.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

type CacheKey = (Option<Vec<PlaneId>>, u64, u64, usize, i64);

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
    window_days: u64,
    stale_days: u64,
    max_analysed: usize,
) -> Result<PostureReport, ApiError> {
    use std::sync::atomic::Ordering;
    let change = s.store.latest_change_seq().await?;
    let key: CacheKey = (scope.clone(), window_days, stale_days, max_analysed, change);
    let mut last = s.posture.last.lock().await;
    if let Some(c) = last.as_ref()
        && c.key == key
    {
        if c.at.elapsed() >= CACHE_TTL && !s.posture.refreshing.swap(true, Ordering::AcqRel) {
            let s = s.clone();
            tokio::spawn(async move {
                let subjects = Subjects::Planes(scope);
                match compute(&s, subjects, window_days, stale_days, max_analysed).await {
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
    let report = compute(
        s,
        Subjects::Planes(scope),
        window_days,
        stale_days,
        max_analysed,
    )
    .await?;
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
    window_days: u64,
    stale_days: u64,
    max_analysed: usize,
) -> Result<PostureReport, ApiError> {
    let now = OffsetDateTime::now_utc();
    let started = std::time::Instant::now();
    let inputs = PostureInputs::load(s, subjects, window_days, stale_days, now).await?;
    let read = started.elapsed();
    let effective = effective_permissions(s, &inputs.records, max_analysed, now).await?;
    let analysed = started.elapsed();
    let (inventory, findings) = assess(inputs, &effective, now, window_days, stale_days);
    tracing::info!(
        identities = inventory.len(),
        findings = findings.len(),
        analysed = effective.len(),
        read_ms = read.as_millis() as u64,
        analysis_ms = (analysed - read).as_millis() as u64,
        findings_ms = (started.elapsed() - analysed).as_millis() as u64,
        "posture computed"
    );
    let summary = summarise(&inventory, &findings, effective.len());
    Ok(PostureReport {
        generated_at: timestamp::format(now),
        window_days,
        stale_days,
        summary,
        findings,
        inventory,
    })
}

/// Everything posture reads from the store, read once.
struct PostureInputs {
    settings: PlaneSettings,
    exceptions: BTreeMap<String, steward_model::PolicyException>,
    records: Vec<IdentityRecord>,
    /// Removed owners and when.
    removed: HashMap<String, String>,
    /// Client secrets' creation times, by identity.
    secrets: HashMap<String, String>,
    /// Each identity's last review attestation.
    reviewed: HashMap<String, String>,
    used: HashMap<String, Used>,
    /// Unexpired tokens, by identity.
    active: HashMap<String, i64>,
    /// (principal, capability, grants, last granted) of exceptions granted again and again.
    exception_grants: Vec<(String, String, i64, String)>,
}

impl PostureInputs {
    async fn load(
        s: &AppState,
        subjects: Subjects,
        window_days: u64,
        stale_days: u64,
        now: OffsetDateTime,
    ) -> Result<Self, ApiError> {
        let since =
            timestamp::format(now - time::Duration::days(window_days.max(stale_days) as i64));
        let settings = PlaneSettings::load(s).await?;
        let exceptions = s
            .store
            .policy_bundle(None)
            .await?
            .map(|(_, b)| b.exceptions)
            .unwrap_or_default();
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

        Ok(Self {
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
}

/// Effective permissions (capability:action) of at most `max_analysed` identities, the
/// most sensitive first, computed off the runtime and spread over the cores.
async fn effective_permissions(
    s: &AppState,
    records: &[IdentityRecord],
    max_analysed: usize,
    now: OffsetDateTime,
) -> Result<HashMap<String, BTreeSet<String>>, ApiError> {
    let engine = s.engine().ok();
    // The most sensitive first: restricted, then confidential, … (then by SPIFFE ID).
    let mut candidates: Vec<&IdentityRecord> = records
        .iter()
        .filter(|r| r.identity.state != LifecycleState::Decommissioned)
        .collect();
    candidates.sort_by_key(|r| std::cmp::Reverse(r.identity.classification));
    let analyse: Vec<(String, Vec<steward_model::Entitlement>)> = candidates
        .into_iter()
        .take(max_analysed)
        .map(|r| {
            (
                r.identity.spiffe_id.to_string(),
                r.identity.intended.clone(),
            )
        })
        .collect();
    Ok(match engine {
        Some(engine) => tokio::task::spawn_blocking(move || {
            // One decision per capability × action per identity: spread the identities
            // over the cores (each thread keeps its own share, no shared state).
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let chunk = analyse.len().div_ceil(threads).max(1);
            let engine = &engine;
            std::thread::scope(|scope| {
                let workers: Vec<_> = analyse
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .filter_map(|(id, intended)| {
                                    let r = steward_policy::analysis::entitlements(
                                        engine, id, intended, None, now,
                                    )?;
                                    Some((
                                        id.clone(),
                                        r.effective
                                            .iter()
                                            .map(|p| format!("{}:{}", p.capability, p.action))
                                            .collect::<BTreeSet<String>>(),
                                    ))
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| {
                        w.join().unwrap_or_else(|_| {
                            tracing::error!("the effective-permission analysis of a share of identities failed; they are reported as not analysed");
                            Vec::new()
                        })
                    })
                    .collect::<HashMap<_, _>>()
            })
        })
        .await
        .map_err(|_| ApiError::internal())?,
        None => HashMap::new(),
    })
}

/// The pure part: the inventory and its findings from what was read and analysed.
fn assess(
    inputs: PostureInputs,
    effective: &HashMap<String, BTreeSet<String>>,
    now: OffsetDateTime,
    window_days: u64,
    stale_days: u64,
) -> (Vec<InventoryItem>, Vec<Finding>) {
    let PostureInputs {
        settings,
        exceptions,
        records,
        removed,
        secrets,
        reviewed,
        mut used,
        active,
        exception_grants,
    } = inputs;
    let mut inventory = Vec::with_capacity(records.len());
    let mut findings = Vec::new();
    let stale_cutoff = timestamp::format(now - time::Duration::days(stale_days as i64));
    for r in &records {
        let i = &r.identity;
        let id = i.spiffe_id.to_string();
        let u = used.remove(&id).unwrap_or_default();
        let secret_age = secrets
            .get(&id)
            .and_then(|t| timestamp::parse(t))
            .map(|t| (now - t).whole_days());
        let credentials = CredentialSummary {
            registered_keys: i.credentials.public_keys.len(),
            tls_certificates: i.credentials.tls_certificates.len(),
            client_secret_age_days: secret_age,
            active_tokens: active.get(&id).copied().unwrap_or(0),
            tokens_issued: u.tokens,
            last_token_issued: u.last_token.clone(),
        };
        let intended: Vec<String> = i
            .intended
            .iter()
            .flat_map(|e| {
                e.actions
                    .iter()
                    .map(move |a| format!("{}:{a}", e.capability))
            })
            .collect();
        let eff = effective.get(&id);
        let unused: Vec<String> = eff
            .map(|e| e.difference(&u.permissions).cloned().collect())
            .unwrap_or_default();
        let item = InventoryItem {
            spiffe_id: id.clone(),
            plane: i.plane.to_string(),
            owner: i.owner.clone(),
            owner_removed: r.orphaned || removed.contains_key(&i.owner),
            environment: i.environment.clone(),
            kind: i.kind,
            state: i.state,
            created_at: r.created_at.clone(),
            credentials,
            last_used: u.last.clone(),
            last_reviewed: reviewed.get(&id).cloned(),
            permissions: PermissionSummary {
                intended,
                effective: eff.map(|e| e.iter().cloned().collect()),
                used: u.permissions.iter().cloned().collect(),
                unused,
            },
            environments_used: u.environments.into_values().collect(),
            client_keys_used: u.keys.into_values().collect(),
        };
        let settings = settings.of(&i.plane);
        findings.extend(identity_findings(
            &item,
            removed.get(&i.owner),
            settings.max_credential_age_days,
            &stale_cutoff,
            stale_days,
            window_days,
            i.classification,
        ));
        if let Some(cadence) = settings.review_cadence_days {
            let cutoff = timestamp::format(now - time::Duration::days(cadence as i64));
            findings.extend(unreviewed(&item, cadence, &cutoff));
        }
        inventory.push(item);
    }
    let visible_ids: HashSet<&str> = inventory.iter().map(|i| i.spiffe_id.as_str()).collect();
    for e in exceptions.values() {
        let left = e.expires_at - now;
        if e.is_active(now)
            && left.whole_days() < EXCEPTION_NOTICE_DAYS
            && visible_ids.contains(e.principal.as_str())
        {
            let (plane, owner) = inventory
                .iter()
                .find(|i| i.spiffe_id == e.principal.as_str())
                .map(|i| (i.plane.clone(), e.owner.clone()))
                .unwrap_or_default();
            findings.push(finding(
                FindingKind::ExceptionNearExpiry,
                Severity::Low,
                &e.id,
                plane,
                owner,
                format!(
                    "exception `{}` lifting {} for {} on {} expires in {} h: renew it deliberately or let the guardrail apply",
                    e.id,
                    e.lifts.join(", "),
                    e.principal,
                    e.capability,
                    left.whole_hours()
                ),
                json!({"expires_at": timestamp::format(e.expires_at), "ticket": e.ticket, "reason": e.reason, "principal": e.principal, "capability": e.capability}),
            ));
        }
    }
    for (principal, capability, grants, last) in exception_grants {
        if grants < RENEWALS_FLAGGED {
            continue;
        }
        let Some(item) = inventory.iter().find(|i| i.spiffe_id == principal) else {
            continue;
        };
        findings.push(finding(
            FindingKind::ExceptionRenewed,
            Severity::Medium,
            &format!("{principal}:{capability}"),
            item.plane.clone(),
            item.owner.clone(),
            format!(
                "an exception for `{capability}` was granted {grants} times; make the access a reviewed policy, or stop renewing it"
            ),
            json!({"principal": principal, "capability": capability, "grants": grants, "last_granted": last}),
        ));
    }
    findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(&b.id)));
    (inventory, findings)
}

/// Each plane's inherited settings, from the planes alone (not the whole registry).
pub(crate) struct PlaneSettings {
    root: steward_model::Settings,
    planes: BTreeMap<PlaneId, steward_model::Plane>,
}

impl PlaneSettings {
    pub(crate) async fn load(s: &AppState) -> Result<Self, ApiError> {
        let mut root = steward_model::Settings::default();
        let mut planes = BTreeMap::new();
        for p in s.store.planes().await? {
            if p.id.is_root() {
                root = p.settings;
            } else {
                planes.insert(p.id.clone(), p);
            }
        }
        Ok(Self { root, planes })
    }

    /// The effective settings of `plane` (tighten-only inheritance).
    pub(crate) fn of(&self, plane: &PlaneId) -> steward_model::Settings {
        PlaneTree::new(&self.planes).effective_settings(&self.root, plane)
    }
}

fn finding(
    kind: FindingKind,
    severity: Severity,
    subject: &str,
    plane: String,
    owner: String,
    summary: String,
    evidence: Value,
) -> Finding {
    Finding {
        id: format!(
            "{}:{subject}",
            serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
        kind,
        severity,
        subject: subject.to_owned(),
        plane,
        owner,
        summary,
        evidence,
        owasp: kind.owasp().iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn identity_findings(
    item: &InventoryItem,
    owner_removed_at: Option<&String>,
    max_credential_age_days: Option<u64>,
    stale_cutoff: &str,
    stale_days: u64,
    window_days: u64,
    classification: steward_model::Classification,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let c = &item.credentials;
    let holds =
        c.registered_keys + c.tls_certificates + usize::from(c.client_secret_age_days.is_some());
    let mk = |kind, severity, summary: String, evidence| {
        finding(
            kind,
            severity,
            &item.spiffe_id,
            item.plane.clone(),
            item.owner.clone(),
            summary,
            evidence,
        )
    };
    let live = item.state != LifecycleState::Decommissioned;
    if item.owner_removed && live {
        out.push(mk(
            FindingKind::Orphaned,
            if holds > 0 { Severity::High } else { Severity::Medium },
            format!(
                "owner `{}` was removed; reassign the identity or decommission it",
                item.owner
            ),
            json!({"owner": item.owner, "owner_removed_at": owner_removed_at, "credentials_held": holds, "state": item.state}),
        ));
    } else if !live && (holds > 0 || c.active_tokens > 0) {
        out.push(mk(
            FindingKind::Orphaned,
            Severity::High,
            "decommissioned but still holds credentials; remove its keys and secrets".into(),
            json!({"registered_keys": c.registered_keys, "tls_certificates": c.tls_certificates, "client_secret_age_days": c.client_secret_age_days, "active_tokens": c.active_tokens}),
        ));
    }
    if item.state == LifecycleState::Active
        && item.created_at.as_str() < stale_cutoff
        && item.last_used.as_deref().is_none_or(|t| t < stale_cutoff)
    {
        out.push(mk(
            FindingKind::Stale,
            Severity::Medium,
            format!("not used in the last {stale_days} days; suspend or decommission it if it is no longer needed"),
            json!({"last_used": item.last_used, "created_at": item.created_at, "stale_days": stale_days}),
        ));
    }
    if item.state == LifecycleState::Active && !item.permissions.unused.is_empty() {
        let restricted = classification == steward_model::Classification::Restricted;
        out.push(mk(
            FindingKind::OverPrivileged,
            if restricted { Severity::High } else { Severity::Medium },
            format!(
                "{} of {} effective permission(s) were not used in the last {window_days} days; narrow the policy",
                item.permissions.unused.len(),
                item.permissions.effective.as_ref().map_or(0, Vec::len)
            ),
            json!({"unused": item.permissions.unused, "used": item.permissions.used, "intended": item.permissions.intended, "window_days": window_days}),
        ));
    }
    let elsewhere: Vec<&EnvironmentUse> = item
        .environments_used
        .iter()
        .filter(|e| !item.environment.is_empty() && e.environment != item.environment)
        .collect();
    if live && !elsewhere.is_empty() {
        let succeeded = elsewhere.iter().any(|e| e.allowed + e.tokens > 0);
        let names: Vec<&str> = elsewhere.iter().map(|e| e.environment.as_str()).collect();
        out.push(mk(
            FindingKind::CrossEnvironment,
            if succeeded { Severity::High } else { Severity::Medium },
            format!(
                "registered for `{}` but {} in {} within the last {window_days} days; give each environment its own identity",
                item.environment,
                if succeeded { "used" } else { "tried (and refused)" },
                names.join(", ")
            ),
            json!({"registered_environment": item.environment, "environments": elsewhere, "window_days": window_days}),
        ));
    }
    if live && let Some((a, b, overlap)) = shared_keys(&item.client_keys_used) {
        out.push(mk(
            FindingKind::SharedIdentity,
            Severity::Medium,
            format!(
                "client keys `{}` and `{}` both obtained tokens for {} h at the same time: several workloads appear to share this identity; give each its own",
                a.key,
                b.key,
                overlap.whole_hours()
            ),
            json!({"keys": [a, b], "overlap_hours": overlap.whole_hours(), "window_days": window_days}),
        ));
    }
    if let Some(age) = c.client_secret_age_days
        && live
    {
        match max_credential_age_days {
            Some(max) if age > max as i64 => out.push(mk(
                FindingKind::RotationOverdue,
                Severity::High,
                format!("its static client secret is {age} days old, over its plane's {max}; rotate it (`steward identity secret`) or move to private_key_jwt"),
                json!({"age_days": age, "max_credential_age_days": max}),
            )),
            _ => out.push(mk(
                FindingKind::StaticSecret,
                Severity::Medium,
                format!("authenticates with a static client secret ({age} days old); move it to private_key_jwt"),
                json!({"age_days": age, "max_credential_age_days": max_credential_age_days}),
            )),
        }
    }
    out
}

/// The pair of client keys whose periods of use overlap the longest, if longer than
/// [`SHARED_OVERLAP`].
fn shared_keys(keys: &[ClientKeyUse]) -> Option<(&ClientKeyUse, &ClientKeyUse, time::Duration)> {
    let period = |k: &ClientKeyUse| Some((timestamp::parse(&k.first)?, timestamp::parse(&k.last)?));
    let mut best = None;
    for (i, a) in keys.iter().enumerate() {
        for b in keys.iter().skip(i + 1) {
            let (Some((a0, a1)), Some((b0, b1))) = (period(a), period(b)) else {
                continue;
            };
            let overlap = a1.min(b1) - a0.max(b0);
            if overlap > SHARED_OVERLAP && best.as_ref().is_none_or(|(_, _, o)| overlap > *o) {
                best = Some((a, b, overlap));
            }
        }
    }
    best
}

/// An active identity registered before the cadence's cutoff and not attested since.
fn unreviewed(item: &InventoryItem, cadence: u64, cutoff: &str) -> Option<Finding> {
    let due = item.state == LifecycleState::Active
        && item.created_at.as_str() < cutoff
        && item.last_reviewed.as_deref().is_none_or(|t| t < cutoff);
    due.then(|| {
        finding(
            FindingKind::Unreviewed,
            Severity::Low,
            &item.spiffe_id,
            item.plane.clone(),
            item.owner.clone(),
            format!("not attested in an access review for over {cadence} days (its plane's review_cadence_days); start one with `steward review start`"),
            json!({"last_reviewed": item.last_reviewed, "review_cadence_days": cadence}),
        )
    })
}

fn summarise(inventory: &[InventoryItem], findings: &[Finding], analysed: usize) -> PostureSummary {
    let mut s = PostureSummary {
        identities: inventory.len(),
        findings: findings.len(),
        analysed,
        ..Default::default()
    };
    for i in inventory {
        *s.by_state.entry(i.state.to_string()).or_default() += 1;
        if i.permissions.effective.is_none() && i.state != LifecycleState::Decommissioned {
            s.not_analysed += 1;
        }
    }
    for f in findings {
        *s.by_severity.entry(f.severity).or_default() += 1;
        *s.by_kind.entry(f.kind).or_default() += 1;
        for o in &f.owasp {
            *s.by_owasp.entry(o.clone()).or_default() += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(state: LifecycleState, created: &str, last_used: Option<&str>) -> InventoryItem {
        InventoryItem {
            spiffe_id: "spiffe://acme.example/x".into(),
            plane: "payments".into(),
            owner: "payments-team".into(),
            owner_removed: false,
            environment: "prod".into(),
            kind: IdentityKind::Service,
            state,
            created_at: created.into(),
            credentials: CredentialSummary::default(),
            last_used: last_used.map(str::to_owned),
            last_reviewed: None,
            permissions: PermissionSummary::default(),
            environments_used: Vec::new(),
            client_keys_used: Vec::new(),
        }
    }

    fn total(
        kind: &str,
        outcome: Option<&str>,
        env: &str,
        key: Option<&str>,
        n: i64,
        first: &str,
        last: &str,
    ) -> steward_store::UsageTotal {
        steward_store::UsageTotal {
            principal: "spiffe://acme.example/x".into(),
            kind: kind.into(),
            capability: (kind == "access.decision").then(|| "payments.charges".into()),
            action: Some(
                if kind == "access.decision" {
                    "read"
                } else {
                    "client_credentials"
                }
                .into(),
            ),
            outcome: outcome.map(str::to_owned),
            environment: Some(env.into()),
            credential: key.map(str::to_owned),
            count: n,
            first: first.into(),
            last: last.into(),
        }
    }

    /// NHI8/NHI9: use in another environment, refused or not, and client keys used side
    /// by side for days are findings; a key rotation's short overlap is not.
    #[test]
    fn other_environments_and_shared_keys() {
        let window = "2026-10-29T00:00:00Z";
        let mut u = Used::default();
        for t in [
            total(
                "access.decision",
                Some("allow"),
                "prod",
                None,
                40,
                "2026-11-01T00:00:00Z",
                "2026-11-27T00:00:00Z",
            ),
            total(
                "access.decision",
                Some("deny"),
                "staging",
                None,
                3,
                "2026-11-02T00:00:00Z",
                "2026-11-03T00:00:00Z",
            ),
            // Outside the window: not counted.
            total(
                "access.decision",
                Some("allow"),
                "dev",
                None,
                9,
                "2026-09-01T00:00:00Z",
                "2026-09-02T00:00:00Z",
            ),
            // k1 rotated to k2 with a two-hour overlap.
            total(
                "credential.issued",
                None,
                "prod",
                Some("k1"),
                30,
                "2026-11-01T00:00:00Z",
                "2026-11-10T02:00:00Z",
            ),
            total(
                "credential.issued",
                None,
                "prod",
                Some("k2"),
                30,
                "2026-11-10T00:00:00Z",
                "2026-11-27T00:00:00Z",
            ),
        ] {
            u.add(&t, window);
        }
        assert_eq!(u.permissions.len(), 1);
        assert_eq!(u.tokens, 60);
        assert_eq!(u.last.as_deref(), Some("2026-11-27T00:00:00Z"));
        let mut i = item(
            LifecycleState::Active,
            "2026-01-01T00:00:00Z",
            u.last.as_deref(),
        );
        i.environments_used = u.environments.clone().into_values().collect();
        i.client_keys_used = u.keys.clone().into_values().collect();
        assert_eq!(
            i.environments_used
                .iter()
                .map(|e| (e.environment.as_str(), e.allowed, e.denied, e.tokens))
                .collect::<Vec<_>>(),
            [("prod", 40, 0, 60), ("staging", 0, 3, 0)]
        );
        let f = run(&i, None);
        assert_eq!(kinds(&f), [FindingKind::CrossEnvironment]);
        assert_eq!(f[0].severity, Severity::Medium, "only refused attempts");
        assert!(f[0].owasp.iter().any(|o| o.starts_with("NHI8")));

        // A third key used alongside k2 for a week: shared; an allowed decision in
        // staging makes the environment finding high.
        for t in [
            total(
                "credential.issued",
                None,
                "prod",
                Some("k3"),
                5,
                "2026-11-15T00:00:00Z",
                "2026-11-22T00:00:00Z",
            ),
            total(
                "access.decision",
                Some("allow"),
                "staging",
                None,
                1,
                "2026-11-05T00:00:00Z",
                "2026-11-05T00:00:00Z",
            ),
        ] {
            u.add(&t, window);
        }
        i.environments_used = u.environments.into_values().collect();
        i.client_keys_used = u.keys.into_values().collect();
        let f = run(&i, None);
        assert_eq!(
            kinds(&f),
            [FindingKind::CrossEnvironment, FindingKind::SharedIdentity]
        );
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[1].evidence["overlap_hours"], 7 * 24);
        assert_eq!(f[1].evidence["keys"][0]["key"], "k2");
        assert_eq!(f[1].evidence["keys"][1]["key"], "k3");
        assert_eq!(f[1].owasp, ["NHI9:2025 NHI Reuse"]);
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    fn run(i: &InventoryItem, max_age: Option<u64>) -> Vec<Finding> {
        identity_findings(
            i,
            None,
            max_age,
            "2026-10-29T00:00:00Z",
            30,
            30,
            steward_model::Classification::Internal,
        )
    }

    #[test]
    fn stale_only_when_old_and_unused() {
        let old = "2026-01-01T00:00:00Z";
        assert_eq!(
            kinds(&run(&item(LifecycleState::Active, old, None), None)),
            [FindingKind::Stale]
        );
        let used = item(LifecycleState::Active, old, Some("2026-11-27T00:00:00Z"));
        assert!(run(&used, None).is_empty());
        let new = item(LifecycleState::Active, "2026-11-20T00:00:00Z", None);
        assert!(run(&new, None).is_empty(), "registered within the window");
        let suspended = item(LifecycleState::Suspended, old, None);
        assert!(run(&suspended, None).is_empty());
    }

    #[test]
    fn decommissioned_with_credentials_and_secrets_past_rotation() {
        let mut d = item(LifecycleState::Decommissioned, "2026-11-20T00:00:00Z", None);
        d.credentials.registered_keys = 1;
        let f = run(&d, None);
        assert_eq!(kinds(&f), [FindingKind::Orphaned]);
        assert_eq!(f[0].severity, Severity::High);
        let mut s = item(LifecycleState::Active, "2026-11-20T00:00:00Z", None);
        s.credentials.client_secret_age_days = Some(120);
        assert_eq!(kinds(&run(&s, Some(90))), [FindingKind::RotationOverdue]);
        assert_eq!(kinds(&run(&s, Some(365))), [FindingKind::StaticSecret]);
        assert!(
            run(&s, Some(90))[0]
                .owasp
                .iter()
                .any(|o| o.starts_with("NHI7"))
        );
    }

    #[test]
    fn unreviewed_within_the_cadence_only() {
        let mut i = item(LifecycleState::Active, "2026-01-01T00:00:00Z", None);
        let cutoff = "2026-08-30T00:00:00Z";
        assert!(unreviewed(&i, 90, cutoff).is_some());
        i.last_reviewed = Some("2026-10-01T00:00:00Z".into());
        assert!(unreviewed(&i, 90, cutoff).is_none());
        i.last_reviewed = Some("2026-05-01T00:00:00Z".into());
        assert_eq!(
            unreviewed(&i, 90, cutoff).map(|f| f.kind),
            Some(FindingKind::Unreviewed)
        );
    }
}
