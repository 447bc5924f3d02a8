//! Redis metrics: every family redis_exporter 1.45 publishes with its default flags, under its
//! names, types and label names.
//!
//! One scrape is one round trip: `INFO ALL`, the four `CONFIG GET`s redis_exporter turns into
//! families, `SLOWLOG LEN`, `SLOWLOG GET 1` and `LATENCY LATEST` go out as one pipeline on the
//! one multiplexed connection kept between scrapes (dropped on any I/O error, so a restarted
//! Redis is picked up by the next scrape). Only `INFO` is required; a server that refuses the
//! others (a renamed `CONFIG`, ACLs) loses only their families, as with redis_exporter.

mod info;
mod names;
mod replies;

use super::{CollectError, Collector, ScrapeContext};
use crate::config::RedisConfig;
use crate::metrics::{Families, Family};
use futures::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

pub use info::parse as parse_info;

const UP_HELP: &str = "Information about the Redis instance";

pub struct RedisCollector {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    connect_timeout: Duration,
    /// redis_exporter's own scrape families, kept per target.
    stats: StdMutex<ScrapeStats>,
    scrapes: AtomicU64,
}

#[derive(Default)]
struct ScrapeStats {
    /// Successful and failed scrapes: the `redis_exporter_scrape_duration_seconds` summary.
    count: u64,
    sum: f64,
    last_duration: f64,
    last_connect: f64,
    /// Why the last scrape failed; set before `collect` returns an error.
    last_error: Option<String>,
}

impl RedisCollector {
    /// `None` when no URL is configured (the collector is off).
    pub fn from_config(config: &RedisConfig) -> Option<RedisCollector> {
        let url = config.url.as_ref()?;
        match Self::new(url.expose(), config.connect_timeout) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "redis: unusable REDIS_URL; collector off");
                None
            }
        }
    }

    /// A collector for one Redis (`/metrics` has one; `/probe` keeps one per allowed target).
    pub fn new(
        url: impl redis::IntoConnectionInfo,
        connect_timeout: Duration,
    ) -> Result<RedisCollector, redis::RedisError> {
        Ok(RedisCollector {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
            connect_timeout,
            stats: StdMutex::new(ScrapeStats::default()),
            scrapes: AtomicU64::new(0),
        })
    }

    /// The kept connection, or a new one; returns it with the seconds connecting took.
    async fn connection(
        &self,
        budget: Duration,
    ) -> Result<(MultiplexedConnection, f64), CollectError> {
        let mut guard = self.conn.lock().await;
        let start = Instant::now();
        if let Some(c) = guard.as_ref() {
            return Ok((c.clone(), 0.0));
        }
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout.min(budget)))
            .set_response_timeout(Some(budget));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| CollectError::Unreachable(e.to_string()))?;
        *guard = Some(conn.clone());
        Ok((conn, start.elapsed().as_secs_f64()))
    }

    async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }

    /// The one pipeline of a scrape, as raw replies (only INFO must succeed).
    async fn round_trip(&self, budget: Duration) -> Result<(replies::Replies, f64), CollectError> {
        let (mut conn, connect) = self.connection(budget).await?;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("INFO").arg("ALL");
        for key in replies::CONFIG_KEYS {
            pipe.cmd("CONFIG").arg("GET").arg(key);
        }
        pipe.cmd("SLOWLOG").arg("LEN");
        pipe.cmd("SLOWLOG").arg("GET").arg(1);
        pipe.cmd("LATENCY").arg("LATEST");
        let out: Result<Vec<redis::RedisResult<redis::Value>>, _> =
            pipe.query_async(&mut conn).await;
        match out {
            Ok(values) => replies::Replies::from_pipeline(values)
                .map(|r| (r, connect))
                .map_err(CollectError::Query),
            Err(e) => {
                self.forget_connection().await;
                Err(CollectError::Unreachable(e.to_string()))
            }
        }
    }

    async fn gather(&self, budget: Duration) -> Result<Families, CollectError> {
        let start = Instant::now();
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let result = self.round_trip(budget).await;
        let took = start.elapsed().as_secs_f64();
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.count += 1;
        stats.sum += took;
        stats.last_duration = took;
        let (replies, connect) = match result {
            Ok(r) => r,
            Err(e) => {
                stats.last_error = Some(e.to_string());
                return Err(e);
            }
        };
        stats.last_connect = connect;
        stats.last_error = None;
        drop(stats);

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut fams = Families::default();
        fams.gauge("redis_up", UP_HELP, 1.0);
        let parsed = info::parse(&replies.info, now);
        replies.config_families(&mut fams);
        parsed.into_families(replies.databases(), &mut fams);
        replies.slowlog_and_latency_families(&mut fams);
        // redis_exporter reports its key-group pass (off unless `-check-key-groups` is given)
        // even when it did nothing; we have no key groups, so it is always 0 here too.
        fams.gauge(
            "redis_last_key_groups_scrape_duration_milliseconds",
            "Duration of the last key group metrics scrape in milliseconds",
            0.0,
        );
        self.self_families(&mut fams, true);
        Ok(fams)
    }

    /// redis_exporter's own scrape families (`redis_exporter_*`).
    fn self_families(&self, fams: &mut Families, up: bool) {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        fams.counter(
            "redis_exporter_scrapes_total",
            "Current total redis scrapes.",
            self.scrapes.load(Ordering::Relaxed) as f64,
        );
        let mut d = Family::summary(
            "redis_exporter_scrape_duration_seconds",
            "Durations of scrapes by the exporter",
        );
        d.add_summary(&[], &[], stats.count, stats.sum);
        fams.push(d);
        fams.counter(
            "redis_target_scrape_request_errors_total",
            "Errors in requests to the exporter",
            0.0,
        );
        fams.gauge(
            "redis_exporter_last_scrape_duration_seconds",
            "exporter_last_scrape_duration_seconds metric",
            stats.last_duration,
        );
        fams.gauge(
            "redis_exporter_last_scrape_connect_time_seconds",
            "exporter_last_scrape_connect_time_seconds metric",
            stats.last_connect,
        );
        let mut err = Family::gauge(
            "redis_exporter_last_scrape_error",
            "The last scrape error status.",
        );
        match (up, &stats.last_error) {
            (true, _) => err.add(&[("err", "")], 0.0),
            (false, Some(e)) => err.add(&[("err", e)], 1.0),
            (false, None) => err.add(&[("err", "scrape deadline exceeded")], 1.0),
        };
        fams.push(err);
    }
}

