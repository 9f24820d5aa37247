//! The registry as Cedar entities, built per request.
//!
//! Holding a Cedar entity for every identity costs kilobytes each (attribute maps,
//! ancestor sets, the store's indexes): 100,000 identities took the control plane from
//! 41 MiB to over 800 MiB. So the engine keeps a compact record per identity (interned
//! strings) and builds, for each request, an entity store of two: the principal and the
//! capability, each listing every plane above it as a parent, so `in` tests need no plane
//! entities. Policies can read attributes of the principal and the resource; an entity
//! literal's attributes are not available (reading them is an evaluation error, a deny).

use std::collections::HashMap;
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityUid, RestrictedExpression};
use steward_model::{Capability, Classification, Identity, IdentityKind, LifecycleState, PlaneId};

use crate::PolicyError;
use crate::schema::Types;

/// What a decision needs of an identity, with the repeated strings shared.
#[derive(Debug, Clone)]
pub(crate) struct CompactIdentity {
    pub(crate) plane: Arc<str>,
    owner: Arc<str>,
    pub(crate) environment: Arc<str>,
    kind: IdentityKind,
    classification: Classification,
    pub(crate) state: LifecycleState,
    labels: Box<[(Arc<str>, Box<str>)]>,
    /// The plane and every plane above it, as entity uids.
    ancestors: Arc<[EntityUid]>,
}

/// The capability's prebuilt entity and what the engine looks up per request.
pub(crate) struct CapabilityEntry {
    pub(crate) plane: PlaneId,
    pub(crate) classification: Classification,
    entity: Entity,
}

/// Shares equal strings.
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_owned(), a.clone());
        a
    }
}

pub(crate) struct Registry {
    pub(crate) identities: HashMap<Box<str>, CompactIdentity>,
    pub(crate) capabilities: HashMap<String, CapabilityEntry>,
}

impl Registry {
    pub(crate) fn build<'a>(
        types: &Types,
        ancestors_of: impl Fn(&PlaneId) -> Vec<PlaneId>,
        identities: impl IntoIterator<Item = Identity>,
        capabilities: impl IntoIterator<Item = &'a Capability>,
    ) -> Result<Self, PolicyError> {
        let mut chains: HashMap<PlaneId, Arc<[EntityUid]>> = HashMap::new();
        let mut chain = |plane: &PlaneId| -> Arc<[EntityUid]> {
            chains
                .entry(plane.clone())
                .or_insert_with(|| {
                    ancestors_of(plane)
                        .iter()
                        .map(|p| types.plane(p.as_str()))
                        .collect()
                })
                .clone()
        };
        let mut strings = Interner::default();
        let mut by_id = HashMap::new();
        for i in identities {
            let labels = i
                .labels
                .iter()
                .map(|(k, v)| (strings.get(k), Box::from(v.as_str())))
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
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let mut caps = HashMap::new();
        for c in capabilities {
            let attrs = [
                ("plane", s(c.plane.as_str())),
                ("classification", s(c.classification.as_str())),
            ]
            .map(|(k, v)| (k.to_owned(), v));
            let entity = Entity::new_with_tags(
                types.capability(c.id.as_str()),
                attrs,
                chain(&c.plane).iter().cloned(),
                [],
            )
            .map_err(|e| PolicyError::Entities(format!("capability {}: {e}", c.id)))?;
            caps.insert(
                c.id.to_string(),
                CapabilityEntry {
                    plane: c.plane.clone(),
                    classification: c.classification,
                    entity,
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
        let principal = Entity::new_with_tags(
            types.identity(principal),
            attrs,
            who.ancestors.iter().cloned(),
            tags,
        )
        .map_err(|e| format!("cannot build the principal entity: {e}"))?;
        Entities::from_entities([principal, capability.entity.clone()], None)
            .map_err(|e| format!("cannot build the request's entities: {e}"))
    }
}
