/// What went wrong with evidence or its keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The checkpoint key could not be created or read.
    #[error("checkpoint signing key: {0}")]
    Key(String),
    /// An event could not be encoded (never expected for well-formed events).
    #[error("cannot encode evidence event: {0}")]
    Encode(String),
}
