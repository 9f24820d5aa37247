//! The one transport-address → capability lookup every enforcement point calls.
//!
//! A gateway sees `POST /v1/refunds/42`, a mesh sees `payments.v1.Refunds/Create`, a broker
//! sees `exchange=payments rk=refund.created`, an AI egress sees the tool `refund_payment`;
//! [`CapabilityIndex::lookup`] turns each into the business capability and action the
//! policy speaks about. When several patterns match, the most specific wins (most literal
//! parts, then fewest wildcards), so `/v1/refunds/*` beats `/v1/**`.

use std::collections::HashMap;

use crate::{Action, Capability, CapabilityId, TransportMapping};

/// A concrete transport address seen by an enforcement point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address<'a> {
    Http {
        method: &'a str,
        path: &'a str,
    },
    Grpc {
        service: &'a str,
        method: &'a str,
    },
    /// A publish to an exchange with a routing key.
    Amqp {
        vhost: &'a str,
        exchange: &'a str,
        routing_key: &'a str,
    },
    /// A consume from a queue.
    Queue {
        name: &'a str,
    },
    Tool {
        name: &'a str,
    },
    /// A tool called, a prompt got or a resource read at an MCP server, by the server's
    /// configured name.
    Mcp {
        server: &'a str,
        kind: crate::McpKind,
        name: &'a str,
    },
}

/// The capability and action an address maps onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub capability: CapabilityId,
    pub action: Action,
}

/// Every mapping of a catalog, ready for lookups. Mappings are bucketed by what an address
/// must equal exactly (the first HTTP path segment, the gRPC service, the AMQP vhost and
/// exchange, the queue or tool name), so a lookup scores a handful of candidates instead
/// of the whole catalog.
#[derive(Debug, Clone, Default)]
pub struct CapabilityIndex {
    entries: Vec<(CapabilityId, TransportMapping)>,
    /// HTTP mappings by the first path segment of their pattern.
    http: HashMap<String, Vec<usize>>,
    /// HTTP mappings whose first segment is a wildcard (`/*/…`, `/**`).
    http_any: Vec<usize>,
    grpc: HashMap<String, Vec<usize>>,
    /// vhost → exchange → mappings.
    amqp: HashMap<String, HashMap<String, Vec<usize>>>,
    queue: HashMap<String, Vec<usize>>,
    tool: HashMap<String, Vec<usize>>,
    /// MCP mappings by server name.
    mcp: HashMap<String, Vec<usize>>,
}

/// The first segment of an HTTP path (`/v1/orders` → `v1`).
fn first_segment(path: &str) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

