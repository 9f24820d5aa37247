//! Egress secrets: third-party API keys the gateway injects (R17), sealed by the caller
//! under the key-encryption key; the store never sees them in clear.

use sqlx::Row;

use crate::admin::record_change;
use crate::{Actor, Store, StoreError};

/// One egress secret as stored (sealed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EgressSecretRow {
    pub id: String,
    /// The sealed value; `skip` so listings never carry it, even sealed.
    #[serde(skip)]
    pub sealed: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
}

fn row(r: &sqlx::any::AnyRow) -> Result<EgressSecretRow, StoreError> {
    Ok(EgressSecretRow {
        id: r.try_get("id")?,
        sealed: r.try_get("sealed")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

impl Store {
    /// Every egress secret, by id.
    pub async fn egress_secrets(&self) -> Result<Vec<EgressSecretRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, sealed, description, created_at, created_by FROM egress_secrets ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    pub async fn egress_secret(&self, id: &str) -> Result<Option<EgressSecretRow>, StoreError> {
        let found = sqlx::query(
            "SELECT id, sealed, description, created_at, created_by FROM egress_secrets WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        found.as_ref().map(row).transpose()
    }

    /// Creates or replaces an egress secret (a rotation: the gateways pick the new value
    /// up on their next refresh). Recorded in the change log without the value.
    pub async fn set_egress_secret(
        &self,
        id: &str,
        sealed: &str,
        description: &str,
        actor: &Actor,
    ) -> Result<String, StoreError> {
        let now = steward_model::timestamp::now();
        let mut tx = self.begin_write().await?;
        let replaced = sqlx::query("DELETE FROM egress_secrets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO egress_secrets (id, sealed, description, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(sealed)
        .bind(description)
        .bind(&now)
        .bind(&actor.credential_id)
        .execute(&mut *tx)
        .await?;
        record_change(
            self.backend,
            &mut tx,
            actor,
            "egress_secret.set",
            id,
            (replaced > 0).then(|| serde_json::json!({"replaced": true}).to_string()),
            Some(serde_json::json!({"created_at": now, "description": description}).to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(now)
    }

    /// Deletes an egress secret. Returns whether there was one.
    pub async fn delete_egress_secret(&self, id: &str, actor: &Actor) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM egress_secrets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if gone {
            record_change(
                self.backend,
                &mut tx,
                actor,
                "egress_secret.delete",
                id,
                None,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }
}
