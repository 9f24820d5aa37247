//! SPIFFE IDs, checked against the SPIFFE ID specification (scheme, trust domain
//! alphabet, path segment rules, length limits).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::ModelError;

/// Longest SPIFFE ID the specification allows, in bytes.
const MAX_SPIFFE_ID_LEN: usize = 2048;
/// Longest trust domain name the specification allows, in bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;
const SCHEME: &str = "spiffe://";

/// A SPIFFE trust domain such as `acme.example`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Validates a trust domain name: lowercase letters, digits, `.`, `-`, `_`.
    pub fn new(value: impl Into<String>) -> Result<Self, ModelError> {
        let value = value.into();
        let err = |reason| ModelError::TrustDomain {
            value: value.clone(),
            reason,
        };
        if value.is_empty() {
            return Err(err("must not be empty"));
        }
        if value.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(err("is longer than 255 bytes"));
        }
        if !value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        }) {
            return Err(err(
                "may contain only lowercase letters, digits, `.`, `-` and `_`",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TrustDomain {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TrustDomain> for String {
    fn from(value: TrustDomain) -> Self {
        value.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A workload SPIFFE ID: `spiffe://<trust-domain>/<path>`, with a non-empty path (an ID
/// without a path names the trust domain itself, never a workload).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId {
    value: String,
    /// Byte offset of the `/` that starts the path.
    path_start: usize,
}

impl SpiffeId {
    /// Parses and validates a workload SPIFFE ID.
    pub fn parse(value: impl Into<String>) -> Result<Self, ModelError> {
        let value = value.into();
        let err = |reason| ModelError::SpiffeId {
            value: value.clone(),
            reason,
        };
        if value.len() > MAX_SPIFFE_ID_LEN {
            return Err(err("is longer than 2048 bytes"));
        }
        let Some(rest) = value.strip_prefix(SCHEME) else {
            return Err(err("must start with `spiffe://`"));
        };
        let (domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if domain.is_empty() {
            return Err(err("has no trust domain"));
        }
        if TrustDomain::new(domain).is_err() {
            return Err(err(
                "trust domain may contain only lowercase letters, digits, `.`, `-` and `_`",
            ));
        }
        if path.is_empty() || path == "/" {
            return Err(err(
                "has no path: a workload ID needs one, e.g. `/ns/prod/sa/api`",
            ));
        }
        if path.ends_with('/') {
            return Err(err("must not end with `/`"));
        }
        for segment in path.split('/').skip(1) {
            if segment.is_empty() {
                return Err(err("has an empty path segment (`//`)"));
            }
            if segment == "." || segment == ".." {
                return Err(err("has a `.` or `..` path segment"));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            {
                return Err(err(
                    "path segments may contain only letters, digits, `.`, `-` and `_`",
                ));
            }
        }
        let path_start = SCHEME.len() + domain.len();
        Ok(Self { value, path_start })
    }

    /// The trust domain part, e.g. `acme.example`.
    pub fn trust_domain(&self) -> &str {
        self.value
            .get(SCHEME.len()..self.path_start)
            .unwrap_or_default()
    }

    /// The path part including its leading `/`.
    pub fn path(&self) -> &str {
        self.value.get(self.path_start..).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Whether the ID belongs to `domain`.
    pub fn is_in(&self, domain: &TrustDomain) -> bool {
        self.trust_domain() == domain.as_str()
    }
}

// Equality, order and hash follow the text alone (the offset is derived from it), so
// maps keyed by `SpiffeId` can be queried with a `&str`.
impl PartialEq for SpiffeId {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for SpiffeId {}

impl PartialOrd for SpiffeId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpiffeId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl std::hash::Hash for SpiffeId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl std::borrow::Borrow<str> for SpiffeId {
    fn borrow(&self) -> &str {
        &self.value
    }
}

impl TryFrom<String> for SpiffeId {
    type Error = ModelError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<SpiffeId> for String {
    fn from(value: SpiffeId) -> Self {
        value.value
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_valid_ids() {
        let id = SpiffeId::parse("spiffe://acme.example/ns/payments/sa/api").unwrap();
        assert_eq!(id.trust_domain(), "acme.example");
        assert_eq!(id.path(), "/ns/payments/sa/api");
        assert!(id.is_in(&TrustDomain::new("acme.example").unwrap()));
        assert!(!id.is_in(&TrustDomain::new("other.example").unwrap()));
    }

    #[test]
    fn rejects_invalid_ids() {
        for bad in [
            "",
            "http://acme.example/x",
            "SPIFFE://acme.example/x",
            "spiffe://",
            "spiffe:///x",
            "spiffe://acme.example",
            "spiffe://acme.example/",
            "spiffe://Acme.example/x",
            "spiffe://acme.example/x/",
            "spiffe://acme.example//x",
            "spiffe://acme.example/./x",
            "spiffe://acme.example/../x",
            "spiffe://acme.example/x?y=1",
            "spiffe://acme.example/x#f",
            "spiffe://user@acme.example/x",
            "spiffe://acme.example:443/x",
            "spiffe://acme.example/%41",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "accepted {bad:?}");
        }
        let long = format!("spiffe://acme.example/{}", "a".repeat(2100));
        assert!(SpiffeId::parse(long).is_err());
    }

    #[test]
    fn error_names_the_value() {
        let err = SpiffeId::parse("spiffe://acme.example/x/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid SPIFFE ID `spiffe://acme.example/x/`: must not end with `/`"
        );
    }

    proptest! {
        /// Whatever the text, parsing answers; what it accepts is exactly that text,
        /// split into its trust domain and path, and parses again to itself.
        #[test]
        fn what_parses_is_its_own_text(s in "(spiffe://)?[a-zA-Z0-9./%_:@ -]{0,40}|.{0,300}") {
            if let Ok(id) = SpiffeId::parse(s.clone()) {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert_eq!(format!("spiffe://{}{}", id.trust_domain(), id.path()), s.clone());
                prop_assert!(!id.trust_domain().is_empty());
                prop_assert!(id.path().is_empty() || id.path().starts_with('/'));
                prop_assert_eq!(SpiffeId::parse(id.to_string()).unwrap(), id);
            }
        }

        #[test]
        fn valid_ids_round_trip(domain in "[a-z0-9][a-z0-9.-]{0,20}", segs in proptest::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,10}", 1..5)) {
            let raw = format!("spiffe://{domain}/{}", segs.join("/"));
            let id = SpiffeId::parse(raw.clone()).unwrap();
            prop_assert_eq!(id.as_str(), raw.as_str());
            prop_assert_eq!(id.trust_domain(), domain.as_str());
        }
    }
}
