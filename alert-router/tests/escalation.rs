//! Escalation policy timing with a controllable clock: the real SQLite store is driven with
//! explicit `now` values (intake, claim, ack all take the time), so a 15-minute chain is checked
//! to the millisecond without waiting.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use quantwatch_alert_router::app::config::{self, Config};
use quantwatch_alert_router::core::model::{AlertEvent, Status};
use quantwatch_alert_router::plan::routing::route_event;
use quantwatch_alert_router::store::{AckOutcome, Store};

const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;

const POLICY_YAML: &str = r#"
channels:
  - type: log
    name: ding
  - type: log
    name: mail
  - type: log
    name: phone
  - type: log
    name: other
route:
  channels: [other]
  routes:
    - matchers: ['severity="critical"']
      channels: [ding]
      escalation: critical
escalation_policies:
  critical:
    steps:
      - delay: 0s
        channels: [ding]
      - delay: 5m
        channels: [ding, mail]
        mentions:
          ding: ["13800000000"]
      - delay: 15m
        channels: [phone]
"#;

struct Fixture {
    store: Arc<dyn Store>,
    cfg: Config,
    _dir: tempfile::TempDir,
}

async fn fixture(yaml: &str) -> Fixture {
    fixture_on(yaml, None).await
}

/// The same fixture on another store URL (PostgreSQL).
async fn fixture_on(yaml: &str, url: Option<String>) -> Fixture {
    let (cfg, store, _, dir) = common::config_and_store(yaml, url).await;
    Fixture {
        store,
        cfg,
        _dir: dir,
    }
}

fn event(fp: &str, status: &str, starts_at: i64, severity: &str) -> AlertEvent {
    AlertEvent {
        group_key: "{}:{alertname=\"X\"}".into(),
        fingerprint: fp.into(),
        status: Status::parse(status).expect("firing or resolved"),
        labels: [("alertname", "X"), ("severity", severity)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary".to_string(), "disk full".to_string())].into(),
        starts_at,
        ends_at: (status == "resolved").then_some(starts_at + 1),
        generator_url: None,
        receiver: Some("router".into()),
    }
}

/// (channel, kind, step, status, mentions) of one delivered row.
type Sent = (String, String, Option<i64>, String, Vec<String>);

impl Fixture {
    async fn post(&self, ev: AlertEvent, now: i64) -> bool {
        let routed = route_event(&self.cfg.plan, ev, now);
        self.store.ingest(&[routed], now).await.expect("ingest")[0]
    }

    /// Claim and mark sent everything due at `now` on every channel, as the workers would.
    async fn deliver(&self, now: i64) -> Vec<Sent> {
        let mut out = Vec::new();
        for ch in ["ding", "mail", "phone", "other"] {
            let rows = self
                .store
                .claim(ch, now, 100, "test", 60_000)
                .await
                .expect("claim");
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            self.store.mark_sent(&ids, now).await.expect("mark sent");
            out.extend(rows.into_iter().map(|r| {
                (
                    r.channel,
                    r.kind.as_str().to_string(),
                    r.step,
                    r.event.status.as_str().to_string(),
                    r.mentions,
                )
            }));
        }
        out
    }
}

fn sent(ch: &str, kind: &str, step: Option<i64>, status: &str) -> Sent {
    (ch.into(), kind.into(), step, status.into(), vec![])
}

#[tokio::test]
async fn steps_fire_at_their_delays_and_only_then() {
    let f = fixture(POLICY_YAML).await;
    assert!(f.post(event("fp1", "firing", T0, "critical"), T0).await);
    assert_eq!(
        f.deliver(T0).await,
        vec![sent("ding", "escalate", Some(0), "firing")]
    );
    assert_eq!(f.deliver(T0 + 5 * MIN - 1).await, vec![]);
    // The same alert again (a retry or the other Alertmanager peer) does not restart the chain.
    assert!(
        !f.post(event("fp1", "firing", T0, "critical"), T0 + MIN)
            .await
    );
    let mut ding1 = sent("ding", "escalate", Some(1), "firing");
    ding1.4 = vec!["13800000000".into()];
    assert_eq!(
        f.deliver(T0 + 5 * MIN).await,
        vec![ding1, sent("mail", "escalate", Some(1), "firing")]
    );
    let alerts = f.store.list_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].current_step, Some(1));
    assert_eq!(alerts[0].next_step, Some(2));
    assert_eq!(alerts[0].next_step_at, Some(T0 + 15 * MIN));
    assert_eq!(alerts[0].policy, "critical");
    assert_eq!(f.deliver(T0 + 15 * MIN - 1).await, vec![]);
    assert_eq!(
        f.deliver(T0 + 15 * MIN).await,
        vec![sent("phone", "escalate", Some(2), "firing")]
    );
    assert_eq!(f.deliver(T0 + 24 * 60 * MIN).await, vec![]);
    let alerts = f.store.list_alerts().await.unwrap();
    let notified: Vec<(i64, &str, i64)> = alerts[0]
        .notified
        .iter()
        .map(|n| (n.step, n.channel.as_str(), n.sent_at - T0))
        .collect();
    assert_eq!(
        notified,
        vec![
            (0, "ding", 0),
            (1, "ding", 5 * MIN),
            (1, "mail", 5 * MIN),
            (2, "phone", 15 * MIN)
        ]
    );
    assert_eq!(alerts[0].next_step_at, None);
}

