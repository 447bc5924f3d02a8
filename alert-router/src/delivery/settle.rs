//! What becomes of claimed rows once an attempt is over — the one place both the message
//! path (`attempt`) and the call path (`calls`) decide it: sent, retried with backoff, held
//! back by a vendor rate limit (handed to the fallbacks when the block is long), learnt from
//! a size refusal, or failed for good after the fallbacks had their turn.

use std::time::Duration;

use crate::channels::{Channel, SendError};
use crate::core::clock::now_ms;
use crate::store::OutboxRow;

use super::WorkerCtx;
use super::limits::RateLimiter;

/// A vendor block at least this long sends a channel's notifications to its fallbacks
/// (DingTalk's 130101 blocks a robot for 10 minutes); shorter waits are just waited out.
pub const FAILOVER_AFTER: Duration = Duration::from_secs(120);

/// A message refused for its size at or under this many bytes, carrying one alert, is not
/// split further: its refusal is permanent.
pub const MIN_SPLIT_BYTES: usize = 1024;

/// What a channel's worker learns across rounds: its send limiter, a size the vendor refused,
/// and until when the vendor blocks it.
#[derive(Debug, Default)]
pub struct ChannelState {
    pub limiter: Option<RateLimiter>,
    /// A size the vendor refused teaches a smaller limit than the one we measure against.
    pub size_cap: Option<usize>,
    /// Until when the vendor blocks this channel (a long rate-limit ban): with fallbacks,
    /// what falls due meanwhile is handed over instead of waiting for the ban to end.
    pub banned_until: i64,
}

/// The rows an attempt was about.
pub struct Attempted<'a> {
    pub rows: &'a [OutboxRow],
    /// Bytes of the part the vendor refused (for a size refusal).
    pub refused_size: usize,
    /// What was attempted, for the log: "send" or "call".
    pub what: &'static str,
}

impl Attempted<'_> {
    fn ids(&self) -> Vec<i64> {
        self.rows.iter().map(|r| r.id).collect()
    }
}

/// Exponential backoff with jitter: `initial * 2^attempts`, capped at `max`, then a random
/// point in its upper half so that retries of many rows do not arrive together.
pub fn backoff(attempts: i64, initial: Duration, max: Duration) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempts.clamp(0, 20));
    let capped = exp.min(max);
    let half = capped / 2;
    half + half.mul_f64(jitter_fraction())
}

fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded per instance: a fresh one is a cheap random source.
    let h = std::collections::hash_map::RandomState::new().build_hasher();
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Settle a failed attempt. `state` is the channel's worker state when the attempt went
/// through its limiter (a message), `None` for a call. Returns a channel-wide pause (ms
/// instant) when the failure is likely to hit the next rows too.
pub async fn failed(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    state: Option<&mut ChannelState>,
    attempt: Attempted<'_>,
    error: SendError,
) -> Option<i64> {
    let name = ch.name();
    let ids = attempt.ids();
    let count = ids.len() as u64;
    let attempts = attempt.rows.iter().map(|r| r.attempts).max().unwrap_or(0);
    let now = now_ms();
    let delivery = &ctx.delivery;
    match error {
        SendError::Retryable(reason) => {
            let due = now
                + ms(backoff(
                    attempts,
                    delivery.retry_initial,
                    delivery.retry_max,
                ));
            count_outcome(ctx, name, "retry", count);
            reschedule(ctx, name, &ids, due, &reason).await;
            tracing::warn!(channel = %name, alerts = count, attempts = attempts + 1, error = %reason, retry_in_ms = due - now, "{} failed; will retry", attempt.what);
            Some(due)
        }
        SendError::RateLimited {
            reason,
            retry_after,
        } => {
            let wait = retry_after
                .unwrap_or_else(|| backoff(attempts, delivery.retry_initial, delivery.retry_max));
            let due = now + ms(wait);
            count_outcome(ctx, name, "rate_limited", count);
            let mut rest = ids.clone();
            if let Some(state) = state {
                if let Some(l) = state.limiter.as_mut() {
                    l.block_until(due);
                }
                if wait >= FAILOVER_AFTER && !ch.fallback().is_empty() {
                    state.banned_until = due;
                    let moved = hand_over(ch, ctx, &ids, &reason).await.unwrap_or_default();
                    rest.retain(|i| !moved.contains(i));
                }
            }
            if !rest.is_empty() {
                reschedule(ctx, name, &rest, due, &reason).await;
            }
            tracing::warn!(channel = %name, alerts = count, error = %reason, retry_in_ms = due - now, "vendor rate limit; will retry");
            Some(due)
        }
        SendError::TooLarge(reason)
            if state.is_some()
                && (attempt.rows.len() > 1 || attempt.refused_size > MIN_SPLIT_BYTES) =>
        {
            // Our measure was too generous for this vendor: learn a smaller limit and give the
            // rows back for the next round, which renders fewer alerts per digest (or smaller
            // parts of a single alert). A size refusal never fails a digest.
            let cap = (attempt.refused_size / 2).max(MIN_SPLIT_BYTES / 2);
            if let Some(state) = state {
                state.size_cap = Some(cap);
            }
            count_outcome(ctx, name, "split", count);
            release(ctx, name, &ids).await;
            tracing::warn!(channel = %name, alerts = count, refused_bytes = attempt.refused_size, new_limit = cap, error = %reason, "vendor refused the message for its size; splitting");
            None
        }
        SendError::Permanent(reason) | SendError::TooLarge(reason) => {
            refused(ch, ctx, &ids, attempts, &reason).await
        }
    }
}

