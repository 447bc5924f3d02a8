//! Full parity with Debian's postgres_exporter 0.11 and redis_exporter 1.45: both run beside
//! ours against the same PostgreSQL and Redis, and EVERY family they publish must be ours too
//! (unless excluded below, with the reason), with the same type and label names; stable
//! quantities must have the same values, and server counters we read later are never lower.
//! Also: faults (stop, SIGSTOP) with every optional query of the scrape turned on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testkit::prom_text::{Exposition, parse};
use testkit::{App, GoExporter, Postgres, Redis};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

/// Families the Go exporters publish that we do not, each with why.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "postgres_exporter_build_info",
        "the Go binary's own version; ours is quantwatch_exporter_build_info",
    ),
    (
        "redis_exporter_build_info",
        "the Go binary's own version; ours is quantwatch_exporter_build_info",
    ),
];

/// Settings whose value is per session, and our sessions set them on purpose (read-only,
/// bounded statements), so they differ from postgres_exporter's session.
const SESSION_SETTINGS: &[&str] = &[
    "pg_settings_statement_timeout_seconds",
    "pg_settings_lock_timeout_seconds",
    "pg_settings_default_transaction_read_only",
    "pg_settings_transaction_read_only",
];

/// Families the exporters count about themselves, not about the server.
fn is_self_family(name: &str) -> bool {
    name.starts_with("pg_exporter_")
        || name.starts_with("pg_scrape_collector_")
        || name.starts_with("redis_exporter_")
        || name == "redis_target_scrape_request_errors_total"
}

/// The Go runtime and HTTP handler families of the Go binaries.
fn is_go_runtime(name: &str) -> bool {
    name.starts_with("go_") || name.starts_with("process_") || name.starts_with("promhttp_")
}

fn scrape_go(e: &GoExporter) -> Exposition {
    let (status, body) = testkit::http_get(&e.metrics_url());
    assert_eq!(status, 200);
    parse(&body)
}

/// The families a scrape published (every declared TYPE with at least one sample).
fn families(e: &Exposition, prefix: &str) -> BTreeSet<String> {
    e.types
        .keys()
        .filter(|f| f.starts_with(prefix) || prefix.is_empty())
        .filter(|f| !is_go_runtime(f))
        .filter(|f| e.samples.iter().any(|s| e.family_of(&s.name) == **f))
        .cloned()
        .collect()
}

