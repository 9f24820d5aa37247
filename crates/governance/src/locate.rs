//! Finds the line an item starts on, for semantic errors that serde cannot place.
//!
//! The YAML parser reports positions only for syntax and type errors. For "owner not
//! declared" we look for the line that carries the item's key (`id: x`, `spiffe_id: x`).
//! One pass over a file indexes every such line, so locating all items of a
//! 100,000-identity file stays linear.

use std::collections::HashMap;

/// Keys whose lines are indexed: the keys that name an item.
const KEYS: &[&str] = &["id", "spiffe_id", "name", "kid"];

/// Lines of each `key: value` occurrence in one file.
pub(crate) struct LineIndex<'a> {
    lines: HashMap<(&'a str, &'a str), Vec<usize>>,
    top_level_settings: usize,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(content: &'a str) -> Self {
        let mut lines: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        let mut top_level_settings = 0;
        for (i, line) in content.lines().enumerate() {
            if top_level_settings == 0 && line.starts_with("settings:") {
                top_level_settings = i + 1;
            }
            let t = line.trim_start();
            let t = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
            for key in KEYS {
                let Some(rest) = t.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
                    continue;
                };
                let rest = rest.split(" #").next().unwrap_or_default().trim();
                let value = rest.trim_matches(|c| c == '"' || c == '\'');
                lines.entry((key, value)).or_default().push(i + 1);
            }
        }
        Self {
            lines,
            top_level_settings,
        }
    }

    /// 1-based line of the `nth` (0-based) line reading `key: value`, or 0 when none does.
    pub(crate) fn line_of(&self, key: &str, value: &str, nth: usize) -> usize {
        self.lines
            .get(&(key, value))
            .and_then(|v| v.get(nth))
            .copied()
            .unwrap_or(0)
    }

    /// Line of the top-level `settings:` key, or 0.
    pub(crate) fn settings_line(&self) -> usize {
        self.top_level_settings
    }
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn finds_list_items() {
        let y = "identities:\n  - spiffe_id: spiffe://a/x\n    plane: p\n  - spiffe_id: \"spiffe://a/y\"  # note\n  - spiffe_id: spiffe://a/x\nsettings:\n  x: 1\n";
        let idx = LineIndex::new(y);
        assert_eq!(idx.line_of("spiffe_id", "spiffe://a/x", 0), 2);
        assert_eq!(idx.line_of("spiffe_id", "spiffe://a/y", 0), 4);
        assert_eq!(idx.line_of("spiffe_id", "spiffe://a/x", 1), 5);
        assert_eq!(idx.line_of("spiffe_id", "spiffe://a/z", 0), 0);
        assert_eq!(idx.settings_line(), 6);
    }
}
