//! A readable difference between two policy versions: per file, the lines removed
//! (`-`) and added (`+`), plus changed exceptions and request-context attributes.

use std::collections::BTreeSet;

use steward_model::PolicyBundle;

/// Largest line-pair table diffed exactly; bigger files are reported as replaced.
const MAX_CELLS: usize = 4_000_000;

/// The difference from `old` to `new`; empty when they are equal.
pub fn bundle_diff(old: &PolicyBundle, new: &PolicyBundle) -> String {
    let mut out = String::new();
    let paths: BTreeSet<&String> = old.policies.keys().chain(new.policies.keys()).collect();
    for path in paths {
        let a = old
            .policies
            .get(path)
            .map(|p| p.text.as_str())
            .unwrap_or("");
        let b = new
            .policies
            .get(path)
            .map(|p| p.text.as_str())
            .unwrap_or("");
        if a == b {
            continue;
        }
        let what = match (
            old.policies.contains_key(path),
            new.policies.contains_key(path),
        ) {
            (false, _) => "added",
            (_, false) => "removed",
            _ => "changed",
        };
        out.push_str(&format!("=== {path} ({what})\n"));
        out.push_str(&lines_diff(a, b));
    }
    // One line per exception, attribute and workflow, so a change reads as one line.
    let exceptions = |b: &PolicyBundle| -> String {
        b.exceptions
            .values()
            .map(|e| {
                format!(
                    "{}: lifts {} for {} on {} until {} (owner {}, ticket {})\n",
                    e.id,
                    e.lifts.join(", "),
                    e.principal,
                    e.capability,
                    steward_model::timestamp::format(e.expires_at),
                    e.owner,
                    e.ticket
                )
            })
            .collect()
    };
    let attributes = |b: &PolicyBundle| -> String {
        b.context_attributes
            .values()
            .map(|a| format!("{}: {}\n", a.name, a.kind))
            .collect()
    };
    let workflows = |b: &PolicyBundle| -> String {
        b.workflows
            .values()
            .map(|w| {
                format!(
                    "{}: {} may get {} for at most {} s\n",
                    w.id,
                    w.requesters
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    w.scope
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    w.max_ttl_secs
                )
            })
            .collect()
    };
    for (name, a, b) in [
        ("exceptions", exceptions(old), exceptions(new)),
        ("request_context", attributes(old), attributes(new)),
        ("workflows", workflows(old), workflows(new)),
    ] {
        if a != b {
            out.push_str(&format!("=== {name} (changed)\n"));
            out.push_str(&lines_diff(&a, &b));
        }
    }
    out
}

/// Line diff by longest common subsequence: ` ` kept, `-` removed, `+` added; runs of
/// unchanged lines longer than six are shortened to three of context on each side.
fn lines_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        let mut out: String = a.iter().map(|l| format!("-{l}\n")).collect();
        out.extend(b.iter().map(|l| format!("+{l}\n")));
        return out;
    }
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: LCS length of a[i..] and b[j..], flattened.
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if a.get(i) == b.get(j) {
                lcs.get(at(i + 1, j + 1)).copied().unwrap_or(0) + 1
            } else {
                lcs.get(at(i + 1, j))
                    .copied()
                    .unwrap_or(0)
                    .max(lcs.get(at(i, j + 1)).copied().unwrap_or(0))
            };
            if let Some(cell) = lcs.get_mut(at(i, j)) {
                *cell = v;
            }
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                ops.push((' ', x));
                i += 1;
                j += 1;
            }
            (Some(x), Some(_))
                if lcs.get(at(i + 1, j)).copied().unwrap_or(0)
                    >= lcs.get(at(i, j + 1)).copied().unwrap_or(0) =>
            {
                ops.push(('-', x));
                i += 1;
            }
            (_, Some(y)) => {
                ops.push(('+', y));
                j += 1;
            }
            (Some(x), None) => {
                ops.push(('-', x));
                i += 1;
            }
            (None, None) => break,
        }
    }
    let mut out = String::new();
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op != ' ')
        .map(|(k, _)| k)
        .collect();
    let near = |k: usize| changed.iter().any(|c| c.abs_diff(k) <= 3);
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if *op == ' ' && !near(k) {
            if !skipped {
                out.push_str("  …\n");
                skipped = true;
            }
            continue;
        }
        skipped = false;
        out.push_str(&format!("{op}{line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_model::PlaneId;
    use steward_model::PolicyFile;

    fn bundle(files: &[(&str, &str)]) -> PolicyBundle {
        let mut b = PolicyBundle::default();
        for (path, text) in files {
            b.policies.insert(
                (*path).into(),
                PolicyFile {
                    path: (*path).into(),
                    plane: PlaneId::root(),
                    text: (*text).into(),
                },
            );
        }
        b
    }

    #[test]
    fn shows_changed_added_and_removed_files() {
        let old = bundle(&[
            ("policies/a.cedar", "one\ntwo\nthree\n"),
            ("policies/gone.cedar", "x\n"),
        ]);
        let new = bundle(&[
            ("policies/a.cedar", "one\n2\nthree\n"),
            ("policies/new.cedar", "y\n"),
        ]);
        let d = bundle_diff(&old, &new);
        assert_eq!(
            d,
            "=== policies/a.cedar (changed)\n one\n-two\n+2\n three\n=== policies/gone.cedar (removed)\n-x\n=== policies/new.cedar (added)\n+y\n"
        );
        assert_eq!(bundle_diff(&new, &new), "");
    }
}
