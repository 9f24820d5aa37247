//! `steward-bench policy`: the issue-4 targets. A generated world of 10,000 identities,
//! 2,000 capabilities, 1,000 plane policies and 20 central guardrails; a fixed, seeded
//! request mix; in-process decision latency; the AuthZEN API over loopback HTTP with
//! keep-alive; and (feature `rego-bench`) the same decisions with an equivalent Rego
//! policy on regorus, side by side.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use steward_api::RouteId;
use steward_governance::{Desired, SourceFile, parse};
use steward_model::{Action, TrustDomain};
use steward_policy::{AccessRequest, Engine, Target};

/// The size of the generated world.
#[derive(Debug, Clone, Copy)]
pub struct World {
    pub planes: usize,
    pub identities: usize,
    pub capabilities: usize,
    pub plane_policies: usize,
    pub guardrails: usize,
}

const KINDS: [&str; 5] = ["service", "service", "pipeline", "agent", "legacy-key"];
const CLASSES: [&str; 4] = ["public", "internal", "confidential", "restricted"];
const ENVS: [&str; 2] = ["prod", "staging"];
/// The fixed guardrails with their exact Rego equivalents; the rest are synthetic.
const FIXED_GUARDRAILS: usize = 5;

/// A tiny deterministic generator (the mix must be the same in every run and engine).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn at<T: Copy + Default>(items: &[T], i: usize) -> T {
    items
        .get(i % items.len().max(1))
        .copied()
        .unwrap_or_default()
}

impl World {
    fn per_plane(&self, total: usize) -> usize {
        (total / self.planes).max(1)
    }

    fn identity(&self, n: usize) -> (String, usize) {
        let per = self.per_plane(self.identities);
        let plane = (n / per) % self.planes;
        (
            format!("spiffe://bench.example/p{plane}/i{}", n % per),
            plane,
        )
    }

    /// The governance repository, as files.
    pub fn files(&self) -> Vec<SourceFile> {
        let mut out = Vec::new();
        let mut y = String::from("settings:\n  environments: [prod, staging]\nowners:\n");
        for o in 0..self.guardrails.max(1) {
            let _ = writeln!(
                y,
                "  - {{id: owner-{o}, name: Owner {o}, email: o{o}@bench.example}}"
            );
        }
        y.push_str("planes:\n");
        for p in 0..self.planes {
            let _ = writeln!(y, "  - {{id: p{p}}}");
        }
        y.push_str("request_context:\n  - {name: human_approved, type: bool}\ncapabilities:\n");
        let caps = self.per_plane(self.capabilities);
        for p in 0..self.planes {
            for c in 0..caps {
                let _ = writeln!(
                    y,
                    "  - {{id: p{p}.c{c}, plane: p{p}, classification: {}, mappings: [{{http: {{method: GET, path: /p{p}/c{c}/**}}}}]}}",
                    at(&CLASSES, c)
                );
            }
        }
        y.push_str("identities:\n");
        for n in 0..self.identities {
            let (id, plane) = self.identity(n);
            let _ = writeln!(
                y,
                "  - {{spiffe_id: \"{id}\", plane: p{plane}, owner: owner-{}, environment: {}, kind: {}, classification: {}{}}}",
                n % self.guardrails.max(1),
                at(&ENVS, n / 7),
                at(&KINDS, n),
                at(&CLASSES, n / 3),
                if n % 100 == 99 {
                    ", state: suspended"
                } else {
                    ""
                }
            );
        }
        out.push(SourceFile {
            path: "world.yaml".into(),
            content: y,
        });

        let mut g = String::from(
            "@id(\"GR-1\")\nforbid (principal, action, resource) unless { principal.environment == context.environment };\n\
             @id(\"GR-2\")\nforbid (principal, action, resource) unless { principal.state == \"active\" };\n\
             @id(\"GR-3\")\n@exceptionable(\"true\")\nforbid (principal, action, resource) when { principal.kind == \"legacy-key\" && [\"confidential\", \"restricted\"].contains(resource.classification) };\n\
             @id(\"GR-4\")\nforbid (principal, action, resource) when { principal.kind == \"agent\" && (action in [Steward::Action::\"admin\", Steward::Action::\"delegate\"] || (resource.classification == \"restricted\" && !(context has human_approved && context.human_approved))) };\n\
             @id(\"GR-5\")\nforbid (principal, action, resource) when { context.data_class == \"restricted\" && [\"public\", \"internal\"].contains(principal.classification) };\n",
        );
        for i in FIXED_GUARDRAILS..self.guardrails {
            let _ = writeln!(
                g,
                "@id(\"GR-{}\")\nforbid (principal, action == Steward::Action::\"admin\", resource) when {{ resource.classification == \"restricted\" && principal.owner == \"owner-{i}\" }};",
                i + 1
            );
        }
        out.push(SourceFile {
            path: "policies/guardrails.cedar".into(),
            content: g,
        });

        let per_plane = self.per_plane(self.plane_policies);
        for p in 0..self.planes {
            let mut text = String::new();
            for r in 0..per_plane {
                let _ = writeln!(text, "{}", self.plane_policy(p, r, caps).0);
            }
            out.push(SourceFile {
                path: format!("policies/p{p}/policy.cedar"),
                content: text,
            });
        }
        out
    }

