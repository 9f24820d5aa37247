//! Token service credentials as stored. The control plane's signing keys: public JWK, the
//! private key sealed by the caller (the store never sees it in the clear), and the
//! rotation times; keys are never deleted, so an old `kid` in an evidence record can
//! always be looked up. And the static client secrets of legacy-key identities, as hashes.

use sqlx::Row;

use steward_api::JitApproval;

use crate::admin::{Actor, record_change};
use crate::secrets::SecretSlot;
use crate::{Store, StoreError};

const CLIENT_SECRET: SecretSlot = SecretSlot {
    table: "client_secrets",
    key: "spiffe_id",
    set_action: "client_secret.create",
    remove_action: "client_secret.revoke",
};

/// One signing key row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    /// The public JWK, as JSON text.
    pub public_jwk: String,
    /// The private key sealed under the key-encryption key.
    pub sealed_private: String,
    pub created_at: String,
    /// When a newer key took over; `None` for the signing key.
    pub retired_at: Option<String>,
    /// Until when the retired key still verifies and is published.
    pub publish_until: Option<String>,
}

const COLUMNS: &str = "kid, alg, public_jwk, sealed_private, created_at, retired_at, publish_until";

fn row(r: &sqlx::any::AnyRow) -> Result<SigningKeyRow, StoreError> {
    Ok(SigningKeyRow {
        kid: r.try_get("kid")?,
        alg: r.try_get("alg")?,
        public_jwk: r.try_get("public_jwk")?,
        sealed_private: r.try_get("sealed_private")?,
        created_at: r.try_get("created_at")?,
        retired_at: r.try_get("retired_at")?,
        publish_until: r.try_get("publish_until")?,
    })
}

async fn insert(conn: &mut sqlx::AnyConnection, k: &SigningKeyRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private, created_at, retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, NULL, NULL)",
    )
    .bind(&k.kid)
    .bind(&k.alg)
    .bind(&k.public_jwk)
    .bind(&k.sealed_private)
    .bind(&k.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Every signing key, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    /// Stores `first` as the signing key unless one exists (another replica may have won
    /// the race; its key is kept). Returns whether `first` was stored.
    pub async fn insert_first_signing_key(
        &self,
        first: &SigningKeyRow,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT kid FROM signing_keys WHERE retired_at IS NULL LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_some() {
            tx.commit().await?;
            return Ok(false);
        }
        insert(&mut tx, first).await?;
        record_change(
            self.backend,
            &mut tx,
            &Actor::system(),
            "keys.create",
            &first.kid,
            None,
            Some(serde_json::json!({"kid": first.kid, "alg": first.alg}).to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Makes `new` the signing key; the key it replaces is retired now and keeps verifying
    /// until `publish_until`. One transaction, recorded in the admin change log.
    pub async fn rotate_signing_key(
        &self,
        new: &SigningKeyRow,
        publish_until: &str,
        actor: &Actor,
    ) -> Result<Option<String>, StoreError> {
        self.rotate_signing_key_made_before(new, publish_until, None, actor)
            .await
            .map(|rotated| rotated.flatten())
    }

    /// [`Store::rotate_signing_key`] only if the signing key in force was made before
    /// `made_before` (a scheduled rotation): checked and done under the store's one write
    /// lock, so replicas sharing a database rotate once between them. `None` when it was
    /// not due; else the kid it replaced, if any.
    pub async fn rotate_signing_key_made_before(
        &self,
        new: &SigningKeyRow,
        publish_until: &str,
        made_before: Option<i64>,
        actor: &Actor,
    ) -> Result<Option<Option<String>>, StoreError> {
        let now = steward_model::timestamp::now();
        let mut tx = self.begin_write().await?;
        let current = sqlx::query("SELECT kid, created_at FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (old, made): (Option<String>, Option<String>) = match current {
            Some(r) => (Some(r.try_get("kid")?), Some(r.try_get("created_at")?)),
            None => (None, None),
        };
        if let Some(before) = made_before {
            let made = made.as_deref().and_then(steward_model::timestamp::to_unix);
            if made.is_some_and(|m| m >= before) {
                tx.commit().await?;
                return Ok(None);
            }
        }
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL",
        )
        .bind(&now)
        .bind(publish_until)
        .execute(&mut *tx)
        .await?;
        insert(&mut tx, new).await?;
        record_change(
            self.backend,
            &mut tx,
            actor,
            "keys.rotate",
            &new.kid,
            old.as_ref()
                .map(|k| serde_json::json!({"kid": k}).to_string()),
            Some(
                serde_json::json!({"kid": new.kid, "previous_verifies_until": publish_until})
                    .to_string(),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(old))
    }
}

/// A legacy-key identity's client secret, as stored: its hash and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecretRow {
    pub spiffe_id: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    pub created_at: String,
}

impl Store {
    /// Every client secret (hashes only).
    pub async fn client_secrets(&self) -> Result<Vec<ClientSecretRow>, StoreError> {
        let rows = sqlx::query("SELECT spiffe_id, secret_hash, created_at FROM client_secrets")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ClientSecretRow {
                    spiffe_id: r.try_get("spiffe_id")?,
                    secret_hash: r.try_get("secret_hash")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Replaces the identity's client secret with `secret_hash` (the old one stops
    /// working at once). Recorded in the admin change log without the hash.
    pub async fn set_client_secret(
        &self,
        spiffe_id: &str,
        secret_hash: &str,
        actor: &Actor,
    ) -> Result<String, StoreError> {
        self.replace_secret(
            &CLIENT_SECRET,
            spiffe_id,
            &[("secret_hash", secret_hash)],
            serde_json::Map::new(),
            actor,
        )
        .await
    }

    /// Removes the identity's client secret. Returns whether there was one.
    pub async fn revoke_client_secret(
        &self,
        spiffe_id: &str,
        actor: &Actor,
    ) -> Result<bool, StoreError> {
        self.remove_secret(&CLIENT_SECRET, spiffe_id, actor).await
    }
}

impl Store {
    /// Records an approval, with an admin change log entry (and its evidence event).
    pub async fn approve_jit(&self, a: &JitApproval, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO jit_approvals (id, workflow, requester, approved_by, approved_at, expires_at, note) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&a.id)
            .bind(&a.workflow)
            .bind(&a.requester)
            .bind(&a.approved_by)
            .bind(&a.approved_at)
            .bind(&a.expires_at)
            .bind(&a.note)
            .execute(&mut *tx)
            .await?;
        record_change(
            self.backend,
            &mut tx,
            actor,
            "workflow.approve",
            &a.workflow,
            None,
            serde_json::to_string(a).ok(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The approvals of `requester` for `workflow`, newest first.
    pub async fn jit_approvals(
        &self,
        workflow: &str,
        requester: &str,
    ) -> Result<Vec<JitApproval>, StoreError> {
        let rows = sqlx::query("SELECT id, workflow, requester, approved_by, approved_at, expires_at, note FROM jit_approvals WHERE workflow = $1 AND requester = $2 ORDER BY approved_at DESC")
            .bind(workflow)
            .bind(requester)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(JitApproval {
                    id: r.try_get("id")?,
                    workflow: r.try_get("workflow")?,
                    requester: r.try_get("requester")?,
                    approved_by: r.try_get("approved_by")?,
                    approved_at: r.try_get("approved_at")?,
                    expires_at: r.try_get("expires_at")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }
}
