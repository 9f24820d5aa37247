//! Human-readable rendering shared by the commands and the demo.

use std::fmt::Write;

use steward_governance::{Change, Diagnostic, Op, Plan};
use steward_store::IdentityRecord;

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
    for f in &c.fields {
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
