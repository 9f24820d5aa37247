//! What identities actually did: the "used" side of posture. The
//! evidence log is folded, as it grows, into `usage_totals` — one row per identity ×
//! kind × capability × action × outcome × environment × credential with a count and the
//! first and last time — and into `evidence_hourly` (events per hour, kind and outcome),
//! so posture, the console's timeline and the compliance report read aggregates, not
//! millions of events.
//! [`Store::roll_up_usage`] advances the fold by evidence `seq`; it is idempotent and
//! exclusive (one replica at a time), and the fold can be rebuilt from the log.

use sqlx::{AssertSqlSafe, Row};

use steward_model::UsageTotal;

use crate::{Backend, Store, StoreError};

/// How far a [`Store::roll_up_usage`] call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollUp {
    /// Evidence folded in by this call.
    pub events: i64,
    /// The last evidence `seq` folded in.
    pub through_seq: i64,
    /// The newest evidence `seq` when the call started: caught up when equal.
    pub head_seq: i64,
}

/// Evidence sequence numbers folded per transaction: bounds how long the roll-up holds
/// the write lock (SQLite has one writer) to tens of milliseconds.
const ROLL_UP_STEP: i64 = 20_000;

const KINDS: &str = "('access.decision', 'credential.issued', 'credential.exchanged', 'credential.federated', 'exception.granted')";

/// A text field of the event's JSON body, in the backend's dialect.
fn json_text(backend: Backend, path: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_extract(body, '$.{path}')"),
        Backend::Postgres => format!("(body::jsonb #>> '{{{}}}')", path.replace('.', ",")),
    }
}

fn roll_up_sql(backend: Backend) -> String {
    let (least, greatest) = match backend {
        Backend::Sqlite => ("min", "max"),
        Backend::Postgres => ("LEAST", "GREATEST"),
    };
    let json = |path: &str| json_text(backend, path);
    format!(
        "INSERT INTO usage_totals (principal, kind, capability, action, outcome, environment, credential, n, first_time, last_time) \
         SELECT principal, kind, COALESCE(capability, ''), COALESCE(action, ''), COALESCE(outcome, ''), \
         COALESCE(environment, CASE WHEN kind = 'access.decision' THEN {env_decision} WHEN kind LIKE 'credential.%' THEN {env_token} END, ''), \
         CASE WHEN kind LIKE 'credential.%' THEN COALESCE({client_key}, '') ELSE '' END, \
         COUNT(*), MIN(time), MAX(time) FROM evidence \
         WHERE seq > $1 AND seq <= $2 AND principal IS NOT NULL AND kind IN {KINDS} \
         GROUP BY 1, 2, 3, 4, 5, 6, 7 \
         ON CONFLICT (principal, kind, capability, action, outcome, environment, credential) DO UPDATE SET \
         n = usage_totals.n + excluded.n, \
         first_time = {least}(usage_totals.first_time, excluded.first_time), \
         last_time = {greatest}(usage_totals.last_time, excluded.last_time)",
        env_decision = json("details.request.context.environment"),
        env_token = json("details.environment"),
        client_key = json("details.client_key"),
    )
}

fn hourly_sql(backend: Backend) -> String {
    let greatest = match backend {
        Backend::Sqlite => "max",
        Backend::Postgres => "GREATEST",
    };
    format!(
        "INSERT INTO evidence_hourly (hour, kind, outcome, n, last_seq) \
         SELECT substr(time, 1, 13), kind, COALESCE(outcome, ''), COUNT(*), MAX(seq) FROM evidence \
         WHERE seq > $1 AND seq <= $2 GROUP BY 1, 2, 3 \
         ON CONFLICT (hour, kind, outcome) DO UPDATE SET n = evidence_hourly.n + excluded.n, \
         last_seq = {greatest}(evidence_hourly.last_seq, excluded.last_seq)"
    )
}

