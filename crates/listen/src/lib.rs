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
//! hyper service. [`tls`] is the one home of TLS serving: the same loop behind a rustls
//! handshake, with the client certificate handed to each request.

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

pub mod tls;

pub use tls::ListenError;

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
/// byte, `builder`'s head deadline, the idle cut and the drain. Bodies are the service's
/// to bound.
pub async fn serve_with<S, B>(
    listener: TcpListener,
    limits: &Limits,
    builder: Builder<TokioExecutor>,
    shutdown: impl Future<Output = ()>,
    service: impl Fn(std::net::SocketAddr) -> S + Send + Sync + 'static,
) -> std::io::Result<()>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_peers(
        listener,
        limits,
        builder,
        None,
        shutdown,
        move |peer: Peer| service(peer.addr),
    )
    .await
}

/// Who is on the other end of a connection: its address and, over TLS, the client
/// certificate it presented.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: std::net::SocketAddr,
    /// The client certificate of a TLS connection, when the client presented one.
    pub certificate: Option<tls::ClientCertificate>,
}

/// [`serve_with`], plain or over TLS (`tls`, from [`tls::server_config`]), with the
/// [`Peer`] of each connection: the one accept loop, so every listener gets the same cap,
/// deadlines, idle cut and drain. Over TLS the handshake must be done within the head
/// deadline, and `service` learns the client certificate the handshake verified.
pub async fn serve_peers<S, B>(
    listener: TcpListener,
    limits: &Limits,
    builder: Builder<TokioExecutor>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
    service: impl Fn(Peer) -> S + Send + Sync + 'static,
) -> std::io::Result<()>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let service = Arc::new(service);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
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
        let (tcp, addr) = tokio::select! {
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
        let connection = Connection {
            builder: builder.clone(),
            stopping: stopping.clone(),
            idle: limits.header_read,
            drain: limits.drain,
        };
        let (service, tls) = (service.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let idle = connection.idle;
            match tls {
                None => {
                    // hyper's head deadline starts with the first byte: a connection that
                    // sends nothing at all would hold its slot for ever.
                    let mut first = [0u8; 1];
                    if !matches!(
                        tokio::time::timeout(idle, tcp.peek(&mut first)).await,
                        Ok(Ok(1..))
                    ) {
                        tracing::debug!(peer = %addr, "connection sent nothing in time; closed");
                        return;
                    }
                    let service = service(Peer {
                        addr,
                        certificate: None,
                    });
                    connection.serve(tcp, addr, service).await;
                }
                Some(acceptor) => {
                    // The handshake is part of the head: it must be done by the deadline.
                    let stream = match tokio::time::timeout(idle, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %addr, "TLS handshake not done in time; closed");
                            return;
                        }
                    };
                    let certificate = tls::ClientCertificate::of(stream.get_ref().1);
                    let service = service(Peer { addr, certificate });
                    connection.serve(stream, addr, service).await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot: all of them back means every connection ended.
    let drained = tokio::time::timeout(limits.drain, slots.acquire_many(max as u32)).await;
    if drained.is_err() {
        tracing::warn!("requests still open after the drain time; closing them");
    }
    Ok(())
}

/// What serving one accepted connection needs from its listener.
struct Connection {
    builder: Builder<TokioExecutor>,
    stopping: tokio::sync::watch::Receiver<bool>,
    /// The head deadline, also the longest a connection may sit with nothing in flight.
    idle: Duration,
    drain: Duration,
}

impl Connection {
    /// Serves `io` until it ends, is idle too long, or the listener drains.
    async fn serve<I, S, B>(mut self, io: I, peer: std::net::SocketAddr, service: S)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<B>,
            > + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let activity = Arc::new(Activity::default());
        let service = Tracked {
            inner: service,
            activity: activity.clone(),
        };
        let (idle, drain) = (self.idle, self.drain);
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        // Once asked to close, a connection gets this long to finish (a peer that
        // never answers HTTP/2's GOAWAY and PING would otherwise keep it); then it is
        // dropped.
        let mut closing: Option<tokio::time::Instant> = None;
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let check = (idle / 4).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = self.stopping.changed(), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + drain);
                }
                // An HTTP/2 connection has no head deadline between its requests, and a
                // TLS one none before its first: one with no request in flight for the
                // idle limit is closed (HTTP/1.1's idle wait is hyper's head deadline).
                () = tokio::time::sleep(check), if closing.is_none() => {
                    if activity.idle_for() > idle {
                        tracing::debug!(%peer, "idle connection closed");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + idle);
                    }
                }
                () = tokio::time::sleep_until(closing.unwrap_or(far)), if closing.is_some() => {
                    tracing::debug!(%peer, "connection did not close in time; dropped");
                    break;
                }
            }
        }
    }
}

/// What a connection is doing: its requests in flight (until their answer's body is
/// done) and when the last one ended.
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    since: tokio::time::Instant,
    /// Milliseconds from `since` to the last request's end (or the connection's start).
    last: std::sync::atomic::AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: Default::default(),
            since: tokio::time::Instant::now(),
            last: Default::default(),
        }
    }
}

impl Activity {
    fn idle_for(&self) -> Duration {
        use std::sync::atomic::Ordering;
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Acquire));
        self.since.elapsed().saturating_sub(last)
    }
}

/// Counts a request in flight until its answer's body is done (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let at = u64::try_from(self.0.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last.fetch_max(at, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's service, counting its requests in flight.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked<S>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        >,
    S::Future: Send + 'static,
    B: http_body::Body + Unpin,
{
    type Response = hyper::Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let guard = InFlight::new(self.activity.clone());
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| TrackedBody {
                body,
                _guard: guard,
            }))
        })
    }
}

/// An answer's body that keeps its request counted until it is done.
struct TrackedBody<B> {
    body: B,
    _guard: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
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

    /// An HTTP/2 connection that opened and then sits with no request in flight is closed
    /// at the idle limit (hyper's head deadline covers only HTTP/1.1).
    #[tokio::test]
    async fn an_idle_http2_connection_is_closed() {
        let (addr, _stop) = start(limits()).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The client preface and an empty SETTINGS frame, then silence.
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert!(
            closed_within(&mut s, Duration::from_secs(6))
                .await
                .is_some(),
            "an idle HTTP/2 connection was kept"
        );
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
