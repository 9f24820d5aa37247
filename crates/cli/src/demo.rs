//! `steward demo`: a guided tour on a throwaway control plane. Everything goes through
//! the real admin API over HTTP, exactly as an operator's CLI would.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use steward_api::*;
use steward_api::{AdminChange, IdentityRecord, RegistryCounts};
use steward_model::{LifecycleState, PlaneId, Role, SpiffeId};
use steward_server::LocalServer;
use steward_server::config::{FileConfig, Overrides};

use crate::{output, server_error};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The governance repository to apply [default: the bundled examples/governance].
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Keep the control plane running at the end until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
}

const TRUST_DOMAIN: &str = "acme.example";

fn example_repo() -> Result<PathBuf> {
    let candidates = [
        PathBuf::from("examples/governance"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governance"),
    ];
    candidates.into_iter().find(|p| p.is_dir()).context(
        "cannot find examples/governance: run the demo from the repository root or pass --repo",
    )
}

fn step(n: u32, title: &str) {
    println!(
        "\n── {n}. {title} {}",
        "─".repeat(70usize.saturating_sub(title.len()))
    );
}

pub(crate) async fn run(args: DemoArgs) -> Result<ExitCode> {
    let repo = match args.repo {
        Some(r) => r,
        None => example_repo()?,
    };
    let cp = start().await?;
    let admin = &cp.admin;
    let (files, page) = governance(admin, &repo).await?;
    let au = delegation(admin, &page, &files).await?;
    change_log(admin, &au).await?;

    step(
        9,
        "Decide: guardrails, plane policies and the AuthZEN decision API",
    );
    crate::demo_policy::decisions(admin).await?;

    step(10, "A time-bound exception that expires during the demo");
    let files = crate::demo_policy::exception(admin, &files).await?;

    step(
        11,
        "Analysis: effective vs intended, a plan's dry-run, policy versions",
    );
    crate::demo_policy::analysis(admin, &files).await?;

    step(
        12,
        "Tokens: a workload's own key, one delegated hop, a federated CI token, a JIT credential",
    );
    let files = crate::demo_tokens::tokens(admin, &files).await?;
    crate::demo_tokens::delegation(admin, &files).await?;

    step(
        13,
        "Enforcement: one decision at the gateway, the broker and the consumer, traced end to end",
    );
    let running = crate::demo_enforce::enforcement(admin, &au).await?;

    step(
        14,
        "Revocation: revoke a workload mid-traffic; every point acknowledges; the next request is denied",
    );
    crate::demo_enforce::revocation(admin, running).await?;

    step(
        15,
        "Agents: an MCP tool call decided before the tool runs, a refused one, one trace",
    );
    crate::demo_agents::agents(admin, &au, &files).await?;

    evidence(admin, &au).await?;
    posture(&au, cp.server.addr).await?;

    if args.keep_running {
        // A throwaway server's credential: shown whole, so the console can be signed in
        // to and the CLI pointed at it.
        println!(
            "\nThe control plane keeps running on http://{addr} (Ctrl-C to stop; its data goes with it).\nSign in to http://{addr}/console/ with this demo admin credential, or point the CLI at it:\n  export STEWARD_SERVER=http://{addr}\n  export STEWARD_TOKEN={token}",
            addr = cp.server.addr,
            token = cp.server.admin_token
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    cp.stop().await?;
    println!("\nDemo finished: the control plane stopped and its temporary data was removed.");
    Ok(ExitCode::SUCCESS)
}

/// The demo's throwaway control plane: an in-process server on a temporary embedded store.
struct ControlPlane {
    server: LocalServer,
    admin: ApiClient,
    /// Removed (with the data) when the demo ends.
    _data: tempfile::TempDir,
}

impl ControlPlane {
    /// Stops serving, waits for the drain and closes the store; the data goes after.
    async fn stop(self) -> Result<()> {
        self.server.stop().await.context("the server task failed")?;
        Ok(())
    }
}

/// Step 1.
async fn start() -> Result<ControlPlane> {
    let data = tempfile::tempdir().context("cannot create a temporary data directory")?;
    step(1, "Start a control plane on a temporary embedded store");
    let mut file = FileConfig::default();
    file.evidence.checkpoint_interval_secs = Some(1);
    let config = file.resolve(Overrides {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data.path().to_path_buf()),
        trust_domain: Some(TRUST_DOMAIN.into()),
        database_url: None,
    })?;
    let server = LocalServer::start(config).await?;
    println!(
        "Control plane on http://{}, data in {}, trust domain {TRUST_DOMAIN}.",
        server.addr,
        data.path().display()
    );
    println!(
        "Bootstrap central-admin credential created (shown once, only its hash stored): {}…",
        server.admin_token.get(..16).unwrap_or("")
    );
    let admin = ApiClient::new(&server.base, Some(server.admin_token.clone()))?;
    Ok(ControlPlane {
        server,
        admin,
        _data: data,
    })
}

/// Steps 2–5: plan, apply, the registry, a refused repository. Returns the repository's
/// files and the registry's first page.
async fn governance(
    admin: &ApiClient,
    repo: &Path,
) -> Result<(Vec<steward_governance::SourceFile>, Page<IdentityRecord>)> {
    step(
        2,
        &format!("Plan the governance repository {}", repo.display()),
    );
    let files = steward_governance::read_dir(repo)?;
    println!("{} files read.", files.len());
    let plan: PlanResponse = admin
        .plan(&PlanRequest {
            files: files.clone(),
            replay_days: None,
        })
        .await?;
    print!("{}", output::plan(&plan.plan, plan.version));

    step(
        3,
        "Apply it: one transaction, one new configuration version",
    );
    let applied: ApplyResponse = admin
        .apply(&ApplyRequest {
            files: files.clone(),
            expected_version: Some(plan.version),
        })
        .await?;
    println!(
        "Configuration version {} is in force ({} changes).",
        applied.version,
        applied.plan.summary.total()
    );
    let again: PlanResponse = admin
        .plan(&PlanRequest {
            files: files.clone(),
            replay_days: None,
        })
        .await?;
    print!(
        "Planning again: {}",
        output::plan(&again.plan, again.version)
    );

    step(
        4,
        "The registry: every non-human identity with owner, plane, environment, kind",
    );
    let page: Page<IdentityRecord> = admin
        .identities(&IdentityQuery {
            limit: Some(1000),
            ..IdentityQuery::default()
        })
        .await?;
    print!("{}", output::identities(&page.items));

    step(
        5,
        "A broken repository is refused with file and line; nothing changes",
    );
    let mut broken = files.clone();
    broken.push(steward_governance::SourceFile {
        path: "identities/typo.yaml".into(),
        content: "identities:\n  - spiffe_id: spiffe://acme.example/payments/shadow-api\n    plane: payments\n    owner: nobody-knows\n    environment: prod\n    kind: service\n".into(),
    });
    match admin
        .apply(&ApplyRequest {
            files: broken,
            expected_version: None,
        })
        .await
        .map_err(anyhow::Error::from)
    {
        Ok(_) => bail!("the broken repository was accepted"),
        Err(e) => {
            let se = server_error(&e).context("expected a refusal from the server")?;
            println!("Refused: {}", se.message);
            print!("{}", output::diagnostics(&se.diagnostics));
        }
    }
    let counts: RegistryCounts = admin.status().await?;
    println!("Configuration version is still {}.", counts.config_version);
    Ok((files, page))
}

/// Steps 6–7: delegated administration and the lifecycle. Returns the auditor's client.
async fn delegation(
    admin: &ApiClient,
    page: &Page<IdentityRecord>,
    files: &[steward_governance::SourceFile],
) -> Result<ApiClient> {
    step(
        6,
        "Delegated administration: a plane admin acts only inside its plane",
    );
    let payments_admin: CreatedCredential = admin
        .create_credential(&CreateCredentialRequest::new(
            "payments on-call",
            Role::PlaneAdmin {
                plane: PlaneId::new("payments")?,
            },
        ))
        .await?;
    let auditor: CreatedCredential = admin
        .create_credential(&CreateCredentialRequest::new(
            "external auditor",
            Role::Auditor,
        ))
        .await?;
    let pa = admin.with_token(&payments_admin.token);
    let au = admin.with_token(&auditor.token);
    let owner = page
        .items
        .iter()
        .find(|r| r.identity.plane.as_str() == "payments")
        .map(|r| r.identity.owner.clone())
        .unwrap_or_default();
    let new_identity = |plane: &str, path: &str| -> Result<CreateIdentityRequest> {
        Ok(CreateIdentityRequest {
            spiffe_id: SpiffeId::parse(format!("spiffe://{TRUST_DOMAIN}/{path}"))?,
            plane: PlaneId::new(plane)?,
            owner: owner.clone(),
            environment: "test".into(),
            kind: steward_model::IdentityKind::Service,
            classification: steward_model::Classification::Internal,
            description: "registered by the payments on-call through the API".into(),
            labels: Default::default(),
            intended: Vec::new(),
            credentials: Default::default(),
        })
    };
    let created: IdentityRecord = pa
        .create_identity(&new_identity("payments", "payments/reconciler-test")?)
        .await?;
    println!(
        "payments plane admin registered {} → 201 Created",
        created.identity.spiffe_id
    );
    show_refusal(
        "payments plane admin registers an identity in plane partners",
        pa.create_identity(&new_identity("partners", "partners/sneaky")?)
            .await,
    )?;
    show_refusal(
        "auditor suspends an identity",
        au.set_lifecycle(
            created.identity.spiffe_id.as_str(),
            &LifecycleRequest {
                state: LifecycleState::Suspended,
                reason: "testing".into(),
            },
        )
        .await,
    )?;
    show_refusal(
        "payments plane admin applies the governance repository",
        pa.apply(&ApplyRequest {
            files: files.to_vec(),
            expected_version: None,
        })
        .await,
    )?;

    step(
        7,
        "Lifecycle: suspend, decommission (one-way), orphaned owners",
    );
    let r: IdentityRecord = pa
        .set_lifecycle(
            created.identity.spiffe_id.as_str(),
            &LifecycleRequest {
                state: LifecycleState::Suspended,
                reason: "rotating its keys".into(),
            },
        )
        .await?;
    println!("{} → {}", r.identity.spiffe_id, r.identity.state);
    let r: IdentityRecord = pa
        .set_lifecycle(
            created.identity.spiffe_id.as_str(),
            &LifecycleRequest {
                state: LifecycleState::Decommissioned,
                reason: "replaced by the v2 reconciler".into(),
            },
        )
        .await?;
    println!(
        "{} → {}, and revoked (its outstanding tokens stop at every enforcement point)",
        r.identity.spiffe_id, r.identity.state
    );
    show_refusal(
        "reactivating a decommissioned identity",
        pa.set_lifecycle(
            created.identity.spiffe_id.as_str(),
            &LifecycleRequest {
                state: LifecycleState::Active,
                reason: "oops".into(),
            },
        )
        .await,
    )?;
    if let Some(victim) = page
        .items
        .iter()
        .find(|r| r.identity.plane.as_str() == "partners")
        .map(|r| r.identity.owner.clone())
    {
        let removed: OwnerRemoved = admin.remove_owner(&victim).await?;
        println!(
            "Owner {} left the company; {} identities are now orphan findings:",
            removed.owner,
            removed.orphaned_identities.len()
        );
        for i in &removed.orphaned_identities {
            println!("  {i}");
        }
    }
    Ok(au)
}

/// Step 8.
async fn change_log(admin: &ApiClient, au: &ApiClient) -> Result<()> {
    step(
        8,
        "Status and the admin change log (who changed what, when)",
    );
    let counts: RegistryCounts = admin.status().await?;
    print!("{}", crate::commands::status_text(&counts));
    let changes: Vec<AdminChange> = au.changes(0, 1000).await?;
    println!();
    print!("{}", crate::commands::changes_text(&changes));
    Ok(())
}

/// Step 15: a foreign record ingested, the chain's tail, the auditor's verification.
async fn evidence(admin: &ApiClient, au: &ApiClient) -> Result<()> {
    step(
        16,
        "Evidence: every change and decision above is a hash-chained event; checkpoints are signed",
    );
    let ingestor: CreatedCredential = admin
        .create_credential(&CreateCredentialRequest::new(
            "edge gateway (foreign PDP)",
            Role::Ingestor,
        ))
        .await?;
    // A record as another system writes it: plain JSON in Steward's event schema.
    let foreign = serde_json::json!({
        "schema": steward_audit::SCHEMA, "id": "edge-0001", "time": steward_model::timestamp::now(),
        "kind": "access.decision", "principal": "spiffe://acme.example/ns/payments/sa/payments-api",
        "action": "invoke", "destination": { "capability": "payments.refund", "address": "http POST /v1/refunds/42" },
        "decision": { "outcome": "deny", "reasons": ["refund above the agent cap"] },
        "correlation_id": "4bf92f3577b34da6a3ce929d0e0e4736", "source": "edge"
    });
    let ingested: IngestAnswer = admin.with_token(&ingestor.token).ingest(&[foreign]).await?;
    println!(
        "A foreign gateway's decision record was ingested and chained at seq {:?}.",
        ingested.seqs
    );
    let tail: Vec<steward_api::StoredEvent> = au
        .audit_events(&EventQuery {
            limit: Some(6),
            newest_first: true,
            ..EventQuery::default()
        })
        .await?;
    for e in tail.iter().rev() {
        println!(
            "  #{:<3} {:<20} {:<22} {}…",
            e.seq,
            e.event.kind.as_str(),
            e.event.action.clone().unwrap_or_default(),
            e.hash.get(..16).unwrap_or("")
        );
    }
    // The demo signs a checkpoint every second (a real deployment: every minute).
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let report: VerifyAnswer = au.audit_verify().await?;
    println!(
        "Auditor verifies the chain: ok={} over {} events and {} signed checkpoint(s) (head {}…).",
        report.ok,
        report.report.events,
        report.report.checkpoints,
        report.report.head_hash.get(..16).unwrap_or("")
    );
    Ok(())
}

/// Step 16.
async fn posture(au: &ApiClient, addr: std::net::SocketAddr) -> Result<()> {
    step(
        17,
        "Posture: inventory and findings, mapped to the OWASP NHI Top 10",
    );
    let report = au.posture(&Default::default()).await?;
    println!("$ steward posture");
    print!("{}", crate::posture_cmd::text(&report, false));
    println!(
        "\nThe web console shows all of this: http://{addr}/console/ (sign in with an admin credential; run `steward demo --keep-running` to browse it)."
    );
    Ok(())
}

fn show_refusal<T>(what: &str, result: Result<T, steward_api::Error>) -> Result<()> {
    match result {
        Ok(_) => bail!("{what}: expected a refusal, but it was allowed"),
        Err(e) => {
            let se = e
                .server()
                .with_context(|| format!("{what}: expected a refusal from the server"))?;
            println!("{what} → {} {}: {}", se.status, se.error, se.message);
            Ok(())
        }
    }
}