#[tokio::test]
async fn ack_between_steps_stops_the_rest_and_is_announced_where_notified() {
    let f = fixture(POLICY_YAML).await;
    f.post(event("fp1", "firing", T0, "critical"), T0).await;
    f.deliver(T0).await;
    let out = f.store.ack("fp1", "alice", T0 + MIN).await.unwrap();
    assert_eq!(
        out,
        AckOutcome::Acked {
            announced: vec!["ding".into()]
        }
    );
    let rows = f
        .store
        .claim("ding", T0 + MIN, 10, "t", 60_000)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind.as_str(), "ack");
    let marks = &rows[0].event.annotations;
    assert_eq!(marks["quantwatch_acked_by"], "alice", "{marks:?}");
    assert_eq!(marks["quantwatch_acked_at"], (T0 + MIN).to_string());
    f.store.mark_sent(&[rows[0].id], T0 + MIN).await.unwrap();
    // Nothing of steps 1 and 2 ever fires.
    assert_eq!(f.deliver(T0 + 60 * MIN).await, vec![]);
    assert_eq!(
        f.store.ack("fp1", "bob", T0 + 2 * MIN).await.unwrap(),
        AckOutcome::AlreadyAcked {
            by: "alice".into(),
            at: T0 + MIN
        }
    );
    let alerts = f.store.list_alerts().await.unwrap();
    assert_eq!(alerts[0].acked_by.as_deref(), Some("alice"));
    assert_eq!(alerts[0].acked_at, Some(T0 + MIN));
    assert_eq!(alerts[0].next_step_at, None);
    // The resolve still reaches the channel that was notified.
    f.post(event("fp1", "resolved", T0, "critical"), T0 + 90 * MIN)
        .await;
    assert_eq!(
        f.deliver(T0 + 90 * MIN).await,
        vec![sent("ding", "notify", None, "resolved")]
    );
    assert!(f.store.list_alerts().await.unwrap().is_empty());
}

#[tokio::test]
async fn resolve_stops_the_rest_and_sends_resolved_to_each_notified_channel() {
    let f = fixture(POLICY_YAML).await;
    f.post(event("fp1", "firing", T0, "critical"), T0).await;
    f.deliver(T0).await;
    f.deliver(T0 + 5 * MIN).await;
    f.post(event("fp1", "resolved", T0, "critical"), T0 + 6 * MIN)
        .await;
    assert_eq!(
        f.deliver(T0 + 6 * MIN).await,
        vec![
            sent("ding", "notify", None, "resolved"),
            sent("mail", "notify", None, "resolved")
        ]
    );
    assert_eq!(f.deliver(T0 + 60 * MIN).await, vec![]);
    assert_eq!(
        f.store.ack("fp1", "alice", T0 + 61 * MIN).await.unwrap(),
        AckOutcome::NotActive
    );
}

