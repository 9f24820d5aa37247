use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};
use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::StoreError;

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The one store: registry, configuration versions, admin credentials and admin changes.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The URL connected to, for the PostgreSQL notification listener. Never logged
    /// (it may hold a password): use `redact_url`.
    url: std::sync::Arc<str>,
}

/// Notifications on one PostgreSQL channel (`LISTEN`), e.g. committed revocations.
pub struct Notifications(sqlx::postgres::PgListener);

impl Notifications {
    /// The next notification's payload. After a lost connection the listener reconnects
    /// on the next call; notifications sent meanwhile are lost, so callers also poll.
    pub async fn recv(&mut self) -> Result<(String, String), StoreError> {
        let n = self.0.recv().await?;
        Ok((n.channel().to_owned(), n.payload().to_owned()))
    }
}

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Connections per pool; SQLite serialises writers anyway.
const MAX_CONNECTIONS: u32 = 8;
/// The file name of the embedded database inside the data directory.
pub const SQLITE_FILE: &str = "steward.db";

impl Store {
    /// Opens (creating if needed) the embedded SQLite store in `data_dir`.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let file = data_dir.join(SQLITE_FILE);
        Self::connect(&format!("sqlite://{}?mode=rwc", file.display())).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; FULL sync makes every
                    // acknowledged commit survive a crash; foreign keys are not used.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    // A larger page cache (8 MiB per pooled connection: 64 MiB grew the
                    // idle server to 82 MiB) and fewer, larger WAL checkpoints: the
                    // evidence log appends tens of thousands of rows a second.
                    conn.execute("PRAGMA cache_size = -8192").await?;
                    conn.execute("PRAGMA wal_autocheckpoint = 8192").await?;
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
                    )))
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        let store = Self {
            pool,
            backend,
            url: url.into(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Listens on PostgreSQL notification channels; `None` on SQLite (one process: the
    /// caller wakes itself).
    pub async fn listen(&self, channels: &[&str]) -> Result<Option<Notifications>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(Some(Notifications(listener)))
    }

    /// The sequence number of the newest admin change: it moves with every change to the
    /// registry, the policy or the keys, whichever replica made it.
    pub async fn latest_change_seq(&self) -> Result<i64, StoreError> {
        use sqlx::Row;
        Ok(
            sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM admin_changes")
                .fetch_one(&self.pool)
                .await?
                .try_get("seq")?,
        )
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let scripts: &[(i64, &str, &'static str)] = match self.backend {
            Backend::Sqlite => &[
                (
                    1,
                    "registry",
                    include_str!("../migrations/sqlite/0001_registry.sql"),
                ),
                (
                    2,
                    "evidence",
                    include_str!("../migrations/sqlite/0002_evidence.sql"),
                ),
                (
                    3,
                    "policy",
                    include_str!("../migrations/sqlite/0003_policy.sql"),
                ),
                (
                    4,
                    "tokens",
                    include_str!("../migrations/sqlite/0004_tokens.sql"),
                ),
                (
                    5,
                    "client_secrets",
                    include_str!("../migrations/sqlite/0005_client_secrets.sql"),
                ),
                (
                    6,
                    "jit_approvals",
                    include_str!("../migrations/sqlite/0006_jit_approvals.sql"),
                ),
                (
                    7,
                    "egress_secrets",
                    include_str!("../migrations/sqlite/0007_egress_secrets.sql"),
                ),
                (
                    8,
                    "revocations",
                    include_str!("../migrations/sqlite/0008_revocations.sql"),
                ),
                (
                    9,
                    "reviews",
                    include_str!("../migrations/sqlite/0009_reviews.sql"),
                ),
                (
                    10,
                    "usage",
                    include_str!("../migrations/sqlite/0010_usage.sql"),
                ),
                (
                    11,
                    "evidence_blocks",
                    include_str!("../migrations/sqlite/0011_evidence_blocks.sql"),
                ),
            ],
            Backend::Postgres => &[
                (
                    1,
                    "registry",
                    include_str!("../migrations/postgres/0001_registry.sql"),
                ),
                (
                    2,
                    "evidence",
                    include_str!("../migrations/postgres/0002_evidence.sql"),
                ),
                (
                    3,
                    "policy",
                    include_str!("../migrations/postgres/0003_policy.sql"),
                ),
                (
                    4,
                    "tokens",
                    include_str!("../migrations/postgres/0004_tokens.sql"),
                ),
                (
                    5,
                    "client_secrets",
                    include_str!("../migrations/postgres/0005_client_secrets.sql"),
                ),
                (
                    6,
                    "jit_approvals",
                    include_str!("../migrations/postgres/0006_jit_approvals.sql"),
                ),
                (
                    7,
                    "egress_secrets",
                    include_str!("../migrations/postgres/0007_egress_secrets.sql"),
                ),
                (
                    8,
                    "revocations",
                    include_str!("../migrations/postgres/0008_revocations.sql"),
                ),
                (
                    9,
                    "reviews",
                    include_str!("../migrations/postgres/0009_reviews.sql"),
                ),
                (
                    10,
                    "usage",
                    include_str!("../migrations/postgres/0010_usage.sql"),
                ),
                (
                    11,
                    "evidence_blocks",
                    include_str!("../migrations/postgres/0011_evidence_blocks.sql"),
                ),
            ],
        };
        let migrations = scripts
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts a write transaction that holds the database's write lock from its first
    /// statement, so read-then-write sequences (plans, applies) cannot interleave.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                // One writer at a time across every replica sharing this database.
                tx.execute("SELECT pg_advisory_xact_lock(727374)").await?;
                Ok(tx)
            }
        }
    }

    /// Starts a transaction for independent single-row writes (enforcement points'
    /// reports): on SQLite it still takes the write lock up front (no lock upgrade to fail
    /// on), on PostgreSQL it does not queue behind applies on the global writer lock.
    pub(crate) async fn begin_light(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => Ok(self.pool.begin().await?),
        }
    }

    /// Runs raw SQL; only for tests that prove the schema's own guards (append-only
    /// triggers) hold against direct writes.
    #[doc(hidden)]
    pub async fn execute_unchecked_for_tests(&self, sql: &'static str) -> Result<u64, StoreError> {
        Ok(self.pool.execute(sql).await?.rows_affected())
    }

    /// Closes every connection (tests and shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database URL with any password replaced, safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(redact_url("mysql://u:p@h/db"), "mysql://u:***@h/db");
    }
}
