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

/// Creates `dir` (mode `0700`) and `file` in it (mode `0600`), or tightens them when they
/// exist with more permissions, saying so.
fn private_files(dir: &Path, file: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(file)?;
        for (path, want) in [(dir, 0o700), (file, 0o600)] {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & !want != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(want))?;
                tracing::warn!(
                    path = %path.display(),
                    was = format!("{mode:o}"),
                    now = format!("{want:o}"),
                    "tightened the permissions of Steward's data: it holds the evidence log and sealed keys"
                );
            }
        }
        for suffix in ["-wal", "-shm"] {
            let mut name = file.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)?;
        let _ = file;
    }
    Ok(())
}

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Connections per pool; SQLite serialises writers anyway.
const MAX_CONNECTIONS: u32 = 8;
/// The file name of the embedded database inside the data directory.
pub const SQLITE_FILE: &str = "steward.db";

impl Store {
    /// Opens (creating if needed) the embedded SQLite store in `data_dir`.
    ///
    /// The directory is made (or tightened to) `0700` and the database file `0600`:
    /// the evidence log, admin credential hashes and sealed keys are nobody else's to
    /// read. SQLite gives its `-wal` and `-shm` files the database file's mode.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Self, StoreError> {
        let file = data_dir.join(SQLITE_FILE);
        private_files(data_dir, &file).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::connect(&format!("sqlite://{}?mode=rwc", file.display())).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_through(url, i64::MAX).await
    }

    /// [`Store::connect`], migrating only up to version `last`.
    async fn connect_through(url: &str, last: i64) -> Result<Self, StoreError> {
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
        store.migrate_through(last).await?;
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

    /// Applies the pending migrations up to and including version `last` (all of them
    /// in service; tests stop early to build a database as an older release left it).
    async fn migrate_through(&self, last: i64) -> Result<(), StoreError> {
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
                (
                    12,
                    "evidence_rowid",
                    include_str!("../migrations/sqlite/0012_evidence_rowid.sql"),
                ),
                (
                    13,
                    "signed_prunes",
                    include_str!("../migrations/sqlite/0013_signed_prunes.sql"),
                ),
                (
                    14,
                    "point_credentials",
                    include_str!("../migrations/sqlite/0014_point_credentials.sql"),
                ),
                (
                    15,
                    "exception_expiries",
                    include_str!("../migrations/sqlite/0015_exception_expiries.sql"),
                ),
                (
                    16,
                    "credential_expiry",
                    include_str!("../migrations/sqlite/0016_credential_expiry.sql"),
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
                (
                    12,
                    "evidence_rowid",
                    include_str!("../migrations/postgres/0012_evidence_rowid.sql"),
                ),
                (
                    13,
                    "signed_prunes",
                    include_str!("../migrations/postgres/0013_signed_prunes.sql"),
                ),
                (
                    14,
                    "point_credentials",
                    include_str!("../migrations/postgres/0014_point_credentials.sql"),
                ),
                (
                    15,
                    "exception_expiries",
                    include_str!("../migrations/postgres/0015_exception_expiries.sql"),
                ),
                (
                    16,
                    "credential_expiry",
                    include_str!("../migrations/postgres/0016_credential_expiry.sql"),
                ),
            ],
        };
        // Upgrading a database an older release left: some steps rebuild a table (12
        // copies the evidence log), so say what is running. A new database is quiet.
        let applied = self.applied_migration().await;
        if applied > 0 {
            for (version, name, _) in scripts.iter().filter(|(v, ..)| *v > applied && *v <= last) {
                tracing::info!(version, name, "bringing the database schema up to date");
            }
        }
        let migrations = scripts
            .iter()
            .filter(|(v, ..)| *v <= last)
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

    /// The newest migration applied to this database; 0 on a new one.
    async fn applied_migration(&self) -> i64 {
        use sqlx::Row;
        sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("v"))
            .unwrap_or(0)
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

    /// The first column of every row of raw SQL, as text; only for tests that look at what
    /// is stored (a key sealed at rest).
    #[doc(hidden)]
    pub async fn fetch_text_for_tests(&self, sql: &'static str) -> Result<Vec<String>, StoreError> {
        use sqlx::Row;
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
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
    use super::{Store, redact_url};

    fn decision(n: usize, correlation: Option<&str>) -> steward_audit::Event {
        let mut e = steward_audit::Event::new(
            steward_audit::EventKind::AccessDecision,
            format!("d-{n}"),
            format!("2026-11-29T00:00:{:02}Z", n % 60),
        );
        e.principal = Some(format!("spiffe://acme.example/w{}", n % 3));
        e.correlation_id = correlation.map(str::to_owned);
        e
    }

    /// Points registered before points were bound to credentials are bound on upgrade to
    /// the one live credential of the name they reported with, so no other credential
    /// can claim them; an ambiguous name leaves them to their next report.
    #[tokio::test]
    async fn points_of_an_older_release_are_bound_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let old = Store::connect_through(&url, 13).await.unwrap();
        for sql in [
            "INSERT INTO admin_credentials (id, name, role, token_hash, created_at, created_by) VALUES ('c-edge', 'edge', 'ingestor', 'h1', 't', 'x')",
            "INSERT INTO admin_credentials (id, name, role, token_hash, created_at, created_by) VALUES ('c-a', 'twin', 'ingestor', 'h2', 't', 'x')",
            "INSERT INTO admin_credentials (id, name, role, token_hash, created_at, created_by) VALUES ('c-b', 'twin', 'ingestor', 'h3', 't', 'x')",
            "INSERT INTO enforcement_points (id, kind, name, credential, bundle_version, epoch, registered_at, last_seen, last_seen_unix) VALUES ('gateway:edge', 'gateway', 'edge', 'edge', 1, 0, 't', 't', 0)",
            "INSERT INTO enforcement_points (id, kind, name, credential, bundle_version, epoch, registered_at, last_seen, last_seen_unix) VALUES ('gateway:twin', 'gateway', 'twin', 'twin', 1, 0, 't', 't', 0)",
        ] {
            old.execute_unchecked_for_tests(sql).await.unwrap();
        }
        old.close().await;
        let new = Store::connect(&url).await.unwrap();
        let owner = new.point_owner("gateway:edge").await.unwrap().unwrap();
        assert_eq!((owner.credential_id.as_str(), owner.live), ("c-edge", true));
        assert!(new.point_owner("gateway:twin").await.unwrap().is_none());
    }

    /// A database an older release left (evidence keyed by `seq BIGINT`) keeps its chain,
    /// its searches and its append-only guard across the rebuild around the rowid.
    #[tokio::test]
    async fn the_evidence_rebuild_keeps_an_old_log_intact() {
        use crate::EvidenceFilter;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let old = Store::connect_through(&url, 11).await.unwrap();
        let events: Vec<_> = (1..=5_000)
            .map(|n| decision(n, (n % 1_000 == 0).then_some("trace-a")))
            .collect();
        old.append_evidence(&events).await.unwrap();
        let head = old.evidence_head().await.unwrap();
        old.close().await;

        let new = Store::connect(&url).await.unwrap();
        let ddl: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'evidence'")
                .fetch_one(&new.pool)
                .await
                .unwrap();
        assert!(ddl.contains("seq INTEGER PRIMARY KEY"), "{ddl}");
        assert_eq!(new.evidence_head().await.unwrap(), head);
        let report = new.verify_evidence().await.unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.events, 5_000);
        let traced = new
            .evidence_search(&EvidenceFilter {
                correlation_id: Some("trace-a".into()),
                limit: 100,
                ..EvidenceFilter::default()
            })
            .await
            .unwrap();
        let seqs: Vec<i64> = traced.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1_000, 2_000, 3_000, 4_000, 5_000]);
        let plan = new
            .search_plan_for_tests(
                &EvidenceFilter {
                    correlation_id: Some("trace-a".into()),
                    limit: 100,
                    ..EvidenceFilter::default()
                },
                (0, 1),
            )
            .await
            .unwrap();
        assert!(plan.contains("evidence_correlation_block"), "{plan}");
        let refused = new
            .execute_unchecked_for_tests("DELETE FROM evidence WHERE seq = 7")
            .await;
        assert!(
            refused.is_err(),
            "the append-only guard must survive the rebuild"
        );
        // Appends continue the same chain.
        new.append_evidence(&[decision(5_001, None)]).await.unwrap();
        assert!(new.verify_evidence().await.unwrap().ok());
    }

    /// The data directory and the database files are the server user's alone, also
    /// when an earlier release (or an operator) left them readable by others.
    #[cfg(unix)]
    #[tokio::test]
    async fn data_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("fresh");
        let store = Store::open_data_dir(&fresh).await.unwrap();
        store.append_evidence(&[decision(1, None)]).await.unwrap();
        assert_eq!(mode(&fresh), 0o700);
        for name in ["steward.db", "steward.db-wal", "steward.db-shm"] {
            let path = fresh.join(name);
            if path.exists() {
                assert_eq!(mode(&path), 0o600, "{name}");
            }
        }
        store.close().await;
        // Loose permissions left by an older release are tightened on open.
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = fresh.join("steward.db");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open_data_dir(&fresh).await.unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert!(store.verify_evidence().await.unwrap().ok());
    }

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
