//! Every refusal the token issue lists, the happy paths, Wycheproof's ECDSA P-256 vectors
//! through our JWK -> verify path, and parsers that never panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use proptest::prelude::*;
use serde_json::{Value, json};

use steward_token::*;

const ISS: &str = "https://steward.test";
const NOW: i64 = 1_800_000_000;

fn key() -> SigningKey {
    SigningKey::generate().unwrap().0
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "spiffe://example.org/payments/api", "aud": "spiffe://example.org/ledger",
        "exp": NOW + 300, "iat": NOW, "nbf": NOW, "jti": "t1", "environment": "prod", "plane": "payments",
    })
}

/// Signs any header and payload, bypassing the encoder's rules.
fn raw_token(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(payload.to_string())
    );
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", B64URL.encode(sig))
}

fn validator(key: &SigningKey) -> Validator {
    Validator::new(ISS, [key.public_key().clone()], 30)
}

fn expect() -> Expectations<'static> {
    Expectations {
        audience: "spiffe://example.org/ledger",
        environment: Some("prod"),
        now: NOW,
        proof: Proof::None,
    }
}

fn refused(v: &Validator, token: &str, e: &Expectations<'_>) -> String {
    v.validate(token, e).unwrap_err().to_string()
}

#[test]
fn a_good_token_validates_and_again_from_the_cache() {
    let k = key();
    let token = jws::encode(&k, "JWT", &claims()).unwrap();
    let v = validator(&k);
    let c = v.validate(&token, &expect()).unwrap();
    assert_eq!(c.sub, "spiffe://example.org/payments/api");
    assert_eq!(c.plane.as_deref(), Some("payments"));
    // The cached path still checks time, audience and environment.
    assert!(v.validate(&token, &expect()).is_ok());
    let later = Expectations {
        now: NOW + 400,
        ..expect()
    };
    assert!(refused(&v, &token, &later).contains("expired"));
    let other = Expectations {
        audience: "spiffe://example.org/other",
        ..expect()
    };
    assert!(refused(&v, &token, &other).contains("aud"));
}

#[test]
fn header_attacks_are_refused() {
    let k = key();
    let v = validator(&k);
    let kid = k.kid().to_string();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"alg": "none", "kid": kid}), "alg `none`"),
        (json!({"alg": "HS256", "kid": kid}), "symmetric alg"),
        (json!({"alg": "RS256", "kid": kid}), "only ES256"),
        (json!({"kid": kid}), "no `alg`"),
        (
            json!({"alg": "ES256", "kid": "nope"}),
            "unknown signing key",
        ),
        (json!({"alg": "ES256"}), "no `kid`"),
        (
            json!({"alg": "ES256", "kid": kid, "jku": "https://evil/jwks"}),
            "never fetches",
        ),
        (
            json!({"alg": "ES256", "kid": kid, "x5u": "https://evil/cert"}),
            "never fetches",
        ),
        (
            json!({"alg": "ES256", "kid": kid, "jwk": k.public_key().jwk()}),
            "embeds a key",
        ),
        (
            json!({"alg": "ES256", "kid": kid, "crit": ["exp"], "exp": 1}),
            "crit",
        ),
        (
            json!({"alg": "ES256", "kid": kid, "typ": "dpop+jwt"}),
            "not an access token",
        ),
        (json!({"alg": "ES256", "kid": 7}), "must be a string"),
    ];
    for (header, want) in cases {
        let token = raw_token(&k, &header, &claims());
        let err = refused(&v, &token, &expect());
        assert!(err.contains(want), "{header}: {err}");
    }
}

#[test]
fn alg_none_and_hs256_with_the_public_key_as_secret_are_refused() {
    let k = key();
    let v = validator(&k);
    let unsigned = format!(
        "{}.{}.",
        B64URL.encode(json!({"alg": "none", "kid": k.kid()}).to_string()),
        B64URL.encode(claims().to_string())
    );
    assert!(refused(&v, &unsigned, &expect()).contains("alg `none`"));
    // The classic confusion: HMAC keyed with the public key's bytes.
    let input = format!(
        "{}.{}",
        B64URL.encode(json!({"alg": "HS256", "kid": k.kid()}).to_string()),
        B64URL.encode(claims().to_string())
    );
    let secret = serde_json::to_vec(k.public_key().jwk()).unwrap();
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let forged = format!("{input}.{}", B64URL.encode(mac.as_ref()));
    assert!(refused(&v, &forged, &expect()).contains("symmetric"));
}

