//! The trading collector against a real PostgreSQL: fixtures written with plain SQL, answers
//! computed by hand (in the comments) and checked to 1e-9.

mod common;

use chrono::{DateTime, Utc};
use quantwatch_exporter::collectors::Collector;
use quantwatch_exporter::collectors::trading::TradingCollector;
use quantwatch_exporter::config::Config;
use quantwatch_exporter::scrape::Scraper;
use quantwatch_exporter::trading::migrate;
use std::sync::Arc;
use std::time::Duration;
use testkit::Postgres;
use testkit::prom_text::{Exposition, parse};

/// A trading collector configured through the real config loader.
fn collector(url: &str, trading_yaml: &str) -> Arc<TradingCollector> {
    collector_with_env(url, trading_yaml, &[])
}

/// The same, with environment variables (which win over the file).
fn collector_with_env(
    url: &str,
    trading_yaml: &str,
    env: &[(&'static str, &'static str)],
) -> Arc<TradingCollector> {
    let yaml = format!("host:\n  enabled: false\ntrading:\n  url: {url}\n{trading_yaml}");
    let cfg = common::load_config(&yaml, env);
    Arc::new(TradingCollector::from_config(&cfg.trading).expect("trading collector is on"))
}

async fn scrape(c: &Arc<TradingCollector>, now: &str) -> (String, Exposition) {
    c.set_now(Some(ts(now)));
    let text = common::scrape_text(c.clone()).await;
    let exp = parse(&text);
    (text, exp)
}

fn ts(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339 test instant")
}

#[track_caller]
fn check(e: &Exposition, text: &str, name: &str, labels: &[(&str, &str)], expected: f64) {
    match e.value(name, labels) {
        Some(v) => assert!(
            (v - expected).abs() <= 1e-9,
            "{name}{labels:?} = {v}, expected {expected}\n{text}"
        ),
        None => panic!("{name}{labels:?} is missing, expected {expected}\n{text}"),
    }
}

#[track_caller]
fn absent(e: &Exposition, text: &str, name: &str, labels: &[(&str, &str)]) {
    assert_eq!(
        e.value(name, labels),
        None,
        "{name}{labels:?} must be absent\n{text}"
    );
}

async fn migrated(pg: &Postgres, db: &str) -> String {
    let url = pg.create_database(db);
    migrate::run(
        &url,
        &quantwatch_exporter::config::DEFAULT_FILL_LATENCY_BUCKETS,
    )
    .await
    .expect("migrations apply");
    url
}

/// Shanghai, trading day from 09:00 local (01:00Z); now = 2024-05-10 14:00 local (06:00Z).
const SHANGHAI_FIXTURE: &str = "
INSERT INTO strategies (name, status, risk_budget, heartbeat_at) VALUES
  ('alpha',  'active',  200000, '2024-05-10T05:59:30Z'),
  ('empty',  'paused',  NULL,   NULL),
  ('flat',   'active',  50000,  '2024-05-10T05:00:00Z'),
  ('shorty', 'stopped', NULL,   '2024-05-10T06:00:00Z');

-- alpha: peak 110000, drawdown to 99000 (-10 %), recovery, new peak 121000.
INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
SELECT id, v.ts::timestamptz, v.equity, v.realized FROM strategies,
  (VALUES ('2024-05-09T01:00:00Z', 100000, 0), ('2024-05-09T08:00:00Z', 110000, 5000),
          ('2024-05-10T00:30:00Z', 99000, 4000), ('2024-05-10T02:00:00Z', 104500, 4500),
          ('2024-05-10T05:00:00Z', 121000, 9000)) AS v(ts, equity, realized)
WHERE name = 'alpha';
-- flat: only snapshots of today, the first exactly at the day start.
INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
SELECT id, v.ts::timestamptz, v.equity, v.realized FROM strategies,
  (VALUES ('2024-05-10T01:00:00Z', 50000, 0), ('2024-05-10T03:00:00Z', 50500, 500),
          ('2024-05-10T05:30:00Z', 48000, 500)) AS v(ts, equity, realized)
