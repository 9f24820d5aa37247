//! Central revocations and the enforcement points' reports.
//!
//! A revocation is one write transaction: its side effects (suspending the identity or the
//! plane's identities, retiring the key), the next epoch (allocated under the write lock,
//! so epochs have no gaps), the append-only row, and the change record with its
//! `revocation.issued` evidence event. On PostgreSQL the transaction also notifies
//! `steward_revocations`, delivered to every replica when it commits.

use sqlx::{AssertSqlSafe, Row};

use steward_model::{LifecycleState, PlaneId, Revocation, RevocationKind};

use crate::admin::{Actor, record_change};
use crate::registry::change_state_in_tx;
use crate::{Backend, Store, StoreError};

/// The PostgreSQL notification channel a committed revocation is announced on.
pub const REVOCATION_CHANNEL: &str = "steward_revocations";
/// The PostgreSQL notification channel every committed admin change (registry, policy,
/// keys) is announced on, so other replicas reload at once.
pub const CHANGE_CHANNEL: &str = "steward_changes";

/// What to revoke; the store checks the target exists and carries out the side effects.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    pub kind: RevocationKind,
    pub target: String,
    pub reason: String,
    /// Seconds since the Unix epoch: tokens issued at or before it are covered.
    pub revoked_at: i64,
    /// When points may forget it (the caller knows the longest token lifetime).
    pub until: Option<i64>,
    /// For an identity: what it becomes.
    pub identity: steward_model::RevokedIdentity,
}

/// An enforcement point's report: who it is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PointReport {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub environment: Option<String>,
    /// The admin credential (ingestor) it reported with: its name, and its id (what the
    /// point is bound to).
    pub credential: String,
    pub credential_id: String,
    pub bundle_version: i64,
    /// The revocation epoch it has applied. Ignored when `flagged`: a report claiming
    /// an epoch never issued must not count as having applied later ones.
    pub epoch: i64,
    /// Why this report is suspicious (an epoch never issued), if it is. A later report
    /// that is not clears it.
    pub flagged: Option<String>,
}

/// Which credential an enforcement point is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointOwner {
    pub credential_id: String,
    /// The credential's name, as shown to operators.
    pub credential: String,
    /// Whether that credential is still valid (a revoked one's points may be taken over).
    pub live: bool,
}

/// An enforcement point as last reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PointRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub environment: Option<String>,
    pub credential: String,
    pub bundle_version: i64,
    pub epoch: i64,
    pub registered_at: String,
    pub last_seen: String,
    /// `last_seen` as seconds since the Unix epoch.
    pub last_seen_unix: i64,
    pub flagged: Option<String>,
}

const REVOCATION_COLUMNS: &str =
    "epoch, kind, target, revoked_at, until_unix, planes, reason, actor";
const POINT_COLUMNS: &str = "id, kind, name, environment, credential, bundle_version, epoch, registered_at, last_seen, last_seen_unix, flagged";

fn revocation(r: &sqlx::any::AnyRow) -> Result<Revocation, StoreError> {
    let kind: String = r.try_get("kind")?;
    let planes: String = r.try_get("planes")?;
    Ok(Revocation {
        epoch: r.try_get("epoch")?,
        kind: RevocationKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            what: "revocation kind",
            detail: kind.clone(),
        })?,
        target: r.try_get("target")?,
        revoked_at: r.try_get("revoked_at")?,
        until: r.try_get("until_unix")?,
        planes: crate::rows::from_json("revocation planes", &planes)?,
        reason: r.try_get("reason")?,
        actor: r.try_get("actor")?,
    })
}

fn point(r: &sqlx::any::AnyRow) -> Result<PointRow, StoreError> {
    Ok(PointRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        environment: r.try_get("environment")?,
        credential: r.try_get("credential")?,
        bundle_version: r.try_get("bundle_version")?,
        epoch: r.try_get("epoch")?,
        registered_at: r.try_get("registered_at")?,
        last_seen: r.try_get("last_seen")?,
        last_seen_unix: r.try_get("last_seen_unix")?,
        flagged: r.try_get("flagged")?,
    })
}

