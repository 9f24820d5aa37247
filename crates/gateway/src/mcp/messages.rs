//! Deciding JSON-RPC messages one by one: which are forwarded, which are answered here.

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};
use sha2::Digest;
use steward_enforce::HeaderField;
use steward_enforce::{Outcome, Unreadable, Verdict};
use steward_model::McpKind;

use super::{Caller, McpPoint};
use crate::credential::header_field;
use crate::request_headers::HttpHeaders;
use steward_enforce::trace::TraceContext;

/// JSON-RPC 2.0 error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The stateless revision's code for routing headers that disagree with the body.
pub const HEADER_MISMATCH: i64 = -32020;

/// Methods passed on without a decision of their own: the session's setup and upkeep
/// (`initialize` in the handshake revisions, `server/discover` in the stateless one),
/// resource templates (a template reads nothing: each `resources/read` is decided), and
/// ending a subscription (it only takes updates away; subscribing is decided).
const PASSED: [&str; 6] = [
    "initialize",
    "server/discover",
    "ping",
    "logging/setLevel",
    "resources/templates/list",
    "resources/unsubscribe",
];

/// The implementation-defined JSON-RPC code of a `prompts/get` or `resources/read` refused
/// by policy (a refused `tools/call` is a tool result marked `isError` instead).
pub const REFUSED_BY_POLICY: i64 = -32010;

/// The requests decided one by one: what kind of item `method` names and where in the
/// message `m` (also what the stateless revision mirrors in `Mcp-Name`); `None` for a
/// method that names none. Subscribing to a resource is decided as reading it (its update
/// notifications are about it), and a completion as the prompt or resource template it
/// completes an argument of (the suggestions come from it). `Err`: a completion whose
/// `params.ref` is neither kind, so nothing can be decided.
fn decided(method: &str, m: &Value) -> Option<Result<(McpKind, &'static str), &'static str>> {
    Some(Ok(match method {
        "tools/call" => (McpKind::Tool, "/params/name"),
        "prompts/get" => (McpKind::Prompt, "/params/name"),
        "resources/read" | "resources/subscribe" => (McpKind::Resource, "/params/uri"),
        "completion/complete" => match m.pointer("/params/ref/type").and_then(Value::as_str) {
            Some("ref/prompt") => (McpKind::Prompt, "/params/ref/name"),
            Some("ref/resource") => (McpKind::Resource, "/params/ref/uri"),
            _ => {
                return Some(Err(
                    "a completion names what it completes in `params.ref`: `{\"type\": \"ref/prompt\", \"name\": ...}` or `{\"type\": \"ref/resource\", \"uri\": ...}`",
                ));
            }
        },
        _ => return None,
    }))
}

/// The lists passed on with their answers filtered: the method, what it lists, the array
/// in its result and the member naming each entry.
pub(super) const LISTS: [(&str, McpKind, &str, &str); 3] = [
    ("tools/list", McpKind::Tool, "/result/tools", "name"),
    ("prompts/list", McpKind::Prompt, "/result/prompts", "name"),
    (
        "resources/list",
        McpKind::Resource,
        "/result/resources",
        "uri",
    ),
];

/// What a POST's messages came to.
pub struct Decided {
    /// The body was a batch (answers go back as one).
    pub batch: bool,
    /// Messages the MCP server gets.
    pub forward: Vec<Value>,
    /// Answers made here (refusals), one per refused request.
    pub answers: Vec<Value>,
    /// The forwarded requests awaiting an answer, by id, with what each lists (`None`:
    /// not a list; its answer passes unfiltered).
    pub sent: Vec<(Value, Option<McpKind>)>,
}

/// A JSON-RPC error response.
pub fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The answer to a body that is not JSON.
pub fn parse_error() -> Value {
    error_response(
        Value::Null,
        PARSE_ERROR,
        "the body is not JSON: send a JSON-RPC 2.0 message or batch",
    )
}

/// The stateless revision of MCP mirrors a request's method (`Mcp-Method`) and target
/// (`Mcp-Name`) in headers, so that servers and load balancers can route without reading
/// the body. This point decides on the body and passes those headers on, so they must say
/// the same as the body: otherwise something behind it could act on another method or
/// tool than the one decided. Returns the refusal (`HEADER_MISMATCH`, as a conforming
/// server answers) when they disagree, are sent twice or cannot be read.
pub(super) fn routing_headers_disagree(headers: &HeaderMap, body: &Value) -> Option<Value> {
    let method_header = header_field(headers, "mcp-method");
    let name_header = header_field(headers, "mcp-name");
    if method_header == HeaderField::Absent && name_header == HeaderField::Absent {
        return None;
    }
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let refuse = |why: String| Some(error_response(id.clone(), HEADER_MISMATCH, &why));
    let Some(method) = body.get("method").and_then(Value::as_str) else {
        return refuse(
            "`Mcp-Method` and `Mcp-Name` describe one request: send them with a single JSON-RPC request, not a batch or an answer".into(),
        );
    };
    let mirrored = |field: HeaderField<'_>, header: &str, want: &str| -> Result<(), String> {
        let got = match field {
            HeaderField::Absent => return Ok(()),
            HeaderField::Repeated => return Err(format!("`{header}` is sent more than once")),
            HeaderField::One(v) => v.and_then(header_text),
        };
        match got {
            Some(got) if got == want => Ok(()),
            Some(got) => Err(format!(
                "`{header}` says `{}` but the body says `{}`",
                steward_model::escaped_name(&got),
                steward_model::escaped_name(want)
            )),
            None => Err(format!(
                "`{header}` is not readable text (plain ASCII, or `=?base64?…?=` of UTF-8)"
            )),
        }
    };
    if let Err(why) = mirrored(method_header, "Mcp-Method", method) {
        return refuse(why);
    }
    if name_header == HeaderField::Absent {
        return None;
    }
    let target = match decided(method, body) {
        Some(Ok((_, at))) => body.pointer(at).and_then(Value::as_str),
        _ => None,
    };
    let Some(target) = target else {
        return refuse(format!(
            "`Mcp-Name` is sent, but `{}` names no tool, prompt or resource in its params",
            steward_model::escaped_name(method)
        ));
    };
    mirrored(name_header, "Mcp-Name", target)
        .err()
        .and_then(refuse)
}

