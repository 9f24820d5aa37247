//! The AuthZEN decision API (R15) as a client reaches it: fuzzed bodies posted through
//! the control plane's real router, on a real SQLite store holding the example
//! repository, with a valid admin credential. The first byte picks the endpoint
//! (`/access/v1/evaluation` or the batch `/access/v1/evaluations`).
//!
//! Never a server error or a panic; a malformed body is a 4xx with a JSON error; and a
//! subject type or action name Steward does not know is a deny, never an allow.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    token: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // libFuzzer exits without running destructors: the directory stays behind, named
        // so it can be found (fuzz/README.md).
        let dir = tempfile::Builder::new()
            .prefix("steward-fuzz-authzen-")
            .tempdir()
            .expect("a temporary directory");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let config = steward_server::config::FileConfig::default()
            .resolve(steward_server::config::Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some(dir.path().into()),
                trust_domain: Some("acme.example".into()),
                database_url: None,
            })
            .expect("a configuration");
        let (router, token) = runtime.block_on(async {
            let store = steward_store::Store::open_data_dir(&config.data_dir)
                .await
                .expect("the store");
            let token = steward_server::bootstrap(&store)
                .await
                .expect("bootstrap")
                .expect("a fresh store bootstraps");
            let desired = steward_governance::parse(
                &steward_governance::read_dir(&steward_testkit::example_repo())
                    .expect("the example repository"),
                &steward_model::TrustDomain::new("acme.example").expect("a trust domain"),
            )
            .expect("the example repository parses");
            store
                .apply(&desired, None, &steward_store::Actor::system())
                .await
                .expect("the example repository applies");
            let state = steward_server::AppState::new(store, &config)
                .await
                .expect("the control plane's state");
            (steward_server::router(state), token)
        });
        Fixture {
            runtime,
            router,
            token,
            _dir: dir,
        }
    })
}

/// Whether `item` (with batch `defaults`) names a subject type or action Steward knows;
/// an item that does not must be denied.
fn known(item: &Value, defaults: &Value) -> bool {
    let given = |v: &Value, k: &str| v.get(k).filter(|x| !x.is_null()).cloned();
    let pick = |k: &str| given(item, k).or_else(|| given(defaults, k));
    let subject = pick("subject");
    let action = pick("action");
    let subject = subject
        .as_ref()
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str);
    let action = action
        .as_ref()
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str);
    matches!(subject, Some("workload" | "identity" | "spiffe"))
        && matches!(
            action,
            Some(
                "invoke"
                    | "read"
                    | "write"
                    | "publish"
                    | "consume"
                    | "delegate"
                    | "admin"
                    | "access"
            )
        )
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let batch = pick % 2 == 1;
    let path = if batch {
        "/access/v1/evaluations"
    } else {
        "/access/v1/evaluation"
    };
    let request = Request::post(path)
        .header("authorization", format!("Bearer {}", f.token))
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let (status, answer) = f.runtime.block_on(async {
        let response = f
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("the answer's body");
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{status} for {:?}: {}",
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&answer)
    );
    let answer: Value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
        panic!(
            "{status}: the answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&answer)
        )
    });
    if status != StatusCode::OK {
        assert!(status.is_client_error(), "{status}");
        assert!(answer.is_object(), "a JSON error object: {answer}");
        return;
    }
    let asked: Value = serde_json::from_slice(body).expect("a 200 answers a JSON body");
    if batch {
        let items = asked.get("evaluations").and_then(Value::as_array);
        let answers = answer["evaluations"].as_array().expect("evaluations");
        match items {
            Some(items) if !items.is_empty() => {
                // Short-circuit semantics may answer fewer than were asked.
                assert!(answers.len() <= items.len(), "{answer}");
                for (item, a) in items.iter().zip(answers) {
                    if a["decision"] == true {
                        assert!(known(item, &asked), "allowed {item} (defaults {asked})");
                    }
                }
            }
            _ => {
                assert!(answers.len() <= 1, "{answer}");
                if answers.first().is_some_and(|a| a["decision"] == true) {
                    assert!(known(&asked, &Value::Null), "allowed {asked}");
                }
            }
        }
    } else if answer["decision"] == true {
        assert!(known(&asked, &Value::Null), "allowed {asked}");
    }
});
