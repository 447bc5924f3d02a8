//! Rota health with a controllable clock: `rota::tick` is driven with explicit instants over
//! the real SQLite store, and what it queued is read back as the delivery workers claim it.
//! Handoffs at the configured local time across the 2026 New York DST change, a gap warned
//! once, an ack reminder once per period; a second store handle on the same database (a
//! restart, a replica) never queues a notice twice.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use quantwatch_alert_router::app::config::{self, Config};
use quantwatch_alert_router::core::model::{AlertEvent, Status};
use quantwatch_alert_router::plan::rota::{self, TickReport};
use quantwatch_alert_router::plan::routing::route_event;
use quantwatch_alert_router::store::{self, OutboxRow, Store};

const YAML: &str = r#"
language: en
channels:
  - type: log
    name: desk
  - type: log
    name: pager
route:
  channels: [desk]
  routes:
    - matchers: ['severity="critical"']
      channels: [pager]
      escalation: critical
escalation_policies:
  critical:
    steps:
      - delay: 0s
        channels: [pager]
people:
  ann: {desk: "13900000001", pager: "13900000001"}
  bo: {desk: "13900000002"}
  cy: {}
rotations:
  primary:
    timezone: America/New_York
    period: daily
    handoff: "09:00"
    start: "2026-03-02"
    people: [ann, bo]
  weekend:
    timezone: America/New_York
    period: weekly
    handoff: "09:00"
    start: "2026-03-02"
    people: []
    overrides:
      - {from: "2026-03-10 09:00", until: "2026-03-11 09:00", person: ann}
      - {from: "2026-03-11 09:00", until: "2026-03-12 09:00", person: cy}
      - {from: "2026-03-12 09:00", until: "2026-03-13 09:00", person: bo}
rota:
  announce_channels: [desk]
  gap_lookahead: 24h
  ack_reminder: 30m
"#;

struct Fixture {
    store: Arc<dyn Store>,
    url: String,
    cfg: Config,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_on(None).await
}

