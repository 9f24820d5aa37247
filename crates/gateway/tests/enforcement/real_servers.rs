//! Real nginx and RabbitMQ (Debian packages, installed by `.ci/run`) enforcing through
//! Steward, configured with the snippets shipped in `deploy/`. Outside CI a missing server
//! skips loudly; under `CI=true` it fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use reqwest::StatusCode;
use serde_json::Value;
use steward_testkit::Reaped;

use super::*;

/// An ext_authz `CheckRequest` as Envoy sends it for an HTTP request.
pub fn check_request(
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: Option<(&str, &str)>,
) -> CheckRequest {
    let mut headers = HashMap::new();
    if let Some(t) = token {
        headers.insert("authorization".to_owned(), format!("Bearer {t}"));
    }
    if let Some((k, v)) = extra {
        headers.insert(k.to_owned(), v.to_owned());
    }
    headers.insert(":method".to_owned(), method.to_owned());
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    headers,
                    host: "payments.internal".to_owned(),
                    scheme: "http".to_owned(),
                    protocol: "HTTP/1.1".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

/// The path of a server binary, or `None` after a loud message outside CI.
fn binary(what: &str, env: &str, default: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var(env)
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(default));
    if path.exists() {
        return Some(path);
    }
    if steward_testkit::in_ci() {
        panic!(
            "{what} is not installed at {} but CI=true: .ci/run installs it (apt-get install {what})",
            path.display()
        );
    }
    steward_testkit::skipped(
        test,
        what,
        &format!(
            "apt-get install {what} (or set {env}; {} is missing)",
            path.display()
        ),
    );
    None
}

