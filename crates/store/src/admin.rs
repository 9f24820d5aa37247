//! Admin credentials and the append-only admin change log.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use steward_model::{AdminRole, PlaneId, Role};

use steward_api::AdminChange;

use crate::{Store, StoreError};

/// Who is making a change, as recorded in the admin change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The admin credential's id, or `system` for the control plane itself.
    pub credential_id: String,
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// The control plane rotating its signing key on schedule
    /// (`tokens.rotation_period_secs`), as the change log names it.
    pub fn rotation() -> Self {
        Self {
            credential_id: "system".into(),
            name: "steward (scheduled key rotation)".into(),
            role: Role::CentralAdmin,
        }
    }

    /// The control plane acting on its own (bootstrap).
    pub fn system() -> Self {
        Self {
            credential_id: "system".into(),
            name: "steward".into(),
            role: Role::CentralAdmin,
        }
    }

    /// `name (credential id)`, how the actor appears in logs and evidence.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.credential_id)
    }
}

/// A stored admin credential; the token itself is never stored, only its SHA-256. Not
/// serializable: the API shows [`CredentialRecord::public`], which has no hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub token_hash: String,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
    /// When it stops working (stored time form); `None` never expires.
    pub expires_at: Option<String>,
}

impl CredentialRecord {
    /// The credential as the API shows it.
    pub fn public(&self) -> steward_api::Credential {
        steward_api::Credential {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role.clone(),
            created_at: self.created_at.clone(),
            created_by: self.created_by.clone(),
            revoked_at: self.revoked_at.clone(),
            expires_at: self.expires_at.clone(),
        }
    }
}

/// What to store for a new credential.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub token_hash: String,
    /// When it stops working (stored time form); `None` never expires.
    pub expires_at: Option<String>,
}

/// Appends to the admin change log inside the caller's transaction, so the record and
/// the change it describes commit together or not at all.
pub(crate) async fn record_change(
    backend: crate::Backend,
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
) -> Result<(), StoreError> {
    let at = steward_model::timestamp::now();
    sqlx::query("INSERT INTO admin_changes (at, actor, role, action, target, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&at)
        .bind(actor.label())
        .bind(actor.role.to_string())
        .bind(action)
        .bind(target)
        .bind(before.clone())
        .bind(after.clone())
        .execute(&mut *conn)
        .await?;
    let event = admin_event(actor, action, target, before, after, at);
    crate::evidence::append_in_tx(backend, conn, std::slice::from_ref(&event)).await?;
    if backend == crate::Backend::Postgres {
        // Delivered to every replica when the transaction commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::CHANGE_CHANNEL)
            .bind(action)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The evidence event for an admin change: lifecycle changes are about the
/// identity, applies about the configuration, everything else about the admin.
fn admin_event(
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
    at: String,
) -> steward_audit::Event {
    use steward_audit::{Event, EventKind};
    let kind = if action == "config.apply" {
        EventKind::ConfigApplied
    } else if action.starts_with("identity.") {
        EventKind::IdentityLifecycle
    } else if action.starts_with("revocation.") {
        EventKind::RevocationIssued
    } else {
        EventKind::AdminAction
    };
    let mut e = Event::new(kind, uuid::Uuid::now_v7().to_string(), at);
    let parse = |v: Option<String>| {
        v.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
            .unwrap_or(serde_json::Value::Null)
    };
    e.action = Some(action.to_owned());
    e.actor_chain = vec![actor.label()];
    e.plane = actor.role.plane().map(|p| p.to_string());
    e.principal = Some(
        if kind == EventKind::IdentityLifecycle || action == "revocation.identity" {
            target.to_owned()
        } else {
            actor.label()
        },
    );
    e.details = serde_json::json!({ "target": target, "role": actor.role.to_string(), "before": parse(before), "after": parse(after) });
    e
}

fn credential(r: &sqlx::any::AnyRow) -> Result<CredentialRecord, StoreError> {
    let kind: String = r.try_get("role")?;
    let plane: Option<String> = r.try_get("plane")?;
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "admin credential role",
        detail,
    };
    let role = match (AdminRole::parse(&kind), plane) {
        (Some(AdminRole::CentralAdmin), _) => Role::CentralAdmin,
        (Some(AdminRole::Auditor), _) => Role::Auditor,
        (Some(AdminRole::Ingestor), _) => Role::Ingestor,
        (Some(AdminRole::PlaneAdmin), Some(p)) => Role::PlaneAdmin {
            plane: PlaneId::new(p.clone()).map_err(|_| corrupt(p))?,
        },
        _ => return Err(corrupt(kind)),
    };
    Ok(CredentialRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role,
        token_hash: r.try_get("token_hash")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        revoked_at: r.try_get("revoked_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

const CREDENTIAL_COLUMNS: &str =
    "id, name, role, plane, token_hash, created_at, created_by, revoked_at, expires_at";

impl Store {
    /// Whether any admin credential exists (bootstrap creates the first).
    pub async fn has_credentials(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM admin_credentials")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Stores a credential and logs its creation.
    pub async fn create_credential(
        &self,
        new: &NewCredential,
        actor: &Actor,
    ) -> Result<CredentialRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Role::PlaneAdmin { plane } = &new.role {
            let exists = sqlx::query("SELECT 1 AS x FROM planes WHERE id = $1")
                .bind(plane.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() && !plane.is_root() {
                return Err(StoreError::NotFound {
                    kind: "plane",
                    id: plane.to_string(),
                });
            }
        }
        sqlx::query("INSERT INTO admin_credentials (id, name, role, plane, token_hash, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&new.id)
            .bind(&new.name)
            .bind(new.role.kind().as_str())
            .bind(new.role.plane().map(|p| p.to_string()))
            .bind(&new.token_hash)
            .bind(steward_model::timestamp::now())
            .bind(actor.label())
            .bind(new.expires_at.as_deref())
            .execute(&mut *tx)
            .await?;
        let after =
            serde_json::json!({ "name": new.name, "role": new.role, "expires_at": new.expires_at });
        record_change(
            self.backend,
            &mut tx,
            actor,
            "credential.create",
            &new.id,
            None,
            Some(after.to_string()),
        )
        .await?;
        tx.commit().await?;
        self.credential(&new.id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "credential",
                id: new.id.clone(),
            })
    }

    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM admin_credentials WHERE id = $1"
        ));
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(credential).transpose()
    }

    pub async fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM admin_credentials ORDER BY created_at, id"
        ));
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(credential)
            .collect()
    }

    /// Revokes a credential; it stops working on its next use.
    pub async fn revoke_credential(&self, id: &str, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE admin_credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(steward_model::timestamp::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "active credential",
                id: id.to_owned(),
            });
        }
        record_change(
            self.backend,
            &mut tx,
            actor,
            "credential.revoke",
            id,
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The admin change log from `after` (exclusive), oldest first.
    pub async fn admin_changes(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AdminChange>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, actor, role, action, target, before, after FROM admin_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let parse = |v: Option<String>| {
            v.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
        };
        rows.iter()
            .map(|r| {
                Ok(AdminChange {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    before: parse(r.try_get("before")?),
                    after: parse(r.try_get("after")?),
                })
            })
            .collect()
    }
}
