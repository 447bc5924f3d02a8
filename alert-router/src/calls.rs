//! Call until someone answers. A calling channel (voice, [`Caller`]) reaches one person per
//! request; the vendor says later, in a call-status receipt pushed to
//! `POST /callbacks/aliyun/voice/{token}`, whether they answered.
//!
//! One outbox row carries a step's whole sequence: its `mentions` are the people still to
//! call, in rotation order. Placing a call stores it (keyed by the vendor's call id) and puts
//! the row back to sleep with the rest of the list, due when the receipt is overdue
//! (`receipt_timeout`). Then:
//! - a receipt saying *answered* marks the row sent: the step stops;
//! - *no answer*, *busy* or *failed* makes the row due at once and wakes the channel's worker:
//!   the next person is called within the worker's next round, not at the next step;
//! - no receipt in time: the row falls due by itself, the call counts as `no_receipt`.
//!
//! Keeping the sequence in the row (rather than in memory) means a restart, another replica
//! or an ack (which deletes a chain's pending rows) all see the same state, and the per-alert
//! order of the outbox holds: the next step on the same channel waits until this step's
//! sequence is over.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::App;
use crate::channels::{CallError, Caller, Channel, SendError};
use crate::core::clock::now_ms;
use crate::core::model::{AlertEvent, CallOutcome};
use crate::store::OutboxRow;
use crate::store::calls::{CallRow, PlacedCall, Receipt};
use crate::worker::{self, WorkerCtx, backoff};

/// Deliver claimed rows of a calling channel: call their people in turn until a call is
/// placed. Returns a channel-wide pause like `worker::deliver`.
pub async fn deliver(
    ch: &dyn Channel,
    caller: &dyn Caller,
    ctx: &WorkerCtx,
    rows: Vec<OutboxRow>,
) -> Option<i64> {
    let name = ch.name();
    // One call covers rows with the same people to call; the others wait for the next round.
    let mentions = rows.first().map(|r| r.mentions.clone()).unwrap_or_default();
    let (same, other): (Vec<OutboxRow>, Vec<OutboxRow>) =
        rows.into_iter().partition(|r| r.mentions == mentions);
    if !other.is_empty() {
        let ids: Vec<i64> = other.iter().map(|r| r.id).collect();
        if let Err(e) = ctx.store.release(&ids).await {
            tracing::warn!(channel = %name, error = %e, "cannot release rows; their lease will expire");
        }
    }
    // Resolutions and ack announcements are not phoned: they reach the chain's chat channels.
    let (same, quiet): (Vec<OutboxRow>, Vec<OutboxRow>) = same
        .into_iter()
        .partition(|r| r.kind != crate::store::OutboxKind::Ack && r.event.status == "firing");
    if !quiet.is_empty() {
        let ids: Vec<i64> = quiet.iter().map(|r| r.id).collect();
        if let Err(e) = ctx.store.mark_sent(&ids, now_ms()).await {
            tracing::warn!(channel = %name, error = %e, "cannot mark rows done; their lease will expire");
        }
    }
    if same.is_empty() {
        return None;
    }
    let ids: Vec<i64> = same.iter().map(|r| r.id).collect();
    let call_rows: Vec<CallRow> = same
        .iter()
        .map(|r| CallRow {
            id: r.id,
            fingerprint: r.fingerprint.clone(),
            starts_at: r.event.starts_at,
            step: r.step,
        })
        .collect();
    let events: Vec<AlertEvent> = same.iter().map(|r| r.event.clone()).collect();
    let mut msg = match ch.render(&events) {
        Ok(m) => m,
        Err(e) => {
            worker::permanent(ctx, name, &ids, &format!("cannot render: {e}")).await;
            return None;
        }
    };
    msg.step = same.iter().filter_map(|r| r.step).max();
    let numbers = caller.callees(&mentions);
    let mut waiting: Vec<String> = Vec::new();
    let mut wait_for = std::time::Duration::ZERO;
    let mut refusals: Vec<String> = Vec::new();
    for (i, number) in numbers.iter().enumerate() {
        let now = now_ms();
        let t0 = std::time::Instant::now();
        let r = caller.call(&msg, number).await;
        ctx.metrics
            .send_duration
            .with_label_values(&[name])
            .observe(t0.elapsed().as_secs_f64());
        let skipped = PlacedCall {
            call_id: None,
            channel: name.to_string(),
            rows: call_rows.clone(),
            number: number.clone(),
            at: now,
        };
        match r {
            Ok(call_id) => {
                ctx.metrics.calls.with_label_values(&[name, "placed"]).inc();
                ctx.metrics
                    .notifications
                    .with_label_values(&[name, "sent"])
                    .inc_by(ids.len() as u64);
                // Numbers that were flow-controlled are tried again after the others.
                let mut rest: Vec<String> = numbers[i + 1..].to_vec();
                rest.extend(waiting.iter().cloned());
                let due =
                    now + i64::try_from(caller.receipt_timeout().as_millis()).unwrap_or(180_000);
                let call = PlacedCall {
                    call_id: Some(call_id.clone()),
                    channel: name.to_string(),
                    rows: call_rows.clone(),
                    number: number.clone(),
                    at: now,
                };
                match ctx.store.call_placed(&call, &rest, due).await {
                    Ok(first) => {
                        // A step has gone out with its first call (its sequence follows).
                        for r in same.iter().filter(|r| {
                            r.kind == crate::store::OutboxKind::Escalate && first.contains(&r.id)
                        }) {
                            ctx.metrics.escalation_steps.inc();
                            ctx.metrics
                                .escalation_lateness
                                .observe((now - r.due_at).max(0) as f64 / 1000.0);
                        }
                    }
                    // The lease expires and the row calls again: a repeated call, never a
                    // missed one.
                    Err(e) => {
                        tracing::error!(channel = %name, error = %e, "call placed but not recorded; it may repeat")
                    }
                }
                tracing::info!(channel = %name, alerts = ids.len(), call_id = %call_id, left = rest.len(), "call placed");
                return None;
            }
            Err(CallError::FlowControl {
                reason,
                retry_after,
            }) => {
                wait_for = wait_for.max(retry_after);
                tracing::warn!(channel = %name, error = %reason, "number flow-controlled by the vendor; calling the next person");
                record_skip(ctx, name, &skipped, CallOutcome::FlowControl).await;
                waiting.push(number.clone());
            }
            Err(CallError::Number(reason)) => {
                tracing::warn!(channel = %name, error = %reason, "number refused by the vendor; calling the next person");
                record_skip(ctx, name, &skipped, CallOutcome::Refused).await;
                refusals.push(reason);
            }
            Err(CallError::Send(e)) => return send_failed(ch, ctx, &same, e).await,
        }
    }
    if !waiting.is_empty() {
        // Nobody could be called now: the flow-controlled numbers are tried once their window
        // passes. A wait, not a failure.
        let due = now_ms() + i64::try_from(wait_for.as_millis()).unwrap_or(60_000);
        ctx.metrics
            .notifications
            .with_label_values(&[name, "rate_limited"])
            .inc_by(ids.len() as u64);
        if let Err(e) = ctx
            .store
            .call_requeue(&ids, &waiting, due, "every number is flow-controlled")
            .await
        {
            tracing::warn!(channel = %name, error = %e, "cannot reschedule calls; the lease will expire and they retry");
        }
        return None;
    }
    let reason = if refusals.is_empty() {
        "nobody to call".to_string()
    } else {
        format!("every number was refused: {}", refusals.join("; "))
    };
    worker::permanent(ctx, name, &ids, &reason).await;
    None
}

