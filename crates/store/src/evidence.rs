//! The evidence log's storage: appends that extend the hash chain inside the database's
//! write lock, searches, checkpoints and the checkpoint key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use steward_audit::{
    ChainHead, Checkpoint, CheckpointKey, CheckpointSigner, CheckpointVerifier, Event, EventKind,
    Prune, Record, Verifier, VerifyReport,
};
use steward_token::Kek;

use steward_api::StoredEvent;

use crate::rows::{from_json, multi_insert};
use crate::{Backend, Store, StoreError};

/// What a checkpoint key is sealed to (the associated data): a sealed key moved onto
/// another row does not open.
fn checkpoint_key_label(key_id: &str) -> String {
    format!("checkpoint:{key_id}")
}

/// Search filters; unset fields match everything. Times are RFC 3339.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvidenceFilter {
    pub principal: Option<String>,
    pub plane: Option<String>,
    pub kind: Option<String>,
    pub action: Option<String>,
    pub capability: Option<String>,
    pub outcome: Option<String>,
    pub correlation_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only events after this sequence number (paging forward).
    pub after_seq: Option<i64>,
    /// Newest first (for `tail`) instead of oldest first.
    pub newest_first: bool,
    pub limit: i64,
}

/// Rows per multi-row evidence INSERT.
const EVIDENCE_BATCH: usize = 400;
const EVIDENCE_COLUMNS: &str = "seq, time, kind, plane, principal, action, capability, outcome, correlation_id, body, prev_hash, hash, environment";
/// Sequence numbers per block of the principal and correlation indexes: new entries go to
/// the current block's region of each index, so appends stay sequential (migration 0011
/// uses the same number).
pub const EVIDENCE_BLOCK: i64 = 4096;
/// Most blocks one search query probes.
const MAX_BLOCKS_PER_QUERY: i64 = 256;
/// Records read per round trip while verifying.
const VERIFY_PAGE: i64 = 20_000;

/// Appends `events` at the head of the chain. The caller holds the write lock (a
/// transaction from `Store::begin_write`), so no other writer can attach to the same head.
pub(crate) async fn append_in_tx(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    events: &[Event],
) -> Result<Vec<i64>, StoreError> {
    let bodies = canonical_bodies(events)?;
    append_prepared_in_tx(backend, conn, events, bodies).await
}

/// The canonical JSON of each event: the bytes the chain hashes and the log stores.
/// CPU work (a few microseconds an event) that a busy writer can do before taking the
/// write lock, and off the threads that serve requests.
pub fn canonical_bodies(events: &[Event]) -> Result<Vec<String>, StoreError> {
    events
        .iter()
        .map(|e| {
            e.canonical_json()
                .map_err(|err| StoreError::Encode(err.to_string()))
        })
        .collect()
}

