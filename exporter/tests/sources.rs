//! The exporter binary against real PostgreSQL and Redis: exact values, and faults.

use std::time::Duration;
use testkit::{App, Postgres, Redis};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

fn exporter(pg: &Postgres, redis: &Redis) -> App {
    App::start(
        EXPORTER,
        &[],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    )
}

fn activity_total(e: &testkit::prom_text::Exposition, datname: &str) -> f64 {
    e.matching("pg_stat_activity_count", &[("datname", datname)])
        .iter()
        .map(|s| s.value)
        .sum()
}

#[test]
fn extra_postgres_connections_move_activity_count_by_exactly_n() {
    let pg = Postgres::start();
    let redis = Redis::start();
    pg.create_database("watched");
    let app = exporter(&pg, &redis);
    let before = activity_total(&app.scrape(), "watched");

    // Hold N idle sessions open on the watched database.
    const N: usize = 5;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conns: Vec<sqlx::PgConnection> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..N {
            use sqlx::Connection;
            v.push(
                sqlx::PgConnection::connect(&pg.url_for("watched"))
                    .await
                    .unwrap(),
            );
        }
        v
    });
    let after = app.scrape();
    assert_eq!(activity_total(&after, "watched") - before, N as f64);
    assert_eq!(
        after.value(
            "pg_stat_activity_count",
            &[("datname", "watched"), ("state", "idle")]
        ),
        Some(N as f64)
    );
    drop(conns);
    assert_eq!(after.value("pg_up", &[]), Some(1.0));
}

#[test]
fn max_connections_and_database_size_match_the_server() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let app = exporter(&pg, &redis);
    let e = app.scrape();
    let server: f64 = pg.psql("postgres", "SHOW max_connections").parse().unwrap();
    assert_eq!(e.value("pg_settings_max_connections", &[]), Some(server));
    assert_eq!(server, 200.0, "the harness starts PostgreSQL with 200");
    let start: f64 = pg
        .psql(
            "postgres",
            "SELECT EXTRACT(EPOCH FROM pg_postmaster_start_time())::float8",
        )
        .parse()
        .unwrap();
    let got = e.value("pg_postmaster_start_time_seconds", &[]).unwrap();
    assert!((got - start).abs() < 1e-6, "{got} vs {start}");
    assert_eq!(e.value("pg_replication_lag_seconds", &[]), Some(0.0));
    let size: f64 = pg
        .psql("postgres", "SELECT pg_database_size('template1')")
        .parse()
        .unwrap();
    assert_eq!(
        e.value("pg_database_size_bytes", &[("datname", "template1")]),
        Some(size)
    );
}

#[test]
fn redis_keys_in_db3_are_counted_exactly() {
    let pg = Postgres::start();
    let redis = Redis::start();
    for i in 0..17 {
        redis.cli(&["-n", "3", "SET", &format!("k{i}"), "v"]);
    }
    redis.cli(&["-n", "3", "EXPIRE", "k0", "1000"]);
    redis.cli(&["-n", "3", "EXPIRE", "k1", "1000"]);
    let app = exporter(&pg, &redis);
    let e = app.scrape();
    assert_eq!(e.value("redis_up", &[]), Some(1.0));
    assert_eq!(e.value("redis_db_keys", &[("db", "db3")]), Some(17.0));
    assert_eq!(
        e.value("redis_db_keys_expiring", &[("db", "db3")]),
        Some(2.0)
    );
    assert_eq!(e.value("redis_db_keys", &[("db", "db0")]), Some(0.0));
    let clients: f64 = redis
        .cli(&["INFO", "clients"])
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // redis-cli's INFO counts its own connection; the exporter's scrape saw only ours.
    assert_eq!(e.value("redis_connected_clients", &[]), Some(clients - 1.0));
}

fn assert_full_host_family(e: &testkit::prom_text::Exposition) {
    for name in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_boot_time_seconds",
        "node_network_receive_bytes_total",
    ] {
        assert!(!e.matching(name, &[]).is_empty(), "{name} missing");
    }
}

#[test]
fn postgres_down_then_back_without_restarting_the_exporter() {
    let mut pg = Postgres::start();
    let redis = Redis::start();
    let app = exporter(&pg, &redis);
    assert_eq!(app.scrape().value("pg_up", &[]), Some(1.0));

    pg.stop();
    let (e, took) = app.scrape_with_timeout(3.0);
    // A refused connection fails at once: the scrape does not wait out its budget.
    assert!(took < Duration::from_millis(1500), "scrape took {took:?}");
    assert_eq!(e.value("pg_up", &[]), Some(0.0));
    assert_eq!(
        e.value(
            "quantwatch_exporter_collector_success",
            &[("collector", "postgres")]
        ),
        Some(0.0)
    );
    assert_eq!(e.value("redis_up", &[]), Some(1.0));
    assert!(e.value("redis_db_keys", &[("db", "db0")]).is_some());
    assert_full_host_family(&e);
    assert!(
        e.matching("pg_stat_activity_count", &[]).is_empty(),
        "no stale PostgreSQL series while it is down"
    );
    let (status, _) = app.get("/readyz");
    assert_eq!(status, 503);

    pg.start_again();
    let back = testkit::wait_until(Duration::from_secs(20), || {
        app.scrape().value("pg_up", &[]) == Some(1.0)
    });
    assert!(back, "pg_up did not return to 1");
    assert_eq!(app.get("/readyz").0, 200);
}

#[test]
fn redis_down_then_back_without_restarting_the_exporter() {
    let pg = Postgres::start();
    let mut redis = Redis::start();
    let app = exporter(&pg, &redis);
    assert_eq!(app.scrape().value("redis_up", &[]), Some(1.0));

    redis.stop();
    let (e, took) = app.scrape_with_timeout(3.0);
    assert!(took < Duration::from_secs(3), "scrape took {took:?}");
    assert_eq!(e.value("redis_up", &[]), Some(0.0));
    assert_eq!(
        e.value(
            "quantwatch_exporter_collector_success",
            &[("collector", "redis")]
        ),
        Some(0.0)
    );
    assert_eq!(e.value("pg_up", &[]), Some(1.0));
    assert_full_host_family(&e);

    redis.start_again();
    redis.cli(&["-n", "3", "SET", "back", "1"]);
    let back = testkit::wait_until(Duration::from_secs(20), || {
        let e = app.scrape();
        e.value("redis_up", &[]) == Some(1.0)
            && e.value("redis_db_keys", &[("db", "db3")]) == Some(1.0)
    });
    assert!(back, "redis_up did not return to 1");
}

#[test]
fn a_hung_postgres_does_not_hang_the_scrape() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let app = exporter(&pg, &redis);
    assert_eq!(app.scrape().value("pg_up", &[]), Some(1.0));

    pg.pause();
    for _ in 0..3 {
        let (e, took) = app.scrape_with_timeout(2.0);
        assert!(took < Duration::from_secs(2), "scrape took {took:?}");
        assert_eq!(e.value("pg_up", &[]), Some(0.0));
        assert_eq!(e.value("redis_up", &[]), Some(1.0));
        assert_full_host_family(&e);
    }
    pg.resume();
    let back = testkit::wait_until(Duration::from_secs(20), || {
        app.scrape().value("pg_up", &[]) == Some(1.0)
    });
    assert!(back, "pg_up did not return to 1 after SIGCONT");
    // The pool never holds more than its two connections, hung or not.
    let ours: f64 = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'quantwatch-exporter'",
        )
        .parse()
        .unwrap();
    assert!(ours <= 2.0, "exporter holds {ours} connections");
}
