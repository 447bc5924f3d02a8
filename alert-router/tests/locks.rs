//! No write fails on a lock. Everything that writes the store at once, on SQLite and on
//! PostgreSQL: webhook intake from several senders, acks of escalated alerts racing their
//! first step, permanent refusals handed to fallback channels (a DingTalk robot whose sign
//! secret was rotated, to WeCom; a signed webhook whose secret was rotated, to a second
//! webhook: not rate-limited, so it fails over every delivery round), and rota notices claimed
//! through a second store handle on the same database (as a restart or a replica would), and
//! retention pruning old resolved firings through that handle in small batches all along. Then
//! every notification is counted: each one sent, or failed over to its fallback (and the copy
//! sent); none failed for a lock, none left pending, every webhook and ack answered 200, and
//! every old firing stored during the hammer pruned, no retention run failing.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{alert, payload, start};
use quantwatch_alert_router::core::model::{AlertEvent, Status};
use quantwatch_alert_router::store::retention::{self, RetentionConfig};
use quantwatch_alert_router::store::{self, Notice, NotificationView, Store};
use serde_json::json;
use testkit::Postgres;
use testkit::fakes::dingtalk::DingTalkFake;
use testkit::fakes::webhook::WebhookReceiver;
use testkit::fakes::wecom::WeComFake;

const API: &str = "api-secret";
/// Concurrent webhook senders, and the payloads each sends (a plain and an escalated alert).
const SENDERS: usize = 4;
const ROUNDS: usize = 40;
/// Rota notices queued through the second store handle, and how many at once.
const NOTICES: usize = 200;
const NOTICES_AT_ONCE: usize = 2;
/// The pace of each sender's rounds and of the notice batches: the load lasts a couple of
/// seconds, so that many delivery rounds (and their failovers) overlap it.
const PACE: Duration = Duration::from_millis(50);

const HOOK_SECRET: &str = "the-receivers-secret-of-32-bytes!";

fn yaml(ding: &DingTalkFake, wx: &WeComFake, hook: &WebhookReceiver) -> String {
    format!(
        r#"language: en
delivery:
  retry_initial: 100ms
  retry_max: 1s
  poll_interval: 50ms
  round_interval: 100ms
channels:
  - type: dingtalk
    name: ding
    webhook_url: "{}"
    secret: SECold
    fallback: [wx]
  - type: wecom
    name: wx
    webhook_url: "{}/cgi-bin/webhook/send?key=key-f"
  - type: webhook
    name: hook
    url: "{hook}"
    secret: "a-rotated-secret-of-32-bytes-long"
    fallback: [hook_ok]
  - type: webhook
    name: hook_ok
    url: "{hook}"
    secret: "{HOOK_SECRET}"
  - type: log
    name: desk
route:
  channels: [ding, hook]
  routes:
    - matchers: ['page="yes"']
      escalation: crit
escalation_policies:
  crit:
    steps:
      - delay: 0s
        channels: [hook]
      - delay: 10m
        channels: [desk]
"#,
        ding.webhook_url(),
        wx.server.base_url(),
        hook = hook.url(),
    )
}

/// A rota-style notice for the `desk` log channel.
fn notice(i: usize) -> Notice {
    let ev = AlertEvent {
        group_key: "quantwatch-rota".into(),
        fingerprint: format!("notice-{i}"),
        status: Status::Firing,
        labels: BTreeMap::from([("alertname".to_string(), format!("Notice{i}"))]),
        annotations: BTreeMap::from([("summary".to_string(), format!("handoff {i}"))]),
        starts_at: 1_767_225_600_000,
        ends_at: None,
        generator_url: None,
        receiver: None,
    };
    Notice {
        fingerprint: ev.fingerprint.clone(),
        channel: "desk".into(),
        payload: serde_json::to_string(&ev).expect("an event serialises"),
        mentions: Vec::new(),
    }
}

fn plain_name(s: usize, r: usize) -> String {
    format!("Plain{s:02}x{r:02}")
}

fn paged_name(s: usize, r: usize) -> String {
    format!("Paged{s:02}x{r:02}")
}

