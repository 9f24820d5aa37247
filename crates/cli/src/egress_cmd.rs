//! `steward egress-secret`: third-party API keys the gateway injects in egress mode.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use steward_api::{EgressSecret, SetEgressSecret};

use crate::Remote;
use crate::commands::{connect, emit};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum EgressSecretCommand {
    /// Store (or rotate) a secret, sealed under the key-encryption key. The value is read
    /// from an environment variable or a file, never from the command line (shell history).
    Set {
        /// Its id, as the gateway's `egress_secret` names it (a-z, 0-9, `-`, `_`, `.`).
        id: String,
        /// Environment variable holding the value.
        #[arg(long, conflicts_with = "value_file")]
        value_env: Option<String>,
        /// File holding the value (trailing newline removed).
        #[arg(long)]
        value_file: Option<PathBuf>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the secrets (ids and dates; never values).
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a secret; the gateways that inject it refuse requests once their copy is
    /// stale.
    Delete {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) async fn run(cmd: EgressSecretCommand) -> Result<ExitCode> {
    match cmd {
        EgressSecretCommand::Set {
            id,
            value_env,
            value_file,
            description,
            remote,
        } => {
            let value = match (value_env, value_file) {
                (Some(var), None) => std::env::var(&var)
                    .with_context(|| format!("environment variable `{var}` is not set"))?,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                _ => bail!("give the value with --value-env VAR or --value-file FILE"),
            };
            let row: EgressSecret = connect(&remote)?
                .set_egress_secret(&id, &SetEgressSecret { value, description })
                .await?;
            emit(&remote, &row, || {
                format!(
                    "Egress secret `{}` stored (sealed) at {}. Gateways pick it up within a minute.\n",
                    row.id, row.created_at
                )
            })
        }
        EgressSecretCommand::List { remote } => {
            let rows: Vec<EgressSecret> = connect(&remote)?.egress_secrets().await?;
            emit(&remote, &rows, || {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.created_at.clone(),
                            r.created_by.clone(),
                            r.description.clone(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "SET AT", "SET BY", "DESCRIPTION"], &table)
            })
        }
        EgressSecretCommand::Delete { id, remote } => {
            connect(&remote)?.delete_egress_secret(&id).await?;
            emit(&remote, &serde_json::json!({ "deleted": id }), || {
                format!("Egress secret `{id}` deleted.\n")
            })
        }
    }
}
