//! The registry as Cedar entities: planes (nested), identities in their plane with their
//! labels as tags, capabilities in the plane that owns them.

use cedar_policy::{Entities, Entity, RestrictedExpression, Schema};
use steward_model::{Capability, Identity, Plane};

use crate::PolicyError;
use crate::schema::Types;

pub(crate) fn build<'a>(
    types: &Types,
    schema: &Schema,
    planes: impl IntoIterator<Item = &'a Plane>,
    identities: impl IntoIterator<Item = &'a Identity>,
    capabilities: impl IntoIterator<Item = &'a Capability>,
) -> Result<Entities, PolicyError> {
    let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
    let mut out = vec![Entity::new_no_attrs(
        types.plane(steward_model::ROOT_PLANE),
        Default::default(),
    )];
    for p in planes {
        if p.id.is_root() {
            continue;
        }
        let parent = p
            .parent
            .as_ref()
            .map(|x| x.as_str())
            .unwrap_or(steward_model::ROOT_PLANE);
        out.push(Entity::new_no_attrs(
            types.plane(p.id.as_str()),
            [types.plane(parent)].into_iter().collect(),
        ));
    }
    for i in identities {
        let attrs = [
            ("plane", s(i.plane.as_str())),
            ("owner", s(&i.owner)),
            ("environment", s(&i.environment)),
            ("kind", s(i.kind.as_str())),
            ("classification", s(i.classification.as_str())),
            ("state", s(i.state.as_str())),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let tags = i.labels.iter().map(|(k, v)| (k.clone(), s(v)));
        let entity = Entity::new_with_tags(
            types.identity(i.spiffe_id.as_str()),
            attrs,
            [types.plane(i.plane.as_str())],
            tags,
        )
        .map_err(|e| PolicyError::Entities(format!("identity {}: {e}", i.spiffe_id)))?;
        out.push(entity);
    }
    for c in capabilities {
        let attrs = [
            ("plane", s(c.plane.as_str())),
            ("classification", s(c.classification.as_str())),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let entity = Entity::new_with_tags(
            types.capability(c.id.as_str()),
            attrs,
            [types.plane(c.plane.as_str())],
            [],
        )
        .map_err(|e| PolicyError::Entities(format!("capability {}: {e}", c.id)))?;
        out.push(entity);
    }
    Entities::from_entities(out, Some(schema)).map_err(|e| PolicyError::Entities(e.to_string()))
}
