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
    /// A time-bound exception reached its expiry (recorded once, by the control plane).
    /// Its use needs no event of its own: a decision it lifted a guardrail for says so
    /// (`access.decision` with `decision.exception`).
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
    pub const ALL: [EventKind; 14] = [
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

    /// Whether the event carries `field`, as a plane's `required_audit_fields` names it:
    /// an event field (`trace_id` is the correlation id, `decision` the outcome,
    /// `capability` and `address` the destination's, `actor` the actor chain), else a key
    /// of `details` or of the recorded request's context (`details.request.context`),
    /// e.g. `data_region`.
    pub fn carries(&self, field: &str) -> bool {
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        match field {
            "trace_id" | "correlation_id" => present(&self.correlation_id),
            "principal" => present(&self.principal),
            "plane" => present(&self.plane),
            "action" => present(&self.action),
            "decision" | "outcome" => self.decision.outcome.is_some(),
            "policy" | "policies" => !self.decision.policies.is_empty(),
            "policy_version" => self.policy_version.is_some(),
            "capability" => present(&self.destination.capability),
            "address" => present(&self.destination.address),
            "token_id" => present(&self.token_id),
            "enforcement_point" => present(&self.enforcement_point),
            "actor" | "actor_chain" => !self.actor_chain.is_empty(),
            other => {
                let found = |v: Option<&serde_json::Value>| v.is_some_and(|v| !v.is_null());
                found(self.details.get(other))
                    || found(
                        self.details
                            .get("request")
                            .and_then(|r| r.get("context"))
                            .and_then(|c| c.get(other)),
                    )
            }
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
    fn carries_names_fields_as_settings_do() {
        let mut e = Event::new(EventKind::AccessDecision, "e1", "2026-11-23T00:00:00Z");
        e.principal = Some("spiffe://acme.example/a".into());
        e.decision.outcome = Some(Outcome::Allow);
        e.details = serde_json::json!({"request": {"context": {"data_region": "eu-west-1"}}});
        for f in ["principal", "decision", "data_region"] {
            assert!(e.carries(f), "{f}");
        }
        for f in [
            "trace_id",
            "policy_version",
            "capability",
            "plane",
            "ticket",
        ] {
            assert!(!e.carries(f), "{f}");
        }
        e.correlation_id = Some(String::new());
        assert!(!e.carries("trace_id"), "empty is absent");
    }

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
