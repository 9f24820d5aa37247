//! The client-side commands.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use steward_api::*;
use steward_api::{
    AdminChange, ConfigVersion, Credential, IdentityRecord, OwnerRecord, RegistryCounts,
};
use steward_governance::{GovernanceError, read_dir};
use steward_model::{
    Classification, IdentityKind, LifecycleState, PlaneId, Role, SpiffeId, TrustDomain,
};
use steward_server::config::{FileConfig, Overrides};

use crate::{Cli, Command, Remote, output};

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Client keys of a workload identity.
    #[command(subcommand)]
    Key(crate::workload_cmd::IdentityKeyCommand),
    /// List identities (filters combine).
    List {
        #[arg(long)]
        plane: Option<String>,
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// Only identities whose owner was removed.
        #[arg(long)]
        orphaned: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// What the policy allows an identity (every capability and action, computed by
    /// deciding each), what its owner intended, and the difference.
    Entitlements {
        spiffe_id: String,
        /// Compute for this environment instead of the identity's own.
        #[arg(long)]
        environment: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Issue a static client secret to a legacy-key identity (shown once; replaces the
    /// previous one), or revoke it with --revoke. Every use is flagged in the evidence log.
    Secret {
        spiffe_id: String,
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one identity.
    Show {
        spiffe_id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Register an identity through the API (outside the governance repository).
    Create {
        spiffe_id: String,
        #[arg(long)]
        plane: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        environment: String,
        /// service, agent, pipeline, partner or legacy-key.
        #[arg(long)]
        kind: String,
        /// public, internal, confidential or restricted.
        #[arg(long, default_value = "internal")]
        classification: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Suspend an identity (reversible).
    Suspend {
        spiffe_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Reactivate a suspended identity.
    Reactivate {
        spiffe_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Decommission an identity: one-way.
    Decommission {
        spiffe_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum OwnerCommand {
    /// List owners, including removed ones.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove an owner; its identities stay, flagged as orphaned.
    Remove {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Seconds in a `--expires-in` duration: a number with `s`, `m`, `h` or `d`.
fn parse_expires_in(text: &str) -> Result<u64, String> {
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a duration like 90d, 12h, 30m or 3600s"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{text}` is not a duration like 90d, 12h, 30m or 3600s"))
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Create an admin credential; its token is printed once (or written to --out).
    Create {
        /// A name saying who or what holds it.
        #[arg(long)]
        name: String,
        /// central-admin, plane-admin, auditor or ingestor (an enforcement point or foreign engine: fetches policy bundles and submits decision records).
        #[arg(long)]
        role: String,
        /// The plane a plane-admin administers (with the planes beneath it).
        #[arg(long)]
        plane: Option<String>,
        /// Write the token to this new file (mode 0600) instead of printing it, for
        /// scripts and for a service that reads its credential from a file.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Refuse it after this long (`90d`, `12h`, `30m`, `3600s`); without it the
        /// credential never expires and posture flags it.
        #[arg(long, value_name = "DURATION", value_parser = parse_expires_in)]
        expires_in: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List admin credentials (never their tokens).
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke an admin credential by id.
    Revoke {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Filters shared by `audit search` and `audit export`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvidenceQuery {
    /// The identity (SPIFFE ID) or admin the events are about.
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    plane: Option<String>,
    /// Event kind, e.g. access.decision, config.applied, identity.lifecycle.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// Destination capability, e.g. payments.refund.
    #[arg(long)]
    capability: Option<String>,
    /// allow or deny.
    #[arg(long)]
    decision: Option<String>,
    /// W3C trace id.
    #[arg(long)]
    correlation_id: Option<String>,
    /// RFC 3339 time, inclusive.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time, exclusive.
    #[arg(long)]
    until: Option<String>,
}

impl EvidenceQuery {
    /// The filters given, as a search of the evidence log.
    fn to_query(&self) -> EventQuery {
        EventQuery {
            principal: self.principal.clone(),
            plane: self.plane.clone(),
            kind: self.kind.clone(),
            action: self.action.clone(),
            capability: self.capability.clone(),
            decision: self.decision.clone(),
            correlation_id: self.correlation_id.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            ..EventQuery::default()
        }
    }

    /// Whether no filter was given.
    fn is_empty(&self) -> bool {
        [
            &self.principal,
            &self.plane,
            &self.kind,
            &self.action,
            &self.capability,
            &self.decision,
            &self.correlation_id,
            &self.since,
            &self.until,
        ]
        .iter()
        .all(|v| v.is_none())
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole hash chain and every signed checkpoint; names the first event
    /// altered, removed or inserted. Exits 1 when anything is wrong.
    ///
    /// With `--offline FILE`, verifies a chain export (`audit export --format chain`)
    /// without the server, trusting only the checkpoint keys given with `--key` and the
    /// checkpoints kept elsewhere (`--checkpoints`): a copy held apart detects a rewrite
    /// of the whole database, re-signed checkpoints included.
    Verify {
        /// A chain export to verify here instead of asking the server.
        #[arg(long, value_name = "FILE")]
        offline: Option<PathBuf>,
        /// The checkpoint public key you kept (base64, or a file holding it); repeat for
        /// several. Only with `--offline`.
        #[arg(long = "key", value_name = "PUB", requires = "offline")]
        keys: Vec<String>,
        /// Checkpoints kept elsewhere (`audit checkpoints --export` output); repeat for
        /// several. Only with `--offline`.
        #[arg(long = "checkpoints", value_name = "FILE", requires = "offline")]
        checkpoints: Vec<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// The checkpoint keys, signed checkpoints and signed retention prunes. With
    /// `--export`, the JSON document to keep somewhere the database's owner cannot
    /// rewrite (with the public key), for `audit verify --offline`.
    Checkpoints {
        #[arg(long)]
        export: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// The newest events.
    Tail {
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Events matching every given filter, oldest first.
    Search {
        #[command(flatten)]
        query: EvidenceQuery,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Follow one correlation id (W3C trace id) or one identity (SPIFFE ID) through every
    /// event it appears in, in time order.
    Trace {
        /// A trace id, or a SPIFFE ID (`spiffe://…`).
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Every matching event as JSON Lines: the stored event plus seq and hash (`jsonl`), or
    /// one OCSF 1.1 object per line (`ocsf`: API Activity, Authentication, Entity
    /// Management, Account Change), or the whole log as hashed (`chain`: the checkpoints
    /// document, then every record), which `audit verify --offline` checks.
    Export {
        #[command(flatten)]
        query: EvidenceQuery,
        /// jsonl, ocsf or chain.
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a `steward.toml` with the environment overrides and print the result.
    Check {
        /// The file; defaults to $STEWARD_CONFIG, else `steward.toml` if it exists.
        file: Option<PathBuf>,
    },
}

pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Backup(args) => crate::backup_cmd::backup(args).await,
        Command::Restore(args) => crate::backup_cmd::restore(args).await,
        Command::Gateway(args) => crate::gateway_cmd::run(args).await,
        Command::EgressSecret(cmd) => crate::egress_cmd::run(cmd).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Echo(args) => crate::echo_cmd::run(args).await,
        Command::Validate { dir, trust_domain } => validate(&dir, &trust_domain),
        Command::Plan {
            dir,
            replay_days,
            remote,
        } => {
            let client = connect(&remote)?;
            let resp = client
                .plan(&PlanRequest {
                    files: files(&dir)?,
                    replay_days: Some(replay_days),
                })
                .await?;
            emit(&remote, &resp, || {
                output::plan(&resp.plan, resp.version) + &output::policy_plan(&resp)
            })
        }
        Command::Authorize(args) => crate::policy_cmd::authorize(args).await,
        Command::Policy(cmd) => crate::policy_cmd::run(cmd).await,
        Command::Apply {
            dir,
            expected_version,
            remote,
        } => {
            let client = connect(&remote)?;
            let req = ApplyRequest {
                files: files(&dir)?,
                expected_version,
            };
            let resp = client.apply(&req).await?;
            emit(&remote, &resp, || {
                let mut text = output::plan(
                    &resp.plan,
                    if resp.changed {
                        resp.version - 1
                    } else {
                        resp.version
                    },
                );
                if resp.changed {
                    text.push_str(&format!(
                        "Applied: configuration version {} is now in force.\n",
                        resp.version
                    ));
                }
                text
            })
        }
        Command::Status { remote } => {
            let client = connect(&remote)?;
            let counts = client.status().await?;
            let enforcement = client.enforcement_points().await?;
            let view = StatusView {
                counts,
                enforcement,
            };
            emit(&remote, &view, || {
                format!(
                    "{}
{}",
                    status_text(&view.counts),
                    output::points_text(&view.enforcement)
                )
            })
        }
        Command::Revoke(cmd) => crate::revoke_cmd::run(cmd).await,
        Command::Posture(args) => crate::posture_cmd::run(args).await,
        Command::Review(cmd) => crate::review_cmd::run(cmd).await,
        Command::Compliance(args) => crate::posture_cmd::compliance(args).await,
        Command::Versions { limit, remote } => {
            let versions: Vec<ConfigVersion> =
                connect(&remote)?.config_versions(Some(limit)).await?;
            emit(&remote, &versions, || {
                let rows = versions
                    .iter()
                    .map(|v| {
                        vec![
                            v.version.to_string(),
                            v.applied_at.clone(),
                            v.applied_by.clone(),
                            v.summary.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(&["VERSION", "APPLIED AT", "BY", "CHANGES"], &rows)
            })
        }
        Command::Identity(cmd) => identity(cmd).await,
        Command::Owner(cmd) => owner(cmd).await,
        Command::Credential(cmd) => credential(cmd).await,
        Command::Changes {
            after,
            limit,
            remote,
        } => {
            let changes: Vec<AdminChange> = connect(&remote)?.changes(after, limit).await?;
            emit(&remote, &changes, || changes_text(&changes))
        }
        Command::Config(ConfigCommand::Check { file }) => config_check(file),
        Command::Keys(cmd) => crate::keys_cmd::run(cmd).await,
        Command::Token(cmd) => crate::workload_cmd::token(cmd).await,
        Command::Jit(cmd) => crate::jit_cmd::run(cmd).await,
        Command::Audit(cmd) => audit(cmd).await,
    }
}

/// `steward status --json`: the registry counts (as before) plus the enforcement points.
#[derive(Serialize)]
struct StatusView {
    #[serde(flatten)]
    counts: RegistryCounts,
    enforcement: PointsResponse,
}

pub(crate) fn connect(remote: &Remote) -> Result<ApiClient> {
    if remote.token.is_none() {
        bail!(
            "no admin credential: pass --token or set STEWARD_TOKEN (the bootstrap credential is printed by the first `steward serve`)"
        );
    }
    Ok(ApiClient::new(&remote.server, remote.token.clone())?)
}

pub(crate) fn files(dir: &Path) -> Result<Vec<steward_governance::SourceFile>> {
    let files = read_dir(dir).map_err(|e| match e {
        GovernanceError::Io { .. } => {
            anyhow::anyhow!("{e}: pass the governance repository directory")
        }
        other => anyhow::anyhow!(other),
    })?;
    if files.is_empty() {
        bail!(
            "`{}` contains no .yaml, .yml or .cedar files: is it the governance repository?",
            dir.display()
        );
    }
    Ok(files)
}

pub(crate) fn emit<T: Serialize>(
    remote: &Remote,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<ExitCode> {
    if remote.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(dir: &Path, trust_domain: &str) -> Result<ExitCode> {
    let td = TrustDomain::new(trust_domain)?;
    let files = files(dir)?;
    match steward_governance::load(&files, &td, time::OffsetDateTime::now_utc()) {
        Ok(d) => {
            println!(
                "{}: valid — {} planes, {} owners, {} identities, {} capabilities, {} issuers, {} policy files.",
                dir.display(),
                d.planes.len() + 1,
                d.owners.len(),
                d.identities.len(),
                d.capabilities.len(),
                d.issuers.len(),
                d.policies.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(GovernanceError::Invalid(diags)) => {
            eprintln!("{}: {} problem(s):", dir.display(), diags.len());
            eprint!("{}", output::diagnostics(&diags));
            Ok(ExitCode::FAILURE)
        }
        Err(GovernanceError::Policy(steward_policy::PolicyError::Invalid(diags))) => {
            eprintln!("{}: {} policy problem(s):", dir.display(), diags.len());
            eprint!("{}", output::diagnostics(&diags));
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn status_text(c: &RegistryCounts) -> String {
    let ids = c
        .identities
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "Configuration version: {}\nPlanes: {}\nOwners: {}\nIdentities: {}\nOrphaned identities: {}\nCapabilities: {}\nTrusted issuers: {}\nPolicy files: {}\n",
        c.config_version,
        c.planes,
        c.owners,
        if ids.is_empty() { "none".into() } else { ids },
        c.orphaned_identities,
        c.capabilities,
        c.issuers,
        c.policies
    )
}

pub(crate) fn changes_text(changes: &[AdminChange]) -> String {
    let rows = changes
        .iter()
        .map(|c| {
            vec![
                c.seq.to_string(),
                c.at.clone(),
                c.actor.clone(),
                c.action.clone(),
                c.target.clone(),
            ]
        })
        .collect::<Vec<_>>();
    output::table(&["SEQ", "AT", "ACTOR", "ACTION", "TARGET"], &rows)
}

async fn identity(cmd: IdentityCommand) -> Result<ExitCode> {
    match cmd {
        IdentityCommand::Key(cmd) => crate::workload_cmd::identity_key(cmd).await,
        IdentityCommand::List {
            plane,
            environment,
            kind,
            state,
            owner,
            orphaned,
            limit,
            remote,
        } => {
            let page: Page<IdentityRecord> = connect(&remote)?
                .identities(&IdentityQuery {
                    plane,
                    environment,
                    kind,
                    state,
                    owner,
                    orphaned: orphaned.then_some(true),
                    after: None,
                    limit: Some(limit),
                })
                .await?;
            emit(&remote, &page, || {
                let mut t = output::identities(&page.items);
                if let Some(next) = &page.next {
                    t.push_str(&format!("(more: the next page starts after {next})\n"));
                }
                t
            })
        }
        IdentityCommand::Entitlements {
            spiffe_id,
            environment,
            remote,
        } => {
            let r: steward_model::EntitlementReport = connect(&remote)?
                .entitlements(&spiffe_id, environment.as_deref())
                .await?;
            emit(&remote, &r, || output::entitlements(&r))
        }
        IdentityCommand::Secret {
            spiffe_id,
            revoke,
            remote,
        } => {
            let client = connect(&remote)?;
            if revoke {
                let answer = client.revoke_client_secret(&spiffe_id).await?;
                emit(&remote, &answer, || {
                    if answer.revoked {
                        format!("Client secret of {spiffe_id} revoked.\n")
                    } else {
                        format!("{spiffe_id} had no client secret.\n")
                    }
                })
            } else {
                let answer = client.create_client_secret(&spiffe_id).await?;
                emit(&remote, &answer, || {
                    format!(
                        "Client secret for {spiffe_id} (shown once; only its hash is stored):\n\n    {}\n\nIt authenticates with client_secret_basic or client_secret_post; every use is flagged in the evidence log.\n",
                        answer.client_secret
                    )
                })
            }
        }
        IdentityCommand::Show { spiffe_id, remote } => {
            let r: IdentityRecord = connect(&remote)?.identity(&spiffe_id).await?;
            emit(&remote, &r, || {
                serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"
            })
        }
        IdentityCommand::Create {
            spiffe_id,
            plane,
            owner,
            environment,
            kind,
            classification,
            description,
            remote,
        } => {
            let req = CreateIdentityRequest {
                spiffe_id: SpiffeId::parse(spiffe_id)?,
                plane: PlaneId::new(plane)?,
                owner,
                environment,
                kind: IdentityKind::parse(&kind).with_context(|| format!("kind `{kind}` is not one of service, agent, pipeline, partner, legacy-key"))?,
                classification: Classification::parse(&classification)
                    .with_context(|| format!("classification `{classification}` is not one of public, internal, confidential, restricted"))?,
                description,
                labels: Default::default(),
                intended: Vec::new(),
                credentials: Default::default(),
            };
            let r: IdentityRecord = connect(&remote)?.create_identity(&req).await?;
            emit(&remote, &r, || {
                format!(
                    "Registered {} in plane {} ({}).\n",
                    r.identity.spiffe_id, r.identity.plane, r.identity.environment
                )
            })
        }
        IdentityCommand::Suspend {
            spiffe_id,
            reason,
            remote,
        } => lifecycle(&remote, &spiffe_id, LifecycleState::Suspended, reason).await,
        IdentityCommand::Reactivate {
            spiffe_id,
            reason,
            remote,
        } => lifecycle(&remote, &spiffe_id, LifecycleState::Active, reason).await,
        IdentityCommand::Decommission {
            spiffe_id,
            reason,
            remote,
        } => lifecycle(&remote, &spiffe_id, LifecycleState::Decommissioned, reason).await,
    }
}

async fn lifecycle(
    remote: &Remote,
    id: &str,
    state: LifecycleState,
    reason: String,
) -> Result<ExitCode> {
    let r: IdentityRecord = connect(remote)?
        .set_lifecycle(id, &LifecycleRequest { state, reason })
        .await?;
    emit(remote, &r, || {
        format!("{} is now {}.\n", r.identity.spiffe_id, r.identity.state)
    })
}

async fn owner(cmd: OwnerCommand) -> Result<ExitCode> {
    match cmd {
        OwnerCommand::List { remote } => {
            let owners: Vec<OwnerRecord> = connect(&remote)?.owners().await?;
            emit(&remote, &owners, || {
                let rows = owners
                    .iter()
                    .map(|o| {
                        vec![
                            o.owner.id.clone(),
                            o.owner.name.clone(),
                            o.owner.email.clone(),
                            o.removed_at
                                .clone()
                                .map(|t| format!("removed {t}"))
                                .unwrap_or_default(),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(&["ID", "NAME", "EMAIL", "STATUS"], &rows)
            })
        }
        OwnerCommand::Remove { id, remote } => {
            let r: OwnerRemoved = connect(&remote)?.remove_owner(&id).await?;
            emit(&remote, &r, || {
                let mut t = format!(
                    "Owner {} removed; {} identities are now orphaned:\n",
                    r.owner,
                    r.orphaned_identities.len()
                );
                for i in &r.orphaned_identities {
                    t.push_str(&format!("  {i}\n"));
                }
                t
            })
        }
    }
}

pub(crate) fn parse_role(role: &str, plane: Option<String>) -> Result<Role> {
    Ok(match (role, plane) {
        ("central-admin", None) => Role::CentralAdmin,
        ("auditor", None) => Role::Auditor,
        ("ingestor", None) => Role::Ingestor,
        ("plane-admin", Some(p)) => Role::PlaneAdmin {
            plane: PlaneId::new(p)?,
        },
        ("plane-admin", None) => bail!("a plane-admin credential needs --plane"),
        ("central-admin" | "auditor" | "ingestor", Some(_)) => {
            bail!("--plane only goes with --role plane-admin")
        }
        (other, _) => {
            bail!("role `{other}` is not one of central-admin, plane-admin, auditor, ingestor")
        }
    })
}

async fn credential(cmd: CredentialCommand) -> Result<ExitCode> {
    match cmd {
        CredentialCommand::Create {
            name,
            role,
            plane,
            out,
            expires_in,
            remote,
        } => {
            let mut req = CreateCredentialRequest::new(name, parse_role(&role, plane)?);
            req.expires_in_secs = expires_in;
            if let Some(path) = &out
                && path.exists()
            {
                bail!(
                    "{} exists: --out writes a new file (remove it first, or choose another path)",
                    path.display()
                );
            }
            let c: CreatedCredential = connect(&remote)?.create_credential(&req).await?;
            if let Some(path) = &out {
                crate::workload_cmd::write_owner_only(path, format!("{}\n", c.token).as_bytes())?;
                eprintln!(
                    "Created credential {} ({}); its token was written to {} (mode 0600).",
                    c.credential.id,
                    c.credential.role,
                    path.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            emit(&remote, &c, || {
                format!(
                    "Created credential {} ({}). Its token is shown once:\n\n    {}\n\n",
                    c.credential.id, c.credential.role, c.token
                )
            })
        }
        CredentialCommand::List { remote } => {
            let creds: Vec<Credential> = connect(&remote)?.credentials().await?;
            emit(&remote, &creds, || {
                let rows = creds
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.name.clone(),
                            c.role.to_string(),
                            c.created_at.clone(),
                            c.revoked_at
                                .clone()
                                .map(|t| format!("revoked {t}"))
                                .unwrap_or_else(|| "active".into()),
                        ]
                    })
                    .collect::<Vec<_>>();
                output::table(&["ID", "NAME", "ROLE", "CREATED", "STATUS"], &rows)
            })
        }
        CredentialCommand::Revoke { id, remote } => {
            connect(&remote)?.revoke_credential(&id).await?;
            emit(&remote, &serde_json::json!({ "revoked": id }), || {
                format!("Credential {id} revoked.\n")
            })
        }
    }
}

/// Resolves the server configuration the way `steward serve` does.
pub(crate) fn load_config(
    file: Option<PathBuf>,
    overrides: Overrides,
) -> Result<steward_server::ServerConfig> {
    let file = file
        .or_else(|| std::env::var_os(steward_server::config::env::CONFIG).map(PathBuf::from))
        .or_else(|| {
            let default = PathBuf::from("steward.toml");
            default.exists().then_some(default)
        });
    let parsed = match &file {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let merged = Overrides {
        listen: overrides
            .listen
            .or_else(|| env(steward_server::config::env::LISTEN)),
        data_dir: overrides
            .data_dir
            .or_else(|| env(steward_server::config::env::DATA_DIR).map(PathBuf::from)),
        database_url: overrides
            .database_url
            .or_else(|| env(steward_server::config::env::DATABASE_URL)),
        trust_domain: overrides
            .trust_domain
            .or_else(|| env(steward_server::config::env::TRUST_DOMAIN)),
    };
    Ok(parsed.resolve(merged)?)
}

fn config_check(file: Option<PathBuf>) -> Result<ExitCode> {
    let config = load_config(file, Overrides::default())?;
    println!("Configuration is valid:");
    println!("  listen          {}", config.listen);
    match &config.database_url {
        Some(url) => println!("  store           {}", steward_store::redact_url(url)),
        None => println!(
            "  store           embedded SQLite in {}",
            config.data_dir.display()
        ),
    }
    println!("  trust_domain    {}", config.trust_domain);
    println!("  max_body_bytes  {}", config.max_body_bytes);
    println!("  max_apply_bytes {}", config.max_apply_bytes);
    let t = &config.tokens;
    println!(
        "  token issuer    {}{}",
        t.issuer,
        if t.issuer_configured {
            ""
        } else {
            " (follows the listen address; set tokens.issuer behind a proxy)"
        }
    );
    println!(
        "  key-encryption  {}",
        match &t.kek {
            steward_server::config::KekSource::File(p) => format!("file {}", p.display()),
            steward_server::config::KekSource::Env(v) => format!("environment variable {v}"),
            steward_server::config::KekSource::DataDir(p) =>
                format!("{} (generated on first start)", p.display()),
        }
    );
    println!(
        "  token lifetime  default {} s, max {} s; key overlap {} s; skew {} s",
        t.default_ttl_secs, t.max_ttl_secs, t.key_overlap_secs, t.clock_skew_secs
    );
    println!(
        "  posture         unused permissions judged {} days after registration",
        config.posture_observation_days
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn events_text(events: &[steward_api::StoredEvent]) -> String {
    let rows = events
        .iter()
        .map(|e| {
            let ev = &e.event;
            let decision = ev
                .decision
                .outcome
                .map(|o| format!("{o:?}").to_lowercase())
                .unwrap_or_default();
            let what = ev.action.clone().unwrap_or_default();
            let dest = ev
                .destination
                .capability
                .clone()
                .or_else(|| {
                    ev.details
                        .get("target")
                        .and_then(|t| t.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            vec![
                e.seq.to_string(),
                ev.time.clone(),
                ev.kind.to_string(),
                ev.principal.clone().unwrap_or_default(),
                what,
                dest,
                decision,
            ]
        })
        .collect::<Vec<_>>();
    output::table(
        &[
            "SEQ",
            "TIME",
            "KIND",
            "PRINCIPAL",
            "ACTION",
            "DESTINATION",
            "DECISION",
        ],
        &rows,
    )
}

/// Pages through the evidence log with `query`'s filters, calling `each` per page.
async fn page_events(
    client: &ApiClient,
    query: EventQuery,
    mut each: impl FnMut(&[steward_api::StoredEvent]),
) -> Result<usize> {
    let mut query = EventQuery {
        after: Some(0),
        limit: Some(1000),
        ..query
    };
    let mut total = 0;
    loop {
        let page = client.audit_events(&query).await?;
        let Some(last) = page.last() else { break };
        query.after = Some(last.seq);
        total += page.len();
        each(&page);
    }
    Ok(total)
}

async fn audit(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            offline: Some(file),
            keys,
            checkpoints,
            remote,
        } => {
            let keys = keys
                .iter()
                .map(|k| crate::audit_offline::read_key(k))
                .collect::<Result<Vec<_>>>()?;
            let report = crate::audit_offline::verify_offline(&file, &keys, &checkpoints)?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.ok() {
                println!(
                    "Evidence export intact: {} events, {} signed checkpoints, head {} (checked against {} pinned key(s)).",
                    report.events,
                    report.checkpoints,
                    report.head_hash,
                    keys.len()
                );
            } else {
                println!(
                    "EVIDENCE EXPORT TAMPERED ({} events, {} checkpoints checked):",
                    report.events, report.checkpoints
                );
                for p in &report.problems {
                    println!("  {p}");
                }
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Checkpoints { export, remote } => {
            let doc: steward_audit::CheckpointsExport =
                connect(&remote)?.audit_checkpoints().await?;
            if export || remote.json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = String::from("Checkpoint keys (keep the public key somewhere else):\n");
            for k in &doc.keys {
                out.push_str(&format!(
                    "  {}  created {}  public key {}\n",
                    k.key_id, k.created_at, k.public_key
                ));
            }
            match doc.checkpoints.last() {
                Some(cp) => out.push_str(&format!(
                    "{} signed checkpoints; the latest covers {} events (head {}) at {}.\n",
                    doc.checkpoints.len(),
                    cp.tree_size,
                    cp.head_hash,
                    cp.time
                )),
                None => out.push_str("No signed checkpoint yet.\n"),
            }
            for p in &doc.prunes {
                let signed = if p.signature.is_empty() {
                    "NOT SIGNED"
                } else {
                    "signed"
                };
                out.push_str(&format!(
                    "Retention pruned events 1..{} (older than {}) at {}, {signed}.\n",
                    p.pruned_through, p.cutoff, p.time
                ));
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { remote, .. } => {
            let answer: VerifyAnswer = connect(&remote)?.audit_verify().await?;
            let ok = answer.ok;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                let events = answer.report.events;
                let cps = answer.report.checkpoints;
                if ok {
                    println!(
                        "Evidence log intact: {events} events, {cps} signed checkpoints, head {}.",
                        answer.report.head_hash
                    );
                } else {
                    println!("EVIDENCE LOG TAMPERED ({events} events, {cps} checkpoints checked):");
                    for e in &answer.explanations {
                        println!("  {e}");
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Tail { lines, remote } => {
            let mut events: Vec<steward_api::StoredEvent> = connect(&remote)?
                .audit_events(&EventQuery {
                    limit: Some(lines),
                    newest_first: true,
                    ..EventQuery::default()
                })
                .await?;
            events.reverse();
            emit(&remote, &events, || events_text(&events))
        }
        AuditCommand::Search {
            query,
            limit,
            remote,
        } => {
            let client = connect(&remote)?;
            let events: Vec<steward_api::StoredEvent> = client
                .audit_events(&EventQuery {
                    limit: Some(limit),
                    ..query.to_query()
                })
                .await?;
            emit(&remote, &events, || events_text(&events))
        }
        AuditCommand::Trace { id, remote } => {
            let client = connect(&remote)?;
            let query = if id.starts_with("spiffe://") {
                EventQuery {
                    principal: Some(id.clone()),
                    ..EventQuery::default()
                }
            } else {
                EventQuery {
                    correlation_id: Some(id.clone()),
                    ..EventQuery::default()
                }
            };
            let mut events = Vec::new();
            page_events(&client, query, |p| events.extend_from_slice(p)).await?;
            events.sort_by(|a, b| {
                (a.event.time.as_str(), a.seq).cmp(&(b.event.time.as_str(), b.seq))
            });
            emit(&remote, &events, || trace_text(&id, &events))
        }
        AuditCommand::Export {
            query,
            format,
            remote,
        } => {
            use std::io::Write;
            let ocsf = match format.as_str() {
                "jsonl" => false,
                "ocsf" => true,
                "chain" => {
                    if !query.is_empty() {
                        bail!(
                            "--format chain exports the whole log (a part of it cannot be verified); drop the filters"
                        );
                    }
                    let client = connect(&remote)?;
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    let n = crate::audit_offline::export_chain(&client, &mut out).await?;
                    out.flush()?;
                    eprintln!("exported {n} records and the checkpoints vouching for them");
                    return Ok(ExitCode::SUCCESS);
                }
                other => bail!("--format `{other}` is not one of jsonl, ocsf, chain"),
            };
            let client = connect(&remote)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut failed = None;
            let n = page_events(&client, query.to_query(), |page| {
                for e in page {
                    let written = if ocsf {
                        serde_json::to_writer(
                            &mut out,
                            &steward_audit::to_ocsf(e.seq, &e.hash, &e.event),
                        )
                    } else {
                        serde_json::to_writer(&mut out, e)
                    };
                    if let Err(err) = written
                        .map_err(std::io::Error::from)
                        .and_then(|()| out.write_all(b"\n"))
                    {
                        failed.get_or_insert(err);
                    }
                }
            })
            .await?;
            out.flush()?;
            if let Some(err) = failed {
                return Err(err.into());
            }
            eprintln!("exported {n} events");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `steward audit trace` as text: one line per event, in time order.
pub(crate) fn trace_text(id: &str, events: &[steward_api::StoredEvent]) -> String {
    let mut t = format!("Trace of {id}: {} events\n", events.len());
    for e in events {
        let ev = &e.event;
        let at = ev
            .enforcement_point
            .clone()
            .unwrap_or_else(|| ev.source.clone());
        let decision = ev
            .decision
            .outcome
            .map(|o| format!(" → {o:?}").to_lowercase())
            .unwrap_or_default();
        let dest = ev
            .destination
            .address
            .clone()
            .or(ev.destination.capability.clone())
            .unwrap_or_default();
        t.push_str(&format!(
            "  {}  #{:<6} {:<22} at {:<20} {} {} {}{}\n",
            ev.time,
            e.seq,
            ev.kind.as_str(),
            at,
            ev.principal.clone().unwrap_or_default(),
            ev.action.clone().unwrap_or_default(),
            dest,
            decision
        ));
    }
    t
}
