//! `steward echo`: a stand-in service to put behind `steward gateway` when trying it out.
//! It answers every request with what it received, so the caller sees what the gateway
//! forwarded: the verified identity, the trace, and that the client's credential is gone.

use std::process::ExitCode;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use clap::Args;
use serde_json::json;

/// Options of `steward echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: std::net::SocketAddr,
}

/// Serves until interrupted.
pub(crate) async fn run(args: EchoArgs) -> Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "steward echo listening on http://{}: every request is answered with what it carried",
        listener.local_addr()?
    );
    let app = axum::Router::new().fallback(echo);
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::serve::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// The request as JSON: method, path, query, headers (a credential's value elided, as a
/// stand-in that prints secrets would teach the wrong habit) and body size.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> String {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| {
            let shown = if matches!(
                name.as_str(),
                "authorization" | "cookie" | "proxy-authorization"
            ) {
                "(present; value not shown)".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), json!(shown))
        })
        .collect();
    let answer = json!({
        "service": "steward echo",
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
    });
    // Pretty, for the person reading it in a terminal.
    serde_json::to_string_pretty(&answer).unwrap_or_default() + "\n"
}