impl CapabilityIndex {
    pub fn new<'a>(capabilities: impl IntoIterator<Item = &'a Capability>) -> Self {
        let mut index = Self {
            entries: capabilities
                .into_iter()
                .flat_map(|c| c.mappings.iter().map(|m| (c.id.clone(), m.clone())))
                .collect(),
            ..Default::default()
        };
        for (i, (_, m)) in index.entries.iter().enumerate() {
            match m {
                TransportMapping::Http(h) => match first_segment(&h.path) {
                    "*" | "**" => index.http_any.push(i),
                    seg => index.http.entry(seg.to_owned()).or_default().push(i),
                },
                TransportMapping::Grpc(g) => {
                    index.grpc.entry(g.service.clone()).or_default().push(i)
                }
                TransportMapping::Amqp(q) => index
                    .amqp
                    .entry(q.vhost.clone())
                    .or_default()
                    .entry(q.exchange.clone())
                    .or_default()
                    .push(i),
                TransportMapping::Queue { name, .. } => {
                    index.queue.entry(name.clone()).or_default().push(i)
                }
                TransportMapping::Tool { name, .. } => {
                    index.tool.entry(name.clone()).or_default().push(i)
                }
                TransportMapping::Mcp(m) => index.mcp.entry(m.server.clone()).or_default().push(i),
            }
        }
        index
    }

    /// The most specific mapping matching `address`, or `None`: an unmapped address has no
    /// capability, and callers deny it.
    pub fn lookup(&self, address: &Address<'_>) -> Option<Resolved> {
        fn bucket<'m>(map: &'m HashMap<String, Vec<usize>>, key: &str) -> &'m [usize] {
            map.get(key).map(Vec::as_slice).unwrap_or(&[])
        }
        let mut candidates: Vec<usize> = match address {
            Address::Http { path, .. } => {
                let mut c = bucket(&self.http, first_segment(path)).to_vec();
                c.extend_from_slice(&self.http_any);
                c
            }
            Address::Grpc { service, .. } => bucket(&self.grpc, service).to_vec(),
            Address::Amqp {
                vhost, exchange, ..
            } => self
                .amqp
                .get(*vhost)
                .map(|by_exchange| bucket(by_exchange, exchange).to_vec())
                .unwrap_or_default(),
            Address::Queue { name } => bucket(&self.queue, name).to_vec(),
            Address::Tool { name } => bucket(&self.tool, name).to_vec(),
            Address::Mcp { server, .. } => bucket(&self.mcp, server).to_vec(),
        };
        // Catalog order, so ties break exactly as a scan of the whole catalog would.
        candidates.sort_unstable();
        Self::best(
            candidates.into_iter().filter_map(|i| self.entries.get(i)),
            address,
        )
    }

    /// The capabilities an agent calls as tools: those an MCP tool or an offered AI tool
    /// maps onto.
    pub fn tool_capabilities(&self) -> std::collections::HashSet<&str> {
        self.entries
            .iter()
            .filter(|(_, m)| match m {
                TransportMapping::Tool { .. } => true,
                TransportMapping::Mcp(mcp) => {
                    matches!(mcp.item(), Some((crate::McpKind::Tool, _)))
                }
                _ => false,
            })
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Every capability mapped on an AMQP exchange (any routing key), in catalog order
    /// without repeats: what a broker's exchange-level check (which has no routing key)
    /// may be about.
    pub fn on_exchange(&self, vhost: &str, exchange: &str) -> Vec<Resolved> {
        let mut out: Vec<Resolved> = Vec::new();
        let indices = self
            .amqp
            .get(vhost)
            .and_then(|by_exchange| by_exchange.get(exchange))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (id, m) in indices.iter().filter_map(|i| self.entries.get(*i)) {
            if !out.iter().any(|r| &r.capability == id) {
                out.push(Resolved {
                    capability: id.clone(),
                    action: m.action(),
                });
            }
        }
        out
    }

    fn best<'a>(
        entries: impl Iterator<Item = &'a (CapabilityId, TransportMapping)>,
        address: &Address<'_>,
    ) -> Option<Resolved> {
        entries
            .filter_map(|(id, m)| specificity(m, address).map(|score| (score, id, m)))
            .max_by_key(|(score, _, _)| *score)
            .map(|(_, id, m)| Resolved {
                capability: id.clone(),
                action: m.action(),
            })
    }
}

/// (literal parts, -wildcards) when `m` matches `a`; higher is more specific.
fn specificity(m: &TransportMapping, a: &Address<'_>) -> Option<(usize, isize)> {
    match (m, a) {
        (TransportMapping::Http(h), Address::Http { method, path }) => {
            let method_ok = h.method == "*" || h.method.eq_ignore_ascii_case(method);
            let (lit, wild) = match_segments(&h.path, path, '/', "*", "**")?;
            method_ok.then_some((lit + usize::from(h.method != "*"), -(wild as isize)))
        }
        (TransportMapping::Grpc(g), Address::Grpc { service, method }) => (g.service == *service
            && (g.method == "*" || g.method == *method))
            .then_some((1 + usize::from(g.method != "*"), 0)),
        (
            TransportMapping::Amqp(q),
            Address::Amqp {
                vhost,
                exchange,
                routing_key,
            },
        ) => {
            if q.vhost != *vhost || q.exchange != *exchange {
                return None;
            }
            let (lit, wild) = match_segments(&q.routing_key, routing_key, '.', "*", "#")?;
            Some((lit + 1, -(wild as isize)))
        }
        (TransportMapping::Queue { name, .. }, Address::Queue { name: n }) => {
            (name == n).then_some((1, 0))
        }
        (TransportMapping::Tool { name, .. }, Address::Tool { name: n }) => {
            (name == n).then_some((1, 0))
        }
        // Exact comparison: a name differing only in case or Unicode form is another tool.
        (TransportMapping::Mcp(m), Address::Mcp { server, kind, name }) => {
            let (mapped_kind, mapped) = m.item()?;
            if m.server != *server || mapped_kind != *kind {
                None
            } else if *kind == crate::McpKind::Resource {
                // The exact URI first, then the longest prefix.
                match mapped.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix).then_some((1 + prefix.len(), -1)),
                    None => (mapped == *name).then_some((usize::MAX, 0)),
                }
            } else if mapped == "*" {
                Some((1, -1))
            } else {
                (mapped == *name).then_some((2, 0))
            }
        }
        _ => None,
    }
}

