//! The token service over HTTP: discovery, JWKS and bundle, `client_credentials` with
//! `private_key_jwt`, every refusal as an RFC 6749 error with evidence, rotation with an
//! overlap window.

use super::*;
use steward_token::{Expectations, Jwk, Proof, SigningKey, Validator, jws};

pub(crate) const CLIENT: &str = "spiffe://acme.example/ns/payments/sa/token-test";
pub(crate) const AUDIENCE: &str = "spiffe://acme.example/ns/payments/sa/ledger";

/// The payments plane's grant to `CLIENT`, which is registered through the API:
/// registering an identity grants nothing, so its plane's policy names it, with exactly
/// what it intends (`CLIENT_INTENDED`).
const CLIENT_GRANT: &str = r#"@id("payments-token-test")
permit (
  principal == Steward::Identity::"spiffe://acme.example/ns/payments/sa/token-test",
  action,
  resource
)
when {
  (resource == Steward::Capability::"payments.charge" &&
    action == Steward::Action::"invoke") ||
  (resource == Steward::Capability::"payments.read" &&
    action == Steward::Action::"read")
};
"#;

/// What `CLIENT` intends: charging, and reading charges.
fn client_intended() -> Value {
    json!([
        {"capability": "payments.charge", "actions": ["invoke"]},
        {"capability": "payments.read", "actions": ["read"]}
    ])
}

