//! `steward gateway`: run the enforcement points of one configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

/// Options of `steward gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Gateway configuration (TOML): the control plane to follow and the listeners to
    /// serve; see docs/enforcement.md.
    #[arg(long, short, env = "STEWARD_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

pub(crate) async fn run(args: GatewayArgs) -> Result<ExitCode> {
    crate::serve::init_logging();
    let config = steward_gateway::GatewayConfig::load(&args.config)
        .with_context(|| format!("invalid gateway configuration {}", args.config.display()))?;
    if args.check {
        println!(
            "{}: gateway `{}` ({}), control plane {}, {} proxy listener(s){}{}",
            args.config.display(),
            config.name,
            config.environment,
            config.control_plane,
            config.proxies.len(),
            if config.auth.is_some() {
                ", nginx/RabbitMQ decision endpoints"
            } else {
                ""
            },
            if config.ext_authz.is_some() {
                ", Envoy ext_authz"
            } else {
                ""
            },
        );
        return Ok(ExitCode::SUCCESS);
    }
    let running = steward_gateway::start(config).await?;
    for (i, addr) in running.proxies.iter().enumerate() {
        eprintln!("Steward gateway: proxy {i} listening on http://{addr}");
    }
    if let Some(a) = running.auth {
        eprintln!("Steward gateway: nginx/RabbitMQ decision endpoints on http://{a}");
    }
    if let Some(a) = running.ext_authz {
        eprintln!("Steward gateway: Envoy ext_authz (gRPC) on {a}");
    }
    for (i, addr) in running.mcp.iter().enumerate() {
        eprintln!("Steward gateway: MCP point {i} listening on {addr}");
    }
    if let Some(a) = running.metrics {
        eprintln!("Steward gateway: metrics and probes on http://{a} (/metrics, /livez, /readyz)");
    }
    crate::serve::reload_certificates_on_sighup();
    crate::serve::shutdown_signal().await;
    eprintln!("Steward gateway: stopping (open requests may finish)…");
    running.shutdown(steward_gateway::DRAIN).await;
    eprintln!("Steward gateway stopped.");
    Ok(ExitCode::SUCCESS)
}
