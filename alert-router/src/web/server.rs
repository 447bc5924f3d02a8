//! HTTP surface: landing page, health, metrics, the webhook, and the read-only notification API,
//! behind one authentication gate ([`crate::web::auth::require`]), a cross-site check for
//! state-changing requests and browser hardening headers on HTML.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::handler::Handler;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::Shared;
use crate::web::{alerts, auth, intake, listing, page, pages};

/// The route table with its gates. Add routes in [`routes`]: every route there is behind
/// the authentication gate unless `auth::is_anonymous` lists it.
pub fn router(app: Arc<Shared>) -> Router {
    routes()
        .layer(middleware::from_fn_with_state(app.clone(), auth::require))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            auth::refuse_cross_site,
        ))
        .layer(middleware::from_fn(auth::harden))
        .with_state(app)
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(pages::status_page))
        .route("/static/style.css", get(page::stylesheet))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhook/alertmanager", post(intake::webhook))
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{fingerprint}/ack", post(alerts::ack_api))
        .route("/api/v1/alerts/{fingerprint}/history", get(alerts::history))
        .route("/api/v1/heartbeats", get(crate::web::heartbeat::list))
        .route(
            "/api/v1/heartbeats/{name}",
            post(crate::web::heartbeat::heartbeat_post).get(crate::web::heartbeat::heartbeat_get),
        )
        .route(
            "/ack/{token}",
            get(pages::ack_link_page)
                .post(pages::ack_link_post.layer(DefaultBodyLimit::max(alerts::MAX_ACK_BODY))),
        )
        .route("/charts/{file}", get(crate::web::charts::get_chart))
        .route(
            "/runbooks/{alertname}",
            get(crate::web::runbooks::get_runbook),
        )
        .route(
            "/callbacks/aliyun/voice/{token}",
            post(
                crate::web::receipts::aliyun_voice_receipt.layer(DefaultBodyLimit::max(
                    crate::web::receipts::MAX_RECEIPT_BODY,
                )),
            ),
        )
        .route(
            "/silence/{token}",
            get(crate::web::silences::link_page).post(
                crate::web::silences::link_post.layer(DefaultBodyLimit::max(alerts::MAX_ACK_BODY)),
            ),
        )
        .route("/api/v1/silences", get(crate::web::silences::list_api))
        .route(
            "/api/v1/silences/{id}/expire",
            post(
                crate::web::silences::expire_api.layer(DefaultBodyLimit::max(alerts::MAX_ACK_BODY)),
            ),
        )
}

async fn readyz(State(app): State<Arc<Shared>>) -> Response {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(3), app.store.ping()).await;
    match ping.unwrap_or_else(|_| Err(crate::store::StoreError::Timeout)) {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store not reachable").into_response()
        }
    }
}

async fn metrics(State(app): State<Arc<Shared>>) -> Response {
    // Bounded like `/readyz`: a store that is down must not hold the scrape past Prometheus'
    // timeout, or `store_up 0` could never be seen while it matters.
    let stats = tokio::time::timeout(std::time::Duration::from_secs(3), app.store.queue_stats())
        .await
        .unwrap_or_else(|_| Err(crate::store::StoreError::Timeout));
    match stats {
        Ok(s) => {
            app.metrics.store_up.set(1);
            app.metrics.queue_depth.set(s.pending);
            let age = s
                .oldest_created_at
                .map(|t| (crate::core::clock::now_ms() - t).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            app.metrics.oldest_pending.set(age);
        }
        Err(e) => {
            app.metrics.store_up.set(0);
            tracing::warn!(error = %e, "cannot read queue statistics");
        }
    }
    app.metrics
        .sqlite_heap
        .set(crate::store::sqlite::heap_bytes());
    if let Some(h) = quantwatch_web::heap::stats() {
        let set = |state: &str, v: u64| {
            app.metrics
                .heap
                .with_label_values(&[state])
                .set(i64::try_from(v).unwrap_or(i64::MAX))
        };
        set("in_use", h.in_use);
        set("free", h.free);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/notifications?state=&limit=&cursor=`: where permanent errors become visible
/// with their channel; newest first, by page (`web::listing`).
async fn notifications(
    State(app): State<Arc<Shared>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match listing::query(q) {
        Ok(q) => q,
        Err(reason) => return listing::bad_request(reason),
    };
    if let Some(s) = &q.state
        && !matches!(s.as_str(), "pending" | "sent" | "failed")
    {
        return listing::bad_request("state must be pending, sent or failed".into());
    }
    let (limit, cursor) = match listing::page_params(q.limit.as_deref(), q.cursor.as_deref()) {
        Ok(v) => v,
        Err(reason) => return listing::bad_request(reason),
    };
    match app
        .store
        .notifications_page(q.state.as_deref(), cursor.as_ref(), limit)
        .await
    {
        Ok(page) => axum::Json(listing::page_json("notifications", &page)).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list notifications");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    json!({"error": "store_unavailable", "reason": "cannot read the store"}),
                ),
            )
                .into_response()
        }
    }
}
