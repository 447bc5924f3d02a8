//! Retention (contract "Router: retention"), on real SQLite and real PostgreSQL: firings
//! resolved longer ago than `resolved_after` go with every row they left (counted per table,
//! exact), firing, pending and recently resolved ones stay exactly as they were, audit rows
//! outlive their alert until `audit_after`; the history of a pruned alert answers 404; deletes
//! run in many short transactions while intake keeps committing; SQLite files are
//! `auto_vacuum = INCREMENTAL` (old files converted at start) and shrink after a prune; the
//! `retention:` section's errors name their key.
//!
//! Old alerts are made by storing them with an old `now` through the store itself (the intake
//! transaction, acks, silences, notices), not by waiting: the store takes time as a parameter.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::seed::{self, event, routed};
use common::{alert, payload, start};
use quantwatch_alert_router::core::clock;
use quantwatch_alert_router::core::model::Status;
use quantwatch_alert_router::store::escalation::{Plan, PlannedStep};
use quantwatch_alert_router::store::retention::{self, Lease, RetentionConfig, Round};
use quantwatch_alert_router::store::{
    AckRequest, AckVia, Notice, RoutedEvent, SilenceRecord, Store,
};
use serde_json::{Value, json};
use testkit::Postgres;

const DAY: i64 = 86_400_000;
/// The test's "now": the store takes time as a parameter.
const NOW: i64 = 1_800_000_000_000;
const API: &str = "api-secret";

