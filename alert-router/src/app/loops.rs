//! The background loops: each wakes on its own interval, reads the configuration in force and
//! calls a planner's `tick` with the store and `now`. Aborted on shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::core::clock;
use crate::plan::{heartbeat, rota, silence};

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
