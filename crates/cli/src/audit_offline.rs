//! `steward audit checkpoints --export`, `audit export --format chain` and
//! `audit verify --offline`: a copy of the evidence log that verifies without the server
//! or its database.
//!
//! Online verification trusts the checkpoint keys stored in the database, so someone who
//! rewrites the whole database (adding a key of their own, or re-signing with the real
//! one) can make it answer "intact". Offline, only the keys given with `--key` count, and
//! checkpoints kept elsewhere (`--checkpoints`) pin the history they saw: a rewrite then
//! shows as a bad signature, a checkpoint mismatch or a truncation.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use steward_audit::{
    CHECKPOINTS_FORMAT, CheckpointVerifier, CheckpointsExport, Record, Verifier, VerifyReport,
};

use steward_api::ApiClient;

/// Records asked for per page of a chain export.
const CHAIN_PAGE: i64 = 5_000;

/// Writes the chain export: the checkpoints document on the first line, then every
/// record (`seq`, `prev_hash`, `hash`, `body`) in order. Returns how many records.
pub(crate) async fn export_chain(client: &ApiClient, out: &mut impl Write) -> Result<usize> {
    let vouchers: CheckpointsExport = client.audit_checkpoints().await?;
    serde_json::to_writer(&mut *out, &vouchers)?;
    out.write_all(b"\n")?;
    let mut after = 0;
    let mut total = 0;
    loop {
        let page: Vec<Record> = client.audit_chain(after, CHAIN_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        total += page.len();
        for r in &page {
            serde_json::to_writer(&mut *out, r)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(total)
}

/// A checkpoint public key from `--key`: the base64 text itself, or a file holding it.
pub(crate) fn read_key(arg: &str) -> Result<String> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read the key file `{arg}`"))?
    } else {
        arg.to_owned()
    };
    let key = text.trim().to_owned();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(key.trim_end_matches('='))
        .ok();
    if raw.as_ref().is_none_or(|r| r.len() != 32) {
        bail!(
            "`--key` must be a checkpoint public key (Ed25519, base64, as `steward audit checkpoints` shows) or a file holding one"
        );
    }
    Ok(key.trim_end_matches('=').to_owned())
}

fn read_checkpoints(path: &Path) -> Result<CheckpointsExport> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let doc: CheckpointsExport = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a checkpoints export (`steward audit checkpoints --export`)",
            path.display()
        )
    })?;
    if doc.format != CHECKPOINTS_FORMAT {
        bail!(
            "`{}` has format `{}`, not `{CHECKPOINTS_FORMAT}`",
            path.display(),
            doc.format
        );
    }
    Ok(doc)
}