/// One sender: each round posts a plain and an escalated alert, then acknowledges the
/// escalated one while its first step is being refused and handed over. Returns the
/// (webhook or ack) answers that were not 200.
async fn sender(url: String, s: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut bad = Vec::new();
    let mut pace = tokio::time::interval(PACE);
    for r in 0..ROUNDS {
        pace.tick().await;
        let body = payload(
            &format!("g{s}-{r}"),
            vec![
                alert(&plain_name(s, r), "firing", "2026-01-01T00:00:00Z", &[]),
                alert(
                    &paged_name(s, r),
                    "firing",
                    "2026-01-01T00:00:00Z",
                    &[("page", "yes")],
                ),
            ],
        );
        let resp = client
            .post(format!("{url}/webhook/alertmanager"))
            .json(&body)
            .send()
            .await
            .expect("webhook request");
        let status = resp.status().as_u16();
        if status != 200 {
            bad.push(format!(
                "webhook {s}/{r}: {status} {}",
                resp.text().await.unwrap_or_default()
            ));
            continue;
        }
        let resp = client
            .post(format!("{url}/api/v1/alerts/fp-{}/ack", paged_name(s, r)))
            .bearer_auth(API)
            .json(&json!({"by": format!("sender{s}")}))
            .send()
            .await
            .expect("ack request");
        let status = resp.status().as_u16();
        if status != 200 {
            bad.push(format!(
                "ack {s}/{r}: {status} {}",
                resp.text().await.unwrap_or_default()
            ));
        }
    }
    bad
}

/// Queue the rota notices through `store` (another handle on the router's database), a few at
/// once. Returns the calls that failed.
async fn notices(store: Arc<dyn Store>) -> Vec<String> {
    let mut bad = Vec::new();
    let mut pace = tokio::time::interval(PACE / 2);
    for chunk in (0..NOTICES).collect::<Vec<_>>().chunks(NOTICES_AT_ONCE) {
        pace.tick().await;
        let mut calls = tokio::task::JoinSet::new();
        for &i in chunk {
            let store = store.clone();
            calls.spawn(async move {
                let now = chrono::Utc::now().timestamp_millis();
                let key = format!("rota:lock-test:{i}");
                (i, store.enqueue_once(&key, &[notice(i)], now).await)
            });
        }
        while let Some(done) = calls.join_next().await {
            match done.expect("notice task") {
                (_, Ok(true)) => {}
                (i, Ok(false)) => bad.push(format!("notice {i}: key already claimed")),
                (i, Err(e)) => bad.push(format!("notice {i}: {e}")),
            }
        }
    }
    bad
}

/// Old firings stored per retention round, and firings per delete transaction (small, so each
/// run is many transactions interleaving with everything else).
const OLD_PER_ROUND: usize = 150;
const PRUNE_BATCH: usize = 25;

/// Retention racing the hammer through the second handle: each round stores
/// `OLD_PER_ROUND` firings resolved 100 days ago and runs retention at the default 90 days,
/// until `stop`. Returns (stored, pruned) or the errors of the runs that failed.
async fn retention_rounds(
    store: Arc<dyn Store>,
    stop: Arc<AtomicBool>,
) -> Result<(u64, u64), Vec<String>> {
    const DAY: i64 = 86_400_000;
    let cfg = RetentionConfig {
        batch: PRUNE_BATCH,
        ..RetentionConfig::default()
    };
    let (mut stored, mut pruned, mut errors) = (0u64, 0u64, Vec::new());
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = chrono::Utc::now().timestamp_millis();
        let fps: Vec<String> = (0..OLD_PER_ROUND)
            .map(|i| format!("old-{round}-{i}"))
            .collect();
        common::seed::resolved_firings(
            store.as_ref(),
            &fps,
            now - 120 * DAY,
            now - 100 * DAY,
            "old",
        )
        .await;
        stored += fps.len() as u64;
        match retention::run(store.as_ref(), &cfg, now).await {
            Ok(report) => pruned += report.firings,
            Err(e) => errors.push(format!("retention round {round}: {e}")),
        }
        round += 1;
    }
    if errors.is_empty() {
        Ok((stored, pruned))
    } else {
        Err(errors)
    }
}

