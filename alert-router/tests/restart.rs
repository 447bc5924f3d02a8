//! Restart safety with the real binary on SQLite: kill -9 with escalation steps pending, start
//! again, and every step that fell due while the router was dead fires within 1 s of the
//! restart, none is lost, and the step already sent is not sent again.

mod common;

use std::time::{Duration, Instant};

use testkit::App;
use testkit::fakes::slack::SlackFake;

const BIN: &str = env!("CARGO_BIN_EXE_quantwatch-alert-router");
const API: &str = "api";

#[test]
fn kill_9_with_steps_pending_then_restart_fires_each_due_step_once_within_1s() {
    let first = SlackFake::start("T1/B1/one");
    let second = SlackFake::start("T2/B2/two");
    let state = tempfile::tempdir().expect("temp dir");
    let cfg = state.path().join("router.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"channels:
  - type: slack
    name: first
    webhook_url: "{}"
  - type: slack
    name: second
    webhook_url: "{}"
route:
  channels: [first]
  escalation: chain
escalation_policies:
  chain:
    steps:
      - delay: 0s
        channels: [first]
      - delay: 3s
        channels: [first]
      - delay: 4s
        channels: [second]
"#,
            first.webhook_url(),
            second.webhook_url()
        ),
    )
    .expect("write config");
    let db = format!("sqlite://{}/router.db", state.path().display());
    let cfg_arg = cfg.display().to_string();
    let env = [
        ("ROUTER_DATABASE_URL", db.as_str()),
        ("ROUTER_API_TOKEN", API),
    ];
    let mut app = App::start(BIN, &["--config", &cfg_arg], &env);
    let body = serde_json::json!({"version": "4", "groupKey": "g", "alerts": [{
        "status": "firing", "labels": {"alertname": "Restart", "severity": "critical"},
        "annotations": {"summary": "s"}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "fp-restart"}]});
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/webhook/alertmanager", app.url()))
        .json(&body)
        .send()
        .expect("webhook");
    assert_eq!(resp.status().as_u16(), 200);
    let posted = Instant::now();
    assert_eq!(
        first.server.wait_accepted(1, Duration::from_secs(5)).len(),
        1
    );
    // Step 0 is recorded as sent before the kill (so it must never come again).
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::sent_count(&app.url(), API) < 1 {
        assert!(Instant::now() < deadline, "step 0 never marked sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        posted.elapsed() < Duration::from_secs(3),
        "too slow to test"
    );
    app.kill_9();
    drop(app);
    // Both remaining steps fall due while the router is dead.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(posted.elapsed()));
    assert_eq!(first.server.accepted().len(), 1);
    assert_eq!(second.server.accepted().len(), 0);

    // From the moment the process is spawned, not from when it answers /healthz: its start-up
    // (opening the store, migrations, binding) is part of the second it has.
    let restarted_at = Instant::now();
    app = App::start(BIN, &["--config", &cfg_arg], &env);
    eprintln!(
        "restarted router healthy {:?} after spawn",
        restarted_at.elapsed()
    );
    let a = first.server.wait_accepted(2, Duration::from_secs(5));
    let b = second.server.wait_accepted(1, Duration::from_secs(5));
    assert_eq!((a.len(), b.len()), (2, 1), "log:\n{}", app.log());
    for r in first
        .server
        .received()
        .iter()
        .skip(1)
        .chain(second.server.received().iter())
    {
        let after = r.at.saturating_duration_since(restarted_at);
        eprintln!("a due step fired {after:?} after the restart");
        assert!(
            r.at >= restarted_at && after <= Duration::from_secs(1),
            "a due step fired {after:?} after the restarted process was spawned"
        );
    }
    // Nothing more: no step lost, none repeated.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(first.server.accepted().len(), 2);
    assert_eq!(second.server.accepted().len(), 1);
    assert_eq!(common::sent_count(&app.url(), API), 3);
}
