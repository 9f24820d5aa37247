//! One enforcement point's check: credential, address, decision, record.

use std::sync::Arc;

use serde_json::{Map, Value};
use steward_metrics::{DecisionMetrics, LayerDecisions};
use steward_model::Action;
use steward_policy::{AccessRequest, Decision, OwnedAddress, Target};
use steward_token::{Claims, Expectations, Proof};

use crate::bundle::Enforcer;
use crate::context::{Carried, read_declared};
use crate::decision_log::{DecisionLog, decision_event};
use crate::source::BundleSource;

/// How a check ended; each protocol maps it onto its own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// No credential, or one that does not validate (HTTP 401).
    Unauthenticated,
    /// A valid credential the policy does not allow (HTTP 403).
    Forbidden,
    /// No current bundle, or the decision could not be recorded (HTTP 503): fail closed.
    Unavailable,
    /// The request cannot be decided unambiguously, e.g. a path servers read differently
    /// (HTTP 400).
    Malformed,
}

impl Outcome {
    /// The outcome as metrics and logs name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "deny",
            Self::Unavailable => "unavailable",
            Self::Malformed => "malformed",
        }
    }

    /// The HTTP status of this outcome.
    pub fn status(self) -> u16 {
        match self {
            Self::Allow => 200,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::Unavailable => 503,
            Self::Malformed => 400,
        }
    }
}

/// What the enforcement point saw.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    /// The bearer token presented, if any.
    pub token: Option<&'a str>,
    /// Proof of possession already verified by the caller (TLS, DPoP).
    pub proof: Proof<'a>,
    /// The audience tokens must carry at this point.
    pub audience: &'a str,
    /// What is being accessed (usually a transport address), or why what the request
    /// names could not be read unambiguously.
    pub target: Result<Target, Unreadable>,
    /// The action, when the target is a capability or the point knows better than the
    /// mapping (e.g. a broker's `configure`).
    pub action: Option<Action>,
    /// The W3C trace id of the request.
    pub correlation_id: Option<&'a str>,
    /// Request context the caller states itself (a point that has none passes it empty).
    /// Declared attributes with a source are read from `carried` and the token instead,
    /// whatever this holds.
    pub context: Map<String, Value>,
    /// What the request carries that declared attributes are read from.
    pub carried: Carried<'a>,
    /// When the point received the request: its record says how long the decision took
    /// at this layer (`details.decision_us`), which a trace shows hop by hop.
    pub received: std::time::Instant,
}

/// A request target a point could not turn into a [`Target`]: refused (400) and recorded
/// with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What the request named, escaped and shortened for the record.
    pub address: String,
    pub reason: String,
}

impl Unreadable {
    /// An HTTP request whose path [`steward_model::HttpPath`] refused.
    pub fn http(method: &str, raw_path: &str, error: &steward_model::ModelError) -> Self {
        Self::http_because(method, raw_path, error.to_string())
    }

    /// An HTTP request refused for `reason`, recorded as what it named: escaped (no raw
    /// control bytes in the record) and shortened.
    fn http_because(method: &str, raw_path: &str, reason: String) -> Self {
        let mut shown: String = raw_path
            .chars()
            .take(200)
            .flat_map(char::escape_debug)
            .collect();
        if raw_path.chars().nth(200).is_some() {
            shown.push('…');
        }
        let method: String = method
            .chars()
            .take(16)
            .flat_map(char::escape_debug)
            .collect();
        Self {
            address: format!("http {method} {shown}"),
            reason,
        }
    }
}

/// What an HTTP request is decided as at every layer: its method and its path in normal
/// form ([`steward_model::HttpPath`]), the query (after `?`) set aside; or why the path
/// cannot be decided unambiguously. `request_target` is the path as received, with or
/// without its query.
pub fn http_address(method: &str, request_target: &str) -> Result<OwnedAddress, Unreadable> {
    match steward_model::HttpPath::from_target(request_target) {
        Ok((path, _query)) => Ok(OwnedAddress::Http {
            method: method.to_owned(),
            path,
        }),
        Err(e) => Err(Unreadable::http(method, request_target, &e)),
    }
}

