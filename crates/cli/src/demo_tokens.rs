//! The token part of `steward demo`: a workload authenticates with `private_key_jwt`,
//! gets a short-lived JWT-SVID, the token validates against the published keys, a replayed
//! assertion is refused, and a key rotation keeps the old token valid through the overlap.

use crate::workload_cmd::{client_assertion, client_key};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use steward_api::{
    ApiClient, ApplyRequest, ApplyResponse, CreateIdentityRequest, IdentityRecord, RouteId,
};
use steward_governance::SourceFile;
use steward_model::{
    Action, CapabilityId, Classification, Credentials, Entitlement, IdentityKind, PlaneId, SpiffeId,
};
use steward_token::{Expectations, Jwk, Proof, SigningKey, Validator, jws};

const WORKLOAD: &str = "spiffe://acme.example/ns/payments/sa/refund-batch";
const LEDGER: &str = "spiffe://acme.example/ns/payments/sa/ledger";
const BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether an HTTP status is 2xx.
fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

pub(crate) fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

/// A confidential prod service `id` of `plane` that intends `intended`, authenticating
/// with `key`'s public half (`private_key_jwt`) under `kid`.
pub(crate) fn workload(
    id: &str,
    plane: &str,
    owner: &str,
    description: &str,
    intended: Vec<Entitlement>,
    kid: &str,
    key: &SigningKey,
) -> Result<CreateIdentityRequest> {
    Ok(CreateIdentityRequest {
        spiffe_id: SpiffeId::parse(id)?,
        plane: PlaneId::new(plane)?,
        owner: owner.into(),
        environment: "prod".into(),
        kind: IdentityKind::Service,
        classification: Classification::Confidential,
        description: description.into(),
        labels: Default::default(),
        intended,
        credentials: Credentials {
            public_keys: vec![client_key(key, kid)],
            ..Credentials::default()
        },
    })
}

/// A validator for the server's published keys, allowing `skew` seconds of clock skew.
async fn validator(admin: &ApiClient, issuer: &str, skew: i64) -> Result<Validator> {
    let jwks: Value = admin.route(RouteId::Jwks, &[]).send().await?;
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .context("the JWKS has no keys")?
        .iter()
        .map(|k| Ok(serde_json::from_value::<Jwk>(k.clone())?.to_public_key()?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Validator::new(issuer, keys, skew))
}

/// `capability`'s `actions`, as an identity declares it intends them.
pub(crate) fn intends(capability: &str, actions: &[Action]) -> Result<Entitlement> {
    Ok(Entitlement {
        capability: CapabilityId::new(capability)?,
        actions: actions.to_vec(),
    })
}

/// The payments plane's grants to the workloads the demo registers through the API:
/// registering an identity grants nothing, its plane's policy has to name it. Each gets
/// exactly what it intends (the refund API is registered by the enforcement step).
const DEMO_GRANTS: &str = r#"// Added by `steward demo` for the workloads it registers through the API.
@id("payments-demo-refund-batch")
permit (
  principal == Steward::Identity::"spiffe://acme.example/ns/payments/sa/refund-batch",
  action == Steward::Action::"consume",
  resource == Steward::Capability::"payments.refund"
);

@id("payments-demo-refund-api")
permit (
  principal == Steward::Identity::"spiffe://acme.example/ns/payments/sa/refund-api",
  action,
  resource
)
when {
  (resource == Steward::Capability::"payments.refund" &&
    action in [Steward::Action::"write", Steward::Action::"publish"]) ||
  (resource == Steward::Capability::"payments.read" &&
    action == Steward::Action::"read")
};
"#;

/// Registers a workload with its own key and gets it a token; returns the repository's
/// files with the payments plane's grants to the demo's workloads added.
pub(crate) async fn tokens(admin: &ApiClient, files: &[SourceFile]) -> Result<Vec<SourceFile>> {
    let meta = admin.server_metadata().await?;
    let issuer = meta.issuer.clone();
    let endpoint = meta.token_endpoint.clone();
    println!(
        "Issuer {issuer}; token endpoint {endpoint}; keys at {}.",
        meta.jwks_uri
    );

    // The workload's own key pair: only the public half is registered.
    let (key, _) = SigningKey::generate()?;
    let _: IdentityRecord = admin
        .create_identity(&workload(
            WORKLOAD,
            "payments",
            "payments-team",
            "refund batch worker (registered by the demo)",
            vec![intends("payments.refund", &[Action::Consume])?],
            "refund-batch-1",
            &key,
        )?)
        .await?;
    println!("Registered {WORKLOAD} with its public key (private_key_jwt).");
    let mut files = files.to_vec();
    files.push(SourceFile {
        path: "policies/payments/demo-workloads.cedar".into(),
        content: DEMO_GRANTS.into(),
    });
    let applied: ApplyResponse = admin
        .apply(&ApplyRequest {
            files: files.clone(),
            expected_version: None,
        })
        .await?;
    println!(
        "Registering grants nothing: the payments plane's policy names it and the refund API the demo registers later, each with exactly what it intends (configuration version {}).",
        applied.version
    );

    let assertion = client_assertion(WORKLOAD, &key, &endpoint, now())?;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", BEARER),
        ("client_assertion", assertion.as_str()),
        ("audience", LEDGER),
        ("scope", "payments.refund"),
        ("expires_in", "3600"),
    ];
    let (status, body) = admin.token_request(&form).await?;
    if !is_success(status) {
        bail!("the token request was refused: {body}");
    }
    let token = field(&body, "access_token").to_owned();
    println!(
        "Token issued: {} s (asked 3600; the payments plane caps tokens at 900), scope `{}`.",
        body.get("expires_in").and_then(Value::as_i64).unwrap_or(0),
        field(&body, "scope")
    );
    let v = validator(admin, &issuer, 30).await?;
    let expect = Expectations {
        audience: LEDGER,
        environment: Some("prod"),
        now: now(),
        proof: Proof::None,
    };
    let claims = v.validate(&token, &expect)?;
    println!(
        "The ledger validates it with the JWKS: sub {}, aud {}, environment {}, plane {}, jti {}.",
        claims.sub,
        claims.aud.as_slice().join(","),
        claims.environment.as_deref().unwrap_or("-"),
        claims.plane.as_deref().unwrap_or("-"),
        claims.jti
    );
    let staging = Expectations {
        environment: Some("staging"),
        ..expect
    };
    if let Err(e) = v.validate(&token, &staging) {
        println!("The same token presented in staging: refused ({e}).");
    }

    let (status, body) = admin.token_request(&form).await?;
    println!(
        "The same client assertion replayed: {} {} ({}).",
        status,
        field(&body, "error"),
        field(&body, "error_description")
    );

    let rotated = admin.rotate_keys().await?;
    let v = validator(admin, &issuer, 30).await?;
    println!(
        "Signing key rotated to {}…; the token signed by the old key still validates: {} (until {}).",
        rotated.kid.get(..12).unwrap_or(""),
        v.validate(&token, &expect).is_ok(),
        rotated.previous_verifies_until.as_deref().unwrap_or("-")
    );
    Ok(files)
}

