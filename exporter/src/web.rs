//! The exporter's routes. Serving them (TLS, basic auth, headers, timeouts, drain) is the
//! shared `quantwatch-web` crate's job, the same code the alert router runs.

use crate::reload::Live;
use crate::web_config::WebSecurity;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use quantwatch_web::reload::{ReloadStatus, Swap};
use std::sync::Arc;

/// What handlers read: the configuration in force (swapped whole by a SIGHUP reload, so each
/// request takes one version and keeps it) and how the last reload went.
#[derive(Clone)]
pub struct AppState {
    pub live: Arc<Swap<Live>>,
    pub reload: Arc<ReloadStatus>,
}

/// The routes of the contract: `/`, `/metrics`, `/healthz`, `/readyz`, behind the web config in
/// force (read per request, so a reload's users and headers apply at once).
pub fn router(state: AppState, security: Arc<Swap<WebSecurity>>) -> Router {
    let app = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/probe", get(crate::probe::handler))
        .route("/scrape", get(crate::probe::handler))
        .with_state(state);
    WebSecurity::apply_swappable(app, security, "quantwatch-exporter")
}

async fn landing(State(state): State<AppState>) -> impl IntoResponse {
    let live = state.live.get();
    let names = live.collector_names();
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
    let live = state.live.get();
    let budget = live.scraper.budget(
        headers
            .get("x-prometheus-scrape-timeout-seconds")
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = live.scraper.scrape(budget).await;
    body.push_str(&state.reload.exposition(crate::reload::METRIC_PREFIX));
    ([(header::CONTENT_TYPE, crate::metrics::TEXT_FORMAT)], body)
}

/// 200 when every configured source answers; 503 with the failing ones named otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    let live = state.live.get();
    let checks = live
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

/// The shared accept loop (timeouts, connection limit, TLS, drain); see `quantwatch_web::serve`.
pub use quantwatch_web::serve::{Limits, serve, serve_with_tls};
/// Resolves on SIGTERM or SIGINT.
pub use quantwatch_web::signals::shutdown_signal;
