//! Every statement a trading scrape runs. Each one reads a bounded number of rows whatever the
//! history holds: per-strategy rows of the trigger-maintained summary tables, index lookups
//! for the latest and day-boundary snapshots, open positions, today's orders and the
//! portfolio's short unsettled tail (see ARCHITECTURE.md, "Exporter — trading").

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;

/// One strategy with its latest snapshot, its equity summary and its day-boundary snapshots.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StrategyRow {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub risk_budget: Option<Decimal>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub latest_ts: Option<DateTime<Utc>>,
    pub latest_equity: Option<Decimal>,
    pub latest_realized: Option<Decimal>,
    pub peak: Option<Decimal>,
    pub max_drawdown: Option<f64>,
    /// Equity of the last snapshot strictly before the trading-day start.
    pub before_day_equity: Option<Decimal>,
    /// The first snapshot at or after the trading-day start.
    pub first_of_day_ts: Option<DateTime<Utc>>,
    pub first_of_day_equity: Option<Decimal>,
}

pub const STRATEGIES_SQL: &str = "\
SELECT s.id, s.name, s.status, s.risk_budget, s.heartbeat_at,
       l.ts AS latest_ts, l.equity AS latest_equity, l.realized_pnl AS latest_realized,
       st.peak, st.max_drawdown::float8 AS max_drawdown,
       b.equity AS before_day_equity, f.ts AS first_of_day_ts, f.equity AS first_of_day_equity
FROM strategies s
LEFT JOIN trading_equity_stats st ON st.strategy_id = s.id
LEFT JOIN LATERAL (SELECT e.ts, e.equity, e.realized_pnl FROM equity_snapshots e
                   WHERE e.strategy_id = s.id ORDER BY e.ts DESC LIMIT 1) l ON true
LEFT JOIN LATERAL (SELECT e.equity FROM equity_snapshots e
                   WHERE e.strategy_id = s.id AND e.ts < $1 ORDER BY e.ts DESC LIMIT 1) b ON true
LEFT JOIN LATERAL (SELECT e.ts, e.equity FROM equity_snapshots e
                   WHERE e.strategy_id = s.id AND e.ts >= $1 ORDER BY e.ts LIMIT 1) f ON true
ORDER BY s.name";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PositionRow {
    pub strategy_id: i64,
    pub symbol: String,
    pub quantity: Decimal,
    pub avg_price: Decimal,
    pub market_price: Decimal,
}

/// Flat positions contribute nothing to any position metric, so they are not read.
pub const POSITIONS_SQL: &str = "\
SELECT strategy_id, symbol, quantity, avg_price, market_price FROM positions WHERE quantity <> 0";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderCountRow {
    pub strategy_id: i64,
    pub side: String,
    pub status: String,
    pub n: i64,
}

pub const ORDER_COUNTS_SQL: &str = "SELECT strategy_id, side, status, n FROM trading_order_counts";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FillTotalRow {
    pub strategy_id: i64,
    pub side: String,
    pub fills: i64,
    pub notional: Decimal,
    pub fees: Decimal,
}

pub const FILL_TOTALS_SQL: &str =
    "SELECT strategy_id, side, fills, notional, fees FROM trading_fill_totals";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LatencyRow {
    pub strategy_id: i64,
    pub le: f64,
    pub n: i64,
    pub sum_seconds: Decimal,
}

pub const LATENCY_SQL: &str = "SELECT strategy_id, le, n, sum_seconds FROM trading_fill_latency";

pub const LATENCY_BUCKETS_SQL: &str =
    "SELECT le FROM trading_fill_latency_buckets WHERE le < 'Infinity' ORDER BY le";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExecutionRow {
    pub strategy_id: i64,
    pub filled: i64,
    pub terminal: i64,
}

/// Orders created in [day start, now], per strategy, through (strategy_id, created_at)
/// INCLUDE (status): an index-only range scan of today's orders.
pub const EXECUTION_SQL: &str = "\
SELECT s.id AS strategy_id, x.filled, x.terminal
FROM strategies s CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE o.status = 'filled') AS filled,
           count(*) FILTER (WHERE o.status IN ('filled', 'cancelled', 'rejected')) AS terminal
    FROM orders o WHERE o.strategy_id = s.id AND o.created_at >= $1 AND o.created_at <= $2) x";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SnapshotRow {
    pub strategy_id: i64,
    pub ts: DateTime<Utc>,
    pub equity: Decimal,
}

