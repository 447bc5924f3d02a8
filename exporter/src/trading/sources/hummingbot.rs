//! hummingbot: its `Order`, `OrderStatus` and `TradeFill` tables (contract, "Trading sources",
//! **hummingbot**), in the SQLite file hummingbot keeps per config (`data/<config>.sqlite`).
//!
//! hummingbot's models (`hummingbot/model/*.py`) store amounts, prices and fees as integers
//! × 10⁶ (`SqliteDecimal(6)`, a `BigInteger`), timestamps as Unix milliseconds; databases
//! migrated from 2021 releases may hold those integers in FLOAT columns, so values are read by
//! their storage class and rounded. hummingbot leaves SQLite in rollback-journal mode and writes
//! with no busy timeout: every read goes through [`super::sqlite`].
//!
//! Flat cost. All three tables are append-only for our purposes (hummingbot never deletes a
//! fill or an order; it overwrites `Order.last_status`), and none of them has an INTEGER
//! PRIMARY KEY, so each row's implicit `rowid` grows with every insert. A scrape reads only:
//! - fills with `rowid` above the fill watermark. Counters (fills, notional, fees) just add.
//!   The average-cost fold must see fills in (`timestamp`, `exchange_trade_id`) order, and a
//!   fill can be committed after fills with later timestamps (hummingbot records the
//!   exchange's fill time, and a market order's fill may precede its creation event). So the
//!   fold keeps the fills of the last [`REORDER_WINDOW_MS`] (by timestamp, relative to the
//!   latest fill) in a sorted tail over a settled state: a fill landing inside the tail
//!   refolds the tail only; one older than the settled state (rare: a fill recorded more than
//!   ten minutes late) makes the source refold all fills once, in key order;
//! - orders with `rowid` above the order watermark (the shared [`super::watermark`]), each
//!   classified once when terminal, with its side (its first `BuyOrderCreated`/
//!   `SellOrderCreated` status, else its first fill's `trade_type`) and its first fill time
//!   (the first `OrderFilled` status: hummingbot writes one, with the fill's timestamp, in
//!   the same transaction as each fill; `OrderStatus` is indexed by (order_id, timestamp),
//!   `TradeFill` has no index on `order_id`);
//! - the orders still open at the last scrape, again, in the same transaction as each chunk
//!   (`last_status` changes in place); the watermark forgets an open order that is gone.
//!
//! Fills keep their own high mark rather than a [`Watermark`]: a fill is final when written
//! (nothing to re-read), and the key-order refold moves the mark by key, not by rowid.
//!
//! A terminal order is final: a fill recorded after its order's terminal status (a cancel
//! racing a fill) counts as a fill but does not move the order back to open, and is not its
//! order's fill latency. A restart, a watermark row that changed (the file was replaced or
//! migrated) or a changed set of columns recomputes once. The first read of a large history
//! goes on over several scrapes if it must (state advances chunk by chunk), and the source
//! reports `trading_source_up 0` until it has caught up.
//!
//! Schema drift: the columns present are read; a missing one makes only the families that
//! need it absent, with one log line naming it (see [`Schema`]).

use super::curve::{Stale, drawdown_ratio};
use super::rows::{Val, sqlite_row};
use super::sqlite::SqliteStore;
use super::watermark::Watermark;
use super::{
    ReadContext, Shared, Source, SourceError, SourceSpec, StoreUrl, StrategyIds, latency_bucket,
};
use crate::config::Secret;
use crate::trading::queries::{
    ExecutionRow, FillTotalRow, LatencyRow, OrderCountRow, Overrides, PortfolioFigures,
    PositionRow, StrategyRow, TradingData,
};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::Deserialize;
use sqlx::SqliteConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fills older than the latest fill by less than this stay in the fold's sorted tail.
pub const REORDER_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Rows per read transaction: short transactions, so a commit by the bot rarely overlaps one.
const CHUNK: i64 = 5_000;
/// Time kept back from the read deadline for building the answer.
const MARGIN: Duration = Duration::from_millis(50);

/// `trading.sources[]` entry with `type: hummingbot`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HummingbotConfig {
    pub name: String,
    /// `sqlite:///ABS/PATH/data/<config>.sqlite`.
    pub url: Secret,
    /// Quote currency the bot started with; without it the equity and drawdown families are
    /// absent.
    #[serde(default)]
    pub starting_capital: Option<f64>,
    #[serde(default = "super::default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
}

impl SourceSpec for HummingbotConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "hummingbot"
    }

    fn validate(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match StoreUrl::parse(&self.url) {
            Ok(StoreUrl::Sqlite(_)) => {}
            Ok(StoreUrl::Postgres(_)) => out.push((
                "url".into(),
                "hummingbot sources are read from SQLite (hummingbot's default): sqlite:///ABS/PATH"
                    .into(),
            )),
            Err(reason) => out.push(("url".into(), reason)),
        }
        super::check_capital_and_timeout(
            self.starting_capital,
            "quote currency",
            self.timeout,
            &mut out,
        );
        out
    }

    fn build(&self, shared: &Shared) -> Option<Arc<dyn Source>> {
        let Ok(StoreUrl::Sqlite(path)) = StoreUrl::parse(&self.url) else {
            return None;
        };
        Some(Arc::new(Hummingbot::new(
            &self.name,
            path,
            self.starting_capital.and_then(Decimal::from_f64),
            shared.latency_buckets.clone(),
        )))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// One hummingbot database.
pub struct Hummingbot {
    name: String,
    store: SqliteStore,
    capital: Option<Decimal>,
    buckets: Vec<f64>,
    state: tokio::sync::Mutex<State>,
}

impl Hummingbot {
    pub fn new(name: &str, path: PathBuf, capital: Option<Decimal>, buckets: Vec<f64>) -> Self {
        Hummingbot {
            name: name.to_string(),
            store: SqliteStore::new(path),
            capital,
            buckets,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }
}

impl Source for Hummingbot {
    fn name(&self) -> &str {
        &self.name
    }

    fn read<'a>(&'a self, ctx: ReadContext) -> BoxFuture<'a, Result<TradingData, SourceError>> {
        Box::pin(self.read_now(ctx))
    }
}

