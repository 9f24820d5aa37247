//! Central revocation: what was revoked, in which order, and how an enforcement point
//! decides whether a token falls under it.
//!
//! Revocations are numbered by a gapless, monotonically increasing **epoch**: a point that
//! has applied epoch N has applied every revocation up to N, so "acknowledged epoch N" is
//! a complete statement. The control plane allocates epochs under its write lock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a revoked identity becomes: suspended (it can be reactivated) or decommissioned
/// (one-way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevokedIdentity {
    Suspended,
    Decommissioned,
}

impl RevokedIdentity {
    /// The lifecycle state the identity moves to.
    pub fn state(self) -> crate::LifecycleState {
        match self {
            Self::Suspended => crate::LifecycleState::Suspended,
            Self::Decommissioned => crate::LifecycleState::Decommissioned,
        }
    }
}

/// What a revocation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationKind {
    /// One token, by its `jti`.
    Token,
    /// Every token issued so far to an identity (by SPIFFE ID), or acting through it; the
    /// identity is suspended or decommissioned in the same transaction.
    Identity,
    /// Every token federated from a trusted external issuer (by issuer id); the issuer is
    /// refused for federation from then on.
    Issuer,
    /// Every token signed by a signing key (by `kid`); the key stops being published.
    Key,
    /// Every token issued so far to identities of a plane and the planes below it; its
    /// active identities are suspended.
    Plane,
}

impl RevocationKind {
    pub const ALL: [RevocationKind; 5] = [
        Self::Token,
        Self::Identity,
        Self::Issuer,
        Self::Key,
        Self::Plane,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Identity => "identity",
            Self::Issuer => "issuer",
            Self::Key => "key",
            Self::Plane => "plane",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the revocation only matters for tokens issued before it: those expire
    /// within the longest token lifetime, after which the entry can be forgotten by points.
    pub fn expires_with_tokens(self) -> bool {
        matches!(self, Self::Token | Self::Identity | Self::Plane)
    }
}

impl fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revocation as recorded and as pushed to enforcement points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Position in the revocation order, from 1, without gaps.
    pub epoch: i64,
    pub kind: RevocationKind,
    /// The `jti`, SPIFFE ID, issuer id, `kid` or plane id.
    pub target: String,
    /// Seconds since the Unix epoch: tokens issued at or before this are covered.
    pub revoked_at: i64,
    /// After this (seconds since the Unix epoch) no token it covers can still be valid, so
    /// points may forget it; `None` = never (keys and issuers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// For a plane: the plane and every plane below it when it was revoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planes: Vec<String>,
    pub reason: String,
    /// The admin credential that revoked.
    pub actor: String,
}

/// The parts of a token a revocation can cover; the enforcement core fills it from the
/// validated claims.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    pub jti: &'a str,
    pub kid: &'a str,
    pub sub: &'a str,
    pub iat: i64,
    pub plane: Option<&'a str>,
    /// The trusted issuer a federated token came from.
    pub federated_by: Option<&'a str>,
}

impl Revocation {
    /// Whether this revocation covers the token: `actors` are the identities in its `act`
    /// chain (a token acting through a revoked identity is revoked too).
    pub fn covers<'a>(
        &self,
        token: &TokenFacts<'_>,
        mut actors: impl Iterator<Item = &'a str>,
    ) -> bool {
        match self.kind {
            RevocationKind::Token => token.jti == self.target,
            RevocationKind::Key => token.kid == self.target,
            RevocationKind::Issuer => token.federated_by == Some(self.target.as_str()),
            RevocationKind::Identity => {
                token.iat <= self.revoked_at
                    && (token.sub == self.target || actors.any(|a| a == self.target))
            }
            RevocationKind::Plane => {
                token.iat <= self.revoked_at
                    && token
                        .plane
                        .is_some_and(|p| self.planes.iter().any(|q| q == p))
            }
        }
    }

    /// One line for logs and errors.
    pub fn describe(&self) -> String {
        format!(
            "{} `{}` revoked (epoch {}): {}",
            self.kind, self.target, self.epoch, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: RevocationKind, target: &str) -> Revocation {
        Revocation {
            epoch: 1,
            kind,
            target: target.into(),
            revoked_at: 100,
            until: None,
            planes: vec!["payments".into(), "payments-eu".into()],
            reason: "test".into(),
            actor: "admin".into(),
        }
    }

    const T: TokenFacts<'static> = TokenFacts {
        jti: "j1",
        kid: "k1",
        sub: "spiffe://example.org/a",
        iat: 90,
        plane: Some("payments-eu"),
        federated_by: Some("github"),
    };

    #[test]
    fn each_kind_covers_what_it_names() {
        let none = std::iter::empty::<&str>;
        assert!(r(RevocationKind::Token, "j1").covers(&T, none()));
        assert!(!r(RevocationKind::Token, "j2").covers(&T, none()));
        assert!(r(RevocationKind::Key, "k1").covers(&T, none()));
        assert!(r(RevocationKind::Issuer, "github").covers(&T, none()));
        assert!(!r(RevocationKind::Issuer, "gitlab").covers(&T, none()));
        assert!(r(RevocationKind::Identity, "spiffe://example.org/a").covers(&T, none()));
        assert!(r(RevocationKind::Plane, "payments").covers(&T, none()));
        let other_plane = TokenFacts {
            plane: Some("support"),
            ..T
        };
        assert!(!r(RevocationKind::Plane, "payments").covers(&other_plane, none()));
    }

    #[test]
    fn identity_covers_actors_and_only_older_tokens() {
        let actor = r(RevocationKind::Identity, "spiffe://example.org/agent");
        assert!(actor.covers(&T, ["spiffe://example.org/agent"].into_iter()));
        assert!(!actor.covers(&T, ["spiffe://example.org/other"].into_iter()));
        let newer = TokenFacts { iat: 101, ..T };
        let ident = r(RevocationKind::Identity, "spiffe://example.org/a");
        assert!(!ident.covers(&newer, std::iter::empty()));
    }
}
