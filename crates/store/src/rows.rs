//! Conversions between stored rows and domain types. Every parse of stored text goes
//! through here so that a hand-edited database yields a clear `Corrupt` error, not a panic.

use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;

use steward_model::{Classification, Identity, IdentityKind, LifecycleState, PlaneId, SpiffeId};

use steward_api::IdentityRecord;

use crate::{Backend, StoreError};

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    // Plain data (maps, vectors, strings) always serialises.
    serde_json::to_string(value).unwrap_or_default()
}

pub(crate) fn from_json<T: DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

fn corrupt(what: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: format!("unexpected value `{value}`"),
    }
}

pub(crate) const IDENTITY_COLUMNS: &str = "spiffe_id, plane, owner, environment, kind, classification, description, labels, state, intended, credentials, managed, created_at, updated_at";

/// Reads an identity row selected with [`IDENTITY_COLUMNS`] plus `owner_removed`.
pub(crate) fn identity_record(row: &AnyRow) -> Result<IdentityRecord, StoreError> {
    let identity = identity(row)?;
    let managed: i64 = row.try_get("managed")?;
    let owner_removed: i64 = row.try_get("owner_removed").unwrap_or(0);
    Ok(IdentityRecord {
        identity,
        managed: managed != 0,
        orphaned: owner_removed != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn identity(row: &AnyRow) -> Result<Identity, StoreError> {
    let spiffe_id: String = row.try_get("spiffe_id")?;
    let plane: String = row.try_get("plane")?;
    let kind: String = row.try_get("kind")?;
    let classification: String = row.try_get("classification")?;
    let state: String = row.try_get("state")?;
    let labels: String = row.try_get("labels")?;
    let intended: String = row.try_get("intended")?;
    let credentials: String = row.try_get("credentials")?;
    Ok(Identity {
        spiffe_id: SpiffeId::parse(spiffe_id.clone())
            .map_err(|_| corrupt("identity SPIFFE ID", &spiffe_id))?,
        plane: PlaneId::new(plane.clone()).map_err(|_| corrupt("identity plane", &plane))?,
        owner: row.try_get("owner")?,
        environment: row.try_get("environment")?,
        kind: IdentityKind::parse(&kind).ok_or_else(|| corrupt("identity kind", &kind))?,
        classification: Classification::parse(&classification)
            .ok_or_else(|| corrupt("identity classification", &classification))?,
        description: row.try_get("description")?,
        labels: from_json("identity labels", &labels)?,
        state: LifecycleState::parse(&state).ok_or_else(|| corrupt("identity state", &state))?,
        intended: from_json("identity intended entitlements", &intended)?,
        credentials: from_json("identity credentials", &credentials)?,
    })
}

/// `INSERT INTO table (cols) VALUES ($1,…),($n,…)…` for `rows` rows of `cols` columns.
///
/// SQLite gets anonymous `?` instead of `$N`: sqlx asks SQLite for every parameter's name
/// while binding, and `sqlite3_bind_parameter_name` walks a list of all named parameters,
/// so a 6,500-parameter statement bound in quadratic time (100,000 identities took 12 s
/// instead of 1 s). Anonymous parameters have no names to walk.
pub(crate) fn multi_insert(backend: Backend, head: &str, cols: usize, rows: usize) -> String {
    let numbered = backend == Backend::Postgres;
    let mut sql = String::with_capacity(head.len() + rows * cols * 5);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            if numbered {
                sql.push('$');
                sql.push_str(&n.to_string());
            } else {
                sql.push('?');
            }
            n += 1;
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use crate::Backend;

    #[test]
    fn multi_insert_numbers_placeholders() {
        assert_eq!(
            super::multi_insert(Backend::Postgres, "INSERT INTO t (a, b)", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)"
        );
        assert_eq!(
            super::multi_insert(Backend::Sqlite, "INSERT INTO t (a, b)", 2, 2),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?)"
        );
    }
}
