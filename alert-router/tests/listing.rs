//! Bounded listings (issue 22): `/api/v1/alerts`, `/api/v1/notifications` and an alert's history
//! by keyset page,
//! the status page by page of 100 with its "N more" line, bad cursors and limits refused with
//! 400 and a JSON reason, and each listing statement planned on an index (no table scan, no
//! sort of a table) — on SQLite and on a real PostgreSQL.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use quantwatch_alert_router::core::model::{AlertEvent, Status};
use quantwatch_alert_router::store::escalation::{Plan, PlannedStep};
use quantwatch_alert_router::store::sql::reads::{Listing, Param, listings};
use quantwatch_alert_router::store::{RoutedEvent, Store};
use serde_json::Value;
use sqlx::{Connection, Row};

const API: &str = "listing-api-token";
const T0: i64 = 1_800_000_000_000;

fn event(fp: &str, name: &str, status: Status, starts_at: i64) -> AlertEvent {
    AlertEvent {
        group_key: "{}:{}".into(),
        fingerprint: fp.into(),
        status,
        labels: [("alertname", name), ("severity", "critical")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary", format!("{name} <b>summary</b>"))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        starts_at,
        ends_at: None,
        generator_url: None,
        receiver: None,
    }
}

fn routed(ev: AlertEvent, escalated: bool) -> RoutedEvent {
    RoutedEvent {
        event: ev,
        channels: vec!["log".into()],
        escalation: escalated.then(|| Plan {
            policy: "desk".into(),
            steps: vec![PlannedStep {
                offset_ms: 3_600_000,
                step: 0,
                channel: "log".into(),
                mentions: vec![],
            }],
        }),
    }
}

/// 250 escalated alerts: 200 stored in one group commit (so their chains share one start
/// time and only the fingerprint orders them), 50 more one per commit; one fingerprint is
/// hostile text. Plus 30 firing alerts that are not escalated and 40 resolved ones.
/// Returns the escalated fingerprints in the API's order.
async fn seed(store: &dyn Store) -> Vec<String> {
    let mut fps: Vec<(i64, String)> = Vec::new();
    let batch: Vec<RoutedEvent> = (0..200)
        .map(|i| {
            let fp = if i == 77 {
                "fp-<b>\"&x\" ü".to_string()
            } else {
                format!("fp-storm-{i:03}")
            };
            fps.push((T0, fp.clone()));
            routed(
                event(&fp, &format!("Storm{i:03}"), Status::Firing, T0 - i),
                true,
            )
        })
        .collect();
    store.ingest(&batch, T0).await.expect("ingest storm");
    for i in 0..50 {
        let fp = format!("fp-late-{i:02}");
        let at = T0 + 1000 + i;
        store
            .ingest(
                &[routed(
                    event(&fp, &format!("Late{i:02}"), Status::Firing, at),
                    true,
                )],
                at,
            )
            .await
            .expect("ingest late");
        fps.push((at, fp));
    }
    let plain: Vec<RoutedEvent> = (0..30)
        .map(|i| {
            routed(
                event(
                    &format!("fp-plain-{i:02}"),
                    &format!("Plain{i:02}"),
                    Status::Firing,
                    T0 + 5000 + i,
                ),
                false,
            )
        })
        .collect();
    store.ingest(&plain, T0 + 6000).await.expect("ingest plain");
    for status in [Status::Firing, Status::Resolved] {
        let gone: Vec<RoutedEvent> = (0..40)
            .map(|i| {
                routed(
                    event(&format!("fp-gone-{i:02}"), "Gone", status, T0 - 10_000),
                    true,
                )
            })
            .collect();
        store.ingest(&gone, T0 - 9000).await.expect("ingest gone");
    }
    fps.sort();
    fps.into_iter().map(|(_, fp)| fp).collect()
}

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(API)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn page_text(url: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(API)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.expect("page"))
}

