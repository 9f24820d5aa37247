//! The registry as Cedar entities, built per request.
//!
//! Holding a Cedar entity for every identity costs kilobytes each (attribute maps,
//! ancestor sets, the store's indexes): 100,000 identities took the control plane from
//! 41 MiB to over 800 MiB. So the engine keeps a compact record per identity (interned
//! strings) and builds, for each request, an entity store of two: the principal and the
//! capability, each listing every plane above it as a parent, so `in` tests need no plane
//! entities. Policies can read attributes of the principal and the resource; an entity
//! literal's attributes are not available (reading them is an evaluation error, a deny).
//!
//! The store is built from Cedar's core values (`cedar-policy-core`, the exact version
//! `cedar-policy` uses): through the public API every request paid for evaluating each
//! attribute as a restricted expression, a deep copy of the capability's entity and a
//! transitive-closure pass — over a third of a decision. Here the attributes are values
//! already, the capability's entity is shared, and the hierarchy is closed by
//! construction (every ancestor is listed as a parent; no plane entity is in the store),
//! which is what `TCComputation::AssumeAlreadyComputed` requires.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{Entities, EntityUid};
use cedar_policy_core::ast::{Entity as CoreEntity, EntityUID, PartialValue, Value};
use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use smol_str::SmolStr;
use steward_model::{Capability, Classification, Identity, IdentityKind, LifecycleState, PlaneId};

use crate::PolicyError;
use crate::schema::Types;

/// What a decision needs of an identity, with the repeated strings shared.
#[derive(Debug, Clone)]
pub(crate) struct CompactIdentity {
    pub(crate) plane: SmolStr,
    owner: SmolStr,
    pub(crate) environment: SmolStr,
    kind: IdentityKind,
    classification: Classification,
    pub(crate) state: LifecycleState,
    labels: Box<[(SmolStr, SmolStr)]>,
    /// The plane and every plane above it.
    ancestors: Arc<HashSet<EntityUID>>,
}

/// The capability's prebuilt entity and what the engine looks up per request.
pub(crate) struct CapabilityEntry {
    pub(crate) plane: PlaneId,
    pub(crate) classification: Classification,
    /// Context values the catalog fixes for every request to it (empty for most).
    pub(crate) context: serde_json::Map<String, serde_json::Value>,
    entity: Arc<CoreEntity>,
}

/// Shares equal strings (a long `SmolStr` is reference-counted; short ones are inline).
#[derive(Default)]
struct Interner(HashMap<String, SmolStr>);

impl Interner {
    fn get(&mut self, s: &str) -> SmolStr {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a = SmolStr::new(s);
        self.0.insert(s.to_owned(), a.clone());
        a
    }
}

pub(crate) struct Registry {
    pub(crate) identities: HashMap<Box<str>, CompactIdentity>,
    pub(crate) capabilities: HashMap<String, CapabilityEntry>,
}

/// A string attribute as Cedar's evaluator holds it.
fn string(v: &SmolStr) -> PartialValue {
    PartialValue::Value(Value::from(v.clone()))
}

impl Registry {
    pub(crate) fn build<'a>(
        types: &Types,
        ancestors_of: impl Fn(&PlaneId) -> Vec<PlaneId>,
        identities: impl IntoIterator<Item = Identity>,
        capabilities: impl IntoIterator<Item = &'a Capability>,
    ) -> Result<Self, PolicyError> {
        let mut chains: HashMap<PlaneId, Arc<HashSet<EntityUID>>> = HashMap::new();
        let mut chain = |plane: &PlaneId| -> Arc<HashSet<EntityUID>> {
            chains
                .entry(plane.clone())
                .or_insert_with(|| {
                    Arc::new(
                        ancestors_of(plane)
                            .iter()
                            .map(|p| core_uid(&types.plane(p.as_str())))
                            .collect(),
                    )
                })
                .clone()
        };
        let mut strings = Interner::default();
        let mut by_id = HashMap::new();
        for i in identities {
            let labels = i
                .labels
                .iter()
                .map(|(k, v)| (strings.get(k), SmolStr::new(v)))
                .collect();
            by_id.insert(
                Box::from(i.spiffe_id.as_str()),
                CompactIdentity {
                    plane: strings.get(i.plane.as_str()),
                    owner: strings.get(&i.owner),
                    environment: strings.get(&i.environment),
                    kind: i.kind,
                    classification: i.classification,
                    state: i.state,
                    labels,
                    ancestors: chain(&i.plane),
                },
            );
        }
        let mut caps = HashMap::new();
        for c in capabilities {
            let attrs = [
                ("plane", SmolStr::new(c.plane.as_str())),
                (
                    "classification",
                    SmolStr::new_static(c.classification.as_str()),
                ),
            ]
            .map(|(k, v)| (SmolStr::new_static(k), string(&v)));
            let entity = CoreEntity::new_with_attr_partial_value(
                core_uid(&types.capability(c.id.as_str())),
                attrs,
                HashSet::new(),
                (*chain(&c.plane)).clone(),
                [],
            );
            caps.insert(
                c.id.to_string(),
                CapabilityEntry {
                    plane: c.plane.clone(),
                    classification: c.classification,
                    context: c.context.clone().into_iter().collect(),
                    entity: Arc::new(entity),
                },
            );
        }
        Ok(Self {
            identities: by_id,
            capabilities: caps,
        })
    }

    /// The two-entity store of one request.
    pub(crate) fn entities(
        &self,
        types: &Types,
        principal: &str,
        who: &CompactIdentity,
        capability: &CapabilityEntry,
    ) -> Result<Entities, String> {
        let attrs = [
            ("plane", string(&who.plane)),
            ("owner", string(&who.owner)),
            ("environment", string(&who.environment)),
            ("kind", string(&SmolStr::new_static(who.kind.as_str()))),
            (
                "classification",
                string(&SmolStr::new_static(who.classification.as_str())),
            ),
            ("state", string(&SmolStr::new_static(who.state.as_str()))),
        ]
        .map(|(k, v)| (SmolStr::new_static(k), v));
        let tags = who.labels.iter().map(|(k, v)| (k.clone(), string(v)));
        let principal = CoreEntity::new_with_attr_partial_value(
            core_uid(&types.identity(principal)),
            attrs,
            HashSet::new(),
            (*who.ancestors).clone(),
            tags,
        );
        CoreEntities::new()
            .add_entities(
                [Arc::new(principal), capability.entity.clone()],
                None::<&NoEntitiesSchema>,
                TCComputation::AssumeAlreadyComputed,
                Extensions::none(),
            )
            .map(Entities::from)
            .map_err(|e| format!("cannot build the request's entities: {e}"))
    }
}

