//! Serving an HTTP listener with the limits `axum::serve` lacks: a header-read timeout, an idle timeout, a connection cap, and a shutdown that closes
//! whatever is left once its grace period is over.
//!
//! - **Header-read timeout**: a connection has this long (to within a quarter of it) to send
//!   a complete request head, counted from when it starts waiting for one: its opening, or
//!   the last byte of the previous answer (so a keep-alive connection that sends nothing is
//!   closed after it too). Trickling one byte at a time does not extend it.
//! - **Idle timeout**: a connection on which no byte moves in either direction for this long
//!   (to within a quarter of it) is closed, whatever it is doing (a stalled request body, a
//!   client that stops reading).
//! - **Connection cap**: past it, a new connection is accepted and closed at once (counted),
//!   so file descriptors stay bounded and the kernel's backlog does not fill.
//! - **Shutdown**: no new connection is accepted; idle connections close at once, busy ones
//!   after their request; what is still open after the grace period is dropped (counted).
//!
//! Connections are served by hyper's HTTP/1 builder rather than hyper-util's `auto` builder
//! (which sniffs the protocol by reading the first bytes, outside any limit); both timeouts
//! are kept by one watcher per connection, which looks every quarter of the shorter one.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Longest wait for a complete request head.
    pub header_read_timeout: Duration,
    /// Longest time with no byte read or written on a connection (zero: none).
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for open connections before dropping them.
    pub shutdown_grace: Duration,
}

/// What a listener did, for `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    refused: AtomicU64,
    header_timeouts: AtomicU64,
    idle_closed: AtomicU64,
    dropped_at_shutdown: AtomicU64,
    open: AtomicU64,
}

/// A snapshot of [`ListenerStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerCounts {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: u64,
    /// Connections closed because a request head did not arrive in time.
    pub header_timeouts: u64,
    /// Connections closed by the idle timeout.
    pub idle_closed: u64,
    /// Connections still open when the shutdown grace ran out.
    pub dropped_at_shutdown: u64,
    /// Connections open now.
    pub open: u64,
}

impl ListenerStats {
    /// The current counts.
    pub fn counts(&self) -> ListenerCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ListenerCounts {
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            header_timeouts: get(&self.header_timeouts),
            idle_closed: get(&self.idle_closed),
            dropped_at_shutdown: get(&self.dropped_at_shutdown),
            open: get(&self.open),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then drains for at
/// most the grace period. Each request carries [`ConnectInfo<SocketAddr>`] of its peer.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors (or a connection reset while queued): pause
                    // instead of spinning, as hyper's and axum's own loops do.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let (app, stats, closing) = (app.clone(), stats.clone(), closing_rx.clone());
        connections.spawn(async move {
            // Counts down when the task ends, aborted at the grace's end included.
            let _open = OpenConnection::new(&stats.open);
            serve_connection(stream, peer, app, limits, &stats, closing).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left = u64::try_from(connections.len()).unwrap_or(u64::MAX);
        stats.dropped_at_shutdown.fetch_add(left, Ordering::Relaxed);
        tracing::warn!(
            connections = left,
            grace = ?limits.shutdown_grace,
            "shutdown grace over: closing the connections still open"
        );
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ListenerLimits,
    stats: &ListenerStats,
    mut closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::default();
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        let handling = requests.handling();
        let response = app.clone().oneshot(req);
        async move {
            let _handling = handling;
            response.await
        }
    });
    // No hyper timer: the header-read timeout is the watcher's (see `Activity`).
    let mut conn = pin!(
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades()
    );
    // Made once: made again in each turn of the loop, the counts restarted after a graceful
    // shutdown began.
    let mut expired = pin!(activity.expired(limits.idle_timeout, limits.header_read_timeout));
    let mut graceful = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended");
                }
                return;
            }
            _ = closing.wait_for(|c| *c), if !graceful => {
                graceful = true;
                conn.as_mut().graceful_shutdown();
            }
            expired = expired.as_mut() => {
                match expired {
                    Expired::Idle => {
                        stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "idle connection closed");
                    }
                    Expired::HeadTimeout => {
                        stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "no complete request head in time: closed");
                    }
                }
                return;
            }
        }
    }
}

/// One open connection in the `open` gauge, for as long as it lives.
struct OpenConnection<'a>(&'a AtomicU64);