/// Every page of `url` with `limit` rows a page, following `next`: each page's `key` rows.
/// After page `at_page`, `meanwhile` changes the store. Every page but the last is full, and
/// `next` is null on the last.
async fn walk_pages(
    url: &str,
    key: &str,
    limit: usize,
    at_page: usize,
    meanwhile: impl AsyncFnOnce(),
) -> Vec<Vec<Value>> {
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut meanwhile = Some(meanwhile);
    let mut cursor: Option<String> = None;
    loop {
        let page = pages.len();
        assert!(page < 100, "paging did not end");
        let page_url = match &cursor {
            Some(c) => format!("{url}?limit={limit}&cursor={c}"),
            None => format!("{url}?limit={limit}"),
        };
        let (status, v) = get(&page_url).await;
        assert_eq!(status, 200, "{page_url}: {v}");
        let rows = v[key].as_array().expect(key).clone();
        assert!(rows.len() <= limit, "page {page} has {} rows", rows.len());
        if page == at_page
            && let Some(change) = meanwhile.take()
        {
            change().await;
        }
        match v["next"].as_str() {
            Some(next) => {
                assert_eq!(rows.len(), limit, "a page before the last is full");
                cursor = Some(next.to_string());
                pages.push(rows);
            }
            None => {
                assert!(v["next"].is_null(), "next is null on the last page: {v}");
                pages.push(rows);
                return pages;
            }
        }
    }
}

/// Every page of `/api/v1/alerts?limit=7`: the fingerprints in order.
async fn all_alert_pages(base: &str, store: &dyn Store, resolve_at_page: usize) -> Vec<String> {
    let url = format!("{base}/api/v1/alerts");
    // An alert of a later page resolves meanwhile: it leaves, nothing else moves.
    let resolve = async || {
        let ev = event("fp-late-40", "Late40", Status::Resolved, T0 + 1040);
        store
            .ingest(&[routed(ev, false)], T0 + 9000)
            .await
            .expect("resolve");
    };
    walk_pages(&url, "alerts", 7, resolve_at_page, resolve)
        .await
        .iter()
        .flatten()
        .map(|a| a["fingerprint"].as_str().expect("fp").to_string())
        .collect()
}

/// Run `sql` (no parameters) on the store at `db_url`, SQLite or PostgreSQL.
async fn exec(db_url: &str, sql: &str) {
    if db_url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(db_url)
            .await
            .expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("seed sql");
    } else {
        let mut c = sqlx::PgConnection::connect(db_url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("seed sql");
    }
}

/// The history's fingerprint: hostile text, in SQL and in the URL path.
const HIST_FP: &str = "fp-hist <b>'\"&/ü";
/// Its rows' times: a future the router's retention leaves alone.
const TH: i64 = T0 + 100_000;

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One history entry as a comparable line: what it is and what makes it unique.
fn entry_line(e: &Value) -> String {
    format!(
        "{} {} {} {} {} {}",
        e["at"], e["action"], e["starts_at"], e["by"], e["channel"], e["callee"]
    )
}

/// One seeded history row: its time, the SQL of its values, its entry's line.
type SeedRow = (i64, String, String);

