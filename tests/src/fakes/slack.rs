//! Slack incoming-webhook fake: `POST /services/T000/B000/XXXX`.
//!
//! Checks, with Slack's answers: the hook path (404 `no_service`), payload shape (400
//! `invalid_payload` / `no_text`), at most 50 blocks and section text of at most 3,000
//! characters (400 `invalid_blocks`), and one message per second (429 with `Retry-After`).
//! Every request that passes authentication counts against the rate, refused ones too.
//! An image block's URL is downloaded before the answer, as Slack does; a failed download
//! refuses the message (400 `invalid_blocks`).
//! The `errcode` recorded is the HTTP status for failures and 0 for success.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::Value;

use super::{FakeServer, Shared, mode_gate, rate_allow, record};

pub const MAX_SECTION_CHARS: usize = 3000;
pub const MAX_BLOCKS: usize = 50;

#[derive(Clone)]
struct Hook {
    path: String,
    shared: Arc<Mutex<Shared>>,
}

pub struct SlackFake {
    pub server: FakeServer,
    path: String,
}

impl SlackFake {
    /// `path` like "T000/B000/XXXX".
    pub fn start(path: &str) -> SlackFake {
        let p = path.to_string();
        let server = FakeServer::spawn(move |shared| {
            axum::Router::new()
                .route("/services/{*path}", post(send))
                .with_state(Hook { path: p, shared })
        });
        SlackFake {
            server,
            path: path.to_string(),
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/services/{}", self.server.base_url(), self.path)
    }
}

fn check(body: &Value) -> Result<(), (StatusCode, &'static str)> {
    if !body.is_object() {
        return Err((StatusCode::BAD_REQUEST, "invalid_payload"));
    }
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    let blocks = body.get("blocks");
    if text.is_empty() && blocks.is_none() {
        return Err((StatusCode::BAD_REQUEST, "no_text"));
    }
    if let Some(b) = blocks {
        let Some(list) = b.as_array() else {
            return Err((StatusCode::BAD_REQUEST, "invalid_blocks"));
        };
        if list.is_empty() || list.len() > MAX_BLOCKS {
            return Err((StatusCode::BAD_REQUEST, "invalid_blocks"));
        }
        for block in list {
            match block["type"].as_str() {
                Some("section") => {
                    let t = &block["text"];
                    let ok_type = matches!(t["type"].as_str(), Some("mrkdwn") | Some("plain_text"));
                    let Some(s) = t["text"].as_str() else {
                        return Err((StatusCode::BAD_REQUEST, "invalid_blocks"));
                    };
                    if !ok_type || s.is_empty() || s.chars().count() > MAX_SECTION_CHARS {
                        return Err((StatusCode::BAD_REQUEST, "invalid_blocks"));
                    }
                }
                Some("image") => {
                    let url = block["image_url"].as_str().unwrap_or("");
                    let alt = block["alt_text"].as_str().unwrap_or("");
                    if !(url.starts_with("http://") || url.starts_with("https://"))
                        || alt.is_empty()
                    {
                        return Err((StatusCode::BAD_REQUEST, "invalid_blocks"));
                    }
                }
                Some("divider") | Some("header") | Some("context") => {}
                _ => return Err((StatusCode::BAD_REQUEST, "invalid_blocks")),
            }
        }
    }
    Ok(())
}

async fn send(
    State(h): State<Hook>,
    Path(path): Path<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if let Some(resp) = mode_gate(&h.shared).await {
        return resp;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let refuse = |status: StatusCode, msg: &'static str| {
        record(&h.shared, parsed.clone(), i64::from(status.as_u16()));
        (status, msg).into_response()
    };
    if path != h.path {
        return refuse(StatusCode::NOT_FOUND, "no_service");
    }
    {
        let mut s = h.shared.lock().unwrap_or_else(|p| p.into_inner());
        if !rate_allow(&mut s, 1, Duration::from_secs(1), None) {
            drop(s);
            record(&h.shared, parsed.clone(), 429);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "rate_limited",
            )
                .into_response();
        }
    }
    if let Err((status, msg)) = check(&parsed) {
        return refuse(status, msg);
    }
    // Slack downloads an image block's URL while accepting the message and refuses the
    // message when it cannot ("invalid_blocks": downloading image failed).
    let urls: Vec<String> = parsed["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "image")
        .filter_map(|b| b["image_url"].as_str().map(str::to_string))
        .collect();
    for url in urls {
        let f = super::fetch_image(&url).await;
        let ok = f.status == 200 && f.content_type.starts_with("image/");
        super::record_fetch(&h.shared, f);
        if !ok {
            return refuse(StatusCode::BAD_REQUEST, "invalid_blocks");
        }
    }
    record(&h.shared, parsed, 0);
    (StatusCode::OK, "ok").into_response()
}
