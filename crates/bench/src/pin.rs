//! CPU pinning for the gateway benchmark's isolated topology.
//!
//! In production the control plane runs on its own hosts and an enforcement point only
//! ships decision records to it. On one 2-core machine the co-located control plane's
//! ingestion (parsing, chaining and committing every record) otherwise competes with
//! the request path it is meant to be remote from. `--pin` gives the control plane its
//! own core and keeps the load tool, the upstream, the gateway and nginx on the other,
//! so direct and proxied runs compare on the same single core.
//!
//! Affinity is set with util-linux's `taskset` (the workspace forbids `unsafe`, and
//! threads inherit their creator's affinity, so pinning a thread before it starts a
//! runtime pins everything that runtime later spawns, SQLite's worker threads included).

use anyhow::{Context, Result, bail};

/// The calling thread's kernel thread id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn current_tid() -> Result<String> {
    let link = std::fs::read_link("/proc/thread-self")
        .context("CPU pinning needs Linux's /proc/thread-self")?;
    link.file_name()
        .and_then(|t| t.to_str())
        .map(str::to_owned)
        .context("/proc/thread-self names no thread id")
}

fn taskset(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("taskset")
        .args(args)
        .output()
        .context("CPU pinning needs `taskset` (util-linux)")?;
    if !out.status.success() {
        bail!(
            "taskset {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Pins the calling thread (and so every thread it creates afterwards) to `cpus`, a
/// `taskset` CPU list such as `1` or `1-3`.
pub fn current_thread(cpus: &str) -> Result<()> {
    taskset(&["-p", "-c", cpus, &current_tid()?])
}

/// Pins every thread of this process that exists now to `cpus`.
pub fn whole_process(cpus: &str) -> Result<()> {
    taskset(&["-a", "-p", "-c", cpus, &std::process::id().to_string()])
}

/// The CPU lists for the isolated topology: (request path, control plane).
pub fn split() -> Result<(String, String)> {
    let n = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    if n < 2 {
        bail!("--pin needs at least 2 CPUs (this process may use {n})");
    }
    Ok((
        "0".to_owned(),
        if n == 2 {
            "1".to_owned()
        } else {
            format!("1-{}", n - 1)
        },
    ))
}
