use serde::{Deserialize, Serialize};

use crate::{PlaneId, Settings};

/// A delegated control plane: a team or business unit that owns identities, capabilities
/// and policy inside the guardrails of the planes above it. Planes form a tree under the
/// root plane (central security).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plane {
    pub id: PlaneId,
    /// `None` only for the root plane.
    pub parent: Option<PlaneId>,
    pub name: String,
    pub description: String,
    pub settings: Settings,
}
