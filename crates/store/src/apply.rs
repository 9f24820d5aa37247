//! Applying a governance repository: one transaction, one new configuration version.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use steward_governance::{Change, Desired, ObjectKind, Op, Plan, State, plan};
use steward_model::{Identity, LifecycleState, RevocationKind};

use crate::admin::{Actor, record_change};
use crate::registry::{ManagedBy, insert_identities, load_state};
use crate::rows::json;
use crate::{Store, StoreError};

/// The outcome of an apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The configuration version now in force (unchanged when the plan was empty).
    pub version: i64,
    /// Whether anything changed.
    pub changed: bool,
    pub plan: Plan,
}

impl Store {
    /// Plans `desired` against the current state without changing anything.
    pub async fn plan(&self, desired: &Desired) -> Result<(i64, Plan), StoreError> {
        let state = self.load_state().await?;
        let version = self.config_version().await?;
        Ok((version, plan(&state, desired)?))
    }

    /// Makes the registry match `desired` atomically: the plan is computed and applied
    /// inside one write transaction together with the new version row and the admin
    /// change record. With `expected_version`, refuses if another apply came first.
    /// An identity removed from the repository is decommissioned and revoked (its tokens
    /// die everywhere) in the same transaction; see [`Store::apply_revoking_until`].
    pub async fn apply(
        &self,
        desired: &Desired,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> Result<Applied, StoreError> {
        self.apply_revoking_until(desired, expected_version, actor, None)
            .await
    }

    /// [`Store::apply`], with the revocations of decommissioned identities kept in force
    /// until `revocation_until` (Unix seconds: when every token issued before now has
    /// expired) instead of for ever.
    pub async fn apply_revoking_until(
        &self,
        desired: &Desired,
        expected_version: Option<i64>,
        actor: &Actor,
        revocation_until: Option<i64>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM config_versions")
            .fetch_one(&mut *tx)
            .await?;
        let current_version: i64 = row.try_get("v")?;
        if let Some(expected) = expected_version
            && expected != current_version
        {
            return Err(StoreError::VersionConflict {
                expected,
                actual: current_version,
            });
        }
        let started = std::time::Instant::now();
        let state = load_state(&mut tx).await?;
        let loaded = started.elapsed();
        let plan = plan(&state, desired)?;
        let planned = started.elapsed();
        if plan.is_empty() {
            return Ok(Applied {
                version: current_version,
                changed: false,
                plan,
            });
        }
        let now = steward_model::timestamp::now();
        let ctx = ApplyContext {
            backend: self.backend,
            version: current_version + 1,
            now: &now,
            revocation_until,
            actor,
        };
        let mut new_identities: Vec<Identity> = Vec::new();
        for change in &plan.changes {
            write_change(&mut tx, change, desired, &state, &ctx, &mut new_identities).await?;
        }
        insert_identities(
            self.backend,
            &mut tx,
            &new_identities,
            ManagedBy::Repository,
            &now,
        )
        .await?;

        let version = current_version + 1;
        let summary = serde_json::to_value(&plan.summary).unwrap_or_default();
        sqlx::query("INSERT INTO config_versions (version, applied_at, applied_by, digest, summary) VALUES ($1, $2, $3, $4, $5)")
            .bind(version)
            .bind(&now)
            .bind(format!("{} ({})", actor.name, actor.credential_id))
            .bind(desired.digest())
            .bind(summary.to_string())
            .execute(&mut *tx)
            .await?;
        let policy_version =
            crate::policy::publish_if_changed(&mut tx, &desired.policy_bundle(), version, actor)
                .await?
                .map(|v| v.version);
        let after = serde_json::json!({ "version": version, "summary": summary, "policy_version": policy_version });
        let before = serde_json::json!({ "version": current_version });
        record_change(
            self.backend,
            &mut tx,
            actor,
            "config.apply",
            &format!("config version {version}"),
            Some(before.to_string()),
            Some(after.to_string()),
        )
        .await?;
        // Each exception granted or changed by this apply is evidence of its own,
        // after the apply's own event.
        let granted: Vec<steward_audit::Event> = plan
            .changes
            .iter()
            .filter(|c| c.kind == ObjectKind::Exception && matches!(c.op, Op::Create | Op::Update))
            .filter_map(|c| desired.exceptions.get(&c.id))
            .map(|e| exception_event(e, actor, policy_version, &now))
            .collect();
        if !granted.is_empty() {
            crate::evidence::append_in_tx(self.backend, &mut tx, &granted).await?;
        }
        let written = started.elapsed();
        tx.commit().await?;
        tracing::debug!(
            load_ms = loaded.as_millis() as u64,
            plan_ms = (planned - loaded).as_millis() as u64,
            write_ms = (written - planned).as_millis() as u64,
            commit_ms = (started.elapsed() - written).as_millis() as u64,
            "apply transaction"
        );
        Ok(Applied {
            version,
            changed: true,
            plan,
        })
    }
}

/// What every change of one apply shares.
struct ApplyContext<'a> {
    backend: crate::Backend,
    /// The configuration version this apply makes.
    version: i64,
    now: &'a str,
    revocation_until: Option<i64>,
    actor: &'a Actor,
}

