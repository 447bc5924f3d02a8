//! postgres_exporter's queries.yaml (`--extend.query-path`) against Debian's
//! postgres_exporter loading the same file, and multi-target `/probe` over two PostgreSQL and
//! two Redis servers.

use std::collections::BTreeMap;
use testkit::prom_text::{Exposition, parse};
use testkit::{App, GoExporter, Postgres, Redis};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

/// A queries.yaml as DBAs write them: labels, a gauge, a counter, a mapped metric, a
/// duration, an unlisted column, a cached query and one that fails.
const QUERIES: &str = r#"
pg_trading_orders:
  query: "SELECT side, status, count(*) AS open_orders, sum(qty) AS qty_total FROM orders GROUP BY side, status;"
  master: true
  metrics:
    - side:
        usage: "LABEL"
        description: "Order side"
    - status:
        usage: "LABEL"
        description: "Order status"
    - open_orders:
        usage: "GAUGE"
        description: "Orders in this side and status"
    - qty_total:
        usage: "COUNTER"
        description: "Quantity ever ordered"

pg_trading_feed:
  query: |
    SELECT 'primary' AS role,
           'on' AS mode,
           2 AS level,
           1500 AS poll_interval,
           '1.5s' AS poll_text,
           42 AS unlisted_column
  metrics:
    - role:
        usage: "LABEL"
        description: "Feed role"
    - mode:
        usage: "MAPPEDMETRIC"
        description: "Feed mode"
        mapping:
          "on": 1
          "off": 0
    - level:
        usage: "MAPPEDMETRIC"
        description: "Feed level"
        mapping:
          "low": 1
          "high": 2
    - poll_interval:
        usage: "DURATION"
        description: "Polling interval"
    - poll_text:
        usage: "DURATION"
        description: "Polling interval as text"

pg_trading_cached:
  query: "SELECT 7 AS seven"
  cache_seconds: 30
  metrics:
    - seven:
        usage: "GAUGE"
        description: "A constant"

pg_trading_broken:
  query: "SELECT nope FROM no_such_table"
  metrics:
    - nope:
        usage: "GAUGE"
        description: "Never published"
"#;

