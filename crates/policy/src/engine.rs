//! Deciding access requests: resolve the target to a capability, build the
//! Cedar request with the standard context, evaluate the policies of the capability's
//! plane, and let active exceptions lift exceptionable forbids. Every doubt is a deny:
//! unknown principal, unmapped address, malformed context, or any policy evaluation error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use cedar_policy::{Authorizer, Context, Request, RestrictedExpression};
use cedar_policy_core::ast::{Context as CoreContext, Value as CedarValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use smol_str::SmolStr;
use steward_model::{
    Action, Address, Capability, CapabilityId, CapabilityIndex, Classification, ContextAttribute,
    ContextType, HttpPath, Identity, LifecycleState, Plane, PlaneId, PolicyException, Settings,
};
use steward_model::{Desired, PlaneTree, PolicyBundle};

use crate::PolicyError;
use crate::cache::DecisionCache;
use crate::compile::{Compiled, Effect, Layer, compile};
use crate::entities::Registry;
use crate::schema::Types;

/// A transport address an enforcement point saw, owned (see [`Address`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase")]
pub enum OwnedAddress {
    Http {
        method: String,
        /// Normalised: what the upstream serves (see [`steward_model::HttpPath`]).
        path: HttpPath,
    },
    Grpc {
        service: String,
        method: String,
    },
    Amqp {
        vhost: String,
        exchange: String,
        routing_key: String,
    },
    Queue {
        name: String,
    },
    Tool {
        name: String,
    },
    /// A tool called, prompt got or resource read at an MCP point: the server's
    /// configured name, what kind of thing and its name (a resource's URI).
    Mcp {
        server: String,
        kind: steward_model::McpKind,
        name: String,
    },
}

impl OwnedAddress {
    pub fn as_address(&self) -> Address<'_> {
        match self {
            Self::Http { method, path } => Address::Http {
                method,
                path: path.as_str(),
            },
            Self::Grpc { service, method } => Address::Grpc { service, method },
            Self::Amqp {
                vhost,
                exchange,
                routing_key,
            } => Address::Amqp {
                vhost,
                exchange,
                routing_key,
            },
            Self::Queue { name } => Address::Queue { name },
            Self::Tool { name } => Address::Tool { name },
            Self::Mcp { server, kind, name } => Address::Mcp {
                server,
                kind: *kind,
                name,
            },
        }
    }
}

impl fmt::Display for OwnedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http { method, path } => write!(f, "http {method} {path}"),
            Self::Grpc { service, method } => write!(f, "grpc /{service}/{method}"),
            Self::Amqp {
                vhost,
                exchange,
                routing_key,
            } => write!(
                f,
                "amqp vhost={vhost} exchange={exchange} routing_key={routing_key}"
            ),
            Self::Queue { name } => write!(f, "queue {name}"),
            Self::Tool { name } => write!(f, "tool {name}"),
            Self::Mcp {
                server,
                kind: steward_model::McpKind::Tool,
                name,
            } => write!(f, "mcp {server}/{}", steward_model::escaped_name(name)),
            Self::Mcp { server, kind, name } => write!(
                f,
                "mcp {server} {kind} {}",
                steward_model::escaped_name(name)
            ),
        }
    }
}

/// What a request is about: a capability by id, or a transport address to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Capability(String),
    Address(OwnedAddress),
}

/// One access request, as every enforcement point and the decision API phrase it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// The SPIFFE ID of the acting identity.
    pub principal: String,
    pub target: Target,
    /// `None`: the action the address's mapping implies (required for a capability).
    pub action: Option<Action>,
    /// The caller's context: `environment` (required), `data_class`, `delegation_chain`,
    /// `task_scope`, `model_tier` and the repository's declared attributes. Others are
    /// ignored.
    pub context: serde_json::Map<String, Value>,
    /// When the decision is made: now, or the recorded time when replaying.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

