//! Trading business metrics (contract, "Trading metrics"): strategy health, equity, drawdown,
//! PnL, positions and exposure, orders, fills, execution rate, fill latency and the portfolio.
//!
//! A scrape is one read-only REPEATABLE READ transaction (a consistent picture: positions and
//! PnL from the same instant) on a session with `statement_timeout` and
//! `default_transaction_read_only`, running the bounded statements of
//! [`crate::trading::queries`]. All-time aggregates come from summary tables that the
//! migrations' triggers maintain, so the cost does not grow with history. Money stays
//! [`Decimal`] until a sample is written.

use super::pg_conn::ConnPool;
use super::{CollectError, Collector, ScrapeContext};
use crate::config::{CustomMetric, TradingConfig};
use crate::metrics::{Families, Family};
use crate::trading::day::trading_day_start;
use crate::trading::portfolio::{SETTLE_LAG, Settled, fold};
use crate::trading::queries::{
    PORTFOLIO_BASE_SQL, PORTFOLIO_PEAK_SQL, PORTFOLIO_TAIL_SQL, SnapshotRow, TradingData, read_all,
};
use crate::trading::session;
use crate::trading::sources::SourceHealth;
use crate::trading::{custom, queries};
use chrono::{DateTime, NaiveTime, Utc};
use futures::future::BoxFuture;
use jiff::tz::TimeZone as Tz;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Executor, PgConnection};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections this collector may hold: the scrape's transaction, the one-time portfolio
/// load and a few custom metrics at once.
pub const MAX_CONNECTIONS: usize = 4;

/// The one-time portfolio pass runs off the scrape path and may take longer than a scrape.
const PORTFOLIO_LOAD_TIMEOUT: Duration = Duration::from_secs(600);

const STATUSES: [&str; 4] = ["active", "paused", "stopped", "error"];
const SIDES: [&str; 2] = ["buy", "sell"];
const OPEN_STATUSES: [&str; 2] = ["new", "partially_filled"];
const TERMINAL_STATUSES: [&str; 3] = ["filled", "cancelled", "rejected"];

pub struct TradingCollector {
    pool: Arc<ConnPool>,
    tz: Tz,
    day_start: NaiveTime,
    max_symbols: usize,
    reference_schema: bool,
    custom: Vec<CustomMetric>,
    connect_timeout: Duration,
    /// Tests pin "now"; otherwise the database clock is used (heartbeats are written with it).
    fixed_now: Mutex<Option<DateTime<Utc>>>,
    portfolio: Arc<tokio::sync::Mutex<Option<Settled>>>,
    portfolio_loading: Arc<AtomicBool>,
    /// This reference source's `source` label value on `trading_source_up` and its
    /// last-success time (its other series carry no `source` label: contract).
    health: SourceHealth,
}

/// Whether the portfolio's all-time peak is known yet (its one-time pass may still run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PortfolioPeak {
    Known(Option<Decimal>),
    Loading,
}

impl TradingCollector {
    /// `None` when the collector is off: no URL known, or `enabled: false`.
    pub fn from_config(config: &TradingConfig) -> Option<TradingCollector> {
        if config.enabled == Some(false) {
            return None;
        }
        let url = config.url.as_ref()?;
        match PgConnectOptions::from_str(url.expose()) {
            Ok(opts) => Some(Self::with_options(opts, config)),
            Err(e) => {
                tracing::error!(error = %e, "trading: unusable TRADING_DATABASE_URL; collector off");
                None
            }
        }
    }

    pub fn with_options(opts: PgConnectOptions, config: &TradingConfig) -> TradingCollector {
        let opts = opts
            .application_name("quantwatch-exporter-trading")
            .options([
                (
                    "statement_timeout",
                    config.statement_timeout.as_millis().to_string(),
                ),
                ("default_transaction_read_only", "on".to_string()),
            ]);
        let pool = Arc::new(ConnPool::new(opts, MAX_CONNECTIONS, config.connect_timeout));
        TradingCollector {
            pool,
            tz: config.tz.clone(),
            day_start: config.day_start_time,
            max_symbols: config.max_symbols,
            reference_schema: config.reference_schema,
            custom: config.custom_metrics.clone(),
            connect_timeout: config.connect_timeout,
            fixed_now: Mutex::new(None),
            portfolio: Arc::new(tokio::sync::Mutex::new(None)),
            portfolio_loading: Arc::new(AtomicBool::new(false)),
            health: SourceHealth::new(&config.reference_name),
        }
    }

