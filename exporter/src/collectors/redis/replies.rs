//! The non-INFO replies of a scrape's pipeline: `CONFIG GET` (redis_config_*), `SLOWLOG`
//! (redis_slowlog_*, redis_last_slow_execution_duration_seconds) and `LATENCY LATEST`
//! (redis_latency_spike_*), read the way redis_exporter 1.45 reads them.

use crate::metrics::{Families, Family};
use redis::{RedisResult, Value};

/// The settings redis_exporter publishes as `redis_config_<key>` (dash → underscore), plus
/// `databases`, which says how many `redis_db_keys{db}` series to report.
pub const CONFIG_KEYS: [&str; 4] = ["maxclients", "maxmemory", "io-threads", "databases"];

/// Redis' default `databases`, assumed when CONFIG GET is refused (as redis_exporter does).
const DEFAULT_DATABASES: usize = 16;

pub struct Replies {
    pub info: String,
    config: Vec<(String, String)>,
    slowlog_len: Option<i64>,
    /// (last id, last duration in µs) when SLOWLOG GET answered.
    slowlog_last: Option<(i64, i64)>,
    /// (event, last spike Unix time, last spike duration in ms).
    latency: Vec<(String, i64, i64)>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

impl Replies {
    /// Splits the pipeline's replies; an error only when `INFO` itself failed.
    pub fn from_pipeline(values: Vec<RedisResult<Value>>) -> Result<Replies, String> {
        let mut it = values.into_iter();
        let info = match it.next() {
            Some(Ok(v)) => text(&v).ok_or("INFO answered something other than text")?,
            Some(Err(e)) => return Err(format!("INFO failed: {e}")),
            None => return Err("INFO got no reply".to_string()),
        };
        let mut config = Vec::new();
        for _ in CONFIG_KEYS {
            match it.next() {
                Some(Ok(Value::Map(pairs))) => {
                    for (k, v) in pairs {
                        if let (Some(k), Some(v)) = (text(&k), text(&v)) {
                            config.push((k, v));
                        }
                    }
                }
                Some(Ok(v)) => {
                    if let Some(a) = items(&v) {
                        for kv in a.chunks(2) {
                            if let [k, v] = kv
                                && let (Some(k), Some(v)) = (text(k), text(v))
                            {
                                config.push((k, v));
                            }
                        }
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "redis: CONFIG GET refused"),
                None => {}
            }
        }
        let slowlog_len = it.next().and_then(|r| r.ok()).as_ref().and_then(int);
        let slowlog_last = match it.next() {
            Some(Ok(v)) => Some(
                items(&v)
                    .and_then(|a| a.first())
                    .and_then(items)
                    .map(|entry| {
                        (
                            entry.first().and_then(int).unwrap_or(0),
                            entry.get(2).and_then(int).unwrap_or(0),
                        )
                    })
                    .unwrap_or((0, 0)),
            ),
            _ => None,
        };
        let mut latency = Vec::new();
        if let Some(Ok(v)) = it.next()
            && let Some(events) = items(&v)
        {
            for e in events {
                if let Some([name, last, duration, ..]) = items(e)
                    && let (Some(name), Some(last), Some(duration)) =
                        (text(name), int(last), int(duration))
                {
                    latency.push((name, last, duration));
                }
            }
        }
        Ok(Replies {
            info,
            config,
            slowlog_len,
            slowlog_last,
            latency,
        })
    }

    pub fn databases(&self) -> usize {
        self.config
            .iter()
            .find(|(k, _)| k == "databases")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(DEFAULT_DATABASES)
    }

    /// `redis_config_maxclients`, `redis_config_maxmemory`, `redis_config_io_threads`.
    pub fn config_families(&self, fams: &mut Families) {
        for (k, v) in &self.config {
            if k == "databases" {
                continue;
            }
            if let Ok(x) = v.parse::<f64>() {
                let name = format!("config_{}", k.replace('-', "_"));
                fams.gauge(&format!("redis_{name}"), &format!("{name} metric"), x);
            }
        }
    }

    pub fn slowlog_and_latency_families(&self, fams: &mut Families) {
        if let Some(n) = self.slowlog_len {
            fams.gauge("redis_slowlog_length", "Total slowlog", n as f64);
        }
        if let Some((id, usec)) = self.slowlog_last {
            fams.gauge("redis_slowlog_last_id", "Last id of slowlog", id as f64);
            fams.gauge(
                "redis_last_slow_execution_duration_seconds",
                "The amount of time needed for last slow execution, in seconds",
                usec as f64 / 1e6,
            );
        }
        let mut last = Family::gauge(
            "redis_latency_spike_last",
            "When the latency spike last occurred",
        );
        let mut duration = Family::gauge(
            "redis_latency_spike_duration_seconds",
            "Length of the last latency spike in seconds",
        );
        for (event, at, ms) in &self.latency {
            last.add(&[("event_name", event)], *at as f64);
            duration.add(&[("event_name", event)], *ms as f64 / 1e3);
        }
        fams.push(last);
        fams.push(duration);
    }
}