#[tokio::test]
async fn a_step_in_flight_at_ack_counts_as_notified() {
    let f = fixture(POLICY_YAML).await;
    f.post(event("fp1", "firing", T0, "critical"), T0).await;
    f.deliver(T0).await;
    // The mail step is claimed (being sent) when the ack lands: it is not cancelled, and the
    // ack is announced there too.
    let inflight = f
        .store
        .claim("mail", T0 + 5 * MIN, 10, "w", 60_000)
        .await
        .unwrap();
    assert_eq!(inflight.len(), 1);
    let out = f.store.ack("fp1", "alice", T0 + 5 * MIN + 1).await.unwrap();
    assert_eq!(
        out,
        AckOutcome::Acked {
            announced: vec!["ding".into(), "mail".into()]
        }
    );
    f.store
        .mark_sent(&[inflight[0].id], T0 + 5 * MIN + 2)
        .await
        .unwrap();
    // ding's step 1 (not yet claimed) was cancelled; the acks go out on both channels.
    assert_eq!(
        f.deliver(T0 + 5 * MIN + 3).await,
        vec![
            sent("ding", "ack", None, "firing"),
            sent("mail", "ack", None, "firing")
        ]
    );
    assert_eq!(f.deliver(T0 + 60 * MIN).await, vec![]);
}

#[tokio::test]
async fn repeat_runs_the_whole_chain_again() {
    let f = fixture(
        r#"
channels:
  - type: log
    name: ding
  - type: log
    name: mail
route:
  channels: [ding]
  escalation: loud
escalation_policies:
  loud:
    repeat: 2
    repeat_interval: 1h
    steps:
      - delay: 0s
        channels: [ding]
      - delay: 10m
        channels: [mail]
"#,
    )
    .await;
    f.post(event("fp1", "firing", T0, "warning"), T0).await;
    let mut fired = Vec::new();
    for t in [0, 10, 60, 70, 120, 130] {
        assert_eq!(
            f.deliver(T0 + (t - 1) * MIN).await,
            vec![],
            "nothing before minute {t}"
        );
        let got = f.deliver(T0 + t * MIN).await;
        assert_eq!(got.len(), 1, "minute {t}: {got:?}");
        fired.push((t, got[0].0.clone(), got[0].2));
    }
    assert_eq!(
        fired,
        vec![
            (0, "ding".to_string(), Some(0)),
            (10, "mail".to_string(), Some(1)),
            (60, "ding".to_string(), Some(2)),
            (70, "mail".to_string(), Some(3)),
            (120, "ding".to_string(), Some(4)),
            (130, "mail".to_string(), Some(5)),
        ]
    );
    assert_eq!(f.deliver(T0 + 10 * 60 * MIN).await, vec![]);
}

#[tokio::test]
async fn a_fresh_firing_after_resolve_starts_a_fresh_chain() {
    let f = fixture(POLICY_YAML).await;
    f.post(event("fp1", "firing", T0, "critical"), T0).await;
    f.deliver(T0).await;
    f.post(event("fp1", "resolved", T0, "critical"), T0 + MIN)
        .await;
    assert_eq!(
        f.deliver(T0 + MIN).await,
        vec![sent("ding", "notify", None, "resolved")]
    );
    let t1 = T0 + 2 * MIN;
    assert!(f.post(event("fp1", "firing", t1, "critical"), t1).await);
    assert_eq!(
        f.deliver(t1).await,
        vec![sent("ding", "escalate", Some(0), "firing")]
    );
    // Step 1 of the new chain is due 5 minutes after ITS start, not the old one's.
    assert_eq!(f.deliver(T0 + 5 * MIN).await, vec![]);
    assert_eq!(f.deliver(t1 + 5 * MIN).await.len(), 2);
    let alerts = f.store.list_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].chain_started_at, t1);
    assert_eq!(alerts[0].acked_by, None);
}

