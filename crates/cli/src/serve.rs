//! `steward serve`: configuration, store, bootstrap credential, graceful shutdown.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use steward_server::config::Overrides;
use steward_server::{AppState, bootstrap, open_store};

use crate::commands::load_config;

/// Options of `steward serve`. Precedence: flag, then environment variable, then the
/// config file, then the default.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML). Default: $STEWARD_CONFIG, else ./steward.toml if present.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen address of the admin API [env: STEWARD_LISTEN] [default: 127.0.0.1:8470].
    #[arg(long)]
    listen: Option<String>,
    /// Data directory of the embedded SQLite store [env: STEWARD_DATA_DIR] [default: ./steward-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run on PostgreSQL instead: postgres://USER:PASSWORD@HOST:PORT/DB [env: STEWARD_DATABASE_URL].
    #[arg(long)]
    database_url: Option<String>,
    /// SPIFFE trust domain of every identity [env: STEWARD_TRUST_DOMAIN] [default: steward.local].
    #[arg(long)]
    trust_domain: Option<String>,
    /// On first start, write the bootstrap admin credential to this file (mode 0600)
    /// instead of printing it.
    #[arg(long)]
    bootstrap_token_file: Option<PathBuf>,
}

pub(crate) async fn run(args: ServeArgs) -> Result<ExitCode> {
    init_logging();
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        trust_domain: args.trust_domain,
    };
    let config = load_config(args.config, overrides)?;
    let store = open_store(&config).await.context("cannot open the store")?;
    let store_desc = match &config.database_url {
        Some(url) => format!("PostgreSQL {}", steward_store::redact_url(url)),
        None => format!(
            "embedded SQLite {}",
            config.data_dir.join(steward_store::SQLITE_FILE).display()
        ),
    };
    if let Some(token) = bootstrap(&store)
        .await
        .context("cannot create the bootstrap credential")?
    {
        match &args.bootstrap_token_file {
            Some(path) => {
                crate::workload_cmd::write_owner_only(path, format!("{token}\n").as_bytes())?;
                eprintln!(
                    "First start: the bootstrap central-admin credential was written to {} (only its hash is stored).",
                    path.display()
                );
            }
            None => {
                eprintln!(
                    "First start: created the bootstrap central-admin credential. It is shown once; only its hash is stored:\n"
                );
                println!("    {token}\n");
                eprintln!("Use it with: export STEWARD_TOKEN=<the credential above>\n");
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let mut config = config;
    config.tokens.listening_on(addr);
    let state = AppState::new(store.clone(), &config)
        .await
        .context("the token service cannot start")?;
    let tls = match &config.tls {
        Some(t) => Some(steward_server::tls::server_config(t)?),
        None => None,
    };
    eprintln!(
        "Steward control plane listening on {}://{addr} ({store_desc}, trust domain {})",
        if tls.is_some() { "https" } else { "http" },
        config.trust_domain
    );
    tracing::info!(%addr, store = %store_desc, issuer = %config.tokens.issuer, "control plane started");
    match tls {
        Some(tls) => {
            steward_server::tls::serve_tls(listener, state, tls, shutdown_signal()).await?
        }
        None => steward_server::serve(listener, state, shutdown_signal()).await?,
    }
    store.close().await;
    eprintln!("Steward control plane stopped.");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
