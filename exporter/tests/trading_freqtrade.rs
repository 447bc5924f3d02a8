//! The freqtrade source against databases written by freqtrade's own code
//! (tests/fixtures/freqtrade/generate.py, which also computes every expected value with
//! freqtrade's objects and its `calculate_max_drawdown`), on SQLite and PostgreSQL; a bot
//! writer with no busy timeout committing while we scrape; schema drift; failures isolated.

mod common;

use quantwatch_exporter::collectors::trading_sources::TradingSourcesCollector;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::fakes::freqtrade::{BotView, FakeFreqtradeApi};
use testkit::freqtrade::{Expected, generate, run_script};
use testkit::prom_text::{Exposition, parse};
use testkit::{App, Postgres};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

/// A sources collector configured through the real config loader.
fn collector(
    sources_yaml: &str,
    env: &[(&'static str, &'static str)],
) -> Arc<TradingSourcesCollector> {
    let yaml = format!("host:\n  enabled: false\ntrading:\n  sources:\n{sources_yaml}");
    let cfg = common::load_config(&yaml, env);
    Arc::new(TradingSourcesCollector::from_config(&cfg.trading).expect("sources configured"))
}

async fn scrape(c: &Arc<TradingSourcesCollector>, now: &str) -> (String, Exposition) {
    c.set_now(Some(now.parse().expect("RFC 3339 instant")));
    let text = common::scrape_text(c.clone()).await;
    // The text format allows one TYPE line per name: several sources must share it.
    let mut types = BTreeSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(types.insert(l.to_string()), "duplicate {l}\n{text}");
    }
    let exp = parse(&text);
    (text, exp)
}

/// Every series the generator expects, with `source` added, to 1e-9 (relative for large).
#[track_caller]
fn check_all(exp: &Exposition, text: &str, expected: &Expected, source: &str) {
    for s in &expected.series {
        let hits: Vec<_> = exp
            .samples
            .iter()
            .filter(|x| {
                x.name == s.name
                    && x.labels.get("source").map(String::as_str) == Some(source)
                    && s.labels.iter().all(|(k, v)| match k.as_str() {
                        "le" => {
                            x.labels.get("le").and_then(|l| l.parse::<f64>().ok())
                                == v.parse::<f64>().ok()
                        }
                        _ => x.labels.get(k) == Some(v),
                    })
            })
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{}{:?} (source {source}): {} samples\n{text}",
            s.name,
            s.labels,
            hits.len()
        );
        let v = hits[0].value;
        let tol = 1e-9 * s.value.abs().max(1.0);
        assert!(
            (v - s.value).abs() <= tol,
            "{}{:?} (source {source}) = {v}, freqtrade says {}\n{text}",
            s.name,
            s.labels,
            s.value
        );
    }
}

fn value(exp: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exp.value(name, labels)
}