/// Rows of all four history tables for [`HIST_FP`], several to a millisecond within a table
/// and across tables, inserted in id order. Returns the entries' lines in the history's
/// order (time, table: event, audit, send, call; id).
async fn seed_history(db_url: &str) -> Vec<String> {
    let fp = HIST_FP.replace('\'', "''");
    let line =
        |at: i64, action: &str, starts_at: i64, [by, channel, callee]: [Option<String>; 3]| {
            entry_line(&serde_json::json!({
                "at": at, "action": action, "starts_at": starts_at,
                "by": by, "channel": channel, "callee": callee,
            }))
        };
    // 120 events, 4 to a millisecond: each firing's resolve.
    let events = (0..120_i64).map(|i| {
        let status = if i % 2 == 0 { "firing" } else { "resolved" };
        let (starts_at, at) = (T0 + (i / 2) * 1000, TH + i / 4);
        let values = format!("('g', '{fp}', '{status}', {starts_at}, '{{}}', {at})");
        (at, values, line(at, status, starts_at, [None, None, None]))
    });
    // 90 audit rows, 3 to a millisecond.
    let audit = (0..90_i64).map(|i| {
        let at = TH + i / 3;
        let values = format!("('{fp}', {T0}, {at}, 'ack', 'a{i}', 'api')");
        (
            at,
            values,
            line(at, "ack", T0, [Some(format!("a{i}")), None, None]),
        )
    });
    // 150 sends of the first firing, 5 to a millisecond, of each kind.
    let sends = (0..150_i64).map(|i| {
        let at = TH + i / 5;
        let kinds = [
            ("escalate", "step"),
            ("notify", "notified"),
            ("ack", "ack_announced"),
        ];
        let (kind, action) = kinds[i as usize % 3];
        let values = format!(
            "((SELECT id FROM alert_events WHERE fingerprint = '{fp}' AND status = 'firing'
                AND starts_at = {T0}), '{fp}', 'c{i}', '{kind}', 'sent', {i}, {at}, {at}, {at})"
        );
        (
            at,
            values,
            line(at, action, T0, [None, Some(format!("c{i}")), None]),
        )
    });
    // 40 calls, 2 to a millisecond.
    let calls = (0..40_i64).map(|i| {
        let (at, callee) = (TH + i / 2, format!("1380000{i:04}"));
        let values = format!("(0, '{fp}', {T0}, 'voice', 0, '{callee}', {at}, 'answered', {at})");
        (
            at,
            values,
            line(at, "call", T0, [None, Some("voice".into()), Some(callee)]),
        )
    });
    let tables: [(&str, Vec<SeedRow>); 4] = [
        (
            "alert_events (group_key, fingerprint, status, starts_at, payload, received_at)",
            events.collect(),
        ),
        (
            "alert_audit (fingerprint, starts_at, at, action, actor, via)",
            audit.collect(),
        ),
        (
            "outbox (event_id, fingerprint, channel, kind, state, step, due_at, created_at, sent_at)",
            sends.collect(),
        ),
        (
            "voice_calls (outbox_id, fingerprint, starts_at, channel, step, callee, placed_at, outcome, settled_at)",
            calls.collect(),
        ),
    ];
    let mut sql = String::new();
    let mut expected: Vec<(i64, usize, usize, String)> = Vec::new();
    for (source, (into, rows)) in tables.into_iter().enumerate() {
        let values: Vec<&str> = rows.iter().map(|(_, v, _)| v.as_str()).collect();
        sql.push_str(&format!(
            "INSERT INTO {into} VALUES {};\n",
            values.join(", ")
        ));
        for (i, (at, _, line)) in rows.into_iter().enumerate() {
            expected.push((at, source, i, line));
        }
    }
    exec(db_url, &sql).await;
    expected.sort();
    expected.into_iter().map(|(_, _, _, l)| l).collect()
}

/// `GET /api/v1/alerts/{fp}/history` page by page: every entry once, in order, across ties
/// within and across tables, while newer entries arrive between pages.
async fn check_history_pages(base: &str, db_url: &str) {
    let expected = seed_history(db_url).await;
    assert_eq!(expected.len(), 400);
    let url = format!("{base}/api/v1/alerts/{}/history", percent(HIST_FP));

    // The default page: the newest 100, oldest first; then all of them in one page.
    let lines = |v: &Value| -> Vec<String> {
        v["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(entry_line)
            .collect()
    };
    let (status, v) = get(&url).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["fingerprint"], HIST_FP);
    assert_eq!(lines(&v), expected[300..], "the default page");
    assert!(v["next"].is_string(), "{}", v["next"]);
    let (_, v) = get(&format!("{url}?limit=1000")).await;
    assert_eq!(lines(&v), expected, "all in one page");
    assert!(v["next"].is_null());

    // Back page by page; newer rows arrive after the third page and stay out of the walk.
    let arrive = async || {
        let fp = HIST_FP.replace('\'', "''");
        exec(
            db_url,
            &format!(
                "INSERT INTO alert_events (group_key, fingerprint, status, starts_at, payload, received_at)
                   VALUES ('g', '{fp}', 'firing', {}, '{{}}', {});
                 INSERT INTO alert_audit (fingerprint, starts_at, at, action, actor, via)
                   VALUES ('{fp}', {T0}, {}, 'ack', 'late', 'api')",
                T0 + 500_000,
                TH + 10_000,
                TH + 10_000
            ),
        )
        .await;
    };
    let pages = walk_pages(&url, "history", 37, 2, arrive).await;
    assert_eq!(pages.len(), 11);
    let mut walked: Vec<String> = Vec::new();
    for (page, rows) in pages.iter().enumerate() {
        let mut lines: Vec<String> = rows.iter().map(entry_line).collect();
        let mut sorted = lines.clone();
        sorted.sort_by_key(|l| l.split(' ').next().and_then(|t| t.parse::<i64>().ok()));
        assert_eq!(lines, sorted, "page {page} reads oldest first");
        lines.reverse();
        walked.extend(lines);
    }
    walked.reverse();
    assert_eq!(walked, expected, "each entry once, in order, over 11 pages");

    // Past the oldest entry: an empty last page, not 404; unknown alerts: 404.
    let oldest = quantwatch_alert_router::store::HistoryKey {
        at: TH,
        source: quantwatch_alert_router::store::history::Source::Event,
        id: 0,
    };
    let (status, v) = get(&format!("{url}?cursor={}", oldest.cursor().encode())).await;
    assert_eq!(
        (status, v["history"].clone(), v["next"].clone()),
        (200, serde_json::json!([]), Value::Null)
    );
    for path in [
        "never-seen/history",
        "never-seen/history?limit=5&cursor=5.303a31",
    ] {
        let (status, v) = get(&format!("{base}/api/v1/alerts/{path}")).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (404, Some("not_found")),
            "{path}: {v}"
        );
    }
    // A cursor of another listing is not one of the history's.
    for bad in ["5", "5.6670", "5.343a31"] {
        let (status, v) = get(&format!("{url}?cursor={bad}")).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(
            v["reason"].as_str().unwrap_or_default().contains("cursor"),
            "{v}"
        );
    }
}

