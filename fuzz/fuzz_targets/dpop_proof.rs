//! DPoP proofs (RFC 9449) and client assertions (RFC 7523), both of which carry or name
//! the key that signed them. Fuzzed text as either: never a panic, and never accepted —
//! the fuzzer cannot sign with a key whose private half it does not hold, and a proof
//! that names its own key must still verify with it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use steward_token::{
    AssertionRules, DpopRequest, PublicKey, ReplayCache, SigningKey, decode_client_assertion,
    verify_dpop,
};

const NOW: i64 = 1_800_000_000;

/// A client's registered key, made at start-up.
fn client_key() -> &'static PublicKey {
    static K: OnceLock<PublicKey> = OnceLock::new();
    K.get_or_init(|| {
        SigningKey::generate()
            .expect("a signing key")
            .0
            .public_key()
            .clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let replay = ReplayCache::new(NOW, 1_000);
    let req = DpopRequest {
        method: "POST",
        url: "https://steward.fuzz/oauth2/token",
        access_token: None,
        now: NOW,
        max_age: 60,
        skew: 5,
    };
    assert!(
        verify_dpop(&text, &req, &replay).is_err(),
        "accepted a DPoP proof: {text:?}"
    );
    if let Ok(assertion) = decode_client_assertion(&text) {
        let _ = assertion.client_id();
        let rules = AssertionRules {
            audiences: vec!["https://steward.fuzz/oauth2/token".into()],
            max_lifetime: 300,
            skew: 5,
        };
        assert!(
            assertion
                .verify(std::slice::from_ref(client_key()), &rules, NOW, &replay)
                .is_err(),
            "accepted a client assertion nobody signed: {text:?}"
        );
    }
});
