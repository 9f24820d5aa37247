//! The one HTTP path normaliser every layer decides on.
//!
//! An upstream serves `/v1/charges/../orders/42` as `/v1/orders/42`, and `/v1/%61dmin` as
//! `/v1/admin`. A decision taken on the raw text would be about a different resource than
//! the one served, so every enforcement point (gateway proxy, nginx `auth_request`, Envoy
//! ext_authz, the AuthZEN `http` resource) turns what it saw into an [`HttpPath`] first,
//! decides on it, and the gateway forwards exactly that path.
//!
//! Normalisation follows RFC 3986: percent-encoded characters that may stand for
//! themselves in a path are decoded (§6.2.2.2), the others are kept encoded with upper-case
//! hex (§6.2.2.1), characters a path may not hold raw are encoded, and dot-segments are
//! removed (§5.2.4). What different servers read differently is refused instead of
//! guessed: encoded `/`, `\`, `.`, `%`, `;`, `?` and `#`, raw backslashes and `;` path
//! parameters, empty segments (`//`), `..` above the root, control bytes, bytes that are
//! not UTF-8, and malformed escapes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Longest path accepted, in bytes, before and after normalisation: a path is recorded
/// with every decision, so its size bounds the record's.
pub const MAX_PATH_BYTES: usize = 4_096;

/// An HTTP request path in normal form: what policy decides on and what is forwarded.
///
/// It starts with `/`, has no dot-segments and no empty segments (a trailing `/` aside),
/// and holds only characters a path may carry raw plus `%XX` escapes (upper-case hex) for
/// the rest. `HttpPath::parse(p.as_str())` gives `p` back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpPath(String);

