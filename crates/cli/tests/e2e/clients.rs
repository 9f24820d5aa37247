//! Our token endpoint from common OAuth client libraries, as `examples/clients/` shows
//! them: the examples run against a real control plane (with the Python of
//! `STEWARD_TEST_PYTHON`, set up by `.ci/run`), so what docs/tokens.md says about client
//! assertions stays true.

use super::*;

/// `examples/clients/authlib_client_credentials.py`: Authlib's `private_key_jwt` with a
/// key made by `steward identity key create` gets a token for the audience asked; with
/// Authlib's default assertion lifetime (3600 s) it is refused, naming the lifetime.
#[test]
fn authlib_example_gets_a_token_and_authlib_default_lifetime_is_refused() {
    let Some(python) = steward_testkit::python_with_authlib(
        "authlib_example_gets_a_token_and_authlib_default_lifetime_is_refused",
    ) else {
        return;
    };
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
    let audience = "spiffe://acme.example/ns/payments/sa/ledger";
    let key = tmp.path().join("refund-batch.pem");
    let out = steward()
        .args(["identity", "key", "create", id, "--out"])
        .arg(&key)
        .output()
        .unwrap();
    let (fragment, note) = text(&out);
    assert!(out.status.success(), "{note}");

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
        content: fragment,
    });
    write_repo(&repo, &files);
    let out = server.cli(&admin, &["apply", repo.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));

    let example = || {
        let mut c = Command::new(&python);
        c.arg(repo_root().join("examples/clients/authlib_client_credentials.py"));
        for var in steward_testkit::STEWARD_ENV {
            c.env_remove(var);
        }
        c
    };

    // Configured through the environment, as a workload's deployment would.
    let out = example()
        .env("STEWARD_SERVER", server.url())
        .env("STEWARD_SPIFFE_ID", id)
        .env("STEWARD_KEY_FILE", &key)
        .env("STEWARD_AUDIENCE", audience)
        .output()
        .unwrap();
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
    assert_eq!(claims["sub"], id, "{claims}");
    assert_eq!(claims["aud"], audience, "{claims}");

    // Authlib's own default: assertions valid for an hour, refused as docs/tokens.md warns.
    let out = example()
        .args(["--server", server.url(), "--spiffe-id", id, "--key"])
        .arg(&key)
        .args(["--audience", audience, "--authlib-default-lifetime"])
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.trim().is_empty(), "no token: {stdout}");
    assert!(err.contains("invalid_client"), "{err}");
    // Authlib sets `exp` 3600 s after `iat`; the server sees at most a second less.
    assert!(
        (err.contains("lives 3600 s") || err.contains("lives 3599 s"))
            && err.contains("at most 300 s are accepted"),
        "{err}"
    );
}