async fn check_api_and_page(db_url: String) {
    let (_cfg, store, _, _dir) =
        common::config_and_store("delivery:\n  poll_interval: 200ms\n", Some(db_url.clone())).await;
    let expected = seed(store.as_ref()).await;
    let r = common::start(
        "delivery:\n  poll_interval: 200ms\n",
        &[("ROUTER_DATABASE_URL", &db_url), ("ROUTER_API_TOKEN", API)],
    )
    .await;

    // The API: every escalated firing alert exactly once, in (chain start, fingerprint) order.
    let seen = all_alert_pages(&r.url, store.as_ref(), usize::MAX).await;
    assert_eq!(seen, expected);
    let seen = all_alert_pages(&r.url, store.as_ref(), 2).await;
    let without: Vec<String> = expected
        .iter()
        .filter(|f| *f != "fp-late-40")
        .cloned()
        .collect();
    assert_eq!(
        seen, without,
        "a resolve between pages skips or repeats nothing else"
    );
    let (_, v) = get(&format!("{}/api/v1/alerts", r.url)).await;
    assert_eq!(
        v["alerts"].as_array().map(Vec::len),
        Some(100),
        "default limit"
    );
    let (_, v) = get(&format!("{}/api/v1/alerts?limit=1000", r.url)).await;
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(249));
    assert!(v["next"].is_null());

    // Bad input: 400 with a JSON reason naming the parameter.
    for (query, word) in [
        ("cursor=abc", "cursor"),
        ("cursor=1.6", "cursor"),
        ("cursor=", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("page=2", "page"),
    ] {
        for path in [
            "/api/v1/alerts",
            "/api/v1/notifications",
            "/api/v1/alerts/fp-storm-001/history",
        ] {
            let (status, v) = get(&format!("{}{path}?{query}", r.url)).await;
            assert_eq!(status, 400, "{path}?{query}: {v}");
            assert_eq!(v["error"], "bad_request", "{path}?{query}: {v}");
            let reason = v["reason"].as_str().unwrap_or_default();
            assert!(reason.contains(word), "{path}?{query}: {reason}");
        }
    }

    // Notifications: newest first, every one exactly once across pages, per state too.
    let all = store.list_notifications(None, 1000).await.expect("all");
    assert!(all.len() > 300, "{} notifications", all.len());
    for state in [None, Some("pending")] {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/api/v1/notifications?limit=50", r.url);
            if let Some(s) = state {
                url.push_str(&format!("&state={s}"));
            }
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let (status, v) = get(&url).await;
            assert_eq!(status, 200, "{url}: {v}");
            for n in v["notifications"].as_array().expect("list") {
                if let Some(s) = state {
                    assert_eq!(n["state"], s);
                }
                ids.push(n["id"].as_i64().expect("id"));
            }
            match v["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeat"
        );
        let want: Vec<i64> = all
            .iter()
            .filter(|n| state.is_none_or(|s| n.state == s))
            .map(|n| n.id)
            .collect();
        // Delivery runs meanwhile: compare the ids, whose set does not change.
        if state.is_none() {
            assert_eq!(ids, want);
        } else {
            let now: BTreeSet<i64> = ids.iter().copied().collect();
            assert!(
                now.iter().all(|id| want.contains(id)),
                "pending rows were pending before"
            );
        }
    }

    // The status page: 279 firing alerts (249 escalated + 30 plain), 100 a page.
    let mut names: Vec<String> = Vec::new();
    let mut url = format!("{}/", r.url);
    let mores = [
        Some("179 more firing alerts"),
        Some("79 more firing alerts"),
        None,
    ];
    for (page, more) in mores.into_iter().enumerate() {
        let (status, html) = page_text(&url).await;
        assert_eq!(status, 200, "{url}");
        assert!(
            html.contains("quantwatch-alert-router: 279 firing"),
            "title of page {page}"
        );
        let rows: Vec<String> = html
            .split("<tr>\n<td><b>")
            .skip(1)
            .map(|r| r.split("</b>").next().unwrap_or_default().to_string())
            .collect();
        assert!(!html.contains("<b>summary</b>"), "summaries are escaped");
        if let Some(more) = more {
            assert_eq!(rows.len(), 100, "page {page}");
            assert!(html.contains(more), "page {page} says {more}");
            let next = html
                .split("<a href=\"/?cursor=")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("a next-page link")
                .to_string();
            assert!(
                next.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'-'),
                "{next}"
            );
            url = format!("{}/?cursor={next}", r.url);
        } else {
            assert_eq!(rows.len(), 79, "last page");
            assert!(!html.contains("more firing alerts"));
            assert!(html.contains("End of the list"));
        }
        names.extend(rows);
    }
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(
        (names.len(), unique.len()),
        (279, 279),
        "each firing alert on one page"
    );
    assert!(!names.iter().any(|n| n == "Gone" || n == "Late40"));
    // Counts stop at their cap: a storm's count reads at most `cap` index entries.
    assert_eq!(store.count_firing(None, 50).await.expect("count"), 50);
    assert_eq!(store.count_firing(None, 10_000).await.expect("count"), 279);
    let (status, html) = page_text(&format!("{}/?cursor=nope", r.url)).await;
    assert_eq!(status, 400);
    assert!(html.contains("cursor"), "{html}");

    check_history_pages(&r.url, &db_url).await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_list_every_alert_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    check_api_and_page(format!("sqlite://{}/router.db", dir.path().display())).await;
}

