//! Our own hyper accept loop, instead of `axum::serve`, because:
//! - the exporter-toolkit web config needs TLS (and client certificates) on the same port;
//! - SIGTERM must stop accepting at once yet let in-flight requests finish;
//! - a stalled client must not hold a connection (and a file descriptor) forever: half-sent
//!   headers, bodies trickled a byte at a time and idle keep-alive connections are closed after
//!   a timeout, and the number of open connections stays below the open-files limit so that
//!   the process can always accept `/healthz` and open its own files and sockets.
//!
//! At the connection limit the loop stops accepting; new connections wait in the kernel's
//! listen backlog until a stalled one times out, instead of failing `accept` with EMFILE.

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connections may stall, how many there may be, and how long a drain lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection must deliver a complete request head within this time of starting to wait
    /// for one. hyper starts this clock whenever the connection waits for a request, so it is
    /// also the idle keep-alive timeout: an idle connection is closed after it.
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
/// other half stays for the process's own files, database and outbound connections.
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    usize::try_from(soft / 2)
        .unwrap_or(16_384)
        .clamp(16, 16_384)
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
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut warned_full = false;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        if slots.available_permits() == 0 && !warned_full {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached; new connections wait in the listen backlog"
            );
            warned_full = true;
        } else if slots.available_permits() > limits.max_connections / 4 {
            warned_full = false;
        }
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
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let body_timeout = limits.body_read_timeout;
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout)));
            // Handlers that record where a request came from (the router's audit trail) read
            // the peer as axum's `ConnectInfo`, as they would under `axum::serve`.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let watcher = graceful.watcher();
        let acceptor = tls().map(tokio_rustls::TlsAcceptor::from);
        let header_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            match acceptor {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let conn = http.serve_connection(TokioIo::new(tls), svc);
                            let _ = watcher.watch(conn).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
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
