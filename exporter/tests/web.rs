//! The exporter as operators run it: scraped by a real Prometheus, behind TLS and basic auth,
//! refusing bad configuration, stopping cleanly on SIGTERM.

use std::process::Command;
use std::time::Duration;
use testkit::{App, Postgres, Prometheus, Redis, free_port, wait_until};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

#[test]
fn a_real_prometheus_scrapes_every_family() {
    let pg = Postgres::start();
    let redis = Redis::start();
    redis.cli(&["-n", "3", "SET", "a", "1"]);
    let app = App::start(
        EXPORTER,
        &[],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    );
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: quantwatch-exporter\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        app.port()
    );
    let prom = Prometheus::start(&config, &[]);
    let up = prom.wait_for(
        "up{job=\"quantwatch-exporter\"} == 1",
        Duration::from_secs(30),
    );
    assert_eq!(up[0]["value"][1], "1");
    for q in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_network_receive_bytes_total",
        "pg_up == 1",
        "pg_stat_activity_count",
        "pg_stat_database_xact_commit",
        "pg_locks_count",
        "redis_up == 1",
        "redis_db_keys{db=\"db3\"} == 1",
        "redis_commands_processed_total",
        "quantwatch_exporter_collector_success == 1",
        "quantwatch_exporter_build_info",
    ] {
        let r = prom.query(q);
        assert!(
            r.as_array().is_some_and(|a| !a.is_empty()),
            "{q} returned nothing"
        );
    }
    // Prometheus saw no scrape failures in the meantime.
    let samples = prom.query("scrape_samples_scraped{job=\"quantwatch-exporter\"} > 100");
    assert_eq!(samples.as_array().map(Vec::len), Some(1));
}

fn run_exporter(args: &[&str]) -> std::process::Output {
    Command::new(EXPORTER)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .output()
        .expect("running the exporter must work")
}

#[test]
fn bad_config_exits_64_naming_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.yml");
    std::fs::write(
        &path,
        "web:\n  listen_address: \"nowhere\"\npostgres:\n  url: mysql://user:hunter2@db/x\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    for args in [vec!["--config", p], vec!["--config", p, "check-config"]] {
        let out = run_exporter(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{p}: web.listen_address: \"nowhere\" is not HOST:PORT"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("{p}: postgres.url: must start with")),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "a secret leaked: {err}");
    }

    std::fs::write(&path, "redis:\n  urll: redis://x\n").unwrap();
    let out = run_exporter(&["--config", p]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(p) && err.contains("urll"), "{err}");

    let out = run_exporter(&["--config", p, "--web.listen-address", "x"]);
    assert_eq!(out.status.code(), Some(64));

    std::fs::write(&path, "redis:\n  url: ${REDIS_URL:-redis://127.0.0.1:1/}\n").unwrap();
    let out = run_exporter(&["--config", p, "check-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_finishes_and_exits_zero() {
    let mut app = App::start(EXPORTER, &[], &[]);
    assert_eq!(app.get("/metrics").0, 200);
    app.child().signal_main(libc::SIGTERM);
    let status = app.child().wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(!testkit::process::port_open(app.port()));
}

#[test]
fn landing_health_and_zero_config_host_metrics() {
    let app = App::start(EXPORTER, &[], &[]);
    let (status, body) = app.get("/");
    assert_eq!(status, 200);
    assert!(
        body.contains("quantwatch-exporter") && body.contains("host"),
        "{body}"
    );
    assert_eq!(app.get("/readyz").0, 200);
    let e = app.scrape();
    assert_eq!(
        e.value(
            "quantwatch_exporter_collector_success",
            &[("collector", "host")]
        ),
        Some(1.0)
    );
    assert!(
        e.matching("pg_up", &[]).is_empty(),
        "postgres is off without a URL"
    );
    assert!(
        e.matching("redis_up", &[]).is_empty(),
        "redis is off without a URL"
    );
}

#[test]
fn tls_and_basic_auth_from_the_exporter_toolkit_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let web = testkit::tls::web_config(dir.path(), true, &[("prometheus", "scrape-pass")]);
    let port = free_port();
    let mut cmd = Command::new(EXPORTER);
    cmd.args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .arg("--web.config.file")
        .arg(&web.path);
    let mut child = testkit::Child::spawn(
        "exporter-tls",
        cmd,
        testkit::process::RunAs::Me,
        &dir.path().join("log"),
    );
    assert!(wait_until(Duration::from_secs(20), || {
        child.assert_running();
        testkit::process::port_open(port)
    }));
    let client = web.client();
    let url = format!("https://localhost:{port}/metrics");
    let anon = client.get(&url).send().unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert!(anon.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(&url)
        .basic_auth("prometheus", Some("nope"))
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = client
        .get(&url)
        .basic_auth("prometheus", Some("scrape-pass"))
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.text().unwrap().contains("node_cpu_seconds_total"));
    // Plain HTTP to the TLS port gets no metrics.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"));
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[test]
fn absurd_scrape_timeout_headers_get_a_bounded_scrape() {
    let app = App::start(EXPORTER, &[], &[]);
    let client = reqwest::blocking::Client::new();
    for h in ["1e20", "inf", "NaN", "-5", "1e400"] {
        let resp = client
            .get(format!("{}/metrics", app.url()))
            .header("X-Prometheus-Scrape-Timeout-Seconds", h)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{h}");
        let body = resp.text().unwrap();
        let e = testkit::prom_text::parse(&body);
        assert_eq!(
            e.value(
                "quantwatch_exporter_collector_success",
                &[("collector", "host")]
            ),
            Some(1.0),
            "{h}"
        );
    }
    // Still serving: no handler panicked.
    assert_eq!(app.get("/healthz").0, 200);
}

#[test]
fn yaml_errors_name_the_key_path_and_never_print_the_line_holding_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.yml");
    let p = path.to_str().unwrap();
    for (yaml, expected) in [
        // A syntax error on the password's line, and a type error on it.
        (
            "postgres:\n  url: [\"postgres://u:hunter2-leak@db/x\"\nredis:\n  url: x\n",
            "postgres.url: expected string scalar at line 2, column 8",
        ),
        (
            "postgres:\n  url: {dsn: \"postgres://u:hunter2-leak@db/x\"}\n",
            "postgres.url: expected string scalar at line 2, column 8",
        ),
        // Nested keys, a list index, a map key of the operator's.
        (
            "host:\n  filesystem_mount_points_exclude: {prefix: /mnt}\n",
            "host.filesystem_mount_points_exclude: data did not match any variant of untagged enum Exclude at line 2, column 36",
        ),
        (
            "probe:\n  targets:\n    - redis://a:6379\n    - [x]\n",
            "probe.targets[1]: expected string scalar at line 4, column 7",
        ),
        // Interpolated secrets where they do not belong: the key, never the value.
        (
            "probe:\n  auth_modules:\n    desk:\n      username: u\n      password: {value: ${PW}}\n",
            "probe.auth_modules.desk.password: expected string scalar at line 5, column 17",
        ),
        (
            "host:\n  collectors:\n    netstat: ${PW}\n",
            "host.collectors.netstat: invalid boolean at line 3, column 14",
        ),
        (
            "probe:\n  auth_modules:\n    desk:\n      pasword: ${PW}\n",
            "probe.auth_modules.desk.pasword: unknown field `pasword`, expected one of username, password at line 4, column 7",
        ),
    ] {
        std::fs::write(&path, yaml).unwrap();
        let out = Command::new(EXPORTER)
            .args(["--config", p, "check-config"])
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("PW", "hunter2-leak")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{yaml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            format!("quantwatch-exporter: invalid configuration: {p}: {expected}"),
            "{yaml}"
        );
        assert!(!err.contains("hunter2"), "a secret leaked: {err}");
    }
}

