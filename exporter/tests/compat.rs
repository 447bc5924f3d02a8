//! Drop-in compatibility with node_exporter, postgres_exporter and redis_exporter: Debian's
//! builds of the three run against the same servers, and every contract family must agree in
//! name, type and label names, and stable quantities in value.

use std::collections::BTreeSet;
use testkit::prom_text::{Exposition, parse};
use testkit::{App, GoExporter, Postgres, Redis};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

/// (family, type, label names) exactly as the contract lists them. Where the Go exporter
/// publishes a family it must agree with this too (so the contract and the peers agree).
const HOST: &[(&str, &str, &[&str])] = &[
    ("node_cpu_seconds_total", "counter", &["cpu", "mode"]),
    ("node_memory_MemTotal_bytes", "gauge", &[]),
    ("node_memory_MemAvailable_bytes", "gauge", &[]),
    ("node_memory_MemFree_bytes", "gauge", &[]),
    ("node_memory_SwapTotal_bytes", "gauge", &[]),
    ("node_memory_SwapFree_bytes", "gauge", &[]),
    (
        "node_filesystem_size_bytes",
        "gauge",
        &["device", "fstype", "mountpoint"],
    ),
    (
        "node_filesystem_avail_bytes",
        "gauge",
        &["device", "fstype", "mountpoint"],
    ),
    ("node_network_receive_bytes_total", "counter", &["device"]),
    ("node_network_transmit_bytes_total", "counter", &["device"]),
    ("node_load1", "gauge", &[]),
    ("node_load5", "gauge", &[]),
    ("node_load15", "gauge", &[]),
    ("node_boot_time_seconds", "gauge", &[]),
    ("node_time_seconds", "gauge", &[]),
];

/// postgres_exporter's pg_stat_database families also carry `datid`; we keep it so its
/// dashboards that group by datid still work.
const POSTGRES: &[(&str, &str, &[&str])] = &[
    ("pg_up", "gauge", &[]),
    ("pg_stat_activity_count", "gauge", &["datname", "state"]),
    (
        "pg_stat_activity_max_tx_duration",
        "gauge",
        &["datname", "state"],
    ),
    ("pg_settings_max_connections", "gauge", &[]),
    ("pg_database_size_bytes", "gauge", &["datname"]),
    (
        "pg_stat_database_numbackends",
        "gauge",
        &["datid", "datname"],
    ),
    (
        "pg_stat_database_xact_commit",
        "counter",
        &["datid", "datname"],
    ),
    (
        "pg_stat_database_xact_rollback",
        "counter",
        &["datid", "datname"],
    ),
    (
        "pg_stat_database_blks_hit",
        "counter",
        &["datid", "datname"],
    ),
    (
        "pg_stat_database_blks_read",
        "counter",
        &["datid", "datname"],
    ),
    (
        "pg_stat_database_deadlocks",
        "counter",
        &["datid", "datname"],
    ),
    ("pg_locks_count", "gauge", &["datname", "mode"]),
    ("pg_replication_lag_seconds", "gauge", &[]),
    ("pg_postmaster_start_time_seconds", "gauge", &[]),
];

const REDIS: &[(&str, &str, &[&str])] = &[
    ("redis_up", "gauge", &[]),
    ("redis_memory_used_bytes", "gauge", &[]),
    ("redis_memory_max_bytes", "gauge", &[]),
    ("redis_connected_clients", "gauge", &[]),
    ("redis_blocked_clients", "gauge", &[]),
    ("redis_commands_processed_total", "counter", &[]),
    ("redis_keyspace_hits_total", "counter", &[]),
    ("redis_keyspace_misses_total", "counter", &[]),
    ("redis_evicted_keys_total", "counter", &[]),
    ("redis_expired_keys_total", "counter", &[]),
    ("redis_rejected_connections_total", "counter", &[]),
    ("redis_db_keys", "gauge", &["db"]),
    ("redis_uptime_in_seconds", "gauge", &[]),
    ("redis_connected_slaves", "gauge", &[]),
    ("redis_rdb_last_save_timestamp_seconds", "gauge", &[]),
];

fn scrape_go(e: &GoExporter) -> Exposition {
    let (status, body) = testkit::http_get(&e.metrics_url());
    assert_eq!(status, 200);
    parse(&body)
}

fn labels_without(e: &Exposition, family: &str, drop: &[&str]) -> BTreeSet<String> {
    e.label_names(family)
        .into_iter()
        .filter(|l| !drop.contains(&l.as_str()))
        .collect()
}

/// Checks our families against the contract, and against the peer where it has them.
/// Returns how many families the peer published, so the caller can insist it compared some.
fn compare(
    ours: &Exposition,
    theirs: &Exposition,
    spec: &[(&str, &str, &[&str])],
    peer_only_labels: &[&str],
) -> usize {
    let mut compared = 0;
    for (family, ty, labels) in spec {
        let want: BTreeSet<String> = labels.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            ours.types.get(*family).map(String::as_str),
            Some(*ty),
            "our type of {family}"
        );
        assert_eq!(
            ours.label_names(family),
            want,
            "our label names of {family}"
        );
        if let Some(their_ty) = theirs.types.get(*family) {
            if theirs.matching(family, &[]).is_empty() {
                continue;
            }
            compared += 1;
            assert_eq!(their_ty, ty, "peer type of {family}");
            assert_eq!(
                labels_without(theirs, family, peer_only_labels),
                want,
                "peer label names of {family}"
            );
        }
    }
    compared
}

