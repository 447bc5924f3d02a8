//! PostgreSQL metrics under postgres_exporter's names (without its deprecated `server` label).
//!
//! One small pool (at most 2 connections, so a hung server can never collect more of ours),
//! every session with `statement_timeout` and `lock_timeout`, every query read-only. A scrape
//! runs its statements on one connection; they are prepared once per connection by sqlx.

use super::pg_conn::{ConnPool, PoolError};
use super::{CollectError, Collector, ScrapeContext};
use crate::config::PostgresConfig;
use crate::metrics::{Families, Family};
use futures::future::BoxFuture;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use std::str::FromStr;
use std::time::Duration;

/// The most connections this collector ever holds open.
pub const MAX_CONNECTIONS: usize = 2;

/// When database sizes were measured, and the (datname, bytes) pairs.
type SizeCache = (std::time::Instant, Vec<(String, f64)>);

pub struct PostgresCollector {
    pool: ConnPool,
    connect_timeout: Duration,
    size_refresh: Duration,
    /// pg_database_size() stats every file of every database: milliseconds on a real server
    /// where everything else here takes microseconds. Sizes move slowly, so they are
    /// re-measured at most every `size_refresh` (a PostgreSQL restart drops the cache).
    sizes: tokio::sync::Mutex<Option<SizeCache>>,
}

const SERVER_SQL: &str = "SELECT current_setting('max_connections')::float8, \
    EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8, \
    CASE WHEN pg_is_in_recovery() \
         THEN COALESCE(GREATEST(0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))), 0) \
         ELSE 0 END::float8";

const ACTIVITY_SQL: &str = "SELECT pg_database.datname, tmp.state, \
    COALESCE(count, 0)::float8, COALESCE(max_tx_duration, 0)::float8 \
    FROM (VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'), \
                 ('fastpath function call'), ('disabled')) AS tmp(state) \
    CROSS JOIN pg_database \
    LEFT JOIN (SELECT datname, state, count(*) AS count, \
                      MAX(EXTRACT(EPOCH FROM now() - xact_start))::float8 AS max_tx_duration \
               FROM pg_stat_activity GROUP BY datname, state) AS tmp2 \
    ON tmp.state = tmp2.state AND pg_database.datname = tmp2.datname \
    ORDER BY 1, 2";

const DATABASE_SQL: &str =
    "SELECT datname, pg_database_size(datname)::float8 FROM pg_database ORDER BY 1";

const STAT_DATABASE_SQL: &str = "SELECT datid::text, datname, numbackends::float8, \
    xact_commit::float8, xact_rollback::float8, blks_read::float8, blks_hit::float8, \
    tup_returned::float8, tup_fetched::float8, tup_inserted::float8, tup_updated::float8, \
    tup_deleted::float8, conflicts::float8, temp_files::float8, temp_bytes::float8, \
    deadlocks::float8, blk_read_time::float8, blk_write_time::float8 \
    FROM pg_stat_database WHERE datname IS NOT NULL ORDER BY datname";

const LOCKS_SQL: &str = "SELECT pg_database.datname, tmp.mode, COALESCE(count, 0)::float8 \
    FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), \
                 ('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'), \
                 ('exclusivelock'), ('accessexclusivelock'), ('sireadlock')) AS tmp(mode) \
    CROSS JOIN pg_database \
    LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count FROM pg_locks \
               WHERE database IS NOT NULL GROUP BY database, lower(mode)) AS tmp2 \
    ON tmp.mode = tmp2.mode AND pg_database.oid = tmp2.database \
    ORDER BY 1, 2";

