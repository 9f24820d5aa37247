//! Business capabilities and the transport addresses that map onto them.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::identity::enum_str;
use crate::{CapabilityId, Classification, ModelError, PlaneId};

/// The one small action set shared by every channel: HTTP, gRPC, queues, topics, AI tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Invoke,
    Read,
    Write,
    Publish,
    Consume,
    Delegate,
    Admin,
}

enum_str!(Action { Invoke => "invoke", Read => "read", Write => "write", Publish => "publish", Consume => "consume", Delegate => "delegate", Admin => "admin" });

/// A business capability such as `payments.refund`, owned by one plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    pub id: CapabilityId,
    pub plane: PlaneId,
    pub classification: Classification,
    pub description: String,
    pub mappings: Vec<TransportMapping>,
    /// Request-context values fixed for every request to this capability (for example
    /// `data_class: restricted`): they override whatever a caller or a request says.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub context: std::collections::BTreeMap<String, serde_json::Value>,
}

/// An HTTP route: method (or `*`) and a path pattern where `*` matches one segment and a
/// trailing `**` matches the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMapping {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// A gRPC method: fully-qualified service and method (or `*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcMapping {
    pub service: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// An AMQP address: vhost, exchange and routing-key pattern (`*` one word, `#` the rest,
/// as in AMQP topic exchanges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpMapping {
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub exchange: String,
    #[serde(default = "hash")]
    pub routing_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// What an MCP server offers that the gateway's MCP point decides on: a tool called
/// (`tools/call`), a prompt got (`prompts/get`) or a resource read (`resources/read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum McpKind {
    Tool,
    Prompt,
    Resource,
}

enum_str!(McpKind { Tool => "tool", Prompt => "prompt", Resource => "resource" });

/// A tool, prompt or resource of an MCP server, reached through the gateway's MCP point:
/// the server's name in the gateway configuration and exactly one of `tool`, `prompt`
/// (a name, or `*` for every one of that server) or `resource` (a URI, or a prefix ending
/// in `*`). Names and URIs are compared exactly; one that is not in Unicode NFC or holds a
/// control character (or, for a URI, another spelling of the same URI) cannot be written
/// here, and the point refuses requests naming one, so two spellings of one name never
/// meet different rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpMapping {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

impl McpMapping {
    /// What the mapping names, when it names exactly one thing.
    pub fn item(&self) -> Option<(McpKind, &str)> {
        match (&self.tool, &self.prompt, &self.resource) {
            (Some(t), None, None) => Some((McpKind::Tool, t)),
            (None, Some(p), None) => Some((McpKind::Prompt, p)),
            (None, None, Some(r)) => Some((McpKind::Resource, r)),
            _ => None,
        }
    }
}

/// Why the `kind` named `name` in a request cannot be decided on: `None` when it is
/// usable. What the MCP point asks of every tool, prompt and resource it decides.
pub fn mcp_item_problem(kind: McpKind, name: &str) -> Option<&'static str> {
    match kind {
        McpKind::Resource => mcp_resource_problem(name),
        McpKind::Tool | McpKind::Prompt => mcp_name_problem(name),
    }
}

/// Why a resource URI cannot be decided on: `None` when it is usable. A URI with another
/// spelling of the same resource (upper-case scheme or authority, a percent-escape, a `.`
/// or `..` segment, a backslash) would let a request slip past a rule written for the
/// plain spelling, so none is taken. One rule for the catalog and the point.
pub fn mcp_resource_problem(uri: &str) -> Option<&'static str> {
    if let Some(why) = mcp_name_problem(uri) {
        return Some(why);
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Some("has no scheme (`scheme:…`)");
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
    {
        return Some("has a scheme that is not lower-case letters, digits, `+`, `-` or `.`");
    }
    if let Some(after) = rest.strip_prefix("//") {
        let authority = after.split(['/', '?', '#']).next().unwrap_or("");
        if authority.chars().any(|c| c.is_ascii_uppercase()) {
            return Some("has upper-case letters in its authority (write it in lower case)");
        }
    }
    if uri.contains('%') {
        return Some("holds a percent-escape (write the characters themselves)");
    }
    if uri.contains('\\') {
        return Some("holds a backslash");
    }
    let path = rest.split(['?', '#']).next().unwrap_or("");
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("holds a `.` or `..` segment (write the path it resolves to)");
    }
    None
}

