//! The evidence model, schema `steward.evidence/1` (documented in docs/evidence.md).
//!
//! One flat record for every kind of event — issuance, exchange, federation, decisions,
//! revocations, policy changes, exceptions, reviews, admin actions — so one query, one
//! export and one trace cover them all. Fields that do not apply are absent.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The schema identifier every event carries; bump on incompatible changes.
pub const SCHEMA: &str = "steward.evidence/1";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "config.applied")]
    ConfigApplied,
    #[serde(rename = "identity.lifecycle")]
    IdentityLifecycle,
    #[serde(rename = "credential.issued")]
    CredentialIssued,
    #[serde(rename = "credential.exchanged")]
    CredentialExchanged,
    #[serde(rename = "credential.federated")]
    CredentialFederated,
    #[serde(rename = "credential.refused")]
    CredentialRefused,
    #[serde(rename = "access.decision")]
    AccessDecision,
    #[serde(rename = "revocation.issued")]
    RevocationIssued,
    #[serde(rename = "revocation.acknowledged")]
    RevocationAcknowledged,
    #[serde(rename = "exception.granted")]
    ExceptionGranted,
    #[serde(rename = "exception.used")]
    ExceptionUsed,
    #[serde(rename = "exception.expired")]
    ExceptionExpired,
    #[serde(rename = "review.attested")]
    ReviewAttested,
    #[serde(rename = "admin.action")]
    AdminAction,
    /// Retention deleted the oldest events; the signed prune is in `details`.
    #[serde(rename = "evidence.pruned")]
    EvidencePruned,
}

impl EventKind {
    /// Every kind, for documentation and input validation.
    pub const ALL: [EventKind; 15] = [
        Self::ConfigApplied,
        Self::IdentityLifecycle,
        Self::CredentialIssued,
        Self::CredentialExchanged,
        Self::CredentialFederated,
        Self::CredentialRefused,
        Self::AccessDecision,
        Self::RevocationIssued,
        Self::RevocationAcknowledged,
        Self::ExceptionGranted,
        Self::ExceptionUsed,
        Self::ExceptionExpired,
        Self::ReviewAttested,
        Self::AdminAction,
        Self::EvidencePruned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigApplied => "config.applied",
            Self::IdentityLifecycle => "identity.lifecycle",
            Self::CredentialIssued => "credential.issued",
            Self::CredentialExchanged => "credential.exchanged",
            Self::CredentialFederated => "credential.federated",
            Self::CredentialRefused => "credential.refused",
            Self::AccessDecision => "access.decision",
            Self::RevocationIssued => "revocation.issued",
            Self::RevocationAcknowledged => "revocation.acknowledged",
            Self::ExceptionGranted => "exception.granted",
            Self::ExceptionUsed => "exception.used",
            Self::ExceptionExpired => "exception.expired",
            Self::ReviewAttested => "review.attested",
            Self::AdminAction => "admin.action",
            Self::EvidencePruned => "evidence.pruned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
}

/// The decision an event records, with what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Ids of the policies that decided (permits for an allow, forbids for a deny).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The exception that lifted a guardrail for this decision, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}

/// Where the action went: the business capability and the transport address it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// e.g. `http POST /v1/refunds/42`, `amqp exchange=payments rk=refund.created`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One evidence event. Field order is the canonical order of the stored JSON, which the
/// hash chain covers: add fields only at the end, and only optional ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub schema: String,
    /// Unique id (UUID-like, chosen by the producer so retries are idempotent to spot).
    pub id: String,
    /// RFC 3339 UTC time the event happened at its source.
    pub time: String,
    pub kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plane: Option<String>,
    /// The identity the event is about (SPIFFE ID), or the admin credential for admin actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Delegation chain, outermost actor first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actor_chain: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub destination: Destination,
    /// Message context for events about messages (exchange, routing key, message id …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub message: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// W3C trace id: the correlation id that `steward audit trace` follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement_point: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<i64>,
    /// Who wrote the event: `steward`, `enforcement:<credential>` for one of Steward's
    /// enforcement points, or `ingest:<credential>` for a foreign engine's record (set by
    /// the control plane, whatever the record claimed).
    #[serde(default = "steward_source")]
    pub source: String,
    /// Kind-specific details (before/after of an admin change, counts of an apply …).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

fn steward_source() -> String {
    "steward".to_owned()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Event {
    /// A new event of `kind` from Steward itself, with every optional field empty.
    pub fn new(kind: EventKind, id: impl Into<String>, time: impl Into<String>) -> Self {
        Self {
            schema: SCHEMA.to_owned(),
            id: id.into(),
            time: time.into(),
            kind,
            plane: None,
            principal: None,
            actor_chain: Vec::new(),
            action: None,
            destination: Destination::default(),
            message: BTreeMap::new(),
            decision: Decision::default(),
            token_id: None,
            correlation_id: None,
            enforcement_point: None,
            policy_version: None,
            source: "steward".to_owned(),
            details: serde_json::Value::Null,
        }
    }

    /// The canonical JSON the chain hashes and the store keeps verbatim.
    pub fn canonical_json(&self) -> Result<String, crate::AuditError> {
        serde_json::to_string(self).map_err(|e| crate::AuditError::Encode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_text_and_json() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }

    #[test]
    fn canonical_json_omits_empty_fields_and_is_stable() {
        let mut e = Event::new(EventKind::AdminAction, "e1", "2026-11-23T00:00:00Z");
        e.principal = Some("admin".into());
        let a = e.canonical_json().unwrap();
        assert_eq!(
            a,
            r#"{"schema":"steward.evidence/1","id":"e1","time":"2026-11-23T00:00:00Z","kind":"admin.action","principal":"admin","source":"steward"}"#
        );
        let back: Event = serde_json::from_str(&a).unwrap();
        assert_eq!(back.canonical_json().unwrap(), a);
    }
}