impl Store {
    /// Revokes `req.target`: checks it, carries out the side effects and records the
    /// revocation at the next epoch, all in one transaction. Returns it once committed.
    pub async fn revoke(
        &self,
        req: &RevokeRequest,
        actor: &Actor,
    ) -> Result<Revocation, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = revoke_in_tx(self.backend, &mut tx, req, actor).await?;
        tx.commit().await?;
        Ok(r)
    }

    /// Revocations after `epoch`, in order, at most `limit`.
    pub async fn revocations_after(
        &self,
        epoch: i64,
        limit: i64,
    ) -> Result<Vec<Revocation>, StoreError> {
        let sql = format!(
            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE epoch > $1 ORDER BY epoch LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(epoch)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(revocation).collect()
    }

    /// The newest epoch (0 before the first revocation).
    pub async fn revocation_epoch(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(epoch), 0) AS epoch FROM revocations")
                .fetch_one(&self.pool)
                .await?
                .try_get("epoch")?,
        )
    }

    /// The credential point `id` is bound to, if it was reported before with one.
    pub async fn point_owner(&self, id: &str) -> Result<Option<PointOwner>, StoreError> {
        let row = sqlx::query(
            "SELECT p.credential_id, p.credential, c.revoked_at FROM enforcement_points p \
             LEFT JOIN admin_credentials c ON c.id = p.credential_id \
             WHERE p.id = $1 AND p.credential_id IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PointOwner {
                credential_id: r.try_get("credential_id")?,
                credential: r.try_get("credential")?,
                live: r.try_get::<Option<String>, _>("revoked_at")?.is_none(),
            })
        })
        .transpose()
    }

    /// Records enforcement points' reports in one transaction (acknowledgements arrive in
    /// bursts: one commit for the burst). A report never moves a point's epoch back, a
    /// flagged one does not move it at all, and a report through another credential than
    /// the live one the point is bound to changes nothing (callers refuse those first;
    /// this closes the race of two first reports).
    pub async fn record_point_reports(&self, reports: &[PointReport]) -> Result<(), StoreError> {
        if reports.is_empty() {
            return Ok(());
        }
        let now = steward_model::timestamp::now();
        let unix = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.begin_light().await?;
        for p in reports {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO enforcement_points ({POINT_COLUMNS}, credential_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, \
                 environment = excluded.environment, credential = excluded.credential, \
                 credential_id = excluded.credential_id, \
                 bundle_version = excluded.bundle_version, \
                 epoch = CASE WHEN excluded.epoch > enforcement_points.epoch THEN excluded.epoch ELSE enforcement_points.epoch END, \
                 last_seen = excluded.last_seen, last_seen_unix = excluded.last_seen_unix, \
                 flagged = excluded.flagged \
                 WHERE enforcement_points.credential_id IS NULL \
                    OR enforcement_points.credential_id = excluded.credential_id \
                    OR enforcement_points.credential_id IN (SELECT id FROM admin_credentials WHERE revoked_at IS NOT NULL)"
            )))
            .bind(&p.id)
            .bind(&p.kind)
            .bind(&p.name)
            .bind(p.environment.clone())
            .bind(&p.credential)
            .bind(p.bundle_version)
            .bind(if p.flagged.is_some() { 0 } else { p.epoch })
            .bind(&now)
            .bind(unix)
            .bind(p.flagged.clone())
            .bind(&p.credential_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The evidence event that issued token `jti` at or after `since` (RFC 3339), if any:
    /// how a token revocation learns the token exists and when it expires. `jti` must be a
    /// UUID (checked by the caller), so it cannot carry `LIKE` wildcards.
    pub async fn issued_token(
        &self,
        jti: &str,
        since: &str,
    ) -> Result<Option<steward_audit::Event>, StoreError> {
        let row = sqlx::query(
            "SELECT body FROM evidence WHERE kind IN ('credential.issued', 'credential.exchanged', 'credential.federated') AND time >= $1 AND body LIKE $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(since)
        .bind(format!("%\"token_id\":\"{jti}\"%"))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| crate::rows::from_json("evidence event", &r.try_get::<String, _>("body")?))
            .transpose()
    }

    /// Every enforcement point that ever reported, by id.
    pub async fn enforcement_points(&self) -> Result<Vec<PointRow>, StoreError> {
        let sql = format!("SELECT {POINT_COLUMNS} FROM enforcement_points ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(point).collect()
    }
}

async fn require_row(
    conn: &mut sqlx::AnyConnection,
    sql: &'static str,
    kind: &'static str,
    id: &str,
) -> Result<(), StoreError> {
    match sqlx::query(sql).bind(id).fetch_optional(&mut *conn).await? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            kind,
            id: id.to_owned(),
        }),
    }
}

/// Stops publishing a retired signing key now. The signing key itself cannot be revoked:
/// nothing could sign until the next rotation.
async fn retire_key(conn: &mut sqlx::AnyConnection, kid: &str) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT retired_at FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "signing key",
            id: kid.to_owned(),
        })?;
    let retired: Option<String> = row.try_get("retired_at")?;
    if retired.is_none() {
        return Err(StoreError::CurrentSigningKey {
            kid: kid.to_owned(),
        });
    }
    sqlx::query("UPDATE signing_keys SET publish_until = $1 WHERE kid = $2")
        .bind(steward_model::timestamp::now())
        .bind(kid)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `plane` and every plane below it, read inside the transaction.
