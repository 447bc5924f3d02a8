//! WeCom group robot fake: `POST /cgi-bin/webhook/send?key=..`.
//!
//! Checks, with WeCom's answers: the key (93000 invalid webhook url), payload shape (40008
//! invalid message type, 44004 empty content), markdown content at most 4,096 bytes (40058),
//! text content at most 2,048 bytes (40058), image messages (base64 of a PNG or JPEG of at
//! most 2 MB before encoding, 40009 invalid image size; the `md5` field must be the hex MD5
//! of the decoded bytes, 301019 md5 mismatch), and at most 20 messages per minute (45009),
//! image messages included.
//! Every request that passes authentication counts against the rate, refused ones too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::post;
use serde_json::{Value, json};

use super::{FakeServer, Shared, mode_gate, rate_allow, record};

pub const MAX_MARKDOWN_BYTES: usize = 4096;
pub const MAX_TEXT_BYTES: usize = 2048;
pub const PER_MINUTE: usize = 20;
pub const MAX_IMAGE_BYTES: usize = 2 * 1024 * 1024;

#[derive(Clone)]
struct Robot {
    key: String,
    shared: Arc<Mutex<Shared>>,
}

pub struct WeComFake {
    pub server: FakeServer,
    key: String,
}

impl WeComFake {
    pub fn start(key: &str) -> WeComFake {
        let k = key.to_string();
        let server = FakeServer::spawn(move |shared| {
            axum::Router::new()
                .route("/cgi-bin/webhook/send", post(send))
                .with_state(Robot { key: k, shared })
        });
        WeComFake {
            server,
            key: key.to_string(),
        }
    }

    pub fn webhook_url(&self) -> String {
        format!(
            "{}/cgi-bin/webhook/send?key={}",
            self.server.base_url(),
            self.key
        )
    }

    /// The decoded images of the accepted image messages, in order.
    pub fn images(&self) -> Vec<Vec<u8>> {
        self.server
            .accepted()
            .iter()
            .filter(|b| b["msgtype"] == "image")
            .filter_map(|b| check_image(b).ok())
            .collect()
    }

    /// Accepted markdown contents, in order.
    pub fn markdowns(&self) -> Vec<String> {
        self.server
            .accepted()
            .iter()
            .filter_map(|b| b["markdown"]["content"].as_str().map(str::to_string))
            .collect()
    }
}

/// The decoded image of an `image` message, checked as WeCom documents it.
fn check_image(body: &Value) -> Result<Vec<u8>, (i64, String)> {
    use base64::Engine;
    use md5::Digest;
    let (Some(b64), Some(md5)) = (
        body["image"]["base64"].as_str(),
        body["image"]["md5"].as_str(),
    ) else {
        return Err((
            40008,
            "invalid message type: image needs base64 and md5".into(),
        ));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| (40009, "invalid image: not base64".to_string()))?;
    if bytes.len() > MAX_IMAGE_BYTES || bytes.is_empty() {
        return Err((40009, "invalid image size".into()));
    }
    if !(bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xff, 0xd8, 0xff])) {
        return Err((40009, "invalid image format: JPG or PNG".into()));
    }
    let want: String = md5::Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if md5 != want {
        return Err((301019, "media md5 mismatch".into()));
    }
    Ok(bytes)
}

fn check(body: &Value) -> Result<(), (i64, String)> {
    if body["msgtype"] == "image" {
        return check_image(body).map(|_| ());
    }
    let (content, max) = match body["msgtype"].as_str() {
        Some("markdown") => (body["markdown"]["content"].as_str(), MAX_MARKDOWN_BYTES),
        Some("text") => {
            if let Some(m) = body["text"].get("mentioned_mobile_list")
                && !m.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            {
                return Err((40063, "invalid mentioned_mobile_list".into()));
            }
            (body["text"]["content"].as_str(), MAX_TEXT_BYTES)
        }
        _ => return Err((40008, "invalid message type".into())),
    };
    let Some(content) = content.filter(|c| !c.is_empty()) else {
        return Err((44004, "empty content".into()));
    };
    if content.len() > max {
        return Err((40058, format!("content exceed max length {max}")));
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
        Json(json!({"errcode": code, "errmsg": msg})).into_response()
    };
    if q.get("key") != Some(&r.key) {
        return refuse(93000, "invalid webhook url");
    }
    if parsed.is_null() {
        return refuse(40008, "invalid message type");
    }
    {
        let mut s = r.shared.lock().unwrap_or_else(|p| p.into_inner());
        if !rate_allow(&mut s, PER_MINUTE, Duration::from_secs(60), None) {
            drop(s);
            return refuse(45009, "api freq out of limit");
        }
    }
    if let Err((code, msg)) = check(&parsed) {
        return refuse(code, &msg);
    }
    record(&r.shared, parsed, 0);
    Json(json!({"errcode": 0, "errmsg": "ok"})).into_response()
}