/// Series of families starting with `prefix`, keyed by name and labels (no `server`).
fn series(e: &Exposition, prefix: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    e.samples
        .iter()
        .filter(|s| s.name.starts_with(prefix))
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

#[test]
fn a_users_queries_yaml_gives_the_same_series_as_postgres_exporter() {
    let pg = Postgres::start();
    pg.psql(
        "postgres",
        "CREATE TABLE orders (id serial, side text, status text, qty int); \
         INSERT INTO orders (side, status, qty) VALUES \
           ('buy', 'new', 10), ('buy', 'new', 5), ('sell', 'filled', 7), ('buy', 'filled', 1)",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queries.yaml");
    std::fs::write(&file, QUERIES).unwrap();
    let path = file.display().to_string();

    let go = GoExporter::postgres_with_args(&pg.url(), &[format!("--extend.query-path={path}")]);
    let app = App::start(
        EXPORTER,
        &["--extend.query-path", &path],
        &[("DATABASE_URL", &pg.url())],
    );
    let (status, body) = testkit::http_get(&go.metrics_url());
    assert_eq!(status, 200);
    let theirs = parse(&body);
    let ours = app.scrape();

    let t = series(&theirs, "pg_trading_");
    let o = series(&ours, "pg_trading_");
    assert_eq!(o, t, "the same series and values as postgres_exporter");
    for fam in [
        "pg_trading_orders_open_orders",
        "pg_trading_orders_qty_total",
        "pg_trading_feed_poll_interval_milliseconds",
        "pg_trading_feed_level",
        "pg_trading_feed_unlisted_column",
        "pg_trading_cached_seven",
    ] {
        assert_eq!(ours.types.get(fam), theirs.types.get(fam), "type of {fam}");
    }
    // Exact values, so "the same" cannot mean "both empty".
    let buy_new = [("side", "buy"), ("status", "new")];
    assert_eq!(
        ours.value("pg_trading_orders_open_orders", &buy_new),
        Some(2.0)
    );
    assert_eq!(
        ours.value("pg_trading_orders_qty_total", &buy_new),
        Some(15.0)
    );
    assert_eq!(ours.types["pg_trading_orders_qty_total"], "counter");
    assert_eq!(
        ours.value(
            "pg_trading_feed_poll_interval_milliseconds",
            &[("role", "primary")]
        ),
        Some(1500.0)
    );
    assert_eq!(ours.types["pg_trading_feed_unlisted_column"], "untyped");
    assert_eq!(ours.value("pg_trading_cached_seven", &[]), Some(7.0));
    assert!(ours.matching("pg_trading_broken_nope", &[]).is_empty());
    // As 0.11 does: MAPPEDMETRIC and DURATION columns take the column's number as it is
    // (0.11 never applies their conversions), so text values publish nothing.
    assert!(ours.matching("pg_trading_feed_mode", &[]).is_empty());
    assert!(
        ours.matching("pg_trading_feed_poll_text_milliseconds", &[])
            .is_empty()
    );
    assert_eq!(
        ours.value("pg_trading_feed_level", &[("role", "primary")]),
        Some(2.0)
    );

    // The broken query is reported, and only it.
    let ok = |ns: &str| ours.value("pg_exporter_user_query_success", &[("namespace", ns)]);
    assert_eq!(ok("pg_trading_broken"), Some(0.0));
    assert_eq!(ok("pg_trading_orders"), Some(1.0));
    assert_eq!(ok("pg_trading_cached"), Some(1.0));
    assert_eq!(ours.value("pg_up", &[]), Some(1.0));
    assert!(
        ours.value("pg_stat_bgwriter_buffers_alloc_total", &[])
            .is_some()
    );
    let load = |e: &Exposition| {
        let s = e.matching("pg_exporter_user_queries_load_error", &[]);
        assert_eq!(s.len(), 1);
        (
            s[0].labels["filename"].clone(),
            s[0].labels["hashsum"].clone(),
            s[0].value,
        )
    };
    assert_eq!(load(&ours), load(&theirs));
    assert_eq!(load(&ours).2, 0.0);

    // cache_seconds: a changed table shows at once in uncached queries, not in cached ones.
    pg.psql(
        "postgres",
        "INSERT INTO orders (side, status, qty) VALUES ('buy', 'new', 1)",
    );
    let again = app.scrape();
    assert_eq!(
        again.value("pg_trading_orders_open_orders", &buy_new),
        Some(3.0)
    );
}

#[test]
fn an_unparsable_queries_yaml_is_reported_and_the_rest_is_published() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queries.yaml");
    std::fs::write(&file, "pg_x:\n  query: [unclosed\n").unwrap();
    let path = file.display().to_string();
    let app = App::start(
        EXPORTER,
        &[],
        &[
            ("DATABASE_URL", &pg.url()),
            ("PG_EXPORTER_EXTEND_QUERY_PATH", &path),
        ],
    );
    let e = app.scrape();
    assert_eq!(
        e.value(
            "pg_exporter_user_queries_load_error",
            &[("filename", &path)]
        ),
        Some(1.0)
    );
    assert_eq!(e.value("pg_up", &[]), Some(1.0));
    assert_eq!(e.value("pg_settings_max_connections", &[]), Some(200.0));
}

#[test]
fn probe_serves_each_listed_target_and_refuses_the_rest() {
    let pg_a = Postgres::start();
    let pg_b = Postgres::start();
    pg_a.create_database("only_on_a");
    pg_b.create_database("only_on_b");
    let redis_a = Redis::start();
    let redis_b = Redis::start();
    for i in 0..4 {
        redis_a.cli(&["-n", "3", "SET", &format!("a{i}"), "x"]);
    }
    for i in 0..7 {
        redis_b.cli(&["-n", "3", "SET", &format!("b{i}"), "x"]);
    }
    redis_b.cli(&["CONFIG", "SET", "requirepass", "s3cret"]);

    let pa = format!("127.0.0.1:{}/postgres", pg_a.port());
    let pb = format!("postgres://127.0.0.1:{}/postgres", pg_b.port());
    let ra = format!("redis://127.0.0.1:{}", redis_a.port());
    let rb = format!("redis://127.0.0.1:{}", redis_b.port());
    // A port that listens but is not listed: a probe for it must never connect.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_target = format!("127.0.0.1:{}/postgres", trap.local_addr().unwrap().port());

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.yml");
    std::fs::write(
        &cfg,
        format!(
            "host:\n  enabled: false\nprobe:\n  targets: ['{pa}', '{pb}', '{ra}', '{rb}']\n  auth_modules:\n    redis_b:\n      password: s3cret\n    pg:\n      username: postgres\n"
        ),
    )
    .unwrap();
    let app = App::start(EXPORTER, &["--config", cfg.to_str().unwrap()], &[]);

    let probe = |q: &str| {
        let (status, body) = app.get(q);
        (status, body)
    };
    let enc = |s: &str| s.replace(':', "%3A").replace('/', "%2F");

    // PostgreSQL targets log in as the auth module's user (the harness trusts `postgres`).
    let (s, body) = probe(&format!("/probe?target={}&auth_module=pg", enc(&pa)));
    assert_eq!(s, 200, "{body}");
    let e = parse(&body);
    assert_eq!(e.value("pg_up", &[]), Some(1.0));
    assert!(
        e.value("pg_database_size_bytes", &[("datname", "only_on_a")])
            .is_some()
    );
    assert!(
        e.matching("pg_database_size_bytes", &[("datname", "only_on_b")])
            .is_empty()
    );
    assert!(
        e.matching("redis_up", &[]).is_empty(),
        "one target per probe"
    );

    let (s, body) = probe(&format!("/probe?target={}&auth_module=pg", enc(&pb)));
    assert_eq!(s, 200);
    let e = parse(&body);
    assert!(
        e.value("pg_database_size_bytes", &[("datname", "only_on_b")])
            .is_some()
    );
    assert!(
        e.matching("pg_database_size_bytes", &[("datname", "only_on_a")])
            .is_empty()
    );

    let (s, body) = probe(&format!("/probe?target={}", enc(&ra)));
    assert_eq!(s, 200);
    let e = parse(&body);
    assert_eq!(e.value("redis_up", &[]), Some(1.0));
    assert_eq!(e.value("redis_db_keys", &[("db", "db3")]), Some(4.0));
    // redis_exporter's path for the same thing.
    let (s, body) = probe(&format!("/scrape?target={}", enc(&ra)));
    assert_eq!(s, 200);
    assert_eq!(
        parse(&body).value("redis_db_keys", &[("db", "db3")]),
        Some(4.0)
    );

    // Redis B needs its password: without the auth module it is down, with it it is read.
    let (s, body) = probe(&format!("/probe?target={}", enc(&rb)));
    assert_eq!(s, 200);
    assert_eq!(parse(&body).value("redis_up", &[]), Some(0.0));
    let (s, body) = probe(&format!("/probe?target={}&auth_module=redis_b", enc(&rb)));
    assert_eq!(s, 200);
    let e = parse(&body);
    assert_eq!(e.value("redis_up", &[]), Some(1.0));
    assert_eq!(e.value("redis_db_keys", &[("db", "db3")]), Some(7.0));

    // Not listed: 400 with a reason, and no connection was attempted.
    let (s, body) = probe(&format!(
        "/probe?target={}&auth_module=pg",
        enc(&trap_target)
    ));
    assert_eq!(s, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not in probe.targets"),
        "{body}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the exporter connected to an unlisted target"
    );
    let (s, _) = probe(&format!("/probe?target={}&auth_module=nope", enc(&ra)));
    assert_eq!(s, 400);
    let (s, _) = probe("/probe");
    assert_eq!(s, 400);
    // The listed target with credentials smuggled in is a different string: refused.
    let (s, _) = probe(&format!(
        "/probe?target={}",
        enc(&format!("redis://:x@127.0.0.1:{}", redis_a.port()))
    ));
    assert_eq!(s, 400);
}