// ------------------------------------------------------------------------------ the schema

/// Which parts of hummingbot's schema are there. A part that is missing (an older or a
/// hand-made database) makes only its families absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schema {
    /// `TradeFill` with strategy, symbol, timestamp, exchange_trade_id, trade_type, price,
    /// amount: positions, PnL, equity, fills, notional.
    pub fills: bool,
    /// `TradeFill.trade_fee_in_quote` (hummingbot ≥ 20230516): fees, realized PnL, equity.
    pub fee: bool,
    /// `TradeFill.order_id`: an order's side from its fills when it has no created status.
    pub fill_order: bool,
    /// `Order` with id, strategy, last_status, and `OrderStatus` with order_id, status,
    /// timestamp: the order families and fill latency.
    pub orders: bool,
    /// `Order.creation_timestamp`: fill latency and execution rate.
    pub created: bool,
}

const FILL_COLUMNS: [&str; 7] = [
    "strategy",
    "symbol",
    "timestamp",
    "exchange_trade_id",
    "trade_type",
    "price",
    "amount",
];
const ORDER_COLUMNS: [&str; 3] = ["id", "strategy", "last_status"];
const STATUS_COLUMNS: [&str; 3] = ["order_id", "status", "timestamp"];

impl Schema {
    /// `present(table)`: the table's columns (empty when the table is missing). Also returns
    /// each missing column with the families it removes, for the log.
    pub fn from_columns(
        present: &dyn Fn(&str) -> HashSet<String>,
    ) -> (Schema, Vec<(String, &'static str)>) {
        let tf = present("TradeFill");
        let o = present("Order");
        let os = present("OrderStatus");
        let mut missing = Vec::new();
        let mut need = |cols: &HashSet<String>, table: &str, names: &[&str], what: &'static str| {
            if cols.is_empty() {
                // The whole table is missing (a bot that never ran): one line for it.
                let t = format!("{table} (table)");
                if !missing.iter().any(|(m, _)| *m == t) {
                    missing.push((t, what));
                }
                return false;
            }
            let mut ok = true;
            for n in names {
                if !cols.contains(*n) {
                    missing.push((format!("{table}.{n}"), what));
                    ok = false;
                }
            }
            ok
        };
        let fills = need(
            &tf,
            "TradeFill",
            &FILL_COLUMNS,
            "positions, PnL, equity, drawdown, fills, notional, fees",
        );
        let fee = fills
            && need(
                &tf,
                "TradeFill",
                &["trade_fee_in_quote"],
                "fees, realized PnL, equity, drawdown",
            );
        let fill_order = fills && tf.contains("order_id");
        let orders = need(
            &o,
            "Order",
            &ORDER_COLUMNS,
            "orders, execution rate, fill latency",
        ) & need(
            &os,
            "OrderStatus",
            &STATUS_COLUMNS,
            "orders, execution rate, fill latency",
        );
        let created = orders
            && need(
                &o,
                "Order",
                &["creation_timestamp"],
                "execution rate, fill latency",
            );
        (
            Schema {
                fills,
                fee,
                fill_order,
                orders,
                created,
            },
            missing,
        )
    }

