//! `INFO ALL` → families under redis_exporter 1.45's names, types and label names.
//!
//! The rules, as redis_exporter applies them: a field named in [`names`](super::names) (or
//! starting with `cluster_`) becomes `redis_<name>`; `ok`/`true` read as 1, `err`/`fail`/`false`
//! as 0, anything else unparsable as 0; `latest_fork_usec` becomes `redis_latest_fork_seconds`.
//! Commandstats become `redis_commands_*{cmd}`, Latencystats (joined with the call count and
//! total time of Commandstats) the `redis_latency_percentiles_usec{cmd}` summary, Errorstats
//! `redis_errors_total{err}`, Keyspace the `redis_db_*{db}` families (every database up to
//! `databases` is reported, 0 when empty), Replication the master/replica families.

use super::names;
use crate::metrics::{Families, Family};
use std::collections::{BTreeMap, HashMap};

/// What the INFO reply says, gathered into families by [`Parsed::into_families`].
#[derive(Default)]
pub struct Parsed {
    scalars: Vec<(String, bool, f64)>,
    fields: HashMap<String, String>,
    commands: Vec<CommandStat>,
    latency: BTreeMap<String, Vec<(f64, f64)>>,
    errors: Vec<(String, f64)>,
    keyspace: Vec<KeyspaceDb>,
    master_link: Vec<(String, String, String, f64)>,
    replicas: Vec<Replica>,
    start_time: Option<f64>,
}

struct CommandStat {
    cmd: String,
    calls: f64,
    usec: f64,
    /// Redis ≥ 6.2: (rejected_calls, failed_calls).
    extended: Option<(f64, f64)>,
}

struct KeyspaceDb {
    db: String,
    keys: f64,
    expires: f64,
    avg_ttl_seconds: Option<f64>,
    cached: Option<f64>,
}

struct Replica {
    ip: String,
    port: String,
    state: String,
    offset: f64,
    lag: Option<f64>,
}

