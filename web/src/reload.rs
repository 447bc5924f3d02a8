//! Configuration reload on SIGHUP, alike in both binaries.
//!
//! A reload builds everything the new configuration needs first and then replaces what is in
//! force in one store ([`Swap`]), so a request sees either the old configuration or the new one,
//! never a mixture; a configuration that fails validation is refused and the old one keeps
//! serving. The outcome is published the way Prometheus and Alertmanager publish theirs
//! (`<prefix>_config_last_reload_successful`,
//! `<prefix>_config_last_reload_success_timestamp_seconds`), so the alert operators already
//! have for those ("the last reload failed") carries over by changing the prefix.

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// A value replaced whole on reload; readers take an `Arc` to the version in force and keep
/// using it for the rest of their request even if a reload lands meanwhile.
pub struct Swap<T> {
    inner: RwLock<Arc<T>>,
}

impl<T> Swap<T> {
    pub fn new(value: T) -> Swap<T> {
        Swap {
            inner: RwLock::new(Arc::new(value)),
        }
    }

    /// The version in force.
    pub fn get(&self) -> Arc<T> {
        self.inner
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Puts `value` in force; requests already running finish with the previous version.
    pub fn set(&self, value: T) {
        let value = Arc::new(value);
        match self.inner.write() {
            Ok(mut v) => *v = value,
            Err(p) => *p.into_inner() = value,
        }
    }
}

/// Whether the last reload worked, and when the configuration in force was loaded.
pub struct ReloadStatus {
    successful: AtomicBool,
    /// `f64` bits of the Unix time of the last successful load (the start counts as one).
    last_success: AtomicU64,
}

impl Default for ReloadStatus {
    fn default() -> Self {
        ReloadStatus::new()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl ReloadStatus {
    /// The state right after a successful start: as in Prometheus, the initial load counts as
    /// a successful reload, so the timestamp tells how old the configuration in force is.
    pub fn new() -> ReloadStatus {
        ReloadStatus {
            successful: AtomicBool::new(true),
            last_success: AtomicU64::new(unix_now().to_bits()),
        }
    }

    pub fn record(&self, ok: bool) {
        if ok {
            self.last_success
                .store(unix_now().to_bits(), Ordering::Relaxed);
        }
        self.successful.store(ok, Ordering::Relaxed);
    }

    pub fn successful(&self) -> bool {
        self.successful.load(Ordering::Relaxed)
    }

    /// Unix seconds of the last successful (re)load.
    pub fn last_success_timestamp(&self) -> f64 {
        f64::from_bits(self.last_success.load(Ordering::Relaxed))
    }

    /// The two families in the text exposition format, named `<prefix>_config_…` (`prefix`
    /// is a valid metric name prefix chosen by the binary, e.g. `quantwatch_exporter`).
    pub fn exposition(&self, prefix: &str) -> String {
        format!(
            "# HELP {prefix}_config_last_reload_successful Whether the last configuration reload attempt was successful.\n\
             # TYPE {prefix}_config_last_reload_successful gauge\n\
             {prefix}_config_last_reload_successful {}\n\
             # HELP {prefix}_config_last_reload_success_timestamp_seconds Timestamp of the last successful configuration reload.\n\
             # TYPE {prefix}_config_last_reload_success_timestamp_seconds gauge\n\
             {prefix}_config_last_reload_success_timestamp_seconds {}\n",
            u8::from(self.successful()),
            self.last_success_timestamp()
        )
    }
}

/// Runs `reload` once per message of `hangups` (see [`crate::signals::hangup_channel`]),
/// records the outcome in `status` and logs it: a refusal is one error line per line of the
/// error's text (each names file, key and reason), then a line saying the previous
/// configuration stays in force.
pub async fn reload_on_hangup<F, Fut, E>(
    mut hangups: tokio::sync::mpsc::Receiver<()>,
    status: Arc<ReloadStatus>,
    mut reload: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        match reload().await {
            Ok(()) => {
                status.record(true);
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                status.record(false);
                for line in e.to_string().lines() {
                    tracing::error!("reload refused: {line}");
                }
                tracing::error!("reload refused; the previous configuration stays in force");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reload_keeps_the_last_success_time() {
        let s = ReloadStatus::new();
        let started = s.last_success_timestamp();
        assert!(started > 1.5e9, "a Unix time: {started}");
        s.record(false);
        assert!(!s.successful());
        assert_eq!(s.last_success_timestamp(), started);
        let text = s.exposition("qw");
        assert!(
            text.contains("\nqw_config_last_reload_successful 0\n"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "\nqw_config_last_reload_success_timestamp_seconds {started}\n"
        )));
        s.record(true);
        assert!(s.successful());
        assert!(s.last_success_timestamp() >= started);
        assert!(
            s.exposition("qw")
                .contains("\nqw_config_last_reload_successful 1\n")
        );
    }

    #[test]
    fn readers_keep_the_version_they_took() {
        let s = Swap::new(1);
        let before = s.get();
        s.set(2);
        assert_eq!((*before, *s.get()), (1, 2));
    }
}
