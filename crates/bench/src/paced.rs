//! An open-loop HTTP/1.1 load at a fixed rate: the latency a server gives at a stated
//! throughput, as opposed to `wrk`, which keeps every connection busy and so reports the
//! latency of a saturated server (every queue full) at whatever rate that reaches.
//!
//! Request `g` is due at `start + g / rate`, on connection `g mod connections`. A request
//! that a connection cannot send on time because the previous answer is late is timed
//! from when it was due (the wait is the server's doing: coordinated omission corrected,
//! as wrk2 does); one sent on time is timed from when it was written, so the load
//! generator's own wake-up delay is not charged to the server. Each connection is a
//! thread with blocking I/O that sleeps until its next request is due: the kernel's
//! timers wake it within tens of microseconds, where an async runtime's 1 ms timer would
//! release the requests of each millisecond together, in bursts no real client sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// What a paced run measured.
#[derive(Debug, Clone)]
pub struct Paced {
    /// Answers per second actually completed.
    pub per_sec: f64,
    pub median_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Answers that were not 2xx.
    pub refused: u64,
    /// 2xx answers whose body starts with `allowed_prefix`.
    pub allowed: u64,
    /// The 100 ms windows (offset from the start, in ms) whose slowest answer took over
    /// 5 ms, with that answer's latency in µs: where the tail comes from.
    pub slow_windows: Vec<(u64, f64)>,
}

/// Sends `requests` (complete HTTP/1.1 requests, cycled) to `addr` at `rate` per second
/// over `connections` keep-alive connections for `duration`.
pub fn run(
    addr: SocketAddr,
    requests: Vec<Vec<u8>>,
    allowed_prefix: &'static [u8],
    connections: usize,
    rate: f64,
    duration: Duration,
) -> Result<Paced> {
    ensure!(!requests.is_empty(), "no requests to send");
    ensure!(
        connections > 0 && rate > 0.0,
        "connections and rate must be positive"
    );
    let requests = Arc::new(requests);
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        streams.push(s);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + duration;
    let threads: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(c, stream)| {
            let requests = requests.clone();
            std::thread::spawn(move || {
                connection(
                    stream,
                    &requests,
                    allowed_prefix,
                    Schedule {
                        first: c,
                        step: connections,
                        rate,
                        start,
                        end,
                    },
                )
            })
        })
        .collect();
    let mut us = Vec::new();
    let mut windows: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    let (mut refused, mut allowed) = (0, 0);
    for t in threads {
        let r = t
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        for &(at_ms, l) in &r.timeline {
            let w = windows.entry(at_ms / 100 * 100).or_default();
            *w = w.max(l);
        }
        us.extend(r.us);
        refused += r.refused;
        allowed += r.allowed;
    }
    let wall = Instant::now().saturating_duration_since(start);
    us.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| {
        let i = ((us.len() as f64 - 1.0) * p).round() as usize;
        us.get(i).copied().unwrap_or(f64::NAN)
    };
    Ok(Paced {
        per_sec: (us.len() as u64).saturating_sub(refused) as f64 / wall.as_secs_f64(),
        median_us: at(0.5),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: at(1.0),
        refused,
        allowed,
        slow_windows: windows.into_iter().filter(|(_, l)| *l > 5_000.0).collect(),
    })
}

/// Which requests one connection sends, and when.
struct Schedule {
    first: usize,
    step: usize,
    rate: f64,
    start: Instant,
    end: Instant,
}

struct ConnectionResult {
    us: Vec<f64>,
    /// (due, in ms from the start; latency in µs) of each answer.
    timeline: Vec<(u64, f64)>,
    refused: u64,
    allowed: u64,
}

fn connection(
    mut stream: TcpStream,
    requests: &[Vec<u8>],
    allowed_prefix: &[u8],
    schedule: Schedule,
) -> Result<ConnectionResult> {
    // Sized up front: growing these mid-run would be the load generator's pause.
    let expected = (schedule.end.duration_since(schedule.start).as_secs_f64() * schedule.rate
        / schedule.step as f64) as usize
        + 16;
    let mut out = ConnectionResult {
        us: Vec::with_capacity(expected),
        timeline: Vec::with_capacity(expected),
        refused: 0,
        allowed: 0,
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut g = schedule.first;
    loop {
        let due = schedule.start + Duration::from_secs_f64(g as f64 / schedule.rate);
        if due >= schedule.end {
            return Ok(out);
        }
        let now = Instant::now();
        let sent = if now < due {
            std::thread::sleep(due - now);
            Instant::now()
        } else {
            due
        };
        let request = requests.get(g % requests.len()).context("request index")?;
        stream.write_all(request)?;
        let (status, body_ok) = read_response(&mut stream, &mut buf, allowed_prefix)?;
        let us = sent.elapsed().as_secs_f64() * 1e6;
        out.us.push(us);
        out.timeline
            .push((due.duration_since(schedule.start).as_millis() as u64, us));
        if !(200..300).contains(&status) {
            out.refused += 1;
        } else if body_ok {
            out.allowed += 1;
        }
        g += schedule.step;
    }
}

/// Reads one response with a `Content-Length` body; returns its status and whether the
/// body starts with `prefix`.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, prefix: &[u8]) -> Result<(u16, bool)> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(head_end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(buf.get(..head_end).unwrap_or_default())
                .context("response head is not UTF-8")?;
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("response has no status")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .context("response has no Content-Length")?;
            let body_start = head_end + 4;
            while buf.len() < body_start + length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    bail!("the server closed the connection mid-response");
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            let body = buf.get(body_start..).unwrap_or_default();
            return Ok((status, body.starts_with(prefix)));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A complete keep-alive `POST` request.
pub fn post(
    host: &str,
    path: &str,
    bearer: Option<&str>,
    content_type: &str,
    body: &str,
) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
