//! The Cedar schema every policy is validated against.

use std::collections::BTreeMap;
use std::str::FromStr;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema};
use steward_model::Diagnostic;
use steward_model::{Action, ContextAttribute, ContextType};

use crate::PolicyError;

/// The schema as shipped, with a marker line where declared context attributes go.
pub const BASE_SCHEMA: &str = include_str!("../schema/steward.cedarschema");
const EXTENSIONS_MARKER: &str = "// @request-context-extensions";

/// Entity type names of the schema.
pub const IDENTITY_TYPE: &str = "Steward::Identity";
pub const CAPABILITY_TYPE: &str = "Steward::Capability";
pub const PLANE_TYPE: &str = "Steward::Plane";
pub const ACTION_TYPE: &str = "Steward::Action";

/// Every action, in the order analyses list them.
pub const ACTIONS: [Action; 7] = [
    Action::Invoke,
    Action::Read,
    Action::Write,
    Action::Publish,
    Action::Consume,
    Action::Delegate,
    Action::Admin,
];

/// The schema text with the repository's context attributes spliced in (each optional).
pub fn schema_text(attributes: &BTreeMap<String, ContextAttribute>) -> String {
    let mut extra = String::new();
    for a in attributes.values() {
        let ty = match a.kind {
            ContextType::String => "String",
            ContextType::Long => "Long",
            ContextType::Bool => "Bool",
            ContextType::StringSet => "Set<String>",
        };
        extra.push_str(&format!("{}?: {ty},\n    ", a.name));
    }
    BASE_SCHEMA.replacen(EXTENSIONS_MARKER, &extra, 1)
}

/// Builds the schema; a failure names the request-context attributes, the only part a
/// repository contributes.
pub fn build(attributes: &BTreeMap<String, ContextAttribute>) -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(&schema_text(attributes))
        .map(|(schema, _warnings)| schema)
        .map_err(|e| {
            PolicyError::Invalid(vec![Diagnostic {
                file: "(request_context)".into(),
                line: 0,
                message: format!("the Cedar schema with the declared request_context attributes does not build: {e}"),
            }])
        })
}

/// The schema's entity type names, parsed once when an engine is built.
#[derive(Debug, Clone)]
pub(crate) struct Types {
    identity: EntityTypeName,
    capability: EntityTypeName,
    plane: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    pub(crate) fn new() -> Result<Self, PolicyError> {
        let parse = |name: &str| {
            EntityTypeName::from_str(name)
                .map_err(|e| PolicyError::Entities(format!("entity type `{name}`: {e}")))
        };
        Ok(Self {
            identity: parse(IDENTITY_TYPE)?,
            capability: parse(CAPABILITY_TYPE)?,
            plane: parse(PLANE_TYPE)?,
            action: parse(ACTION_TYPE)?,
        })
    }

    pub(crate) fn identity(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.identity.clone(), EntityId::new(id))
    }

    pub(crate) fn capability(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.capability.clone(), EntityId::new(id))
    }

    pub(crate) fn plane(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.plane.clone(), EntityId::new(id))
    }

    pub(crate) fn action(&self, action: Action) -> EntityUid {
        EntityUid::from_type_name_and_id(self.action.clone(), EntityId::new(action.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_schema_builds_and_knows_every_action() {
        let schema = build(&BTreeMap::new()).unwrap();
        let actions: Vec<String> = schema
            .actions()
            .map(|a| a.id().unescaped().to_owned())
            .collect();
        for a in ACTIONS {
            assert!(
                actions.contains(&a.as_str().to_owned()),
                "{a} missing: {actions:?}"
            );
        }
    }

    #[test]
    fn declared_attributes_become_optional_context_fields() {
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "amount_minor".to_owned(),
            ContextAttribute {
                name: "amount_minor".into(),
                kind: ContextType::Long,
                description: String::new(),
                source: None,
            },
        );
        let text = schema_text(&attrs);
        assert!(text.contains("amount_minor?: Long,"), "{text}");
        build(&attrs).unwrap();
    }
}