#[tokio::test]
async fn alerts_without_a_policy_are_notified_once_as_before() {
    let f = fixture(POLICY_YAML).await;
    f.post(event("fp2", "firing", T0, "warning"), T0).await;
    assert_eq!(
        f.deliver(T0).await,
        vec![sent("other", "notify", None, "firing")]
    );
    assert_eq!(f.deliver(T0 + 60 * MIN).await, vec![]);
    assert!(f.store.list_alerts().await.unwrap().is_empty());
    assert_eq!(
        f.store.ack("fp2", "alice", T0).await.unwrap(),
        AckOutcome::NotActive
    );
}

#[test]
fn policy_problems_name_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    std::fs::write(
        &path,
        "channels:\n  - type: log\n    name: log\nroute:\n  channels: [log]\n  escalation: nope\nescalation_policies:\n  p:\n    repeat: 9\n    steps:\n      - delay: 5x\n        channels: [log]\n",
    )
    .unwrap();
    let errs = config::load(Some(&path), &HashMap::<String, String>::new()).unwrap_err();
    let file = path.display().to_string();
    let got: Vec<String> = errs.0.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        got,
        vec![
            format!("{file}: escalation_policies.p.repeat: 9 is more than 5"),
            format!(
                "{file}: escalation_policies.p.steps[0].delay: \"5x\" is not a duration like \"0s\" or \"5m\": unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)"
            ),
            format!(
                "{file}: escalation_policies.p.repeat_interval: required when repeat is above 0 (when the next run of the chain starts)"
            ),
            format!(
                "{file}: route.escalation: no escalation policy is named \"nope\" (see escalation_policies)"
            ),
        ]
    );
}

fn utc_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

const ONCALL_YAML: &str = r#"
channels:
  - type: log
    name: ding
  - type: log
    name: mail
  - type: log
    name: phone
  - type: log
    name: other
people:
  ann: {ding: "13800000001"}
  bo: {ding: "13800000002", mail: "bo@example.com"}
rotations:
  primary:
    timezone: Asia/Shanghai
    period: daily
    handoff: "09:00"
    start: 2026-03-02
    people: [ann, bo]
time_windows:
  trading:
    timezone: Asia/Shanghai
    weekdays: [mon, tue, wed, thu, fri]
    ranges: ["09:30-11:30", "13:00-15:00"]
route:
  channels: [other]
  escalation: slow
  escalation_during:
    - window: trading
      escalation: fast
escalation_policies:
  slow:
    steps:
      - delay: 0s
        channels: [ding]
      - delay: 30m
        channels: [ding]
        rotations: [primary]
  fast:
    steps:
      - delay: 0s
        channels: [ding]
        rotations: [primary]
      - delay: 2m
        channels: [mail]
"#;

#[tokio::test]
async fn trading_window_picks_the_fast_policy_and_steps_mention_the_on_call_at_due_time() {
    let f = fixture(ONCALL_YAML).await;
    // Monday 10:00 Shanghai (02:00 UTC): in the morning session, ann on call since 09:00.
    let t = utc_ms("2026-03-02T02:00:00Z");
    f.post(event("fp-fast", "firing", t, "critical"), t).await;
    let mut step0 = sent("ding", "escalate", Some(0), "firing");
    step0.4 = vec!["13800000001".into()];
    assert_eq!(f.deliver(t).await, vec![step0]);
    assert_eq!(f.deliver(t + 2 * MIN - 1).await, vec![]);
    assert_eq!(
        f.deliver(t + 2 * MIN).await,
        vec![sent("mail", "escalate", Some(1), "firing")]
    );

    // Monday 08:45 Shanghai: markets closed, the slow policy. Step 1 falls due at 09:15,
    // after the 09:00 handoff: it mentions ann (on call then), not bo (on call when planned).
    let t = utc_ms("2026-03-02T00:45:00Z");
    f.post(event("fp-slow", "firing", t, "critical"), t).await;
    assert_eq!(
        f.deliver(t).await,
        vec![sent("ding", "escalate", Some(0), "firing")]
    );
    assert_eq!(f.deliver(t + 2 * MIN).await, vec![], "no fast step 1");
    let mut step1 = sent("ding", "escalate", Some(1), "firing");
    step1.4 = vec!["13800000001".into()];
    assert_eq!(f.deliver(t + 30 * MIN).await, vec![step1]);
}

