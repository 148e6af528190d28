//! Serving HTTP connections with a bound on every stage, so a hostile or broken client
//! costs bounded memory and time: a cap on open connections, a deadline for request
//! headers, an idle timeout (no request in flight) for HTTP/1 keep-alive and HTTP/2
//! alike, a cap on header size, and a deadline on writes that make no progress (a client
//! that never reads its SSE stream). Request bodies get their own deadline in the router
//! ([`crate::api::router`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Bounds on client connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, counted from when the server
    /// starts waiting for them; also how long a connection may stay open with no
    /// request in flight (HTTP/1 keep-alive and HTTP/2 alike; HTTP/2 pings do not count).
    pub header_timeout: Duration,
    /// The largest request head (request line and headers), in bytes: more is 431.
    pub max_header_bytes: usize,
    /// How long a write may make no progress before the connection is dropped.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// The runtimes connections are served on, each with one thread of its own: a
/// connection, and every task its requests spawn, stays on one thread. One runtime with
/// a worker per core would do the same work, but tokio wakes an idle worker whenever a
/// task is woken from outside (a run's end, from a guest or store thread), so at one
/// request at a time both threads slept and woke about twice per run.
pub struct ConnectionThreads {
    runtimes: Vec<Handle>,
    next: AtomicUsize,
}

impl ConnectionThreads {
    /// Connections spread over `runtimes` in turn.
    ///
    /// # Panics
    ///
    /// If `runtimes` is empty.
    pub fn new(runtimes: Vec<Handle>) -> Self {
        assert!(!runtimes.is_empty(), "connections need a runtime");
        ConnectionThreads {
            runtimes,
            next: AtomicUsize::new(0),
        }
    }

    /// Where the next connection goes: each in turn, so open connections (wrk's, or a
    /// browser's few) spread evenly.
    fn next(&self) -> &Handle {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.runtimes[turn % self.runtimes.len()]
    }
}

/// Serves `router` on `listener` until `shutdown`, each connection on one of `threads`;
/// then stops accepting, asks open connections to close after their current request,
/// and returns once they have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    threads: ConnectionThreads,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    let max_connections = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or the peer left before we accepted:
                    // wait a moment rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        // Accepted streams are registered with this runtime's I/O driver; the connection
        // registers its own with the driver of the thread it is served on, or this
        // thread would poll its socket and wake that one at every request.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, "cannot hand over a connection: {e}");
                continue;
            }
        };
        let activity = Arc::new(Activity::default());
        let service = Tracked {
            inner: router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.map(Body::new)
                }),
            activity: activity.clone(),
        };
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let (header_timeout, write_timeout) = (limits.header_timeout, limits.write_timeout);
        threads.next().spawn(async move {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, "cannot serve a connection: {e}");
                    return;
                }
            };
            // Telling HTTP/1 from HTTP/2 waits for the first bytes with no deadline of
            // its own, so a client that connects and says nothing is timed out here.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let io = TokioIo::new(WriteDeadline::new(stream, write_timeout));
            let connection =
                builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
            let mut connection = std::pin::pin!(connection);
            let mut closing = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                        break;
                    }
                    // Let the request in flight finish, then close.
                    () = activity.idle_for(header_timeout), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    () = shutdown.cancelled(), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
            drop(permit);
        });
    }
    // Every connection holds a permit until it has closed.
    let _ = permits
        .acquire_many(u32::try_from(max_connections).unwrap_or(u32::MAX))
        .await;
}

/// What a connection is doing, to close it once it has had no request in flight for a
/// while. Only requests count: HTTP/2 pings, or a request still arriving, do not.
#[derive(Default)]
struct Activity {
    /// Requests whose response is not yet fully sent.
    in_flight: AtomicUsize,
    /// Bumped whenever the count changes, so a timer started while idle is stale.
    changes: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.bump();
        InFlight(self.clone())
    }

    fn bump(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            let seen = self.changes.load(Ordering::Acquire);
            if self.in_flight.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => {
                        if self.changes.load(Ordering::Acquire) == seen {
                            return;
                        }
                    }
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One request in flight: from its arrival until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.bump();
    }
}

/// The router, counting each request in flight on its connection's [`Activity`].
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> tower::Service<axum::http::Request<Incoming>> for Tracked<S>
where
    S: tower::Service<
            axum::http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(CountedBody {
                    body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A response body that keeps its request counted in flight until it is done.
struct CountedBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for CountedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A stream whose writes fail once one has been pending for the deadline: a peer that
/// stops reading cannot hold a connection (and what is queued for it) forever.
struct WriteDeadline {
    stream: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
        WriteDeadline {
            stream,
            timeout,
            stalled: None,
        }
    }

    /// Passes a write's result through, arming the deadline while it is pending.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer read nothing for {} s", timeout.as_secs()),
        )))
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream as StdStream;

    use axum::routing::get;

    use super::*;

    /// The thread a request ran on, and the one a task it spawned ran on.
    async fn threads() -> String {
        let here = std::thread::current().id();
        let spawned = tokio::spawn(async { std::thread::current().id() })
            .await
            .expect("spawned task");
        format!("{here:?} {spawned:?}")
    }

    /// Sends `GET /` on `stream` (kept alive) and returns the body.
    fn get_body(stream: &mut StdStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("send");
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        String::from_utf8(body).expect("text")
    }

    /// Each connection stays on one of the threads, with what its requests spawn, and
    /// connections take the threads in turn.
    #[test]
    fn a_connection_and_its_tasks_stay_on_one_thread() {
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime")
        };
        let (first, second) = (runtime(), runtime());
        let threads_of =
            ConnectionThreads::new(vec![first.handle().clone(), second.handle().clone()]);
        let listener = first
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let server = first.spawn(serve(
            listener,
            Router::new().route("/", get(threads)),
            ConnectionLimits::default(),
            threads_of,
            shutdown.clone(),
        ));
        let (mut a, mut b) = (
            StdStream::connect(address).expect("connect"),
            StdStream::connect(address).expect("connect"),
        );
        let a1 = get_body(&mut a);
        let b1 = get_body(&mut b);
        let a2 = get_body(&mut a);
        let same = |answer: &str| {
            let (request, task) = answer.split_once(' ').expect("two threads");
            assert_eq!(
                request, task,
                "a spawned task stays on its request's thread"
            );
            request.to_owned()
        };
        assert_eq!(same(&a1), same(&a2), "a connection stays on its thread");
        assert_ne!(same(&a1), same(&b1), "connections take the threads in turn");
        drop((a, b));
        shutdown.cancel();
        first.block_on(server).expect("server");
    }
}
