//! Faults, measured end to end: real router binaries, real PostgreSQL and Alertmanagers, a
//! real full filesystem and a faked wall clock, and one loopback robot per escalation step
//! (`common::robots`). Each scenario prints its figures (pages lost, duplicates, time to page
//! once the fault is gone) and asserts that every step of every accepted alert reached its
//! robot exactly once. The README's "Faults, measured" quotes what these print:
//!
//! `cargo test -p quantwatch-alert-router --test chaos -- --nocapture`

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::robots::{StepRobots, Tally};
use serde_json::{Value, json};
use testkit::fakes::Mode;
use testkit::tmpfs::SmallDisk;
use testkit::{Alertmanager, App, Postgres};

const BIN: &str = env!("CARGO_BIN_EXE_quantwatch-alert-router");
const API: &str = "chaos-api-token";

fn iso(secs_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs_ago))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

/// Postable alerts (Alertmanager's API v2), one per name, all firing since `starts`: what
/// Prometheus sends to every Alertmanager of an HA pair.
fn postable(names: &[String], starts: &str) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| {
                json!({
                    "labels": {"alertname": n, "severity": "critical", "desk": "chaos"},
                    "annotations": {"summary": "chaos storm"},
                    "startsAt": starts,
                })
            })
            .collect(),
    )
}

/// The router's configuration: short retries and polls (faults last seconds here), a lease
/// long enough to outlive a PostgreSQL restart, and the robots' chain.
fn router_config(dir: &Path, robots: &StepRobots) -> String {
    let path = dir.join("router.yml");
    let yaml = format!(
        "language: en\ndelivery:\n  lease: 30s\n  poll_interval: 200ms\n  retry_initial: 200ms\n  retry_max: 2s\n{}",
        robots.yaml()
    );
    std::fs::write(&path, yaml).expect("write router config");
    path.display().to_string()
}

/// An Alertmanager configuration sending every alert (its own group) to each router. Each
/// flush's retries last `group_interval` (at least 10 s): with PostgreSQL down a router
/// answers 503 once its commit has waited 15 s, so an Alertmanager that should see that 503
/// needs more (operators' default is 5 m).
fn am_config(routers: &[&App], group_interval: &str) -> String {
    let hooks: String = routers
        .iter()
        .map(|r| {
            format!(
                "      - url: \"{}/webhook/alertmanager\"\n        send_resolved: false\n",
                r.url()
            )
        })
        .collect();
    format!(
        "route:\n  receiver: routers\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: {group_interval}\n  repeat_interval: 1h\nreceivers:\n  - name: routers\n    webhook_configs:\n{hooks}"
    )
}

