//! Plans: the difference between what the registry holds and what the repository wants.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use steward_model::{
    Capability, CapabilityId, ContextAttribute, Identity, LifecycleState, Owner, Plane, PlaneId,
    PolicyException, Settings, SpiffeId, TrustedIssuer,
};

use crate::{Desired, DesiredIdentity, Diagnostic, GovernanceError, ObjectKind, PolicyFile};

/// Most changes a plan lists in full; the rest are counted in the summary.
pub const MAX_LISTED_CHANGES: usize = 2_000;

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Create,
    Update,
    /// Removed from the registry (planes, capabilities, issuers, policies).
    Delete,
    /// Owners are never deleted, only marked removed, so orphans stay visible.
    Remove,
    /// Identities leave the repository by being decommissioned, never deleted.
    Decommission,
}

/// One field that changes, rendered for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// One object that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ObjectKind,
    pub id: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// Counts per operation, across all kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub remove: usize,
    pub decommission: usize,
}

impl PlanSummary {
    pub fn total(&self) -> usize {
        self.create + self.update + self.delete + self.remove + self.decommission
    }
}

/// Every change needed to make the registry match the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub summary: PlanSummary,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.summary.total() == 0
    }

    fn push(&mut self, change: Change) {
        match change.op {
            Op::Create => self.summary.create += 1,
            Op::Update => self.summary.update += 1,
            Op::Delete => self.summary.delete += 1,
            Op::Remove => self.summary.remove += 1,
            Op::Decommission => self.summary.decommission += 1,
        }
        self.changes.push(change);
    }

    /// A copy listing at most `max` changes (the summary still counts all of them), for
    /// answers that must stay small.
    pub fn truncated(&self, max: usize) -> Plan {
        Plan {
            changes: self.changes.iter().take(max).cloned().collect(),
            summary: self.summary.clone(),
        }
    }
}

/// An identity as the registry holds it, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIdentity {
    pub identity: Identity,
    /// Whether the governance repository manages it (`false`: created through the API).
    pub managed: bool,
}

/// The registry's current state, as far as the repository can change it.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub root_settings: Settings,
    pub planes: BTreeMap<PlaneId, Plane>,
    /// Owners not marked removed.
    pub owners: BTreeMap<String, Owner>,
    pub identities: BTreeMap<SpiffeId, StoredIdentity>,
    pub capabilities: BTreeMap<CapabilityId, Capability>,
    pub issuers: BTreeMap<String, TrustedIssuer>,
    pub policies: BTreeMap<String, PolicyFile>,
    pub context_attributes: BTreeMap<String, ContextAttribute>,
    pub exceptions: BTreeMap<String, PolicyException>,
    pub workflows: BTreeMap<String, steward_model::Workflow>,
}

/// Computes the plan that turns `current` into `desired`, or the reasons it cannot.
pub fn plan(current: &State, desired: &Desired) -> Result<Plan, GovernanceError> {
    let mut plan = Plan::default();
    let mut diags = Vec::new();

    if current.root_settings != desired.root_settings {
        plan.push(Change {
            kind: ObjectKind::Settings,
            id: "root".into(),
            op: Op::Update,
            fields: json_fields(&current.root_settings, &desired.root_settings),
        });
    }
    diff_map(
        &mut plan,
        ObjectKind::Plane,
        &current.planes,
        &desired.planes,
        Op::Delete,
    );
    diff_map(
        &mut plan,
        ObjectKind::Owner,
        &current.owners,
        &desired.owners,
        Op::Remove,
    );
    diff_map(
        &mut plan,
        ObjectKind::Capability,
        &current.capabilities,
        &desired.capabilities,
        Op::Delete,
    );
    diff_map(
        &mut plan,
        ObjectKind::Issuer,
        &current.issuers,
        &desired.issuers,
        Op::Delete,
    );
    diff_map(
        &mut plan,
        ObjectKind::Policy,
        &current.policies,
        &desired.policies,
        Op::Delete,
    );

    diff_map(
        &mut plan,
        ObjectKind::ContextAttribute,
        &current.context_attributes,
        &desired.context_attributes,
        Op::Delete,
    );
    diff_map(
        &mut plan,
        ObjectKind::Exception,
        &current.exceptions,
        &desired.exceptions,
        Op::Delete,
    );
    diff_map(
        &mut plan,
        ObjectKind::Workflow,
        &current.workflows,
        &desired.workflows,
        Op::Delete,
    );

    // A plane may only go when nothing live still belongs to it.
    for id in current
        .planes
        .keys()
        .filter(|p| !desired.planes.contains_key(*p))
    {
        let live = desired
            .identities
            .values()
            .filter(|i| &i.plane == id)
            .count()
            + current
                .identities
                .values()
                .filter(|s| {
                    !s.managed
                        && &s.identity.plane == id
                        && s.identity.state != LifecycleState::Decommissioned
                })
                .count();
        if live > 0 {
            diags.push(Diagnostic {
                file: "(repository)".into(),
                line: 0,
                message: format!("plane `{id}` cannot be removed: {live} identities that are not decommissioned still belong to it"),
            });
        }
    }

    for (id, want) in &desired.identities {
        match current.identities.get(id) {
            None => {
                if want.state == Some(LifecycleState::Decommissioned) {
                    let (file, line) = desired.locate(ObjectKind::Identity, id.as_str());
                    diags.push(Diagnostic {
                        file,
                        line,
                        message: format!("identity `{id}`: cannot be created decommissioned"),
                    });
                }
                plan.push(Change {
                    kind: ObjectKind::Identity,
                    id: id.to_string(),
                    op: Op::Create,
                    fields: Vec::new(),
                });
            }
            Some(have) => {
                if let Some(to) = want.state
                    && let Err(e) = have.identity.state.check_transition(to)
                {
                    let (file, line) = desired.locate(ObjectKind::Identity, id.as_str());
                    diags.push(Diagnostic {
                        file,
                        line,
                        message: format!("identity `{id}`: {e}"),
                    });
                    continue;
                }
                let fields = identity_fields(have, want);
                if !fields.is_empty() {
                    plan.push(Change {
                        kind: ObjectKind::Identity,
                        id: id.to_string(),
                        op: Op::Update,
                        fields,
                    });
                }
            }
        }
    }
    for (id, have) in &current.identities {
        if have.managed
            && have.identity.state != LifecycleState::Decommissioned
            && !desired.identities.contains_key(id)
        {
            plan.push(Change {
                kind: ObjectKind::Identity,
                id: id.to_string(),
                op: Op::Decommission,
                fields: Vec::new(),
            });
        }
    }

    if diags.is_empty() {
        Ok(plan)
    } else {
        Err(GovernanceError::Invalid(diags))
    }
}

