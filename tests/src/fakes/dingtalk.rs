//! DingTalk custom robot fake: `POST /robot/send?access_token=..[&timestamp=..&sign=..]`.
//!
//! Checks, with DingTalk's answers: access token (300001), signature
//! `base64(hmac_sha256(secret, "{timestamp}\n{secret}"))` and a timestamp within 1 hour of now
//! (310000), payload shape (40035), a request body of at most 20,000 bytes (460101: "message
//! too long, exceed 20000 bytes" counts what arrives, JSON escaping included, not the markdown
//! text), and at most 20 messages per minute, after which the robot answers 130101 for 10
//! minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{FakeServer, Shared, mode_gate, rate_allow, record};

/// Largest request body the robot accepts.
pub const MAX_BODY_BYTES: usize = 20_000;
pub const PER_MINUTE: usize = 20;
pub const BAN: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Robot {
    token: String,
    secret: Option<String>,
    window: Duration,
    ban: Duration,
    max_body: usize,
    shared: Arc<Mutex<Shared>>,
}

pub struct DingTalkFake {
    pub server: FakeServer,
    token: String,
}

impl DingTalkFake {
    /// A robot with this access token and, when given, this sign secret.
    pub fn start(token: &str, secret: Option<&str>) -> DingTalkFake {
        Self::start_with_window(token, secret, Duration::from_secs(60), BAN)
    }

    /// Same checks with a shorter rate window and ban, for tests of the limiter's behaviour.
    pub fn start_with_window(
        token: &str,
        secret: Option<&str>,
        window: Duration,
        ban: Duration,
    ) -> DingTalkFake {
        Self::start_with(token, secret, window, ban, MAX_BODY_BYTES)
    }

    /// A robot refusing bodies over `max_body` bytes: a vendor stricter than the router's
    /// measure, to prove a size refusal splits instead of failing.
    pub fn start_with_limit(token: &str, secret: Option<&str>, max_body: usize) -> DingTalkFake {
        Self::start_with(token, secret, Duration::from_secs(60), BAN, max_body)
    }

    fn start_with(
        token: &str,
        secret: Option<&str>,
        window: Duration,
        ban: Duration,
        max_body: usize,
    ) -> DingTalkFake {
        let (t, s) = (token.to_string(), secret.map(str::to_string));
        let server = FakeServer::spawn(move |shared| {
            let robot = Robot {
                token: t,
                secret: s,
                window,
                ban,
                max_body,
                shared,
            };
            axum::Router::new()
                .route("/robot/send", post(send))
                .with_state(robot)
        });
        DingTalkFake {
            server,
            token: token.to_string(),
        }
    }

    /// The webhook URL an operator would paste: `.../robot/send?access_token=TOKEN`.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/robot/send?access_token={}",
            self.server.base_url(),
            self.token
        )
    }

    /// The markdown texts accepted, in order.
    pub fn texts(&self) -> Vec<String> {
        self.server
            .accepted()
            .iter()
            .map(|b| {
                b["markdown"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

/// The signature DingTalk computes.
pub fn expected_sign(secret: &str, timestamp: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn answer(code: i64, msg: &str) -> Json<Value> {
    Json(json!({"errcode": code, "errmsg": msg}))
}

fn check_payload(body: &Value) -> Result<(), (i64, String)> {
    let missing = |what: &str| Err((40035, format!("缺少参数 {what}")));
    match body["msgtype"].as_str() {
        Some("markdown") => {
            let (Some(title), Some(text)) = (
                body["markdown"]["title"].as_str(),
                body["markdown"]["text"].as_str(),
            ) else {
                return missing("markdown.title/markdown.text");
            };
            if title.is_empty() || text.is_empty() {
                return missing("markdown.title/markdown.text");
            }
        }
        Some("text") => {
            if body["text"]["content"]
                .as_str()
                .is_none_or(|c| c.is_empty())
            {
                return missing("text.content");
            }
        }
        _ => return missing("msgtype"),
    }
    if let Some(at) = body.get("at") {
        let mobiles_ok = at
            .get("atMobiles")
            .is_none_or(|m| m.as_array().is_some_and(|a| a.iter().all(Value::is_string)));
        let all_ok = at.get("isAtAll").is_none_or(Value::is_boolean);
        if !mobiles_ok || !all_ok {
            return Err((40035, "缺少参数 at".into()));
        }
    }
    Ok(())
}

async fn send(
    State(r): State<Robot>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(resp) = mode_gate(&r.shared).await {
        return resp;
    }
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let refuse = |code: i64, msg: &str| {
        record(&r.shared, parsed.clone(), code);
        answer(code, msg).into_response()
    };
    if q.get("access_token") != Some(&r.token) {
        return refuse(300001, "token is not exist");
    }
    if let Some(secret) = &r.secret {
        let (Some(ts), Some(sign)) = (q.get("timestamp"), q.get("sign")) else {
            return refuse(310000, "sign not match, more: [timestamp or sign missing]");
        };
        let Ok(ts_ms) = ts.parse::<i64>() else {
            return refuse(310000, "sign not match, more: [invalid timestamp]");
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        if (now - ts_ms).abs() > 3_600_000 {
            return refuse(
                310000,
                "sign not match, more: [timestamp is more than 1 hour away from now]",
            );
        }
        if *sign != expected_sign(secret, ts) {
            return refuse(310000, "sign not match");
        }
    }
    if parsed.is_null() {
        return refuse(40035, "缺少参数 json");
    }
    {
        let mut s = r.shared.lock().unwrap_or_else(|p| p.into_inner());
        if !rate_allow(&mut s, PER_MINUTE, r.window, Some(r.ban)) {
            drop(s);
            return refuse(130101, "send too fast, exceed 20 times per minute");
        }
    }
    if body.len() > r.max_body {
        return refuse(
            460101,
            &format!("message too long, exceed {} bytes", r.max_body),
        );
    }
    if let Err((code, msg)) = check_payload(&parsed) {
        return refuse(code, &msg);
    }
    // DingTalk's servers fetch markdown images (`![alt](url)`) to show them; the message is
    // accepted either way, a failed fetch only shows a broken image. The fetch is recorded
    // (before the acceptance, so a test that saw the message sees the fetch).
    for url in markdown_images(parsed["markdown"]["text"].as_str().unwrap_or("")) {
        let f = super::fetch_image(&url).await;
        super::record_fetch(&r.shared, f);
    }
    record(&r.shared, parsed, 0);
    answer(0, "ok").into_response()
}

/// The http(s) URLs of `![alt](url)` images in a markdown text.
pub fn markdown_images(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("![") {
        rest = &rest[i + 2..];
        let Some(mid) = rest.find("](") else { break };
        let after = &rest[mid + 2..];
        let Some(end) = after.find(')') else { break };
        let url = &after[..end];
        if url.starts_with("http://") || url.starts_with("https://") {
            out.push(url.to_string());
        }
        rest = &after[end..];
    }
    out
}
