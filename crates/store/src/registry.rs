//! Reading and changing the identity registry outside of governance applies.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

use steward_governance::{PolicyFile, State, StoredIdentity};
use steward_model::{
    Capability, Identity, LifecycleState, Owner, OwnerKind, Plane, PlaneId, Settings, TrustedIssuer,
};

use steward_api::{ConfigVersion, IdentityRecord, OwnerRecord, RegistryCounts};

use crate::admin::{Actor, record_change};

/// One change to an API-managed identity's client keys.
#[derive(Debug, Clone)]
pub enum ClientKeyEdit {
    /// Registers a new key (its `kid` must be new for the identity).
    Add(steward_model::ClientKey),
    /// Removes the key with this `kid`: assertions signed with it are refused from then on.
    Remove(String),
}
use crate::rows::{IDENTITY_COLUMNS, from_json, identity, identity_record, json};
use crate::{Store, StoreError};

/// Filters for listing identities; unset fields match everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdentityFilter {
    /// Only these planes (a plane admin's subtree is expanded by the caller).
    pub planes: Option<Vec<PlaneId>>,
    pub environment: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
    pub owner: Option<String>,
    pub orphaned: Option<bool>,
    /// Keyset pagination: only ids after this one.
    pub after: Option<String>,
    pub limit: i64,
}

const OWNER_REMOVED: &str = "(SELECT COUNT(*) FROM owners o WHERE o.id = identities.owner AND o.removed_at IS NOT NULL) AS owner_removed";