    /// Pins the clock (tests with hand-computed answers); `None` returns to the database's.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        if let Ok(mut g) = self.fixed_now.lock() {
            *g = now;
        }
    }

    fn pinned_now(&self) -> Option<DateTime<Utc>> {
        self.fixed_now.lock().ok().and_then(|g| *g)
    }

    async fn gather(&self, ctx: ScrapeContext) -> Result<Families, CollectError> {
        let builtin = async {
            if self.reference_schema {
                self.builtin(ctx).await
            } else {
                self.ping().await.map(|()| Families::default())
            }
        };
        let (builtin, custom) = futures::join!(builtin, custom::collect(&self.pool, &self.custom));
        let mut fams = Families::default();
        fams.gauge(
            "trading_up",
            "Whether the trading database answered the last scrape (1) or not (0).",
            1.0,
        );
        fams.0.extend(builtin?.0);
        fams.0.extend(custom.0);
        fams.0.extend(self.health.succeeded().0);
        Ok(fams)
    }

    async fn ping(&self) -> Result<(), CollectError> {
        let lease = session::begin(&self.pool, self.connect_timeout, "BEGIN READ ONLY")
            .await
            .map_err(CollectError::Unreachable)?;
        session::finish(lease).await;
        Ok(())
    }

    async fn builtin(&self, ctx: ScrapeContext) -> Result<Families, CollectError> {
        let q = |e: sqlx::Error| CollectError::Query(e.to_string());
        let mut lease = session::begin(
            &self.pool,
            ctx.budget,
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        )
        .await
        .map_err(CollectError::Unreachable)?;
        let now = match self.pinned_now() {
            Some(t) => t,
            None => sqlx::query_scalar::<_, DateTime<Utc>>("SELECT now()")
                .fetch_one(lease.conn())
                .await
                .map_err(q)?,
        };
        let day_start = trading_day_start(now, &self.tz, self.day_start);
        let data = read_all(lease.conn(), day_start, now).await.map_err(q)?;
        let peak = self
            .portfolio_peak(lease.conn(), now, ctx.budget)
            .await
            .map_err(q)?;
        // Only a connection whose every statement succeeded goes back to the pool.
        session::finish(lease).await;
        Ok(render(&data, now, self.max_symbols, peak))
    }

    /// The portfolio's all-time peak: the settled state (loaded once, off the scrape path)
    /// plus this scrape's short tail of snapshots.
    async fn portfolio_peak(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        budget: Duration,
    ) -> Result<PortfolioPeak, sqlx::Error> {
        if self.portfolio.lock().await.is_none() {
            if !self.portfolio_loading.swap(true, Ordering::SeqCst) {
                self.spawn_portfolio_load(now - SETTLE_LAG);
            }
            let deadline = Instant::now() + budget / 2;
            loop {
                if self.portfolio.lock().await.is_some() {
                    break;
                }
                if Instant::now() >= deadline || !self.portfolio_loading.load(Ordering::SeqCst) {
                    return Ok(PortfolioPeak::Loading);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let mut guard = self.portfolio.lock().await;
        let Some(settled) = guard.as_ref() else {
            return Ok(PortfolioPeak::Loading);
        };
        let tail = sqlx::query_as::<_, SnapshotRow>(PORTFOLIO_TAIL_SQL)
            .bind(settled.until)
            .fetch_all(&mut *conn)
            .await?;
        let (peak, next) = fold(settled, &tail, now - SETTLE_LAG);
        *guard = Some(next);
        Ok(PortfolioPeak::Known(peak))
    }

    fn spawn_portfolio_load(&self, until: DateTime<Utc>) {
        let pool = self.pool.clone();
        let state = self.portfolio.clone();
        let loading = self.portfolio_loading.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match load_portfolio(&pool, until).await {
                Ok(settled) => {
                    tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "trading: portfolio history folded"
                    );
                    *state.lock().await = Some(settled);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "trading: portfolio history pass failed; retrying at the next scrape")
                }
            }
            loading.store(false, Ordering::SeqCst);
        });
    }
}

