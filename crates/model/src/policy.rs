//! Policy-related objects a governance repository declares besides the Cedar text:
//! request-context attributes the policies may read, and time-bound exceptions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

use crate::identity::enum_str;
use crate::{Action, CapabilityId, SpiffeId};

/// The value type of a declared request-context attribute. Kept to the few types an
/// enforcement point can fill from what it sees, so every PEP can send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ContextType {
    #[serde(rename = "string")]
    String,
    #[serde(rename = "long")]
    Long,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "set<string>")]
    StringSet,
}

enum_str!(ContextType { String => "string", Long => "long", Bool => "bool", StringSet => "set<string>" });

impl ContextType {
    /// Whether a JSON value is of this type (a set is a list of strings; a long fits i64).
    pub fn admits(self, value: &Value) -> bool {
        match (self, value) {
            (Self::String, Value::String(_)) | (Self::Bool, Value::Bool(_)) => true,
            (Self::Long, Value::Number(n)) => n.is_i64(),
            (Self::StringSet, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        }
    }

    /// Reads a header's text as this type: `true` or `false`, a decimal integer, the text
    /// itself, or a comma-separated set. Anything else is refused, never guessed.
    pub fn from_text(self, text: &str) -> Result<Value, String> {
        let text = text.trim();
        match self {
            // A proxy joins a header sent twice with commas (Envoy does), so `a,b` could
            // be two values: refused alike at every layer rather than read as one.
            Self::String if text.contains(',') => Err(
                "must not hold a comma: a header sent twice arrives joined with commas at some proxies, so one value cannot be told from two".into(),
            ),
            Self::String => Ok(Value::String(text.to_owned())),
            Self::Bool => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err("must be `true` or `false`".into()),
            },
            Self::Long => {
                let digits = text.strip_prefix('-').unwrap_or(text);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("must be a decimal integer".into());
                }
                text.parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| "is out of range for a long".into())
            }
            Self::StringSet => Ok(Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            )),
        }
    }
}

/// An organisation-specific request-context attribute (for example `amount_minor` or
/// `partner_id`). Declared attributes are optional in every request: policies test them
/// with `context has name`, so a PEP that cannot supply one gets the fail-closed branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextAttribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ContextType,
    #[serde(default)]
    pub description: String,
    /// Where enforcement points take it from. Without one, only callers that state the
    /// context themselves (AuthZEN, `steward authorize`, policy tests) supply it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ContextSource>,
}

/// Where an enforcement point reads a declared request-context attribute. Each source is
/// the only one: an attribute read from a verified source is never taken from a header
/// the client could write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ContextSource {
    /// A request header (HTTP, gRPC metadata), as trustworthy as the proxy in front that
    /// sets or overwrites it.
    Header(String),
    /// A member of the verified Steward token's `ctx` claim: what Steward vouched for when
    /// it issued the token (for a federated token, copied from the external issuer's
    /// verified claims by the issuer's `claim_mapping.context`).
    TokenClaim(String),
    /// A member of the `context` an AMQP publisher signed into its `steward-publisher`
    /// statement.
    MessageHeader(String),
    /// A top-level member of the `arguments` of an MCP tool call or prompt, at the MCP
    /// point: what the agent asks the tool to do (an amount, a customer id). The server
    /// gets exactly the arguments decided on.
    ToolArgument(String),
}

impl ContextSource {
    /// How the source reads in a record or an error, e.g. `header x-amount-minor`.
    pub fn describe(&self) -> String {
        match self {
            Self::Header(h) => format!("header `{h}`"),
            Self::TokenClaim(c) => format!("token claim `ctx.{c}`"),
            Self::MessageHeader(m) => format!("signed message context `{m}`"),
            Self::ToolArgument(a) => format!("tool argument `{a}`"),
        }
    }
}

/// A time-bound exception (break-glass or a migration waiver): it lifts the named
/// exceptionable guardrails for one principal on one capability until `expires_at`.
/// It never grants anything by itself: a plane policy must still permit the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyException {
    pub id: String,
    /// The accountable owner (an owner id of the registry).
    pub owner: String,
    pub reason: String,
    /// The change or incident ticket that approved it.
    pub ticket: String,
    pub principal: SpiffeId,
    pub capability: CapabilityId,
    /// Ids of the guardrails it lifts; each must be annotated `@exceptionable("true")`.
    pub lifts: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

