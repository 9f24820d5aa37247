//! Finds the line an item starts on, for semantic errors that serde cannot place.
//!
//! The YAML parser reports positions only for syntax and type errors. For "owner not
//! declared" we look for the line that carries the item's key (`id: x`, `spiffe_id: x`);
//! the key is unique by the time we ask, so the first match is the item.

/// 1-based line of the `nth` (0-based) line reading `key: value` (quoted or not, possibly
/// as the first entry of a list item), or 0 when none does.
pub(crate) fn line_of(content: &str, key: &str, value: &str, nth: usize) -> usize {
    let mut seen = 0;
    for (i, line) in content.lines().enumerate() {
        let t = line.trim_start();
        let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
        let Some(rest) = t.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
            continue;
        };
        let rest = rest.split(" #").next().unwrap_or_default().trim();
        let unquoted = rest.trim_matches(|c| c == '"' || c == '\'');
        if unquoted == value {
            if seen == nth {
                return i + 1;
            }
            seen += 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn finds_list_items() {
        let y = "identities:\n  - spiffe_id: spiffe://a/x\n    plane: p\n  - spiffe_id: \"spiffe://a/y\"  # note\n  - spiffe_id: spiffe://a/x\n";
        assert_eq!(line_of(y, "spiffe_id", "spiffe://a/x", 0), 2);
        assert_eq!(line_of(y, "spiffe_id", "spiffe://a/y", 0), 4);
        assert_eq!(line_of(y, "spiffe_id", "spiffe://a/x", 1), 5);
        assert_eq!(line_of(y, "spiffe_id", "spiffe://a/z", 0), 0);
    }
}