fn files_beside(db: &Path) -> BTreeSet<String> {
    std::fs::read_dir(db.parent().expect("a parent dir"))
        .expect("list the fixture dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A copy of a freqtrade SQLite database in rollback-journal mode (freqtrade itself switches
/// to WAL; older versions and plain SQLAlchemy use the rollback journal).
fn rollback_copy(src: &Path, dst: &Path) {
    copy_db(src, dst, "DELETE");
}

/// SQLite's backup API (the source's recent commits may still be in its `-wal`), then
/// `journal_mode` on the copy.
fn copy_db(src: &Path, dst: &Path, mode: &str) {
    let code = "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); \
                s.backup(d); s.close(); d.execute('PRAGMA journal_mode=' + sys.argv[3]); d.close()";
    let out = std::process::Command::new(testkit::freqtrade::python())
        .args(["-c", code])
        .args([src, dst])
        .arg(mode)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "backup {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs SQL on a SQLite file with Python's sqlite3 (a writer, as the bot is).
fn run_sql(db: &Path, sql: &str) {
    let code = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], isolation_level=None); \
                [print(r) for r in c.execute(sys.argv[2])]; c.close()";
    let out = std::process::Command::new(testkit::freqtrade::python())
        .args(["-c", code, db.to_str().expect("UTF-8 path"), sql])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sqlite_url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

#[test]
fn sqlite_and_postgres_sources_equal_freqtrades_own_numbers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal_db = dir.path().join("wal").join("tradesv3.sqlite");
    std::fs::create_dir_all(wal_db.parent().unwrap()).unwrap();
    let expected = generate(&format!("sqlite:///{}", wal_db.display()));
    let rb_db = dir.path().join("rollback").join("tradesv3.sqlite");
    std::fs::create_dir_all(rb_db.parent().unwrap()).unwrap();
    rollback_copy(&wal_db, &rb_db);

    let pg = Postgres::start();
    let pg_url = pg.create_database("freqtrade");
    let pg_expected = generate(&pg_url.replacen("postgres://", "postgresql+psycopg://", 1));

    let c = collector(
        &format!(
            "    - {{name: ftwal, type: freqtrade, url: '{}', starting_capital: 1000}}\n\
             \x20   - {{name: ftrb, type: freqtrade, url: '{}', starting_capital: 1000}}\n\
             \x20   - {{name: ftpg, type: freqtrade, url: '{pg_url}', starting_capital: 1000}}\n",
            sqlite_url(&wal_db),
            sqlite_url(&rb_db)
        ),
        &[],
    );
    let before = files_beside(&rb_db);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for round in 0..2 {
        let (text, exp) = rt.block_on(scrape(&c, &expected.now));
        for src in ["ftwal", "ftrb", "ftpg"] {
            assert_eq!(
                value(&exp, "trading_source_up", &[("source", src)]),
                Some(1.0),
                "round {round}\n{text}"
            );
            assert!(
                value(
                    &exp,
                    "trading_source_last_success_timestamp_seconds",
                    &[("source", src)]
                )
                .is_some_and(|t| t > 1.7e9),
                "{text}"
            );
        }
        check_all(&exp, &text, &expected, "ftwal");
        check_all(&exp, &text, &expected, "ftrb");
        check_all(&exp, &text, &pg_expected, "ftpg");
        // Without the API: no running state, no unrealized PnL, no heartbeat.
        for absent in [
            "trading_strategy_up",
            "trading_strategy_status",
            "trading_pnl_unrealized",
            "trading_strategy_heartbeat_age_seconds",
        ] {
            assert!(exp.matching(absent, &[]).is_empty(), "{absent}\n{text}");
        }
        // Every series of a source carries its label.
        for s in exp
            .samples
            .iter()
            .filter(|s| s.name.starts_with("trading_"))
        {
            assert!(s.labels.contains_key("source"), "{s:?}");
        }
    }
    // Nothing was created beside a rollback-journal database (no -journal, no -shm).
    assert_eq!(files_beside(&rb_db), before);
}

/// The crux of reading a live bot: a writer with no busy timeout (SQLAlchemy's default)
/// commits in a loop while we scrape. In rollback-journal mode any reader holding a SHARED
/// lock makes such a commit fail; ours takes none, and validates each read instead.
#[test]
fn a_writer_without_busy_timeout_never_sees_busy_and_reads_are_never_torn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("gen.sqlite");
    let expected = generate(&format!("sqlite:///{}", src.display()));
    for mode in ["DELETE", "WAL"] {
        let db = dir.path().join(format!("bot-{mode}.sqlite"));
        copy_db(&src, &db, mode);
        let c = collector(
            &format!(
                "    - {{name: ft, type: freqtrade, url: '{}', starting_capital: 1000}}\n",
                sqlite_url(&db)
            ),
            &[],
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let realized = |e: &Exposition| {
            value(
                e,
                "trading_pnl_realized",
                &[("source", "ft"), ("strategy", "SampleStrategy")],
            )
            .expect("realized PnL")
        };
        let sells = |e: &Exposition| {
            value(
                e,
                "trading_orders_total",
                &[
                    ("source", "ft"),
                    ("strategy", "SampleStrategy"),
                    ("side", "sell"),
                ],
            )
            .expect("sell orders")
        };
        let (_, e0) = rt.block_on(scrape(&c, &expected.now));
        let (r0, o0) = (realized(&e0), sells(&e0));

        let db2 = db.clone();
        let writer =
            std::thread::spawn(move || run_script("writer.py", &[db2.to_str().unwrap(), "4"]));
        let mut scrapes = 0;
        let mut grew = 0;
        let started = Instant::now();
        while !writer.is_finished() {
            let (text, e) = rt.block_on(scrape(&c, &expected.now));
            assert_eq!(
                value(&e, "trading_source_up", &[("source", "ft")]),
                Some(1.0),
                "{text}"
            );
            // Each writer transaction adds one closed trade of +1.0 and one sell order: a
            // read that saw one without the other would break this.
            let (dr, dor) = (realized(&e) - r0, sells(&e) - o0);
            assert!(
                (dr - dor).abs() < 1e-6,
                "torn read ({mode}): realized +{dr}, sell orders +{dor}\n{text}"
            );
            if dor > 0.0 {
                grew += 1;
            }
            scrapes += 1;
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "writer did not finish"
            );
        }
        let out: serde_json::Value =
            serde_json::from_str(writer.join().expect("writer thread").trim())
                .expect("writer JSON");
        let commits = out["commits"].as_i64().unwrap_or(0);
        assert_eq!(
            out["busy"].as_i64(),
            Some(0),
            "{mode}: the bot saw SQLITE_BUSY: {out}"
        );
        assert!(
            commits >= 20,
            "{mode}: too few commits to mean anything: {out}"
        );
        assert!(
            scrapes >= 10 && grew >= 3,
            "{mode}: scrapes {scrapes}, growing {grew}"
        );
        eprintln!("{mode}: {commits} commits with no busy timeout, {scrapes} scrapes meanwhile");

        // The incremental state equals a fresh read of everything (what a restart does).
        let (t1, e1) = rt.block_on(scrape(&c, &expected.now));
        assert_eq!(sells(&e1) - o0, commits as f64, "{t1}");
        let fresh = collector(
            &format!(
                "    - {{name: ft, type: freqtrade, url: '{}', starting_capital: 1000}}\n",
                sqlite_url(&db)
            ),
            &[],
        );
        let (t2, e2) = rt.block_on(scrape(&fresh, &expected.now));
        let keep = |n: &str| n.starts_with("trading_") && !n.starts_with("trading_source_last");
        assert_eq!(
            e1.series(keep),
            e2.series(keep),
            "incremental vs fresh\n{t1}\n{t2}"
        );
        if mode == "DELETE" {
            // Control: an ordinary (locking) reader does make such a writer fail.
            let ctl = run_script("writer.py", &[db.to_str().unwrap(), "2", "--control"]);
            let ctl: serde_json::Value = serde_json::from_str(ctl.trim()).unwrap();
            assert!(
                ctl["busy"].as_i64().unwrap_or(0) > 0,
                "control run saw no BUSY: {ctl}"
            );
        }
    }
}