/// Every family of `theirs` with `prefixes` is ours, with the same type and label names.
fn assert_every_family(ours: &Exposition, theirs: &Exposition, prefixes: &[&str]) -> usize {
    let mut problems = Vec::new();
    let mut compared = 0;
    for prefix in prefixes {
        for fam in families(theirs, prefix) {
            if EXCLUDED.iter().any(|(n, _)| *n == fam) {
                continue;
            }
            compared += 1;
            let Some(our_ty) = ours.types.get(&fam) else {
                problems.push(format!("{fam}: missing"));
                continue;
            };
            if our_ty != &theirs.types[&fam] {
                problems.push(format!(
                    "{fam}: type {our_ty}, theirs {}",
                    theirs.types[&fam]
                ));
            }
            let mut want = theirs.label_names(&fam);
            want.remove("server");
            let got = ours.label_names(&fam);
            if got != want {
                problems.push(format!("{fam}: labels {got:?}, theirs {want:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    compared
}

/// Samples keyed by name and labels (without `server`).
fn by_series(e: &Exposition) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    e.samples
        .iter()
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "server")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            ((s.name.clone(), labels), s.value)
        })
        .collect()
}

/// Counters of the server (not of the exporters) that both publish: ours, read later, must
/// not be lower. Returns how many series were compared.
fn assert_counters_not_lower(ours: &Exposition, theirs: &Exposition) -> usize {
    let o = by_series(ours);
    let mut compared = 0;
    for ((name, labels), v) in by_series(theirs) {
        let fam = theirs.family_of(&name);
        if theirs.types.get(&fam).map(String::as_str) != Some("counter")
            || is_self_family(&fam)
            || v.is_nan()
        {
            continue;
        }
        let Some(mine) = o.get(&(name.clone(), labels.clone())) else {
            continue;
        };
        compared += 1;
        assert!(
            *mine >= v,
            "{name}{labels:?}: ours {mine} < theirs {v} although read later"
        );
    }
    compared
}

#[test]
fn every_postgres_exporter_and_redis_exporter_family_is_ours_with_the_same_values() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.create_database("trading");
    pg.psql(
        "trading",
        "CREATE TABLE fills (id bigint PRIMARY KEY, qty int); \
         INSERT INTO fills SELECT g, g FROM generate_series(1, 500) g; ANALYZE fills",
    );
    for i in 0..9 {
        redis.cli(&["-n", "3", "SET", &format!("key{i}"), "x"]);
    }
    redis.cli(&["-n", "3", "EXPIRE", "key0", "1000"]);
    redis.cli(&["-n", "5", "SET", "other", "y"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "123456789"]);
    redis.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    redis.cli(&["DEBUG", "SLEEP", "0"]);
    // An error reply, for redis_errors_total.
    let _ = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "NOSUCHCOMMAND"])
        .output();

    let app = App::start(
        EXPORTER,
        &[],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    );
    let pge = GoExporter::postgres(&pg.url());
    let rde = GoExporter::redis(&redis.url());
    // The Go exporters first, ours right after: our server counters are read later.
    let p = scrape_go(&pge);
    let r = scrape_go(&rde);
    let ours = app.scrape();

    let n_pg = assert_every_family(&ours, &p, &["pg_", "postgres_"]);
    let n_redis = assert_every_family(&ours, &r, &["redis_"]);
    // Debian's 0.11 publishes 248 settings plus 56 other families on PostgreSQL 15, and
    // redis_exporter 1.45 123 families on Redis 7.0 (build info excluded): if a Go exporter
    // published much less, this test would compare nothing.
    assert!(
        n_pg >= 290,
        "compared only {n_pg} postgres_exporter families"
    );
    assert!(
        n_redis >= 110,
        "compared only {n_redis} redis_exporter families"
    );

    // Settings, value for value (per-session ones aside).
    let mut settings = 0;
    for fam in families(&p, "pg_settings_") {
        if SESSION_SETTINGS.contains(&fam.as_str()) {
            continue;
        }
        settings += 1;
        assert_eq!(ours.value(&fam, &[]), p.value(&fam, &[]), "{fam}");
    }
    assert!(settings >= 240, "compared {settings} settings");
    assert_eq!(ours.value("pg_settings_max_connections", &[]), Some(200.0));
    assert_eq!(
        ours.value("pg_settings_statement_timeout_seconds", &[]),
        Some(5.0),
        "our session's own statement_timeout"
    );

    // Database sizes within 1 MiB (a checkpoint or the stats collector may write between).
    for db in ["postgres", "template1", "trading"] {
        let (a, b) = (
            ours.value("pg_database_size_bytes", &[("datname", db)])
                .unwrap(),
            p.value("pg_database_size_bytes", &[("datname", db)])
                .unwrap(),
        );
        assert!((a - b).abs() <= 1048576.0, "{db}: ours {a}, theirs {b}");
    }
    let v = |e: &Exposition, name: &str, l: &[(&str, &str)]| e.value(name, l);
    let static_labels = |e: &Exposition| {
        let s = e.matching("pg_static", &[]);
        assert_eq!(s.len(), 1);
        (
            s[0].labels["short_version"].clone(),
            s[0].labels["version"].clone(),
        )
    };
    assert_eq!(static_labels(&ours), static_labels(&p));
    assert_eq!(v(&ours, "pg_up", &[]), Some(1.0));
    assert_eq!(v(&p, "pg_up", &[]), Some(1.0));

    // Redis: key counts per database, memory limits, clients limit, version.
    for db in 0..16 {
        let db = format!("db{db}");
        for fam in ["redis_db_keys", "redis_db_keys_expiring"] {
            assert_eq!(
                v(&ours, fam, &[("db", &db)]),
                v(&r, fam, &[("db", &db)]),
                "{fam} {db}"
            );
        }
    }
    assert_eq!(v(&ours, "redis_db_keys", &[("db", "db3")]), Some(9.0));
    assert_eq!(
        v(&ours, "redis_db_keys_expiring", &[("db", "db3")]),
        Some(1.0)
    );
    assert_eq!(v(&ours, "redis_db_keys", &[("db", "db5")]), Some(1.0));
    for fam in [
        "redis_memory_max_bytes",
        "redis_config_maxmemory",
        "redis_config_maxclients",
        "redis_config_io_threads",
    ] {
        assert_eq!(v(&ours, fam, &[]), v(&r, fam, &[]), "{fam}");
    }
    assert_eq!(v(&ours, "redis_config_maxmemory", &[]), Some(123456789.0));
    let version =
        |e: &Exposition| e.matching("redis_instance_info", &[])[0].labels["redis_version"].clone();
    assert_eq!(version(&ours), version(&r));
    assert_eq!(v(&ours, "redis_up", &[]), Some(1.0));
    assert!(v(&ours, "redis_slowlog_length", &[]).unwrap() >= 1.0);

    // Server counters: never lower when read later.
    let n = assert_counters_not_lower(&ours, &p) + assert_counters_not_lower(&ours, &r);
    assert!(n >= 60, "compared only {n} counter series");

    // Upstream's newer default collectors, on the table we made.
    let fills = [
        ("datname", "trading"),
        ("schemaname", "public"),
        ("relname", "fills"),
    ];
    // Ours is connected to `postgres`, so the `trading` tables are not ours to see.
    assert!(
        ours.matching("pg_stat_user_tables_n_live_tup", &fills)
            .is_empty()
    );
    assert_eq!(v(&ours, "pg_long_running_transactions", &[]), Some(0.0));
    assert!(
        v(&ours, "pg_wal_segments", &[]).unwrap() >= 1.0,
        "superuser lists WAL"
    );
}