async fn load_portfolio(pool: &ConnPool, until: DateTime<Utc>) -> Result<Settled, String> {
    let mut lease = session::begin(
        pool,
        PORTFOLIO_LOAD_TIMEOUT,
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    )
    .await?;
    let e = |e: sqlx::Error| e.to_string();
    lease
        .conn()
        .execute(
            format!(
                "SET LOCAL statement_timeout = {}",
                PORTFOLIO_LOAD_TIMEOUT.as_millis()
            )
            .as_str(),
        )
        .await
        .map_err(e)?;
    let peak: Option<Decimal> = sqlx::query_scalar(PORTFOLIO_PEAK_SQL)
        .bind(until)
        .fetch_one(lease.conn())
        .await
        .map_err(e)?;
    let base: Vec<SnapshotRow> = sqlx::query_as(PORTFOLIO_BASE_SQL)
        .bind(until)
        .fetch_all(lease.conn())
        .await
        .map_err(e)?;
    session::finish(lease).await;
    let equity = base
        .into_iter()
        .map(|r| (r.strategy_id, r.equity))
        .collect();
    Ok(Settled::new(until, equity, peak))
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

/// `a / b`, `None` when b is 0 (the ratio is undefined).
fn ratio(a: Decimal, b: Decimal) -> Option<f64> {
    a.checked_div(b).map(f)
}

#[derive(Default)]
struct Book {
    unrealized: Decimal,
    open: u64,
    gross: Decimal,
    net: Decimal,
    largest: Decimal,
    /// (symbol, notional), largest first.
    notional: Vec<(String, Decimal)>,
}

/// Turns one consistent read into the families of the contract (pure: unit-testable).
pub fn render(
    data: &TradingData,
    now: DateTime<Utc>,
    max_symbols: usize,
    portfolio_peak: PortfolioPeak,
) -> Families {
    render_labelled(data, now, max_symbols, portfolio_peak, &[])
}

/// [`render`] with `constant` labels on every series (a trading source's `source`), and the
/// source's [`crate::trading::queries::Overrides`] applied.
pub fn render_labelled(
    data: &TradingData,
    now: DateTime<Utc>,
    max_symbols: usize,
    portfolio_peak: PortfolioPeak,
    constant: &[(&str, &str)],
) -> Families {
    let gauge = |name: &str, help: &str| Family::gauge(name, help).with_constant_labels(constant);
    let counter =
        |name: &str, help: &str| Family::counter(name, help).with_constant_labels(constant);
    let mut books: HashMap<i64, Book> = HashMap::new();
    for p in &data.positions {
        let b = books.entry(p.strategy_id).or_default();
        let notional = p.quantity.abs().saturating_mul(p.market_price);
        b.unrealized = b
            .unrealized
            .saturating_add(p.quantity.saturating_mul(p.market_price - p.avg_price));
        b.open += 1;
        b.gross = b.gross.saturating_add(notional);
        b.net = b
            .net
            .saturating_add(p.quantity.saturating_mul(p.market_price));
        b.largest = b.largest.max(notional);
        b.notional.push((p.symbol.clone(), notional));
    }
    let mut orders: HashMap<(i64, &str, &str), i64> = HashMap::new();
    for r in &data.order_counts {
        *orders
            .entry((r.strategy_id, r.side.as_str(), r.status.as_str()))
            .or_default() += r.n;
    }
    let fills: HashMap<(i64, &str), &queries::FillTotalRow> = data
        .fill_totals
        .iter()
        .map(|r| ((r.strategy_id, r.side.as_str()), r))
        .collect();
    let execution: HashMap<i64, &queries::ExecutionRow> =
        data.execution.iter().map(|r| (r.strategy_id, r)).collect();
    let mut latency: HashMap<i64, BTreeMap<u64, (i64, Decimal)>> = HashMap::new();
    let mut latency_sum: HashMap<i64, (i64, Decimal)> = HashMap::new();
    for r in &data.latency {
        let e = latency_sum.entry(r.strategy_id).or_default();
        e.0 += r.n;
        e.1 = e.1.saturating_add(r.sum_seconds);
        let slot = latency.entry(r.strategy_id).or_default();
        let v = slot.entry(r.le.to_bits()).or_default();
        v.0 += r.n;
    }

    let mut fams = Families::default();
    let mut up = gauge(
        "trading_strategy_up",
        "1 if the strategy's status is 'active', else 0.",
    );
    let mut status = gauge(
        "trading_strategy_status",
        "1 for the strategy's current status, 0 for the other three.",
    );
    let mut heartbeat = gauge(
        "trading_strategy_heartbeat_age_seconds",
        "Seconds since the strategy process last wrote heartbeat_at (absent if it never did).",
    );
    let mut equity = gauge(
        "trading_equity",
        "Equity of the strategy's latest snapshot, in account currency.",
    );
    let mut peak = gauge(
        "trading_equity_peak",
        "Highest equity over all of the strategy's snapshots.",
    );
    let mut drawdown = gauge(
        "trading_drawdown_ratio",
        "Latest equity / peak equity - 1 (0 at a new high, -0.1 ten percent below it).",
    );
    let mut max_dd = gauge(
        "trading_max_drawdown_ratio",
        "Deepest drawdown ever: min over snapshots of equity / running peak - 1.",
    );
    let mut realized = gauge(
        "trading_pnl_realized",
        "Cumulative realized PnL of the latest snapshot.",
    );
    let mut unrealized = gauge(
        "trading_pnl_unrealized",
        "Sum over positions of quantity * (market_price - avg_price).",
    );
    let mut daily = gauge(
        "trading_pnl_daily",
        "Latest equity minus the equity at the start of the trading day.",
    );
    let mut open_pos = gauge(
        "trading_positions_open",
        "Positions with a non-zero quantity.",
    );
    let mut notional_f = gauge(
        "trading_position_notional",
        "|quantity| * market_price per symbol (beyond max_symbols per strategy, summed as symbol=\"other\").",
    );
    let mut gross_f = gauge(
        "trading_gross_exposure",
        "Sum over positions of |quantity| * market_price.",
    );
    let mut net_f = gauge(
        "trading_net_exposure",
        "Sum over positions of quantity * market_price (short positions count negative).",
    );
    let mut conc = gauge(
        "trading_position_concentration_ratio",
        "Largest position notional / gross exposure (0 when flat).",
    );
    let mut budget = gauge(
        "trading_risk_budget_usage_ratio",
        "Gross exposure / risk_budget (absent when the strategy has no risk budget).",
    );
    let mut orders_total = counter("trading_orders_total", "Orders created, all time.");
    let mut closed = counter(
        "trading_orders_closed_total",
        "Orders now in a terminal status (filled, cancelled, rejected).",
    );
    let mut open_orders = gauge("trading_orders_open", "Orders now new or partially filled.");
    let mut fills_f = counter("trading_fills_total", "Fills, all time.");
    let mut traded = counter(
        "trading_traded_notional_total",
        "Sum over fills of quantity * price, all time.",
    );
    let mut fees = counter("trading_fees_total", "Sum over fills of fee, all time.");
    let mut exec = gauge(
        "trading_execution_rate_ratio",
        "Of the orders created since the trading-day start that are terminal, the fraction filled.",
    );
    let mut lat = Family::histogram(
        "trading_order_fill_latency_seconds",
        "Per fill: filled_at - the order's created_at.",
    )
    .with_constant_labels(constant);

    let mut portfolio_equity: Option<Decimal> = None;
    let mut before_day: Option<Decimal> = None;
    let mut first_of_day: Option<(DateTime<Utc>, Decimal)> = None;
    for s in &data.strategies {
        let name = s.name.as_str();
        let l = [("strategy", name)];
        // An empty status is unknown (a bot's strategy it does not run now): no series.
        if !s.status.is_empty() {
            up.add(&l, if s.status == "active" { 1.0 } else { 0.0 });
            for st in STATUSES {
                status.add(
                    &[("strategy", name), ("status", st)],
                    if s.status == st { 1.0 } else { 0.0 },
                );
            }
        }
        if let Some(hb) = s.heartbeat_at {
            let age = (now - hb).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
            heartbeat.add(&l, age.max(0.0));
        }
        if let Some(eq) = s.latest_equity {
            equity.add(&l, f(eq));
            portfolio_equity = Some(portfolio_equity.unwrap_or_default().saturating_add(eq));
            if let Some(p) = s.peak {
                peak.add(&l, f(p));
                if p > Decimal::ZERO
                    && let Some(r) = ratio(eq, p)
                {
                    drawdown.add(&l, r - 1.0);
                }
            }
            if let Some(base) = s.before_day_equity.or(s.first_of_day_equity) {
                daily.add(&l, f(eq - base));
            }
        }
        if let Some(m) = s.max_drawdown {
            max_dd.add(&l, m);
        }
        if let Some(r) = s.latest_realized {
            realized.add(&l, f(r));
        }
        if let Some(b) = s.before_day_equity {
            before_day = Some(before_day.unwrap_or_default().saturating_add(b));
        }
        if let (Some(ts), Some(eq)) = (s.first_of_day_ts, s.first_of_day_equity) {
            first_of_day = match first_of_day {
                Some((t, sum)) if t == ts => Some((t, sum.saturating_add(eq))),
                Some((t, sum)) if t < ts => Some((t, sum)),
                _ => Some((ts, eq)),
            };
        }

        let mut book = books.remove(&s.id).unwrap_or_default();
        match &data.overrides.unrealized {
            None => {
                unrealized.add(&l, f(book.unrealized));
            }
            Some(given) => {
                if let Some(u) = given.get(&s.id) {
                    unrealized.add(&l, f(*u));
                }
            }
        }
        open_pos.add(&l, book.open as f64);
        gross_f.add(&l, f(book.gross));
        net_f.add(&l, f(book.net));
        conc.add(
            &l,
            if book.gross.is_zero() {
                0.0
            } else {
                ratio(book.largest, book.gross).unwrap_or(0.0)
            },
        );
        if let Some(rb) = s.risk_budget
            && let Some(r) = ratio(book.gross, rb)
        {
            budget.add(&l, r);
        }
        book.notional
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut other: Option<Decimal> = None;
        let overflow = book.notional.len() > max_symbols;
        for (i, (sym, n)) in book.notional.iter().enumerate() {
            // A real symbol named "other" joins the overflow bucket rather than duplicating
            // its label set (which Prometheus would reject for the whole scrape).
            if i < max_symbols && !(overflow && sym == "other") {
                notional_f.add(&[("strategy", name), ("symbol", sym)], f(*n));
            } else {
                other = Some(other.unwrap_or_default().saturating_add(*n));
            }
        }
        if let Some(o) = other {
            notional_f.add(&[("strategy", name), ("symbol", "other")], f(o));
        }

        let mut fee_sum = Decimal::ZERO;
        for side in SIDES {
            let ls = [("strategy", name), ("side", side)];
            let count = |st: &str| *orders.get(&(s.id, side, st)).unwrap_or(&0) as f64;
            let total: f64 = OPEN_STATUSES
                .iter()
                .chain(TERMINAL_STATUSES.iter())
                .map(|st| count(st))
                .sum();
            orders_total.add(&ls, total);
            for st in TERMINAL_STATUSES {
                closed.add(
                    &[("strategy", name), ("side", side), ("status", st)],
                    count(st),
                );
            }
            for st in OPEN_STATUSES {
                open_orders.add(
                    &[("strategy", name), ("side", side), ("status", st)],
                    count(st),
                );
            }
            let fr = fills.get(&(s.id, side));
            fills_f.add(&ls, fr.map_or(0.0, |r| r.fills as f64));
            traded.add(&ls, fr.map_or(0.0, |r| f(r.notional)));
            if let Some(r) = fr {
                fee_sum = fee_sum.saturating_add(r.fees);
            }
        }
        fees.add(&l, f(fee_sum));
        if let Some(e) = execution.get(&s.id)
            && e.terminal > 0
        {
            exec.add(&l, e.filled as f64 / e.terminal as f64);
        }
        let counts = latency.get(&s.id);
        let mut cumulative = 0u64;
        let buckets: Vec<(f64, u64)> = data
            .latency_buckets
            .iter()
            .map(|le| {
                cumulative += counts
                    .and_then(|c| c.get(&le.to_bits()))
                    .map_or(0, |v| v.0.max(0) as u64);
                (*le, cumulative)
            })
            .collect();
        let (count, sum) = latency_sum.get(&s.id).copied().unwrap_or_default();
        lat.add_histogram(&l, &buckets, count.max(0) as u64, f(sum));
    }

    let absent = &data.overrides.absent;
    for fam in [
        up,
        status,
        heartbeat,
        equity,
        peak,
        drawdown,
        max_dd,
        realized,
        unrealized,
        daily,
        open_pos,
        notional_f,
        gross_f,
        net_f,
        conc,
        budget,
        orders_total,
        closed,
        open_orders,
        fills_f,
        traded,
        fees,
        exec,
        lat,
    ] {
        if !absent.contains(&fam.name()) {
            fams.push(fam);
        }
    }

    // The account's own figures when the source gives them, else the sum over strategies.
    let (portfolio_equity, portfolio_peak, base) = match &data.overrides.portfolio {
        Some(p) => (
            Some(p.equity),
            PortfolioPeak::Known(Some(p.peak)),
            p.day_base,
        ),
        None => (
            portfolio_equity,
            portfolio_peak,
            before_day.or(first_of_day.map(|(_, v)| v)),
        ),
    };
    if let Some(pe) = portfolio_equity {
        let mut one = |name: &'static str, help: &str, v: f64| {
            if !absent.contains(&name) {
                let mut fam = gauge(name, help);
                fam.add(&[], v);
                fams.push(fam);
            }
        };
        one(
            "trading_portfolio_equity",
            "Sum over strategies of each one's latest equity.",
            f(pe),
        );
        if let PortfolioPeak::Known(Some(p)) = portfolio_peak
            && p > Decimal::ZERO
            && let Some(r) = ratio(pe, p)
        {
            one(
                "trading_portfolio_drawdown_ratio",
                "Portfolio equity / peak of the portfolio equity series - 1.",
                r - 1.0,
            );
        }
        if let Some(b) = base {
            one(
                "trading_portfolio_pnl_daily",
                "Portfolio equity minus the portfolio equity at the start of the trading day.",
                f(pe - b),
            );
        }
    }
    fams
}