impl Collector for RedisCollector {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn collect<'a>(&'a self, ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>> {
        Box::pin(async move {
            let r = self.gather(ctx.budget).await;
            if r.is_err() {
                // A reply we could not use may have left the connection mid-stream.
                self.forget_connection().await;
            }
            r
        })
    }

    fn down(&self) -> Families {
        let mut f = Families::default();
        f.gauge("redis_up", UP_HELP, 0.0);
        self.self_families(&mut f, false);
        // A scrape dropped at its deadline may have left the connection mid-reply.
        if let Ok(mut g) = self.conn.try_lock() {
            *g = None;
        }
        f
    }

    fn ready<'a>(&'a self) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let Ok((mut conn, _)) = self.connection(self.connect_timeout).await else {
                return false;
            };
            let ok = redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok();
            if !ok {
                self.forget_connection().await;
            }
            ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode;

    #[test]
    fn info_reply_maps_to_redis_exporter_names() {
        let info = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\
            # Memory\r\nused_memory:1024\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n\
            # Persistence\r\nrdb_last_bgsave_status:ok\r\naof_last_write_status:err\r\n\
            # Stats\r\nkeyspace_hits:7\r\nlatest_fork_usec:2500\r\n\
            # Replication\r\nrole:master\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=99,lag=1\r\n\
            # Commandstats\r\ncmdstat_config|get:calls=3,usec=300,usec_per_call=100.00,rejected_calls=1,failed_calls=2\r\n\
            # Errorstats\r\nerrorstat_ERR:count=4\r\n\
            # Latencystats\r\nlatency_percentiles_usec_config|get:p50=90.1,p99=120.5,p99.9=120.5\r\n\
            # Cluster\r\ncluster_enabled:0\r\n\
            # Keyspace\r\ndb3:keys=5,expires=2,avg_ttl=1500\r\n";
        let mut fams = Families::default();
        parse_info(info, 1000.0).into_families(4, &mut fams);
        let text = encode(&fams.0);
        for want in [
            "redis_uptime_in_seconds 42\n",
            "redis_start_time_seconds 958\n",
            "redis_memory_used_bytes 1024\n",
            "redis_rdb_last_bgsave_status 1\n",
            "redis_aof_last_write_status 0\n",
            "# TYPE redis_keyspace_hits_total counter\nredis_keyspace_hits_total 7\n",
            "redis_latest_fork_seconds 0.0025\n",
            "redis_cluster_enabled 0\n",
            "redis_commands_total{cmd=\"config|get\"} 3\n",
            "redis_commands_duration_seconds_total{cmd=\"config|get\"} 0.0003\n",
            "redis_commands_rejected_calls_total{cmd=\"config|get\"} 1\n",
            "redis_commands_failed_calls_total{cmd=\"config|get\"} 2\n",
            "redis_latency_percentiles_usec{cmd=\"config|get\",quantile=\"99.9\"} 120.5\n",
            "redis_latency_percentiles_usec_sum{cmd=\"config|get\"} 300\n",
            "redis_latency_percentiles_usec_count{cmd=\"config|get\"} 3\n",
            "redis_errors_total{err=\"ERR\"} 4\n",
            "redis_db_keys{db=\"db3\"} 5\n",
            "redis_db_keys{db=\"db0\"} 0\n",
            "redis_db_keys_expiring{db=\"db3\"} 2\n",
            "redis_db_avg_ttl_seconds{db=\"db3\"} 1.5\n",
            "redis_connected_slave_offset_bytes{slave_ip=\"10.0.0.2\",slave_port=\"6380\",slave_state=\"online\"} 99\n",
            "redis_connected_slave_lag_seconds{slave_ip=\"10.0.0.2\",slave_port=\"6380\",slave_state=\"online\"} 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("db=\"db4\""), "only `databases` databases");
        assert!(
            !text.contains("maxmemory_policy "),
            "unmapped fields are not families"
        );
        assert!(text.contains("redis_version=\"7.0.15\""));
    }
}
