//! Redis metrics under redis_exporter's names, from one `INFO` per scrape.
//!
//! One multiplexed connection is kept between scrapes and dropped on any error, so a restarted
//! Redis is picked up by the next scrape without restarting the exporter.

use super::{CollectError, Collector, ScrapeContext};
use crate::config::RedisConfig;
use crate::metrics::{Families, Family};
use futures::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;

pub struct RedisCollector {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    connect_timeout: Duration,
}

/// INFO field → (metric, is counter, help), exactly as redis_exporter names them.
const INFO_METRICS: [(&str, &str, bool, &str); 14] = [
    (
        "used_memory",
        "redis_memory_used_bytes",
        false,
        "used_memory metric",
    ),
    (
        "maxmemory",
        "redis_memory_max_bytes",
        false,
        "maxmemory metric",
    ),
    (
        "connected_clients",
        "redis_connected_clients",
        false,
        "connected_clients metric",
    ),
    (
        "blocked_clients",
        "redis_blocked_clients",
        false,
        "blocked_clients metric",
    ),
    (
        "total_commands_processed",
        "redis_commands_processed_total",
        true,
        "commands_processed_total metric",
    ),
    (
        "total_connections_received",
        "redis_connections_received_total",
        true,
        "connections_received_total metric",
    ),
    (
        "keyspace_hits",
        "redis_keyspace_hits_total",
        true,
        "keyspace_hits_total metric",
    ),
    (
        "keyspace_misses",
        "redis_keyspace_misses_total",
        true,
        "keyspace_misses_total metric",
    ),
    (
        "evicted_keys",
        "redis_evicted_keys_total",
        true,
        "evicted_keys_total metric",
    ),
    (
        "expired_keys",
        "redis_expired_keys_total",
        true,
        "expired_keys_total metric",
    ),
    (
        "rejected_connections",
        "redis_rejected_connections_total",
        true,
        "rejected_connections_total metric",
    ),
    (
        "uptime_in_seconds",
        "redis_uptime_in_seconds",
        false,
        "uptime_in_seconds metric",
    ),
    (
        "connected_slaves",
        "redis_connected_slaves",
        false,
        "connected_slaves metric",
    ),
    (
        "rdb_last_save_time",
        "redis_rdb_last_save_timestamp_seconds",
        false,
        "rdb_last_save_timestamp_seconds metric",
    ),
];

impl RedisCollector {
    /// `None` when no URL is configured (the collector is off).
    pub fn from_config(config: &RedisConfig) -> Option<RedisCollector> {
        let url = config.url.as_ref()?;
        match redis::Client::open(url.expose()) {
            Ok(client) => Some(RedisCollector {
                client,
                conn: Mutex::new(None),
                connect_timeout: config.connect_timeout,
            }),
            Err(e) => {
                tracing::error!(error = %e, "redis: unusable REDIS_URL; collector off");
                None
            }
        }
    }

    async fn info(&self, budget: Duration) -> Result<String, CollectError> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            let cfg = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout.min(budget)))
                .set_response_timeout(Some(budget));
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&cfg)
                .await
                .map_err(|e| CollectError::Unreachable(e.to_string()))?;
            *guard = Some(conn);
        }
        let conn = guard
            .as_mut()
            .expect("the connection was established just above");
        match redis::cmd("INFO").query_async::<String>(conn).await {
            Ok(text) => Ok(text),
            Err(e) => {
                *guard = None;
                Err(CollectError::Query(e.to_string()))
            }
        }
    }
}

impl Collector for RedisCollector {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn collect<'a>(&'a self, ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>> {
        Box::pin(async move {
            let text = self.info(ctx.budget).await?;
            Ok(families_from_info(&text))
        })
    }

    fn down(&self) -> Families {
        let mut f = Families::default();
        f.gauge("redis_up", "Information about the Redis instance", 0.0);
        f
    }

    fn ready<'a>(&'a self) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.info(self.connect_timeout).await.is_ok() })
    }
}

/// Turns an `INFO` reply into families; unknown or non-numeric fields are ignored.
pub fn families_from_info(text: &str) -> Families {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    let mut keyspace: Vec<(&str, &str)> = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            section = name;
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if section.eq_ignore_ascii_case("keyspace") {
            keyspace.push((k, v));
        } else {
            fields.insert(k, v);
        }
    }
    let mut fams = Families::default();
    fams.gauge("redis_up", "Information about the Redis instance", 1.0);
    for (field, metric, counter, help) in INFO_METRICS {
        if let Some(v) = fields.get(field).and_then(|v| v.parse::<f64>().ok()) {
            if counter {
                fams.counter(metric, help, v);
            } else {
                fams.gauge(metric, help, v);
            }
        }
    }
    let mut keys = Family::gauge("redis_db_keys", "Total number of keys by DB");
    let mut expiring = Family::gauge(
        "redis_db_keys_expiring",
        "Total number of expiring keys by DB",
    );
    let mut avg_ttl = Family::gauge("redis_db_avg_ttl_seconds", "Avg TTL in seconds");
    let mut saw_db0 = false;
    for (db, stats) in keyspace {
        saw_db0 |= db == "db0";
        let mut kv = HashMap::new();
        for part in stats.split(',') {
            if let Some((k, v)) = part.split_once('=') {
                kv.insert(k, v.parse::<f64>().unwrap_or(0.0));
            }
        }
        let labels = [("db", db)];
        keys.add(&labels, kv.get("keys").copied().unwrap_or(0.0));
        expiring.add(&labels, kv.get("expires").copied().unwrap_or(0.0));
        if let Some(ttl) = kv.get("avg_ttl") {
            avg_ttl.add(&labels, ttl / 1000.0);
        }
    }
    // redis_exporter always reports db0, so "no keys" is 0 rather than an absent series.
    if !saw_db0 {
        keys.add(&[("db", "db0")], 0.0);
        expiring.add(&[("db", "db0")], 0.0);
    }
    fams.push(keys);
    fams.push(expiring);
    fams.push(avg_ttl);
    fams
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode;

    #[test]
    fn info_reply_maps_to_redis_exporter_names() {
        let info = "# Server\r\nuptime_in_seconds:42\r\n# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\n# Stats\r\nkeyspace_hits:7\r\n# Keyspace\r\ndb3:keys=5,expires=2,avg_ttl=1500\r\n";
        let text = encode(&families_from_info(info).0);
        assert!(text.contains("redis_uptime_in_seconds 42\n"), "{text}");
        assert!(text.contains("redis_memory_used_bytes 1024\n"));
        assert!(
            text.contains(
                "# TYPE redis_keyspace_hits_total counter\nredis_keyspace_hits_total 7\n"
            )
        );
        assert!(text.contains("redis_db_keys{db=\"db3\"} 5\n"));
        assert!(text.contains("redis_db_keys{db=\"db0\"} 0\n"));
        assert!(text.contains("redis_db_keys_expiring{db=\"db3\"} 2\n"));
        assert!(text.contains("redis_db_avg_ttl_seconds{db=\"db3\"} 1.5\n"));
    }
}
