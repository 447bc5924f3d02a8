//! `POST /callbacks/aliyun/voice/{token}`: call-status receipts of the voice channel, which
//! say whether the person answered (see `delivery::calls`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use crate::core::clock::now_ms;
use crate::core::model::CallOutcome;
use crate::store::calls::Receipt;

/// Largest receipt body accepted (Aliyun batches receipts into one JSON array).
pub const MAX_RECEIPT_BODY: usize = 256 * 1024;

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A receipt item's field as text (Aliyun sends numbers as strings, but may not always).
fn field(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Read one VoiceReport item.
pub fn parse_voice_report(v: &Value) -> Option<Receipt> {
    let call_id = field(v, "call_id");
    if call_id.is_empty() {
        return None;
    }
    let status_code = field(v, "status_code");
    let connected = !field(v, "start_time").is_empty()
        || field(v, "duration")
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse::<u64>()
            .is_ok_and(|d| d > 0);
    Some(Receipt {
        outcome: crate::channels::aliyun_voice::call_outcome(&status_code, connected),
        call_id,
        status_code,
        status_msg: field(v, "status_msg"),
        raw: v.to_string(),
    })
}

/// `POST /callbacks/aliyun/voice/{token}`: Aliyun's HTTP batch push of `VoiceReport`
/// receipts (a JSON array). Aliyun signs nothing, so the secret last path segment (an
/// `aliyun_voice` channel's `callback_token`) is the credential, compared in constant time.
/// Answers `{"code": 0, "msg": "接收成功"}` with 200 once every receipt of ours is stored; 503
/// when the store fails (Aliyun pushes again after 1, 5 and 10 minutes), 400 for a body that
/// is not a JSON array, 401 for a wrong token. Receipts of calls we did not place (the account
/// may serve other systems) are acknowledged and not stored.
pub async fn aliyun_voice_receipt(
    State(app): State<Arc<Shared>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let live = app.live();
    let known = live.callback_tokens.iter().any(|t| {
        !t.is_empty() && quantwatch_web::auth::secrets_equal(t.as_bytes(), token.as_bytes())
    });
    let count = |o: &str| app.metrics.call_receipts.with_label_values(&[o]).inc();
    if !known {
        count("unauthorized");
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "msg": "unknown callback token"}),
        );
    }
    let items: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(Value::Array(items)) => items,
        _ => {
            count("bad_request");
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"code": 400, "msg": "the body must be a JSON array of VoiceReport receipts"}),
            );
        }
    };
    let now = now_ms();
    for item in &items {
        let Some(r) = parse_voice_report(item) else {
            count("bad_request");
            continue;
        };
        match app.store.call_receipt(&r, now).await {
            Ok(Some(channel)) => {
                count("stored");
                app.metrics
                    .calls
                    .with_label_values(&[channel.as_str(), r.outcome.as_str()])
                    .inc();
                if r.outcome != CallOutcome::Answered
                    && let Some(w) = live.wake.get(&channel)
                {
                    // The next person is called now, not at the next poll.
                    w.notify_one();
                }
            }
            Ok(None) => count("unknown_call"),
            Err(e) => {
                count("store_error");
                tracing::warn!(error = %e, "cannot store a call receipt; Aliyun will push it again");
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"code": 503, "msg": "cannot store the receipt now"}),
                );
            }
        }
    }
    answer(StatusCode::OK, json!({"code": 0, "msg": "接收成功"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliyun_status_codes_decide_the_outcome() {
        let r = |v: Value| parse_voice_report(&v).map(|r| r.outcome);
        assert_eq!(
            r(
                json!({"call_id": "1^2", "status_code": "200000", "start_time": "2026-11-30 03:02:11", "duration": "12"})
            ),
            Some(CallOutcome::Answered)
        );
        assert_eq!(
            r(
                json!({"call_id": "1^2", "status_code": "200003", "start_time": "", "duration": "0"})
            ),
            Some(CallOutcome::NoAnswer)
        );
        assert_eq!(
            r(json!({"call_id": "1^2", "status_code": "200002", "duration": 0})),
            Some(CallOutcome::Busy)
        );
        assert_eq!(
            r(json!({"call_id": "1^2", "status_code": "200010", "duration": "0"})),
            Some(CallOutcome::Failed)
        );
        assert_eq!(
            r(json!({"call_id": "1^2", "status_code": "209999", "duration": "7"})),
            Some(CallOutcome::Answered)
        );
        assert_eq!(r(json!({"status_code": "200000"})), None);
    }
}