WHERE name = 'flat';
-- shorty: written out of time order (the trigger's recompute path).
INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
SELECT id, '2024-05-09T00:00:00Z', 72000, -2000 FROM strategies WHERE name = 'shorty';
INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
SELECT id, '2024-05-08T00:00:00Z', 80000, 0 FROM strategies WHERE name = 'shorty';
INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
SELECT id, '2024-05-09T12:00:00Z', 76000, 1000 FROM strategies WHERE name = 'shorty';

INSERT INTO positions (strategy_id, symbol, quantity, avg_price, market_price)
SELECT id, v.* FROM strategies,
  (VALUES ('AAPL', 100, 180, 190), ('MSFT', -50, 420, 400), ('TSLA', 0, 200, 250),
          ('BTCUSDT', 0.5, 60000, 64000)) AS v
WHERE name = 'alpha';
INSERT INTO positions (strategy_id, symbol, quantity, avg_price, market_price)
SELECT id, 'AAPL', 0, 150, 190 FROM strategies WHERE name = 'flat';
INSERT INTO positions (strategy_id, symbol, quantity, avg_price, market_price)
SELECT id, v.* FROM strategies,
  (VALUES ('ESZ4', -2, 5600, 5650.25), ('EURUSD', -10000, 1.08, 1.07)) AS v
WHERE name = 'shorty';

-- alpha's orders around the day start (01:00Z): o2 at 00:59:59Z belongs to yesterday.
INSERT INTO orders (strategy_id, symbol, side, quantity, price, status, created_at)
SELECT s.id, v.symbol, v.side, v.quantity, v.price, v.status, v.created_at::timestamptz
FROM strategies s, (VALUES
  ('AAPL', 'buy', 100, 180, 'filled', '2024-05-09T02:00:00Z'),
  ('MSFT', 'sell', 50, 420, 'filled', '2024-05-10T00:59:59Z'),
  ('BTCUSDT', 'buy', 0.5, 60000, 'filled', '2024-05-10T01:00:00Z'),
  ('TSLA', 'buy', 10, 250, 'new', '2024-05-10T01:30:00Z'),
  ('AAPL', 'sell', 10, 195, 'rejected', '2024-05-10T02:00:00Z'),
  ('AAPL', 'buy', 20, 185, 'new', '2024-05-10T03:00:00Z'),
  ('TSLA', 'sell', 30, 260, 'partially_filled', '2024-05-10T04:00:00Z'),
  ('MSFT', 'buy', 5, 400, 'new', '2024-05-10T05:30:00Z')
) AS v(symbol, side, quantity, price, status, created_at)
WHERE s.name = 'alpha' ORDER BY v.created_at;
-- Status changes after insert (the trigger moves the counts).
UPDATE orders SET status = 'cancelled' WHERE symbol = 'TSLA' AND side = 'buy';
UPDATE orders SET status = 'partially_filled' WHERE symbol = 'MSFT' AND side = 'buy';
UPDATE orders SET status = 'filled' WHERE symbol = 'MSFT' AND side = 'buy';
INSERT INTO orders (strategy_id, symbol, side, quantity, price, status, created_at)
SELECT id, 'ESZ4', 'sell', 2, 5600, 'filled', '2024-05-09T00:00:00Z'
FROM strategies WHERE name = 'shorty';

INSERT INTO fills (order_id, quantity, price, fee, filled_at)
SELECT o.id, v.quantity, v.price, v.fee, o.created_at + v.latency::interval
FROM orders o JOIN (VALUES
  ('2024-05-09T02:00:00Z', 60, 180, 1.5, '0.004 s'),
  ('2024-05-09T02:00:00Z', 40, 180.5, 1.0, '0.3 s'),
  ('2024-05-10T00:59:59Z', 50, 420, 2.1, '0.05 s'),
  ('2024-05-10T01:00:00Z', 0.5, 60000, 3, '2 s'),
  ('2024-05-10T04:00:00Z', 10, 260, 0.26, '120 s'),
  ('2024-05-10T05:30:00Z', 5, 400, 0.2, '0.01 s'),
  ('2024-05-09T00:00:00Z', 2, 5600, 4.5, '1 s')
) AS v(created_at, quantity, price, fee, latency)
ON o.created_at = v.created_at::timestamptz;
";

#[tokio::test]
async fn every_trading_metric_matches_hand_computed_answers() {
    let pg = Postgres::start();
    let url = migrated(&pg, "shanghai").await;
    pg.psql("shanghai", SHANGHAI_FIXTURE);
    // The file says UTC; the environment (as in a container) wins.
    let c = collector_with_env(
        &url,
        "  timezone: UTC\n  max_symbols: 2\n",
        &[
            ("TRADING_TIMEZONE", "Asia/Shanghai"),
            ("TRADING_DAY_START", "09:00"),
        ],
    );
    let (t, e) = scrape(&c, "2024-05-10T06:00:00Z").await;
    let t = t.as_str();
    check(
        &e,
        t,
        "quantwatch_exporter_collector_success",
        &[("collector", "trading")],
        1.0,
    );
    check(&e, t, "trading_up", &[], 1.0);

    // Status and heartbeat.
    let a = [("strategy", "alpha")];
    let em = [("strategy", "empty")];
    let fl = [("strategy", "flat")];
    let sh = [("strategy", "shorty")];
    for (s, up, status) in [
        ("alpha", 1.0, "active"),
        ("empty", 0.0, "paused"),
        ("flat", 1.0, "active"),
        ("shorty", 0.0, "stopped"),
    ] {
        check(&e, t, "trading_strategy_up", &[("strategy", s)], up);
        for st in ["active", "paused", "stopped", "error"] {
            let want = if st == status { 1.0 } else { 0.0 };
            check(
                &e,
                t,
                "trading_strategy_status",
                &[("strategy", s), ("status", st)],
                want,
            );
        }
    }
    check(&e, t, "trading_strategy_heartbeat_age_seconds", &a, 30.0);
    absent(&e, t, "trading_strategy_heartbeat_age_seconds", &em);
    check(&e, t, "trading_strategy_heartbeat_age_seconds", &fl, 3600.0);
    check(&e, t, "trading_strategy_heartbeat_age_seconds", &sh, 0.0);

    // Equity. alpha: latest 121000 = new peak after the drawdown to 99000 from 110000.
    check(&e, t, "trading_equity", &a, 121000.0);
    check(&e, t, "trading_equity_peak", &a, 121000.0);
    check(&e, t, "trading_drawdown_ratio", &a, 0.0);
    check(
        &e,
        t,
        "trading_max_drawdown_ratio",
        &a,
        99000.0 / 110000.0 - 1.0,
    );
    check(&e, t, "trading_pnl_realized", &a, 9000.0);
    // Last snapshot before 01:00Z is 00:30Z (99000).
    check(&e, t, "trading_pnl_daily", &a, 121000.0 - 99000.0);
    // flat: 50000 at the day start (first of the day), 50500 peak, 48000 now.
    check(&e, t, "trading_equity", &fl, 48000.0);
    check(&e, t, "trading_equity_peak", &fl, 50500.0);
    check(
        &e,
        t,
        "trading_drawdown_ratio",
        &fl,
        48000.0 / 50500.0 - 1.0,
    );
    check(
        &e,
        t,
        "trading_max_drawdown_ratio",
        &fl,
        48000.0 / 50500.0 - 1.0,
    );
    check(&e, t, "trading_pnl_realized", &fl, 500.0);
    check(&e, t, "trading_pnl_daily", &fl, -2000.0);
    // shorty: 80000, 72000, 76000 (inserted out of order); nothing today.
    check(&e, t, "trading_equity", &sh, 76000.0);
    check(&e, t, "trading_equity_peak", &sh, 80000.0);
    check(&e, t, "trading_drawdown_ratio", &sh, -0.05);
    check(&e, t, "trading_max_drawdown_ratio", &sh, -0.1);
    check(&e, t, "trading_pnl_realized", &sh, 1000.0);
    check(&e, t, "trading_pnl_daily", &sh, 0.0);
    // empty: no snapshots, no equity series at all.
    for name in [
        "trading_equity",
        "trading_equity_peak",
        "trading_drawdown_ratio",
        "trading_max_drawdown_ratio",
        "trading_pnl_realized",
        "trading_pnl_daily",
        "trading_risk_budget_usage_ratio",
        "trading_execution_rate_ratio",
    ] {
        absent(&e, t, name, &em);
    }

    // Positions. alpha: AAPL 100 @180 -> 190, MSFT -50 @420 -> 400, BTC 0.5 @60000 -> 64000,
    // TSLA flat.
    check(
        &e,
        t,
        "trading_pnl_unrealized",
        &a,
        1000.0 + 1000.0 + 2000.0,
    );
    check(&e, t, "trading_positions_open", &a, 3.0);
    check(
        &e,
        t,
        "trading_gross_exposure",
        &a,
        19000.0 + 20000.0 + 32000.0,
    );
    check(
        &e,
        t,
        "trading_net_exposure",
        &a,
        19000.0 - 20000.0 + 32000.0,
    );
    check(
        &e,
        t,
        "trading_position_concentration_ratio",
        &a,
        32000.0 / 71000.0,
    );
    check(
        &e,
        t,
        "trading_risk_budget_usage_ratio",
        &a,
        71000.0 / 200000.0,
    );
    // max_symbols = 2: the two largest, the rest as "other".
    check(
        &e,
        t,
        "trading_position_notional",
        &[("strategy", "alpha"), ("symbol", "BTCUSDT")],
        32000.0,
    );
    check(
        &e,
        t,
        "trading_position_notional",
        &[("strategy", "alpha"), ("symbol", "MSFT")],
        20000.0,
    );
    check(
        &e,
        t,
        "trading_position_notional",
        &[("strategy", "alpha"), ("symbol", "other")],
        19000.0,
    );
    absent(
        &e,
        t,
        "trading_position_notional",
        &[("strategy", "alpha"), ("symbol", "AAPL")],
    );
    absent(
        &e,
        t,
        "trading_position_notional",
        &[("strategy", "alpha"), ("symbol", "TSLA")],
    );
    // flat: a zero-quantity row only.
    check(&e, t, "trading_pnl_unrealized", &fl, 0.0);
    check(&e, t, "trading_positions_open", &fl, 0.0);
    check(&e, t, "trading_gross_exposure", &fl, 0.0);
    check(&e, t, "trading_net_exposure", &fl, 0.0);
    check(&e, t, "trading_position_concentration_ratio", &fl, 0.0);
    check(&e, t, "trading_risk_budget_usage_ratio", &fl, 0.0);
    assert!(
        e.matching("trading_position_notional", &fl).is_empty(),
        "{t}"
    );
    // shorty: ESZ4 -2 @5600 -> 5650.25, EURUSD -10000 @1.08 -> 1.07; NULL risk budget.
    check(&e, t, "trading_pnl_unrealized", &sh, -100.5 + 100.0);
    check(&e, t, "trading_positions_open", &sh, 2.0);
    check(&e, t, "trading_gross_exposure", &sh, 11300.5 + 10700.0);
    check(&e, t, "trading_net_exposure", &sh, -22000.5);
    check(
        &e,
        t,
        "trading_position_concentration_ratio",
        &sh,
        11300.5 / 22000.5,
    );
    absent(&e, t, "trading_risk_budget_usage_ratio", &sh);
    check(
        &e,
        t,
        "trading_position_notional",
        &[("strategy", "shorty"), ("symbol", "ESZ4")],
        11300.5,
    );
    check(
        &e,
        t,
        "trading_position_notional",
        &[("strategy", "shorty"), ("symbol", "EURUSD")],
        10700.0,
    );
    check(&e, t, "trading_positions_open", &em, 0.0);
    check(&e, t, "trading_gross_exposure", &em, 0.0);

    // Orders. alpha buy: AAPL filled, BTC filled, TSLA cancelled, AAPL new, MSFT filled;
    // sell: MSFT filled, AAPL rejected, TSLA partially filled.
    let side = |s: &'static str, sd: &'static str| [("strategy", s), ("side", sd)];
    let st = |s: &'static str, sd: &'static str, status: &'static str| {
        [("strategy", s), ("side", sd), ("status", status)]
    };
    check(&e, t, "trading_orders_total", &side("alpha", "buy"), 5.0);
    check(&e, t, "trading_orders_total", &side("alpha", "sell"), 3.0);
    check(
        &e,
        t,
        "trading_orders_closed_total",
        &st("alpha", "buy", "filled"),
        3.0,
    );
    check(
        &e,
        t,
        "trading_orders_closed_total",
        &st("alpha", "buy", "cancelled"),
        1.0,
    );
    check(
        &e,
        t,
        "trading_orders_closed_total",
        &st("alpha", "buy", "rejected"),
        0.0,
    );
    check(
        &e,
        t,
        "trading_orders_closed_total",
        &st("alpha", "sell", "filled"),
        1.0,
    );
    check(
        &e,
        t,
        "trading_orders_closed_total",
        &st("alpha", "sell", "cancelled"),
        0.0,
    );
    check(
        &e,
        t,
        "trading_orders_closed_total",
        &st("alpha", "sell", "rejected"),
        1.0,
    );
    check(
        &e,
        t,
        "trading_orders_open",
        &st("alpha", "buy", "new"),
        1.0,
    );
    check(
        &e,
        t,
        "trading_orders_open",
        &st("alpha", "buy", "partially_filled"),
        0.0,
    );
    check(
        &e,
        t,
        "trading_orders_open",
        &st("alpha", "sell", "new"),
        0.0,
    );
    check(
        &e,
        t,
        "trading_orders_open",
        &st("alpha", "sell", "partially_filled"),
        1.0,
    );
    check(&e, t, "trading_orders_total", &side("shorty", "sell"), 1.0);
    check(&e, t, "trading_orders_total", &side("empty", "buy"), 0.0);
    check(
        &e,
        t,
        "trading_orders_closed_total",
        &st("empty", "sell", "filled"),
        0.0,
    );
    // Today (from 01:00Z): BTC filled, TSLA cancelled, AAPL rejected, MSFT filled -> 2 of 4.
    // (A UTC day would also count MSFT sell at 00:59:59Z: 3 of 5.)
    check(&e, t, "trading_execution_rate_ratio", &a, 0.5);
    absent(&e, t, "trading_execution_rate_ratio", &sh);
    absent(&e, t, "trading_execution_rate_ratio", &fl);

    // Fills.
    check(&e, t, "trading_fills_total", &side("alpha", "buy"), 4.0);
    check(&e, t, "trading_fills_total", &side("alpha", "sell"), 2.0);
    check(
        &e,
        t,
        "trading_traded_notional_total",
        &side("alpha", "buy"),
        10800.0 + 7220.0 + 30000.0 + 2000.0,
    );
    check(
        &e,
        t,
        "trading_traded_notional_total",
        &side("alpha", "sell"),
        21000.0 + 2600.0,
    );
    check(
        &e,
        t,
        "trading_fees_total",
        &a,
        1.5 + 1.0 + 2.1 + 3.0 + 0.26 + 0.2,
    );
    check(&e, t, "trading_fees_total", &sh, 4.5);
    check(&e, t, "trading_fees_total", &em, 0.0);
    check(&e, t, "trading_fills_total", &side("empty", "sell"), 0.0);
    // Latencies of alpha: 0.004, 0.3, 0.05, 2, 120, 0.01 s.
    let b = |le: &'static str| [("strategy", "alpha"), ("le", le)];
    for (le, n) in [
        ("0.005", 1.0),
        ("0.01", 2.0),
        ("0.025", 2.0),
        ("0.05", 3.0),
        ("0.1", 3.0),
        ("0.25", 3.0),
        ("0.5", 4.0),
        ("1", 4.0),
        ("2.5", 5.0),
        ("5", 5.0),
        ("10", 5.0),
        ("30", 5.0),
        ("60", 5.0),
        ("+Inf", 6.0),
    ] {
        check(
            &e,
            t,
            "trading_order_fill_latency_seconds_bucket",
            &b(le),
            n,
        );
    }
    check(&e, t, "trading_order_fill_latency_seconds_count", &a, 6.0);
    check(&e, t, "trading_order_fill_latency_seconds_sum", &a, 122.364);
    check(
        &e,
        t,
        "trading_order_fill_latency_seconds_bucket",
        &[("strategy", "shorty"), ("le", "0.5")],
        0.0,
    );
    check(
        &e,
        t,
        "trading_order_fill_latency_seconds_bucket",
        &[("strategy", "shorty"), ("le", "1")],
        1.0,
    );
    check(&e, t, "trading_order_fill_latency_seconds_count", &em, 0.0);
    assert_eq!(
        e.types
            .get("trading_order_fill_latency_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        e.types.get("trading_orders_total").map(String::as_str),
        Some("counter")
    );

    // Portfolio series (instants in order): 80000, 72000, 172000, 182000, 186000, 175000,
    // 225000, 230500, 231000, 247500 (peak), 245000 (now).
    check(&e, t, "trading_portfolio_equity", &[], 245000.0);
    check(
        &e,
        t,
        "trading_portfolio_drawdown_ratio",
        &[],
        245000.0 / 247500.0 - 1.0,
    );
    // Before 01:00Z the last instant is 00:30Z: alpha 99000 + shorty 76000.
    check(
        &e,
        t,
        "trading_portfolio_pnl_daily",
        &[],
        245000.0 - 175000.0,
    );
}

/// New York, day from midnight; 2024-03-10 has 23 hours (EST until 07:00Z, then EDT).
const NEW_YORK_FIXTURE: &str = "
INSERT INTO strategies (name, status) VALUES ('nyc', 'active');
INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
SELECT id, v.ts::timestamptz, v.equity, 0 FROM strategies,
  (VALUES ('2024-03-10T04:30:00Z', 1000), ('2024-03-10T04:59:59Z', 1010),
          ('2024-03-10T05:00:00Z', 1020), ('2024-03-10T18:00:00Z', 1100)) AS v(ts, equity);
INSERT INTO orders (strategy_id, symbol, side, quantity, status, created_at)
SELECT id, 'SPY', 'buy', 1, v.status, v.created_at::timestamptz FROM strategies,
  (VALUES ('filled', '2024-03-10T04:59:59Z'), ('cancelled', '2024-03-10T05:00:00Z'),
          ('filled', '2024-03-10T06:30:00Z'), ('filled', '2024-03-10T07:30:00Z'),
          ('rejected', '2024-03-10T18:30:00Z')) AS v(status, created_at);
";

#[tokio::test]
async fn trading_day_crosses_dst_in_new_york_and_starts_at_nine_in_shanghai() {
    let pg = Postgres::start();
    let url = migrated(&pg, "ny").await;
    pg.psql("ny", NEW_YORK_FIXTURE);
    let c = collector(&url, "  timezone: America/New_York\n  day_start: '00:00'\n");
    // 15:00 EDT on the spring-forward day: the day began at 00:00 EST = 05:00Z.
    let (t, e) = scrape(&c, "2024-03-10T19:00:00Z").await;
    let n = [("strategy", "nyc")];
    // Baseline: last snapshot before 05:00Z (04:59:59Z, 1010). A day computed with today's
    // offset (-4, i.e. 04:00Z) would take 1000 as the first snapshot of the day instead.
    check(&e, &t, "trading_pnl_daily", &n, 1100.0 - 1010.0);
    // Created from 05:00Z: cancelled, filled, filled, rejected -> 2 of 4 (not 3 of 5).
    check(&e, &t, "trading_execution_rate_ratio", &n, 0.5);
    check(&e, &t, "trading_portfolio_pnl_daily", &[], 90.0);

    // The next day starts at 00:00 EDT = 04:00Z on 2024-03-11, 23 hours later.
    pg.psql(
        "ny",
        "INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
         SELECT id, v.ts::timestamptz, v.equity, 0 FROM strategies,
           (VALUES ('2024-03-11T03:59:00Z', 1200), ('2024-03-11T04:20:00Z', 1150)) AS v(ts, equity);
         INSERT INTO orders (strategy_id, symbol, side, quantity, status, created_at)
         SELECT id, 'SPY', 'sell', 1, v.status, v.created_at::timestamptz FROM strategies,
           (VALUES ('cancelled', '2024-03-11T03:59:59Z'), ('filled', '2024-03-11T04:10:00Z'))
           AS v(status, created_at);",
    );
    let (t, e) = scrape(&c, "2024-03-11T04:30:00Z").await;
    check(&e, &t, "trading_pnl_daily", &n, 1150.0 - 1200.0);
    check(&e, &t, "trading_execution_rate_ratio", &n, 1.0);
    check(&e, &t, "trading_portfolio_pnl_daily", &[], -50.0);

    // The same data read as a Shanghai 09:00 day: at 2024-03-10T19:00Z (03:00 local on the
    // 11th) the day began 2024-03-10T01:00Z (09:00 local on the 10th), so all five orders
    // created on the 10th count (filled, cancelled, filled, filled, rejected -> 3 of 5) and
    // those of the 11th are after now.
    let sh = collector(&url, "  timezone: Asia/Shanghai\n  day_start: '09:00'\n");
    let (t, e) = scrape(&sh, "2024-03-10T19:00:00Z").await;
    check(&e, &t, "trading_execution_rate_ratio", &n, 0.6);
    // Before 01:00Z there is no snapshot: the first of the day (04:30Z, 1000) is the base;
    // the latest snapshot is the latest written (1150).
    check(&e, &t, "trading_pnl_daily", &n, 1150.0 - 1000.0);
}

#[tokio::test]
async fn portfolio_series_from_snapshots_at_different_instants() {
    let pg = Postgres::start();
    let url = migrated(&pg, "portfolio").await;
    let insert = |rows: &str| {
        pg.psql(
            "portfolio",
            &format!(
                "INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
                 SELECT s.id, v.ts::timestamptz, v.equity, 0 FROM strategies s
                 JOIN (VALUES {rows}) AS v(name, ts, equity) ON s.name = v.name"
            ),
        )
    };
    pg.psql(
        "portfolio",
        "INSERT INTO strategies (name, status) VALUES ('p1', 'active'), ('p2', 'active'), ('p3', 'active')",
    );
    // Series: 10:00:00 100, 10:00:01 300, 10:00:02.5 350, 10:00:03 380 (peak), 10:00:04 330.
    insert(
        "('p1', '2024-06-01T10:00:00Z', 100), ('p2', '2024-06-01T10:00:01Z', 200),
         ('p3', '2024-06-01T10:00:02.5Z', 50), ('p1', '2024-06-01T10:00:03Z', 130),
         ('p2', '2024-06-01T10:00:04Z', 150)",
    );
    let c = collector(&url, "");
    let (t, e) = scrape(&c, "2024-06-01T10:10:00Z").await;
    check(&e, &t, "trading_portfolio_equity", &[], 330.0);
    check(
        &e,
        &t,
        "trading_portfolio_drawdown_ratio",
        &[],
        330.0 / 380.0 - 1.0,
    );
    // No snapshot before midnight UTC: the first instant of the day (10:00:00, p1 alone).
    check(&e, &t, "trading_portfolio_pnl_daily", &[], 330.0 - 100.0);

    // 10:09:30 is after the settled instant (now - 60 s = 10:09:00): 130 + 150 + 120 = 400;
    // 10:10:30: 90 + 150 + 120 = 360.
    insert("('p3', '2024-06-01T10:09:30Z', 120), ('p1', '2024-06-01T10:10:30Z', 90)");
    let (t, e) = scrape(&c, "2024-06-01T10:11:00Z").await;
    check(&e, &t, "trading_portfolio_equity", &[], 360.0);
    check(
        &e,
        &t,
        "trading_portfolio_drawdown_ratio",
        &[],
        360.0 / 400.0 - 1.0,
    );

    // Two more instants in the unsettled tail: 90 + 260 + 120 = 470 (new peak), then 350.
    insert("('p2', '2024-06-01T10:10:45Z', 260), ('p2', '2024-06-01T10:10:50Z', 140)");
    let (t, e) = scrape(&c, "2024-06-01T10:11:10Z").await;
    check(&e, &t, "trading_portfolio_equity", &[], 350.0);
    check(
        &e,
        &t,
        "trading_portfolio_drawdown_ratio",
        &[],
        350.0 / 470.0 - 1.0,
    );
    check(&e, &t, "trading_portfolio_pnl_daily", &[], 350.0 - 100.0);

    // A restarted exporter folds the whole history in one pass and finds the same peak.
    let fresh = collector(&url, "");
    let (t, e) = scrape(&fresh, "2024-06-01T10:20:00Z").await;
    check(
        &e,
        &t,
        "trading_portfolio_drawdown_ratio",
        &[],
        350.0 / 470.0 - 1.0,
    );
    let (t, e) = scrape(&fresh, "2024-06-01T10:11:10Z").await;
    check(
        &e,
        &t,
        "trading_portfolio_drawdown_ratio",
        &[],
        350.0 / 470.0 - 1.0,
    );
}

#[tokio::test]
async fn custom_sql_good_failing_and_slow_in_one_scrape() {
    let pg = Postgres::start();
    let url = migrated(&pg, "custom").await;
    pg.psql(
        "custom",
        "INSERT INTO strategies (name, status) VALUES ('alpha', 'active');
         CREATE TABLE desk_orders (desk TEXT, region TEXT, n NUMERIC);
         INSERT INTO desk_orders VALUES ('fx', 'asia', 3), ('rates', 'eu', 5.5), ('fx', 'eu', NULL);",
    );
    let c = collector(
        &url,
        "  custom_metrics:
    - name: desk_open_orders
      help: Open orders per desk.
      type: counter
      labels: [desk, region]
      value: n
      query: SELECT desk, region, n FROM desk_orders
      timeout: 2s
    - name: desk_broken
      value: v
      query: SELECT v FROM no_such_table
    - name: desk_slow
      value: v
      query: SELECT 1 AS v FROM pg_sleep(5)
      timeout: 300ms
",
    );
    let started = std::time::Instant::now();
    let (t, e) = scrape(&c, "2024-06-01T10:00:00Z").await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the slow query held the scrape: {took:?}"
    );
    check(
        &e,
        &t,
        "quantwatch_exporter_collector_success",
        &[("collector", "trading")],
        1.0,
    );
    check(&e, &t, "trading_up", &[], 1.0);
    check(&e, &t, "trading_strategy_up", &[("strategy", "alpha")], 1.0);
    check(
        &e,
        &t,
        "desk_open_orders",
        &[("desk", "fx"), ("region", "asia")],
        3.0,
    );
    check(
        &e,
        &t,
        "desk_open_orders",
        &[("desk", "rates"), ("region", "eu")],
        5.5,
    );
    // A NULL value is no sample.
    absent(
        &e,
        &t,
        "desk_open_orders",
        &[("desk", "fx"), ("region", "eu")],
    );
    assert_eq!(
        e.types.get("desk_open_orders").map(String::as_str),
        Some("counter")
    );
    check(
        &e,
        &t,
        "trading_custom_metric_success",
        &[("metric", "desk_open_orders")],
        1.0,
    );
    check(
        &e,
        &t,
        "trading_custom_metric_success",
        &[("metric", "desk_broken")],
        0.0,
    );
    check(
        &e,
        &t,
        "trading_custom_metric_success",
        &[("metric", "desk_slow")],
        0.0,
    );
    assert!(e.matching("desk_broken", &[]).is_empty(), "{t}");
    assert!(e.matching("desk_slow", &[]).is_empty(), "{t}");
    let slow = e
        .value(
            "trading_custom_metric_duration_seconds",
            &[("metric", "desk_slow")],
        )
        .expect("duration of the slow query");
    assert!((0.3..2.0).contains(&slow), "desk_slow took {slow}s\n{t}");
}