/// Snapshots after the portfolio's settled instant (index on ts).
pub const PORTFOLIO_TAIL_SQL: &str = "\
SELECT strategy_id, ts, equity FROM equity_snapshots WHERE ts > $1 ORDER BY ts, strategy_id";

/// The portfolio peak over every instant ≤ $1, in one pass: the portfolio value at an instant
/// is the running sum of every strategy's equity changes up to it. Run once per process.
pub const PORTFOLIO_PEAK_SQL: &str = "\
SELECT max(value) FROM (
    SELECT sum(sum(delta)) OVER (ORDER BY ts) AS value FROM (
        SELECT ts, equity - coalesce(lag(equity) OVER (PARTITION BY strategy_id ORDER BY ts), 0)
               AS delta
        FROM equity_snapshots WHERE ts <= $1) d
    GROUP BY ts) p";

/// Each strategy's latest equity at or before $1.
pub const PORTFOLIO_BASE_SQL: &str = "\
SELECT s.id AS strategy_id, l.ts, l.equity FROM strategies s CROSS JOIN LATERAL (
    SELECT e.ts, e.equity FROM equity_snapshots e
    WHERE e.strategy_id = s.id AND e.ts <= $1 ORDER BY e.ts DESC LIMIT 1) l";

/// Everything the built-in metrics need, read in one consistent snapshot.
#[derive(Debug, Clone, Default)]
pub struct TradingData {
    pub now: Option<DateTime<Utc>>,
    pub strategies: Vec<StrategyRow>,
    pub positions: Vec<PositionRow>,
    pub order_counts: Vec<OrderCountRow>,
    pub fill_totals: Vec<FillTotalRow>,
    pub latency_buckets: Vec<f64>,
    pub latency: Vec<LatencyRow>,
    pub execution: Vec<ExecutionRow>,
    /// What a trading source (`crate::trading::sources`) defines differently from the
    /// reference schema; the default is the reference definitions.
    pub overrides: Overrides,
}

/// Where a source's definition of a family differs from the reference one (contract, "Trading
/// sources"). Every field's default leaves the reference behaviour unchanged.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Families the source cannot define (e.g. `trading_strategy_up` for a freqtrade bot
    /// without its REST API, `trading_pnl_unrealized` without current prices, the equity
    /// families without a starting capital): left out of its output.
    pub absent: Vec<&'static str>,
    /// Unrealized PnL per strategy id as the source states it (freqtrade's `profit_abs`),
    /// instead of Σ quantity × (market − average price) over positions. A strategy not in
    /// the map has no `trading_pnl_unrealized` series.
    pub unrealized: Option<std::collections::HashMap<i64, Decimal>>,
    /// The account's own figures for the portfolio families, for a source whose strategies
    /// share one account (one starting capital): summing each strategy's equity would count
    /// the capital once per strategy.
    pub portfolio: Option<PortfolioFigures>,
}

/// One account's equity series: its latest value, peak and trading-day baseline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortfolioFigures {
    pub equity: Decimal,
    pub peak: Decimal,
    /// The equity at the trading-day start (the last point before it, else the day's first).
    pub day_base: Option<Decimal>,
}

/// Reads everything except the portfolio tail; `conn` is inside a read-only transaction.
pub async fn read_all(
    conn: &mut PgConnection,
    day_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<TradingData, sqlx::Error> {
    let strategies = sqlx::query_as::<_, StrategyRow>(STRATEGIES_SQL)
        .bind(day_start)
        .fetch_all(&mut *conn)
        .await?;
    let positions = sqlx::query_as::<_, PositionRow>(POSITIONS_SQL)
        .fetch_all(&mut *conn)
        .await?;
    let order_counts = sqlx::query_as::<_, OrderCountRow>(ORDER_COUNTS_SQL)
        .fetch_all(&mut *conn)
        .await?;
    let fill_totals = sqlx::query_as::<_, FillTotalRow>(FILL_TOTALS_SQL)
        .fetch_all(&mut *conn)
        .await?;
    let latency_buckets = sqlx::query_scalar::<_, f64>(LATENCY_BUCKETS_SQL)
        .fetch_all(&mut *conn)
        .await?;
    let latency = sqlx::query_as::<_, LatencyRow>(LATENCY_SQL)
        .fetch_all(&mut *conn)
        .await?;
    let execution = sqlx::query_as::<_, ExecutionRow>(EXECUTION_SQL)
        .bind(day_start)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    Ok(TradingData {
        now: Some(now),
        strategies,
        positions,
        order_counts,
        fill_totals,
        latency_buckets,
        latency,
        execution,
        overrides: Overrides::default(),
    })
}
