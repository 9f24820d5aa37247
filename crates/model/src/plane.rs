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

/// The settings in force in `plane`: the root's, then each plane's own down the path to
/// `plane` (a child inherits what it leaves unset). An unknown plane gets the root's; a
/// cycle (refused at validation) stops the walk.
pub fn effective_settings(
    planes: &std::collections::BTreeMap<PlaneId, Plane>,
    root: &Settings,
    plane: &PlaneId,
) -> Settings {
    let mut path = Vec::new();
    let mut cursor = Some(plane);
    while let Some(id) = cursor {
        let Some(p) = planes.get(id) else { break };
        if path.len() > planes.len() {
            break;
        }
        path.push(&p.settings);
        cursor = p.parent.as_ref();
    }
    path.iter()
        .rev()
        .fold(root.clone(), |inherited, own| own.inherit(&inherited))
}
