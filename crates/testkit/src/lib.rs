//! Support shared by tests and benchmarks. Not used by the product.
//!
//! * [`postgres_url`] hands each test a fresh database on the real PostgreSQL server
//!   named by `STEWARD_TEST_POSTGRES_URL`; outside CI a missing server skips loudly, under
//!   `CI=true` it fails the test.
//! * [`scaled_repo`] generates a governance repository of any size, for load tests and the
//!   apply benchmark.

#![expect(
    clippy::panic,
    reason = "test support: a test whose server is missing must fail loudly"
)]

use sqlx::{AnyConnection, Connection, Executor};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use steward_governance::SourceFile;

/// Environment variable naming a PostgreSQL URL whose role may `CREATE DATABASE`.
pub const POSTGRES_ENV: &str = "STEWARD_TEST_POSTGRES_URL";

/// Every environment variable `steward` reads; tests clear them so the developer's own
/// settings cannot leak into a test.
pub const STEWARD_ENV: &[&str] = &[
    "STEWARD_CONFIG",
    "STEWARD_LISTEN",
    "STEWARD_DATA_DIR",
    "STEWARD_DATABASE_URL",
    "STEWARD_TRUST_DOMAIN",
    "STEWARD_SERVER",
    "STEWARD_TOKEN",
];

/// The bundled example governance repository.
pub fn example_repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/governance")
}

/// Whether tests run under CI, where every real-server test must run.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Stops a server started by a test or a benchmark the way its own tooling would:
/// `SIGTERM`, then `SIGKILL` if it has not exited within `grace`. Servers that fork workers
/// (nginx) or run a VM under a wrapper script (RabbitMQ) stop them on `SIGTERM`; a `SIGKILL`
/// of the parent alone leaves them running, holding ports and CPU for whatever runs next.
pub fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if signalled {
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A server child stopped with [`terminate`] (5 s grace) when dropped, also when a test
/// fails: tests must not leave servers behind.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        terminate(&mut self.0, std::time::Duration::from_secs(5));
    }
}

/// Says that part of a test did not run because a real server or tool is missing, where a
/// newcomer's `cargo test --workspace` shows it: at once, past the test harness's output
/// capture (which hides a passing test's output), and again as a list after the test
/// binary's own summary, grouped by what was missing and how to run it.
///
/// `part` names what is missing (`PostgreSQL`, `nginx`, `Chromium`, …) and `how` how to
/// provide it. Outside CI only: under `CI=true` the callers fail instead.
pub fn skipped(test: &str, part: &str, how: &str) {
    use std::io::Write;
    let line = format!("\n*** SKIPPING {part} part of `{test}`: {how} ***\n");
    // `eprintln!` is captured per test; a write to the stream itself is not.
    let _ = std::io::stderr().write_all(line.as_bytes());
    SKIPPED
        .lock()
        .push((part.to_owned(), how.to_owned(), test.to_owned()));
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: `atexit` only stores the pointer to a function that lives as long as the
        // process; the function takes no arguments and unwinds nothing.
        #[allow(unsafe_code)]
        unsafe {
            libc::atexit(report_skipped);
        }
    });
}

/// What [`skipped`] recorded in this test binary: (part, how to run it, test).
static SKIPPED: parking_lot::Mutex<Vec<(String, String, String)>> =
    parking_lot::Mutex::new(Vec::new());

/// Runs when the test binary exits, after the harness's `test result` line.
extern "C" fn report_skipped() {
    use std::io::Write;
    let list = SKIPPED.lock();
    let mut by_part: std::collections::BTreeMap<(&str, &str), Vec<&str>> =
        std::collections::BTreeMap::new();
    for (part, how, test) in list.iter() {
        by_part.entry((part, how)).or_default().push(test);
    }
    let mut out = format!(
        "\n*** NOT RUN: {} real-server part(s) of this test binary were skipped ***\n",
        list.len()
    );
    for ((part, how), tests) in by_part {
        out.push_str(&format!(
            "    {part}: {} test(s), e.g. `{}`\n        to run them: {how}\n",
            tests.len(),
            tests.first().copied().unwrap_or_default()
        ));
    }
    out.push_str("    (`.ci/run`, as root, installs and starts every one of them)\n\n");
    let _ = std::io::stderr().write_all(out.as_bytes());
}

