//! The README's quick start, run as written: the block between its `quickstart` markers is
//! taken from the README itself (never copied here), run by bash in a fresh directory that
//! looks like a clone after `cargo run -- demo`, and must end with a workload calling
//! through the gateway with its own key.

use super::*;

/// The shell block between `<!-- quickstart:begin -->` and `<!-- quickstart:end -->`.
fn quickstart_block(readme: &str) -> String {
    let (_, rest) = readme
        .split_once("<!-- quickstart:begin -->")
        .expect("the README lost its quickstart:begin marker");
    let (block, _) = rest
        .split_once("<!-- quickstart:end -->")
        .expect("the README lost its quickstart:end marker");
    let body = block
        .trim()
        .strip_prefix("```sh")
        .and_then(|b| b.strip_suffix("```"))
        .expect("the quick start is one ```sh block");
    body.to_owned()
}

/// The fixed addresses the quick start uses; another server on them would answer in its
/// place.
const PORTS: [u16; 3] = [8470, 8443, 9000];

/// A process group killed as a whole when dropped: the block leaves three servers running
/// in the background, as a user's shell would.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

#[test]
fn readme_quickstart_reaches_the_gateway() {
    let skip = |why: &str| {
        assert!(
            !steward_testkit::in_ci(),
            "{why}, but CI=true: the README quick start must run in CI"
        );
        steward_testkit::skipped(
            "readme_quickstart_reaches_the_gateway",
            "README quick start",
            why,
        );
    };
    if Command::new("curl").arg("--version").output().is_err() {
        return skip("curl is not installed (the quick start uses it)");
    }
    if let Some(busy) = PORTS
        .iter()
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", **p)).is_err())
    {
        return skip(&format!(
            "127.0.0.1:{busy} is in use (stop what listens there)"
        ));
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = quickstart_block(&readme);

    // A clone after `cargo run -- demo`: the examples, and the binary at target/debug.
    let clone = tempfile::tempdir().unwrap();
    let copy = Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("examples"))
        .arg(clone.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let bin = Path::new(env!("CARGO_BIN_EXE_steward"));
    std::fs::create_dir_all(clone.path().join("target")).unwrap();
    std::os::unix::fs::symlink(bin.parent().unwrap(), clone.path().join("target/debug")).unwrap();

    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -euo pipefail\n{block}"))
        .current_dir(clone.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in steward_testkit::STEWARD_ENV {
        cmd.env_remove(var);
    }
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut group = Group(cmd.spawn().unwrap());
    // Read both pipes on their own threads: the background servers inherit no pipe (the
    // block sends their output to files), so the pipes close when bash exits.
    let mut stdout_pipe = group.0.stdout.take().unwrap();
    let mut stderr_pipe = group.0.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout_pipe, &mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = group.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let logs = || {
        ["serve.log", "gateway.log", "echo.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(clone.path().join(f)).unwrap_or_default();
                format!("--- {f}\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let Some(status) = status else {
        drop(group);
        panic!("the quick start did not finish within 180 s\n{}", logs());
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(
        status.success(),
        "the quick start failed ({status}):\n{stdout}\n{stderr}\n{}",
        logs()
    );
    let worker = "spiffe://acme.example/ns/payments/sa/refund-worker";
    // Allowed: the stand-in API answered, and saw the caller's verified identity.
    assert!(
        stdout.contains(&format!("\"x-steward-identity\": \"{worker}\"")),
        "no allowed call reached the API:\n{stdout}"
    );
    assert!(
        !stdout.contains("\"authorization\""),
        "the gateway forwarded the client's credential:\n{stdout}"
    );
    // Refused twice: a capability the worker was not granted, and no token at all.
    assert!(
        stdout.contains("\"error\":\"forbidden\""),
        "the POST was not refused:\n{stdout}"
    );
    assert!(
        stdout.contains("\"error\":\"unauthenticated\""),
        "the call without a token was not refused:\n{stdout}"
    );
    // And the decisions are evidence.
    assert!(stdout.contains("access.decision"), "{stdout}");
    // The private key was written owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(clone.path().join("refund-worker.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