fn some(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

impl Store {
    /// Folds up to `max_events` evidence sequence numbers past the last roll-up into
    /// `usage_totals` (in steps of [`ROLL_UP_STEP`], one transaction each). Safe to call
    /// from every replica at once: each step locks the roll-up's position first.
    pub async fn roll_up_usage(&self, max_events: i64) -> Result<RollUp, StoreError> {
        let (sql, hourly) = (roll_up_sql(self.backend), hourly_sql(self.backend));
        let lock = match self.backend {
            Backend::Sqlite => "SELECT through_seq FROM usage_rollup WHERE id = 1",
            Backend::Postgres => "SELECT through_seq FROM usage_rollup WHERE id = 1 FOR UPDATE",
        };
        let head_seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM evidence")
            .fetch_one(&self.pool)
            .await?
            .try_get("s")?;
        // Caught up (the usual case for posture, the timeline and the compliance report):
        // answer from a plain read, without taking SQLite's write lock.
        let through: i64 = sqlx::query("SELECT through_seq FROM usage_rollup WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get("through_seq")?;
        if through >= head_seq {
            return Ok(RollUp {
                events: 0,
                through_seq: through,
                head_seq,
            });
        }
        let mut done = 0;
        loop {
            let mut tx = self.begin_light().await?;
            let through: i64 = sqlx::query(lock)
                .fetch_one(&mut *tx)
                .await?
                .try_get("through_seq")?;
            let upto = head_seq.min(through + ROLL_UP_STEP.min(max_events - done));
            if upto <= through {
                tx.rollback().await?;
                return Ok(RollUp {
                    events: done,
                    through_seq: through,
                    head_seq,
                });
            }
            for statement in [&sql, &hourly] {
                sqlx::query(AssertSqlSafe(statement.as_str()))
                    .bind(through)
                    .bind(upto)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE usage_rollup SET through_seq = $1 WHERE id = 1")
                .bind(upto)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done += upto - through;
        }
    }

    /// Forgets the usage totals so the next roll-up rebuilds them from the evidence log
    /// (after retention, from what the log still holds).
    pub async fn reset_usage(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_light().await?;
        sqlx::query("UPDATE usage_rollup SET through_seq = 0 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM usage_totals")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM evidence_hourly")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every usage aggregate whose newest event is at or after `since` (RFC 3339) — of
    /// one principal when given —, as far as the roll-up has got (call
    /// [`Store::roll_up_usage`] first for the latest).
    pub async fn usage_totals_since(
        &self,
        since: &str,
        principal: Option<&str>,
    ) -> Result<Vec<UsageTotal>, StoreError> {
        let mut sql = String::from(
            "SELECT principal, kind, capability, action, outcome, environment, credential, n, first_time, last_time \
             FROM usage_totals WHERE last_time >= $1",
        );
        if principal.is_some() {
            // The key's first column: a seek, not a scan.
            sql.push_str(" AND principal = $2");
        }
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(since);
        if let Some(p) = principal {
            q = q.bind(p);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(UsageTotal {
                    principal: r.try_get("principal")?,
                    kind: r.try_get("kind")?,
                    capability: some(r.try_get("capability")?),
                    action: some(r.try_get("action")?),
                    outcome: some(r.try_get("outcome")?),
                    environment: some(r.try_get("environment")?),
                    credential: some(r.try_get("credential")?),
                    count: r.try_get("n")?,
                    first: r.try_get("first_time")?,
                    last: r.try_get("last_time")?,
                })
            })
            .collect()
    }

    /// Tokens still valid at `now` per principal, from the credentials issued since
    /// `since` (RFC 3339; the longest token lifetime ago is enough): the "active tokens"
    /// of the inventory. Revoked tokens are still counted here.
    pub async fn active_tokens(
        &self,
        since: &str,
        now: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let expires = json_text(self.backend, "details.expires_at");
        // No GROUP BY: grouping by principal would lead SQLite's planner to walk the
        // whole log through the principal index instead of the recent end of the time
        // index.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT principal FROM evidence WHERE time >= $1 \
             AND kind IN ('credential.issued', 'credential.exchanged', 'credential.federated') \
             AND {expires} > $2"
        )))
        .bind(since)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for r in &rows {
            if let Some(p) = r.try_get::<Option<String>, _>("principal")? {
                *counts.entry(p).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }

    /// Events per kind since the log began, with the sequence number of the newest: what
    /// the compliance report cites. From the hourly roll-up (call
    /// [`Store::roll_up_usage`] first for the latest).
    pub async fn evidence_kinds(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, CAST(SUM(n) AS BIGINT) AS n, MAX(last_seq) AS last FROM evidence_hourly \
             GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?, r.try_get("last")?)))
            .collect()
    }

    /// Decisions on AI tool addresses (`destination.address` `tool …`) among the newest
    /// `scan` access decisions: how many, and the newest one's sequence number. Bounded
    /// to the newest decisions so a long log costs the compliance report a fixed scan.
    pub async fn recent_tool_decisions(&self, scan: i64) -> Result<(i64, Option<i64>), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(seq) AS s FROM \
             (SELECT seq, body FROM evidence WHERE kind = 'access.decision' ORDER BY seq DESC LIMIT $1) recent \
             WHERE body LIKE '%\"address\":\"tool %'",
        )
        .bind(scan)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("s")?))
    }

    /// Access decisions per hour since `since` (RFC 3339; its whole hour counts):
    /// (hour `YYYY-MM-DDTHH`, allowed, denied). For the console's chart; from the hourly
    /// roll-up.
    pub async fn decisions_per_hour(
        &self,
        since: &str,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour, \
             CAST(SUM(CASE WHEN outcome = 'allow' THEN n ELSE 0 END) AS BIGINT) AS allowed, \
             CAST(SUM(CASE WHEN outcome = 'allow' THEN 0 ELSE n END) AS BIGINT) AS denied \
             FROM evidence_hourly WHERE kind = 'access.decision' AND hour >= substr($1, 1, 13) \
             GROUP BY hour ORDER BY hour",
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
    /// capability, newest grant time included: renewals show as several grants. Read from
    /// the usage roll-up.
    pub async fn exception_grants(&self) -> Result<Vec<(String, String, i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT principal, capability, CAST(SUM(n) AS BIGINT) AS n, MAX(last_time) AS last FROM usage_totals \
             WHERE kind = 'exception.granted' AND capability <> '' GROUP BY principal, capability",
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
