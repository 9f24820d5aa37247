//! Non-human identities, their owners and lifecycle.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::{Action, CapabilityId, ModelError, PlaneId, SpiffeId};

/// What sort of workload an identity stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    Service,
    Agent,
    Pipeline,
    Partner,
    /// A holder of a static API key or client secret: allowed, but always flagged.
    LegacyKey,
}

/// Data classification, ordered from least to most sensitive so that comparisons such as
/// "may touch at most confidential data" read naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Restricted,
}

/// Lifecycle of an identity. Decommissioned is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecycleState {
    Active,
    Suspended,
    Decommissioned,
}

impl LifecycleState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Decommissioned => "decommissioned",
        }
    }

    /// Parses the stored or typed form.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "decommissioned" => Some(Self::Decommissioned),
            _ => None,
        }
    }

    /// Checks that moving from `self` to `to` is allowed: anything may become
    /// decommissioned, nothing comes back from it.
    pub fn check_transition(self, to: Self) -> Result<(), ModelError> {
        if self == Self::Decommissioned && to != Self::Decommissioned {
            return Err(ModelError::Lifecycle {
                from: self.as_str(),
                to: to.as_str(),
                reason: "decommissioning is one-way; register a new identity instead",
            });
        }
        Ok(())
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! enum_str {
    ($ty:ty { $($variant:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            /// The stored and displayed form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),* }
            }
            /// Parses the stored or typed form.
            pub fn parse(value: &str) -> Option<Self> {
                match value { $($s => Some(Self::$variant),)* _ => None }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use enum_str;

enum_str!(IdentityKind { Service => "service", Agent => "agent", Pipeline => "pipeline", Partner => "partner", LegacyKey => "legacy-key" });
enum_str!(Classification { Public => "public", Internal => "internal", Confidential => "confidential", Restricted => "restricted" });

/// Whether an owner is a team or a named person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerKind {
    #[default]
    Team,
    Person,
}

enum_str!(OwnerKind { Team => "team", Person => "person" });

/// An accountable owner: every identity has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub name: String,
    pub email: String,
    pub kind: OwnerKind,
}

/// Something an identity's owner says it needs, the "intended" side of the intended / effective / used comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    pub capability: CapabilityId,
    pub actions: Vec<Action>,
}

/// Longest label key and value, and most labels per identity.
pub const MAX_LABEL_KEY: usize = 63;
pub const MAX_LABEL_VALUE: usize = 256;
pub const MAX_LABELS: usize = 64;

/// Every problem with a label set, phrased for the person who wrote it; empty when the
/// labels are fine. Shared by the governance parser and the admin API.
pub fn label_problems(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    if labels.len() > MAX_LABELS {
        out.push(format!("has more than {MAX_LABELS} labels"));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_LABEL_KEY
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !key_ok {
            out.push(format!(
                "label key `{k}` must be 1-{MAX_LABEL_KEY} letters, digits, `-`, `_`, `.` or `/`"
            ));
        }
        if v.len() > MAX_LABEL_VALUE {
            out.push(format!(
                "label `{k}` is longer than {MAX_LABEL_VALUE} characters"
            ));
        }
    }
    out
}

/// A non-human identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub spiffe_id: SpiffeId,
    pub plane: PlaneId,
    pub owner: String,
    pub environment: String,
    pub kind: IdentityKind,
    pub classification: Classification,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub state: LifecycleState,
    pub intended: Vec<Entitlement>,
    /// How the identity authenticates to the token endpoint and how long its tokens live.
    #[serde(default, skip_serializing_if = "Credentials::is_empty")]
    pub credentials: Credentials,
}

/// A public key an identity registers for `private_key_jwt` client authentication
/// (RFC 7523): an EC P-256 JWK with a `kid`. Only the public half ever reaches Steward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    pub kid: String,
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    /// `ES256` if given; no other value is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// When the key was registered (RFC 3339 date or time), for rotation-age findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// An identity's credential settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Keys accepted for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<ClientKey>,
    /// Longest lifetime of this identity's tokens, in seconds; the plane's
    /// `max_token_ttl_secs` still caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl_secs: Option<u64>,
    /// SHA-256 thumbprints (base64url, RFC 8705 `x5t#S256`) of client certificates that
    /// authenticate this identity over mutual TLS (`self_signed_tls_client_auth`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<String>,
    /// What this identity may do at the control plane as an enforcement point, with its
    /// own short-lived tokens instead of a static admin credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_point: Option<PointGrant>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.public_keys.is_empty()
            && self.token_ttl_secs.is_none()
            && self.tls_certificates.is_empty()
            && self.enforcement_point.is_none()
    }
}

/// What an enforcement point's own identity may ask of the control plane. A gateway,
/// an nginx endpoint or an AuthZEN caller authenticates like any workload (a registered
/// key or certificate, a token that expires) and is cut off by revoking the identity;
/// this grant is what it may do with that token and for which points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointGrant {
    /// The control-plane roles granted.
    pub roles: Vec<PointRole>,
    /// The point names it speaks for (a gateway's `name`, which covers each of its
    /// `<kind>:<name>` points). Needed for `bundle` and `report`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<String>,
}

impl PointGrant {
    /// Whether the grant includes `role`.
    pub fn has(&self, role: PointRole) -> bool {
        self.roles.contains(&role)
    }

    /// Whether `point` (a name, or a `<kind>:<name>` point id) is one this grant speaks
    /// for.
    pub fn speaks_for(&self, point: &str) -> bool {
        let name = point.split_once(':').map_or(point, |(_, name)| name);
        self.points.iter().any(|p| p == point || p == name)
    }
}

/// A control-plane role an enforcement point's identity may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointRole {
    /// Ask for decisions (AuthZEN).
    Decide,
    /// Report applied epochs and heartbeats, and ship decision records.
    Report,
    /// Fetch the signed policy bundle and follow the revocation stream.
    Bundle,
}

impl PointRole {
    /// The role as the repository spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decide => "decide",
            Self::Report => "report",
            Self::Bundle => "bundle",
        }
    }
}

impl fmt::Display for PointRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decommission_is_one_way() {
        use LifecycleState::*;
        assert!(Active.check_transition(Suspended).is_ok());
        assert!(Suspended.check_transition(Active).is_ok());
        assert!(Active.check_transition(Decommissioned).is_ok());
        assert!(Decommissioned.check_transition(Decommissioned).is_ok());
        let err = Decommissioned.check_transition(Active).unwrap_err();
        assert!(err.to_string().contains("one-way"), "{err}");
    }

    #[test]
    fn classification_orders_by_sensitivity() {
        assert!(Classification::Public < Classification::Restricted);
        assert!(Classification::Internal < Classification::Confidential);
    }

    #[test]
    fn enum_forms_round_trip() {
        for k in [
            IdentityKind::Service,
            IdentityKind::LegacyKey,
            IdentityKind::Agent,
        ] {
            assert_eq!(IdentityKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(
            serde_json::to_string(&IdentityKind::LegacyKey).unwrap(),
            "\"legacy-key\""
        );
    }
}