fn nobody() -> (u32, u32) {
    (65534, 65534)
}

fn chown(p: &Path, uid: u32, gid: u32) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::chown(c.as_ptr(), uid, gid) },
        0,
        "chown {}",
        p.display()
    );
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The binary, running as an unprivileged user, with six sources: one healthy, one from an
/// older freqtrade (a column missing), a missing file, a file it may not read, a stopped
/// PostgreSQL and an unreachable API. Each failure costs only its own families.
#[test]
fn drift_and_failures_stay_isolated() {
    let dir = tempfile::tempdir().expect("temp dir");
    chmod(dir.path(), 0o755);
    let gen_db = dir.path().join("gen.sqlite");
    let expected = generate(&format!("sqlite:///{}", gen_db.display()));
    let (uid, gid) = nobody();
    let ok = dir.path().join("ok.sqlite");
    rollback_copy(&gen_db, &ok);
    let drift = dir.path().join("old.sqlite");
    rollback_copy(&gen_db, &drift);
    run_sql(&drift, "ALTER TABLE trades DROP COLUMN fee_close_cost");
    let denied = dir.path().join("denied.sqlite");
    rollback_copy(&gen_db, &denied);
    chmod(&denied, 0o600);
    chown(&denied, 0, 0);
    for p in [&ok, &drift] {
        chmod(p, 0o644);
    }
    let missing = dir.path().join("missing.sqlite");

    let mut pg = Postgres::start();
    let pg_url = pg.create_database("freqtrade");
    generate(&pg_url.replacen("postgres://", "postgresql+psycopg://", 1));
    pg.stop();
    let closed_port = testkit::free_port();

    let cfg = dir.path().join("exporter.yml");
    std::fs::write(
        &cfg,
        format!(
            "host:\n  enabled: false\ntrading:\n  connect_timeout: 1s\n  sources:\n\
             \x20   - {{name: ok, type: freqtrade, url: '{}', starting_capital: 1000}}\n\
             \x20   - {{name: old, type: freqtrade, url: '{}', starting_capital: 1000}}\n\
             \x20   - {{name: missing, type: freqtrade, url: '{}'}}\n\
             \x20   - {{name: denied, type: freqtrade, url: '{}'}}\n\
             \x20   - {{name: pgdown, type: freqtrade, url: '{pg_url}'}}\n\
             \x20   - {{name: apidown, type: freqtrade, url: '{}', starting_capital: 1000, api_url: 'http://127.0.0.1:{closed_port}', api_username: ft, api_password: '${{FT_PASS}}'}}\n",
            sqlite_url(&ok),
            sqlite_url(&drift),
            sqlite_url(&missing),
            sqlite_url(&denied),
            sqlite_url(&ok),
        ),
    )
    .unwrap();
    chmod(&cfg, 0o644);
    let app = App::start_as(
        EXPORTER,
        &["--config", cfg.to_str().unwrap()],
        &[("FT_PASS", "pw-never-logged")],
        uid,
        gid,
    );
    let e = app.scrape();
    let up = |s: &str| e.value("trading_source_up", &[("source", s)]);
    assert_eq!(up("ok"), Some(1.0));
    assert_eq!(up("old"), Some(1.0));
    assert_eq!(
        up("apidown"),
        Some(1.0),
        "the API down costs only its families"
    );
    for s in ["missing", "denied", "pgdown"] {
        assert_eq!(up(s), Some(0.0), "{s}");
        assert!(
            e.matching("trading_orders_total", &[("source", s)])
                .is_empty()
        );
    }
    assert_eq!(
        e.value(
            "quantwatch_exporter_collector_success",
            &[("collector", "trading_sources")]
        ),
        Some(1.0)
    );
    // The older table: fees absent, everything else there.
    assert!(
        e.matching("trading_fees_total", &[("source", "old")])
            .is_empty()
    );
    assert!(
        !e.matching("trading_fees_total", &[("source", "ok")])
            .is_empty()
    );
    for fam in [
        "trading_pnl_realized",
        "trading_equity",
        "trading_orders_total",
        "trading_max_drawdown_ratio",
    ] {
        let a = e.matching(fam, &[("source", "old")]).len();
        assert!(
            a > 0 && a == e.matching(fam, &[("source", "ok")]).len(),
            "{fam}"
        );
    }
    // The API down: its families absent, the store's there.
    assert!(
        e.matching("trading_pnl_unrealized", &[("source", "apidown")])
            .is_empty()
    );
    assert!(
        e.matching("trading_strategy_up", &[("source", "apidown")])
            .is_empty()
    );
    assert!(
        !e.matching("trading_positions_open", &[("source", "apidown")])
            .is_empty()
    );
    let _ = app.scrape();
    let log = app.log();
    assert_eq!(
        log.matches("trades.fee_close_cost").count(),
        1,
        "one log line names the missing column:\n{log}"
    );
    assert!(log.contains("Permission denied"), "{log}");
    assert!(!log.contains("pw-never-logged"), "{log}");
    let _ = expected;
    // The permission failure really is one: root could read it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = collector(
        &format!(
            "    - {{name: denied, type: freqtrade, url: '{}'}}\n",
            sqlite_url(&denied)
        ),
        &[],
    );
    let (_, e) = rt.block_on(scrape(&c, &expected.now));
    assert_eq!(
        e.value("trading_source_up", &[("source", "denied")]),
        Some(1.0)
    );
}