    /// The families this schema (and a starting capital or not) cannot give.
    pub fn absent(&self, capital: bool) -> Vec<&'static str> {
        // hummingbot has no strategy status, heartbeat, risk budget or day snapshots.
        let mut v = vec![
            "trading_strategy_up",
            "trading_strategy_status",
            "trading_strategy_heartbeat_age_seconds",
            "trading_risk_budget_usage_ratio",
            "trading_pnl_daily",
            "trading_portfolio_pnl_daily",
        ];
        let equity = [
            "trading_equity",
            "trading_equity_peak",
            "trading_drawdown_ratio",
            "trading_max_drawdown_ratio",
            "trading_portfolio_equity",
            "trading_portfolio_drawdown_ratio",
        ];
        if !self.fills {
            v.extend([
                "trading_pnl_unrealized",
                "trading_positions_open",
                "trading_position_notional",
                "trading_gross_exposure",
                "trading_net_exposure",
                "trading_position_concentration_ratio",
                "trading_fills_total",
                "trading_traded_notional_total",
            ]);
        }
        if !self.fee {
            v.extend(["trading_pnl_realized", "trading_fees_total"]);
        }
        if !self.fee || !capital {
            v.extend(equity);
        }
        if !self.orders {
            v.extend([
                "trading_orders_total",
                "trading_orders_closed_total",
                "trading_orders_open",
            ]);
        }
        if !self.created {
            v.extend([
                "trading_execution_rate_ratio",
                "trading_order_fill_latency_seconds",
            ]);
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

// ------------------------------------------------------------------------------ the fold

/// (timestamp ms, exchange_trade_id, rowid): fill order, rowid breaking exact ties the way
/// insertion order would.
pub type Key = (i64, String, i64);

/// One fill as the fold sees it.
#[derive(Debug, Clone)]
pub struct FoldFill {
    pub key: Key,
    pub strategy: i64,
    pub symbol: u32,
    /// Signed size: BUY +, SELL −.
    pub size: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
}

/// Running peak and deepest drawdown of C + cumulative realized PnL.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Drawdown {
    pub cum: Decimal,
    /// max(0, max cum).
    pub high: Decimal,
    /// min over points of (C + cum) / (C + high) − 1.
    pub worst: f64,
}

impl Drawdown {
    fn push(&mut self, cum: Decimal, capital: Option<Decimal>) {
        self.cum = cum;
        self.high = self.high.max(cum);
        if let Some(c) = capital {
            self.worst = self.worst.min(drawdown_ratio(c, cum, self.high));
        }
    }
}

/// The fold's state after some prefix of the fills (in key order).
#[derive(Debug, Clone, Default)]
pub struct Book {
    /// (strategy, symbol) → (signed quantity q, average price a).
    pub positions: HashMap<(i64, u32), (Decimal, Decimal)>,
    /// Per strategy: Σ realized − Σ fees, with its curve.
    pub strategies: HashMap<i64, Drawdown>,
    /// The whole database (one account): Σ realized − Σ fees over every strategy.
    pub account: Drawdown,
    /// The last fill price of each symbol (over all strategies).
    pub last_price: HashMap<u32, Decimal>,
}

fn sign(x: Decimal) -> i8 {
    if x.is_zero() {
        0
    } else if x.is_sign_negative() {
        -1
    } else {
        1
    }
}

/// Average cost, as the contract defines it: a fill of signed size d at price p on position
/// (q, a) either adds (q = 0 or d has q's sign: a ← (|q|·a + |d|·p) / (|q| + |d|)) or reduces
/// (min(|d|, |q|) × (p − a) × sign(q) realized; crossing zero resets a to p). Returns the
/// realized PnL of the fill.
pub fn average_cost(q: &mut Decimal, a: &mut Decimal, d: Decimal, p: Decimal) -> Decimal {
    let mut realized = Decimal::ZERO;
    if q.is_zero() || sign(d) == sign(*q) {
        let den = q.abs().saturating_add(d.abs());
        if !den.is_zero()
            && let Some(v) = q
                .abs()
                .saturating_mul(*a)
                .saturating_add(d.abs().saturating_mul(p))
                .checked_div(den)
        {
            *a = v;
        }
    } else {
        realized = d
            .abs()
            .min(q.abs())
            .saturating_mul(p - *a)
            .saturating_mul(Decimal::from(sign(*q)));
        if d.abs() > q.abs() {
            *a = p;
        }
    }
    *q = q.saturating_add(d);
    realized
}

impl Book {
    /// Folds one fill (pure: the unit of the contract's definitions).
    pub fn apply(&mut self, f: &FoldFill, capital: Option<Decimal>) {
        let (q, a) = self
            .positions
            .entry((f.strategy, f.symbol))
            .or_insert((Decimal::ZERO, Decimal::ZERO));
        let realized = average_cost(q, a, f.size, f.price);
        let delta = realized - f.fee;
        let s = self.strategies.entry(f.strategy).or_default();
        let cum = s.cum.saturating_add(delta);
        s.push(cum, capital);
        let acc = self.account.cum.saturating_add(delta);
        self.account.push(acc, capital);
        self.last_price.insert(f.symbol, f.price);
    }
}

/// The fold, settled up to `until`, plus a sorted tail of recent fills.
#[derive(Debug, Clone, Default)]
pub struct Fold {
    settled: Book,
    until: Option<Key>,
    tail: Vec<FoldFill>,
    /// `settled` with the tail folded in.
    pub current: Book,
    latest_ts: i64,
}

impl Fold {
    /// Adds fills (any order); `Err(Stale)` when one is older than the settled state.
    pub fn add(&mut self, fills: Vec<FoldFill>, capital: Option<Decimal>) -> Result<(), Stale> {
        let mut dirty = false;
        for f in fills {
            if self.until.as_ref().is_some_and(|u| f.key <= *u) {
                return Err(Stale);
            }
            self.latest_ts = self.latest_ts.max(f.key.0);
            match self.tail.last() {
                Some(last) if last.key >= f.key => {
                    let i = self.tail.partition_point(|x| x.key < f.key);
                    self.tail.insert(i, f);
                    dirty = true;
                }
                _ => {
                    if !dirty {
                        self.current.apply(&f, capital);
                    }
                    self.tail.push(f);
                }
            }
        }
        if dirty {
            self.current = self.settled.clone();
            for f in &self.tail {
                self.current.apply(f, capital);
            }
        }
        Ok(())
    }

    /// Moves the tail's fills older than the reorder window into the settled state.
    pub fn settle(&mut self, capital: Option<Decimal>) {
        let horizon = self.latest_ts.saturating_sub(REORDER_WINDOW_MS);
        let n = self.tail.partition_point(|f| f.key.0 < horizon);
        for f in self.tail.drain(..n) {
            self.settled.apply(&f, capital);
            self.until = Some(f.key);
        }
    }

    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }
}

