//! PostgreSQL metrics: every family postgres_exporter 0.11 publishes with its default flags
//! (names, types, label names, values; not its deprecated `server` label), plus the default
//! collectors of current upstream releases that dashboards use (`pg_stat_user_tables_*`,
//! `pg_statio_user_tables_*`, `pg_stat_statements_*`, `pg_wal_*`,
//! `pg_long_running_transactions*`, `pg_replication_slots_*`).
//!
//! One small pool (at most 2 connections, so a hung server can never collect more of ours),
//! every session with `statement_timeout`, `lock_timeout` and read-only transactions. A
//! scrape is one statement returning one JSON document (`live.rs`), plus, at most every
//! `database_size_refresh`, a second one for settings, sizes and server facts (`catalog.rs`).

mod catalog;
mod json;
mod live;
mod settings;
pub mod user_queries;

use super::pg_conn::{ConnPool, PoolError};
use super::{CollectError, Collector, ScrapeContext};
use crate::config::PostgresConfig;
use crate::metrics::{Families, Family};
use catalog::Catalog;
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};
use user_queries::UserQueries;

/// The most connections this collector ever holds open.
pub const MAX_CONNECTIONS: usize = 2;

const UP_HELP: &str = "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).";

pub struct PostgresCollector {
    pool: ConnPool,
    connect_timeout: Duration,
    refresh: Duration,
    /// Settings, sizes and server facts, with when they were read (`None` after a reconnect).
    catalog: tokio::sync::Mutex<Option<(Instant, Catalog)>>,
    stats: StdMutex<ScrapeStats>,
    /// The queries.yaml of `--extend.query-path` (shared by every `/probe` target).
    user: Arc<UserQueries>,
    user_cache: tokio::sync::Mutex<user_queries::Cache>,
}

/// postgres_exporter's own scrape families, kept per target.
#[derive(Default)]
struct ScrapeStats {
    scrapes: u64,
    last_duration: f64,
    /// (catalog statement seconds, live statement seconds) of the last successful scrape:
    /// `pg_scrape_collector_duration_seconds` for its `database` and `bgwriter` collectors.
    last_parts: (f64, f64),
}

