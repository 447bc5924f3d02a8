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

use super::WorkerCtx;
use super::settle::{self, Attempted};
use crate::channels::{CallError, Caller, Channel};
use crate::core::clock::now_ms;
use crate::core::model::{AlertEvent, CallOutcome};
use crate::store::OutboxRow;
use crate::store::calls::{CallRow, PlacedCall};

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
        settle::release(ctx, name, &ids).await;
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
            settle::permanent(ctx, name, &ids, &format!("cannot render: {e}")).await;
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
                settle::count_outcome(ctx, name, "sent", ids.len() as u64);
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
                        settle::steps_out(ctx, same.iter().filter(|r| first.contains(&r.id)), now);
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
            Err(CallError::Send(e)) => {
                let attempt = Attempted {
                    rows: &same,
                    refused_size: 0,
                    what: "call",
                };
                return settle::failed(ch, ctx, None, attempt, e).await;
            }
        }
    }
    if !waiting.is_empty() {
        // Nobody could be called now: the flow-controlled numbers are tried once their window
        // passes. A wait, not a failure.
        let due = now_ms() + i64::try_from(wait_for.as_millis()).unwrap_or(60_000);
        settle::count_outcome(ctx, name, "rate_limited", ids.len() as u64);
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
    settle::permanent(ctx, name, &ids, &reason).await;
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