impl Collector for TradingCollector {
    fn name(&self) -> &'static str {
        "trading"
    }

    fn collect<'a>(&'a self, ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>> {
        Box::pin(self.gather(ctx))
    }

    fn down(&self) -> Families {
        let mut f = Families::default();
        f.gauge(
            "trading_up",
            "Whether the trading database answered the last scrape (1) or not (0).",
            0.0,
        );
        f.0.extend(self.health.failed().0);
        f
    }

    fn ready<'a>(&'a self) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            matches!(
                tokio::time::timeout(self.connect_timeout, self.ping()).await,
                Ok(Ok(()))
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trading::queries::{PositionRow, StrategyRow};

    fn position(symbol: &str, q: i64, price: i64) -> PositionRow {
        PositionRow {
            strategy_id: 1,
            symbol: symbol.to_string(),
            quantity: Decimal::from(q),
            avg_price: Decimal::from(price),
            market_price: Decimal::from(price),
        }
    }

    #[test]
    fn a_symbol_named_other_joins_the_overflow_bucket() {
        let data = TradingData {
            strategies: vec![StrategyRow {
                id: 1,
                name: "alpha".into(),
                status: "active".into(),
                risk_budget: None,
                heartbeat_at: None,
                latest_ts: None,
                latest_equity: None,
                latest_realized: None,
                peak: None,
                max_drawdown: None,
                before_day_equity: None,
                first_of_day_ts: None,
                first_of_day_equity: None,
            }],
            positions: vec![
                position("other", 10, 1),
                position("A", -100, 1),
                position("B", 50, 1),
            ],
            ..TradingData::default()
        };
        let fams = render(&data, Utc::now(), 1, PortfolioPeak::Loading);
        let text = crate::metrics::encode(&fams.0);
        assert!(
            text.contains("trading_position_notional{strategy=\"alpha\",symbol=\"A\"} 100\n"),
            "{text}"
        );
        assert!(
            text.contains("trading_position_notional{strategy=\"alpha\",symbol=\"other\"} 60\n"),
            "{text}"
        );
        let other_lines = text
            .lines()
            .filter(|l| l.starts_with("trading_position_notional{") && l.contains("\"other\""))
            .count();
        assert_eq!(other_lines, 1, "{text}");
        // No snapshots anywhere: no portfolio series.
        assert!(!text.contains("trading_portfolio_equity"), "{text}");
    }
}