    /// Plane policy `r` of plane `p`, in Cedar and in Rego.
    fn plane_policy(&self, p: usize, r: usize, caps: usize) -> (String, String) {
        let n = self.planes;
        let id = format!("p{p}-r{r}");
        let res_plane = format!("input.capability_plane == \"p{p}\"");
        match r % 10 {
            0 => (
                format!(
                    "@id(\"{id}\")\npermit (principal, action in [Steward::Action::\"read\", Steward::Action::\"invoke\"], resource) when {{ principal.plane == \"p{p}\" }};"
                ),
                format!(
                    "permits contains \"{id}\" if {{ {res_plane}; input.action in {{\"read\", \"invoke\"}}; principal.plane == \"p{p}\" }}"
                ),
            ),
            1 => (
                format!(
                    "@id(\"{id}\")\npermit (principal, action == Steward::Action::\"write\", resource == Steward::Capability::\"p{p}.c0\") when {{ principal.plane == \"p{p}\" && principal.kind == \"service\" }};"
                ),
                format!(
                    "permits contains \"{id}\" if {{ input.capability == \"p{p}.c0\"; input.action == \"write\"; principal.plane == \"p{p}\"; principal.kind == \"service\" }}"
                ),
            ),
            8 => (
                format!(
                    "@id(\"{id}\")\nforbid (principal, action == Steward::Action::\"write\", resource) when {{ context.environment == \"prod\" && principal.kind == \"pipeline\" }};"
                ),
                format!(
                    "forbids contains \"{id}\" if {{ {res_plane}; input.action == \"write\"; input.context.environment == \"prod\"; principal.kind == \"pipeline\" }}"
                ),
            ),
            9 => {
                let (who, _) = self.identity(((p + 1) % n) * self.per_plane(self.identities));
                (
                    format!(
                        "@id(\"{id}\")\npermit (principal == Steward::Identity::\"{who}\", action in [Steward::Action::\"read\", Steward::Action::\"write\", Steward::Action::\"invoke\"], resource == Steward::Capability::\"p{p}.c{}\");",
                        9 % caps
                    ),
                    format!(
                        "permits contains \"{id}\" if {{ input.principal == \"{who}\"; input.action in {{\"read\", \"write\", \"invoke\"}}; input.capability == \"p{p}.c{}\" }}",
                        9 % caps
                    ),
                )
            }
            m => {
                let other = (p + m + r / 10) % n;
                let cap = format!("p{p}.c{}", (m + r / 10) % caps);
                (
                    format!(
                        "@id(\"{id}\")\npermit (principal in Steward::Plane::\"p{other}\", action == Steward::Action::\"read\", resource == Steward::Capability::\"{cap}\");"
                    ),
                    format!(
                        "permits contains \"{id}\" if {{ input.capability == \"{cap}\"; input.action == \"read\"; principal.plane == \"p{other}\" }}"
                    ),
                )
            }
        }
    }

