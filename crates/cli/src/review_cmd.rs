//! `steward review`: access review campaigns — start one, list them, show an owner's
//! queue, attest keep / reduce / revoke.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use steward_api::{Campaign, CampaignView, DecisionRequest, ReviewItem, ReviewItems, StartRequest};

use crate::commands::{connect, emit};
use crate::{Remote, output};

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Start a campaign for the identities due on their plane's review_cadence_days (or
    /// every identity in scope with --all).
    Start {
        #[arg(long)]
        name: Option<String>,
        /// Only this plane and its subtree (required for a plane admin).
        #[arg(long)]
        plane: Option<String>,
        /// Days the owners have.
        #[arg(long, default_value_t = 14)]
        due_days: u64,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Campaigns and their progress.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// A campaign's identities with their effective permissions (one owner's queue with
    /// --owner; what is left with --pending).
    Show {
        id: String,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        pending: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Attest one identity: --keep, --reduce CAPABILITY:ACTION (repeatable) or --revoke
    /// (revokes it now: suspended, pushed to every enforcement point).
    Decide {
        id: String,
        spiffe_id: String,
        #[arg(long, conflicts_with_all = ["reduce", "revoke"])]
        keep: bool,
        #[arg(long, value_name = "CAPABILITY:ACTION")]
        reduce: Vec<String>,
        #[arg(long, conflicts_with = "reduce")]
        revoke: bool,
        /// Why (recorded in the evidence log).
        #[arg(long)]
        note: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) fn campaigns_text(list: &[Campaign]) -> String {
    if list.is_empty() {
        return "No access review campaigns.\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.name.clone(),
                c.plane.clone().unwrap_or_else(|| "(all)".into()),
                format!("{}/{}", c.decided, c.items),
                c.due_at.clone(),
            ]
        })
        .collect();
    output::table(&["CAMPAIGN", "NAME", "PLANE", "ATTESTED", "DUE"], &rows)
}

pub(crate) fn items_text(v: &CampaignView) -> String {
    let mut out = format!(
        "{} `{}`: {}/{} attested, due {}\n",
        v.campaign.id, v.campaign.name, v.campaign.decided, v.campaign.items, v.campaign.due_at
    );
    let rows: Vec<Vec<String>> = v
        .items
        .iter()
        .map(|i| {
            vec![
                i.spiffe_id.clone(),
                i.owner.clone(),
                i.permissions.len().to_string(),
                i.decision.clone().unwrap_or_else(|| "pending".into()),
                i.decided_by.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&output::table(
        &["IDENTITY", "OWNER", "PERMISSIONS", "DECISION", "BY"],
        &rows,
    ));
    out
}

pub(crate) async fn run(cmd: ReviewCommand) -> Result<ExitCode> {
    match cmd {
        ReviewCommand::Start {
            name,
            plane,
            due_days,
            all,
            remote,
        } => {
            let c: Campaign = connect(&remote)?
                .start_review(&StartRequest {
                    name,
                    plane,
                    due_days: Some(due_days),
                    all,
                })
                .await?;
            emit(&remote, &c, || {
                format!(
                    "Started access review {} `{}`: {} identities to attest by {}.\n",
                    c.id, c.name, c.items, c.due_at
                )
            })
        }
        ReviewCommand::List { remote } => {
            let list: Vec<Campaign> = connect(&remote)?.reviews().await?;
            emit(&remote, &list, || campaigns_text(&list))
        }
        ReviewCommand::Show {
            id,
            owner,
            pending,
            remote,
        } => {
            let v: CampaignView = connect(&remote)?
                .review(
                    &id,
                    if pending {
                        ReviewItems::Pending
                    } else {
                        ReviewItems::All
                    },
                    owner.as_deref(),
                )
                .await?;
            emit(&remote, &v, || items_text(&v))
        }
        ReviewCommand::Decide {
            id,
            spiffe_id,
            keep,
            reduce,
            revoke,
            note,
            remote,
        } => {
            let decision = match (keep, reduce.is_empty(), revoke) {
                (true, true, false) => "keep",
                (false, false, false) => "reduce",
                (false, true, true) => "revoke",
                _ => anyhow::bail!("choose exactly one of --keep, --reduce … or --revoke"),
            };
            let item: ReviewItem = connect(&remote)?
                .decide_review(
                    &id,
                    &DecisionRequest {
                        spiffe_id,
                        decision: decision.into(),
                        note,
                        reduce,
                    },
                )
                .await?;
            emit(&remote, &item, || {
                format!(
                    "{} attested `{}` in {}{}.\n",
                    item.spiffe_id,
                    decision,
                    item.campaign_id,
                    if decision == "revoke" {
                        " (revoked: suspended and pushed to every enforcement point)"
                    } else {
                        ""
                    }
                )
            })
        }
    }
}