impl PostgresCollector {
    /// `None` when no URL is configured (the collector is off); a malformed URL was already
    /// rejected by config validation, so a parse failure here also means "off", logged.
    pub fn from_config(config: &PostgresConfig) -> Option<PostgresCollector> {
        let url = config.url.as_ref()?;
        let opts = match PgConnectOptions::from_str(url.expose()) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "postgres: unusable DATABASE_URL; collector off");
                return None;
            }
        };
        let user = Arc::new(
            config
                .extend_query_path
                .as_deref()
                .map(UserQueries::load)
                .unwrap_or_default(),
        );
        Some(Self::with_options(opts, config, user))
    }

    pub fn with_options(
        opts: PgConnectOptions,
        config: &PostgresConfig,
        user: Arc<UserQueries>,
    ) -> PostgresCollector {
        let opts = opts.application_name("quantwatch-exporter").options([
            (
                "statement_timeout",
                config.statement_timeout.as_millis().to_string(),
            ),
            ("lock_timeout", config.lock_timeout.as_millis().to_string()),
            ("default_transaction_read_only", "on".to_string()),
        ]);
        let pool = ConnPool::new(opts, MAX_CONNECTIONS, config.connect_timeout);
        PostgresCollector {
            pool,
            connect_timeout: config.connect_timeout,
            refresh: config.database_size_refresh,
            catalog: tokio::sync::Mutex::new(None),
            stats: StdMutex::new(ScrapeStats::default()),
            user,
            user_cache: tokio::sync::Mutex::new(user_queries::Cache::default()),
        }
    }

    async fn document(
        conn: &mut PgConnection,
        sql: &str,
    ) -> Result<serde_json::Value, sqlx::Error> {
        let text: String = sqlx::query_scalar(sql).fetch_one(conn).await?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    async fn gather(&self, budget: Duration) -> Result<Families, CollectError> {
        let start = Instant::now();
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).scrapes += 1;
        let result = self.scrape(budget).await;
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.last_duration = start.elapsed().as_secs_f64();
        let (mut fams, parts) = result?;
        stats.last_parts = parts;
        drop(stats);
        fams.gauge("pg_up", UP_HELP, 1.0);
        self.self_families(&mut fams, true);
        Ok(fams)
    }

    /// The families of one scrape and (catalog, live) statement seconds.
    async fn scrape(&self, budget: Duration) -> Result<(Families, (f64, f64)), CollectError> {
        let unreachable = |e: PoolError| CollectError::Unreachable(e.to_string());
        let q = |e: sqlx::Error| CollectError::Query(e.to_string());
        let mut lease = self.pool.get(budget).await.map_err(unreachable)?;
        let mut catalog = self.catalog.lock().await;
        let stale = catalog
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= self.refresh);
        // The first statement tells whether an idle pooled connection died with a restarted
        // server: then every idle connection is dropped and the scrape retries once.
        let first_sql = if stale {
            catalog::sql()
        } else {
            live::sql(&catalog.as_ref().expect("not stale, so present").1)
        };
        let t0 = Instant::now();
        let first = match Self::document(lease.conn(), &first_sql).await {
            Ok(v) => v,
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) if lease.reused => {
                tracing::debug!(error = %e, "postgres: stale pooled connection; reconnecting");
                drop(lease);
                self.pool.clear();
                *catalog = None;
                drop(catalog);
                return Box::pin(self.scrape(budget)).await;
            }
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) => {
                return Err(CollectError::Unreachable(e.to_string()));
            }
            Err(e) => return Err(q(e)),
        };
        let first_took = t0.elapsed().as_secs_f64();
        let (cat, live_doc, parts) = if stale {
            let cat = Catalog::parse(&first);
            *catalog = Some((Instant::now(), cat.clone()));
            let t1 = Instant::now();
            let doc = Self::document(lease.conn(), &live::sql(&cat))
                .await
                .map_err(q)?;
            (cat, doc, (first_took, t1.elapsed().as_secs_f64()))
        } else {
            let cat = catalog.as_ref().expect("not stale, so present").1.clone();
            (cat, first, (0.0, first_took))
        };
        drop(catalog);
        let user = user_queries::collect(&self.user, &self.user_cache, lease.conn()).await;
        // Only a connection whose built-in statements succeeded goes back to the pool (a
        // failed custom query leaves the session clean: no transaction is open).
        lease.release();
        let mut fams = Families::default();
        live::catalog_families(&cat, &mut fams);
        live::families(&live_doc, &mut fams);
        // A custom namespace that publishes a built-in family's name replaces it, as in
        // postgres_exporter (and two families of one name would make the output invalid).
        let custom: std::collections::HashSet<String> =
            user.0.iter().map(|f| f.name().to_string()).collect();
        fams.0.retain(|f| !custom.contains(f.name()));
        fams.0.extend(user.0);
        Ok((fams, parts))
    }

    /// postgres_exporter's own families: `pg_exporter_*`, `pg_scrape_collector_*{collector}`
    /// for its two default collectors (`database`: sizes, from the catalog statement;
    /// `bgwriter`: the live statement; 0 s when the catalog came from the cache).
    fn self_families(&self, fams: &mut Families, up: bool) {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        fams.gauge(
            "pg_exporter_last_scrape_duration_seconds",
            "Duration of the last scrape of metrics from PostgreSQL.",
            stats.last_duration,
        );
        fams.gauge(
            "pg_exporter_last_scrape_error",
            "Whether the last scrape of metrics from PostgreSQL resulted in an error (1 for error, 0 for success).",
            if up { 0.0 } else { 1.0 },
        );
        fams.counter(
            "pg_exporter_scrapes_total",
            "Total number of times PostgreSQL was scraped for metrics.",
            stats.scrapes as f64,
        );
        user_queries::load_error_family(&self.user, fams);
        let mut d = Family::gauge(
            "pg_scrape_collector_duration_seconds",
            "postgres_exporter: Duration of a collector scrape.",
        );
        let mut s = Family::gauge(
            "pg_scrape_collector_success",
            "postgres_exporter: Whether a collector succeeded.",
        );
        let ok = if up { 1.0 } else { 0.0 };
        let (cat, live) = if up { stats.last_parts } else { (0.0, 0.0) };
        d.add(&[("collector", "bgwriter")], live);
        d.add(&[("collector", "database")], cat);
        s.add(&[("collector", "bgwriter")], ok);
        s.add(&[("collector", "database")], ok);
        fams.push(d);
        fams.push(s);
    }
}

impl Collector for PostgresCollector {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn collect<'a>(&'a self, ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>> {
        Box::pin(self.gather(ctx.budget))
    }

    fn down(&self) -> Families {
        let mut f = Families::default();
        f.gauge("pg_up", UP_HELP, 0.0);
        self.self_families(&mut f, false);
        f
    }

    fn ready<'a>(&'a self) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let check = async {
                let mut lease = self.pool.get(self.connect_timeout).await.ok()?;
                let one = sqlx::query_scalar::<_, i32>("SELECT 1")
                    .fetch_one(lease.conn())
                    .await
                    .ok()?;
                lease.release();
                Some(one)
            };
            matches!(
                tokio::time::timeout(self.connect_timeout, check).await,
                Ok(Some(1))
            )
        })
    }
}