#[test]
fn payload_and_claim_problems_are_refused() {
    let k = key();
    let v = validator(&k);
    let good = jws::encode(&k, "JWT", &claims()).unwrap();
    // Tampered payload: the signature no longer covers it.
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    let mut c = claims();
    c["sub"] = json!("spiffe://example.org/admin");
    parts[1] = B64URL.encode(c.to_string());
    assert!(refused(&v, &parts.join("."), &expect()).contains("signature"));

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        jws::encode(&k, "JWT", &c).unwrap()
    };
    let cases: Vec<(String, &str)> = vec![
        (with(&|c| c["iss"] = json!("https://evil")), "iss"),
        (
            with(&|c| c["aud"] = json!("spiffe://example.org/other")),
            "aud",
        ),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            "payload",
        ),
        (
            with(&|c| c["aud"] = json!(["a", "spiffe://example.org/ledger"])),
            "",
        ),
        (with(&|c| c["exp"] = json!(NOW - 31)), "expired"),
        (with(&|c| c["nbf"] = json!(NOW + 31)), "not valid before"),
        (
            with(&|c| c["environment"] = json!("dev")),
            "a `dev` token presented in `prod`",
        ),
        (with(&|c| c["sub"] = json!("payments-api")), "SPIFFE"),
        (
            with(&|c| c["cnf"] = json!({"x5t#S256": "abc"})),
            "mutual TLS",
        ),
        (with(&|c| c["cnf"] = json!({"jkt": "abc"})), "DPoP"),
    ];
    for (token, want) in cases {
        match v.validate(&token, &expect()) {
            Ok(_) => assert!(want.is_empty(), "accepted, wanted `{want}`"),
            Err(e) => assert!(
                !want.is_empty() && e.to_string().contains(want),
                "{e} / {want}"
            ),
        }
    }
    // Within the skew is still fine.
    assert!(
        v.validate(&with(&|c| c["exp"] = json!(NOW - 5)), &expect())
            .is_ok()
    );
}

#[test]
fn bound_tokens_need_their_proof() {
    let k = key();
    let v = validator(&k);
    let mut c = claims();
    c["cnf"] = json!({"jkt": "thumb-1"});
    let token = jws::encode(&k, "JWT", &c).unwrap();
    assert!(refused(&v, &token, &expect()).contains("DPoP"));
    let wrong = Expectations {
        proof: Proof::Dpop("thumb-2"),
        ..expect()
    };
    assert!(refused(&v, &token, &wrong).contains("another key"));
    let right = Expectations {
        proof: Proof::Dpop("thumb-1"),
        ..expect()
    };
    assert!(v.validate(&token, &right).is_ok());
    let cert = Expectations {
        proof: Proof::ClientCert("thumb-1"),
        ..expect()
    };
    assert!(v.validate(&token, &cert).is_err());

    // An unbound token is accepted over mutual TLS (the connection proves nothing the
    // token asks for), but not with a DPoP proof: the proof would vouch for any token.
    let unbound = jws::encode(&k, "JWT", &claims()).unwrap();
    assert!(v.validate(&unbound, &cert).is_ok());
    assert!(refused(&v, &unbound, &right).contains("not bound to a key"));
}

#[test]
fn size_and_shape_limits() {
    let k = key();
    let v = validator(&k).with_max_bytes(1024);
    let mut c = claims();
    c["pad"] = json!("x".repeat(2000));
    let big = jws::encode(&k, "JWT", &c).unwrap();
    assert!(refused(&v, &big, &expect()).contains("more than the 1024"));
    for junk in [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d.e",
        "e30.e30.e30",
        "!!.??.**",
        "eyJhbGciOiJFUzI1NiJ9.e30.AA==",
    ] {
        assert!(v.validate(junk, &expect()).is_err(), "{junk}");
    }
}

