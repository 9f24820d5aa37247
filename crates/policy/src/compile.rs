//! From a repository's policy bundle to per-plane Cedar policy sets, refusing whatever
//! breaks the layering rules: central guardrails are `forbid`s; a plane policy only
//! concerns capabilities of its own plane (or the planes below it); every policy has an
//! `@id` and passes strict Cedar validation against the schema; an exception lifts only
//! guardrails annotated `@exceptionable("true")` and expires within the central maximum.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicyId, PolicySet, ResourceConstraint, Schema,
    ValidationMode, Validator,
};
use serde::{Deserialize, Serialize};
use steward_model::{
    Action, Capability, CapabilityId, ContextAttribute, DEFAULT_MAX_EXCEPTION_DAYS, Plane, PlaneId,
    PolicyException, Settings,
};
use steward_model::{Desired, Diagnostic, ObjectKind, PlaneTree, PolicyBundle, PolicyFile};

use crate::PolicyError;
use crate::schema::{self, ACTIONS, CAPABILITY_TYPE, PLANE_TYPE};
use crate::source::{line_at, statement_starts};

/// Whether a policy grants or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Permit,
    Forbid,
}

/// Where a policy sits in the layering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// A central guardrail of the root plane: applies to every request.
    Guardrail,
    /// A policy of a delegated plane: applies to that plane's capabilities.
    Plane,
}

/// What Steward knows about one compiled policy, for decisions and evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyMeta {
    pub id: String,
    pub plane: PlaneId,
    pub layer: Layer,
    pub effect: Effect,
    pub exceptionable: bool,
    pub description: Option<String>,
    pub file: String,
    pub line: usize,
}

/// A compiled policy bundle: the schema, and for each plane the policies that can apply
/// to a capability of that plane (guardrails, then the plane's and its ancestors' policies).
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The schema the bundle was validated against (tests re-validate requests with it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) schema: Schema,
    pub(crate) meta: BTreeMap<String, PolicyMeta>,
    /// Per plane and action: the policies that can apply to a capability of that plane
    /// and name no capability in their scope.
    pub(crate) by_plane: HashMap<PlaneId, Vec<Sets>>,
    /// Per capability named in some policy's resource scope, and action: the plane's set
    /// plus those policies. Absent: the plane's set is the whole story.
    pub(crate) by_capability: HashMap<String, Vec<Option<Sets>>>,
    /// Every policy in one set: what the indexed sets must always agree with (a test
    /// compares them).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) all: PolicySet,
    pub(crate) context_attributes: BTreeMap<String, ContextAttribute>,
    pub(crate) exceptions: Vec<PolicyException>,
}

/// The policies to evaluate for one slice of requests: all of them, and the permits alone
/// (used to decide whether a request is granted once an exception has lifted the forbids
/// that matched).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sets {
    pub(crate) applicable: PolicySet,
    pub(crate) permits: PolicySet,
}

impl Sets {
    fn add(&mut self, p: &Policy) {
        // Ids are unique (checked before indexing), so adding cannot fail.
        let _ = self.applicable.add(p.clone());
        if p.effect() == cedar_policy::Effect::Permit {
            let _ = self.permits.add(p.clone());
        }
    }
}

impl Compiled {
    /// Every compiled policy, by id.
    /// The exceptions of the bundle, active or expired.
    pub fn exceptions(&self) -> &[PolicyException] {
        &self.exceptions
    }

    pub fn policies(&self) -> &BTreeMap<String, PolicyMeta> {
        &self.meta
    }

    /// The policies that can apply to `action` on `capability` of `plane`. Leaving the
    /// others out cannot change a decision: their scope excludes the request.
    pub(crate) fn sets(&self, plane: &PlaneId, capability: &str, action: Action) -> Option<&Sets> {
        let i = action_index(action);
        self.by_capability
            .get(capability)
            .and_then(|per_action| per_action.get(i))
            .and_then(Option::as_ref)
            .or_else(|| {
                self.by_plane
                    .get(plane)
                    .and_then(|per_action| per_action.get(i))
            })
    }
}

fn action_index(action: Action) -> usize {
    ACTIONS.iter().position(|a| *a == action).unwrap_or(0)
}

/// A compiled policy with what its scope says, for indexing.
struct Scoped {
    plane: PlaneId,
    policy: Policy,
    /// `None`: any action.
    actions: Option<Vec<Action>>,
    /// The capability its resource scope names, if any.
    capability: Option<String>,
}

