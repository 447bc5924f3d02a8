//! `POST /webhook/alertmanager`: authenticate, bound the body, parse, route, and answer 2xx only
//! after a durable commit.
//!
//! Commits are grouped: concurrent requests queue their events to one writer task that stores
//! everything waiting in one transaction, then answers each request. One fsync then covers many
//! webhooks, which is what makes durable intake fast on SQLite.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use crate::core::model::parse_payload;
use crate::store::RoutedEvent;

/// Longest a webhook waits for its commit before answering 503.
const INGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Whether `Authorization: Bearer` carries `expected`, compared in constant time.
pub fn token_matches(headers: &HeaderMap, expected: &str) -> bool {
    quantwatch_web::auth::bearer_token(headers)
        .is_some_and(|got| quantwatch_web::auth::secrets_equal(got.as_bytes(), expected.as_bytes()))
}

/// `application/json`, with or without parameters such as `charset=utf-8`. Anything else
/// (text/plain, forms, multipart: what a cross-site HTML form can send without a preflight)
/// is refused before the body is read.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

pub async fn webhook(State(app): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let live = app.live();
    let outcome = |o: &str| app.metrics.webhooks.with_label_values(&[o]).inc();
    if !crate::web::auth::webhook_allowed(&app, &headers).await {
        outcome("unauthorized");
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "unauthorized", "reason": "missing or wrong credentials: send ROUTER_WEBHOOK_TOKEN as a bearer token or as the basic-auth password"}),
        );
    }
    if !is_json(&headers) {
        outcome("bad_request");
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"error": "unsupported_media_type", "reason": "the webhook accepts Content-Type: application/json only"}),
        );
    }
    let limit = live.max_body_bytes;
    let too_large = || {
        reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "too_large", "reason": format!("body exceeds {limit} bytes")}),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        outcome("too_large");
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            // to_bytes fails for an over-long body or a broken connection; tell them apart.
            let is_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util_limit::LengthLimitError>())
                || e.to_string().contains("length limit");
            if is_limit {
                outcome("too_large");
                return too_large();
            }
            outcome("bad_request");
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "reason": format!("cannot read body: {e}")}),
            );
        }
    };
    let events = match parse_payload(&bytes) {
        Ok(ev) => ev,
        Err(e) => {
            outcome("bad_request");
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "reason": e.to_string()}),
            );
        }
    };
    // The dead man's switch: Watchdog alerts are heartbeats, not alerts to route.
    let now = crate::core::clock::now_ms();
    let taken = crate::plan::heartbeat::take_watchdog(&live.plan, app.store.as_ref(), events, now);
    let events = match taken.await {
        Ok((rest, heard)) => {
            if heard {
                app.heartbeat_heard.notify_one();
            }
            rest
        }
        Err(e) => {
            app.metrics.store_up.set(0);
            outcome("store_error");
            tracing::error!(error = %e, "cannot store the Watchdog heartbeat; answering 503 so Alertmanager retries");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "store_unavailable", "reason": "the alert store cannot take the alerts now; retry"}),
            );
        }
    };
    let routed: Vec<RoutedEvent> = events
        .into_iter()
        .map(|event| crate::plan::routing::route_event(&live.plan, event, now))
        .collect();
    let n = routed.len();
    // A hung database must not hang Alertmanager: answer 503 and let it retry. Should the
    // commit still land afterwards, the retry is recognised as a duplicate.
    let stored = tokio::time::timeout(INGEST_TIMEOUT, app.ingest.ingest(routed))
        .await
        .unwrap_or_else(|_| {
            Err(crate::store::ingest::IngestError {
                message: format!("no commit within {INGEST_TIMEOUT:?}"),
                disk_full: false,
            })
        });
    match stored {
        Ok(flags) => {
            app.metrics.store_up.set(1);
            let accepted = flags.iter().filter(|f| **f).count();
            outcome(if accepted > 0 || n == 0 {
                "accepted"
            } else {
                "duplicate"
            });
            reply(
                StatusCode::OK,
                json!({"status": "stored", "accepted": accepted, "duplicates": n - accepted}),
            )
        }
        Err(e) => {
            app.metrics.store_up.set(0);
            outcome("store_error");
            tracing::error!(error = %e, "cannot store webhook; answering 503 so Alertmanager retries");
            let reason = if e.disk_full {
                "the alert store's disk is full; nothing of this request was stored; retry"
            } else {
                "the alert store cannot take the alerts now; retry"
            };
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "store_unavailable", "reason": reason}),
            )
        }
    }
}

/// axum re-exports the limit error only through its source chain; name the type we look for.
mod http_body_util_limit {
    pub use http_body_util::LengthLimitError;
}
