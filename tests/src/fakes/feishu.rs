//! Feishu custom bot fake: `POST /open-apis/bot/v2/hook/{token}` with a JSON body.
//!
//! Checks, with Feishu's answers (`{"code": N, "msg": "...", "data": {}}`): the hook token
//! (19001), when the bot signs, `timestamp` (seconds) within one hour of now and
//! `sign = base64(hmac_sha256(key = "{timestamp}\n{secret}", message = ""))` (19021), an
//! optional keyword the message must contain (19024), the request body at most 20 KB and the
//! message shape — `msg_type` `text` or `interactive`, a card with header and elements, URL
//! buttons with http(s) URLs — (9499 "Bad Request"), and 100 messages a minute and 5 a second
//! (11232 "frequency limited").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{FakeServer, Shared, mode_gate, rate_allow, record};

/// Feishu's "20 KB" request body limit, read as KiB (the router keeps under 20,000).
pub const MAX_BODY_BYTES: usize = 20 * 1024;
pub const PER_MINUTE: usize = 100;
pub const PER_SECOND: usize = 5;
/// How far the signed timestamp may be from now.
pub const WINDOW_SECS: i64 = 3600;

#[derive(Clone)]
struct Bot {
    token: String,
    secret: Option<String>,
    keyword: Option<String>,
    /// Instants of the last second's requests (the 5/s limit; the minute uses `Shared`).
    second: Arc<Mutex<Vec<std::time::Instant>>>,
    shared: Arc<Mutex<Shared>>,
}

pub struct FeishuFake {
    pub server: FakeServer,
    token: String,
}

impl FeishuFake {
    /// A bot with this hook token, sign secret (when given) and required keyword (when given).
    pub fn start(token: &str, secret: Option<&str>, keyword: Option<&str>) -> FeishuFake {
        let (t, s, k) = (
            token.to_string(),
            secret.map(str::to_string),
            keyword.map(str::to_string),
        );
        let server = FakeServer::spawn(move |shared| {
            let bot = Bot {
                token: t,
                secret: s,
                keyword: k,
                second: Arc::new(Mutex::new(Vec::new())),
                shared,
            };
            axum::Router::new()
                .route("/open-apis/bot/v2/hook/{token}", post(send))
                .with_state(bot)
        });
        FeishuFake {
            server,
            token: token.to_string(),
        }
    }

    /// The hook URL an operator would paste.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/open-apis/bot/v2/hook/{}",
            self.server.base_url(),
            self.token
        )
    }

    /// The card markdown of the accepted messages, in order.
    pub fn texts(&self) -> Vec<String> {
        self.server
            .accepted()
            .iter()
            .map(|b| {
                b["card"]["elements"][0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

/// The signature Feishu computes.
pub fn expected_sign(secret: &str, timestamp: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes())
        .expect("HMAC takes keys of any length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn answer(code: i64, msg: &str) -> Json<Value> {
    Json(json!({"code": code, "msg": msg, "data": {}}))
}

fn check_shape(body: &Value) -> Result<(), String> {
    match body["msg_type"].as_str() {
        Some("text") => body["content"]["text"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(|_| ())
            .ok_or_else(|| "content.text missing".into()),
        Some("interactive") => {
            let card = &body["card"];
            if card["header"]["title"]["content"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                return Err("card.header.title missing".into());
            }
            let Some(elements) = card["elements"].as_array().filter(|e| !e.is_empty()) else {
                return Err("card.elements missing".into());
            };
            for e in elements {
                match e["tag"].as_str() {
                    Some("markdown") | Some("div") | Some("hr") | Some("note") => {}
                    Some("action") => {
                        for a in e["actions"].as_array().into_iter().flatten() {
                            let url_ok = a["url"].as_str().is_some_and(|u| {
                                u.starts_with("https://") || u.starts_with("http://")
                            });
                            if a["tag"] != "button" || a["text"]["tag"] != "plain_text" || !url_ok {
                                return Err(format!("invalid button {a}"));
                            }
                        }
                    }
                    _ => return Err(format!("unknown element {}", e["tag"])),
                }
            }
            Ok(())
        }
        _ => Err("msg_type missing or unsupported".into()),
    }
}

async fn send(
    State(b): State<Bot>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(resp) = mode_gate(&b.shared).await {
        return resp;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let refuse = |code: i64, msg: &str| {
        record(&b.shared, parsed.clone(), code);
        answer(code, msg).into_response()
    };
    if token != b.token {
        return refuse(
            19001,
            "param invalid: incoming webhook access token invalid",
        );
    }
    if body.len() > MAX_BODY_BYTES {
        return refuse(9499, "Bad Request: request body too large");
    }
    if parsed.is_null() {
        return refuse(9499, "Bad Request");
    }
    if let Some(secret) = &b.secret {
        let ts = parsed["timestamp"].as_str().unwrap_or_default();
        let sign = parsed["sign"].as_str().unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let fresh = ts
            .parse::<i64>()
            .is_ok_and(|t| (now - t).abs() <= WINDOW_SECS);
        if !fresh || sign != expected_sign(secret, ts) {
            return refuse(
                19021,
                "sign match fail or timestamp is not within one hour from current time",
            );
        }
    }
    if let Some(k) = &b.keyword
        && !String::from_utf8_lossy(&body).contains(k.as_str())
    {
        return refuse(19024, "Key Words Not Found");
    }
    {
        let now = std::time::Instant::now();
        let mut sec = b.second.lock().unwrap_or_else(|p| p.into_inner());
        sec.retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        let mut s = b.shared.lock().unwrap_or_else(|p| p.into_inner());
        if sec.len() >= PER_SECOND || !rate_allow(&mut s, PER_MINUTE, Duration::from_secs(60), None)
        {
            drop(s);
            drop(sec);
            return refuse(
                11232,
                "frequency limited psm[lark.oapi.app_platform_runtime]",
            );
        }
        sec.push(now);
    }
    if let Err(why) = check_shape(&parsed) {
        return refuse(9499, &format!("Bad Request: {why}"));
    }
    record(&b.shared, parsed, 0);
    answer(0, "success").into_response()
}
