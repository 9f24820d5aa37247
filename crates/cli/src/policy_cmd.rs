//! `steward authorize`, `steward policy …` and `steward identity entitlements`: trying
//! requests by hand, running the repository's policy tests, and policy versions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use steward_api::{
    ActionObject, Entity, EvaluationRequest, EvaluationResponse, PolicyDiff, PolicyVersion,
    PolicyVersionBody, RollbackRequest,
};
use steward_governance::GovernanceError;
use steward_model::{Action, TrustDomain};
use steward_policy::analysis::run_tests;
use steward_policy::{AccessRequest, Decision, Engine, OwnedAddress, PolicyError, Target};

use crate::commands::{connect, emit, files};
use crate::{Remote, env, output};

/// What to try: a principal, a capability and action or a transport address, a context.
#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    /// The acting identity's SPIFFE ID.
    #[arg(long)]
    pub principal: String,
    /// A capability of the catalog (with --action).
    #[arg(long, conflicts_with_all = ["http", "grpc", "tool", "queue", "amqp"])]
    pub capability: Option<String>,
    /// invoke, read, write, publish, consume, delegate or admin. Optional with an address.
    #[arg(long)]
    pub action: Option<String>,
    /// An HTTP request, e.g. "GET /v1/orders/42".
    #[arg(long)]
    pub http: Option<String>,
    /// A gRPC method, e.g. payments.v1.Refunds/Create.
    #[arg(long)]
    pub grpc: Option<String>,
    /// An AI tool name.
    #[arg(long)]
    pub tool: Option<String>,
    /// A queue consumed from.
    #[arg(long)]
    pub queue: Option<String>,
    /// An AMQP publish: "vhost exchange routing-key".
    #[arg(long)]
    pub amqp: Option<String>,
    /// Context entries `key=value` (repeatable); values that parse as JSON are typed
    /// (numbers, true/false, ["lists"]), others are strings. `environment` is required.
    #[arg(short = 'c', long = "context", value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    /// Decide offline against a governance repository instead of asking the server.
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Trust domain of the repository (with --repo).
    #[arg(long, env = env::TRUST_DOMAIN, default_value = steward_server::config::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the repository's policy tests (`policy_tests:` in any YAML file) offline.
    /// Exits 1 when any test fails.
    Test {
        dir: PathBuf,
        #[arg(long, env = env::TRUST_DOMAIN, default_value = steward_server::config::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// Print every test, not only failures.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Published policy versions, newest first.
    Versions {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// The files, exceptions and request-context attributes of one policy version.
    Show {
        /// The policy version (clap's own `--version` flag owns the name `version`).
        #[arg(value_name = "VERSION")]
        number: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// What changed from one policy version to another.
    Diff {
        from: i64,
        to: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Publish an earlier policy version again (as a new version). Revert the repository
    /// too, or the next apply publishes its policy again.
    Rollback {
        to: i64,
        /// Refuse unless this is still the current policy version.
        #[arg(long)]
        expected_version: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
}

fn context(entries: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for e in entries {
        let Some((k, v)) = e.split_once('=') else {
            bail!("context entry `{e}` is not KEY=VALUE");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}

fn action(name: Option<&str>) -> Result<Option<Action>> {
    name.map(|n| {
        Action::parse(n).with_context(|| {
            format!(
                "unknown action `{n}`: use invoke, read, write, publish, consume, delegate or admin"
            )
        })
    })
    .transpose()
}

fn target(a: &AuthorizeArgs) -> Result<Target> {
    let split2 = |v: &str, sep: char, what: &str| -> Result<(String, String)> {
        v.split_once(sep)
            .map(|(x, y)| (x.trim().to_owned(), y.trim().to_owned()))
            .with_context(|| what.to_owned())
    };
    Ok(
        match (&a.capability, &a.http, &a.grpc, &a.tool, &a.queue, &a.amqp) {
            (Some(c), ..) => Target::Capability(c.clone()),
            (_, Some(h), ..) => {
                let (method, path) = split2(h, ' ', "--http takes \"METHOD /path\"")?;
                // Decided as every enforcement point decides it: on the normal form.
                let (path, _query) = steward_policy::HttpPath::from_target(&path)?;
                Target::Address(OwnedAddress::Http { method, path })
            }
            (_, _, Some(g), ..) => {
                let (service, method) = split2(
                    g.trim_start_matches('/'),
                    '/',
                    "--grpc takes package.Service/Method",
                )?;
                Target::Address(OwnedAddress::Grpc { service, method })
            }
            (_, _, _, Some(t), ..) => Target::Address(OwnedAddress::Tool { name: t.clone() }),
            (_, _, _, _, Some(q), _) => Target::Address(OwnedAddress::Queue { name: q.clone() }),
            (_, _, _, _, _, Some(m)) => {
                let parts: Vec<&str> = m.split_whitespace().collect();
                let [vhost, exchange, routing_key] = parts.as_slice() else {
                    bail!("--amqp takes \"vhost exchange routing-key\"");
                };
                Target::Address(OwnedAddress::Amqp {
                    vhost: (*vhost).into(),
                    exchange: (*exchange).into(),
                    routing_key: (*routing_key).into(),
                })
            }
            _ => bail!(
                "say what is accessed: --capability with --action, or --http, --grpc, --tool, --queue or --amqp"
            ),
        },
    )
}

/// The AuthZEN resource object for a target.
fn authzen_resource(t: &Target) -> Entity {
    let entity = |kind: &str, id: &str, properties: Value| Entity {
        kind: kind.into(),
        id: id.into(),
        properties: match properties {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    };
    match t {
        Target::Capability(c) => entity("capability", c, Value::Null),
        Target::Address(OwnedAddress::Http { method, path }) => {
            entity("http", path.as_str(), json!({"method": method}))
        }
        Target::Address(OwnedAddress::Grpc { service, method }) => {
            entity("grpc", &format!("{service}/{method}"), Value::Null)
        }
        Target::Address(OwnedAddress::Amqp {
            vhost,
            exchange,
            routing_key,
        }) => entity(
            "amqp",
            routing_key,
            json!({"vhost": vhost, "exchange": exchange}),
        ),
        Target::Address(OwnedAddress::Queue { name }) => entity("queue", name, Value::Null),
        Target::Address(OwnedAddress::Tool { name }) => entity("tool", name, Value::Null),
        Target::Address(OwnedAddress::Mcp { server, kind, name }) => {
            entity("mcp", name, json!({"server": server, "kind": kind}))
        }
    }
}

pub(crate) async fn authorize(a: AuthorizeArgs) -> Result<ExitCode> {
    let target = target(&a)?;
    let act = action(a.action.as_deref())?;
    let ctx = context(&a.context)?;
    if let Some(dir) = &a.repo {
        let engine = repo_engine(dir, &a.trust_domain)?;
        let d = engine.decide(&AccessRequest {
            principal: a.principal.clone(),
            target,
            action: act,
            context: ctx,
            at: time::OffsetDateTime::now_utc(),
        });
        if a.remote.json {
            println!("{}", serde_json::to_string_pretty(&d)?);
        } else {
            print!("{}", decision_text(&d));
        }
        return Ok(exit(d.allowed));
    }
    if matches!(target, Target::Capability(_)) && act.is_none() {
        bail!("--capability needs --action");
    }
    let req = EvaluationRequest {
        subject: Entity {
            kind: "workload".into(),
            id: a.principal.clone(),
            properties: Map::new(),
        },
        resource: authzen_resource(&target),
        action: ActionObject {
            name: act.map(|x| x.as_str()).unwrap_or("access").into(),
            properties: Map::new(),
        },
        context: Some(ctx),
    };
    let resp: EvaluationResponse = connect(&a.remote)?.evaluation(&req).await?;
    if a.remote.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        let c = &resp.context;
        let list = |k: &str| -> Vec<String> {
            c.get(k)
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let d = Decision {
            allowed: resp.decision,
            capability: c
                .get("capability")
                .and_then(Value::as_str)
                .map(str::to_owned),
            action: c
                .get("action")
                .and_then(Value::as_str)
                .and_then(Action::parse),
            plane: None,
            policies: list("policies"),
            reasons: list("reasons"),
            exceptions: list("exceptions"),
            errors: Vec::new(),
            policy_version: c.get("policy_version").and_then(Value::as_i64).unwrap_or(0),
        };
        print!("{}", decision_text(&d));
        if let Some(id) = c.get("id").and_then(Value::as_str) {
            println!("evidence: {id}");
        }
    }
    Ok(exit(resp.decision))
}

fn exit(allowed: bool) -> ExitCode {
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// "ALLOW read on orders.read (policy version 3)" and the reasons.
pub(crate) fn decision_text(d: &Decision) -> String {
    let mut out = format!(
        "{} {} on {} (policy version {})\n",
        if d.allowed { "ALLOW" } else { "DENY" },
        d.action.map(|a| a.as_str()).unwrap_or("?"),
        d.capability.as_deref().unwrap_or("?"),
        d.policy_version
    );
    for r in &d.reasons {
        out.push_str(&format!("  because {r}\n"));
    }
    for e in &d.errors {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

/// An engine for a repository directory, with problems printed as file:line.
pub(crate) fn repo_engine(dir: &std::path::Path, trust_domain: &str) -> Result<Engine> {
    let td = TrustDomain::new(trust_domain)?;
    let desired = match steward_governance::parse(&files(dir)?, &td) {
        Ok(d) => d,
        Err(GovernanceError::Invalid(diags)) => {
            bail!(
                "{}: {} problem(s):\n{}",
                dir.display(),
                diags.len(),
                output::diagnostics(&diags).trim_end()
            )
        }
        Err(e) => return Err(e.into()),
    };
    desired_engine(dir, &desired)
}

/// The engine for an already parsed repository, with policy problems as file:line.
fn desired_engine(dir: &std::path::Path, desired: &steward_governance::Desired) -> Result<Engine> {
    match Engine::from_desired(desired, time::OffsetDateTime::now_utc()) {
        Ok(e) => Ok(e),
        Err(PolicyError::Invalid(diags)) => {
            bail!(
                "{}: {} policy problem(s):\n{}",
                dir.display(),
                diags.len(),
                output::diagnostics(&diags).trim_end()
            )
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Test {
            dir,
            trust_domain,
            verbose,
        } => {
            let td = TrustDomain::new(&trust_domain)?;
            let desired = match steward_governance::parse(&files(&dir)?, &td) {
                Ok(d) => d,
                Err(GovernanceError::Invalid(diags)) => {
                    eprintln!("{}: {} problem(s):", dir.display(), diags.len());
                    eprint!("{}", output::diagnostics(&diags));
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            };
            let engine = desired_engine(&dir, &desired)?;
            let outcomes = run_tests(
                &engine,
                &desired.policy_tests,
                time::OffsetDateTime::now_utc(),
            );
            let failed = outcomes.iter().filter(|o| !o.passed).count();
            for o in &outcomes {
                if !o.passed {
                    println!("FAIL {}:{} {}", o.file, o.line, o.name);
                    println!("     {}", o.problem.as_deref().unwrap_or(""));
                    for r in &o.decision.reasons {
                        println!("     because {r}");
                    }
                } else if verbose {
                    println!("ok   {}:{} {}", o.file, o.line, o.name);
                }
            }
            println!(
                "policy tests: {} passed, {failed} failed",
                outcomes.len() - failed
            );
            Ok(if failed == 0 && !outcomes.is_empty() {
                ExitCode::SUCCESS
            } else {
                if outcomes.is_empty() {
                    eprintln!(
                        "no policy tests found: add `policy_tests:` to a YAML file of the repository"
                    );
                }
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Versions { limit, remote } => {
            let versions: Vec<PolicyVersion> =
                connect(&remote)?.policy_versions(Some(limit)).await?;
            emit(&remote, &versions, || {
                let rows: Vec<Vec<String>> = versions
                    .iter()
                    .map(|v| {
                        vec![
                            v.version.to_string(),
                            v.config_version.to_string(),
                            v.created_at.clone(),
                            v.created_by.clone(),
                            v.reason.clone(),
                            v.digest.chars().take(12).collect(),
                        ]
                    })
                    .collect();
                output::table(
                    &["POLICY", "CONFIG", "PUBLISHED", "BY", "REASON", "DIGEST"],
                    &rows,
                )
            })
        }
        PolicyCommand::Show {
            number: version,
            remote,
        } => {
            let body: PolicyVersionBody = connect(&remote)?.policy_version(version).await?;
            emit(&remote, &body, || {
                let mut out = format!(
                    "policy version {} ({}, {} by {})\n",
                    body.version.version,
                    body.version.reason,
                    body.version.created_at,
                    body.version.created_by
                );
                for p in body.bundle.policies.values() {
                    out.push_str(&format!(
                        "=== {} (plane {})\n{}\n",
                        p.path,
                        p.plane,
                        p.text.trim_end()
                    ));
                }
                for e in body.bundle.exceptions.values() {
                    out.push_str(&format!(
                        "=== {e}: lifts {} ({})\n",
                        e.lifts.join(", "),
                        e.ticket
                    ));
                }
                out
            })
        }
        PolicyCommand::Diff { from, to, remote } => {
            let answer: PolicyDiff = connect(&remote)?.policy_diff(from, to).await?;
            let diff = &answer.diff;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else if diff.is_empty() {
                println!("policy versions {from} and {to} are identical");
            } else {
                print!("{diff}");
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Rollback {
            to,
            expected_version,
            remote,
        } => {
            let v: PolicyVersion = connect(&remote)?
                .policy_rollback(&RollbackRequest {
                    to,
                    expected_version,
                })
                .await?;
            emit(&remote, &v, || {
                format!(
                    "Policy version {} is in force: a copy of version {to}.\n",
                    v.version
                )
            })
        }
    }
}
