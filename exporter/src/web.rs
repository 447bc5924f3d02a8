//! The exporter's routes. Serving them (TLS, basic auth, headers, timeouts, drain) is the
//! shared `quantwatch-web` crate's job, the same code the alert router runs.

use crate::scrape::Scraper;
use crate::web_config::WebSecurity;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub scraper: Arc<Scraper>,
    pub probes: Arc<crate::probe::Probes>,
}

/// The routes of the contract: `/`, `/metrics`, `/healthz`, `/readyz`.
pub fn router(state: AppState, security: &WebSecurity) -> Router {
    let app = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/probe", get(crate::probe::handler))
        .route("/scrape", get(crate::probe::handler))
        .with_state(state);
    security.apply(app, "quantwatch-exporter")
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
    ([(header::CONTENT_TYPE, crate::metrics::TEXT_FORMAT)], body)
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

/// The shared accept loop (timeouts, connection limit, TLS, drain); see `quantwatch_web::serve`.
pub use quantwatch_web::serve::{Limits, serve};
/// Resolves on SIGTERM or SIGINT.
pub use quantwatch_web::signals::shutdown_signal;
