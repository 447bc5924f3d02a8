//! Expected signals end to end: the dead man's switch with a real Prometheus (rules/watchdog.yml)
//! and Alertmanager, its deadline surviving kill -9 and firing once across two replicas on
//! PostgreSQL, one silent Alertmanager of two as a warning, and heartbeat monitors (period and
//! grace to within a second, a time window, resolve on the next heartbeat, the API, metric and
//! status page). Every page is read back from the DingTalk fake.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::fakes::dingtalk::DingTalkFake;
use testkit::{Alertmanager, App, Postgres, Prometheus};

const BIN: &str = env!("CARGO_BIN_EXE_quantwatch-alert-router");
const API: &str = "api-token-for-heartbeat-tests";
const HOOK: &str = "hook-token";

fn router_yaml(ding: &str, extra: &str) -> String {
    format!(
        "language: en\ntimezone: Asia/Shanghai\ndelivery:\n  poll_interval: 200ms\n  lease: 2s\nchannels:\n  - type: dingtalk\n    name: ding\n    webhook_url: \"{ding}\"\n    secret: SECdm\nroute:\n  channels: [ding]\n{extra}"
    )
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

fn heartbeats(url: &str) -> Value {
    client()
        .get(format!("{url}/api/v1/heartbeats"))
        .bearer_auth(API)
        .send()
        .expect("heartbeats api")
        .json()
        .expect("heartbeats json")
}

/// A Watchdog webhook as Alertmanager `peer` sends it.
fn watchdog(url: &str, peer: &str) {
    let body = json!({
        "version": "4", "groupKey": "{}:{alertname=\"Watchdog\"}", "status": "firing",
        "receiver": "router", "externalURL": peer,
        "alerts": [{"status": "firing", "labels": {"alertname": "Watchdog", "severity": "info"},
                    "annotations": {"summary": "always firing"},
                    "startsAt": "2026-11-30T00:00:00Z", "fingerprint": "watchdog"}]});
    let resp = client()
        .post(format!("{url}/webhook/alertmanager"))
        .bearer_auth(HOOK)
        .json(&body)
        .send()
        .expect("webhook");
    assert_eq!(resp.status().as_u16(), 200);
}

/// The binary's config file (dead man's deadline 3 s) in a temp dir the caller keeps.
fn binary_config(fake: &DingTalkFake) -> (tempfile::TempDir, String) {
    let state = tempfile::tempdir().expect("temp dir");
    let cfg = state.path().join("router.yml");
    std::fs::write(
        &cfg,
        router_yaml(&fake.webhook_url(), "deadman:\n  deadline: 3s\n"),
    )
    .expect("write config");
    let arg = cfg.display().to_string();
    (state, arg)
}

/// The Watchdog heard again on `url` after one page: resolved, once.
fn heard_again_resolves_once(fake: &DingTalkFake, url: &str) {
    watchdog(url, "http://am-a:9093");
    assert_eq!(
        fake.server.wait_accepted(2, Duration::from_secs(5)).len(),
        2
    );
    std::thread::sleep(Duration::from_secs(2));
    let texts = fake.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[1].contains("RESOLVED"), "{}", texts[1]);
}

/// `HH:MM` of an RFC 3339 time (`2026-11-30T09:31:02+08:00`).
fn hh_mm(rfc: &str) -> &str {
    &rfc[11..16]
}

