//! `steward-bench tokens`: the issue-5 targets. Validation in process — the raw ES256
//! verify of aws-lc-rs, a cold validation (a token never seen) and a cached one (a token
//! seen before) — and token issuance over loopback HTTP (`client_credentials` with
//! `private_key_jwt`, driven by `wrk` with pre-signed single-use client assertions).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;
use steward_api::RouteId;
use steward_token::{Expectations, Proof, SigningKey, Validator, jws};

use crate::median;

const ISS: &str = "https://steward.bench";
const AUD: &str = "spiffe://acme.example/ns/payments/sa/ledger";

/// Per-operation time of `op` over `items`, in microseconds: the median over batches.
fn per_op_us<T>(items: &[T], batch: usize, mut op: impl FnMut(&T)) -> f64 {
    let mut samples = Vec::new();
    for chunk in items.chunks(batch.max(1)) {
        let t = Instant::now();
        for item in chunk {
            op(item);
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / chunk.len() as f64);
    }
    median(samples)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Validation: raw verify vs cold vs cached, in this process.
pub fn validation(tokens: usize, runs: usize) -> Result<()> {
    let (key, _) = SigningKey::generate()?;
    let expect = Expectations {
        audience: AUD,
        environment: Some("prod"),
        now: now(),
        proof: Proof::None,
    };
    let (mut raw, mut cold, mut cached) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let minted: Vec<String> = (0..tokens)
            .map(|i| {
                jws::encode(
                    &key,
                    "JWT",
                    &json!({"iss": ISS, "sub": format!("spiffe://acme.example/w/{i}"), "aud": AUD,
                            "exp": now() + 600, "iat": now(), "nbf": now(), "jti": format!("{run}-{i}"),
                            "environment": "prod", "plane": "payments", "scope": "payments.refund"}),
                )
            })
            .collect::<Result<_, _>>()?;
        // The signature check alone, as the crypto library does it.
        let parts: Vec<(Vec<u8>, Vec<u8>)> = minted
            .iter()
            .map(|t| {
                let (input, sig) = t.rsplit_once('.').context("a token has three parts")?;
                Ok((input.as_bytes().to_vec(), B64URL.decode(sig)?))
            })
            .collect::<Result<_>>()?;
        let public = key.public_key().clone();
        let mut failures = 0usize;
        let r = per_op_us(&parts, 500, |(input, sig)| {
            failures += usize::from(public.verify(input, sig).is_err());
        });
        let validator = Validator::new(ISS, [public.clone()], 30);
        let c = per_op_us(&minted, 500, |t| {
            failures += usize::from(validator.validate(t, &expect).is_err());
        });
        let seen = minted.first().context("no tokens")?.clone();
        let repeated = vec![seen; tokens.max(10_000)];
        let h = per_op_us(&repeated, 1_000, |t| {
            failures += usize::from(validator.validate(t, &expect).is_err());
        });
        if failures > 0 {
            bail!("{failures} validations failed");
        }
        eprintln!(
            "run {run}/{runs}: raw ES256 verify {r:.1} us, cold validation {c:.1} us ({:.2}x), cached {h:.2} us",
            c / r
        );
        raw.push(r);
        cold.push(c);
        cached.push(h);
    }
    let (r, c, h) = (median(raw), median(cold), median(cached));
    println!(
        "Validation ({tokens} tokens, medians of {runs} runs): raw aws-lc-rs ES256 verify {r:.1} us; cold validation {c:.1} us = {:.2}x raw (target <= 1.5x); cached {h:.2} us (target <= 2 us, {:.2}x)",
        c / r,
        h / 2.0
    );
    Ok(())
}

/// Issuance over HTTP: `clients` identities with keys, `wrk` posting pre-signed
/// assertions (each used once) for `seconds` per run.
/// Registers `id` in the payments plane (prod) with a fresh key, returned.
pub(crate) async fn register_client(
    http: &reqwest::Client,
    server: &crate::InProcessServer,
    id: &str,
    intended: serde_json::Value,
) -> Result<SigningKey> {
    let (key, _) = SigningKey::generate()?;
    let jwk = key.public_key().jwk();
    let resp = http
        .post(crate::api_url(&server.base, RouteId::CreateIdentity, &[]))
        .bearer_auth(&server.token)
        .json(&json!({
            "spiffe_id": id, "plane": "payments", "owner": "payments-team",
            "environment": "prod", "kind": "service", "classification": "confidential",
            "intended": intended,
            "credentials": {"public_keys": [{"kid": "k1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}]},
        }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("registering {id}: {}", resp.text().await?);
    }
    Ok(key)
}

pub async fn issuance(clients: usize, seconds: u64, connections: usize, runs: usize) -> Result<()> {
    let server = crate::InProcessServer::example()?;
    let http = reqwest::Client::new();
    let mut keys = Vec::new();
    for i in 0..clients {
        let id = format!("spiffe://acme.example/ns/payments/sa/bench-{i}");
        let key = register_client(&http, &server, &id, json!([])).await?;
        keys.push((id, key));
    }
    let endpoint = crate::api_url(&server.base, RouteId::Token, &[]);
    // Enough single-use assertions for 15,000 tokens/s; wrk cycling past them would
    // replay one, and the 401 would fail the run.
    let per_run = 15_000 * seconds as usize;
    let mut figures = crate::policy::Runs::default();
    for run in 1..=runs {
        let t = Instant::now();
        let bodies: Vec<String> = (0..per_run)
            .map(|i| {
                let (id, key) = keys.get(i % keys.len()).context("no clients")?;
                let assertion = jws::encode(
                    key,
                    "JWT",
                    &json!({"iss": id, "sub": id, "aud": endpoint, "iat": now(), "exp": now() + 240,
                            "jti": format!("r{run}-{i}")}),
                )?;
                Ok(form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_assertion_type", steward_token::JWT_BEARER_ASSERTION)
                    .append_pair("client_assertion", &assertion)
                    .append_pair("audience", AUD)
                    .finish())
            })
            .collect::<Result<_>>()?;
        eprintln!(
            "run {run}/{runs}: {per_run} client assertions signed in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let base = server.base.clone();
        let l = tokio::task::spawn_blocking(move || {
            crate::policy::wrk_post(
                &base,
                &crate::api_path(RouteId::Token, &[]),
                "application/x-www-form-urlencoded",
                None,
                &bodies,
                connections,
                Duration::from_secs(seconds),
                false,
            )
        })
        .await??
        .context("the issuance benchmark needs wrk (apt-get install -y wrk)")?;
        eprintln!(
            "run {run}/{runs}: {:.0} tokens/s, median {:.0} us, p99 {:.0} us",
            l.per_sec, l.median_us, l.p99_us
        );
        figures.push(&l);
    }
    let (rate, p50, p99) = figures.medians();
    println!(
        "Issuance over loopback HTTP (client_credentials + private_key_jwt, {clients} clients, wrk -t1 -c{connections}, medians of {runs} runs): {rate:.0} tokens/s ({:.2}x the 5,000/s target), median {p50:.0} us, p99 {:.2} ms",
        rate / 5_000.0,
        p99 / 1000.0
    );
    server.stop()
}