/// Headers some frameworks read to serve another method than the request's own. A request
/// is decided on its method; one carrying any of these is refused as unreadable, since
/// the upstream might serve the overriding method instead.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// [`http_address`], refusing a request that carries a method-override header (the first
/// of [`METHOD_OVERRIDE_HEADERS`] `has` finds).
pub fn http_address_checked(
    method: &str,
    request_target: &str,
    has: impl Fn(&str) -> bool,
) -> Result<OwnedAddress, Unreadable> {
    if let Some(h) = METHOD_OVERRIDE_HEADERS.iter().find(|h| has(h)) {
        return Err(Unreadable::http_because(
            method,
            request_target,
            format!(
                "a `{h}` header: the upstream may serve another method than the one decided; send the method itself"
            ),
        ));
    }
    http_address(method, request_target)
}

/// Whether a request's `content-type` says gRPC: `application/grpc` or gRPC-Web
/// (`application/grpc-web`, `application/grpc-web-text`), with any `+codec` suffix and
/// parameters.
pub fn is_grpc(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        let media = c
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let base = media.split('+').next().unwrap_or_default();
        matches!(
            base,
            "application/grpc" | "application/grpc-web" | "application/grpc-web-text"
        )
    })
}

/// What a request is decided as, alike at every layer: a gRPC call (`POST
/// /package.Service/Method` with a gRPC content type) is decided as the gRPC method, so an
/// HTTP mapping never answers for it; anything else as [`http_address_checked`] says. A
/// gRPC request whose path is not `/Service/Method` is unreadable, not an HTTP request.
pub fn request_address(
    method: &str,
    request_target: &str,
    content_type: Option<&str>,
    has: impl Fn(&str) -> bool,
) -> Result<OwnedAddress, Unreadable> {
    let address = http_address_checked(method, request_target, has)?;
    if !is_grpc(content_type) {
        return Ok(address);
    }
    let refuse = |reason: &str| Unreadable::http_because(method, request_target, reason.to_owned());
    if method != "POST" {
        return Err(refuse("a gRPC request is a POST"));
    }
    let OwnedAddress::Http { path, .. } = address else {
        return Err(refuse("a gRPC request names /package.Service/Method"));
    };
    match path
        .as_str()
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
    {
        Some((service, rpc)) if !service.is_empty() && !rpc.is_empty() && !rpc.contains('/') => {
            Ok(OwnedAddress::Grpc {
                service: service.to_owned(),
                method: rpc.to_owned(),
            })
        }
        _ => Err(refuse("a gRPC request names /package.Service/Method")),
    }
}

/// The answer of a check.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The verified identity (SPIFFE ID), once the token validated.
    pub principal: Option<String>,
    pub claims: Option<Arc<Claims>>,
    pub decision: Decision,
    /// The decision record's id in the evidence log.
    pub event_id: String,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// One line for the caller: why it was refused, or what allowed it.
    pub fn reason(&self) -> String {
        let mut reasons = self
            .decision
            .reasons
            .iter()
            .chain(self.decision.errors.iter());
        match reasons.next() {
            Some(first) => {
                let rest: Vec<&String> = reasons.collect();
                if rest.is_empty() {
                    first.clone()
                } else {
                    format!(
                        "{first}; {}",
                        rest.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                }
            }
            None if self.allowed() => "allowed".into(),
            None => "denied".into(),
        }
    }
}

/// One enforcement point: its name and environment, the bundle it decides with, and the
/// log its decisions go to.
pub struct EnforcementPoint {
    /// `<kind>:<name>`, recorded as the decision's enforcement point.
    name: String,
    environment: String,
    source: Arc<BundleSource>,
    log: DecisionLog,
    /// The DPoP proofs this point has seen (`credential.rs`).
    dpop_replay: steward_token::ReplayCache,
    /// DPoP holders' keys, parsed once each; shared with siblings (it decides nothing).
    dpop_keys: Arc<steward_token::ProofKeys>,
    /// Where each decision is counted, when the process exposes metrics: the metric set
    /// (shared with siblings) and this point's layer's series in it.
    metrics: Option<(DecisionMetrics, LayerDecisions)>,
}

fn empty_decision(version: i64) -> Decision {
    Decision {
        allowed: false,
        capability: None,
        action: None,
        plane: None,
        policies: Vec::new(),
        reasons: Vec::new(),
        exceptions: Vec::new(),
        errors: Vec::new(),
        policy_version: version,
    }
}

/// Who the token speaks for and the request context it implies.
fn token_context(
    claims: &Claims,
    environment: &str,
    extra: &Map<String, Value>,
) -> Map<String, Value> {
    let mut context = extra.clone();
    context.insert("environment".into(), environment.into());
    let chain: Vec<Value> = claims.actors().map(Value::from).collect();
    if !chain.is_empty() {
        context.insert("delegation_chain".into(), Value::Array(chain));
    }
    if let Some(task) = &claims.task_scope {
        context.insert("task_scope".into(), task.clone().into());
    }
    if let Some(tier) = &claims.model_tier {
        context.insert("model_tier".into(), tier.clone().into());
    }
    context
}

