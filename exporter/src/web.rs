//! HTTP(S) serving: routes, basic auth, TLS, graceful shutdown.
//!
//! We run our own accept loop on hyper instead of `axum::serve` because the exporter-toolkit
//! web config needs TLS (and client certificates) on the same port, and SIGTERM must stop
//! accepting at once yet let in-flight scrapes finish.

use crate::scrape::Scraper;
use crate::web_config::WebSecurity;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub scraper: Arc<Scraper>,
    pub probes: Arc<crate::probe::Probes>,
}

/// The routes of the contract: `/`, `/metrics`, `/healthz`, `/readyz`.
pub fn router(state: AppState, security: &WebSecurity) -> Router {
    let mut app = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/probe", get(crate::probe::handler))
        .route("/scrape", get(crate::probe::handler))
        .with_state(state);
    if let Some(auth) = security.auth.clone() {
        app = app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let auth = auth.clone();
            async move { basic_auth(auth, req, next).await }
        }));
    }
    if !security.headers.is_empty() {
        let headers: Vec<(HeaderName, HeaderValue)> = security
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        app = app.layer(middleware::from_fn(move |req: Request, next: Next| {
            let headers = headers.clone();
            async move {
                let mut resp = next.run(req).await;
                for (k, v) in headers {
                    resp.headers_mut().insert(k, v);
                }
                resp
            }
        }));
    }
    app
}

async fn landing(State(state): State<AppState>) -> impl IntoResponse {
    let names: Vec<&str> = state
        .scraper
        .collectors()
        .iter()
        .map(|c| c.name())
        .collect();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>quantwatch exporter</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body>\
         <h1>quantwatch-exporter {}</h1><p>Collectors on: {}</p>\
         <ul><li><a href=\"metrics\">/metrics</a></li><li><a href=\"healthz\">/healthz</a></li>\
         <li><a href=\"readyz\">/readyz</a></li></ul></body></html>",
        env!("CARGO_PKG_VERSION"),
        names.join(", ")
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html)
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let budget = state.scraper.budget(
        headers
            .get("x-prometheus-scrape-timeout-seconds")
            .and_then(|v| v.to_str().ok()),
    );
    let body = state.scraper.scrape(budget).await;
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body)
}

/// 200 when every configured source answers; 503 with the failing ones named otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    let checks = state
        .scraper
        .collectors()
        .iter()
        .map(|c| async move { (c.name(), c.ready().await) });
    let results = futures::future::join_all(checks).await;
    let down: Vec<&str> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    if down.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not ready", "unreachable": down})),
        )
            .into_response()
    }
}

async fn basic_auth(auth: crate::web_config::BasicAuth, req: Request, next: Next) -> Response {
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let ok = match creds {
        Some((user, pass)) => tokio::task::spawn_blocking(move || auth.check(&user, &pass))
            .await
            .unwrap_or(false),
        None => false,
    };
    if ok {
        next.run(req).await
    } else {
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"quantwatch-exporter\"",
            )
            .body(Body::from("Unauthorized\n"))
            .expect("a static response is always valid")
    }
}

/// Serves `app` on `listener` (TLS when configured) until `shutdown` completes, then stops
/// accepting and waits up to 30 s for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let svc = TowerToHyperService::new(app.clone());
                let watcher = graceful.watcher();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut http = hyper::server::conn::http1::Builder::new();
                    http.timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30));
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
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within 30s");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
