//! The OpenID AuthZEN Authorization API 1.0 messages (`POST /access/v1/evaluation`,
//! `POST /access/v1/evaluations`), as Steward's decision API speaks them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An AuthZEN subject, resource or action object; unknown members are ignored, as the
/// specification lets PDPs do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionObject {
    pub name: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
}

/// `POST /access/v1/evaluation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluationRequest {
    pub subject: Entity,
    pub resource: Entity,
    pub action: ActionObject,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// One item of a batch; what it leaves out comes from the top level.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvaluationItem {
    #[serde(default)]
    pub subject: Option<Entity>,
    #[serde(default)]
    pub resource: Option<Entity>,
    #[serde(default)]
    pub action: Option<ActionObject>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationsSemantic {
    #[default]
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvaluationsOptions {
    #[serde(default)]
    pub evaluations_semantic: EvaluationsSemantic,
}

/// `POST /access/v1/evaluations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvaluationsRequest {
    #[serde(flatten)]
    pub defaults: EvaluationItem,
    #[serde(default)]
    pub evaluations: Vec<EvaluationItem>,
    #[serde(default)]
    pub options: EvaluationsOptions,
}

/// The decision and Steward's explanation in `context`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluationResponse {
    pub decision: bool,
    pub context: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluationsResponse {
    pub evaluations: Vec<EvaluationResponse>,
}