impl EnforcementPoint {
    /// `kind` names the protocol (`gateway`, `ext_authz`, `nginx`, `rabbitmq`); `name` the
    /// deployment; `environment` where it runs (tokens of another environment are refused).
    pub fn new(
        kind: &str,
        name: &str,
        environment: impl Into<String>,
        source: Arc<BundleSource>,
        log: DecisionLog,
    ) -> Self {
        Self {
            name: format!("{kind}:{name}"),
            environment: environment.into(),
            source,
            log,
            dpop_replay: crate::credential::dpop_replay_cache(),
            dpop_keys: Arc::new(steward_token::ProofKeys::new(
                crate::credential::MAX_DPOP_KEYS,
            )),
            metrics: None,
        }
    }

    /// The same point, counting its decisions (and its siblings') in `metrics`.
    pub fn with_metrics(mut self, metrics: DecisionMetrics) -> Self {
        let layer = metrics.layer(self.layer());
        self.metrics = Some((metrics, layer));
        self
    }

    /// The protocol this point decides for, the part of its name before `:`: the
    /// `layer` its decisions are counted under.
    fn layer(&self) -> &str {
        self.name.split(':').next().unwrap_or(&self.name)
    }

    /// The same point under another protocol kind (one process serving several).
    pub fn sibling(&self, kind: &str) -> Self {
        let name = self
            .name
            .split_once(':')
            .map_or(self.name.as_str(), |(_, n)| n);
        let sibling = Self {
            name: format!("{kind}:{name}"),
            environment: self.environment.clone(),
            source: self.source.clone(),
            log: self.log.clone(),
            dpop_replay: crate::credential::dpop_replay_cache(),
            dpop_keys: self.dpop_keys.clone(),
            metrics: None,
        };
        match &self.metrics {
            Some((metrics, _)) => sibling.with_metrics(metrics.clone()),
            None => sibling,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    pub fn source(&self) -> &Arc<BundleSource> {
        &self.source
    }

    pub fn log(&self) -> &DecisionLog {
        &self.log
    }

    /// The DPoP proofs this point has seen.
    pub(crate) fn dpop_replay(&self) -> &steward_token::ReplayCache {
        &self.dpop_replay
    }

    /// The DPoP holders' keys this point has parsed.
    pub(crate) fn dpop_keys(&self) -> &steward_token::ProofKeys {
        &self.dpop_keys
    }

    /// A refusal before any policy decision (no bundle, no or bad credential), recorded.
    fn refuse(
        &self,
        outcome: Outcome,
        version: i64,
        reason: impl Into<String>,
        seen: &Seen<'_>,
    ) -> Verdict {
        let mut d = empty_decision(version);
        d.reasons.push(reason.into());
        self.finish(outcome, None, None, d, None, seen)
    }

    /// Refuses a request whose credential could not even be read (two `Authorization`
    /// headers, an unknown scheme), recording it like any other refusal.
    pub fn refuse_credential(&self, seen: &Seen<'_>, reason: String) -> Verdict {
        let version = self
            .source
            .current()
            .map(|e| e.policy_version())
            .unwrap_or(0);
        self.refuse(Outcome::Unauthenticated, version, reason, seen)
    }

    /// Validates, resolves, decides and records. Never fails: every problem is a refusal
    /// with its reason.
    pub fn check(&self, seen: &Seen<'_>) -> Verdict {
        let enforcer = match self.source.current() {
            Ok(e) => e,
            Err(why) => {
                return self.refuse(Outcome::Unavailable, 0, why.to_string(), seen);
            }
        };
        let version = enforcer.policy_version();
        if let Err(unreadable) = &seen.target {
            // Who sent it, when the token says so: a probe is worth attributing.
            let claims = seen.token.and_then(|t| {
                enforcer
                    .validator()
                    .validate(t, &self.expectations(seen))
                    .ok()
            });
            let mut d = empty_decision(version);
            d.reasons.push(unreadable.reason.clone());
            let principal = claims.as_ref().map(|c| c.sub.clone());
            return self.finish(Outcome::Malformed, principal, claims, d, None, seen);
        }
        let Some(token) = seen.token else {
            return self.refuse(
                Outcome::Unauthenticated,
                version,
                "no credential: send `Authorization: Bearer <Steward token>`",
                seen,
            );
        };
        let claims = match enforcer
            .validator()
            .validate(token, &self.expectations(seen))
        {
            Ok(c) => c,
            Err(e) => {
                return self.refuse(
                    Outcome::Unauthenticated,
                    version,
                    format!("the token was refused: {e}"),
                    seen,
                );
            }
        };
        let mut context = token_context(&claims, &self.environment, &seen.context);
        let declared = enforcer.engine().context_attributes();
        if let Err(why) = read_declared(declared, Some(&claims), &seen.carried, &mut context) {
            let mut d = empty_decision(version);
            d.reasons.push(why);
            let principal = Some(claims.sub.clone());
            return self.finish(Outcome::Malformed, principal, Some(claims), d, None, seen);
        }
        self.decide(&enforcer, claims.sub.clone(), Some(claims), context, seen)
    }

    fn expectations<'s>(&'s self, seen: &Seen<'s>) -> Expectations<'s> {
        Expectations {
            audience: seen.audience,
            environment: Some(&self.environment),
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            proof: seen.proof,
        }
    }

    /// Decides for an identity proven some other way than a bearer token (a message
    /// signature checked with its registered key, or the process itself), and records it.
    pub fn check_principal(&self, principal: &str, seen: &Seen<'_>) -> Verdict {
        let enforcer = match self.source.current() {
            Ok(e) => e,
            Err(why) => {
                return self.refuse(Outcome::Unavailable, 0, why.to_string(), seen);
            }
        };
        if let Err(unreadable) = &seen.target {
            let mut d = empty_decision(enforcer.policy_version());
            d.reasons.push(unreadable.reason.clone());
            return self.finish(
                Outcome::Malformed,
                Some(principal.to_owned()),
                None,
                d,
                None,
                seen,
            );
        }
        let mut context = seen.context.clone();
        context.insert("environment".into(), self.environment.clone().into());
        let declared = enforcer.engine().context_attributes();
        if let Err(why) = read_declared(declared, None, &seen.carried, &mut context) {
            let mut d = empty_decision(enforcer.policy_version());
            d.reasons.push(why);
            let principal = Some(principal.to_owned());
            return self.finish(Outcome::Malformed, principal, None, d, None, seen);
        }
        self.decide(&enforcer, principal.to_owned(), None, context, seen)
    }

    fn decide(
        &self,
        enforcer: &Enforcer,
        principal: String,
        claims: Option<Arc<Claims>>,
        context: Map<String, Value>,
        seen: &Seen<'_>,
    ) -> Verdict {
        let Ok(target) = &seen.target else {
            // Callers refuse unreadable targets first; deny if one ever gets here.
            let mut d = empty_decision(enforcer.policy_version());
            d.reasons
                .push("the request target could not be read".into());
            return self.finish(Outcome::Malformed, Some(principal), claims, d, None, seen);
        };
        let request = AccessRequest {
            principal,
            target: target.clone(),
            action: seen.action,
            context,
            at: time::OffsetDateTime::now_utc(),
        };
        let mut decision = enforcer.engine().decide(&request);
        // A token narrowed to a scope reaches nothing outside it, whatever policy allows.
        if let Some(scope) = claims.as_ref().and_then(|c| c.scope.as_deref())
            && decision.allowed
        {
            let inside = decision
                .capability
                .as_deref()
                .is_some_and(|c| scope.split_ascii_whitespace().any(|s| s == c));
            if !inside {
                decision.allowed = false;
                decision.reasons.insert(
                    0,
                    format!(
                        "the token's scope ({scope}) does not include capability `{}`",
                        decision.capability.as_deref().unwrap_or("?")
                    ),
                );
            }
        }
        if !decision.errors.is_empty() {
            tracing::warn!(errors = ?decision.errors, point = %self.name, "policy evaluation error; denied");
        }
        let outcome = if decision.allowed {
            Outcome::Allow
        } else {
            Outcome::Forbidden
        };
        let principal = request.principal.clone();
        self.finish(
            outcome,
            Some(principal),
            claims,
            decision,
            Some(&request),
            seen,
        )
    }

    fn finish(
        &self,
        mut outcome: Outcome,
        principal: Option<String>,
        claims: Option<Arc<Claims>>,
        mut decision: Decision,
        request: Option<&AccessRequest>,
        seen: &Seen<'_>,
    ) -> Verdict {
        if outcome == Outcome::Allow
            && let Some(why) = self.log.refusing()
        {
            // Its record would be refused like the last ones: an allow nobody could see.
            // The deny is recorded and shipped; the first one taken clears this.
            outcome = Outcome::Unavailable;
            decision.allowed = false;
            decision.reasons.push(why);
        }
        if decision.capability.is_none() && request.is_none() {
            // Record where the refused request was going, even without a decision.
            if let Ok(Target::Capability(c)) = &seen.target {
                decision.capability = Some(c.clone());
            }
        }
        let mut event = decision_event(
            &decision,
            request,
            Some(
                principal
                    .clone()
                    .unwrap_or_else(|| "unauthenticated".into()),
            ),
            &self.name,
            seen.correlation_id,
        );
        if request.is_none() {
            event.destination.address = match &seen.target {
                Ok(Target::Address(a)) => Some(a.to_string()),
                Ok(Target::Capability(_)) => None,
                Err(unreadable) => Some(unreadable.address.clone()),
            };
        }
        event.token_id = claims.as_ref().map(|c| c.jti.clone());
        let took = u64::try_from(seen.received.elapsed().as_micros()).unwrap_or(u64::MAX);
        match &mut event.details {
            Value::Object(details) => {
                details.insert("decision_us".into(), took.into());
            }
            other => *other = serde_json::json!({ "decision_us": took }),
        }
        let event_id = event.id.clone();
        if let Err(e) = self.log.submit(event) {
            tracing::error!(error = %e, point = %self.name, "a decision could not be recorded; denied");
            if outcome == Outcome::Allow {
                outcome = Outcome::Unavailable;
                decision.allowed = false;
            }
            decision.reasons.push(e.to_string());
        }
        if let Some((_, layer)) = &self.metrics {
            layer.observe(outcome.label(), seen.received.elapsed().as_secs_f64());
        }
        Verdict {
            outcome,
            principal,
            claims,
            decision,
            event_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gRPC call is its gRPC method at every layer; a gRPC content type on a path that
    /// names no method, or on another verb, is unreadable rather than an HTTP request.
    #[test]
    fn grpc_calls_are_decided_as_grpc_methods() {
        let no = |_: &str| false;
        let grpc = |ct: &str, method: &str, path: &str| request_address(method, path, Some(ct), no);
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC; charset=x",
            "application/grpc-web+proto",
            "application/grpc-web-text",
        ] {
            assert_eq!(
                grpc(ct, "POST", "/payments.v1.Charges/Get"),
                Ok(OwnedAddress::Grpc {
                    service: "payments.v1.Charges".into(),
                    method: "Get".into()
                }),
                "{ct}"
            );
        }
        // Decided on the normal form, as HTTP paths are.
        assert_eq!(
            grpc("application/grpc", "POST", "/payments.v1.Charges/./Get"),
            grpc("application/grpc", "POST", "/payments.v1.Charges/Get")
        );
        for (method, path) in [
            ("POST", "/v1/charges/ch_1/refunds"),
            ("POST", "/Service"),
            ("POST", "/Service/"),
            ("GET", "/payments.v1.Charges/Get"),
        ] {
            assert!(
                grpc("application/grpc", method, path).is_err(),
                "{method} {path}"
            );
        }
        // Not gRPC: an HTTP request, whatever its path looks like.
        for ct in [
            None,
            Some("application/json"),
            Some("application/grpc-web-text-x"),
        ] {
            assert!(matches!(
                request_address("POST", "/payments.v1.Charges/Get", ct, no),
                Ok(OwnedAddress::Http { .. })
            ));
        }
    }

    /// What a token says about its holder reaches the policy context: the delegation
    /// chain, the task scope and the model tier.
    #[test]
    fn the_token_fills_the_request_context() {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "iss": "https://steward.example", "sub": "spiffe://acme.example/agents/a",
            "aud": "x", "exp": 2, "iat": 1, "nbf": 1, "jti": "j",
            "act": {"sub": "spiffe://acme.example/agents/b"},
            "task_scope": "refund-backlog", "model_tier": "frontier",
        }))
        .unwrap();
        let context = token_context(&claims, "prod", &Map::new());
        assert_eq!(context["environment"], "prod");
        assert_eq!(context["model_tier"], "frontier");
        assert_eq!(context["task_scope"], "refund-backlog");
        assert_eq!(
            context["delegation_chain"],
            serde_json::json!(["spiffe://acme.example/agents/b"])
        );
    }
}