/// Verifies a chain export against the pinned `keys` only, with the checkpoints it
/// carries plus those kept elsewhere (`extra`).
pub(crate) fn verify_offline(
    file: &Path,
    keys: &[String],
    extra: &[PathBuf],
) -> Result<VerifyReport> {
    if keys.is_empty() {
        bail!(
            "`--offline` needs `--key`: the checkpoint public key you kept (a key read from the export itself would prove nothing)"
        );
    }
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot open `{}`", file.display()))?,
    );
    let mut lines = reader.lines().enumerate();
    let Some((_, first)) = lines.next() else {
        bail!("`{}` is empty: not a chain export", file.display());
    };
    let header: CheckpointsExport = serde_json::from_str(&first?).with_context(|| {
        format!(
            "`{}` does not start with a checkpoints document: make it with `steward audit export --format chain`",
            file.display()
        )
    })?;
    let mut checkpoints = header.checkpoints;
    let mut prunes = header.prunes;
    for path in extra {
        let kept = read_checkpoints(path)?;
        checkpoints.extend(kept.checkpoints);
        prunes.extend(kept.prunes);
    }
    let signatures = CheckpointVerifier::new(keys.iter().map(String::as_str));
    let mut verifier = Verifier::new(checkpoints, signatures);
    // The log starts after the latest prune, if it was pruned.
    if let Some(prune) = prunes.iter().max_by_key(|p| p.pruned_through) {
        verifier = verifier.starting_after(prune);
    }
    for (n, line) in lines {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line).with_context(|| {
            format!(
                "line {} of `{}` is not an evidence record",
                n + 1,
                file.display()
            )
        })?;
        verifier.push(&record);
    }
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_audit::{ChainHead, CheckpointSigner};

    fn export(dir: &Path, records: &[Record], doc: &CheckpointsExport) -> PathBuf {
        let path = dir.join("log.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        serde_json::to_writer(&mut f, doc).unwrap();
        f.write_all(b"\n").unwrap();
        for r in records {
            serde_json::to_writer(&mut f, r).unwrap();
            f.write_all(b"\n").unwrap();
        }
        path
    }

    fn doc(signer: &CheckpointSigner, records: &[Record], sizes: &[usize]) -> CheckpointsExport {
        CheckpointsExport {
            format: CHECKPOINTS_FORMAT.into(),
            keys: vec![],
            checkpoints: sizes
                .iter()
                .map(|n| signer.sign(*n as i64, &records[n - 1].hash, "t"))
                .collect(),
            prunes: vec![],
        }
    }

    /// A whole-database rewrite, re-signed with a key of the attacker's, verifies only
    /// against that key; the kept key and the kept checkpoints both catch it.
    #[test]
    fn a_rewritten_database_fails_against_the_kept_key_and_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let (real, _) = CheckpointSigner::generate().unwrap();
        let mut head = ChainHead::default();
        let records: Vec<Record> = (1..=20)
            .map(|i| head.append(format!("{{\"e\":{i}}}")))
            .collect();
        let kept = doc(&real, &records, &[10, 20]);
        let path = export(tmp.path(), &records, &kept);
        let key = real.public_key();
        assert!(
            verify_offline(&path, std::slice::from_ref(&key), &[])
                .unwrap()
                .ok()
        );

        // Rewrite event 5, recompute the chain, re-sign with another key.
        let (forger, _) = CheckpointSigner::generate().unwrap();
        let mut head = ChainHead::default();
        let rewritten: Vec<Record> = records
            .iter()
            .map(|r| {
                head.append(if r.seq == 5 {
                    "{\"e\":\"forged\"}".into()
                } else {
                    r.body.clone()
                })
            })
            .collect();
        let forged = doc(&forger, &rewritten, &[10, 20]);
        let path = export(tmp.path(), &rewritten, &forged);
        let report = verify_offline(&path, std::slice::from_ref(&key), &[]).unwrap();
        assert!(!report.ok());
        assert!(
            report
                .problems
                .iter()
                .all(|p| matches!(p, steward_audit::Problem::BadSignature { .. })),
            "{:?}",
            report.problems
        );
        // Re-signed with the real key (the attacker also had the key-encryption key):
        // the checkpoints kept elsewhere disagree with the rewritten chain.
        let resigned = doc(&real, &rewritten, &[10, 20]);
        let path = export(tmp.path(), &rewritten, &resigned);
        assert!(
            verify_offline(&path, std::slice::from_ref(&key), &[])
                .unwrap()
                .ok(),
            "nothing kept: undetectable"
        );
        let kept_path = tmp.path().join("kept.json");
        std::fs::write(&kept_path, serde_json::to_string(&kept).unwrap()).unwrap();
        let report = verify_offline(&path, std::slice::from_ref(&key), &[kept_path]).unwrap();
        assert!(
            report
                .problems
                .contains(&steward_audit::Problem::CheckpointMismatch { tree_size: 10 }),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn keys_and_files_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            verify_offline(&tmp.path().join("none"), &[], &[])
                .unwrap_err()
                .to_string()
                .contains("--key")
        );
        assert!(read_key("not a key").is_err());
        let (signer, _) = CheckpointSigner::generate().unwrap();
        let file = tmp.path().join("pub");
        std::fs::write(&file, format!("{}\n", signer.public_key())).unwrap();
        assert_eq!(
            read_key(file.to_str().unwrap()).unwrap(),
            signer.public_key()
        );
        let junk = tmp.path().join("junk.jsonl");
        std::fs::write(&junk, "{}\n").unwrap();
        let err = verify_offline(&junk, &[signer.public_key()], &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("checkpoints document"),
            "{err:#}"
        );
    }
}
