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
    /// Lost every admin credential? Start with this to create a fresh central-admin
    /// credential and write it to PATH (mode 0600, never overwritten). Whoever can start
    /// the control plane on its store may do this; it is recorded in the change log and
    /// the evidence chain as `host-recovery`.
    #[arg(long, value_name = "PATH")]
    new_admin_credential_file: Option<PathBuf>,
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
    // Listen before any credential is made: a start that fails (the port in use) must not
    // consume the bootstrap credential, which is shown only once.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    if let Some(token) = bootstrap(&store)
        .await
        .context("cannot create the bootstrap credential")?
    {
        // On an empty store the recovery file is simply where the first credential goes.
        match args
            .bootstrap_token_file
            .as_ref()
            .or(args.new_admin_credential_file.as_ref())
        {
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
    } else if let Some(path) = &args.new_admin_credential_file {
        recover(&store, path).await?;
    }
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
    if let Some(at) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(at)
            .await
            .with_context(|| format!("cannot listen on {at} (metrics_listen)"))?;
        eprintln!(
            "Prometheus metrics at http://{}/metrics",
            metrics.local_addr()?
        );
        tokio::spawn(steward_server::serve_metrics(metrics, state.clone()));
    }
    reload_certificates_on_sighup();
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

/// On SIGHUP, rereads the certificate and key of every TLS listener of this process (a
/// renewed certificate, no restart, no dropped connection), as nginx and Envoy do.
pub(crate) fn reload_certificates_on_sighup() {
    if let Err(e) = steward_listen::tls::reload_on_sighup() {
        tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates are reread only on restart");
    }
}

/// Writes a fresh central-admin credential to a new file; refuses an existing file so a
/// restart with the same flag does not silently mint a second credential.
async fn recover(store: &steward_store::Store, path: &std::path::Path) -> Result<()> {
    if path.exists() {
        anyhow::bail!(
            "{} exists: --new-admin-credential-file writes a new file (use the credential in it, or remove it to make another)",
            path.display()
        );
    }
    let token = steward_server::recover_admin(store)
        .await
        .context("cannot create the recovery credential")?;
    crate::workload_cmd::write_owner_only(path, format!("{token}\n").as_bytes())?;
    eprintln!(
        "Recovery: a new central-admin credential was written to {} and recorded in the evidence log as host-recovery.",
        path.display()
    );
    Ok(())
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
