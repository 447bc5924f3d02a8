//! The exporter binary with a hummingbot source (contract, "Trading sources", hummingbot):
//! every family exact against tests/fixtures/hummingbot/expected.json (written by
//! generate.py from hummingbot's own models, expected values computed there with exact
//! fractions), a database with no fills, a missing column, and a bot writing with no busy
//! timeout while scrapes run.

use serde_json::Value;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testkit::hummingbot::FilledBuy;
use testkit::prom_text::Exposition;
use testkit::{App, wait_until};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");
const SRC: (&str, &str) = ("source", "hbot");

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hummingbot")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// hummingbot's own connection settings (`testkit::hummingbot`), on an existing store.
async fn bot_connection(path: &Path) -> SqliteConnection {
    testkit::hummingbot::bot_connection(path, false)
        .await
        .unwrap()
}

/// A copy of the fixture whose timestamps are moved by whole minutes so that the fixture's
/// "now" is the last minute; returns the copy and the trading-day start (`HH:MM`, UTC) that
/// corresponds to the fixture's.
fn fixture_copy(dir: &Path, exp: &Value) -> (PathBuf, String) {
    let db = dir.join("conf_pmm_1.sqlite");
    std::fs::copy(fixture_dir().join("hbot.sqlite"), &db).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ref_now = exp["ref_now_ms"].as_i64().unwrap();
    let delta = (now_ms - ref_now).div_euclid(60_000) * 60_000;
    rt().block_on(async {
        let mut c = bot_connection(&db).await;
        for sql in [
            "UPDATE TradeFill SET timestamp = timestamp + ?1",
            "UPDATE \"Order\" SET creation_timestamp = creation_timestamp + ?1, \
             last_update_timestamp = last_update_timestamp + ?1",
            "UPDATE OrderStatus SET timestamp = timestamp + ?1",
        ] {
            sqlx::query(sql).bind(delta).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();
    });
    let day_start_s = (exp["ref_day_start_ms"].as_i64().unwrap() + delta) / 1000;
    let minute_of_day = day_start_s.rem_euclid(86_400) / 60;
    let hhmm = format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60);
    (db, hhmm)
}

fn start(dir: &Path, db: &Path, day_start: &str) -> App {
    let config = dir.join("exporter.yml");
    std::fs::write(
        &config,
        format!(
            "trading:\n  timezone: UTC\n  day_start: \"{day_start}\"\n  sources:\n    - name: hbot\n      type: hummingbot\n      url: \"sqlite://{}\"\n      starting_capital: 5000\n",
            db.display()
        ),
    )
    .unwrap();
    App::start(
        EXPORTER,
        &["--config", config.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    )
}

/// Scrapes until the source reports up, else fails naming what it saw.
fn scrape_up(app: &App) -> Exposition {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(20), || {
        let e = app.scrape();
        let up = e.value("trading_source_up", &[SRC]) == Some(1.0);
        last = Some(e);
        up
    });
    let e = last.unwrap();
    assert!(
        ok,
        "trading_source_up{{source=\"hbot\"}} never became 1; log:\n{}",
        app.log()
    );
    e
}