fn diff_map<K: Ord + fmt::Display, V: PartialEq + Serialize>(
    plan: &mut Plan,
    kind: ObjectKind,
    current: &BTreeMap<K, V>,
    desired: &BTreeMap<K, V>,
    gone: Op,
) {
    for (id, want) in desired {
        match current.get(id) {
            None => plan.push(Change {
                kind,
                id: id.to_string(),
                op: Op::Create,
                fields: Vec::new(),
            }),
            Some(have) if have != want => plan.push(Change {
                kind,
                id: id.to_string(),
                op: Op::Update,
                fields: json_fields(have, want),
            }),
            Some(_) => {}
        }
    }
    for id in current.keys().filter(|k| !desired.contains_key(*k)) {
        plan.push(Change {
            kind,
            id: id.to_string(),
            op: gone,
            fields: Vec::new(),
        });
    }
}

/// Field-by-field difference of two values through their JSON form (top-level keys).
fn json_fields<T: Serialize>(before: &T, after: &T) -> Vec<FieldChange> {
    let (Ok(serde_json::Value::Object(b)), Ok(serde_json::Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (b.get(k), a.get(k));
            (x != y).then(|| FieldChange {
                field: k.clone(),
                before: render(x),
                after: render(y),
            })
        })
        .collect()
}