/// One sample of the router's /metrics (0 when absent).
fn metric(app: &App, series: &str) -> f64 {
    let (_, text) = app.get("/metrics");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Notifications the router sent, summed over its step channels (a duplicate send counts
/// twice here, whatever the store says).
fn sent_by(app: &App, steps: usize) -> f64 {
    (0..steps)
        .map(|i| {
            metric(
                app,
                &format!(
                    "quantwatch_router_notifications_total{{channel=\"step{i}\",outcome=\"sent\"}}"
                ),
            )
        })
        .sum()
}

/// Blocking POST of an Alertmanager webhook body to the router: status and JSON answer.
fn post_webhook(url: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
        .post(format!("{url}/webhook/alertmanager"))
        .json(body)
        .send()
        .expect("webhook request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// Waits until the store behind `app` holds exactly `rows` notifications, all sent: nothing
/// is left that could still go out (a duplicate included).
fn wait_settled(app: &App, rows: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let pending = common::notification_count(&app.url(), API, "pending");
        let failed = common::notification_count(&app.url(), API, "failed");
        let sent = common::notification_count(&app.url(), API, "sent");
        if pending == 0 && failed == 0 && sent == rows {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox did not settle to {rows} sent within {timeout:?}: {sent} sent, {pending} pending, {failed} failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Time from `since` to the last first page of step 0 among `alerts`.
fn time_to_page(robots: &StepRobots, alerts: &[String], since: Instant) -> Duration {
    let first = robots.first_pages();
    alerts
        .iter()
        .filter_map(|a| first.get(&(0, a.clone())))
        .map(|at| at.saturating_duration_since(since))
        .max()
        .unwrap_or_default()
}

/// Print the scenario's figures and assert exactly once.
fn report(scenario: &str, alerts: usize, tally: &Tally, figure: &str) {
    println!(
        "chaos [{scenario}]: {alerts} alerts, {} pages expected; pages lost: {}; duplicates: {}; {figure}",
        tally.expected,
        tally.lost.len(),
        tally.duplicates.len()
    );
    assert!(
        tally.exactly_once(),
        "{scenario}: not exactly once: lost {:?}, duplicates {:?}, unexpected {:?}",
        tally.lost,
        tally.duplicates,
        tally.unexpected
    );
}

#[test]
fn postgres_restarted_mid_storm_under_two_replicas_pages_every_step_once() {
    let mut pg = Postgres::start();
    let db = pg.create_database("router");
    let robots = StepRobots::webhooks(&["0s", "4s", "8s"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = router_config(dir.path(), &robots);
    let env = [
        ("ROUTER_DATABASE_URL", db.as_str()),
        ("ROUTER_API_TOKEN", API),
    ];
    let replicas = [
        App::start(BIN, &["--config", &cfg], &env),
        App::start(BIN, &["--config", &cfg], &env),
    ];
    let am = Alertmanager::start(&am_config(&[&replicas[0], &replicas[1]], "30s"));
    let (first, second, outage) = (names("PgA", 20), names("PgB", 20), names("PgC", 20));
    am.post_alerts(&postable(&first, &iso(5)));
    robots.wait_all(&first, 0..1, Duration::from_secs(60));
    // Mid-storm: the first wave's later steps are pending, the second is on its way, and a
    // send is in flight (the robots answer after 2 s) when PostgreSQL goes: its row must be
    // marked sent once PostgreSQL is back, not sent again when its lease runs out.
    robots.set_mode(Mode::Slow(Duration::from_secs(2)));
    am.post_alerts(&postable(&second, &iso(5)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let in_flight = loop {
        let n = pg.psql(
            "router",
            "SELECT count(*) FROM outbox WHERE state = 'pending' AND claimed_by IS NOT NULL",
        );
        if n != "0" {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no send of the second wave was ever in flight"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    pg.stop();
    // While PostgreSQL is down the routers answer 503 and Alertmanager keeps the alerts.
    am.post_alerts(&postable(&outage, &iso(5)));
    let refused = |_: ()| {
        replicas
            .iter()
            .map(|r| {
                metric(
                    r,
                    "quantwatch_router_webhooks_received_total{outcome=\"store_error\"}",
                )
            })
            .sum::<f64>()
    };
    // Down until every alert of the outage wave was refused at least once (one webhook per
    // alert and replica): what reaches the robots then came through Alertmanager's retries.
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused(()) < outage.len() as f64 {
        assert!(
            Instant::now() < deadline,
            "the routers answered only {} webhooks with 503 while PostgreSQL was down; log:\n{}",
            refused(()),
            replicas[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    robots.set_mode(Mode::Normal);
    pg.start_again();
    let back = Instant::now();
    let all: Vec<String> = [&first[..], &second[..], &outage[..]].concat();
    robots.wait_all(&all, 0..3, Duration::from_secs(120));
    let page = time_to_page(&robots, &outage, back);
    wait_settled(&replicas[0], all.len() * 3, Duration::from_secs(60));
    assert_eq!(
        pg.psql("router", "SELECT count(*) FROM alert_events"),
        all.len().to_string(),
        "one stored event per alert, whatever Alertmanager redelivered"
    );
    let sends: f64 = replicas.iter().map(|r| sent_by(r, 3)).sum();
    assert_eq!(
        sends as usize,
        all.len() * 3,
        "sends counted by the two replicas"
    );
    assert_eq!(robots.refused(), 0, "requests the robots refused");
    report(
        "PostgreSQL restarted mid-storm, 2 replicas",
        all.len(),
        &robots.tally(&all),
        &format!(
            "notifications in flight when PostgreSQL stopped: {in_flight}; 503s answered during the outage: {}; time to page after PostgreSQL is back: {:.2} s",
            refused(()),
            page.as_secs_f64()
        ),
    );
}

/// Webhook bodies of `names` as Alertmanager posts them, firing since a fixed instant, each
/// alert with a description of `pad` bytes (to make a commit need new pages on disk).
fn webhook_body(group: &str, names: &[String], pad: usize) -> Value {
    let alerts = names
        .iter()
        .map(|n| {
            let mut a = common::alert(n, "firing", "2026-01-01T00:00:00Z", &[]);
            a["annotations"]["description"] = "x".repeat(pad).into();
            a
        })
        .collect();
    common::payload(group, alerts)
}

#[test]
fn sqlite_disk_full_answers_503_loses_nothing_and_resumes_when_space_returns() {
    let disk = SmallDisk::mount(16);
    let robots = StepRobots::webhooks(&["0s", "3s"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = router_config(dir.path(), &robots);
    let db = format!("sqlite://{}/router.db", disk.path().display());
    let env = [
        ("ROUTER_DATABASE_URL", db.as_str()),
        ("ROUTER_API_TOKEN", API),
    ];
    let mut app = App::start(BIN, &["--config", &cfg], &env);
    let (accepted, refused) = (names("DiskA", 20), names("DiskB", 20));
    let (s, body) = post_webhook(&app.url(), &webhook_body("a", &accepted, 0));
    assert_eq!(s, 200, "{body}");
    robots.wait_all(&accepted, 0..1, Duration::from_secs(30));
    let filler = disk.fill();
    // 20 alerts of 32 KiB each: more than the WAL holds, the commit needs new pages.
    let big = webhook_body("b", &refused, 32 * 1024);
    for attempt in 0..3 {
        let (s, body) = post_webhook(&app.url(), &big);
        assert_eq!(s, 503, "attempt {attempt} on a full disk: {body}");
        assert_eq!(
            body,
            json!({"error": "store_unavailable",
                   "reason": "the alert store's disk is full; nothing of this request was stored; retry"}),
            "a 503 says why in JSON"
        );
        if attempt == 0 {
            println!("chaos [SQLite disk full]: the webhook answered 503 {body}");
        }
    }
    app.child().assert_running();
    assert_eq!(app.get("/healthz").0, 200, "the router still answers");
    disk.free();
    let freed = Instant::now();
    // Alertmanager's retries, every 200 ms: intake resumes without a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        let (s, body) = post_webhook(&app.url(), &big);
        if s == 200 {
            assert_eq!(body["accepted"], json!(refused.len()), "{body}");
            break freed.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "intake did not resume within 30 s of the space coming back: {s} {body}; router log:\n{}",
            app.child().log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let all: Vec<String> = [&accepted[..], &refused[..]].concat();
    robots.wait_all(&all, 0..2, Duration::from_secs(60));
    let page = time_to_page(&robots, &refused, freed);
    wait_settled(&app, all.len() * 2, Duration::from_secs(30));
    assert_eq!(sent_by(&app, 2) as usize, all.len() * 2, "sends counted");
    assert_eq!(robots.refused(), 0, "requests the robots refused");
    report(
        "SQLite disk full",
        all.len(),
        &robots.tally(&all),
        &format!(
            "filler took {} KiB; intake resumed {:.2} s after space returned; time to page after that: {:.2} s",
            filler / 1024,
            resumed.as_secs_f64(),
            page.as_secs_f64()
        ),
    );
}

#[test]
fn one_of_two_alertmanagers_killed_mid_storm_every_page_arrives_once() {
    let robots = StepRobots::webhooks(&["0s", "4s"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = router_config(dir.path(), &robots);
    let db = format!("sqlite://{}/router.db", dir.path().display());
    let env = [
        ("ROUTER_DATABASE_URL", db.as_str()),
        ("ROUTER_API_TOKEN", API),
    ];
    let app = App::start(BIN, &["--config", &cfg], &env);
    let mut peers = Alertmanager::start_cluster(&am_config(&[&app], "1s"), 2);
    let (first, second, after) = (names("AmA", 20), names("AmB", 20), names("AmC", 20));
    for p in &peers {
        p.post_alerts(&postable(&first, &iso(5)));
    }
    robots.wait_all(&first, 0..1, Duration::from_secs(60));
    // Mid-storm: both peers hold the second wave in their group wait when one dies.
    for p in &peers {
        p.post_alerts(&postable(&second, &iso(5)));
    }
    peers[0].kill_9();
    let killed = Instant::now();
    // Prometheus' sends to the dead peer fail; the survivor gets the rest.
    peers[1].post_alerts(&postable(&after, &iso(5)));
    let all: Vec<String> = [&first[..], &second[..], &after[..]].concat();
    robots.wait_all(&all, 0..2, Duration::from_secs(90));
    let page = time_to_page(&robots, &[&second[..], &after[..]].concat(), killed);
    wait_settled(&app, all.len() * 2, Duration::from_secs(30));
    assert_eq!(sent_by(&app, 2) as usize, all.len() * 2, "sends counted");
    assert_eq!(robots.refused(), 0, "requests the robots refused");
    let dups = metric(
        &app,
        "quantwatch_router_webhooks_received_total{outcome=\"duplicate\"}",
    );
    report(
        "one of two Alertmanagers killed",
        all.len(),
        &robots.tally(&all),
        &format!(
            "webhooks the router recognised as duplicates: {dups}; time to page after the kill: {:.2} s",
            page.as_secs_f64()
        ),
    );
}

/// libfaketime's preload library (Debian package `libfaketime`), for whatever architecture.
fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.is_file());
    match found {
        Some(p) => p.display().to_string(),
        None => panic!(
            "libfaketime is not installed; install it with: apt-get install -y libfaketime \
             (or run scripts/test, which installs every test dependency)"
        ),
    }
}

/// The router's wall clock, stepped through libfaketime: `offset` ("+600", "+0") is written
/// to the file it re-reads on every call, atomically (a half-written file is no offset).
struct FakeClock {
    dir: tempfile::TempDir,
}

impl FakeClock {
    fn new() -> FakeClock {
        let c = FakeClock {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        c.set("+0");
        c
    }

    fn file(&self) -> String {
        self.dir.path().join("faketime").display().to_string()
    }

    fn set(&self, offset: &str) {
        let tmp = self.dir.path().join("faketime.new");
        std::fs::write(&tmp, format!("{offset}\n")).expect("write faketime");
        std::fs::rename(&tmp, self.file()).expect("rename faketime");
    }

    /// The environment that puts the router's `CLOCK_REALTIME` (and only it: tokio's timers
    /// and every pause run on `CLOCK_MONOTONIC`, as an NTP step leaves it) under this clock.
    fn env(&self, lib: &str) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), lib.into()),
            ("FAKETIME_TIMESTAMP_FILE".into(), self.file()),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ]
    }
}

/// How far ahead of this process's clock the router's clock was when it marked channel
/// `step{step}`'s notifications sent (its `sent_at`, by the API): proof that the faked clock
/// reached the router process. The largest over those rows, in seconds.
fn sent_ahead_s(app: &App, step: usize) -> i64 {
    let v: Value = reqwest::blocking::Client::new()
        .get(format!(
            "{}/api/v1/notifications?state=sent&limit=1000",
            app.url()
        ))
        .bearer_auth(API)
        .send()
        .expect("api")
        .json()
        .expect("api json");
    let now_ms = chrono::Utc::now().timestamp_millis();
    v["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["channel"] == format!("step{step}").as_str())
        .filter_map(|n| n["sent_at"].as_i64())
        .map(|t| (t - now_ms) / 1000)
        .max()
        .unwrap_or(0)
}

/// The wall clock stepped forward 10 minutes, then back 10 minutes (an NTP correction each
/// way), under a router whose chain has steps at 0 s, 10 s and 20 s. A step's due instant is
/// a wall-clock instant fixed when its chain is planned (shared by replicas, kept across
/// restarts), so:
/// - "fires twice": any (alert, step) reaching its robot more than once — never, in either
///   direction (a sent row is never sent again, whatever the clock says);
/// - "skipped": any (alert, step) never reaching its robot, or reaching it later than its due
///   instant by the router's clock plus 6 s. Stepped forward, the pending steps of the chains
///   planned before are due by the router's clock and go out at once; stepped back, a chain
///   planned after the correction keeps its 0/10/20 s schedule — the delivery loops' pauses
///   and send windows (held in memory) must not hold a channel for the 10 minutes of the step.
#[test]
fn wall_clock_stepped_forward_and_back_no_step_fires_twice_or_is_skipped() {
    let lib = libfaketime();
    let clock = FakeClock::new();
    let robots = StepRobots::dingtalk(&["0s", "10s", "20s"]);
    let delays = [0u64, 10, 20];
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = router_config(dir.path(), &robots);
    let db = format!("sqlite://{}/router.db", dir.path().display());
    let mut env: Vec<(String, String)> = clock.env(&lib);
    env.push(("ROUTER_DATABASE_URL".into(), db));
    env.push(("ROUTER_API_TOKEN".into(), API.into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = App::start(BIN, &["--config", &cfg], &env_ref);
    let (before, after) = (names("ClockA", 5), names("ClockB", 5));

    let (s, body) = post_webhook(&app.url(), &webhook_body("a", &before, 0));
    assert_eq!(s, 200, "{body}");
    let posted_before = Instant::now();
    robots.wait_all(&before, 0..1, Duration::from_secs(8));
    assert!(
        robots.pages().iter().all(|p| p.step == 0),
        "steps 1 and 2 went out before they were due: {:?}",
        robots.pages()
    );
    clock.set("+600");
    let forward = Instant::now();
    // Due by the router's clock now: out at once, early by the real clock.
    robots.wait_all(&before, 1..3, Duration::from_secs(15));
    let first = robots.first_pages();
    let out_after_step = before
        .iter()
        .flat_map(|a| (1..3).map(move |s| (s, a.clone())))
        .map(|k| first[&k].saturating_duration_since(forward))
        .max()
        .unwrap_or_default();
    let early = (posted_before + Duration::from_secs(delays[1]))
        .saturating_duration_since(first[&(1, before[0].clone())]);

    let ahead = sent_ahead_s(&app, 1);
    assert!(
        (590..=610).contains(&ahead),
        "the router's clock was {ahead} s ahead when it sent step 1, not 600: is libfaketime \
         interposing on the binary?"
    );
    // Back: libfaketime re-reads the file on every clock read, so the next one is corrected.
    clock.set("+0");
    let (s, body) = post_webhook(&app.url(), &webhook_body("b", &after, 0));
    assert_eq!(s, 200, "{body}");
    let posted_after = Instant::now();
    robots.wait_all(&after, 0..3, Duration::from_secs(40));
    let first = robots.first_pages();
    let mut worst_late = Duration::ZERO;
    for a in &after {
        for (step, delay) in delays.iter().enumerate() {
            let at = first[&(step, a.clone())].saturating_duration_since(posted_after);
            let due = Duration::from_secs(*delay);
            assert!(
                at + Duration::from_millis(500) >= due,
                "{a} step {step} went out {at:?} after the post, before its {due:?}"
            );
            assert!(
                at <= due + Duration::from_secs(6),
                "{a} step {step} went out {at:?} after the post, {due:?} due: held back"
            );
            worst_late = worst_late.max(at.saturating_sub(due));
        }
    }
    let all: Vec<String> = [&before[..], &after[..]].concat();
    wait_settled(&app, all.len() * 3, Duration::from_secs(30));
    assert_eq!(sent_by(&app, 3) as usize, all.len() * 3, "sends counted");
    assert_eq!(robots.refused(), 0, "requests the robots refused");
    report(
        "wall clock stepped +10 min, then -10 min",
        all.len(),
        &robots.tally(&all),
        &format!(
            "after the forward step the due steps went out within {:.2} s ({:.1} s early by the real clock); \
             after the step back a new chain's steps were at most {:.2} s late",
            out_after_step.as_secs_f64(),
            early.as_secs_f64(),
            worst_late.as_secs_f64()
        ),
    );
}
