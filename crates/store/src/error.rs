/// Why a store operation failed. Messages name the object and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// An online snapshot was asked of a store that cannot take one here.
    #[error("{0}")]
    Backup(String),
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
    /// A lifecycle change the one-way lifecycle forbids.
    #[error("{0}")]
    Lifecycle(steward_model::ModelError),
    /// An identity may not be created already decommissioned.
    #[error("an identity cannot be created decommissioned")]
    CreatedDecommissioned,
    /// A name that is not a valid identifier of its kind.
    #[error("{0}")]
    InvalidName(steward_model::ModelError),
    /// An identity names an owner the registry does not hold.
    #[error("owner `{owner}` does not exist: every identity needs an accountable owner")]
    OwnerMissing { owner: String },
    /// An identity names an owner that was removed.
    #[error("owner `{owner}` has been removed: choose a current owner")]
    OwnerRemoved { owner: String },
    /// An identity the governance repository manages is changed only by an apply.
    #[error(
        "identity `{id}` is managed by the governance repository: add or remove its keys there (under the identity's `credentials`, or a `client_keys` file), then apply"
    )]
    ManagedByRepository { id: String },
    /// The owner to remove was removed before.
    #[error("owner `{owner}` was already removed")]
    OwnerAlreadyRemoved { owner: String },
    /// The current signing key cannot be revoked: tokens would stop being issued.
    #[error("`{kid}` is the current signing key; run `steward keys rotate` first, then revoke it")]
    CurrentSigningKey { kid: String },
    /// What is revoked once (a token, a key, a client) was revoked before.
    #[error("{kind} `{target}` was already revoked at epoch {epoch}")]
    AlreadyRevoked {
        kind: steward_model::RevocationKind,
        target: String,
        epoch: i64,
    },
    /// A review item is attested once.
    #[error("`{spiffe_id}` was already attested `{decision}` in campaign `{campaign}` by {by}")]
    AlreadyAttested {
        spiffe_id: String,
        campaign: String,
        decision: String,
        by: String,
    },
    /// The evidence checkpoint key could not be made, opened or sealed (a wrong KEK, or
    /// a damaged stored key).
    #[error("the evidence checkpoint key `{id}`: {detail}")]
    CheckpointKey { id: String, detail: String },
    /// An evidence event could not be put in its canonical form.
    #[error("cannot encode evidence: {0}")]
    Encode(String),
    /// No randomness for a new secret: the operating system's source failed.
    #[error("no randomness available for a new secret: {0}")]
    NoRandomness(String),
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
