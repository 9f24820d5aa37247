//! Policy versions: each distinct policy bundle an apply or a rollback publishes,
//! append-only, so versions can be listed, diffed and rolled back, and each decision can
//! name the version that made it.

use sqlx::Row;

use steward_governance::PolicyBundle;

use steward_api::PolicyVersion;

use crate::admin::{Actor, record_change};
use crate::rows::{from_json, json};
use crate::{Store, StoreError};

const COLUMNS: &str = "version, config_version, created_at, created_by, reason, digest";

fn version_row(r: &sqlx::any::AnyRow) -> Result<PolicyVersion, StoreError> {
    Ok(PolicyVersion {
        version: r.try_get("version")?,
        config_version: r.try_get("config_version")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        reason: r.try_get("reason")?,
        digest: r.try_get("digest")?,
    })
}

impl Store {
    /// The newest policy versions first.
    pub async fn policy_versions(&self, limit: i64) -> Result<Vec<PolicyVersion>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM policy_versions ORDER BY version DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_row).collect()
    }

    /// A policy version and its bundle; `None` asks for the current one. `Ok(None)` when
    /// there is no such version (or none was ever published).
    pub async fn policy_bundle(
        &self,
        version: Option<i64>,
    ) -> Result<Option<(PolicyVersion, PolicyBundle)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_bundle(&mut conn, version).await
    }

    /// Publishes an earlier version's bundle again as a new version, and puts its files
    /// back in the `policies` table so plans compare the repository against it. The
    /// caller has compiled the bundle against the current registry first. With
    /// `expected_current`, refuses if another publication came in between.
    pub async fn rollback_policy(
        &self,
        to: i64,
        expected_current: Option<i64>,
        actor: &Actor,
    ) -> Result<PolicyVersion, StoreError> {
        let mut tx = self.begin_write().await?;
        let current = load_bundle(&mut tx, None).await?;
        let current_version = current.as_ref().map(|(v, _)| v.version).unwrap_or(0);
        if let Some(expected) = expected_current
            && expected != current_version
        {
            return Err(StoreError::VersionConflict {
                expected,
                actual: current_version,
            });
        }
        let Some((_, bundle)) = load_bundle(&mut tx, Some(to)).await? else {
            return Err(StoreError::NotFound {
                kind: "policy version",
                id: to.to_string(),
            });
        };
        sqlx::query("DELETE FROM policies")
            .execute(&mut *tx)
            .await?;
        for p in bundle.policies.values() {
            insert_policy_file(&mut tx, p).await?;
        }
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM config_versions")
            .fetch_one(&mut *tx)
            .await?;
        let config_version: i64 = row.try_get("v")?;
        let published = insert_version(
            &mut tx,
            &bundle,
            config_version,
            actor,
            &format!("rollback to {to}"),
        )
        .await?;
        record_change(
            self.backend,
            &mut tx,
            actor,
            "policy.rollback",
            &format!("policy version {}", published.version),
            Some(serde_json::json!({ "policy_version": current_version }).to_string()),
            Some(
                serde_json::json!({ "policy_version": published.version, "copy_of": to })
                    .to_string(),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(published)
    }
}

pub(crate) async fn load_bundle(
    conn: &mut sqlx::AnyConnection,
    version: Option<i64>,
) -> Result<Option<(PolicyVersion, PolicyBundle)>, StoreError> {
    let row = match version {
        Some(v) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS}, body FROM policy_versions WHERE version = $1"
            )))
            .bind(v)
            .fetch_optional(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS}, body FROM policy_versions ORDER BY version DESC LIMIT 1"
            )))
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(r) = row else { return Ok(None) };
    let body: String = r.try_get("body")?;
    Ok(Some((version_row(&r)?, from_json("policy bundle", &body)?)))
}

/// Records `bundle` as a new policy version unless it equals the current one.
pub(crate) async fn publish_if_changed(
    conn: &mut sqlx::AnyConnection,
    bundle: &PolicyBundle,
    config_version: i64,
    actor: &Actor,
) -> Result<Option<PolicyVersion>, StoreError> {
    let current = load_bundle(conn, None).await?;
    if current
        .as_ref()
        .is_some_and(|(v, _)| v.digest == bundle.digest())
    {
        return Ok(None);
    }
    insert_version(conn, bundle, config_version, actor, "apply")
        .await
        .map(Some)
}

async fn insert_version(
    conn: &mut sqlx::AnyConnection,
    bundle: &PolicyBundle,
    config_version: i64,
    actor: &Actor,
    reason: &str,
) -> Result<PolicyVersion, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM policy_versions")
        .fetch_one(&mut *conn)
        .await?;
    let latest: i64 = row.try_get("v")?;
    let v = PolicyVersion {
        version: latest + 1,
        config_version,
        created_at: steward_model::timestamp::now(),
        created_by: format!("{} ({})", actor.name, actor.credential_id),
        reason: reason.to_owned(),
        digest: bundle.digest(),
    };
    sqlx::query("INSERT INTO policy_versions (version, config_version, created_at, created_by, reason, digest, body) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(v.version)
        .bind(v.config_version)
        .bind(&v.created_at)
        .bind(&v.created_by)
        .bind(&v.reason)
        .bind(&v.digest)
        .bind(json(bundle))
        .execute(&mut *conn)
        .await?;
    Ok(v)
}

/// Stores one policy file of the repository (inside the caller's transaction).
pub(crate) async fn insert_policy_file(
    conn: &mut sqlx::AnyConnection,
    p: &steward_governance::PolicyFile,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO policies (path, plane, text) VALUES ($1, $2, $3)")
        .bind(&p.path)
        .bind(p.plane.to_string())
        .bind(&p.text)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
