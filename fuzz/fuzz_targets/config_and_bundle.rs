//! What an operator or the control plane hands a process at start and at run time, the
//! first byte picking which:
//! - 0: `steward.toml` through `FileConfig::parse`;
//! - 1: the gateway's TOML through `GatewayConfig::parse` (beside it, a credential file
//!   named `credential`, so parsing goes past the control-plane section);
//! - 2: text as a signed policy bundle through `Bundle::verify` with a trusted key made at
//!   start-up: nothing the fuzzer writes is signed by it, so it must always be refused.
//!
//! A bad file is an error naming the field, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use steward_enforce::Bundle;
use steward_gateway::GatewayConfig;
use steward_server::config::FileConfig;
use steward_token::{PublicKey, SigningKey};

struct Fixture {
    dir: tempfile::TempDir,
    trusted: PublicKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("steward-fuzz-config-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::write(dir.path().join("credential"), "fuzz-credential").expect("a file");
        let trusted = SigningKey::generate()
            .expect("a signing key")
            .0
            .public_key()
            .clone();
        Fixture { dir, trusted }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let f = fixture();
    match pick % 3 {
        0 => {
            let _ = FileConfig::parse("steward.toml", &text);
        }
        1 => {
            let _ = GatewayConfig::parse(&text, f.dir.path());
        }
        _ => {
            assert!(
                Bundle::verify(&text, std::slice::from_ref(&f.trusted)).is_err(),
                "accepted a policy bundle nobody signed"
            );
        }
    }
});