    /// The equivalent Rego module, and the registry as its data document.
    #[cfg(feature = "rego-bench")]
    pub fn rego(&self) -> (String, Value) {
        let mut r = String::from(
            "package steward\nimport rego.v1\n\
             default allow := false\n\
             principal := data.identities[input.principal]\n\
             capability := data.capabilities[input.capability]\n\
             data_class := object.get(input.context, \"data_class\", capability.classification)\n\
             allow if { count(forbids) == 0; count(permits) > 0 }\n\
             forbids contains \"GR-1\" if principal.environment != input.context.environment\n\
             forbids contains \"GR-2\" if principal.state != \"active\"\n\
             forbids contains \"GR-3\" if { principal.kind == \"legacy-key\"; capability.classification in {\"confidential\", \"restricted\"} }\n\
             forbids contains \"GR-4\" if { principal.kind == \"agent\"; input.action in {\"admin\", \"delegate\"} }\n\
             forbids contains \"GR-4\" if { principal.kind == \"agent\"; capability.classification == \"restricted\"; not input.context.human_approved == true }\n\
             forbids contains \"GR-5\" if { data_class == \"restricted\"; principal.classification in {\"public\", \"internal\"} }\n",
        );
        for i in FIXED_GUARDRAILS..self.guardrails {
            let _ = writeln!(
                r,
                "forbids contains \"GR-{}\" if {{ input.action == \"admin\"; capability.classification == \"restricted\"; principal.owner == \"owner-{i}\" }}",
                i + 1
            );
        }
        let caps = self.per_plane(self.capabilities);
        for p in 0..self.planes {
            for k in 0..self.per_plane(self.plane_policies) {
                let _ = writeln!(r, "{}", self.plane_policy(p, k, caps).1);
            }
        }
        let mut identities = serde_json::Map::new();
        for n in 0..self.identities {
            let (id, plane) = self.identity(n);
            identities.insert(id, json!({
                "plane": format!("p{plane}"), "owner": format!("owner-{}", n % self.guardrails.max(1)),
                "environment": at(&ENVS, n / 7), "kind": at(&KINDS, n), "classification": at(&CLASSES, n / 3),
                "state": if n % 100 == 99 { "suspended" } else { "active" },
            }));
        }
        let mut capabilities = serde_json::Map::new();
        for p in 0..self.planes {
            for c in 0..caps {
                capabilities.insert(
                    format!("p{p}.c{c}"),
                    json!({"plane": format!("p{p}"), "classification": at(&CLASSES, c)}),
                );
            }
        }
        (
            r,
            json!({"identities": identities, "capabilities": capabilities}),
        )
    }