impl Scoped {
    fn new(plane: PlaneId, policy: Policy) -> Self {
        let action_of = |uid: &EntityUid| Action::parse(uid.id().unescaped());
        let actions = match policy.action_constraint() {
            ActionConstraint::Any => None,
            ActionConstraint::Eq(uid) => Some(action_of(&uid).into_iter().collect()),
            ActionConstraint::In(uids) => Some(uids.iter().filter_map(action_of).collect()),
        };
        let named = |uid: EntityUid| {
            (uid.type_name().to_string() == CAPABILITY_TYPE)
                .then(|| uid.id().unescaped().to_owned())
        };
        let capability = match policy.resource_constraint() {
            ResourceConstraint::Eq(uid)
            | ResourceConstraint::In(uid)
            | ResourceConstraint::IsIn(_, uid) => named(uid),
            ResourceConstraint::Any | ResourceConstraint::Is(_) => None,
        };
        Self {
            plane,
            policy,
            actions,
            capability,
        }
    }

    fn allows(&self, action: Action) -> bool {
        self.actions.as_ref().is_none_or(|a| a.contains(&action))
    }
}

/// The publish-time check of a whole repository (`steward validate`, `plan`, `apply`):
/// everything [`compile`] refuses, placed at the repository's files and lines.
pub fn check(desired: &Desired, now: time::OffsetDateTime) -> Result<Compiled, PolicyError> {
    compile(
        &desired.policy_bundle(),
        &desired.planes,
        &desired.capabilities,
        &desired.root_settings,
        now,
    )
    .map_err(|e| match e {
        PolicyError::Invalid(diags) => PolicyError::Invalid(
            diags
                .into_iter()
                .map(|mut d| {
                    if let Some(id) = d
                        .file
                        .strip_prefix("(exception ")
                        .and_then(|r| r.strip_suffix(')'))
                    {
                        let (file, line) = desired.locate(ObjectKind::Exception, id);
                        d.file = file;
                        d.line = line;
                    }
                    d
                })
                .collect(),
        ),
        other => other,
    })
}

/// Compiles a policy bundle against the plane tree and the capability catalog.
pub fn compile(
    bundle: &PolicyBundle,
    planes: &BTreeMap<PlaneId, Plane>,
    capabilities: &BTreeMap<CapabilityId, Capability>,
    root_settings: &Settings,
    now: time::OffsetDateTime,
) -> Result<Compiled, PolicyError> {
    let schema = schema::build(&bundle.context_attributes)?;
    let tree = PlaneTree::new(planes);
    let mut diags = Vec::new();
    let mut meta: BTreeMap<String, PolicyMeta> = BTreeMap::new();
    let mut policies: Vec<(PlaneId, Policy)> = Vec::new();

    for file in bundle.policies.values() {
        compile_file(
            file,
            &tree,
            capabilities,
            &mut meta,
            &mut policies,
            &mut diags,
        );
    }

    let mut all = PolicySet::new();
    for (_, p) in &policies {
        if let Err(e) = all.add(p.clone()) {
            diags.push(Diagnostic {
                file: "(policies)".into(),
                line: 0,
                message: format!("cannot assemble the policy set: {e}"),
            });
        }
    }
    if diags.is_empty() {
        let result = Validator::new(schema.clone()).validate(&all, ValidationMode::Strict);
        for e in result.validation_errors() {
            let id = e.policy_id().to_string();
            let (file, line) = meta
                .get(&id)
                .map(|m| (m.file.clone(), m.line))
                .unwrap_or_else(|| ("(policies)".into(), 0));
            diags.push(Diagnostic {
                file,
                line,
                message: format!(
                    "policy `{id}` fails Cedar validation against the Steward schema: {e}"
                ),
            });
        }
    }

    let max_days = root_settings
        .max_exception_days
        .unwrap_or(DEFAULT_MAX_EXCEPTION_DAYS);
    let latest =
        now + time::Duration::days(i64::try_from(max_days).unwrap_or(i64::MAX / 86_400_000));
    for e in bundle.exceptions.values() {
        let at = format!("(exception {})", e.id);
        let mut problem = |message: String| {
            diags.push(Diagnostic {
                file: at.clone(),
                line: 0,
                message: format!("exception `{}`: {message}", e.id),
            })
        };
        if e.expires_at > latest {
            problem(format!(
                "expires_at is more than {max_days} days away (the central `max_exception_days`); exceptions must be short-lived"
            ));
        }
        for lifted in &e.lifts {
            match meta.get(lifted) {
                None => problem(format!("lifts `{lifted}`, which is not a policy id")),
                Some(m) if !(m.exceptionable && m.effect == Effect::Forbid) => problem(format!(
                    "lifts `{lifted}`, which is not annotated @exceptionable(\"true\"); only exceptionable guardrails can be lifted"
                )),
                Some(_) => {}
            }
        }
    }

    if !diags.is_empty() {
        diags.sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
        return Err(PolicyError::Invalid(diags));
    }

    let scoped: Vec<Scoped> = policies
        .into_iter()
        .map(|(plane, p)| Scoped::new(plane, p))
        .collect();
    let mut by_plane = HashMap::new();
    for plane in tree.ids() {
        let scope = tree.ancestors(&plane);
        let reaches = |s: &&Scoped| s.plane.is_root() || scope.contains(&s.plane);
        let per_action = ACTIONS
            .iter()
            .map(|a| {
                let mut sets = Sets::default();
                for s in scoped
                    .iter()
                    .filter(reaches)
                    .filter(|s| s.capability.is_none() && s.allows(*a))
                {
                    sets.add(&s.policy);
                }
                sets
            })
            .collect();
        by_plane.insert(plane, per_action);
    }
    let mut by_capability: HashMap<String, Vec<Option<Sets>>> = HashMap::new();
    for named in scoped.iter().filter_map(|s| s.capability.clone()) {
        if by_capability.contains_key(&named) {
            continue;
        }
        let Some(cap) = CapabilityId::new(named.as_str())
            .ok()
            .and_then(|c| capabilities.get(&c))
        else {
            continue;
        };
        let scope = tree.ancestors(&cap.plane);
        let specific: Vec<&Scoped> = scoped
            .iter()
            .filter(|s| s.capability.as_deref() == Some(named.as_str()))
            .filter(|s| s.plane.is_root() || scope.contains(&s.plane))
            .collect();
        let per_action = ACTIONS
            .iter()
            .map(|a| {
                let extra: Vec<&&Scoped> = specific.iter().filter(|s| s.allows(*a)).collect();
                if extra.is_empty() {
                    return None;
                }
                let mut sets = by_plane
                    .get(&cap.plane)
                    .and_then(|v: &Vec<Sets>| v.get(action_index(*a)))
                    .cloned()
                    .unwrap_or_default();
                for s in extra {
                    sets.add(&s.policy);
                }
                Some(sets)
            })
            .collect();
        by_capability.insert(named, per_action);
    }
    Ok(Compiled {
        schema,
        meta,
        by_plane,
        by_capability,
        all,
        context_attributes: bundle.context_attributes.clone(),
        exceptions: bundle.exceptions.values().cloned().collect(),
    })
}

