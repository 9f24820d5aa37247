//! `steward keys`: the token signing keys — list them, rotate them.

use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

use crate::commands::{connect, emit};
use crate::{Remote, output};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every signing key: the one that signs, those still verifying, the retired.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// A new key signs from now on; the old one keeps verifying (and stays in the JWKS)
    /// until the overlap window (`tokens.key_overlap_secs`) ends. Central admins only.
    Rotate {
        #[command(flatten)]
        remote: Remote,
    },
}

pub(crate) async fn run(cmd: KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::List { remote } => {
            let list = connect(&remote)?.keys().await?;
            emit(&remote, &list, || {
                let rows: Vec<Vec<String>> = list
                    .keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.kid.clone(),
                            k.state.as_str().to_owned(),
                            k.created_at.clone(),
                            k.verifies_until.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                output::table(&["KID", "STATE", "CREATED", "VERIFIES UNTIL"], &rows)
            })
        }
        KeysCommand::Rotate { remote } => {
            let r = connect(&remote)?.rotate_keys().await?;
            emit(&remote, &r, || {
                format!(
                    "New signing key {} signs from now on; the previous key {} verifies until {}.\n",
                    r.kid,
                    r.previous.as_deref().unwrap_or("-"),
                    r.previous_verifies_until.as_deref().unwrap_or("-")
                )
            })
        }
    }
}