// ------------------------------------------------------------------------------ orders

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Buy,
    Sell,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// A created status or a fill's trade_type.
    fn parse(s: &str) -> Option<Side> {
        match s {
            "BuyOrderCreated" | "BUY" => Some(Side::Buy),
            "SellOrderCreated" | "SELL" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// The contract's status for an order's `last_status`.
pub fn order_class(last_status: &str, has_fill: bool) -> &'static str {
    if last_status.ends_with("Completed") {
        "filled"
    } else {
        match last_status {
            "OrderCancelled" | "OrderExpired" => "cancelled",
            "OrderFailure" => "rejected",
            _ if has_fill => "partially_filled",
            _ => "new",
        }
    }
}

fn terminal(class: &str) -> bool {
    matches!(class, "filled" | "cancelled" | "rejected")
}

#[derive(Debug, Clone)]
struct OpenOrder {
    strategy: i64,
    side: Option<Side>,
    created: Option<i64>,
    has_fill: bool,
}

/// One `Order` row with what its statuses and fills say.
#[derive(Debug, Clone)]
struct OrderRow {
    rowid: i64,
    id: String,
    strategy: String,
    created: Option<i64>,
    last_status: String,
    side: Option<Side>,
    first_fill: Option<i64>,
}

#[derive(Debug, Clone)]
struct FillRow {
    rowid: i64,
    strategy: String,
    symbol: String,
    ts: i64,
    trade_id: String,
    side: Option<Side>,
    price: i64,
    amount: i64,
    fee: Option<i64>,
}

/// An integer × 10⁶ column: INTEGER as is, a FLOAT (2021 migrations) rounded.
fn micro(v: &Val) -> Option<i64> {
    match v {
        Val::Int(i) => Some(*i),
        Val::Real(r) if r.is_finite() => Some(r.round() as i64),
        other => other.i64(),
    }
}

fn text(v: &Val) -> String {
    match v {
        Val::Text(s) => s.clone(),
        Val::Int(i) => i.to_string(),
        Val::Real(r) => r.to_string(),
        _ => String::new(),
    }
}

fn dec6(v: i64) -> Decimal {
    Decimal::new(v, 6)
}

// ------------------------------------------------------------------------------ state

#[derive(Debug, Clone, Default, PartialEq)]
struct Mark {
    rowid: i64,
    /// The watermark row's identity (exchange_trade_id or id): a different row there means
    /// the file was replaced or rewritten.
    guard: String,
}

#[derive(Default)]
struct Totals {
    fills: i64,
    notional: Decimal,
    fees: Decimal,
}

#[derive(Default)]
struct Latency {
    /// Per bucket of [`Hummingbot::buckets`], then +Inf.
    counts: Vec<i64>,
    sum_ms: i64,
}

#[derive(Default)]
struct State {
    schema: Option<Schema>,
    logged: HashSet<String>,
    strategies: StrategyIds,
    symbols: HashMap<String, u32>,
    symbol_names: Vec<String>,
    fill_mark: Mark,
    /// Orders by rowid: the open ones are re-read until terminal.
    orders_wm: Watermark,
    /// The highest order row read, checked by each probe like `fill_mark`.
    order_guard: Mark,
    fold: Fold,
    /// A stale fill was seen: refold from the start in key order, up to this rowid.
    sorted_until: Option<(i64, Option<Key>)>,
    totals: HashMap<(i64, Side), Totals>,
    /// Terminal orders per (strategy, side, status).
    closed: HashMap<(i64, Side, &'static str), i64>,
    open: BTreeMap<i64, OpenOrder>,
    latency: HashMap<i64, Latency>,
    /// Terminal orders per (creation minute, strategy): (filled, terminal).
    execution: BTreeMap<(i64, i64), (i64, i64)>,
}

impl State {
    fn symbol(&mut self, name: &str) -> u32 {
        if let Some(i) = self.symbols.get(name) {
            return *i;
        }
        let i = self.symbol_names.len() as u32;
        self.symbols.insert(name.to_string(), i);
        self.symbol_names.push(name.to_string());
        i
    }

    fn observe_latency(&mut self, strategy: i64, ms: i64, buckets: &[f64]) {
        let l = self.latency.entry(strategy).or_default();
        if l.counts.len() != buckets.len() + 1 {
            l.counts = vec![0; buckets.len() + 1];
        }
        let le = latency_bucket(buckets, ms as f64 / 1000.0);
        let i = buckets
            .iter()
            .position(|b| *b == le)
            .unwrap_or(buckets.len());
        l.counts[i] += 1;
        l.sum_ms += ms;
    }

    fn count_terminal(&mut self, o: &OpenOrder, class: &'static str, day_start_ms: i64) {
        let Some(side) = o.side else {
            tracing::debug!("hummingbot: a terminal order without a known side is not counted");
            return;
        };
        *self.closed.entry((o.strategy, side, class)).or_default() += 1;
        if let Some(c) = o.created
            && c >= day_start_ms
        {
            let e = self
                .execution
                .entry((c.div_euclid(60_000), o.strategy))
                .or_default();
            e.0 += i64::from(class == "filled");
            e.1 += 1;
        }
    }
}

// ------------------------------------------------------------------------------ reading

fn fill_sql(schema: &Schema, sorted: bool) -> String {
    let fee = if schema.fee {
        "trade_fee_in_quote"
    } else {
        "NULL"
    };
    let cols = format!(
        "rowid, strategy, symbol, timestamp, exchange_trade_id, trade_type, price, amount, {fee}"
    );
    if sorted {
        format!(
            "SELECT {cols} FROM TradeFill WHERE rowid <= ?1 AND (timestamp, exchange_trade_id, \
             rowid) > (?3, ?4, ?5) ORDER BY timestamp, exchange_trade_id, rowid LIMIT ?2"
        )
    } else {
        format!("SELECT {cols} FROM TradeFill WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")
    }
}

/// `filter`: one of [`Watermark::conditions`] (with its ORDER BY/LIMIT, if any).
fn order_sql(schema: &Schema, filter: &str) -> String {
    let created = if schema.created {
        "o.creation_timestamp"
    } else {
        "NULL"
    };
    let from_fill = if schema.fill_order {
        "(SELECT f.trade_type FROM TradeFill f WHERE f.order_id = o.id \
         ORDER BY f.timestamp, f.exchange_trade_id LIMIT 1)"
    } else {
        "NULL"
    };
    // coalesce() evaluates its second argument only when the first is NULL: the fill lookup
    // (no index on TradeFill.order_id) runs only for orders without a created status.
    format!(
        "SELECT o.rowid, o.id, o.strategy, {created}, o.last_status, \
         coalesce((SELECT s.status FROM OrderStatus s WHERE s.order_id = o.id \
                   AND s.status IN ('BuyOrderCreated', 'SellOrderCreated') \
                   ORDER BY s.timestamp, s.id LIMIT 1), {from_fill}), \
         (SELECT min(s.timestamp) FROM OrderStatus s WHERE s.order_id = o.id \
          AND s.status = 'OrderFilled') \
         FROM \"Order\" o WHERE {filter}"
    )
}

async fn columns(conn: &mut SqliteConnection, table: &str) -> Result<HashSet<String>, sqlx::Error> {
    let rows = sqlx::query("SELECT name FROM pragma_table_info(?1)")
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| sqlite_row(r).first().map(text))
        .collect())
}

