//! The web console in a real headless Chromium, driven over WebDriver: every page shows
//! what the API holds (the charts' counts, the trace's hops, the enforcement points'
//! flags, a revocation's acknowledgements), times are shown local and readable, markup
//! in registry data never runs, and an auditor gets no button that changes anything. A
//! screenshot of each page goes to `target/console-screenshots/`.

use super::*;
use serde_json::{Value, json};

/// A minimal W3C WebDriver client (chromedriver), enough to sign in, navigate, read text,
/// run a script and take a screenshot; plain HTTP, no extra dependency.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
}

/// chromedriver and the Chromium it starts, in a process group of their own that is
/// killed as a whole when dropped, also when the test fails: a browser must not outlive
/// its test (stopping chromedriver alone leaves Chromium running).
struct DriverGroup(std::process::Child);

impl DriverGroup {
    fn spawn(cmd: &mut Command) -> DriverGroup {
        use std::os::unix::process::CommandExt;
        DriverGroup(cmd.process_group(0).spawn().unwrap())
    }
}

impl Drop for DriverGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The window every screenshot is taken at, so that they compare from run to run.
const WINDOW: (u32, u32) = (1400, 900);

impl Browser {
    async fn start(driver: &str, profile: &Path) -> Browser {
        let http = reqwest::Client::new();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.display()),
        ];
        let resp: Value = http
            .post(format!("{driver}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        let b = Browser {
            http,
            base: driver.to_owned(),
            session,
        };
        b.cmd(
            reqwest::Method::POST,
            "/window/rect",
            json!({"width": WINDOW.0, "height": WINDOW.1}),
        )
        .await;
        b
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// The text of `css` once it contains `want` (10 s at most).
    async fn text_with(&self, css: &str, want: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            if let Some(e) = self.find(css).await {
                let v = self
                    .cmd(
                        reqwest::Method::GET,
                        &format!("/element/{e}/text"),
                        Value::Null,
                    )
                    .await;
                last = v.as_str().unwrap_or_default().to_owned();
                if last.contains(want) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{css}` never showed {want:?}; last text: {last:?}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await.unwrap_or_else(|| panic!("no {css}"));
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await.unwrap_or_else(|| panic!("no {css}"));
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            json!({}),
        )
        .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
        .await
    }

    /// The visible window as a PNG, written to `dir/<page>.png`.
    async fn screenshot(&self, dir: &Path, page: &str) {
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_else(|| panic!("no screenshot: {v}")))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(dir.join(format!("{page}.png")), png).unwrap();
    }

    /// Fails if the page shows a time as raw RFC 3339 (`2026-12-07T12:04:05.123Z`)
    /// instead of through the console's time helper.
    async fn no_raw_times(&self, page: &str) {
        let raw = self
            .script(
                "const m = document.querySelector('main').innerText.match(/\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}\\S*/); return m ? m[0] : null;",
            )
            .await;
        assert_eq!(raw, Value::Null, "{page} shows a raw time");
    }

    /// The `<time>` elements of the page: what they show, and their title (the stored
    /// value).
    async fn times(&self) -> Vec<(String, String)> {
        let v = self
            .script(
                "return [...document.querySelectorAll('main time')].map((t) => [t.textContent, t.getAttribute('title')]);",
            )
            .await;
        serde_json::from_value(v).unwrap()
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// Where the screenshots go: `console-screenshots/` in the target directory.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                repo_root().join(t)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The W3C trace id the test's decisions share.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ORDERS_API: &str = "spiffe://acme.example/ns/orders/sa/orders-api";
const PARTNER_GATEWAY: &str = "spiffe://acme.example/ns/partners/sa/partner-gateway";

/// The points the test registers: two current, one a bundle behind that never applies
/// the revocation.
fn point_reports(policy_version: i64, epoch: i64) -> [Value; 2] {
    [
        json!({"points": [
            {"id": "gateway:edge-1", "kind": "gateway", "name": "edge-1", "environment": "prod"},
            {"id": "rabbitmq:broker-1", "kind": "rabbitmq", "name": "broker-1", "environment": "prod"},
        ], "bundle_version": policy_version, "epoch": epoch}),
        json!({"points": [
            {"id": "consumer:refunds", "kind": "consumer", "name": "refunds", "environment": "prod"},
        ], "bundle_version": policy_version - 1, "epoch": 0}),
    ]
}

/// One decision record as an enforcement point ships it.
fn decision_record(
    at: time::OffsetDateTime,
    point: &str,
    action: &str,
    address: &str,
    allow: bool,
) -> Value {
    json!({
        "schema": "steward.evidence/1",
        "id": uuid::Uuid::now_v7().to_string(),
        "time": steward_model::timestamp::format(at),
        "kind": "access.decision",
        "plane": "commerce",
        "principal": ORDERS_API,
        "action": action,
        "destination": {"capability": "payments.refund", "address": address},
        "decision": if allow {
            json!({"outcome": "allow", "policies": ["payments-grant-refund"]})
        } else {
            json!({"outcome": "deny", "reasons": ["no permit for consume on payments.refund"]})
        },
        "correlation_id": TRACE,
        "enforcement_point": point,
    })
}

struct Api {
    http: reqwest::Client,
    base: String,
    admin: String,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value, request_id: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(&body);
        if let Some(id) = request_id {
            req = req.header("X-Request-ID", id);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Every test point reports (registration, heartbeat and acknowledgement in one).
    async fn heartbeat(&self, policy_version: i64, epoch: i64) {
        for report in point_reports(policy_version, epoch) {
            let (st, body) = self
                .post("/enforcement/v1/points/report", report, None)
                .await;
            assert_eq!(st, 200, "{body}");
        }
    }
}

/// The web console in a real headless Chromium: sign in, every page shows what the API
/// holds, markup in registry data is shown as text and never runs, an auditor gets no
/// buttons that change anything (and the API refuses if tried).
#[tokio::test(flavor = "multi_thread")]
async fn console_in_headless_chromium() {
    let driver_bin = Path::new("/usr/bin/chromedriver");
    if !driver_bin.exists() {
        assert!(
            !steward_testkit::in_ci(),
            "chromedriver is missing but CI=true: .ci/run installs chromium and chromium-driver"
        );
        steward_testkit::skipped(
            "console_in_headless_chromium",
            "Chromium",
            "apt-get install chromium chromium-driver",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let backing = Backing {
        data_dir: tmp.path().join("data"),
        database_url: None,
    };
    let token_file = tmp.path().join("token");
    let server = tokio::task::spawn_blocking({
        let (b, t) = (backing.clone(), token_file.clone());
        move || Server::start(&b, &t)
    })
    .await
    .unwrap();
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let base = server.url().to_owned();
    let http = reqwest::Client::new();
    let api = Api {
        http: http.clone(),
        base: base.clone(),
        admin: admin.clone(),
    };
    let out = tokio::task::spawn_blocking({
        let (s, a) = (base.clone(), admin.clone());
        move || {
            steward()
                .args(["apply", example_repo().to_str().unwrap()])
                .env("STEWARD_SERVER", s)
                .env("STEWARD_TOKEN", a)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let evil = "spiffe://acme.example/ns/payments/sa/evil";
    let r = http
        .post(format!("{base}/admin/v1/identities"))
        .bearer_auth(&admin)
        .json(&json!({
            "spiffe_id": evil, "plane": "payments", "owner": "payments-team",
            "environment": "prod", "kind": "service", "classification": "internal",
            "description": "<script>window.__pwned = 1</script>",
            "labels": {"note": "<img src=x onerror=\"window.__pwned=2\">"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The payments plane grants it a read it never declared: an effective permission on
    // its page, and a beyond-intended finding (NHI5) from the first day.
    let mut files = steward_governance::read_dir(&example_repo()).unwrap();
    files.push(steward_governance::SourceFile {
        path: "policies/payments/evil.cedar".into(),
        content: format!(
            "@id(\"payments-evil-reads\")\npermit (\n  principal == Steward::Identity::\"{evil}\",\n  action == Steward::Action::\"read\",\n  resource == Steward::Capability::\"payments.read\"\n);\n"
        ),
    });
    let r = http
        .post(format!("{base}/admin/v1/config/apply"))
        .bearer_auth(&admin)
        .json(&json!({ "files": files }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let auditor: Value = http
        .post(format!("{base}/admin/v1/credentials"))
        .bearer_auth(&admin)
        .json(&json!({"name": "the auditor", "role": "auditor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auditor = auditor["token"].as_str().unwrap().to_owned();
    let campaign: Value = http
        .post(format!("{base}/admin/v1/reviews"))
        .bearer_auth(&admin)
        .json(&json!({"plane": "payments", "name": "console review"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let campaign = campaign["id"].as_str().unwrap().to_owned();

    // The static page and script carry a strict CSP and no data.
    let page = http.get(format!("{base}/console/")).send().await.unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );

    let port = free_port();
    let _driver = DriverGroup::spawn(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let driver = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if http.get(format!("{driver}/status")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let b = Browser::start(&driver, profile.path()).await;
    let shots = screenshot_dir();
    let started = Instant::now();

    // A wrong credential is refused on the sign-in form.
    b.go(&format!("{base}/console/")).await;
    b.type_into("#token", "stw_000000000000_nope").await;
    b.click("#signin").await;
    b.text_with("#login-error", "Sign-in failed").await;
    b.screenshot(&shots, "sign-in").await;
    // Sign in as the central admin.
    b.go(&format!("{base}/console/")).await;
    b.type_into("#token", &admin).await;
    b.click("#signin").await;
    b.text_with("#who", "central-admin").await;
    b.text_with("#cards", "identities").await;

    // Before any point reports or anything is revoked, those views say so.
    b.go(&format!("{base}/console/#/points")).await;
    b.text_with("#points-empty", "No enforcement point has reported yet")
        .await;
    b.go(&format!("{base}/console/#/revocations")).await;
    b.text_with("#revocations-empty", "Nothing has been revoked yet")
        .await;

    // Traffic across layers under one trace id: an API asks the PDP (allowed), a request
    // passes the gateway and the broker and is refused by the consumer, then the PDP
    // refuses another identity. Three points register; one revocation follows, applied
    // by two of them.
    let policy_version = api.get("/admin/v1/enforcement/points").await["policy_version"]
        .as_i64()
        .unwrap();
    assert!(policy_version >= 1);
    api.heartbeat(policy_version, 0).await;
    let evaluation = |subject: &str, capability: &str, action: &str, env: &str| {
        json!({"subject": {"type": "workload", "id": subject},
               "resource": {"type": "capability", "id": capability},
               "action": {"name": action}, "context": {"environment": env}})
    };
    let (st, body) = api
        .post(
            "/access/v1/evaluation",
            evaluation(ORDERS_API, "payments.charge", "invoke", "prod"),
            Some(TRACE),
        )
        .await;
    assert_eq!((st, &body["decision"]), (200, &json!(true)), "{body}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t0 = time::OffsetDateTime::now_utc();
    let ms = time::Duration::milliseconds;
    let records = json!({"records": [
        decision_record(t0, "gateway:edge-1", "invoke", "http POST /v1/refunds/42", true),
        decision_record(t0 + ms(4), "rabbitmq:broker-1", "publish", "amqp exchange=payments rk=refund.requested", true),
        decision_record(t0 + ms(17), "consumer:refunds", "consume", "queue refunds", false),
    ]});
    let (st, body) = api.post("/enforcement/v1/decisions", records, None).await;
    assert_eq!(st, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(40)).await;
    let (st, body) = api
        .post(
            "/access/v1/evaluation",
            evaluation(PARTNER_GATEWAY, "orders.read", "read", "staging"),
            Some(TRACE),
        )
        .await;
    assert_eq!((st, &body["decision"]), (200, &json!(false)), "{body}");
    let (st, body) = api
        .post(
            "/admin/v1/revocations",
            json!({"kind": "token", "target": "jti-console-e2e", "reason": "leaked in a CI log"}),
            None,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let epoch = body["revocation"]["epoch"].as_i64().unwrap();
    api.heartbeat(policy_version, epoch).await;

    // The overview: cards, and charts whose numbers are the API's.
    b.go(&format!("{base}/console/#/overview")).await;
    let cards = b.text_with("#cards", "identities").await;
    assert!(cards.contains("findings"), "{cards}");
    assert!(
        b.find("#chart-severity").await.is_some(),
        "a findings chart"
    );
    assert!(
        b.find("#chart-decisions").await.is_some(),
        "a decisions chart"
    );
    let timeline = api.get("/admin/v1/audit/timeline?hours=24").await;
    let sum = |k: &str| {
        timeline
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[k].as_i64().unwrap())
            .sum::<i64>()
    };
    let (allowed, denied) = (sum("allowed"), sum("denied"));
    assert_eq!(
        (allowed, denied),
        (3, 2),
        "the timeline splits the test's decisions: {timeline}"
    );
    let legend = b.text_with("#decisions-legend", "Allowed").await;
    assert!(legend.contains("Denied"), "{legend}");
    b.text_with("#decisions-allowed", &allowed.to_string())
        .await;
    b.text_with("#decisions-denied", &denied.to_string()).await;
    // Each hour's bar carries the API's counts, and its tooltip says them.
    let bars = b
        .script(
            "return [...document.querySelectorAll('#chart-decisions g.hour')].map((g) => [g.dataset.hour, +g.dataset.allowed, +g.dataset.denied, g.querySelector('title').textContent]);",
        )
        .await;
    let bars: Vec<(String, i64, i64, String)> = serde_json::from_value(bars).unwrap();
    assert!(bars.len() >= 24, "an hour per bar over a day: {bars:?}");
    for h in timeline.as_array().unwrap() {
        let hour = h["hour"].as_str().unwrap();
        let bar = bars
            .iter()
            .find(|b| b.0 == hour)
            .unwrap_or_else(|| panic!("no bar for {hour}: {bars:?}"));
        assert_eq!(
            (bar.1, bar.2),
            (
                h["allowed"].as_i64().unwrap(),
                h["denied"].as_i64().unwrap()
            )
        );
        assert!(
            bar.3
                .contains(&format!("{} allowed, {} denied", bar.1, bar.2)),
            "{}",
            bar.3
        );
    }
    assert_eq!(
        bars.iter().map(|b| b.1 + b.2).sum::<i64>(),
        allowed + denied
    );
    // Axes: counts up the side (from 0 to at least the largest hour), hours along the
    // bottom.
    let axes = b
        .script(
            "const t = (s) => [...document.querySelectorAll(s)].map((e) => e.textContent); \
             return [t('#chart-decisions .y-axis text'), t('#chart-decisions .x-axis text')];",
        )
        .await;
    let (y, x): (Vec<String>, Vec<String>) = serde_json::from_value(axes).unwrap();
    assert!(
        y.contains(&"0".to_owned()) && y.contains(&"decisions".to_owned()),
        "{y:?}"
    );
    let top = y
        .iter()
        .filter_map(|t| t.parse::<i64>().ok())
        .max()
        .unwrap();
    assert!(
        top >= bars.iter().map(|b| b.1 + b.2).max().unwrap(),
        "{y:?}"
    );
    let hour_labels = x
        .iter()
        .filter(|t| t.len() == 5 && t.as_bytes()[2] == b':')
        .count();
    assert!(hour_labels >= 6, "hour labels along the x-axis: {x:?}");
    // Findings by severity and by plane: the posture report's counts.
    let posture = api.get("/admin/v1/posture").await;
    let chart = |id: &str| {
        let b = &b;
        let id = id.to_owned();
        async move {
            let v = b
                .script(&format!(
                    "return [...document.querySelectorAll('#{id} g.bar')].map((g) => [g.dataset.label, +g.dataset.value]);"
                ))
                .await;
            serde_json::from_value::<Vec<(String, u64)>>(v).unwrap()
        }
    };
    let severity = chart("chart-severity").await;
    for s in ["critical", "high", "medium", "low"] {
        let want = posture["summary"]["by_severity"][s].as_u64().unwrap_or(0);
        assert!(
            severity.contains(&(s.to_owned(), want)),
            "{s}: {severity:?}"
        );
    }
    let planes = chart("chart-planes").await;
    let findings = posture["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for (plane, n) in &planes {
        // Findings of no plane (admin credentials) are charted under `-`.
        let want = findings
            .iter()
            .filter(|f| f["plane"] == *plane || (plane == "-" && f["plane"] == ""))
            .count() as u64;
        assert_eq!(*n, want, "findings of {plane}");
    }
    assert_eq!(
        planes.iter().map(|p| p.1).sum::<u64>(),
        findings.len() as u64
    );
    b.no_raw_times("overview").await;
    b.screenshot(&shots, "overview").await;

    // Inventory, filtered; the identity page.
    b.go(&format!("{base}/console/#/inventory?plane=payments"))
        .await;
    let inv = b.text_with("#inventory", evil).await;
    assert!(
        inv.contains("<img src=x onerror=\"window.__pwned=2\">"),
        "markup shown as text: {inv}"
    );
    assert!(!inv.contains("commerce"), "the filter applies");
    b.screenshot(&shots, "inventory").await;
    b.go(&format!("{base}/console/#/identity/{}", urlencode(evil)))
        .await;
    b.text_with("#identity", evil).await;
    b.text_with("#labels", "onerror").await;
    b.text_with("#permissions", "payments.").await;
    b.text_with("#last-used", "active tokens").await;
    b.text_with("#environments", "Environment").await;
    b.text_with("#client-keys", "Key").await;
    // Nothing injected ran.
    assert_eq!(b.script("return window.__pwned === undefined;").await, true);
    b.no_raw_times("identity").await;
    b.screenshot(&shots, "identity").await;
    // An identity with decisions: their times are local, the stored value on hover.
    b.go(&format!(
        "{base}/console/#/identity/{}",
        urlencode(ORDERS_API)
    ))
    .await;
    b.text_with("#decisions", "consumer:refunds").await;
    let times = b.times().await;
    assert!(!times.is_empty());
    for (shown, stored) in &times {
        assert!(
            stored.contains('T') && !shown.contains('T') && shown.contains(':'),
            "{shown:?} (stored {stored:?})"
        );
    }
    b.no_raw_times("identity with decisions").await;
    // Findings, policy versions, the review queue.
    b.go(&format!("{base}/console/#/findings")).await;
    b.text_with("#findings", "NHI5:2025").await;
    b.no_raw_times("findings").await;
    b.screenshot(&shots, "findings").await;
    b.go(&format!("{base}/console/#/policy")).await;
    b.text_with("#versions", "1").await;
    b.no_raw_times("policy").await;
    b.screenshot(&shots, "policy").await;

    // The trace: one row per hop, in causal order, each with its layer, decision and
    // time since the previous hop; the table beneath lists the same events.
    b.go(&format!("{base}/console/#/trace/none-such")).await;
    b.text_with("main", "0 events").await;
    b.go(&format!("{base}/console/#/trace")).await;
    b.text_with("#recent-traces", TRACE).await;
    b.go(&format!("{base}/console/#/trace/{TRACE}")).await;
    b.text_with("#trace", "consumer:refunds").await;
    let summary = b.text_with("#trace-summary", "5 events").await;
    assert!(
        summary.contains("3 allowed") && summary.contains("2 denied"),
        "{summary}"
    );
    let events = api
        .get(&format!("/admin/v1/audit/events?correlation_id={TRACE}"))
        .await;
    let mut events = events.as_array().unwrap().clone();
    assert_eq!(events.len(), 5);
    events.sort_by_key(|e| (e["time"].as_str().unwrap().to_owned(), e["seq"].as_i64()));
    let hops = b
        .script(
            "return [...document.querySelectorAll('#trace-chart g.hop')].map((g) => [g.dataset.layer, g.dataset.decision, g.querySelector('text.value').textContent]);",
        )
        .await;
    let hops: Vec<(String, String, String)> = serde_json::from_value(hops).unwrap();
    let layers: Vec<&str> = hops.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        layers,
        [
            "AuthZEN PDP",
            "Gateway",
            "Broker",
            "Consumer",
            "AuthZEN PDP"
        ]
    );
    let decisions: Vec<&str> = hops.iter().map(|h| h.1.as_str()).collect();
    let want: Vec<&str> = events
        .iter()
        .map(|e| e["decision"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, want);
    assert_eq!(want, ["allow", "allow", "allow", "deny", "deny"]);
    assert_eq!(hops[0].2, "start");
    assert_eq!(hops[2].2, "+4 ms", "the broker 4 ms after the gateway");
    assert_eq!(hops[3].2, "+13 ms", "the consumer 13 ms after the broker");
    b.no_raw_times("trace").await;
    b.screenshot(&shots, "trace").await;

    // Enforcement points: each with its versions against the current ones, its last
    // contact and its flags.
    api.heartbeat(policy_version, epoch).await;
    b.go(&format!("{base}/console/#/points")).await;
    b.text_with("#points", "consumer:refunds").await;
    let rows = b
        .script(
            "return [...document.querySelectorAll('#points tbody tr')].map((r) => r.innerText.toLowerCase());",
        )
        .await;
    let rows: Vec<String> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.contains(id))
            .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"))
    };
    let consumer = row("consumer:refunds");
    for flag in [
        "behind bundle",
        "behind revocations",
        "1 version behind",
        "1 epoch behind",
    ] {
        assert!(consumer.contains(flag), "{flag}: {consumer}");
    }
    let gateway = row("gateway:edge-1");
    assert!(
        gateway.contains("current") && !gateway.contains("behind") && !gateway.contains("stale"),
        "{gateway}"
    );
    assert!(
        gateway.contains("just now") || gateway.contains(" s ago"),
        "last contact, relative: {gateway}"
    );
    b.no_raw_times("points").await;
    b.screenshot(&shots, "points").await;

    // Revocations: who revoked what and why, and which points applied it, when.
    api.heartbeat(policy_version, epoch).await;
    b.go(&format!("{base}/console/#/revocations")).await;
    let revs = b.text_with("#revocations", "jti-console-e2e").await;
    assert!(revs.contains("leaked in a CI log"), "{revs}");
    let acks = b
        .script(
            "const t = (s) => [...document.querySelectorAll(s)].map((e) => e.innerText.toLowerCase()); \
             return [t('#revocations li.acked'), t('#revocations li.lagging')];",
        )
        .await;
    let (acked, lagging): (Vec<String>, Vec<String>) = serde_json::from_value(acks).unwrap();
    let verification = api
        .get(&format!("/admin/v1/revocations/{epoch}/verification"))
        .await;
    assert_eq!(
        acked.len(),
        verification["acknowledged"].as_array().unwrap().len()
    );
    assert_eq!(acked.len(), 2, "{acked:?}");
    for p in ["gateway:edge-1", "rabbitmq:broker-1"] {
        let a = acked
            .iter()
            .find(|a| a.contains(p))
            .unwrap_or_else(|| panic!("{p} acknowledged: {acked:?}"));
        assert!(a.contains("after)"), "when it acknowledged: {a}");
    }
    assert_eq!(lagging.len(), 1, "{lagging:?}");
    assert!(
        lagging[0].contains("consumer:refunds") && lagging[0].contains("lagging"),
        "{lagging:?}"
    );
    assert_eq!(
        b.script("return document.querySelectorAll('#revocations li.acked time[title]').length;")
            .await,
        2,
        "each acknowledgement has its time"
    );
    b.no_raw_times("revocations").await;
    b.screenshot(&shots, "revocations").await;

    b.go(&format!("{base}/console/#/reviews")).await;
    b.text_with("#campaigns", &campaign).await;
    b.no_raw_times("reviews").await;
    b.screenshot(&shots, "reviews").await;
    b.go(&format!("{base}/console/#/reviews/{campaign}")).await;
    b.text_with("#queue", evil).await;
    assert!(
        b.find("button.decide").await.is_some(),
        "an admin may attest"
    );
    b.screenshot(&shots, "review").await;
    let first_pages = started.elapsed();

    // An auditor sees the same pages, no button that changes anything, and the API
    // refuses a change even from the page.
    b.click("#logout").await;
    b.text_with("#login", "Sign in").await;
    b.type_into("#token", &auditor).await;
    b.click("#signin").await;
    b.text_with("#who", "auditor").await;
    b.go(&format!("{base}/console/#/reviews/{campaign}")).await;
    b.text_with("#queue", evil).await;
    assert!(
        b.find("button.decide").await.is_none(),
        "no attest buttons for an auditor"
    );
    b.screenshot(&shots, "review-auditor").await;
    for (page, css, want) in [
        ("points", "#points", "consumer:refunds"),
        ("revocations", "#revocations", "jti-console-e2e"),
    ] {
        b.go(&format!("{base}/console/#/{page}")).await;
        b.text_with(css, want).await;
        assert_eq!(
            b.script("return document.querySelectorAll('main button').length;")
                .await,
            0,
            "no buttons on {page} for an auditor"
        );
    }
    let status = b
        .script(&format!(
            "const x = new XMLHttpRequest(); x.open('POST', '/admin/v1/reviews/{campaign}/decisions', false); \
             x.setRequestHeader('Authorization', 'Bearer ' + sessionStorage.getItem('steward.token')); \
             x.setRequestHeader('Content-Type', 'application/json'); \
             x.send(JSON.stringify({{spiffe_id: '{evil}', decision: 'revoke', note: 'x'}})); return x.status;"
        ))
        .await;
    assert_eq!(status, 403, "an auditor cannot change anything");
    assert_eq!(b.script("return window.__pwned === undefined;").await, true);
    b.quit().await;
    eprintln!(
        "console: sign-in and every page in {first_pages:?}; screenshots in {}",
        shots.display()
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