/// Direct SQL on the store's database, to count rows and seed what the API cannot.
enum Db {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn open(url: &str) -> Db {
        if url.starts_with("postgres") {
            Db::Pg(sqlx::PgPool::connect(url).await.expect("connect pg"))
        } else {
            Db::Lite(sqlx::SqlitePool::connect(url).await.expect("open sqlite"))
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Db::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Db::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn exec(&self, sql: &str) {
        match self {
            Db::Lite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows of every table retention deletes from.
    async fn counts(&self) -> BTreeMap<&'static str, i64> {
        let mut m = BTreeMap::new();
        for t in retention::TABLES {
            m.insert(t, self.scalar(&format!("SELECT COUNT(*) FROM {t}")).await);
        }
        m
    }
}

fn plan(steps: &[i64]) -> Plan {
    Plan {
        policy: "crit".into(),
        steps: steps
            .iter()
            .enumerate()
            .map(|(i, offset_ms)| PlannedStep {
                offset_ms: *offset_ms,
                step: i as i64,
                channel: "log".into(),
                mentions: vec![],
            })
            .collect(),
    }
}

/// Send everything due on `channel` at `at` (claim, then mark sent).
async fn deliver(store: &dyn Store, channel: &str, at: i64) -> usize {
    let mut n = 0;
    loop {
        let rows = store
            .claim(channel, at, 1000, "test", 60_000)
            .await
            .expect("claim");
        if rows.is_empty() {
            return n;
        }
        n += rows.len();
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        store.mark_sent(&ids, at).await.expect("mark sent");
    }
}

/// A firing at `fire` and its resolve at `resolve`, both notified on `log` and sent.
async fn plain_firing(store: &dyn Store, fps: &[String], fire: i64, resolve: i64) {
    for (status, at) in [(Status::Firing, fire), (Status::Resolved, resolve)] {
        let evs: Vec<RoutedEvent> = fps
            .iter()
            .map(|fp| routed(event(fp, status, fire, "disk almost full"), &["log"], None))
            .collect();
        for chunk in evs.chunks(500) {
            store.ingest(chunk, at).await.expect("ingest");
        }
        deliver(store, "log", at).await;
    }
}

/// An escalated firing: step 0 sent, acknowledged at `ack` (announcement sent), resolved at
/// `resolve` (resolve sent to the chain's channels).
async fn escalated_firing(store: &dyn Store, fp: &str, fire: i64, ack: i64, resolve: i64) {
    store
        .ingest(
            &[routed(
                event(fp, Status::Firing, fire, "escalated"),
                &[],
                Some(plan(&[0, 600_000])),
            )],
            fire,
        )
        .await
        .expect("ingest");
    assert_eq!(deliver(store, "log", fire).await, 1, "step 0 of {fp}");
    let req = AckRequest {
        fingerprint: fp,
        starts_at: Some(fire),
        by: "ann",
        via: AckVia::Api,
        address: Some("10.0.0.7".into()),
    };
    store.acknowledge(&req, ack).await.expect("ack");
    assert_eq!(
        deliver(store, "log", ack).await,
        1,
        "ack announcement of {fp}"
    );
    store
        .ingest(
            &[routed(
                event(fp, Status::Resolved, fire, "escalated"),
                &[],
                None,
            )],
            resolve,
        )
        .await
        .expect("ingest resolve");
    assert_eq!(deliver(store, "log", resolve).await, 1, "resolve of {fp}");
}

fn notice(fp: &str) -> Notice {
    Notice {
        fingerprint: fp.into(),
        channel: "log".into(),
        payload: serde_json::to_string(&event(fp, Status::Firing, NOW, "handoff")).expect("json"),
        mentions: vec![],
    }
}

fn cfg(batch: usize) -> RetentionConfig {
    RetentionConfig {
        resolved_after: Duration::from_secs(90 * 86_400),
        audit_after: Duration::from_secs(200 * 86_400),
        interval: Duration::from_secs(3600),
        batch,
        lease: retention::DEFAULT_LEASE,
    }
}

/// The whole scenario on one store; `url` names its database.
async fn prunes_exactly(store: Arc<dyn Store>, url: &str) {
    let store = store.as_ref();
    let db = Db::open(url).await;
    // Pruned: 450 plain firings resolved 100 days ago; an escalated, acknowledged and
    // silenced one resolved 100 days ago (audit kept: 119 days < audit_after) with a call;
    // an escalated one resolved 299 days ago (audit gone: 300 days > audit_after); the first
    // firing of an alert that fires again now.
    let old: Vec<String> = (0..450).map(|i| format!("old-{i}")).collect();
    plain_firing(store, &old, NOW - 120 * DAY, NOW - 100 * DAY).await;
    escalated_firing(
        store,
        "old-esc",
        NOW - 120 * DAY,
        NOW - 119 * DAY,
        NOW - 100 * DAY,
    )
    .await;
    store
        .record_silence(
            &SilenceRecord {
                id: 0,
                fingerprint: "old-esc".into(),
                starts_at: NOW - 120 * DAY,
                alertname: "Disk".into(),
                labels: [("alertname".to_string(), "Disk".to_string())].into(),
                duration: "1h".into(),
                created_by: "ann".into(),
                created_at: NOW - 119 * DAY,
                ends_at: NOW - 119 * DAY + 3_600_000,
                alertmanagers: vec![],
                expired_at: None,
                expired_by: None,
            },
            "link",
            None,
        )
        .await
        .expect("silence");
    // A call of step 0 and its receipt (the voice path needs a vendor; the rows are the point).
    let step0 = db
        .scalar("SELECT MIN(id) FROM outbox WHERE fingerprint = 'old-esc'")
        .await;
    db.exec(&format!(
        "INSERT INTO voice_calls (call_id, outbox_id, fingerprint, starts_at, channel, step, callee,
           placed_at, outcome, settled_at)
         VALUES ('call-1', {step0}, 'old-esc', {}, 'log', 0, '+8613800000000', {}, 'answered', {})",
        NOW - 120 * DAY,
        NOW - 120 * DAY,
        NOW - 120 * DAY + 30_000
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO voice_receipts (call_id, outcome, status_code, status_msg, body, received_at)
         VALUES ('call-1', 'answered', '200000', 'ok', '{{}}', {})",
        NOW - 120 * DAY + 30_000
    ))
    .await;
    escalated_firing(
        store,
        "ancient",
        NOW - 310 * DAY,
        NOW - 300 * DAY,
        NOW - 299 * DAY,
    )
    .await;
    plain_firing(store, &["flap".into()], NOW - 120 * DAY, NOW - 100 * DAY).await;
    // Kept: the same alert firing again now; one firing for 120 days; one resolved 100 days
    // ago whose resolve is still being retried (pending on a slow channel); one resolved 80
    // days ago.
    store
        .ingest(
            &[routed(
                event("flap", Status::Firing, NOW - 10 * DAY, "again"),
                &["log"],
                None,
            )],
            NOW - 10 * DAY,
        )
        .await
        .expect("ingest");
    deliver(store, "log", NOW - 10 * DAY).await;
    store
        .ingest(
            &[routed(
                event("burning", Status::Firing, NOW - 120 * DAY, "still"),
                &["log"],
                None,
            )],
            NOW - 120 * DAY,
        )
        .await
        .expect("ingest");
    deliver(store, "log", NOW - 120 * DAY).await;
    store
        .ingest(
            &[routed(
                event("retrying", Status::Firing, NOW - 120 * DAY, "x"),
                &["log"],
                None,
            )],
            NOW - 120 * DAY,
        )
        .await
        .expect("ingest");
    deliver(store, "log", NOW - 120 * DAY).await;
    store
        .ingest(
            &[routed(
                event("retrying", Status::Resolved, NOW - 120 * DAY, "x"),
                &["slow"],
                None,
            )],
            NOW - 100 * DAY,
        )
        .await
        .expect("ingest");
    plain_firing(store, &["recent".into()], NOW - 95 * DAY, NOW - 80 * DAY).await;
    // Rota notices: 100 and 300 days ago (sent; pruned), 10 days ago (kept); their claims
    // live until audit_after.
    for (key, at) in [
        ("handoff:primary:1", NOW - 100 * DAY),
        ("handoff:primary:2", NOW - 300 * DAY),
        ("handoff:primary:3", NOW - 10 * DAY),
    ] {
        assert!(
            store
                .enqueue_once(key, &[notice("rota:primary")], at)
                .await
                .expect("notice")
        );
        assert_eq!(deliver(store, "log", at).await, 1, "notice {key}");
    }

    let before = db.counts().await;
    let expect_before: BTreeMap<&str, i64> = [
        ("alert_events", 912),
        ("outbox", 917),
        ("voice_calls", 1),
        ("voice_receipts", 1),
        ("alert_state", 2),
        ("alert_current", 456),
        ("alert_audit", 3),
        ("alert_silences", 1),
        ("rota_claims", 3),
    ]
    .into();
    assert_eq!(before, expect_before, "rows before the prune");
    let kept_rows = |fp: &str| {
        format!(
            "SELECT COUNT(*) FROM outbox o WHERE o.fingerprint = '{fp}'
               AND EXISTS (SELECT 1 FROM alert_events e WHERE e.id = o.event_id)"
        )
    };
    let retrying_before = db.scalar(&kept_rows("retrying")).await;
    let history_before = common::history_of(store, "retrying").await;

    let report = retention::run(store, &cfg(200), NOW).await.expect("prune");

    let after = db.counts().await;
    let expect_after: BTreeMap<&str, i64> = [
        ("alert_events", 6),
        ("outbox", 7),
        ("voice_calls", 0),
        ("voice_receipts", 0),
        ("alert_state", 0),
        ("alert_current", 4),
        ("alert_audit", 2),
        ("alert_silences", 0),
        ("rota_claims", 2),
    ]
    .into();
    assert_eq!(after, expect_after, "rows after the prune");
    for t in retention::TABLES {
        assert_eq!(
            report.rows_of(t) as i64,
            before[t] - after[t],
            "the report's count for {t}"
        );
    }
    assert_eq!(
        report.firings, 453,
        "450 plain, old-esc, ancient, flap's first"
    );
    // Firings in 3 transactions (200 + 200 + 53), then one per sweep that deleted something
    // (audit, silences, notices, claims).
    assert_eq!(report.batches, 7);

    // What is kept is kept exactly.
    assert_eq!(db.scalar(&kept_rows("retrying")).await, retrying_before);
    assert_eq!(common::history_of(store, "retrying").await, history_before);
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM alert_events WHERE fingerprint IN ('burning', 'recent', 'flap')"
        )
        .await,
        1 + 2 + 1
    );
    let flap = common::history_of(store, "flap").await;
    assert_eq!(
        flap.iter()
            .map(|h| (h.action.as_str(), h.starts_at))
            .collect::<Vec<_>>(),
        vec![("firing", NOW - 10 * DAY), ("notified", NOW - 10 * DAY)],
        "only the firing of now is left of flap"
    );
    // The audit trail outlives old-esc (119 days < 200), but its history is gone.
    assert!(common::history_of(store, "old-esc").await.is_empty());
    assert!(common::history_of(store, "old-7").await.is_empty());
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM alert_audit WHERE fingerprint = 'old-esc'")
            .await,
        2
    );
    assert_eq!(
        store
            .list_current("firing", 100)
            .await
            .expect("current")
            .iter()
            .map(|c| c.fingerprint.as_str())
            .collect::<Vec<_>>(),
        vec!["burning", "flap"]
    );

    // Nothing more is due: a second run deletes nothing.
    let again = retention::run(store, &cfg(200), NOW).await.expect("prune");
    assert!(again.rows.is_empty(), "{:?}", again.rows);
    assert_eq!(db.counts().await, expect_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prunes_old_firings_with_all_their_rows_and_keeps_live_ones_on_sqlite() {
    let (_, store, url, _dir) = common::config_and_store("", None).await;
    prunes_exactly(store, &url).await;
}

#[test]
fn prunes_old_firings_with_all_their_rows_and_keeps_live_ones_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_database("router");
    common::runtime().block_on(async {
        let (_, store, url, _dir) = common::config_and_store("", Some(url)).await;
        prunes_exactly(store, &url).await;
    });
}

