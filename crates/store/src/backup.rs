//! Online snapshots of the embedded store: `VACUUM INTO` writes a consistent copy of the
//! whole database (registry, policy, sealed keys, the evidence chain and its checkpoints)
//! while the server keeps serving; SQLite's WAL lets it read beside the writer. The copy
//! is an ordinary SQLite file that [`Store::connect`] opens (and migrates) like any other.

use std::path::Path;

use sqlx::Executor;

use crate::{Backend, Store, StoreError};

impl Store {
    /// Writes a consistent snapshot of this SQLite store to `file`, which must not exist
    /// (SQLite refuses to write over one). PostgreSQL is backed up with its own tools
    /// (`pg_dump`), which this refuses to stand in for.
    pub async fn snapshot_into(&self, file: &Path) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Backup(
                "the store is PostgreSQL: back it up with `pg_dump --format=custom` (see docs/operations.md), then verify the copy with `steward audit verify` on a server restored from it".into(),
            ));
        }
        let Some(path) = file.to_str() else {
            return Err(StoreError::Backup(format!(
                "the snapshot path `{}` is not UTF-8 text; choose another",
                file.display()
            )));
        };
        if file.exists() {
            return Err(StoreError::Backup(format!(
                "`{}` exists already; a snapshot never overwrites a file",
                file.display()
            )));
        }
        let mut conn = self.pool.acquire().await?;
        conn.execute(sqlx::query("VACUUM INTO ?").bind(path))
            .await?;
        Ok(())
    }
}