/// [`append_in_tx`] with the bodies already made by [`canonical_bodies`].
async fn append_prepared_in_tx(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    events: &[Event],
    bodies: Vec<String>,
) -> Result<Vec<i64>, StoreError> {
    if bodies.len() != events.len() {
        return Err(StoreError::Encode(format!(
            "{} evidence events came with {} bodies",
            events.len(),
            bodies.len()
        )));
    }
    let mut head = read_head(conn).await?.unwrap_or_default();
    let mut seqs = Vec::with_capacity(events.len());
    let head_sql = format!("INSERT INTO evidence ({EVIDENCE_COLUMNS})");
    let mut bodies = bodies.into_iter();
    for chunk in events.chunks(EVIDENCE_BATCH) {
        let sql = multi_insert(backend, &head_sql, 13, chunk.len());
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (e, body) in chunk.iter().zip(bodies.by_ref()) {
            let r = head.append(body);
            seqs.push(r.seq);
            q = q
                .bind(r.seq)
                .bind(e.time.clone())
                .bind(e.kind.as_str())
                .bind(e.plane.clone())
                .bind(e.principal.clone())
                .bind(e.action.clone())
                .bind(e.destination.capability.clone())
                .bind(e.decision.outcome.map(|o| {
                    if o == steward_audit::Outcome::Allow {
                        "allow"
                    } else {
                        "deny"
                    }
                }))
                .bind(e.correlation_id.clone())
                .bind(r.body)
                .bind(r.prev_hash)
                .bind(r.hash)
                .bind(environment(e));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(seqs)
}

/// The SQL and string binds of one search query (the caller binds `after_seq` and
/// `limit` last), over the blocks `from..=to` when given.
fn search_sql(filter: &EvidenceFilter, blocks: Option<(i64, i64)>) -> (String, Vec<String>) {
    let mut sql = String::from("SELECT seq, prev_hash, hash, body FROM evidence WHERE 1 = 1");
    if let Some((from, to)) = blocks {
        // Literal block numbers (integers computed here), one index probe each.
        let list: Vec<String> = (from..=to).map(|b| b.to_string()).collect();
        sql.push_str(&format!(
            " AND (seq / {EVIDENCE_BLOCK}) IN ({})",
            list.join(", ")
        ));
    }
    let mut binds: Vec<String> = Vec::new();
    for (column, op, value) in [
        ("principal", "=", &filter.principal),
        ("plane", "=", &filter.plane),
        ("kind", "=", &filter.kind),
        ("action", "=", &filter.action),
        ("capability", "=", &filter.capability),
        ("outcome", "=", &filter.outcome),
        ("correlation_id", "=", &filter.correlation_id),
        ("time", ">=", &filter.since),
        ("time", "<", &filter.until),
    ] {
        if let Some(v) = value {
            binds.push(v.clone());
            sql.push_str(&format!(" AND {column} {op} ${}", binds.len()));
        }
    }
    let n = binds.len();
    sql.push_str(&format!(
        " AND seq > ${} ORDER BY seq {} LIMIT ${}",
        n + 1,
        if filter.newest_first { "DESC" } else { "ASC" },
        n + 2
    ));
    (sql, binds)
}

/// The environment column of an event: where a decision was made (its request's
/// context) or what environment a token was issued for; `""` when such an event names
/// none (so the usage roll-up need not look in the body), `None` for other kinds.
fn environment(e: &Event) -> Option<String> {
    use steward_audit::EventKind as K;
    let path = match e.kind {
        K::AccessDecision => "/request/context/environment",
        K::CredentialIssued | K::CredentialExchanged | K::CredentialFederated => "/environment",
        _ => return None,
    };
    Some(
        e.details
            .pointer(path)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn insert_checkpoint(
    conn: &mut sqlx::AnyConnection,
    cp: &Checkpoint,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO evidence_checkpoints (tree_size, head_hash, time, key_id, signature) VALUES ($1, $2, $3, $4, $5)")
        .bind(cp.tree_size)
        .bind(&cp.head_hash)
        .bind(&cp.time)
        .bind(&cp.key_id)
        .bind(&cp.signature)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The end of the chain as committed (read under the write lock when about to append).
async fn read_head(conn: &mut sqlx::AnyConnection) -> Result<Option<ChainHead>, StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        Ok(ChainHead {
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
        })
    })
    .transpose()
}

fn record(row: &sqlx::any::AnyRow) -> Result<Record, StoreError> {
    Ok(Record {
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        body: row.try_get("body")?,
    })
}

fn checkpoint(row: &sqlx::any::AnyRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        tree_size: row.try_get("tree_size")?,
        head_hash: row.try_get("head_hash")?,
        time: row.try_get("time")?,
        key_id: row.try_get("key_id")?,
        signature: row.try_get("signature")?,
    })
}

impl Store {
    /// Appends a batch of events in one transaction (one commit for the whole batch:
    /// group commit). Returns their sequence numbers once durable.
    pub async fn append_evidence(&self, events: &[Event]) -> Result<Vec<i64>, StoreError> {
        let bodies = canonical_bodies(events)?;
        self.append_evidence_prepared(events, bodies).await
    }