/// A routing header's text: verbatim, or the UTF-8 inside the `=?base64?…?=` wrapping the
/// revision uses for values that are not plain ASCII. `None` for a wrapping that is not
/// canonical base64 of UTF-8, so a corrupt header never matches by accident.
fn header_text(value: &str) -> Option<String> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    (STANDARD.encode(&bytes) == payload)
        .then(|| String::from_utf8(bytes).ok())
        .flatten()
}

/// Decides every message of `body`; `Err` is the answer for a body that is no message
/// at all (an empty batch, a scalar).
pub(super) fn decide_all(
    mcp: &McpPoint,
    caller: &Caller,
    headers: &HttpHeaders<'_>,
    trace: &TraceContext,
    body: Value,
) -> Result<Decided, Value> {
    let (batch, messages) = match body {
        Value::Array(a) if a.is_empty() => {
            return Err(error_response(
                Value::Null,
                INVALID_REQUEST,
                "an empty batch",
            ));
        }
        Value::Array(a) => (true, a),
        Value::Object(o) => (false, vec![Value::Object(o)]),
        _ => {
            return Err(error_response(
                Value::Null,
                INVALID_REQUEST,
                "a JSON-RPC message is an object (or a batch of them)",
            ));
        }
    };
    let mut d = Decided {
        batch,
        forward: Vec::new(),
        answers: Vec::new(),
        sent: Vec::new(),
    };
    for m in messages {
        decide_one(mcp, caller, headers, trace, m, &mut d);
    }
    Ok(d)
}