/// `n` firings named `{tag}-{i}`, resolved 100 days before `now`, unnotified.
async fn seed_round(store: &dyn Store, tag: &str, n: usize, now: i64) {
    let fps: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    seed::resolved_firings(store, &fps, now - 120 * DAY, now - 100 * DAY, tag).await;
}

/// One runner among replicas sharing PostgreSQL: two store handles on one database play two
/// replicas. Both start a round at once: exactly one prunes the round's firings, the other
/// skips it naming the first and deletes nothing; the runner keeps the lease for the
/// interval, so at the next round the other skips again (told when the last round finished)
/// and the runner prunes. Then the runner dies mid-round (its last renewal, 3 s, left
/// behind): the other skips while that lease lasts and prunes everything due once it has
/// expired. Real time (the lease is compared with the caller's clock), no fixed waits.
#[test]
fn one_replica_runs_each_round_and_another_takes_over_when_its_lease_expires_on_postgres() {
    const FIRST: usize = 600;
    const SECOND: usize = 300;
    const THIRD: usize = 200;
    let pg = Postgres::start();
    let url = pg.create_database("router");
    common::runtime().block_on(async {
        let (_, a, url, _dir) = common::config_and_store("", Some(url)).await;
        let b = quantwatch_alert_router::store::open(&url, false)
            .await
            .expect("the second replica's store");
        let db = Db::open(&url).await;
        let events = || db.scalar("SELECT COUNT(*) FROM alert_events");
        let cfg = cfg(50);

        let now = clock::now_ms();
        seed_round(a.as_ref(), "first", FIRST, now).await;
        let (ra, rb) = tokio::join!(
            retention::run_as(a.as_ref(), &cfg, "replica-a", now),
            retention::run_as(b.as_ref(), &cfg, "replica-b", now),
        );
        let (ra, rb) = (
            ra.expect("replica-a's round"),
            rb.expect("replica-b's round"),
        );
        let ((runner, run_store), (other, other_store), report, by) = match (&ra, &rb) {
            (Round::Ran(rep), Round::Skipped { by, .. }) => {
                (("replica-a", &a), ("replica-b", &b), rep, by)
            }
            (Round::Skipped { by, .. }, Round::Ran(rep)) => {
                (("replica-b", &b), ("replica-a", &a), rep, by)
            }
            both => panic!("exactly one replica must run the round, not {both:?}"),
        };
        assert_eq!(by, runner, "the skipping replica names the runner");
        assert_eq!(report.firings, FIRST as u64);
        assert_eq!(report.rows_of("alert_events"), 2 * FIRST as u64);
        assert!(!report.lost_lease);
        assert_eq!(events().await, 0, "the round pruned every due firing");
        let done = db
            .scalar("SELECT done_at FROM store_leases WHERE name = 'retention'")
            .await;
        assert!(done >= now, "the round's end recorded: {done} < {now}");

        // The next round: the runner kept the lease for the interval (1 h).
        let now = clock::now_ms();
        seed_round(a.as_ref(), "second", SECOND, now).await;
        match retention::run_as(other_store.as_ref(), &cfg, other, now)
            .await
            .expect("the other replica's second round")
        {
            Round::Skipped { by, done_ms, .. } => {
                assert_eq!(by, runner);
                assert_eq!(done_ms, Some(done), "when the last round finished");
            }
            ran => panic!("{other} ran while {runner} holds the lease: {ran:?}"),
        }
        assert_eq!(
            events().await,
            2 * SECOND as i64,
            "nothing pruned by the skip"
        );
        match retention::run_as(run_store.as_ref(), &cfg, runner, now)
            .await
            .expect("the runner's second round")
        {
            Round::Ran(rep) => assert_eq!(rep.firings, SECOND as u64),
            skipped => panic!("{runner} skipped its own lease: {skipped:?}"),
        }

        // The runner renews its lease mid-round for 3 s, then dies: the lease stays behind.
        let now = clock::now_ms();
        seed_round(a.as_ref(), "third", THIRD, now).await;
        let renewed = run_store
            .take_lease(retention::LEASE_NAME, runner, now, now + 3_000)
            .await
            .expect("renew");
        assert_eq!(renewed, Lease::Granted);
        let until = db
            .scalar("SELECT lease_until FROM store_leases WHERE name = 'retention'")
            .await;
        let skips = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (report, at) = common::wait_for(
            Duration::from_secs(30),
            "the other replica taking over once the dead runner's lease expired",
            || {
                let (store, cfg, skips) = (other_store.clone(), cfg.clone(), skips.clone());
                async move {
                    let at = clock::now_ms();
                    match retention::run_as(store.as_ref(), &cfg, other, at)
                        .await
                        .expect("the other replica's round")
                    {
                        Round::Ran(rep) => Ok((rep, at)),
                        Round::Skipped { by, until_ms, .. } => {
                            assert_eq!(by, runner);
                            assert_eq!(until_ms, until);
                            assert!(at <= until, "skipped at {at}, after the lease ({until})");
                            skips.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            Err(until - at)
                        }
                    }
                }
            },
        )
        .await;
        assert!(
            skips.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "the round right after the renewal skipped"
        );
        assert!(
            at > until,
            "took over at {at}, before the lease expired ({until})"
        );
        assert_eq!(report.firings, THIRD as u64);
        assert_eq!(events().await, 0);
        let holder: String = match &db {
            Db::Pg(p) => {
                sqlx::query_scalar("SELECT claimed_by FROM store_leases WHERE name = 'retention'")
                    .fetch_one(p)
                    .await
                    .expect("holder")
            }
            Db::Lite(_) => unreachable!("a PostgreSQL database"),
        };
        assert_eq!(holder, other);
    });
}