/// What the first transaction of a scrape learns.
struct Probe {
    tables: HashMap<&'static str, HashSet<String>>,
    fill_guard: Option<String>,
    order_guard: Option<String>,
    max_fill: i64,
}

async fn probe(
    conn: &mut SqliteConnection,
    fill_mark: i64,
    order_mark: i64,
) -> Result<Probe, sqlx::Error> {
    let mut tables = HashMap::new();
    for t in ["TradeFill", "Order", "OrderStatus"] {
        tables.insert(t, columns(conn, t).await?);
    }
    let has = |t: &str, c: &str| tables.get(t).is_some_and(|s| s.contains(c));
    let mut fill_guard = None;
    let mut max_fill = 0;
    if has("TradeFill", "exchange_trade_id") {
        if fill_mark > 0 {
            fill_guard = sqlx::query("SELECT exchange_trade_id FROM TradeFill WHERE rowid = ?1")
                .bind(fill_mark)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| sqlite_row(&r).first().map(text).unwrap_or_default());
        }
        max_fill = sqlx::query("SELECT max(rowid) FROM TradeFill")
            .fetch_one(&mut *conn)
            .await
            .map(|r| sqlite_row(&r).first().and_then(Val::i64).unwrap_or(0))?;
    }
    let mut order_guard = None;
    if has("Order", "id") && order_mark > 0 {
        order_guard = sqlx::query("SELECT id FROM \"Order\" WHERE rowid = ?1")
            .bind(order_mark)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| sqlite_row(&r).first().map(text).unwrap_or_default());
    }
    Ok(Probe {
        tables,
        fill_guard,
        order_guard,
        max_fill,
    })
}

fn fill_row(v: &[Val]) -> Option<FillRow> {
    Some(FillRow {
        rowid: v.first()?.i64()?,
        strategy: text(v.get(1)?),
        symbol: text(v.get(2)?),
        ts: micro(v.get(3)?)?,
        trade_id: text(v.get(4)?),
        side: Side::parse(&text(v.get(5)?)),
        price: micro(v.get(6)?)?,
        amount: micro(v.get(7)?)?,
        fee: v.get(8).and_then(micro),
    })
}

fn order_row(v: &[Val]) -> Option<OrderRow> {
    Some(OrderRow {
        rowid: v.first()?.i64()?,
        id: text(v.get(1)?),
        strategy: text(v.get(2)?),
        created: v.get(3).and_then(micro),
        last_status: text(v.get(4)?),
        side: v.get(5).map(text).as_deref().and_then(Side::parse),
        first_fill: v.get(6).and_then(micro),
    })
}

async fn fetch_rows<T>(
    conn: &mut SqliteConnection,
    sql: &str,
    binds: Vec<Bind>,
    row: fn(&[Val]) -> Option<T>,
) -> Result<(Vec<T>, usize), sqlx::Error> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = match b {
            Bind::I(i) => q.bind(i),
            Bind::S(s) => q.bind(s),
        };
    }
    let mut stream = q.fetch(&mut *conn);
    let mut out = Vec::new();
    let mut seen = 0;
    while let Some(r) = stream.try_next().await? {
        seen += 1;
        if let Some(v) = row(&sqlite_row(&r)) {
            out.push(v);
        }
    }
    Ok((out, seen))
}

#[derive(Clone)]
enum Bind {
    I(i64),
    S(String),
}

impl Hummingbot {
    /// One read transaction of `sql`, retried while a commit by the bot overlaps it.
    async fn rows<T>(
        &self,
        deadline: Instant,
        sql: &str,
        binds: Vec<Bind>,
        row: fn(&[Val]) -> Option<T>,
    ) -> Result<(Vec<T>, usize), SourceError> {
        self.store
            .retry_until(deadline, || {
                let binds = binds.clone();
                async move {
                    let mut tx = self.store.begin().await?;
                    let r = fetch_rows(tx.conn(), sql, binds, row).await;
                    tx.finish(r).await
                }
            })
            .await
            .map_err(SourceError::from)
    }

    async fn read_now(&self, ctx: ReadContext) -> Result<TradingData, SourceError> {
        let mut st = self.state.lock().await;
        let deadline = ctx.deadline.checked_sub(MARGIN).unwrap_or(ctx.deadline);
        let day_start_ms = ctx.day_start.timestamp_millis();
        let (fm, om) = (st.fill_mark.rowid, st.order_guard.rowid);
        let p = self
            .store
            .retry_until(deadline, || async move {
                let mut tx = self.store.begin().await?;
                let r = probe(tx.conn(), fm, om).await;
                tx.finish(r).await
            })
            .await
            .map_err(SourceError::from)?;
        let present = |t: &str| p.tables.get(t).cloned().unwrap_or_default();
        let (schema, missing) = Schema::from_columns(&present);
        for (column, families) in missing {
            if st.logged.insert(column.clone()) {
                tracing::warn!(
                    source = %self.name,
                    column = %column,
                    families,
                    "hummingbot: column missing; these families are absent"
                );
            }
        }
        let replaced = (fm > 0 && p.fill_guard.as_deref() != Some(st.fill_mark.guard.as_str()))
            || (om > 0 && p.order_guard.as_deref() != Some(st.order_guard.guard.as_str()));
        if st.schema.is_some_and(|s| s != schema) || replaced {
            tracing::info!(source = %self.name, "hummingbot: the database changed under its watermarks; recomputing");
            let logged = std::mem::take(&mut st.logged);
            *st = State {
                logged,
                ..State::default()
            };
        }
        st.schema = Some(schema);

        let mut caught_up = true;
        if schema.fills {
            caught_up &= self
                .read_fills(&mut st, &schema, p.max_fill, deadline)
                .await?;
        }
        if schema.orders {
            caught_up &= self
                .read_orders(&mut st, &schema, day_start_ms, deadline)
                .await?;
        }
        if !caught_up {
            return Err(SourceError::Busy(format!(
                "still folding the history (fill rowid {}, order rowid {})",
                st.fill_mark.rowid, st.orders_wm.high
            )));
        }
        st.execution
            .retain(|(minute, _), _| *minute >= day_start_ms.div_euclid(60_000) - 24 * 60);
        Ok(self.data(&st, &schema, ctx, day_start_ms))
    }