fn decide_one(
    mcp: &McpPoint,
    caller: &Caller,
    headers: &HttpHeaders<'_>,
    trace: &TraceContext,
    m: Value,
    d: &mut Decided,
) {
    let id = m.get("id").cloned();
    let id_ok = matches!(id, None | Some(Value::String(_)) | Some(Value::Number(_)));
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || !id_ok {
        d.answers.push(error_response(
            if id_ok {
                id.unwrap_or(Value::Null)
            } else {
                Value::Null
            },
            INVALID_REQUEST,
            "not a JSON-RPC 2.0 message (`jsonrpc: \"2.0\"`, a string or number `id`)",
        ));
        return;
    }
    let Some(method) = m.get("method") else {
        // An answer to the server's own request (sampling, roots, elicitation).
        let answers = m.get("result").is_some() != m.get("error").is_some();
        match id {
            Some(_) if answers => d.forward.push(m),
            _ => d.answers.push(error_response(Value::Null, INVALID_REQUEST, "a message without `method` answers a request: it has an `id` and one of `result` or `error`")),
        }
        return;
    };
    let Some(method) = method.as_str().map(str::to_owned) else {
        d.answers.push(error_response(
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "`method` is a string",
        ));
        return;
    };
    let Some(id) = id else {
        // A notification: the client's own, passed on; anything else is dropped (nobody
        // waits for an answer).
        if method.starts_with("notifications/") {
            d.forward.push(m);
        }
        return;
    };
    if let Some(item) = decided(&method, &m) {
        let refused = match item {
            Ok((kind, name_at)) => item_refusal(mcp, caller, headers, trace, &m, kind, name_at),
            Err(why) => Some(error_response(Value::Null, INVALID_PARAMS, why)),
        };
        match refused {
            None => {
                d.sent.push((id, None));
                d.forward.push(m);
            }
            Some(answer) => d.answers.push(with_id(answer, id)),
        }
    } else if let Some((_, kind, _, _)) = LISTS.iter().find(|(m, _, _, _)| *m == method) {
        d.sent.push((id, Some(*kind)));
        d.forward.push(m);
    } else if PASSED.contains(&method.as_str()) {
        d.sent.push((id, None));
        d.forward.push(m);
    } else {
        d.answers.push(error_response(
            id,
            METHOD_NOT_FOUND,
            &format!(
                "`{}` is not decided at this MCP point, so it is refused",
                steward_model::escaped_name(&method)
            ),
        ));
    }
}

fn with_id(mut answer: Value, id: Value) -> Value {
    if let Some(o) = answer.as_object_mut() {
        o.insert("id".into(), id);
    }
    answer
}

/// Decides one `tools/call`, `prompts/get` or `resources/read` (recorded); `None` when it
/// may go on, else the answer.
fn item_refusal(
    mcp: &McpPoint,
    caller: &Caller,
    headers: &HttpHeaders<'_>,
    trace: &TraceContext,
    m: &Value,
    kind: McpKind,
    name_at: &str,
) -> Option<Value> {
    let Some(name) = m.pointer(name_at).and_then(Value::as_str) else {
        let member = name_at.trim_start_matches('/').replace('/', ".");
        return Some(error_response(
            Value::Null,
            INVALID_PARAMS,
            &format!("a {kind} request names its {kind} in `{member}` (a string)"),
        ));
    };
    let arguments = m.pointer("/params/arguments");
    if arguments.is_some_and(|a| !a.is_object()) {
        return Some(error_response(
            Value::Null,
            INVALID_PARAMS,
            &format!("a {kind} request's `params.arguments` is an object"),
        ));
    }
    let text = arguments.unwrap_or(&Value::Null).to_string();
    let mut context = Map::new();
    context.insert(
        "mcp_arguments_sha256".into(),
        hex::encode(sha2::Sha256::digest(text.as_bytes())).into(),
    );
    let shown = steward_model::escaped_name(name);
    let target = if let Some(why) = steward_model::mcp_item_problem(kind, name) {
        Err(unreadable(
            mcp,
            kind,
            &shown,
            format!("the {kind} name {why}"),
        ))
    } else if text.len() > mcp.config.max_argument_bytes {
        Err(unreadable(
            mcp,
            kind,
            &shown,
            format!(
                "the arguments are {} bytes of JSON, more than the {} this point takes (max_argument_bytes)",
                text.len(),
                mcp.config.max_argument_bytes
            ),
        ))
    } else {
        Ok(mcp.address(kind, name))
    };
    let seen = mcp.seen(
        Some(caller),
        headers,
        trace,
        target,
        context,
        arguments.and_then(Value::as_object),
    );
    let verdict = mcp.point.check(&seen);
    if verdict.allowed() {
        return None;
    }
    tracing::info!(point = %mcp.point.name(), %kind, name = %shown, reason = %verdict.reason(), "MCP request refused");
    let mut answer = refusal(&verdict, kind, &shown);
    if stateless_envelope(m)
        && let Some(result) = answer.get_mut("result").and_then(Value::as_object_mut)
    {
        // The stateless revision requires every result to say it is complete; the
        // handshake ones have no such member (and some clients refuse unknown ones).
        result.insert("resultType".into(), "complete".into());
    }
    Some(answer)
}

/// Whether a request comes in the stateless revision's envelope, which names its protocol
/// version in `params._meta` (the handshake revisions agree on one at `initialize`).
fn stateless_envelope(m: &Value) -> bool {
    m.pointer("/params/_meta")
        .and_then(|meta| meta.get("io.modelcontextprotocol/protocolVersion"))
        .is_some()
}

