//! `steward revoke`: revoke a token, an identity, a trusted issuer, a signing key or a
//! plane centrally, and (`--verify`) wait until every live enforcement point has applied
//! it — naming the ones that lag, and exiting non-zero if any does.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use steward_api::{ApiClient, PointStatus, RevokeRequest, RevokeResponse, Verification};
use steward_model::{Revocation, RevocationKind};

use crate::commands::{connect, emit};
use crate::{Remote, output};

/// Longest wait the server grants one verification request; longer timeouts ask again.
const SERVER_MAX_WAIT_SECS: u64 = 300;

#[derive(Debug, Subcommand)]
pub enum RevokeCommand {
    /// One token, by its `jti` (from the evidence log or the token itself).
    Token {
        jti: String,
        #[command(flatten)]
        opts: RevokeOpts,
    },
    /// Every token issued so far to an identity (or acting through it); the identity is
    /// suspended (or decommissioned with --decommission, one-way).
    Identity {
        spiffe_id: String,
        #[arg(long)]
        decommission: bool,
        #[command(flatten)]
        opts: RevokeOpts,
    },
    /// A trusted external issuer: its federated tokens stop working and it is refused
    /// for federation from now on.
    Issuer {
        id: String,
        #[command(flatten)]
        opts: RevokeOpts,
    },
    /// A retired signing key (`steward keys list`): tokens it signed stop working and it
    /// leaves the JWKS. Rotate first to revoke the key in use.
    Key {
        kid: String,
        #[command(flatten)]
        opts: RevokeOpts,
    },
    /// Every token issued so far to identities of a plane and the planes below it; its
    /// active identities are suspended.
    Plane {
        id: String,
        #[command(flatten)]
        opts: RevokeOpts,
    },
    /// The revocations so far, in epoch order.
    List {
        /// Only those after this epoch.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Wait until every live enforcement point has applied revocation EPOCH; exits 1 when
    /// some still lag at the timeout.
    Verify {
        epoch: i64,
        /// Seconds to wait.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        #[command(flatten)]
        remote: Remote,
    },
}

/// What every revocation takes.
#[derive(Debug, Args)]
pub struct RevokeOpts {
    /// Why: recorded in the evidence log.
    #[arg(long)]
    reason: String,
    /// Wait until every live enforcement point has applied it; exit 1 if any lags.
    #[arg(long)]
    verify: bool,
    /// Seconds --verify waits.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) async fn run(cmd: RevokeCommand) -> Result<ExitCode> {
    let (kind, target, decommission, opts) = match cmd {
        RevokeCommand::Token { jti, opts } => (RevocationKind::Token, jti, false, opts),
        RevokeCommand::Identity {
            spiffe_id,
            decommission,
            opts,
        } => (RevocationKind::Identity, spiffe_id, decommission, opts),
        RevokeCommand::Issuer { id, opts } => (RevocationKind::Issuer, id, false, opts),
        RevokeCommand::Key { kid, opts } => (RevocationKind::Key, kid, false, opts),
        RevokeCommand::Plane { id, opts } => (RevocationKind::Plane, id, false, opts),
        RevokeCommand::List {
            after,
            limit,
            remote,
        } => {
            let list: Vec<Revocation> = connect(&remote)?.revocations(after, limit).await?;
            return emit(&remote, &list, || list_text(&list));
        }
        RevokeCommand::Verify {
            epoch,
            timeout,
            remote,
        } => {
            let client = connect(&remote)?;
            let v = verify(&client, epoch, timeout).await?;
            let code = verdict_code(&v);
            emit(&remote, &v, || verification_text(&v))?;
            return Ok(code);
        }
    };
    let client = connect(&opts.remote)?;
    let started = Instant::now();
    let revoked: RevokeResponse = client
        .revoke(&RevokeRequest {
            kind,
            target,
            reason: opts.reason,
            decommission,
        })
        .await?;
    if !opts.verify {
        return emit(&opts.remote, &revoked, || revoked_text(&revoked));
    }
    if !opts.remote.json {
        print!("{}", revoked_text(&revoked));
        println!(
            "Waiting up to {}s for {} live enforcement point(s) to apply epoch {} …",
            opts.timeout, revoked.live_points, revoked.revocation.epoch
        );
    }
    let v = verify(&client, revoked.revocation.epoch, opts.timeout).await?;
    let code = verdict_code(&v);
    if opts.remote.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"revocation": revoked.revocation, "verification": v})
            )?
        );
    } else {
        print!("{}", verification_text(&v));
        if v.complete {
            println!(
                "Revoke to last acknowledgement: {} ms.",
                started.elapsed().as_millis()
            );
        }
    }
    Ok(code)
}

