//! Human-readable rendering shared by the commands and the demo.

use std::fmt::Write;

use steward_api::IdentityRecord;
use steward_governance::{Change, Diagnostic, ObjectKind, Op, Plan};

/// Most changes printed before the rest are summarised.
const MAX_PRINTED_CHANGES: usize = 60;

pub fn plan(plan: &Plan, version: i64) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "No changes: the registry matches the repository (configuration version {version})."
        );
        return out;
    }
    let _ = writeln!(out, "Plan against configuration version {version}:");
    for change in plan.changes.iter().take(MAX_PRINTED_CHANGES) {
        out.push_str(&render_change(change));
    }
    let listed = plan.changes.len().min(MAX_PRINTED_CHANGES);
    if plan.summary.total() > listed {
        let _ = writeln!(out, "  … and {} more", plan.summary.total() - listed);
    }
    let s = &plan.summary;
    let _ = writeln!(
        out,
        "Summary: {} to create, {} to update, {} to delete, {} owners to remove, {} identities to decommission.",
        s.create, s.update, s.delete, s.remove, s.decommission
    );
    out
}

fn render_change(c: &Change) -> String {
    let (mark, verb) = match c.op {
        Op::Create => ("+", "create"),
        Op::Update => ("~", "update"),
        Op::Delete => ("-", "delete"),
        Op::Remove => ("-", "remove"),
        Op::Decommission => ("x", "decommission"),
    };
    let mut out = format!("  {mark} {verb} {} {}\n", c.kind, c.id);
    // Policy text is shown as a line diff below the plan, not as before → after.
    let fields = c
        .fields
        .iter()
        .filter(|f| !(c.kind == ObjectKind::Policy && f.field == "text"));
    for f in fields {
        let _ = writeln!(
            out,
            "      {}: {} → {}",
            f.field,
            shorten(&f.before),
            shorten(&f.after)
        );
    }
    out
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

pub fn diagnostics(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

/// A fixed-width table; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == n {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

pub fn identities(items: &[IdentityRecord]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            let i = &r.identity;
            let mut state = i.state.to_string();
            if r.orphaned {
                state.push_str(" (orphaned)");
            }
            vec![
                i.spiffe_id.to_string(),
                i.plane.to_string(),
                i.environment.clone(),
                i.kind.to_string(),
                i.owner.clone(),
                state,
            ]
        })
        .collect();
    table(
        &["SPIFFE ID", "PLANE", "ENV", "KIND", "OWNER", "STATE"],
        &rows,
    )
}

/// The policy half of a plan: the line diff of the policy, then the dry-run.
pub fn policy_plan(resp: &steward_api::PlanResponse) -> String {
    let mut out = String::new();
    if !resp.policy_diff.is_empty() {
        out.push_str("Policy changes:\n");
        for line in resp.policy_diff.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out + &replay(&resp.replay)
}

/// The dry-run part of a plan.
pub fn replay(r: &steward_api::Replay) -> String {
    if r.days == 0 {
        return String::new();
    }
    let mut out = format!(
        "Dry-run: {} decision(s) of the last {} day(s) replayed against the candidate policy{}: {} would flip.\n",
        r.replayed,
        r.days,
        if r.truncated {
            " (the newest only)"
        } else {
            ""
        },
        r.flips.len()
    );
    if r.skipped > 0 {
        out.push_str(&format!(
            "  ({} recorded decision(s) carry no replayable request: ingested from foreign enforcement points, or refused before a request could be formed)\n",
            r.skipped
        ));
    }
    for f in &r.flips {
        out.push_str(&format!(
            "  {} {} {} {} on {}: {} -> {}\n",
            f.time,
            f.event_id,
            f.principal,
            f.action.map(|a| a.as_str()).unwrap_or("?"),
            f.capability.as_deref().unwrap_or("?"),
            if f.was { "allow" } else { "deny" },
            if f.now { "allow" } else { "deny" },
        ));
        for reason in &f.reasons {
            out.push_str(&format!("      because {reason}\n"));
        }
    }
    out
}

/// Effective against intended entitlements.
pub fn entitlements(r: &steward_model::EntitlementReport) -> String {
    let pair = |(c, a): &(String, steward_model::Action)| format!("{a} {c}");
    let mut out = format!(
        "{} (context: {})\n",
        r.principal,
        serde_json::Value::Object(r.context.clone())
    );
    out.push_str(&format!("Effective ({}):\n", r.effective.len()));
    for p in &r.effective {
        let via = if p.exceptions.is_empty() {
            String::new()
        } else {
            format!(" via exception {}", p.exceptions.join(", "))
        };
        out.push_str(&format!(
            "  {} {}  [{}]{via}\n",
            p.action,
            p.capability,
            p.policies.join(", ")
        ));
    }
    out.push_str(&format!(
        "Intended ({}): {}\n",
        r.intended.len(),
        r.intended.iter().map(pair).collect::<Vec<_>>().join(", ")
    ));
    out.push_str(&format!(
        "Allowed but not intended ({}): {}\n",
        r.excess.len(),
        r.excess.iter().map(pair).collect::<Vec<_>>().join(", ")
    ));
    out.push_str(&format!(
        "Intended but not allowed ({}): {}\n",
        r.missing.len(),
        r.missing.iter().map(pair).collect::<Vec<_>>().join(", ")
    ));
    out
}

/// The enforcement points and their drift: what `steward status` shows under the counts.
pub fn points_text(p: &steward_api::PointsResponse) -> String {
    let mut out = format!(
        "Enforcement points (policy version {}, revocation epoch {}):\n",
        p.policy_version, p.epoch
    );
    if p.points.is_empty() {
        out.push_str("  none has registered yet (run `steward gateway`)\n");
        return out;
    }
    let rows: Vec<Vec<String>> = p
        .points
        .iter()
        .map(|s| {
            let mut flags = Vec::new();
            if !s.live {
                flags.push(format!("STALE (silent > {}s)", p.liveness_secs));
            }
            if s.behind_bundle {
                flags.push("BEHIND bundle".to_owned());
            }
            if s.behind_epoch {
                flags.push("BEHIND revocations".to_owned());
            }
            if let Some(f) = &s.flagged {
                flags.push(format!("FLAGGED: {f}"));
            }
            vec![
                s.id.clone(),
                s.environment.clone().unwrap_or_else(|| "-".into()),
                s.bundle_version.to_string(),
                s.epoch.to_string(),
                format!("{}s ago", s.seconds_since_seen),
                if flags.is_empty() {
                    "ok".to_owned()
                } else {
                    flags.join("; ")
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &["POINT", "ENV", "BUNDLE", "EPOCH", "LAST CONTACT", "STATE"],
        &rows,
    ));
    out
}