/// A runner that loses the lease mid-round (it stalled past its expiry and another replica
/// took it) stops at its next renewal, between two batches, instead of running on beside the
/// new holder; the new holder prunes the rest. Together every due firing, each once.
#[test]
fn a_runner_that_loses_its_lease_mid_round_stops_and_the_new_holder_prunes_the_rest_on_postgres() {
    const FIRINGS: usize = 4000;
    let pg = Postgres::start();
    let url = pg.create_database("router");
    common::runtime().block_on(async {
        let (_, a, url, _dir) = common::config_and_store("", Some(url)).await;
        let b = quantwatch_alert_router::store::open(&url, false)
            .await
            .expect("the second replica's store");
        let db = Db::open(&url).await;
        let now = clock::now_ms();
        seed_round(a.as_ref(), "long", FIRINGS, now).await;
        // 25 firings a batch: 160 batches, each followed by a pause; renewed every 100 ms.
        let cfg = RetentionConfig {
            lease: Duration::from_millis(300),
            ..cfg(25)
        };
        let running = {
            let (a, cfg) = (a.clone(), cfg.clone());
            tokio::spawn(async move { retention::run_as(a.as_ref(), &cfg, "replica-a", now).await })
        };
        let seeded = 2 * FIRINGS as i64;
        common::wait_for(
            Duration::from_secs(30),
            "replica-a's round deleting its first batch",
            || async {
                let n = db.scalar("SELECT COUNT(*) FROM alert_events").await;
                if n < seeded { Ok(n) } else { Err(n) }
            },
        )
        .await;
        // replica-a "stalled" past its lease, which replica-b took meanwhile (one statement:
        // replica-a renewing in between must not win the race this test sets up).
        db.exec(&format!(
            "UPDATE store_leases SET claimed_by = 'replica-b', lease_until = {}
             WHERE name = 'retention'",
            clock::now_ms() + 60_000
        ))
        .await;
        let first = match running
            .await
            .expect("replica-a's task")
            .expect("replica-a's round")
        {
            Round::Ran(rep) => rep,
            skipped => panic!("replica-a had the lease: {skipped:?}"),
        };
        assert!(first.lost_lease, "replica-a noticed: {first:?}");
        assert!(
            first.firings > 0 && first.firings < FIRINGS as u64,
            "replica-a stopped mid-round: {} of {FIRINGS}",
            first.firings
        );
        let second = match retention::run_as(b.as_ref(), &cfg, "replica-b", clock::now_ms())
            .await
            .expect("replica-b's round")
        {
            Round::Ran(rep) => rep,
            skipped => panic!("replica-b holds the lease: {skipped:?}"),
        };
        assert!(!second.lost_lease);
        assert_eq!(first.firings + second.firings, FIRINGS as u64);
        assert_eq!(
            first.rows_of("alert_events") + second.rows_of("alert_events"),
            seeded as u64
        );
        assert_eq!(db.scalar("SELECT COUNT(*) FROM alert_events").await, 0);
    });
}