/// The same fixture on another store URL (PostgreSQL).
async fn fixture_on(url: Option<String>) -> Fixture {
    let (cfg, store, url, dir) = common::config_and_store(YAML, url).await;
    Fixture {
        store,
        url,
        cfg,
        _dir: dir,
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

impl Fixture {
    async fn tick(&self, now: &str) -> TickReport {
        rota::tick(self.store.as_ref(), &self.cfg.plan, at(now))
            .await
            .expect("tick")
    }

    /// What the workers would deliver now on a channel (claimed and marked sent).
    async fn take(&self, channel: &str, now: &str) -> Vec<OutboxRow> {
        let now = at(now).timestamp_millis();
        let rows = self
            .store
            .claim(channel, now, 100, "test", 60_000)
            .await
            .expect("claim");
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        self.store.mark_sent(&ids, now).await.expect("mark sent");
        rows
    }
}

fn summary(r: &OutboxRow) -> &str {
    r.event.annotations["summary"].as_str()
}

/// Only the handoffs of `primary` (the weekend rotation's gaps are their own test).
fn handoffs_of(rows: Vec<OutboxRow>) -> Vec<(String, i64, Vec<String>)> {
    rows.into_iter()
        .filter(|r| r.event.alertname() == "OnCallHandoff")
        .map(|r| (summary(&r).to_string(), r.event.starts_at, r.mentions))
        .collect()
}

#[tokio::test]
async fn handoffs_are_announced_at_local_nine_across_the_dst_change_once() {
    let f = fixture().await;
    // Saturday 2026-03-07 09:00 EST = 14:00 UTC: day 5 of the rota, bo's shift.
    assert_eq!(f.tick("2026-03-07T13:59:59Z").await.handoffs, 0);
    assert_eq!(f.tick("2026-03-07T14:00:05Z").await.handoffs, 1);
    assert_eq!(f.tick("2026-03-07T14:00:35Z").await.handoffs, 0, "once");
    let got = handoffs_of(f.take("desk", "2026-03-07T14:00:35Z").await);
    assert_eq!(
        got,
        vec![(
            "from 09:00 America/New_York the primary on-call is bo".to_string(),
            at("2026-03-07T14:00:00Z").timestamp_millis(),
            vec!["13900000002".to_string()],
        )]
    );
    // A restarted router (or a replica) on the same store: the claim holds.
    let again = store::open(&f.url, false).await.expect("reopen");
    let rep = rota::tick(again.as_ref(), &f.cfg.plan, at("2026-03-07T14:01:00Z"))
        .await
        .unwrap();
    assert_eq!(rep.handoffs, 0, "not announced twice after a restart");
    // DST starts Sunday 2026-03-08 02:00: 09:00 EDT is 13:00 UTC, an hour earlier in UTC.
    assert_eq!(f.tick("2026-03-08T12:59:59Z").await.handoffs, 0);
    assert_eq!(f.tick("2026-03-08T13:00:01Z").await.handoffs, 1);
    assert_eq!(
        f.tick("2026-03-08T14:00:00Z").await.handoffs,
        0,
        "not at 14:00 UTC"
    );
    let got = handoffs_of(f.take("desk", "2026-03-08T14:00:00Z").await);
    assert_eq!(
        got,
        vec![(
            "from 09:00 America/New_York the primary on-call is ann".to_string(),
            at("2026-03-08T13:00:00Z").timestamp_millis(),
            vec!["13900000001".to_string()],
        )]
    );
}

#[tokio::test]
async fn a_gap_in_the_rota_is_warned_once_a_day_ahead() {
    let f = fixture().await;
    // Monday 2026-03-09 10:00 EDT: the weekend rota is empty until Tuesday 09:00 (a gap that
    // began long ago), then ann, then cy, who has no contact: a gap from Wednesday 09:00.
    let first = f.tick("2026-03-09T14:00:00Z").await;
    assert_eq!(first.gaps, 1, "{first:?}");
    let rows: Vec<OutboxRow> = f
        .take("desk", "2026-03-09T14:00:00Z")
        .await
        .into_iter()
        .filter(|r| r.event.alertname() == "OnCallGap")
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        summary(&rows[0]),
        "nobody is on call in weekend from now until 2026-03-10 09:00:00 EDT"
    );
    assert_eq!(rows[0].event.labels["severity"], "warning");
    // Tuesday 10:00 EDT: cy's contactless day is now within 24 h: warned, once.
    assert_eq!(f.tick("2026-03-10T14:00:00Z").await.gaps, 1);
    assert_eq!(f.tick("2026-03-10T14:00:30Z").await.gaps, 0);
    assert_eq!(
        f.tick("2026-03-11T15:00:00Z").await.gaps,
        0,
        "nor while it runs"
    );
    let rows: Vec<OutboxRow> = f
        .take("desk", "2026-03-11T15:00:00Z")
        .await
        .into_iter()
        .filter(|r| r.event.alertname() == "OnCallGap")
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        summary(&rows[0]),
        "nobody is on call in weekend from 2026-03-11 09:00:00 EDT until 2026-03-12 09:00:00 EDT"
    );
}

