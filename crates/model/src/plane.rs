use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

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

/// Stored planes, root included, as the tree they form: what posture, reviews and the
/// API's identity check read each plane's inherited settings from.
#[derive(Debug, Clone, Default)]
pub struct PlaneSettings {
    root: Settings,
    planes: BTreeMap<PlaneId, Plane>,
}

impl PlaneSettings {
    /// Splits the root's settings from the declared planes.
    pub fn from_planes(planes: impl IntoIterator<Item = Plane>) -> Self {
        let mut out = Self::default();
        for p in planes {
            if p.id.is_root() {
                out.root = p.settings;
            } else {
                out.planes.insert(p.id.clone(), p);
            }
        }
        out
    }

    /// The tree of the declared planes.
    pub fn tree(&self) -> PlaneTree<'_> {
        PlaneTree::new(&self.planes)
    }

    /// The effective settings of `plane` (tighten-only inheritance).
    pub fn of(&self, plane: &PlaneId) -> Settings {
        self.tree().effective_settings(&self.root, plane)
    }
}

/// The plane tree over the declared planes (the root is implicit; a plane without a
/// parent hangs off the root). The one place the tree is walked: ancestors for policy
/// scope, subtrees for what a plane admin sees and what a plane-wide revocation reaches,
/// inherited settings, and cycle detection. Every walk is bounded, so a tree the parser
/// would refuse (a cycle, a missing parent) never loops.
#[derive(Debug, Clone, Copy)]
pub struct PlaneTree<'a> {
    planes: &'a BTreeMap<PlaneId, Plane>,
}

impl<'a> PlaneTree<'a> {
    /// A view of `planes` (without the root); nothing is copied.
    pub fn new(planes: &'a BTreeMap<PlaneId, Plane>) -> Self {
        Self { planes }
    }

    /// The root or a declared plane.
    pub fn contains(&self, plane: &PlaneId) -> bool {
        plane.is_root() || self.planes.contains_key(plane)
    }

    /// Every plane: the root first, then the declared ones.
    pub fn ids(&self) -> impl Iterator<Item = PlaneId> + '_ {
        std::iter::once(PlaneId::root()).chain(self.planes.keys().cloned())
    }

    /// A declared plane's parent (the root when it names none); `None` for the root and
    /// for planes not declared.
    pub fn parent(&self, plane: &PlaneId) -> Option<PlaneId> {
        self.planes
            .get(plane)
            .map(|p| p.parent.clone().unwrap_or_else(PlaneId::root))
    }

    /// `plane`, then each plane above it, up to the root — or up to the first parent that
    /// is not declared, or would repeat.
    pub fn ancestors(&self, plane: &PlaneId) -> Vec<PlaneId> {
        let mut out = vec![plane.clone()];
        let mut at = plane.clone();
        while let Some(parent) = self.parent(&at) {
            if out.contains(&parent) {
                break;
            }
            out.push(parent.clone());
            at = parent;
        }
        out
    }

    /// Whether `plane`'s ancestry reaches the root through declared planes (false on a
    /// cycle or below a missing parent).
    pub fn reaches_root(&self, plane: &PlaneId) -> bool {
        self.ancestors(plane).last().is_some_and(PlaneId::is_root)
    }

    /// Whether `plane` is its own ancestor.
    pub fn on_cycle(&self, plane: &PlaneId) -> bool {
        let mut at = plane.clone();
        for _ in 0..=self.planes.len() {
            match self.parent(&at) {
                Some(parent) if &parent == plane => return true,
                Some(parent) => at = parent,
                None => return false,
            }
        }
        false
    }

    /// `plane`, then every plane beneath it (breadth first).
    pub fn subtree(&self, plane: &PlaneId) -> Vec<PlaneId> {
        let mut children: BTreeMap<PlaneId, Vec<&PlaneId>> = BTreeMap::new();
        for p in self.planes.values() {
            children
                .entry(p.parent.clone().unwrap_or_else(PlaneId::root))
                .or_default()
                .push(&p.id);
        }
        let mut out = vec![plane.clone()];
        let mut seen: std::collections::BTreeSet<PlaneId> = out.iter().cloned().collect();
        let mut i = 0;
        while let Some(current) = out.get(i).cloned() {
            for child in children.get(&current).into_iter().flatten() {
                if seen.insert((*child).clone()) {
                    out.push((*child).clone());
                }
            }
            i += 1;
        }
        out
    }

    /// The settings in force in `plane`: `root`'s, then each plane's own down the path to
    /// `plane` (a child inherits what it leaves unset). An unknown plane gets the root's.
    pub fn effective_settings(&self, root: &Settings, plane: &PlaneId) -> Settings {
        self.ancestors(plane)
            .iter()
            .rev()
            .filter_map(|id| self.planes.get(id))
            .fold(root.clone(), |inherited, p| p.settings.inherit(&inherited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(id: &str, parent: Option<&str>, envs: Option<&[&str]>) -> Plane {
        Plane {
            id: PlaneId::new(id).unwrap(),
            parent: parent.map(|p| PlaneId::new(p).unwrap()),
            name: id.into(),
            description: String::new(),
            settings: Settings {
                environments: envs.map(|e| e.iter().map(|s| (*s).to_owned()).collect()),
                ..Settings::default()
            },
        }
    }

    fn tree(planes: &[Plane]) -> BTreeMap<PlaneId, Plane> {
        planes.iter().map(|p| (p.id.clone(), p.clone())).collect()
    }

    fn ids(v: &[PlaneId]) -> Vec<&str> {
        v.iter().map(PlaneId::as_str).collect()
    }

    #[test]
    fn walks_up_down_and_inherits() {
        let planes = tree(&[
            plane("payments", Some("root"), Some(&["prod", "test"])),
            plane("payments-eu", Some("payments"), None),
            plane("partners", None, None),
        ]);
        let t = PlaneTree::new(&planes);
        let eu = PlaneId::new("payments-eu").unwrap();
        assert_eq!(ids(&t.ancestors(&eu)), ["payments-eu", "payments", "root"]);
        assert!(t.reaches_root(&eu));
        assert_eq!(
            ids(&t.subtree(&PlaneId::root())),
            ["root", "partners", "payments", "payments-eu"]
        );
        assert_eq!(
            t.effective_settings(&Settings::default(), &eu).environments,
            Some(vec!["prod".to_owned(), "test".to_owned()])
        );
        let unknown = PlaneId::new("nowhere").unwrap();
        assert!(!t.contains(&unknown));
        assert_eq!(ids(&t.ancestors(&unknown)), ["nowhere"]);
    }

    #[test]
    fn cycles_and_missing_parents_end_every_walk() {
        let planes = tree(&[
            plane("a", Some("b"), None),
            plane("b", Some("a"), None),
            plane("c", Some("a"), None),
            plane("d", Some("ghost"), None),
        ]);
        let t = PlaneTree::new(&planes);
        let id = |s: &str| PlaneId::new(s).unwrap();
        assert!(t.on_cycle(&id("a")) && t.on_cycle(&id("b")));
        assert!(!t.on_cycle(&id("c")) && !t.reaches_root(&id("c")));
        assert_eq!(ids(&t.ancestors(&id("c"))), ["c", "a", "b"]);
        assert_eq!(ids(&t.ancestors(&id("d"))), ["d", "ghost"]);
        assert!(!t.reaches_root(&id("d")) && !t.on_cycle(&id("d")));
        assert_eq!(ids(&t.subtree(&id("a"))), ["a", "b", "c"]);
    }
}
