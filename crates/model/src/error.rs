/// What was wrong with a value, phrased for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A SPIFFE ID that does not follow the SPIFFE ID specification.
    #[error("invalid SPIFFE ID `{value}`: {reason}")]
    SpiffeId { value: String, reason: &'static str },
    /// A trust domain name that SPIFFE would not accept.
    #[error("invalid trust domain `{value}`: {reason}")]
    TrustDomain { value: String, reason: &'static str },
    /// An identifier (plane, owner, environment …) outside the allowed alphabet.
    #[error("invalid {what} `{value}`: {reason}")]
    Name {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// An HTTP path that cannot be decided unambiguously (see `HttpPath`).
    #[error("refused HTTP path `{value}`: {reason}")]
    HttpPath { value: String, reason: &'static str },
    /// A transport mapping that cannot match anything sensible.
    #[error("invalid transport mapping: {0}")]
    Mapping(String),
    /// A lifecycle change that the lifecycle forbids.
    #[error("cannot move identity from `{from}` to `{to}`: {reason}")]
    Lifecycle {
        from: &'static str,
        to: &'static str,
        reason: &'static str,
    },
}
