//! The demo's agent step: an AI agent reaches a small MCP server through the gateway's
//! MCP point. It is offered only the tool it may call, its allowed call runs, its call
//! outside what a human approved is refused with the reason, and the whole task is one
//! trace in the evidence log.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use steward_api::{ApiClient, ApplyRequest, ApplyResponse, IdentityRecord, RouteId};
use steward_governance::SourceFile;
use steward_model::{Action, IdentityKind};
use steward_token::{SigningKey, jws};

use crate::demo_tokens::{intends, workload};

const AGENT: &str = "spiffe://acme.example/agents/prod/order-assistant";
const RESOURCE: &str = "https://support-mcp.acme.example/mcp";
const TRACE: &str = "5d1e8f2a9b3c4d7e8f90a1b2c3d4e5f6";

/// The capabilities the MCP server's tools map onto, and the support plane's permit for
/// the agent: order lookups, and refunds (restricted: GR-4 also wants a human's approval).
fn agent_files() -> [SourceFile; 2] {
    [
        SourceFile {
            path: "capabilities/demo-support-mcp.yaml".into(),
            content: "capabilities:\n  - id: support.mcp.lookup_order\n    plane: commerce\n    classification: internal\n    description: Look an order up through the support MCP server (demo).\n    mappings:\n      - mcp: {server: support, tool: lookup_order}\n  - id: support.mcp.refund_payment\n    plane: commerce\n    classification: restricted\n    description: Refund through the support MCP server (demo).\n    mappings:\n      - mcp: {server: support, tool: refund_payment}\n".into(),
        },
        SourceFile {
            path: "policies/commerce/demo-order-assistant.cedar".into(),
            content: format!(
                "@id(\"commerce-demo-order-assistant\")\npermit (\n  principal == Steward::Identity::\"{AGENT}\",\n  action == Steward::Action::\"invoke\",\n  resource\n)\nwhen {{ resource in [Steward::Capability::\"support.mcp.lookup_order\", Steward::Capability::\"support.mcp.refund_payment\"] }};\n"
            ),
        },
    ]
}

/// A stand-in MCP server: three tools, JSON answers.
async fn mcp_server() -> Result<std::net::SocketAddr> {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|m: axum::Json<Value>| async move {
            let result = match m.0.get("method").and_then(Value::as_str) {
                Some("tools/list") => json!({"tools": [
                    {"name": "lookup_order", "inputSchema": {"type": "object"}},
                    {"name": "refund_payment", "inputSchema": {"type": "object"}},
                    {"name": "delete_all_orders", "inputSchema": {"type": "object"}},
                ]}),
                Some("tools/call") => {
                    let tool = m.0.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
                    json!({"content": [{"type": "text", "text": format!("{tool}: done")}]})
                }
                _ => json!({}),
            };
            axum::Json(json!({"jsonrpc": "2.0", "id": m.0.get("id").cloned().unwrap_or(Value::Null), "result": result}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

pub(crate) async fn agents(admin: &ApiClient, au: &ApiClient, files: &[SourceFile]) -> Result<()> {
    let mut all = files.to_vec();
    all.extend(agent_files());
    let applied: ApplyResponse = admin
        .apply(&ApplyRequest {
            files: all,
            expected_version: None,
        })
        .await?;
    println!(
        "The support MCP server's tools map onto capabilities; the commerce plane lets the agent {AGENT} look orders up and refund (configuration version {}).",
        applied.version
    );

    let (key, pkcs8) = SigningKey::generate()?;
    let mut identity = workload(
        AGENT,
        "commerce",
        "commerce-team",
        "an AI agent answering order questions (demo)",
        vec![intends("support.mcp.lookup_order", &[Action::Invoke])?],
        "demo-agent-1",
        &key,
    )?;
    identity.kind = IdentityKind::Agent;
    let _: IdentityRecord = admin.create_identity(&identity).await?;
    let server = mcp_server().await?;
    let (gw, _) = crate::demo_enforce::start_gateway(
        admin,
        "support-demo",
        "support MCP point (steward gateway)",
        &format!(
            "[[mcp]]\nlisten = \"127.0.0.1:0\"\nserver = \"support\"\nupstream = \"http://{server}/mcp\"\nresource = \"{RESOURCE}\"\n"
        ),
    )
    .await?;
    let point = format!("http://{}/mcp", gw.mcp.first().context("no MCP point")?);
    println!(
        "steward gateway `support-demo` runs an MCP point on {point} in front of the support MCP server."
    );

    // The agent's token, asked for within its task's trace, for the MCP server only.
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let http = reqwest::Client::new();
    let endpoint = admin.url(RouteId::Token, &[]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let assertion = jws::encode(
        &SigningKey::from_pkcs8(&pkcs8)?,
        "JWT",
        &json!({"iss": AGENT, "sub": AGENT, "aud": endpoint, "iat": now, "exp": now + 60,
                "jti": uuid::Uuid::new_v4().to_string()}),
    )?;
    let answer: Value = http
        .post(&endpoint)
        .header("traceparent", &traceparent)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", steward_token::JWT_BEARER_ASSERTION),
            ("client_assertion", &assertion),
            ("resource", RESOURCE),
        ])
        .send()
        .await?
        .json()
        .await?;
    let Some(token) = answer.get("access_token").and_then(Value::as_str) else {
        bail!("the agent's token request was refused: {answer}");
    };
    let rpc = |id: i64, method: &str, params: Value| {
        http.post(&point)
            .bearer_auth(token)
            .header("traceparent", &traceparent)
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .send()
    };
    let listed: Value = rpc(1, "tools/list", json!({})).await?.json().await?;
    let names: Vec<&str> = listed
        .pointer("/result/tools")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(|t| t.get("name")?.as_str()).collect())
        .unwrap_or_default();
    println!(
        "The server offers three tools; the agent is shown {names:?} (a tool it may not call is never offered)."
    );
    for (id, tool, arguments) in [
        (2, "lookup_order", json!({"order": "o-1"})),
        (3, "refund_payment", json!({"order": "o-1", "amount": 4200})),
    ] {
        let answer: Value = rpc(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
        .await?
        .json()
        .await?;
        let text = answer
            .pointer("/result/content/0/text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let refused = answer.pointer("/result/isError") == Some(&Value::Bool(true));
        println!(
            "tools/call {tool} → {}: {text}",
            if refused {
                "refused before the server"
            } else {
                "ran"
            }
        );
    }
    let _ = gw.log.flush(Duration::from_secs(10)).await;
    crate::demo_enforce::print_trace(au, TRACE).await?;
    gw.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
