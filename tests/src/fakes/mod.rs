//! Loopback fakes of the chat vendors the router delivers to. No network reaches the real
//! services, so each fake ENFORCES what the real one checks: the signature and its 1-hour
//! window, the payload shape, the byte limits with the real error codes, and the rate limits
//! as the real services apply them (DingTalk: more than 20 in a minute answers 130101 and bans
//! the robot for 10 minutes). A fake that accepted anything would prove nothing.
//!
//! Each fake runs on its own thread and tokio runtime, so sync and async tests can use it; it
//! stops on Drop.

pub mod aliyun;
pub mod aliyun_voice;
pub mod dingtalk;
pub mod feishu;
pub mod freqtrade;
pub mod slack;
pub mod webhook;
pub mod wecom;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Percent-encoding as the vendors sign it (RFC 3986: every byte but the unreserved
/// `A-Z a-z 0-9 - _ . ~` as `%XX`, upper-case hex): Aliyun's canonical query, DingTalk's `sign`.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How a fake answers, switchable while it runs (to simulate an outage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Behave like the real service.
    Normal,
    /// Answer every request with this HTTP status (e.g. 502 from a broken proxy), checking nothing.
    Status(u16),
    /// Accept the connection and never answer (the client's timeout fires).
    Hang,
    /// Behave like the real service, but answer only after this long: a send stays in flight
    /// meanwhile (for faults that must strike between a send and its bookkeeping).
    Slow(Duration),
}

/// One request a fake processed in Normal mode, with its outcome.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub body: serde_json::Value,
    /// Vendor error code answered (0 = accepted).
    pub errcode: i64,
}

/// State shared by the HTTP handler and the test.
pub(crate) struct Shared {
    pub mode: Mode,
    pub received: Vec<Received>,
    /// Instants of the requests that count against the rate limit.
    pub window: Vec<Instant>,
    pub banned_until: Option<Instant>,
    /// Images the fake fetched from URLs in messages, as the vendor's servers do.
    pub fetched: Vec<Fetched>,
}

/// One image URL a fake fetched (DingTalk markdown `![..](url)`, Slack image blocks).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: String,
    /// HTTP status, 0 when the fetch failed at the transport level.
    pub status: u16,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Fetched {
    /// A 200 answer whose type and bytes are a PNG.
    pub fn is_png(&self) -> bool {
        self.status == 200
            && self.content_type == "image/png"
            && self.bytes.starts_with(b"\x89PNG\r\n\x1a\n")
    }
}

/// GET an image the way a vendor's servers do: no credentials, a short timeout.
pub(crate) async fn fetch_image(url: &str) -> Fetched {
    let out = |status, content_type: String, bytes| Fetched {
        url: url.to_string(),
        status,
        content_type,
        bytes,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("fake's HTTP client");
    match client.get(url).send().await {
        Err(_) => out(0, String::new(), Vec::new()),
        Ok(r) => {
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            out(status, ct, bytes)
        }
    }
}

pub(crate) fn record_fetch(shared: &Arc<Mutex<Shared>>, f: Fetched) {
    shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .fetched
        .push(f);
}

impl Shared {
    fn new() -> Self {
        Shared {
            mode: Mode::Normal,
            received: Vec::new(),
            window: Vec::new(),
            banned_until: None,
            fetched: Vec::new(),
        }
    }
}

/// A running fake server.
pub struct FakeServer {
    addr: SocketAddr,
    pub(crate) shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    pub(crate) fn spawn(
        make: impl FnOnce(Arc<Mutex<Shared>>) -> axum::Router + Send + 'static,
    ) -> FakeServer {
        let shared = Arc::new(Mutex::new(Shared::new()));
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for a fake");
        std_listener
            .set_nonblocking(true)
            .expect("set the fake's listener non-blocking");
        let addr = std_listener.local_addr().expect("fake listener address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let s2 = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("fake runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)
                    .expect("tokio listener for a fake");
                let app = make(s2);
                // Not a graceful shutdown: a Hang-mode request would hold it for an hour.
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        FakeServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// Every request processed in Normal mode, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Bodies of the accepted messages (errcode 0), in arrival order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.lock()
            .received
            .iter()
            .filter(|r| r.errcode == 0)
            .map(|r| r.body.clone())
            .collect()
    }

    /// Every image this fake fetched from a message, in order.
    pub fn fetched(&self) -> Vec<Fetched> {
        self.lock().fetched.clone()
    }

    /// How many requests were answered with this vendor error code.
    pub fn count_errcode(&self, code: i64) -> usize {
        self.lock()
            .received
            .iter()
            .filter(|r| r.errcode == code)
            .count()
    }

    /// Wait until at least `n` messages were accepted or `timeout` passes; returns them.
    pub fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.accepted();
            if a.len() >= n || Instant::now() >= deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Apply a sliding-window limit: `max` requests per `window`; a request over it is refused and,
/// when `ban` is set, every request until the ban ends is refused too. Returns true if allowed.
pub(crate) fn rate_allow(
    s: &mut Shared,
    max: usize,
    window: Duration,
    ban: Option<Duration>,
) -> bool {
    let now = Instant::now();
    if s.banned_until.is_some_and(|b| now < b) {
        return false;
    }
    s.window.retain(|t| now.duration_since(*t) < window);
    if s.window.len() >= max {
        if let Some(b) = ban {
            s.banned_until = Some(now + b);
        }
        return false;
    }
    s.window.push(now);
    true
}

/// What a handler should do before checking anything, given the mode.
pub(crate) async fn mode_gate(shared: &Arc<Mutex<Shared>>) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let mode = shared.lock().unwrap_or_else(|p| p.into_inner()).mode;
    match mode {
        Mode::Normal => None,
        Mode::Status(code) => {
            let status = axum::http::StatusCode::from_u16(code)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            Some((status, "fake outage").into_response())
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Some(axum::http::StatusCode::GATEWAY_TIMEOUT.into_response())
        }
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

pub(crate) fn record(shared: &Arc<Mutex<Shared>>, body: serde_json::Value, errcode: i64) {
    shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .received
        .push(Received {
            at: Instant::now(),
            body,
            errcode,
        });
}