    /// A fixed mix of requests: half on the principal's own plane, half anywhere; mostly
    /// served in the principal's environment.
    pub fn requests(&self, count: usize, seed: u64) -> Vec<(String, String, Action, String)> {
        let mut rng = Lcg(seed);
        let caps = self.per_plane(self.capabilities);
        (0..count)
            .map(|_| {
                let n = rng.next(self.identities);
                let (principal, plane) = self.identity(n);
                let cap_plane = if rng.next(2) == 0 {
                    plane
                } else {
                    rng.next(self.planes)
                };
                let capability = format!("p{cap_plane}.c{}", rng.next(caps));
                let action = [Action::Read, Action::Invoke, Action::Write, Action::Read]
                    .get(rng.next(4))
                    .copied()
                    .unwrap_or(Action::Read);
                let env = if rng.next(10) == 0 {
                    at(&ENVS, n / 7 + 1)
                } else {
                    at(&ENVS, n / 7)
                };
                (principal, capability, action, env.to_owned())
            })
            .collect()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// Median and p99 of per-decision latencies in microseconds, and decisions per second.
pub struct Latency {
    pub median_us: f64,
    pub p99_us: f64,
    /// Answers per second that were not refusals.
    pub per_sec: f64,
    pub allowed: usize,
    /// Answers that were not 2xx (only where a run tolerates them).
    pub refused: u64,
}

/// HTTP load figures of several runs, summarised as medians.
#[derive(Default)]
pub struct Runs {
    per_sec: Vec<f64>,
    median_us: Vec<f64>,
    p99_us: Vec<f64>,
    refused: u64,
}

impl Runs {
    pub fn push(&mut self, l: &Latency) {
        self.refused += l.refused;
        self.per_sec.push(l.per_sec);
        self.median_us.push(l.median_us);
        self.p99_us.push(l.p99_us);
    }

    /// Non-2xx answers over all runs.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Medians of (requests/s, median µs, p99 µs).
    pub fn medians(self) -> (f64, f64, f64) {
        (
            crate::median(self.per_sec),
            crate::median(self.median_us),
            crate::median(self.p99_us),
        )
    }
}

pub(crate) fn summarise(mut us: Vec<f64>, wall: Duration, allowed: usize) -> Latency {
    us.sort_by(|a, b| a.total_cmp(b));
    Latency {
        median_us: percentile(&us, 0.5),
        p99_us: percentile(&us, 0.99),
        per_sec: us.len() as f64 / wall.as_secs_f64(),
        allowed,
        refused: 0,
    }
}

pub fn desired(world: &World) -> Result<Desired> {
    parse(&world.files(), &TrustDomain::new("bench.example")?)
        .map_err(|e| anyhow::anyhow!("the generated repository does not parse: {e:?}"))
}

/// Decides every request in-process, timing each: evaluated, or (`repeated`) a second time
/// within the same second, answered from the engine's decision cache.
pub fn in_process(
    engine: &Engine,
    requests: &[(String, String, Action, String)],
    repeated: bool,
) -> (Latency, Vec<bool>) {
    let now = time::OffsetDateTime::now_utc();
    let mut us = Vec::with_capacity(requests.len());
    let mut outcomes = Vec::with_capacity(requests.len());
    let started = Instant::now();
    for (principal, capability, action, env) in requests {
        let mut context = serde_json::Map::new();
        context.insert("environment".into(), Value::String(env.clone()));
        let request = AccessRequest {
            principal: principal.clone(),
            target: Target::Capability(capability.clone()),
            action: Some(*action),
            context,
            at: now,
        };
        let d = if repeated {
            engine.decide(&request);
            let t = Instant::now();
            let d = engine.decide(&request);
            us.push(t.elapsed().as_secs_f64() * 1e6);
            d
        } else {
            let t = Instant::now();
            let d = engine.decide_uncached(&request);
            us.push(t.elapsed().as_secs_f64() * 1e6);
            d
        };
        outcomes.push(d.allowed);
    }
    let allowed = outcomes.iter().filter(|a| **a).count();
    (summarise(us, started.elapsed(), allowed), outcomes)
}

/// The same mix addressed as enforcement points see it: `GET /p<plane>/c<n>/item-7`,
/// resolved through the capability catalog (every capability maps one HTTP route).
pub fn in_process_by_address(
    engine: &Engine,
    requests: &[(String, String, Action, String)],
) -> Latency {
    let now = time::OffsetDateTime::now_utc();
    let mut us = Vec::with_capacity(requests.len());
    let mut allowed = 0;
    let started = Instant::now();
    for (principal, capability, _, env) in requests {
        let mut context = serde_json::Map::new();
        context.insert("environment".into(), Value::String(env.clone()));
        let Ok(path) =
            steward_policy::HttpPath::parse(&format!("/{}/item-7", capability.replace('.', "/")))
        else {
            continue;
        };
        let t = Instant::now();
        let d = engine.decide_uncached(&AccessRequest {
            principal: principal.clone(),
            target: Target::Address(steward_policy::OwnedAddress::Http {
                method: "GET".into(),
                path,
            }),
            action: None,
            context,
            at: now,
        });
        us.push(t.elapsed().as_secs_f64() * 1e6);
        allowed += usize::from(d.allowed);
    }
    summarise(us, started.elapsed(), allowed)
}

#[cfg(feature = "rego-bench")]
pub fn rego(
    world: &World,
    requests: &[(String, String, Action, String)],
) -> Result<(Latency, Vec<bool>)> {
    let (module, data) = world.rego();
    let mut engine = regorus::Engine::new();
    engine.add_policy("steward.rego".into(), module)?;
    engine.add_data(regorus::Value::from(data))?;
    let mut us = Vec::with_capacity(requests.len());
    let mut outcomes = Vec::with_capacity(requests.len());
    let started = Instant::now();
    for (principal, capability, action, env) in requests {
        let t = Instant::now();
        engine.set_input(regorus::Value::from(json!({
            "principal": principal, "capability": capability, "action": action.as_str(),
            "capability_plane": capability.split('.').next().unwrap_or_default(),
            "context": {"environment": env},
        })));
        let allowed = engine.eval_rule("data.steward.allow".into())? == regorus::Value::from(true);
        us.push(t.elapsed().as_secs_f64() * 1e6);
        outcomes.push(allowed);
    }
    let allowed = outcomes.iter().filter(|a| **a).count();
    Ok((summarise(us, started.elapsed(), allowed), outcomes))
}

/// Drives `POST /access/v1/evaluation` on a server at `base` with `connections` keep-alive
/// clients for `duration`, cycling through the request mix.
pub async fn http_load(
    base: &str,
    token: &str,
    requests: &[(String, String, Action, String)],
    connections: usize,
    duration: Duration,
) -> Result<Latency> {
    let bodies: std::sync::Arc<Vec<Vec<u8>>> = std::sync::Arc::new(
        requests
            .iter()
            .map(|(p, c, a, e)| {
                serde_json::to_vec(&json!({
                    "subject": {"type": "workload", "id": p},
                    "resource": {"type": "capability", "id": c},
                    "action": {"name": a.as_str()},
                    "context": {"environment": e},
                }))
                .unwrap_or_default()
            })
            .collect(),
    );
    let url = crate::api_url(base, RouteId::Evaluation, &[]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let (url, token, bodies) = (url.clone(), token.to_owned(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut us = Vec::new();
            let mut allowed = 0usize;
            let mut i = c * 7919;
            while started.elapsed() < duration {
                let body = bodies.get(i % bodies.len()).cloned().unwrap_or_default();
                i += 1;
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                ensure!(resp.status().is_success(), "status {}", resp.status());
                let bytes = resp.bytes().await?;
                us.push(t.elapsed().as_secs_f64() * 1e6);
                if bytes.starts_with(b"{\"decision\":true") {
                    allowed += 1;
                }
            }
            Ok::<_, anyhow::Error>((us, allowed))
        }));
    }
    let mut all = Vec::new();
    let mut allowed = 0;
    for t in tasks {
        let (us, a) = t.await.context("load task")??;
        all.extend(us);
        allowed += a;
    }
    Ok(summarise(all, started.elapsed(), allowed))
}

/// The same load with `wrk` (one thread, keep-alive connections, a Lua script cycling
/// through the request mix), when it is installed: a load tool that costs the server's
/// two cores far less than an in-process HTTP client.
pub fn wrk_load(
    base: &str,
    token: &str,
    requests: &[(String, String, Action, String)],
    connections: usize,
    duration: Duration,
) -> Result<Option<Latency>> {
    wrk_post(
        base,
        &crate::api_path(RouteId::Evaluation, &[]),
        "application/json",
        Some(token),
        &authzen_bodies(requests),
        connections,
        duration,
        false,
    )
}

/// The AuthZEN evaluation bodies of the request mix.
pub fn authzen_bodies(requests: &[(String, String, Action, String)]) -> Vec<String> {
    requests
        .iter()
        .map(|(p, c, a, e)| {
            json!({
                "subject": {"type": "workload", "id": p},
                "resource": {"type": "capability", "id": c},
                "action": {"name": a.as_str()},
                "context": {"environment": e},
            })
            .to_string()
        })
        .collect()
}

/// The same mix at a fixed rate (open loop; see the `paced` module): the latency at a
/// stated throughput rather than at saturation.
pub fn paced_load(
    base: &str,
    token: &str,
    requests: &[(String, String, Action, String)],
    connections: usize,
    rate: f64,
    duration: Duration,
) -> Result<crate::paced::Paced> {
    let authority = base
        .strip_prefix("http://")
        .context("the server's base URL is not http://")?;
    let addr: std::net::SocketAddr = authority
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("`{authority}` is not an address"))?;
    let bodies = authzen_bodies(requests)
        .iter()
        .map(|b| {
            crate::paced::post(
                authority,
                &crate::api_path(RouteId::Evaluation, &[]),
                Some(token),
                "application/json",
                b,
            )
        })
        .collect();
    crate::paced::run(
        addr,
        bodies,
        b"{\"decision\":true",
        connections,
        rate,
        duration,
    )
}