impl<'a> OpenConnection<'a> {
    fn new(open: &'a AtomicU64) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection's watcher reads: whether bytes moved (and were written) since it last
/// looked, and whether a request is being handled.
///
/// The watcher, not the I/O, keeps time: it looks every quarter of the shorter timeout, so
/// a connection is closed between one and one and a quarter timeouts after the moment that
/// counts. Hyper's own header-read timer armed and dropped a timer entry per request, and the
/// I/O read the clock on every read and write: ~10 % of the CPU per request of a small
/// handler under the chassis overhead benchmark (`docs/benchmarks.md`).
#[derive(Debug, Clone, Default)]
struct Activity {
    flags: Arc<ActivityFlags>,
}

#[derive(Debug, Default)]
struct ActivityFlags {
    /// Bytes moved either way since the watcher last looked.
    moved: AtomicBool,
    /// Bytes written since the watcher last looked.
    wrote: AtomicBool,
    /// A request's head is in and its answer not yet made: the wait for the next head has
    /// not begun.
    handling: AtomicBool,
}

/// Why the watcher closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// No byte moved for the idle timeout.
    Idle,
    /// No complete request head within the header-read timeout.
    HeadTimeout,
}

/// Marks a request as being handled for as long as it lives.
struct Handling(Arc<ActivityFlags>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.store(false, Ordering::Relaxed);
    }
}

/// Sets `flag` (a load first: its cache line is written once per watcher period, not per
/// read or write).
fn raise(flag: &AtomicBool) {
    if !flag.load(Ordering::Relaxed) {
        flag.store(true, Ordering::Relaxed);
    }
}

impl Activity {
    fn read(&self) {
        raise(&self.flags.moved);
    }

    fn wrote(&self) {
        raise(&self.flags.moved);
        raise(&self.flags.wrote);
    }

    /// A request whose head is in, until the returned guard is dropped (its answer made).
    fn handling(&self) -> Handling {
        self.flags.handling.store(true, Ordering::Relaxed);
        Handling(self.flags.clone())
    }

    /// Completes when nothing has moved for `idle`, or when the connection has waited
    /// `head` for a request head (see [`Watch`]). A zero duration disables that limit.
    async fn expired(&self, idle: Duration, head: Duration) -> Expired {
        let mut watch = Watch::new(idle, head);
        let Some(step) = watch.step() else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(step).await;
            let flags = &self.flags;
            let seen = Seen {
                moved: flags.moved.swap(false, Ordering::Relaxed),
                wrote: flags.wrote.swap(false, Ordering::Relaxed),
                handling: flags.handling.load(Ordering::Relaxed),
            };
            if let Some(expired) = watch.look(seen) {
                return expired;
            }
        }
    }
}

/// What the watcher saw on one look.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    moved: bool,
    wrote: bool,
    handling: bool,
}

/// The watcher's decision, apart from the clock and the flags: how long the connection has
/// been quiet and how long it has waited for a request head, in whole looks. The head wait
/// counts from its opening or from the last look that saw a byte written with no request in
/// hand, so the keep-alive wait counts and trickled reads do not extend it.
#[derive(Debug, Clone, Copy)]
struct Watch {
    idle: Duration,
    head: Duration,
    quiet: Duration,
    waiting: Duration,
}

impl Watch {
    fn new(idle: Duration, head: Duration) -> Self {
        Self {
            idle,
            head,
            quiet: Duration::ZERO,
            waiting: Duration::ZERO,
        }
    }

    /// Time between looks: a quarter of the shorter limit (`None`: no limit at all).
    fn step(&self) -> Option<Duration> {
        [self.idle, self.head]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()
            .map(|d| (d / 4).max(Duration::from_millis(1)))
    }

    /// Takes in one look; says when a limit is reached.
    fn look(&mut self, seen: Seen) -> Option<Expired> {
        let step = self.step()?;
        self.quiet = if seen.moved {
            Duration::ZERO
        } else {
            self.quiet + step
        };
        self.waiting = if seen.wrote || seen.handling {
            Duration::ZERO
        } else {
            self.waiting + step
        };
        if !self.idle.is_zero() && self.quiet >= self.idle {
            return Some(Expired::Idle);
        }
        if !self.head.is_zero() && self.waiting >= self.head {
            return Some(Expired::HeadTimeout);
        }
        None
    }
}

