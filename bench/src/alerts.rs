//! Alertmanager webhooks as a desk's alerts look (the router benchmarks share them).

/// Label sets in rotation: alert n uses set n % SETS, so a set fires again every
/// SETS / rate seconds (100 s at 20/s), long after its last firing resolved.
pub const SETS: u64 = 2000;

const NAMES: [(&str, &str, &str); 6] = [
    (
        "PostgresReplicationLag",
        "postgres",
        "replication lag above 30s",
    ),
    ("HostHighCpu", "node", "CPU above 90% for 5m"),
    (
        "RedisMemoryHigh",
        "redis",
        "used memory above 90% of maxmemory",
    ),
    (
        "TradingDrawdown",
        "trading",
        "strategy drawdown above its limit",
    ),
    (
        "OrderRejectRate",
        "trading",
        "order rejects above 5% over 10m",
    ),
    (
        "DiskWillFillIn4h",
        "node",
        "filesystem predicted full within 4h",
    ),
];

pub fn alert(n: u64, status: &str, starts_at: &str) -> serde_json::Value {
    let set = n % SETS;
    let (name, job, summary) = NAMES[(set % NAMES.len() as u64) as usize];
    let instance = format!("host-{:03}:9100", set / NAMES.len() as u64);
    serde_json::json!({
        "status": status,
        "labels": {
            "alertname": name, "severity": if set.is_multiple_of(5) { "critical" } else { "warning" },
            "instance": instance, "job": job, "env": "prod", "desk": "equities",
            "strategy": format!("alpha-{}", set % 17),
        },
        "annotations": {
            "summary": summary,
            "description": format!("{summary} on {instance} (value {:.2})", (n % 1000) as f64 / 10.0),
            "runbook_url": format!("/runbooks/{name}"),
        },
        "startsAt": starts_at,
        "endsAt": if status == "resolved" { starts_at } else { "0001-01-01T00:00:00Z" },
        "generatorURL": format!("http://prometheus:9090/graph?g0.expr={name}"),
        "fingerprint": format!("{set:016x}"),
    })
}

pub fn payload(n: u64, status: &str, starts_at: &str) -> Vec<u8> {
    let a = alert(n, status, starts_at);
    let name = a["labels"]["alertname"].clone();
    serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname={name}}}"),
        "status": status,
        "receiver": "router",
        "groupLabels": {"alertname": name},
        "commonLabels": a["labels"].clone(),
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [a],
    }))
    .expect("json")
}

/// RFC 3339 of a Unix time in milliseconds (UTC), without a date library.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
