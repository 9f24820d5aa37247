/// Why a token, an assertion or a key was refused. Messages name what was wrong and never
/// carry the token itself or any key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWS compact serialization, or its parts do not decode.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Longer than the configured maximum; refused before any parsing.
    #[error("token is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    /// A header parameter or algorithm Steward refuses (alg none, HS*, jku, x5u, crit...).
    #[error("refused header: {0}")]
    Header(String),
    /// The `kid` names no key in the trusted set.
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    /// The signature does not verify with the named key.
    #[error("the signature does not verify")]
    Signature,
    /// A claim is missing or has the wrong value.
    #[error("claim `{claim}`: {problem}")]
    Claim {
        claim: &'static str,
        problem: String,
    },
    /// `exp` is in the past (beyond the allowed skew).
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    /// `nbf` (or `iat`) is in the future (beyond the allowed skew).
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    /// A sender-bound token presented without its proof, or with another one.
    #[error("sender binding: {0}")]
    Binding(String),
    /// The revocation hook says this token, its subject or its issuer is revoked.
    #[error("revoked: {0}")]
    Revoked(String),
    /// A single-use value (client assertion `jti`) was presented again.
    #[error("replayed: {0}")]
    Replay(String),
    /// A key could not be generated, sealed, opened or parsed.
    #[error("{0}")]
    Key(String),
}
