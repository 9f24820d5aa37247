//! `steward jit`: approvals of just-in-time credentials by a workflow's listed approvers.

use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use steward_api::{ApprovalRequest, JitApproval};

use crate::Remote;
use crate::commands::{connect, emit};

#[derive(Debug, Subcommand)]
pub enum JitCommand {
    /// Approve a requester's JIT credentials for a workflow that lists approvers (your
    /// credential's name must be one of them).
    Approve {
        /// The workflow id.
        workflow: String,
        /// The requester's SPIFFE ID.
        requester: String,
        /// Why: a ticket or an incident (recorded as evidence).
        #[arg(long)]
        note: String,
        /// How long the approval stays usable, in seconds (at most 86400).
        #[arg(long, default_value_t = 3600)]
        valid_secs: u64,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) async fn run(cmd: JitCommand) -> Result<ExitCode> {
    match cmd {
        JitCommand::Approve {
            workflow,
            requester,
            note,
            valid_secs,
            remote,
        } => {
            let approval: JitApproval = connect(&remote)?
                .approve(
                    &workflow,
                    &ApprovalRequest {
                        requester: requester.clone(),
                        valid_secs: Some(valid_secs),
                        note,
                    },
                )
                .await?;
            emit(&remote, &approval, || {
                format!(
                    "Approved: {requester} may get JIT credentials for {workflow} until {}.\n",
                    approval.expires_at
                )
            })
        }
    }
}
