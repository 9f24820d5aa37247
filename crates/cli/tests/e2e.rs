//! The `steward` binary end to end: the README quickstart, the serve → plan → apply
//! workflow through the CLI, and `kill -9` in the middle of an apply, on SQLite and (when
//! configured, always in CI) PostgreSQL.

// Test helpers outside `#[test]` functions fail the test on any error, like the tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use steward_governance::SourceFile;
use steward_store::{IdentityFilter, Store};
use steward_testkit::{Reaped, ServerProcess, example_repo, postgres_url, scaled_repo};

fn steward() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_steward"));
    for var in steward_testkit::STEWARD_ENV {
        c.env_remove(var);
    }
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Where a server keeps its state: a data directory, or a PostgreSQL URL.
#[derive(Clone)]
struct Backing {
    data_dir: PathBuf,
    database_url: Option<String>,
}

struct Server(ServerProcess);

impl Server {
    fn start(b: &Backing, token_file: &Path) -> Server {
        Server(
            ServerProcess::start(
                Path::new(env!("CARGO_BIN_EXE_steward")),
                &b.data_dir,
                token_file,
                b.database_url.as_deref(),
            )
            .unwrap(),
        )
    }

    fn url(&self) -> &str {
        &self.0.url
    }

    fn kill9(self) {
        self.0.kill9();
    }

    fn cli(&self, token: &str, args: &[&str]) -> Output {
        steward()
            .args(args)
            .env("STEWARD_SERVER", self.url())
            .env("STEWARD_TOKEN", token)
            .output()
            .unwrap()
    }
}

fn write_repo(dir: &Path, files: &[SourceFile]) {
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.content).unwrap();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn readme_quickstart_demo_runs_to_completion() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo run -- demo"),
        "the README's first command changed: update this test"
    );
    let out = steward()
        .arg("demo")
        .current_dir(repo_root())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "Configuration version 1 is in force",
        "Planning again: No changes",
        "Refused: the governance repository has 1 problem(s)",
        "identities/typo.yaml:2:",
        "Configuration version is still 1.",
        "→ 403 forbidden",
        "→ 422 rejected",
        "are now orphan findings",
        "credential.create",
        "ALLOW orders-api invokes payments.charge in prod",
        "GR-1 (central guardrail, forbid)",
        "DENY  a subject of type `user`",
        "Batch of 3 with deny_on_first_deny: 2 answered (allow, deny).",
        "GR-3 lifted by exception ex-incident-4711",
        "nobody touched the exception.\nDENY  the billing exporter reads payments.read once more",
        "allowed under exception ex-incident-4711",
        "intended but missing: 0",
        "partner-gateway read on orders.read: allow -> deny",
        "=== exceptions (changed)",
        "+ex-incident-4711: lifts GR-3 for spiffe://acme.example/legacy/billing-exporter on payments.read",
        "Token issued: 900 s (asked 3600; the payments plane caps tokens at 900)",
        "refused (claim `environment`: a `prod` token presented in `staging`)",
        "401 invalid_client (client assertion: replayed",
        "the token signed by the old key still validates: true",
        "scope `partner.orders.submit`, act {\"sub\":\"spiffe://acme.example/ns/partners/sa/partner-gateway\"}",
        "Asking to delegate payments.charge instead: 400 invalid_scope",
        "was federated: sub spiffe://acme.example/ci/deploy/prod, plane platform",
        "The same from a fork: 400 invalid_request",
        "JIT credential for workflow refund-backlog-inc-4711: scope `payments.refund`, 2 s",
        "Two seconds later it has expired on its own",
        "Asking again renews it while policy still allows: 200",
        "POST /v1/charges/ch_42/refunds → 200 OK; the API sees identity spiffe://acme.example/ns/payments/sa/refund-api (the client's forged X-Steward-Identity was dropped), credential forwarded: false",
        "asks the same → 403 Forbidden: no policy permits `write` on `payments.refund`",
        "Without a token → 401 Unauthorized.",
        "storefront: login allow, publish to payments.commands/refund.requested deny.",
        "refund-api: login allow, publish to payments.commands/refund.requested allow.",
        "the agent is shown [\"lookup_order\"]",
        "tools/call lookup_order → ran: lookup_order: done",
        "tools/call refund_payment → refused before the server: Steward refused the call to `refund_payment`: GR-4",
        "credential.issued      at token-endpoint       spiffe://acme.example/agents/prod/order-assistant",
        "at mcp:support-demo     spiffe://acme.example/agents/prod/order-assistant invoke mcp support/lookup_order → allow",
        "The refund worker accepts the message: publisher spiffe://acme.example/ns/payments/sa/refund-api verified",
        "A copy whose amount was changed in transit is refused: the message body is not the one its publisher signed",
        "Trace of 9f3c2a7d5e8b4c1fa0b1c2d3e4f50617: 4 events",
        "at consumer:refund-worker spiffe://acme.example/ns/payments/sa/refund-worker consume queue payments.refund-requests → allow",
        "Revoked identity `spiffe://acme.example/ns/payments/sa/refund-api` at epoch 2: suspended",
        "gateway:edge-demo   applied  2",
        "rabbitmq:edge-demo  applied  2",
        "Verified: all 2 live enforcement point(s) applied epoch 2",
        "The next request with the same token → 401 Unauthorized: the token was refused: revoked: identity `spiffe://acme.example/ns/payments/sa/refund-api` revoked (epoch 2): credential leak suspected",
        "payments/reconciler-test → decommissioned, and revoked",
        "Auditor verifies the chain: ok=true",
        "$ steward posture",
        "registered less than 14 days ago: usage is still being observed",
        "/console/ (sign in with an admin credential",
        "Demo finished",
    ] {
        assert!(
            stdout.contains(expected),
            "demo output lacks {expected:?}:\n{stdout}"
        );
    }
    // Columns widen with the longest finding kind: the row, whatever its spacing.
    for row in [
        [
            "cross_environment",
            "spiffe://acme.example/ns/partners/sa/partner-gateway",
        ],
        [
            "non_expiring_admin_credential",
            "(bootstrap, central-admin) never expires",
        ],
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(row[0]) && l.contains(row[1])),
            "demo output lacks a row with {row:?}:\n{stdout}"
        );
    }
    // Least privilege on day 0: nothing is granted beyond what its owner intended, and
    // nothing is judged unused before there was time to use it.
    let posture = stdout
        .split("$ steward posture")
        .nth(1)
        .expect("the demo ends with its posture");
    for kind in ["over_privileged", "beyond_intended"] {
        assert!(!posture.contains(kind), "{posture}");
    }
    // Mid-traffic, every request after the acknowledgement was refused.
    let traffic = stdout
        .lines()
        .find(|l| l.starts_with("Traffic through the gateway:"))
        .expect("the revocation step reports the traffic");
    let (_, after) = traffic.split_once("after the acknowledgement ").unwrap();
    let (refused, rest) = after.split_once(" of ").unwrap();
    let total = rest.split_whitespace().next().unwrap();
    assert_eq!(refused, total, "{traffic}");
}

/// The identity the workflow suspends, then decommissions.
const RETIRED: &str = "spiffe://acme.example/ns/payments/sa/refund-worker";