#[test]
fn pages_list_every_alert_once_on_postgres() {
    let pg = testkit::Postgres::start();
    let url = pg.create_database("router");
    common::runtime().block_on(check_api_and_page(url));
}

/// What a plan may not contain: the statement's name and the offending plan line.
fn refuse(l: &Listing, plan: &[String], bad: impl Fn(&str) -> bool) {
    if let Some(line) = plan.iter().find(|p| bad(p)) {
        panic!(
            "{}: `{line}` in the plan\n{}\n{}",
            l.name,
            plan.join("\n"),
            l.sql
        );
    }
}

#[tokio::test]
async fn listings_read_indexes_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/router.db", dir.path().display());
    let store: Arc<dyn Store> = quantwatch_alert_router::store::open(&url, false)
        .await
        .expect("open (runs the migrations)");
    drop(store);
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    for l in listings::<sqlx::Sqlite>() {
        let sql = format!("EXPLAIN QUERY PLAN {}", l.sql);
        let mut q = sqlx::query(&sql);
        for p in &l.params {
            q = match p {
                Param::Int(v) => q.bind(*v),
                Param::Text(t) => q.bind(*t),
            };
        }
        let plan: Vec<String> = q
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", l.name))
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        // `SCAN x` without an index reads a whole table; json_each and the count's own
        // sub-select are not tables.
        refuse(&l, &plan, |p| {
            p.starts_with("SCAN ")
                && !p.contains(" USING ")
                && !p.contains("json_each")
                && p != "SCAN t"
        });
        if !l.sorts_a_page {
            refuse(&l, &plan, |p| p.contains("TEMP B-TREE"));
        }
        // A walk of a whole index without a LIMIT-bounded order would be a scan too.
        refuse(&l, &plan, |p| {
            p.starts_with("SCAN ")
                && p.contains(" INDEX ")
                && !p.contains("json_each")
                && !l.sql.contains("LIMIT")
        });
    }
}

