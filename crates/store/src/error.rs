/// Why a store operation failed. Messages name the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL names a backend Steward does not support.
    #[error(
        "unsupported database URL `{0}`: use `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`"
    )]
    UnsupportedUrl(String),
    /// The data directory could not be created.
    #[error("cannot create data directory `{path}`: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    /// The object does not exist.
    #[error("{kind} `{id}` does not exist")]
    NotFound { kind: &'static str, id: String },
    /// The object exists already.
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// The change breaks a rule of the registry (missing owner, one-way lifecycle …).
    #[error("{0}")]
    Rejected(String),
    /// The governance repository does not fit the current state.
    #[error(transparent)]
    Governance(#[from] steward_governance::GovernanceError),
    /// Someone applied another version since the plan was made.
    #[error(
        "configuration version is {actual}, not {expected}: someone applied a change since your plan; run plan again"
    )]
    VersionConflict { expected: i64, actual: i64 },
    /// A stored value could not be read back: the database was edited by hand or is corrupt.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
}