#[test]
fn the_api_gives_unrealized_pnl_current_rates_heartbeat_and_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("tradesv3.sqlite");
    let expected = generate(&format!("sqlite:///{}", db.display()));
    let now: chrono::DateTime<chrono::Utc> = expected.now.parse().unwrap();
    let api = FakeFreqtradeApi::start(
        "freq",
        "s3cret",
        BotView {
            status: serde_json::json!([
                {"trade_id": 6, "pair": "XRP/USDT", "strategy": "SampleStrategy", "profit_abs": 12.5, "current_rate": 0.52},
                {"trade_id": 7, "pair": "DOGE/USDT", "strategy": "SampleStrategy", "profit_abs": -3.25, "current_rate": 0.17},
            ]),
            last_process_ts: now.timestamp() - 42,
            state: "running".into(),
            strategy: "SampleStrategy".into(),
        },
    );
    let yaml = |pass: &str| {
        format!(
            "    - {{name: ft, type: freqtrade, url: '{}', starting_capital: 1000, api_url: '{}', api_username: freq, api_password: '{pass}'}}\n",
            sqlite_url(&db),
            api.base_url()
        )
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = collector(&yaml("s3cret"), &[]);
    let (text, e) = rt.block_on(scrape(&c, &expected.now));
    let s = |strategy: &'static str| [("source", "ft"), ("strategy", strategy)];
    let close = |name: &str, labels: &[(&str, &str)], want: f64| {
        let v = e
            .value(name, labels)
            .unwrap_or_else(|| panic!("{name}{labels:?} missing\n{text}"));
        assert!(
            (v - want).abs() < 1e-9,
            "{name}{labels:?} = {v}, want {want}\n{text}"
        );
    };
    close("trading_pnl_unrealized", &s("SampleStrategy"), 9.25);
    close("trading_pnl_unrealized", &s("OldStrategy"), 0.0);
    close("trading_strategy_up", &s("SampleStrategy"), 1.0);
    // A strategy the bot ran before: no state of its own (no alert on it forever).
    assert_eq!(
        e.value("trading_strategy_up", &s("OldStrategy")),
        None,
        "{text}"
    );
    close(
        "trading_strategy_heartbeat_age_seconds",
        &s("SampleStrategy"),
        42.0,
    );
    close(
        "trading_position_notional",
        &[
            ("source", "ft"),
            ("strategy", "SampleStrategy"),
            ("symbol", "XRP/USDT"),
        ],
        1000.0 * 0.52,
    );
    close(
        "trading_net_exposure",
        &s("SampleStrategy"),
        1000.0 * 0.52 - 5000.0 * 0.17,
    );
    assert_eq!(api.unauthorized(), 0);

    // Stopped: not up.
    api.set(|v| v.state = "stopped".into());
    let (_, e) = rt.block_on(scrape(&c, &expected.now));
    assert_eq!(
        e.value("trading_strategy_up", &s("SampleStrategy")),
        Some(0.0)
    );
    assert_eq!(
        e.value(
            "trading_strategy_status",
            &[
                ("source", "ft"),
                ("strategy", "SampleStrategy"),
                ("status", "stopped")
            ]
        ),
        Some(1.0)
    );

    // Wrong credentials: freqtrade answers 401; only the API's families go.
    let bad = collector(&yaml("wrong"), &[]);
    let (text, e) = rt.block_on(scrape(&bad, &expected.now));
    assert!(api.unauthorized() >= 3);
    assert_eq!(e.value("trading_source_up", &[("source", "ft")]), Some(1.0));
    assert!(
        e.matching("trading_pnl_unrealized", &[]).is_empty(),
        "{text}"
    );
    assert!(e.matching("trading_strategy_up", &[]).is_empty(), "{text}");
    close_exp(
        &e,
        &text,
        "trading_position_notional",
        &[
            ("source", "ft"),
            ("strategy", "SampleStrategy"),
            ("symbol", "XRP/USDT"),
        ],
        500.0,
    );
}