    /// [`Store::append_evidence`] with each event's canonical body already made by
    /// [`canonical_bodies`] (the evidence writer makes them on a blocking thread).
    pub async fn append_evidence_prepared(
        &self,
        events: &[Event],
        bodies: Vec<String>,
    ) -> Result<Vec<i64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let seqs = append_prepared_in_tx(self.backend, &mut tx, events, bodies).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    /// The end of the chain.
    pub async fn evidence_head(&self) -> Result<ChainHead, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(read_head(&mut conn).await?.unwrap_or_default())
    }

    /// Raw records after `after_seq`, in order, for verification and export.
    pub async fn evidence_records(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, prev_hash, hash, body FROM evidence WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record).collect()
    }

    /// Events matching `filter`.
    ///
    /// A search by principal or correlation id walks the log's blocks (see
    /// [`EVIDENCE_BLOCK`]) in the requested order, a few blocks at first and twice as many
    /// each time up to [`MAX_BLOCKS_PER_QUERY`], until `limit` events are found: a busy
    /// identity is answered from its newest block, a rare one with a few dozen probes.
    pub async fn evidence_search(
        &self,
        filter: &EvidenceFilter,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if filter.limit <= 0 {
            return Ok(Vec::new());
        }
        if filter.principal.is_none() && filter.correlation_id.is_none() {
            return self.search_blocks(filter, None).await;
        }
        let Some((first, last)) = self.search_bounds(filter).await? else {
            return Ok(Vec::new());
        };
        let (lo, hi) = (first / EVIDENCE_BLOCK, last / EVIDENCE_BLOCK);
        let mut found = Vec::new();
        let mut width = 1;
        let mut next = if filter.newest_first { hi } else { lo };
        while lo <= next && next <= hi {
            let (from, to) = if filter.newest_first {
                ((next - width + 1).max(lo), next)
            } else {
                (next, (next + width - 1).min(hi))
            };
            let page = EvidenceFilter {
                limit: filter.limit - found.len() as i64,
                ..filter.clone()
            };
            found.extend(self.search_blocks(&page, Some((from, to))).await?);
            if found.len() as i64 >= filter.limit {
                break;
            }
            next = if filter.newest_first {
                from - 1
            } else {
                to + 1
            };
            width = (width * 2).min(MAX_BLOCKS_PER_QUERY);
        }
        Ok(found)
    }

    /// The lowest and highest seq a search can match (its `after_seq`, `since` and
    /// `until`, through the time index), or `None` when nothing can.
    async fn search_bounds(
        &self,
        filter: &EvidenceFilter,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let mut first = filter.after_seq.unwrap_or(0).saturating_add(1);
        if let Some(since) = &filter.since {
            let row = sqlx::query("SELECT MIN(seq) AS s FROM evidence WHERE time >= $1")
                .bind(since.clone())
                .fetch_one(&self.pool)
                .await?;
            match row.try_get::<Option<i64>, _>("s")? {
                Some(s) => first = first.max(s),
                None => return Ok(None),
            }
        }
        let row = match &filter.until {
            Some(until) => {
                sqlx::query("SELECT MAX(seq) AS s FROM evidence WHERE time < $1")
                    .bind(until.clone())
                    .fetch_one(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT MAX(seq) AS s FROM evidence")
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(match row.try_get::<Option<i64>, _>("s")? {
            Some(last) if last >= first => Some((first, last)),
            _ => None,
        })
    }

    /// Runs the search query of `filter` (over the blocks `from..=to` when given), after
    /// `prefix` (`""`, or an `EXPLAIN`).
    async fn run_search(
        &self,
        prefix: &str,
        filter: &EvidenceFilter,
        blocks: Option<(i64, i64)>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        let (sql, binds) = search_sql(filter, blocks);
        let mut q = sqlx::query(AssertSqlSafe(format!("{prefix}{sql}")));
        for b in binds {
            q = q.bind(b);
        }
        Ok(q.bind(filter.after_seq.unwrap_or(0))
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// One query of a search, over the blocks `from..=to` when given.
    async fn search_blocks(
        &self,
        filter: &EvidenceFilter,
        blocks: Option<(i64, i64)>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.run_search("", filter, blocks).await?;
        rows.iter()
            .map(|row| {
                let r = record(row)?;
                Ok(StoredEvent {
                    seq: r.seq,
                    hash: r.hash,
                    event: from_json("evidence event", &r.body)?,
                })
            })
            .collect()
    }

    /// The database's plan for one block query of a search; for tests that check the
    /// block indexes are used.
    #[doc(hidden)]
    pub async fn search_plan_for_tests(
        &self,
        filter: &EvidenceFilter,
        blocks: (i64, i64),
    ) -> Result<String, StoreError> {
        let (explain, column) = match self.backend {
            Backend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            Backend::Postgres => ("EXPLAIN ", "QUERY PLAN"),
        };
        let rows = self.run_search(explain, filter, Some(blocks)).await?;
        let lines: Result<Vec<String>, _> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(column))
            .collect();
        Ok(lines?.join("\n"))
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query("SELECT tree_size, head_hash, time, key_id, signature FROM evidence_checkpoints ORDER BY tree_size").fetch_all(&self.pool).await?;
        rows.iter().map(checkpoint).collect()
    }

    /// Signs and stores a checkpoint of the current head, unless one already covers it.
    /// Returns the checkpoint written.
    pub async fn checkpoint_now(
        &self,
        signer: &CheckpointSigner,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(head) = read_head(&mut tx).await? else {
            return Ok(None);
        };
        let exists = sqlx::query("SELECT 1 AS x FROM evidence_checkpoints WHERE tree_size = $1")
            .bind(head.seq)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Ok(None);
        }
        let cp = signer.sign(head.seq, &head.hash, &steward_model::timestamp::now());
        insert_checkpoint(&mut tx, &cp).await?;
        tx.commit().await?;
        Ok(Some(cp))
    }

    /// The checkpoint key, created on first use and shared by every replica. Its private
    /// half is stored sealed under the key-encryption key, like the token signing keys:
    /// whoever can read the database cannot re-sign a rewritten history with it.
    ///
    /// A key an older release stored in plaintext is sealed in place on first use, and
    /// the sealing is chained as an `admin.action` event — but only while no sealed key
    /// exists: once one does, a plaintext row (which anyone able to write the database
    /// could add) is never used.
    pub async fn checkpoint_signer(&self, kek: &Kek) -> Result<CheckpointSigner, StoreError> {
        let key_err = |id: &str, e: &dyn std::fmt::Display| StoreError::CheckpointKey {
            id: id.to_owned(),
            detail: e.to_string(),
        };
        let rows = sqlx::query("SELECT id, private_pkcs8 FROM audit_keys ORDER BY created_at DESC")
            .fetch_all(&self.pool)
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push((
                row.try_get::<String, _>("id")?,
                row.try_get::<String, _>("private_pkcs8")?,
            ));
        }
        if let Some((id, sealed)) = keys.iter().find(|(_, text)| kek.is_sealed(text)) {
            if keys.iter().any(|(_, text)| !kek.is_sealed(text)) {
                tracing::warn!(
                    "a checkpoint key stored in plaintext sits beside the sealed one; it is not used or trusted"
                );
            }
            let der = kek
                .open(&checkpoint_key_label(id), sealed)
                .map_err(|e| key_err(id, &format!("does not open: {e}")))?;
            return CheckpointSigner::from_pkcs8(&der).map_err(|e| key_err(id, &e));
        }
        if let Some((id, text)) = keys.first() {
            return self.seal_legacy_checkpoint_key(kek, id, text).await;
        }
        let (signer, pkcs8) = CheckpointSigner::generate().map_err(|e| key_err("(new)", &e))?;
        let sealed = kek
            .seal(&checkpoint_key_label(signer.key_id()), &pkcs8)
            .map_err(|e| key_err(signer.key_id(), &e))?;
        let mut tx = self.begin_write().await?;
        // Another replica may have won the race: keep the first key.
        let existing = sqlx::query("SELECT private_pkcs8 FROM audit_keys LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_none() {
            sqlx::query("INSERT INTO audit_keys (id, public_key, private_pkcs8, created_at) VALUES ($1, $2, $3, $4)")
                .bind(signer.key_id())
                .bind(signer.public_key())
                .bind(sealed)
                .bind(steward_model::timestamp::now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(signer);
        }
        tx.commit().await?;
        Box::pin(self.checkpoint_signer(kek)).await
    }

    /// Seals a checkpoint key an older release stored in plaintext, and chains that it
    /// did (the upgrade is on record, and an auditor sees if it ever happens again).
    async fn seal_legacy_checkpoint_key(
        &self,
        kek: &Kek,
        id: &str,
        text: &str,
    ) -> Result<CheckpointSigner, StoreError> {
        let der = B64.decode(text).map_err(|e| StoreError::Corrupt {
            what: "checkpoint key",
            detail: e.to_string(),
        })?;
        let key_err = |detail: String| StoreError::CheckpointKey {
            id: id.to_owned(),
            detail,
        };
        let signer = CheckpointSigner::from_pkcs8(&der).map_err(|e| key_err(e.to_string()))?;
        let sealed = kek
            .seal(&checkpoint_key_label(id), &der)
            .map_err(|e| key_err(e.to_string()))?;
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE audit_keys SET private_pkcs8 = $1, public_key = $2 WHERE id = $3 AND private_pkcs8 = $4",
        )
        .bind(sealed)
        .bind(signer.public_key())
        .bind(id)
        .bind(text)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            let mut e = Event::new(
                EventKind::AdminAction,
                uuid::Uuid::now_v7().to_string(),
                steward_model::timestamp::now(),
            );
            e.action = Some("checkpoint_key.seal".into());
            e.principal = Some("steward (system)".into());
            e.details = serde_json::json!({
                "key_id": id,
                "public_key": signer.public_key(),
                "reason": "a checkpoint key stored in plaintext by an older release, now sealed under the key-encryption key",
            });
            append_in_tx(self.backend, &mut tx, &[e]).await?;
        }
        tx.commit().await?;
        tracing::warn!(key_id = %id, "the evidence checkpoint key was stored in plaintext by an older release; it is now sealed under the key-encryption key");
        Ok(signer)
    }

    /// The public halves of the checkpoint keys the key-encryption key vouches for: rows
    /// whose sealed private half opens and matches their public half. A key added by
    /// someone who can write the database but not read the key-encryption key is not
    /// among them.
    pub async fn trusted_checkpoint_keys(&self, kek: &Kek) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id, public_key, private_pkcs8 FROM audit_keys")
            .fetch_all(&self.pool)
            .await?;
        let mut trusted = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            let public: String = r.try_get("public_key")?;
            let sealed: String = r.try_get("private_pkcs8")?;
            let opened = kek
                .open(&checkpoint_key_label(&id), &sealed)
                .ok()
                .and_then(|der| CheckpointSigner::from_pkcs8(&der).ok());
            match opened {
                Some(signer) if signer.public_key() == public && signer.key_id() == id => {
                    trusted.push(public)
                }
                _ => {
                    tracing::warn!(key_id = %id, "a checkpoint key the key-encryption key does not vouch for is not trusted")
                }
            }
        }
        Ok(trusted)
    }

    /// The checkpoint keys' public halves with their ids and creation times, oldest
    /// first: what an operator keeps elsewhere to verify an exported log offline.
    pub async fn checkpoint_keys(&self) -> Result<Vec<CheckpointKey>, StoreError> {
        let rows =
            sqlx::query("SELECT id, public_key, created_at FROM audit_keys ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckpointKey {
                    key_id: r.try_get("id")?,
                    public_key: r.try_get("public_key")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Public halves of every checkpoint key, base64.
    pub async fn checkpoint_public_keys(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT public_key FROM audit_keys")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("public_key")?)).collect()
    }

    /// The latest retention prune, as signed (a row without a signature, from an older
    /// release or written by hand, comes back with an empty one and fails verification).
    pub async fn latest_prune(&self) -> Result<Option<Prune>, StoreError> {
        Ok(self.prunes().await?.pop())
    }

    /// Every retention prune, oldest first.
    pub async fn prunes(&self) -> Result<Vec<Prune>, StoreError> {
        let rows = sqlx::query("SELECT pruned_through, head_hash, cutoff, time, key_id, signature FROM evidence_prunes ORDER BY pruned_through").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Prune {
                    pruned_through: r.try_get("pruned_through")?,
                    head_hash: r.try_get("head_hash")?,
                    cutoff: r.try_get("cutoff")?,
                    time: r.try_get("time")?,
                    key_id: r
                        .try_get::<Option<String>, _>("key_id")?
                        .unwrap_or_default(),
                    signature: r
                        .try_get::<Option<String>, _>("signature")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Retention: deletes the oldest events whose time is before `cutoff` (RFC 3339), as
    /// one contiguous prefix of the chain. A prune signed by the checkpoint key (stored,
    /// and chained as an `evidence.pruned` event) and a checkpoint at the new start make
    /// the shortened chain verifiable. Returns how many events went.
    pub async fn prune_evidence(
        &self,
        cutoff: &str,
        signer: &CheckpointSigner,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let already: i64 =
            sqlx::query("SELECT COALESCE(MAX(pruned_through), 0) AS p FROM evidence_prunes")
                .fetch_one(&mut *tx)
                .await?
                .try_get("p")?;
        // The prefix ends before the first event at or after the cutoff (times of ingested
        // records may run slightly out of order; the prefix never skips one of them).
        let first_kept: Option<i64> =
            sqlx::query("SELECT MIN(seq) AS s FROM evidence WHERE time >= $1")
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await?
                .try_get("s")?;
        let through = match first_kept {
            Some(s) => s - 1,
            None => sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM evidence")
                .fetch_one(&mut *tx)
                .await?
                .try_get("s")?,
        };
        if through <= already {
            return Ok(0);
        }
        let hash: String = sqlx::query("SELECT hash FROM evidence WHERE seq = $1")
            .bind(through)
            .fetch_one(&mut *tx)
            .await?
            .try_get("hash")?;
        let now = steward_model::timestamp::now();
        let exists = sqlx::query("SELECT head_hash FROM evidence_checkpoints WHERE tree_size = $1")
            .bind(through)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            insert_checkpoint(&mut tx, &signer.sign(through, &hash, &now)).await?;
        }
        let prune = signer.sign_prune(through, &hash, cutoff, &now);
        sqlx::query("INSERT INTO evidence_prunes (pruned_through, head_hash, time, cutoff, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(through)
            .bind(&hash)
            .bind(&now)
            .bind(cutoff)
            .bind(&prune.key_id)
            .bind(&prune.signature)
            .execute(&mut *tx)
            .await?;
        let mut event = Event::new(
            EventKind::EvidencePruned,
            uuid::Uuid::now_v7().to_string(),
            now.clone(),
        );
        event.action = Some("evidence.prune".into());
        event.principal = Some("steward".into());
        event.details =
            serde_json::to_value(&prune).map_err(|e| StoreError::Encode(e.to_string()))?;
        append_in_tx(self.backend, &mut tx, &[event]).await?;
        let deleted = sqlx::query("DELETE FROM evidence WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted as i64)
    }

    /// Verifies the whole chain and every checkpoint, streaming the log in pages, with
    /// every checkpoint key the database holds (see [`Store::verify_evidence_trusting`]).
    pub async fn verify_evidence(&self) -> Result<VerifyReport, StoreError> {
        let keys = self.checkpoint_public_keys().await?;
        self.verify_evidence_with(keys).await
    }

    /// [`Store::verify_evidence`] trusting only the checkpoint keys the key-encryption
    /// key vouches for ([`Store::trusted_checkpoint_keys`]): what the control plane does.
    pub async fn verify_evidence_trusting(&self, kek: &Kek) -> Result<VerifyReport, StoreError> {
        let keys = self.trusted_checkpoint_keys(kek).await?;
        self.verify_evidence_with(keys).await
    }

    async fn verify_evidence_with(&self, keys: Vec<String>) -> Result<VerifyReport, StoreError> {
        let mut verifier = Verifier::new(
            self.checkpoints().await?,
            CheckpointVerifier::new(keys.iter().map(String::as_str)),
        );
        let mut after = 0;
        if let Some(prune) = self.latest_prune().await? {
            verifier = verifier.starting_after(&prune);
            after = prune.pruned_through;
        }
        loop {
            let page = self.evidence_records(after, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in &page {
                verifier.push(r);
            }
        }
        Ok(verifier.finish())
    }
}