/// A stream that notes in [`Activity`] every read or write that moved bytes.
struct WatchedIo<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits(max: usize) -> ListenerLimits {
        ListenerLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(600),
            max_connections: max,
            shutdown_grace: Duration::from_millis(300),
        }
    }

    async fn start(
        limits: ListenerLimits,
    ) -> (
        SocketAddr,
        Arc<ListenerStats>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stats = Arc::new(ListenerStats::default());
        let app = Router::new()
            .route(
                "/",
                axum::routing::get(|| async { "ok" }).post(|body: String| async move { body }),
            )
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    "slow"
                }),
            );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, limits, stats.clone(), async {
            let _ = stopped.await;
        }));
        (addr, stats, stop, task)
    }

    async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(within, stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn a_trickled_head_is_cut_off_and_the_cap_refuses_the_rest() {
        let (addr, stats, _stop, _task) = start(limits(2)).await;
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        let mut second = TcpStream::connect(addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut third = TcpStream::connect(addr).await.expect("connect");
        assert!(closed_by_server(&mut third, Duration::from_secs(2)).await);
        assert!(closed_by_server(&mut slow, Duration::from_secs(3)).await);
        assert!(closed_by_server(&mut second, Duration::from_secs(3)).await);
        let c = stats.counts();
        assert_eq!((c.accepted, c.refused), (2, 1), "{c:?}");
        assert!(c.header_timeouts >= 1, "{c:?}");
    }

    #[test]
    fn the_watch_counts_quiet_and_head_waits_in_looks() {
        let ms = Duration::from_millis;
        let quiet = Seen::default();
        let read = Seen {
            moved: true,
            ..Seen::default()
        };
        let handling = Seen {
            moved: true,
            handling: true,
            ..Seen::default()
        };
        let wrote = Seen {
            moved: true,
            wrote: true,
            handling: false,
        };
        // Head 400 ms, idle 800 ms: a look every 100 ms.
        let mut w = Watch::new(ms(800), ms(400));
        assert_eq!(w.step(), Some(ms(100)));
        // Trickled reads do not extend the head wait: cut at the fourth look.
        assert_eq!([read; 3].map(|s| w.look(s)), [None; 3]);
        assert_eq!(w.look(read), Some(Expired::HeadTimeout));
        // A request being handled, then its answer written: the wait starts after the write.
        let mut w = Watch::new(ms(800), ms(400));
        assert_eq!([handling; 10].map(|s| w.look(s)), [None; 10]);
        assert_eq!(w.look(wrote), None);
        assert_eq!([quiet; 3].map(|s| w.look(s)), [None; 3]);
        assert_eq!(w.look(quiet), Some(Expired::HeadTimeout));
        // No head limit: a look every 200 ms, cut after 800 ms of quiet; a request being
        // handled with bytes moving is never cut.
        let mut w = Watch::new(ms(800), Duration::ZERO);
        assert_eq!(w.step(), Some(ms(200)));
        assert_eq!([handling; 20].map(|s| w.look(s)), [None; 20]);
        assert_eq!([quiet; 3].map(|s| w.look(s)), [None; 3]);
        assert_eq!(w.look(quiet), Some(Expired::Idle));
        assert_eq!(Watch::new(Duration::ZERO, Duration::ZERO).step(), None);
    }

    #[tokio::test]
    async fn the_keep_alive_wait_counts_and_a_slow_handler_does_not() {
        let head_only = ListenerLimits {
            idle_timeout: Duration::ZERO,
            ..limits(4)
        };
        let (addr, stats, _stop, _task) = start(head_only).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // A handler slower than the header-read timeout: its request's head is in.
        s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut answer))
            .await
            .expect("answered in time")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("slow"), "{answer}");
        // Then nothing: the wait for the next head is cut after the timeout (300 ms), well
        // before the 3 s given here; the idle timeout is off.
        let waited = std::time::Instant::now();
        assert!(closed_by_server(&mut s, Duration::from_secs(3)).await);
        assert!(
            waited.elapsed() >= Duration::from_millis(250),
            "{:?}",
            waited.elapsed()
        );
        let c = stats.counts();
        assert_eq!((c.header_timeouts, c.idle_closed), (1, 0), "{c:?}");
    }

    #[tokio::test]
    async fn a_stalled_body_is_closed_by_the_idle_timeout() {
        let (addr, stats, _stop, _task) = start(limits(4)).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
            .await
            .expect("write");
        // The handler waits for the rest of the body, which never comes.
        assert!(closed_by_server(&mut s, Duration::from_secs(3)).await);
        assert_eq!(stats.counts().idle_closed, 1);
    }

    #[tokio::test]
    async fn shutdown_drops_half_open_connections_after_the_grace() {
        let slow_timeouts = ListenerLimits {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            ..limits(8)
        };
        let (addr, stats, stop, task) = start(slow_timeouts).await;
        let mut half = TcpStream::connect(addr).await.expect("connect");
        half.write_all(b"GET / HTTP/1.1\r\nhost")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("serve returned within the grace")
            .expect("join");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(closed_by_server(&mut half, Duration::from_secs(1)).await);
        assert_eq!(stats.counts().dropped_at_shutdown, 1);
    }
}
