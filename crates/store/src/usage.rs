//! What identities actually did, aggregated from the evidence log: the "used" side of
//! posture (R13, R23) — allowed decisions per capability and action, and credentials
//! issued — in one grouped scan of a time window (the `evidence_time` index).

use sqlx::Row;

use crate::{Store, StoreError};

/// One group of an identity's evidence in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub principal: String,
    /// `access.decision` (allowed) or `credential.issued|exchanged|federated`.
    pub kind: String,
    pub capability: Option<String>,
    pub action: Option<String>,
    pub count: i64,
    /// The newest event's time (RFC 3339).
    pub last: String,
}

impl Store {
    /// Allowed decisions and issued credentials since `since` (RFC 3339), grouped by
    /// principal, kind, capability and action.
    pub async fn usage_since(&self, since: &str) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT principal, kind, capability, action, COUNT(*) AS n, MAX(time) AS last FROM evidence \
             WHERE time >= $1 AND principal IS NOT NULL \
             AND ((kind = 'access.decision' AND outcome = 'allow') \
                  OR kind IN ('credential.issued', 'credential.exchanged', 'credential.federated')) \
             GROUP BY principal, kind, capability, action",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    principal: r.try_get("principal")?,
                    kind: r.try_get("kind")?,
                    capability: r.try_get("capability")?,
                    action: r.try_get("action")?,
                    count: r.try_get("n")?,
                    last: r.try_get("last")?,
                })
            })
            .collect()
    }

    /// Events per kind, with the sequence number of the newest: what the compliance report
    /// cites.
    pub async fn evidence_kinds(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n, MAX(seq) AS last FROM evidence GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?, r.try_get("last")?)))
            .collect()
    }

    /// Access decisions per hour since `since` (RFC 3339): (hour `YYYY-MM-DDTHH`,
    /// allowed, denied). For the console's chart.
    pub async fn decisions_per_hour(
        &self,
        since: &str,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT substr(time, 1, 13) AS hour, \
             SUM(CASE WHEN outcome = 'allow' THEN 1 ELSE 0 END) AS allowed, \
             SUM(CASE WHEN outcome = 'allow' THEN 0 ELSE 1 END) AS denied \
             FROM evidence WHERE kind = 'access.decision' AND time >= $1 \
             GROUP BY substr(time, 1, 13) ORDER BY hour",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("hour")?,
                    r.try_get("allowed")?,
                    r.try_get("denied")?,
                ))
            })
            .collect()
    }

    /// How often an exception was granted (published or changed) per principal and
    /// capability, newest grant time included: renewals show as several grants.
    pub async fn exception_grants(&self) -> Result<Vec<(String, String, i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT principal, capability, COUNT(*) AS n, MAX(time) AS last FROM evidence \
             WHERE kind = 'exception.granted' AND principal IS NOT NULL AND capability IS NOT NULL \
             GROUP BY principal, capability",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("principal")?,
                    r.try_get("capability")?,
                    r.try_get("n")?,
                    r.try_get("last")?,
                ))
            })
            .collect()
    }
}
