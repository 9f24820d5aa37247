//! Reading the credential off a request, the same way at every HTTP-shaped enforcement
//! point, and the identity headers only Steward may set.

use hyper::header::HeaderValue;

/// The header carrying the verified identity (SPIFFE ID) to the upstream.
pub const IDENTITY_HEADER: &str = "x-steward-identity";

/// Headers only the gateway sets; a client's own are removed before forwarding.
pub fn is_steward_header(name: &str) -> bool {
    name.len() >= 10 && name[..10].eq_ignore_ascii_case("x-steward-")
}

/// Why a request's credential could not be read. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadCredential {
    #[error("more than one Authorization header; send exactly one")]
    Repeated,
    #[error("the Authorization header is not readable text")]
    Unreadable,
    #[error("the Authorization header must be `Bearer <token>`")]
    NoScheme,
    /// Another scheme (its name cut to 20 characters).
    #[error("the `{0}` scheme is not accepted here; send `Authorization: Bearer <token>`")]
    Scheme(String),
    #[error("the bearer token is empty")]
    Empty,
}

/// The bearer token of a request: `Ok(None)` without an `Authorization` header; an error
/// for two of them (request smuggling: which one would the upstream read?), another
/// scheme, or an unreadable value. Never echoes the value.
pub fn bearer<'a>(
    mut values: impl Iterator<Item = &'a HeaderValue>,
) -> Result<Option<&'a str>, BadCredential> {
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadCredential::Repeated);
    }
    bearer_value(value.to_str().ok())
}

/// Like [`bearer`], for a header value already extracted (Envoy's header map).
pub fn bearer_value(value: Option<&str>) -> Result<Option<&str>, BadCredential> {
    let value = value.ok_or(BadCredential::Unreadable)?;
    let (scheme, token) = value.split_once(' ').ok_or(BadCredential::NoScheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BadCredential::Scheme(scheme.chars().take(20).collect()));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(BadCredential::Empty);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_one_bearer_and_refuses_the_rest() {
        let one = [HeaderValue::from_static("Bearer abc")];
        assert_eq!(bearer(one.iter()).unwrap(), Some("abc"));
        let lower = [HeaderValue::from_static("bearer abc")];
        assert_eq!(bearer(lower.iter()).unwrap(), Some("abc"));
        assert_eq!(bearer([].iter()).unwrap(), None);
        let two = [
            HeaderValue::from_static("Bearer a"),
            HeaderValue::from_static("Bearer b"),
        ];
        assert_eq!(bearer(two.iter()).unwrap_err(), BadCredential::Repeated);
        for bad in [
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
            "Bearer",
            "Bearer   ",
            "token",
        ] {
            let v = [HeaderValue::from_static(bad)];
            let e = bearer(v.iter()).unwrap_err().to_string();
            assert!(!e.contains("YWxh"), "never echo the credential: {e}");
        }
        assert!(is_steward_header("X-Steward-Identity"));
        assert!(!is_steward_header("x-stewar"));
    }

    proptest::proptest! {
        /// Any header value: no panic, a token is only ever what follows `Bearer `,
        /// trimmed and non-empty, and a refusal never echoes what follows the scheme
        /// (only the scheme itself, cut to 20 characters, may be named).
        #[test]
        fn bearer_never_panics_and_only_takes_bearer(value in "\\PC{0,200}") {
            match bearer_value(Some(&value)) {
                Ok(Some(token)) => {
                    proptest::prop_assert!(value.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")));
                    proptest::prop_assert!(!token.is_empty() && token == token.trim());
                }
                Ok(None) => proptest::prop_assert!(false, "a present header is never `no credential`"),
                Err(e) => {
                    let e = e.to_string();
                    if let Some((scheme, secret)) = value.split_once(' ') {
                        let shown: String = scheme.chars().take(20).collect();
                        let secret = secret.trim();
                        proptest::prop_assert!(
                            !e.contains(secret) || secret.len() < 3 || shown.contains(secret),
                            "{e}"
                        );
                    }
                }
            }
        }
    }
}
