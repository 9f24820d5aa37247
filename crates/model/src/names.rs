use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ModelError;

/// The id of the root plane, owned by central security. It always exists.
pub const ROOT_PLANE: &str = "root";

/// Longest identifier we accept for planes, owners, environments and capabilities.
const MAX_NAME_LEN: usize = 128;

/// Checks a lowercase slug (`[a-z0-9][a-z0-9-]*`), the form of plane and owner ids, so
/// that ids are safe in URLs, file names and policy text alike.
pub fn validate_slug(what: &'static str, value: &str) -> Result<(), ModelError> {
    validate_name(what, value, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
}

/// Environments are slugs too (`dev`, `prod`, `eu-prod`).
pub fn validate_environment(value: &str) -> Result<(), ModelError> {
    validate_slug("environment", value)
}

fn validate_name(
    what: &'static str,
    value: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ModelError> {
    let err = |reason| ModelError::Name {
        what,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(err("must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(err("is longer than 128 characters"));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(err("must start with a lowercase letter or digit"));
    }
    if !value.chars().all(allowed) {
        return Err(err(
            "may contain only lowercase letters, digits and the separators shown in the docs",
        ));
    }
    Ok(())
}

/// A plane id: a validated slug.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlaneId(String);

impl PlaneId {
    /// Validates `value` as a plane id.
    pub fn new(value: impl Into<String>) -> Result<Self, ModelError> {
        let value = value.into();
        validate_slug("plane id", &value)?;
        Ok(Self(value))
    }

    /// The root plane (central security).
    pub fn root() -> Self {
        Self(ROOT_PLANE.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == ROOT_PLANE
    }
}

impl std::borrow::Borrow<str> for PlaneId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlaneId {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<PlaneId> for String {
    fn from(value: PlaneId) -> Self {
        value.0
    }
}

impl fmt::Display for PlaneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A capability id such as `payments.refund`: dot-separated slugs naming a business
/// capability, not a transport route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CapabilityId(String);

impl CapabilityId {
    /// Validates `value` as a capability id.
    pub fn new(value: impl Into<String>) -> Result<Self, ModelError> {
        let value = value.into();
        validate_name("capability id", &value, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
        })?;
        if value.split('.').any(str::is_empty) {
            return Err(ModelError::Name {
                what: "capability id",
                value,
                reason: "has an empty segment between dots",
            });
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for CapabilityId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CapabilityId {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<CapabilityId> for String {
    fn from(value: CapabilityId) -> Self {
        value.0
    }
}

impl fmt::Display for CapabilityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(PlaneId::new("payments").is_ok());
        assert!(PlaneId::new("eu-payments-2").is_ok());
        assert!(PlaneId::new("").is_err());
        assert!(PlaneId::new("Payments").is_err());
        assert!(PlaneId::new("-x").is_err());
        assert!(PlaneId::new("a/b").is_err());
        assert!(PlaneId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn capability_ids() {
        assert!(CapabilityId::new("payments.refund").is_ok());
        assert!(CapabilityId::new("ai.tool_call.search").is_ok());
        assert!(CapabilityId::new("payments..refund").is_err());
        assert!(CapabilityId::new("payments.").is_err());
        assert!(CapabilityId::new("Payments.refund").is_err());
    }
}