#[track_caller]
fn close_exp(e: &Exposition, text: &str, name: &str, labels: &[(&str, &str)], want: f64) {
    let v = e
        .value(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing\n{text}"));
    assert!(
        (v - want).abs() < 1e-9,
        "{name}{labels:?} = {v}, want {want}\n{text}"
    );
}

/// More history than one read takes (5,000 new rows per table and transaction), with a read
/// budget too short to fold it in one scrape: the source reports itself down while it catches
/// up, keeps what it folded, and ends with the numbers a SQL aggregate over the file gives.
#[test]
fn history_longer_than_a_read_budget_is_folded_across_scrapes_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("big.sqlite");
    let out = run_script("bulk.py", &[db.to_str().unwrap(), "45000"]);
    assert_eq!(out.split_whitespace().next(), Some("45007"), "{out}");
    let c = collector(
        &format!(
            "    - {{name: ft, type: freqtrade, url: '{}', starting_capital: 1000, timeout: 400ms}}\n",
            sqlite_url(&db)
        ),
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let now = "2024-05-10T12:00:00Z";
    let mut downs = 0;
    let started = Instant::now();
    let (text, e) = loop {
        let (text, e) = rt.block_on(scrape(&c, now));
        if e.value("trading_source_up", &[("source", "ft")]) == Some(1.0) {
            break (text, e);
        }
        downs += 1;
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never caught up\n{text}"
        );
    };
    // The same file aggregated by SQLite itself.
    let code = "import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); q=lambda s: c.execute(s).fetchone()[0]; \
        print(json.dumps({'sell': q(\"SELECT count(*) FROM orders o JOIN trades t ON t.id=o.ft_trade_id WHERE t.strategy='SampleStrategy' AND o.side='sell'\"), \
        'buy': q(\"SELECT count(*) FROM orders o JOIN trades t ON t.id=o.ft_trade_id WHERE t.strategy='SampleStrategy' AND o.side='buy'\"), \
        'realized': q(\"SELECT sum(CASE WHEN is_open=0 THEN close_profit_abs ELSE realized_profit END) FROM trades WHERE strategy='SampleStrategy'\"), \
        'equity': 1000 + q(\"SELECT sum(close_profit_abs) FROM trades WHERE is_open=0 AND strategy='SampleStrategy'\")}))";
    let out = std::process::Command::new(testkit::freqtrade::python())
        .args(["-c", code, db.to_str().unwrap()])
        .output()
        .expect("python runs");
    let want: serde_json::Value = serde_json::from_slice(&out.stdout).expect("aggregate JSON");
    let l = |side: &'static str| {
        [
            ("source", "ft"),
            ("strategy", "SampleStrategy"),
            ("side", side),
        ]
    };
    let s = [("source", "ft"), ("strategy", "SampleStrategy")];
    assert_eq!(
        e.value("trading_orders_total", &l("sell")),
        want["sell"].as_f64(),
        "{text}"
    );
    assert_eq!(
        e.value("trading_orders_total", &l("buy")),
        want["buy"].as_f64(),
        "{text}"
    );
    for (name, key) in [
        ("trading_pnl_realized", "realized"),
        ("trading_equity", "equity"),
    ] {
        let (got, w) = (
            e.value(name, &s).unwrap_or(f64::NAN),
            want[key].as_f64().unwrap(),
        );
        assert!(
            (got - w).abs() < 1e-6 * w.abs().max(1.0),
            "{name} {got} vs {w}"
        );
    }
    eprintln!("caught up after {downs} scrapes reporting the source down");
}