#[test]
fn user_tables_and_statements_come_from_the_connected_database() {
    let mut pg = Postgres::start();
    let redis = Redis::start();
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
    );
    pg.stop();
    pg.start_again();
    pg.create_database("trading");
    pg.psql(
        "trading",
        "CREATE EXTENSION pg_stat_statements; \
         CREATE TABLE fills (id bigint PRIMARY KEY, qty int); \
         INSERT INTO fills SELECT g, g FROM generate_series(1, 500) g; \
         DELETE FROM fills WHERE id <= 20; ANALYZE fills",
    );
    let app = App::start(
        EXPORTER,
        &[],
        &[
            ("DATABASE_URL", &pg.url_for("trading")),
            ("REDIS_URL", &redis.url()),
        ],
    );
    let e = app.scrape();
    let fills = [
        ("datname", "trading"),
        ("schemaname", "public"),
        ("relname", "fills"),
    ];
    assert_eq!(
        e.value("pg_stat_user_tables_n_tup_ins", &fills),
        Some(500.0)
    );
    assert_eq!(e.value("pg_stat_user_tables_n_tup_del", &fills), Some(20.0));
    assert_eq!(
        e.value("pg_stat_user_tables_n_live_tup", &fills),
        Some(480.0)
    );
    assert_eq!(
        e.value("pg_stat_user_tables_analyze_count", &fills),
        Some(1.0)
    );
    assert!(e.value("pg_stat_user_tables_last_analyze", &fills).unwrap() > 1.7e9);
    assert_eq!(
        e.value("pg_stat_user_tables_vacuum_count", &fills),
        Some(0.0)
    );
    let size: f64 = pg
        .psql("trading", "SELECT pg_table_size('fills')")
        .parse()
        .unwrap();
    assert_eq!(
        e.value("pg_stat_user_tables_table_size_bytes", &fills),
        Some(size)
    );
    assert_eq!(e.types["pg_stat_user_tables_seq_scan"], "counter");
    assert_eq!(e.types["pg_stat_user_tables_n_dead_tup"], "gauge");
    assert!(
        e.value("pg_statio_user_tables_heap_blocks_hit", &fills)
            .unwrap()
            > 0.0
    );
    // We read both views' columns in one pass over pg_class: every value must be the views'.
    // Statistics are flushed by each backend at most once a second: scrape and query the
    // views again until both see the same flushed numbers.
    let names = [
        "pg_stat_user_tables_seq_scan",
        "pg_stat_user_tables_seq_tup_read",
        "pg_stat_user_tables_idx_scan",
        "pg_stat_user_tables_idx_tup_fetch",
        "pg_stat_user_tables_n_tup_ins",
        "pg_stat_user_tables_n_tup_upd",
        "pg_stat_user_tables_n_tup_del",
        "pg_stat_user_tables_n_tup_hot_upd",
        "pg_stat_user_tables_n_live_tup",
        "pg_stat_user_tables_n_dead_tup",
        "pg_statio_user_tables_heap_blocks_read",
        "pg_statio_user_tables_heap_blocks_hit",
        "pg_statio_user_tables_idx_blocks_read",
        "pg_statio_user_tables_idx_blocks_hit",
        "pg_statio_user_tables_toast_blocks_read",
        "pg_statio_user_tables_toast_blocks_hit",
        "pg_statio_user_tables_tidx_blocks_read",
        "pg_statio_user_tables_tidx_blocks_hit",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let got = loop {
        let e = app.scrape();
        let views = pg.psql(
            "trading",
            "SELECT seq_scan, seq_tup_read, COALESCE(idx_scan, 0), COALESCE(idx_tup_fetch, 0), \
                    n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup, n_dead_tup, \
                    heap_blks_read, heap_blks_hit, COALESCE(idx_blks_read, 0), \
                    COALESCE(idx_blks_hit, 0), COALESCE(toast_blks_read, 0), \
                    COALESCE(toast_blks_hit, 0), COALESCE(tidx_blks_read, 0), \
                    COALESCE(tidx_blks_hit, 0) \
             FROM pg_stat_user_tables t JOIN pg_statio_user_tables USING (relid) \
             WHERE t.relname = 'fills'",
        );
        let want: Vec<f64> = views.split('|').map(|v| v.parse().unwrap()).collect();
        let got: Vec<f64> = names.iter().map(|n| e.value(n, &fills).unwrap()).collect();
        if got == want {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ours vs pg_stat_user_tables + pg_statio_user_tables, still different after 20 s:\n{got:?}\n{want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        got[12] + got[13] > 0.0,
        "the primary key's index blocks are counted"
    );
    // pg_stat_statements: the INSERT above ran once, as the postgres user, in `trading`.
    let qid = pg.psql(
        "trading",
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'INSERT INTO fills%'",
    );
    let l = [
        ("user", "postgres"),
        ("datname", "trading"),
        ("queryid", qid.as_str()),
    ];
    assert_eq!(e.value("pg_stat_statements_calls_total", &l), Some(1.0));
    assert_eq!(e.value("pg_stat_statements_rows_total", &l), Some(500.0));
    assert!(e.value("pg_stat_statements_seconds_total", &l).unwrap() > 0.0);

    // Every optional part on (statements, WAL listing): a hung server still answers in time.
    pg.pause();
    let (e, took) = app.scrape_with_timeout(2.0);
    assert!(took < Duration::from_secs(2), "scrape took {took:?}");
    assert_eq!(e.value("pg_up", &[]), Some(0.0));
    assert_eq!(e.value("pg_exporter_last_scrape_error", &[]), Some(1.0));
    assert!(e.matching("pg_stat_statements_calls_total", &[]).is_empty());
    assert!(e.matching("pg_settings_max_connections", &[]).is_empty());
    assert_eq!(e.value("redis_up", &[]), Some(1.0));
    assert!(
        e.value("redis_commands_total", &[("cmd", "info")])
            .is_some()
    );
    pg.resume();
    assert!(testkit::wait_until(Duration::from_secs(20), || {
        app.scrape().value("pg_up", &[]) == Some(1.0)
    }));
    pg.stop();
    let (e, took) = app.scrape_with_timeout(3.0);
    assert!(took < Duration::from_millis(1500), "scrape took {took:?}");
    assert_eq!(e.value("pg_up", &[]), Some(0.0));
    assert_eq!(e.value("redis_up", &[]), Some(1.0));
    assert!(e.value("redis_config_maxclients", &[]).is_some());
}

#[test]
fn a_hung_or_stopped_redis_leaves_redis_up_0_and_the_rest_whole() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let app = App::start(
        EXPORTER,
        &[],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    );
    let e = app.scrape();
    assert_eq!(e.value("redis_up", &[]), Some(1.0));
    assert!(e.value("redis_slowlog_length", &[]).is_some());

    redis.pause();
    for _ in 0..2 {
        let (e, took) = app.scrape_with_timeout(2.0);
        assert!(took < Duration::from_secs(2), "scrape took {took:?}");
        assert_eq!(e.value("redis_up", &[]), Some(0.0));
        assert_eq!(
            e.value(
                "redis_exporter_last_scrape_error",
                &[("err", "scrape deadline exceeded")]
            )
            .or_else(|| {
                e.matching("redis_exporter_last_scrape_error", &[])
                    .first()
                    .map(|s| s.value)
            }),
            Some(1.0)
        );
        assert!(
            e.matching("redis_commands_total", &[]).is_empty(),
            "no stale series"
        );
        assert_eq!(e.value("pg_up", &[]), Some(1.0));
        assert!(
            e.value("pg_stat_bgwriter_buffers_alloc_total", &[])
                .is_some()
        );
        assert!(e.value("pg_settings_max_connections", &[]).is_some());
    }
    redis.resume();
    assert!(testkit::wait_until(Duration::from_secs(20), || {
        app.scrape().value("redis_up", &[]) == Some(1.0)
    }));
    redis.stop();
    let (e, took) = app.scrape_with_timeout(3.0);
    assert!(took < Duration::from_secs(3), "scrape took {took:?}");
    assert_eq!(e.value("redis_up", &[]), Some(0.0));
    assert_eq!(e.value("pg_up", &[]), Some(1.0));
    redis.start_again();
    assert!(testkit::wait_until(Duration::from_secs(20), || {
        app.scrape().value("redis_up", &[]) == Some(1.0)
    }));
}
