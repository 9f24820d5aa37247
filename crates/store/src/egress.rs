//! Egress secrets: third-party API keys the gateway injects, sealed by the caller
//! under the key-encryption key; the store never sees them in clear.

use sqlx::Row;

use crate::secrets::SecretSlot;
use crate::{Actor, Store, StoreError};

const EGRESS_SECRET: SecretSlot = SecretSlot {
    table: "egress_secrets",
    key: "id",
    set_action: "egress_secret.set",
    remove_action: "egress_secret.delete",
};

/// One egress secret as stored (sealed). Not serializable: listings show
/// [`EgressSecretRow::public`], which has no value, not even sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressSecretRow {
    pub id: String,
    pub sealed: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
}

impl EgressSecretRow {
    /// The secret as the API lists it.
    pub fn public(&self) -> steward_api::EgressSecret {
        steward_api::EgressSecret {
            id: self.id.clone(),
            description: self.description.clone(),
            created_at: self.created_at.clone(),
            created_by: self.created_by.clone(),
        }
    }
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
        let mut described = serde_json::Map::new();
        described.insert("description".into(), description.into());
        self.replace_secret(
            &EGRESS_SECRET,
            id,
            &[
                ("sealed", sealed),
                ("description", description),
                ("created_by", &actor.credential_id),
            ],
            described,
            actor,
        )
        .await
    }

    /// Deletes an egress secret. Returns whether there was one.
    pub async fn delete_egress_secret(&self, id: &str, actor: &Actor) -> Result<bool, StoreError> {
        self.remove_secret(&EGRESS_SECRET, id, actor).await
    }
}