const GATEWAY: &str = "spiffe://acme.example/ns/partners/sa/partner-gateway";
const GLOBEX: &str = "spiffe://acme.example/partners/globex/prod/orders-integration";
const ORDERS: &str = "spiffe://acme.example/ns/orders/sa/orders-api";
const PAYMENTS_API: &str = "spiffe://acme.example/ns/payments/sa/payments-api";
const WORKFLOW: &str = "refund-backlog-inc-4711";

fn assertion(id: &str, key: &SigningKey, endpoint: &str) -> Result<String> {
    client_assertion(id, key, endpoint, now())
}

/// Per-hop delegation: Globex's integration gets a token for the partner gateway, and the
/// gateway exchanges it for one the orders service accepts — narrowed, one hop recorded.
/// Then federation: a CI job's OIDC token becomes the deploy pipeline's Steward token.
pub(crate) async fn delegation(admin: &ApiClient, files: &[SourceFile]) -> Result<()> {
    let endpoint = admin.url(RouteId::Token, &[]);
    let (gateway_key, _) = SigningKey::generate()?;
    let (globex_key, _) = SigningKey::generate()?;
    // The example pins the CI system's public key; the demo plays the CI system with a
    // key of its own, pinned in its place.
    let (ci_key, _) = SigningKey::generate()?;
    let (api_key, _) = SigningKey::generate()?;
    let mut files = files.to_vec();
    let issuers = files
        .iter_mut()
        .find(|f| f.path == "issuers.yaml")
        .context("the example repository has no issuers.yaml")?;
    let ci = ci_key.public_key().jwk();
    issuers.content = issuers
        .content
        .replace("tgQH0-HDszlmvy9VLCHmfIo-Bxo0mX5rWD30_yTI9rM", &ci.x)
        .replace("ViC_OUiQabBZJSs6Qxzx_OCH1G0ZZug4NdxoeTNguu4", &ci.y)
        .replace("kid: ci-signing-2024-09", &format!("kid: {}", ci_key.kid()));
    for (id, key) in [
        (GATEWAY, &gateway_key),
        (GLOBEX, &globex_key),
        (PAYMENTS_API, &api_key),
    ] {
        let jwk = key.public_key().jwk();
        let line = format!("  - spiffe_id: {id}\n");
        let f = files
            .iter_mut()
            .find(|f| f.content.contains(&line))
            .with_context(|| format!("the example repository does not declare {id}"))?;
        f.content = f.content.replace(
            &line,
            &format!(
                "{line}    credentials: {{public_keys: [{{kid: demo-1, kty: EC, crv: P-256, x: \"{}\", y: \"{}\"}}]}}\n",
                jwk.x, jwk.y
            ),
        );
    }
    let applied: ApplyResponse = admin
        .apply(&ApplyRequest {
            files,
            expected_version: None,
        })
        .await?;
    println!(
        "Keys registered in the repository for the partner gateway, Globex and the payments API (configuration version {}).",
        applied.version
    );
    let a = assertion(GLOBEX, &globex_key, &endpoint)?;
    let (status, body) = admin
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", BEARER),
            ("client_assertion", &a),
            ("audience", GATEWAY),
        ])
        .await?;
    if !is_success(status) {
        bail!("Globex's token request was refused: {body}");
    }
    let subject = field(&body, "access_token").to_owned();
    println!("Globex got a token for the partner gateway.");
    let exchange = |scope: &'static str, audience: &'static str| {
        let (subject, gateway_key, endpoint) = (&subject, &gateway_key, &endpoint);
        async move {
            let a = assertion(GATEWAY, gateway_key, endpoint)?;
            admin
                .token_request(&[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("client_assertion_type", BEARER),
                    ("client_assertion", &a),
                    ("subject_token", subject),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ("audience", audience),
                    ("scope", scope),
                ])
                .await
                .map_err(anyhow::Error::from)
        }
    };
    let (status, body) = exchange("partner.orders.submit", ORDERS).await?;
    if !is_success(status) {
        bail!("the exchange was refused: {body}");
    }
    let claims = token_claims(&body)?;
    println!(
        "The gateway exchanged it for the next hop: sub {}, aud {}, scope `{}`, act {}.",
        field(&claims, "sub"),
        field(&claims, "aud"),
        field(&claims, "scope"),
        claims.get("act").cloned().unwrap_or_default()
    );
    let (status, body) = exchange("payments.charge", ORDERS).await?;
    println!(
        "Asking to delegate payments.charge instead: {} {} ({}).",
        status,
        field(&body, "error"),
        field(&body, "error_description")
    );

    let ci_token = |sub: &str| {
        jws::encode(
            &ci_key,
            "JWT",
            &json!({"iss": "https://ci.acme.example", "aud": "https://steward.acme.example", "sub": sub,
                    "pipeline": "deploy", "environment": "prod", "iat": now(), "exp": now() + 300,
                    "jti": uuid::Uuid::new_v4().to_string()}),
        )
    };
    let federate = |token: String| async move {
        admin
            .token_request(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", token.as_str()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                (
                    "audience",
                    "spiffe://acme.example/ns/platform/sa/deploy-controller",
                ),
            ])
            .await
    };
    let (status, body) = federate(ci_token("repo:acme/deploy-pipelines:environment:prod")?).await?;
    if !is_success(status) {
        bail!("the CI token was refused: {body}");
    }
    let claims = token_claims(&body)?;
    println!(
        "A CI job's OIDC token (repo:acme/deploy-pipelines, environment prod) was federated: sub {}, plane {}, {} s.",
        field(&claims, "sub"),
        field(&claims, "plane"),
        body.get("expires_in").and_then(Value::as_i64).unwrap_or(0)
    );
    let (status, body) = federate(ci_token("repo:someone/fork:environment:prod")?).await?;
    println!(
        "The same from a fork: {} {} ({}).",
        status,
        field(&body, "error"),
        field(&body, "error_description")
    );
    jit(admin, &api_key, &endpoint).await
}