impl HttpPath {
    /// Normalises a path as received (no query: see [`HttpPath::from_target`]), or says
    /// why it cannot be decided unambiguously.
    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        normalize(raw).map(Self)
    }

    /// Splits a request target (`/path?query`, as in a request line or nginx's
    /// `$request_uri`) into the normalised path and the query, which is passed on as is.
    pub fn from_target(target: &str) -> Result<(Self, Option<&str>), ModelError> {
        match target.split_once('?') {
            Some((path, query)) => Ok((Self::parse(path)?, Some(query))),
            None => Ok((Self::parse(target)?, None)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for HttpPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HttpPath {
    type Error = ModelError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<HttpPath> for String {
    fn from(p: HttpPath) -> Self {
        p.0
    }
}

/// Characters a path segment may carry raw (RFC 3986 `pchar` without `%`), except `;`:
/// `;` starts a path parameter that some servers strip before routing.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

/// The path (escaped and shortened) for an error message: never raw control bytes.
fn shown(raw: &str) -> String {
    let mut out: String = raw.chars().take(120).flat_map(char::escape_debug).collect();
    if raw.chars().nth(120).is_some() {
        out.push('…');
    }
    out
}

fn refuse(raw: &str, reason: &'static str) -> ModelError {
    ModelError::HttpPath {
        value: shown(raw),
        reason,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX` with upper-case hex (RFC 3986 §6.2.2.1).
fn push_escaped(out: &mut String, b: u8) {
    use std::fmt::Write;
    let _ = write!(out, "%{b:02X}");
}

/// One segment in normal form: escapes decoded where the character may stand for itself,
/// everything else escaped.
fn segment(raw_path: &str, seg: &str) -> Result<String, ModelError> {
    let bytes = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    // The segment as the upstream decodes it, to check it is UTF-8.
    let mut decoded = Vec::with_capacity(seg.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let value = match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => (h << 4) | l,
                _ => return Err(refuse(raw_path, "a `%` that does not start a `%XX` escape")),
            };
            i += 3;
            decoded.push(value);
            match value {
                b'/' => {
                    return Err(refuse(
                        raw_path,
                        "an encoded `/` (`%2F`): servers disagree on whether it separates segments",
                    ));
                }
                b'\\' => {
                    return Err(refuse(
                        raw_path,
                        "an encoded backslash (`%5C`): some servers read it as `/`",
                    ));
                }
                b'.' => {
                    return Err(refuse(
                        raw_path,
                        "an encoded `.` (`%2E`): it can hide a dot-segment",
                    ));
                }
                b'%' => {
                    return Err(refuse(
                        raw_path,
                        "an encoded `%` (`%25`): double encoding is refused",
                    ));
                }
                b';' => {
                    return Err(refuse(
                        raw_path,
                        "an encoded `;` (`%3B`): some servers read it as a path parameter",
                    ));
                }
                b'?' | b'#' => return Err(refuse(raw_path, "an encoded `?` or `#` in the path")),
                0x00..=0x1f | 0x7f => {
                    return Err(refuse(raw_path, "an encoded control byte (such as `%00`)"));
                }
                v if is_plain(v) => out.push(char::from(v)),
                v => push_escaped(&mut out, v),
            }
            continue;
        }
        i += 1;
        decoded.push(b);
        match b {
            b'\\' => return Err(refuse(raw_path, "a backslash: some servers read it as `/`")),
            b';' => {
                return Err(refuse(
                    raw_path,
                    "a `;` path parameter: some servers strip it before routing",
                ));
            }
            b'#' => return Err(refuse(raw_path, "a `#` in the path")),
            0x00..=0x20 | 0x7f => return Err(refuse(raw_path, "a control byte or space")),
            0x80..=0xff => {
                return Err(refuse(
                    raw_path,
                    "a raw non-ASCII byte (send it percent-encoded)",
                ));
            }
            v if is_plain(v) => out.push(char::from(v)),
            // `"`, `<`, `>`, `[`, `]`, `^`, `` ` ``, `{`, `|`, `}`: the same as their escapes.
            v => push_escaped(&mut out, v),
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(refuse(raw_path, "escapes that do not decode to UTF-8"));
    }
    Ok(out)
}

fn normalize(raw: &str) -> Result<String, ModelError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(refuse(raw, "longer than the 4096 bytes a path may have"));
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(refuse(raw, "a path must start with `/`"));
    };
    let mut segments: Vec<String> = Vec::new();
    // Whether the path ends in `/` (an empty last segment, or a last `.` or `..`).
    let mut trailing = false;
    let mut parts = rest.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        trailing = false;
        match part {
            "" if last => trailing = true,
            "" => {
                return Err(refuse(
                    raw,
                    "an empty segment (`//`): servers disagree on merging it",
                ));
            }
            "." => trailing = last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(refuse(raw, "`..` climbs above the root"));
                }
                trailing = last;
            }
            _ => segments.push(segment(raw, part)?),
        }
    }
    let mut out = String::with_capacity(raw.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    if out.len() > MAX_PATH_BYTES {
        return Err(refuse(raw, "longer than the 4096 bytes a path may have"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        match HttpPath::parse(raw) {
            Ok(p) => p.0,
            Err(e) => panic!("`{raw}` was refused: {e}"),
        }
    }

    fn refused(raw: &str) -> String {
        match HttpPath::parse(raw) {
            Ok(p) => panic!("`{raw}` was accepted as `{p}`"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn removes_dot_segments() {
        assert_eq!(ok("/v1/charges/../orders/42"), "/v1/orders/42");
        assert_eq!(ok("/v1/./charges/./x"), "/v1/charges/x");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/a/b/."), "/a/b/");
        assert_eq!(ok("/a/.."), "/");
        assert_eq!(ok("/."), "/");
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/a/b/"), "/a/b/");
        assert_eq!(ok("/a/...b/..."), "/a/...b/...");
    }

    #[test]
    fn decodes_what_stands_for_itself_and_encodes_the_rest() {
        assert_eq!(ok("/v1/%61dmin"), "/v1/admin");
        assert_eq!(ok("/v1/%7e%41%3a%40"), "/v1/~A:@");
        assert_eq!(ok("/files/a%20b"), "/files/a%20b");
        assert_eq!(ok("/files/a%7cb"), "/files/a%7Cb");
        assert_eq!(ok("/files/a|b"), "/files/a%7Cb");
        assert_eq!(ok("/caf%C3%A9"), "/caf%C3%A9");
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
    }

    #[test]
    fn refuses_what_servers_read_differently() {
        for (raw, why) in [
            ("/v1/charges/%2e%2e/orders", "`%2E`"),
            ("/v1/charges/%2E./orders", "`%2E`"),
            ("/v1/charges%2f..%2forders", "`%2F`"),
            ("/v1/charges/%252e%252e/orders", "`%25`"),
            ("/v1\\..\\orders", "backslash"),
            ("/v1/charges%5c..%5corders", "`%5C`"),
            ("/v1/charges;x=1/42", "path parameter"),
            ("/v1/charges/..;/orders", "path parameter"),
            ("/v1/charges%3b/42", "`%3B`"),
            ("/v1//charges", "empty segment"),
            ("/../etc/passwd", "above the root"),
            ("/v1/../../etc", "above the root"),
            ("/v1/%00", "control"),
            ("/v1/a\u{1}b", "control"),
            ("/v1/a b", "space"),
            ("/v1/%ff", "UTF-8"),
            ("/v1/%C3", "UTF-8"),
            ("/v1/caf\u{e9}", "non-ASCII"),
            ("/v1/%zz", "escape"),
            ("/v1/%4", "escape"),
            ("/v1/a#b", "`#`"),
            ("/v1/a%23b", "`#`"),
            ("/v1/a%3Fb", "`?`"),
            ("v1/charges", "start with `/`"),
            ("", "start with `/`"),
            ("*", "start with `/`"),
        ] {
            let e = refused(raw);
            assert!(e.contains(why), "`{raw}`: {e}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert!(refused(&long).contains("4096"));
        assert!(
            refused(&long).len() < 400,
            "the message shows a shortened path"
        );
    }

    #[test]
    fn splits_the_query_off_a_target() {
        let (p, q) = HttpPath::from_target("/v1/./charges?x=%2e%2e&y=/..").unwrap();
        assert_eq!((p.as_str(), q), ("/v1/charges", Some("x=%2e%2e&y=/..")));
        let (p, q) = HttpPath::from_target("/v1/charges").unwrap();
        assert_eq!((p.as_str(), q), ("/v1/charges", None));
        assert!(HttpPath::from_target("/v1/%2e%2e/x?ok").is_err());
    }

    /// How a server that percent-decodes first and then resolves dot-segments reads a
    /// path, as decoded bytes (`merge`: and merges empty segments, as nginx does).
    fn decode_then_resolve(raw: &str, merge: bool) -> Vec<Vec<u8>> {
        let decoded = decode(raw.as_bytes());
        resolve(
            decoded.split(|b| *b == b'/').skip(1).map(<[u8]>::to_vec),
            merge,
        )
    }

    /// How a server that resolves dot-segments on the raw text and decodes each segment
    /// afterwards reads it.
    fn resolve_then_decode(raw: &str) -> Vec<Vec<u8>> {
        resolve(raw.split('/').skip(1).map(|s| s.as_bytes().to_vec()), false)
            .into_iter()
            .map(|s| decode(&s))
            .collect()
    }

    fn decode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match (
                b,
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 3;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    fn resolve(segments: impl Iterator<Item = Vec<u8>>, merge: bool) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let segments: Vec<Vec<u8>> = segments.collect();
        let n = segments.len();
        for (i, s) in segments.into_iter().enumerate() {
            let last = i + 1 == n;
            match s.as_slice() {
                b"." | b".." if last => {
                    if s == b".." {
                        out.pop();
                    }
                    out.push(Vec::new());
                }
                b"." => {}
                b".." => {
                    out.pop();
                }
                b"" if merge && !last => {}
                _ => out.push(s),
            }
        }
        out
    }

    fn index() -> crate::CapabilityIndex {
        use crate::{
            Capability, CapabilityId, Classification, HttpMapping, PlaneId, TransportMapping,
        };
        let cap = |id: &str, path: &str| Capability {
            id: CapabilityId::new(id).unwrap(),
            plane: PlaneId::root(),
            classification: Classification::Internal,
            description: String::new(),
            mappings: vec![TransportMapping::Http(HttpMapping {
                method: "GET".into(),
                path: path.into(),
                action: None,
            })],
            context: Default::default(),
        };
        crate::CapabilityIndex::new(&[
            cap("charges.read", "/v1/charges/**"),
            cap("orders.read", "/v1/orders/*"),
            cap("admin.all", "/v1/admin/**"),
            cap("everything", "/v1/**"),
            cap("files", "/files/a%20b/*"),
        ])
    }

    fn lookup(index: &crate::CapabilityIndex, path: &str) -> Option<String> {
        index
            .lookup(&crate::Address::Http {
                method: "GET",
                path,
            })
            .map(|r| r.capability.as_str().to_owned())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// An accepted path means one thing: servers that decode before or after resolving
        /// dot-segments, or that merge slashes, all serve what its normal form names, so
        /// the capability decided on (the normal form's) is the one of the path served.
        /// And the normal form is a fixed point.
        #[test]
        fn an_accepted_path_names_one_resource(
            segments in proptest::collection::vec(proptest::sample::select(vec![
                "v1", "charges", "orders", "admin", "42", "a b", "a%20b", "files",
                ".", "..", "", "%2e", "%2E%2E", ".%2e", "%2f", "%2F..", "%61dmin", "%63harges",
                "%7e", "x;y", "..;", "\\", "%5c", "%00", "%25", "%252e", "%41%42", "~!$&'()*+,=:@",
                "caf%C3%A9", "%ff", "|", "%7C",
            ]), 0..7),
        ) {
            let raw = format!("/{}", segments.join("/"));
            if let Ok(normal) = HttpPath::parse(&raw) {
                let n = normal.as_str();
                proptest::prop_assert_eq!(HttpPath::parse(n).map(|p| p.0), Ok(n.to_owned()));
                let served = decode_then_resolve(n, false);
                proptest::prop_assert_eq!(&decode_then_resolve(&raw, false), &served, "{}", raw);
                proptest::prop_assert_eq!(&decode_then_resolve(&raw, true), &served, "{}", raw);
                proptest::prop_assert_eq!(&resolve_then_decode(&raw), &served, "{}", raw);
                // What the served path maps to is what was decided.
                let idx = index();
                let served_text: Vec<String> = served.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
                let served_path = format!("/{}", served_text.join("/"));
                let reencoded: String = served_path.bytes().map(|b| if b == b' ' { "%20".to_owned() } else if b == b'|' { "%7C".to_owned() } else { char::from(b).to_string() }).collect();
                if served_path.is_ascii() {
                    proptest::prop_assert_eq!(lookup(&idx, &reencoded), lookup(&idx, n), "{} served as {}", raw, served_path);
                }
            }
        }
    }

    #[test]
    fn deserialising_normalises_or_refuses() {
        let p: HttpPath = serde_json::from_str(r#""/a/./b""#).unwrap();
        assert_eq!(p.as_str(), "/a/b");
        assert!(serde_json::from_str::<HttpPath>(r#""/a/%2e%2e/b""#).is_err());
    }
}
