use steward_model::Diagnostic;

/// Why a governance repository could not be read or accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GovernanceError {
    /// The repository has problems; nothing was applied.
    #[error("the governance repository has {} problem(s):\n{}", .0.len(), render(.0))]
    Invalid(Vec<Diagnostic>),
    /// A file or directory could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The repository exceeds a named limit.
    #[error("the governance repository is too large: {0}")]
    TooLarge(String),
    /// The repository parses, but its policy would not be published: it breaks the
    /// layering rules or Cedar validation (`PolicyError::Invalid`, with files and lines).
    #[error(transparent)]
    Policy(#[from] steward_policy::PolicyError),
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}