/// Matches `value` against `pattern`, both split on `sep`; `one` matches exactly one part,
/// `rest` (last part of the pattern only for HTTP; anywhere for AMQP `#`) zero or more.
/// Returns (literal parts matched, wildcards used).
fn match_segments(
    pattern: &str,
    value: &str,
    sep: char,
    one: &str,
    rest: &str,
) -> Option<(usize, usize)> {
    let p: Vec<&str> = pattern.split(sep).collect();
    let v: Vec<&str> = value.split(sep).collect();
    matches(&p, &v, one, rest)
}

fn matches(p: &[&str], v: &[&str], one: &str, rest: &str) -> Option<(usize, usize)> {
    match (p.split_first(), v.split_first()) {
        (None, None) => Some((0, 0)),
        (Some((head, tail)), _) if *head == rest => {
            // Zero or more parts: try every split, keep the most specific.
            (0..=v.len())
                .filter_map(|k| v.get(k..).and_then(|after| matches(tail, after, one, rest)))
                .max_by_key(|(l, w)| (*l, std::cmp::Reverse(*w)))
                .map(|(l, w)| (l, w + 1))
        }
        (Some((head, tail)), Some((first, others))) => {
            if *head == one {
                matches(tail, others, one, rest).map(|(l, w)| (l, w + 1))
            } else if head == first {
                matches(tail, others, one, rest).map(|(l, w)| (l + 1, w))
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AmqpMapping, Classification, GrpcMapping, HttpMapping, PlaneId};

    fn cap(id: &str, mappings: Vec<TransportMapping>) -> Capability {
        Capability {
            id: CapabilityId::new(id).unwrap(),
            plane: PlaneId::root(),
            classification: Classification::Internal,
            description: String::new(),
            mappings,
            context: Default::default(),
        }
    }

    fn http(method: &str, path: &str) -> TransportMapping {
        TransportMapping::Http(HttpMapping {
            method: method.into(),
            path: path.into(),
            action: None,
        })
    }

    fn index() -> CapabilityIndex {
        let caps = vec![
            cap("payments.read", vec![http("GET", "/v1/**")]),
            cap(
                "payments.refund",
                vec![
                    http("POST", "/v1/refunds/*"),
                    TransportMapping::Grpc(GrpcMapping {
                        service: "payments.v1.Refunds".into(),
                        method: "*".into(),
                        action: None,
                    }),
                    TransportMapping::Amqp(AmqpMapping {
                        vhost: "/".into(),
                        exchange: "payments".into(),
                        routing_key: "refund.*".into(),
                        action: None,
                    }),
                    TransportMapping::Tool {
                        name: "refund_payment".into(),
                        action: None,
                    },
                ],
            ),
            cap(
                "payments.refund-status",
                vec![http("GET", "/v1/refunds/*/status")],
            ),
            cap(
                "ledger.events",
                vec![
                    TransportMapping::Amqp(AmqpMapping {
                        vhost: "/".into(),
                        exchange: "ledger".into(),
                        routing_key: "#".into(),
                        action: None,
                    }),
                    TransportMapping::Queue {
                        name: "ledger.events".into(),
                        action: None,
                    },
                ],
            ),
        ];
        CapabilityIndex::new(&caps)
    }

    fn resolve(a: Address<'_>) -> Option<(String, Action)> {
        index()
            .lookup(&a)
            .map(|r| (r.capability.to_string(), r.action))
    }

    #[test]
    fn one_capability_from_every_transport() {
        let refund = Some(("payments.refund".to_owned(), Action::Write));
        assert_eq!(
            resolve(Address::Http {
                method: "POST",
                path: "/v1/refunds/42"
            }),
            refund
        );
        assert_eq!(
            resolve(Address::Http {
                method: "post",
                path: "/v1/refunds/42"
            }),
            refund
        );
        assert_eq!(
            resolve(Address::Grpc {
                service: "payments.v1.Refunds",
                method: "Create"
            })
            .map(|r| r.0),
            Some("payments.refund".into())
        );
        assert_eq!(
            resolve(Address::Amqp {
                vhost: "/",
                exchange: "payments",
                routing_key: "refund.created"
            })
            .map(|r| r.1),
            Some(Action::Publish)
        );
        assert_eq!(
            resolve(Address::Tool {
                name: "refund_payment"
            })
            .map(|r| r.1),
            Some(Action::Invoke)
        );
        assert_eq!(
            resolve(Address::Queue {
                name: "ledger.events"
            }),
            Some(("ledger.events".into(), Action::Consume))
        );
    }

    #[test]
    fn most_specific_pattern_wins_and_unmapped_is_none() {
        assert_eq!(
            resolve(Address::Http {
                method: "GET",
                path: "/v1/refunds/42/status"
            })
            .map(|r| r.0),
            Some("payments.refund-status".into())
        );
        assert_eq!(
            resolve(Address::Http {
                method: "GET",
                path: "/v1/anything/deep"
            })
            .map(|r| r.0),
            Some("payments.read".into())
        );
        assert_eq!(
            resolve(Address::Http {
                method: "DELETE",
                path: "/v1/refunds/42"
            }),
            None
        );
        assert_eq!(
            resolve(Address::Http {
                method: "POST",
                path: "/v1/refunds/42/extra"
            }),
            None
        );
        assert_eq!(
            resolve(Address::Amqp {
                vhost: "/",
                exchange: "payments",
                routing_key: "refund.created.eu"
            }),
            None
        );
        assert_eq!(
            resolve(Address::Amqp {
                vhost: "other",
                exchange: "payments",
                routing_key: "refund.created"
            }),
            None
        );
        assert_eq!(
            resolve(Address::Amqp {
                vhost: "/",
                exchange: "ledger",
                routing_key: "a.b.c"
            })
            .map(|r| r.0),
            Some("ledger.events".into())
        );
        assert_eq!(
            resolve(Address::Grpc {
                service: "payments.v1.Other",
                method: "Create"
            }),
            None
        );
        assert_eq!(
            resolve(Address::Tool {
                name: "delete_everything"
            }),
            None
        );
    }

    #[test]
    fn mcp_tools_resolve_exactly_and_the_named_tool_beats_the_wildcard() {
        let mcp = |tool: &str| {
            TransportMapping::Mcp(crate::McpMapping {
                server: "billing".into(),
                tool: Some(tool.into()),
                prompt: None,
                resource: None,
                action: None,
            })
        };
        let idx = CapabilityIndex::new(&[
            cap("billing.any", vec![mcp("*")]),
            cap("billing.refund", vec![mcp("refund_payment")]),
        ]);
        let at = |server, tool| {
            idx.lookup(&Address::Mcp {
                server,
                kind: crate::McpKind::Tool,
                name: tool,
            })
            .map(|r| r.capability.to_string())
        };
        assert_eq!(
            at("billing", "refund_payment").as_deref(),
            Some("billing.refund")
        );
        assert_eq!(
            at("billing", "Refund_Payment").as_deref(),
            Some("billing.any")
        );
        assert_eq!(at("billing", "other").as_deref(), Some("billing.any"));
        assert_eq!(at("other", "refund_payment"), None);
    }

    /// Resources: the exact URI beats every prefix, a longer prefix beats a shorter one,
    /// and a tool mapping never answers for a prompt or a resource of the same name.
    #[test]
    fn mcp_resources_resolve_by_exact_uri_then_longest_prefix() {
        let item = |kind: crate::McpKind, name: &str| {
            let mut m = crate::McpMapping {
                server: "support".into(),
                tool: None,
                prompt: None,
                resource: None,
                action: None,
            };
            match kind {
                crate::McpKind::Tool => m.tool = Some(name.into()),
                crate::McpKind::Prompt => m.prompt = Some(name.into()),
                crate::McpKind::Resource => m.resource = Some(name.into()),
            }
            TransportMapping::Mcp(m)
        };
        use crate::McpKind::{Prompt, Resource, Tool};
        let idx = CapabilityIndex::new(&[
            cap("support.files", vec![item(Resource, "file:///*")]),
            cap("support.reports", vec![item(Resource, "file:///reports/*")]),
            cap(
                "support.secret",
                vec![item(Resource, "file:///reports/secret")],
            ),
            cap("support.summary", vec![item(Prompt, "summarise")]),
            cap("support.summarise_tool", vec![item(Tool, "summarise")]),
        ]);
        let at = |kind, name| {
            idx.lookup(&Address::Mcp {
                server: "support",
                kind,
                name,
            })
            .map(|r| (r.capability.to_string(), r.action))
        };
        assert_eq!(
            at(Resource, "file:///reports/secret"),
            Some(("support.secret".into(), crate::Action::Read))
        );
        assert_eq!(
            at(Resource, "file:///reports/q3").map(|r| r.0),
            Some("support.reports".into())
        );
        assert_eq!(
            at(Resource, "file:///etc/passwd").map(|r| r.0),
            Some("support.files".into())
        );
        assert_eq!(at(Resource, "orders://o-1"), None);
        assert_eq!(
            at(Prompt, "summarise").map(|r| r.0),
            Some("support.summary".into())
        );
        assert_eq!(
            at(Tool, "summarise").map(|r| r.0),
            Some("support.summarise_tool".into())
        );
    }

    #[test]
    fn topic_wildcards_follow_amqp() {
        assert_eq!(match_segments("a.#.z", "a.z", '.', "*", "#"), Some((2, 1)));
        assert_eq!(
            match_segments("a.#.z", "a.b.c.z", '.', "*", "#"),
            Some((2, 1))
        );
        assert_eq!(match_segments("a.*", "a", '.', "*", "#"), None);
        assert_eq!(
            match_segments("#", "", '.', "*", "#").map(|(l, _)| l),
            Some(0)
        );
    }

    proptest::proptest! {
        /// The buckets never change an answer: the index agrees with scoring every mapping
        /// of the catalog.
        #[test]
        fn index_agrees_with_a_full_scan(method in "(GET|POST|\\*)", path in "(/[a-z0-9*]{0,6}){0,5}", rk in "[a-z*#]{0,4}(\\.[a-z*#]{0,4}){0,3}", svc in "(payments.v1.Refunds|other)", name in "(refund_payment|x)") {
            let idx = index();
            for a in [
                Address::Http { method: &method, path: &path },
                Address::Amqp { vhost: "/", exchange: "ledger", routing_key: &rk },
                Address::Amqp { vhost: "/", exchange: "payments", routing_key: &rk },
                Address::Grpc { service: &svc, method: "Create" },
                Address::Tool { name: &name },
                Address::Queue { name: &name },
            ] {
                proptest::prop_assert_eq!(idx.lookup(&a), CapabilityIndex::best(idx.entries.iter(), &a));
            }
        }

        /// On any method, path or routing key the index still agrees with the full scan,
        /// and a topic pattern always matches its own text (a literal segment matches
        /// itself, `*` one segment, `#` any number).
        #[test]
        fn any_address_gets_the_full_scans_answer(method in "[A-Z*]{0,7}", path in "[/a-z0-9*]{0,40}", rk in "[a-z.*#]{0,30}") {
            let idx = index();
            for a in [
                Address::Http { method: &method, path: &path },
                Address::Amqp { vhost: "/", exchange: "ledger", routing_key: &rk },
            ] {
                proptest::prop_assert_eq!(idx.lookup(&a), CapabilityIndex::best(idx.entries.iter(), &a));
            }
            proptest::prop_assert!(match_segments(&rk, &rk, '.', "*", "#").is_some(), "{} does not match itself", rk);
        }
    }
}