struct RevokeSub(&'static str);
impl RevocationCheck for RevokeSub {
    fn revoked(&self, _kid: &str, claims: &Claims) -> Option<String> {
        (claims.sub == self.0).then(|| format!("{} was revoked", claims.sub))
    }
}

#[test]
fn the_revocation_hook_is_consulted_even_for_cached_tokens() {
    let k = key();
    let token = jws::encode(&k, "JWT", &claims()).unwrap();
    let open = validator(&k);
    assert!(open.validate(&token, &expect()).is_ok());
    let v = validator(&k).with_revocation(Arc::new(RevokeSub("spiffe://example.org/payments/api")));
    assert!(refused(&v, &token, &expect()).contains("revoked"));
    assert!(refused(&v, &token, &expect()).contains("revoked"));
}

/// Introspection checks what the issuer alone can: signature, issuer, times (`exp`
/// without skew) and revocation, but not the audience, environment or binding the
/// resource server checks itself.
#[test]
fn introspection_checks_what_the_issuer_knows() {
    let k = key();
    let mut bound = claims();
    bound["cnf"] = json!({"jkt": "thumb"});
    bound["environment"] = json!("dev");
    let token = jws::encode(&k, "JWT", &bound).unwrap();
    let v = validator(&k);
    let c = v.introspect(&token, NOW).unwrap();
    assert_eq!(c.jti, "t1");
    // The local check refuses it (no proof, wrong environment); introspection does not.
    assert!(v.validate(&token, &expect()).is_err());
    // `exp` is the issuer's own: no skew past it, but the skew still covers `nbf`.
    let e = v.introspect(&token, NOW + 300).unwrap_err().to_string();
    assert!(e.contains("expired"), "{e}");
    assert!(v.introspect(&token, NOW + 299).is_ok());
    assert!(v.introspect(&token, NOW - 20).is_ok());
    assert!(v.introspect(&token, NOW - 60).is_err());
    let revoking =
        validator(&k).with_revocation(Arc::new(RevokeSub("spiffe://example.org/payments/api")));
    let e = revoking.introspect(&token, NOW).unwrap_err().to_string();
    assert!(e.contains("revoked"), "{e}");
    // Another issuer's token, another key, garbage.
    let mut foreign = claims();
    foreign["iss"] = json!("https://elsewhere.test");
    assert!(
        v.introspect(&jws::encode(&k, "JWT", &foreign).unwrap(), NOW)
            .is_err()
    );
    assert!(validator(&key()).introspect(&token, NOW).is_err());
    assert!(v.introspect("not.a.token", NOW).is_err());
}

#[test]
fn a_key_that_left_the_set_no_longer_verifies() {
    let (old, new) = (key(), key());
    let token = jws::encode(&old, "JWT", &claims()).unwrap();
    let both = Validator::new(
        ISS,
        [old.public_key().clone(), new.public_key().clone()],
        30,
    );
    assert!(both.validate(&token, &expect()).is_ok());
    let only_new = Validator::new(ISS, [new.public_key().clone()], 30);
    assert!(refused(&only_new, &token, &expect()).contains("unknown signing key"));
}

fn assertion(k: &SigningKey, f: impl Fn(&mut Value)) -> String {
    let mut c = json!({
        "iss": "spiffe://example.org/payments/api", "sub": "spiffe://example.org/payments/api",
        "aud": "https://steward.test/oauth2/token", "exp": NOW + 60, "iat": NOW, "jti": "a-1",
    });
    f(&mut c);
    jws::encode(k, "JWT", &c).unwrap()
}

fn rules() -> AssertionRules {
    AssertionRules {
        audiences: vec!["https://steward.test/oauth2/token".into(), ISS.into()],
        max_lifetime: 300,
        skew: 30,
    }
}

#[test]
fn client_assertions_are_single_use_short_lived_and_audience_checked() {
    let k = key();
    let keys = [k.public_key().clone()];
    let replay = ReplayCache::new(NOW - 10, 1000);
    let verify = |token: &str| -> Result<VerifiedAssertion, TokenError> {
        let a = decode_client_assertion(token)?;
        a.verify(&keys, &rules(), NOW, &replay)
    };
    let good = assertion(&k, |_| {});
    let ok = verify(&good).unwrap();
    assert_eq!(ok.client_id, "spiffe://example.org/payments/api");
    assert!(
        verify(&good)
            .unwrap_err()
            .to_string()
            .contains("already used")
    );
    // Same jti from another client is a different assertion.
    let cases: Vec<(String, &str)> = vec![
        (
            assertion(&k, |c| c["aud"] = json!("https://elsewhere/token")),
            "token endpoint",
        ),
        (
            assertion(&k, |c| {
                c["jti"] = json!("a-2");
                c["exp"] = json!(NOW + 3600)
            }),
            "at most 300",
        ),
        (
            assertion(&k, |c| {
                c["jti"] = json!("a-3");
                c["exp"] = json!(NOW - 60)
            }),
            "expired",
        ),
        (
            assertion(&k, |c| {
                c["jti"] = json!("a-4");
                c["iss"] = json!("spiffe://example.org/x")
            }),
            "`iss` and `sub`",
        ),
        (assertion(&k, |c| c["jti"] = json!("")), "jti"),
        (
            assertion(&k, |c| {
                c["jti"] = json!("a-5");
                c["iat"] = json!(NOW - 200)
            }),
            "before the control plane started",
        ),
        (
            assertion(&key(), |c| c["jti"] = json!("a-6")),
            "unknown signing key",
        ),
    ];
    for (token, want) in cases {
        let err = verify(&token).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
    // Audience as an array naming the issuer is accepted.
    let arr = assertion(&k, |c| {
        c["jti"] = json!("a-7");
        c["aud"] = json!(["x", ISS])
    });
    assert!(verify(&arr).is_ok());
}

/// Project Wycheproof's ECDSA P-256/SHA-256 vectors in IEEE P1363 (r ‖ s) form, which is
/// JWS's ES256 encoding, each key going through `Jwk::to_public_key` as client keys do.
#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    use wycheproof::TestResult;
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for group in &set.test_groups {
        let point: &[u8] = &group.key.key;
        let jwk = Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: B64URL.encode(&point[1..33]),
            y: B64URL.encode(&point[33..65]),
            kid: None,
            alg: None,
            use_: None,
        };
        let key = jwk.to_public_key();
        for t in &group.tests {
            let ok = key
                .as_ref()
                .map(|k| k.verify(&t.msg, &t.sig).is_ok())
                .unwrap_or(false);
            match t.result {
                TestResult::Valid => {
                    assert!(ok, "tc {} ({}) should verify", t.tc_id, t.comment);
                    valid += 1;
                }
                TestResult::Invalid => {
                    assert!(!ok, "tc {} ({}) must not verify", t.tc_id, t.comment);
                    invalid += 1;
                }
                TestResult::Acceptable => {}
            }
        }
    }
    assert!(
        valid > 50 && invalid > 50,
        "ran {valid} valid and {invalid} invalid vectors"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validation_never_panics_on_arbitrary_text(s in ".{0,600}") {
        let k = key();
        let v = validator(&k);
        prop_assert!(v.validate(&s, &expect()).is_err());
        prop_assert!(v.introspect(&s, NOW).is_err());
        prop_assert!(decode_client_assertion(&s).is_err() || s.split('.').count() == 3);
    }

    #[test]
    fn validation_never_panics_on_well_formed_parts(h in prop::collection::vec(any::<u8>(), 0..200),
                                                    p in prop::collection::vec(any::<u8>(), 0..400),
                                                    sig in prop::collection::vec(any::<u8>(), 0..80)) {
        let k = key();
        let v = validator(&k);
        let token = format!("{}.{}.{}", B64URL.encode(&h), B64URL.encode(&p), B64URL.encode(&sig));
        prop_assert!(v.validate(&token, &expect()).is_err());
    }

    #[test]
    fn any_flipped_byte_breaks_a_token(pos in 0usize..400, bit in 0u8..8) {
        let k = key();
        let token = jws::encode(&k, "JWT", &claims()).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(t) = String::from_utf8(bytes) && t != token {
            prop_assert!(validator(&k).validate(&t, &expect()).is_err());
        }
    }
}

fn dpop_proof(key: &SigningKey, f: impl Fn(&mut Value, &mut Value)) -> String {
    let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_key().jwk()});
    header["jwk"].as_object_mut().unwrap().remove("kid");
    let mut claims = json!({"jti": uuid_like(), "htm": "POST", "htu": "https://steward.test/oauth2/token", "iat": NOW});
    f(&mut header, &mut claims);
    raw_token(key, &header, &claims)
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("proof-{}", N.fetch_add(1, Ordering::SeqCst))
}