/// SQLite: one process per file, no lease (no table either); every round runs, whoever asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_runs_on_sqlite_without_a_lease() {
    let (_, store, url, _dir) = common::config_and_store("", None).await;
    let db = Db::open(&url).await;
    let now = clock::now_ms();
    seed_round(store.as_ref(), "lite", 100, now).await;
    for (holder, firings) in [("replica-a", 100), ("replica-b", 0)] {
        match retention::run_as(store.as_ref(), &cfg(50), holder, now)
            .await
            .expect("round")
        {
            Round::Ran(rep) => assert_eq!(rep.firings, firings, "{holder}"),
            skipped => panic!("{holder} skipped on SQLite: {skipped:?}"),
        }
    }
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'store_leases'")
            .await,
        0
    );
}

/// `firings` plain firings resolved 100 days ago, without notifications (fast to store).
async fn seed_old(store: &dyn Store, firings: usize, note: &str) {
    let fps: Vec<String> = (0..firings).map(|i| format!("bulk-{i}")).collect();
    seed::resolved_firings(store, &fps, NOW - 120 * DAY, NOW - 100 * DAY, note).await;
}

/// Intake keeps committing during a long prune: the prune is many short transactions, and
/// webhook-sized ingests interleave with them instead of waiting for the run.
async fn intake_is_not_held_back(store: Arc<dyn Store>) {
    const FIRINGS: usize = 4000;
    const BATCH: usize = 100;
    seed_old(store.as_ref(), FIRINGS, "bulk").await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ingests = {
        let (store, running) = (store.clone(), running.clone());
        tokio::spawn(async move {
            // (latency, finished while the prune still ran)
            let mut seen: Vec<(Duration, bool)> = Vec::new();
            let mut i = 0;
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                let ev = routed(
                    event(&format!("live-{i}"), Status::Firing, NOW, "live"),
                    &[],
                    None,
                );
                let t = Instant::now();
                store.ingest(&[ev], NOW).await.expect("ingest during prune");
                seen.push((
                    t.elapsed(),
                    running.load(std::sync::atomic::Ordering::SeqCst),
                ));
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let cfg = RetentionConfig {
        batch: BATCH,
        ..cfg(BATCH)
    };
    let t = Instant::now();
    let report = retention::run(store.as_ref(), &cfg, NOW)
        .await
        .expect("prune");
    let run = t.elapsed();
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    let seen = ingests.await.expect("ingest task");
    assert_eq!(report.firings, FIRINGS as u64);
    assert_eq!(report.rows_of("alert_events"), 2 * FIRINGS as u64);
    // 4,000 firings at 100 per transaction: 40 transactions, each a point where intake gets in.
    assert_eq!(report.batches, (FIRINGS / BATCH) as u64);
    let during: Vec<Duration> = seen.iter().filter(|s| s.1).map(|s| s.0).collect();
    assert!(
        during.len() >= 3,
        "webhook-sized ingests committed while the prune ran ({run:?}): {} of {}",
        during.len(),
        seen.len()
    );
    let worst = seen.iter().map(|s| s.0).max().unwrap_or_default();
    assert!(
        worst < run / 2,
        "the slowest ingest ({worst:?}) waited for a batch, not for the run ({run:?})"
    );
    // The live alerts are all there.
    assert_eq!(
        store
            .list_current("firing", 100_000)
            .await
            .expect("current")
            .len(),
        seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_commits_between_batches_of_a_long_prune_on_sqlite() {
    let (_, store, _url, _dir) = common::config_and_store("", None).await;
    intake_is_not_held_back(store).await;
}

#[test]
fn intake_commits_between_batches_of_a_long_prune_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_database("router");
    common::runtime().block_on(async {
        let (_, store, _url, _dir) = common::config_and_store("", Some(url)).await;
        intake_is_not_held_back(store).await;
    });
}

/// The router itself: short durations, a run every 200 ms; a resolved alert's history
/// answers 404 with a JSON reason once it is pruned, a firing one stays; the self-metrics
/// count the rows.
async fn router_prunes(db_url: Option<String>) {
    let mut env = vec![("ROUTER_API_TOKEN", API)];
    if let Some(u) = &db_url {
        env.push(("ROUTER_DATABASE_URL", u.as_str()));
    }
    let r = start(
        "retention:\n  resolved_after: 1s\n  audit_after: 1s\n  interval: 200ms\n\
         delivery:\n  poll_interval: 50ms\n",
        &env,
    )
    .await;
    let gone = alert("Gone", "firing", "2026-01-01T00:00:00Z", &[]);
    let burning = alert("Burning", "firing", "2026-01-01T00:00:00Z", &[]);
    assert_eq!(r.post(&payload("g", vec![gone, burning])).await.0, 200);
    let resolved = alert("Gone", "resolved", "2026-01-01T00:00:00Z", &[]);
    assert_eq!(r.post(&payload("g", vec![resolved])).await.0, 200);
    let client = reqwest::Client::new();
    let history = |fp: &'static str| {
        let (client, url) = (client.clone(), r.url.clone());
        async move {
            let resp = client
                .get(format!("{url}/api/v1/alerts/{fp}/history"))
                .bearer_auth(API)
                .send()
                .await
                .expect("history");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(history("fp-Gone").await.0, 200, "stored before the prune");
    let body = common::wait_for(
        Duration::from_secs(30),
        "the resolved alert's history answering 404",
        || async {
            match history("fp-Gone").await {
                (404, b) => Ok(b),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(body["error"], "not_found");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("retention.resolved_after")),
        "{body}"
    );
    let (s, b) = history("fp-Burning").await;
    assert_eq!(s, 200);
    assert_eq!(b["history"][0]["action"], "firing");
    // Gone: 2 events, 2 notifications (firing, resolve), its status row; nothing of Burning.
    for (table, n) in [
        ("alert_events", 2.0),
        ("outbox", 2.0),
        ("alert_current", 1.0),
    ] {
        let series = format!("quantwatch_router_retention_pruned_rows_total{{table=\"{table}\"}}");
        assert_eq!(r.metric(&series).await, Some(n), "{series}");
    }
    assert_eq!(
        r.metric("quantwatch_router_retention_pruned_rows_total{table=\"voice_calls\"}")
            .await,
        Some(0.0)
    );
    let size = r.metric("quantwatch_router_store_size_bytes").await;
    assert!(size.is_some_and(|s| s > 4096.0), "store size {size:?}");
    // SQLite's own memory (its page caches and schema, through malloc) is part of what the
    // allocator reports in use; both are read at the scrape.
    let sqlite = r.metric("quantwatch_router_sqlite_heap_bytes").await;
    let in_use = r
        .metric("quantwatch_router_heap_bytes{state=\"in_use\"}")
        .await;
    let free = r
        .metric("quantwatch_router_heap_bytes{state=\"free\"}")
        .await;
    if db_url.is_none() {
        assert!(
            sqlite.is_some_and(|b| b > 50_000.0),
            "SQLite heap {sqlite:?}"
        );
    }
    assert!(
        in_use.zip(sqlite).is_some_and(|(h, s)| h > s),
        "heap in use {in_use:?} must hold SQLite's {sqlite:?}"
    );
    // Its value is whatever glibc keeps; what can fail here is the series missing.
    assert!(free.is_some(), "no heap_bytes{{state=\"free\"}} series");
    let last = r
        .metric("quantwatch_router_retention_last_run_timestamp_seconds")
        .await;
    assert!(
        last.is_some_and(|t| t > 1.7e9),
        "last run timestamp {last:?}"
    );
    assert!(
        r.metric("quantwatch_router_retention_batches_total")
            .await
            .is_some_and(|b| b >= 1.0)
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_alerts_history_answers_404_on_sqlite() {
    router_prunes(None).await;
}

#[test]
fn a_pruned_alerts_history_answers_404_on_postgres() {
    let pg = Postgres::start();
    let url = pg.create_database("router");
    common::runtime().block_on(router_prunes(Some(url)));
}

async fn pragma(pool: &sqlx::SqlitePool, name: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT * FROM pragma_{name}()"))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sqlite_file_is_incremental_and_shrinks_after_a_prune() {
    let (_, store, url, dir) = common::config_and_store("", None).await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    assert_eq!(pragma(&pool, "auto_vacuum").await, 2, "INCREMENTAL");
    // ~2 KiB of annotation per event: 3,000 firings make a file of ~15 MB.
    seed_old(store.as_ref(), 3000, &"x".repeat(2048)).await;
    let file = dir.path().join("router.db");
    let disk = |f: &std::path::Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    // The background checkpoint copies the WAL into the file.
    let pages_before = pragma(&pool, "page_count").await;
    let grown = common::wait_for(Duration::from_secs(30), "the WAL checkpointed", || async {
        let n = disk(&file);
        if n >= (pages_before as u64) * 4096 * 9 / 10 {
            Ok(n)
        } else {
            Err(n)
        }
    })
    .await;
    assert!(grown > 12_000_000, "seeded file is {grown} bytes");
    let report = retention::run(store.as_ref(), &cfg(200), NOW)
        .await
        .expect("prune");
    assert_eq!(report.firings, 3000);
    let pages_after = pragma(&pool, "page_count").await;
    assert!(
        pages_after * 10 < pages_before,
        "pages {pages_before} -> {pages_after}: the free pages went back to the file system"
    );
    assert!(report.reclaimed_pages as i64 >= pages_before - pages_after - 10);
    assert_eq!(pragma(&pool, "freelist_count").await, 0);
    assert_eq!(
        store.size_bytes().await.expect("size"),
        pages_after * pragma(&pool, "page_size").await
    );
    // And the file on disk follows at the next checkpoint.
    let shrunk = common::wait_for(Duration::from_secs(30), "the file shrinking", || async {
        let n = disk(&file);
        if n * 5 < grown { Ok(n) } else { Err(n) }
    })
    .await;
    assert!(shrunk < 2_500_000, "{grown} -> {shrunk} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_sqlite_file_is_converted_to_incremental_auto_vacuum_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/router.db", dir.path().display());
    // A file as earlier versions made it: auto_vacuum NONE, WAL, the migrations, data.
    {
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
        let pool = sqlx::SqlitePool::connect_with(
            opts.create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await
        .expect("create");
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .expect("migrate");
        assert_eq!(pragma(&pool, "auto_vacuum").await, 0, "NONE, as before");
        for i in 0..50 {
            sqlx::query(
                "INSERT INTO alert_events (group_key, fingerprint, status, starts_at, payload, received_at)
                 VALUES ('g', $1, 'firing', 1, '{}', 1)",
            )
            .bind(format!("fp-{i}"))
            .execute(&pool)
            .await
            .expect("insert");
        }
        pool.close().await;
    }
    let store = quantwatch_alert_router::store::open(&url, false)
        .await
        .expect("open converts");
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    assert_eq!(pragma(&pool, "auto_vacuum").await, 2, "INCREMENTAL now");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alert_events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 50, "nothing lost by the conversion");
    // And the store works on it.
    let ev = routed(event("after", Status::Firing, NOW, "x"), &[], None);
    assert_eq!(store.ingest(&[ev], NOW).await.expect("ingest"), vec![true]);
    drop(store);
    // A second start finds it converted (nothing to do) and opens as usual.
    quantwatch_alert_router::store::open(&url, false)
        .await
        .expect("reopen");
    assert_eq!(pragma(&pool, "auto_vacuum").await, 2);
}

fn load(yaml: &str) -> Result<quantwatch_alert_router::app::config::Config, Vec<(String, String)>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("router.yml");
    std::fs::write(&path, yaml).expect("write");
    let env: std::collections::HashMap<String, String> = Default::default();
    quantwatch_alert_router::app::config::load(Some(&path), &env)
        .map_err(|e| e.0.into_iter().map(|p| (p.key, p.reason)).collect())
}

#[test]
fn retention_config_defaults_and_errors_name_the_key() {
    let c = load("").expect("no retention section");
    assert_eq!(
        c.retention,
        RetentionConfig {
            resolved_after: Duration::from_secs(90 * 86_400),
            audit_after: Duration::from_secs(400 * 86_400),
            interval: Duration::from_secs(3600),
            batch: retention::DEFAULT_BATCH,
            lease: Duration::from_secs(120),
        }
    );
    let c = load("retention:\n  resolved_after: 30d\n").expect("one key");
    assert_eq!(c.retention.resolved_after, Duration::from_secs(30 * 86_400));
    assert_eq!(c.retention.audit_after, Duration::from_secs(400 * 86_400));

    let e = load("retention:\n  resolved_after: ninety days\n").expect_err("bad duration");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "retention.resolved_after");
    assert!(e[0].1.contains("is not a duration"), "{e:?}");

    let e = load("retention:\n  resolved_after: 90d\n  audit_after: 30d\n").expect_err("short");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "retention.audit_after");
    assert!(
        e[0].1.contains("shorter than retention.resolved_after"),
        "{e:?}"
    );

    let e = load("retention:\n  interval: 0s\n").expect_err("zero");
    assert_eq!(e[0].0, "retention.interval");
    assert_eq!(e[0].1, "must be greater than zero");

    let e = load("retention:\n  keep_for: 1d\n").expect_err("unknown key");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].0.starts_with("retention"), "{e:?}");
    assert!(e[0].1.contains("keep_for"), "{e:?}");
}

/// The 404 answer and a JSON reason also for an alert never received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_an_unknown_alert_is_404_with_a_reason() {
    let r = start("", &[("ROUTER_API_TOKEN", API)]).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts/nope/history", r.url))
        .bearer_auth(API)
        .send()
        .await
        .expect("history");
    assert_eq!(resp.status().as_u16(), 404);
    let b: Value = resp.json().await.expect("json");
    assert_eq!(b["error"], json!("not_found"));
    r.shutdown().await;
}