fn lookup(table: &[(&str, &'static str)], field: &str) -> Option<&'static str> {
    table.iter().find(|(f, _)| *f == field).map(|(_, m)| *m)
}

/// `ok`/`true` → 1, `err`/`fail`/`false` → 0, a number → itself, anything else → 0.
fn value_of(v: &str) -> f64 {
    match v {
        "ok" | "true" => 1.0,
        "err" | "fail" | "false" => 0.0,
        _ => v.parse().unwrap_or(0.0),
    }
}

/// `name=value` → value.
fn kv_value(part: &str) -> Option<f64> {
    let (_, v) = part.split_once('=')?;
    v.parse().ok()
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `master_host`, `master_1_host`… (KeyDB multi-master numbers them).
fn is_master_field(key: &str, suffix: &str) -> bool {
    key.strip_prefix("master")
        .and_then(|r| r.strip_suffix(suffix))
        .is_some_and(|mid| {
            mid.is_empty()
                || mid
                    .strip_prefix('_')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Parses the reply of `INFO ALL`. `now` is the Unix time, for `redis_start_time_seconds`.
pub fn parse(text: &str, now: f64) -> Parsed {
    let mut p = Parsed::default();
    let mut section = "";
    let (mut master_host, mut master_port) = (String::new(), String::new());
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("# ") {
            section = name;
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        p.fields.insert(key.to_string(), value.to_string());
        if is_master_field(key, "_host") {
            master_host = value.to_string();
        }
        if is_master_field(key, "_port") {
            master_port = value.to_string();
        }
        match section {
            "Replication" => {
                if is_master_field(key, "_link_status") {
                    let up = if value == "up" { 1.0 } else { 0.0 };
                    p.master_link.push((
                        "master_link_up".into(),
                        master_host.clone(),
                        master_port.clone(),
                        up,
                    ));
                    continue;
                }
                let direct = if is_master_field(key, "_last_io_seconds_ago") {
                    Some("master_last_io_seconds_ago")
                } else if is_master_field(key, "_sync_in_progress") {
                    Some("master_sync_in_progress")
                } else if key.starts_with("slave_repl_offset") {
                    Some("slave_repl_offset")
                } else {
                    None
                };
                if let Some(name) = direct {
                    // redis_exporter reads these as integers: a fraction or junk counts as 0.
                    let v = value.parse::<i64>().unwrap_or(0) as f64;
                    p.master_link
                        .push((name.into(), master_host.clone(), master_port.clone(), v));
                    continue;
                }
                if let Some(r) = parse_replica(key, value) {
                    p.replicas.push(r);
                    continue;
                }
            }
            "Server" => {
                if key == "uptime_in_seconds"
                    && let Ok(up) = value.parse::<f64>()
                {
                    p.start_time = Some(now.floor() - up);
                }
            }
            "Commandstats" => {
                if let Some(c) = parse_commandstat(key, value) {
                    p.commands.push(c);
                }
                continue;
            }
            "Latencystats" => {
                if let Some((cmd, q)) = parse_latencystat(key, value) {
                    p.latency.insert(cmd, q);
                }
                continue;
            }
            "Errorstats" => {
                if let Some(err) = key.strip_prefix("errorstat_")
                    && let Some(n) = kv_value(value)
                {
                    p.errors.push((err.to_string(), n));
                }
                continue;
            }
            "Keyspace" => {
                if let Some(db) = parse_keyspace(key, value) {
                    p.keyspace.push(db);
                    continue;
                }
            }
            _ => {}
        }
        let counter = lookup(names::COUNTERS, key);
        let metric = lookup(names::GAUGES, key).or(counter);
        let name = match metric {
            Some("latest_fork_usec") => {
                p.scalars
                    .push(("latest_fork_seconds".into(), false, value_of(value) / 1e6));
                continue;
            }
            Some(m) => m.to_string(),
            None if key.starts_with("cluster_") || key.starts_with("db") => sanitize(key),
            None => continue,
        };
        p.scalars.push((name, counter.is_some(), value_of(value)));
    }
    p
}

fn parse_commandstat(key: &str, value: &str) -> Option<CommandStat> {
    let cmd = key.strip_prefix("cmdstat_")?;
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() < 3 {
        return None;
    }
    let calls = kv_value(parts[0])?;
    let usec = kv_value(parts[1])?;
    let extended = if parts.len() >= 5 {
        Some((kv_value(parts[3])?, kv_value(parts[4])?))
    } else {
        None
    };
    Some(CommandStat {
        cmd: cmd.to_string(),
        calls,
        usec,
        extended,
    })
}

/// `latency_percentiles_usec_get:p50=1.003,p99=2.007,p99.9=3.007`.
fn parse_latencystat(key: &str, value: &str) -> Option<(String, Vec<(f64, f64)>)> {
    let cmd = key.strip_prefix("latency_percentiles_usec_")?;
    let mut q = Vec::new();
    for part in value.split(',') {
        let (p, v) = part.split_once('=')?;
        q.push((p.strip_prefix('p')?.parse().ok()?, v.parse().ok()?));
    }
    Some((cmd.to_string(), q))
}

/// `db0:keys=1,expires=0,avg_ttl=0` (a fourth part is KeyDB's cached_keys).
fn parse_keyspace(key: &str, value: &str) -> Option<KeyspaceDb> {
    if !key.starts_with("db") {
        return None;
    }
    let parts: Vec<&str> = value.split(',').collect();
    if !(2..=4).contains(&parts.len()) {
        return None;
    }
    Some(KeyspaceDb {
        db: key.to_string(),
        keys: kv_value(parts[0])?,
        expires: kv_value(parts[1])?,
        avg_ttl_seconds: match parts.get(2) {
            Some(p) => Some(kv_value(p)? / 1000.0),
            None => None,
        },
        cached: match parts.get(3) {
            Some(p) => Some(kv_value(p)?),
            None => None,
        },
    })
}

/// `slave0:ip=10.0.0.2,port=6379,state=online,offset=1751844676,lag=0`.
fn parse_replica(key: &str, value: &str) -> Option<Replica> {
    let n = key.strip_prefix("slave")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut kv = HashMap::new();
    for part in value.split(',') {
        let (k, v) = part.split_once('=')?;
        kv.insert(k, v);
    }
    let offset = kv.get("offset")?.parse().ok()?;
    let lag = match kv.get("lag") {
        Some(l) => Some(l.parse().ok()?),
        None => None,
    };
    Some(Replica {
        ip: kv.get("ip").unwrap_or(&"").to_string(),
        port: kv.get("port").unwrap_or(&"").to_string(),
        state: kv.get("state").unwrap_or(&"").to_string(),
        offset,
        lag,
    })
}

impl Parsed {
    /// The value of an INFO field, e.g. `redis_version`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// Every family of the INFO reply; `databases` (CONFIG GET databases, 16 when unknown) is
    /// how many `redis_db_keys{db}` series to report.
    pub fn into_families(self, databases: usize, fams: &mut Families) {
        for (name, counter, v) in &self.scalars {
            let full = format!("redis_{name}");
            let help = format!("{name} metric");
            if *counter {
                fams.counter(&full, &help, *v);
            } else {
                fams.gauge(&full, &help, *v);
            }
        }
        if let Some(t) = self.start_time {
            fams.gauge(
                "redis_start_time_seconds",
                "Start time of the Redis instance since unix epoch in seconds.",
                t,
            );
        }

        let mut total =
            Family::counter("redis_commands_total", "Total number of calls per command");
        let mut duration = Family::counter(
            "redis_commands_duration_seconds_total",
            "Total amount of time in seconds spent per command",
        );
        let mut rejected = Family::counter(
            "redis_commands_rejected_calls_total",
            "Total number of errors within command execution per command",
        );
        let mut failed = Family::counter(
            "redis_commands_failed_calls_total",
            "Total number of errors prior command execution per command",
        );
        let mut latency = Family::summary(
            "redis_latency_percentiles_usec",
            "A summary of latency percentile distribution per command",
        );
        for c in &self.commands {
            let l = [("cmd", c.cmd.as_str())];
            total.add(&l, c.calls);
            duration.add(&l, c.usec / 1e6);
            if let Some((r, f)) = c.extended {
                rejected.add(&l, r);
                failed.add(&l, f);
            }
            if let Some(q) = self.latency.get(&c.cmd) {
                latency.add_summary(&l, q, c.calls as u64, c.usec);
            }
        }
        fams.push(total);
        fams.push(duration);
        fams.push(rejected);
        fams.push(failed);
        fams.push(latency);

        let mut errors = Family::counter(
            "redis_errors_total",
            "Total number of errors per error type",
        );
        for (err, n) in &self.errors {
            errors.add(&[("err", err)], *n);
        }
        fams.push(errors);

        let mut keys = Family::gauge("redis_db_keys", "Total number of keys by DB");
        let mut expiring = Family::gauge(
            "redis_db_keys_expiring",
            "Total number of expiring keys by DB",
        );
        let mut cached = Family::gauge("redis_db_keys_cached", "Total number of cached keys by DB");
        let mut ttl = Family::gauge("redis_db_avg_ttl_seconds", "Avg TTL in seconds");
        for d in &self.keyspace {
            let l = [("db", d.db.as_str())];
            keys.add(&l, d.keys);
            expiring.add(&l, d.expires);
            if let Some(c) = d.cached {
                cached.add(&l, c);
            }
            if let Some(t) = d.avg_ttl_seconds {
                ttl.add(&l, t);
            }
        }
        for i in 0..databases {
            let db = format!("db{i}");
            if !self.keyspace.iter().any(|d| d.db == db) {
                keys.add(&[("db", &db)], 0.0);
                expiring.add(&[("db", &db)], 0.0);
            }
        }
        fams.push(keys);
        fams.push(expiring);
        fams.push(cached);
        fams.push(ttl);

        let mut by_name: BTreeMap<&str, Family> = BTreeMap::new();
        let master_help = |n: &str| match n {
            "master_link_up" => "Master link status on Redis slave",
            "master_last_io_seconds_ago" => "Master last io seconds ago",
            "master_sync_in_progress" => "Master sync in progress",
            _ => "Slave replication offset",
        };
        for (name, host, port, v) in &self.master_link {
            by_name
                .entry(name.as_str())
                .or_insert_with(|| Family::gauge(&format!("redis_{name}"), master_help(name)))
                .add(&[("master_host", host), ("master_port", port)], *v);
        }
        for (_, f) in by_name {
            fams.push(f);
        }
        let mut offset = Family::gauge(
            "redis_connected_slave_offset_bytes",
            "Offset of connected slave",
        );
        let mut lag = Family::gauge(
            "redis_connected_slave_lag_seconds",
            "Lag of connected slave",
        );
        for r in &self.replicas {
            let l = [
                ("slave_ip", r.ip.as_str()),
                ("slave_port", r.port.as_str()),
                ("slave_state", r.state.as_str()),
            ];
            offset.add(&l, r.offset);
            if let Some(x) = r.lag {
                lag.add(&l, x);
            }
        }
        fams.push(offset);
        fams.push(lag);

        let f = |k: &str| self.field(k).unwrap_or("");
        let mut info = Family::gauge(
            "redis_instance_info",
            "Information about the Redis instance",
        );
        info.add(
            &[
                ("role", f("role")),
                ("redis_version", f("redis_version")),
                ("redis_build_id", f("redis_build_id")),
                ("redis_mode", f("redis_mode")),
                ("os", f("os")),
                ("maxmemory_policy", f("maxmemory_policy")),
                ("tcp_port", f("tcp_port")),
                ("run_id", f("run_id")),
                ("process_id", f("process_id")),
            ],
            1.0,
        );
        fams.push(info);
        if f("role") == "slave" {
            let mut slave = Family::gauge("redis_slave_info", "Information about the Redis slave");
            slave.add(
                &[
                    ("master_host", f("master_host")),
                    ("master_port", f("master_port")),
                    ("read_only", f("slave_read_only")),
                ],
                1.0,
            );
            fams.push(slave);
        }
    }
}
