//! Our own hyper accept loop, instead of `axum::serve`, because:
//! - the exporter-toolkit web config needs TLS (and client certificates) on the same port;
//! - SIGTERM must stop accepting at once yet let in-flight requests finish;
//! - a stalled client must not hold a connection (and a file descriptor) forever: half-sent
//!   headers, bodies trickled a byte at a time and idle keep-alive connections are closed after
//!   a timeout, and the number of open connections stays below the open-files limit so that
//!   the process can always accept `/healthz` and open its own files and sockets.
//!
//! At the connection limit the loop closes the connection idle the longest (one that has
//! not sent a request yet, or a keep-alive between requests), as nginx reuses keep-alive
//! connections, so that a flood of idle connections cannot keep `/healthz` and the webhook out
//! for a whole header timeout per batch. Only when every connection has a request in flight
//! does a new one wait in the kernel's listen backlog, instead of failing `accept` with EMFILE.
//!
//! At start both binaries raise their soft open-files limit to the hard one
//! ([`raise_open_files_limit`], called by [`crate::logging::init`]), as Go services do: the
//! usual soft 1,024 of systemd and of a shell would otherwise cap the connection limit at 512.

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connections may stall, how many there may be, and how long a drain lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection must deliver a complete request head within this time of starting to wait
    /// for one. hyper (1.x, `Conn::poll_read_head`) starts this clock when it first polls for
    /// a head, which is as soon as the connection is served, before any byte arrived, and again
    /// after each response: so it is also the first-byte deadline and the idle keep-alive
    /// timeout. A connection that never sends a byte is closed after it.
    pub header_read_timeout: Duration,
    /// A request body must arrive completely within this time of its head; otherwise reading
    /// it fails (the handler answers its error) and the connection is closed.
    pub body_read_timeout: Duration,
    /// Open connections at most; the loop stops accepting while at the limit.
    pub max_connections: usize,
    /// How long in-flight requests get after the shutdown signal.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Half the soft open-files limit (512 under the usual 1,024), between 16 and 16,384: the
/// other half stays for the process's own files, database and outbound connections. Read
/// when called, so after [`raise_open_files_limit`] it is half the raised limit.
pub fn default_max_connections() -> usize {
    let soft = open_files_limit().map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 2)
        .unwrap_or(16_384)
        .clamp(16, 16_384)
}

/// The process's open-files limit, `(soft, hard)`.
fn open_files_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0)
        .then_some((lim.rlim_cur, lim.rlim_max))
}

/// What [`raise_open_files_limit`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with.
    pub soft_before: u64,
    /// The soft limit now.
    pub soft: u64,
    pub hard: u64,
}

static OPEN_FILES: OnceLock<Option<OpenFiles>> = OnceLock::new();

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, once per process, before the
/// configuration (and so [`default_max_connections`]) is read. A service manager's soft
/// default of 1,024 is a compatibility value for `select(2)`, which we do not use; the hard
/// limit is what the administrator allows. Returns the limits (`None` if they cannot be read);
/// [`serve_with_tls`] logs them.
pub fn raise_open_files_limit() -> Option<OpenFiles> {
    *OPEN_FILES.get_or_init(|| {
        let (soft_before, hard) = open_files_limit()?;
        // An unlimited hard limit cannot be the soft one (the kernel caps open files at
        // fs.nr_open, 1,048,576 by default): then try that.
        for want in [hard, hard.min(1 << 20)] {
            if soft_before >= want {
                break;
            }
            let lim = libc::rlimit {
                rlim_cur: want,
                rlim_max: hard,
            };
            // SAFETY: setrlimit only reads the struct we pass. A failure keeps the soft
            // limit as it was.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
                break;
            }
        }
        let (soft, hard) = open_files_limit()?;
        Some(OpenFiles {
            soft_before,
            soft,
            hard,
        })
    })
}

/// Serves `app` on `listener` (TLS when `tls` is set) until `shutdown` completes, then stops
/// accepting and waits up to `limits.drain_timeout` for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    serve_with_tls(listener, app, move || tls.clone(), limits, shutdown).await
}

