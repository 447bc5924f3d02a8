//! Heartbeat monitors over HTTP: `POST /api/v1/heartbeats/{name}` (and `GET` with the API
//! bearer, for cron), and the list of monitors with the dead man's switch.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use crate::plan::heartbeat::{heartbeat_key, views};
use crate::store::StoreError;
use crate::web::auth::{AuthMethod, Principal};

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn unavailable(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "store unavailable");
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "store_unavailable", "reason": "cannot reach the store; retry"}),
    )
}

async fn record(app: &Arc<Shared>, name: &str) -> Response {
    let live = app.live();
    if !live.plan.watch.heartbeats.iter().any(|h| h.name == name) {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": format!("no heartbeat monitor is named {name:?} (see heartbeats in the router configuration)")}),
        );
    }
    let now = crate::core::clock::now_ms();
    if let Err(e) = app.store.signals_heard(&[heartbeat_key(name)], now).await {
        return unavailable(&e);
    }
    app.heartbeat_heard.notify_one();
    reply(
        StatusCode::OK,
        json!({"name": name, "last_seen": crate::core::timefmt::rfc3339(chrono::DateTime::from_timestamp_millis(now).unwrap_or_default(), live.plan.timezone)}),
    )
}

/// `POST /api/v1/heartbeats/{name}`: the job is alive.
pub async fn heartbeat_post(State(app): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    record(&app, &name).await
}

/// `GET /api/v1/heartbeats/{name}`, for `curl` in cron: only with the API bearer. A browser
/// holding a basic-auth login would send a GET for any page that embeds the URL (an image on
/// another site), and the cross-site check covers only state-changing methods; a bearer token
/// is never sent by a browser on its own.
pub async fn heartbeat_get(
    State(app): State<Arc<Shared>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Response {
    if who.method != AuthMethod::ApiToken {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method_not_allowed", "reason": "GET records a heartbeat only with the ROUTER_API_TOKEN bearer (for curl in cron); otherwise POST"}),
        );
    }
    record(&app, &name).await
}

/// `GET /api/v1/heartbeats`: every monitor with its last-seen time, and the dead man's switch.
pub async fn list(State(app): State<Arc<Shared>>) -> Response {
    let now = crate::core::clock::now_ms();
    match views(&app.live().plan, app.store.as_ref(), now).await {
        Ok((heartbeats, peers)) => {
            let live = app.live();
            let deadman = live.plan.watch.deadman.as_ref().map(|d| {
                json!({"alertname": d.alertname, "deadline_seconds": d.deadline.as_secs_f64(), "alertmanagers": peers})
            });
            axum::Json(json!({"heartbeats": heartbeats, "deadman": deadman})).into_response()
        }
        Err(e) => unavailable(&e),
    }
}
