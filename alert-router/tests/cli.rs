//! The binary: check-config (exit 64 with every problem), test-send, SIGHUP reload that keeps
//! the old config when the new one is invalid, SIGTERM that exits 0, zero-config start.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::fakes::dingtalk::DingTalkFake;

const BIN: &str = env!("CARGO_BIN_EXE_quantwatch-alert-router");

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig}");
}

fn wait_http(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if reqwest::blocking::get(url).is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn post_alert(base: &str, name: &str) -> u16 {
    let body = serde_json::json!({"version": "4", "groupKey": "g", "alerts": [{
        "status": "firing", "labels": {"alertname": name, "severity": "critical"},
        "annotations": {"summary": format!("{name} summary")}, "startsAt": "2026-01-01T00:00:00Z"}]});
    reqwest::blocking::Client::new()
        .post(format!("{base}/webhook/alertmanager"))
        .json(&body)
        .send()
        .expect("post")
        .status()
        .as_u16()
}

fn ding_yaml(url: &str) -> String {
    format!(
        "language: en\nchannels:\n  - type: dingtalk\n    name: ding\n    webhook_url: \"{url}\"\n    secret: SECcli\nroute:\n  channels: [ding]\n"
    )
}

#[test]
fn check_config_exits_64_naming_file_key_and_reason_for_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "delivery:\n  retry_max: forever\nchannels:\n  - type: wecom\n    name: wx\n    webhook_url: \"http://x/send\"\n  - type: email\n    name: mail\n    host: smtp\n    tls: starttls\n    from: nobody\n    to: []\nroute:\n  channels: [wx, pager]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for expect in [
        format!("{file}: delivery.retry_max: \"forever\" is not a duration"),
        format!("{file}: channels[0] (wx).webhook_url: has no key query parameter"),
        format!("{file}: channels[1] (mail).from: \"nobody\" is not an email address"),
        format!("{file}: channels[1] (mail).to: needs at least one recipient"),
        format!("{file}: route.channels[1]: no channel is named \"pager\""),
    ] {
        assert!(err.contains(&expect), "missing {expect:?} in:\n{err}");
    }
    assert!(err.contains("5 problem(s)"), "{err}");

    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        ding_yaml("https://oapi.dingtalk.com/robot/send?access_token=${DT_TOKEN:-x}"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An unset variable without a default is a problem too.
    std::fs::write(
        &good,
        ding_yaml("https://oapi.dingtalk.com/robot/send?access_token=${DT_TOKEN_UNSET_X}"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DT_TOKEN_UNSET_X is not set"));
}

#[test]
fn check_config_and_serve_refuse_empty_and_short_ack_secrets_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    let file = path.display().to_string();
    let short = "only-31-bytes-of-secret-xxxxxxx";
    for (text, expect) in [
        (
            "ack_secret: \"${ACK_SECRET_UNSET_X:-}\"\n".to_string(),
            format!("{file}: ack_secret: is empty"),
        ),
        (
            format!("ack_secret: \"{short}\"\n"),
            format!("{file}: ack_secret: is 31 bytes; a signing secret needs at least 32"),
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        for args in [&["check-config"][..], &[][..]] {
            let out = Command::new(BIN)
                .args(args)
                .arg("--config")
                .arg(&path)
                .env("ROUTER_LISTEN_ADDRESS", "127.0.0.1:0")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{args:?} {text}: {err}");
            assert!(err.contains(&expect), "missing {expect:?} in:\n{err}");
            assert!(!err.contains(short), "the secret leaked: {err}");
        }
    }
    // From the environment: named as the variable, value not shown.
    let out = Command::new(BIN)
        .arg("check-config")
        .env("ROUTER_ACK_SECRET", short)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("(environment): ROUTER_ACK_SECRET: is 31 bytes"),
        "{err}"
    );
    assert!(!err.contains(short), "{err}");
}

#[test]
fn test_send_reaches_the_channel_and_names_unknown_ones() {
    let fake = DingTalkFake::start("cli-token", Some("SECcli"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    std::fs::write(&path, ding_yaml(&fake.webhook_url())).unwrap();
    let out = Command::new(BIN)
        .args(["test-send", "--channel", "ding", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let texts = fake.texts();
    assert_eq!(texts.len(), 1);
    assert!(
        texts[0].contains("QuantwatchTestNotification"),
        "{}",
        texts[0]
    );
    let out = Command::new(BIN)
        .args(["test-send", "--channel", "nope", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no channel named \"nope\"; configured: ding")
    );
}

#[test]
fn sighup_reloads_keeps_old_config_when_invalid_and_sigterm_exits_0() {
    let fake = DingTalkFake::start("hup-token", Some("SECcli"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    std::fs::write(&path, "channels:\n  - type: log\n    name: log\n").unwrap();
    let port = testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{port}"))
        .env(
            "ROUTER_DATABASE_URL",
            format!("sqlite://{}/state/router.db", dir.path().display()),
        )
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_http(&format!("{base}/healthz"), Duration::from_secs(20)),
        "router started"
    );
    assert_eq!(post_alert(&base, "BeforeReload"), 200);

    let started = reload_metrics(&base);
    assert_eq!(started.0, 1.0, "the start counts as a successful load");
    assert!(started.1 > 1.5e9, "a Unix time: {}", started.1);

    std::fs::write(&path, ding_yaml(&fake.webhook_url())).unwrap();
    signal(&child, "HUP");
    let reloaded = wait_reload(&base, "the reload after SIGHUP", |m| m.1 > started.1);
    assert_eq!(reloaded.0, 1.0);
    assert_eq!(post_alert(&base, "AfterReload"), 200);
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "the reloaded route delivers to DingTalk");
    assert!(fake.texts()[0].contains("AfterReload"));

    std::fs::write(&path, "channels:\n  - type: carrier-pigeon\n").unwrap();
    signal(&child, "HUP");
    wait_reload(&base, "the refused reload after SIGHUP", |m| m.0 == 0.0);
    assert_eq!(post_alert(&base, "AfterBadReload"), 200);
    let got = fake.server.wait_accepted(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2, "the previous config stays in force");
    assert!(fake.texts()[1].contains("AfterBadReload"));
    assert_eq!(
        reload_metrics(&base),
        (0.0, reloaded.1),
        "a refused reload shows, and the configuration in force keeps its load time"
    );

    signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "router did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("reload refused; the previous configuration stays in force"),
        "{log}"
    );
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(!log.contains("SECcli"), "secrets never logged");
}

#[test]
fn zero_config_start_keeps_state_under_data_and_logs_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("ROUTER_DATABASE_URL")
        .env_remove("ROUTER_CONFIG")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_http(
        &format!("{base}/readyz"),
        Duration::from_secs(20)
    ));
    assert_eq!(post_alert(&base, "ZeroConfig"), 200);
    // The log channel has written the notification once it counts as sent.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = testkit::http_get(&format!("{base}/metrics"));
        if metrics.lines().any(|l| {
            l.starts_with("quantwatch_router_notifications_total{")
                && l.contains("outcome=\"sent\"")
                && l.ends_with(" 1")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the notification was not sent within 20 s: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(dir.path().join("data/router.db").exists());
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("notification") && log.contains("ZeroConfig"),
        "{log}"
    );
}

/// [`reload_metrics`] once `done` holds for them (a reload has been processed); fails naming
/// `what` after 20 s.
fn wait_reload(base: &str, what: &str, done: impl Fn(&(f64, f64)) -> bool) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = reload_metrics(base);
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within 20 s: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `quantwatch_router_config_last_reload_successful` and `…_success_timestamp_seconds`.
fn reload_metrics(base: &str) -> (f64, f64) {
    let (status, body) = testkit::http_get(&format!("{base}/metrics"));
    assert_eq!(status, 200, "{body}");
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
            .parse()
            .unwrap()
    };
    (
        value("quantwatch_router_config_last_reload_successful"),
        value("quantwatch_router_config_last_reload_success_timestamp_seconds"),
    )
}
