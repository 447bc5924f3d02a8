//! The per-channel loop: wait for the limiter, claim due outbox rows with a lease, hand them
//! to one attempt (`attempt` for messages, `calls` for calling channels), repeat. Rounds are
//! spaced so that a storm goes out as digests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::channels::Channel;
use crate::core::clock::{StepWatch, now_ms};
use crate::store::OutboxRow;

use super::WorkerCtx;
use super::limits::RateLimiter;
use super::settle::{self, ChannelState};

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Run until `stop` turns true; an in-flight send always finishes first.
pub async fn run(
    ch: Arc<dyn Channel>,
    ctx: WorkerCtx,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let name = ch.name().to_string();
    let mut state = ChannelState {
        limiter: start_limiter(ch.as_ref(), &ctx).await,
        ..ChannelState::default()
    };
    ctx.metrics.init_channel(&name);
    // On the monotonic clock: a pause is a length of time, whatever the wall clock does.
    let mut pause_until = tokio::time::Instant::now();
    let mut clock = StepWatch::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let (now, step) = clock.look();
        if step != 0 {
            // What this loop holds as wall instants keeps its distance from now.
            tracing::warn!(channel = %name, step_ms = step, "the wall clock stepped; moving this channel's send window with it");
            if state.banned_until != 0 {
                state.banned_until = state.banned_until.saturating_add(step);
            }
            if let Some(l) = &mut state.limiter {
                l.shift(step);
            }
        }
        let mut ready_at = now;
        if let Some(l) = &mut state.limiter {
            ready_at = ready_at.max(l.next_allowed(now));
        }
        let wait = Duration::from_millis((ready_at - now) as u64)
            .max(pause_until.saturating_duration_since(tokio::time::Instant::now()));
        let blocked = state.banned_until > now && !ch.fallback().is_empty();
        if !wait.is_zero() && !blocked {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let rows = match claim(&ctx, &name, now).await {
            Some(rows) => rows,
            None => {
                pause_until = tokio::time::Instant::now() + ctx.delivery.poll_interval;
                continue;
            }
        };
        if rows.is_empty() {
            idle(&ctx, &name, now, &wake, &mut stop).await;
            continue;
        }
        if blocked {
            hand_over_while_banned(ch.as_ref(), &ctx, &rows, state.banned_until, now).await;
            continue;
        }
        // Rounds are at least `round_interval` apart: under a storm the notifications of that
        // interval go out as one digest, and the store sees a few worker commits per second
        // instead of one per webhook (each commit is an fsync the intake also waits for).
        let round_gap = tokio::time::Instant::now() + ctx.delivery.round_interval;
        let pause = match ch.caller() {
            // Calls go to one person at a time until someone answers.
            Some(caller) => super::calls::deliver(ch.as_ref(), caller, &ctx, rows).await,
            None => super::attempt::deliver(ch.as_ref(), &ctx, &mut state, rows).await,
        };
        // A pause comes back as a wall instant: taken as a length from now, right away.
        let pause = pause.map_or(Duration::ZERO, |at| {
            Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
        });
        pause_until = round_gap.max(tokio::time::Instant::now() + pause);
    }
    tracing::debug!(channel = %name, "delivery worker stopped");
}

/// The channel's limiter, with the sends before a restart still counted against the vendor's
/// window.
async fn start_limiter(ch: &dyn Channel, ctx: &WorkerCtx) -> Option<RateLimiter> {
    let (n, w) = ch.limits().rate?;
    let mut l = RateLimiter::new(n, w);
    let since = now_ms() - ms(w);
    match ctx.store.sends_since(ch.name(), since).await {
        Ok(ts) => ts.into_iter().for_each(|t| l.record(t)),
        Err(e) => {
            tracing::warn!(channel = %ch.name(), error = %e, "cannot read recent sends; starting with an empty rate window")
        }
    }
    Some(l)
}

/// Claim due rows with a lease; `None` when the store failed (the caller pauses a poll).
async fn claim(ctx: &WorkerCtx, name: &str, now: i64) -> Option<Vec<OutboxRow>> {
    let lease_ms = i64::try_from(ctx.delivery.lease.as_millis()).unwrap_or(120_000);
    let claimed = ctx
        .store
        .claim(
            name,
            now,
            ctx.delivery.batch_max as i64,
            &ctx.owner,
            lease_ms,
        )
        .await;
    match claimed {
        Ok(r) => {
            ctx.metrics.store_up.set(1);
            Some(r)
        }
        Err(e) => {
            ctx.metrics.store_up.set(0);
            tracing::warn!(channel = %name, error = %e, "cannot claim notifications");
            None
        }
    }
}

/// Nothing due: sleep until the next future-dated row (an escalation step), the poll interval,
/// a wake-up (new rows committed) or stop.
async fn idle(
    ctx: &WorkerCtx,
    name: &str,
    now: i64,
    wake: &Notify,
    stop: &mut watch::Receiver<bool>,
) {
    let mut idle = ctx.delivery.poll_interval;
    if let Ok(Some(due)) = ctx.store.next_due(name, now).await {
        idle = idle.min(Duration::from_millis((due - now).max(1) as u64));
    }
    tokio::select! {
        _ = wake.notified() => {}
        _ = tokio::time::sleep(idle) => {}
        _ = stop.changed() => {}
    }
}

/// While the vendor blocks the channel, what falls due goes to the fallbacks; copies that
/// already failed over once wait for the ban to end.
async fn hand_over_while_banned(
    ch: &dyn Channel,
    ctx: &WorkerCtx,
    rows: &[OutboxRow],
    banned_until: i64,
    now: i64,
) {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let reason = format!(
        "channel blocked by its vendor for {} s more",
        (banned_until - now) / 1000
    );
    let moved = settle::hand_over(ch, ctx, &ids, &reason)
        .await
        .unwrap_or_default();
    let rest: Vec<i64> = ids.into_iter().filter(|i| !moved.contains(i)).collect();
    if !rest.is_empty() {
        settle::reschedule(ctx, ch.name(), &rest, banned_until, &reason).await;
    }
}
