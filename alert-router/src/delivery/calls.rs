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
/// placed. Returns a channel-wide pause like `attempt::deliver`.
pub async fn deliver(
    ch: &dyn Channel,
    caller: &dyn Caller,
    ctx: &WorkerCtx,
    rows: Vec<OutboxRow>,
) -> Option<i64> {
    let name = ch.name();
    let (same, mentions) = rows_to_call(ctx, name, rows).await;
    if same.is_empty() {
        return None;
    }
    let ids: Vec<i64> = same.iter().map(|r| r.id).collect();
    let events: Vec<AlertEvent> = same.iter().map(|r| r.event.clone()).collect();
    let mut msg = match ch.render(&events) {
        Ok(m) => m,
        Err(e) => {
            settle::permanent(ctx, name, &ids, &format!("cannot render: {e}")).await;
            return None;
        }
    };
    msg.step = same.iter().filter_map(|r| r.step).max();
    let sequence = Sequence {
        ch,
        caller,
        ctx,
        msg: &msg,
        rows: &same,
    };
    let numbers = caller.callees(&mentions);
    let mut skipped = Skipped::default();
    for (i, number) in numbers.iter().enumerate() {
        match sequence.call(number, &numbers[i + 1..], &mut skipped).await {
            Turn::Placed => return None,
            Turn::Next => {}
            Turn::Failed(e) => {
                let attempt = Attempted {
                    rows: &same,
                    refused_size: 0,
                    what: "call",
                };
                return settle::failed(ch, ctx, None, attempt, e).await;
            }
        }
    }
    nobody_reached(ctx, name, &ids, skipped).await;
    None
}

/// The rows one call covers (those with the first row's people to call) and those people;
/// the other rows go back for the next round, and resolutions and ack announcements are done
/// here (they are not phoned: they reach the chain's chat channels).
async fn rows_to_call(
    ctx: &WorkerCtx,
    name: &str,
    rows: Vec<OutboxRow>,
) -> (Vec<OutboxRow>, Vec<String>) {
    let mentions = rows.first().map(|r| r.mentions.clone()).unwrap_or_default();
    let (same, other): (Vec<OutboxRow>, Vec<OutboxRow>) =
        rows.into_iter().partition(|r| r.mentions == mentions);
    if !other.is_empty() {
        let ids: Vec<i64> = other.iter().map(|r| r.id).collect();
        settle::release(ctx, name, &ids).await;
    }
    let (same, quiet): (Vec<OutboxRow>, Vec<OutboxRow>) = same.into_iter().partition(|r| {
        r.kind != crate::store::OutboxKind::Ack
            && r.event.status == crate::core::model::Status::Firing
    });
    if !quiet.is_empty() {
        let ids: Vec<i64> = quiet.iter().map(|r| r.id).collect();
        if let Err(e) = ctx.store.mark_sent(&ids, now_ms()).await {
            tracing::warn!(channel = %name, error = %e, "cannot mark rows done; their lease will expire");
        }
    }
    (same, mentions)
}

/// One step's sequence of calls over the same rows and message.
struct Sequence<'a> {
    ch: &'a dyn Channel,
    caller: &'a dyn Caller,
    ctx: &'a WorkerCtx,
    msg: &'a crate::channels::Message,
    rows: &'a [OutboxRow],
}

/// Numbers the vendor would not call this round.
#[derive(Default)]
struct Skipped {
    /// Flow-controlled: tried again after the others, or once their window passes.
    waiting: Vec<String>,
    wait_for: std::time::Duration,
    /// Refused numbers, with the vendor's reason.
    refusals: Vec<String>,
}

/// What one call attempt leaves.
enum Turn {
    /// A call is ringing: the sequence sleeps until its receipt.
    Placed,
    /// The vendor would not call this number: the next one.
    Next,
    /// A failure that concerns every call: settled like any send failure.
    Failed(crate::channels::SendError),
}