async fn record_skip(ctx: &WorkerCtx, name: &str, call: &PlacedCall, outcome: CallOutcome) {
    ctx.metrics
        .calls
        .with_label_values(&[name, outcome.as_str()])
        .inc();
    if let Err(e) = ctx.store.call_skipped(call, outcome).await {
        tracing::warn!(channel = %name, error = %e, "cannot record a call that was not placed");
    }
}

/// A failure that concerns every call: handled like any channel's send failure.
async fn send_failed(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    rows: &[OutboxRow],
    e: SendError,
) -> Option<i64> {
    let name = ch.name();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let now = now_ms();
    let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0);
    let (reason, wait, outcome) = match e {
        SendError::Retryable(reason) => (reason, None, "retry"),
        SendError::RateLimited {
            reason,
            retry_after,
        } => (reason, retry_after, "rate_limited"),
        SendError::Permanent(reason) | SendError::TooLarge(reason) => {
            let moved = if ch.fallback().is_empty() {
                Vec::new()
            } else {
                worker::hand_over(ch, ctx, &ids, &reason).await
            };
            let rest: Vec<i64> = ids.into_iter().filter(|i| !moved.contains(i)).collect();
            if !rest.is_empty() {
                worker::permanent(ctx, name, &rest, &reason).await;
            }
            return None;
        }
    };
    let wait = wait
        .unwrap_or_else(|| backoff(attempts, ctx.delivery.retry_initial, ctx.delivery.retry_max));
    let due = now + i64::try_from(wait.as_millis()).unwrap_or(0);
    ctx.metrics
        .notifications
        .with_label_values(&[name, outcome])
        .inc_by(ids.len() as u64);
    worker::reschedule(ctx, name, &ids, due, &reason).await;
    tracing::warn!(channel = %name, error = %reason, retry_in_ms = due - now, "call failed; will retry");
    Some(due)
}

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
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let live = app.live();
    let known = live.config.channels.iter().any(|c| match c {
        crate::config::ChannelConfig::AliyunVoice(v) => {
            v.callback_token.as_ref().is_some_and(|t| {
                !t.is_empty() && quantwatch_web::auth::secrets_equal(t.as_bytes(), token.as_bytes())
            })
        }
        _ => false,
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