impl Store {
    /// The latest applied configuration version (0 before the first apply).
    pub async fn config_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM config_versions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("v")?)
    }

    /// Applied configuration versions, newest first.
    pub async fn config_versions(&self, limit: i64) -> Result<Vec<ConfigVersion>, StoreError> {
        let rows = sqlx::query("SELECT version, applied_at, applied_by, digest, summary FROM config_versions ORDER BY version DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let summary: String = r.try_get("summary")?;
                Ok(ConfigVersion {
                    version: r.try_get("version")?,
                    applied_at: r.try_get("applied_at")?,
                    applied_by: r.try_get("applied_by")?,
                    digest: r.try_get("digest")?,
                    summary: from_json("config version summary", &summary)?,
                })
            })
            .collect()
    }

    /// Everything a governance plan compares against.
    pub async fn load_state(&self) -> Result<State, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_state(&mut conn).await
    }

    /// All planes, root first.
    pub async fn planes(&self) -> Result<Vec<Plane>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let root = root_plane(&mut conn).await?;
        let mut out = vec![root];
        out.extend(load_planes(&mut conn).await?.into_values());
        Ok(out)
    }

    /// `plane` and every plane beneath it.
    pub async fn plane_subtree(&self, plane: &PlaneId) -> Result<Vec<PlaneId>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let planes = load_planes(&mut conn).await?;
        Ok(steward_model::PlaneTree::new(&planes).subtree(plane))
    }

    /// Owners, including removed ones.
    pub async fn owners(&self) -> Result<Vec<OwnerRecord>, StoreError> {
        let rows = sqlx::query("SELECT id, name, email, kind, removed_at FROM owners ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(owner_record).collect()
    }

    pub async fn capabilities(&self) -> Result<Vec<Capability>, StoreError> {
        let rows = sqlx::query("SELECT body FROM capabilities ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| from_json("capability", &r.try_get::<String, _>("body")?))
            .collect()
    }

    pub async fn issuers(&self) -> Result<Vec<TrustedIssuer>, StoreError> {
        let rows = sqlx::query("SELECT body FROM issuers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| from_json("issuer", &r.try_get::<String, _>("body")?))
            .collect()
    }

    pub async fn policies(&self) -> Result<Vec<PolicyFile>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(load_policies(&mut conn).await?.into_values().collect())
    }

    /// One identity by SPIFFE ID.
    pub async fn identity(&self, spiffe_id: &str) -> Result<Option<IdentityRecord>, StoreError> {
        let sql = format!(
            "SELECT {IDENTITY_COLUMNS}, {OWNER_REMOVED} FROM identities WHERE spiffe_id = $1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(spiffe_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(identity_record).transpose()
    }

    /// An identity that must exist (just written in this store): its absence is `NotFound`.
    async fn existing_identity(&self, spiffe_id: &str) -> Result<IdentityRecord, StoreError> {
        self.identity(spiffe_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "identity",
                id: spiffe_id.to_owned(),
            })
    }

    /// Identities matching `filter`, ordered by SPIFFE ID.
    pub async fn identities(
        &self,
        filter: &IdentityFilter,
    ) -> Result<Vec<IdentityRecord>, StoreError> {
        let mut sql =
            format!("SELECT {IDENTITY_COLUMNS}, {OWNER_REMOVED} FROM identities WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut cond = |sql: &mut String, column: &str, value: &str| {
            binds.push(value.to_owned());
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        };
        if let Some(v) = &filter.environment {
            cond(&mut sql, "environment", v);
        }
        if let Some(v) = &filter.kind {
            cond(&mut sql, "kind", v);
        }
        if let Some(v) = &filter.state {
            cond(&mut sql, "state", v);
        }
        if let Some(v) = &filter.owner {
            cond(&mut sql, "owner", v);
        }
        if let Some(after) = &filter.after {
            binds.push(after.clone());
            sql.push_str(&format!(" AND spiffe_id > ${}", binds.len()));
        }
        if let Some(planes) = &filter.planes {
            if planes.is_empty() {
                return Ok(Vec::new());
            }
            let start = binds.len();
            binds.extend(planes.iter().map(|p| p.to_string()));
            let list: Vec<String> = (start + 1..=binds.len()).map(|n| format!("${n}")).collect();
            sql.push_str(&format!(" AND plane IN ({})", list.join(", ")));
        }
        if let Some(orphaned) = filter.orphaned {
            let op = if orphaned { "EXISTS" } else { "NOT EXISTS" };
            sql.push_str(&format!(" AND {op} (SELECT 1 FROM owners o WHERE o.id = identities.owner AND o.removed_at IS NOT NULL)"));
        }
        sql.push_str(&format!(" ORDER BY spiffe_id LIMIT ${}", binds.len() + 1));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.bind(filter.limit).fetch_all(&self.pool).await?;
        rows.iter().map(identity_record).collect()
    }

    /// Registers an identity through the API (not managed by the governance repository).
    pub async fn create_identity(
        &self,
        new: &Identity,
        actor: &Actor,
    ) -> Result<IdentityRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        if new.state == LifecycleState::Decommissioned {
            return Err(StoreError::CreatedDecommissioned);
        }
        // The identity was checked before it got here (`governance::identity_problems`);
        // these re-checks are integrity guards inside the write transaction, against an
        // owner or plane removed in between.
        let owner = sqlx::query("SELECT removed_at FROM owners WHERE id = $1")
            .bind(&new.owner)
            .fetch_optional(&mut *tx)
            .await?;
        match owner {
            None => {
                return Err(StoreError::OwnerMissing {
                    owner: new.owner.clone(),
                });
            }
            Some(row) if row.try_get::<Option<String>, _>("removed_at")?.is_some() => {
                return Err(StoreError::OwnerRemoved {
                    owner: new.owner.clone(),
                });
            }
            Some(_) => {}
        }
        if !new.plane.is_root() && !load_planes(&mut tx).await?.contains_key(&new.plane) {
            return Err(StoreError::NotFound {
                kind: "plane",
                id: new.plane.to_string(),
            });
        }
        let exists = sqlx::query("SELECT 1 AS x FROM identities WHERE spiffe_id = $1")
            .bind(new.spiffe_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists {
                kind: "identity",
                id: new.spiffe_id.to_string(),
            });
        }
        let now = steward_model::timestamp::now();
        insert_identities(
            self.backend,
            &mut tx,
            std::slice::from_ref(new),
            ManagedBy::Api,
            &now,
        )
        .await?;
        record_change(
            self.backend,
            &mut tx,
            actor,
            "identity.create",
            new.spiffe_id.as_str(),
            None,
            Some(json(new)),
        )
        .await?;
        tx.commit().await?;
        self.existing_identity(new.spiffe_id.as_str()).await
    }

    /// Adds or removes a client key of an identity registered through the API (keys of a
    /// repository-managed identity change only with the repository). The change is
    /// recorded with the key ids before and after; key material is public.
    pub async fn edit_client_keys(
        &self,
        spiffe_id: &str,
        edit: ClientKeyEdit,
        actor: &Actor,
    ) -> Result<IdentityRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE spiffe_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(spiffe_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "identity",
                id: spiffe_id.to_owned(),
            })?;
        if row.try_get::<i64, _>("managed")? != 0 {
            return Err(StoreError::ManagedByRepository {
                id: spiffe_id.to_owned(),
            });
        }
        let mut credentials = identity(&row)?.credentials;
        let kids = |c: &steward_model::Credentials| {
            serde_json::json!(c.public_keys.iter().map(|k| &k.kid).collect::<Vec<_>>()).to_string()
        };
        let before = kids(&credentials);
        let action = match edit {
            ClientKeyEdit::Add(key) => {
                if credentials.public_keys.iter().any(|k| k.kid == key.kid) {
                    return Err(StoreError::AlreadyExists {
                        kind: "client key",
                        id: key.kid,
                    });
                }
                credentials.public_keys.push(key);
                "identity.key.add"
            }
            ClientKeyEdit::Remove(kid) => {
                let n = credentials.public_keys.len();
                credentials.public_keys.retain(|k| k.kid != kid);
                if credentials.public_keys.len() == n {
                    return Err(StoreError::NotFound {
                        kind: "client key",
                        id: kid,
                    });
                }
                "identity.key.remove"
            }
        };
        sqlx::query("UPDATE identities SET credentials = $1, updated_at = $2 WHERE spiffe_id = $3")
            .bind(json(&credentials))
            .bind(steward_model::timestamp::now())
            .bind(spiffe_id)
            .execute(&mut *tx)
            .await?;
        record_change(
            self.backend,
            &mut tx,
            actor,
            action,
            spiffe_id,
            Some(before),
            Some(kids(&credentials)),
        )
        .await?;
        tx.commit().await?;
        self.existing_identity(spiffe_id).await
    }

    /// Moves an identity along its lifecycle; decommissioning is one-way.
    pub async fn set_identity_state(
        &self,
        spiffe_id: &str,
        to: LifecycleState,
        reason: &str,
        actor: &Actor,
    ) -> Result<IdentityRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let already = sqlx::query("SELECT state FROM identities WHERE spiffe_id = $1")
            .bind(spiffe_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("state"))
            .transpose()?;
        if to == LifecycleState::Decommissioned
            && already.as_deref() != Some(LifecycleState::Decommissioned.as_str())
        {
            // Decommissioning revokes, in the same transaction (for ever: this caller
            // does not know the longest token lifetime; the control plane's own route
            // revokes through `revoke` with one).
            crate::revocations::revoke_in_tx(
                self.backend,
                &mut tx,
                &crate::RevokeRequest {
                    kind: steward_model::RevocationKind::Identity,
                    target: spiffe_id.to_owned(),
                    reason: reason.to_owned(),
                    revoked_at: time::OffsetDateTime::now_utc().unix_timestamp(),
                    until: None,
                    identity: steward_model::RevokedIdentity::Decommissioned,
                },
                actor,
            )
            .await?;
        } else {
            change_state_in_tx(self.backend, &mut tx, spiffe_id, to, reason, actor).await?;
        }
        tx.commit().await?;
        self.existing_identity(spiffe_id).await
    }

    /// Marks an owner removed. Its identities stay, flagged as orphans; the
    /// returned list names them so the caller can reassign or decommission.
    pub async fn remove_owner(
        &self,
        owner: &str,
        actor: &Actor,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT removed_at FROM owners WHERE id = $1")
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        match row {
            None => {
                return Err(StoreError::NotFound {
                    kind: "owner",
                    id: owner.to_owned(),
                });
            }
            Some(r) if r.try_get::<Option<String>, _>("removed_at")?.is_some() => {
                return Err(StoreError::OwnerAlreadyRemoved {
                    owner: owner.to_owned(),
                });
            }
            Some(_) => {}
        }
        sqlx::query("UPDATE owners SET removed_at = $1 WHERE id = $2")
            .bind(steward_model::timestamp::now())
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        let orphans: Vec<String> = sqlx::query("SELECT spiffe_id FROM identities WHERE owner = $1 AND state <> 'decommissioned' ORDER BY spiffe_id")
            .bind(owner)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("spiffe_id"))
            .collect::<Result<_, _>>()?;
        let after = serde_json::json!({ "removed": true, "orphaned_identities": orphans.len() });
        record_change(
            self.backend,
            &mut tx,
            actor,
            "owner.remove",
            owner,
            None,
            Some(after.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(orphans)
    }

    /// Headline counts for status pages.
    pub async fn counts(&self) -> Result<RegistryCounts, StoreError> {
        let mut counts = RegistryCounts {
            config_version: self.config_version().await?,
            ..Default::default()
        };
        let one = |sql: &'static str| async move {
            sqlx::query(sql)
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>("n")
        };
        counts.planes = one("SELECT COUNT(*) AS n FROM planes").await? + 1;
        counts.owners = one("SELECT COUNT(*) AS n FROM owners WHERE removed_at IS NULL").await?;
        counts.capabilities = one("SELECT COUNT(*) AS n FROM capabilities").await?;
        counts.issuers = one("SELECT COUNT(*) AS n FROM issuers").await?;
        counts.policies = one("SELECT COUNT(*) AS n FROM policies").await?;
        counts.orphaned_identities = one(
            "SELECT COUNT(*) AS n FROM identities i WHERE i.state <> 'decommissioned' AND EXISTS (SELECT 1 FROM owners o WHERE o.id = i.owner AND o.removed_at IS NOT NULL)",
        )
        .await?;
        for row in sqlx::query("SELECT state, COUNT(*) AS n FROM identities GROUP BY state")
            .fetch_all(&self.pool)
            .await?
        {
            counts
                .identities
                .insert(row.try_get("state")?, row.try_get("n")?);
        }
        for row in sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM identities WHERE state <> 'decommissioned' GROUP BY kind",
        )
        .fetch_all(&self.pool)
        .await?
        {
            counts
                .identities_by_kind
                .insert(row.try_get("kind")?, row.try_get("n")?);
        }
        Ok(counts)
    }
}