#[track_caller]
fn close(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: absent, want {want}"));
    // The exporter's Decimal → f64 and Python's Fraction → float may differ in the last ulp.
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: got {got}, want {want}"
    );
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn every_family_matches_the_expected_values() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, day_start) = fixture_copy(dir.path(), &exp);
    let app = start(dir.path(), &db, &day_start);
    let e = scrape_up(&app);
    assert!(
        e.value("trading_source_last_success_timestamp_seconds", &[SRC])
            .is_some()
    );
    // hummingbot has no strategy status: those families are not made up.
    assert!(e.matching("trading_strategy_up", &[SRC]).is_empty());
    assert!(e.matching("trading_strategy_status", &[SRC]).is_empty());

    let strategies = exp["strategies"].as_object().unwrap();
    assert_eq!(
        e.matching("trading_fees_total", &[SRC]).len(),
        strategies.len()
    );
    for (name, s) in strategies {
        let l = [SRC, ("strategy", name.as_str())];
        let g = |fam: &str| e.value(fam, &l);
        let what = |fam: &str| format!("{fam}{{strategy={name}}}");
        for (fam, key) in [
            ("trading_pnl_realized", "pnl_realized"),
            ("trading_equity", "equity"),
            ("trading_equity_peak", "equity_peak"),
            ("trading_drawdown_ratio", "drawdown_ratio"),
            ("trading_max_drawdown_ratio", "max_drawdown_ratio"),
            ("trading_pnl_unrealized", "pnl_unrealized"),
            ("trading_positions_open", "positions_open"),
            ("trading_gross_exposure", "gross_exposure"),
            ("trading_net_exposure", "net_exposure"),
            (
                "trading_position_concentration_ratio",
                "concentration_ratio",
            ),
            ("trading_fees_total", "fees"),
        ] {
            close(g(fam), f(&s[key]), &what(fam));
        }
        let notional = s["position_notional"].as_object().unwrap();
        assert_eq!(
            e.matching("trading_position_notional", &l).len(),
            notional.len(),
            "{name}"
        );
        for (sym, v) in notional {
            close(
                e.value(
                    "trading_position_notional",
                    &[SRC, ("strategy", name), ("symbol", sym)],
                ),
                f(v),
                &format!("notional {name} {sym}"),
            );
        }
        for side in ["buy", "sell"] {
            let ls = [SRC, ("strategy", name.as_str()), ("side", side)];
            let counts = s["orders"][side].as_object().cloned().unwrap_or_default();
            let n = |st: &str| counts.get(st).and_then(Value::as_f64).unwrap_or(0.0);
            close(
                e.value("trading_orders_total", &ls),
                counts.values().map(f).sum(),
                &format!("orders_total {name} {side}"),
            );
            for st in ["filled", "cancelled", "rejected"] {
                close(
                    e.value(
                        "trading_orders_closed_total",
                        &[SRC, ("strategy", name), ("side", side), ("status", st)],
                    ),
                    n(st),
                    &format!("closed {name} {side} {st}"),
                );
            }
            for st in ["new", "partially_filled"] {
                close(
                    e.value(
                        "trading_orders_open",
                        &[SRC, ("strategy", name), ("side", side), ("status", st)],
                    ),
                    n(st),
                    &format!("open {name} {side} {st}"),
                );
            }
            close(
                e.value("trading_fills_total", &ls),
                f(&s["fills"][side]),
                &format!("fills {name} {side}"),
            );
            close(
                e.value("trading_traded_notional_total", &ls),
                f(&s["traded_notional"][side]),
                &format!("traded notional {name} {side}"),
            );
        }
        let lat = &s["latency"];
        close(
            g("trading_order_fill_latency_seconds_count"),
            f(&lat["count"]),
            &what("latency count"),
        );
        close(
            g("trading_order_fill_latency_seconds_sum"),
            f(&lat["sum"]),
            &what("latency sum"),
        );
        let buckets = e.matching("trading_order_fill_latency_seconds_bucket", &l);
        for (le, n) in lat["buckets"].as_object().unwrap() {
            let want: f64 = le.parse().unwrap();
            let got = buckets
                .iter()
                .find(|b| b.labels["le"].parse::<f64>().ok() == Some(want))
                .map(|b| b.value);
            close(got, f(n), &format!("latency bucket {name} le={le}"));
        }
        match s["execution_rate"].as_f64() {
            Some(r) => close(g("trading_execution_rate_ratio"), r, &what("execution")),
            None => assert_eq!(g("trading_execution_rate_ratio"), None),
        }
    }
    close(
        e.value("trading_portfolio_equity", &[SRC]),
        f(&exp["portfolio"]["equity"]),
        "portfolio equity",
    );
    close(
        e.value("trading_portfolio_drawdown_ratio", &[SRC]),
        f(&exp["portfolio"]["drawdown_ratio"]),
        "portfolio drawdown",
    );
    // A second scrape reads nothing new and says the same.
    let again = app.scrape();
    for fam in [
        "trading_pnl_realized",
        "trading_fills_total",
        "trading_orders_total",
    ] {
        let a: Vec<_> = e.matching(fam, &[SRC]).into_iter().cloned().collect();
        let b: Vec<_> = again.matching(fam, &[SRC]).into_iter().cloned().collect();
        assert_eq!(a, b, "{fam}");
    }
}