/// A URL to a brand-new, empty PostgreSQL database for one test, or `None` (after a loud
/// message) when no server is configured outside CI.
pub async fn postgres_url(test: &str) -> Option<String> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        if in_ci() {
            panic!(
                "{POSTGRES_ENV} is not set but CI=true: the PostgreSQL tests must run in CI (see .ci/run)"
            );
        }
        skipped(
            test,
            "PostgreSQL",
            &format!("set {POSTGRES_ENV}=postgres://USER:PW@HOST:PORT/DB (a role with CREATEDB)"),
        );
        return None;
    };
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "steward_t{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        sanitize(test)
    );
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV}: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .await
    .unwrap_or_else(|e| panic!("drop database: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("create database: {e}"));
    let _ = conn.close().await;
    let (prefix, _) = base.rsplit_once('/').unwrap_or((&base, ""));
    Some(format!("{prefix}/{name}"))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(30)
        .collect::<String>()
        .to_lowercase()
}

/// A governance repository with `identities` identities and `capabilities` capabilities
/// spread over 20 planes and 50 owners, in the trust domain `acme.example`. `generation`
/// changes every identity's description, so two generations differ in every identity.
pub fn scaled_repo(identities: usize, capabilities: usize, generation: u32) -> Vec<SourceFile> {
    const PLANES: usize = 20;
    const OWNERS: usize = 50;
    const ENVS: [&str; 4] = ["dev", "test", "staging", "prod"];
    const KINDS: [&str; 5] = ["service", "agent", "pipeline", "partner", "legacy-key"];
    let mut base = String::from(
        "settings:\n  max_token_ttl_secs: 3600\n  environments: [dev, test, staging, prod]\nplanes:\n",
    );
    for p in 0..PLANES {
        base.push_str(&format!("  - id: plane-{p}\n    name: Plane {p}\n"));
    }
    base.push_str("owners:\n");
    for o in 0..OWNERS {
        base.push_str(&format!(
            "  - id: team-{o}\n    name: Team {o}\n    email: team-{o}@acme.example\n"
        ));
    }
    let mut caps = String::from("capabilities:\n");
    for c in 0..capabilities {
        caps.push_str(&format!(
            "  - id: svc{c}.op\n    plane: plane-{}\n    classification: internal\n    mappings:\n      - http: {{method: POST, path: /svc{c}/**}}\n      - grpc: {{service: acme.svc{c}.V1, method: \"*\"}}\n      - amqp: {{exchange: svc{c}, routing_key: \"#\"}}\n",
            c % PLANES
        ));
    }
    let mut files = vec![
        SourceFile {
            path: "base.yaml".into(),
            content: base,
        },
        SourceFile {
            path: "capabilities.yaml".into(),
            content: caps,
        },
    ];
    const PER_FILE: usize = 10_000;
    for (file_no, start) in (0..identities).step_by(PER_FILE).enumerate() {
        let mut text = String::from("identities:\n");
        for i in start..(start + PER_FILE).min(identities) {
            let cap = if capabilities > 0 {
                format!(
                    "    intended:\n      - capability: svc{}.op\n        actions: [write]\n",
                    i % capabilities
                )
            } else {
                String::new()
            };
            text.push_str(&format!(
                "  - spiffe_id: {id}\n    plane: plane-{p}\n    owner: team-{o}\n    environment: {env}\n    kind: {kind}\n    description: generation {generation}\n    labels: {{app: workload-{i}, tier: backend}}\n{cap}",
                id = scaled_identity(i),
                p = i % PLANES,
                o = i % OWNERS,
                env = ENVS.get(i % ENVS.len()).copied().unwrap_or("dev"),
                kind = KINDS.get(i % KINDS.len()).copied().unwrap_or("service"),
            ));
        }
        files.push(SourceFile {
            path: format!("identities/part-{file_no:03}.yaml"),
            content: text,
        });
    }
    files
}

/// The SPIFFE ID of identity `i` of [`scaled_repo`].
pub fn scaled_identity(i: usize) -> String {
    const ENVS: [&str; 4] = ["dev", "test", "staging", "prod"];
    format!(
        "spiffe://acme.example/plane-{}/{}/workload-{i}",
        i % 20,
        ENVS.get(i % ENVS.len()).copied().unwrap_or("dev")
    )
}

/// A `steward serve` child process on an ephemeral loopback port, for end-to-end tests and
/// load harnesses. Killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    /// Base URL of its admin API, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

impl ServerProcess {
    /// Starts `binary serve` on `data_dir` (or PostgreSQL at `database_url`) in the trust
    /// domain `acme.example`, writing a first-start bootstrap credential to `token_file`,
    /// and waits until it listens.
    pub fn start(
        binary: &std::path::Path,
        data_dir: &std::path::Path,
        token_file: &std::path::Path,
        database_url: Option<&str>,
    ) -> std::io::Result<Self> {
        Self::start_on(binary, data_dir, token_file, database_url, "127.0.0.1:0")
    }

    /// [`ServerProcess::start`] on a given address (a replica restarted where its clients
    /// expect it).
    pub fn start_on(
        binary: &std::path::Path,
        data_dir: &std::path::Path,
        token_file: &std::path::Path,
        database_url: Option<&str>,
        listen: &str,
    ) -> std::io::Result<Self> {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(binary);
        cmd.args([
            "serve",
            "--listen",
            listen,
            "--trust-domain",
            "acme.example",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--bootstrap-token-file")
        .arg(token_file)
        .env(
            "STEWARD_LOG",
            std::env::var("STEWARD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        for var in STEWARD_ENV {
            cmd.env_remove(var);
        }
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                } else {
                    // Passed on, so a failing test or a benchmark shows the server's log.
                    eprintln!("[steward serve] {line}");
                }
            }
        });
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(url) => Ok(Self { child, url }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(std::io::Error::other(
                    "steward serve did not report its address within 60 s",
                ))
            }
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident and peak resident memory of the server process, in MiB (Linux).
    pub fn memory_mib(&self) -> std::io::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> f64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(f64::NAN, |kib| kib / 1024.0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment variable naming a Python interpreter with py-spiffe, Authlib, the MCP SDK and
/// grpcio installed
/// (set by `.ci/run`), for checking our tokens with a third-party JWT-SVID validator and
/// fetching them with a third-party OAuth client.
pub const PYTHON_ENV: &str = "STEWARD_TEST_PYTHON";

/// The interpreter for third-party validator checks, or `None` (after a loud message)
/// outside CI when none is configured.
pub fn python_with_spiffe(test: &str) -> Option<std::path::PathBuf> {
    test_python(test, "py-spiffe", "pip install spiffe")
}

/// The interpreter for the third-party OAuth client examples (`examples/clients/`), or
/// `None` (after a loud message) outside CI when none is configured.
pub fn python_with_authlib(test: &str) -> Option<std::path::PathBuf> {
    test_python(test, "Authlib", "pip install authlib joserfc requests")
}

/// The interpreter with the official MCP Python SDK (`mcp`), for running a real MCP
/// server and client through the gateway's MCP point, or `None` (after a loud message)
/// outside CI when none is configured.
pub fn python_with_mcp(test: &str) -> Option<std::path::PathBuf> {
    test_python(test, "MCP SDK", "pip install mcp==2.3.0")
}

/// The interpreter with Python's `grpcio`, for calling gRPC methods through the gateway
/// with the client most Python services use, or `None` (after a loud message) outside CI
/// when none is configured.
pub fn python_with_grpcio(test: &str) -> Option<std::path::PathBuf> {
    test_python(test, "grpcio", "pip install grpcio==1.85.4")
}

fn test_python(test: &str, part: &str, install: &str) -> Option<std::path::PathBuf> {
    match std::env::var(PYTHON_ENV) {
        Ok(p) if !p.is_empty() => Some(p.into()),
        _ if in_ci() => panic!(
            "{PYTHON_ENV} is not set but CI=true: the third-party {part} checks must run in CI (see .ci/run)"
        ),
        _ => {
            skipped(
                test,
                part,
                &format!("set {PYTHON_ENV} to a python with `{install}` (see .ci/run)"),
            );
            None
        }
    }
}

/// Path of a file under the repository's `.ci/` directory.
pub fn ci_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.ci")
        .join(name)
}
