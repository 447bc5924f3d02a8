//! The `trading_sources` collector: every configured bot store other than the reference
//! schema ([`crate::trading::sources`]), read concurrently, each under its own deadline.
//!
//! A source that fails or overruns reports `trading_source_up{source} 0` (and keeps its last
//! success time); the others, and the rest of the scrape, are unaffected: this collector
//! itself never fails. Each source's series are the reference families rendered by
//! [`super::trading::render_labelled`] with `source="<name>"` on every series.

use super::trading::{PortfolioPeak, render_labelled};
use super::{CollectError, Collector, ScrapeContext};
use crate::config::TradingConfig;
use crate::metrics::{Families, merge_same_names};
use crate::trading::day::trading_day_start;
use crate::trading::sources::{self, ReadContext, Source, SourceHealth};
use chrono::{DateTime, NaiveTime, Utc};
use futures::future::BoxFuture;
use jiff::tz::TimeZone as Tz;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time kept back from the scrape's budget so that a source cut at its deadline is still
/// reported before the scrape's own deadline drops this collector.
const MARGIN: Duration = Duration::from_millis(50);

struct Entry {
    source: Arc<dyn Source>,
    timeout: Duration,
    health: SourceHealth,
}

pub struct TradingSourcesCollector {
    entries: Vec<Entry>,
    tz: Tz,
    day_start: NaiveTime,
    max_symbols: usize,
    fixed_now: Mutex<Option<DateTime<Utc>>>,
}

impl TradingSourcesCollector {
    /// `None` when no source other than the reference one is configured (or trading is off).
    pub fn from_config(config: &TradingConfig) -> Option<TradingSourcesCollector> {
        if config.enabled == Some(false) {
            return None;
        }
        let entries: Vec<Entry> = sources::build_all(config)
            .into_iter()
            .map(|(source, timeout)| Entry {
                health: SourceHealth::new(source.name()),
                source,
                timeout,
            })
            .collect();
        if entries.is_empty() {
            return None;
        }
        Some(TradingSourcesCollector {
            entries,
            tz: config.tz.clone(),
            day_start: config.day_start_time,
            max_symbols: config.max_symbols,
            fixed_now: Mutex::new(None),
        })
    }

    /// Pins the clock (tests with hand-computed answers); `None` returns to the wall clock.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        if let Ok(mut g) = self.fixed_now.lock() {
            *g = now;
        }
    }

    async fn gather(&self, ctx: ScrapeContext) -> Families {
        let now = self
            .fixed_now
            .lock()
            .ok()
            .and_then(|g| *g)
            .unwrap_or_else(Utc::now);
        let day_start = trading_day_start(now, &self.tz, self.day_start);
        let started = Instant::now();
        let runs = self.entries.iter().map(|e| async move {
            let budget = e.timeout.min(ctx.budget.saturating_sub(MARGIN));
            let rctx = ReadContext {
                now,
                day_start,
                deadline: started + budget,
            };
            let name = e.source.name();
            match tokio::time::timeout(budget, e.source.read(rctx)).await {
                Ok(Ok(data)) => {
                    let mut fams = render_labelled(
                        &data,
                        now,
                        self.max_symbols,
                        PortfolioPeak::Loading,
                        &[("source", name)],
                    );
                    fams.0.extend(e.health.succeeded().0);
                    fams
                }
                Ok(Err(err)) => {
                    tracing::warn!(source = name, error = %err, "trading source read failed");
                    e.health.failed()
                }
                Err(_) => {
                    tracing::warn!(
                        source = name,
                        budget_ms = budget.as_millis() as u64,
                        "trading source read timed out"
                    );
                    e.health.failed()
                }
            }
        });
        let all: Vec<_> = futures::future::join_all(runs)
            .await
            .into_iter()
            .flat_map(|f| f.0)
            .collect();
        Families(merge_same_names(all))
    }
}

impl Collector for TradingSourcesCollector {
    fn name(&self) -> &'static str {
        "trading_sources"
    }

    fn collect<'a>(&'a self, ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>> {
        Box::pin(async move { Ok(self.gather(ctx).await) })
    }

    /// Only reached when the whole scrape's deadline cut this collector short.
    fn down(&self) -> Families {
        let all = self
            .entries
            .iter()
            .flat_map(|e| e.health.failed().0)
            .collect();
        Families(merge_same_names(all))
    }
}