const HISTORY_SHAPE: &str = "
INSERT INTO alert_events (group_key, fingerprint, status, starts_at, payload, received_at)
  SELECT 'g', 'r' || i, v.s, i * 20000, '{}', i * 20000 + v.d
  FROM generate_series(1, 100000) i, (VALUES ('firing', 0), ('resolved', 600000)) v(s, d);
INSERT INTO alert_current (fingerprint, event_id, status, starts_at, updated_at)
  SELECT fingerprint, id, CASE WHEN id > 199400 THEN 'firing' ELSE status END, starts_at, received_at
  FROM alert_events WHERE status = 'resolved';
INSERT INTO alert_state (fingerprint, event_id, policy, status, chain_started_at, resolved_at)
  SELECT fingerprint, id, 'desk', CASE WHEN id > 199400 THEN 'firing' ELSE 'resolved' END,
         received_at, received_at + 600000
  FROM alert_events WHERE status = 'firing' AND (id % 10 = 1 OR id > 199400);
INSERT INTO outbox (event_id, fingerprint, channel, kind, state, step, due_at, created_at, sent_at)
  SELECT id, fingerprint, 'log', 'notify', 'sent', NULL, received_at, received_at, received_at
  FROM alert_events
  UNION ALL
  SELECT event_id, fingerprint, 'log', 'escalate', 'sent', 0, chain_started_at, chain_started_at,
         chain_started_at FROM alert_state;
INSERT INTO alert_audit (fingerprint, starts_at, at, action, actor, via)
  SELECT fingerprint, starts_at, received_at, 'ack', 'ann', 'api' FROM alert_events WHERE id % 20 = 0;
INSERT INTO voice_calls (outbox_id, fingerprint, starts_at, channel, step, callee, placed_at, outcome, settled_at)
  SELECT id, fingerprint, due_at, 'voice', 0, '13800000000', sent_at, 'answered', sent_at
  FROM outbox WHERE kind = 'escalate';
ANALYZE;
";

#[test]
fn listings_read_indexes_on_postgres() {
    let pg = testkit::Postgres::start();
    let url = pg.create_database("router");
    common::runtime().block_on(async {
        drop(
            quantwatch_alert_router::store::open(&url, false)
                .await
                .expect("open (runs the migrations)"),
        );
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        // PostgreSQL plans by statistics: a year of history's shape (100,000 resolved
        // alerts, one in ten escalated, 300 firing), analysed, so that the plans checked are the
        // ones a big store gets. The rows only need the right shape, not the router's content.
        sqlx::raw_sql(HISTORY_SHAPE)
            .execute(&mut conn)
            .await
            .expect("history rows");
        for l in listings::<sqlx::Postgres>() {
            let sql = format!("EXPLAIN {}", l.sql);
            let mut q = sqlx::query(&sql);
            for p in &l.params {
                q = match p {
                    Param::Int(v) => q.bind(*v),
                    Param::Text(t) => q.bind(*t),
                };
            }
            let plan: Vec<String> = q
                .fetch_all(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", l.name))
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            refuse(&l, &plan, |p| p.contains("Seq Scan"));
            // An index scan with no condition walks the whole index: fine only for the order
            // of a LIMIT (it stops after a page).
            for (i, line) in plan.iter().enumerate() {
                let indent = line.len() - line.trim_start().len();
                let conditioned = plan[i + 1..]
                    .iter()
                    .take_while(|n| n.len() - n.trim_start().len() > indent && !n.contains("->"))
                    .any(|n| n.contains("Index Cond"));
                if line.contains("Index") && line.contains(" using ") && !conditioned {
                    assert!(
                        l.sql.contains("LIMIT"),
                        "{}: `{line}` walks a whole index\n{}",
                        l.name,
                        plan.join("\n")
                    );
                }
            }
            if !l.sorts_a_page {
                refuse(&l, &plan, |p| {
                    p.contains("Sort") && !p.contains("Sort Key: ")
                });
            }
        }
    });
}
