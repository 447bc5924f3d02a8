//! `GET /charts/{token}.png`: the chart images behind the signed URLs in messages.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use crate::context::ChartService;
use crate::context::images::{TokenError, verify};

fn refuse(status: StatusCode, error: &str, reason: String) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"error": error, "reason": reason})),
    )
        .into_response()
}

/// `GET /charts/{token}.png`: see [`respond`].
pub async fn get_chart(State(app): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let live = app.live();
    respond(&live.charts, &file, crate::core::clock::now().timestamp())
}

/// The answer for `/charts/{file}` at `now_s`: 200 image/png; 403 (altered, forged or
/// malformed); 410 (expired); 404 when this process does not hold the image (restart,
/// another replica, evicted) or chart links are off. Errors are JSON `{error, reason}`.
pub fn respond(charts: &ChartService, file: &str, now_s: i64) -> Response {
    let Some(secret) = charts.secret() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "chart links are disabled: ROUTER_ACK_SECRET is not set".into(),
        );
    };
    let Some(token) = file.strip_suffix(".png") else {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            TokenError::Malformed.to_string(),
        );
    };
    match verify(secret, token, now_s) {
        Err(TokenError::Expired) => refuse(
            StatusCode::GONE,
            "expired",
            TokenError::Expired.to_string(),
        ),
        Err(e) => refuse(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        Ok(id) => match charts.images().get(&id, now_s) {
            Some(png) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "image/png"),
                    (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
                ],
                png.as_ref().clone(),
            )
                .into_response(),
            None => refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                "this router does not hold the chart (restarted, another replica rendered it, or it was evicted)".into(),
            ),
        },
    }
}
