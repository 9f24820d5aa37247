//! The request headers a credential is read from, as the shared reader takes them
//! ([`steward_enforce::Presented`]), and the identity headers only Steward may set.

use hyper::HeaderMap;
use steward_enforce::HeaderField;

/// The header carrying the verified identity (SPIFFE ID) to the upstream.
pub const IDENTITY_HEADER: &str = "x-steward-identity";

/// Headers only the gateway sets; a client's own are removed before forwarding.
pub fn is_steward_header(name: &str) -> bool {
    name.len() >= 10 && name[..10].eq_ignore_ascii_case("x-steward-")
}

/// Every value of header `name` (`Authorization`, `DPoP`): absent, one, or repeated —
/// which the reader refuses, since the upstream might read another one than was checked.
pub fn header_field<'a>(headers: &'a HeaderMap, name: &str) -> HeaderField<'a> {
    HeaderField::from_values(headers.get_all(name).iter().map(|v| v.to_str().ok()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn header_fields_and_steward_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(header_field(&h, "authorization"), HeaderField::Absent);
        h.append("authorization", HeaderValue::from_static("Bearer a"));
        assert_eq!(
            header_field(&h, "Authorization"),
            HeaderField::One(Some("Bearer a"))
        );
        h.append("authorization", HeaderValue::from_static("Bearer b"));
        assert_eq!(header_field(&h, "authorization"), HeaderField::Repeated);
        h.append("dpop", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(header_field(&h, "dpop"), HeaderField::One(None));
        assert!(is_steward_header("X-Steward-Identity"));
        assert!(!is_steward_header("x-stewar"));
    }
}
