//! W3C Trace Context (`traceparent`, version 00): the trace id is the correlation id every
//! decision record carries, so `steward audit trace` can follow one request across layers.

use std::fmt;

/// One `traceparent`: the trace, the calling span, and the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero.
    pub parent_id: String,
    pub flags: u8,
}

fn hex(len: usize, s: &str) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

thread_local! {
    /// Per-thread splitmix64 state, seeded once from the OS: trace ids must be unique,
    /// not secret, and a system call per id would cost more than the rest of the id.
    static STATE: std::cell::Cell<u64> = std::cell::Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // Without OS randomness, time and a per-thread address still separate threads.
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        let here = &b as *const _ as u64;
        return nanos ^ here.rotate_left(32);
    }
    u64::from_le_bytes(b)
}

fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A UUIDv7 for a decision record: time-ordered like `Uuid::now_v7`, with its random bits
/// from the per-thread generator instead of a system call per record.
pub(crate) fn event_id(now: time::OffsetDateTime) -> String {
    let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    let (a, b) = (next_u64().to_le_bytes(), next_u64().to_le_bytes());
    let random = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[0], b[1]];
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// `bytes` random bytes as lowercase hex, never all zero.
fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        let mut v = next_u64();
        if v == 0 {
            v = 1;
        }
        let take = (bytes * 2 - out.len()).min(16);
        out.push_str(format!("{v:016x}").get(..take).unwrap_or_default());
    }
    out
}

impl TraceContext {
    /// Parses a `traceparent` header. Anything malformed is `None` (the caller starts a
    /// new trace, as the specification says).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let parent_id = parts.next()?;
        let flags = parts.next()?;
        // Version 00 has exactly four parts; later versions may append more.
        if version.len() != 2
            || version == "ff"
            || !version.bytes().all(|b| b.is_ascii_hexdigit())
            || (version == "00" && parts.next().is_some())
            || !hex(32, trace_id)
            || !hex(16, parent_id)
            || flags.len() != 2
        {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags,
        })
    }

    /// A new trace, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: random_hex(16),
            parent_id: random_hex(8),
            flags: 1,
        }
    }

    /// The context to send onwards: same trace, a new span of ours as the parent.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            parent_id: random_hex(8),
            flags: self.flags,
        }
    }

    /// The context of `header` if it is valid, else a new trace.
    pub fn continue_or_start(header: Option<&str>) -> Self {
        header.and_then(Self::parse).unwrap_or_else(Self::new_root)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_specification_example_and_round_trips() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse(h).unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.to_string(), h);
        let c = t.child();
        assert_eq!(c.trace_id, t.trace_id);
        assert_ne!(c.parent_id, t.parent_id);
    }

    #[test]
    fn refuses_what_the_specification_refuses() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
        // A later version may carry more parts.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
        let fresh = TraceContext::continue_or_start(Some("garbage"));
        assert!(TraceContext::parse(&fresh.to_string()).is_some());
    }

    #[test]
    fn new_traces_are_unique_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let t = TraceContext::new_root();
            assert!(TraceContext::parse(&t.to_string()).is_some(), "{t}");
            assert!(seen.insert(t.trace_id));
        }
        // Other threads draw from their own, differently seeded, sequences.
        let other = std::thread::spawn(|| TraceContext::new_root().trace_id)
            .join()
            .unwrap();
        assert!(!seen.contains(&other));
    }

    #[test]
    fn event_ids_are_unique_time_ordered_uuid_v7() {
        let now = time::OffsetDateTime::now_utc();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = uuid::Uuid::parse_str(&event_id(now)).unwrap();
            assert_eq!(id.get_version_num(), 7);
            let (secs, _) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(secs as i64, now.unix_timestamp());
            assert!(seen.insert(id));
        }
        let later = event_id(now + time::Duration::milliseconds(5));
        assert!(seen.iter().all(|id| id.to_string() < later));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_what_it_accepts_round_trips(text in "\\PC{0,80}") {
            if let Some(t) = TraceContext::parse(&text) {
                let again = TraceContext::parse(&t.to_string());
                proptest::prop_assert_eq!(again.as_ref().map(|a| &a.trace_id), Some(&t.trace_id));
            }
        }

        #[test]
        fn valid_headers_keep_their_trace(trace in "[0-9a-f]{31}[1-9a-f]", parent in "[0-9a-f]{15}[1-9a-f]", flags in 0u8..=255) {
            let header = format!("00-{trace}-{parent}-{flags:02x}");
            let t = TraceContext::parse(&header).unwrap();
            proptest::prop_assert_eq!(t.to_string(), header);
            proptest::prop_assert_eq!(t.child().trace_id, trace);
        }
    }
}