#[test]
fn deadman_pages_when_alertmanager_stops_and_resolves_when_it_is_back() {
    let rt = common::runtime();
    let fake = DingTalkFake::start("dm-token", Some("SECdm"));
    let r = rt.block_on(common::start(
        &router_yaml(&fake.webhook_url(), "deadman:\n  deadline: 4s\n"),
        &[("ROUTER_WEBHOOK_TOKEN", HOOK), ("ROUTER_API_TOKEN", API)],
    ));
    let mut am = Alertmanager::start(&format!(
        r#"route:
  receiver: router
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: router
    webhook_configs:
      - url: "{}/webhook/alertmanager"
        send_resolved: true
        http_config:
          authorization:
            credentials: {HOOK}
"#,
        r.url
    ));
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rules/watchdog.yml"
    ))
    .expect("rules/watchdog.yml");
    let _prom = Prometheus::start_with_args(
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules/watchdog.yml]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{}\"]\n",
            am.url().trim_start_matches("http://")
        ),
        &[("rules/watchdog.yml", &rules)],
        &["--rules.alert.resend-delay=1s"],
    );
    // The Watchdog arrives through Alertmanager and is heard, per peer; it is never forwarded.
    let heard = testkit::wait_until(Duration::from_secs(30), || {
        heartbeats(&r.url)["deadman"]["alertmanagers"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    assert!(heard, "{:#}", heartbeats(&r.url));
    // The router started expecting the Watchdog before Prometheus and Alertmanager were up:
    // with a 4 s deadline it may have paged meanwhile, and resolved at the first Watchdog.
    // From here on the pipeline runs; the Watchdog itself is never forwarded.
    std::thread::sleep(Duration::from_secs(2));
    let base = fake.server.accepted().len();
    assert!(
        base == 0 || (base == 2 && fake.texts()[1].contains("RESOLVED")),
        "{:?}",
        fake.texts()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fake.server.accepted().len(), base, "{:?}", fake.texts());

    am.stop();
    let stopped = Instant::now();
    let got = fake.server.wait_accepted(base + 1, Duration::from_secs(15));
    assert_eq!(got.len(), base + 1, "no page after Alertmanager stopped");
    let paged_after = fake.server.received()[base].at - stopped;
    eprintln!("dead man's page {paged_after:?} after Alertmanager stopped");
    assert!(paged_after <= Duration::from_secs(4 + 5), "{paged_after:?}");
    let text = &fake.texts()[base];
    let any = heartbeats(&r.url)["deadman"]["alertmanagers"]
        .as_array()
        .expect("peers")
        .iter()
        .find(|p| p["alertmanager"] == "*")
        .cloned()
        .expect("the any-peer entry");
    assert_eq!(any["status"], "missing");
    let last = any["last_seen"].as_str().expect("last_seen");
    assert!(last.ends_with("+08:00"), "{last}");
    assert!(text.contains("MonitoringPipelineSilent"), "{text}");
    assert!(
        text.contains(&format!(
            "the monitoring pipeline is silent since {} CST",
            hh_mm(last)
        )),
        "{text}"
    );
    // One Alertmanager: its silence is the pipeline's; no separate peer warning, no repeat.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fake.server.accepted().len(), base + 1, "{:?}", fake.texts());

    am.start_again();
    let got = fake.server.wait_accepted(base + 2, Duration::from_secs(20));
    assert_eq!(
        got.len(),
        base + 2,
        "not resolved after Alertmanager came back"
    );
    let text = &fake.texts()[base + 1];
    assert!(
        text.contains("RESOLVED") && text.contains("MonitoringPipelineSilent"),
        "{text}"
    );
    rt.block_on(r.shutdown());
}

#[test]
fn kill_9_during_the_silence_still_pages_once_after_restart() {
    let fake = DingTalkFake::start("k9-token", Some("SECdm"));
    let (state, cfg_arg) = binary_config(&fake);
    let db = format!("sqlite://{}/router.db", state.path().display());
    let env = [
        ("ROUTER_DATABASE_URL", db.as_str()),
        ("ROUTER_API_TOKEN", API),
        ("ROUTER_WEBHOOK_TOKEN", HOOK),
    ];
    let mut app = App::start(BIN, &["--config", &cfg_arg], &env);
    watchdog(&app.url(), "http://am-a:9093");
    let heard = Instant::now();
    app.kill_9();
    drop(app);
    // The deadline passes while the router is dead.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(heard.elapsed()));
    assert_eq!(fake.server.received().len(), 0);
    let restarted = Instant::now();
    app = App::start(BIN, &["--config", &cfg_arg], &env);
    let got = fake.server.wait_accepted(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "log:\n{}", app.log());
    eprintln!(
        "paged {:?} after the restart",
        fake.server.received()[0].at - restarted
    );
    assert!(fake.texts()[0].contains("MonitoringPipelineSilent"));
    // Killed again once the page is recorded as sent, and started again: not paged twice.
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::sent_count(&app.url(), API) < 1 {
        assert!(Instant::now() < deadline, "page never marked sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    app.kill_9();
    drop(app);
    app = App::start(BIN, &["--config", &cfg_arg], &env);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fake.server.accepted().len(), 1, "{:?}", fake.texts());
    heard_again_resolves_once(&fake, &app.url());
}

#[test]
fn two_replicas_on_postgres_page_once_and_resolve_once() {
    let pg = Postgres::start();
    let db = pg.create_database("router");
    let fake = DingTalkFake::start("pg-token", Some("SECdm"));
    let (_state, cfg_arg) = binary_config(&fake);
    let env = [
        ("ROUTER_DATABASE_URL", db.as_str()),
        ("ROUTER_API_TOKEN", API),
        ("ROUTER_WEBHOOK_TOKEN", HOOK),
    ];
    let a = App::start(BIN, &["--config", &cfg_arg], &env);
    let b = App::start(BIN, &["--config", &cfg_arg], &env);
    watchdog(&a.url(), "http://am-a:9093");
    assert_eq!(
        fake.server.wait_accepted(1, Duration::from_secs(8)).len(),
        1
    );
    // Both replicas evaluate every tick; the deadline passed for both.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fake.server.accepted().len(), 1, "{:?}", fake.texts());
    assert!(fake.texts()[0].contains("MonitoringPipelineSilent"));
    // Heard by the other replica: resolved once.
    heard_again_resolves_once(&fake, &b.url());
}

#[test]
fn one_silent_alertmanager_of_two_warns_and_both_silent_page() {
    let rt = common::runtime();
    let fake = DingTalkFake::start("ha-token", Some("SECdm"));
    let r = rt.block_on(common::start(
        &router_yaml(&fake.webhook_url(), "deadman:\n  deadline: 3s\n"),
        &[("ROUTER_WEBHOOK_TOKEN", HOOK), ("ROUTER_API_TOKEN", API)],
    ));
    watchdog(&r.url, "http://am-a:9093");
    watchdog(&r.url, "http://am-b:9093");
    // am-a keeps reporting, am-b has died.
    let start = Instant::now();
    while fake.server.accepted().is_empty() && start.elapsed() < Duration::from_secs(8) {
        watchdog(&r.url, "http://am-a:9093");
        std::thread::sleep(Duration::from_millis(500));
    }
    let texts = fake.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("AlertmanagerSilent")
            && texts[0].contains("Alertmanager http://am-b:9093 is silent since")
            && texts[0].contains("warning"),
        "{}",
        texts[0]
    );
    // Now am-a dies too: the page.
    let got = fake.server.wait_accepted(2, Duration::from_secs(8));
    assert_eq!(got.len(), 2, "{:?}", fake.texts());
    let texts = fake.texts();
    assert!(
        texts[1].contains("MonitoringPipelineSilent"),
        "{}",
        texts[1]
    );
    rt.block_on(r.shutdown());
}

fn hhmm_utc(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%H:%M").to_string()
}

#[test]
fn heartbeat_monitors_honour_period_grace_and_window_and_resolve_on_the_next_beat() {
    let rt = common::runtime();
    let ding = DingTalkFake::start("hb-token", Some("SECdm"));
    let other = DingTalkFake::start("hb-other", Some("SECo"));
    let now = chrono::Utc::now();
    let open_from = now - chrono::Duration::minutes(10);
    let open_to = now + chrono::Duration::minutes(20);
    let closed_from = now + chrono::Duration::hours(2);
    let closed_to = now + chrono::Duration::hours(3);
    let yaml = format!(
        r#"language: en
timezone: UTC
delivery:
  poll_interval: 200ms
channels:
  - type: dingtalk
    name: ding
    webhook_url: "{}"
    secret: SECdm
  - type: dingtalk
    name: other
    webhook_url: "{}"
    secret: SECo
route:
  channels: [other]
time_windows:
  open-now:
    timezone: UTC
    ranges: ["{}-{}"]
  closed-now:
    timezone: UTC
    ranges: ["{}-{}"]
heartbeats:
  - name: feed
    period: 3s
    grace: 2s
    labels: {{team: desk}}
    route:
      channels: [ding]
  - name: session-feed
    period: 2s
    window: open-now
  - name: night-job
    period: 1s
    window: closed-now
"#,
        ding.webhook_url(),
        other.webhook_url(),
        hhmm_utc(open_from),
        hhmm_utc(open_to),
        hhmm_utc(closed_from),
        hhmm_utc(closed_to),
    );
    let r = rt.block_on(common::start(&yaml, &[("ROUTER_API_TOKEN", API)]));
    let beat = |name: &str| {
        client()
            .post(format!("{}/api/v1/heartbeats/{name}", r.url))
            .bearer_auth(API)
            .send()
            .expect("heartbeat")
    };
    let before = Instant::now();
    let resp = beat("feed");
    let answered = Instant::now();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().expect("json");
    assert_eq!(body["name"], "feed");
    assert!(
        body["last_seen"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00")),
        "{body}"
    );

    // Period 3 s + grace 2 s after the beat: paged, not a moment before, within a second.
    assert_eq!(
        ding.server.wait_accepted(1, Duration::from_secs(8)).len(),
        1
    );
    let at = ding.server.received()[0].at;
    eprintln!("feed paged {:?} after its heartbeat", at - before);
    assert!(at >= before + Duration::from_secs(5), "{:?}", at - before);
    assert!(
        at <= answered + Duration::from_secs(6),
        "{:?}",
        at - answered
    );
    let text = &ding.texts()[0];
    assert!(
        text.contains("HeartbeatMissing")
            && text.contains("heartbeat feed missing since")
            && text.contains("team=desk"),
        "{text}"
    );
    // Inside its window the session feed pages too (through the main route), never heard.
    assert_eq!(
        other.server.wait_accepted(1, Duration::from_secs(5)).len(),
        1
    );
    assert!(
        other.texts()[0].contains("heartbeat session-feed missing since"),
        "{}",
        other.texts()[0]
    );

    // The next beat resolves it (GET, as curl in cron does, with the bearer).
    let beat_again = Instant::now();
    let resp = client()
        .get(format!("{}/api/v1/heartbeats/feed", r.url))
        .bearer_auth(API)
        .send()
        .expect("get heartbeat");
    assert_eq!(resp.status().as_u16(), 200);
    let feed = |list: &Value| {
        list["heartbeats"]
            .as_array()
            .expect("list")
            .iter()
            .find(|h| h["name"] == "feed")
            .cloned()
            .expect("feed listed")
    };
    assert_eq!(feed(&heartbeats(&r.url))["status"], "ok");
    // (A DingTalk robot takes one message per 3 s: the resolve may wait for its slot.)
    assert_eq!(
        ding.server.wait_accepted(2, Duration::from_secs(8)).len(),
        2
    );
    eprintln!(
        "feed resolved {:?} after the next heartbeat",
        ding.server.received()[1].at - beat_again
    );
    let text = &ding.texts()[1];
    assert!(
        text.contains("RESOLVED") && text.contains("HeartbeatMissing"),
        "{text}"
    );

    // Outside its window the night job is never missed, however long silent.
    let list = heartbeats(&r.url);
    let by_name = |n: &str| {
        list["heartbeats"]
            .as_array()
            .expect("list")
            .iter()
            .find(|h| h["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} in {list:#}"))
    };
    assert_eq!(by_name("night-job")["status"], "outside_window");
    assert_eq!(by_name("session-feed")["status"], "missing");
    assert_eq!(by_name("feed")["period_seconds"], 3.0);
    assert_eq!(by_name("feed")["grace_seconds"], 2.0);
    assert_eq!(list["deadman"], Value::Null);
    assert!(
        other.texts().iter().all(|t| !t.contains("night-job")),
        "{:?}",
        other.texts()
    );
    let last_seen = chrono::DateTime::parse_from_rfc3339(
        by_name("feed")["last_seen"].as_str().expect("last_seen"),
    )
    .expect("rfc 3339");
    let metric = rt
        .block_on(r.metric("quantwatch_router_heartbeat_last_seen_seconds{name=\"feed\"}"))
        .expect("metric");
    assert!(
        (metric - last_seen.timestamp() as f64).abs() < 1.0,
        "{metric} vs {last_seen}"
    );

    // Unknown names, GET without the bearer and no credentials are refused with a reason.
    let resp = beat("nope");
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = resp.json().expect("json");
    assert_eq!(
        body["reason"],
        "no heartbeat monitor is named \"nope\" (see heartbeats in the router configuration)"
    );
    let resp = client()
        .post(format!("{}/api/v1/heartbeats/feed", r.url))
        .send()
        .expect("anonymous");
    assert_eq!(resp.status().as_u16(), 401);

    // The status page lists them with their last-seen time.
    let page = client()
        .get(format!("{}/", r.url))
        .bearer_auth(API)
        .send()
        .expect("status page")
        .text()
        .expect("page");
    assert!(page.contains("<h2>Heartbeats</h2>"), "{page}");
    for n in ["feed", "session-feed", "night-job", "outside_window"] {
        assert!(page.contains(n), "{n}: {page}");
    }
    rt.block_on(r.shutdown());
}

#[test]
fn unknown_routes_windows_and_policies_of_monitors_are_named_with_file_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("router.yml");
    std::fs::write(
        &path,
        "channels:\n  - type: log\n    name: log\ndeadman:\n  deadline: 0s\n  route:\n    channels: [log]\n    escalation: nobody\nheartbeats:\n  - name: feed\n    period: 1m\n    window: lunch\n    route:\n      channels: [nope]\n  - name: eod\n    period: 1d\n    route: {}\n",
    )
    .expect("write");
    let env: std::collections::HashMap<String, String> = Default::default();
    let errs = quantwatch_alert_router::app::config::load(Some(&path), &env)
        .expect_err("invalid config")
        .0;
    let file = path.display().to_string();
    let got: Vec<(String, String)> = errs
        .iter()
        .inspect(|p| assert_eq!(p.file, file))
        .map(|p| (p.key.clone(), p.reason.clone()))
        .collect();
    for want in [
        ("deadman.deadline", "must be greater than zero"),
        (
            "deadman.route.escalation",
            "no escalation policy is named \"nobody\" (see escalation_policies)",
        ),
        (
            "heartbeats[0].window",
            "no time window is named \"lunch\" (see time_windows)",
        ),
        (
            "heartbeats[0].route.channels[0]",
            "no channel is named \"nope\"",
        ),
        (
            "heartbeats[1].route.channels",
            "names no channel and no escalation: its alerts would reach nobody",
        ),
    ] {
        assert!(
            got.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {got:#?}"
        );
    }
    assert_eq!(got.len(), 5, "{got:#?}");
}