/// Asks the server to wait, in slices of at most [`SERVER_MAX_WAIT_SECS`].
async fn verify(client: &ApiClient, epoch: i64, timeout: u64) -> Result<Verification> {
    if epoch < 1 {
        bail!("revocation epochs start at 1");
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .min(SERVER_MAX_WAIT_SECS);
        let v: Verification = client.revocation_verification(epoch, Some(left)).await?;
        // With no live point the server answers at once: waiting longer shows nothing.
        let none_live = v.acknowledged.is_empty() && v.lagging.is_empty();
        if v.complete || none_live || Instant::now() >= deadline {
            return Ok(v);
        }
    }
}

fn verdict_code(v: &Verification) -> ExitCode {
    if v.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) fn revoked_text(r: &RevokeResponse) -> String {
    let rev = &r.revocation;
    let mut out = format!(
        "Revoked {} `{}` at epoch {} ({}).\n",
        rev.kind, rev.target, rev.epoch, rev.reason
    );
    if let Some(note) = &r.note {
        out.push_str(&format!("Note: {note}\n"));
    }
    out
}

fn point_row(p: &PointStatus, state: &str) -> Vec<String> {
    vec![
        p.id.clone(),
        state.to_owned(),
        p.epoch.to_string(),
        p.bundle_version.to_string(),
        format!("{}s ago", p.seconds_since_seen),
        p.flagged.clone().unwrap_or_default(),
    ]
}

pub(crate) fn verification_text(v: &Verification) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.extend(v.acknowledged.iter().map(|p| point_row(p, "applied")));
    rows.extend(v.lagging.iter().map(|p| point_row(p, "LAGGING")));
    rows.extend(v.not_live.iter().map(|p| point_row(p, "not live")));
    let mut out = if rows.is_empty() {
        "No enforcement point has registered.\n".to_owned()
    } else {
        output::table(
            &["POINT", "STATE", "EPOCH", "BUNDLE", "LAST SEEN", "FLAGGED"],
            &rows,
        )
    };
    let live = v.acknowledged.len() + v.lagging.len();
    if live == 0 {
        out.push_str(&format!(
            "NOT verified: no enforcement point is live, so nothing shows epoch {} in force anywhere. Start one (`steward gateway`) or check `steward status`; points catch up on every revocation when they connect.\n",
            v.epoch
        ));
    } else if v.complete {
        out.push_str(&format!(
            "Verified: all {live} live enforcement point(s) applied epoch {} ({} ms of waiting).\n",
            v.epoch, v.waited_ms
        ));
    } else {
        let names: Vec<&str> = v.lagging.iter().map(|p| p.id.as_str()).collect();
        out.push_str(&format!(
            "NOT verified: {} of {live} live enforcement point(s) have not applied epoch {}: {}.\n",
            v.lagging.len(),
            v.epoch,
            names.join(", ")
        ));
    }
    if !v.not_live.is_empty() {
        out.push_str(&format!(
            "{} point(s) not heard from recently were not waited for; they refuse every request once their staleness limit passes.\n",
            v.not_live.len()
        ));
    }
    out
}

fn list_text(list: &[Revocation]) -> String {
    if list.is_empty() {
        return "No revocations.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                r.epoch.to_string(),
                r.kind.to_string(),
                r.target.clone(),
                r.actor.clone(),
                r.reason.clone(),
            ]
        })
        .collect();
    output::table(&["EPOCH", "KIND", "TARGET", "BY", "REASON"], &rows)
}
