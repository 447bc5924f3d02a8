//! Delivery workers: one per channel. A worker waits for the channel's rate limiter, claims due
//! outbox rows with a lease, renders them as one message (a digest when several waited), sends,
//! and marks the rows sent, rescheduled (with exponential backoff and jitter) or failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::channels::{Channel, Message, SendError};
use crate::config::Delivery;
use crate::core::clock::now_ms;
use crate::core::metrics::Metrics;
use crate::core::model::AlertEvent;
use crate::core::text::split_utf8;
use crate::limits::RateLimiter;
use crate::store::{OutboxRow, Store};

/// Exponential backoff with "equal jitter": half fixed, half random, capped.
pub fn backoff(attempts: i64, initial: Duration, max: Duration) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempts.clamp(0, 20));
    let capped = exp.min(max);
    let half = capped / 2;
    half + half.mul_f64(jitter_fraction())
}

fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Everything a worker needs; cloned per channel.
#[derive(Clone)]
pub struct WorkerCtx {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub delivery: Delivery,
    /// Lease owner name of this process (host + pid + start time).
    pub owner: String,
    /// Charts and context tables for single-alert messages (`None`, or a service without
    /// `prometheus_url`: messages go out without asking anyone).
    pub charts: Option<crate::chart::ChartService>,
}