/// The answer to an [`AccessRequest`], with everything the evidence log records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The capability the target resolved to, if it did.
    pub capability: Option<String>,
    pub action: Option<Action>,
    /// The plane owning the capability.
    pub plane: Option<String>,
    /// Ids of the policies that determined the decision.
    pub policies: Vec<String>,
    /// Why, in words: each determining policy with its layer, or what was wrong.
    pub reasons: Vec<String>,
    /// Exceptions that lifted a guardrail for this decision.
    pub exceptions: Vec<String>,
    /// Policy evaluation errors (the decision is then a deny).
    pub errors: Vec<String>,
    pub policy_version: i64,
}

/// What an engine is built from: the registry and the policy bundle in force.
pub struct EngineInput<'a> {
    pub planes: &'a BTreeMap<PlaneId, Plane>,
    pub root_settings: &'a Settings,
    pub identities: Vec<Identity>,
    pub capabilities: &'a BTreeMap<CapabilityId, Capability>,
    pub bundle: &'a PolicyBundle,
    /// The policy version decisions are recorded against.
    pub version: i64,
    pub now: time::OffsetDateTime,
}

/// A compiled policy and the registry it decides over. Immutable: a change to the registry
/// or the policy builds a new engine, swapped in whole.
pub struct Engine {
    compiled: Compiled,
    registry: Registry,
    types: Types,
    authorizer: Authorizer,
    index: CapabilityIndex,
    /// (principal, capability) → exceptions, active or not (expiry is checked per request).
    exceptions: HashMap<(String, String), Vec<PolicyException>>,
    /// Principals named by any exception: their decisions are never cached.
    excepted: HashSet<String>,
    cache: DecisionCache,
    version: i64,
    /// Each plane's effective `required_audit_fields` (the root's under `root`).
    audit_fields: HashMap<String, Vec<String>>,
}

impl Engine {
    /// Compiles the bundle and loads the registry.
    pub fn build(input: EngineInput<'_>) -> Result<Self, PolicyError> {
        let compiled = compile(
            input.bundle,
            input.planes,
            input.capabilities,
            input.root_settings,
            input.now,
        )?;
        let types = Types::new()?;
        let tree = PlaneTree::new(input.planes);
        let registry = Registry::build(
            &types,
            |p| tree.ancestors(p),
            input.identities,
            input.capabilities.values(),
        )?;
        let mut exceptions: HashMap<(String, String), Vec<PolicyException>> = HashMap::new();
        for e in &compiled.exceptions {
            exceptions
                .entry((e.principal.to_string(), e.capability.to_string()))
                .or_default()
                .push(e.clone());
        }
        let excepted = exceptions.keys().map(|(p, _)| p.clone()).collect();
        let mut audit_fields: HashMap<String, Vec<String>> = input
            .planes
            .keys()
            .map(|p| {
                let fields = tree
                    .effective_settings(input.root_settings, p)
                    .required_audit_fields
                    .unwrap_or_default();
                (p.to_string(), fields)
            })
            .collect();
        audit_fields.insert(
            PlaneId::root().to_string(),
            input
                .root_settings
                .required_audit_fields
                .clone()
                .unwrap_or_default(),
        );
        Ok(Self {
            audit_fields,
            registry,
            types,
            authorizer: Authorizer::new(),
            index: CapabilityIndex::new(input.capabilities.values()),
            exceptions,
            excepted,
            cache: DecisionCache::default(),
            version: input.version,
            compiled,
        })
    }

    /// An engine for a repository on its own (validate, `policy test`, `authorize --repo`):
    /// identities take the state the repository pins, active otherwise.
    pub fn from_desired(desired: &Desired, now: time::OffsetDateTime) -> Result<Self, PolicyError> {
        let identities = desired
            .identities
            .values()
            .map(|d| d.to_identity(d.state.unwrap_or(LifecycleState::Active)))
            .collect();
        Self::for_repository(desired, identities, now).map_err(|e| match e {
            // Place exception problems at the repository's lines.
            PolicyError::Invalid(_) => match crate::check(desired, now) {
                Err(placed) => placed,
                Ok(_) => e,
            },
            other => other,
        })
    }