    /// Reads new fills chunk by chunk; false when the deadline came first.
    async fn read_fills(
        &self,
        st: &mut State,
        schema: &Schema,
        max_fill: i64,
        deadline: Instant,
    ) -> Result<bool, SourceError> {
        loop {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            let sorted = st.sorted_until.clone();
            let (rows, seen) = match &sorted {
                Some((until, after)) => {
                    let (ts, tid, rowid) = after.clone().unwrap_or((i64::MIN, String::new(), 0));
                    self.rows(
                        deadline,
                        &fill_sql(schema, true),
                        vec![
                            Bind::I(*until),
                            Bind::I(CHUNK),
                            Bind::I(ts),
                            Bind::S(tid),
                            Bind::I(rowid),
                        ],
                        fill_row,
                    )
                    .await?
                }
                None => {
                    self.rows(
                        deadline,
                        &fill_sql(schema, false),
                        vec![Bind::I(st.fill_mark.rowid), Bind::I(CHUNK)],
                        fill_row,
                    )
                    .await?
                }
            };
            let mut fold = Vec::with_capacity(rows.len());
            let mut last_key = None;
            for r in &rows {
                let key = (r.ts, r.trade_id.clone(), r.rowid);
                last_key = Some(key.clone());
                // In key order the watermark becomes the ceiling's row when it passes by.
                let advance = match &sorted {
                    None => r.rowid > st.fill_mark.rowid,
                    Some((until, _)) => r.rowid == *until,
                };
                if advance {
                    st.fill_mark = Mark {
                        rowid: r.rowid,
                        guard: r.trade_id.clone(),
                    };
                }
                let Some(side) = r.side else { continue };
                let sid = st.strategies.id(&r.strategy);
                let sym = st.symbol(&r.symbol);
                let price = dec6(r.price);
                let amount = dec6(r.amount);
                let fee = dec6(r.fee.unwrap_or(0));
                let t = st.totals.entry((sid, side)).or_default();
                t.fills += 1;
                t.notional = t.notional.saturating_add(price.saturating_mul(amount));
                t.fees = t.fees.saturating_add(fee);
                fold.push(FoldFill {
                    key,
                    strategy: sid,
                    symbol: sym,
                    size: if side == Side::Buy { amount } else { -amount },
                    price,
                    fee,
                });
            }
            if st.fold.add(fold, self.capital).is_err() {
                // A fill recorded after the settled horizon: refold everything in key order
                // (counters too, to count each fill once).
                tracing::info!(source = %self.name, "hummingbot: a fill arrived more than the reorder window late; refolding all fills in order");
                st.fold = Fold::default();
                st.totals.clear();
                st.sorted_until = Some((max_fill.max(st.fill_mark.rowid), None));
                continue;
            }
            st.fold.settle(self.capital);
            if let Some((until, _)) = sorted {
                match last_key {
                    Some(k) if seen as i64 == CHUNK => st.sorted_until = Some((until, Some(k))),
                    _ => st.sorted_until = None,
                }
                continue;
            }
            if (seen as i64) < CHUNK {
                return Ok(true);
            }
        }
    }

    /// Reads orders chunk by chunk, each chunk with the orders still open (their
    /// `last_status` changes in place); false when the deadline came first.
    async fn read_orders(
        &self,
        st: &mut State,
        schema: &Schema,
        day_start_ms: i64,
        deadline: Instant,
    ) -> Result<bool, SourceError> {
        loop {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            let (rows, seen) = self.order_rows(deadline, schema, &st.orders_wm).await?;
            let mut returned = Vec::with_capacity(rows.len());
            for r in rows {
                // An open order read again, or a new one (its first fill time seen now).
                let (o, first_fill) = match st.open.remove(&r.rowid) {
                    Some(mut o) => {
                        o.side = o.side.or(r.side);
                        let first_fill = r.first_fill.filter(|_| !o.has_fill);
                        o.has_fill |= first_fill.is_some();
                        (o, first_fill)
                    }
                    None => {
                        if r.rowid > st.order_guard.rowid {
                            st.order_guard = Mark {
                                rowid: r.rowid,
                                guard: r.id.clone(),
                            };
                        }
                        let o = OpenOrder {
                            strategy: st.strategies.id(&r.strategy),
                            side: r.side,
                            created: r.created,
                            has_fill: r.first_fill.is_some(),
                        };
                        (o, r.first_fill)
                    }
                };
                if let (Some(ff), Some(c)) = (first_fill, o.created) {
                    st.observe_latency(o.strategy, ff - c, &self.buckets);
                }
                let class = order_class(&r.last_status, o.has_fill);
                let done = terminal(class);
                if done {
                    st.count_terminal(&o, class, day_start_ms);
                } else {
                    st.open.insert(r.rowid, o);
                }
                returned.push((r.rowid, done));
            }
            // Terminal orders were counted above, once (a terminal order is never re-read);
            // the watermark forgets open orders that are gone.
            st.orders_wm.advance(&returned, Instant::now());
            let open: HashSet<i64> = st.orders_wm.recheck().into_iter().collect();
            st.open.retain(|k, _| open.contains(k));
            if (seen as i64) < CHUNK {
                return Ok(true);
            }
        }
    }