/// Writes one planned change inside the apply's transaction. Identities to create are
/// collected in `new_identities` and inserted in batches afterwards.
async fn write_change(
    tx: &mut sqlx::AnyConnection,
    change: &Change,
    desired: &Desired,
    state: &State,
    ctx: &ApplyContext<'_>,
    new_identities: &mut Vec<Identity>,
) -> Result<(), StoreError> {
    let id = change.id.as_str();
    match (change.kind, change.op) {
        (ObjectKind::Settings, _) => {
            sqlx::query("DELETE FROM root_settings")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO root_settings (id, body) VALUES (1, $1)")
                .bind(json(&desired.root_settings))
                .execute(&mut *tx)
                .await?;
        }
        (ObjectKind::Plane, Op::Delete) => delete(&mut *tx, "planes", "id", id).await?,
        (ObjectKind::Plane, _) => {
            let Some(p) = desired.planes.get(id) else {
                return Ok(());
            };
            delete(&mut *tx, "planes", "id", id).await?;
            sqlx::query("INSERT INTO planes (id, parent, name, description, settings) VALUES ($1, $2, $3, $4, $5)")
                .bind(p.id.to_string())
                .bind(p.parent.as_ref().map(|x| x.to_string()))
                .bind(&p.name)
                .bind(&p.description)
                .bind(json(&p.settings))
                .execute(&mut *tx)
                .await?;
        }
        (ObjectKind::Owner, Op::Remove) => {
            sqlx::query("UPDATE owners SET removed_at = $1 WHERE id = $2")
                .bind(ctx.now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        (ObjectKind::Owner, _) => {
            let Some(o) = desired.owners.get(id) else {
                return Ok(());
            };
            delete(&mut *tx, "owners", "id", id).await?;
            sqlx::query("INSERT INTO owners (id, name, email, kind) VALUES ($1, $2, $3, $4)")
                .bind(&o.id)
                .bind(&o.name)
                .bind(&o.email)
                .bind(o.kind.as_str())
                .execute(&mut *tx)
                .await?;
        }
        (ObjectKind::Capability, Op::Delete) => delete(&mut *tx, "capabilities", "id", id).await?,
        (ObjectKind::Capability, _) => {
            let Some(c) = desired.capabilities.get(id) else {
                return Ok(());
            };
            delete(&mut *tx, "capabilities", "id", id).await?;
            upsert_body(&mut *tx, "capabilities", id, c.plane.as_str(), json(c)).await?;
        }
        (ObjectKind::Issuer, Op::Delete) => delete(&mut *tx, "issuers", "id", id).await?,
        (ObjectKind::Issuer, _) => {
            let Some(i) = desired.issuers.get(id) else {
                return Ok(());
            };
            delete(&mut *tx, "issuers", "id", id).await?;
            upsert_body(&mut *tx, "issuers", id, i.plane.as_str(), json(i)).await?;
        }
        (ObjectKind::Policy, Op::Delete) => delete(&mut *tx, "policies", "path", id).await?,
        (ObjectKind::Policy, _) => {
            let Some(p) = desired.policies.get(id) else {
                return Ok(());
            };
            delete(&mut *tx, "policies", "path", id).await?;
            crate::policy::insert_policy_file(&mut *tx, p).await?;
        }
        // Kept in the policy bundle, written below.
        (ObjectKind::ContextAttribute | ObjectKind::Exception | ObjectKind::Workflow, _) => {}
        (ObjectKind::Identity, Op::Decommission) => {
            // Decommissioning revokes: its keys stop, and its outstanding tokens
            // die at every point once the epoch is pushed.
            let reason = format!(
                "removed from the governance repository (configuration version {})",
                ctx.version
            );
            decommission_in_tx(
                ctx.backend,
                &mut *tx,
                id,
                reason,
                ctx.revocation_until,
                ctx.actor,
            )
            .await?;
        }
        (ObjectKind::Identity, op) => {
            let Some(want) = desired.identities.get(id) else {
                return Ok(());
            };
            let current_state = state.identities.get(id).map(|s| s.identity.state);
            let identity = want.to_identity(
                want.state
                    .or(current_state)
                    .unwrap_or(LifecycleState::Active),
            );
            if op == Op::Create {
                new_identities.push(identity);
            } else {
                let decommissioned = identity.state == LifecycleState::Decommissioned
                    && current_state != Some(LifecycleState::Decommissioned);
                update_identity(&mut *tx, &identity, ctx.now).await?;
                if decommissioned {
                    // Pinned to `decommissioned` in the repository: revoked as
                    // when it is removed from it.
                    let reason = format!(
                        "decommissioned in the governance repository (configuration version {})",
                        ctx.version
                    );
                    decommission_in_tx(
                        ctx.backend,
                        &mut *tx,
                        id,
                        reason,
                        ctx.revocation_until,
                        ctx.actor,
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

async fn delete(
    conn: &mut sqlx::AnyConnection,
    table: &'static str,
    key: &'static str,
    id: &str,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE {key} = $1"
    )))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn upsert_body(
    conn: &mut sqlx::AnyConnection,
    table: &'static str,
    id: &str,
    plane: &str,
    body: String,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (id, plane, body) VALUES ($1, $2, $3)"
    )))
    .bind(id)
    .bind(plane)
    .bind(body)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn update_identity(
    conn: &mut sqlx::AnyConnection,
    i: &Identity,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE identities SET plane = $1, owner = $2, environment = $3, kind = $4, classification = $5, description = $6, labels = $7, state = $8, intended = $9, credentials = $10, managed = 1, updated_at = $11 WHERE spiffe_id = $12",
    )
    .bind(i.plane.to_string())
    .bind(&i.owner)
    .bind(&i.environment)
    .bind(i.kind.as_str())
    .bind(i.classification.as_str())
    .bind(&i.description)
    .bind(json(&i.labels))
    .bind(i.state.as_str())
    .bind(json(&i.intended))
    .bind(json(&i.credentials))
    .bind(now)
    .bind(i.spiffe_id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Records that exception `e` expired: its `exception.expired` event, once whichever
    /// replica asks first (the `exception_expiries` row is inserted in the same
    /// transaction). Returns whether this call recorded it.
    pub async fn record_exception_expiry(
        &self,
        e: &steward_model::PolicyException,
        policy_version: i64,
    ) -> Result<bool, StoreError> {
        let expires_at = steward_model::timestamp::format(e.expires_at);
        // Rows recorded before times had one stored form hold the plain RFC 3339 text;
        // either form means this expiry is on record.
        let legacy = e
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let now = steward_model::timestamp::now();
        let mut tx = self.begin_write().await?;
        let known = sqlx::query(
            "SELECT 1 AS x FROM exception_expiries WHERE id = $1 AND (expires_at = $2 OR expires_at = $3)",
        )
        .bind(&e.id)
        .bind(&expires_at)
        .bind(&legacy)
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_some() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO exception_expiries (id, expires_at, recorded_at) VALUES ($1, $2, $3)",
        )
        .bind(&e.id)
        .bind(&expires_at)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let mut ev = steward_audit::Event::new(
            steward_audit::EventKind::ExceptionExpired,
            uuid::Uuid::now_v7().to_string(),
            now,
        );
        ev.principal = Some(e.principal.to_string());
        ev.destination.capability = Some(e.capability.to_string());
        ev.decision.exception = Some(e.id.clone());
        ev.policy_version = Some(policy_version);
        ev.details = serde_json::json!({
            "exception": e.id,
            "lifts": e.lifts,
            "expires_at": expires_at,
            "owner": e.owner,
            "ticket": e.ticket,
        });
        crate::evidence::append_in_tx(self.backend, &mut tx, &[ev]).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Decommissions identity `id` through an identity revocation in the apply's transaction,
/// in force until `until` (for ever when `None`).
async fn decommission_in_tx(
    backend: crate::Backend,
    conn: &mut sqlx::AnyConnection,
    id: &str,
    reason: String,
    until: Option<i64>,
    actor: &Actor,
) -> Result<(), StoreError> {
    crate::revocations::revoke_in_tx(
        backend,
        conn,
        &crate::RevokeRequest {
            kind: RevocationKind::Identity,
            target: id.to_owned(),
            reason,
            revoked_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            until,
            identity: steward_model::RevokedIdentity::Decommissioned,
        },
        actor,
    )
    .await
    .map(|_| ())
}

/// `exception.granted`: who published which exception, lifting what, until when.
fn exception_event(
    e: &steward_model::PolicyException,
    actor: &Actor,
    policy_version: Option<i64>,
    now: &str,
) -> steward_audit::Event {
    let mut ev = steward_audit::Event::new(
        steward_audit::EventKind::ExceptionGranted,
        uuid::Uuid::now_v7().to_string(),
        now.to_owned(),
    );
    ev.principal = Some(e.principal.to_string());
    ev.actor_chain = vec![actor.label()];
    ev.destination.capability = Some(e.capability.to_string());
    ev.decision.exception = Some(e.id.clone());
    ev.policy_version = policy_version;
    ev.details = serde_json::json!({
        "exception": e.id,
        "lifts": e.lifts,
        "expires_at": steward_model::timestamp::format(e.expires_at),
        "owner": e.owner,
        "ticket": e.ticket,
        "reason": e.reason,
    });
    ev
}