#[test]
fn an_invalid_web_config_header_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    \"X-Bad\\nName\": x\n    X-Token: \"tok\\r\\nSet-Cookie: a=b\"\n",
    )
    .unwrap();
    let w = web.to_str().unwrap();
    let out = run_exporter(&["--web.config.file", w, "check-config"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{w}: http_server_config.headers.X-Token: the value is not a valid HTTP header value"
        )),
        "{err}"
    );
    assert!(err.contains("is not a valid HTTP header name"), "{err}");
    assert!(!err.contains("Set-Cookie"), "{err}");
}

/// The exporter shares the router's accept loop: started under systemd's default soft limit
/// of 1,024 open files (hard limit 1,024 too, so raising it cannot help), 1,100 connections
/// that never send a byte do not keep a scrape out: the ones idle the longest are closed to
/// make room.
#[test]
fn idle_connections_at_a_1024_open_files_limit_do_not_lock_out_a_scrape() {
    let nofile = testkit::app::raise_own_nofile(4096);
    assert!(
        nofile >= 2048,
        "need 2,048 open files for this test, have {nofile}"
    );
    let app = App::start_with_nofile_limits(EXPORTER, &["--log.format", "json"], &[], 1024, 1024);
    let log = app.log();
    assert!(
        log.contains("\"soft\":1024") && log.contains("\"max_connections\":512"),
        "the open-files limit is logged: {log}"
    );
    let addr = format!("127.0.0.1:{}", app.port()).parse().unwrap();
    let idle: Vec<std::net::TcpStream> = (0..1100)
        .map(|i| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("connect {i}: {e}"))
        })
        .collect();
    let started = std::time::Instant::now();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    for path in ["/healthz", "/metrics"] {
        let resp = client
            .get(format!("{}{path}", app.url()))
            .send()
            .unwrap_or_else(|e| panic!("{path} behind 1,100 idle connections: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let answered = started.elapsed();
    assert!(
        answered < Duration::from_secs(10),
        "healthz and a scrape took {answered:?} behind 1,100 idle connections"
    );
    drop(idle);
}