fn compile_file(
    file: &PolicyFile,
    tree: &PlaneTree,
    capabilities: &BTreeMap<CapabilityId, Capability>,
    meta: &mut BTreeMap<String, PolicyMeta>,
    out: &mut Vec<(PlaneId, Policy)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut err = |line: usize, message: String| {
        diags.push(Diagnostic {
            file: file.path.clone(),
            line,
            message,
        })
    };
    let set = match PolicySet::from_str(&file.text) {
        Ok(set) => set,
        Err(e) => {
            for one in e.iter() {
                let line = miette::Diagnostic::labels(one)
                    .and_then(|mut l| l.next())
                    .map(|l| line_at(&file.text, l.offset()))
                    .unwrap_or(0);
                let help = miette::Diagnostic::help(one)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                err(line, format!("Cedar syntax error: {one}{help}"));
            }
            return;
        }
    };
    if set.templates().next().is_some() {
        err(0, "policy templates (`?principal`, `?resource`) are not supported: write the policy for the concrete principal or resource".into());
        return;
    }
    let starts = statement_starts(&file.text);
    let guardrail = file.plane.is_root();
    let mut parsed: Vec<(usize, &Policy)> = set
        .policies()
        .map(|p| {
            let n = p
                .id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            (n, p)
        })
        .collect();
    parsed.sort_by_key(|(n, _)| *n);
    for (n, policy) in parsed {
        let line = starts.get(n).map(|o| line_at(&file.text, *o)).unwrap_or(0);
        let Some(id) = policy.annotation("id").map(str::to_owned) else {
            err(line, "every policy needs an `@id(\"…\")` annotation: the id names it in decisions, evidence and tests".into());
            continue;
        };
        if id.is_empty()
            || id.len() > 128
            || id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            err(
                line,
                format!("policy id `{id}` must be 1–128 characters without spaces"),
            );
            continue;
        }
        if let Some(first) = meta.get(&id) {
            err(
                line,
                format!(
                    "policy id `{id}` is used twice (first at {}:{})",
                    first.file, first.line
                ),
            );
            continue;
        }
        let effect = match policy.effect() {
            cedar_policy::Effect::Permit => Effect::Permit,
            cedar_policy::Effect::Forbid => Effect::Forbid,
        };
        let exceptionable = match policy.annotation("exceptionable") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                err(
                    line,
                    format!(
                        "policy `{id}`: @exceptionable must be \"true\" or \"false\", not \"{other}\""
                    ),
                );
                continue;
            }
        };
        if exceptionable && effect == Effect::Permit {
            err(
                line,
                format!(
                    "policy `{id}`: only `forbid` policies can be exceptionable; an exception lifts a prohibition, it never grants"
                ),
            );
            continue;
        }
        let confined = if guardrail {
            if effect == Effect::Permit {
                err(
                    line,
                    format!(
                        "policy `{id}` in {}: central guardrails (files directly under policies/) must be `forbid` policies; grants belong to the plane that owns the capability (policies/<plane>/)",
                        file.path
                    ),
                );
                continue;
            }
            Ok(policy.clone())
        } else {
            confine(policy, &file.plane, tree, capabilities)
        };
        match confined {
            Ok(p) => {
                meta.insert(
                    id.clone(),
                    PolicyMeta {
                        id: id.clone(),
                        plane: file.plane.clone(),
                        layer: if guardrail {
                            Layer::Guardrail
                        } else {
                            Layer::Plane
                        },
                        effect,
                        exceptionable,
                        description: policy.annotation("description").map(str::to_owned),
                        file: file.path.clone(),
                        line,
                    },
                );
                out.push((file.plane.clone(), p.new_id(PolicyId::new(&id))));
            }
            Err(message) => err(
                line,
                format!("policy `{id}` of plane `{}`: {message}", file.plane),
            ),
        }
    }
}