    /// An engine for a repository's planes, catalog and policy over the given identities
    /// (a plan's dry-run adds those created through the API).
    pub fn for_repository(
        desired: &Desired,
        identities: Vec<Identity>,
        now: time::OffsetDateTime,
    ) -> Result<Self, PolicyError> {
        Self::build(EngineInput {
            planes: &desired.planes,
            root_settings: &desired.root_settings,
            identities,
            capabilities: &desired.capabilities,
            bundle: &desired.policy_bundle(),
            version: 0,
            now,
        })
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    /// The capability catalog's transport index (enforcement points' lookups).
    pub fn index(&self) -> &CapabilityIndex {
        &self.index
    }

    /// The compiled policies, for listings and analysis.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The repository's declared request-context attributes, with where enforcement
    /// points read each one.
    pub fn context_attributes(&self) -> &BTreeMap<String, ContextAttribute> {
        &self.compiled.context_attributes
    }

    /// Whether the registry this engine was built from holds the identity.
    pub fn knows(&self, spiffe_id: &str) -> bool {
        self.registry.identities.contains_key(spiffe_id)
    }

    /// The registered environment of an identity.
    pub fn environment_of(&self, spiffe_id: &str) -> Option<&str> {
        self.registry
            .identities
            .get(spiffe_id)
            .map(|i| &*i.environment)
    }

    /// The plane of a registered identity.
    pub fn plane_of(&self, spiffe_id: &str) -> Option<&str> {
        self.registry.identities.get(spiffe_id).map(|i| &*i.plane)
    }

    /// The fields every evidence record about `plane` must carry (its effective
    /// `required_audit_fields`; the root's for an unknown plane).
    pub fn required_audit_fields(&self, plane: Option<&str>) -> &[String] {
        plane
            .and_then(|p| self.audit_fields.get(p))
            .or_else(|| self.audit_fields.get(steward_model::ROOT_PLANE))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The registered lifecycle state of an identity.
    pub fn state_of(&self, spiffe_id: &str) -> Option<steward_model::LifecycleState> {
        self.registry.identities.get(spiffe_id).map(|i| i.state)
    }

    /// Capability ids, sorted.
    pub fn capability_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .registry
            .capabilities
            .keys()
            .map(String::as_str)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The exceptions active for a principal on a capability at `at`.
    pub fn active_exceptions(
        &self,
        principal: &str,
        capability: &str,
        at: time::OffsetDateTime,
    ) -> Vec<&PolicyException> {
        self.exceptions
            .get(&(principal.to_owned(), capability.to_owned()))
            .map(|v| v.iter().filter(|e| e.is_active(at)).collect())
            .unwrap_or_default()
    }

    /// Decides one request. Never fails: every problem is a deny with the reason.
    ///
    /// The same request again within the same second is answered from this engine's
    /// decision cache (exact; see the `cache` module); use [`Engine::decide_uncached`] for
    /// work that never repeats a request (analysis, replay).
    pub fn decide(&self, req: &AccessRequest) -> Decision {
        let second = req.at.unix_timestamp();
        let Some(key) = crate::cache::key(req) else {
            return self.decide_uncached(req);
        };
        if let Some(d) = self.cache.get(&key, second) {
            return d;
        }
        let d = self.decide_uncached(req);
        if d.errors.is_empty() && !self.excepted.contains(&req.principal) {
            self.cache.put(key, second, &d);
        }
        d
    }

    /// Decides one request by evaluating the policies, without the decision cache.
    pub fn decide_uncached(&self, req: &AccessRequest) -> Decision {
        let mut d = Decision {
            allowed: false,
            capability: None,
            action: req.action,
            plane: None,
            policies: Vec::new(),
            reasons: Vec::new(),
            exceptions: Vec::new(),
            errors: Vec::new(),
            policy_version: self.version,
        };
        let Some((capability, action)) = self.resolve_target(req, &mut d) else {
            return d;
        };
        d.action = Some(action);
        let Some(entry) = self.registry.capabilities.get(&capability) else {
            return deny(
                d,
                format!("capability `{capability}` is not in the catalog"),
            );
        };
        let (plane, classification) = (&entry.plane, &entry.classification);
        // What the catalog fixes for this capability overrides what the caller said.
        let fixed;
        let req = if entry.context.is_empty() {
            req
        } else {
            let mut with = req.clone();
            with.context
                .extend(entry.context.iter().map(|(k, v)| (k.clone(), v.clone())));
            fixed = with;
            &fixed
        };
        d.capability = Some(capability.clone());
        d.plane = Some(plane.to_string());
        let Some(who) = self.registry.identities.get(req.principal.as_str()) else {
            return deny(
                d,
                format!("principal `{}` is not a registered identity", req.principal),
            );
        };
        let entities = match self
            .registry
            .entities(&self.types, &req.principal, who, entry)
        {
            Ok(e) => e,
            Err(reason) => return deny(d, reason),
        };
        let active = self.active_exceptions(&req.principal, &capability, req.at);
        let context = match self.context(req, *classification, &active) {
            Ok(c) => c,
            Err(reason) => return deny(d, reason),
        };
        // No schema check here: the entity types and the action are Steward's own, and
        // `context()` has already typed every attribute the schema declares (checking
        // again would cost a third of a decision).
        let request = match Request::new(
            self.types.identity(&req.principal),
            self.types.action(action),
            self.types.capability(&capability),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return deny(d, format!("the request does not match the schema: {e}")),
        };
        let Some(sets) = self.compiled.sets(plane, &capability, action) else {
            return deny(d, format!("plane `{plane}` has no compiled policy"));
        };
        let (applicable, permits) = (&sets.applicable, &sets.permits);
        let response = self
            .authorizer
            .is_authorized(&request, applicable, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            d.reasons
                .push("a policy could not be evaluated; failing closed".into());
            d.errors = errors;
            return d;
        }
        let mut determining: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|p| p.to_string())
            .collect();
        determining.sort_unstable();
        if response.decision() == cedar_policy::Decision::Allow {
            d.allowed = true;
            d.reasons = determining.iter().map(|id| self.describe(id)).collect();
            d.policies = determining;
            return d;
        }
        if determining.is_empty() {
            return deny(
                d,
                format!("no policy permits `{action}` on `{capability}` for this principal"),
            );
        }
        // Denied by forbids. Lift them if every one is covered by an active exception.
        if self.lift_by_exceptions(&mut d, &request, &entities, permits, &determining, &active) {
            return d;
        }
        d.reasons = determining.iter().map(|id| self.describe(id)).collect();
        d.policies = determining;
        d
    }

    /// The capability and action a request is about: named, or looked up from its
    /// transport address. `None` (with the reason in `d`) when there is none to decide on.
    fn resolve_target(&self, req: &AccessRequest, d: &mut Decision) -> Option<(String, Action)> {
        let resolved = match &req.target {
            Target::Capability(id) => match req.action {
                Some(a) => (id.clone(), a),
                None => {
                    d.reasons.push("the request names no action".into());
                    return None;
                }
            },
            Target::Address(addr) => match self.index.lookup(&addr.as_address()) {
                None => {
                    d.reasons.push(format!(
                        "no capability in the catalog maps {addr}; unmapped addresses are denied"
                    ));
                    return None;
                }
                Some(r) => {
                    if let Some(a) = req.action
                        && a != r.action
                    {
                        d.capability = Some(r.capability.to_string());
                        d.reasons.push(format!(
                            "action `{a}` does not match `{}`, the action the catalog maps {addr} to",
                            r.action
                        ));
                        return None;
                    }
                    (r.capability.to_string(), r.action)
                }
            },
        };
        Some(resolved)
    }

    /// Allows a request denied only by forbids that active exceptions lift, if the
    /// permits still grant it. Returns whether it did (then `d` says how).
    fn lift_by_exceptions(
        &self,
        d: &mut Decision,
        request: &Request,
        entities: &cedar_policy::Entities,
        permits: &cedar_policy::PolicySet,
        determining: &[String],
        active: &[&PolicyException],
    ) -> bool {
        let lifting: Vec<&PolicyException> = active
            .iter()
            .copied()
            .filter(|e| e.lifts.iter().any(|l| determining.contains(l)))
            .collect();
        let all_lifted = determining
            .iter()
            .all(|f| lifting.iter().any(|e| e.lifts.contains(f)));
        if all_lifted && !lifting.is_empty() {
            let granted = self.authorizer.is_authorized(request, permits, entities);
            let errs: Vec<String> = granted
                .diagnostics()
                .errors()
                .map(|e| e.to_string())
                .collect();
            if errs.is_empty() && granted.decision() == cedar_policy::Decision::Allow {
                let mut permits_used: Vec<String> = granted
                    .diagnostics()
                    .reason()
                    .map(|p| p.to_string())
                    .collect();
                permits_used.sort_unstable();
                d.allowed = true;
                d.reasons = permits_used.iter().map(|id| self.describe(id)).collect();
                for e in &lifting {
                    for f in e.lifts.iter().filter(|f| determining.contains(f)) {
                        d.reasons.push(format!(
                            "{f} lifted by exception {} (ticket {}, owner {}, expires {})",
                            e.id,
                            e.ticket,
                            e.owner,
                            steward_model::timestamp::format(e.expires_at)
                        ));
                    }
                    d.exceptions.push(e.id.clone());
                }
                d.policies = permits_used;
                return true;
            }
            d.errors = errs;
        }
        false
    }

    /// "GR-1 (central guardrail, forbid): description".
    fn describe(&self, id: &str) -> String {
        match self.compiled.meta.get(id) {
            None => id.to_owned(),
            Some(m) => {
                let layer = match m.layer {
                    Layer::Guardrail => "central guardrail".to_owned(),
                    Layer::Plane => format!("plane {}", m.plane),
                };
                let effect = match m.effect {
                    Effect::Permit => "permit",
                    Effect::Forbid => "forbid",
                };
                match &m.description {
                    Some(text) => format!("{id} ({layer}, {effect}): {text}"),
                    None => format!("{id} ({layer}, {effect})"),
                }
            }
        }
    }

    fn context(
        &self,
        req: &AccessRequest,
        default_class: Classification,
        active: &[&PolicyException],
    ) -> Result<Context, String> {
        let c = &req.context;
        let string = |key: &str| -> Result<Option<String>, String> {
            match c.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("context.{key} must be a string")),
            }
        };
        let strings = |key: &str| -> Result<Vec<String>, String> {
            match c.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("context.{key} must be a list of strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("context.{key} must be a list of strings")),
            }
        };
        let set = |v: Vec<String>| CedarValue::set(v.into_iter().map(CedarValue::from), None);
        let environment = string("environment")?.ok_or("context.environment is required: the environment the request is served in (for example prod)")?;
        let data_class = match string("data_class")? {
            None => default_class,
            Some(s) => Classification::parse(&s).ok_or_else(|| format!("context.data_class `{s}` is not one of public, internal, confidential, restricted"))?,
        };
        // Built as Cedar's values directly: `Context::from_pairs` would evaluate each
        // attribute as an expression again (a tenth of a decision).
        let mut pairs: BTreeMap<SmolStr, CedarValue> = [
            ("environment", CedarValue::from(environment)),
            (
                "data_class",
                CedarValue::from(SmolStr::new_static(data_class.as_str())),
            ),
            ("time", datetime(req.at)?),
            ("delegation_chain", set(strings("delegation_chain")?)),
            ("task_scope", set(strings("task_scope")?)),
            (
                "exceptions",
                set(active.iter().map(|e| e.id.clone()).collect()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (SmolStr::new_static(k), v))
        .collect();
        if let Some(tier) = string("model_tier")? {
            pairs.insert(SmolStr::new_static("model_tier"), CedarValue::from(tier));
        }
        for (name, attr) in &self.compiled.context_attributes {
            let value = match (attr.kind, c.get(name)) {
                (_, None | Some(Value::Null)) => continue,
                (ContextType::String, Some(Value::String(s))) => CedarValue::from(s.as_str()),
                (ContextType::Long, Some(Value::Number(n))) if n.is_i64() => {
                    CedarValue::from(n.as_i64().unwrap_or_default())
                }
                (ContextType::Bool, Some(Value::Bool(b))) => CedarValue::from(*b),
                (ContextType::StringSet, Some(_)) => set(strings(name)?),
                (kind, Some(_)) => {
                    return Err(format!(
                        "context.{name} must be a {kind}, as the repository's request_context declares"
                    ));
                }
            };
            if pairs.insert(SmolStr::new(name), value).is_some() {
                return Err(format!(
                    "invalid request context: the declared attribute `{name}` repeats a built-in one"
                ));
            }
        }
        Ok(Context::from(CoreContext::Value(Arc::new(pairs))))
    }
}

fn deny(mut d: Decision, reason: impl Into<String>) -> Decision {
    d.allowed = false;
    d.reasons.push(reason.into());
    d
}

/// The value of `datetime("…")` for a request time. Making it parses the extension's name
/// with Cedar's grammar and calls the extension, so each thread keeps the one for the
/// current second.
fn datetime(t: time::OffsetDateTime) -> Result<CedarValue, String> {
    thread_local! {
        static CURRENT: std::cell::RefCell<Option<(i64, CedarValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    let second = t.unix_timestamp();
    let make = || -> Result<CedarValue, String> {
        let expr = RestrictedExpression::new_datetime(cedar_datetime(t));
        let ctx = Context::from_pairs([("time".to_owned(), expr)])
            .map_err(|e| format!("cannot represent the request time: {e}"))?;
        match ctx.as_ref() {
            CoreContext::Value(map) => map.get("time").cloned(),
            CoreContext::RestrictedResidual(_) => None,
        }
        .ok_or_else(|| "cannot represent the request time".to_owned())
    };
    CURRENT.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return make();
        };
        if let Some((s, v)) = slot.as_ref()
            && *s == second
        {
            return Ok(v.clone());
        }
        let v = make()?;
        *slot = Some((second, v.clone()));
        Ok(v)
    })
}

