//! Relaying the MCP server's answer as it streams: an event stream is read event by
//! event, so `tools/list` answers in it can be filtered; other bodies pass as they come.

use axum::body::{Body, Bytes};
use serde_json::Value;

use super::{ListFilter, event};

/// Largest event held while looking for its end; a longer one ends the stream.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The body to answer with: `answers` as events first, then the server's stream.
pub(super) fn relay(
    resp: reqwest::Response,
    answers: Vec<Value>,
    filter: Option<ListFilter>,
) -> Body {
    let event_stream = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let filter = filter.filter(|f| f.wants() && event_stream);
    let first: Vec<Bytes> = if event_stream {
        answers.iter().rev().map(event).collect()
    } else {
        Vec::new()
    };
    let state = (resp, first, filter, String::new(), false);
    let stream = futures_util::stream::unfold(
        state,
        |(mut resp, mut first, filter, mut buf, done)| async move {
            if let Some(b) = first.pop() {
                return Some((Ok(b), (resp, first, filter, buf, done)));
            }
            if done {
                return None;
            }
            loop {
                if let Some(f) = &filter
                    && let Some(end) = buf.find("\n\n")
                {
                    let text: String = buf.drain(..end + 2).collect();
                    let out = filtered(f, &text);
                    return Some((Ok(Bytes::from(out)), (resp, first, filter, buf, false)));
                }
                match resp.chunk().await {
                    Ok(Some(chunk)) if filter.is_none() => {
                        return Some((Ok(chunk), (resp, first, filter, buf, false)));
                    }
                    Ok(Some(chunk)) => {
                        buf.push_str(&String::from_utf8_lossy(&chunk));
                        buf = buf.replace("\r\n", "\n");
                        if buf.len() > MAX_EVENT_BYTES {
                            let e =
                                std::io::Error::other("an event of the MCP server is too large");
                            return Some((Err(e), (resp, first, filter, String::new(), true)));
                        }
                    }
                    Ok(None) => {
                        if buf.is_empty() {
                            return None;
                        }
                        let rest = std::mem::take(&mut buf);
                        return Some((Ok(Bytes::from(rest)), (resp, first, filter, buf, true)));
                    }
                    Err(e) => {
                        return Some((
                            Err(std::io::Error::other(e)),
                            (resp, first, filter, buf, true),
                        ));
                    }
                }
            }
        },
    );
    Body::from_stream(stream)
}

/// One event, its JSON-RPC message filtered when it answers a `tools/list`.
fn filtered(filter: &ListFilter, text: &str) -> String {
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) else {
        return text.to_owned();
    };
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("data:") && !l.is_empty())
        .map(str::to_owned)
        .collect();
    out.push(format!("data: {}", filter.apply(message)));
    format!("{}\n\n", out.join("\n"))
}