/// Confines a plane policy to its plane's capabilities: an unconstrained resource becomes
/// `resource in Steward::Plane::"<plane>"`; a named capability or plane must lie in the
/// plane's subtree. Capabilities named in the conditions are checked the same way.
fn confine(
    policy: &Policy,
    plane: &PlaneId,
    tree: &PlaneTree,
    capabilities: &BTreeMap<CapabilityId, Capability>,
) -> Result<Policy, String> {
    let within = |uid: &EntityUid| -> Result<(), String> {
        let ty = uid.type_name().to_string();
        let id = uid.id().unescaped();
        if ty == CAPABILITY_TYPE {
            let Some(cap) = CapabilityId::new(id)
                .ok()
                .and_then(|c| capabilities.get(&c))
            else {
                return Err(format!(
                    "names capability `{id}`, which is not in the catalog"
                ));
            };
            if !tree.ancestors(&cap.plane).contains(plane) {
                return Err(format!(
                    "its resources are outside its plane: capability `{id}` belongs to plane `{}`; a plane's policies may only govern its own capabilities (the owning plane grants access to others)",
                    cap.plane
                ));
            }
            Ok(())
        } else if ty == PLANE_TYPE {
            let other = PlaneId::new(id).map_err(|e| e.to_string())?;
            if !tree.ancestors(&other).contains(plane) {
                return Err(format!(
                    "its resources are outside its plane: plane `{id}` is not `{plane}` or below it"
                ));
            }
            Ok(())
        } else {
            Err(format!(
                "its resource must be a Steward::Capability, not `{ty}`"
            ))
        }
    };
    let in_plane = serde_json::json!({"type": PLANE_TYPE, "id": plane.as_str()});
    let resource = match policy.resource_constraint() {
        ResourceConstraint::Any => Some(serde_json::json!({"op": "in", "entity": in_plane})),
        ResourceConstraint::Is(ty) => {
            if ty.to_string() != CAPABILITY_TYPE {
                return Err(format!(
                    "its resource must be a Steward::Capability, not `{ty}`"
                ));
            }
            Some(
                serde_json::json!({"op": "is", "entity_type": CAPABILITY_TYPE, "in": {"entity": in_plane}}),
            )
        }
        ResourceConstraint::Eq(uid)
        | ResourceConstraint::In(uid)
        | ResourceConstraint::IsIn(_, uid) => {
            within(&uid)?;
            None
        }
    };
    for uid in policy.entity_literals() {
        if uid.type_name().to_string() == CAPABILITY_TYPE {
            within(&uid)?;
        }
    }
    let Some(resource) = resource else {
        return Ok(policy.clone());
    };
    let mut json = policy
        .to_json()
        .map_err(|e| format!("cannot be confined to its plane: {e}"))?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("resource".into(), resource);
    }
    Policy::from_json(Some(policy.id().clone()), json)
        .map_err(|e| format!("cannot be confined to its plane: {e}"))
}