#[test]
fn rotation_and_window_problems_name_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    std::fs::write(
        &path,
        r#"channels:
  - type: log
    name: log
people:
  ann: {pager: "1"}
rotations:
  r:
    timezone: Mars/Base
    period: hourly
    handoff: "25:00"
    start: 2026-03-02
    people: [ann, zed]
time_windows:
  w:
    timezone: Asia/Shanghai
    weekdays: [funday]
    ranges: ["09:30"]
route:
  channels: [log]
  escalation_during:
    - window: nope
      escalation: p
escalation_policies:
  p:
    steps:
      - delay: 0s
        channels: [log]
        rotations: [missing]
"#,
    )
    .unwrap();
    let errs = config::load(Some(&path), &HashMap::<String, String>::new()).unwrap_err();
    let keys: Vec<(String, String)> = errs
        .0
        .iter()
        .map(|p| (p.key.clone(), p.reason.clone()))
        .collect();
    assert!(errs.0.iter().all(|p| p.file == path.display().to_string()));
    let expect = [
        ("people.ann.pager", "no channel is named \"pager\""),
        (
            "rotations.r.timezone",
            "\"Mars/Base\" is not an IANA time zone like \"Asia/Shanghai\"",
        ),
        (
            "rotations.r.period",
            "\"hourly\" is neither daily nor weekly",
        ),
        ("rotations.r.handoff", "\"25:00\" is not a local time HH:MM"),
        ("rotations.r.people[1]", "\"zed\" is not in people"),
        (
            "time_windows.w.weekdays[0]",
            "\"funday\" is not a weekday (mon..sun)",
        ),
        ("time_windows.w.ranges[0]", "\"09:30\" is not HH:MM-HH:MM"),
        (
            "escalation_policies.p.steps[0].rotations[0]",
            "no rotation is named \"missing\" (see rotations)",
        ),
        (
            "route.escalation_during[0].window",
            "no time window is named \"nope\" (see time_windows)",
        ),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(k, r)| (k.to_string(), r.to_string()))
        .collect();
    assert_eq!(keys, expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_runs_the_same_chain_ack_and_resolve() {
    let pg = testkit::Postgres::start();
    let url = pg.create_database("router");
    let f = fixture_on(POLICY_YAML, Some(url)).await;
    assert!(f.post(event("fp1", "firing", T0, "critical"), T0).await);
    assert!(!f.post(event("fp1", "firing", T0, "critical"), T0 + 1).await);
    assert_eq!(
        f.deliver(T0).await,
        vec![sent("ding", "escalate", Some(0), "firing")]
    );
    assert_eq!(f.deliver(T0 + 5 * MIN - 1).await, vec![]);
    assert_eq!(f.deliver(T0 + 5 * MIN).await.len(), 2);
    let alerts = f.store.list_alerts().await.unwrap();
    assert_eq!(
        (alerts[0].current_step, alerts[0].next_step_at),
        (Some(1), Some(T0 + 15 * MIN))
    );
    assert_eq!(
        f.store.ack("fp1", "alice", T0 + 6 * MIN).await.unwrap(),
        AckOutcome::Acked {
            announced: vec!["ding".into(), "mail".into()]
        }
    );
    assert_eq!(
        f.deliver(T0 + 6 * MIN).await,
        vec![
            sent("ding", "ack", None, "firing"),
            sent("mail", "ack", None, "firing")
        ]
    );
    assert_eq!(f.deliver(T0 + 60 * MIN).await, vec![], "step 2 cancelled");
    assert_eq!(
        f.store.ack("fp1", "bob", T0 + 61 * MIN).await.unwrap(),
        AckOutcome::AlreadyAcked {
            by: "alice".into(),
            at: T0 + 6 * MIN
        }
    );
    f.post(event("fp1", "resolved", T0, "critical"), T0 + 70 * MIN)
        .await;
    assert_eq!(
        f.deliver(T0 + 70 * MIN).await,
        vec![
            sent("ding", "notify", None, "resolved"),
            sent("mail", "notify", None, "resolved")
        ]
    );
    let t1 = T0 + 80 * MIN;
    assert!(f.post(event("fp1", "firing", t1, "critical"), t1).await);
    assert_eq!(
        f.deliver(t1).await,
        vec![sent("ding", "escalate", Some(0), "firing")]
    );
    assert_eq!(f.store.list_alerts().await.unwrap()[0].chain_started_at, t1);
}

/// The same firing regrouped by Alertmanager (a changed `group_by`: new groupKey, same
/// fingerprint and startsAt) is a duplicate: the chain keeps its schedule, step 0 is not sent
/// again, and an acknowledgement stays.
async fn regrouped_duplicate_keeps_ack_and_chain(f: &Fixture) {
    let regrouped = |key: &str| {
        let mut e = event("fp1", "firing", T0, "critical");
        e.group_key = key.into();
        e
    };
    assert!(f.post(event("fp1", "firing", T0, "critical"), T0).await);
    assert_eq!(
        f.deliver(T0).await,
        vec![sent("ding", "escalate", Some(0), "firing")]
    );
    assert!(
        !f.post(regrouped("{}:{team=\"desk\"}"), T0 + MIN).await,
        "a regrouped copy is a duplicate"
    );
    assert_eq!(
        f.deliver(T0 + MIN).await,
        vec![],
        "step 0 is not sent again"
    );
    assert_eq!(
        f.deliver(T0 + 5 * MIN).await.len(),
        2,
        "step 1 keeps the first firing's schedule"
    );
    assert_eq!(
        f.store.ack("fp1", "alice", T0 + 6 * MIN).await.unwrap(),
        AckOutcome::Acked {
            announced: vec!["ding".into(), "mail".into()]
        }
    );
    assert_eq!(
        f.deliver(T0 + 6 * MIN).await.len(),
        2,
        "the two announcements"
    );
    assert!(
        !f.post(regrouped("{}:{desk=\"fx\"}"), T0 + 7 * MIN).await,
        "regrouped again"
    );
    let alerts = f.store.list_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].acked_by.as_deref(), Some("alice"));
    assert_eq!(alerts[0].acked_at, Some(T0 + 6 * MIN));
    assert_eq!(alerts[0].chain_started_at, T0);
    assert_eq!(f.deliver(T0 + 60 * MIN).await, vec![], "no step restarts");
    let firing = f.store.list_current("firing", 10).await.unwrap();
    assert_eq!(firing.len(), 1);
    assert_eq!(
        (firing[0].fingerprint.as_str(), firing[0].updated_at),
        ("fp1", T0)
    );
    // The resolve under the new groupKey still ends the alert (its identity has no groupKey).
    let mut resolved = event("fp1", "resolved", T0, "critical");
    resolved.group_key = "{}:{desk=\"fx\"}".into();
    assert!(f.post(resolved, T0 + 70 * MIN).await);
    assert!(f.store.list_alerts().await.unwrap().is_empty());
    assert!(f.store.list_current("firing", 10).await.unwrap().is_empty());
    let resolved = f.store.list_current("resolved", 10).await.unwrap();
    assert_eq!(
        (resolved[0].fingerprint.as_str(), resolved[0].updated_at),
        ("fp1", T0 + 70 * MIN)
    );
    let audit = f.store.recent_audit(10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].by.as_str(),
            audit[0].via.as_str(),
            audit[0].at,
            audit[0].starts_at
        ),
        ("alice", "api", T0 + 6 * MIN, T0)
    );
    let h = common::history_of(f.store.as_ref(), "fp1").await;
    let got: Vec<(&str, i64, Option<&str>)> = h
        .iter()
        .map(|e| (e.action.as_str(), e.at - T0, e.channel.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("firing", 0, None),
            ("step", 0, Some("ding")),
            ("step", 5 * MIN, Some("ding")),
            ("step", 5 * MIN, Some("mail")),
            ("ack", 6 * MIN, None),
            ("ack_announced", 6 * MIN, Some("ding")),
            ("ack_announced", 6 * MIN, Some("mail")),
            ("resolved", 70 * MIN, None),
        ]
    );
    assert_eq!(h[2].mentions, vec!["13800000000".to_string()]);
}