impl Sequence<'_> {
    fn call_rows(&self) -> Vec<CallRow> {
        self.rows
            .iter()
            .map(|r| CallRow {
                id: r.id,
                fingerprint: r.fingerprint.clone(),
                starts_at: r.event.starts_at,
                step: r.step,
            })
            .collect()
    }

    /// Call `number`; `after` are the people still to call after it.
    async fn call(&self, number: &str, after: &[String], skipped: &mut Skipped) -> Turn {
        let (name, ctx) = (self.ch.name(), self.ctx);
        let now = now_ms();
        let t0 = std::time::Instant::now();
        let r = self.caller.call(self.msg, number).await;
        ctx.metrics
            .send_duration
            .with_label_values(&[name])
            .observe(t0.elapsed().as_secs_f64());
        let mut call = PlacedCall {
            call_id: None,
            channel: name.to_string(),
            rows: self.call_rows(),
            number: number.to_string(),
            at: now,
        };
        match r {
            Ok(call_id) => {
                call.call_id = Some(call_id);
                // Numbers that were flow-controlled are tried again after the others.
                let mut rest: Vec<String> = after.to_vec();
                rest.extend(skipped.waiting.iter().cloned());
                self.placed(&call, &rest, now).await;
                Turn::Placed
            }
            Err(CallError::FlowControl {
                reason,
                retry_after,
            }) => {
                skipped.wait_for = skipped.wait_for.max(retry_after);
                tracing::warn!(channel = %name, error = %reason, "number flow-controlled by the vendor; calling the next person");
                record_skip(ctx, name, &call, CallOutcome::FlowControl).await;
                skipped.waiting.push(number.to_string());
                Turn::Next
            }
            Err(CallError::Number(reason)) => {
                tracing::warn!(channel = %name, error = %reason, "number refused by the vendor; calling the next person");
                record_skip(ctx, name, &call, CallOutcome::Refused).await;
                skipped.refusals.push(reason);
                Turn::Next
            }
            Err(CallError::Send(e)) => Turn::Failed(e),
        }
    }

    /// A call is ringing: record it and put the rows back to wait for its receipt with the
    /// people still to call.
    async fn placed(&self, call: &PlacedCall, rest: &[String], now: i64) {
        let (name, ctx) = (self.ch.name(), self.ctx);
        let count = self.rows.len() as u64;
        ctx.metrics.calls.with_label_values(&[name, "placed"]).inc();
        settle::count_outcome(ctx, name, "sent", count);
        let due = now + i64::try_from(self.caller.receipt_timeout().as_millis()).unwrap_or(180_000);
        match ctx.store.call_placed(call, rest, due).await {
            // A step has gone out with its first call (its sequence follows).
            Ok(first) => {
                settle::steps_out(ctx, self.rows.iter().filter(|r| first.contains(&r.id)), now)
            }
            // The lease expires and the row calls again: a repeated call, never a missed one.
            Err(e) => {
                tracing::error!(channel = %name, error = %e, "call placed but not recorded; it may repeat")
            }
        }
        let call_id = call.call_id.as_deref().unwrap_or_default();
        tracing::info!(channel = %name, alerts = count, call_id = %call_id, left = rest.len(), "call placed");
    }
}

/// Nobody could be called: flow-controlled numbers wait for their window (a wait, not a
/// failure); refused numbers or nobody to call fail the rows.
async fn nobody_reached(ctx: &WorkerCtx, name: &str, ids: &[i64], skipped: Skipped) {
    if !skipped.waiting.is_empty() {
        let due = now_ms() + i64::try_from(skipped.wait_for.as_millis()).unwrap_or(60_000);
        settle::count_outcome(ctx, name, "rate_limited", ids.len() as u64);
        if let Err(e) = ctx
            .store
            .call_requeue(
                ids,
                &skipped.waiting,
                due,
                "every number is flow-controlled",
            )
            .await
        {
            tracing::warn!(channel = %name, error = %e, "cannot reschedule calls; the lease will expire and they retry");
        }
        return;
    }
    let reason = if skipped.refusals.is_empty() {
        "nobody to call".to_string()
    } else {
        format!("every number was refused: {}", skipped.refusals.join("; "))
    };
    settle::permanent(ctx, name, ids, &reason).await;
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