/// The example repository with the payments plane's grant to `CLIENT`.
pub(crate) fn example_with_client() -> Vec<steward_governance::SourceFile> {
    let mut files = read_dir(&example_repo()).unwrap();
    files.push(steward_governance::SourceFile {
        path: "policies/payments/token-test.cedar".into(),
        content: CLIENT_GRANT.into(),
    });
    files
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A client assertion for `CLIENT`, changed by `f`.
pub(crate) fn assertion(base: &str, key: &SigningKey, f: impl Fn(&mut Value)) -> String {
    let mut c = json!({
        "iss": CLIENT, "sub": CLIENT, "aud": format!("{base}{}", path(RouteId::Token, &[])),
        "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4().to_string(),
    });
    f(&mut c);
    jws::encode(key, "JWT", &c).unwrap()
}

pub(crate) async fn post_form(
    env: &Env,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = env
        .http
        .post(env.url(RouteId::Token, &[]))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Registers `CLIENT` in the payments plane with `key`.
pub(crate) async fn register_client(env: &Env, key: &SigningKey) {
    env.apply_files(&example_with_client()).await;
    let jwk = key.public_key().jwk();
    let (st, body) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            Some(&env.admin),
            Some(json!({
                "spiffe_id": CLIENT, "plane": "payments", "owner": "payments-team",
                "environment": "prod", "kind": "service", "classification": "confidential",
                "intended": client_intended(),
                "credentials": {
                    "token_ttl_secs": 3600,
                    "public_keys": [{"kid": "test-1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}],
                },
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

async fn validator(env: &Env) -> Validator {
    let (st, jwks) = env.route(RouteId::Jwks, &[], None, None).await;
    assert_eq!(st, StatusCode::OK);
    let keys = jwks["keys"].as_array().unwrap().iter().map(|k| {
        serde_json::from_value::<Jwk>(k.clone())
            .unwrap()
            .to_public_key()
            .unwrap()
    });
    Validator::new(env.base.clone(), keys, 30)
}

fn expect(now: i64) -> Expectations<'static> {
    Expectations {
        audience: AUDIENCE,
        environment: Some("prod"),
        now,
        proof: Proof::None,
    }
}

/// A token request's parameters.
type Form = Vec<(&'static str, String)>;

pub(crate) const BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client registered with its own key (`register_client`), and its token requests.
struct TokenClient<'a> {
    env: &'a Env,
    key: SigningKey,
}

impl<'a> TokenClient<'a> {
    async fn registered(env: &'a Env) -> Self {
        let key = SigningKey::generate().unwrap().0;
        register_client(env, &key).await;
        Self { env, key }
    }

    /// A fresh, valid client assertion.
    fn assertion(&self) -> String {
        assertion(&self.env.base, &self.key, |_| {})
    }

    async fn send(&self, v: Form) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(self.env, &pairs).await
    }
}

/// A `client_credentials` request with assertion `a`, for two scopes and longer than
/// the plane allows.
fn form(a: &str) -> Form {
    vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_assertion_type", BEARER.to_owned()),
        ("client_assertion", a.to_owned()),
        ("audience", AUDIENCE.to_owned()),
        ("scope", "payments.charge payments.read".to_owned()),
        ("expires_in", "3600".to_owned()),
    ]
}

/// Discovery points at this server; a token is issued within the plane's lifetime, and a
/// third-party JWT-SVID validator accepts it with our bundle (and refuses it for another
/// audience or once tampered with).
pub(crate) async fn tokens_are_discoverable_issued_and_third_party_valid(env: Env) {
    // Discovery points at this server.
    let (st, meta) = env
        .route(RouteId::OpenidConfiguration, &[], None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(meta["issuer"], env.base);
    assert_eq!(meta["token_endpoint"], env.url(RouteId::Token, &[]));
    assert_eq!(meta["jwks_uri"], env.url(RouteId::Jwks, &[]));
    let (_, bundle) = env.route(RouteId::SpiffeBundle, &[], None, None).await;
    assert_eq!(bundle["keys"][0]["use"], "jwt-svid");

    let c = TokenClient::registered(&env).await;
    let send = |v: Form| c.send(v);
    let good = c.assertion();
    let (st, headers, body) = send(form(&good)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    // The plane's 900 s caps the 3600 s asked for and the identity's 3600 s.
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "payments.charge payments.read");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let v = validator(&env).await;
    let claims = v.validate(&token, &expect(now())).unwrap();
    assert_eq!(claims.sub, CLIENT);
    assert_eq!(claims.plane.as_deref(), Some("payments"));
    assert_eq!(claims.exp - claims.iat, 900);

    // A third-party JWT-SVID validator accepts it with our bundle, and refuses it for
    // another audience or once tampered with.
    if let Some(python) =
        steward_testkit::python_with_spiffe("tokens_are_discoverable_issued_and_third_party_valid")
    {
        let (_, bundle) = env.route(RouteId::SpiffeBundle, &[], None, None).await;
        let check = |token: &str, audience: &str| {
            let input = json!({"trust_domain": "acme.example", "bundle": bundle, "audience": audience, "token": token});
            let mut child = std::process::Command::new(&python)
                .arg(steward_testkit::ci_file("jwt_svid_check.py"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run the py-spiffe check");
            std::io::Write::write_all(
                &mut child.stdin.take().unwrap(),
                input.to_string().as_bytes(),
            )
            .unwrap();
            let out = child.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (ok, out) = check(&token, AUDIENCE);
        assert!(ok, "py-spiffe refused our token: {out}");
        assert_eq!(out.trim(), CLIENT);
        let (ok, out) = check(&token, "spiffe://acme.example/elsewhere");
        assert!(!ok && out.contains("refused"), "{out}");
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(
                &json!({"sub": "spiffe://acme.example/admin", "aud": AUDIENCE, "exp": now() + 60}),
            )
            .unwrap(),
        );
        parts[1] = &forged;
        let (ok, out) = check(&parts.join("."), AUDIENCE);
        assert!(!ok && out.contains("refused"), "{out}");
    }
}

/// The same client assertion twice: the second is a replay.
pub(crate) async fn a_client_assertion_is_single_use(env: Env) {
    let c = TokenClient::registered(&env).await;
    let send = |v: Form| c.send(v);
    let good = c.assertion();
    let (st, _, body) = send(form(&good)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // The same assertion again is a replay.
    let (st, headers, body) = send(form(&good)).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    assert_eq!(headers["cache-control"], "no-store");
}

/// Every refusal names its RFC 6749 error, forged assertions included, and each is a
/// refusal event that never carries the assertion.
pub(crate) async fn every_refusal_names_its_oauth_error_and_is_evidence(env: Env) {
    let c = TokenClient::registered(&env).await;
    let send = |v: Form| c.send(v);
    let (key, good) = (&c.key, c.assertion());
    // Every refusal, with its RFC 6749 error.
    let stranger = SigningKey::generate().unwrap().0;
    let mut cases: Vec<(Form, StatusCode, &str, &str)> = vec![
        (
            vec![("client_assertion", good.clone())],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type",
        ),
        (
            vec![("grant_type", "password".into())],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "password",
        ),
        (
            vec![("grant_type", "client_credentials".into())],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "private_key_jwt",
        ),
        (
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", CLIENT.into()),
                ("client_secret", "hunter2".into()),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "legacy-key",
        ),
        (
            vec![
                ("grant_type", "client_credentials".into()),
                ("client_secret", "hunter2".into()),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id",
        ),
    ];
    let with = |f: &dyn Fn(&mut Value)| form(&assertion(&env.base, key, f));
    let replace = |mut v: Vec<(&'static str, String)>, k: &'static str, val: &str| {
        v.retain(|(kk, _)| *kk != k);
        if !val.is_empty() {
            v.push((k, val.to_owned()));
        }
        v
    };
    cases.extend([
        (
            form(&assertion(&env.base, &stranger, |_| {})),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown signing key",
        ),
        (
            form(&assertion(&env.base, &stranger, |c| {
                c["iss"] = json!("spiffe://acme.example/x");
                c["sub"] = json!("spiffe://acme.example/x")
            })),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no identity",
        ),
        (
            with(&|c| c["aud"] = json!("https://elsewhere/token")),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "token endpoint",
        ),
        (
            with(&|c| c["exp"] = json!(now() - 120)),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "expired",
        ),
        (
            with(&|c| c["exp"] = json!(now() + 86_400)),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "at most",
        ),
        (
            replace(with(&|_| {}), "scope", "payments.charge platform.deploy"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "platform.deploy",
        ),
        (
            replace(with(&|_| {}), "scope", "no.such.capability"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "no.such.capability",
        ),
        (
            replace(with(&|_| {}), "audience", ""),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "audience",
        ),
        (
            replace(with(&|_| {}), "audience", "two words"),
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "audience",
        ),
        (
            replace(with(&|_| {}), "expires_in", "-5"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expires_in",
        ),
        (
            replace(with(&|_| {}), "client_id", "spiffe://acme.example/other"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id",
        ),
        (
            replace(with(&|_| {}), "client_assertion_type", "urn:other"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_assertion_type",
        ),
    ]);
    let mut refusals = cases.len();
    for (form, status, error, hint) in cases {
        let (st, headers, body) = send(form.clone()).await;
        assert_eq!(st, status, "{form:?}: {body}");
        assert_eq!(body["error"], error, "{form:?}: {body}");
        let d = body["error_description"].as_str().unwrap();
        assert!(d.contains(hint), "{hint}: {d}");
        assert_eq!(headers["cache-control"], "no-store");
    }

    // Forged client assertions reach the same validation code over HTTP: each is an
    // `invalid_client` naming the problem (and a refusal event, counted below).
    let b64 = |v: Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let body = json!({"iss": CLIENT, "sub": CLIENT, "aud": env.url(RouteId::Token, &[]),
        "iat": now(), "exp": now() + 60, "jti": "forged"});
    let signed_with = |header: Value| {
        let input = format!("{}.{}", b64(header), b64(body.clone()));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!(
            "{input}.{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig)
        )
    };
    let forged = [
        (
            format!("{}.{}.", b64(json!({"alg": "none"})), b64(body.clone())),
            "alg `none`",
        ),
        (
            signed_with(json!({"alg": "HS256", "kid": "test-1"})),
            "symmetric",
        ),
        (
            signed_with(json!({"alg": "ES256", "jku": "https://evil/jwks"})),
            "never fetches",
        ),
        (
            signed_with(json!({"alg": "ES256", "x5u": "https://evil/cert"})),
            "never fetches",
        ),
        (
            signed_with(json!({"alg": "ES256", "crit": ["exp"]})),
            "crit",
        ),
        (
            format!(
                "{}.{}.AAAA",
                b64(json!({"alg": "ES256"})),
                "A".repeat(9_000)
            ),
            "more than",
        ),
    ];
    refusals += forged.len();
    for (assertion, want) in forged {
        let (st, _, body) = send(form(&assertion)).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{body}"
        );
        assert!(
            body["error_description"].as_str().unwrap().contains(want),
            "{want}: {body}"
        );
    }

    let refused = events_when(&env, "kind=credential.refused&limit=100", |a| {
        a.len() >= refusals
    })
    .await;
    let refused = refused.as_array().unwrap();
    assert!(refused.len() >= refusals, "{}: {refused:?}", refused.len());
    assert!(refused.iter().any(|e| {
        e["decision"]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("invalid_scope: `platform.deploy`"))
    }));
    assert!(
        !serde_json::to_string(refused).unwrap().contains(&good),
        "assertions never reach the evidence log"
    );
}

/// Token requests that are not forms: wrong media type, a repeated parameter, oversized,
/// undecodable.
pub(crate) async fn malformed_token_requests_are_refused(env: Env) {
    // Malformed bodies: wrong media type, repeated parameter, oversized.
    let url = env.url(RouteId::Token, &[]);
    let r = env
        .http
        .post(&url)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    for body in [
        "grant_type=client_credentials&grant_type=client_credentials".to_owned(),
        format!("grant_type=client_credentials&pad={}", "x".repeat(100_000)),
        "%%%%=&&&==".to_owned(),
    ] {
        let r = env
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error());
        let e: Value = r.json().await.unwrap();
        assert!(e["error"].as_str().is_some(), "{e}");
    }
}

/// An issuance is an evidence event naming the token and the client key, never the
/// token or the assertion.
pub(crate) async fn an_issuance_is_evidence_without_the_token(env: Env) {
    let c = TokenClient::registered(&env).await;
    let send = |v: Form| c.send(v);
    let good = c.assertion();
    let (st, _, body) = send(form(&good)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = validator(&env)
        .await
        .validate(&token, &expect(now()))
        .unwrap();
    let issued = events_when(&env, "kind=credential.issued", |a| !a.is_empty()).await;
    let issued = issued.as_array().unwrap();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["principal"], CLIENT);
    assert_eq!(issued[0]["token_id"], claims.jti);
    assert_eq!(issued[0]["details"]["client_key"], "test-1");
    let all = serde_json::to_string(issued).unwrap();
    assert!(
        !all.contains(&token) && !all.contains(&good),
        "tokens never reach the evidence log"
    );
}

/// Rotation: the new key signs at once, the old one still verifies, the bundle's
/// sequence moves on; only an admin may rotate.
pub(crate) async fn key_rotation_signs_anew_and_keeps_old_tokens_valid(env: Env) {
    let (_, bundle) = env.route(RouteId::SpiffeBundle, &[], None, None).await;
    let first_sequence = bundle["spiffe_sequence"].as_i64().unwrap();
    let c = TokenClient::registered(&env).await;
    let send = |v: Form| c.send(v);
    let (st, _, body) = send(form(&c.assertion())).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    // Rotation: the new key signs at once, the old one still verifies.
    let (st, rotated) = env
        .route(RouteId::RotateKeys, &[], Some(&env.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert!(rotated["previous_verifies_until"].is_string());
    let (_, jwks) = env.route(RouteId::Jwks, &[], None, None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let (_, bundle) = env.route(RouteId::SpiffeBundle, &[], None, None).await;
    assert!(bundle["spiffe_sequence"].as_i64().unwrap() > first_sequence);
    let v = validator(&env).await;
    assert!(
        v.validate(&token, &expect(now())).is_ok(),
        "the old key verifies during the overlap"
    );
    let (st, _, body) = send(form(&c.assertion())).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let fresh = body["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            fresh.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid);
    let (_, keys) = env.route(RouteId::Keys, &[], Some(&env.admin), None).await;
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["signing", "verifying"]);
    let au = env.credential("aud", "auditor", None).await;
    let (st, _) = env.route(RouteId::RotateKeys, &[], Some(&au), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

/// A suspended identity gets no token.
pub(crate) async fn a_suspended_identity_gets_no_token(env: Env) {
    let c = TokenClient::registered(&env).await;
    let send = |v: Form| c.send(v);
    let (st, body) = env
        .route(
            RouteId::IdentityLifecycle,
            &[CLIENT],
            Some(&env.admin),
            Some(json!({"state": "suspended", "reason": "test"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, _, body) = send(form(&c.assertion())).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("suspended"),
        "{body}"
    );
}

const GATEWAY: &str = "spiffe://acme.example/ns/partners/sa/partner-gateway";
const GLOBEX: &str = "spiffe://acme.example/partners/globex/prod/orders-integration";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The example repository with `keys` registered for the identities given.
async fn apply_with_keys(env: &Env, keys: &[(&str, &SigningKey)]) {
    let mut files = read_dir(&example_repo()).unwrap();
    register_keys(&mut files, keys);
    env.apply_files(&files).await;
}

/// Adds `credentials.public_keys` (kid `k1`) to each identity's declaration in `files`.
fn register_keys(files: &mut [steward_governance::SourceFile], keys: &[(&str, &SigningKey)]) {
    for (id, key) in keys {
        let jwk = key.public_key().jwk();
        let line = format!("  - spiffe_id: {id}\n");
        let f = files
            .iter_mut()
            .find(|f| f.content.contains(&line))
            .unwrap();
        f.content = f.content.replace(
            &line,
            &format!(
                "{line}    credentials: {{public_keys: [{{kid: k1, kty: EC, crv: P-256, x: \"{}\", y: \"{}\"}}]}}\n",
                jwk.x, jwk.y
            ),
        );
    }
}

fn client_assertion(base: &str, id: &str, key: &SigningKey) -> String {
    jws::encode(
        key,
        "JWT",
        &json!({"iss": id, "sub": id, "aud": format!("{base}{}", path(RouteId::Token, &[])), "iat": now(), "exp": now() + 60,
                "jti": uuid::Uuid::new_v4().to_string()}),
    )
    .unwrap()
}

pub(crate) fn claims_of(token: &str) -> Value {
    serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap()
}

pub(crate) async fn token_exchange_delegates_one_hop_at_a_time(env: Env) {
    let gw_key = SigningKey::generate().unwrap().0;
    let globex_key = SigningKey::generate().unwrap().0;
    apply_with_keys(&env, &[(GATEWAY, &gw_key), (GLOBEX, &globex_key)]).await;
    let (_, meta) = env
        .route(RouteId::OpenidConfiguration, &[], None, None)
        .await;
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(EXCHANGE))
    );

    // Globex gets a token for the gateway (no scope: its own rights, decided per request).
    let a = client_assertion(&env.base, GLOBEX, &globex_key);
    let (st, _, body) = post_form(
        &env,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
            ("audience", GATEWAY),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let subject = body["access_token"].as_str().unwrap().to_owned();
    let subject_exp = claims_of(&subject)["exp"].as_i64().unwrap();

    let exchange = |subject: String, audience: &'static str, scope: Option<&'static str>| {
        let env = &env;
        let gw_key = &gw_key;
        async move {
            let a = client_assertion(&env.base, GATEWAY, gw_key);
            let mut form = vec![
                ("grant_type", EXCHANGE),
                ("client_assertion_type", BEARER),
                ("client_assertion", a.as_str()),
                ("subject_token", subject.as_str()),
                ("subject_token_type", JWT_TYPE),
                ("audience", audience),
            ];
            if let Some(s) = scope {
                form.push(("scope", s));
            }
            post_form(env, &form).await
        }
    };

    // The gateway delegates one hop: Globex's order submission to the orders service.
    let (st, headers, body) = exchange(
        subject.clone(),
        "spiffe://acme.example/ns/orders/sa/orders-api",
        Some("partner.orders.submit"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["issued_token_type"], JWT_TYPE);
    let first_hop = body["access_token"].as_str().unwrap().to_owned();
    let hop = claims_of(&first_hop);
    assert_eq!(hop["sub"], GLOBEX);
    assert_eq!(hop["aud"], "spiffe://acme.example/ns/orders/sa/orders-api");
    assert_eq!(hop["act"], json!({"sub": GATEWAY}));
    assert_eq!(hop["scope"], "partner.orders.submit");
    assert_eq!(hop["environment"], "prod");
    assert!(
        hop["exp"].as_i64().unwrap() <= subject_exp,
        "never outlives the subject token"
    );

    // Refusals: no delegate right, scope missing, a token not issued to the gateway,
    // an actor token, a wrong token type, a missing subject token.
    let (st, _, body) = exchange(subject.clone(), GATEWAY, Some("payments.charge")).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("delegate"),
        "{body}"
    );
    let (_, _, body) = exchange(subject.clone(), GATEWAY, None).await;
    assert_eq!(body["error"], "invalid_scope", "{body}");
    // The first hop's token is for the orders service, not for the gateway.
    let (_, _, body) = exchange(first_hop, GATEWAY, Some("partner.orders.submit")).await;
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(
        body["error_description"].as_str().unwrap().contains("aud"),
        "{body}"
    );
    for (extra, want) in [
        (("actor_token", subject.as_str()), "actor_token"),
        (("subject_token_type", "urn:x"), "subject_token_type"),
    ] {
        let a = client_assertion(&env.base, GATEWAY, &gw_key);
        let mut form = vec![
            ("grant_type", EXCHANGE),
            ("client_assertion_type", BEARER),
            ("client_assertion", a.as_str()),
            ("audience", GATEWAY),
            ("scope", "partner.orders.submit"),
            ("subject_token", subject.as_str()),
        ];
        if extra.0 != "subject_token_type" {
            form.push(("subject_token_type", JWT_TYPE));
        }
        form.push(extra);
        let (st, _, body) = post_form(&env, &form).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(want),
            "{body}"
        );
    }
    let a = client_assertion(&env.base, GATEWAY, &gw_key);
    let (_, _, body) = post_form(
        &env,
        &[
            ("grant_type", EXCHANGE),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
            ("audience", GATEWAY),
            ("subject_token_type", JWT_TYPE),
        ],
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("subject_token"),
        "{body}"
    );

    // Hop after hop back to the gateway: the chain grows to the maximum (4), never past it,
    // and a hop may narrow the scope but never widen it.
    let mut token = subject;
    for depth in 1..=4 {
        let (st, _, body) = exchange(token.clone(), GATEWAY, Some("partner.orders.submit")).await;
        assert_eq!(st, StatusCode::OK, "hop {depth}: {body}");
        token = body["access_token"].as_str().unwrap().to_owned();
        let mut act = &claims_of(&token)["act"];
        let mut hops = 0;
        while act.is_object() {
            hops += 1;
            act = &act["act"];
        }
        assert_eq!(hops, depth);
        if depth == 1 {
            let (_, _, body) = exchange(
                token.clone(),
                GATEWAY,
                Some("partner.orders.submit payments.charge"),
            )
            .await;
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("never widens"),
                "{body}"
            );
        }
    }
    let (st, _, body) = exchange(token.clone(), GATEWAY, Some("partner.orders.submit")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("at most 4"),
        "{body}"
    );

    // The evidence names the subject and the chain.
    let events = events_when(&env, "kind=credential.exchanged&limit=100", |a| {
        a.len() >= 5
    })
    .await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(events[0]["principal"], GLOBEX);
    assert_eq!(events[0]["actor_chain"], json!([GATEWAY]));
    assert_eq!(events[4]["actor_chain"].as_array().unwrap().len(), 4);
}

/// Posts `form` to the token endpoint with a `DPoP` header when `proof` is given.
async fn post_form_with_dpop(
    env: &Env,
    form: &[(&str, &str)],
    proof: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = env
        .http
        .post(env.url(RouteId::Token, &[]))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let resp = req
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// A DPoP-bound subject token is exchanged only with a proof of its key for the token
/// endpoint (a copy of it alone buys nothing), and the delegated token stays bound to
/// that key.
pub(crate) async fn token_exchange_takes_a_dpop_bound_subject_token_with_its_proof(env: Env) {
    let gw_key = SigningKey::generate().unwrap().0;
    let globex_key = SigningKey::generate().unwrap().0;
    apply_with_keys(&env, &[(GATEWAY, &gw_key), (GLOBEX, &globex_key)]).await;
    let endpoint = env.url(RouteId::Token, &[]);
    let holder = SigningKey::generate().unwrap().0;
    let other = SigningKey::generate().unwrap().0;
    let proof = |key: &SigningKey| {
        steward_token::new_dpop_proof(key, "POST", &endpoint, None, now()).unwrap()
    };
    // Globex's token for the gateway, bound to the holder's key.
    let a = client_assertion(&env.base, GLOBEX, &globex_key);
    let (st, body) = post_form_with_dpop(
        &env,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
            ("audience", GATEWAY),
        ],
        Some(&proof(&holder)),
    )
    .await;
    assert_eq!(
        (st, body["token_type"].as_str()),
        (StatusCode::OK, Some("DPoP")),
        "{body}"
    );
    let subject = body["access_token"].as_str().unwrap().to_owned();
    let exchange = |dpop: Option<String>| {
        let (env, gw_key, subject) = (&env, &gw_key, &subject);
        async move {
            let a = client_assertion(&env.base, GATEWAY, gw_key);
            post_form_with_dpop(
                env,
                &[
                    ("grant_type", EXCHANGE),
                    ("client_assertion_type", BEARER),
                    ("client_assertion", &a),
                    ("subject_token", subject),
                    ("subject_token_type", JWT_TYPE),
                    ("audience", "spiffe://acme.example/ns/orders/sa/orders-api"),
                    ("scope", "partner.orders.submit"),
                ],
                dpop.as_deref(),
            )
            .await
        }
    };
    // Without a proof: refused, saying what to send.
    let (st, body) = exchange(None).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{body}"
    );
    let why = body["error_description"].as_str().unwrap();
    assert!(
        why.contains("sender-bound") && why.contains("`DPoP` proof"),
        "{why}"
    );
    assert!(!why.contains(&subject[..20]), "never echo the token: {why}");
    // A proof of another key: refused as a bad proof.
    let (st, body) = exchange(Some(proof(&other))).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another key"),
        "{body}"
    );
    // A proof made for another endpoint.
    let elsewhere = steward_token::new_dpop_proof(
        &holder,
        "POST",
        "https://elsewhere/oauth2/token",
        None,
        now(),
    )
    .unwrap();
    let (_, body) = exchange(Some(elsewhere)).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    assert!(
        body["error_description"].as_str().unwrap().contains("htu"),
        "{body}"
    );
    // The holder's proof: exchanged, and the delegated token is bound to the same key.
    let good = proof(&holder);
    let (st, body) = exchange(Some(good.clone())).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let hop = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(hop["sub"], GLOBEX);
    assert_eq!(hop["act"], json!({"sub": GATEWAY}));
    assert_eq!(hop["cnf"]["jkt"], holder.public_key().thumbprint());
    // The same proof again is a replay.
    let (_, body) = exchange(Some(good)).await;
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    // Each refusal is on record as a refused credential request.
    let events = events_when(&env, "kind=credential.refused&limit=100", |a| a.len() >= 4).await;
    assert!(events.as_array().unwrap().len() >= 4, "{events}");
}

fn dpop_proof(key: &SigningKey, htu: &str, f: impl Fn(&mut Value)) -> String {
    let mut jwk = serde_json::to_value(key.public_key().jwk()).unwrap();
    jwk.as_object_mut().unwrap().remove("kid");
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let mut claims =
        json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": htu, "iat": now()});
    f(&mut claims);
    let b64 = |v: &Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!(
        "{input}.{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig)
    )
}

pub(crate) async fn dpop_binds_tokens_to_the_client_key(env: Env) {
    let key = SigningKey::generate().unwrap().0;
    register_client(&env, &key).await;
    let proof_key = SigningKey::generate().unwrap().0;
    let endpoint = env.url(RouteId::Token, &[]);
    let request = |proof: Option<String>| {
        let (env, key, endpoint) = (&env, &key, &endpoint);
        async move {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", BEARER),
                    ("client_assertion", &assertion(&env.base, key, |_| {})),
                    ("audience", AUDIENCE),
                ])
                .finish();
            let mut req = env
                .http
                .post(endpoint)
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(p) = proof {
                req = req.header("DPoP", p);
            }
            let resp = req.body(body).send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let (st, body) = request(Some(dpop_proof(&proof_key, &endpoint, |_| {}))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(
        claims["cnf"]["jkt"],
        proof_key.public_key().jwk().thumbprint()
    );
    // The shared validator refuses it without a proof of that key.
    let v = validator(&env).await;
    let err = v.validate(token, &expect(now())).unwrap_err().to_string();
    assert!(err.contains("DPoP"), "{err}");
    let jkt = proof_key.public_key().jwk().thumbprint();
    assert!(
        v.validate(
            token,
            &Expectations {
                proof: Proof::Dpop(&jkt),
                ..expect(now())
            }
        )
        .is_ok()
    );

    for (proof, want) in [
        (
            // A proof made for another server's token endpoint.
            dpop_proof(&proof_key, "https://elsewhere/oauth2/token", |_| {}),
            "htu",
        ),
        (
            dpop_proof(&proof_key, &endpoint, |c| c["htm"] = json!("GET")),
            "htm",
        ),
        (
            dpop_proof(&proof_key, &endpoint, |c| c["iat"] = json!(now() - 3600)),
            "expired",
        ),
        ("not.a.proof".to_owned(), "DPoP proof"),
    ] {
        let (st, body) = request(Some(proof)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(want),
            "{want}: {body}"
        );
    }
    let replayed = dpop_proof(&proof_key, &endpoint, |_| {});
    assert_eq!(request(Some(replayed.clone())).await.0, StatusCode::OK);
    let (_, body) = request(Some(replayed)).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    // Without a DPoP header the token is a plain bearer token.
    let (_, body) = request(None).await;
    assert_eq!(body["token_type"], "Bearer");
}

const EXPORTER: &str = "spiffe://acme.example/legacy/billing-exporter";

pub(crate) async fn legacy_client_secrets_are_flagged(env: Env) {
    env.apply_example().await;
    let (st, body) = env
        .route(
            RouteId::CreateClientSecret,
            &["spiffe://acme.example/ns/payments/sa/payments-api"],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("private_key_jwt"),
        "{body}"
    );
    let au = env.credential("au", "auditor", None).await;
    let (st, _) = env
        .route(RouteId::CreateClientSecret, &[EXPORTER], Some(&au), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, created) = env
        .route(
            RouteId::CreateClientSecret,
            &[EXPORTER],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sts_"));

    let post = |secret: String| {
        let env = &env;
        async move {
            post_form(
                env,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", EXPORTER),
                    ("client_secret", &secret),
                    ("audience", AUDIENCE),
                ],
            )
            .await
        }
    };
    let basic = |secret: String| {
        let env = &env;
        async move {
            let resp = env
                .http
                .post(env.url(RouteId::Token, &[]))
                .basic_auth(EXPORTER, Some(secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=client_credentials&audience={}",
                    segment(AUDIENCE)
                ))
                .send()
                .await
                .unwrap();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                resp.status(),
                challenge,
                resp.json::<Value>().await.unwrap(),
            )
        }
    };
    let (st, _, body) = post(secret.clone()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, _, body) = basic(secret.clone()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, challenge, body) = basic("sts_wrong".into()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(challenge.as_deref(), Some("Basic realm=\"steward\""));
    assert_eq!(body["error_description"], "wrong client secret");
    // Two methods at once.
    let resp = env
        .http
        .post(env.url(RouteId::Token, &[]))
        .basic_auth(EXPORTER, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_secret={secret}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Rotation: the old secret stops at once; revocation stops the new one.
    let (_, created) = env
        .route(
            RouteId::CreateClientSecret,
            &[EXPORTER],
            Some(&env.admin),
            None,
        )
        .await;
    let newer = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(post(secret).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(post(newer.clone()).await.0, StatusCode::OK);
    let (st, body) = env
        .route(
            RouteId::RevokeClientSecret,
            &[EXPORTER],
            Some(&env.admin),
            None,
        )
        .await;
    assert_eq!(
        (st, body["revoked"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    assert_eq!(post(newer).await.0, StatusCode::UNAUTHORIZED);

    // Every use is flagged; the secret never reaches the evidence or the change log.
    let issued = events_when(&env, "kind=credential.issued", |a| a.len() >= 3).await;
    let issued = issued.as_array().unwrap();
    assert_eq!(issued.len(), 3);
    for e in issued {
        assert_eq!(e["details"]["legacy_credential"], true, "{e}");
        assert!(
            e["decision"]["reasons"][0]
                .as_str()
                .unwrap()
                .contains("legacy static client secret")
        );
    }
    let (_, changes) = env
        .query(RouteId::Changes, &[], "limit=1000", Some(&env.admin))
        .await;
    let text = changes.to_string();
    assert!(text.contains("client_secret.create") && text.contains("client_secret.revoke"));
    assert!(!text.contains("sts_"), "secrets never reach the change log");
}

const CI_ISS: &str = "https://ci.acme.example";
const K8S_ISS: &str = "https://kubernetes.default.svc.cluster.local";
const STEWARD_AUD: &str = "https://steward.acme.example";

/// A JWKS server on loopback that counts its fetches.
async fn jwks_server(jwks: Value) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/openid/v1/jwks",
        axum::routing::get(move || {
            let (jwks, counter) = (jwks.clone(), counter.clone());
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::Json(jwks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/openid/v1/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

fn external(key: &SigningKey, claims: Value) -> String {
    jws::encode(key, "JWT", &claims).unwrap()
}

pub(crate) async fn federation_maps_trusted_tokens_onto_identities(env: Env) {
    let ci_key = SigningKey::generate().unwrap().0;
    let k8s_key = SigningKey::generate().unwrap().0;
    let (jwks_url, hits) = jwks_server(json!({"keys": [k8s_key.public_key().jwk()]})).await;
    // The example repository, with the CI key replaced by ours and the cluster's keys
    // served from loopback.
    let mut files = read_dir(&example_repo()).unwrap();
    let f = files.iter_mut().find(|f| f.path == "issuers.yaml").unwrap();
    let ci = ci_key.public_key().jwk();
    f.content = f
        .content
        .replace("tgQH0-HDszlmvy9VLCHmfIo-Bxo0mX5rWD30_yTI9rM", &ci.x)
        .replace("ViC_OUiQabBZJSs6Qxzx_OCH1G0ZZug4NdxoeTNguu4", &ci.y)
        .replace(
            "kid: ci-signing-2024-09",
            &format!("kid: {}", ci.kid.clone().unwrap()),
        )
        .replace(&format!("{K8S_ISS}/openid/v1/jwks"), &jwks_url)
        // The CI's `approved` claim, vouched for into the Steward token's `ctx`.
        .replace(
            "      environment: \"{environment}\"\n",
            "      environment: \"{environment}\"\n      context: {human_approved: approved}\n",
        );
    env.apply_files(&files).await;

    let exchange = |subject: String| {
        let env = &env;
        async move {
            post_form(
                env,
                &[
                    ("grant_type", EXCHANGE),
                    ("subject_token", &subject),
                    ("subject_token_type", JWT_TYPE),
                    (
                        "audience",
                        "spiffe://acme.example/ns/platform/sa/deploy-controller",
                    ),
                ],
            )
            .await
        }
    };
    let ci_claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": CI_ISS, "aud": STEWARD_AUD, "sub": "repo:acme/deploy-pipelines:environment:prod",
            "pipeline": "deploy", "environment": "prod", "exp": now() + 300, "iat": now(), "jti": "ci-run-1"});
        f(&mut c);
        c
    };

    // A CI job's OIDC token becomes the deploy pipeline's Steward token.
    let ci_token = external(&ci_key, ci_claims(&|_| {}));
    let (st, _, body) = exchange(ci_token.clone()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "spiffe://acme.example/ci/deploy/prod");
    assert_eq!(claims["plane"], "platform");
    assert!(
        claims.get("ctx").is_none(),
        "no `approved` claim, no ctx: {claims}"
    );
    // With the claim, its value is carried in `ctx` as the external token said it.
    let approved = external(&ci_key, ci_claims(&|c| c["approved"] = json!(true)));
    let (st, _, body) = exchange(approved).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let with = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(with["ctx"], json!({"human_approved": true}), "{with}");
    assert_eq!(claims["environment"], "prod");
    assert!(
        claims["exp"].as_i64().unwrap() <= now() + 300,
        "never outlives the CI token"
    );
    let v = validator(&env).await;
    assert!(
        v.validate(
            body["access_token"].as_str().unwrap(),
            &Expectations {
                audience: "spiffe://acme.example/ns/platform/sa/deploy-controller",
                environment: Some("prod"),
                now: now(),
                proof: Proof::None
            },
        )
        .is_ok()
    );

    // A Kubernetes service-account token, keys fetched from the cluster (once, cached).
    let k8s = |ns: &str, sa: &str| {
        external(
            &k8s_key,
            json!({"iss": K8S_ISS, "aud": [STEWARD_AUD], "sub": format!("system:serviceaccount:{ns}:{sa}"),
            "exp": now() + 600, "iat": now(), "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa}}}),
        )
    };
    let (st, _, body) = exchange(k8s("payments", "payments-api")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["sub"],
        "spiffe://acme.example/ns/payments/sa/payments-api"
    );
    let (st, _, _) = exchange(k8s("payments", "payments-api")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "issuer keys are cached"
    );

    // Everything outside the trust boundary is refused, and logged.
    let stranger = SigningKey::generate().unwrap().0;
    let cases: Vec<(String, &str)> = vec![
        (
            external(
                &ci_key,
                ci_claims(&|c| c["iss"] = json!("https://ci.evil.example")),
            ),
            "not trusted",
        ),
        (
            external(
                &ci_key,
                ci_claims(&|c| c["aud"] = json!("https://elsewhere")),
            ),
            "aud",
        ),
        (
            external(
                &ci_key,
                ci_claims(&|c| c["sub"] = json!("repo:evil/fork:environment:prod")),
            ),
            "allowed subjects",
        ),
        (
            external(&ci_key, ci_claims(&|c| c["exp"] = json!(now() - 120))),
            "expired",
        ),
        (
            external(&stranger, ci_claims(&|_| {})),
            "unknown signing key",
        ),
        (
            external(&ci_key, ci_claims(&|c| c["environment"] = json!("dev"))),
            "not registered",
        ),
        (
            external(
                &ci_key,
                ci_claims(&|c| c["pipeline"] = json!("../../admin")),
            ),
            "plain name",
        ),
        (k8s("kube-system", "admin"), "allowed subjects"),
        (k8s("payments", "nobody"), "not registered"),
    ];
    for (token, want) in cases {
        let (st, _, body) = exchange(token).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{want}: {body}");
        assert_eq!(body["error"], "invalid_request", "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(want),
            "{want}: {body}"
        );
    }
    // A Steward token exchanged without client authentication is not a federation.
    let (st, _, body) = exchange(body_token(&env).await).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");

    let events = events_when(&env, "kind=credential.federated", |a| a.len() >= 4).await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(
        events[0]["principal"],
        "spiffe://acme.example/ci/deploy/prod"
    );
    assert_eq!(events[0]["details"]["federation"]["issuer_id"], "ci-oidc");
    assert_eq!(
        events[0]["details"]["federation"]["external_sub"],
        "repo:acme/deploy-pipelines:environment:prod"
    );
    assert!(!serde_json::to_string(events).unwrap().contains(&ci_token));
    assert!(events[0]["details"].get("ctx").is_none(), "{}", events[0]);
    assert_eq!(
        events[1]["details"]["ctx"],
        json!({"human_approved": true}),
        "{}",
        events[1]
    );
}

/// A Steward-signed token, minted through client credentials.
async fn body_token(env: &Env) -> String {
    let key = SigningKey::generate().unwrap().0;
    register_client_in(env, &key).await;
    client_token(env, &key).await
}

/// A token for `CLIENT` (registered with `key`) through client credentials.
pub(crate) async fn client_token(env: &Env, key: &SigningKey) -> String {
    let a = assertion(&env.base, key, |_| {});
    let (st, _, body) = post_form(
        env,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
            ("audience", AUDIENCE),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Registers `CLIENT` without re-applying the repository.
async fn register_client_in(env: &Env, key: &SigningKey) {
    let jwk = key.public_key().jwk();
    let (st, body) = env
        .route(
            RouteId::CreateIdentity,
            &[],
            Some(&env.admin),
            Some(json!({
                "spiffe_id": CLIENT, "plane": "payments", "owner": "payments-team",
                "environment": "prod", "kind": "service", "classification": "confidential",
                "intended": client_intended(),
                "credentials": {"public_keys": [{"kid": "test-1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}]},
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

const PAYMENTS_API: &str = "spiffe://acme.example/ns/payments/sa/payments-api";
const WORKFLOW: &str = "refund-backlog-inc-4711";

pub(crate) async fn jit_credentials_follow_the_workflow_and_policy(env: Env) {
    let key = SigningKey::generate().unwrap().0;
    apply_with_keys(&env, &[(PAYMENTS_API, &key)]).await;
    let request = |extra: Vec<(&'static str, &'static str)>| {
        let (env, key) = (&env, &key);
        async move {
            let a = client_assertion(&env.base, PAYMENTS_API, key);
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_assertion_type", BEARER),
                ("client_assertion", a.as_str()),
                ("audience", AUDIENCE),
            ];
            form.extend(extra);
            post_form(env, &form).await
        }
    };
    let (st, _, body) = request(vec![("workflow", WORKFLOW), ("expires_in", "3600")]).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        body["expires_in"], 300,
        "the workflow's max_ttl_secs caps it"
    );
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["workflow"], WORKFLOW);
    assert_eq!(claims["task_scope"], WORKFLOW);
    assert_eq!(claims["scope"], "payments.refund");
    // Renewal: asking again while policy allows.
    let (st, _, body) = request(vec![("workflow", WORKFLOW)]).await;
    assert_eq!(st, StatusCode::OK, "{body}");

    for (extra, status, error) in [
        (
            vec![("workflow", "no-such-workflow")],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("workflow", WORKFLOW),
                ("scope", "payments.refund payments.charge"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
    ] {
        let (st, _, body) = request(extra).await;
        assert_eq!(
            (st, body["error"].as_str()),
            (status, Some(error)),
            "{body}"
        );
    }
    // Not a requester.
    let other = SigningKey::generate().unwrap().0;
    register_client_in(&env, &other).await;
    let a = assertion(&env.base, &other, |_| {});
    let (st, _, body) = post_form(
        &env,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
            ("audience", AUDIENCE),
            ("workflow", WORKFLOW),
        ],
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{body}"
    );

    // Once the identity is suspended, the renewal is refused.
    let (st, body) = env
        .route(
            RouteId::IdentityLifecycle,
            &[PAYMENTS_API],
            Some(&env.admin),
            Some(json!({"state": "suspended", "reason": "INC-4711 closed"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, _, body) = request(vec![("workflow", WORKFLOW)]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");

    // Every step is evidence: two issues (the second a renewal) and the refusals.
    let issued = events_when(&env, "kind=credential.issued", |a| a.len() >= 2).await;
    let issued = issued.as_array().unwrap();
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert_eq!(
        issued[0]["details"]["jit"],
        json!({"workflow": WORKFLOW, "renewal": false})
    );
    assert_eq!(
        issued[1]["details"]["jit"],
        json!({"workflow": WORKFLOW, "renewal": true})
    );
    assert!(
        issued[0]["decision"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("approved by policy")
    );
    assert!(
        !issued[0]["decision"]["policies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Mutual TLS (RFC 8705): a client certificate pinned by an identity authenticates it at
/// the token endpoint, and the token is bound to that certificate.
#[tokio::test]
async fn mutual_tls_authenticates_and_binds_tokens() {
    steward_server::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&server_key)
        .unwrap();
    std::fs::write(dir.path().join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server-key.pem"),
        server_key.serialize_pem(),
    )
    .unwrap();
    let client = |name: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.acme.example")])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let thumb = steward_token::certificate_thumbprint(cert.der());
        let identity = reqwest::Identity::from_pem(
            format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes(),
        )
        .unwrap();
        (thumb, identity)
    };
    let (thumb, identity) = client("ledger-writer");
    let (_, stranger) = client("stranger");

    let mut file = FileConfig::parse(
        "test",
        &format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("server.pem").display(),
            dir.path().join("server-key.pem").display()
        ),
    )
    .unwrap();
    file.trust_domain = Some("acme.example".into());
    let config = file
        .resolve(Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data")),
            database_url: None,
            trust_domain: None,
        })
        .unwrap();
    let server = LocalServer::start(config).await.unwrap();
    let admin = server.admin_token.clone();
    let base = server.base.clone();
    assert!(base.starts_with("https://"), "{base}");
    let discovery: Value = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server_cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(format!("{base}{}", path(RouteId::OpenidConfiguration, &[])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], base.as_str(), "{discovery}");
    let https = |id: Option<reqwest::Identity>| {
        let mut b = reqwest::Client::builder().add_root_certificate(
            reqwest::Certificate::from_pem(server_cert.pem().as_bytes()).unwrap(),
        );
        if let Some(id) = id {
            b = b.identity(id);
        }
        b.build().unwrap()
    };
    let with_cert = https(Some(identity));

    // An owner, then an identity pinning the certificate, over HTTPS.
    let files = vec![steward_governance::SourceFile {
        path: "base.yaml".into(),
        content: "owners:\n  - id: o\n    name: O\n    email: o@acme.example\n".into(),
    }];
    let r = with_cert
        .post(format!("{base}{}", path(RouteId::ConfigApply, &[])))
        .bearer_auth(&admin)
        .json(&json!({ "files": files }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = with_cert
        .post(format!("{base}{}", path(RouteId::CreateIdentity, &[])))
        .bearer_auth(&admin)
        .json(&json!({
            "spiffe_id": "spiffe://acme.example/ns/ledger/sa/writer", "plane": "root", "owner": "o",
            "environment": "prod", "kind": "service", "credentials": {"tls_certificates": [thumb]},
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let form = "grant_type=client_credentials&client_id=spiffe%3A%2F%2Facme.example%2Fns%2Fledger%2Fsa%2Fwriter&audience=spiffe%3A%2F%2Facme.example%2Fns%2Fpayments%2Fsa%2Fledger";
    let ask = |client: &reqwest::Client| {
        client
            .post(format!("{base}{}", path(RouteId::Token, &[])))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    let resp = ask(&with_cert).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["sub"], "spiffe://acme.example/ns/ledger/sa/writer");
    assert_eq!(claims["cnf"]["x5t#S256"], thumb.as_str());
    assert!(claims["iss"].as_str().unwrap().starts_with("https://"));

    // The shared validator wants the same certificate on the presenting connection.
    let jwks: Value = with_cert
        .get(format!("{base}{}", path(RouteId::Jwks, &[])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap().iter().map(|k| {
        serde_json::from_value::<Jwk>(k.clone())
            .unwrap()
            .to_public_key()
            .unwrap()
    });
    let v = Validator::new(base.clone(), keys, 30);
    let e = Expectations {
        audience: AUDIENCE,
        environment: Some("prod"),
        now: now(),
        proof: Proof::None,
    };
    assert!(
        v.validate(token, &e)
            .unwrap_err()
            .to_string()
            .contains("mutual TLS")
    );
    assert!(
        v.validate(
            token,
            &Expectations {
                proof: Proof::ClientCert(&thumb),
                ..e
            }
        )
        .is_ok()
    );
    assert!(
        v.validate(
            token,
            &Expectations {
                proof: Proof::ClientCert("other"),
                ..e
            }
        )
        .is_err()
    );

    // No certificate, or one the identity did not pin: refused.
    let resp = ask(&https(None)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = ask(&https(Some(stranger))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not one"),
        "{body}"
    );

    // Introspection takes the same mutual TLS authentication: the writer asks about a
    // token for itself (active, certificate-bound) and one for another audience (not its
    // to ask about); a stranger's certificate does not authenticate.
    let writer = "spiffe%3A%2F%2Facme.example%2Fns%2Fledger%2Fsa%2Fwriter";
    let resp = with_cert
        .post(format!("{base}{}", path(RouteId::Token, &[])))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={writer}&audience={writer}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let own = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let introspect = |client: &reqwest::Client, token: &str| {
        client
            .post(format!("{base}{}", path(RouteId::Introspect, &[])))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("client_id={writer}&token={token}"))
            .send()
    };
    let resp = introspect(&with_cert, &own).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["cnf"]["x5t#S256"], thumb.as_str());
    let resp = introspect(&with_cert, token).await.unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"active": false})
    );
    let (_, stranger) = client("stranger");
    let resp = introspect(&https(Some(stranger)), &own).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

pub(crate) async fn jit_approvals_by_listed_approvers(env: Env) {
    let key = SigningKey::generate().unwrap().0;
    // The example workflow, with a listed approver instead of policy approval.
    let mut files = read_dir(&example_repo()).unwrap();
    let wf = files
        .iter_mut()
        .find(|f| f.path == "workflows.yaml")
        .unwrap();
    wf.content = wf.content.replace(
        "    max_ttl_secs: 300\n",
        "    max_ttl_secs: 300\n    approvers: [incident-commander]\n",
    );
    register_keys(&mut files, &[(PAYMENTS_API, &key)]);
    env.apply_files(&files).await;
    let request = || {
        let (env, key) = (&env, &key);
        async move {
            let a = client_assertion(&env.base, PAYMENTS_API, key);
            post_form(
                env,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", BEARER),
                    ("client_assertion", &a),
                    ("audience", AUDIENCE),
                    ("workflow", WORKFLOW),
                ],
            )
            .await
        }
    };
    let (st, _, body) = request().await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("incident-commander"),
        "{body}"
    );

    let approval =
        |secs: u64| json!({"requester": PAYMENTS_API, "valid_secs": secs, "note": "INC-4711"});
    // The bootstrap admin is not a listed approver.
    let (st, body) = env
        .route(
            RouteId::ApproveWorkflow,
            &[WORKFLOW],
            Some(&env.admin),
            Some(approval(60)),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let commander = env
        .credential("incident-commander", "plane-admin", Some("payments"))
        .await;
    let (st, body) = env
        .route(
            RouteId::ApproveWorkflow,
            &[WORKFLOW],
            Some(&commander),
            Some(json!({"requester": GLOBEX, "note": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, body) = env
        .route(
            RouteId::ApproveWorkflow,
            &[WORKFLOW],
            Some(&commander),
            Some(approval(2)),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, _, body) = request().await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // The approval lapses on its own.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (st, _, body) = request().await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");

    let issued = events_when(&env, "kind=credential.issued", |a| !a.is_empty()).await;
    let reason = issued[0]["decision"]["reasons"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("approved by incident-commander"),
        "{reason}"
    );
    let (_, changes) = env
        .query(RouteId::Changes, &[], "limit=1000", Some(&env.admin))
        .await;
    assert!(changes.to_string().contains("workflow.approve"));
}

/// The evidence events matching `query` (of the audit events route) once `done` holds
/// for them: the writer commits asynchronously, so a test waits (up to two seconds) for
/// the last events to land.
pub(crate) async fn events_when(
    env: &Env,
    query: &str,
    done: impl Fn(&Vec<Value>) -> bool,
) -> Value {
    let mut events = Value::Null;
    for _ in 0..100 {
        events = env
            .query(RouteId::AuditEvents, &[], query, Some(&env.admin))
            .await
            .1;
        if events.as_array().is_some_and(&done) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    events
}

/// A SPIFFE ID as one URL path segment or form value (`:` and `/` escaped).
pub(crate) fn segment(id: &str) -> String {
    id.replace(':', "%3A").replace('/', "%2F")
}

/// The resource server in the introspection tests: tokens are issued for it.
const LEDGER_API: &str = "spiffe://acme.example/ns/ledger/sa/ledger-api";

/// `POST /oauth2/introspect` with `form`, and `Authorization: <auth>` when given.
async fn introspect(
    env: &Env,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = env
        .http
        .post(env.url(RouteId::Introspect, &[]))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        );
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A client assertion of `id` for the introspection endpoint.
fn introspection_assertion(base: &str, id: &str, key: &SigningKey) -> String {
    jws::encode(
        key,
        "JWT",
        &json!({"iss": id, "sub": id, "aud": format!("{base}{}", path(RouteId::Introspect, &[])),
                "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4().to_string()}),
    )
    .unwrap()
}

/// What `id` (holding `key`) learns of `token` by introspection with `private_key_jwt`.
async fn introspect_as_workload(env: &Env, id: &str, key: &SigningKey, token: &str) -> Value {
    let a = introspection_assertion(&env.base, id, key);
    let (st, headers, body) = introspect(
        env,
        None,
        &[
            ("token", token),
            ("token_type_hint", "access_token"),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    body
}

/// What the bootstrap admin learns of `token` by introspection.
async fn introspect_as_admin(env: &Env, token: &str) -> Value {
    let (st, _, body) = introspect(
        env,
        Some(&format!("Bearer {}", env.admin)),
        &[("token", token)],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body
}

/// The ledger API registered with `rs_key` (from the repository) and `CLIENT` with
/// `client_key` (through the API).
async fn introspection_setup(env: &Env, rs_key: &SigningKey, client_key: &SigningKey) {
    // The example with the payments plane's grant to `CLIENT`: registering it grants nothing.
    let mut files = example_with_client();
    register_keys(&mut files, &[(LEDGER_API, rs_key)]);
    env.apply_files(&files).await;
    register_client_in(env, client_key).await;
}

/// A token for `CLIENT` with `audience`, `extra` parameters added.
async fn token_for(env: &Env, key: &SigningKey, audience: &str, extra: &[(&str, &str)]) -> String {
    let a = assertion(&env.base, key, |_| {});
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", BEARER),
        ("client_assertion", &a),
        ("audience", audience),
    ];
    form.extend_from_slice(extra);
    let (st, _, body) = post_form(env, &form).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Introspection (RFC 7662) is advertised, needs an authenticated caller, answers a token
/// in force with its members, and tells a caller nothing of tokens that are not its to
/// ask about, invalid or forged ones: `{"active": false}` alone.
pub(crate) async fn introspection_answers_the_audience_and_admins_only(env: Env) {
    for route in [RouteId::OpenidConfiguration, RouteId::OauthMetadata] {
        let (st, meta) = env.route(route, &[], None, None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            meta["introspection_endpoint"],
            env.url(RouteId::Introspect, &[])
        );
        let methods = meta["introspection_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(methods.contains(&json!("private_key_jwt")), "{meta}");
    }
    let (rs_key, client_key) = (
        SigningKey::generate().unwrap().0,
        SigningKey::generate().unwrap().0,
    );
    introspection_setup(&env, &rs_key, &client_key).await;
    let token = token_for(
        &env,
        &client_key,
        LEDGER_API,
        &[("scope", "payments.charge payments.read")],
    )
    .await;

    // Unauthenticated, or with a wrong admin credential: 401 `invalid_client`.
    let (st, headers, body) = introspect(&env, None, &[("token", &token)]).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    let (st, _, body) = introspect(
        &env,
        Some("Bearer stw_000000000000_wrong"),
        &[("token", &token)],
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    // A client assertion made for another client's key does not authenticate either.
    let forged = introspection_assertion(&env.base, LEDGER_API, &client_key);
    let (st, _, body) = introspect(
        &env,
        None,
        &[
            ("token", &token),
            ("client_assertion_type", BEARER),
            ("client_assertion", &forged),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    // Malformed: no token, a JSON body, two ways to authenticate at once.
    let admin = format!("Bearer {}", env.admin);
    let (st, _, body) = introspect(&env, Some(&admin), &[]).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{body}"
    );
    let resp = env
        .http
        .post(env.url(RouteId::Introspect, &[]))
        .header("authorization", &admin)
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let a = introspection_assertion(&env.base, LEDGER_API, &rs_key);
    let (st, _, body) = introspect(
        &env,
        Some(&admin),
        &[
            ("token", &token),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");

    // The audience asks: active, with the RFC 7662 members and Steward's.
    let answer = introspect_as_workload(&env, LEDGER_API, &rs_key, &token).await;
    let claims = claims_of(&token);
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], CLIENT);
    assert_eq!(answer["client_id"], CLIENT);
    assert_eq!(answer["aud"], LEDGER_API);
    assert_eq!(answer["iss"], env.base);
    assert_eq!(answer["scope"], "payments.charge payments.read");
    assert_eq!(answer["token_type"], "Bearer");
    for claim in ["exp", "iat", "nbf", "jti"] {
        assert_eq!(answer[claim], claims[claim], "{claim}");
    }
    assert_eq!(answer["environment"], "prod");
    assert_eq!(answer["plane"], "payments");
    assert_eq!(answer["revocation_epoch"], 0);
    assert!(answer.get("cnf").is_none(), "{answer}");
    // Admins of any role may ask about any token; a plane admin about its planes only.
    assert_eq!(introspect_as_admin(&env, &token).await["active"], true);
    for (name, role, plane, active) in [
        ("ingest", "ingestor", None, true),
        ("audit", "auditor", None, true),
        ("payments-admin", "plane-admin", Some("payments"), true),
        ("partners-admin", "plane-admin", Some("partners"), false),
    ] {
        let credential = env.credential(name, role, plane).await;
        let (st, _, body) = introspect(
            &env,
            Some(&format!("Bearer {credential}")),
            &[("token", &token)],
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["active"], active, "{name}: {body}");
    }

    // Not the caller's to ask about: the client asking about the ledger's token, the
    // ledger asking about a token for another audience.
    let inactive = json!({"active": false});
    let a = introspection_assertion(&env.base, CLIENT, &client_key);
    let (st, _, body) = introspect(
        &env,
        None,
        &[
            ("token", &token),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!((st, &body), (StatusCode::OK, &inactive));
    let elsewhere = token_for(&env, &client_key, AUDIENCE, &[]).await;
    assert_eq!(
        introspect_as_workload(&env, LEDGER_API, &rs_key, &elsewhere).await,
        inactive
    );
    assert_eq!(introspect_as_admin(&env, &elsewhere).await["active"], true);

    // Garbage, a tampered payload, a token signed by a key Steward never published.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut changed = claims.clone();
    changed["scope"] = json!("payments.refund");
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        changed.to_string(),
    );
    let stranger = jws::encode(&SigningKey::generate().unwrap().0, "JWT", &claims).unwrap();
    for bad in ["not-a-token", "a.b.c", &parts.join("."), &stranger] {
        assert_eq!(introspect_as_admin(&env, bad).await, inactive, "{bad}");
    }

    // Refusals are evidence, like the token endpoint's; the token never is.
    let refused = events_when(&env, "kind=credential.refused&limit=100", |a| {
        a.iter().filter(|e| e["action"] == "introspect").count() >= 6
    })
    .await;
    let introspections: Vec<&Value> = refused
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "introspect")
        .collect();
    assert!(introspections.len() >= 6, "{refused}");
    assert!(
        introspections
            .iter()
            .all(|e| e["enforcement_point"] == "introspection-endpoint")
    );
    assert!(!refused.to_string().contains(&token));
}

/// Introspection sees what a local validator cannot: a revoked token, a revoked or
/// suspended identity; and an expired token is inactive at once. A DPoP-bound token says
/// so, with its binding.
pub(crate) async fn introspection_sees_revocation_suspension_and_expiry(env: Env) {
    let (rs_key, client_key) = (
        SigningKey::generate().unwrap().0,
        SigningKey::generate().unwrap().0,
    );
    introspection_setup(&env, &rs_key, &client_key).await;
    let ask = |token: String| {
        let (env, rs_key) = (&env, &rs_key);
        async move { introspect_as_workload(env, LEDGER_API, rs_key, &token).await }
    };
    let revoked = token_for(&env, &client_key, LEDGER_API, &[]).await;
    let kept = token_for(&env, &client_key, LEDGER_API, &[]).await;
    assert_eq!(ask(revoked.clone()).await["active"], true);

    // A revoked token is inactive; another of the same identity is not.
    let jti = claims_of(&revoked)["jti"].as_str().unwrap().to_owned();
    let (st, body) = env
        .route(
            RouteId::Revoke,
            &[],
            Some(&env.admin),
            Some(json!({"kind": "token", "target": jti, "reason": "leaked"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(ask(revoked.clone()).await, json!({"active": false}));
    let answer = ask(kept.clone()).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["revocation_epoch"], 1, "{answer}");

    // A DPoP-bound token: `token_type` DPoP and its `cnf`.
    let dpop_key = SigningKey::generate().unwrap().0;
    let a = assertion(&env.base, &client_key, |_| {});
    let resp = env
        .http
        .post(env.url(RouteId::Token, &[]))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "dpop",
            dpop_proof(&dpop_key, &env.url(RouteId::Token, &[]), |_| {}),
        )
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", BEARER),
                    ("client_assertion", &a),
                    ("audience", LEDGER_API),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bound = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = ask(bound).await;
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    assert_eq!(answer["cnf"]["jkt"], dpop_key.public_key().thumbprint());

    // An expired token is inactive as soon as its `exp` passes.
    let short = token_for(&env, &client_key, LEDGER_API, &[("expires_in", "1")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(ask(short).await, json!({"active": false}));

    // A suspended identity's tokens are inactive until it is reactivated.
    let lifecycle = |state: &'static str| {
        let env = &env;
        async move {
            let (st, body) = env
                .route(
                    RouteId::IdentityLifecycle,
                    &[CLIENT],
                    Some(&env.admin),
                    Some(json!({"state": state, "reason": "test"})),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{body}");
        }
    };
    lifecycle("suspended").await;
    assert_eq!(ask(kept.clone()).await, json!({"active": false}));
    lifecycle("active").await;
    assert_eq!(ask(kept.clone()).await["active"], true);

    // Revoking the identity ends every token it holds.
    let (st, body) = env
        .route(
            RouteId::Revoke,
            &[],
            Some(&env.admin),
            Some(json!({"kind": "identity", "target": CLIENT, "reason": "compromised"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(ask(kept).await, json!({"active": false}));
}
