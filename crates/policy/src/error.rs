use steward_model::Diagnostic;

/// Why a policy could not be compiled or an engine built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy bundle breaks a rule; every problem, with file and line.
    #[error("the policy is invalid: {} problem(s)", .0.len())]
    Invalid(Vec<Diagnostic>),
    /// The registry could not be turned into Cedar entities (a bug or corrupt data).
    #[error("cannot build the policy entities: {0}")]
    Entities(String),
}