    /// One read transaction: the next [`CHUNK`] new orders and the ones to re-read (see
    /// [`Watermark::conditions`]). Also returns how many new rows there were.
    async fn order_rows(
        &self,
        deadline: Instant,
        schema: &Schema,
        wm: &Watermark,
    ) -> Result<(Vec<OrderRow>, usize), SourceError> {
        let sqls: Vec<String> = wm
            .conditions("o.rowid")
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                0 => order_sql(schema, &format!("{c} ORDER BY o.rowid LIMIT {CHUNK}")),
                _ => order_sql(schema, c),
            })
            .collect();
        let sqls = &sqls;
        self.store
            .retry_until(deadline, || async move {
                let mut tx = self.store.begin().await?;
                let mut r: Result<(Vec<OrderRow>, usize), sqlx::Error> = Ok((Vec::new(), 0));
                for (i, sql) in sqls.iter().enumerate() {
                    match fetch_rows(tx.conn(), sql, Vec::new(), order_row).await {
                        Ok((rows, seen)) => {
                            if let Ok((all, new)) = &mut r {
                                if i == 0 {
                                    *new = seen;
                                }
                                all.extend(rows);
                            }
                        }
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                tx.finish(r).await
            })
            .await
            .map_err(SourceError::from)
    }

    /// The state as the reference rows [`crate::collectors::trading::render_labelled`] takes.
    fn data(
        &self,
        st: &State,
        schema: &Schema,
        ctx: ReadContext,
        day_start_ms: i64,
    ) -> TradingData {
        let book = &st.fold.current;
        let capital = self.capital;
        let strategies = st
            .strategies
            .all()
            .into_iter()
            .map(|(id, name)| {
                let dd = book.strategies.get(&id).copied().unwrap_or_default();
                let equity = capital.map(|c| c.saturating_add(dd.cum));
                StrategyRow {
                    id,
                    name: name.to_string(),
                    status: String::new(),
                    risk_budget: None,
                    heartbeat_at: None,
                    latest_ts: None,
                    latest_equity: equity,
                    latest_realized: Some(dd.cum),
                    peak: capital.map(|c| c.saturating_add(dd.high)),
                    max_drawdown: capital.map(|_| dd.worst),
                    before_day_equity: None,
                    first_of_day_ts: None,
                    first_of_day_equity: None,
                }
            })
            .collect();
        let positions = book
            .positions
            .iter()
            .filter(|(_, (q, _))| !q.is_zero())
            .map(|((sid, sym), (q, a))| PositionRow {
                strategy_id: *sid,
                symbol: st
                    .symbol_names
                    .get(*sym as usize)
                    .cloned()
                    .unwrap_or_default(),
                quantity: *q,
                avg_price: *a,
                market_price: book.last_price.get(sym).copied().unwrap_or(*a),
            })
            .collect();
        let mut order_counts: Vec<OrderCountRow> = st
            .closed
            .iter()
            .map(|((sid, side, class), n)| OrderCountRow {
                strategy_id: *sid,
                side: side.label().to_string(),
                status: class.to_string(),
                n: *n,
            })
            .collect();
        for o in st.open.values() {
            if let Some(side) = o.side {
                order_counts.push(OrderCountRow {
                    strategy_id: o.strategy,
                    side: side.label().to_string(),
                    status: if o.has_fill {
                        "partially_filled"
                    } else {
                        "new"
                    }
                    .to_string(),
                    n: 1,
                });
            }
        }
        let fill_totals = st
            .totals
            .iter()
            .map(|((sid, side), t)| FillTotalRow {
                strategy_id: *sid,
                side: side.label().to_string(),
                fills: t.fills,
                notional: t.notional,
                fees: t.fees,
            })
            .collect();
        let mut latency = Vec::new();
        for (sid, l) in &st.latency {
            for (i, n) in l.counts.iter().enumerate() {
                latency.push(LatencyRow {
                    strategy_id: *sid,
                    le: self.buckets.get(i).copied().unwrap_or(f64::INFINITY),
                    n: *n,
                    // The whole sum rides on the first row (the rendering adds them up).
                    sum_seconds: if i == 0 {
                        Decimal::new(l.sum_ms, 3)
                    } else {
                        Decimal::ZERO
                    },
                });
            }
        }
        let mut per: HashMap<i64, (i64, i64)> = HashMap::new();
        for ((_, sid), (f, t)) in st
            .execution
            .range((day_start_ms.div_euclid(60_000), i64::MIN)..)
        {
            let e = per.entry(*sid).or_default();
            e.0 += f;
            e.1 += t;
        }
        let execution = per
            .into_iter()
            .map(|(sid, (filled, terminal))| ExecutionRow {
                strategy_id: sid,
                filled,
                terminal,
            })
            .collect();
        let portfolio = capital.map(|c| PortfolioFigures {
            equity: c.saturating_add(book.account.cum),
            peak: c.saturating_add(book.account.high),
            day_base: None,
        });
        TradingData {
            now: Some(ctx.now),
            strategies,
            positions,
            order_counts,
            fill_totals,
            latency_buckets: self.buckets.clone(),
            latency,
            execution,
            overrides: Overrides {
                absent: schema.absent(capital.is_some()),
                unrealized: None,
                portfolio,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("test decimal")
    }

    fn fill(ts: i64, tid: &str, symbol: u32, size: &str, price: &str, fee: &str) -> FoldFill {
        FoldFill {
            key: (ts, tid.to_string(), ts),
            strategy: 1,
            symbol,
            size: d(size),
            price: d(price),
            fee: d(fee),
        }
    }

    /// Long 1 @ 30050 (two buys), sell 0.3 @ 30500 (+135), sell 1.2 @ 30200 through zero (+105
    /// on 0.7, short 0.5 @ 30200), sell 0.25 @ 30000 (short 0.75 @ 30133.33…), buy 0.15 @
    /// 29900 (+35).
    #[test]
    fn average_cost_through_zero_and_back() {
        let mut b = Book::default();
        let fills = [
            fill(1, "a", 0, "0.5", "30000", "3"),
            fill(2, "b", 0, "0.5", "30100", "3.01"),
            fill(3, "c", 0, "-0.3", "30500", "2.745"),
            fill(4, "d", 0, "-1.2", "30200", "0"),
            fill(5, "e", 0, "-0.25", "30000", "1.5"),
            fill(6, "f", 0, "0.15", "29900", "0.897"),
        ];
        for f in &fills {
            b.apply(f, Some(d("5000")));
        }
        let (q, a) = b.positions[&(1, 0)];
        assert_eq!(q, d("-0.6"));
        assert_eq!(a.round_dp(6), d("30133.333333"));
        let fees = d("3") + d("3.01") + d("2.745") + d("1.5") + d("0.897");
        let realized = b.strategies[&1].cum;
        assert_eq!((realized + fees).round_dp(12), d("275"));
        assert_eq!(b.last_price[&0], d("29900"));
        // Worst point: after the second buy, 5000 − 6.01 against a peak of 5000.
        assert!((b.strategies[&1].worst - (-0.001202)).abs() < 1e-15);
        assert_eq!(b.account, b.strategies[&1]);
    }

    #[test]
    fn a_fill_exactly_closing_keeps_nothing_open() {
        let (mut q, mut a) = (d("2"), d("100"));
        assert_eq!(average_cost(&mut q, &mut a, d("-2"), d("110")), d("20"));
        assert!(q.is_zero());
        // From flat, the next fill's price is the average whatever `a` held.
        assert_eq!(average_cost(&mut q, &mut a, d("-1"), d("90")), d("0"));
        assert_eq!((q, a), (d("-1"), d("90")));
    }

    #[test]
    fn late_fills_inside_the_window_refold_to_key_order() {
        let fills = vec![
            fill(1_000, "a", 0, "1", "100", "0"),
            fill(2_000, "b", 0, "-1", "110", "0"),
            fill(3_000, "c", 0, "1", "120", "0"),
        ];
        let mut in_order = Fold::default();
        in_order.add(fills.clone(), None).unwrap();
        let mut late = Fold::default();
        late.add(vec![fills[0].clone(), fills[2].clone()], None)
            .unwrap();
        late.add(vec![fills[1].clone()], None).unwrap();
        assert_eq!(late.current.strategies[&1].cum, d("10"));
        assert_eq!(
            late.current.positions[&(1, 0)],
            in_order.current.positions[&(1, 0)]
        );
        assert_eq!(late.current.last_price[&0], d("120"));
    }

    #[test]
    fn settling_keeps_the_window_and_refuses_older_fills() {
        let mut f = Fold::default();
        let t0 = 1_700_000_000_000;
        f.add(
            vec![
                fill(t0, "a", 0, "1", "100", "0"),
                fill(t0 + REORDER_WINDOW_MS + 1, "b", 0, "1", "102", "0"),
            ],
            None,
        )
        .unwrap();
        f.settle(None);
        assert_eq!(f.tail_len(), 1);
        assert_eq!(
            f.add(vec![fill(t0 - 1, "z", 0, "1", "1", "0")], None),
            Err(Stale)
        );
        assert_eq!(f.current.positions[&(1, 0)], (d("2"), d("101")));
    }

    #[test]
    fn order_statuses() {
        assert_eq!(order_class("BuyOrderCompleted", true), "filled");
        assert_eq!(order_class("SellOrderCompleted", false), "filled");
        assert_eq!(order_class("OrderCancelled", true), "cancelled");
        assert_eq!(order_class("OrderExpired", false), "cancelled");
        assert_eq!(order_class("OrderFailure", false), "rejected");
        assert_eq!(order_class("OrderFilled", true), "partially_filled");
        assert_eq!(order_class("BuyOrderCreated", false), "new");
    }

    #[test]
    fn missing_tables_are_one_line_each() {
        let (s, missing) = Schema::from_columns(&|_: &str| HashSet::new());
        assert_eq!(s, Schema::default());
        let names: Vec<&str> = missing.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            names,
            ["TradeFill (table)", "Order (table)", "OrderStatus (table)"]
        );
    }

    #[test]
    fn missing_columns_remove_only_their_families() {
        let full = |t: &str| -> HashSet<String> {
            let cols: &[&str] = match t {
                "TradeFill" => &[
                    "strategy",
                    "symbol",
                    "timestamp",
                    "exchange_trade_id",
                    "trade_type",
                    "price",
                    "amount",
                    "order_id",
                ],
                "Order" => &["id", "strategy", "last_status", "creation_timestamp"],
                "OrderStatus" => &["order_id", "status", "timestamp"],
                _ => &[],
            };
            cols.iter().map(|s| s.to_string()).collect()
        };
        let (s, missing) = Schema::from_columns(&full);
        assert_eq!(
            missing,
            vec![(
                "TradeFill.trade_fee_in_quote".to_string(),
                "fees, realized PnL, equity, drawdown"
            )]
        );
        assert!(s.fills && !s.fee && s.orders && s.created);
        let absent = s.absent(true);
        for f in [
            "trading_fees_total",
            "trading_pnl_realized",
            "trading_equity",
        ] {
            assert!(absent.contains(&f), "{f}");
        }
        for f in [
            "trading_fills_total",
            "trading_pnl_unrealized",
            "trading_orders_total",
            "trading_order_fill_latency_seconds",
        ] {
            assert!(!absent.contains(&f), "{f}");
        }
    }
}
