//! `steward backup` and `steward restore`: an online snapshot of the embedded store whose
//! evidence chain is verified from the file itself before it is called a backup, and a
//! restore that refuses any snapshot whose chain does not verify.
//!
//! Both verify with the checkpoint keys the configured key-encryption key vouches for (as
//! the server does), so a snapshot rewritten with a key of its own does not pass.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use steward_audit::VerifyReport;
use steward_server::Overrides;
use steward_store::{SQLITE_FILE, Store};
use steward_token::Kek;

use crate::commands::load_config;

/// Where the store is, as `steward serve` resolves it.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Config file (TOML), as for `steward serve`. Default: $STEWARD_CONFIG, else
    /// ./steward.toml if present.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory of the embedded store [env: STEWARD_DATA_DIR] [default: ./steward-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// `steward backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The snapshot file to write (never overwritten).
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

/// `steward restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot `steward backup` wrote.
    file: PathBuf,
    /// Put it in place of an existing store (kept beside it as `steward.db.replaced-<time>`).
    /// Stop the control plane first.
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// The embedded store's data directory and the key-encryption key that vouches for its
/// checkpoint keys.
fn resolve(args: &StoreArgs) -> Result<(PathBuf, Kek)> {
    let config = load_config(
        args.config.clone(),
        Overrides {
            listen: None,
            data_dir: args.data_dir.clone(),
            database_url: None,
            trust_domain: None,
        },
    )?;
    if config.database_url.is_some() {
        bail!(
            "the configuration names PostgreSQL: back it up with `pg_dump --format=custom` and restore with `pg_restore` (docs/operations.md); `steward backup` snapshots the embedded store"
        );
    }
    let kek = steward_server::tokens::existing_kek(&config.tokens.kek)
        .context("the key-encryption key vouches for the evidence checkpoint keys")?;
    Ok((config.data_dir, kek))
}

/// Opens the snapshot and verifies its evidence chain with the keys `kek` vouches for.
async fn verify_snapshot(file: &Path, kek: &Kek) -> Result<VerifyReport> {
    let store = Store::connect(&format!("sqlite://{}?mode=rw", file.display()))
        .await
        .with_context(|| format!("cannot open the snapshot `{}`", file.display()))?;
    let report = store
        .verify_evidence_trusting(kek)
        .await
        .with_context(|| format!("cannot read the evidence of `{}`", file.display()))?;
    store.close().await;
    Ok(report)
}

fn describe(report: &VerifyReport) -> String {
    format!(
        "{} evidence records, {} checkpoints, head {}",
        report.events, report.checkpoints, report.head_hash
    )
}

fn refuse_unverified(file: &Path, report: &VerifyReport) -> Result<()> {
    if report.ok() {
        return Ok(());
    }
    let first = report
        .problems
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    bail!(
        "the evidence chain in `{}` does not verify ({} problems; first: {first})",
        file.display(),
        report.problems.len()
    )
}

pub(crate) async fn backup(args: BackupArgs) -> Result<ExitCode> {
    let (data_dir, kek) = resolve(&args.store)?;
    let db = data_dir.join(SQLITE_FILE);
    if !db.exists() {
        bail!(
            "there is no store at `{}`: point --data-dir (or the config) at the control plane's data",
            db.display()
        );
    }
    let store = Store::open_data_dir(&data_dir)
        .await
        .with_context(|| format!("cannot open the store in `{}`", data_dir.display()))?;
    store.snapshot_into(&args.file).await?;
    store.close().await;
    let report = verify_snapshot(&args.file, &kek).await?;
    if let Err(e) = refuse_unverified(&args.file, &report) {
        let _ = std::fs::remove_file(&args.file);
        return Err(e.context("the snapshot was removed: the store's own chain is damaged; run `steward audit verify`"));
    }
    println!("backup {}: {}", args.file.display(), describe(&report));
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn restore(args: RestoreArgs) -> Result<ExitCode> {
    let (data_dir, kek) = resolve(&args.store)?;
    if !args.file.is_file() {
        bail!("there is no snapshot at `{}`", args.file.display());
    }
    // Verified on a private copy: opening a snapshot may bring its schema up to date,
    // and the file the operator keeps must stay as it was taken.
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create `{}`", data_dir.display()))?;
    let incoming = data_dir.join(format!("{SQLITE_FILE}.restoring"));
    let _ = std::fs::remove_file(&incoming);
    std::fs::copy(&args.file, &incoming)
        .with_context(|| format!("cannot copy `{}`", args.file.display()))?;
    owner_only(&incoming)?;
    let report = match verify_snapshot(&incoming, &kek).await {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&incoming);
            return Err(e);
        }
    };
    if let Err(e) = refuse_unverified(&args.file, &report) {
        let _ = std::fs::remove_file(&incoming);
        return Err(e.context("nothing was restored"));
    }
    let db = data_dir.join(SQLITE_FILE);
    if db.exists() {
        if !args.replace {
            let _ = std::fs::remove_file(&incoming);
            bail!(
                "`{}` holds a store already; stop the control plane and add --replace to put the snapshot in its place (the old one is kept beside it)",
                db.display()
            );
        }
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        for suffix in ["", "-wal", "-shm"] {
            let old = data_dir.join(format!("{SQLITE_FILE}{suffix}"));
            if old.exists() {
                let kept = data_dir.join(format!("{SQLITE_FILE}{suffix}.replaced-{stamp}"));
                std::fs::rename(&old, &kept)
                    .with_context(|| format!("cannot move `{}` aside", old.display()))?;
            }
        }
    }
    std::fs::rename(&incoming, &db)
        .with_context(|| format!("cannot put the snapshot at `{}`", db.display()))?;
    println!(
        "restored {} into {}: {}",
        args.file.display(),
        data_dir.display(),
        describe(&report)
    );
    Ok(ExitCode::SUCCESS)
}

/// A snapshot holds sealed keys and credential hashes: the owner's alone.
fn owner_only(file: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make `{}` owner-only", file.display()))?;
    }
    Ok(())
}