/// Why an MCP tool or server name cannot be decided on: `None` when it is usable. One rule
/// for the catalog (at publish) and the enforcement point (for each call).
pub fn mcp_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.chars().any(char::is_control) {
        Some("holds a control character")
    } else if !unicode_normalization::is_nfc(name) {
        Some("is not in Unicode NFC (normalise it; names are compared exactly)")
    } else {
        None
    }
}

/// A name as an error shows it: printable ASCII as is, everything else as `\u{…}`, so two
/// spellings that look alike read differently.
pub fn escaped_name(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                vec![c]
            } else {
                c.escape_unicode().collect()
            }
        })
        .collect()
}

fn default_vhost() -> String {
    "/".to_owned()
}

fn hash() -> String {
    "#".to_owned()
}

/// One transport address that maps onto a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportMapping {
    Http(HttpMapping),
    Grpc(GrpcMapping),
    Amqp(AmqpMapping),
    /// A tool of an MCP server.
    Mcp(McpMapping),
    /// A queue consumed from, by name.
    Queue {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<Action>,
    },
    /// An AI tool call, by tool name.
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<Action>,
    },
}

const HTTP_METHODS: &[&str] = &[
    "*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
];

impl TransportMapping {
    /// Checks that the mapping can match real traffic.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Mapping(m));
        match self {
            Self::Http(h) => {
                if !HTTP_METHODS.contains(&h.method.as_str()) {
                    return bad(format!(
                        "HTTP method `{}` is not one of {}",
                        h.method,
                        HTTP_METHODS.join(", ")
                    ));
                }
                if !h.path.starts_with('/') {
                    return bad(format!("HTTP path `{}` must start with `/`", h.path));
                }
                if h.path.contains("**") && !h.path.ends_with("/**") {
                    return bad(format!(
                        "HTTP path `{}`: `**` may only end the pattern",
                        h.path
                    ));
                }
                if h.path
                    .chars()
                    .any(|c| c.is_whitespace() || c == '?' || c == '#')
                {
                    return bad(format!(
                        "HTTP path `{}` must not contain whitespace, `?` or `#`",
                        h.path
                    ));
                }
                // Requests are decided on their normal form, so a pattern in any other
                // form would never match what it seems to name.
                match crate::HttpPath::parse(&h.path) {
                    Ok(p) if p.as_str() == h.path => {}
                    Ok(p) => {
                        return bad(format!(
                            "HTTP path `{}` is not in normal form: write it as `{p}`, the path requests are decided on",
                            h.path
                        ));
                    }
                    Err(e) => return bad(format!("HTTP path pattern: {e}")),
                }
            }
            Self::Grpc(g) => {
                if g.service.is_empty() || !g.service.contains('.') || g.service.contains('/') {
                    return bad(format!(
                        "gRPC service `{}` must be fully qualified, e.g. `payments.v1.Refunds`",
                        g.service
                    ));
                }
                if g.method.is_empty() || g.method.contains('/') {
                    return bad(format!(
                        "gRPC method `{}` must be a method name or `*`",
                        g.method
                    ));
                }
            }
            Self::Amqp(a) => {
                if a.exchange.is_empty() {
                    return bad("AMQP exchange must not be empty (use `amq.default` for the default exchange)".into());
                }
                if a.routing_key.is_empty() {
                    return bad(
                        "AMQP routing key pattern must not be empty (use `#` for any)".into(),
                    );
                }
            }
            Self::Mcp(m) => {
                if let Some(why) = mcp_name_problem(&m.server) {
                    return bad(format!(
                        "MCP server name `{}` {why}",
                        escaped_name(&m.server)
                    ));
                }
                if m.server.chars().any(char::is_whitespace) {
                    return bad(format!(
                        "MCP server name `{}` must not contain whitespace",
                        m.server
                    ));
                }
                let Some((kind, name)) = m.item() else {
                    return bad(format!(
                        "MCP mapping on server `{}` names exactly one of `tool`, `prompt` or `resource`",
                        m.server
                    ));
                };
                match kind {
                    McpKind::Tool | McpKind::Prompt => {
                        if let Some(why) = mcp_name_problem(name) {
                            return bad(format!("MCP {kind} name `{}` {why}", escaped_name(name)));
                        }
                        if name != "*" && name.contains('*') {
                            return bad(format!(
                                "MCP {kind} `{name}`: `*` stands alone (every {kind} of the server)"
                            ));
                        }
                    }
                    McpKind::Resource => {
                        let exact = name.strip_suffix('*').unwrap_or(name);
                        if exact.contains('*') {
                            return bad(format!(
                                "MCP resource `{}`: `*` may only end a prefix (`orders://*`)",
                                escaped_name(name)
                            ));
                        }
                        let problem = if exact.is_empty() {
                            Some("is empty")
                        } else {
                            mcp_resource_problem(exact)
                        };
                        if let Some(why) = problem {
                            return bad(format!("MCP resource `{}` {why}", escaped_name(name)));
                        }
                    }
                }
            }
            Self::Queue { name, .. } | Self::Tool { name, .. } => {
                if name.trim().is_empty() {
                    return bad("queue and tool names must not be empty".into());
                }
            }
        }
        Ok(())
    }

    /// The action this address performs when the mapping does not name one.
    pub fn action(&self) -> Action {
        match self {
            Self::Http(h) => h.action.unwrap_or(match h.method.as_str() {
                "GET" | "HEAD" | "OPTIONS" => Action::Read,
                "*" => Action::Invoke,
                _ => Action::Write,
            }),
            Self::Grpc(g) => g.action.unwrap_or(Action::Invoke),
            Self::Amqp(a) => a.action.unwrap_or(Action::Publish),
            Self::Mcp(m) => m.action.unwrap_or(match m.item() {
                Some((McpKind::Prompt | McpKind::Resource, _)) => Action::Read,
                _ => Action::Invoke,
            }),
            Self::Queue { action, .. } => action.unwrap_or(Action::Consume),
            Self::Tool { action, .. } => action.unwrap_or(Action::Invoke),
        }
    }
}

