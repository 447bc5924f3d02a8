//! Collectors: one module per source, each behind the [`Collector`] trait.
//!
//! A new collector is one new file here plus one line in [`build`].

pub mod node;
pub mod pg_conn;
pub mod postgres;
pub mod redis;
pub mod trading;
pub mod trading_sources;

use crate::config::Config;
use crate::metrics::Families;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Why a collector produced nothing (or only its `*_up 0`) this scrape.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("source unreachable: {0}")]
    Unreachable(String),
    #[error("query failed: {0}")]
    Query(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What every collector gets for one scrape.
#[derive(Clone, Copy, Debug)]
pub struct ScrapeContext {
    /// The time left for this collector; the scrape drops it when this runs out.
    pub budget: Duration,
}

/// One source of metrics, asked concurrently with the others on every scrape.
pub trait Collector: Send + Sync {
    /// The `collector` label value of the self metrics.
    fn name(&self) -> &'static str;

    /// Gathers this scrape's families. Runs under a timeout: a slow source is dropped and
    /// reported through [`Collector::down`] rather than delaying the scrape.
    fn collect<'a>(&'a self, ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>>;

    /// Families that say "source down" (`pg_up 0`) when collect failed or timed out.
    fn down(&self) -> Families {
        Families::default()
    }

    /// Whether the source answers, for `/readyz`.
    fn ready<'a>(&'a self) -> BoxFuture<'a, bool> {
        Box::pin(async { true })
    }
}

/// The collectors `config` turns on, in output order. Sources that are not configured are off.
pub fn build(config: &Config) -> Vec<Arc<dyn Collector>> {
    let mut out: Vec<Arc<dyn Collector>> = Vec::new();
    if config.host.enabled {
        out.push(Arc::new(node::HostCollector::new(config.host.clone())));
    }
    if let Some(pg) = postgres::PostgresCollector::from_config(&config.postgres) {
        out.push(Arc::new(pg));
    }
    if let Some(r) = redis::RedisCollector::from_config(&config.redis) {
        out.push(Arc::new(r));
    }
    if let Some(t) = trading::TradingCollector::from_config(&config.trading) {
        out.push(Arc::new(t));
    }
    if let Some(t) = trading_sources::TradingSourcesCollector::from_config(&config.trading) {
        out.push(Arc::new(t));
    }
    out
}
