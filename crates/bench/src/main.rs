//! `steward-bench`: load harnesses that drive a real `steward serve` process.
//!
//! `steward-bench apply` measures the issue-2 targets: applying a governance repository
//! of 100,000 identities and 2,000 capabilities (target < 10 s) and the resident memory of
//! the idle control plane holding them (target < 200 MiB). Build the server in release
//! mode first; see docs/benchmarks.md.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};
use steward_api::RouteId;
use steward_testkit::ServerProcess as Server;

mod floor;
mod gateway;
mod paced;
mod pin;
mod policy;
mod posture;
mod revocation;
mod tokens;

/// The same allocator as the `steward` binary, so in-process figures match the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Load harnesses for Steward's performance targets")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Apply a generated governance repository and measure time and server memory.
    Apply {
        #[arg(long, default_value_t = 100_000)]
        identities: usize,
        #[arg(long, default_value_t = 2_000)]
        capabilities: usize,
        /// Repetitions; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The steward binary to benchmark.
        #[arg(long, default_value = "target/release/steward")]
        steward: PathBuf,
        /// Seconds to let the server settle before reading its memory after the apply.
        #[arg(long, default_value_t = 15)]
        settle_secs: u64,
        /// Run the server on PostgreSQL (a fresh, empty database) instead of SQLite.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Policy decisions: in-process latency, AuthZEN over loopback HTTP, and (built with
    /// `--features rego-bench`) the same decisions on regorus.
    Policy {
        #[arg(long, default_value_t = 100)]
        planes: usize,
        #[arg(long, default_value_t = 10_000)]
        identities: usize,
        #[arg(long, default_value_t = 2_000)]
        capabilities: usize,
        #[arg(long, default_value_t = 1_000)]
        plane_policies: usize,
        #[arg(long, default_value_t = 20)]
        guardrails: usize,
        /// Decisions per in-process run.
        #[arg(long, default_value_t = 200_000)]
        decisions: usize,
        /// Decisions per regorus run (slower; the same mix, truncated).
        #[arg(long, default_value_t = 20_000)]
        rego_decisions: usize,
        /// Seconds of HTTP load per run (0 skips the HTTP part).
        #[arg(long, default_value_t = 10)]
        http_seconds: u64,
        /// Concurrent keep-alive connections of the HTTP load.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Distinct requests the HTTP load cycles through. With the default 1,000 a
        /// request repeats about 20 times a second at 20,000/s (answered from the decision
        /// cache); 50,000 repeats none within a second (every decision evaluated).
        #[arg(long, default_value_t = 1_000)]
        http_mix: usize,
        /// After the saturating `wrk` runs, the same mix at this fixed rate (decisions/s,
        /// open loop, coordinated omission corrected): the latency at the target
        /// throughput. 0 skips it.
        #[arg(long, default_value_t = 20_000.0)]
        http_rate: f64,
        /// Keep-alive connections of the fixed-rate load (one load thread each).
        #[arg(long, default_value_t = 8)]
        paced_connections: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Tokens: validation (raw ES256 verify vs cold vs cached) in process, and issuance
    /// over loopback HTTP with `private_key_jwt` (needs `wrk`).
    Tokens {
        /// Distinct tokens validated per run.
        #[arg(long, default_value_t = 20_000)]
        tokens: usize,
        /// Identities with registered keys (issuance).
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Seconds of HTTP load per run (0 skips issuance).
        #[arg(long, default_value_t = 5)]
        http_seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Enforcement: wrk through `steward gateway` vs straight to the upstream vs through
    /// nginx as a plain proxy, and the nginx, RabbitMQ and ext_authz decision endpoints.
    Gateway {
        /// Seconds of load per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The nginx binary for the plain-proxy peer.
        #[arg(long, default_value = "/usr/sbin/nginx")]
        nginx: PathBuf,
        /// Give the control plane its own core(s) and run the load tool, the upstream,
        /// the gateway and nginx on CPU 0, as when the control plane is on other hosts:
        /// its ingestion of decision records then no longer shares the request path's
        /// core. Direct and proxied runs compare on the same single core. Needs Linux,
        /// `taskset` and 2 CPUs.
        #[arg(long)]
        pin: bool,
    },
    /// Revocation: time from the revoke API call to the last acknowledgement, with many
    /// enforcement points connected over loopback.
    Revocation {
        /// Enforcement points (each its own connections, bundle and feed).
        #[arg(long, default_value_t = 50)]
        points: usize,
        /// Token revocations per run, one after another.
        #[arg(long, default_value_t = 100)]
        revocations: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Posture over a large registry and evidence log, and the console's API calls.
    Posture {
        #[arg(long, default_value_t = 100_000)]
        identities: usize,
        #[arg(long, default_value_t = 10_000_000)]
        events: usize,
        /// Depths of the effective-permission analysis to time (`max_analysed`).
        #[arg(long, value_delimiter = ',', default_values_t = [0, 100])]
        analysed: Vec<usize>,
        /// Also time rebuilding the usage roll-up from the whole log.
        #[arg(long)]
        rebuild: bool,
    },
    /// Evidence append with group commit vs one transaction per event, and verify time.
    Evidence {
        /// Events appended through the group-commit writer.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Concurrent producers, each waiting for its events to be durable.
        #[arg(long, default_value_t = 64)]
        producers: usize,
        /// Events per producer submission.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Events appended one transaction at a time (the baseline).
        #[arg(long, default_value_t = 2_000)]
        baseline_events: usize,
        /// Size of the log to verify.
        #[arg(long, default_value_t = 1_000_000)]
        verify_events: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[derive(Default)]
struct Samples {
    apply_s: Vec<f64>,
    noop_s: Vec<f64>,
    rss_after_apply: Vec<f64>,
    peak: Vec<f64>,
    rss_idle_restart: Vec<f64>,
}

async fn apply_run(
    steward: &Path,
    identities: usize,
    capabilities: usize,
    settle: Duration,
    database_url: Option<&str>,
    s: &mut Samples,
) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let files = steward_testkit::scaled_repo(identities, capabilities, 1);
    let body = serde_json::to_vec(&serde_json::json!({ "files": files }))?;
    let token_file = tmp.path().join("token");
    let server = Server::start(steward, tmp.path(), &token_file, database_url)
        .context("cannot start the server")?;
    let token = std::fs::read_to_string(&token_file)?.trim().to_owned();
    let http = reqwest::Client::new();
    let apply = || {
        http.post(api_url(&server.url, RouteId::ConfigApply, &[]))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
    };
    let t = Instant::now();
    let resp = apply().await?;
    if !resp.status().is_success() {
        bail!("apply failed: {} {}", resp.status(), resp.text().await?);
    }
    s.apply_s.push(t.elapsed().as_secs_f64());
    let t = Instant::now();
    let resp = apply().await?;
    let answer: serde_json::Value = resp.json().await?;
    if answer.get("changed") != Some(&serde_json::Value::Bool(false)) {
        bail!("re-apply changed something: {answer}");
    }
    s.noop_s.push(t.elapsed().as_secs_f64());
    tokio::time::sleep(settle).await;
    let (rss, peak) = server.memory_mib()?;
    s.rss_after_apply.push(rss);
    s.peak.push(peak);
    drop(server);
    let server = Server::start(steward, tmp.path(), &token_file, database_url)
        .context("cannot start the server")?;
    let status: serde_json::Value = http
        .get(api_url(&server.url, RouteId::Status, &[]))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let held: i64 = status
        .pointer("/identities/active")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    if held as usize != identities {
        bail!("restarted server holds {held} identities, expected {identities}");
    }
    // Idle means settled: the start-up load of the policy engine has finished and freed
    // its scratch memory.
    tokio::time::sleep(settle).await;
    s.rss_idle_restart.push(server.memory_mib()?.0);
    Ok(())
}

/// splitmix64's finaliser: a fixed, well-spread bijection of `n`.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sample_event(n: usize) -> steward_audit::Event {
    use steward_audit::{Event, EventKind, Outcome};
    let mut e = Event::new(
        EventKind::AccessDecision,
        format!("bench-{n}"),
        steward_model::timestamp::now(),
    );
    // 10,000 identities in no particular order, as a busy control plane sees them.
    e.principal = Some(format!(
        "spiffe://acme.example/plane-{}/prod/workload-{}",
        n % 20,
        mix(n as u64) % 10_000
    ));
    e.plane = Some(format!("plane-{}", n % 20));
    e.action = Some("invoke".into());
    e.destination.capability = Some(format!("svc{}.op", n % 2000));
    e.destination.address = Some(format!("http POST /svc{}/orders/{n}", n % 2000));
    e.decision.outcome = Some(if n.is_multiple_of(7) {
        Outcome::Deny
    } else {
        Outcome::Allow
    });
    e.decision.policies = vec![format!("plane-{}.permit-{}", n % 20, n % 5)];
    // W3C trace ids are random: index inserts land all over the correlation index.
    e.correlation_id = Some(format!("{:016x}{:016x}", mix(n as u64), mix(!(n as u64))));
    e.enforcement_point = Some("gateway-1".into());
    e.policy_version = Some(7);
    e
}

/// Events/s through the group-commit writer with `producers` tasks awaiting durability.
async fn group_commit_rate(
    store: &steward_store::Store,
    events: usize,
    producers: usize,
    batch: usize,
) -> Result<f64> {
    let (writer, _task) = steward_server::evidence::EvidenceWriter::spawn(
        store.clone(),
        producers * 2,
        steward_server::evidence::OverflowPolicy::FailClosed,
    );
    let per_producer = events / producers;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = p * per_producer;
            while n < (p + 1) * per_producer {
                let evs: Vec<_> = (n..n + batch).map(sample_event).collect();
                n += batch;
                writer.record(evs).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per_producer * producers) as f64 / t.elapsed().as_secs_f64())
}

/// Events/s when one producer streams events with `submit` (no per-event wait) and a final
/// `record` waits for the last batch: the writer's own sustained rate.
async fn streamed_rate(store: &steward_store::Store, events: usize) -> Result<f64> {
    let (writer, _task) = steward_server::evidence::EvidenceWriter::spawn(
        store.clone(),
        events + 1,
        steward_server::evidence::OverflowPolicy::FailClosed,
    );
    let prepared: Vec<_> = (0..events).map(|n| sample_event(10_000_000 + n)).collect();
    let t = Instant::now();
    for e in prepared {
        writer.submit(vec![e])?;
    }
    writer.record(vec![sample_event(20_000_000)]).await?;
    Ok((events + 1) as f64 / t.elapsed().as_secs_f64())
}

/// What one evidence run measured.
struct EvidenceRun {
    /// Events/s with every producer awaiting its own ack.
    grouped: f64,
    /// Events/s of one producer streaming.
    streamed: f64,
    /// Events/s with one transaction per event.
    baseline: f64,
    /// Microseconds of the usage roll-up per event folded.
    roll_up_us: f64,
    /// Seconds to verify the whole log.
    verify_s: f64,
}

async fn evidence_run(
    events: usize,
    producers: usize,
    batch: usize,
    baseline_events: usize,
    verify_events: usize,
) -> Result<EvidenceRun> {
    let dir = tempfile::tempdir()?;
    let store = steward_store::Store::open_data_dir(dir.path()).await?;
    // Baseline: one transaction (one durable commit) per event.
    let t = Instant::now();
    for n in 0..baseline_events {
        store.append_evidence(&[sample_event(n)]).await?;
    }
    let baseline = baseline_events as f64 / t.elapsed().as_secs_f64();
    let grouped = group_commit_rate(&store, events, producers, batch).await?;
    let streamed = streamed_rate(&store, events).await?;
    // The usage roll-up folds everything appended so far, as the server does every 5 s.
    let t = Instant::now();
    let folded = store.roll_up_usage(i64::MAX).await?;
    let roll_up_us = t.elapsed().as_secs_f64() * 1e6 / folded.events.max(1) as f64;
    // Fill up to `verify_events` quickly, then verify everything.
    let mut have = store.evidence_head().await?.seq as usize;
    while have < verify_events {
        let n = (verify_events - have).min(5_000);
        let evs: Vec<_> = (have..have + n).map(sample_event).collect();
        store.append_evidence(&evs).await?;
        have += n;
    }
    let t = Instant::now();
    let report = store.verify_evidence().await?;
    let verify_s = t.elapsed().as_secs_f64();
    if !report.ok() || report.events as usize != have {
        bail!("verify failed: {:?}", report.problems);
    }
    Ok(EvidenceRun {
        grouped,
        streamed,
        baseline,
        roll_up_us,
        verify_s,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    // The control plane's own logs when asked for (`RUST_LOG=steward_server=info`).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match Cli::parse().command {
        Bench::Policy {
            planes,
            identities,
            capabilities,
            plane_policies,
            guardrails,
            decisions,
            rego_decisions,
            http_seconds,
            connections,
            http_mix,
            http_rate,
            paced_connections,
            runs,
        } => {
            let world = policy::World {
                planes,
                identities,
                capabilities,
                plane_policies,
                guardrails,
            };
            policy_bench(
                world,
                decisions,
                rego_decisions,
                HttpLoad {
                    seconds: http_seconds,
                    connections,
                    mix: http_mix,
                    rate: http_rate,
                    paced_connections,
                },
                runs,
            )
            .await?
        }
        Bench::Tokens {
            tokens: n,
            clients,
            http_seconds,
            connections,
            runs,
        } => {
            tokens::validation(n, runs)?;
            if http_seconds > 0 {
                tokens::issuance(clients, http_seconds, connections, runs).await?;
            }
        }
        Bench::Gateway {
            seconds,
            connections,
            runs,
            nginx,
            pin,
        } => gateway::run(seconds, connections, runs, Some(nginx), pin).await?,
        Bench::Posture {
            identities,
            events,
            analysed,
            rebuild,
        } => posture::run(identities, events, analysed, rebuild).await?,
        Bench::Revocation {
            points,
            revocations,
            runs,
        } => revocation::run(points, revocations, runs).await?,
        Bench::Evidence {
            events,
            producers,
            batch,
            baseline_events,
            verify_events,
            runs,
        } => {
            let mut all = Vec::new();
            for run in 1..=runs {
                let r =
                    evidence_run(events, producers, batch, baseline_events, verify_events).await?;
                eprintln!(
                    "run {run}/{runs}: streamed {:.0} events/s, per-event acks {:.0} events/s, unbatched {:.0} events/s, usage roll-up {:.2} us/event, verify {verify_events} in {:.2} s",
                    r.streamed, r.grouped, r.baseline, r.roll_up_us, r.verify_s
                );
                all.push(r);
            }
            let med = |f: fn(&EvidenceRun) -> f64| median(all.iter().map(f).collect());
            let (g, st, b, u, v) = (
                med(|r| r.grouped),
                med(|r| r.streamed),
                med(|r| r.baseline),
                med(|r| r.roll_up_us),
                med(|r| r.verify_s),
            );
            println!(
                "evidence benchmark (SQLite, synchronous=FULL, every acknowledged event durable), medians of {runs}:"
            );
            println!(
                "  group commit, one producer streaming {events} events, final ack: {st:.0} events/s  (target >= 50,000: {:.2}x)",
                st / 50_000.0
            );
            println!(
                "  group commit, {producers} producers each awaiting its own ack:  {g:.0} events/s  ({:.2}x of 50,000)",
                g / 50_000.0
            );
            println!(
                "  unbatched insert loop, one transaction per event:  {b:.0} events/s  (streamed group commit = {:.0}x, per-event acks = {:.0}x)",
                st / b,
                g / b
            );
            println!(
                "  usage roll-up (posture's aggregates), all at once: {u:.2} us per event folded"
            );
            println!(
                "  audit verify of {verify_events} events: {v:.2} s  (target < 10 s: {:.2}x of the budget)",
                v / 10.0
            );
        }
        Bench::Apply {
            identities,
            capabilities,
            runs,
            steward,
            settle_secs,
            database_url,
        } => {
            if !steward.exists() {
                bail!(
                    "{} not found: build it first with `cargo build --release -p steward-cli`",
                    steward.display()
                );
            }
            let mut s = Samples::default();
            for run in 1..=runs {
                apply_run(
                    &steward,
                    identities,
                    capabilities,
                    Duration::from_secs(settle_secs),
                    database_url.as_deref(),
                    &mut s,
                )
                .await?;
                let last = |v: &Vec<f64>| v.last().copied().unwrap_or(f64::NAN);
                eprintln!(
                    "run {run}/{runs}: apply {:.2} s, no-op re-apply {:.2} s, RSS settled after apply {:.0} MiB (peak {:.0}), idle after restart {:.0} MiB",
                    last(&s.apply_s),
                    last(&s.noop_s),
                    last(&s.rss_after_apply),
                    last(&s.peak),
                    last(&s.rss_idle_restart)
                );
                if database_url.is_some() && run < runs {
                    eprintln!(
                        "note: on PostgreSQL later runs apply into the same database only if it is emptied; use --runs 1 per fresh database"
                    );
                    break;
                }
            }
            let (apply, idle) = (median(s.apply_s), median(s.rss_idle_restart));
            println!(
                "apply benchmark: {identities} identities, {capabilities} capabilities, {} run(s), medians",
                s.noop_s.len()
            );
            println!(
                "  apply (upload + parse + plan + one transaction): {apply:.2} s  (target < 10 s: {:.2}x of the budget)",
                apply / 10.0
            );
            println!(
                "  no-op re-apply (plan against {identities} stored):  {:.2} s",
                median(s.noop_s)
            );
            println!(
                "  RSS {settle_secs} s after apply: {:.0} MiB, peak during apply: {:.0} MiB",
                median(s.rss_after_apply),
                median(s.peak)
            );
            println!(
                "  RSS idle after restart, holding them: {idle:.0} MiB  (target < 200 MiB: {:.2}x of the budget)",
                idle / 200.0
            );
        }
    }
    Ok(())
}

/// The AuthZEN load of the policy bench.
struct HttpLoad {
    seconds: u64,
    connections: usize,
    mix: usize,
    /// Decisions/s of the fixed-rate runs (0: none).
    rate: f64,
    paced_connections: usize,
}

async fn policy_bench(
    world: policy::World,
    decisions: usize,
    rego_decisions: usize,
    load: HttpLoad,
    runs: usize,
) -> Result<()> {
    let HttpLoad {
        seconds: http_seconds,
        connections,
        mix: http_mix,
        rate: paced_rate,
        paced_connections,
    } = load;
    let started = Instant::now();
    let desired = policy::desired(&world)?;
    let parsed = started.elapsed();
    let engine = steward_policy::Engine::from_desired(&desired, time::OffsetDateTime::now_utc())
        .map_err(|e| anyhow::anyhow!("the generated policy does not compile: {e}"))?;
    eprintln!(
        "world: {} planes, {} identities, {} capabilities, {} policies ({} guardrails); parsed in {:.2} s, engine built in {:.2} s",
        world.planes,
        desired.identities.len(),
        desired.capabilities.len(),
        engine.compiled().policies().len(),
        world.guardrails,
        parsed.as_secs_f64(),
        (started.elapsed() - parsed).as_secs_f64()
    );
    let requests = world.requests(decisions, 42);
    let (mut med, mut p99, mut rate) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let (l, outcomes) = policy::in_process(&engine, &requests, false);
        eprintln!(
            "run {run}/{runs} in-process: median {:.2} us, p99 {:.2} us, {:.0} decisions/s on one thread, {} of {} allowed",
            l.median_us,
            l.p99_us,
            l.per_sec,
            l.allowed,
            requests.len()
        );
        med.push(l.median_us);
        p99.push(l.p99_us);
        rate.push(l.per_sec);
        let _ = outcomes;
    }
    println!(
        "in-process decision: median {:.2} us (target <= 20 us: {:.2}x of budget), p99 {:.2} us, {:.0} decisions/s per core",
        median(med.clone()),
        median(med.clone()) / 20.0,
        median(p99),
        median(rate)
    );

    let repeated: Vec<f64> = (0..runs)
        .map(|_| policy::in_process(&engine, &requests, true).0.median_us)
        .collect();
    println!(
        "in-process decision repeated within its second (decision cache): median {:.2} us",
        median(repeated)
    );

    let by_address: Vec<f64> = (0..runs)
        .map(|_| policy::in_process_by_address(&engine, &requests).median_us)
        .collect();
    println!(
        "in-process decision by HTTP address (catalog lookup included): median {:.2} us",
        median(by_address)
    );

    #[cfg(feature = "rego-bench")]
    {
        let subset = requests
            .get(..rego_decisions.min(requests.len()))
            .unwrap_or_default();
        let (mut rmed, mut ratio) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            let (steward, s_out) = policy::in_process(&engine, subset, false);
            let (rego, r_out) = policy::rego(&world, subset)?;
            let disagree = s_out.iter().zip(&r_out).filter(|(a, b)| a != b).count();
            anyhow::ensure!(
                disagree == 0,
                "Rego and Cedar disagree on {disagree} of {} decisions",
                subset.len()
            );
            eprintln!(
                "run {run}/{runs} regorus: median {:.2} us vs steward {:.2} us on the same {} decisions (all agree, {} allowed)",
                rego.median_us,
                steward.median_us,
                subset.len(),
                rego.allowed
            );
            rmed.push(rego.median_us);
            ratio.push(rego.median_us / steward.median_us);
        }
        println!(
            "regorus on the equivalent Rego policy: median {:.2} us; Steward is {:.1}x faster (target >= 3x)",
            median(rmed),
            median(ratio)
        );
    }
    #[cfg(not(feature = "rego-bench"))]
    {
        let _ = rego_decisions;
        eprintln!("regorus comparison skipped: build with --features rego-bench");
    }

    if http_seconds > 0 {
        let server = InProcessServer::start(desired, "bench.example")?;
        let (base, token) = (server.base.clone(), server.token.clone());
        let mut figures = policy::Runs::default();
        for run in 1..=runs {
            let wrk = {
                let (base, token, requests) = (base.clone(), token.clone(), requests.clone());
                tokio::task::spawn_blocking(move || {
                    policy::wrk_load(
                        &base,
                        &token,
                        requests
                            .get(..http_mix.min(requests.len()))
                            .unwrap_or_default(),
                        connections,
                        Duration::from_secs(http_seconds),
                    )
                })
                .await??
            };
            let (tool, l) = match wrk {
                Some(l) => ("wrk -t1", l),
                None => (
                    "in-process reqwest clients; install wrk for a lighter load tool",
                    policy::http_load(
                        &base,
                        &token,
                        requests
                            .get(..http_mix.min(requests.len()))
                            .unwrap_or_default(),
                        connections,
                        Duration::from_secs(http_seconds),
                    )
                    .await?,
                ),
            };
            eprintln!(
                "run {run}/{runs} AuthZEN over HTTP ({tool}, {connections} keep-alive connections): {:.0} decisions/s, median {:.0} us, p99 {:.0} us",
                l.per_sec, l.median_us, l.p99_us
            );
            figures.push(&l);
        }
        let (per_sec, p50, p99) = figures.medians();
        println!(
            "AuthZEN over loopback HTTP at saturation (wrk), cycling through {http_mix} distinct requests: {per_sec:.0} decisions/s ({:.2}x the 20,000/s target), median {p50:.0} us, p99 {:.2} ms",
            per_sec / 20_000.0,
            p99 / 1000.0
        );
        if paced_rate > 0.0 {
            let mix = requests
                .get(..http_mix.min(requests.len()))
                .unwrap_or_default();
            let mut paced = Vec::new();
            let mut floors = Vec::new();
            let floor = floor::Floor::start()?;
            let paced_at = |base: &str| {
                policy::paced_load(
                    base,
                    &token,
                    mix,
                    paced_connections,
                    paced_rate,
                    Duration::from_secs(http_seconds),
                )
            };
            for run in 1..=runs {
                let (written, folded) = server.settle().await?;
                eprintln!(
                    "  the evidence backlog of the previous phase was written in {:.2} s and folded into the usage totals in {:.2} s",
                    written.as_secs_f64(),
                    folded.as_secs_f64()
                );
                // The floor first, alternating with Steward in one sitting.
                let f = paced_at(&floor.base)?;
                eprintln!(
                    "run {run}/{runs} floor (a server that answers without deciding) at a fixed {paced_rate:.0}/s: median {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us",
                    f.median_us, f.p99_us, f.p999_us, f.max_us
                );
                floors.push(f);
                let l = paced_at(&base)?;
                anyhow::ensure!(
                    l.refused == 0,
                    "{} decisions were refused under the fixed-rate load",
                    l.refused
                );
                eprintln!(
                    "run {run}/{runs} AuthZEN at a fixed {paced_rate:.0}/s ({paced_connections} keep-alive connections, open loop): {:.0} decisions/s completed, median {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us, {} allowed",
                    l.per_sec, l.median_us, l.p99_us, l.p999_us, l.max_us, l.allowed
                );
                if !l.slow_windows.is_empty() {
                    // The slowest dozen, in time order: enough to see a period or a trend.
                    let mut slowest = l.slow_windows.clone();
                    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
                    slowest.truncate(12);
                    slowest.sort_by_key(|w| w.0);
                    let shown: Vec<String> = slowest
                        .iter()
                        .map(|(at, us)| format!("{:.1}s {:.1}ms", *at as f64 / 1e3, us / 1e3))
                        .collect();
                    eprintln!(
                        "  {} of the 100 ms windows had an answer over 5 ms; the slowest: {}",
                        l.slow_windows.len(),
                        shown.join(", ")
                    );
                }
                paced.push(l);
            }
            let med = |runs: &[paced::Paced], f: fn(&paced::Paced) -> f64| {
                median(runs.iter().map(f).collect())
            };
            let (done, p50, p99) = (
                med(&paced, |l| l.per_sec),
                med(&paced, |l| l.median_us),
                med(&paced, |l| l.p99_us),
            );
            let (floor_p50, floor_p99) =
                (med(&floors, |l| l.median_us), med(&floors, |l| l.p99_us));
            println!(
                "floor at the same fixed rate (same load, a server that does no work): median {floor_p50:.0} us, p99 {:.2} ms; Steward adds p50 {:+.0} us, p99 {:+.2} ms",
                floor_p99 / 1000.0,
                p50 - floor_p50,
                (p99 - floor_p99) / 1000.0
            );
            println!(
                "AuthZEN over loopback HTTP at a fixed {paced_rate:.0} decisions/s offered, cycling through {http_mix} distinct requests: {done:.0}/s completed ({:.2}x the 20,000/s target), median {p50:.0} us, p99 {:.2} ms ({:.2}x the 2 ms target)",
                done / 20_000.0,
                p99 / 1000.0,
                p99 / 2000.0
            );
        }
        server.stop()?;
    }
    Ok(())
}

/// The path of a control-plane route with `params` filled in (percent-encoded).
pub(crate) fn api_path(route: RouteId, params: &[&str]) -> String {
    route.route().path_with(params)
}

/// The URL of a control-plane route on the server at `base`.
pub(crate) fn api_url(base: &str, route: RouteId, params: &[&str]) -> String {
    format!("{base}{}", api_path(route, params))
}

/// A control plane in this process on its own two-worker runtime (as `steward serve`
/// would run), on a temporary embedded store holding `desired`.
struct InProcessServer {
    base: String,
    /// The bootstrap central-admin credential.
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<()>>,
    /// Its evidence writer and store, to wait for the evidence backlog of one phase to
    /// be written and folded into the usage totals before the next phase starts, and the
    /// runtime they run on.
    evidence: steward_server::evidence::EvidenceWriter,
    store: steward_store::Store,
    runtime: tokio::runtime::Handle,
    /// The served state, to serve it over TLS too (the gateway bench's certificate-bound
    /// tokens are asked for over mutual TLS).
    state: steward_server::AppState,
    _dir: tempfile::TempDir,
}

impl InProcessServer {
    fn start(desired: steward_governance::Desired, trust_domain: &str) -> Result<Self> {
        Self::start_on(desired, trust_domain, None)
    }

    /// [`InProcessServer::start`], its threads pinned to `cpus` (a `taskset` list) when
    /// given.
    fn start_on(
        desired: steward_governance::Desired,
        trust_domain: &str,
        cpus: Option<String>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut file = steward_server::config::FileConfig::default();
        file.evidence.queue_capacity = Some(65_536);
        let config = file.resolve(steward_server::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().into()),
            trust_domain: Some(trust_domain.to_owned()),
            database_url: None,
        })?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<()> {
            if let Some(cpus) = cpus {
                // Before the runtime exists: its workers, blocking threads and SQLite's
                // connection threads inherit this affinity.
                pin::current_thread(&cpus)?;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("steward-cp")
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let store = steward_store::Store::open_data_dir(&config.data_dir).await?;
                store
                    .apply(&desired, None, &steward_store::Actor::system())
                    .await?;
                let server = steward_server::LocalServer::start_on(store, config).await?;
                let _ = ready_tx.send((
                    server.base.clone(),
                    server.admin_token.clone(),
                    server.state.evidence.clone(),
                    server.store().clone(),
                    tokio::runtime::Handle::current(),
                    server.state.clone(),
                ));
                let _ = stop_rx.await;
                server.stop().await?;
                Ok(())
            })
        });
        let (base, token, evidence, store, runtime, state) =
            ready_rx.recv().context("the server did not start")?;
        Ok(Self {
            base,
            token,
            stop,
            thread,
            evidence,
            store,
            runtime,
            state,
            _dir: dir,
        })
    }

    /// A server holding the bundled example repository (trust domain `acme.example`), the
    /// payments plane's grant to the gateway benchmark's client and the catalog entry of
    /// its MCP tool.
    fn example() -> Result<Self> {
        Self::example_on(None)
    }

    /// [`InProcessServer::example`] pinned to `cpus` when given.
    fn example_on(cpus: Option<String>) -> Result<Self> {
        let mut files = steward_governance::read_dir(&steward_testkit::example_repo())?;
        files.push(steward_governance::SourceFile {
            path: "policies/payments/bench.cedar".into(),
            content: gateway::CLIENT_GRANT.into(),
        });
        files.push(steward_governance::SourceFile {
            path: "capabilities/bench-mcp.yaml".into(),
            content: gateway::MCP_CAPABILITY.into(),
        });
        let desired =
            steward_governance::parse(&files, &steward_model::TrustDomain::new("acme.example")?)
                .map_err(|e| anyhow::anyhow!("the example repository: {e}"))?;
        Self::start_on(desired, "acme.example", cpus)
    }

    /// Waits until every evidence event queued so far is written and folded into the
    /// usage totals: a saturating phase leaves a backlog whose writing, and then the
    /// background roll-up's folding, would otherwise be charged to the next phase (the
    /// floor's included). Returns how long each took.
    async fn settle(&self) -> Result<(Duration, Duration)> {
        let started = Instant::now();
        let writer = self.evidence.clone();
        self.runtime
            .spawn(async move { writer.flush().await })
            .await
            .context("the evidence flush task")??;
        let written = started.elapsed();
        let store = self.store.clone();
        self.runtime
            .spawn(async move {
                loop {
                    let r = store.roll_up_usage(100_000).await?;
                    if r.through_seq >= r.head_seq {
                        return Ok::<_, steward_store::StoreError>(());
                    }
                }
            })
            .await
            .context("the usage roll-up task")??;
        Ok((written, started.elapsed() - written))
    }

    /// Where its embedded store lives.
    fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("server thread panicked"))?
    }
}
