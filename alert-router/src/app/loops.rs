//! The background loops: each wakes on its own interval, reads the configuration in force and
//! calls a planner's `tick` with the store and `now`. Aborted on shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::core::clock;
use crate::plan::{heartbeat, rota, silence};
use crate::store;

/// Expire "until resolved" silences of resolved alerts, every `silences.check_interval`.
pub async fn silences(app: Arc<App>) {
    loop {
        let settings = app.live().config.plan.silences.clone();
        tokio::time::sleep(settings.check_interval).await;
        if settings.alertmanager_urls.is_empty() {
            continue;
        }
        if let Err(e) =
            silence::expire_resolved(&settings, app.store.as_ref(), clock::now_ms()).await
        {
            tracing::warn!(error = %e, "cannot check silences of resolved alerts");
        }
    }
}

/// Handoffs, gaps and ack reminders every `rota.check_interval`; wakes the workers when the
/// rota queued something.
pub async fn rota(app: Arc<App>) {
    loop {
        let live = app.live();
        tokio::time::sleep(live.config.plan.rota.check_interval).await;
        match rota::tick(app.store.as_ref(), &live.config.plan, clock::now()).await {
            Ok(rep) if rep != rota::TickReport::default() => {
                for w in live.wake.values() {
                    w.notify_one();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check the on-call rota"),
        }
    }
}

/// The watcher of expected signals: evaluates them when the next one falls due (at least
/// every second), or at once when the web layer heard one (`heard`).
pub async fn heartbeats(app: Arc<App>, heard: Arc<tokio::sync::Notify>) {
    loop {
        let now = clock::now_ms();
        let live = app.live();
        let ticked = heartbeat::tick(
            &live.config.plan,
            app.store.as_ref(),
            &app.ingest,
            &app.metrics,
            now,
        );
        let next = ticked.await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot evaluate expected signals; retrying");
            now + heartbeat::MAX_SLEEP_MS
        });
        let wait = (next - clock::now_ms()).clamp(10, heartbeat::MAX_SLEEP_MS);
        let _ = tokio::time::timeout(Duration::from_millis(wait as u64), heard.notified()).await;
    }
}

/// Drop send records older than an hour, every ten minutes.
pub async fn housekeeping(app: Arc<App>) {
    loop {
        tokio::time::sleep(Duration::from_secs(600)).await;
        if let Err(e) = app.store.prune_sends(clock::now_ms() - 3_600_000).await {
            tracing::warn!(error = %e, "cannot prune old send records");
        }
    }
}

/// Give the allocator's free pages back every minute (`quantwatch_web::heap`). A burst of
/// webhooks after a pause (a stalled disk, Alertmanager flushing a backlog) raises the heap's
/// high-water mark; glibc keeps those pages resident for ever once live chunks sit between
/// them, so without this RSS climbs in steps while live data stays flat (README, "Soak").
pub async fn heap() {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        let released = quantwatch_web::heap::release_free_pages();
        tracing::debug!(
            released,
            micros = started.elapsed().as_micros() as u64,
            "returned free heap pages"
        );
    }
}

/// Retention (`store::retention`): a round at start, then every `retention.interval` of the
/// configuration in force, on one replica at a time (`retention::run_as`, the lease named
/// after this process); rows deleted, the round's time and the store's size as self-metrics.
/// A replica that skips reports when the store's last round finished, whoever ran it, so
/// `quantwatch_router_retention_last_run_timestamp_seconds` means the same on every replica.
/// A failed run is logged and tried again at the next interval (nothing is lost by waiting).
pub async fn retention(app: Arc<App>) {
    for t in store::retention::TABLES {
        app.metrics.retention_pruned.with_label_values(&[t]);
    }
    store_size(&app).await;
    loop {
        let cfg = app.live().config.retention.clone();
        let round = store::retention::run_as(app.store.as_ref(), &cfg, &app.owner, clock::now_ms());
        match round.await {
            Ok(store::retention::Round::Ran(rep)) => {
                for (table, n) in &rep.rows {
                    app.metrics
                        .retention_pruned
                        .with_label_values(&[table])
                        .inc_by(*n);
                }
                app.metrics.retention_batches.inc_by(rep.batches);
                app.metrics
                    .retention_last_duration
                    .set(rep.elapsed.as_secs_f64());
                if !rep.lost_lease {
                    app.metrics
                        .retention_last_run
                        .set(clock::now_ms() as f64 / 1000.0);
                }
                if rep.firings > 0 || !rep.rows.is_empty() {
                    tracing::info!(
                        firings = rep.firings,
                        rows = ?rep.rows,
                        batches = rep.batches,
                        reclaimed_pages = rep.reclaimed_pages,
                        seconds = rep.elapsed.as_secs_f64(),
                        lost_lease = rep.lost_lease,
                        "retention pruned the store"
                    );
                }
            }
            Ok(store::retention::Round::Skipped {
                by,
                until_ms,
                done_ms,
            }) => {
                tracing::debug!(
                    by,
                    until_ms,
                    done_ms,
                    "retention: another replica holds the lease; skipping this round"
                );
                if let Some(done) = done_ms {
                    app.metrics.retention_last_run.set(done as f64 / 1000.0);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention run failed; trying again next interval")
            }
        }
        store_size(&app).await;
        tokio::time::sleep(cfg.interval).await;
    }
}

async fn store_size(app: &App) {
    match app.store.size_bytes().await {
        Ok(n) => app.metrics.store_size.set(n),
        Err(e) => tracing::debug!(error = %e, "cannot read the store's size"),
    }
}
