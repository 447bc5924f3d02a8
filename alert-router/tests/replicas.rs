//! Two router replicas (real binaries) on one PostgreSQL, fed by a two-peer Alertmanager
//! cluster on loopback: every escalation step reaches its fake channel exactly once, and when
//! the replica holding a step's claim is killed with -9 mid-send, the other replica takes the
//! claim over after its lease and finishes the chain.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::fakes::Mode;
use testkit::fakes::slack::SlackFake;
use testkit::{Alertmanager, App, Postgres};

const BIN: &str = env!("CARGO_BIN_EXE_quantwatch-alert-router");

fn iso(secs_ago: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs_ago))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn two_replicas_send_each_step_once_and_survive_a_kill_9_mid_chain() {
    let pg = Postgres::start();
    let db = pg.create_database("router");
    let fakes: Vec<SlackFake> = ["T0/B0/s0", "T1/B1/s1", "T2/B2/s2"]
        .iter()
        .map(|p| SlackFake::start(p))
        .collect();
    let state = tempfile::tempdir().expect("temp dir");
    let cfg = state.path().join("router.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"delivery:
  lease: 2s
  poll_interval: 200ms
channels:
  - type: slack
    name: s0
    webhook_url: "{}"
  - type: slack
    name: s1
    webhook_url: "{}"
    timeout: 60s
  - type: slack
    name: s2
    webhook_url: "{}"
route:
  channels: [s0]
  escalation: chain
escalation_policies:
  chain:
    steps:
      - delay: 0s
        channels: [s0]
      - delay: 4s
        channels: [s1]
      - delay: 8s
        channels: [s2]
"#,
            fakes[0].webhook_url(),
            fakes[1].webhook_url(),
            fakes[2].webhook_url()
        ),
    )
    .expect("write config");
    let cfg_arg = cfg.display().to_string();
    let env = [("ROUTER_DATABASE_URL", db.as_str())];
    let mut replicas = vec![
        Some(App::start(BIN, &["--config", &cfg_arg], &env)),
        Some(App::start(BIN, &["--config", &cfg_arg], &env)),
    ];
    let urls: Vec<String> = replicas
        .iter()
        .map(|r| r.as_ref().expect("running").url())
        .collect();
    let am = format!(
        r#"route:
  receiver: routers
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: routers
    webhook_configs:
      - url: "{}/webhook/alertmanager"
        send_resolved: true
      - url: "{}/webhook/alertmanager"
        send_resolved: true
"#,
        urls[0], urls[1]
    );
    let peers = Alertmanager::start_cluster(&am, 2);
    // The step-1 channel hangs: whichever replica claims step 1 is stuck in its send.
    fakes[1].server.set_mode(Mode::Hang);
    let alert = json!([{
        "labels": {"alertname": "Failover", "severity": "critical"},
        "annotations": {"summary": "replica failover test"},
        "startsAt": iso(5),
    }]);
    for p in &peers {
        p.post_alerts(&alert);
    }
    assert_eq!(
        fakes[0]
            .server
            .wait_accepted(1, Duration::from_secs(30))
            .len(),
        1
    );
    // Find the replica holding step 1's claim, then kill it with -9 mid-send.
    let deadline = Instant::now() + Duration::from_secs(20);
    let holder = loop {
        let owner = pg.psql(
            "router",
            "SELECT COALESCE(claimed_by, '') FROM outbox WHERE channel = 's1' AND state = 'pending'",
        );
        let owner = owner.trim().to_string();
        let found = replicas.iter().position(|r| {
            r.as_ref()
                .is_some_and(|a| owner.contains(&format!("-{}-", a.child_pid())))
        });
        if let Some(i) = found {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "nobody claimed step 1 ({owner:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    replicas[holder].as_ref().expect("running").kill_9();
    replicas[holder] = None;
    fakes[1].server.set_mode(Mode::Normal);
    // The survivor takes step 1 over after the 2 s lease, then sends step 2.
    assert_eq!(
        fakes[1]
            .server
            .wait_accepted(1, Duration::from_secs(20))
            .len(),
        1
    );
    assert_eq!(
        fakes[2]
            .server
            .wait_accepted(1, Duration::from_secs(20))
            .len(),
        1
    );
    // Both peers delivered to both replicas; still exactly once per step.
    std::thread::sleep(Duration::from_secs(3));
    for (i, f) in fakes.iter().enumerate() {
        assert_eq!(f.server.accepted().len(), 1, "channel s{i}");
    }
    assert_eq!(
        pg.psql(
            "router",
            "SELECT count(*) FROM outbox WHERE kind = 'escalate' AND state = 'sent'"
        )
        .trim(),
        "3"
    );
    drop(replicas);
}