/// Moves an identity along its lifecycle inside the caller's write transaction, with its
/// change record; a no-op when it is already in `to`.
pub(crate) async fn change_state_in_tx(
    backend: crate::Backend,
    conn: &mut sqlx::AnyConnection,
    spiffe_id: &str,
    to: LifecycleState,
    reason: &str,
    actor: &Actor,
) -> Result<(), StoreError> {
    let sql = format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE spiffe_id = $1");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(spiffe_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound {
            kind: "identity",
            id: spiffe_id.to_owned(),
        });
    };
    let before = identity(&row)?;
    before
        .state
        .check_transition(to)
        .map_err(StoreError::Lifecycle)?;
    if before.state != to {
        sqlx::query("UPDATE identities SET state = $1, updated_at = $2 WHERE spiffe_id = $3")
            .bind(to.as_str())
            .bind(steward_model::timestamp::now())
            .bind(spiffe_id)
            .execute(&mut *conn)
            .await?;
        let after = serde_json::json!({ "state": to.as_str(), "reason": reason });
        let before = serde_json::json!({ "state": before.state.as_str() });
        record_change(
            backend,
            conn,
            actor,
            &format!("identity.{}", verb(to)),
            spiffe_id,
            Some(before.to_string()),
            Some(after.to_string()),
        )
        .await?;
    }
    Ok(())
}