#[test]
fn a_database_with_no_fills() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, day_start) = fixture_copy(dir.path(), &exp);
    rt().block_on(async {
        let mut c = bot_connection(&db).await;
        sqlx::query("DELETE FROM TradeFill")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let app = start(dir.path(), &db, &day_start);
    let e = scrape_up(&app);
    for name in ["pure_market_making", "avellaneda_market_making"] {
        let l = [SRC, ("strategy", name)];
        assert_eq!(e.value("trading_positions_open", &l), Some(0.0), "{name}");
        assert_eq!(e.value("trading_pnl_realized", &l), Some(0.0), "{name}");
        assert_eq!(e.value("trading_equity", &l), Some(5000.0), "{name}");
        assert_eq!(e.value("trading_max_drawdown_ratio", &l), Some(0.0));
        for side in ["buy", "sell"] {
            let ls = [SRC, ("strategy", name), ("side", side)];
            assert_eq!(e.value("trading_fills_total", &ls), Some(0.0));
            assert_eq!(e.value("trading_traded_notional_total", &ls), Some(0.0));
        }
    }
    // The orders are still there.
    let s = &exp["strategies"]["pure_market_making"]["orders"];
    assert_eq!(
        e.value(
            "trading_orders_closed_total",
            &[
                SRC,
                ("strategy", "pure_market_making"),
                ("side", "buy"),
                ("status", "filled")
            ]
        ),
        s["buy"]["filled"].as_f64()
    );
    assert_eq!(e.value("trading_portfolio_equity", &[SRC]), Some(5000.0));
}

#[test]
fn a_missing_column_removes_only_its_families() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, day_start) = fixture_copy(dir.path(), &exp);
    // A database from before hummingbot's 20230516 migration.
    rt().block_on(async {
        let mut c = bot_connection(&db).await;
        sqlx::query("ALTER TABLE TradeFill DROP COLUMN trade_fee_in_quote")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let app = start(dir.path(), &db, &day_start);
    let e = scrape_up(&app);
    let _ = app.scrape();
    for fam in [
        "trading_fees_total",
        "trading_pnl_realized",
        "trading_equity",
        "trading_max_drawdown_ratio",
        "trading_portfolio_equity",
    ] {
        assert!(e.matching(fam, &[SRC]).is_empty(), "{fam} should be absent");
    }
    let s = &exp["strategies"]["pure_market_making"];
    let l = [SRC, ("strategy", "pure_market_making")];
    close(
        e.value("trading_pnl_unrealized", &l),
        f(&s["pnl_unrealized"]),
        "unrealized without fees",
    );
    close(
        e.value(
            "trading_fills_total",
            &[SRC, ("strategy", "pure_market_making"), ("side", "sell")],
        ),
        f(&s["fills"]["sell"]),
        "fills without fees",
    );
    close(
        e.value("trading_order_fill_latency_seconds_count", &l),
        f(&s["latency"]["count"]),
        "latency without fees",
    );
    let log = app.log();
    assert_eq!(
        log.matches("TradeFill.trade_fee_in_quote").count(),
        1,
        "one log line names the missing column:\n{log}"
    );
}

/// hummingbot's writer (rollback journal, no busy timeout) commits a filled order per
/// transaction, as its MarketsRecorder does, while the exporter is scraped: not one commit
/// may fail with SQLITE_BUSY, and every fill is counted once.
#[test]
fn a_bot_writing_with_no_busy_timeout_never_sees_busy() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, day_start) = fixture_copy(dir.path(), &exp);
    let app = start(dir.path(), &db, &day_start);
    scrape_up(&app);

    const N: usize = 400;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (db, busy) = (db.clone(), busy.clone());
        std::thread::spawn(move || {
            rt().block_on(async {
                let mut c = bot_connection(&db).await;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                let mut done = 0;
                let mut attempt = 0;
                while done < N {
                    attempt += 1;
                    let id = format!("w{done}");
                    let order = FilledBuy {
                        id: &id,
                        timestamp_ms: now + done as i64,
                        config_file_path: "conf_w.yml",
                        strategy: "writer",
                        symbol: "SOL-USDT",
                        price: 100_000_000,
                        amount: 1_000_000,
                    };
                    match order.commit(&mut c).await {
                        Ok(true) => done += 1,
                        Ok(false) => {
                            busy.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => panic!("writer: {e}"),
                    }
                    assert!(attempt < 10 * N, "the writer cannot make progress");
                }
            });
        })
    };
    let scrapes = {
        let stop = stop.clone();
        let url = app.url();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (status, _) = testkit::http_get(&format!("{url}/metrics"));
                assert_eq!(status, 200);
                n += 1;
            }
            n
        })
    };
    writer.join().unwrap();
    stop.store(true, Ordering::SeqCst);
    let scraped = scrapes.join().unwrap();
    assert!(scraped > 0, "no scrape ran while the bot wrote");
    assert_eq!(
        busy.load(Ordering::SeqCst),
        0,
        "the bot saw SQLITE_BUSY during {scraped} scrapes"
    );
    let l = [SRC, ("strategy", "writer"), ("side", "buy")];
    let mut last = None;
    let ok = wait_until(Duration::from_secs(20), || {
        let e = app.scrape();
        last = e.value("trading_fills_total", &l);
        last == Some(N as f64)
    });
    assert!(ok, "writer fills counted: {last:?}, want {N}");
    let e = app.scrape();
    close(
        e.value(
            "trading_traded_notional_total",
            &[SRC, ("strategy", "writer"), ("side", "buy")],
        ),
        N as f64 * 100.0,
        "writer notional",
    );
    close(
        e.value(
            "trading_orders_closed_total",
            &[
                SRC,
                ("strategy", "writer"),
                ("side", "buy"),
                ("status", "filled"),
            ],
        ),
        N as f64,
        "writer orders",
    );
    close(
        e.value("trading_positions_open", &[SRC, ("strategy", "writer")]),
        1.0,
        "writer position",
    );
}