fn critical(starts_at: i64) -> AlertEvent {
    AlertEvent {
        group_key: "g".into(),
        fingerprint: "fp-book".into(),
        status: Status::Firing,
        labels: [("alertname", "BookStale"), ("severity", "critical")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary".to_string(), "order book stale".to_string())].into(),
        starts_at,
        ends_at: None,
        generator_url: None,
        receiver: None,
    }
}

#[tokio::test]
async fn an_acked_alert_still_firing_reminds_the_acker_once_per_period() {
    let f = fixture().await;
    let t0 = at("2026-03-09T14:00:00Z").timestamp_millis();
    let min = 60_000;
    let routed = route_event(&f.cfg.plan, critical(t0), t0);
    f.store.ingest(&[routed], t0).await.expect("ingest");
    f.take("pager", "2026-03-09T14:00:00Z").await;
    let acked = t0 + 2 * min;
    f.store.ack("fp-book", "ann", acked).await.expect("ack");
    f.take("pager", "2026-03-09T14:02:00Z").await;
    let tick = |ms: i64| {
        let f = &f;
        async move {
            rota::tick(
                f.store.as_ref(),
                &f.cfg.plan,
                DateTime::from_timestamp_millis(ms).unwrap(),
            )
            .await
            .unwrap()
            .reminders
        }
    };
    assert_eq!(tick(acked + 29 * min).await, 0, "not before the period");
    assert_eq!(tick(acked + 30 * min).await, 1);
    assert_eq!(tick(acked + 45 * min).await, 0, "once per period");
    assert_eq!(tick(acked + 59 * min).await, 0);
    assert_eq!(tick(acked + 60 * min).await, 1, "the next period");
    // ann has contacts on desk and pager: the reminder reaches her on both, mentioned.
    let now = "2026-03-09T15:03:00Z";
    for ch in ["desk", "pager"] {
        // One row per alert and channel at a time (per-alert order): take until drained.
        let mut rows: Vec<OutboxRow> = Vec::new();
        loop {
            let got = f.take(ch, now).await;
            if got.is_empty() {
                break;
            }
            rows.extend(
                got.into_iter()
                    .filter(|r| r.event.alertname() == "BookStale"),
            );
        }
        assert_eq!(rows.len(), 2, "{ch}: two periods");
        assert_eq!(rows[0].mentions, vec!["13900000001".to_string()]);
        assert_eq!(rows[0].event.annotations["quantwatch_reminder"], "ann");
    }
    // Resolved: no more reminders.
    let mut res = critical(t0);
    res.status = Status::Resolved;
    res.ends_at = Some(acked + 70 * min);
    let routed = route_event(&f.cfg.plan, res, acked + 70 * min);
    f.store.ingest(&[routed], acked + 70 * min).await.unwrap();
    assert_eq!(tick(acked + 95 * min).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_announce_a_handoff_once() {
    let pg = testkit::Postgres::start();
    let f = fixture_on(Some(pg.create_database("router"))).await;
    let replicas: Vec<Arc<dyn Store>> = vec![
        f.store.clone(),
        store::open(&f.url, false).await.expect("second replica"),
    ];
    // Both replicas tick at the same instants, concurrently, ten times over.
    let mut handoffs = 0;
    for s in ["2026-03-08T13:00:00Z", "2026-03-08T13:00:30Z"] {
        for _ in 0..5 {
            let (a, b) = tokio::join!(
                rota::tick(replicas[0].as_ref(), &f.cfg.plan, at(s)),
                rota::tick(replicas[1].as_ref(), &f.cfg.plan, at(s)),
            );
            handoffs += a.unwrap().handoffs + b.unwrap().handoffs;
        }
    }
    assert_eq!(handoffs, 1, "one announcement across both replicas");
    let got = handoffs_of(f.take("desk", "2026-03-08T13:01:00Z").await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].0,
        "from 09:00 America/New_York the primary on-call is ann"
    );
}

#[test]
fn rota_and_silence_settings_are_validated_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    std::fs::write(
        &path,
        "channels:\n  - {type: log, name: desk}\nalertmanager_urls: [\"ftp://am\", \"http://user:secret@am:9093\"]\nsilences:\n  check_interval: soon\nrota:\n  announce_channels: [desk, nowhere]\n  ack_reminder: 0s\n  gap_lookahead: 1d\n",
    )
    .unwrap();
    let env: HashMap<String, String> = HashMap::new();
    let e = config::load(Some(&path), &env).unwrap_err().to_string();
    let f = path.display().to_string();
    for want in [
        format!("{f}: alertmanager_urls[0]: is not an http(s) URL"),
        format!("{f}: silences.check_interval: \"soon\" is not a duration"),
        format!("{f}: rota.announce_channels[1]: no channel is named \"nowhere\""),
        format!("{f}: rota.ack_reminder: must be greater than zero"),
    ] {
        assert!(e.contains(&want), "{want} in {e}");
    }
    assert!(!e.contains("gap_lookahead"), "1d is a duration: {e}");
    assert!(!e.contains("secret"), "URLs are never quoted: {e}");
    assert!(!e.contains("alertmanager_urls[1]"), "{e}");
    // From the environment, named as such.
    let env: HashMap<String, String> = [(
        "ROUTER_ALERTMANAGER_URLS".to_string(),
        "http://am:9093, nope".to_string(),
    )]
    .into();
    std::fs::write(&path, "channels:\n  - {type: log, name: desk}\n").unwrap();
    let e = config::load(Some(&path), &env).unwrap_err().to_string();
    assert!(
        e.contains("(environment): ROUTER_ALERTMANAGER_URLS[1]: is not an http(s) URL"),
        "{e}"
    );
}
