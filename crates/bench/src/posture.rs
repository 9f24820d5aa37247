//! `steward-bench posture`: the issue-8 targets. A control plane holding a generated
//! repository (`--identities`, 2,000 capabilities) and `--events` allowed access
//! decisions spread over the last 30 days (appended straight into its store, chained as
//! usual), then: a full `GET /admin/v1/posture` (target < 30 s) at two depths of the
//! effective-permission analysis, and the API calls behind each console page (target
//! < 300 ms each at the server).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use steward_api::RouteId;
use steward_audit::{Event, EventKind, Outcome};

fn event(n: usize, identities: usize, capabilities: usize, now: time::OffsetDateTime) -> Event {
    let age = time::Duration::seconds((n as i64 * 7919) % (29 * 86_400));
    let at = steward_model::timestamp::format(now - age);
    let mut e = Event::new(EventKind::AccessDecision, format!("pb-{n}"), at);
    let i = (n * 31) % identities;
    e.principal = Some(steward_testkit::scaled_identity(i));
    e.plane = Some(format!("plane-{}", i % 20));
    e.action = Some("invoke".into());
    e.destination.capability = Some(format!("svc{}.op", (n * 7) % capabilities));
    e.decision.outcome = Some(if n.is_multiple_of(9) {
        Outcome::Deny
    } else {
        Outcome::Allow
    });
    e.correlation_id = Some(format!("{:032x}", n));
    e.enforcement_point = Some("gateway:bench".into());
    e
}

/// Calls `route` with `params` and `query` (`k=v&…`, already encoded; may be empty),
/// returning the milliseconds it took and the answer.
async fn timed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    route: RouteId,
    params: &[&str],
    query: &str,
) -> Result<(f64, Value)> {
    let path = match query {
        "" => crate::api_path(route, params),
        q => format!("{}?{q}", crate::api_path(route, params)),
    };
    let t = Instant::now();
    let resp = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(600))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!("{path}: {status} {body}");
    }
    Ok((ms, body))
}

pub async fn run(
    identities: usize,
    events: usize,
    analysed: Vec<usize>,
    rebuild: bool,
) -> Result<()> {
    let t = Instant::now();
    let files = steward_testkit::scaled_repo(identities, 2_000, 1);
    let desired =
        steward_governance::parse(&files, &steward_model::TrustDomain::new("acme.example")?)
            .map_err(|e| anyhow::anyhow!("generated repository: {e}"))?;
    let server = crate::InProcessServer::start(desired, "acme.example")?;
    eprintln!(
        "{identities} identities applied in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // A second connection to the same store appends the events, as the evidence writer
    // would (chained, under the write lock).
    let store = steward_store::Store::open_data_dir(server.data_dir()).await?;
    let t = Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let mut n = 0;
    while n < events {
        let batch: Vec<Event> = (n..(n + 20_000).min(events))
            .map(|i| event(i, identities, 2_000, now))
            .collect();
        n += batch.len();
        store.append_evidence(&batch).await?;
        if n.is_multiple_of(1_000_000) {
            eprintln!(
                "  {n} events ({:.0}/s)",
                n as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "{events} events appended in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    // The server's background task folded events into the usage totals while they were
    // appended; what is left is the lag a posture run would otherwise catch up itself.
    let t = Instant::now();
    let rolled = store.roll_up_usage(i64::MAX).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "usage roll-up after the append: {} events left to fold, folded in {secs:.1} s ({:.0} events/s); through seq {}",
        rolled.events,
        rolled.events as f64 / secs.max(1e-9),
        rolled.through_seq
    );
    if rebuild {
        store.reset_usage().await?;
        let t = Instant::now();
        let rolled = store.roll_up_usage(i64::MAX).await?;
        let secs = t.elapsed().as_secs_f64();
        // The server's background task folds alongside: count the whole log.
        println!(
            "usage roll-up rebuilt from the whole log: {} events in {secs:.1} s ({:.0} events/s)",
            rolled.through_seq,
            rolled.through_seq as f64 / secs.max(1e-9)
        );
    }
    store.close().await;

    let http = reqwest::Client::new();
    let (base, token) = (server.base.clone(), server.token.clone());
    for depth in analysed {
        let (ms, report) = timed(
            &http,
            &base,
            &token,
            RouteId::Posture,
            &[],
            &format!("max_analysed={depth}"),
        )
        .await?;
        println!(
            "posture over {identities} identities and {events} events, effective permissions for {depth}: {:.1} s (target < 30 s: {:.2}x), {} findings",
            ms / 1000.0,
            ms / 30_000.0,
            report
                .pointer("/summary/findings")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        );
    }
    let id = steward_testkit::scaled_identity(42);
    let seg: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let pages: [(&str, RouteId, Option<&str>, String); 9] = [
        ("overview: status", RouteId::Status, None, String::new()),
        (
            "overview: points",
            RouteId::EnforcementPoints,
            None,
            String::new(),
        ),
        (
            "overview: timeline",
            RouteId::AuditTimeline,
            None,
            "hours=24".into(),
        ),
        (
            "inventory (100)",
            RouteId::ListIdentities,
            None,
            "limit=100&plane=plane-3".into(),
        ),
        (
            "identity",
            RouteId::GetIdentity,
            Some(id.as_str()),
            String::new(),
        ),
        (
            "identity: entitlements",
            RouteId::IdentityEntitlements,
            Some(id.as_str()),
            String::new(),
        ),
        (
            "identity: usage and findings",
            RouteId::Posture,
            None,
            format!("max_analysed=0&identity={seg}"),
        ),
        (
            "identity: recent decisions",
            RouteId::AuditEvents,
            None,
            format!("kind=access.decision&order=desc&limit=20&principal={seg}"),
        ),
        (
            "trace",
            RouteId::AuditEvents,
            None,
            "correlation_id=0000000000000000000000000000002a".into(),
        ),
    ];
    for (name, route, param, query) in pages {
        let mut ms = Vec::new();
        for _ in 0..5 {
            let call = timed(&http, &base, &token, route, param.as_slice(), &query);
            ms.push(call.await.context(name)?.0);
        }
        println!(
            "console page call `{name}`: median {:.1} ms (target < 300 ms)",
            crate::median(ms)
        );
    }
    server.stop()
}
