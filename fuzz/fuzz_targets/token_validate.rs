//! Steward's own tokens through `Validator::validate`, the path every enforcement point
//! calls. Two kinds of input, chosen by the first byte:
//! - raw text as a token: nothing the fuzzer writes can carry a valid ES256 signature of
//!   a key made at start-up, so every one must be refused;
//! - JSON claims, signed with the real key: accepted only when every claim check holds
//!   (issuer, SPIFFE subject, audience, times, environment, no unmet `cnf` binding), and
//!   refused once a byte of the signature changes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use steward_token::{Expectations, Proof, SigningKey, Validator, jws};

const ISSUER: &str = "https://steward.fuzz";
const NOW: i64 = 1_800_000_000;
const SKEW: i64 = 30;

fn fixture() -> &'static (SigningKey, Validator) {
    static F: OnceLock<(SigningKey, Validator)> = OnceLock::new();
    F.get_or_init(|| {
        let (key, _) = SigningKey::generate().expect("a signing key");
        let validator = Validator::new(ISSUER, [key.public_key().clone()], SKEW);
        (key, validator)
    })
}

fn expect() -> Expectations<'static> {
    Expectations {
        audience: "orders",
        environment: Some("prod"),
        now: NOW,
        proof: Proof::None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (key, validator) = fixture();
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        assert!(
            validator.validate(&token, &expect()).is_err(),
            "accepted a token nobody signed: {token:?}"
        );
        return;
    }
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let Ok(token) = jws::encode(key, "JWT", &claims) else {
        return;
    };
    if let Ok(c) = validator.validate(&token, &expect()) {
        assert_eq!(c.iss, ISSUER);
        assert!(c.sub.starts_with("spiffe://"), "sub {:?}", c.sub);
        assert!(c.aud.contains("orders"), "aud {:?}", c.aud);
        assert!(NOW < c.exp.saturating_add(SKEW), "expired: exp {}", c.exp);
        assert!(c.nbf <= NOW + SKEW && c.iat <= NOW + SKEW, "not yet valid");
        assert_eq!(c.environment.as_deref(), Some("prod"));
        assert!(c.cnf.is_none(), "a bound token accepted without its proof");
    }
    // The same token with one signature byte changed is refused, cached or not.
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("base64url stays ASCII");
    assert!(
        validator.validate(&forged, &expect()).is_err(),
        "accepted a token whose signature was changed"
    );
});
