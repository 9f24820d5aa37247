//! A request's headers as the enforcement core reads declared request-context attributes
//! from them: the proxy's and the nginx endpoint's HTTP header maps, and Envoy's header
//! list in an ext_authz `CheckRequest`.

use std::collections::HashMap;

use hyper::header::HeaderMap;
use steward_enforce::{HeaderValue, RequestHeaders};

/// An HTTP request's header map (the proxy, the nginx `auth_request` endpoint).
pub(crate) struct HttpHeaders<'a>(pub &'a HeaderMap);

impl RequestHeaders for HttpHeaders<'_> {
    fn header(&self, name: &str) -> HeaderValue<'_> {
        let Ok(mut values) = self
            .0
            .get_all(name)
            .iter()
            .map(|v| v.to_str())
            .collect::<Result<Vec<&str>, _>>()
        else {
            return HeaderValue::Unreadable;
        };
        match values.len() {
            0 => HeaderValue::Absent,
            1 => HeaderValue::One(values.remove(0)),
            _ => HeaderValue::Several(values),
        }
    }
}

/// Envoy's headers of the checked request, keyed by lowercase name. Envoy joins a
/// repeated header with commas into one value: a number or a flag sent twice does not
/// read as one, and a set reads as the union.
pub(crate) struct EnvoyHeaders<'a>(pub &'a HashMap<String, String>);

impl RequestHeaders for EnvoyHeaders<'_> {
    fn header(&self, name: &str) -> HeaderValue<'_> {
        match self.0.get(name) {
            None => HeaderValue::Absent,
            Some(v) => HeaderValue::One(v),
        }
    }
}
