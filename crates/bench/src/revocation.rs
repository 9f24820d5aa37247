//! `steward-bench revocation`: the issue-7 target. `points` enforcement points (each its
//! own bundle source and revocation feed, as in a gateway process, on loopback) follow an
//! in-process control plane; `revocations` token revocations are made one after another
//! and each is timed from the revoke API call until the verification endpoint reports
//! every live point acknowledged. Target: p99 ≤ 250 ms. The alternative is waiting for
//! the token to expire: its exposure window is the configured token lifetime.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use steward_api::RouteId;
use steward_enforce::{BundleSource, FeedConfig, PointIdentity, RevocationFeed, SourceConfig};
use steward_token::{SigningKey, jws};

const CLIENT: &str = "spiffe://acme.example/ns/payments/sa/bench-revoked";
const AUDIENCE: &str = "spiffe://acme.example/ns/payments/sa/payments-api";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A token for [`CLIENT`]; returns (its `jti`, its lifetime in seconds).
async fn issue(http: &reqwest::Client, base: &str, key: &SigningKey) -> Result<(String, i64)> {
    let endpoint = crate::api_url(base, RouteId::Token, &[]);
    let assertion = jws::encode(
        key,
        "JWT",
        &json!({"iss": CLIENT, "sub": CLIENT, "aud": endpoint, "iat": now(), "exp": now() + 60,
                "jti": uuid::Uuid::new_v4().to_string()}),
    )?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", steward_token::JWT_BEARER_ASSERTION)
        .append_pair("client_assertion", &assertion)
        .append_pair("audience", AUDIENCE)
        .finish();
    let resp: Value = http
        .post(&endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?
        .json()
        .await?;
    let token = resp
        .get("access_token")
        .and_then(Value::as_str)
        .with_context(|| format!("no token: {resp}"))?;
    let ttl = resp.get("expires_in").and_then(Value::as_i64).unwrap_or(0);
    let payload = token.split('.').nth(1).context("not a JWS")?;
    use base64::Engine as _;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .context("no jti")?
        .to_owned();
    Ok((jti, ttl))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

pub async fn run(points: usize, revocations: usize, runs: usize) -> Result<()> {
    let server = crate::InProcessServer::example()?;
    let http = reqwest::Client::new();
    let key = crate::tokens::register_client(&http, &server, CLIENT, json!([])).await?;
    let created: Value = http
        .post(crate::api_url(&server.base, RouteId::CreateCredential, &[]))
        .bearer_auth(&server.token)
        .json(&json!({"name": "bench points", "role": "ingestor"}))
        .send()
        .await?
        .json()
        .await?;
    let ingestor = created
        .get("token")
        .and_then(Value::as_str)
        .context("no ingestor credential")?
        .to_owned();
    // The points: each its own HTTP client (its own connections), bundle and feed.
    let mut feeds = Vec::new();
    for i in 0..points {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let source = BundleSource::new(
            SourceConfig {
                url: server.base.clone(),
                credential: ingestor.clone().into(),
                point: format!("bench:{i}"),
                refresh: Duration::from_secs(5),
                max_staleness: Duration::from_secs(300),
                anchor: Vec::new(),
            },
            client.clone(),
        );
        source.refresh().await?;
        let feed = RevocationFeed::new(
            FeedConfig {
                url: server.base.clone(),
                credential: ingestor.clone().into(),
                points: vec![PointIdentity {
                    id: format!("bench:{i}"),
                    kind: "bench".into(),
                    name: format!("p{i}"),
                    environment: Some("prod".into()),
                }],
                report_every: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(30),
            },
            client,
            source.clone(),
            Vec::new(),
        );
        let _ = feed.spawn();
        feeds.push((source, feed));
    }
    // Every point registered and connected before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: Value = http
            .get(crate::api_url(
                &server.base,
                RouteId::EnforcementPoints,
                &[],
            ))
            .bearer_auth(&server.token)
            .send()
            .await?
            .json()
            .await?;
        let live = listed
            .get("points")
            .and_then(Value::as_array)
            .map_or(0, |p| p.len());
        if live >= points && feeds.iter().all(|(_, f)| f.status().connected) {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {live} of {points} points registered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut lifetime = 0;
    let mut medians = Vec::new();
    let mut p99s = Vec::new();
    for run in 1..=runs {
        let mut jtis = Vec::with_capacity(revocations);
        for _ in 0..revocations {
            let (jti, ttl) = issue(&http, &server.base, &key).await?;
            lifetime = ttl;
            jtis.push(jti);
        }
        let mut ms = Vec::with_capacity(revocations);
        for jti in jtis {
            let t = Instant::now();
            let revoked: Value = http
                .post(crate::api_url(&server.base, RouteId::Revoke, &[]))
                .bearer_auth(&server.token)
                .json(&json!({"kind": "token", "target": jti, "reason": "benchmark"}))
                .send()
                .await?
                .json()
                .await?;
            let epoch = revoked
                .pointer("/revocation/epoch")
                .and_then(Value::as_i64)
                .with_context(|| format!("revoke failed: {revoked}"))?;
            let v: Value = http
                .get(format!(
                    "{}?wait_secs=10",
                    crate::api_url(
                        &server.base,
                        RouteId::RevocationVerification,
                        &[&epoch.to_string()],
                    )
                ))
                .bearer_auth(&server.token)
                .send()
                .await?
                .json()
                .await?;
            let took = t.elapsed().as_secs_f64() * 1000.0;
            let acked = v
                .get("acknowledged")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if v.get("complete") != Some(&Value::Bool(true)) || acked < points {
                bail!("epoch {epoch}: {acked} of {points} acknowledged: {v}");
            }
            ms.push(took);
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
        eprintln!(
            "run {run}/{runs}: {revocations} revocations × {points} points: revoke → last acknowledgement median {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
            ms.last().copied().unwrap_or(f64::NAN)
        );
        medians.push(p50);
        p99s.push(p99);
    }
    // Every point applied every epoch.
    let last = feeds
        .iter()
        .map(|(s, _)| s.revocations().epoch())
        .min()
        .unwrap_or(0);
    if last < (revocations * runs) as i64 {
        bail!("a point applied only up to epoch {last}");
    }
    let (p50, p99) = (crate::median(medians), crate::median(p99s));
    println!(
        "Revocation with {points} points on loopback ({revocations} token revocations per run, medians of {runs} runs): revoke API call → last acknowledgement median {p50:.1} ms, p99 {p99:.1} ms (target p99 <= 250 ms: {:.2}x of it). Waiting for expiry instead: up to {lifetime} s (the token lifetime here), {:.0}x longer than the p99.",
        p99 / 250.0,
        lifetime as f64 * 1000.0 / p99
    );
    drop(feeds);
    server.stop()
}
