//! API to event: who published a message, provably, and which request it came
//! from, so `steward audit trace` follows one request from the gateway through the broker
//! to every consumer.
//!
//! A publisher attaches two headers to each message: `traceparent` (W3C, a child of the
//! request it is handling) and `steward-publisher`, a compact JWS (`typ:
//! steward-message+jwt`) signed with the publisher's own registered key over its SPIFFE
//! ID, the body's SHA-256, the destination (vhost, exchange, routing key), the
//! `traceparent` and a short lifetime. A consumer, deciding through the shared
//! enforcement core, verifies the signature with the key the publisher registered in the
//! governance repository (carried in the policy bundle), checks the body and destination
//! are those signed, decides whether the publisher may publish there and whether the
//! consumer may consume from its queue, and records both decisions under the message's
//! trace id. A forged, altered, expired or misdirected message is refused and recorded.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use steward_enforce::trace::TraceContext;
use steward_enforce::{Carried, EnforcementPoint, Outcome, Seen, Verdict};
use steward_policy::{OwnedAddress, Target};
use steward_token::{Proof, SigningKey, jws};

/// The header carrying the publisher's signed statement.
pub const PUBLISHER_HEADER: &str = "steward-publisher";
/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The JWS `typ` of a publisher statement (never accepted as a token or a bundle).
pub const MESSAGE_TYP: &str = "steward-message+jwt";
/// Largest publisher statement accepted.
const MAX_STATEMENT_BYTES: usize = 4 * 1024;

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    #[error("cannot sign the publisher statement: {0}")]
    Sign(String),
}

/// Where a message was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub vhost: String,
    pub exchange: String,
    pub routing_key: String,
}

/// What the publisher signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// The publisher's SPIFFE ID.
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// base64url SHA-256 of the message body.
    pub body_sha256: String,
    #[serde(flatten)]
    pub destination: Destination,
    /// The `traceparent` sent with the message.
    pub traceparent: String,
    /// Request-context attributes the publisher vouches for (declared attributes with a
    /// `message_header` source are read from here, and from nowhere else).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
}

fn digest(body: &[u8]) -> String {
    B64URL.encode(Sha256::digest(body))
}

/// A workload publishing messages under its own identity.
pub struct Publisher {
    spiffe_id: String,
    key: SigningKey,
    /// How long a statement stays valid (messages may wait in queues).
    lifetime_secs: i64,
}

impl Publisher {
    /// `key` is the private half of a key the identity registered
    /// (`credentials.public_keys`), the same one it authenticates to the token service
    /// with.
    pub fn new(spiffe_id: impl Into<String>, key: SigningKey, lifetime_secs: i64) -> Self {
        Self {
            spiffe_id: spiffe_id.into(),
            key,
            lifetime_secs: lifetime_secs.max(1),
        }
    }

    /// The headers to attach to a message with `body` sent to `destination` while
    /// handling the request of `trace` (a new trace when there is none).
    pub fn headers(
        &self,
        body: &[u8],
        destination: &Destination,
        trace: Option<&TraceContext>,
    ) -> Result<BTreeMap<String, String>, MessagingError> {
        self.headers_with_context(body, destination, trace, Map::new())
    }

    /// [`Publisher::headers`], signing `context` into the statement: the attributes a
    /// consumer's policy may read from the message (`source: {message_header: …}`).
    pub fn headers_with_context(
        &self,
        body: &[u8],
        destination: &Destination,
        trace: Option<&TraceContext>,
        context: Map<String, Value>,
    ) -> Result<BTreeMap<String, String>, MessagingError> {
        let traceparent = trace
            .map(TraceContext::child)
            .unwrap_or_else(TraceContext::new_root)
            .to_string();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let statement = Statement {
            iss: self.spiffe_id.clone(),
            iat: now,
            exp: now + self.lifetime_secs,
            jti: uuid::Uuid::new_v4().to_string(),
            body_sha256: digest(body),
            destination: destination.clone(),
            traceparent: traceparent.clone(),
            context,
        };
        let signed = jws::encode(&self.key, MESSAGE_TYP, &statement)
            .map_err(|e| MessagingError::Sign(e.to_string()))?;
        Ok(BTreeMap::from([
            (TRACEPARENT_HEADER.to_owned(), traceparent),
            (PUBLISHER_HEADER.to_owned(), signed),
        ]))
    }
}

/// A message as the consumer received it.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub headers: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    /// Where the broker says it was published.
    pub destination: &'a Destination,
    /// The queue it was consumed from.
    pub queue: &'a str,
}

/// A message the consumer may handle.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The verified publisher.
    pub publisher: String,
    /// The message's trace context, to continue when handling it.
    pub trace: TraceContext,
    /// The two decision records (publisher may publish, consumer may consume).
    pub decisions: Vec<String>,
}