impl PolicyException {
    /// Whether the exception still applies at `now`. Expiry needs no action from anyone.
    pub fn is_active(&self, now: time::OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

impl fmt::Display for PolicyException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exception {} ({} on {}, until {})",
            self.id,
            self.principal,
            self.capability,
            crate::timestamp::format(self.expires_at)
        )
    }
}

/// A named workflow that may obtain just-in-time credentials: who may ask, for which
/// capabilities, for how long at most. Each credential is approved by policy at the moment
/// it is asked for (the request carries `task_scope` = the workflow id), so a renewal works
/// only while policy still allows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub id: String,
    pub plane: crate::PlaneId,
    #[serde(default)]
    pub description: String,
    /// Identities that may request credentials for this workflow.
    pub requesters: Vec<SpiffeId>,
    /// The capabilities a credential of this workflow is limited to.
    pub scope: Vec<CapabilityId>,
    /// Longest lifetime of one credential, in seconds.
    pub max_ttl_secs: u64,
    /// Admin credential names whose approval each credential needs. Empty: policy
    /// approves (see above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

/// A recorded decision that a candidate policy would decide the other way (the dry-run
/// of a plan lists these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flip {
    pub event_id: String,
    pub time: String,
    pub principal: String,
    pub capability: Option<String>,
    pub action: Option<Action>,
    pub was: bool,
    pub now: bool,
    /// The candidate's deciding policies and reasons.
    pub policies: Vec<String>,
    pub reasons: Vec<String>,
}

/// One (capability, action) pair the policy allows an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub capability: String,
    pub action: Action,
    /// The permits that grant it.
    pub policies: Vec<String>,
    /// Exceptions it depends on (it stops when they expire).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<String>,
}

/// Effective against intended entitlements of one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementReport {
    pub principal: String,
    /// The context the permissions were computed under.
    pub context: Map<String, Value>,
    pub effective: Vec<Permission>,
    /// What the owner declared in the governance repository (`intended:`).
    pub intended: Vec<(String, Action)>,
    /// Allowed but not intended: candidates for removal (least privilege).
    pub excess: Vec<(String, Action)>,
    /// Intended but not allowed: the policy does not yet grant what the owner expects.
    pub missing: Vec<(String, Action)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A header's text becomes a typed value only when it reads as the declared type
    /// exactly: no rounding, no hex, no "yes".
    #[test]
    fn header_text_reads_as_the_declared_type_or_not_at_all() {
        assert_eq!(ContextType::Long.from_text(" 4200 "), Ok(json!(4200)));
        assert_eq!(ContextType::Long.from_text("-3"), Ok(json!(-3)));
        for bad in ["", "-", "42.0", "0x10", "1e3", "+5", "99999999999999999999"] {
            assert!(ContextType::Long.from_text(bad).is_err(), "{bad}");
        }
        assert_eq!(ContextType::Bool.from_text("true"), Ok(json!(true)));
        assert!(ContextType::Bool.from_text("yes").is_err());
        assert!(ContextType::Bool.from_text("True").is_err());
        assert_eq!(
            ContextType::StringSet.from_text("a, b,,c"),
            Ok(json!(["a", "b", "c"]))
        );
        assert_eq!(
            ContextType::String.from_text("eu-west-1"),
            Ok(json!("eu-west-1"))
        );
    }

    #[test]
    fn values_are_admitted_by_their_type_only() {
        assert!(ContextType::Long.admits(&json!(5)));
        assert!(!ContextType::Long.admits(&json!(5.5)));
        assert!(!ContextType::Long.admits(&json!("5")));
        assert!(ContextType::Bool.admits(&json!(false)));
        assert!(!ContextType::Bool.admits(&json!("true")));
        assert!(ContextType::StringSet.admits(&json!(["a"])));
        assert!(!ContextType::StringSet.admits(&json!(["a", 1])));
        assert!(ContextType::String.admits(&json!("x")));
    }
}