/// One control plane driven through the CLI, as an operator would, phase by phase: each
/// phase is its own function so a failure names what broke; later phases read what
/// earlier ones left (the retired identity, the evidence of the changes).
struct Workflow {
    tmp: tempfile::TempDir,
    token_file: std::path::PathBuf,
    token: String,
    repo: String,
    backing: Backing,
    server: Server,
}

impl Workflow {
    fn start(backing: Backing) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let token_file = tmp.path().join("token");
        let server = Server::start(&backing, &token_file);
        let token = std::fs::read_to_string(&token_file)
            .unwrap()
            .trim()
            .to_owned();
        assert!(token.starts_with("stw_"));
        Self {
            repo: example_repo().to_str().unwrap().to_owned(),
            tmp,
            token_file,
            token,
            backing,
            server,
        }
    }
}

fn cli_workflow(backing: Backing) {
    let w = Workflow::start(backing);
    governance_by_cli(&w);
    decisions_by_cli(&w);
    evidence_by_cli(&w);
    egress_secrets_by_cli(&w);
    let w = restart_keeps_everything(w);
    a_copy_of_the_log_verifies_offline(w);
}

/// Plan, apply, list, the lifecycle (decommissioning is one-way), a plane admin's limits.
fn governance_by_cli(w: &Workflow) {
    let out = steward()
        .args(["plan", &w.repo])
        .env("STEWARD_SERVER", w.server.url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("STEWARD_TOKEN"), "{}", text(&out).1);

    let out = w.server.cli(&w.token, &["plan", &w.repo]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Plan against configuration version 0:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ create identity spiffe://acme.example/ns/payments/sa/payments-api"),
        "{stdout}"
    );

    let out = w
        .server
        .cli(&w.token, &["apply", &w.repo, "--expected-version", "0"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        text(&out)
            .0
            .contains("Applied: configuration version 1 is now in force."),
        "{}",
        text(&out).0
    );

    let out = w.server.cli(&w.token, &["plan", &w.repo]);
    assert!(text(&out).0.contains("No changes"), "{}", text(&out).0);

    let out = w
        .server
        .cli(&w.token, &["identity", "list", "--plane", "payments-eu"]);
    let (stdout, _) = text(&out);
    assert!(stdout.starts_with("SPIFFE ID"), "{stdout}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");

    let id = RETIRED;
    let out = w
        .server
        .cli(&w.token, &["identity", "suspend", id, "--reason", "INC-1"]);
    assert!(
        text(&out).0.contains("is now suspended"),
        "{:?}",
        text(&out)
    );
    let out = w.server.cli(
        &w.token,
        &["identity", "decommission", id, "--reason", "retired"],
    );
    assert!(out.status.success());
    let out = w.server.cli(
        &w.token,
        &["identity", "reactivate", id, "--reason", "undo"],
    );
    assert!(!out.status.success());
    assert!(text(&out).1.contains("one-way"), "{}", text(&out).1);

    let out = w.server.cli(
        &w.token,
        &[
            "credential",
            "create",
            "--name",
            "pay",
            "--role",
            "plane-admin",
            "--plane",
            "payments",
            "--json",
        ],
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pa = created["token"].as_str().unwrap();
    let out = w.server.cli(pa, &["apply", &w.repo]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("needs the central-admin role"),
        "{}",
        text(&out).1
    );
}

/// Decisions by hand (exit 0 allow, 1 deny), policy versions, entitlements, the change log.
fn decisions_by_cli(w: &Workflow) {
    let charge = [
        "authorize",
        "--principal",
        "spiffe://acme.example/ns/orders/sa/orders-api",
        "--capability",
        "payments.charge",
        "--action",
        "invoke",
    ];
    let out = w.server.cli(
        &w.token,
        &[&charge[..], &["-c", "environment=prod"]].concat(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("ALLOW invoke on payments.charge (policy version 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("evidence: "), "{stdout}");
    let out = w.server.cli(
        &w.token,
        &[&charge[..], &["-c", "environment=dev"]].concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).0.contains("GR-1 (central guardrail, forbid)"),
        "{}",
        text(&out).0
    );
    let out = w.server.cli(
        &w.token,
        &[
            "authorize",
            "--principal",
            RETIRED,
            "--http",
            "POST /v1/charges/ch_9/refunds",
            "-c",
            "environment=prod",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "decommissioned: {:?}",
        text(&out)
    );
    assert!(text(&out).0.contains("GR-2"), "{}", text(&out).0);
    let out = w.server.cli(&w.token, &["policy", "versions"]);
    assert!(text(&out).0.contains("apply"), "{}", text(&out).0);
    let out = w.server.cli(
        &w.token,
        &[
            "identity",
            "entitlements",
            "spiffe://acme.example/ns/orders/sa/orders-api",
        ],
    );
    assert!(
        text(&out).0.contains("Intended but not allowed (0)"),
        "{:?}",
        text(&out)
    );

    let out = w.server.cli(&w.token, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["config_version"], 1);
    assert_eq!(status["identities"]["decommissioned"], 1);

    let out = w.server.cli(&w.token, &["changes"]);
    let (stdout, _) = text(&out);
    for action in [
        "config.apply",
        "identity.suspend",
        "identity.decommission",
        "credential.create",
    ] {
        assert!(stdout.contains(action), "{stdout}");
    }
}

/// The evidence log: intact, traceable by identity, exportable as JSON Lines and OCSF.
fn evidence_by_cli(w: &Workflow) {
    let out = w.server.cli(&w.token, &["audit", "verify"]);
    assert!(
        out.status.success() && text(&out).0.contains("Evidence log intact"),
        "{:?}",
        text(&out)
    );
    let out = w.server.cli(&w.token, &["audit", "trace", RETIRED]);
    let (trace, _) = text(&out);
    assert!(
        trace.contains("identity.lifecycle")
            && trace.contains("identity.suspend")
            && trace.contains("identity.decommission"),
        "{trace}"
    );
    let out = w.server.cli(
        &w.token,
        &["audit", "export", "--kind", "identity.lifecycle"],
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "suspend and decommission");
    assert!(lines.iter().all(|l| l["hash"].as_str().unwrap().len() == 64 && l["schema"] == "steward.evidence/1"));
    let out = w.server.cli(
        &w.token,
        &[
            "audit",
            "export",
            "--format",
            "ocsf",
            "--kind",
            "config.applied",
        ],
    );
    let ocsf: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(ocsf["class_uid"], 3004);
    assert_eq!(ocsf["metadata"]["version"], "1.1.0");
    assert_eq!(ocsf["unmapped"]["steward"]["kind"], "config.applied");
    let out = w.server.cli(&w.token, &["audit", "tail", "-n", "3"]);
    assert_eq!(text(&out).0.lines().count(), 4, "{}", text(&out).0);
}

/// Egress secrets: stored sealed, listed without values, never on the command line.
fn egress_secrets_by_cli(w: &Workflow) {
    let secret_file = w.tmp.path().join("provider-key");
    std::fs::write(&secret_file, "sk-e2e-provider-key\n").unwrap();
    let out = w.server.cli(
        &w.token,
        &[
            "egress-secret",
            "set",
            "ai-provider",
            "--value-file",
            secret_file.to_str().unwrap(),
            "--description",
            "AI provider",
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let out = w.server.cli(&w.token, &["egress-secret", "list"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("ai-provider") && stdout.contains("AI provider"),
        "{stdout}"
    );
    assert!(!stdout.contains("sk-e2e"), "{stdout}");
    let out = w.server.cli(
        &w.token,
        &[
            "egress-secret",
            "set",
            "Bad Id",
            "--value-file",
            secret_file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).1.contains("a-z, 0-9"), "{}", text(&out).1);
}

/// A kill -9 and a restart keep everything and hand out no second bootstrap credential.
fn restart_keeps_everything(w: Workflow) -> Workflow {
    let Workflow {
        tmp,
        token_file,
        token,
        repo,
        backing,
        server,
    } = w;
    server.kill9();
    std::fs::remove_file(&token_file).unwrap();
    let server = Server::start(&backing, &token_file);
    assert!(
        !token_file.exists(),
        "bootstrap must happen only on first start"
    );
    let out = server.cli(&token, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["config_version"], 1);
    Workflow {
        tmp,
        token_file,
        token,
        repo,
        backing,
        server,
    }
}

/// A copy of the log verifies away from the server, against the key kept apart; an edited
/// record, or another key, and it no longer does.
fn a_copy_of_the_log_verifies_offline(w: Workflow) {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept.json");
    let log = dir.path().join("log.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    let doc = loop {
        // The restarted server signs a checkpoint of the head at once.
        let out = w
            .server
            .cli(&w.token, &["audit", "checkpoints", "--export"]);
        assert!(out.status.success(), "{:?}", text(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if !doc["checkpoints"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            std::fs::write(&kept, &out.stdout).unwrap();
            break doc;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!doc["checkpoints"].as_array().unwrap().is_empty(), "{doc}");
    let public = doc["keys"][0]["public_key"].as_str().unwrap().to_owned();
    let out = w.server.cli(&w.token, &["audit", "checkpoints"]);
    assert!(text(&out).0.contains(&public), "{:?}", text(&out));
    let out = w
        .server
        .cli(&w.token, &["audit", "export", "--format", "chain"]);
    assert!(out.status.success(), "{:?}", text(&out));
    std::fs::write(&log, &out.stdout).unwrap();
    drop(w);
    let offline = |file: &Path, key: &str| {
        steward()
            .args(["audit", "verify", "--offline"])
            .arg(file)
            .args(["--key", key, "--checkpoints"])
            .arg(&kept)
            .output()
            .unwrap()
    };
    let out = offline(&log, &public);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("Evidence export intact"),
        "{:?}",
        text(&out)
    );
    // An edited record, or another key, and the copy no longer verifies.
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut record: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    record["body"] = record["body"]
        .as_str()
        .unwrap()
        .replacen("\"id\":\"", "\"id\":\"x", 1)
        .into();
    let mut edited = lines.clone();
    edited[2] = record.to_string();
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, edited.join("\n")).unwrap();
    let out = offline(&tampered, &public);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("event 2 was altered"),
        "{:?}",
        text(&out)
    );
    let (other, _) = steward_audit::CheckpointSigner::generate().unwrap();
    let out = offline(&log, &other.public_key());
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("no valid signature"),
        "{:?}",
        text(&out)
    );
}

/// A workload's first hour without other tools: a key made by `steward identity key
/// create` (private half 0600, never overwritten by accident), its public half saved into
/// the repository as printed, and a token fetched with it by `steward token get`; for an
/// identity registered through the API, the key registered through the API.
#[test]
fn a_workload_gets_a_token_with_its_own_key() {
    let data = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    let backing = Backing {
        data_dir: data.path().to_path_buf(),
        database_url: None,
    };
    let server = Server::start(&backing, &token_file);
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let id = "spiffe://acme.example/ns/payments/sa/refund-batch";
    let key = tmp.path().join("refund-batch.pem");
    let create = || {
        steward()
            .args(["identity", "key", "create", id, "--out"])
            .arg(&key)
            .output()
            .unwrap()
    };
    let out = create();
    let (fragment, note) = text(&out);
    assert!(out.status.success(), "{note}");
    assert!(note.contains("written to"), "{note}");
    assert!(
        fragment.contains("client_keys:") && fragment.contains("crv: P-256"),
        "{fragment}"
    );
    assert!(
        !fragment.contains("PRIVATE"),
        "the private key is never printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let again = create();
    assert!(!again.status.success());
    assert!(text(&again).1.contains("--force"), "{:?}", text(&again));
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        pem,
        "not overwritten"
    );

    // The printed file goes into the repository as is, beside the identity's declaration.
    let repo = tmp.path().join("repo");
    let mut files = steward_governance::read_dir(&example_repo()).unwrap();
    files.push(SourceFile {
        path: "identities/refund-batch.yaml".into(),
        content: format!(
            "identities:\n  - spiffe_id: {id}\n    plane: payments\n    owner: payments-team\n    environment: prod\n    kind: service\n"
        ),
    });
    files.push(SourceFile {
        path: "keys/refund-batch.yaml".into(),
        content: fragment.clone(),
    });
    write_repo(&repo, &files);
    let out = server.cli(&admin, &["apply", repo.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));

    let get_bound = |key: &Path, dpop_key: Option<&Path>| {
        let mut cmd = steward();
        cmd.args([
            "token",
            "get",
            id,
            "--audience",
            "spiffe://acme.example/ns/payments/sa/ledger",
            "--key",
        ])
        .arg(key);
        if let Some(holder) = dpop_key {
            cmd.arg("--dpop-key").arg(holder);
        }
        cmd.env("STEWARD_SERVER", server.url()).output().unwrap()
    };
    let get = |key: &Path| get_bound(key, None);
    // A second key of the identity, made by `steward identity key create`.
    let another_key = |name: &str| {
        let path = tmp.path().join(name);
        let out = steward()
            .args(["identity", "key", "create", id, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        path
    };
    let out = get(&key);
    let (token, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["aud"], "spiffe://acme.example/ns/payments/sa/ledger");

    // Bound to a key (DPoP): the token names it, and `steward token proof` makes the
    // proof each request carries — one the shared checker accepts for that request.
    let holder = another_key("holder.pem");
    let out = get_bound(&key, Some(&holder));
    let (bound, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let bound = bound.trim();
    let bound_claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(bound.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let jkt = bound_claims["cnf"]["jkt"].as_str().unwrap().to_owned();
    let url = "https://payments.example.com/v1/charges/ch_1";
    let out = steward()
        .args(["token", "proof", "--method", "GET", "--url", url, "--key"])
        .arg(&holder)
        .env("STEWARD_ACCESS_TOKEN", bound)
        .output()
        .unwrap();
    let (proof, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let check = |access_token: &str| {
        steward_token::check_dpop(
            proof.trim(),
            &steward_token::DpopRequest {
                method: "GET",
                url,
                access_token: Some(access_token),
                now: time::OffsetDateTime::now_utc().unix_timestamp(),
                max_age: 60,
                skew: 5,
            },
            None,
        )
    };
    assert_eq!(check(bound).unwrap().thumbprint(), jkt);
    // The proof is for that token only.
    assert!(check(token).is_err());

    // Another key than the registered one gets nothing, and says why.
    let other = another_key("other.pem");
    let out = get(&other);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("invalid_client"), "{:?}", text(&out));

    // A repository-managed identity's keys are not changed through the API: refused,
    // and the key file made for it is not left behind.
    let stray = tmp.path().join("stray.pem");
    let out = server.cli(
        &admin,
        &[
            "identity",
            "key",
            "create",
            id,
            "--register",
            "--out",
            stray.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("managed by the governance repository"),
        "{:?}",
        text(&out)
    );
    assert!(!stray.exists(), "an unregistered key file is removed");

    // An identity registered through the API gets its key through the API.
    let api_id = "spiffe://acme.example/ns/payments/sa/report-job";
    let out = server.cli(
        &admin,
        &[
            "identity",
            "create",
            api_id,
            "--plane",
            "payments",
            "--owner",
            "payments-team",
            "--environment",
            "prod",
            "--kind",
            "service",
        ],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let api_key = tmp.path().join("report-job.pem");
    let out = server.cli(
        &admin,
        &[
            "identity",
            "key",
            "create",
            api_id,
            "--register",
            "--out",
            api_key.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let record: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let kid = record["credentials"]["public_keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let get_api = || {
        steward()
            .args([
                "token",
                "get",
                api_id,
                "--audience",
                "spiffe://acme.example/ns/payments/sa/ledger",
                "--key",
            ])
            .arg(&api_key)
            .env("STEWARD_SERVER", server.url())
            .output()
            .unwrap()
    };
    let out = get_api();
    assert!(out.status.success(), "{:?}", text(&out));
    // Removed, the key gets nothing from then on; both changes are in the change log.
    let out = server.cli(&admin, &["identity", "key", "remove", api_id, &kid]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = get_api();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("invalid_client"), "{:?}", text(&out));
    let out = server.cli(&admin, &["changes", "--json"]);
    let changes = text(&out).0;
    assert!(
        changes.contains("identity.key.add") && changes.contains("identity.key.remove"),
        "{changes}"
    );
}

#[test]
fn cli_workflow_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    cli_workflow(Backing {
        data_dir: data.path().to_path_buf(),
        database_url: None,
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_workflow_on_postgres() {
    let Some(url) = postgres_url("cli_workflow").await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        cli_workflow(Backing {
            data_dir: data.path().to_path_buf(),
            database_url: Some(url),
        })
    })
    .await
    .unwrap();
}

/// The bootstrap credential is printed once, and only by a start that listens: a start
/// refused (the port in use) must not consume it. A lost one is replaced by whoever can
/// start the control plane on its store, and that replacement is evidence.
#[test]
fn bootstrap_credential_is_printed_once_and_recoverable() {
    let data = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = steward()
        .args(["serve", "--listen", &busy.local_addr().unwrap().to_string()])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&refused);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stdout.contains("stw_"), "{stdout}");
    drop(busy);

    let run = |extra: &[&str]| {
        let mut child = steward()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut url = String::new();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = rest.split_whitespace().next().unwrap().to_owned();
                break;
            }
        }
        // Keep reading: a server whose stderr is closed fails at its next log line.
        std::thread::spawn(move || lines.for_each(drop));
        (child, url)
    };
    let stop = |mut child: std::process::Child| {
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = stop(run(&[]).0);
    assert!(first.trim().starts_with("stw_"), "{first:?}");
    let second = stop(run(&[]).0);
    assert!(!second.contains("stw_"), "{second:?}");

    // The bootstrap credential is lost: recover from the host.
    let file = data.path().join("recovered.token");
    let (child, url) = run(&["--new-admin-credential-file", file.to_str().unwrap()]);
    let _reaped = Reaped(child);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(token.starts_with("stw_"), "{token:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let cli = |args: &[&str]| {
        steward()
            .args(args)
            .env("STEWARD_SERVER", &url)
            .env("STEWARD_TOKEN", &token)
            .output()
            .unwrap()
    };
    let out = cli(&["credential", "list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("recovery "), "{stdout}");
    let out = cli(&["audit", "search", "--action", "credential.create", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("host-recovery"), "{stdout}");

    // Asked again with the same file, it refuses rather than minting a second one.
    let again = steward()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--new-admin-credential-file", file.to_str().unwrap()])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again).1.contains("exists"), "{}", text(&again).1);
}

#[test]
fn gateway_check_explains_bad_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("gateway.toml");
    std::fs::write(tmp.path().join("credential"), "stw_x_y").unwrap();
    let good = "name = \"edge\"\nenvironment = \"prod\"\n[control_plane]\nurl = \"http://127.0.0.1:8470\"\ncredential_file = \"credential\"\n[[proxy]]\nlisten = \"127.0.0.1:8443\"\nupstream = \"http://127.0.0.1:9000\"\naudience = \"spiffe://acme.example/ns/a/sa/b\"\n";
    std::fs::write(&file, good).unwrap();
    let out = steward()
        .args(["gateway", "--check", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        text(&out).0.contains("gateway `edge` (prod)"),
        "{}",
        text(&out).0
    );
    // The example configuration the README points at is valid as shipped.
    let out = steward()
        .args(["gateway", "--check", "--config"])
        .arg(repo_root().join("examples/gateway.toml"))
        .env("STEWARD_GATEWAY_CREDENTIAL", "stw_x_y")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("gateway `edge-1` (prod)"),
        "{}",
        text(&out).0
    );
    for (bad, says) in [
        (
            good.replace("http://127.0.0.1:9000", "ftp://x"),
            "proxy[0].upstream",
        ),
        (
            good.replace("credential_file = \"credential\"", ""),
            "credential_env or credential_file",
        ),
        (
            format!("{good}mode = \"egress\"\n"),
            "proxy[0].egress_secret",
        ),
        (format!("{good}surprise = 1\n"), "unknown field"),
        (good.replace("127.0.0.1:8443", "nowhere"), "proxy[0].listen"),
        (
            good.replace(
                "credential_file = \"credential\"",
                "credential_file = \"credential\"\nrefresh_secs = 600",
            ),
            "not shorter than max_staleness_secs",
        ),
        (
            format!(
                "{good}[auth]\nlisten = \"127.0.0.1:8181\"\nrabbitmq_audience = \"x\"\nrabbitmq_management_url = \"http://127.0.0.1:15672\"\n"
            ),
            "rabbitmq_management_user and a password",
        ),
        (
            format!(
                "{good}[auth]\nlisten = \"127.0.0.1:8181\"\nrabbitmq_management_url = \"127.0.0.1:15672\"\nrabbitmq_management_user = \"ops\"\nrabbitmq_management_password_file = \"credential\"\n"
            ),
            "auth.rabbitmq_management_url",
        ),
        (
            good.replace(
                "credential_file = \"credential\"",
                "credential_file = \"credential\"\nreport_secs = 0",
            ),
            "control_plane.report_secs",
        ),
        (
            good.replace(
                "credential_file = \"credential\"",
                "credential_file = \"credential\"\nship_interval_ms = 5000",
            ),
            "control_plane.ship_interval_ms",
        ),
    ] {
        std::fs::write(&file, &bad).unwrap();
        let out = steward()
            .args(["gateway", "--check", "--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        assert!(text(&out).1.contains(says), "{says}: {}", text(&out).1);
    }
}

#[test]
fn validate_and_config_check_explain_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ids.yaml"), "identities:\n  - spiffe_id: spiffe://acme.example/a\n    plane: nowhere\n    owner: nobody\n    environment: prod\n    kind: service\n").unwrap();
    let out = steward()
        .args(["validate", "--trust-domain", "acme.example"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(
            "ids.yaml:2: identity `spiffe://acme.example/a`: plane `nowhere` is not declared"
        ),
        "{stderr}"
    );
    let out = steward()
        .args(["validate", "--trust-domain", "acme.example"])
        .arg(example_repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    // The example under the default trust domain: one line says which domain it is
    // written for and how to serve it.
    let out = steward()
        .arg("validate")
        .arg(example_repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("the repository is written for `acme.example`")
            && stderr.contains("--trust-domain acme.example"),
        "{stderr}"
    );
    // A control-plane address without its scheme says what to write.
    let out = steward()
        .args(["identity", "list"])
        .env("STEWARD_SERVER", "127.0.0.1:8470")
        .env("STEWARD_TOKEN", "stw_x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("is not a URL") && text(&out).1.contains("http://"),
        "{}",
        text(&out).1
    );

    let cfg = tmp.path().join("steward.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:9000\"\ntrust_domian = \"acme.example\"\n",
    )
    .unwrap();
    let out = steward()
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("unknown field `trust_domian`"),
        "{}",
        text(&out).1
    );
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:9000\"\ntrust_domain = \"acme.example\"\n",
    )
    .unwrap();
    let out = steward()
        .args(["config", "check"])
        .arg(&cfg)
        .env("STEWARD_LISTEN", "127.0.0.1:9001")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("127.0.0.1:9001"),
        "environment overrides the file: {}",
        text(&out).0
    );
    let out = steward()
        .args(["config", "check"])
        .arg(&cfg)
        .env("STEWARD_DATABASE_URL", "postgres://u:hunter2@db/x")
        .output()
        .unwrap();
    assert!(
        !text(&out).0.contains("hunter2"),
        "passwords are never printed"
    );

    let out = steward().args(["serve", "--help"]).output().unwrap();
    for opt in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--trust-domain",
        "--config",
        "STEWARD_LISTEN",
    ] {
        assert!(text(&out).0.contains(opt), "serve --help lacks {opt}");
    }
}

/// Identities of the registry, read straight from the store after the server is gone.
async fn registry(b: &Backing) -> (i64, Vec<steward_api::IdentityRecord>) {
    let store = match &b.database_url {
        Some(url) => Store::connect(url).await.unwrap(),
        None => Store::open_data_dir(&b.data_dir).await.unwrap(),
    };
    let version = store.config_version().await.unwrap();
    let all = store
        .identities(&IdentityFilter {
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    (version, all)
}

/// Starts an apply of `repo` in the background and `kill -9`s the server `delay` later;
/// returns whether the apply had been acknowledged before the kill.
fn apply_then_kill(server: Server, token: &str, repo: &Path, delay: Duration) -> bool {
    let mut apply = steward()
        .args(["apply"])
        .arg(repo)
        .env("STEWARD_SERVER", server.url())
        .env("STEWARD_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    server.kill9();
    apply.wait().unwrap().success()
}

fn kill9_mid_apply(backing: Backing) {
    const N: usize = 10_000;
    let tmp = tempfile::tempdir().unwrap();
    let (gen1, gen2) = (tmp.path().join("gen1"), tmp.path().join("gen2"));
    write_repo(&gen1, &scaled_repo(N, 50, 1));
    write_repo(&gen2, &scaled_repo(N, 50, 2));
    let token_file = tmp.path().join("token");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // How long an undisturbed apply takes on this machine, on a scratch store.
    let scratch = tempfile::tempdir().unwrap();
    let scratch_backing = Backing {
        data_dir: scratch.path().to_path_buf(),
        database_url: None,
    };
    let s = Server::start(&scratch_backing, &tmp.path().join("scratch-token"));
    let scratch_token = std::fs::read_to_string(tmp.path().join("scratch-token"))
        .unwrap()
        .trim()
        .to_owned();
    let t0 = Instant::now();
    assert!(
        s.cli(&scratch_token, &["apply", gen1.to_str().unwrap()])
            .status
            .success()
    );
    let full = t0.elapsed();
    drop(s);
    eprintln!("undisturbed apply of {N} identities: {full:?}");

    // Phase 1: the first apply, killed at several points. Afterwards the registry is
    // either empty at version 0, or complete at version 1: never a part.
    let mut server = Server::start(&backing, &token_file);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let mut interrupted = 0;
    for frac in [0.2, 0.4, 0.6, 0.8, 0.95] {
        let acked = apply_then_kill(server, &token, &gen1, full.mul_f64(frac));
        let (version, ids) = rt.block_on(registry(&backing));
        match version {
            0 => assert!(
                ids.is_empty(),
                "version 0 but {} identities: a partial apply survived",
                ids.len()
            ),
            1 => assert_eq!(
                ids.len(),
                N,
                "version 1 with {} of {N} identities",
                ids.len()
            ),
            v => panic!("unexpected version {v}"),
        }
        assert!(!acked || version == 1, "an acknowledged apply was lost");
        interrupted += usize::from(!acked);
        server = Server::start(&backing, &token_file);
        if version == 1 {
            break;
        }
    }
    // Make sure generation 1 is in force before phase 2.
    assert!(
        server
            .cli(&token, &["apply", gen1.to_str().unwrap()])
            .status
            .success()
    );

    // Phase 2: an apply that rewrites every identity, killed midway: all old or all new.
    for frac in [0.5, 0.75, 0.9] {
        let acked = apply_then_kill(server, &token, &gen2, full.mul_f64(frac));
        let (version, ids) = rt.block_on(registry(&backing));
        assert_eq!(ids.len(), N);
        let new = ids
            .iter()
            .filter(|r| r.identity.description == "generation 2")
            .count();
        match version {
            1 => assert_eq!(new, 0, "version 1 but {new} identities already rewritten"),
            2 => assert_eq!(new, N, "version 2 but only {new} of {N} rewritten"),
            v => panic!("unexpected version {v}"),
        }
        assert!(!acked || version == 2, "an acknowledged apply was lost");
        interrupted += usize::from(!acked);
        server = Server::start(&backing, &token_file);
        if version == 2 {
            break;
        }
    }
    drop(server);
    assert!(
        interrupted > 0,
        "no kill landed before the apply finished: the test proved nothing"
    );
    eprintln!(
        "{interrupted} applies were interrupted by kill -9; every store was whole afterwards"
    );
}

#[test]
fn kill9_mid_apply_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    kill9_mid_apply(Backing {
        data_dir: data.path().to_path_buf(),
        database_url: None,
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mid_apply_on_postgres() {
    let Some(url) = postgres_url("kill9").await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        kill9_mid_apply(Backing {
            data_dir: data.path().to_path_buf(),
            database_url: Some(url),
        })
    })
    .await
    .unwrap();
}

/// Evidence the API acknowledged survives `kill -9`, and the chain verifies afterwards.
fn acknowledged_evidence_survives_kill9(backing: Backing) {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    let server = Server::start(&backing, &token_file);
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let out = server.cli(
        &admin,
        &[
            "credential",
            "create",
            "--name",
            "edge-gw",
            "--role",
            "ingestor",
            "--json",
        ],
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ingestor = created["token"].as_str().unwrap().to_owned();
    let url = server.url().to_owned();
    // A workload that asks for tokens meanwhile: every token it receives must have its
    // issuance on record after the crash (or nobody could find and revoke it by what it
    // was issued as).
    let repo = example_repo();
    let out = server.cli(&admin, &["apply", repo.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (key, _) = steward_token::SigningKey::generate().unwrap();
    let workload = "spiffe://acme.example/ns/payments/sa/crash-witness";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let jwk = key.public_key().jwk();
        let resp = reqwest::Client::new()
            .post(format!("{url}/admin/v1/identities"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "spiffe_id": workload, "plane": "payments", "owner": "payments-team",
                "environment": "prod", "kind": "service", "classification": "internal",
                "credentials": {"token_ttl_secs": 600, "public_keys": [{"kid": "k1", "kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}]},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "{}", resp.text().await.unwrap());
    });
    let key = std::sync::Arc::new(key);
    // Writers post small batches as fast as they can until the server dies under them.
    let (acked, tokens) = rt.block_on(async {
        let http = reqwest::Client::new();
        let mut issuers = Vec::new();
        for _ in 0..2 {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            issuers.push(tokio::spawn(async move {
                let mut jtis = Vec::new();
                loop {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let assertion = steward_token::jws::encode(
                        &key,
                        "JWT",
                        &serde_json::json!({"iss": workload, "sub": workload, "aud": format!("{url}/oauth2/token"), "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string()}),
                    )
                    .unwrap();
                    let form = format!(
                        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}&audience=spiffe%3A%2F%2Facme.example%2Fns%2Fpayments%2Fsa%2Fpayments-api"
                    );
                    let resp = http
                        .post(format!("{url}/oauth2/token"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form)
                        .send()
                        .await;
                    let Ok(resp) = resp else { break };
                    if resp.status() != reqwest::StatusCode::OK {
                        break;
                    }
                    let Ok(body) = resp.json::<serde_json::Value>().await else { break };
                    let token = body["access_token"].as_str().unwrap();
                    let payload = token.split('.').nth(1).unwrap();
                    use base64::Engine;
                    let claims: serde_json::Value = serde_json::from_slice(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
                    )
                    .unwrap();
                    jtis.push(claims["jti"].as_str().unwrap().to_owned());
                }
                jtis
            }));
        }
        let mut tasks = Vec::new();
        for w in 0..4 {
            let (http, url, ingestor) = (http.clone(), url.clone(), ingestor.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for b in 0.. {
                    let now = steward_model::timestamp::now();
                    let ids: Vec<String> = (0..10).map(|i| format!("w{w}-b{b}-{i}")).collect();
                    let records: Vec<_> = ids
                        .iter()
                        .map(|id| serde_json::json!({ "schema": "steward.evidence/1", "id": id, "time": now, "kind": "access.decision", "principal": "spiffe://acme.example/x", "decision": { "outcome": "allow" }, "source": "x" }))
                        .collect();
                    let resp = http.post(format!("{url}/admin/v1/audit/ingest")).bearer_auth(&ingestor).json(&serde_json::json!({ "records": records })).send().await;
                    match resp {
                        Ok(r) if r.status() == reqwest::StatusCode::CREATED => acked.extend(ids),
                        _ => break,
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill9();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let mut tokens = Vec::new();
        for t in issuers {
            tokens.extend(t.await.unwrap());
        }
        (all, tokens)
    });
    assert!(
        tokens.len() > 10,
        "only {} tokens were issued before the kill",
        tokens.len()
    );
    assert!(
        acked.len() > 100,
        "only {} events were acknowledged before the kill",
        acked.len()
    );
    let server = Server::start(&backing, &token_file);
    let out = server.cli(&admin, &["audit", "verify"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("Evidence log intact"),
        "{}",
        text(&out).0
    );
    drop(server);
    let (stored, issued): (
        std::collections::HashSet<String>,
        std::collections::HashSet<String>,
    ) = rt.block_on(async {
        let store = match &backing.database_url {
            Some(u) => Store::connect(u).await.unwrap(),
            None => Store::open_data_dir(&backing.data_dir).await.unwrap(),
        };
        let events = store
            .evidence_search(&steward_store::EvidenceFilter {
                limit: 1_000_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let issued = events
            .iter()
            .filter(|e| e.event.kind == steward_audit::EventKind::CredentialIssued)
            .filter_map(|e| e.event.token_id.clone())
            .collect();
        (events.into_iter().map(|e| e.event.id).collect(), issued)
    });
    let unrecorded: Vec<&String> = tokens.iter().filter(|j| !issued.contains(*j)).collect();
    assert!(
        unrecorded.is_empty(),
        "{} of {} tokens the client received have no `credential.issued` event, e.g. {:?}",
        unrecorded.len(),
        tokens.len(),
        unrecorded.first()
    );
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events were lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    eprintln!(
        "{} acknowledged events and {} issued tokens, all on record after kill -9",
        acked.len(),
        tokens.len()
    );
}

#[test]
fn acknowledged_evidence_survives_kill9_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    acknowledged_evidence_survives_kill9(Backing {
        data_dir: data.path().to_path_buf(),
        database_url: None,
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_evidence_survives_kill9_on_postgres() {
    let Some(url) = postgres_url("evidence_kill9").await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    tokio::task::spawn_blocking(move || {
        acknowledged_evidence_survives_kill9(Backing {
            data_dir: data.path().to_path_buf(),
            database_url: Some(url),
        })
    })
    .await
    .unwrap();
}

#[test]
fn policy_tests_authorize_and_validate_work_offline() {
    let repo = example_repo();
    let repo = repo.to_str().unwrap();
    let td = ["--trust-domain", "acme.example"];
    let out = steward()
        .args(["policy", "test", repo])
        .args(td)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("policy tests: 23 passed, 0 failed"),
        "{stdout}"
    );

    let ask = |env: &str| {
        steward()
            .args([
                "authorize",
                "--repo",
                repo,
                "--principal",
                "spiffe://acme.example/ns/partners/sa/partner-gateway",
                "--http",
                "GET /v1/orders/42",
                "-c",
                env,
            ])
            .args(td)
            .output()
            .unwrap()
    };
    let out = ask("environment=prod");
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.starts_with("ALLOW read on orders.read"),
        "{}",
        text(&out).0
    );
    let out = ask("environment=staging");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).0.contains("because GR-1"), "{}", text(&out).0);

    // A failing test and a policy outside its plane, each reported with file and line.
    let tmp = tempfile::tempdir().unwrap();
    let mut files = steward_governance::read_dir(&example_repo()).unwrap();
    files.push(SourceFile {
        path: "tests/wrong.yaml".into(),
        content: "policy_tests:\n  - name: wrong\n    principal: spiffe://acme.example/ns/orders/sa/orders-api\n    capability: payments.charge\n    action: invoke\n    context: {environment: prod}\n    expect: deny\n".into(),
    });
    write_repo(tmp.path(), &files);
    let out = steward()
        .args(["policy", "test"])
        .arg(tmp.path())
        .args(td)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("FAIL tests/wrong.yaml:2 wrong"), "{stdout}");
    assert!(stdout.contains("expected deny, got allow"), "{stdout}");
    assert!(
        stdout.contains("policy tests: 23 passed, 1 failed"),
        "{stdout}"
    );

    std::fs::write(
        tmp.path().join("policies/commerce/grab.cedar"),
        "@id(\"commerce-grab\")\npermit (principal, action, resource == Steward::Capability::\"payments.refund\");\n",
    )
    .unwrap();
    let out = steward()
        .arg("validate")
        .arg(tmp.path())
        .args(td)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("1 policy problem(s)"), "{stderr}");
    assert!(stderr.contains("policies/commerce/grab.cedar:1: policy `commerce-grab` of plane `commerce`: its resources are outside its plane"), "{stderr}");
}

/// The key-encryption key guards the signing keys: generated 0600 on first start, no
/// private key in the clear in the database, a wrong key refuses to start (naming the
/// problem), the right one brings back the same signing key.
#[test]
fn the_key_encryption_key_guards_the_signing_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backing = Backing {
        data_dir: data.clone(),
        database_url: None,
    };
    let token_file = dir.path().join("token");
    // The kid of the key that signs now, through `steward keys list --json`.
    let signing_kid = |server: &Server| -> String {
        let token = std::fs::read_to_string(&token_file).unwrap();
        let out = server.cli(token.trim(), &["keys", "list", "--json"]);
        let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["state"] == "signing")
            .unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let server = Server::start(&backing, &token_file);
    let kid = signing_kid(&server);
    server.kill9();
    let kek_path = data.join("key-encryption-key");
    let mode = std::fs::metadata(&kek_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the generated key is private");
    let kek = std::fs::read_to_string(&kek_path).unwrap();
    // Every P-256 PKCS#8 key starts with the same DER header; none is stored in the clear.
    let db = std::fs::read(data.join(steward_store::SQLITE_FILE)).unwrap();
    let wal =
        std::fs::read(data.join(format!("{}-wal", steward_store::SQLITE_FILE))).unwrap_or_default();
    let stored = String::from_utf8_lossy(&db).into_owned() + &String::from_utf8_lossy(&wal);
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open_data_dir(&data).await.unwrap();
        let rows = store.signing_keys().await.unwrap();
        store.close().await;
        rows
    });
    assert_eq!(rows.len(), 1);
    assert!(rows[0].sealed_private.starts_with("v1."), "sealed");
    assert!(stored.contains(&rows[0].sealed_private));
    // The stored public JWK is the key that signs.
    assert!(rows[0].public_jwk.contains(&kid));
    assert!(!stored.contains("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"));

    // Another key-encryption key: the server refuses to start and says why.
    std::fs::write(&kek_path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let mut child = steward()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--trust-domain",
            "acme.example",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not refuse the wrong key"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("does not open with the configured key-encryption key"),
        "{err}"
    );
    assert!(
        !err.contains(kek.trim()),
        "the key never appears in messages"
    );

    // The right key again: the same signing key.
    std::fs::write(&kek_path, &kek).unwrap();
    let server = Server::start(&backing, &token_file);
    assert_eq!(signing_kid(&server), kid);
    let token = std::fs::read_to_string(&token_file).unwrap();
    let out = server.cli(token.trim(), &["keys", "rotate"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&kid), "{stdout}");
    let out = server.cli(token.trim(), &["keys", "list"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("signing") && stdout.contains("verifying"),
        "{stdout}"
    );
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `steward status --json` at `server` lists `point`.
fn wait_registered(server: &Server, token: &str, point: &str) {
    for _ in 0..200 {
        let out = server.cli(token, &["status", "--json"]);
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && v["enforcement"]["points"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["id"] == point))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{point} never registered");
}

/// Two `steward serve` processes on one PostgreSQL database behave as one control
/// plane: a revocation made on one reaches an enforcement point connected to the other,
/// `--verify` on either sees the acknowledgement, policy follows across replicas, applies
/// are serialized, and killing a replica — right after a revocation, or while a point
/// depends on it — loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_postgres_behave_as_one_control_plane() {
    let Some(url) = postgres_url("replicas").await else {
        return;
    };
    tokio::task::spawn_blocking(move || replicas(url))
        .await
        .unwrap();
}

fn replicas(url: String) {
    let tmp = tempfile::tempdir().unwrap();
    // Both replicas share the data directory for the key-encryption key (in production:
    // the same mounted secret, tokens.key_encryption_key_file).
    let backing = Backing {
        data_dir: tmp.path().join("data"),
        database_url: Some(url.clone()),
    };
    let token_file = tmp.path().join("token");
    let a = Server::start(&backing, &token_file);
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let b_listen = format!("127.0.0.1:{}", free_port());
    let start_b = || {
        Server(
            ServerProcess::start_on(
                Path::new(env!("CARGO_BIN_EXE_steward")),
                &backing.data_dir,
                &tmp.path().join("token-b"),
                Some(&url),
                &b_listen,
            )
            .unwrap(),
        )
    };
    let b = start_b();
    let repo = example_repo();
    let out = a.cli(&admin, &["apply", repo.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);

    // A gateway follows replica B.
    let out = b.cli(
        &admin,
        &[
            "credential",
            "create",
            "--name",
            "edge",
            "--role",
            "ingestor",
            "--json",
        ],
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    std::fs::write(
        tmp.path().join("ingestor"),
        created["token"].as_str().unwrap(),
    )
    .unwrap();
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"edge\"\nenvironment = \"prod\"\n[control_plane]\nurl = \"{}\"\ncredential_file = \"ingestor\"\nrefresh_secs = 1\nreport_secs = 1\n[auth]\nlisten = \"127.0.0.1:0\"\nnginx_audience = \"spiffe://acme.example/ns/payments/sa/payments-api\"\n",
            b.url()
        ),
    )
    .unwrap();
    let _gateway = Reaped(
        steward()
            .args(["gateway", "--config", config.to_str().unwrap()])
            .env("STEWARD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_registered(&a, &admin, "nginx:edge");

    let authorize = |server: &Server| {
        let out = server.cli(
            &admin,
            &[
                "authorize",
                "--principal",
                "spiffe://acme.example/ns/payments/sa/refund-worker",
                "--capability",
                "payments.refund",
                "--action",
                "consume",
                "--context",
                "environment=prod",
            ],
        );
        out.status.code()
    };
    // B follows the apply made on A (notified; polled every second at worst).
    let mut allowed = false;
    for _ in 0..50 {
        if authorize(&b) == Some(0) {
            allowed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(allowed, "replica B never loaded the policy applied on A");

    // Revoked on A, pushed by B, acknowledged to B, verified on A.
    let revoke = |server: &Server, id: &str, verify: bool| {
        let mut args = vec!["revoke", "identity", id, "--reason", "replica test"];
        if verify {
            args.extend(["--verify", "--timeout", "30"]);
        }
        server.cli(&admin, &args)
    };
    let started = Instant::now();
    let out = revoke(
        &a,
        "spiffe://acme.example/ns/payments/sa/refund-worker",
        true,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Verified: all 1 live enforcement point(s) applied epoch 1"),
        "{stdout}"
    );
    eprintln!(
        "revoke on A → acknowledged through B in {:?}",
        started.elapsed()
    );
    // B's own engine follows the suspension made on A.
    let mut denied = false;
    for _ in 0..50 {
        if authorize(&b) == Some(1) {
            denied = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(denied, "replica B still allows the identity suspended on A");

    // Applies through both replicas at once are serialized: one wins, one conflicts.
    let version = |s: &Server| -> i64 {
        let v: serde_json::Value =
            serde_json::from_slice(&s.cli(&admin, &["status", "--json"]).stdout).unwrap();
        v["config_version"].as_i64().unwrap()
    };
    let current = version(&a).to_string();
    let edited = tmp.path().join("repo");
    let mut files = steward_governance::read_dir(&repo).unwrap();
    for f in &mut files {
        if f.path.ends_with(".yaml") && f.content.contains("description:") {
            f.content = f.content.replacen("description:", "description: edited", 1);
            break;
        }
    }
    write_repo(&edited, &files);
    let args = [
        "apply",
        edited.to_str().unwrap(),
        "--expected-version",
        &current,
    ];
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.cli(&admin, &args));
        let hb = s.spawn(|| b.cli(&admin, &args));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let wins = [&ra, &rb].iter().filter(|o| o.status.success()).count();
    assert_eq!(wins, 1, "A: {:?}\nB: {:?}", text(&ra), text(&rb));
    let loser = if ra.status.success() { &rb } else { &ra };
    assert!(
        text(loser).1.contains("run plan again"),
        "{}",
        text(loser).1
    );

    // Killing A right after it acknowledged a revocation loses nothing: B delivers it.
    let out = revoke(
        &a,
        "spiffe://acme.example/ns/payments/sa/payments-api",
        false,
    );
    assert!(out.status.success(), "{}", text(&out).1);
    a.kill9();
    let out = b.cli(&admin, &["revoke", "verify", "2", "--timeout", "30"]);
    assert!(out.status.success(), "{}", text(&out).0);

    // B dies while the point depends on it; a revocation made meanwhile on a restarted A
    // reaches the point once B is back where the point expects it.
    b.kill9();
    let a = Server::start(&backing, &tmp.path().join("token-a2"));
    let out = revoke(&a, "spiffe://acme.example/ns/orders/sa/orders-api", false);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = a.cli(&admin, &["revoke", "verify", "3", "--timeout", "2"]);
    assert!(
        !out.status.success(),
        "the point cannot have applied it yet"
    );
    assert!(text(&out).0.contains("NOT verified"), "{}", text(&out).0);
    let b = start_b();
    let out = a.cli(&admin, &["revoke", "verify", "3", "--timeout", "60"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    let out = b.cli(&admin, &["revoke", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let epochs: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["epoch"].as_i64().unwrap())
        .collect();
    assert_eq!(epochs, [1, 2, 3]);
}

// The web console in headless Chromium, with its WebDriver client.
#[path = "e2e/console.rs"]
mod console;

/// `steward backup` snapshots a running control plane and verifies the copy's evidence
/// chain; `steward restore` refuses a snapshot whose chain was altered, and a restored
/// store serves and verifies.
#[test]
fn backup_while_serving_then_restore_refuses_a_tampered_snapshot() {
    let data = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    let backing = Backing {
        data_dir: data.path().to_path_buf(),
        database_url: None,
    };
    let server = Server::start(&backing, &token_file);
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let out = server.cli(&admin, &["apply", example_repo().to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let data_dir = data.path().to_str().unwrap();

    // Taken while the server runs.
    let snapshot = tmp.path().join("steward-backup.db");
    let backup = |file: &Path| {
        steward()
            .args(["backup", file.to_str().unwrap(), "--data-dir", data_dir])
            .output()
            .unwrap()
    };
    let out = backup(&snapshot);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(said.contains("evidence records"), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&snapshot).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = backup(&snapshot);
    assert!(!again.status.success());
    assert!(
        text(&again).1.contains("exists already"),
        "{:?}",
        text(&again)
    );
    drop(server);

    // A copy whose evidence someone rewrote (the append-only triggers dropped first, as
    // whoever holds the file can) is refused, and nothing is restored.
    let tampered = tmp.path().join("tampered.db");
    std::fs::copy(&snapshot, &tampered).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::{Connection, Executor, Row};
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", tampered.display()))
            .await
            .unwrap();
        let triggers = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'evidence'",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        for t in triggers {
            let name: String = t.get(0);
            db.execute(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"{name}\"")))
                .await
                .unwrap();
        }
        let changed = db
            .execute(
                "UPDATE evidence SET body = replace(body, '\"kind\"', '\"kind\" ') \
                 WHERE seq = (SELECT MIN(seq) FROM evidence)",
            )
            .await
            .unwrap();
        assert_eq!(changed.rows_affected(), 1);
        db.close().await.unwrap();
    });
    let fresh = tempfile::tempdir().unwrap();
    // The key-encryption key goes with the data (the default keeps it beside it).
    let kek = "key-encryption-key";
    std::fs::copy(data.path().join(kek), fresh.path().join(kek)).unwrap();
    let restore = |file: &Path, extra: &[&str]| {
        steward()
            .args(["restore", file.to_str().unwrap(), "--data-dir"])
            .arg(fresh.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = restore(&tampered, &[]);
    assert!(!out.status.success());
    let err = text(&out).1;
    assert!(err.contains("does not verify"), "{err}");
    assert!(
        !fresh.path().join("steward.db").exists(),
        "nothing restored"
    );

    // The real snapshot restores; a second restore needs --replace; the restored store
    // serves and its chain verifies through the server.
    let out = restore(&snapshot, &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = restore(&snapshot, &[]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("--replace"), "{:?}", text(&out));
    let out = restore(&snapshot, &["--replace"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let restored = Server::start(
        &Backing {
            data_dir: fresh.path().to_path_buf(),
            database_url: None,
        },
        &tmp.path().join("unused-token"),
    );
    let out = restored.cli(&admin, &["audit", "verify"]);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{said} {err}");
}

#[path = "e2e/readme.rs"]
mod readme;

// Our token endpoint from common OAuth client libraries (`examples/clients/`).
#[path = "e2e/clients.rs"]
mod clients;

/// A self-signed certificate for 127.0.0.1 and its key, PEM.
fn certificate_for_loopback() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// `steward serve` as operators run it on day two: a renewed TLS certificate is served
/// after `kill -HUP` with no restart, a connection opened before keeps working, and
/// Prometheus metrics and the probes answer on `metrics_listen`.
#[test]
fn sighup_reloads_the_certificate_and_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate_for_loopback();
    std::fs::write(dir.path().join("tls.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("tls-key.pem"), &key).unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("steward.toml"),
        format!(
            "metrics_listen = \"127.0.0.1:{metrics_port}\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("tls.pem").display(),
            dir.path().join("tls-key.pem").display()
        ),
    )
    .unwrap();
    let child = steward()
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("steward.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--bootstrap-token-file")
        .arg(dir.path().join("token"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _server = Reaped(child);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let trusting = |pem: &str| {
            reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
                .build()
                .unwrap()
        };
        let url = format!("https://127.0.0.1:{port}/livez");
        let old = trusting(&cert);
        let started = Instant::now();
        while old.get(&url).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Renewed in place; the server still presents the old one until told.
        let (renewed, renewed_key) = certificate_for_loopback();
        std::fs::write(dir.path().join("tls.pem"), &renewed).unwrap();
        std::fs::write(dir.path().join("tls-key.pem"), &renewed_key).unwrap();
        assert!(trusting(&renewed).get(&url).send().await.is_err());
        let hup = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        let started = Instant::now();
        while trusting(&renewed).get(&url).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the renewed certificate was not served after SIGHUP"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The connection opened before the reload is still served; a new one trusting
        // only the old certificate is not.
        let kept = old.get(&url).send().await.unwrap();
        assert_eq!(kept.status(), 200);
        assert!(trusting(&cert).get(&url).send().await.is_err());
        // Metrics and the probes on their own listener.
        let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("steward_http_requests_total{route=\"/livez\",status=\"200\"}"),
            "{metrics}"
        );
        let ready = trusting(&renewed)
            .get(format!("https://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
    });
}