/// The reference schema given as a `reference` entry, beside a freqtrade bot: its series keep
/// the reference labels, both report `trading_source_up`, and the exposition has one TYPE line
/// per family although two collectors publish the same families.
#[test]
fn a_reference_entry_and_a_bot_side_by_side() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("tradesv3.sqlite");
    generate(&format!("sqlite:///{}", db.display()));
    let pg = Postgres::start();
    let url = pg.create_database("desk");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(quantwatch_exporter::trading::migrate::run(
        &url,
        &quantwatch_exporter::config::DEFAULT_FILL_LATENCY_BUCKETS,
    ))
    .expect("migrate the reference schema");
    pg.psql(
        "desk",
        "INSERT INTO strategies (name, status) VALUES ('alpha', 'active')",
    );
    let cfg = dir.path().join("exporter.yml");
    std::fs::write(
        &cfg,
        format!(
            "host:\n  enabled: false\ntrading:\n  sources:\n\
             \x20   - {{name: desk, type: reference, url: '{url}'}}\n\
             \x20   - {{name: ftbot, type: freqtrade, url: '{}', starting_capital: 1000}}\n",
            sqlite_url(&db)
        ),
    )
    .unwrap();
    let app = App::start(EXPORTER, &["--config", cfg.to_str().unwrap()], &[]);
    let (status, text) = app.get("/metrics");
    assert_eq!(status, 200);
    let mut types = BTreeSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(types.insert(l.to_string()), "duplicate {l}\n{text}");
    }
    let e = parse(&text);
    assert_eq!(
        e.value("trading_source_up", &[("source", "desk")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        e.value("trading_source_up", &[("source", "ftbot")]),
        Some(1.0),
        "{text}"
    );
    // The reference strategy: no source label.
    let alpha = e.matching("trading_strategy_up", &[("strategy", "alpha")]);
    assert_eq!(alpha.len(), 1, "{text}");
    assert!(!alpha[0].labels.contains_key("source"), "{text}");
    assert_eq!(
        e.matching("trading_equity", &[("source", "ftbot")]).len(),
        2,
        "{text}"
    );
}

/// PostgreSQL hands out ids before commit: an order whose transaction commits after a later
/// id was read must still be counted (the watermark keeps asking for the id it skipped).
#[test]
fn postgres_ids_committed_out_of_order_are_not_missed() {
    use sqlx::Connection;
    let pg = Postgres::start();
    let url = pg.create_database("freqtrade");
    let expected = generate(&url.replacen("postgres://", "postgresql+psycopg://", 1));
    let c = collector(
        &format!("    - {{name: ft, type: freqtrade, url: '{url}', starting_capital: 1000}}\n"),
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sells = |e: &Exposition| {
        e.value(
            "trading_orders_total",
            &[
                ("source", "ft"),
                ("strategy", "SampleStrategy"),
                ("side", "sell"),
            ],
        )
        .expect("sell orders")
    };
    let (_, e0) = rt.block_on(scrape(&c, &expected.now));
    let base = sells(&e0);
    // A copy of order 14 (a filled sell of SampleStrategy) under a new order_id.
    let insert = |tag: &str| {
        format!(
            "INSERT INTO orders (ft_trade_id, ft_order_side, ft_pair, ft_is_open, ft_amount, \
             ft_price, order_id, status, symbol, order_type, side, price, average, amount, \
             filled, remaining, cost, order_date, order_filled_date) \
             SELECT ft_trade_id, ft_order_side, ft_pair, ft_is_open, ft_amount, ft_price, \
             '{tag}', status, symbol, order_type, side, price, average, amount, filled, \
             remaining, cost, order_date, order_filled_date FROM orders WHERE id = 14"
        )
    };
    rt.block_on(async {
        let mut early = sqlx::PgConnection::connect(&url).await.expect("connect");
        let mut late = sqlx::PgConnection::connect(&url).await.expect("connect");
        // `early` takes the next id and stays uncommitted; `late` takes the one after.
        sqlx::query("BEGIN").execute(&mut early).await.unwrap();
        sqlx::query(&insert("early"))
            .execute(&mut early)
            .await
            .unwrap();
        sqlx::query(&insert("late"))
            .execute(&mut late)
            .await
            .unwrap();
        let (text, e) = scrape(&c, &expected.now).await;
        assert_eq!(sells(&e), base + 1.0, "only the committed one\n{text}");
        sqlx::query("COMMIT").execute(&mut early).await.unwrap();
        let (text, e) = scrape(&c, &expected.now).await;
        assert_eq!(
            sells(&e),
            base + 2.0,
            "the late-committed id is counted\n{text}"
        );
        let (text, e) = scrape(&c, &expected.now).await;
        assert_eq!(sells(&e), base + 2.0, "and only once\n{text}");
    });
}