#[tokio::test]
async fn trading_database_down_reports_trading_up_zero() {
    let port = testkit::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/trading");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("exporter.yml");
    std::fs::write(
        &path,
        "host:\n  enabled: false\ntrading:\n  connect_timeout: 1s\n",
    )
    .expect("write config");
    let env = move |k: &str| (k == "TRADING_DATABASE_URL").then(|| url.clone());
    let cfg = Config::load(Some(&path), &env).expect("valid config");
    let collectors = quantwatch_exporter::collectors::build(&cfg);
    let names: Vec<&str> = collectors.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["trading"]);
    let scraper = Scraper::new(collectors, Duration::from_secs(5), Duration::ZERO);
    let text = scraper.scrape(Duration::from_secs(5)).await;
    let e = parse(&text);
    check(
        &e,
        &text,
        "quantwatch_exporter_collector_success",
        &[("collector", "trading")],
        0.0,
    );
    check(&e, &text, "trading_up", &[], 0.0);
    assert!(e.matching("trading_strategy_up", &[]).is_empty(), "{text}");
}

#[tokio::test]
async fn migrate_is_idempotent_and_applies_configured_buckets() {
    let pg = Postgres::start();
    let url = migrated(&pg, "buckets").await;
    pg.psql(
        "buckets",
        "INSERT INTO strategies (name, status) VALUES ('alpha', 'active');
         INSERT INTO orders (strategy_id, symbol, side, quantity, status, created_at)
         SELECT id, 'X', 'buy', 1, 'filled', '2024-06-01T00:00:00Z' FROM strategies;
         INSERT INTO fills (order_id, quantity, price, filled_at)
         SELECT id, 1, 10, created_at + interval '0.7 s' FROM orders;",
    );
    let again = migrate::run(
        &url,
        &quantwatch_exporter::config::DEFAULT_FILL_LATENCY_BUCKETS,
    )
    .await
    .expect("second run");
    assert_eq!(again.applied, Vec::<i64>::new());
    assert!(!again.buckets_changed);
    let changed = migrate::run(&url, &[0.5, 1.0]).await.expect("new buckets");
    assert!(changed.buckets_changed);
    let c = collector(&url, "  histogram_buckets: [0.5, 1]\n");
    let (t, e) = scrape(&c, "2024-06-01T10:00:00Z").await;
    let a = |le: &'static str| [("strategy", "alpha"), ("le", le)];
    check(
        &e,
        &t,
        "trading_order_fill_latency_seconds_bucket",
        &a("0.5"),
        0.0,
    );
    check(
        &e,
        &t,
        "trading_order_fill_latency_seconds_bucket",
        &a("1"),
        1.0,
    );
    check(
        &e,
        &t,
        "trading_order_fill_latency_seconds_bucket",
        &a("+Inf"),
        1.0,
    );
    absent(
        &e,
        &t,
        "trading_order_fill_latency_seconds_bucket",
        &a("0.25"),
    );
    check(
        &e,
        &t,
        "trading_traded_notional_total",
        &[("strategy", "alpha"), ("side", "buy")],
        10.0,
    );
}

