//! The claims of a Steward token: the JWT-SVID claims (RFC 7519, SPIFFE JWT-SVID) plus
//! what enforcement needs to decide without a lookup.

use serde::{Deserialize, Serialize};

/// `aud`: one audience or several. Serialized as a string when there is one, as JWT-SVID
/// validators and RFC 7519 both allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(all) => all.iter().any(|a| a == aud),
        }
    }

    pub fn as_slice(&self) -> &[String] {
        match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(all) => all,
        }
    }
}

/// One hop of a delegation chain (RFC 8693 §4.1): who acted, and before them whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// This actor and, behind it, each one it acted for: the one walk of a chain.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |a| a.act.as_deref())
    }

    /// Hops in the chain, this one included.
    pub fn depth(&self) -> usize {
        self.chain().count()
    }
}

/// Proof-of-possession binding (RFC 7800 `cnf`): a client certificate (RFC 8705) or a DPoP
/// key (RFC 9449).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// The claims Steward issues and checks. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The identity's SPIFFE ID.
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// The environment the identity is registered in (a dev token is refused in prod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The plane that owns the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plane: Option<String>,
    /// Space-separated capability ids the token is limited to; absent = no narrowing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The named workflow a just-in-time credential was issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// For an AI agent federated from an external issuer: its model tier, as mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_tier: Option<String>,
    /// The task an agent or pipeline token was minted for, as mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_scope: Option<String>,
    /// For a token federated from a trusted external issuer: that issuer's id, so revoking
    /// the issuer revokes the tokens it vouched for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_by: Option<String>,
    /// Request-context attributes Steward vouched for when it issued the token (for a
    /// federated token, copied from the external token's verified claims). Declared
    /// attributes with a `token_claim` source are read from here, never from a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Claims {
    /// The delegation chain's subjects (`act`), the most recent actor first; empty when
    /// the token was not obtained by delegation.
    pub fn actors(&self) -> impl Iterator<Item = &str> {
        self.act
            .iter()
            .flat_map(Actor::chain)
            .map(|a| a.sub.as_str())
    }
}

impl Claims {
    /// The scope as a list of capability ids.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.iter().flat_map(|s| s.split_ascii_whitespace())
    }
}
