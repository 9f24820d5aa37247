//! Admin roles: who may do what through the admin API and console.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::PlaneId;
use crate::identity::enum_str;

/// The kind of admin role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminRole {
    /// Central security: everything.
    CentralAdmin,
    /// Administers one plane and the planes beneath it.
    PlaneAdmin,
    /// Reads everything, changes nothing.
    Auditor,
    /// An enforcement point or a foreign engine (gateway, PDP): fetches the policy bundle,
    /// submits decision records, asks for decisions; nothing else.
    Ingestor,
}

enum_str!(AdminRole { CentralAdmin => "central-admin", PlaneAdmin => "plane-admin", Auditor => "auditor", Ingestor => "ingestor" });

/// A role bound to its scope: a plane admin always names its plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum Role {
    CentralAdmin,
    PlaneAdmin { plane: PlaneId },
    Auditor,
    Ingestor,
}

impl Role {
    pub fn kind(&self) -> AdminRole {
        match self {
            Self::CentralAdmin => AdminRole::CentralAdmin,
            Self::PlaneAdmin { .. } => AdminRole::PlaneAdmin,
            Self::Auditor => AdminRole::Auditor,
            Self::Ingestor => AdminRole::Ingestor,
        }
    }

    /// The plane a plane admin is bound to.
    pub fn plane(&self) -> Option<&PlaneId> {
        match self {
            Self::PlaneAdmin { plane } => Some(plane),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PlaneAdmin { plane } => write!(f, "plane-admin of `{plane}`"),
            other => f.write_str(other.kind().as_str()),
        }
    }
}
