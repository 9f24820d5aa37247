//! Governance repositories (R6, R10): the example repository with one file's text
//! replaced by the fuzzer's (the first byte picks the file), through `parse` and, when
//! that succeeds, the publish-time policy check (`steward_policy::check`: Cedar
//! validation, plane confinement, settings that may only tighten). A malformed file is
//! a diagnostic, never a panic or a hang.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use steward_governance::{SourceFile, parse, read_dir};
use steward_model::TrustDomain;

fn repo() -> &'static (Vec<SourceFile>, TrustDomain) {
    static R: OnceLock<(Vec<SourceFile>, TrustDomain)> = OnceLock::new();
    R.get_or_init(|| {
        let files = read_dir(&steward_testkit::example_repo()).expect("the example repository");
        (
            files,
            TrustDomain::new("acme.example").expect("a trust domain"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let (files, domain) = repo();
    let mut files = files.clone();
    let i = usize::from(pick) % files.len();
    files[i].content = String::from_utf8_lossy(text).into_owned();
    if let Ok(desired) = parse(&files, domain) {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
        let _ = steward_policy::check(&desired, now);
    }
});