impl fmt::Display for TransportMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(h) => write!(f, "http {} {}", h.method, h.path),
            Self::Grpc(g) => write!(f, "grpc {}/{}", g.service, g.method),
            Self::Amqp(a) => write!(
                f,
                "amqp vhost={} exchange={} rk={}",
                a.vhost, a.exchange, a.routing_key
            ),
            Self::Mcp(m) => match m.item() {
                Some((McpKind::Tool, tool)) => write!(f, "mcp {}/{}", m.server, escaped_name(tool)),
                Some((kind, name)) => write!(f, "mcp {} {kind} {}", m.server, escaped_name(name)),
                None => write!(f, "mcp {} (nothing named)", m.server),
            },
            Self::Queue { name, .. } => write!(f, "queue {name}"),
            Self::Tool { name, .. } => write!(f, "tool {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(method: &str, path: &str) -> TransportMapping {
        TransportMapping::Http(HttpMapping {
            method: method.into(),
            path: path.into(),
            action: None,
        })
    }

    #[test]
    fn validates_http() {
        assert!(http("POST", "/v1/refunds/*").validate().is_ok());
        assert!(http("GET", "/v1/**").validate().is_ok());
        assert!(http("FETCH", "/x").validate().is_err());
        assert!(http("GET", "v1").validate().is_err());
        assert!(http("GET", "/a/**/b").validate().is_err());
        // Patterns must be in the normal form requests are decided on.
        assert!(http("GET", "/v1/../admin/*").validate().is_err());
        assert!(http("GET", "/v1/%61dmin").validate().is_err());
        assert!(http("GET", "/v1//admin").validate().is_err());
        assert!(http("GET", "/v1/a%20b/*").validate().is_ok());
    }

    fn mcp_item(server: &str, kind: McpKind, name: &str) -> TransportMapping {
        let (mut tool, mut prompt, mut resource) = (None, None, None);
        match kind {
            McpKind::Tool => tool = Some(name.into()),
            McpKind::Prompt => prompt = Some(name.into()),
            McpKind::Resource => resource = Some(name.into()),
        }
        TransportMapping::Mcp(McpMapping {
            server: server.into(),
            tool,
            prompt,
            resource,
            action: None,
        })
    }

    #[test]
    fn validates_mcp_prompts_and_resources() {
        let prompt = |name: &str| mcp_item("support", McpKind::Prompt, name);
        let resource = |uri: &str| mcp_item("support", McpKind::Resource, uri);
        assert!(prompt("summarise").validate().is_ok());
        assert_eq!(prompt("summarise").action(), Action::Read);
        assert!(prompt("sum*").validate().is_err());
        assert!(resource("orders://o-1").validate().is_ok());
        assert!(resource("file:///reports/*").validate().is_ok());
        assert_eq!(resource("orders://*").action(), Action::Read);
        for bad in [
            "*",
            "orders://*/x",
            "ORDERS://o-1",
            "file://Host/x",
            "file:///reports/../secret",
            "file:///reports/./x",
            "file:///reports/%2e%2e/secret",
            "file:///reports\\x",
            "no-scheme",
        ] {
            assert!(resource(bad).validate().is_err(), "{bad}");
        }
        // Two things named, or none.
        let both = TransportMapping::Mcp(McpMapping {
            server: "support".into(),
            tool: Some("a".into()),
            prompt: Some("b".into()),
            resource: None,
            action: None,
        });
        assert!(both.validate().is_err());
        assert_eq!(mcp_resource_problem("orders://o-1?page=2"), None);
    }

    #[test]
    fn validates_mcp() {
        let mcp = |server: &str, tool: &str| mcp_item(server, McpKind::Tool, tool);
        assert!(mcp("billing", "refund_payment").validate().is_ok());
        assert!(mcp("billing", "*").validate().is_ok());
        assert_eq!(mcp("billing", "*").action(), Action::Invoke);
        assert!(mcp("billing", "refund_*").validate().is_err());
        assert!(mcp("", "x").validate().is_err());
        assert!(mcp("bill ing", "x").validate().is_err());
        assert!(mcp("billing", "").validate().is_err());
        assert!(mcp("billing", "re\u{7}fund").validate().is_err());
        // `é` as `e` + combining acute is not NFC; the composed form is.
        assert!(mcp("billing", "caf\u{65}\u{301}").validate().is_err());
        assert!(mcp("billing", "caf\u{e9}").validate().is_ok());
    }

    #[test]
    fn default_actions() {
        assert_eq!(http("GET", "/x").action(), Action::Read);
        assert_eq!(http("POST", "/x").action(), Action::Write);
        let q = TransportMapping::Queue {
            name: "refunds".into(),
            action: None,
        };
        assert_eq!(q.action(), Action::Consume);
    }

    #[test]
    fn deserializes_each_transport() {
        let raw = r#"[{"http":{"method":"POST","path":"/v1/refunds/*"}},{"grpc":{"service":"payments.v1.Refunds","method":"Create"}},{"amqp":{"exchange":"payments","routing_key":"refund.*"}},{"tool":{"name":"refund_payment"}}]"#;
        let parsed: Vec<TransportMapping> = serde_json::from_str(raw).unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[2].to_string(),
            "amqp vhost=/ exchange=payments rk=refund.*"
        );
    }
}