async fn subtree(conn: &mut sqlx::AnyConnection, plane: &str) -> Result<Vec<String>, StoreError> {
    let id = PlaneId::new(plane.to_owned()).map_err(StoreError::InvalidName)?;
    let planes = crate::registry::load_planes(conn).await?;
    if !id.is_root() && !planes.contains_key(&id) {
        return Err(StoreError::NotFound {
            kind: "plane",
            id: plane.to_owned(),
        });
    }
    Ok(steward_model::PlaneTree::new(&planes)
        .subtree(&id)
        .iter()
        .map(ToString::to_string)
        .collect())
}

/// Suspends every active identity of `planes`, each with its lifecycle change record.
async fn suspend_planes(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    planes: &[String],
    reason: &str,
    actor: &Actor,
) -> Result<(), StoreError> {
    for plane in planes {
        let ids: Vec<String> =
            sqlx::query("SELECT spiffe_id FROM identities WHERE plane = $1 AND state = 'active'")
                .bind(plane)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get("spiffe_id"))
                .collect::<Result<_, _>>()?;
        for id in ids {
            change_state_in_tx(backend, conn, &id, LifecycleState::Suspended, reason, actor)
                .await?;
        }
    }
    Ok(())
}

/// A revocation inside the caller's write transaction (the next epoch is `MAX + 1` under
/// its write lock): its side effects, the append-only row, its change record and evidence,
/// and on PostgreSQL the notification. Also how a decommission revokes in the transaction
/// that decommissions.
pub(crate) async fn revoke_in_tx(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    req: &RevokeRequest,
    actor: &Actor,
) -> Result<Revocation, StoreError> {
    let already = sqlx::query("SELECT epoch FROM revocations WHERE kind = $1 AND target = $2")
        .bind(req.kind.as_str())
        .bind(&req.target)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<i64, _>("epoch"))
        .transpose()?;
    // An identity or a plane may be revoked again (after reinstating it): the new
    // revocation covers the tokens issued since. Anything else is revoked once.
    let repeatable = matches!(req.kind, RevocationKind::Identity | RevocationKind::Plane);
    if let (Some(epoch), false) = (already, repeatable) {
        return Err(StoreError::AlreadyRevoked {
            kind: req.kind,
            target: req.target.clone(),
            epoch,
        });
    }
    let planes = match req.kind {
        RevocationKind::Token => Vec::new(),
        RevocationKind::Identity => {
            let to = req.identity.state();
            change_state_in_tx(backend, &mut *conn, &req.target, to, &req.reason, actor).await?;
            Vec::new()
        }
        RevocationKind::Issuer => {
            require_row(
                &mut *conn,
                "SELECT id FROM issuers WHERE id = $1",
                "trusted issuer",
                &req.target,
            )
            .await?;
            Vec::new()
        }
        RevocationKind::Key => {
            retire_key(&mut *conn, &req.target).await?;
            Vec::new()
        }
        RevocationKind::Plane => {
            let planes = subtree(&mut *conn, &req.target).await?;
            suspend_planes(backend, &mut *conn, &planes, &req.reason, actor).await?;
            planes
        }
    };
    let epoch: i64 = sqlx::query("SELECT COALESCE(MAX(epoch), 0) + 1 AS next FROM revocations")
        .fetch_one(&mut *conn)
        .await?
        .try_get("next")?;
    let r = Revocation {
        epoch,
        kind: req.kind,
        target: req.target.clone(),
        revoked_at: req.revoked_at,
        until: req.until,
        planes,
        reason: req.reason.clone(),
        actor: actor.label(),
    };
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO revocations ({REVOCATION_COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )))
    .bind(r.epoch)
    .bind(r.kind.as_str())
    .bind(&r.target)
    .bind(r.revoked_at)
    .bind(r.until)
    .bind(crate::rows::json(&r.planes))
    .bind(&r.reason)
    .bind(&r.actor)
    .bind(steward_model::timestamp::now())
    .execute(&mut *conn)
    .await?;
    record_change(
        backend,
        &mut *conn,
        actor,
        &format!("revocation.{}", r.kind),
        &r.target,
        None,
        Some(crate::rows::json(&r)),
    )
    .await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(REVOCATION_CHANNEL)
            .bind(r.epoch.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(r)
}
