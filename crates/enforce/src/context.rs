//! Declared request-context attributes, read where the repository says each one comes
//! from: a request header, the verified token's `ctx` claim, or the context an AMQP
//! publisher signed. One place reads them for every point, so the gateway, nginx,
//! ext_authz and a message consumer put the same attribute into the same decision, and an
//! attribute declared to come from a verified source is never taken from anything a
//! client writes.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use steward_model::{ContextAttribute, ContextSource, ContextType};
use steward_token::Claims;

/// A header as a request carries it: absent, once, or more than once. A header sent more
/// than once reads as the comma-joined list a proxy that joins headers (Envoy) hands on:
/// a set attribute takes the union, any other attribute is refused, at every layer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    Absent,
    One(&'a str),
    Several(Vec<&'a str>),
    /// Not text.
    Unreadable,
}

/// The headers of one request, as each point holds them (an HTTP header map, Envoy's
/// header list); names are lowercase.
pub trait RequestHeaders {
    fn header(&self, name: &str) -> HeaderValue<'_>;
}

/// What a request carries that declared attributes may be read from, besides the token.
#[derive(Clone, Copy, Default)]
pub struct Carried<'a> {
    /// The request's headers (HTTP, gRPC metadata); `None` where there are none.
    pub headers: Option<&'a dyn RequestHeaders>,
    /// The context the publisher of a message signed.
    pub message: Option<&'a Map<String, Value>>,
    /// The arguments of an MCP tool call or prompt.
    pub arguments: Option<&'a Map<String, Value>>,
}

impl fmt::Debug for Carried<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Carried")
            .field("headers", &self.headers.is_some())
            .field("message", &self.message)
            .field("arguments", &self.arguments.map(Map::len))
            .finish()
    }
}

