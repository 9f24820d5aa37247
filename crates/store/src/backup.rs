//! Online snapshots of the embedded store: `VACUUM INTO` writes a consistent copy of the
//! whole database (registry, policy, sealed keys, the evidence chain and its checkpoints)
//! while the server keeps serving; SQLite's WAL lets it read beside the writer. The copy
//! is an ordinary SQLite file that [`Store::connect`] opens (and migrates) like any other.

use std::path::Path;

use sqlx::Executor;

use crate::{Backend, Store, StoreError};

impl Store {
    /// Writes a consistent snapshot of this SQLite store to `file`, which must not exist.
    /// The file is made first, empty and owner-only, so the sealed keys and credential
    /// hashes it receives are never readable by others, and a file that appears meanwhile
    /// is never written over. PostgreSQL is backed up with its own tools (`pg_dump`),
    /// which this refuses to stand in for.
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
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(file).map_err(|e| {
            StoreError::Backup(if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(
                    "`{}` exists already; a snapshot never overwrites a file",
                    file.display()
                )
            } else {
                format!("cannot create `{}`: {e}", file.display())
            })
        })?;
        // SQLite writes into an empty file as into a new one.
        let mut conn = self.pool.acquire().await?;
        let written = conn.execute(sqlx::query("VACUUM INTO ?").bind(path)).await;
        if let Err(e) = written {
            let _ = std::fs::remove_file(file);
            return Err(e.into());
        }
        Ok(())
    }
}