/// A permanent refusal: the rows go to the channel's fallbacks, the rest fail. When the store
/// will not take the handover the rows are rescheduled instead (a lock or an outage must
/// never fail a page); returns that pause.
async fn refused(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    ids: &[i64],
    attempts: i64,
    reason: &str,
) -> Option<i64> {
    let name = ch.name();
    let moved = if ch.fallback().is_empty() {
        Vec::new()
    } else if let Some(moved) = hand_over(ch, ctx, ids, reason).await {
        moved
    } else {
        // The store would not take the handover (it was down, or stayed locked past every
        // retry): the rows wait and come back to this channel, which refuses and hands them
        // over again.
        let now = now_ms();
        let due = now
            + ms(backoff(
                attempts,
                ctx.delivery.retry_initial,
                ctx.delivery.retry_max,
            ));
        count_outcome(ctx, name, "retry", ids.len() as u64);
        reschedule(ctx, name, ids, due, reason).await;
        return Some(due);
    };
    let rest: Vec<i64> = ids.iter().copied().filter(|i| !moved.contains(i)).collect();
    if !rest.is_empty() {
        permanent(ctx, name, &rest, reason).await;
    }
    None
}

/// The vendor took it: count, observe escalation lateness, mark the rows sent.
pub async fn sent(ctx: &WorkerCtx, name: &str, rows: &[OutboxRow], now: i64) {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    // Counted first: the vendor accepted it, whatever happens to the bookkeeping.
    count_outcome(ctx, name, "sent", ids.len() as u64);
    steps_out(ctx, rows.iter(), now);
    // The rows stay leased to this worker while it tries: a store that comes back within the
    // lease (a PostgreSQL restart, a disk that had no room) gets the mark and nothing repeats.
    // Only past half the lease is the mark given up; then the lease expires and the rows are
    // sent again: a duplicate, never a loss.
    let give_up = std::time::Instant::now() + ctx.delivery.lease / 2;
    let mut attempt = 0u32;
    loop {
        match ctx.store.mark_sent(&ids, now).await {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() < give_up => {
                attempt = attempt.saturating_add(1);
                tracing::warn!(channel = %name, attempt, error = %e, "sent but cannot mark sent yet; trying again while the lease holds");
                tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(3))).await;
            }
            Err(e) => {
                tracing::error!(channel = %name, error = %e, "sent but cannot mark sent; the notification may repeat");
                break;
            }
        }
    }
    tracing::info!(channel = %name, alerts = ids.len(), "notification sent");
}

/// Escalation steps that have just gone out: counted, with how late they went.
pub fn steps_out<'a>(ctx: &WorkerCtx, rows: impl Iterator<Item = &'a OutboxRow>, now: i64) {
    for r in rows.filter(|r| r.kind == crate::store::OutboxKind::Escalate) {
        ctx.metrics.escalation_steps.inc();
        ctx.metrics
            .escalation_lateness
            .observe((now - r.due_at).max(0) as f64 / 1000.0);
    }
}

pub fn count_outcome(ctx: &WorkerCtx, name: &str, outcome: &str, n: u64) {
    ctx.metrics
        .notifications
        .with_label_values(&[name, outcome])
        .inc_by(n);
}

/// Hand these rows to the channel's fallbacks (once; see `Store::fail_over`). Returns the ids
/// handed over (the others stay with the caller), or `None` when the store failed: then
/// nothing was handed over and the rows must not be marked failed.
pub async fn hand_over(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    ids: &[i64],
    reason: &str,
) -> Option<Vec<i64>> {
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
            Some(moved)
        }
        Err(e) => {
            tracing::warn!(channel = %name, error = %e, "cannot hand notifications to the fallback; they stay with this channel");
            None
        }
    }
}

/// Give rows back unsent (for the next round).
pub async fn release(ctx: &WorkerCtx, name: &str, ids: &[i64]) {
    if let Err(e) = ctx.store.release(ids).await {
        tracing::warn!(channel = %name, error = %e, "cannot release rows; their lease will expire");
    }
}

pub async fn reschedule(ctx: &WorkerCtx, name: &str, ids: &[i64], due: i64, reason: &str) {
    if let Err(e) = ctx.store.reschedule(ids, due, reason).await {
        tracing::warn!(channel = %name, error = %e, "cannot reschedule; the lease will expire and the rows retry");
    }
}

/// Fail rows for good: counted, marked failed with the reason (see
/// `/api/v1/notifications?state=failed`).
pub async fn permanent(ctx: &WorkerCtx, name: &str, ids: &[i64], reason: &str) {
    count_outcome(ctx, name, "failed", ids.len() as u64);
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