/// pg_stat_database columns after datid and datname: (metric suffix, is counter, help).
const STAT_DATABASE_COLUMNS: [(&str, bool, &str); 16] = [
    (
        "numbackends",
        false,
        "Number of backends currently connected to this database.",
    ),
    (
        "xact_commit",
        true,
        "Number of transactions in this database that have been committed.",
    ),
    (
        "xact_rollback",
        true,
        "Number of transactions in this database that have been rolled back.",
    ),
    (
        "blks_read",
        true,
        "Number of disk blocks read in this database.",
    ),
    (
        "blks_hit",
        true,
        "Number of times disk blocks were found already in the buffer cache.",
    ),
    (
        "tup_returned",
        true,
        "Number of rows returned by queries in this database.",
    ),
    (
        "tup_fetched",
        true,
        "Number of rows fetched by queries in this database.",
    ),
    (
        "tup_inserted",
        true,
        "Number of rows inserted by queries in this database.",
    ),
    (
        "tup_updated",
        true,
        "Number of rows updated by queries in this database.",
    ),
    (
        "tup_deleted",
        true,
        "Number of rows deleted by queries in this database.",
    ),
    (
        "conflicts",
        true,
        "Number of queries canceled due to conflicts with recovery in this database.",
    ),
    (
        "temp_files",
        true,
        "Number of temporary files created by queries in this database.",
    ),
    (
        "temp_bytes",
        true,
        "Total amount of data written to temporary files by queries in this database.",
    ),
    (
        "deadlocks",
        true,
        "Number of deadlocks detected in this database.",
    ),
    (
        "blk_read_time",
        true,
        "Time spent reading data file blocks by backends in this database, in milliseconds.",
    ),
    (
        "blk_write_time",
        true,
        "Time spent writing data file blocks by backends in this database, in milliseconds.",
    ),
];

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
        Some(Self::with_options(opts, config))
    }

    pub fn with_options(opts: PgConnectOptions, config: &PostgresConfig) -> PostgresCollector {
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
            size_refresh: config.database_size_refresh,
            sizes: tokio::sync::Mutex::new(None),
        }
    }

    async fn gather(&self, budget: Duration) -> Result<Families, CollectError> {
        let unreachable = |e: PoolError| CollectError::Unreachable(e.to_string());
        let mut lease = self.pool.get(budget).await.map_err(unreachable)?;
        let server: Result<(f64, f64, f64), sqlx::Error> =
            sqlx::query_as(SERVER_SQL).fetch_one(lease.conn()).await;
        let (max_conn, start_time, lag) = match server {
            Ok(v) => v,
            // An idle connection that died with a restarted server: drop it and every other
            // idle one, and try once on a fresh connection.
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) if lease.reused => {
                tracing::debug!(error = %e, "postgres: stale pooled connection; reconnecting");
                drop(lease);
                self.pool.clear();
                *self.sizes.lock().await = None;
                lease = self.pool.get(budget).await.map_err(unreachable)?;
                sqlx::query_as(SERVER_SQL)
                    .fetch_one(lease.conn())
                    .await
                    .map_err(|e| CollectError::Unreachable(e.to_string()))?
            }
            Err(e) => return Err(CollectError::Unreachable(e.to_string())),
        };
        let fams = self.rest(lease.conn(), max_conn, start_time, lag).await?;
        // Only a connection whose every statement succeeded goes back to the pool.
        lease.release();
        Ok(fams)
    }

    async fn rest(
        &self,
        conn: &mut PgConnection,
        max_conn: f64,
        start_time: f64,
        lag: f64,
    ) -> Result<Families, CollectError> {
        let q = |e: sqlx::Error| CollectError::Query(e.to_string());
        let mut fams = Families::default();

        let activity: Vec<(String, String, f64, f64)> = sqlx::query_as(ACTIVITY_SQL)
            .fetch_all(&mut *conn)
            .await
            .map_err(q)?;
        let mut count = Family::gauge(
            "pg_stat_activity_count",
            "number of connections in this state",
        );
        let mut max_tx = Family::gauge(
            "pg_stat_activity_max_tx_duration",
            "max duration in seconds any active transaction has been running",
        );
        for (datname, state, n, dur) in &activity {
            let labels = [("datname", datname.as_str()), ("state", state.as_str())];
            count.add(&labels, *n);
            max_tx.add(&labels, *dur);
        }

        let sizes = {
            let mut cache = self.sizes.lock().await;
            match &*cache {
                Some((at, v)) if at.elapsed() < self.size_refresh => v.clone(),
                _ => {
                    let v: Vec<(String, f64)> = sqlx::query_as(DATABASE_SQL)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(q)?;
                    *cache = Some((std::time::Instant::now(), v.clone()));
                    v
                }
            }
        };
        let mut size = Family::gauge("pg_database_size_bytes", "Disk space used by the database");
        for (datname, bytes) in &sizes {
            size.add(&[("datname", datname)], *bytes);
        }

        let stats: Vec<PgRow> = sqlx::query(STAT_DATABASE_SQL)
            .fetch_all(&mut *conn)
            .await
            .map_err(q)?;
        let mut stat_fams: Vec<Family> = STAT_DATABASE_COLUMNS
            .iter()
            .map(|(col, counter, help)| {
                let name = format!("pg_stat_database_{col}");
                if *counter {
                    Family::counter(&name, help)
                } else {
                    Family::gauge(&name, help)
                }
            })
            .collect();
        for row in &stats {
            let datid: String = row.try_get(0).map_err(q)?;
            let datname: String = row.try_get(1).map_err(q)?;
            let labels = [("datid", datid.as_str()), ("datname", datname.as_str())];
            for (i, f) in stat_fams.iter_mut().enumerate() {
                let v: Option<f64> = row.try_get(i + 2).map_err(q)?;
                f.add(&labels, v.unwrap_or(0.0));
            }
        }

        let locks: Vec<(String, String, f64)> = sqlx::query_as(LOCKS_SQL)
            .fetch_all(&mut *conn)
            .await
            .map_err(q)?;
        let mut locks_f = Family::gauge("pg_locks_count", "Number of locks");
        for (datname, mode, n) in &locks {
            locks_f.add(&[("datname", datname), ("mode", mode)], *n);
        }

        fams.gauge("pg_up", "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).", 1.0);
        fams.gauge(
            "pg_settings_max_connections",
            "Sets the maximum number of concurrent connections.",
            max_conn,
        );
        fams.gauge(
            "pg_postmaster_start_time_seconds",
            "Time at which postmaster started",
            start_time,
        );
        fams.gauge(
            "pg_replication_lag_seconds",
            "Replication lag behind master in seconds",
            lag,
        );
        fams.push(count);
        fams.push(max_tx);
        fams.push(size);
        for f in stat_fams {
            fams.push(f);
        }
        fams.push(locks_f);
        Ok(fams)
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
        f.gauge("pg_up", "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).", 0.0);
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