async fn hammer(db: Option<&str>) {
    let ding = DingTalkFake::start("tok", Some("SECnew"));
    let wx = WeComFake::start("key-f");
    let hook = WebhookReceiver::start(HOOK_SECRET);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = db
        .map(String::from)
        .unwrap_or_else(|| format!("sqlite://{}/router.db", dir.path().display()));
    let r = start(
        &yaml(&ding, &wx, &hook),
        &[("ROUTER_API_TOKEN", API), ("ROUTER_DATABASE_URL", &url)],
    )
    .await;
    // The router has migrated the database by the time it answers.
    assert!(
        common::eventually(Duration::from_secs(20), || async {
            reqwest::get(format!("{}/healthz", r.url))
                .await
                .is_ok_and(|resp| resp.status().as_u16() == 200)
        })
        .await,
        "the router did not become healthy"
    );
    let second = store::open(&url, false).await.expect("second store handle");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        tasks.push(tokio::spawn(sender(r.url.clone(), s)));
    }
    tasks.push(tokio::spawn(notices(second.clone())));
    let stop = Arc::new(AtomicBool::new(false));
    let pruning = tokio::spawn(retention_rounds(second.clone(), stop.clone()));
    let mut bad = Vec::new();
    for t in tasks {
        bad.extend(t.await.expect("task"));
    }
    stop.store(true, Ordering::Relaxed);
    let (old_stored, old_pruned) = pruning
        .await
        .expect("retention task")
        .unwrap_or_else(|errors| panic!("retention failed under load: {errors:#?}"));
    assert!(bad.is_empty(), "refused under load: {bad:#?}");
    // Pruned by these runs (or, for a few at most, by the router's own run at start): none
    // of them is left.
    assert!(old_pruned <= old_stored && old_stored >= OLD_PER_ROUND as u64);
    let rounds = old_stored as usize / OLD_PER_ROUND;
    for round in 0..rounds {
        for i in 0..OLD_PER_ROUND {
            let fp = format!("old-{round}-{i}");
            let left = common::history_of(second.as_ref(), &fp).await;
            assert!(left.is_empty(), "{fp} not pruned: {left:?}");
        }
    }
    let hammered = started.elapsed();

    // Everything settles: nothing pending (the acks cancelled every 10-minute step).
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let q = second.queue_stats().await.expect("queue stats");
        if q.pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} notifications still pending after 180 s: {:#?}",
            q.pending,
            second
                .list_notifications(Some("pending"), 20)
                .await
                .expect("list")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = second
        .list_notifications(None, 1_000_000)
        .await
        .expect("list notifications");
    let mut by_alert: HashMap<String, Vec<&NotificationView>> = HashMap::new();
    for n in &rows {
        by_alert.entry(n.alertname.clone()).or_default().push(n);
    }
    // Nothing failed except by being handed over, and every hand-over's copy was sent.
    let wrongly_failed: Vec<&NotificationView> = rows
        .iter()
        .filter(|n| {
            n.state != "sent"
                && !(n.state == "failed"
                    && n.last_error.as_deref().is_some_and(|e| {
                        (n.channel == "ding" && e.starts_with("failed over to wx"))
                            || (n.channel == "hook" && e.starts_with("failed over to hook_ok"))
                    }))
        })
        .collect();
    assert!(
        wrongly_failed.is_empty(),
        "{} notifications neither sent nor handed over: {wrongly_failed:#?}",
        wrongly_failed.len()
    );
    // Every plain alert: refused once by DingTalk and the webhook, handed over, sent once by
    // WeCom and the other webhook.
    for s in 0..SENDERS {
        for r in 0..ROUNDS {
            let name = plain_name(s, r);
            let mine = by_alert.get(&name).cloned().unwrap_or_default();
            let rows_on = |ch: &str, state: &str| {
                mine.iter()
                    .filter(|n| n.channel == ch && n.state == state)
                    .count()
            };
            assert_eq!(
                [
                    rows_on("ding", "failed"),
                    rows_on("wx", "sent"),
                    rows_on("hook", "failed"),
                    rows_on("hook_ok", "sent")
                ],
                [1, 1, 1, 1],
                "{name}: ding failed over, wx sent, hook failed over, hook_ok sent: {mine:#?}"
            );
        }
    }
    // Every notice: sent once on the desk.
    for i in 0..NOTICES {
        let name = format!("Notice{i}");
        let mine = by_alert.get(&name).cloned().unwrap_or_default();
        assert!(
            mine.len() == 1 && mine[0].state == "sent" && mine[0].channel == "desk",
            "{name}: {mine:#?}"
        );
    }
    // What WeCom received names every plain alert.
    let texts = wx.markdowns().join("\n");
    let missing: Vec<String> = (0..SENDERS)
        .flat_map(|s| (0..ROUNDS).map(move |r| plain_name(s, r)))
        .filter(|n| !texts.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "WeCom never received: {missing:?}");
    for ch in ["ding", "wx", "hook", "hook_ok", "desk"] {
        assert_eq!(
            r.metric(&format!(
                "quantwatch_router_notifications_total{{channel=\"{ch}\",outcome=\"failed\"}}"
            ))
            .await,
            Some(0.0),
            "{ch}: notifications counted failed"
        );
    }
    let handed = rows.iter().filter(|n| n.state == "failed").count();
    eprintln!(
        "lock hammer on {}: {} notifications ({handed} handed over in {} refusals), \
         {} webhooks and acks, {NOTICES} notices and {old_pruned} old firings pruned in {hammered:?}",
        if db.is_some() { "PostgreSQL" } else { "SQLite" },
        rows.len(),
        ding.server.count_errcode(310000) + hook.server.count_errcode(401),
        SENDERS * ROUNDS * 2
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_fails_on_a_lock_on_sqlite() {
    hammer(None).await;
}

#[test]
fn no_write_fails_on_a_lock_on_postgres() {
    let rt = common::runtime();
    let pg = Postgres::start();
    let url = pg.create_database("router");
    rt.block_on(hammer(Some(&url)));
}
