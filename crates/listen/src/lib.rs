//! HTTP listeners that a slow or greedy client cannot hold open.
//!
//! `axum::serve` reads a request head and body for as long as the client takes: 200
//! connections sending a byte a second held the control plane's listener for minutes.
//! [`serve`] bounds every connection: the head must arrive within
//! [`Limits::header_read`] (also the longest a kept-alive connection waits for its next
//! request), the whole body within [`Limits::body_read`] of its head, and at most
//! [`Limits::max_connections`] connections are served at once (more wait in the
//! kernel's accept queue). On shutdown it stops accepting and lets open requests finish
//! for [`Limits::drain`].
//!
//! The control plane (`steward serve`, plain and TLS) and the gateway's decision
//! endpoints use it; the gateway's reverse proxy applies the same limits with its own
//! hyper service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Default seconds a request head may take to arrive.
pub const DEFAULT_HEADER_READ_SECS: u64 = 10;
/// Default seconds a request body may take to arrive, from its head.
pub const DEFAULT_BODY_READ_SECS: u64 = 60;
/// Default connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
/// Default seconds open requests get to finish on shutdown.
pub const DEFAULT_DRAIN_SECS: u64 = 10;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive within this (a partial head is cut: slowloris); also
    /// the longest an idle kept-alive connection waits for its next request.
    pub header_read: Duration,
    /// A request's whole body must arrive within this, counted from its head.
    pub body_read: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long open requests may finish after shutdown.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(DEFAULT_HEADER_READ_SECS),
            body_read: Duration::from_secs(DEFAULT_BODY_READ_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            drain: Duration::from_secs(DEFAULT_DRAIN_SECS),
        }
    }
}

/// The connection builder with `limits`' head deadline (HTTP/1.1 and HTTP/2).
pub fn http_builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// `router` with every request body bounded to arrive within `limit` of its head; a
/// handler reading a body that is late gets an error naming the limit.
pub fn with_body_deadline(router: axum::Router, limit: Duration) -> axum::Router {
    router.layer(axum::middleware::map_request(move |req: Request| async move {
        req.map(|body| Body::new(DeadlineBody::new(body, limit)))
    }))
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = with_body_deadline(router, limits.body_read);
    serve_with(
        listener,
        &limits,
        http_builder(&limits),
        shutdown,
        move |_peer| hyper_util::service::TowerToHyperService::new(router.clone()),
    )
    .await
}

/// The accept loop of [`serve`] for any hyper service (`service` makes one per
/// connection, given the peer): the connection cap, the deadline for a connection's first
/// byte, `builder`'s head deadline and the drain. Bodies are the service's to bound.
pub async fn serve_with<S, B>(
    listener: TcpListener,
    limits: &Limits,
    builder: Builder<TokioExecutor>,
    shutdown: impl Future<Output = ()>,
    service: impl Fn(std::net::SocketAddr) -> S,
) -> std::io::Result<()>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    // Said once per time the cap is reached, not once per waiting client.
    let mut warned = false;
    loop {
        // Take a slot before accepting: past the cap, clients wait in the accept queue.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                warned = false;
                slot
            }
            Err(_) => {
                if !warned {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "the listener is serving its most connections; new ones wait"
                    );
                    warned = true;
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // No Nagle: streamed answers (server-sent events) write small chunks that must
        // leave at once. A socket that refuses the option still serves.
        let _ = tcp.set_nodelay(true);
        let service = service(peer);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte = limits.header_read;
        tokio::spawn(async move {
            let _slot = slot;
            // hyper's head deadline starts with the first byte: a connection that sends
            // nothing at all would hold its slot for ever.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(first_byte, tcp.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                tracing::debug!(%peer, "connection sent nothing in time; closed");
                return;
            }
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!("requests still open after the drain time; closing them");
        }
    }
    Ok(())
}

/// Why a body was cut.
#[derive(Debug)]
struct BodyTooSlow(Duration);

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {}s of its head",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTooSlow {}

/// A request body that fails once its deadline passes, however steadily it trickles in.
struct DeadlineBody {
    body: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl DeadlineBody {
    fn new(body: Body, limit: Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.body.is_end_stream() {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow(this.limit)))));
        }
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let router = axum::Router::new().route(
            "/echo",
            axum::routing::post(|body: Bytes| async move { format!("{}", body.len()) }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    /// Reads until the server closes, at most `within`; `None` if it did not close.
    async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
        let mut buf = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut buf))
            .await
            .ok()
            .map(|_| String::from_utf8_lossy(&buf).into_owned())
    }

    fn limits() -> Limits {
        Limits {
            header_read: Duration::from_secs(1),
            body_read: Duration::from_secs(1),
            max_connections: 4,
            drain: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn a_partial_head_is_cut() {
        let (addr, _stop) = start(limits()).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert!(
            closed_within(&mut s, Duration::from_secs(5))
                .await
                .is_some()
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    /// A body that trickles in a byte at a time is cut at its deadline, not at every byte.
    #[tokio::test]
    async fn a_trickling_body_is_cut_at_its_deadline() {
        let (addr, _stop) = start(limits()).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = String::new();
        for _ in 0..40 {
            if s.write_all(b"a").await.is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await
            {
                answer.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or_default()));
                if n == 0 || answer.contains("\r\n\r\n") {
                    break;
                }
            }
        }
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    /// A connection that sends nothing, or nothing more after an answer, is closed at
    /// the head deadline: otherwise idle sockets would hold every slot.
    #[tokio::test]
    async fn silent_and_idle_kept_alive_connections_are_closed() {
        let (addr, _stop) = start(limits()).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_within(&mut silent, Duration::from_secs(5))
                .await
                .is_some()
        );
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let answer = closed_within(&mut kept, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_and_normal_requests_pass() {
        let (addr, _stop) = start(limits()).await;
        // Four idle connections hold every slot; a fifth client waits for one.
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        let resp = http
            .post(format!("http://{addr}/echo"))
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), "5");
        // It was served once the idle ones were cut at the head deadline.
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        drop(idle);
    }
}