fn dpop_req(access_token: Option<&str>) -> DpopRequest<'_> {
    DpopRequest {
        method: "POST",
        url: "https://Steward.test:443/oauth2/token?x=1",
        access_token,
        now: NOW,
        max_age: 60,
        skew: 5,
    }
}

#[test]
fn dpop_proofs_bind_tokens_to_a_key() {
    let client = key();
    let replay = ReplayCache::new(NOW - 10, 1000);
    let proof = dpop_proof(&client, |_, _| {});
    let jkt = verify_dpop(&proof, &dpop_req(None), &replay).unwrap();
    assert_eq!(jkt, client.public_key().jwk().thumbprint());
    assert!(
        verify_dpop(&proof, &dpop_req(None), &replay)
            .unwrap_err()
            .to_string()
            .contains("already used")
    );

    // A token bound to that key validates only with a proof from it, carrying its hash.
    let k = key();
    let mut c = claims();
    c["cnf"] = json!({"jkt": jkt});
    let token = jws::encode(&k, "JWT", &c).unwrap();
    let ath = B64URL.encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    let with_ath = dpop_proof(&client, |_, c| c["ath"] = json!(ath));
    let jkt = verify_dpop(&with_ath, &dpop_req(Some(&token)), &replay).unwrap();
    let v = validator(&k);
    assert!(
        v.validate(
            &token,
            &Expectations {
                proof: Proof::Dpop(&jkt),
                ..expect()
            }
        )
        .is_ok()
    );
    let thief = key();
    let stolen = dpop_proof(&thief, |_, c| c["ath"] = json!(ath));
    let other = verify_dpop(&stolen, &dpop_req(Some(&token)), &replay).unwrap();
    assert!(
        v.validate(
            &token,
            &Expectations {
                proof: Proof::Dpop(&other),
                ..expect()
            }
        )
        .is_err()
    );

    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            dpop_proof(&client, |h, _| h["typ"] = json!("JWT")),
            None,
            "dpop+jwt",
        ),
        (
            dpop_proof(&client, |h, _| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
            None,
            "`jwk`",
        ),
        (
            dpop_proof(&client, |h, _| h["jwk"]["d"] = json!("c2VjcmV0")),
            None,
            "private key",
        ),
        (
            dpop_proof(&client, |h, _| h["alg"] = json!("HS256")),
            None,
            "symmetric",
        ),
        (
            dpop_proof(&client, |h, _| h["jwk"] = json!(thief.public_key().jwk())),
            None,
            "signature",
        ),
        (
            dpop_proof(&client, |_, c| c["htm"] = json!("GET")),
            None,
            "htm",
        ),
        (
            dpop_proof(&client, |_, c| {
                c["htu"] = json!("https://evil.test/oauth2/token")
            }),
            None,
            "htu",
        ),
        (
            dpop_proof(&client, |_, c| c["iat"] = json!(NOW - 600)),
            None,
            "expired",
        ),
        (
            dpop_proof(&client, |_, c| c["iat"] = json!(NOW + 600)),
            None,
            "not valid before",
        ),
        (dpop_proof(&client, |_, _| {}), Some("another-token"), "ath"),
        (
            dpop_proof(&client, |_, c| c["ath"] = json!("wrong")),
            Some("another-token"),
            "another access token",
        ),
    ];
    for (proof, token, want) in cases {
        let err = verify_dpop(&proof, &dpop_req(token), &replay)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
}