fn core_uid(uid: &EntityUid) -> EntityUID {
    AsRef::<EntityUID>::as_ref(uid).clone()
}

#[cfg(test)]
pub(crate) mod reference {
    //! The same entities built through Cedar's public API (evaluated attributes, computed
    //! closure), to check the direct construction against.
    use super::*;
    use cedar_policy::{Entity, RestrictedExpression};

    pub(crate) fn entities(
        types: &Types,
        principal: &str,
        who: &CompactIdentity,
        capability: &CapabilityEntry,
    ) -> Entities {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let attrs = [
            ("plane", s(&who.plane)),
            ("owner", s(&who.owner)),
            ("environment", s(&who.environment)),
            ("kind", s(who.kind.as_str())),
            ("classification", s(who.classification.as_str())),
            ("state", s(who.state.as_str())),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let tags = who.labels.iter().map(|(k, v)| (k.to_string(), s(v)));
        let parents = who.ancestors.iter().map(|u| EntityUid::from(u.clone()));
        let principal =
            Entity::new_with_tags(types.identity(principal), attrs, parents, tags).unwrap();
        let cap = &capability.entity;
        let cap_attrs = [
            ("plane", s(capability.plane.as_str())),
            ("classification", s(capability.classification.as_str())),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let capability = Entity::new(
            EntityUid::from(cap.uid().clone()),
            cap_attrs.into_iter().collect(),
            cap.ancestors()
                .map(|u| EntityUid::from(u.clone()))
                .collect(),
        )
        .unwrap();
        Entities::from_entities([principal, capability], None).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_entities_equal_those_built_through_the_public_api() {
        let types = Types::new().unwrap();
        let plane = |id: &str| PlaneId::new(id).unwrap();
        let tree = |p: &PlaneId| match p.as_str() {
            "root" => vec![plane("root")],
            "payments" => vec![plane("payments"), plane("root")],
            _ => vec![plane("payments-eu"), plane("payments"), plane("root")],
        };
        let identity: Identity = serde_json::from_value(serde_json::json!({
            "spiffe_id": "spiffe://example.org/payments-eu/ledger",
            "kind": "agent",
            "plane": "payments-eu",
            "owner": "team-ledger-with-a-name-longer-than-inline",
            "environment": "prod",
            "classification": "confidential",
            "state": "active",
            "labels": {"tier": "1", "cost-centre": "a-long-cost-centre-label-value-0042"},
            "description": "",
            "intended": [],
        }))
        .unwrap();
        let capability: Capability = serde_json::from_value(serde_json::json!({
            "id": "payments.ledger.write",
            "plane": "payments",
            "classification": "restricted",
            "description": "",
            "mappings": [],
        }))
        .unwrap();
        let registry = Registry::build(&types, tree, [identity.clone()], [&capability]).unwrap();
        let who = registry
            .identities
            .get(identity.spiffe_id.as_str())
            .unwrap();
        let entry = registry.capabilities.get("payments.ledger.write").unwrap();
        let direct = registry
            .entities(&types, identity.spiffe_id.as_str(), who, entry)
            .unwrap();
        let public = reference::entities(&types, identity.spiffe_id.as_str(), who, entry);
        assert!(
            direct.as_ref().deep_eq(public.as_ref()),
            "{direct:?}\n{public:?}"
        );
        assert_eq!(direct.as_ref().len(), 2);
    }
}
