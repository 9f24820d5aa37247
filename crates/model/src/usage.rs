//! What identities actually did, folded from the evidence log: the store keeps these
//! aggregates, posture reads them.

/// One aggregate of an identity's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    pub principal: String,
    /// `access.decision`, `credential.issued|exchanged|federated` or `exception.granted`.
    pub kind: String,
    /// The capability decided (decisions only).
    pub capability: Option<String>,
    /// The action decided, or the grant type of a credential event.
    pub action: Option<String>,
    /// `allow` or `deny` (`None` when the event had none).
    pub outcome: Option<String>,
    /// The environment the decision was made in, or the issued token's environment.
    pub environment: Option<String>,
    /// The client key (JWT `kid`) a credential was obtained with (credential events).
    pub credential: Option<String>,
    pub count: i64,
    /// The oldest and newest event's time (RFC 3339).
    pub first: String,
    pub last: String,
}