/// External issuers: an RS256 issuer (a Kubernetes-style token) and an ES256 one; trust
/// boundary checks.
#[test]
fn foreign_tokens_are_checked_against_the_issuer_boundary() {
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
    use steward_token::foreign::{ForeignKeySet, ForeignRules, validate_foreign};

    let rsa = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let public: PublicKeyComponents<Vec<u8>> = rsa.public_key().into();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k8s-1", "use": "sig",
        "n": B64URL.encode(&public.n), "e": B64URL.encode(&public.e)}]});
    let keys = ForeignKeySet::from_jwks(&jwks).unwrap();
    let sign_rs256 = |header: &Value, claims: &Value| {
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{input}.{}", B64URL.encode(sig))
    };
    let k8s = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": "https://kubernetes.default.svc", "aud": ["https://steward.acme.example"],
            "sub": "system:serviceaccount:payments:api", "exp": NOW + 600, "iat": NOW, "nbf": NOW,
            "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api"}}});
        f(&mut c);
        sign_rs256(&json!({"alg": "RS256", "kid": "k8s-1"}), &c)
    };
    let allowed = vec!["system:serviceaccount:payments:*".to_owned()];
    let rules = ForeignRules {
        issuer: "https://kubernetes.default.svc",
        audience: "https://steward.acme.example",
        allowed_subjects: &allowed,
        now: NOW,
        skew: 30,
    };
    let claims = validate_foreign(&k8s(&|_| {}), &keys, &rules).unwrap();
    assert_eq!(
        steward_token::foreign::render("spiffe://acme.example/ns/{kubernetes.io.namespace}/sa/{kubernetes.io.serviceaccount.name}", &claims).unwrap(),
        "spiffe://acme.example/ns/payments/sa/api"
    );
    let cases: Vec<(String, &str)> = vec![
        (k8s(&|c| c["iss"] = json!("https://evil")), "iss"),
        (
            k8s(&|c| c["aud"] = json!("https://kubernetes.default.svc")),
            "aud",
        ),
        (
            k8s(&|c| c["sub"] = json!("system:serviceaccount:kube-system:admin")),
            "allowed subjects",
        ),
        (k8s(&|c| c["exp"] = json!(NOW - 100)), "expired"),
        (
            k8s(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "without an expiry",
        ),
        (
            sign_rs256(&json!({"alg": "RS256", "kid": "other"}), &json!({})),
            "unknown signing key",
        ),
        (
            sign_rs256(&json!({"alg": "ES256", "kid": "k8s-1"}), &json!({})),
            "does not match the key type",
        ),
        (
            sign_rs256(
                &json!({"alg": "RS256", "kid": "k8s-1", "jku": "https://evil/jwks"}),
                &json!({}),
            ),
            "never fetches",
        ),
        (
            sign_rs256(&json!({"alg": "HS256", "kid": "k8s-1"}), &json!({})),
            "symmetric",
        ),
    ];
    for (token, want) in cases {
        let err = validate_foreign(&token, &keys, &rules)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
    // A tampered payload fails the RSA signature.
    let good = k8s(&|_| {});
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = B64URL.encode(json!({"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:payments:admin"}).to_string());
    assert!(
        validate_foreign(&parts.join("."), &keys, &rules)
            .unwrap_err()
            .to_string()
            .contains("signature")
    );
    // Another trust domain's JWT-SVID: its bundle marks keys `use: jwt-svid`; issuers may
    // add an informational `x5t` header.
    let other = key();
    let mut bundle_key = serde_json::to_value(other.public_key().jwk()).unwrap();
    bundle_key["use"] = json!("jwt-svid");
    let bundle = ForeignKeySet::from_jwks(&json!({"keys": [bundle_key]})).unwrap();
    let svid = raw_token(
        &other,
        &json!({"alg": "ES256", "kid": other.kid(), "typ": "JWT", "x5t": "aGVsbG8"}),
        &json!({"iss": "spiffe://partner.example", "aud": "https://steward.acme.example",
                "sub": "spiffe://partner.example/billing", "exp": NOW + 60}),
    );
    let allowed_svid = vec!["spiffe://partner.example/*".to_owned()];
    let svid_rules = ForeignRules {
        issuer: "spiffe://partner.example",
        allowed_subjects: &allowed_svid,
        ..rules
    };
    assert!(validate_foreign(&svid, &bundle, &svid_rules).is_ok());
    // Our own tokens never accept `x5t`.
    assert!(validator(&other).validate(&svid, &expect()).is_err());

    // Short RSA keys and unknown key types are refused when declared.
    let short = json!({"keys": [{"kty": "RSA", "n": B64URL.encode([1u8; 128]), "e": "AQAB"}]});
    assert!(
        ForeignKeySet::from_jwks(&short)
            .unwrap_err()
            .to_string()
            .contains("2048")
    );
}