fn exporter(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quantwatch-exporter"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("TRADING_DATABASE_URL")
        .env_remove("QUANTWATCH_EXPORTER_CONFIG")
        .output()
        .expect("running quantwatch-exporter")
}

#[tokio::test]
async fn migrate_and_simulate_commands_produce_consistent_activity() {
    let pg = Postgres::start();
    let url = pg.create_database("sim");
    let out = exporter(&["migrate", "--database-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied migrations"));
    let out = exporter(&["migrate", "--database-url", &url]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    let out = exporter(&["migrate"]);
    assert_eq!(out.status.code(), Some(64), "no URL known is a usage error");

    let out = exporter(&[
        "simulate",
        "--database-url",
        &url,
        "--strategies",
        "3",
        "--rate",
        "60",
        "--snapshot-interval",
        "200ms",
        "--force-drawdown",
        "beta",
        "--stop-heartbeat",
        "gamma",
        "--seed",
        "7",
        "--duration",
        "5s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = exporter(&[
        "simulate",
        "--database-url",
        &url,
        "--force-drawdown",
        "nobody",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody"));

    // What the simulator wrote, read with plain SQL.
    assert_eq!(
        pg.psql(
            "sim",
            "SELECT string_agg(name || ':' || status, ',' ORDER BY id) FROM strategies"
        ),
        "alpha:active,beta:active,gamma:active"
    );
    let statuses = pg.psql(
        "sim",
        "SELECT string_agg(DISTINCT status, ',' ORDER BY status) FROM orders",
    );
    for s in ["cancelled", "filled", "rejected"] {
        assert!(statuses.contains(s), "no {s} order: {statuses}");
    }
    let partial = pg.psql(
        "sim",
        "SELECT count(*) FROM orders o WHERE status = 'cancelled' AND EXISTS
           (SELECT 1 FROM fills f WHERE f.order_id = o.id)",
    );
    assert_ne!(partial, "0", "no partially filled then cancelled order");
    assert_eq!(
        pg.psql("sim", "SELECT count(*) FROM orders o JOIN strategies s ON s.id = o.strategy_id WHERE s.name = 'gamma'"),
        "0",
        "a strategy with a stopped heartbeat does not trade"
    );
    // Positions are the signed sum of each strategy's fills.
    assert_eq!(
        pg.psql(
            "sim",
            "SELECT count(*) FROM positions p FULL JOIN (
               SELECT o.strategy_id, o.symbol,
                      sum(CASE WHEN o.side = 'buy' THEN f.quantity ELSE -f.quantity END) AS q
               FROM fills f JOIN orders o ON o.id = f.order_id GROUP BY 1, 2) x
             USING (strategy_id, symbol) WHERE p.quantity IS DISTINCT FROM x.q"
        ),
        "0"
    );

    let c = collector(&url, "");
    c.set_now(None);
    let collectors: Vec<Arc<dyn Collector>> = vec![c.clone()];
    let text = Scraper::new(collectors, Duration::from_secs(10), Duration::ZERO)
        .scrape(Duration::from_secs(10))
        .await;
    let e = parse(&text);
    let t = text.as_str();
    // The trigger-maintained counters equal plain aggregates over the raw rows.
    let sum = |name: &str| -> f64 { e.matching(name, &[]).iter().map(|s| s.value).sum() };
    let orders: f64 = pg
        .psql("sim", "SELECT count(*) FROM orders")
        .parse()
        .expect("count");
    let fills: f64 = pg
        .psql("sim", "SELECT count(*) FROM fills")
        .parse()
        .expect("count");
    let notional: f64 = pg
        .psql("sim", "SELECT sum(quantity * price) FROM fills")
        .parse()
        .expect("sum");
    assert!(orders >= 100.0, "only {orders} orders in 5 s at 60/s");
    assert_eq!(sum("trading_orders_total"), orders, "{t}");
    assert_eq!(
        sum("trading_orders_closed_total") + sum("trading_orders_open"),
        orders,
        "{t}"
    );
    assert_eq!(sum("trading_fills_total"), fills, "{t}");
    assert!((sum("trading_traded_notional_total") - notional).abs() < 1e-6 * notional);
    assert_eq!(
        sum("trading_order_fill_latency_seconds_count"),
        fills,
        "{t}"
    );
    // beta lost 1 % per snapshot for ~25 snapshots; gamma's heartbeat stopped at the start.
    let beta = e
        .value("trading_max_drawdown_ratio", &[("strategy", "beta")])
        .expect("beta has snapshots");
    assert!(beta < -0.1, "beta's forced drawdown is only {beta}\n{t}");
    let age = |s: &str| {
        e.value("trading_strategy_heartbeat_age_seconds", &[("strategy", s)])
            .expect("heartbeat written")
    };
    assert!(age("gamma") >= age("alpha") + 4.0, "{t}");
    absent(&e, t, "trading_equity", &[("strategy", "gamma")]);
    check(&e, t, "trading_strategy_up", &[("strategy", "gamma")], 1.0);
}

#[tokio::test]
async fn custom_metrics_alone_on_a_database_without_the_reference_schema() {
    let pg = Postgres::start();
    let url = pg.create_database("oms");
    pg.psql(
        "oms",
        "CREATE TABLE books (book TEXT, pnl NUMERIC); INSERT INTO books VALUES ('x', -12.5);",
    );
    let c = collector(
        &url,
        "  reference_schema: false
  custom_metrics:
    - name: oms_book_pnl
      labels: [book]
      value: pnl
      query: SELECT book, pnl FROM books
",
    );
    let (t, e) = scrape(&c, "2024-06-01T10:00:00Z").await;
    check(
        &e,
        &t,
        "quantwatch_exporter_collector_success",
        &[("collector", "trading")],
        1.0,
    );
    check(&e, &t, "trading_up", &[], 1.0);
    check(&e, &t, "oms_book_pnl", &[("book", "x")], -12.5);
    assert!(e.matching("trading_strategy_up", &[]).is_empty(), "{t}");
    assert!(
        e.matching("trading_portfolio_equity", &[]).is_empty(),
        "{t}"
    );
}

#[tokio::test]
async fn a_hung_trading_database_does_not_hang_the_scrape() {
    let pg = Postgres::start();
    let url = migrated(&pg, "hung").await;
    pg.psql(
        "hung",
        "INSERT INTO strategies (name, status) VALUES ('alpha', 'active')",
    );
    let c = collector(&url, "");
    let (t, e) = scrape(&c, "2024-06-01T10:00:00Z").await;
    check(&e, &t, "trading_up", &[], 1.0);

    pg.pause();
    let collectors: Vec<Arc<dyn Collector>> = vec![c.clone()];
    let scraper = Scraper::new(collectors, Duration::from_secs(2), Duration::ZERO);
    let started = std::time::Instant::now();
    let text = scraper.scrape(Duration::from_secs(2)).await;
    let took = started.elapsed();
    pg.resume();
    assert!(took < Duration::from_secs(3), "scrape took {took:?}");
    let e = parse(&text);
    check(&e, &text, "trading_up", &[], 0.0);
    check(
        &e,
        &text,
        "quantwatch_exporter_collector_success",
        &[("collector", "trading")],
        0.0,
    );

    let back = async {
        for _ in 0..50 {
            let (_, e) = scrape(&c, "2024-06-01T10:00:00Z").await;
            if e.value("trading_up", &[]) == Some(1.0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    assert!(
        back.await,
        "trading_up did not return to 1 after the server resumed"
    );
}

#[test]
fn simulate_without_duration_stops_cleanly_on_sigterm() {
    let pg = Postgres::start();
    let url = pg.create_database("sigterm");
    let out = exporter(&["migrate", "--database-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_quantwatch-exporter"))
        .args(["simulate", "--database-url", &url, "--strategies", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start simulate");
    let written = testkit::wait_until(Duration::from_secs(20), || {
        pg.psql("sigterm", "SELECT count(*) FROM equity_snapshots") != "0"
    });
    assert!(written, "the simulator wrote no snapshot");
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().expect("simulate exits");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("simulated "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        pg.psql(
            "sigterm",
            "SELECT string_agg(name, ',' ORDER BY id) FROM strategies"
        ),
        "alpha,beta"
    );
}

/// Writer `k` of the concurrency test: its own strategy's orders, fills and status changes,
/// and snapshots of the shared strategy interleaved in time with the other writer's.
fn writer_sql(k: u32) -> String {
    format!(
        "DO $$
         DECLARE sid BIGINT; shared BIGINT; oid BIGINT;
         BEGIN
           SELECT id INTO sid FROM strategies WHERE name = 'w{k}';
           SELECT id INTO shared FROM strategies WHERE name = 'shared';
           FOR i IN 1..600 LOOP
             INSERT INTO orders (strategy_id, symbol, side, quantity, status, created_at)
             VALUES (sid, 'S' || (i % 5), CASE WHEN i % 2 = 0 THEN 'buy' ELSE 'sell' END,
                     1 + i % 3, 'new', '2024-06-01T00:00:00Z'::timestamptz + i * interval '1 s')
             RETURNING id INTO oid;
             IF i % 3 = 0 THEN
               INSERT INTO fills (order_id, quantity, price, fee, filled_at)
               VALUES (oid, 1, 10 + i % 7, 0.01,
                       '2024-06-01T00:00:00Z'::timestamptz + i * interval '1 s'
                       + (i % 50) * interval '10 ms');
               UPDATE orders SET status = 'filled' WHERE id = oid;
             ELSIF i % 3 = 1 THEN
               UPDATE orders SET status = 'cancelled' WHERE id = oid;
             END IF;
             INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
             VALUES (shared, '2024-06-01T00:00:00Z'::timestamptz + (i * 2 + {k}) * interval '1 s',
                     1000 + (i * 37 + {k} * 11) % 101, 0);
             IF i % 20 = 0 THEN COMMIT; END IF;
           END LOOP;
         END $$;"
    )
}

#[test]
fn summaries_stay_exact_under_concurrent_writers() {
    let pg = Postgres::start();
    pg.create_database("conc");
    let out = exporter(&["migrate", "--database-url", &pg.url_for("conc")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg.psql(
        "conc",
        "INSERT INTO strategies (name, status) VALUES ('w1', 'active'), ('w2', 'active'), ('shared', 'active')",
    );
    std::thread::scope(|s| {
        for k in [1, 2] {
            let pg = &pg;
            s.spawn(move || pg.psql("conc", &writer_sql(k)));
        }
    });
    let orders = pg.psql(
        "conc",
        "SELECT count(*) FROM (SELECT strategy_id, side, status, count(*) AS n FROM orders GROUP BY 1, 2, 3) r
         FULL JOIN (SELECT * FROM trading_order_counts WHERE n <> 0) c USING (strategy_id, side, status)
         WHERE r.n IS DISTINCT FROM c.n",
    );
    assert_eq!(orders, "0", "order counts drifted");
    let fills = pg.psql(
        "conc",
        "SELECT count(*) FROM (SELECT o.strategy_id, o.side, count(*) AS n, sum(f.quantity * f.price) AS v,
                                      sum(f.fee) AS fee
                               FROM fills f JOIN orders o ON o.id = f.order_id GROUP BY 1, 2) r
         FULL JOIN trading_fill_totals t USING (strategy_id, side)
         WHERE (r.n, r.v, r.fee) IS DISTINCT FROM (t.fills, t.notional, t.fees)",
    );
    assert_eq!(fills, "0", "fill totals drifted");
    let latency = pg.psql(
        "conc",
        "SELECT (SELECT sum(n) FROM trading_fill_latency) = (SELECT count(*) FROM fills)",
    );
    assert_eq!(latency, "t");
    let equity = pg.psql(
        "conc",
        "SELECT count(*) FROM (
           SELECT strategy_id, count(*) AS snapshots, max(ts) AS last_ts, max(equity) AS peak,
                  min(CASE WHEN runmax > 0 THEN equity / runmax - 1 END) AS md
           FROM (SELECT strategy_id, ts, equity,
                        max(equity) OVER (PARTITION BY strategy_id ORDER BY ts) AS runmax
                 FROM equity_snapshots) x GROUP BY 1) r
         FULL JOIN trading_equity_stats s USING (strategy_id)
         WHERE (r.snapshots, r.last_ts, r.peak, r.md)
               IS DISTINCT FROM (s.snapshots, s.last_ts, s.peak, s.max_drawdown)",
    );
    assert_eq!(equity, "0", "equity summary drifted");
    assert_eq!(
        pg.psql("conc", "SELECT count(*) FROM equity_snapshots"),
        "1200"
    );
}