/// A message the consumer must not handle, and why (already recorded).
#[derive(Debug, Clone)]
pub struct Rejected {
    pub outcome: Outcome,
    pub reason: String,
    pub decision: String,
}

impl From<Verdict> for Rejected {
    fn from(v: Verdict) -> Self {
        Self {
            outcome: v.outcome,
            reason: v.reason(),
            decision: v.event_id.clone(),
        }
    }
}

/// A workload consuming messages, deciding through the shared enforcement core.
pub struct Consumer {
    /// The consuming identity (this process).
    spiffe_id: String,
    point: EnforcementPoint,
    /// Clock difference tolerated on `iat`/`exp`.
    skew_secs: i64,
}

impl Consumer {
    pub fn new(spiffe_id: impl Into<String>, point: EnforcementPoint) -> Self {
        Self {
            spiffe_id: spiffe_id.into(),
            point,
            skew_secs: 30,
        }
    }

    /// Verifies the publisher, decides both sides, records both decisions under the
    /// message's trace id.
    pub fn accept(&self, delivery: &Delivery<'_>) -> Result<Accepted, Rejected> {
        let trace = TraceContext::continue_or_start(
            delivery.headers.get(TRACEPARENT_HEADER).map(String::as_str),
        );
        let mut publish = Seen {
            received: std::time::Instant::now(),
            token: None,
            proof: Proof::None,
            audience: "",
            target: Ok(Target::Address(OwnedAddress::Amqp {
                vhost: delivery.destination.vhost.clone(),
                exchange: delivery.destination.exchange.clone(),
                routing_key: delivery.destination.routing_key.clone(),
            })),
            action: None,
            correlation_id: Some(&trace.trace_id),
            context: Default::default(),
            carried: Carried::default(),
        };
        let statement = match self.verify(delivery) {
            Ok(s) => s,
            Err(why) => return Err(self.point.refuse_credential(&publish, why).into()),
        };
        let publisher = statement.iss.clone();
        publish.carried.message = Some(&statement.context);
        let published = self.point.check_principal(&publisher, &publish);
        if !published.allowed() {
            return Err(published.into());
        }
        let consume = Seen {
            received: std::time::Instant::now(),
            target: Ok(Target::Address(OwnedAddress::Queue {
                name: delivery.queue.to_owned(),
            })),
            ..publish
        };
        let consumed = self.point.check_principal(&self.spiffe_id, &consume);
        if !consumed.allowed() {
            return Err(consumed.into());
        }
        Ok(Accepted {
            publisher,
            trace,
            decisions: vec![published.event_id, consumed.event_id],
        })
    }

    /// The verified publisher of a delivery, or why it cannot be trusted.
    fn verify(&self, delivery: &Delivery<'_>) -> Result<Statement, String> {
        let text = delivery
            .headers
            .get(PUBLISHER_HEADER)
            .ok_or("the message carries no `steward-publisher` header: its publisher is unknown")?;
        let jws = jws::decode(text, MAX_STATEMENT_BYTES)
            .map_err(|e| format!("the publisher statement is malformed: {e}"))?;
        if jws.header.typ.as_deref() != Some(MESSAGE_TYP) {
            return Err(format!(
                "the publisher statement's `typ` is not `{MESSAGE_TYP}`"
            ));
        }
        // Unverified until the signature checks out; only `iss` picks the keys.
        let claimed: Statement = jws
            .claims()
            .map_err(|e| format!("the publisher statement is malformed: {e}"))?;
        let enforcer = self.point.source().current().map_err(|e| e.to_string())?;
        let keys = enforcer.registered_keys(&claimed.iss);
        if keys.is_empty() {
            return Err(format!(
                "`{}` has no registered key to verify its messages with",
                claimed.iss.chars().take(200).collect::<String>()
            ));
        }
        let kid = jws.header.kid.as_deref().unwrap_or_default();
        let key = keys
            .iter()
            .find(|k| k.kid() == kid || k.thumbprint() == kid)
            .ok_or("the publisher statement is signed with a key its publisher did not register")?;
        jws.verify(key)
            .map_err(|e| format!("the publisher signature does not verify: {e}"))?;
        let s = claimed;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if s.exp + self.skew_secs < now {
            return Err(format!("the publisher statement expired at {}", s.exp));
        }
        if s.iat - self.skew_secs > now {
            return Err("the publisher statement is issued in the future".into());
        }
        if s.body_sha256 != digest(delivery.body) {
            return Err("the message body is not the one its publisher signed".into());
        }
        if &s.destination != delivery.destination {
            return Err(format!(
                "the message was signed for exchange `{}` routing key `{}` on vhost `{}`, not where it was delivered from",
                s.destination.exchange, s.destination.routing_key, s.destination.vhost
            ));
        }
        if delivery.headers.get(TRACEPARENT_HEADER) != Some(&s.traceparent) {
            return Err("the `traceparent` header is not the one its publisher signed".into());
        }
        Ok(s)
    }
}