/// Cedar's `datetime("…")` accepts `YYYY-MM-DDThh:mm:ssZ`.
fn cedar_datetime(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ACTIONS;

    /// The per-plane, per-action, per-capability slices decide exactly as the whole policy
    /// set would, for every identity, capability and action of the example repository.
    fn example_engine(at: time::OffsetDateTime) -> Engine {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governance");
        let files = steward_governance::read_dir(&root).unwrap();
        let desired = steward_governance::parse(
            &files,
            &steward_model::TrustDomain::new("acme.example").unwrap(),
        )
        .unwrap();
        Engine::from_desired(&desired, at).unwrap()
    }

    /// A request repeated within its second is answered from the cache with exactly the
    /// decision evaluation gives; another second, an earlier time or a principal an
    /// exception names is evaluated again.
    #[test]
    fn repeated_requests_are_answered_from_the_cache_exactly() {
        let at = time::macros::datetime!(2026-12-01 10:00:00.250 UTC);
        let engine = example_engine(at);
        let request = |principal: &str, capability: &str, at| {
            let mut context = serde_json::Map::new();
            context.insert("environment".into(), "prod".into());
            AccessRequest {
                principal: principal.into(),
                target: Target::Capability(capability.into()),
                action: Some(Action::Read),
                context,
                at,
            }
        };
        let orders = "spiffe://acme.example/ns/orders/sa/orders-api";
        let exporter = "spiffe://acme.example/legacy/billing-exporter";
        let r = request(orders, "payments.read", at);
        let first = engine.decide(&r);
        assert_eq!(engine.cache.len(), 1);
        let later_in_second = request(
            orders,
            "payments.read",
            at + time::Duration::milliseconds(700),
        );
        assert_eq!(engine.decide(&later_in_second), first);
        assert_eq!(engine.decide(&r), engine.decide_uncached(&r));
        assert_eq!(engine.cache.len(), 1);
        // The context is part of the key.
        let mut staging = r.clone();
        staging
            .context
            .insert("environment".into(), "staging".into());
        assert_eq!(engine.decide(&staging), engine.decide_uncached(&staging));
        assert_eq!(engine.cache.len(), 2);
        // The next second starts afresh; an earlier second is evaluated, not cached.
        let next = request(orders, "payments.read", at + time::Duration::seconds(1));
        assert_eq!(engine.decide(&next), engine.decide_uncached(&next));
        let earlier = request(orders, "payments.read", at - time::Duration::seconds(5));
        assert_eq!(engine.decide(&earlier), engine.decide_uncached(&earlier));
        assert!(engine.cache.len() <= 2, "{}", engine.cache.len());
        // Decisions an exception can touch are never cached (expiry is sub-second).
        let before = engine.cache.len();
        let excepted = request(exporter, "billing.export", at);
        assert!(engine.decide(&excepted).allowed);
        assert_eq!(engine.cache.len(), before);
        // A flood of distinct requests keeps the cache bounded, and the latest are kept.
        for n in 0..20_000 {
            let mut r = request(orders, "payments.read", at);
            r.context.insert("n".into(), n.into());
            engine.decide(&r);
            assert_eq!(engine.decide(&r), engine.decide_uncached(&r));
        }
        assert!(engine.cache.len() <= 8 * 1_024, "{}", engine.cache.len());
        assert!(engine.cache.len() > 1_024, "{}", engine.cache.len());
    }

    #[test]
    fn indexed_policy_sets_agree_with_the_whole_set() {
        let at = time::macros::datetime!(2026-12-01 00:00 UTC);
        let engine = example_engine(at);
        let mut compared = 0;
        let principals: Vec<String> = engine
            .registry
            .identities
            .keys()
            .map(|k| k.to_string())
            .collect();
        for principal in &principals {
            for capability in engine.capability_ids() {
                for action in ACTIONS {
                    for env in ["prod", "staging", "test"] {
                        let mut context = serde_json::Map::new();
                        context.insert("environment".into(), env.into());
                        context.insert("human_approved".into(), true.into());
                        context.insert("amount_minor".into(), 100.into());
                        let req = AccessRequest {
                            principal: principal.clone(),
                            target: Target::Capability(capability.to_owned()),
                            action: Some(action),
                            context,
                            at,
                        };
                        let indexed = engine.decide(&req);
                        let entry = engine.registry.capabilities.get(capability).unwrap();
                        let classification = &entry.classification;
                        let who = engine.registry.identities.get(principal.as_str()).unwrap();
                        // The reference entities come through Cedar's public API.
                        let entities = crate::entities::reference::entities(
                            &engine.types,
                            principal,
                            who,
                            entry,
                        );
                        let active = engine.active_exceptions(principal, capability, at);
                        let ctx = engine.context(&req, *classification, &active).unwrap();
                        let request = Request::new(
                            engine.types.identity(principal),
                            engine.types.action(action),
                            engine.types.capability(capability),
                            ctx,
                            Some(&engine.compiled.schema),
                        )
                        .unwrap();
                        let full = engine.authorizer.is_authorized(
                            &request,
                            &engine.compiled.all,
                            &entities,
                        );
                        let mut full_ids: Vec<String> =
                            full.diagnostics().reason().map(|p| p.to_string()).collect();
                        full_ids.sort_unstable();
                        if indexed.exceptions.is_empty() {
                            assert_eq!(
                                indexed.allowed,
                                full.decision() == cedar_policy::Decision::Allow,
                                "{req:?}"
                            );
                            assert_eq!(indexed.policies, full_ids, "{req:?}");
                        }
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 5_000, "{compared}");
    }
}
