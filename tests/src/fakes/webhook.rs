//! A receiver of the router's generic signed webhook that verifies it as the README tells an
//! operator to: `X-Quantwatch-Signature: sha256=hex(hmac_sha256(secret, "{timestamp}.{body}"))`
//! over the raw body, compared in constant time, and `X-Quantwatch-Timestamp` within 5 minutes
//! of now. A bad or missing signature answers 401, a stale timestamp 401, a non-JSON body 400.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{FakeServer, mode_gate, record};

/// Largest accepted distance between the timestamp header and now.
pub const MAX_SKEW_SECS: i64 = 300;

pub struct WebhookReceiver {
    pub server: FakeServer,
}

/// The verification an in-house receiver does; `Err` names what failed.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), &'static str> {
    let ts = headers
        .get("x-quantwatch-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or("missing timestamp")?;
    if (now_s - ts).abs() > MAX_SKEW_SECS {
        return Err("stale timestamp");
    }
    let sig = headers
        .get("x-quantwatch-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or("missing signature")?;
    let want: Vec<u8> = (0..sig.len() / 2)
        .map(|i| u8::from_str_radix(sig.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| "signature is not hex")?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&want).map_err(|_| "bad signature")
}

impl WebhookReceiver {
    pub fn start(secret: &str) -> WebhookReceiver {
        let secret = secret.to_string();
        let server = FakeServer::spawn(move |shared| {
            axum::Router::new()
                .route(
                    "/hook",
                    post(
                        |State((secret, shared)): State<(String, _)>,
                         headers: HeaderMap,
                         body: axum::body::Bytes| async move {
                            if let Some(r) = mode_gate(&shared).await {
                                return r;
                            }
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs() as i64)
                                .unwrap_or(0);
                            let parsed: Value =
                                serde_json::from_slice(&body).unwrap_or(Value::Null);
                            if let Err(why) = verify(&secret, &headers, &body, now) {
                                record(&shared, parsed, 401);
                                return (StatusCode::UNAUTHORIZED, why).into_response();
                            }
                            if parsed.is_null() {
                                record(&shared, parsed, 400);
                                return (StatusCode::BAD_REQUEST, "not JSON").into_response();
                            }
                            record(&shared, parsed, 0);
                            StatusCode::NO_CONTENT.into_response()
                        },
                    ),
                )
                .with_state((secret, shared))
        });
        WebhookReceiver { server }
    }

    pub fn url(&self) -> String {
        format!("{}/hook", self.server.base_url())
    }
}