async fn wait_port(port: u16) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nginx_enforces_through_auth_request() {
    let Some(nginx) = binary(
        "nginx",
        "STEWARD_TEST_NGINX",
        "/usr/sbin/nginx",
        "real_nginx_enforces_through_auth_request",
    ) else {
        return;
    };
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let port = closed_port();
    // The same site over TLS, asking clients for a certificate (any: the token pins it).
    let tls_port = closed_port();
    let site = ClientCert::generate("127.0.0.1");
    std::fs::write(dir.path().join("site.pem"), &site.pem).unwrap();
    std::fs::write(dir.path().join("site-key.pem"), &site.key_pem).unwrap();
    let conf = format!(
        r#"daemon off; worker_processes 1; user root; pid {d}/nginx.pid; error_log {d}/error.log;
events {{}}
http {{
  access_log {d}/access.log; client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  upstream steward_auth {{ server {auth}; keepalive 8; keepalive_timeout 5s; }}
  upstream app {{ server {upstream}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    include {auth_location};
    location / {{
      include {enforce};
      proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://app;
    }}
  }}
  server {{
    listen 127.0.0.1:{tls_port} ssl;
    ssl_certificate {d}/site.pem; ssl_certificate_key {d}/site-key.pem;
    ssl_verify_client optional_no_ca;
    include {auth_location};
    location / {{
      include {enforce};
      proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://app;
    }}
  }}
}}
"#,
        auth = gw.auth.unwrap(),
        auth_location = deploy("nginx/steward-auth-location.conf").display(),
        enforce = deploy("nginx/steward-enforce.conf").display(),
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new(&nginx)
        .args([
            "-p",
            &d,
            "-c",
            &format!("{d}/nginx.conf"),
            "-e",
            &format!("{d}/error.log"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _nginx = Reaped(child);
    wait_port(port).await;
    wait_port(tls_port).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let caller = cp.token(CALLER, AUDIENCE).await;
    let outsider = cp.token(OUTSIDER, AUDIENCE).await;

    // Allowed: reaches the upstream with the verified identity, without the credential,
    // with a spoofed identity header replaced, the body intact (POST with a body: the
    // subrequest must not wait for it).
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let resp = http
        .post(format!("{base}/v1/charges/ch_1/refunds?x=1"))
        .bearer_auth(&caller)
        .header("x-steward-identity", "spiffe://acme.example/forged")
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .body(vec![1u8; 100_000])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let seen: Value = resp.json().await.unwrap_or(Value::Null);
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{seen} / nginx error log: {log}");
    assert_eq!(
        seen["headers"]["x-steward-identity"],
        json!([CALLER]),
        "{seen}"
    );
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert_eq!(seen["body_len"], 100_000);
    assert_eq!(seen["uri"], "/v1/charges/ch_1/refunds?x=1");
    let tp = seen["headers"]["traceparent"][0].as_str().unwrap();
    assert!(tp.starts_with(&format!("00-{trace}-")), "{tp}");
    let events = cp.decisions_for(trace, 1).await;
    assert_eq!(events[0]["enforcement_point"], "nginx:edge-test");
    assert_eq!(events[0]["decision"]["outcome"], "allow");
    // Declared request context travels with the client's headers into the subrequest:
    // a payout is allowed only with its amount, and an amount sent twice is refused.
    for (amounts, expected) in [
        (&["4200"][..], StatusCode::OK),
        (&[], StatusCode::FORBIDDEN),
        (&["4200", "100"], StatusCode::FORBIDDEN),
    ] {
        let mut req = http
            .post(format!("{base}/v1/payouts/po_1"))
            .bearer_auth(&caller);
        for a in amounts {
            req = req.header("x-amount-minor", *a);
        }
        assert_eq!(req.send().await.unwrap().status(), expected, "{amounts:?}");
    }
    // A DPoP-bound token: the proof passes through the snippet with the scheme and host
    // it names, is checked (and spent), and never reaches the upstream; a replay is 401
    // with the DPoP challenge nginx passes on.
    let holder = SigningKey::generate().unwrap().0;
    let bound = cp.bound_token(CALLER, AUDIENCE, &holder).await;
    let url = format!("{base}/v1/charges/ch_1");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let proof = steward_token::new_dpop_proof(&holder, "GET", &url, Some(&bound), now).unwrap();
    let dpop = |proof: &str| {
        http.get(&url)
            .header("authorization", format!("DPoP {bound}"))
            .header("dpop", proof)
            .send()
    };
    let resp = dpop(&proof).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(
        seen["headers"]["x-steward-identity"],
        json!([CALLER]),
        "{seen}"
    );
    assert!(seen["headers"].get("dpop").is_none(), "{seen}");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    let resp = dpop(&proof).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "DPoP algs=\"ES256\", error=\"invalid_dpop_proof\""
    );
    // A certificate-bound token over TLS: allowed with its certificate; refused (401)
    // without it, with another one, and over plain HTTP even when the client writes the
    // certificate into the header the snippet uses.
    let cert_bound = cp.cert_bound_token(CALLER, AUDIENCE).await;
    let tls_client = |cert: Option<&ClientCert>| {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(site.pem.as_bytes()).unwrap());
        if let Some(c) = cert {
            b = b.identity(c.identity());
        }
        b.build().unwrap()
    };
    let stranger = ClientCert::generate("stranger.acme.example");
    let tls_url = format!("https://127.0.0.1:{tls_port}/v1/charges/ch_1");
    let resp = tls_client(Some(&cp.certs[CALLER]))
        .get(&tls_url)
        .bearer_auth(&cert_bound)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let seen: Value = resp.json().await.unwrap_or(Value::Null);
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{seen} / nginx error log: {log}");
    assert_eq!(seen["headers"]["x-steward-identity"], json!([CALLER]));
    assert!(seen["headers"].get("x-ssl-client-cert").is_none(), "{seen}");
    // nginx answers refusals with its own page: the reason is in the record.
    for (n, label, client) in [
        (1, "no certificate", tls_client(None)),
        (2, "another certificate", tls_client(Some(&stranger))),
    ] {
        let trace = format!("{n:032x}");
        let resp = client
            .get(&tls_url)
            .bearer_auth(&cert_bound)
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{label}");
        let events = cp.decisions_for(&trace, 1).await;
        let reason = events[0]["decision"]["reasons"][0]
            .as_str()
            .unwrap_or_default();
        assert!(reason.contains("certificate"), "{label}: {}", events[0]);
    }
    let escaped = super::escaped_pem(&cp.certs[CALLER]);
    let resp = http
        .get(format!("{base}/v1/charges/ch_1"))
        .bearer_auth(&cert_bound)
        .header("x-ssl-client-cert", escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "a written certificate passed"
    );
    // Refused: 403 for policy, 401 without or with a bad credential.
    let resp = http
        .post(format!("{base}/v1/charges/ch_1/refunds"))
        .bearer_auth(&outsider)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = http
        .get(format!("{base}/v1/charges/ch_1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = http
        .get(format!("{base}/v1/charges/ch_1"))
        .bearer_auth("forged.token.value")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Paths that climb out of what the token allows, sent byte for byte: real nginx
    // hands Steward its raw `$request_uri`, which is decided on its normal form.
    let bearer = format!("Bearer {caller}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for (path, want) in super::HOSTILE {
        let (status, body) =
            super::raw_request(addr, &format!("GET {path}"), &[("authorization", &bearer)]).await;
        match want {
            // The upstream receives the very request line Steward was asked about
            // (`proxy_pass` without a URI part forwards `$request_uri` as sent), so what
            // it serves is what was decided.
            super::Expect::Allowed(_) => {
                assert_eq!(status, 200, "{path}: {body}");
                let seen: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(seen["uri"], *path, "{body}");
            }
            // nginx itself refuses some of these (400) before asking; never an allow.
            super::Expect::Forbidden(_) | super::Expect::Refused => {
                assert!(matches!(status, 400 | 403), "{path}: {status} {body}");
                assert!(
                    !body.contains("\"uri\""),
                    "{path} reached the upstream: {body}"
                );
            }
        }
    }
    gw.shutdown(Duration::from_secs(2)).await;
}

/// A throwaway RabbitMQ node on loopback ports, as in RECIPES.md §2.
struct Rabbit {
    env: Vec<(String, String)>,
    bin: PathBuf,
    amqp: u16,
    _server: Reaped,
    _epmd: Reaped,
    _dir: tempfile::TempDir,
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        // The server script's child (beam) outlives the script: kill it by its pid file.
        if let Some((_, pidfile)) = self.env.iter().find(|(k, _)| k == "RABBITMQ_PID_FILE")
            && let Ok(pid) = std::fs::read_to_string(pidfile)
        {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

impl Rabbit {
    fn ctl(&self, args: &[&str]) {
        let out = Command::new(self.bin.join("rabbitmqctl"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a node whose HTTP auth backend asks `auth_base`, with the management API
    /// on `management` and an internal administrator `steward-ops` / `ops-admin-password`.
    fn start(bin: PathBuf, auth_base: &str, management: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let (amqp, dist, epmd) = (closed_port(), closed_port(), closed_port());
        let cookie = Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".erlang.cookie");
        if !cookie.exists() {
            std::fs::write(&cookie, uuid::Uuid::new_v4().simple().to_string()).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        let shipped = std::fs::read_to_string(deploy("rabbitmq/rabbitmq.conf")).unwrap();
        let conf = format!(
            "listeners.tcp.default = 127.0.0.1:{amqp}\nloopback_users = none\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management}\n{}",
            shipped.replace("http://127.0.0.1:8181", auth_base)
        );
        std::fs::write(d.join("rabbitmq.conf"), conf).unwrap();
        std::fs::write(
            d.join("enabled_plugins"),
            "[rabbitmq_auth_backend_http,rabbitmq_management].\n",
        )
        .unwrap();
        let p = |f: &str| d.join(f).display().to_string();
        let env: Vec<(String, String)> = [
            ("RABBITMQ_NODENAME", format!("rabbit{amqp}@localhost")),
            ("RABBITMQ_CONF_ENV_FILE", "/dev/null".into()),
            ("RABBITMQ_CONFIG_FILE", p("rabbitmq.conf")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins")),
            ("RABBITMQ_MNESIA_BASE", p("mnesia")),
            ("RABBITMQ_LOG_BASE", p("log")),
            ("RABBITMQ_PID_FILE", p("rabbit.pid")),
            ("RABBITMQ_DIST_PORT", dist.to_string()),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            ("ERL_EPMD_PORT", epmd.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let envs = || env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let epmd_child = Command::new("epmd")
            .args(["-address", "127.0.0.1", "-port", &epmd.to_string()])
            .envs(envs())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let log = std::fs::File::create(d.join("server.out")).unwrap();
        let server = Command::new(bin.join("rabbitmq-server"))
            .envs(envs())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let rabbit = Self {
            env,
            bin,
            amqp,
            _epmd: Reaped(epmd_child),
            _server: Reaped(server),
            _dir: dir,
        };
        rabbit.ctl(&["-q", "wait", &p("rabbit.pid"), "--timeout", "90"]);
        rabbit.ctl(&["-q", "add_vhost", "/payments"]);
        rabbit.ctl(&["-q", "add_user", "ops", "ops-password"]);
        rabbit.ctl(&["-q", "add_user", "steward-ops", "ops-admin-password"]);
        rabbit.ctl(&["-q", "set_user_tags", "steward-ops", "administrator"]);
        rabbit.ctl(&[
            "-q",
            "set_permissions",
            "-p",
            "/payments",
            "ops",
            ".*",
            ".*",
            ".*",
        ]);
        rabbit
    }

    fn uri(&self, user: &str, password: &str) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:{}/{}",
            urlencode(user),
            urlencode(password),
            self.amqp,
            urlencode("/payments")
        )
    }
}

/// The next message of the refund queue, waiting up to 5 s for one to arrive.
async fn next_message(ch: &lapin::Channel) -> Option<lapin::message::BasicGetMessage> {
    for _ in 0..50 {
        let got = ch
            .basic_get(
                "payments.refund-requests".into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        if got.is_some() {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rabbitmq_asks_steward_for_every_publish_and_consume() {
    let Some(server) = binary(
        "rabbitmq-server",
        "STEWARD_TEST_RABBITMQ",
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
        "real_rabbitmq_asks_steward_for_every_publish_and_consume",
    ) else {
        return;
    };
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    // The gateway closes a revoked identity's connections through the management API.
    let management = closed_port();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("rabbitmq-admin");
    std::fs::write(&password_file, "ops-admin-password\n").unwrap();
    let gw = gateway_at(
        &cp,
        &cp.base,
        upstream,
        "",
        &format!(
            "rabbitmq_management_url = \"http://127.0.0.1:{management}\"\nrabbitmq_management_user = \"steward-ops\"\nrabbitmq_management_password_file = \"{}\"",
            password_file.display()
        ),
    )
    .await;
    let rabbit = tokio::task::spawn_blocking({
        let bin = server.parent().unwrap().to_path_buf();
        let auth = format!("http://{}", gw.auth.unwrap());
        move || Rabbit::start(bin, &auth, management)
    })
    .await
    .unwrap();
    let props = ConnectionProperties::default;
    // The operator (internal user) lays out the topology.
    let ops = Connection::connect(&rabbit.uri("ops", "ops-password"), props())
        .await
        .unwrap();
    let ch = ops.create_channel().await.unwrap();
    ch.exchange_declare(
        "payments.commands".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        "payments.refund-requests".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for rk in ["refund.requested", "refund.other"] {
        ch.queue_bind(
            "payments.refund-requests".into(),
            "payments.commands".into(),
            rk.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }

    let caller_token = cp.token(CALLER, BROKER_AUDIENCE).await;
    let outsider_token = cp.token(OUTSIDER, BROKER_AUDIENCE).await;
    let publish = |conn: Connection, rk: &'static str| async move {
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let sent = ch
            .basic_publish(
                "payments.commands".into(),
                rk.into(),
                BasicPublishOptions::default(),
                format!("refund via {rk}").as_bytes(),
                BasicProperties::default(),
            )
            .await;
        match sent {
            Ok(confirm) => confirm.await.map(|c| c.is_ack()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };

    // Allowed: the payments service publishes a refund command and it is delivered.
    let caller = Connection::connect(&rabbit.uri(CALLER, &caller_token), props())
        .await
        .unwrap();
    assert_eq!(publish(caller, "refund.requested").await, Ok(true));
    let caller = Connection::connect(&rabbit.uri(CALLER, &caller_token), props())
        .await
        .unwrap();
    let ch = caller.create_channel().await.unwrap();
    let got = next_message(&ch)
        .await
        .expect("the allowed publish was delivered");
    assert_eq!(got.delivery.data, b"refund via refund.requested");

    // Refused by the broker: a routing key no capability maps (topic check), and an
    // identity the policy does not allow on the exchange at all.
    for (who, token, rk) in [
        (CALLER, &caller_token, "refund.other"),
        (OUTSIDER, &outsider_token, "refund.requested"),
    ] {
        let conn = Connection::connect(&rabbit.uri(who, token), props())
            .await
            .unwrap();
        let refused = publish(conn, rk).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("ACCESS_REFUSED") || e.contains("403")),
            "{who} {rk}: {refused:?}"
        );
    }
    // Nothing else reached the queue.
    let ch = ops.create_channel().await.unwrap();
    let extra = ch
        .basic_get(
            "payments.refund-requests".into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap();
    assert!(extra.is_none(), "a refused publish was delivered");

    // Logins: a token presented under another identity's name, a token for another
    // audience, no token.
    let wrong_name = Connection::connect(&rabbit.uri(OUTSIDER, &caller_token), props()).await;
    assert!(wrong_name.is_err(), "a token only logs in its own subject");
    let web_token = cp.token(CALLER, AUDIENCE).await;
    assert!(
        Connection::connect(&rabbit.uri(CALLER, &web_token), props())
            .await
            .is_err()
    );
    assert!(
        Connection::connect(&rabbit.uri(CALLER, "x"), props())
            .await
            .is_err()
    );

    api_to_event_is_traced(&cp, &rabbit, &gw, &ops).await;

    // The broker's decisions are in the evidence log, from the rabbitmq point.
    let (st, events) = cp
        .query(
            RouteId::AuditEvents,
            &[],
            &format!("kind=access.decision&principal={}", urlencode(OUTSIDER)),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let _ = gw.log.flush(Duration::from_secs(5)).await;
    let (_, events2) = cp
        .query(
            RouteId::AuditEvents,
            &[],
            &format!("kind=access.decision&principal={}", urlencode(OUTSIDER)),
        )
        .await;
    let all: Vec<Value> = events2.as_array().cloned().unwrap_or_default();
    assert!(
        all.iter()
            .any(|e| e["enforcement_point"] == "rabbitmq:edge-test"
                && e["decision"]["outcome"] == "deny"
                && e["destination"]["capability"] == "payments.refund"),
        "{events} / {events2}"
    );
    revoked_consumer_is_cut_off(&cp, &rabbit, &gw, &ops).await;
    gw.shutdown(Duration::from_secs(2)).await;
}

/// A consuming identity is revoked: the gateway closes its connection through the
/// management API before acknowledging, so the consumer stops at once — not when its
/// channel's cached permissions would run out — and it cannot log in again.
async fn revoked_consumer_is_cut_off(
    cp: &ControlPlane,
    rabbit: &Rabbit,
    gw: &steward_gateway::Running,
    ops: &Connection,
) {
    use futures_util::StreamExt as _;
    let token = cp.token(CALLER, BROKER_AUDIENCE).await;
    let consumer_conn =
        Connection::connect(&rabbit.uri(CALLER, &token), ConnectionProperties::default())
            .await
            .unwrap();
    let ch = consumer_conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "payments.refund-requests".into(),
            "revocation-test".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let send = |body: &'static [u8]| async move {
        let ch = ops.create_channel().await.unwrap();
        ch.basic_publish(
            "".into(),
            "payments.refund-requests".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    };
    send(b"before").await;
    let first = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("the consumer receives while allowed")
        .unwrap()
        .unwrap();
    assert_eq!(first.data, b"before");

    let started = std::time::Instant::now();
    let (v, _) = super::revocation::revoke_and_verify(
        cp,
        serde_json::json!({"kind": "identity", "target": CALLER, "reason": "consumer compromised"}),
    )
    .await;
    assert!(
        v["acknowledged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "rabbitmq:edge-test"),
        "{v}"
    );
    // Acknowledged means closed: the consumer's stream ends without another delivery.
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        // The stream ends (None) or reports the closed connection (Err).
        if let Some(Ok(delivery)) = consumer.next().await {
            panic!("a revoked consumer still received {:?}", delivery.data);
        }
    })
    .await;
    let cut_off = started.elapsed();
    assert!(ended.is_ok(), "the consumer was not cut off within 2 s");
    assert!(
        !consumer_conn.status().connected(),
        "the connection is still open"
    );
    eprintln!("revoked consumer cut off {cut_off:?} after the revoke call");
    send(b"after").await;
    // The message stays queued for someone allowed; the revoked identity cannot log in.
    let again =
        Connection::connect(&rabbit.uri(CALLER, &token), ConnectionProperties::default()).await;
    assert!(again.is_err(), "a revoked identity logged in again");
    let left = next_message(&ops.create_channel().await.unwrap()).await;
    assert_eq!(left.unwrap().delivery.data, b"after");
    let _ = gw;
}

/// One request through the gateway publishes an event that a consumer handles: the
/// publisher signs who it is and carries the trace, the consumer verifies and decides, and
/// the evidence log holds every decision under the request's trace id.
async fn api_to_event_is_traced(
    cp: &ControlPlane,
    rabbit: &Rabbit,
    gw: &steward_gateway::Running,
    ops: &Connection,
) {
    use lapin::types::{AMQPValue, LongString};
    use std::collections::BTreeMap;
    use steward_enforce::trace::TraceContext;
    use steward_messaging::{Consumer, Delivery, Destination, Publisher};
    const WORKER: &str = "spiffe://acme.example/ns/payments/sa/refund-worker";

    // 1. The client's request through the gateway.
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let http = reqwest::Client::new();
    let seen: Value = http
        .post(format!("http://{}/v1/charges/ch_7/refunds", gw.proxies[0]))
        .bearer_auth(cp.token(CALLER, AUDIENCE).await)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // 2. The service behind it (CALLER) publishes a refund command with the trace it got.
    let received =
        TraceContext::parse(seen["headers"]["traceparent"][0].as_str().unwrap()).unwrap();
    let publisher = Publisher::new(
        CALLER,
        SigningKey::from_pkcs8(&cp.pkcs8[CALLER]).unwrap(),
        300,
    );
    let destination = Destination {
        vhost: "/payments".into(),
        exchange: "payments.commands".into(),
        routing_key: "refund.requested".into(),
    };
    let token = cp.token(CALLER, BROKER_AUDIENCE).await;
    let conn = Connection::connect(&rabbit.uri(CALLER, &token), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let send = |body: &'static [u8], headers: BTreeMap<String, String>| {
        let ch = ch.clone();
        async move {
            let mut table = FieldTable::default();
            for (k, v) in headers {
                table.insert(
                    k.into(),
                    AMQPValue::LongString(LongString::from(v.into_bytes())),
                );
            }
            let confirm = ch
                .basic_publish(
                    "payments.commands".into(),
                    "refund.requested".into(),
                    BasicPublishOptions::default(),
                    body,
                    BasicProperties::default().with_headers(table),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack());
        }
    };
    let body: &'static [u8] = b"{\"charge\":\"ch_7\",\"amount_minor\":1200}";
    send(
        body,
        publisher
            .headers(body, &destination, Some(&received))
            .unwrap(),
    )
    .await;
    // A message whose body was changed after signing, and one with no statement at all.
    send(
        b"{\"charge\":\"ch_7\",\"amount_minor\":999999}",
        publisher
            .headers(body, &destination, Some(&received))
            .unwrap(),
    )
    .await;
    send(
        body,
        BTreeMap::from([("traceparent".to_owned(), received.child().to_string())]),
    )
    .await;

    // 3. The refund worker consumes through its own enforcement point.
    let ingestor = cp.credential("refund-worker", "ingestor").await;
    let http_client = reqwest::Client::new();
    let source = steward_enforce::BundleSource::new(
        steward_enforce::SourceConfig {
            url: cp.base.clone(),
            credential: ingestor.clone().into(),
            point: "refund-worker".into(),
            refresh: Duration::from_secs(5),
            max_staleness: Duration::from_secs(60),
            anchor: Vec::new(),
        },
        http_client.clone(),
    );
    source.refresh().await.unwrap();
    let log = steward_enforce::DecisionLog::ship_to(
        &cp.base,
        ingestor,
        1000,
        steward_enforce::DEFAULT_SHIP_INTERVAL,
        http_client,
    );
    let point = steward_enforce::EnforcementPoint::new(
        "consumer",
        "refund-worker",
        "prod",
        source,
        log.clone(),
    );
    let consumer = Consumer::new(WORKER, point);
    let queue_ch = ops.create_channel().await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let m = next_message(&queue_ch).await.expect("a published message");
        let headers: BTreeMap<String, String> = m
            .delivery
            .properties
            .headers()
            .as_ref()
            .map(|t| {
                t.inner()
                    .iter()
                    .filter_map(|(k, v)| match v {
                        AMQPValue::LongString(s) => Some((
                            k.to_string(),
                            String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        )),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let delivered = Destination {
            vhost: "/payments".into(),
            exchange: m.delivery.exchange.to_string(),
            routing_key: m.delivery.routing_key.to_string(),
        };
        outcomes.push(consumer.accept(&Delivery {
            headers: &headers,
            body: &m.delivery.data,
            destination: &delivered,
            queue: "payments.refund-requests",
        }));
    }
    let accepted = outcomes[0]
        .as_ref()
        .expect("the signed message is accepted");
    assert_eq!(accepted.publisher, CALLER);
    assert_eq!(accepted.trace.trace_id, trace_id);
    let altered = outcomes[1].as_ref().unwrap_err();
    assert!(
        altered.reason.contains("not the one its publisher signed"),
        "{altered:?}"
    );
    let unsigned = outcomes[2].as_ref().unwrap_err();
    assert!(
        unsigned.reason.contains("no `steward-publisher`"),
        "{unsigned:?}"
    );
    assert_eq!(log.flush(Duration::from_secs(10)).await, 0);

    // 4. The trace: the gateway's decision, then the consumer's two, then the refusal of
    // the altered message — all under the client's trace id.
    let events = cp.decisions_for(trace_id, 5).await;
    let points: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["enforcement_point"].as_str().unwrap_or("").to_owned(),
                e["principal"].as_str().unwrap_or("").to_owned(),
                e["decision"]["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expect = |p: &str, who: &str, outcome: &str| {
        assert!(
            points
                .iter()
                .any(|(a, b, c)| a == p && b == who && c == outcome),
            "{p} {who} {outcome} not in {points:?}"
        );
    };
    expect("gateway:edge-test", CALLER, "allow");
    expect("consumer:refund-worker", CALLER, "allow");
    expect("consumer:refund-worker", WORKER, "allow");
    expect("consumer:refund-worker", "unauthenticated", "deny");
}

/// One line's value in a Prometheus text exposition, by its series (`name{labels}`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The series (`name{labels}`) of a text exposition, without their values.
fn series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
        .collect()
}

/// Both components' metrics as a real Prometheus scrapes them: the gateway's decisions
/// by layer and outcome, the control plane's tokens and API requests. No label holds an
/// identity, a token or a path as sent, so 10,000 requests for distinct paths with
/// distinct made-up tokens add no series. The alert rules in `deploy/` pass `promtool`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_both_binaries() {
    use futures_util::StreamExt as _;
    let test = "a_real_prometheus_scrapes_both_binaries";
    let Some(prometheus) = binary(
        "prometheus",
        "STEWARD_TEST_PROMETHEUS",
        "/usr/bin/prometheus",
        test,
    ) else {
        return;
    };
    let cp = ControlPlane::start().await;
    let upstream = echo_upstream().await;
    let gw = gateway(&cp, upstream, "[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let cp_metrics = cp.serve_metrics().await;
    let gw_metrics = gw.metrics.unwrap();
    let http = reqwest::Client::new();
    let scrape = |addr: SocketAddr| {
        let http = http.clone();
        async move {
            let resp = http
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap();
            assert!(
                resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/openmetrics-text"),
                "{resp:?}"
            );
            resp.text().await.unwrap()
        }
    };

    // Three allowed, two denied, one without a credential.
    let url = format!("http://{}/v1/charges/ch_1", gw.proxies[0]);
    let caller = cp.token(CALLER, AUDIENCE).await;
    let outsider = cp.token(OUTSIDER, AUDIENCE).await;
    for (token, status) in [
        (Some(&caller), 200),
        (Some(&caller), 200),
        (Some(&caller), 200),
        (Some(&outsider), 403),
        (Some(&outsider), 403),
        (None, 401),
    ] {
        let mut r = http.get(&url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        assert_eq!(r.send().await.unwrap().status().as_u16(), status);
    }
    let text = scrape(gw_metrics).await;
    assert_eq!(
        sample(
            &text,
            "steward_decisions_total{layer=\"gateway\",outcome=\"allow\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "steward_decisions_total{layer=\"gateway\",outcome=\"deny\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "steward_decision_duration_seconds_count{layer=\"gateway\"}"
        ),
        Some(6.0),
        "{text}"
    );
    assert!(
        sample(&text, "steward_bundle_policy_version").unwrap() > 0.0,
        "{text}"
    );
    // The probes beside the metrics: live, and ready with a fresh bundle.
    for path in ["livez", "readyz"] {
        let resp = http
            .get(format!("http://{gw_metrics}/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    let before = series(&text);

    // 10,000 distinct paths with distinct made-up tokens: refused, counted, no new series.
    let sent = futures_util::stream::iter(0..10_000)
        .map(|i| {
            let http = http.clone();
            let url = format!("http://{}/v1/charges/ch_{i}", gw.proxies[0]);
            async move {
                http.get(url)
                    .bearer_auth(format!("spiffe-acme-example-agent-{i}"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert!(
        sent.iter().all(|s| matches!(s, Ok(401))),
        "every one refused"
    );
    let text = scrape(gw_metrics).await;
    let after = series(&text);
    assert_eq!(
        sample(
            &text,
            "steward_decisions_total{layer=\"gateway\",outcome=\"unauthenticated\"}"
        ),
        Some(10_001.0),
        "{text}"
    );
    assert_eq!(before, after, "requests added series");
    assert!(
        !text.contains("spiffe") && !text.contains("ch_"),
        "a label holds request data: {text}"
    );
    // A token request with a forged assertion: refused, and counted by its OAuth error.
    let forged = cp
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", steward_token::JWT_BEARER_ASSERTION),
                ("client_assertion", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
                ("audience", AUDIENCE),
            ],
            &[],
        )
        .await;
    assert!(forged.is_err(), "{forged:?}");
    let cp_text = scrape(cp_metrics).await;
    assert!(!cp_text.contains("spiffe://"), "{cp_text}");
    assert!(
        cp_text.contains(
            "steward_token_refusals_total{grant=\"client_credentials\",error=\"invalid_client\"} 1"
        ),
        "{cp_text}"
    );
    let issued = sample(
        &cp_text,
        "steward_tokens_issued_total{grant=\"client_credentials\"}",
    )
    .unwrap();
    assert!(issued >= 2.0, "{cp_text}");

    // A real Prometheus scrapes both, every second, and answers queries on what it read.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: steward-control-plane\n    static_configs: [{{targets: ['{cp_metrics}']}}]\n  - job_name: steward-gateway\n    static_configs: [{{targets: ['{gw_metrics}']}}]\n"
        ),
    )
    .unwrap();
    let port = closed_port();
    let _prometheus = Reaped(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port).await;
    let query = |q: &'static str| {
        let http = http.clone();
        async move {
            // Until it is ready, Prometheus answers 503 in plain text: no figure yet.
            let resp = http
                .get(format!(
                    "http://127.0.0.1:{port}/api/v1/query?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("query", q)
                        .finish()
                ))
                .send()
                .await
                .ok()?;
            let body: Value = resp.json().await.ok()?;
            body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let allowed = query(
            "steward_decisions_total{job=\"steward-gateway\",layer=\"gateway\",outcome=\"allow\"}",
        )
        .await;
        let tokens = query("sum(steward_tokens_issued_total{job=\"steward-control-plane\"})").await;
        if allowed == Some(3.0) && tokens == Some(issued) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus did not report the test's figures: allowed {allowed:?}, tokens {tokens:?} (expected 3 and {issued})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        query("sum(steward_decisions_total{job=\"steward-gateway\"})").await,
        Some(10_006.0)
    );
    let token_requests = query(
        "sum(steward_http_requests_total{job=\"steward-control-plane\",route=\"/oauth2/token\",status=\"200\"})",
    )
    .await;
    assert!(
        token_requests.is_some_and(|n| n >= 2.0),
        "{token_requests:?}"
    );

    // Every metric the alert rules and the dashboard name is one the binaries export,
    // and every dashboard query is one Prometheus accepts.
    let exported = format!("{}{}", scrape(cp_metrics).await, scrape(gw_metrics).await);
    for file in [
        "prometheus/steward-alerts.yml",
        "grafana/steward-dashboard.json",
    ] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        for (at, _) in text.match_indices("steward_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "{file} names `{name}`, which neither binary exports"
            );
        }
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/steward-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let answer: Value = http
                .get(format!(
                    "http://127.0.0.1:{port}/api/v1/query?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("query", expr)
                        .finish()
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
        }
    }

    // The alert rules operators load are valid Prometheus rules.
    let promtool = prometheus.with_file_name("promtool");
    if promtool.exists() {
        let out = Command::new(&promtool)
            .args(["check", "rules"])
            .arg(deploy("prometheus/steward-alerts.yml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            !steward_testkit::in_ci(),
            "promtool is missing beside {}",
            prometheus.display()
        );
    }
    gw.shutdown(Duration::from_secs(5)).await;
}