/// The check above can fail: a reader that takes SQLite's ordinary SHARED lock makes the same
/// writer fail at once with SQLITE_BUSY.
#[test]
fn a_locking_reader_does_make_the_bot_see_busy() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = fixture_copy(dir.path(), &exp);
    rt().block_on(async {
        let mut reader = SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        let mut read = reader.begin().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM TradeFill")
            .fetch_one(&mut *read)
            .await
            .unwrap();
        assert_eq!(n, 11);
        let mut bot = bot_connection(&db).await;
        let err = sqlx::query("DELETE FROM OrderStatus WHERE id = 1")
            .execute(&mut bot)
            .await
            .unwrap_err();
        let code = match &err {
            sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
            _ => None,
        };
        assert!(testkit::hummingbot::is_busy(code.as_deref()), "{err}");
        read.rollback().await.unwrap();
    });
}

async fn insert_fill(c: &mut SqliteConnection, id: &str, ts: i64, side: &str, price: i64) {
    sqlx::query(
        "INSERT INTO TradeFill (config_file_path, strategy, market, symbol, base_asset, \
         quote_asset, timestamp, order_id, trade_type, order_type, price, amount, leverage, \
         trade_fee, trade_fee_in_quote, exchange_trade_id, position) VALUES ('conf_l.yml', \
         'late', 'binance', 'ADA-USDT', 'ADA', 'USDT', ?2, ?1, ?3, 'LIMIT', ?4, 1000000, 1, \
         '{}', 0, ?1, 'NIL')",
    )
    .bind(id)
    .bind(ts)
    .bind(side)
    .bind(price * 1_000_000)
    .execute(&mut *c)
    .await
    .unwrap();
}

/// A fill committed an hour after fills with later timestamps (beyond the reorder window):
/// the source refolds every fill once in (timestamp, exchange_trade_id) order, counting each
/// fill once.
#[test]
fn a_fill_recorded_an_hour_late_is_folded_in_time_order() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, day_start) = fixture_copy(dir.path(), &exp);
    let app = start(dir.path(), &db, &day_start);
    scrape_up(&app);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    rt().block_on(async {
        let mut c = bot_connection(&db).await;
        insert_fill(&mut c, "L1", now, "BUY", 100).await;
        insert_fill(&mut c, "L2", now + 1, "BUY", 110).await;
        c.close().await.unwrap();
    });
    let l = [SRC, ("strategy", "late")];
    let mut seen = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            seen = app.scrape().value("trading_positions_open", &l);
            seen == Some(1.0)
        }),
        "the two buys were not read: {seen:?}"
    );
    rt().block_on(async {
        let mut c = bot_connection(&db).await;
        insert_fill(&mut c, "L0", now - 3_600_000, "SELL", 90).await;
        c.close().await.unwrap();
    });
    // In time order: short 1 @ 90, buy 1 @ 100 closes it (−10), buy 1 @ 110 opens a long.
    // (In commit order it would be long 2 @ 105, then −15 on the sell.)
    let mut e = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            let x = app.scrape();
            let done = x.value(
                "trading_fills_total",
                &[SRC, ("strategy", "late"), ("side", "sell")],
            ) == Some(1.0);
            e = Some(x);
            done
        }),
        "the late fill was not read"
    );
    let e = e.unwrap();
    close(e.value("trading_pnl_realized", &l), -10.0, "late realized");
    close(
        e.value("trading_pnl_unrealized", &l),
        0.0,
        "late unrealized",
    );
    close(
        e.value(
            "trading_position_notional",
            &[SRC, ("strategy", "late"), ("symbol", "ADA-USDT")],
        ),
        110.0,
        "late notional",
    );
    // The refold counted the fixture's fills once.
    let s = &exp["strategies"]["pure_market_making"];
    let pmm = [SRC, ("strategy", "pure_market_making")];
    close(
        e.value(
            "trading_fills_total",
            &[SRC, ("strategy", "pure_market_making"), ("side", "buy")],
        ),
        f(&s["fills"]["buy"]),
        "pmm fills after the refold",
    );
    close(
        e.value("trading_pnl_realized", &pmm),
        f(&s["pnl_realized"]),
        "pmm realized after the refold",
    );
    close(
        e.value("trading_max_drawdown_ratio", &pmm),
        f(&s["max_drawdown_ratio"]),
        "pmm max drawdown after the refold",
    );
}

