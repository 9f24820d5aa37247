//! The one way a stored secret is replaced or removed: identities' client secrets (kept
//! as hashes) and egress secrets (kept sealed) differ in their columns, not in how a
//! rotation works — the old row goes and the new one lands in one transaction, and the
//! change log records that it happened, never the value.

use sqlx::AssertSqlSafe;

use crate::admin::{Actor, record_change};
use crate::{Store, StoreError};

/// Where one kind of secret is kept, and the change-log actions that name its changes.
/// Its names are constants of this crate, never input: they are the only text spliced
/// into the statements below.
pub(crate) struct SecretSlot {
    pub table: &'static str,
    /// The column that names whose secret a row is.
    pub key: &'static str,
    pub set_action: &'static str,
    pub remove_action: &'static str,
}

impl SecretSlot {
    fn delete(&self) -> String {
        format!("DELETE FROM {} WHERE {} = $1", self.table, self.key)
    }
}

impl Store {
    /// Replaces the secret under `id` with one row of `columns` (besides the key and
    /// `created_at`, which is now). `described` is what the change log keeps of it, with
    /// the time added. Returns the time it was created.
    pub(crate) async fn replace_secret(
        &self,
        slot: &SecretSlot,
        id: &str,
        columns: &[(&'static str, &str)],
        mut described: serde_json::Map<String, serde_json::Value>,
        actor: &Actor,
    ) -> Result<String, StoreError> {
        let now = steward_model::timestamp::now();
        let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let placeholders: Vec<String> = (3..3 + columns.len()).map(|n| format!("${n}")).collect();
        let insert = format!(
            "INSERT INTO {} ({}, created_at{}{}) VALUES ($1, $2{}{})",
            slot.table,
            slot.key,
            if names.is_empty() { "" } else { ", " },
            names.join(", "),
            if placeholders.is_empty() { "" } else { ", " },
            placeholders.join(", "),
        );
        let mut tx = self.begin_write().await?;
        let replaced = sqlx::query(AssertSqlSafe(slot.delete()))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let mut query = sqlx::query(AssertSqlSafe(insert)).bind(id).bind(&now);
        for (_, value) in columns {
            query = query.bind(*value);
        }
        query.execute(&mut *tx).await?;
        described.insert("created_at".into(), now.clone().into());
        record_change(
            self.backend,
            &mut tx,
            actor,
            slot.set_action,
            id,
            (replaced > 0).then(|| serde_json::json!({"replaced": true}).to_string()),
            Some(serde_json::Value::Object(described).to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(now)
    }

    /// Removes the secret under `id`. Returns whether there was one (only a removal is
    /// recorded).
    pub(crate) async fn remove_secret(
        &self,
        slot: &SecretSlot,
        id: &str,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query(AssertSqlSafe(slot.delete()))
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
                slot.remove_action,
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