fn verb(to: LifecycleState) -> &'static str {
    match to {
        LifecycleState::Active => "reactivate",
        LifecycleState::Suspended => "suspend",
        LifecycleState::Decommissioned => "decommission",
    }
}

fn owner_record(r: &sqlx::any::AnyRow) -> Result<OwnerRecord, StoreError> {
    let kind: String = r.try_get("kind")?;
    Ok(OwnerRecord {
        owner: Owner {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            email: r.try_get("email")?,
            kind: OwnerKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                what: "owner kind",
                detail: kind.clone(),
            })?,
        },
        removed_at: r.try_get("removed_at")?,
    })
}

pub(crate) async fn root_plane(conn: &mut sqlx::AnyConnection) -> Result<Plane, StoreError> {
    let row = sqlx::query("SELECT body FROM root_settings WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    let settings: Settings = match row {
        Some(r) => from_json("root settings", &r.try_get::<String, _>("body")?)?,
        None => Settings::default(),
    };
    Ok(Plane {
        id: PlaneId::root(),
        parent: None,
        name: "Central security".into(),
        description: "The root plane: central guardrails.".into(),
        settings,
    })
}

pub(crate) async fn load_planes(
    conn: &mut sqlx::AnyConnection,
) -> Result<BTreeMap<PlaneId, Plane>, StoreError> {
    let rows = sqlx::query("SELECT id, parent, name, description, settings FROM planes")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let id: String = r.try_get("id")?;
        let parent: Option<String> = r.try_get("parent")?;
        let settings: String = r.try_get("settings")?;
        let corrupt = |v: &str| StoreError::Corrupt {
            what: "plane id",
            detail: v.to_owned(),
        };
        let plane = Plane {
            id: PlaneId::new(id.clone()).map_err(|_| corrupt(&id))?,
            parent: parent
                .map(|p| PlaneId::new(p.clone()).map_err(|_| corrupt(&p)))
                .transpose()?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            settings: from_json("plane settings", &settings)?,
        };
        out.insert(plane.id.clone(), plane);
    }
    Ok(out)
}