/// The file missing is this source's failure only; once the bot creates it, it is read.
#[test]
fn a_missing_file_is_down_until_it_appears() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, day_start) = fixture_copy(dir.path(), &exp);
    let later = dir.path().join("later.sqlite");
    std::fs::rename(&db, &later).unwrap();
    let app = start(dir.path(), &db, &day_start);
    let e = app.scrape();
    assert_eq!(e.value("trading_source_up", &[SRC]), Some(0.0));
    assert!(
        e.value("node_load1", &[]).is_some(),
        "the rest of the scrape is there"
    );
    std::fs::rename(&later, &db).unwrap();
    let e = scrape_up(&app);
    close(
        e.value("trading_portfolio_equity", &[SRC]),
        f(&exp["portfolio"]["equity"]),
        "portfolio equity once the file exists",
    );
}

/// An order open at one scrape (o7: a sell with only its created status) that the bot
/// cancels afterwards moves from open to closed at the next scrape, counted once.
#[test]
fn an_open_order_that_ends_moves_to_closed_once() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let (db, day_start) = fixture_copy(dir.path(), &exp);
    let app = start(dir.path(), &db, &day_start);
    let e = scrape_up(&app);
    let open = [
        SRC,
        ("strategy", "pure_market_making"),
        ("side", "sell"),
        ("status", "new"),
    ];
    let cancelled = [
        SRC,
        ("strategy", "pure_market_making"),
        ("side", "sell"),
        ("status", "cancelled"),
    ];
    let total = [SRC, ("strategy", "pure_market_making"), ("side", "sell")];
    let open_before = e.value("trading_orders_open", &open).unwrap_or(0.0);
    let cancelled_before = e
        .value("trading_orders_closed_total", &cancelled)
        .unwrap_or(0.0);
    let total_before = e.value("trading_orders_total", &total);
    assert!(open_before >= 1.0, "o7 is not open in the fixture");
    rt().block_on(async {
        let mut c = bot_connection(&db).await;
        let mut tx = c.begin().await.unwrap();
        sqlx::query("UPDATE \"Order\" SET last_status = 'OrderCancelled' WHERE id = 'o7'")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO OrderStatus (order_id, timestamp, status) \
             SELECT 'o7', max(timestamp) + 1, 'OrderCancelled' FROM OrderStatus",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        c.close().await.unwrap();
    });
    let mut last = None;
    let ok = wait_until(Duration::from_secs(20), || {
        let e = app.scrape();
        let done =
            e.value("trading_orders_closed_total", &cancelled) == Some(cancelled_before + 1.0);
        last = Some(e);
        done
    });
    let e = last.unwrap();
    assert!(ok, "o7's cancel was never counted; log:\n{}", app.log());
    assert_eq!(
        e.value("trading_orders_open", &open).unwrap_or(0.0),
        open_before - 1.0
    );
    assert_eq!(e.value("trading_orders_total", &total), total_before);
    // Counted once: a further scrape says the same.
    let again = app.scrape();
    assert_eq!(
        again.value("trading_orders_closed_total", &cancelled),
        Some(cancelled_before + 1.0)
    );
}