fn unreadable(mcp: &McpPoint, kind: McpKind, shown: &str, reason: String) -> Unreadable {
    Unreadable {
        address: format!(
            "mcp {} {kind} {}",
            mcp.config.server,
            shown.chars().take(200).collect::<String>()
        ),
        reason,
    }
}

/// A refused request as the agent sees it: a policy refusal of a tool call is a tool
/// result marked `isError` (the model reads why and does not retry blindly), of a prompt
/// or resource a JSON-RPC error [`REFUSED_BY_POLICY`] (those results have no error form);
/// a request that cannot be decided is invalid params; no bundle or no log is an internal
/// error.
fn refusal(verdict: &Verdict, kind: McpKind, name: &str) -> Value {
    let what = match kind {
        McpKind::Tool => "the call to",
        McpKind::Prompt => "the prompt",
        McpKind::Resource => "reading",
    };
    let why = format!(
        "Steward refused {what} `{name}`: {} (decision {})",
        verdict.reason(),
        verdict.event_id
    );
    match (verdict.outcome, kind) {
        (Outcome::Forbidden | Outcome::Unauthenticated, McpKind::Tool) => json!({
            "jsonrpc": "2.0",
            "result": {"content": [{"type": "text", "text": why}], "isError": true},
        }),
        (Outcome::Forbidden | Outcome::Unauthenticated, _) => {
            error_response(Value::Null, REFUSED_BY_POLICY, &why)
        }
        (Outcome::Malformed, _) => error_response(Value::Null, INVALID_PARAMS, &why),
        (Outcome::Unavailable | Outcome::Allow, _) => {
            error_response(Value::Null, INTERNAL_ERROR, &why)
        }
    }
}

/// Whether the caller may use the `kind` named `name` (decided and recorded): what a list
/// keeps.
pub(super) fn allowed(
    mcp: &McpPoint,
    caller: &Caller,
    headers: &HttpHeaders<'_>,
    trace: &TraceContext,
    kind: McpKind,
    name: &str,
) -> bool {
    if steward_model::mcp_item_problem(kind, name).is_some() {
        return false;
    }
    let target = Ok(mcp.address(kind, name));
    mcp.point
        .check(&mcp.seen(Some(caller), headers, trace, target, Map::new(), None))
        .allowed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn call(tool: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool}})
    }

    /// Routing headers pass only when they say what the body says; every other shape is
    /// refused with the revision's code and the request's id.
    #[test]
    fn routing_headers_must_mirror_the_body() {
        let agree = headers(&[("mcp-method", "tools/call"), ("mcp-name", "lookup_order")]);
        assert_eq!(
            routing_headers_disagree(&agree, &call("lookup_order")),
            None
        );
        assert_eq!(
            routing_headers_disagree(&HeaderMap::new(), &call("x")),
            None
        );
        // Non-ASCII names travel base64-wrapped.
        let wrapped = headers(&[("mcp-name", "=?base64?w6lsYW4=?=")]);
        assert_eq!(routing_headers_disagree(&wrapped, &call("élan")), None);
        let refused = |h: &HeaderMap, body: &Value| {
            let r = routing_headers_disagree(h, body).unwrap();
            assert_eq!(r["error"]["code"], HEADER_MISMATCH, "{r}");
            r["error"]["message"].as_str().unwrap().to_owned()
        };
        // The header names another tool than the body calls.
        let other = headers(&[("mcp-method", "tools/call"), ("mcp-name", "refund_payment")]);
        let why = refused(&other, &call("lookup_order"));
        assert!(
            why.contains("refund_payment") && why.contains("lookup_order"),
            "{why}"
        );
        assert_eq!(
            routing_headers_disagree(&other, &call("lookup_order")).unwrap()["id"],
            7
        );
        // Another method; the name header sent twice; a corrupt or non-canonical wrapping.
        refused(&headers(&[("mcp-method", "tools/list")]), &call("a"));
        refused(
            &headers(&[("mcp-name", "a"), ("mcp-name", "a")]),
            &call("a"),
        );
        refused(&headers(&[("mcp-name", "=?base64?!!?=")]), &call("a"));
        refused(&headers(&[("mcp-name", "=?base64?YR==?=")]), &call("a"));
        // A name for a method that names nothing, and headers beside a batch.
        refused(
            &headers(&[("mcp-name", "a")]),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        );
        refused(
            &headers(&[("mcp-method", "tools/call")]),
            &json!([call("a"), call("a")]),
        );
    }
}