/// [`serve`] with the TLS config asked of `tls` for each accepted connection, so a reloaded
/// web config's certificate (or TLS turned on or off) applies from the next connection on;
/// connections already open keep the config they were accepted with.
pub async fn serve_with_tls(
    listener: TcpListener,
    app: Router,
    tls: impl Fn() -> Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    match raise_open_files_limit() {
        Some(f) => tracing::info!(
            soft_before = f.soft_before,
            soft = f.soft,
            hard = f.hard,
            max_connections = limits.max_connections,
            "open-files limit"
        ),
        None => tracing::warn!("cannot read the open-files limit"),
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let conns = Arc::new(Conns::default());
    let mut warned_full = false;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the limit: make room by closing the connection idle the longest. Only if
                // every connection is busy does this one wait for a slot (and the next ones
                // in the listen backlog).
                let closed = conns.close_idlest();
                if !warned_full {
                    if closed {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "connection limit reached; closing the connections idle the longest to make room"
                        );
                    } else {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "connection limit reached with every connection busy; new connections wait in the listen backlog"
                        );
                    }
                    warned_full = true;
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        if slots.available_permits() > limits.max_connections / 4 {
            warned_full = false;
        }
        let _ = stream.set_nodelay(true);
        let conn_state = conns.open();
        let app = app.clone();
        let body_timeout = limits.body_read_timeout;
        let in_flight = conn_state.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Busy::new(in_flight.clone());
            let mut req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout)));
            // Handlers that record where a request came from (the router's audit trail) read
            // the peer as axum's `ConnectInfo`, as they would under `axum::serve`.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let answer = app.clone().oneshot(req);
            async move {
                let resp = answer.await?;
                // Busy until the response body is written out, not just produced.
                Ok::<_, std::convert::Infallible>(resp.map(|b| {
                    Body::new(BusyBody {
                        inner: b,
                        _busy: busy,
                    })
                }))
            }
        });
        let watcher = graceful.watcher();
        let acceptor = tls().map(tokio_rustls::TlsAcceptor::from);
        let header_timeout = limits.header_read_timeout;
        let conns = conns.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let served = async {
                match acceptor {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), svc);
                        let _ = watcher.watch(conn).await;
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => {
                                let conn = http.serve_connection(TokioIo::new(tls), svc);
                                let _ = watcher.watch(conn).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                _ = served => {}
                _ = conn_state.close.notified() => {
                    tracing::debug!(%peer, "closed an idle connection to make room for a new one");
                }
            }
            conns.close(conn_state.id);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests did not finish within {:?}",
            limits.drain_timeout
        );
    }
}

/// The open connections, for closing the one idle the longest when the limit is reached.
#[derive(Default)]
struct Conns {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

struct ConnState {
    id: u64,
    /// Requests being answered; 0 while the connection waits for a request (idle).
    busy: AtomicUsize,
    /// When it last became idle ([`mono_ms`]).
    idle_since: AtomicU64,
    close: tokio::sync::Notify,
}

/// Milliseconds on a monotonic clock (since its first use in the process).
fn mono_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Conns {
    fn open(&self) -> Arc<ConnState> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(ConnState {
            id,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(mono_ms()),
            close: tokio::sync::Notify::new(),
        });
        self.lock().insert(id, c.clone());
        c
    }

    fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Ask the connection idle the longest to close; `false` when every connection is busy.
    /// Its slot frees once its task has dropped the connection.
    fn close_idlest(&self) -> bool {
        let mut open = self.lock();
        let idlest = open
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed))
            .map(|c| c.id);
        match idlest.and_then(|id| open.remove(&id)) {
            Some(c) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request in flight on a connection, from its head until its response body is written.
struct Busy(Arc<ConnState>);

impl Busy {
    fn new(conn: Arc<ConnState>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(mono_ms(), Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its connection busy until it is written out (or dropped).
struct BusyBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once its deadline passes, so a client trickling a body cannot
/// hold a handler (and its connection) open.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

/// The body did not arrive within the body-read timeout.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimeout(Duration);

impl http_body::Body for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
