//! Data-driven governance cases: each `cases/<name>/repo` is a governance repository and
//! `cases/<name>/expect.txt` the exact diagnostics (or `ok: …` summary) it must produce.
//! Run with `UPDATE_EXPECT=1` to rewrite the expectations after a deliberate change.

// Test helpers outside `#[test]` functions fail the test on any error, like the tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use steward_governance::{GovernanceError, parse, read_dir};
use steward_model::TrustDomain;

fn outcome(repo: &Path) -> String {
    let td = TrustDomain::new("acme.example").unwrap();
    let files = match read_dir(repo) {
        Ok(f) => f,
        Err(e) => return format!("read error: {e}\n"),
    };
    match parse(&files, &td) {
        Ok(d) => format!(
            "ok: {} planes, {} owners, {} identities, {} capabilities, {} issuers, {} policies\n",
            d.planes.len() + 1,
            d.owners.len(),
            d.identities.len(),
            d.capabilities.len(),
            d.issuers.len(),
            d.policies.len()
        ),
        Err(GovernanceError::Invalid(diags)) => diags.iter().map(|d| format!("{d}\n")).collect(),
        Err(e) => format!("error: {e}\n"),
    }
}

#[test]
fn governance_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "the case corpus went missing");
    let mut failures = Vec::new();
    for case in names {
        let got = outcome(&case.join("repo"));
        let expect_path = case.join("expect.txt");
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&expect_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expect_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "case {}:\n--- want\n{want}--- got\n{got}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn example_repository_is_valid() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/governance");
    let got = outcome(&repo);
    assert!(got.starts_with("ok: "), "{got}");
}
