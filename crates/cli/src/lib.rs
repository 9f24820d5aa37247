//! The `steward` command line: `serve` runs the control plane; every other command is a
//! client of its admin API (so the CLI can do nothing the API does not allow).

mod audit_offline;
mod backup_cmd;
mod commands;
mod demo;
mod demo_agents;
mod demo_enforce;
mod demo_policy;
mod demo_tokens;
mod echo_cmd;
mod egress_cmd;
mod gateway_cmd;
mod jit_cmd;
mod keys_cmd;
pub mod output;
mod policy_cmd;
mod posture_cmd;
mod review_cmd;
mod revoke_cmd;
mod serve;
#[cfg(test)]
mod snapshot_tests;
mod workload_cmd;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use steward_server::config::{DEFAULT_LISTEN, env};

/// Steward: one control plane for non-human identities.
#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    about = "Steward: one control plane for non-human identities",
    long_about = "Steward: one control plane for non-human identities.\n\n`steward serve` runs the control plane; every other command talks to its admin API at --server (STEWARD_SERVER) with the admin credential in --token (STEWARD_TOKEN). `steward demo` shows it all on a throwaway control plane.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the control plane is and which admin credential to use.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Base URL of the control plane's admin API.
    #[arg(long, env = env::SERVER, default_value_t = format!("http://{DEFAULT_LISTEN}"))]
    pub server: String,
    /// Admin credential (`stw_…`); `steward serve` prints the bootstrap one on first start.
    #[arg(long, env = env::TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (admin API) on the embedded store or PostgreSQL.
    Serve(serve::ServeArgs),
    /// Take an online, consistent snapshot of the embedded store (while it serves) and
    /// verify its evidence chain from the file. PostgreSQL: use pg_dump.
    Backup(backup_cmd::BackupArgs),
    /// Put a snapshot from `steward backup` in place, refusing one whose evidence chain
    /// does not verify. Stop the control plane first.
    Restore(backup_cmd::RestoreArgs),
    /// Run enforcement points: reverse proxies, the nginx auth_request and RabbitMQ
    /// decision endpoints and Envoy ext_authz, deciding with the control plane's signed
    /// policy bundle.
    Gateway(gateway_cmd::GatewayArgs),
    /// Third-party API keys the gateway injects in egress mode (sealed; never shown).
    #[command(subcommand)]
    EgressSecret(egress_cmd::EgressSecretCommand),
    /// Start a throwaway control plane, apply the example governance repository and show
    /// what Steward does, step by step.
    Demo(demo::DemoArgs),
    /// A stand-in service for trying the gateway: answers every request with what it
    /// received (the identity and trace the gateway forwarded included).
    Echo(echo_cmd::EchoArgs),
    /// Check a governance repository offline: every problem with its file and line.
    Validate {
        /// The governance repository directory.
        dir: PathBuf,
        /// Trust domain every SPIFFE ID must belong to.
        #[arg(long, env = env::TRUST_DOMAIN, default_value = steward_server::config::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
    /// Show what applying a governance repository would change.
    Plan {
        dir: PathBuf,
        /// Dry-run: replay the access decisions of the last N days against the candidate
        /// policy and list those that would flip (0 skips it).
        #[arg(long, default_value_t = 7)]
        replay_days: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Apply a governance repository atomically (all or nothing) as a new configuration version.
    Apply {
        dir: PathBuf,
        /// Refuse unless the running configuration version is this one (as shown by `plan`).
        #[arg(long)]
        expected_version: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Posture: every identity's owner, credentials, last use and permissions (intended /
    /// effective / used), and the findings — orphaned, stale, over-privileged, static or
    /// overdue secrets, exceptions near expiry — mapped to the OWASP NHI Top 10.
    Posture(posture_cmd::PostureArgs),
    /// Compliance evidence: NIST CSF 2.0, OWASP NHI Top 10, CSA MAESTRO and NIST AI RMF
    /// controls mapped to the evidence Steward holds, gaps shown (text, JSON or HTML).
    Compliance(posture_cmd::ComplianceArgs),
    /// Access reviews: start a campaign, show an owner's queue, attest keep / reduce /
    /// revoke (revoke really revokes).
    #[command(subcommand)]
    Review(review_cmd::ReviewCommand),
    /// Revoke a token, an identity, a trusted issuer, a signing key or a plane, and verify
    /// every enforcement point applied it (--verify).
    #[command(subcommand)]
    Revoke(revoke_cmd::RevokeCommand),
    /// Registry counts, the configuration version in force, and every enforcement point
    /// with its bundle version, revocation epoch and last contact (stale or behind ones
    /// flagged).
    Status {
        #[command(flatten)]
        remote: Remote,
    },
    /// Applied configuration versions, newest first.
    Versions {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// List, show, register and move identities along their lifecycle.
    #[command(subcommand)]
    Identity(commands::IdentityCommand),
    /// Owners: list, or remove one (its identities become orphan findings).
    #[command(subcommand)]
    Owner(commands::OwnerCommand),
    /// Admin credentials: create (shown once), list, revoke.
    #[command(subcommand)]
    Credential(commands::CredentialCommand),
    /// The admin change log: who changed what, when, before and after.
    Changes {
        /// Show entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// The evidence log: verify the chain, tail, search, trace and export.
    #[command(subcommand)]
    Audit(commands::AuditCommand),
    /// Try an access request by hand: against the server's decision API (AuthZEN), or
    /// offline against a repository with --repo. Exits 0 on allow, 1 on deny.
    Authorize(policy_cmd::AuthorizeArgs),
    /// Policy: run the repository's policy tests; list, show, diff and roll back versions.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Just-in-time credentials: approve a requester for a workflow that lists approvers.
    #[command(subcommand)]
    Jit(jit_cmd::JitCommand),
    /// Token signing keys: list them, rotate them.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Tokens for workloads, made with their own keys.
    #[command(subcommand)]
    Token(workload_cmd::TokenCommand),
    /// Check `steward.toml` (and environment overrides) and print the resolved settings.
    #[command(subcommand)]
    Config(commands::ConfigCommand),
}

/// Runs the CLI and turns errors into a message and exit code 1 (2 for usage errors).
pub fn main() -> ExitCode {
    steward_server::tls::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if let Some(server) = server_error(&e) {
                eprintln!("error: {}", server.message);
                if !server.diagnostics.is_empty() {
                    eprint!("{}", output::diagnostics(&server.diagnostics));
                }
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The control plane's error answer behind an anyhow error, if that is what it is.
pub fn server_error(e: &anyhow::Error) -> Option<&steward_api::ErrorBody> {
    e.downcast_ref::<steward_api::Error>()
        .and_then(steward_api::Error::server)
}
