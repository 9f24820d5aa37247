//! What a workload's operator needs to get going without other tools: a client key
//! (`steward identity key create`), a token made with it (`steward token get`), and the
//! DPoP proofs a key-bound token needs on every request (`steward token proof`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use steward_api::{ApiClient, RouteId};
use steward_model::{ClientKey, SpiffeId};
use steward_token::{SigningKey, jws};

use crate::Remote;

/// The client-assertion type of `private_key_jwt` (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion made here is valid (the token endpoint accepts at most 300 s).
const ASSERTION_SECS: i64 = 60;

#[derive(Debug, Subcommand)]
pub enum IdentityKeyCommand {
    /// Make a P-256 client key for `private_key_jwt`. The private key goes to a 0600
    /// PKCS#8 PEM file (never printed). The public half is printed as a governance
    /// repository file (`client_keys:`; redirect it into the repository, then apply), or
    /// with --register added at once to an identity registered through the API.
    Create {
        /// The identity the key is for (its SPIFFE ID).
        spiffe_id: String,
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// Register the public half with the control plane now, for an identity created
        /// through the API (`steward identity create`). A repository-managed identity's
        /// keys are added in the repository instead.
        #[arg(long)]
        register: bool,
        /// The control plane for --register; --json prints the public key (or the
        /// registered identity) as JSON.
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a client key of an identity registered through the API: assertions signed
    /// with it are refused from then on.
    Remove {
        /// The identity (its SPIFFE ID).
        spiffe_id: String,
        /// The key's `kid`.
        kid: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// `steward token get`.
#[derive(Debug, Args)]
pub struct TokenGetArgs {
    /// The identity asking (its SPIFFE ID); the key must be one registered for it.
    pub spiffe_id: String,
    /// Its private key (PKCS#8 PEM, as `steward identity key create` writes it).
    #[arg(long)]
    pub key: PathBuf,
    /// The audience the token is for (the API that will receive it).
    #[arg(long)]
    pub audience: String,
    /// Capabilities to narrow the token to (space-separated). Without it the token
    /// carries no scope: the policy alone decides what it may do.
    #[arg(long)]
    pub scope: Option<String>,
    /// Bind the token to this key (DPoP, RFC 9449; a PKCS#8 PEM, e.g. from `steward
    /// identity key create`): a copy of the token is then worthless without the key, and
    /// every request carries `Authorization: DPoP <token>` and a fresh `DPoP` proof
    /// (`steward token proof`).
    #[arg(long, value_name = "KEY")]
    pub dpop_key: Option<PathBuf>,
    /// The control plane (`--json` prints the whole token response instead of the
    /// access token alone; no admin credential is used).
    #[command(flatten)]
    pub remote: Remote,
}

/// `steward token proof`.
#[derive(Debug, Args)]
pub struct TokenProofArgs {
    /// The key the token is bound to (the `--dpop-key` of `steward token get`).
    #[arg(long)]
    pub key: PathBuf,
    /// The request's method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The URL the request goes to, as the client sends it (`https://host/path`; a query
    /// is not part of what the proof names).
    #[arg(long)]
    pub url: String,
    /// The access token the request carries: the proof names its hash (`ath`), which
    /// every enforcement point requires. Read from STEWARD_ACCESS_TOKEN when not given.
    #[arg(long, env = "STEWARD_ACCESS_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Obtain an access token for a workload with its own key (client credentials with a
    /// `private_key_jwt` assertion), as the workload itself would. Prints the token only,
    /// so `$(steward token get …)` can fill an `Authorization` header.
    Get(TokenGetArgs),
    /// Print a DPoP proof (RFC 9449) for one request with a DPoP-bound token, to send as
    /// its `DPoP` header. A proof is good for one request, within a minute.
    Proof(TokenProofArgs),
}

pub(crate) async fn identity_key(cmd: IdentityKeyCommand) -> Result<ExitCode> {
    let (spiffe_id, out, force, register, remote) = match cmd {
        IdentityKeyCommand::Create {
            spiffe_id,
            out,
            force,
            register,
            remote,
        } => (spiffe_id, out, force, register, remote),
        IdentityKeyCommand::Remove {
            spiffe_id,
            kid,
            remote,
        } => {
            let client = crate::commands::connect(&remote)?;
            let record: steward_api::IdentityRecord = client
                .route(RouteId::RemoveClientKey, &[&spiffe_id, &kid])
                .send()
                .await?;
            eprintln!(
                "Removed key `{kid}` of {spiffe_id}; {} key(s) remain.",
                record.identity.credentials.public_keys.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let id = SpiffeId::parse(spiffe_id.clone())
        .with_context(|| format!("`{spiffe_id}` is not a SPIFFE ID"))?;
    // Connect before the key is made, so a missing credential fails with no file left behind.
    let client = if register {
        Some(crate::commands::connect(&remote)?)
    } else {
        None
    };
    let (key, pkcs8) = SigningKey::generate()?;
    let mut public = client_key(&key, key.kid());
    public.created = Some(steward_model::timestamp::format(
        time::OffsetDateTime::now_utc(),
    ));
    write_private_key(&out, &pkcs8, force)?;
    match client {
        Some(client) => {
            let registered = client
                .route(RouteId::AddClientKey, &[id.as_str()])
                .json(&public)
                .send::<steward_api::IdentityRecord>()
                .await;
            let record = match registered {
                Ok(r) => r,
                Err(e) => {
                    // A key nobody can use must not linger as if it were registered.
                    let _ = std::fs::remove_file(&out);
                    return Err(anyhow::Error::from(e).context(format!(
                        "the key was not registered ({} removed)",
                        out.display()
                    )));
                }
            };
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                eprintln!(
                    "Private key for {id} written to {} (mode 0600; keep it with the workload).\nRegistered its public half as key `{}`: `steward token get {id} --key {}` works now.",
                    out.display(),
                    public.kid,
                    out.display()
                );
            }
        }
        None if remote.json => println!("{}", serde_json::to_string_pretty(&public)?),
        None => {
            eprintln!(
                "Private key for {id} written to {} (mode 0600; keep it with the workload).\nSave the public half below as a file of the governance repository (e.g. keys/NAME.yaml), then `steward apply`.",
                out.display()
            );
            print!("{}", repository_file(&id, &public));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The public half of `key`, as an identity registers it under `kid`.
pub(crate) fn client_key(key: &SigningKey, kid: &str) -> ClientKey {
    let jwk = key.public_key().jwk();
    ClientKey {
        kid: kid.to_owned(),
        kty: jwk.kty.clone(),
        crv: jwk.crv.clone(),
        x: jwk.x.clone(),
        y: jwk.y.clone(),
        alg: None,
        created: None,
    }
}

/// A `private_key_jwt` client assertion (RFC 7523) of `id` for the token endpoint
/// `endpoint`, valid for [`ASSERTION_SECS`] from `now`, single-use by its fresh `jti`.
pub(crate) fn client_assertion(
    id: &str,
    key: &SigningKey,
    endpoint: &str,
    now: i64,
) -> Result<String> {
    Ok(jws::encode(
        key,
        "JWT",
        &json!({"iss": id, "sub": id, "aud": endpoint, "iat": now,
                "exp": now + ASSERTION_SECS, "jti": uuid::Uuid::new_v4().to_string()}),
    )?)
}

/// A governance repository file holding one client key of `id` (`client_keys:`), so the
/// key can be added beside the identity's declaration without editing it.
fn repository_file(id: &SpiffeId, k: &ClientKey) -> String {
    format!(
        "# A client key of {id}, made by `steward identity key create`.\n# Its private half stays with the workload; this public half is safe to commit.\nclient_keys:\n  - identity: {id}\n    key:\n      kid: {}\n      kty: {}\n      crv: {}\n      x: {}\n      y: {}\n      created: \"{}\"\n",
        k.kid,
        k.kty,
        k.crv,
        k.x,
        k.y,
        k.created.as_deref().unwrap_or_default()
    )
}

/// Writes `pkcs8` as PEM to a new file only its owner can read.
fn write_private_key(path: &Path, pkcs8: &[u8], force: bool) -> Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    if !force && path.exists() {
        bail!(
            "{} exists; pass --force to replace it (the key in it stops working once its public half is removed)",
            path.display()
        );
    }
    write_owner_only(path, pem.as_bytes())
}

/// Writes a secret to `path` as a file created anew, readable by its owner only. A file
/// already there is removed first, not truncated: truncating keeps its permissions, and a
/// world-readable file would then hold the secret.
pub(crate) fn write_owner_only(path: &Path, contents: &[u8]) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot replace {}: {e}", path.display()),
    }
    let mut opts = std::fs::OpenOptions::new();
    // `create_new` also refuses a symlink planted between the removal and the open.
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Reads a PKCS#8 PEM private key.
fn read_private_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the private key {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&text).with_context(|| format!("{}", path.display()))
}

pub(crate) async fn token(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Get(a) => token_get(a).await,
        TokenCommand::Proof(a) => token_proof(&a),
    }
}

fn token_proof(a: &TokenProofArgs) -> Result<ExitCode> {
    let key = read_private_key(&a.key)?;
    let token = a.token.trim();
    if token.is_empty() {
        bail!("--token is empty: pass the access token the request carries");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let proof = steward_token::new_dpop_proof(&key, &a.method, &a.url, Some(token), now)
        .context("cannot make the proof")?;
    println!("{proof}");
    Ok(ExitCode::SUCCESS)
}

async fn token_get(a: TokenGetArgs) -> Result<ExitCode> {
    let id = SpiffeId::parse(a.spiffe_id.clone())
        .with_context(|| format!("`{}` is not a SPIFFE ID", a.spiffe_id))?;
    let key = read_private_key(&a.key)?;
    let client = ApiClient::new(&a.remote.server, None)?;
    // The assertion's audience is the token endpoint the server names itself by.
    let endpoint = client.server_metadata().await?.token_endpoint;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let assertion = client_assertion(id.as_str(), &key, &endpoint, now)?;
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
        ("audience", a.audience.as_str()),
    ];
    if let Some(scope) = &a.scope {
        form.push(("scope", scope));
    }
    let proof = match &a.dpop_key {
        None => None,
        Some(path) => {
            let holder = read_private_key(path)?;
            Some(
                steward_token::new_dpop_proof(&holder, "POST", &endpoint, None, now)
                    .context("cannot make the DPoP proof for the token request")?,
            )
        }
    };
    let (status, body) = client.token_request_with(&form, proof.as_deref()).await?;
    if !(200..300).contains(&status) {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("error");
        let why = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        bail!("the token endpoint refused ({status} {error}): {why}");
    }
    if a.remote.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .context("the token answer has no access_token")?;
        println!("{token}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Replacing a file another process left world-readable does not leave the secret
    /// world-readable: the file is made anew, owner-only.
    #[cfg(unix)]
    #[test]
    fn a_replaced_secret_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_owner_only(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
    }
}
