//! SIGHUP reload of the exporter against real PostgreSQL and Redis: a good configuration is
//! applied whole (collectors, sources, textfile directory, probe allowlist, query file, web
//! config), a bad one is refused with its problems logged and the old one keeps serving, and
//! both outcomes show in `quantwatch_exporter_config_last_reload_*`.

use std::path::Path;
use std::time::Duration;
use testkit::prom_text::Exposition;
use testkit::{App, Postgres, Redis, wait_until};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");
const OK: &str = "quantwatch_exporter_config_last_reload_successful";
const WHEN: &str = "quantwatch_exporter_config_last_reload_success_timestamp_seconds";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("writing a test file must work");
}

/// Sends SIGHUP and waits until the exporter has logged the `n`-th outcome of a reload.
fn hangup(app: &mut App, n: usize) {
    app.child().signal_main(libc::SIGHUP);
    let done = wait_until(Duration::from_secs(20), || {
        let log = app.log();
        log.matches("configuration reloaded").count()
            + log
                .matches("reload refused; the previous configuration stays in force")
                .count()
            >= n
    });
    assert!(done, "no reload outcome logged:\n{}", app.log());
    app.child().assert_running();
}

fn scrape_as(app: &App, user: Option<(&str, &str)>) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut req = client.get(format!("{}/metrics", app.url()));
    if let Some((u, p)) = user {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().expect("GET /metrics must answer");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

fn collectors_on(m: &Exposition) -> Vec<String> {
    m.matching("quantwatch_exporter_collector_success", &[])
        .iter()
        .map(|s| s.labels["collector"].clone())
        .collect()
}

const QUERIES: &str = "pg_reload_probe:\n  query: \"SELECT 7 AS answer\"\n  metrics:\n    - answer:\n        usage: \"GAUGE\"\n        description: \"Always 7\"\n";

#[test]
fn a_good_reload_applies_collectors_sources_textfiles_probes_and_login() {
    let pg = Postgres::start();
    let redis_a = Redis::start();
    let redis_b = Redis::start();
    redis_b.cli(&["-n", "5", "SET", "only-on-b", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let (text_a, text_b) = (dir.path().join("text-a"), dir.path().join("text-b"));
    for (d, metric) in [(&text_a, "from_dir_a 1\n"), (&text_b, "from_dir_b 2\n")] {
        std::fs::create_dir(d).unwrap();
        write(&d.join("x.prom"), metric);
    }
    let queries = dir.path().join("queries.yaml");
    write(&queries, QUERIES);
    let web = dir.path().join("web.yml");
    write(&web, "");
    let config = dir.path().join("exporter.yml");
    write(
        &config,
        &format!(
            "host:\n  textfile_directory: {}\npostgres:\n  url: {}\n  extend_query_path: {}\nredis:\n  url: {}\n",
            text_a.display(),
            pg.url(),
            queries.display(),
            redis_a.url()
        ),
    );
    let mut app = App::start(
        EXPORTER,
        &[
            "--config",
            config.to_str().unwrap(),
            "--web.config.file",
            web.to_str().unwrap(),
        ],
        &[],
    );
    let before = app.scrape();
    assert_eq!(collectors_on(&before), ["host", "postgres", "redis"]);
    assert_eq!(before.value("pg_up", &[]), Some(1.0));
    assert_eq!(before.value("pg_reload_probe_answer", &[]), Some(7.0));
    assert_eq!(before.value("redis_up", &[]), Some(1.0));
    assert_eq!(before.value("redis_db_keys", &[("db", "db5")]), Some(0.0));
    assert_eq!(before.value("from_dir_a", &[]), Some(1.0));
    assert!(before.value("node_load1", &[]).is_some());
    assert_eq!(before.value(OK, &[]), Some(1.0));
    let started = before.value(WHEN, &[]).expect("the start counts as a load");
    let probe = format!("/scrape?target={}", redis_a.url());
    assert_eq!(app.get(&probe).0, 400, "redis A is not a probe target yet");

    // PostgreSQL off, Redis pointed at another server, another textfile directory, loadavg
    // off, redis A allowed as a probe target, and a login.
    write(
        &config,
        &format!(
            "host:\n  textfile_directory: {}\n  collectors:\n    loadavg: false\nredis:\n  url: {}\nprobe:\n  targets: ['{}']\n",
            text_b.display(),
            redis_b.url(),
            redis_a.url()
        ),
    );
    let hash = bcrypt::hash("s3cret-pass", 4).unwrap();
    write(&web, &format!("basic_auth_users:\n  prom: \"{hash}\"\n"));
    hangup(&mut app, 1);
    assert!(
        app.log().contains("configuration reloaded"),
        "{}",
        app.log()
    );

    let (status, _) = scrape_as(&app, None);
    assert_eq!(status, 401, "the reloaded web config's login applies");
    let (status, body) = scrape_as(&app, Some(("prom", "s3cret-pass")));
    assert_eq!(status, 200);
    let after = testkit::prom_text::parse(&body);
    assert_eq!(collectors_on(&after), ["host", "redis"]);
    assert_eq!(after.value("pg_up", &[]), None, "postgres collector gone");
    assert_eq!(after.value("pg_reload_probe_answer", &[]), None);
    assert_eq!(after.value("redis_db_keys", &[("db", "db5")]), Some(1.0));
    assert_eq!(after.value("from_dir_a", &[]), None);
    assert_eq!(after.value("from_dir_b", &[]), Some(2.0));
    assert_eq!(after.value("node_load1", &[]), None, "loadavg switched off");
    assert_eq!(
        after.value("node_scrape_collector_success", &[("collector", "loadavg")]),
        None
    );
    assert_eq!(after.value(OK, &[]), Some(1.0));
    assert!(after.value(WHEN, &[]).unwrap() > started);

    let client = reqwest::blocking::Client::new();
    let resp = client
        .get(format!("{}{probe}", app.url()))
        .basic_auth("prom", Some("s3cret-pass"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "redis A is a probe target now");
    let probed = testkit::prom_text::parse(&resp.text().unwrap());
    assert_eq!(probed.value("redis_up", &[]), Some(1.0));
}

#[test]
fn a_bad_reload_keeps_the_old_config_serving_and_reports_failure() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("queries.yaml");
    write(&queries, QUERIES);
    let config = dir.path().join("exporter.yml");
    let good = format!(
        "postgres:\n  url: {}\n  extend_query_path: {}\n",
        pg.url(),
        queries.display()
    );
    write(&config, &good);
    let mut app = App::start(EXPORTER, &["--config", config.to_str().unwrap()], &[]);
    let first = app.scrape();
    let started = first.value(WHEN, &[]).unwrap();

    // 1. Two invalid keys (one holding a password, which must not be logged).
    write(
        &config,
        "web:\n  default_scrape_timeout: 0s\npostgres:\n  url: mysql://monitor:hunter2@db/x\n",
    );
    hangup(&mut app, 1);
    let log = app.log();
    let file = config.display().to_string();
    for want in [
        format!(
            "reload refused: invalid configuration: {file}: postgres.url: must start with postgres://"
        ),
        format!(
            "reload refused: invalid configuration: {file}: web.default_scrape_timeout: must be greater than 0s"
        ),
    ] {
        assert!(log.contains(&want), "missing {want:?} in:\n{log}");
    }
    assert!(!log.contains("hunter2"), "a secret was logged:\n{log}");
    let m = app.scrape();
    assert_eq!(
        m.value("pg_up", &[]),
        Some(1.0),
        "the old config keeps serving"
    );
    assert_eq!(m.value("pg_reload_probe_answer", &[]), Some(7.0));
    assert_eq!(m.value(OK, &[]), Some(0.0));
    assert_eq!(m.value(WHEN, &[]), Some(started));

    // 2. A good file again but a query file that does not parse: refused as a whole.
    write(&config, &good);
    write(&queries, "pg_reload_probe: [unclosed\n");
    hangup(&mut app, 2);
    let log = app.log();
    let want = format!(
        "reload refused: invalid configuration: {}: -: invalid query file",
        queries.display()
    );
    assert!(log.contains(&want), "missing {want:?} in:\n{log}");
    let m = app.scrape();
    assert_eq!(m.value("pg_reload_probe_answer", &[]), Some(7.0));
    assert_eq!(m.value(OK, &[]), Some(0.0));

    // 3. A web config that does not load (not a bcrypt hash): refused, no login required.
    write(&queries, QUERIES);
    let web = dir.path().join("web.yml");
    write(&web, "basic_auth_users:\n  prom: plaintext\n");
    write(
        &config,
        &format!("{good}web:\n  config_file: {}\n", web.display()),
    );
    hangup(&mut app, 3);
    let log = app.log();
    let want = format!(
        "reload refused: invalid configuration: {}: basic_auth_users.prom: is not a bcrypt hash",
        web.display()
    );
    assert!(log.contains(&want), "missing {want:?} in:\n{log}");
    let (status, body) = scrape_as(&app, None);
    assert_eq!(status, 200, "no half-applied login");
    assert_eq!(testkit::prom_text::parse(&body).value(OK, &[]), Some(0.0));

    // 4. Fixed: the reload succeeds and the gauge says so.
    write(&config, &good);
    hangup(&mut app, 4);
    let m = app.scrape();
    assert_eq!(m.value(OK, &[]), Some(1.0));
    assert!(m.value(WHEN, &[]).unwrap() > started);
    assert_eq!(m.value("pg_reload_probe_answer", &[]), Some(7.0));
}