/// Run until `stop` turns true; an in-flight send always finishes first.
pub async fn run(
    ch: Arc<dyn Channel>,
    ctx: WorkerCtx,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let name = ch.name().to_string();
    let limits = ch.limits();
    let mut limiter = limits.rate.map(|(n, w)| RateLimiter::new(n, w));
    if let (Some(l), Some((_, w))) = (&mut limiter, limits.rate) {
        // Sends before a restart still count against the vendor's window.
        let since = now_ms() - i64::try_from(w.as_millis()).unwrap_or(0);
        match ctx.store.sends_since(&name, since).await {
            Ok(ts) => ts.into_iter().for_each(|t| l.record(t)),
            Err(e) => {
                tracing::warn!(channel = %name, error = %e, "cannot read recent sends; starting with an empty rate window")
            }
        }
    }
    ctx.metrics.init_channel(&name);
    let mut pause_until = 0i64;
    // A size the vendor refused teaches a smaller limit than the one we measure against.
    let mut size_cap: Option<usize> = None;
    // Until when the vendor blocks this channel (a long rate-limit ban): with fallbacks, what
    // falls due meanwhile is handed over instead of waiting for the ban to end.
    let mut banned_until = 0i64;
    let lease_ms = i64::try_from(ctx.delivery.lease.as_millis()).unwrap_or(120_000);
    loop {
        if *stop.borrow() {
            break;
        }
        let now = now_ms();
        let mut ready_at = pause_until.max(now);
        if let Some(l) = &mut limiter {
            ready_at = ready_at.max(l.next_allowed(now));
        }
        let blocked = banned_until > now && !ch.fallback().is_empty();
        if ready_at > now && !blocked {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis((ready_at - now) as u64)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let rows = match ctx
            .store
            .claim(
                &name,
                now,
                ctx.delivery.batch_max as i64,
                &ctx.owner,
                lease_ms,
            )
            .await
        {
            Ok(r) => {
                ctx.metrics.store_up.set(1);
                r
            }
            Err(e) => {
                ctx.metrics.store_up.set(0);
                tracing::warn!(channel = %name, error = %e, "cannot claim notifications");
                pause_until =
                    now + i64::try_from(ctx.delivery.poll_interval.as_millis()).unwrap_or(1000);
                continue;
            }
        };
        if rows.is_empty() {
            // Sleep until the next future-dated row (an escalation step) or the poll interval.
            let mut idle = ctx.delivery.poll_interval;
            if let Ok(Some(due)) = ctx.store.next_due(&name, now).await {
                idle = idle.min(Duration::from_millis((due - now).max(1) as u64));
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if blocked {
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let reason = format!(
                "channel blocked by its vendor for {} s more",
                (banned_until - now) / 1000
            );
            let moved = hand_over(ch.as_ref(), &ctx, &ids, &reason).await;
            let rest: Vec<i64> = ids.into_iter().filter(|i| !moved.contains(i)).collect();
            if !rest.is_empty() {
                // Copies that already failed over once wait for the ban to end.
                reschedule(&ctx, &name, &rest, banned_until, &reason).await;
            }
            continue;
        }
        // Rounds are at least `round_interval` apart: under a storm the notifications of that
        // interval go out as one digest, and the store sees a few worker commits per second
        // instead of one per webhook (each commit is an fsync the intake also waits for).
        let round_gap = now + i64::try_from(ctx.delivery.round_interval.as_millis()).unwrap_or(0);
        pause_until = deliver(
            ch.as_ref(),
            &ctx,
            &mut limiter,
            &mut size_cap,
            &mut banned_until,
            rows,
        )
        .await
        .unwrap_or(0)
        .max(round_gap);
    }
    tracing::debug!(channel = %name, "delivery worker stopped");
}

/// A message refused for its size at or under this many bytes, carrying one alert, is not
/// split further: its refusal is permanent.
pub const MIN_SPLIT_BYTES: usize = 1024;

/// Render as many claimed rows as fit one message, give the rest back, send. Returns a
/// channel-wide pause (ms instant) after a failure that is likely to hit the next rows too.
async fn deliver(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    limiter: &mut Option<RateLimiter>,
    size_cap: &mut Option<usize>,
    banned_until: &mut i64,
    rows: Vec<OutboxRow>,
) -> Option<i64> {
    if let Some(caller) = ch.caller() {
        // Calls go to one person at a time until someone answers.
        return crate::calls::deliver(ch, caller, ctx, rows).await;
    }
    let name = ch.name();
    let mut mentions: Vec<String> = Vec::new();
    for m in rows.iter().flat_map(|r| r.mentions.iter()) {
        if !mentions.contains(m) {
            mentions.push(m.clone());
        }
    }
    let max = match (ch.limits().max_body_bytes, *size_cap) {
        (Some(v), Some(c)) => Some(v.min(c)),
        (v, c) => v.or(c),
    };
    // A single firing alert gets its chart and context table, under one deadline for the
    // message; the render is shared with the other channels' workers (see `chart`).
    let attachments = match (&ctx.charts, rows.as_slice()) {
        (Some(charts), [row])
            if charts.enabled()
                && row.event.status == "firing"
                && !row
                    .event
                    .annotations
                    .contains_key(crate::core::annotations::ACKED_BY) =>
        {
            Some(charts.attachments(&row.event, charts.deadline()).await)
        }
        _ => None,
    };
    let mut n = rows.len();
    let msg = loop {
        let mut events: Vec<AlertEvent> = rows[..n].iter().map(|r| r.event.clone()).collect();
        if let (Some(a), [event]) = (&attachments, events.as_mut_slice()) {
            a.annotate(event, ch.chart_delivery());
        }
        match ch.render(&events) {
            Ok(mut m) => {
                m.mentions = mentions.clone();
                m.step = rows[..n].iter().filter_map(|r| r.step).max();
                // Measured as the vendor counts it: the request as sent, mentions included.
                let size = ch.measure(&m);
                if n == 1 || max.is_none_or(|max| size <= max) {
                    break m;
                }
                // Shrink proportionally, at least by one row.
                let max = max.unwrap_or(usize::MAX);
                let estimate = n * max / size.max(1);
                n = estimate.clamp(1, n - 1);
            }
            Err(e) => {
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                permanent(ctx, name, &ids, &format!("cannot render: {e}")).await;
                return None;
            }
        }
    };
    let (used, rest) = rows.split_at(n);
    if !rest.is_empty() {
        let ids: Vec<i64> = rest.iter().map(|r| r.id).collect();
        if let Err(e) = ctx.store.release(&ids).await {
            tracing::warn!(channel = %name, error = %e, "cannot release rows; their lease will expire");
        }
    }
    let ids: Vec<i64> = used.iter().map(|r| r.id).collect();
    let parts: Vec<Message> = match max {
        Some(max) if ch.measure(&msg) > max => split_to_fit(ch, &msg, max),
        _ => vec![msg],
    };
    let mut result = Ok(());
    let mut refused_size = 0;
    // The chart rides with the first part; a WeCom image is a request of its own.
    let chart = attachments
        .as_ref()
        .map(|a| &a.chart)
        .filter(|c| c.png.is_some() && n == 1);
    let chart_requests = usize::from(
        chart.is_some() && ch.chart_delivery() == crate::render::chart::ChartDelivery::Image,
    );
    for (i, part) in parts.iter().enumerate() {
        let requests = 1 + if i == 0 { chart_requests } else { 0 };
        if (i > 0 || requests > 1)
            && let Some(l) = limiter.as_mut()
        {
            let now = now_ms();
            let at = l.next_allowed_n(now, requests);
            if at > now {
                tokio::time::sleep(Duration::from_millis((at - now) as u64)).await;
            }
        }
        let sent_at = now_ms();
        if let Some(l) = limiter.as_mut() {
            for _ in 0..requests {
                l.record(sent_at);
                if let Err(e) = ctx.store.record_send(name, sent_at).await {
                    tracing::warn!(channel = %name, error = %e, "cannot record a send for the rate window");
                }
            }
        }
        let t0 = Instant::now();
        let r = if i == 0 && chart.is_some() {
            ch.send_with_chart(part, chart).await
        } else {
            ch.send(part).await
        };
        ctx.metrics
            .send_duration
            .with_label_values(&[name])
            .observe(t0.elapsed().as_secs_f64());
        if let Err(e) = r {
            refused_size = ch.measure(part);
            result = Err(e);
            break;
        }
    }
    let now = now_ms();
    let count = ids.len() as u64;
    let attempts = used.iter().map(|r| r.attempts).max().unwrap_or(0);
    match result {
        Ok(()) => {
            // Counted first: the vendor accepted it, whatever happens to the bookkeeping.
            ctx.metrics
                .notifications
                .with_label_values(&[name, "sent"])
                .inc_by(count);
            for r in used
                .iter()
                .filter(|r| r.kind == crate::store::OutboxKind::Escalate)
            {
                ctx.metrics.escalation_steps.inc();
                ctx.metrics
                    .escalation_lateness
                    .observe((now - r.due_at).max(0) as f64 / 1000.0);
            }
            if let Err(e) = ctx.store.mark_sent(&ids, now).await {
                // The lease expires and the rows are sent again: a duplicate, never a loss.
                tracing::error!(channel = %name, error = %e, "sent but cannot mark sent; the notification may repeat");
            }
            tracing::info!(channel = %name, alerts = count, "notification sent");
            None
        }
        Err(SendError::Retryable(reason)) => {
            let due = now
                + i64::try_from(
                    backoff(attempts, ctx.delivery.retry_initial, ctx.delivery.retry_max)
                        .as_millis(),
                )
                .unwrap_or(0);
            ctx.metrics
                .notifications
                .with_label_values(&[name, "retry"])
                .inc_by(count);
            reschedule(ctx, name, &ids, due, &reason).await;
            tracing::warn!(channel = %name, alerts = count, attempts = attempts + 1, error = %reason, retry_in_ms = due - now, "send failed; will retry");
            Some(due)
        }
        Err(SendError::RateLimited {
            reason,
            retry_after,
        }) => {
            let wait = retry_after.unwrap_or_else(|| {
                backoff(attempts, ctx.delivery.retry_initial, ctx.delivery.retry_max)
            });
            let due = now + i64::try_from(wait.as_millis()).unwrap_or(0);
            if let Some(l) = limiter.as_mut() {
                l.block_until(due);
            }
            ctx.metrics
                .notifications
                .with_label_values(&[name, "rate_limited"])
                .inc_by(count);
            let mut rest = ids.clone();
            if wait >= FAILOVER_AFTER && !ch.fallback().is_empty() {
                *banned_until = due;
                let moved = hand_over(ch, ctx, &ids, &reason).await;
                rest.retain(|i| !moved.contains(i));
            }
            if !rest.is_empty() {
                reschedule(ctx, name, &rest, due, &reason).await;
            }
            tracing::warn!(channel = %name, alerts = count, error = %reason, retry_in_ms = due - now, "vendor rate limit; will retry");
            Some(due)
        }
        Err(SendError::TooLarge(reason)) if used.len() > 1 || refused_size > MIN_SPLIT_BYTES => {
            // Our measure was too generous for this vendor: learn a smaller limit and give the
            // rows back for the next round, which renders fewer alerts per digest (or smaller
            // parts of a single alert). A size refusal never fails a digest.
            *size_cap = Some((refused_size / 2).max(MIN_SPLIT_BYTES / 2));
            ctx.metrics
                .notifications
                .with_label_values(&[name, "split"])
                .inc_by(count);
            if let Err(e) = ctx.store.release(&ids).await {
                tracing::warn!(channel = %name, error = %e, "cannot release rows; their lease will expire");
            }
            tracing::warn!(channel = %name, alerts = count, refused_bytes = refused_size, new_limit = ?size_cap, error = %reason, "vendor refused the message for its size; splitting");
            None
        }
        Err(SendError::Permanent(reason) | SendError::TooLarge(reason)) => {
            let moved = if ch.fallback().is_empty() {
                Vec::new()
            } else {
                hand_over(ch, ctx, &ids, &reason).await
            };
            let rest: Vec<i64> = ids.into_iter().filter(|i| !moved.contains(i)).collect();
            if !rest.is_empty() {
                permanent(ctx, name, &rest, &reason).await;
            }
            None
        }
    }
}

/// Split one message's body into parts that each measure at most `max`, numbered in the title.
fn split_to_fit(ch: &dyn Channel, msg: &Message, max: usize) -> Vec<Message> {
    let overhead = ch.measure(&Message {
        body: String::new(),
        ..msg.clone()
    });
    let mut budget = max.saturating_sub(overhead).max(64);
    loop {
        let bodies = split_utf8(&msg.body, budget);
        let k = bodies.len();
        let parts: Vec<Message> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Message {
                title: format!("{} ({}/{k})", msg.title, i + 1),
                body,
                html: None,
                mentions: msg.mentions.clone(),
                buttons: msg.buttons.clone(),
                severity: msg.severity.clone(),
                step: msg.step,
            })
            .collect();
        // Escaping grows some parts more than others: shrink until every part fits.
        if budget <= 64 || parts.iter().all(|p| ch.measure(p) <= max) {
            return parts;
        }
        budget = budget * 3 / 4;
    }
}

/// A vendor block at least this long sends a channel's notifications to its fallbacks
/// (DingTalk's 130101 blocks a robot for 10 minutes); shorter waits are just waited out.
pub const FAILOVER_AFTER: Duration = Duration::from_secs(120);

/// Hand these rows to the channel's fallbacks (once; see `Store::fail_over`). Returns the ids
/// handed over; the others stay with the caller.
pub(crate) async fn hand_over(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    ids: &[i64],
    reason: &str,
) -> Vec<i64> {
    let name = ch.name();
    let to = ch.fallback();
    match ctx.store.fail_over(ids, name, to, reason, now_ms()).await {
        Ok(moved) => {
            if !moved.is_empty() {
                for t in to {
                    ctx.metrics
                        .failovers
                        .with_label_values(&[name, t.as_str()])
                        .inc_by(moved.len() as u64);
                }
                tracing::warn!(channel = %name, to = ?to, alerts = moved.len(), error = %reason, "handed notifications to the fallback channel(s)");
            }
            moved
        }
        Err(e) => {
            tracing::warn!(channel = %name, error = %e, "cannot hand notifications to the fallback; they stay with this channel");
            Vec::new()
        }
    }
}

pub(crate) async fn reschedule(ctx: &WorkerCtx, name: &str, ids: &[i64], due: i64, reason: &str) {
    if let Err(e) = ctx.store.reschedule(ids, due, reason).await {
        tracing::warn!(channel = %name, error = %e, "cannot reschedule; the lease will expire and the rows retry");
    }
}

pub(crate) async fn permanent(ctx: &WorkerCtx, name: &str, ids: &[i64], reason: &str) {
    ctx.metrics
        .notifications
        .with_label_values(&[name, "failed"])
        .inc_by(ids.len() as u64);
    ctx.metrics
        .permanent_errors
        .with_label_values(&[name])
        .inc();
    if let Err(e) = ctx.store.mark_failed(ids, reason, now_ms()).await {
        tracing::warn!(channel = %name, error = %e, "cannot mark failed; the lease will expire and the rows retry");
    }
    tracing::error!(channel = %name, alerts = ids.len(), error = %reason, "permanent delivery error; notifications marked failed (see /api/v1/notifications?state=failed)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let (i, m) = (Duration::from_secs(1), Duration::from_secs(60));
        for a in 0..30 {
            let d = backoff(a, i, m);
            let full = (i * (1u32 << a.min(20))).min(m);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {a}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert!(backoff(10, i, m) >= Duration::from_secs(30));
    }
}
