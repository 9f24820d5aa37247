//! `steward keys`: the token signing keys — list them, rotate them.

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use std::process::ExitCode;
use steward_api::RouteId;

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

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("-").to_owned()
}

pub(crate) async fn run(cmd: KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::List { remote } => {
            let body: Value = connect(&remote)?.route(RouteId::Keys, &[]).send().await?;
            emit(&remote, &body, || {
                let rows = body
                    .get("keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .map(|k| {
                                ["kid", "state", "created_at", "verifies_until"]
                                    .iter()
                                    .map(|f| text(k, f))
                                    .collect()
                            })
                            .collect::<Vec<Vec<String>>>()
                    })
                    .unwrap_or_default();
                output::table(&["KID", "STATE", "CREATED", "VERIFIES UNTIL"], &rows)
            })
        }
        KeysCommand::Rotate { remote } => {
            let body: Value = connect(&remote)?
                .route(RouteId::RotateKeys, &[])
                .json(&serde_json::json!({}))
                .send()
                .await?;
            emit(&remote, &body, || {
                format!(
                    "New signing key {} signs from now on; the previous key {} verifies until {}.\n",
                    text(&body, "kid"),
                    text(&body, "previous"),
                    text(&body, "previous_verifies_until")
                )
            })
        }
    }
}
