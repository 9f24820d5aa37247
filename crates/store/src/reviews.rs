//! Access review campaigns: a campaign lists identities with the effective
//! permissions they had when it started; each is attested keep, reduce or revoke. Every
//! attestation is a change-log entry and a `review.attested` evidence event, in the same
//! transaction.

use sqlx::{AssertSqlSafe, Row};

use steward_api::{Campaign, ReviewItem};

use crate::admin::Actor;
use crate::rows::{from_json, json};
use crate::{Store, StoreError};

/// A new campaign's items: (spiffe_id, plane, owner, permissions).
pub type NewItem = (String, String, String, Vec<String>);

const ITEM_COLUMNS: &str = "campaign_id, spiffe_id, plane, owner, permissions, decision, reduce, note, decided_by, decided_at";

fn item(r: &sqlx::any::AnyRow) -> Result<ReviewItem, StoreError> {
    let permissions: String = r.try_get("permissions")?;
    let reduce: Option<String> = r.try_get("reduce")?;
    Ok(ReviewItem {
        campaign_id: r.try_get("campaign_id")?,
        spiffe_id: r.try_get("spiffe_id")?,
        plane: r.try_get("plane")?,
        owner: r.try_get("owner")?,
        permissions: from_json("review permissions", &permissions)?,
        decision: r.try_get("decision")?,
        reduce: reduce
            .map(|t| from_json("review reduction", &t))
            .transpose()?
            .unwrap_or_default(),
        note: r.try_get("note")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
    })
}

impl Store {
    /// Creates a campaign with its items, recorded in the change log.
    pub async fn create_campaign(
        &self,
        id: &str,
        name: &str,
        plane: Option<&str>,
        due_at: &str,
        items: &[NewItem],
        actor: &Actor,
    ) -> Result<Campaign, StoreError> {
        let now = steward_model::timestamp::now();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO review_campaigns (id, name, plane, created_at, created_by, due_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(name)
            .bind(plane)
            .bind(&now)
            .bind(actor.label())
            .bind(due_at)
            .execute(&mut *tx)
            .await?;
        for (spiffe_id, item_plane, owner, permissions) in items {
            sqlx::query("INSERT INTO review_items (campaign_id, spiffe_id, plane, owner, permissions) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(spiffe_id)
                .bind(item_plane)
                .bind(owner)
                .bind(json(permissions))
                .execute(&mut *tx)
                .await?;
        }
        crate::admin::record_change(
            self.backend,
            &mut tx,
            actor,
            "review.start",
            id,
            None,
            Some(serde_json::json!({"name": name, "plane": plane, "due_at": due_at, "items": items.len()}).to_string()),
        )
        .await?;
        tx.commit().await?;
        self.campaign(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "review campaign",
                id: id.to_owned(),
            })
    }

    /// Every campaign with its progress, newest first.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.campaigns_where("", None).await
    }

    pub async fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        Ok(self
            .campaigns_where("WHERE c.id = $1", Some(id))
            .await?
            .into_iter()
            .next())
    }

    async fn campaigns_where(
        &self,
        filter: &str,
        id: Option<&str>,
    ) -> Result<Vec<Campaign>, StoreError> {
        let sql = format!(
            "SELECT c.id, c.name, c.plane, c.created_at, c.created_by, c.due_at, \
             (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id) AS items, \
             (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id AND i.decision IS NOT NULL) AS decided \
             FROM review_campaigns c {filter} ORDER BY c.created_at DESC, c.id"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(id) = id {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Campaign {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    plane: r.try_get("plane")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                    due_at: r.try_get("due_at")?,
                    items: r.try_get("items")?,
                    decided: r.try_get("decided")?,
                })
            })
            .collect()
    }

    /// A campaign's items, by identity.
    pub async fn review_items(&self, campaign: &str) -> Result<Vec<ReviewItem>, StoreError> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM review_items WHERE campaign_id = $1 ORDER BY spiffe_id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(campaign)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(item).collect()
    }

    /// When each identity was last attested (any decision), by SPIFFE ID.
    pub async fn last_reviews(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT spiffe_id, MAX(decided_at) AS at FROM review_items WHERE decided_at IS NOT NULL GROUP BY spiffe_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("spiffe_id")?, r.try_get("at")?)))
            .collect()
    }

    /// Records an attestation (once per item), with its change record and its
    /// `review.attested` evidence event.
    pub async fn attest(
        &self,
        campaign: &str,
        spiffe_id: &str,
        decision: &str,
        reduce: &[String],
        note: &str,
        actor: &Actor,
    ) -> Result<ReviewItem, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM review_items WHERE campaign_id = $1 AND spiffe_id = $2"
        );
        let found = sqlx::query(AssertSqlSafe(sql))
            .bind(campaign)
            .bind(spiffe_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "review item",
                id: format!("{campaign}/{spiffe_id}"),
            })?;
        let before = item(&found)?;
        if let Some(d) = &before.decision {
            return Err(StoreError::AlreadyAttested {
                spiffe_id: spiffe_id.to_owned(),
                campaign: campaign.to_owned(),
                decision: d.to_string(),
                by: before.decided_by.clone().unwrap_or_else(|| "?".into()),
            });
        }
        let now = steward_model::timestamp::now();
        sqlx::query("UPDATE review_items SET decision = $1, reduce = $2, note = $3, decided_by = $4, decided_at = $5 WHERE campaign_id = $6 AND spiffe_id = $7")
            .bind(decision)
            .bind((!reduce.is_empty()).then(|| json(&reduce)))
            .bind(note)
            .bind(actor.label())
            .bind(&now)
            .bind(campaign)
            .bind(spiffe_id)
            .execute(&mut *tx)
            .await?;
        let mut event = steward_audit::Event::new(
            steward_audit::EventKind::ReviewAttested,
            uuid::Uuid::now_v7().to_string(),
            now.clone(),
        );
        event.principal = Some(spiffe_id.to_owned());
        event.plane = Some(before.plane.clone());
        event.action = Some(format!("review.{decision}"));
        event.actor_chain = vec![actor.label()];
        event.details = serde_json::json!({
            "campaign": campaign, "decision": decision, "owner": before.owner,
            "permissions": before.permissions, "reduce": reduce, "note": note,
        });
        crate::evidence::append_in_tx(self.backend, &mut tx, std::slice::from_ref(&event)).await?;
        tx.commit().await?;
        Ok(ReviewItem {
            decision: Some(decision.to_owned()),
            reduce: reduce.to_vec(),
            note: Some(note.to_owned()),
            decided_by: Some(actor.label()),
            decided_at: Some(now),
            ..before
        })
    }
}