/// `wrk -t1` posting `bodies` in turn to `path` (cycling if the run outlasts them), or
/// `None` when wrk is not installed. A non-2xx answer fails the run unless `tolerate`
/// (then they are counted in `refused`).
#[allow(clippy::too_many_arguments)]
pub fn wrk_post(
    base: &str,
    path: &str,
    content_type: &str,
    bearer: Option<&str>,
    bodies: &[String],
    connections: usize,
    duration: Duration,
    tolerate: bool,
) -> Result<Option<Latency>> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("mix.lua");
    let mut lua =
        format!("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"{content_type}\"\n");
    if let Some(token) = bearer {
        let _ = writeln!(lua, "wrk.headers[\"Authorization\"] = \"Bearer {token}\"");
    }
    lua.push_str("local bodies = {\n");
    for body in bodies {
        let _ = writeln!(lua, "  [==[{body}]==],");
    }
    let _ = write!(
        lua,
        "}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(nil, \"{path}\", nil, bodies[((i - 1) % #bodies) + 1])\nend\n"
    );
    std::fs::write(&script, lua)?;
    wrk_run(
        &["-s".to_owned(), script.display().to_string()],
        base,
        connections,
        duration,
        tolerate,
    )
}

/// Runs `wrk -t1 --latency` with `extra` arguments against `url` and reads its figures, or
/// `None` when wrk is not installed. A non-2xx answer fails the run unless `tolerate`
/// (then they are counted in `refused` and left out of `per_sec`).
pub fn wrk_run(
    extra: &[String],
    url: &str,
    connections: usize,
    duration: Duration,
    tolerate: bool,
) -> Result<Option<Latency>> {
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        return Ok(None);
    }
    let out = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs()),
            "--latency",
        ])
        .args(extra)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused: u64 = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    ensure!(
        tolerate || refused == 0,
        "the server answered errors under load:\n{text}"
    );
    let total: Option<f64> = text
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    let field = |prefix: &str| -> Option<f64> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(parse_wrk_duration_us)
    };
    let distribution: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            ["50%", "75%", "90%", "99%"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    eprintln!("  wrk latency distribution: {}", distribution.join(", "));
    let per_sec = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .context("wrk printed no Requests/sec")?;
    let per_sec = match total {
        Some(total) if total > 0.0 => per_sec * (total - refused as f64).max(0.0) / total,
        _ => per_sec,
    };
    Ok(Some(Latency {
        median_us: field("50%").context("wrk printed no median")?,
        p99_us: field("99%").context("wrk printed no p99")?,
        per_sec,
        allowed: 0,
        refused,
    }))
}

/// `812.00us`, `1.23ms`, `2.00s` → microseconds.
fn parse_wrk_duration_us(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}
