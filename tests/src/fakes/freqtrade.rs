//! A loopback fake of freqtrade's REST API (`freqtrade/rpc/api_server`) for the trading
//! sources' tests. It enforces what freqtrade enforces (`api_auth.http_basic_or_jwt_token`):
//! HTTP basic auth on every `/api/v1/` route (a missing or wrong `Authorization` answers 401
//! `{"detail":"Unauthorized"}`), and answers `/status`, `/health` and `/show_config` with the
//! shapes freqtrade's own schemas give them (only the fields the exporter reads are filled).

use super::{FakeServer, mode_gate, record};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// What the fake bot says; tests change it while the fake runs.
#[derive(Debug, Clone)]
pub struct BotView {
    /// `/api/v1/status`: one object per open trade (`trade_id`, `pair`, `strategy`,
    /// `profit_abs`, `current_rate`).
    pub status: Value,
    /// `/api/v1/health` `last_process_ts` (Unix seconds).
    pub last_process_ts: i64,
    /// `/api/v1/show_config` `state` ("running", "stopped", "paused").
    pub state: String,
    pub strategy: String,
}

pub struct FakeFreqtradeApi {
    pub server: FakeServer,
    view: Arc<Mutex<BotView>>,
}

impl FakeFreqtradeApi {
    pub fn start(username: &str, password: &str, view: BotView) -> FakeFreqtradeApi {
        let view = Arc::new(Mutex::new(view));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        );
        let v2 = view.clone();
        let server = FakeServer::spawn(move |shared| {
            let st = (expected, v2, shared);
            axum::Router::new()
                .route("/api/v1/{endpoint}", get(answer))
                .with_state(st)
        });
        FakeFreqtradeApi { server, view }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn set(&self, f: impl FnOnce(&mut BotView)) {
        f(&mut self.view.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Requests answered 401 so far.
    pub fn unauthorized(&self) -> usize {
        self.server.count_errcode(401)
    }
}

type St = (String, Arc<Mutex<BotView>>, Arc<Mutex<super::Shared>>);

async fn answer(
    State((expected, view, shared)): State<St>,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    if let Some(r) = mode_gate(&shared).await {
        return r;
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != expected {
        record(&shared, json!({ "endpoint": endpoint }), 401);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"detail": "Unauthorized"})),
        )
            .into_response();
    }
    record(&shared, json!({ "endpoint": endpoint }), 0);
    let v = view.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let body = match endpoint.as_str() {
        "status" => v.status,
        "health" => json!({
            "last_process": chrono::DateTime::from_timestamp(v.last_process_ts, 0)
                .map(|t| t.to_rfc3339()),
            "last_process_ts": v.last_process_ts,
        }),
        "show_config" => json!({ "state": v.state, "strategy": v.strategy, "runmode": "live" }),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"detail": "Not Found"})),
            )
                .into_response();
        }
    };
    axum::Json(body).into_response()
}