pub(crate) async fn load_policies(
    conn: &mut sqlx::AnyConnection,
) -> Result<BTreeMap<String, PolicyFile>, StoreError> {
    let rows = sqlx::query("SELECT path, plane, text FROM policies")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let plane: String = r.try_get("plane")?;
        let file = PolicyFile {
            path: r.try_get("path")?,
            plane: PlaneId::new(plane.clone()).map_err(|_| StoreError::Corrupt {
                what: "policy plane",
                detail: plane,
            })?,
            text: r.try_get("text")?,
        };
        out.insert(file.path.clone(), file);
    }
    Ok(out)
}

pub(crate) async fn load_state(conn: &mut sqlx::AnyConnection) -> Result<State, StoreError> {
    let root = root_plane(conn).await?;
    let mut state = State {
        root_settings: root.settings,
        planes: load_planes(conn).await?,
        ..Default::default()
    };
    for r in
        sqlx::query("SELECT id, name, email, kind, removed_at FROM owners WHERE removed_at IS NULL")
            .fetch_all(&mut *conn)
            .await?
    {
        let rec = owner_record(&r)?;
        state.owners.insert(rec.owner.id.clone(), rec.owner);
    }
    let sql = format!("SELECT {IDENTITY_COLUMNS} FROM identities");
    for r in sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?
    {
        let identity = identity(&r)?;
        let managed: i64 = r.try_get("managed")?;
        state.identities.insert(
            identity.spiffe_id.clone(),
            StoredIdentity {
                identity,
                managed: managed != 0,
            },
        );
    }
    for r in sqlx::query("SELECT body FROM capabilities")
        .fetch_all(&mut *conn)
        .await?
    {
        let c: Capability = from_json("capability", &r.try_get::<String, _>("body")?)?;
        state.capabilities.insert(c.id.clone(), c);
    }
    for r in sqlx::query("SELECT body FROM issuers")
        .fetch_all(&mut *conn)
        .await?
    {
        let i: TrustedIssuer = from_json("issuer", &r.try_get::<String, _>("body")?)?;
        state.issuers.insert(i.id.clone(), i);
    }
    state.policies = load_policies(conn).await?;
    if let Some((_, bundle)) = crate::policy::load_bundle(conn, None).await? {
        state.context_attributes = bundle.context_attributes;
        state.exceptions = bundle.exceptions;
        state.workflows = bundle.workflows;
    }
    Ok(state)
}

/// Rows per multi-row INSERT: well under SQLite's and PostgreSQL's bind limits.
const INSERT_BATCH: usize = 500;

/// Who manages an identity's registration: decides whether the next apply may change or
/// decommission it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManagedBy {
    /// Declared in the governance repository.
    Repository,
    /// Registered through the API; the repository leaves it alone.
    Api,
}

pub(crate) async fn insert_identities(
    backend: crate::Backend,
    conn: &mut sqlx::AnyConnection,
    identities: &[Identity],
    managed: ManagedBy,
    now: &str,
) -> Result<(), StoreError> {
    let head = format!("INSERT INTO identities ({IDENTITY_COLUMNS})");
    let full_batch = crate::rows::multi_insert(backend, &head, 14, INSERT_BATCH);
    for chunk in identities.chunks(INSERT_BATCH) {
        let sql = if chunk.len() == INSERT_BATCH {
            full_batch.clone()
        } else {
            crate::rows::multi_insert(backend, &head, 14, chunk.len())
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for i in chunk {
            q = q
                .bind(i.spiffe_id.to_string())
                .bind(i.plane.to_string())
                .bind(i.owner.clone())
                .bind(i.environment.clone())
                .bind(i.kind.as_str())
                .bind(i.classification.as_str())
                .bind(i.description.clone())
                .bind(json(&i.labels))
                .bind(i.state.as_str())
                .bind(json(&i.intended))
                .bind(json(&i.credentials))
                .bind(i64::from(managed == ManagedBy::Repository))
                .bind(now.to_owned())
                .bind(now.to_owned());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