fn render(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "(unset)".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn identity_fields(have: &StoredIdentity, want: &DesiredIdentity) -> Vec<FieldChange> {
    let h = &have.identity;
    let mut out = Vec::new();
    let mut cmp = |field: &str, before: String, after: String| {
        if before != after {
            out.push(FieldChange {
                field: field.into(),
                before,
                after,
            });
        }
    };
    cmp("plane", h.plane.to_string(), want.plane.to_string());
    cmp("owner", h.owner.clone(), want.owner.clone());
    cmp(
        "environment",
        h.environment.clone(),
        want.environment.clone(),
    );
    cmp("kind", h.kind.to_string(), want.kind.to_string());
    cmp(
        "classification",
        h.classification.to_string(),
        want.classification.to_string(),
    );
    cmp(
        "description",
        h.description.clone(),
        want.description.clone(),
    );
    cmp("labels", json(&h.labels), json(&want.labels));
    cmp("intended", json(&h.intended), json(&want.intended));
    cmp("credentials", json(&h.credentials), json(&want.credentials));
    if let Some(state) = want.state {
        cmp("state", h.state.to_string(), state.to_string());
    }
    if !have.managed {
        out.push(FieldChange {
            field: "managed-by".into(),
            before: "api".into(),
            after: "governance repository".into(),
        });
    }
    out
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SourceFile, parse};
    use steward_model::TrustDomain;

    const BASE: &str =
        "planes:\n  - id: pay\nowners:\n  - id: team\n    name: Team\n    email: t@acme.example\n";

    fn desired(identities: &str) -> Desired {
        let files = vec![
            SourceFile {
                path: "base.yaml".into(),
                content: BASE.into(),
            },
            SourceFile {
                path: "ids.yaml".into(),
                content: identities.into(),
            },
        ];
        parse(&files, &TrustDomain::new("acme.example").unwrap()).unwrap()
    }

    fn ident(path: &str, env: &str, state: &str) -> String {
        format!(
            "  - spiffe_id: spiffe://acme.example/{path}\n    plane: pay\n    owner: team\n    environment: {env}\n    kind: service\n{state}"
        )
    }

    /// The state the store would hold after applying `d` (what the planner compares to).
    fn applied(d: &Desired) -> State {
        State {
            root_settings: d.root_settings.clone(),
            planes: d.planes.clone(),
            owners: d.owners.clone(),
            capabilities: d.capabilities.clone(),
            issuers: d.issuers.clone(),
            policies: d.policies.clone(),
            context_attributes: d.context_attributes.clone(),
            exceptions: d.exceptions.clone(),
            workflows: d.workflows.clone(),
            identities: d
                .identities
                .values()
                .map(|i| {
                    let identity = Identity {
                        spiffe_id: i.spiffe_id.clone(),
                        plane: i.plane.clone(),
                        owner: i.owner.clone(),
                        environment: i.environment.clone(),
                        kind: i.kind,
                        classification: i.classification,
                        description: i.description.clone(),
                        labels: i.labels.clone(),
                        state: i.state.unwrap_or(LifecycleState::Active),
                        intended: i.intended.clone(),
                        credentials: i.credentials.clone(),
                    };
                    (
                        i.spiffe_id.clone(),
                        StoredIdentity {
                            identity,
                            managed: true,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn first_plan_creates_everything_then_nothing() {
        let d = desired(&format!("identities:\n{}", ident("a", "dev", "")));
        let p = plan(&State::default(), &d).unwrap();
        assert_eq!(
            p.summary,
            PlanSummary {
                create: 3,
                ..Default::default()
            }
        );
        assert!(plan(&applied(&d), &d).unwrap().is_empty());
    }

    #[test]
    fn changed_fields_are_listed_and_removed_identities_decommissioned() {
        let v1 = desired(&format!(
            "identities:\n{}{}",
            ident("a", "dev", ""),
            ident("b", "dev", "")
        ));
        let v2 = desired(&format!("identities:\n{}", ident("a", "prod", "")));
        let p = plan(&applied(&v1), &v2).unwrap();
        assert_eq!(p.summary.update, 1);
        assert_eq!(p.summary.decommission, 1);
        let update = p.changes.iter().find(|c| c.op == Op::Update).unwrap();
        assert_eq!(
            update.fields,
            vec![FieldChange {
                field: "environment".into(),
                before: "dev".into(),
                after: "prod".into()
            }]
        );
        let gone = p.changes.iter().find(|c| c.op == Op::Decommission).unwrap();
        assert_eq!(gone.id, "spiffe://acme.example/b");
    }

    #[test]
    fn decommissioned_identities_do_not_come_back() {
        let v1 = desired(&format!(
            "identities:\n{}",
            ident("a", "dev", "    state: decommissioned\n")
        ));
        let mut state = applied(&v1);
        // The repository cannot create an identity decommissioned…
        assert!(plan(&State::default(), &v1).is_err());
        // …nor bring a decommissioned one back.
        let v2 = desired(&format!(
            "identities:\n{}",
            ident("a", "dev", "    state: active\n")
        ));
        let GovernanceError::Invalid(d) = plan(&state, &v2).unwrap_err() else {
            panic!()
        };
        assert!(d[0].message.contains("one-way"), "{d:?}");
        assert_eq!((d[0].file.as_str(), d[0].line), ("ids.yaml", 2));
        // Leaving the state unmanaged keeps it decommissioned without complaint.
        let v3 = desired(&format!("identities:\n{}", ident("a", "dev", "")));
        assert!(plan(&state, &v3).unwrap().is_empty());
        // An API-created identity the repository names is adopted.
        state
            .identities
            .values_mut()
            .for_each(|s| s.managed = false);
        let p = plan(&state, &v3).unwrap();
        assert_eq!(p.changes[0].fields.last().unwrap().field, "managed-by");
    }

    #[test]
    fn planes_with_live_identities_cannot_go() {
        let v1 = desired(&format!("identities:\n{}", ident("a", "dev", "")));
        let mut state = applied(&v1);
        state
            .identities
            .values_mut()
            .for_each(|s| s.managed = false);
        let empty = parse(
            &[SourceFile {
                path: "o.yaml".into(),
                content: "owners:\n  - id: team\n    name: T\n    email: t@a\n".into(),
            }],
            &TrustDomain::new("acme.example").unwrap(),
        )
        .unwrap();
        let GovernanceError::Invalid(d) = plan(&state, &empty).unwrap_err() else {
            panic!()
        };
        assert!(
            d[0].message.contains("plane `pay` cannot be removed"),
            "{d:?}"
        );
    }

    #[test]
    fn removed_owners_are_marked_not_deleted() {
        let v1 = desired("identities: []\n");
        let mut state = applied(&v1);
        state.owners.insert(
            "gone".into(),
            Owner {
                id: "gone".into(),
                name: "G".into(),
                email: "g@a".into(),
                kind: Default::default(),
            },
        );
        let p = plan(&state, &v1).unwrap();
        assert_eq!(p.summary.remove, 1);
        assert_eq!(p.summary.delete, 0);
    }
}
