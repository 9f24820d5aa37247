//! Relaying the MCP server's answer as it streams: an event stream is read event by
//! event and each event's message checked ([`AnswerFilter`]) before it goes on; other
//! bodies pass as they come.

use axum::body::{Body, Bytes};
use serde_json::Value;

use super::{AnswerFilter, event};

/// Largest event held while looking for its end; a longer one ends the stream.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The body to answer with: `answers` as events first, then the server's stream, every
/// event of it checked by `filter`.
pub(super) fn relay(resp: reqwest::Response, answers: Vec<Value>, filter: AnswerFilter) -> Body {
    let event_stream = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    if !event_stream {
        let raw = futures_util::stream::unfold(Some(resp), |resp| async move {
            let mut resp = resp?;
            match resp.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(resp))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        });
        return Body::from_stream(raw);
    }
    let first: Vec<Bytes> = answers.iter().rev().map(event).collect();
    let state = Relay {
        resp,
        first,
        filter,
        events: Events::default(),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if let Some(b) = s.first.pop() {
            return Some((Ok(b), s));
        }
        if s.done {
            return None;
        }
        loop {
            if let Some(text) = s.events.next_event() {
                if let Some(out) = checked(&mut s.filter, &text) {
                    return Some((Ok(Bytes::from(out)), s));
                }
                continue;
            }
            match s.resp.chunk().await {
                Ok(Some(chunk)) => {
                    if !s.events.push(&chunk) {
                        s.done = true;
                        let e = std::io::Error::other("an event of the MCP server is too large");
                        return Some((Err(e), s));
                    }
                }
                Ok(None) => {
                    // An event the server never finished is not relayed: it was not
                    // checked whole.
                    if !s.events.is_empty() {
                        tracing::warn!(
                            "the MCP server's event stream ended inside an event; the partial event is dropped"
                        );
                    }
                    return None;
                }
                Err(e) => {
                    // Cut midway: the agent's stream is cut too, so its client sees the
                    // break (and may resume with `Last-Event-ID`) rather than a clean end.
                    s.done = true;
                    return Some((Err(std::io::Error::other(e)), s));
                }
            }
        }
    });
    Body::from_stream(stream)
}

struct Relay {
    resp: reqwest::Response,
    first: Vec<Bytes>,
    filter: AnswerFilter,
    events: Events,
    done: bool,
}

/// The bytes of an event stream not yet cut into events, with every line ending (CRLF, CR
/// or LF, as the format allows) made LF, so an event ends at the first blank line however
/// the server writes it.
#[derive(Default)]
struct Events {
    buf: Vec<u8>,
    /// The previous chunk ended in CR: an LF starting the next one belongs to it.
    pending_cr: bool,
}

impl Events {
    /// Adds a chunk; `false` when the unfinished event grew past [`MAX_EVENT_BYTES`].
    fn push(&mut self, chunk: &[u8]) -> bool {
        for &b in chunk {
            match (b, self.pending_cr) {
                (b'\n', true) => self.pending_cr = false,
                (b'\r', _) => {
                    self.buf.push(b'\n');
                    self.pending_cr = true;
                }
                _ => {
                    self.buf.push(b);
                    self.pending_cr = false;
                }
            }
        }
        self.buf.len() <= MAX_EVENT_BYTES
    }

    /// The next complete event (through its blank line), if one has arrived.
    fn next_event(&mut self) -> Option<Vec<u8>> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        Some(self.buf.drain(..end + 2).collect())
    }

    fn is_empty(&self) -> bool {
        self.buf.iter().all(|b| *b == b'\n')
    }
}

/// One event as the agent gets it, or `None` to drop it: an event without data (a
/// comment, a `retry`) passes; one whose data is not UTF-8 JSON is dropped (it cannot be
/// checked, so it is not relayed); a message is kept only as far as the filter allows.
fn checked(filter: &mut AnswerFilter, raw: &[u8]) -> Option<String> {
    let Ok(text) = std::str::from_utf8(raw) else {
        tracing::warn!("an event of the MCP server is not UTF-8; it is dropped");
        return None;
    };
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return Some(text.to_owned());
    }
    let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) else {
        tracing::warn!("an event of the MCP server carries no JSON message; it is dropped");
        return None;
    };
    let message = filter.apply(message)?;
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("data:") && !l.is_empty())
        .map(str::to_owned)
        .collect();
    out.push(format!("data: {message}"));
    Some(format!("{}\n\n", out.join("\n")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Events end at a blank line whatever the line endings, even a CRLF split across
    /// chunks; an unfinished event is held.
    #[test]
    fn events_split_on_any_line_ending() {
        let mut e = Events::default();
        assert!(e.push(b"data: 1\r"));
        assert!(e.push(b"\n\r\ndata: 2\r\rdata: 3\n"));
        assert_eq!(e.next_event().unwrap(), b"data: 1\n\n");
        assert_eq!(e.next_event().unwrap(), b"data: 2\n\n");
        assert_eq!(e.next_event(), None);
        assert!(!e.is_empty());
        assert!(e.push(b"\n"));
        assert_eq!(e.next_event().unwrap(), b"data: 3\n\n");
        assert!(e.is_empty());
    }
}