#[tokio::test]
async fn regrouped_duplicate_keeps_ack_and_chain_on_sqlite() {
    regrouped_duplicate_keeps_ack_and_chain(&fixture(POLICY_YAML).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regrouped_duplicate_keeps_ack_and_chain_on_postgres() {
    let pg = testkit::Postgres::start();
    let url = pg.create_database("router");
    regrouped_duplicate_keeps_ack_and_chain(&fixture_on(POLICY_YAML, Some(url)).await).await;
}

/// An upgrade from a database where an earlier version stored a regrouped firing twice (two
/// group keys, a chain on the second copy): 0004 merges the copies into the first and keeps
/// every step, 0005 lists the alerts, and the next regrouped copy is a duplicate.
#[tokio::test]
async fn upgrade_merges_regrouped_copies_and_lists_every_alert() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    use std::str::FromStr;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/router.db", dir.path().display());
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true),
    )
    .await
    .unwrap();
    let mut old = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/sqlite"
    )))
    .await
    .unwrap();
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version <= 3)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    old.run(&pool).await.unwrap();
    let payload = |fp: &str, status: &str, key: &str| {
        let mut e = event(fp, status, T0, "critical");
        e.group_key = key.into();
        serde_json::to_string(&e).unwrap()
    };
    for (id, key, fp, status, received) in [
        (1, "g1", "fp1", "firing", T0),
        (2, "g2", "fp1", "firing", T0 + MIN),
        (3, "g1", "fp2", "firing", T0),
        (4, "g1", "fp2", "resolved", T0 + 2 * MIN),
    ] {
        sqlx::query("INSERT INTO alert_events (id, group_key, fingerprint, status, starts_at, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(id).bind(key).bind(fp).bind(status).bind(T0).bind(payload(fp, status, key)).bind(received)
            .execute(&pool).await.unwrap();
    }
    for (event_id, at) in [(1, T0), (2, T0 + MIN)] {
        sqlx::query("INSERT INTO outbox (event_id, fingerprint, channel, kind, step, state, due_at, created_at, sent_at) VALUES (?, 'fp1', 'ding', 'escalate', 0, 'sent', ?, ?, ?)")
            .bind(event_id).bind(at).bind(at).bind(at)
            .execute(&pool).await.unwrap();
    }
    sqlx::query("INSERT INTO alert_state (fingerprint, event_id, policy, status, chain_started_at) VALUES ('fp1', 2, 'critical', 'firing', ?)")
        .bind(T0 + MIN)
        .execute(&pool).await.unwrap();
    pool.close().await;

    let f = fixture_on(POLICY_YAML, Some(url)).await;
    let alerts = f.store.list_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].fingerprint, "fp1");
    assert_eq!(alerts[0].notified.len(), 2, "both copies' steps kept");
    let firing = f.store.list_current("firing", 10).await.unwrap();
    let names: Vec<&str> = firing.iter().map(|a| a.fingerprint.as_str()).collect();
    assert_eq!(names, vec!["fp1"]);
    let resolved = f.store.list_current("resolved", 10).await.unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(
        (resolved[0].fingerprint.as_str(), resolved[0].updated_at),
        ("fp2", T0 + 2 * MIN)
    );
    let h = common::history_of(f.store.as_ref(), "fp1").await;
    let actions: Vec<(&str, i64)> = h.iter().map(|e| (e.action.as_str(), e.at)).collect();
    assert_eq!(
        actions,
        vec![("firing", T0), ("step", T0), ("step", T0 + MIN)],
        "one event left"
    );
    let mut again = event("fp1", "firing", T0, "critical");
    again.group_key = "g3".into();
    assert!(!f.post(again, T0 + 3 * MIN).await, "a duplicate now");
    assert_eq!(
        f.store.ack("fp1", "alice", T0 + 4 * MIN).await.unwrap(),
        AckOutcome::Acked {
            announced: vec!["ding".into()]
        }
    );
}