/// Puts each declared attribute that has a source into `context`, read from that source
/// only: whatever `context` held under that name before is dropped first. A value that
/// is not of the declared type, or a header sent twice, is an error naming the attribute
/// and its source (the request is refused as unreadable).
pub fn read_declared(
    declared: &BTreeMap<String, ContextAttribute>,
    claims: Option<&Claims>,
    carried: &Carried<'_>,
    context: &mut Map<String, Value>,
) -> Result<(), String> {
    for (name, attr) in declared {
        let Some(source) = &attr.source else {
            continue;
        };
        context.remove(name);
        let value = match source {
            ContextSource::Header(h) => {
                let text = match carried.headers.map(|hs| hs.header(h)) {
                    None | Some(HeaderValue::Absent) => None,
                    Some(HeaderValue::One(text)) => Some(std::borrow::Cow::Borrowed(text)),
                    Some(HeaderValue::Several(parts)) if attr.kind == ContextType::StringSet => {
                        Some(parts.join(",").into())
                    }
                    Some(HeaderValue::Several(_)) => {
                        return Err(format!(
                            "request context `{name}`: {} is sent more than once; send it once",
                            source.describe()
                        ));
                    }
                    Some(HeaderValue::Unreadable) => {
                        return Err(format!(
                            "request context `{name}`: {} is not text",
                            source.describe()
                        ));
                    }
                };
                match text {
                    None => None,
                    Some(text) => Some(attr.kind.from_text(&text).map_err(|e| {
                        format!("request context `{name}`: {} {e}", source.describe())
                    })?),
                }
            }
            ContextSource::TokenClaim(c) => claims
                .and_then(|cl| cl.ctx.as_ref())
                .and_then(|ctx| ctx.get(c))
                .cloned(),
            ContextSource::MessageHeader(m) => carried.message.and_then(|ctx| ctx.get(m)).cloned(),
            ContextSource::ToolArgument(a) => {
                carried.arguments.and_then(|args| args.get(a)).cloned()
            }
        };
        let Some(value) = value else {
            continue;
        };
        if !attr.kind.admits(&value) {
            return Err(format!(
                "request context `{name}`: {} is not a {}, as the repository declares",
                source.describe(),
                attr.kind
            ));
        }
        context.insert(name.clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use serde_json::json;

    struct Headers(Vec<(&'static str, &'static str)>);

    impl RequestHeaders for Headers {
        fn header(&self, name: &str) -> HeaderValue<'_> {
            let found = self.0.iter().filter(|(k, _)| *k == name);
            let found: Vec<&str> = found.map(|(_, v)| *v).collect();
            match found.as_slice() {
                [] => HeaderValue::Absent,
                [v] => HeaderValue::One(v),
                _ => HeaderValue::Several(found),
            }
        }
    }

    fn declared() -> BTreeMap<String, ContextAttribute> {
        [
            (
                "amount_minor",
                ContextType::Long,
                Some(ContextSource::Header("x-amount-minor".into())),
            ),
            (
                "human_approved",
                ContextType::Bool,
                Some(ContextSource::TokenClaim("human_approved".into())),
            ),
            (
                "partner_id",
                ContextType::String,
                Some(ContextSource::MessageHeader("partner".into())),
            ),
            ("data_region", ContextType::String, None),
            (
                "tenant",
                ContextType::String,
                Some(ContextSource::Header("x-tenant".into())),
            ),
            (
                "regions",
                ContextType::StringSet,
                Some(ContextSource::Header("x-regions".into())),
            ),
        ]
        .into_iter()
        .map(|(name, kind, source)| {
            (
                name.to_owned(),
                ContextAttribute {
                    name: name.into(),
                    kind,
                    description: String::new(),
                    source,
                },
            )
        })
        .collect()
    }

    fn claims(ctx: Value) -> Claims {
        serde_json::from_value(json!({
            "iss": "https://steward.test", "sub": "spiffe://acme.example/a", "aud": "x",
            "exp": 2, "iat": 1, "nbf": 1, "jti": "j", "ctx": ctx,
        }))
        .unwrap()
    }

    #[test]
    fn each_attribute_comes_from_its_own_source_only() {
        let headers = Headers(vec![
            ("x-amount-minor", "4200"),
            // A client naming a verified attribute in a header gets nothing for it.
            ("human_approved", "true"),
            ("x-human-approved", "true"),
        ]);
        let message = Map::from_iter([("partner".to_owned(), json!("globex"))]);
        let carried = Carried {
            headers: Some(&headers),
            message: Some(&message),
            arguments: None,
        };
        // What a caller put in the context under a sourced name is dropped; an
        // attribute without a source is left to the caller.
        let mut context = Map::from_iter([
            ("human_approved".to_owned(), json!(true)),
            ("data_region".to_owned(), json!("eu-west-1")),
        ]);
        let token = claims(json!({}));
        read_declared(&declared(), Some(&token), &carried, &mut context).unwrap();
        assert_eq!(context["amount_minor"], 4200);
        assert_eq!(context["partner_id"], "globex");
        assert_eq!(context["data_region"], "eu-west-1");
        assert!(!context.contains_key("human_approved"), "{context:?}");

        let token = claims(json!({"human_approved": true}));
        let mut context = Map::new();
        read_declared(&declared(), Some(&token), &carried, &mut context).unwrap();
        assert_eq!(context["human_approved"], true);
    }

    #[test]
    fn values_of_another_type_and_repeated_headers_are_refused() {
        let bad = [
            (Headers(vec![("x-amount-minor", "12.5")]), json!({})),
            (Headers(vec![("x-amount-minor", "0x10")]), json!({})),
            (
                Headers(vec![("x-amount-minor", "1"), ("x-amount-minor", "2")]),
                json!({}),
            ),
            (Headers(vec![]), json!({"human_approved": "yes"})),
            (
                Headers(vec![("x-tenant", "acme"), ("x-tenant", "globex")]),
                json!({}),
            ),
            // The same two headers as Envoy hands them on: refused alike.
            (Headers(vec![("x-tenant", "acme,globex")]), json!({})),
        ];
        for (headers, ctx) in &bad {
            let carried = Carried {
                headers: Some(headers),
                message: None,
                arguments: None,
            };
            let err = read_declared(
                &declared(),
                Some(&claims(ctx.clone())),
                &carried,
                &mut Map::new(),
            )
            .unwrap_err();
            assert!(err.contains("request context `"), "{err}");
        }
    }

    #[test]
    fn a_set_sent_as_several_headers_reads_as_the_joined_list_envoy_sends() {
        let apart = Headers(vec![("x-regions", "eu, us"), ("x-regions", "ap")]);
        let joined = Headers(vec![("x-regions", "eu, us,ap")]);
        let read = |headers: &Headers| {
            let carried = Carried {
                headers: Some(headers),
                message: None,
                arguments: None,
            };
            let mut context = Map::new();
            read_declared(&declared(), None, &carried, &mut context).unwrap();
            context["regions"].clone()
        };
        assert_eq!(read(&apart), json!(["eu", "us", "ap"]));
        assert_eq!(read(&apart), read(&joined));
    }
}