/// A just-in-time credential for a named workflow: approved by policy, short, expiring
/// on its own, renewed by asking again.
async fn jit(admin: &ApiClient, key: &SigningKey, endpoint: &str) -> Result<()> {
    let request = |expires_in: &'static str| async move {
        let a = assertion(PAYMENTS_API, key, endpoint)?;
        admin
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", BEARER),
                ("client_assertion", &a),
                ("audience", LEDGER),
                ("workflow", WORKFLOW),
                ("expires_in", expires_in),
            ])
            .await
            .map_err(anyhow::Error::from)
    };
    let (status, body) = request("2").await?;
    if !is_success(status) {
        bail!("the JIT request was refused: {body}");
    }
    let token = field(&body, "access_token").to_owned();
    println!(
        "JIT credential for workflow {WORKFLOW}: scope `{}`, {} s, approved by policy.",
        field(&body, "scope"),
        body.get("expires_in").and_then(Value::as_i64).unwrap_or(0)
    );
    let meta = admin.server_metadata().await?;
    // No clock skew here: this demo and the server share a clock.
    let v = validator(admin, &meta.issuer, 0).await?;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let expect = Expectations {
        audience: LEDGER,
        environment: Some("prod"),
        now: now(),
        proof: Proof::None,
    };
    match v.validate(&token, &expect) {
        Err(e) => println!("Two seconds later it has expired on its own: {e}."),
        Ok(_) => bail!("the JIT credential did not expire"),
    }
    let (status, body) = request("300").await?;
    println!(
        "Asking again renews it while policy still allows: {} ({} s).",
        status,
        body.get("expires_in").and_then(Value::as_i64).unwrap_or(0)
    );
    Ok(())
}

/// The (unverified) claims of the `access_token` in a token response, for display.
fn token_claims(body: &Value) -> Result<Value> {
    let payload = field(body, "access_token")
        .split('.')
        .nth(1)
        .context("not a JWS")?;
    Ok(serde_json::from_slice(&base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload,
    )?)?)
}
