//! Where each policy of a `.cedar` file starts, for diagnostics: Cedar's public API does not
//! expose source positions of parsed policies, and Cedar assigns ids in file order.

/// Byte offsets at which each top-level statement of a Cedar file starts (annotations
/// included), in order. Skips comments and string literals, so `;` inside them is ignored.
pub(crate) fn statement_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut expecting = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' if chars.peek().is_some_and(|(_, n)| *n == '/') => {
                for (_, n) in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            c if c.is_whitespace() => {}
            _ => {
                if expecting {
                    starts.push(i);
                    expecting = false;
                }
                if c == '"' {
                    let mut escaped = false;
                    for (_, n) in chars.by_ref() {
                        match (escaped, n) {
                            (true, _) => escaped = false,
                            (false, '\\') => escaped = true,
                            (false, '"') => break,
                            _ => {}
                        }
                    }
                } else if c == ';' {
                    expecting = true;
                }
            }
        }
    }
    starts
}

/// 1-based line of a byte offset.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|t| t.bytes().filter(|b| *b == b'\n').count() + 1)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_statement_past_comments_and_strings() {
        let text = "// a; comment\n@id(\"a;b\")\npermit(principal, action, resource);\n\n// x\nforbid(principal, action, resource) when { context.s == \"q\\\";\" };\n";
        let starts = statement_starts(text);
        assert_eq!(starts.len(), 2);
        assert_eq!(line_at(text, starts[0]), 2);
        assert_eq!(line_at(text, starts[1]), 6);
    }
}
