//! One scrape: every collector concurrently, each under the scrape's deadline.
//!
//! Prometheus says how long it will wait (`X-Prometheus-Scrape-Timeout-Seconds`); we answer a
//! little before that. A collector that overruns is dropped and reported as failed with its
//! `*_up 0`, so one dead or hung source never makes the whole scrape late or empty.

use crate::collectors::{Collector, ScrapeContext};
use crate::metrics::{Families, Family, MetricFamily, encode, merge_same_names};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shortest budget we give collectors, however small the header says.
const MIN_BUDGET: Duration = Duration::from_millis(100);
/// The longest: a header of `1e20` (or any value a client makes up) must neither panic the
/// conversion to a `Duration` nor hold collectors for days.
const MAX_BUDGET: Duration = Duration::from_secs(120);

pub struct Scraper {
    collectors: Vec<Arc<dyn Collector>>,
    default_timeout: Duration,
    timeout_offset: Duration,
    build_info: MetricFamily,
}

impl Scraper {
    pub fn new(
        collectors: Vec<Arc<dyn Collector>>,
        default_timeout: Duration,
        timeout_offset: Duration,
    ) -> Scraper {
        let mut bi = Family::gauge(
            "quantwatch_exporter_build_info",
            "A metric with a constant '1' value labeled by version and the Rust version it was built with.",
        );
        bi.add(
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("rustversion", crate::RUST_VERSION),
            ],
            1.0,
        );
        Scraper {
            collectors,
            default_timeout,
            timeout_offset,
            build_info: bi.into_inner(),
        }
    }

    pub fn collectors(&self) -> &[Arc<dyn Collector>] {
        &self.collectors
    }

    /// The budget for a scrape given Prometheus' timeout header (seconds, may be fractional).
    pub fn budget(&self, header: Option<&str>) -> Duration {
        let from_header = header
            .and_then(|h| h.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| {
                Duration::try_from_secs_f64(s)
                    .unwrap_or(MAX_BUDGET)
                    .min(MAX_BUDGET)
                    .saturating_sub(self.timeout_offset)
            });
        from_header
            .unwrap_or(self.default_timeout)
            .clamp(MIN_BUDGET, MAX_BUDGET.max(self.default_timeout))
    }

    /// Runs every collector and renders the exposition text.
    pub async fn scrape(&self, budget: Duration) -> String {
        let ctx = ScrapeContext { budget };
        let runs = self.collectors.iter().map(|c| async move {
            let start = Instant::now();
            let result = tokio::time::timeout(budget, c.collect(ctx)).await;
            let elapsed = start.elapsed().as_secs_f64();
            match result {
                Ok(Ok(fams)) => (c.name(), true, elapsed, fams),
                Ok(Err(e)) => {
                    tracing::warn!(collector = c.name(), error = %e, "collector failed");
                    (c.name(), false, elapsed, c.down())
                }
                Err(_) => {
                    tracing::warn!(
                        collector = c.name(),
                        budget_ms = budget.as_millis() as u64,
                        "collector timed out"
                    );
                    (c.name(), false, elapsed, c.down())
                }
            }
        });
        let results = futures::future::join_all(runs).await;

        let mut success = Family::gauge(
            "quantwatch_exporter_collector_success",
            "Whether the collector succeeded in the last scrape (1) or failed or timed out (0).",
        );
        let mut duration = Family::gauge(
            "quantwatch_exporter_collector_duration_seconds",
            "How long the collector took in the last scrape.",
        );
        let mut all: Vec<MetricFamily> = Vec::new();
        for (name, ok, secs, fams) in results {
            success.add(&[("collector", name)], if ok { 1.0 } else { 0.0 });
            duration.add(&[("collector", name)], secs);
            all.extend(fams.0);
        }
        let mut own = Families::default();
        own.push(success);
        own.push(duration);
        crate::process::families(&mut own);
        all.extend(own.0);
        all.push(self.build_info.clone());
        // The reference trading collector and the trading sources publish the same families.
        encode(&merge_same_names(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_timeout_header_gives_a_bounded_budget() {
        let s = Scraper::new(
            Vec::new(),
            Duration::from_secs(10),
            Duration::from_millis(500),
        );
        assert_eq!(s.budget(Some("5")), Duration::from_millis(4500));
        assert_eq!(
            s.budget(Some("1e20")),
            MAX_BUDGET - Duration::from_millis(500)
        );
        assert_eq!(s.budget(Some("1e400")), Duration::from_secs(10), "inf");
        for h in ["inf", "-inf", "NaN", "-3", "0", "soon", ""] {
            assert_eq!(s.budget(Some(h)), Duration::from_secs(10), "{h}");
        }
        assert_eq!(s.budget(None), Duration::from_secs(10));
        assert_eq!(s.budget(Some("0.2")), MIN_BUDGET);
    }
}
