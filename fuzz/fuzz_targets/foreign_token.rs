//! Tokens from trusted external issuers (federation, R4): `ForeignKeySet::from_jwks` on
//! fuzzed JWKS documents, `validate_foreign` on fuzzed tokens, and the subject `glob`
//! against a reference matcher. Chosen by the first byte:
//! - 0: `jwks \0 token`: the JWKS parser must not panic, and a token nobody signed is
//!   refused by the issuer's real key set;
//! - 1: JSON claims signed with the issuer's real key: accepted only when issuer,
//!   audience, expiry and an allowed subject all hold;
//! - 2: `pattern \0 text`: `glob` agrees with a reference matcher (a wildcard table).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use steward_token::foreign::glob;
use steward_token::{ForeignKeySet, ForeignRules, SigningKey, jwks, jws, validate_foreign};

const NOW: i64 = 1_800_000_000;

fn fixture() -> &'static (SigningKey, ForeignKeySet) {
    static F: OnceLock<(SigningKey, ForeignKeySet)> = OnceLock::new();
    F.get_or_init(|| {
        let (key, _) = SigningKey::generate().expect("a signing key");
        let set = ForeignKeySet::from_jwks(&jwks([key.public_key()])).expect("its JWKS");
        (key, set)
    })
}

fn rules(subjects: &[String]) -> ForeignRules<'_> {
    ForeignRules {
        issuer: "https://idp.fuzz",
        audience: "steward",
        allowed_subjects: subjects,
        now: NOW,
        skew: 30,
    }
}

/// `*` matches any run of characters: the textbook table over (pattern prefix, text
/// prefix), quadratic but obviously right.
fn reference(pattern: &[char], text: &[char]) -> bool {
    // row[j]: whether the pattern so far matches the first j characters of the text.
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = if p == '*' {
                row[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && row[j - 1] && text[j - 1] == p
            };
        }
        row = next;
    }
    row[text.len()]
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (key, set) = fixture();
    let subjects = vec!["repo:acme/*".to_owned()];
    match mode % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            let (doc, token) = text.split_once('\0').unwrap_or((&text, ""));
            if let Ok(doc) = serde_json::from_str(doc) {
                let _ = ForeignKeySet::from_jwks(&doc);
            }
            assert!(
                validate_foreign(token, set, &rules(&subjects)).is_err(),
                "accepted a token nobody signed: {token:?}"
            );
        }
        1 => {
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            let Ok(token) = jws::encode(key, "JWT", &claims) else {
                return;
            };
            if let Ok(c) = validate_foreign(&token, set, &rules(&subjects)) {
                assert_eq!(c["iss"], "https://idp.fuzz");
                let aud = &c["aud"];
                assert!(
                    aud == "steward"
                        || aud
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == "steward")),
                    "aud {aud}"
                );
                let exp = c["exp"].as_i64().expect("an accepted token has an exp");
                assert!(NOW < exp.saturating_add(30), "expired: {exp}");
                let sub = c["sub"].as_str().expect("an accepted token has a sub");
                assert!(sub.starts_with("repo:acme/"), "sub {sub:?}");
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let (pattern, subject) = text.split_once('\0').unwrap_or((&text, ""));
            if pattern.len() > 256 || subject.len() > 1024 {
                return;
            }
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = subject.chars().collect();
            assert_eq!(
                glob(pattern, subject),
                reference(&p, &t),
                "glob({pattern:?}, {subject:?})"
            );
        }
    }
});