#[test]
fn families_match_the_go_exporters_in_name_type_labels_and_stable_values() {
    let pg = Postgres::start();
    let redis = Redis::start();
    for i in 0..9 {
        redis.cli(&["-n", "3", "SET", &format!("key{i}"), "x"]);
    }
    let app = App::start(
        EXPORTER,
        &[],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    );
    let node = GoExporter::node();
    let pge = GoExporter::postgres(&pg.url());
    let rde = GoExporter::redis(&redis.url());

    let ours = app.scrape();
    let n = scrape_go(&node);
    let p = scrape_go(&pge);
    let r = scrape_go(&rde);

    assert!(
        compare(&ours, &n, HOST, &[]) >= 12,
        "node_exporter compared too few families"
    );
    // postgres_exporter 0.11 adds the deprecated `server` label; the contract drops it.
    assert!(
        compare(&ours, &p, POSTGRES, &["server"]) >= 10,
        "postgres_exporter compared too few families"
    );
    assert!(
        compare(&ours, &r, REDIS, &[]) >= 12,
        "redis_exporter compared too few families"
    );

    // Stable quantities, value for value.
    for name in [
        "node_memory_MemTotal_bytes",
        "node_boot_time_seconds",
        "node_memory_SwapTotal_bytes",
    ] {
        assert_eq!(ours.value(name, &[]), n.value(name, &[]), "{name}");
    }
    let cpus_ours: BTreeSet<String> = ours
        .matching("node_cpu_seconds_total", &[("mode", "idle")])
        .iter()
        .map(|s| s.labels["cpu"].clone())
        .collect();
    let cpus_node: BTreeSet<String> = n
        .matching("node_cpu_seconds_total", &[("mode", "idle")])
        .iter()
        .map(|s| s.labels["cpu"].clone())
        .collect();
    assert_eq!(cpus_ours, cpus_node);
    assert_eq!(
        ours.value("pg_settings_max_connections", &[]),
        p.value("pg_settings_max_connections", &[])
    );
    assert_eq!(ours.value("pg_up", &[]), Some(1.0));
    assert_eq!(p.value("pg_up", &[]), Some(1.0));
    assert_eq!(
        ours.value("redis_db_keys", &[("db", "db3")]),
        r.value("redis_db_keys", &[("db", "db3")])
    );
    assert_eq!(ours.value("redis_db_keys", &[("db", "db3")]), Some(9.0));
    assert_eq!(
        ours.value("redis_memory_max_bytes", &[]),
        r.value("redis_memory_max_bytes", &[])
    );
}

/// promtool's lint findings that our output inherits from the peers' names, which the
/// contract keeps on purpose so community rules and dashboards work. Anything else fails.
const INHERITED_LINT: &[(&str, &str)] = &[
    (
        "node_memory_",
        "metric names should be written in 'snake_case' not 'camelCase'",
    ),
    (
        "pg_stat_database_",
        "counter metrics should have \"_total\" suffix",
    ),
    (
        "pg_locks_count ",
        "metrics should not have \"_count\" suffix",
    ),
    (
        "pg_stat_activity_count ",
        "metrics should not have \"_count\" suffix",
    ),
    // postgres_exporter's and redis_exporter's full default sets (pg-redis).
    ("pg_settings_", "metrics should not have \"_count\" suffix"),
    (
        "pg_stat_archiver_",
        "counter metrics should have \"_total\" suffix",
    ),
    (
        "pg_stat_archiver_",
        "metrics should not have \"_count\" suffix",
    ),
    (
        "pg_stat_user_tables_",
        "counter metrics should have \"_total\" suffix",
    ),
    (
        "pg_statio_user_tables_",
        "counter metrics should have \"_total\" suffix",
    ),
    (
        "redis_",
        "metric names should not contain abbreviated units",
    ),
    ("redis_", "counter metrics should have \"_total\" suffix"),
    (
        "redis_",
        "non-counter metrics should not have \"_total\" suffix",
    ),
    (
        "redis_last_key_groups_scrape_duration_milliseconds ",
        "use base unit \"seconds\" instead of \"milliseconds\"",
    ),
];

#[test]
fn promtool_check_metrics_finds_nothing_beyond_the_inherited_peer_names() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let app = App::start(
        EXPORTER,
        &[],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    );
    let (status, body) = app.get("/metrics");
    assert_eq!(status, 200);
    use std::io::Write;
    let mut child = std::process::Command::new(testkit::require("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let unexpected: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        // node_* findings are compared with node_exporter's own, finding for finding, by
        // node_compat.rs (netstat, sockstat and memory names are camelCase there too).
        .filter(|l| !l.starts_with("node_"))
        .filter(|l| {
            !INHERITED_LINT
                .iter()
                .any(|(prefix, why)| l.starts_with(prefix) && l.ends_with(why))
        })
        .collect();
    assert!(unexpected.is_empty(), "promtool found: {unexpected:#?}");
    // Exit code 1 is a parse error; 3 means lint findings only (the inherited ones above).
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "promtool exit {:?}: {text}",
        out.status.code()
    );
}
