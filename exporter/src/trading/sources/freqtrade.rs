//! freqtrade: its `trades` and `orders` tables (SQLite by default, or PostgreSQL), and
//! optionally its REST API (contract, "Trading sources", **freqtrade**).

use super::curve::Curve;
use super::http::{BaseUrl, get_json};
use super::rows::{Val, pg_row, sqlite_row};
use super::sqlite::SqliteStore;
use super::watermark::Watermark;
use super::{
    ReadContext, Shared, Source, SourceError, SourceSpec, StoreUrl, StrategyIds, latency_bucket,
};
use crate::collectors::pg_conn::ConnPool;
use crate::config::Secret;
use crate::trading::queries::{
    ExecutionRow, FillTotalRow, LatencyRow, OrderCountRow, Overrides, PortfolioFigures,
    PositionRow, StrategyRow, TradingData,
};
use crate::trading::session;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, SqliteConnection};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `trading.sources[]` entry with `type: freqtrade`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreqtradeConfig {
    pub name: String,
    /// `sqlite:///ABS/PATH/tradesv3.sqlite` or `postgres://…` (freqtrade's `db_url`).
    pub url: Secret,
    /// The stake currency the bot started with (freqtrade's `dry_run_wallet` or the
    /// wallet's starting balance); without it the equity and drawdown families are absent.
    #[serde(default)]
    pub starting_capital: Option<f64>,
    /// freqtrade's REST API (`http://127.0.0.1:8080`), for unrealized PnL, current rates,
    /// heartbeat and running state.
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub api_username: Option<String>,
    #[serde(default)]
    pub api_password: Option<Secret>,
    /// One read of the store and the API together.
    #[serde(default = "super::default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
}

impl SourceSpec for FreqtradeConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "freqtrade"
    }

    fn validate(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(reason) = StoreUrl::parse(&self.url) {
            out.push(("url".to_string(), reason));
        }
        super::check_capital_and_timeout(
            self.starting_capital,
            "stake currency",
            self.timeout,
            &mut out,
        );
        if self.api_url.as_deref().is_some_and(str::is_empty) {
            self.api_url = None;
        }
        match &self.api_url {
            Some(u) if BaseUrl::parse(u).is_err() => out.push((
                "api_url".into(),
                BaseUrl::parse(u).err().unwrap_or_default(),
            )),
            Some(_) => {
                if self.api_username.is_some() != self.api_password.is_some() {
                    out.push((
                        "api_password".into(),
                        "api_username and api_password go together (freqtrade's API \
                         answers only with both)"
                            .into(),
                    ));
                }
            }
            None => {
                if self.api_username.is_some() || self.api_password.is_some() {
                    out.push((
                        "api_url".into(),
                        "api_username/api_password are set but api_url is not".into(),
                    ));
                }
            }
        }
        out
    }

    fn build(&self, shared: &Shared) -> Option<Arc<dyn Source>> {
        let store = match StoreUrl::parse(&self.url).ok()? {
            StoreUrl::Sqlite(path) => Store::Sqlite(SqliteStore::new(path)),
            StoreUrl::Postgres(url) => {
                let opts = match PgConnectOptions::from_str(url.expose()) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(source = %self.name, error = %e, "freqtrade: unusable url; source off");
                        return None;
                    }
                };
                let opts = opts
                    .application_name("quantwatch-exporter-freqtrade")
                    .options([
                        (
                            "statement_timeout",
                            shared.statement_timeout.as_millis().to_string(),
                        ),
                        ("default_transaction_read_only", "on".to_string()),
                    ]);
                Store::Postgres(Box::new(ConnPool::new(opts, 1, shared.connect_timeout)))
            }
        };
        let api = match &self.api_url {
            Some(u) => Some(Api {
                base: BaseUrl::parse(u).ok()?,
                username: self.api_username.clone(),
                password: self.api_password.clone(),
            }),
            None => None,
        };
        Some(Arc::new(Freqtrade {
            name: self.name.clone(),
            capital: self.starting_capital.and_then(Decimal::from_f64),
            store,
            api,
            buckets: shared.latency_buckets.clone(),
            state: tokio::sync::Mutex::new(State::default()),
        }))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

enum Store {
    Sqlite(SqliteStore),
    Postgres(Box<ConnPool>),
}

struct Api {
    base: BaseUrl,
    username: Option<String>,
    password: Option<Secret>,
}

pub struct Freqtrade {
    name: String,
    capital: Option<Decimal>,
    store: Store,
    api: Option<Api>,
    buckets: Vec<f64>,
    state: tokio::sync::Mutex<State>,
}

/// New rows read per table and transaction (see `read`).
const CHUNK: i64 = 5_000;
/// Time a further chunk needs at least; with less left the read stops and says so.
const CHUNK_MARGIN: Duration = Duration::from_millis(300);

/// The columns of `trades` and `orders` the families need; freqtrade adds columns with its
/// versions (`migrations.py`), so a read asks only for those present.
const TRADE_COLUMNS: [&str; 12] = [
    "id",
    "strategy",
    "pair",
    "is_open",
    "is_short",
    "amount",
    "open_rate",
    "close_profit_abs",
    "realized_profit",
    "close_date",
    "fee_open_cost",
    "fee_close_cost",
];
const ORDER_COLUMNS: [&str; 10] = [
    "id",
    "ft_trade_id",
    "side",
    "status",
    "ft_is_open",
    "filled",
    "average",
    "price",
    "order_date",
    "order_filled_date",
];

/// Which columns exist, and what their absence costs.
#[derive(Debug, Clone, Default, PartialEq)]
struct Schema {
    trades: HashSet<String>,
    orders: HashSet<String>,
}

impl Schema {
    fn has_trade(&self, c: &str) -> bool {
        self.trades.contains(c)
    }
    fn has_order(&self, c: &str) -> bool {
        self.orders.contains(c)
    }
    fn trades_ok(&self) -> bool {
        ["id", "strategy", "pair", "is_open", "amount", "open_rate"]
            .iter()
            .all(|c| self.has_trade(c))
    }
    fn orders_ok(&self) -> bool {
        [
            "id",
            "ft_trade_id",
            "side",
            "status",
            "ft_is_open",
            "filled",
        ]
        .iter()
        .all(|c| self.has_order(c))
            && self.trades_ok()
    }
    fn curve_ok(&self) -> bool {
        self.has_trade("close_profit_abs") && self.has_trade("close_date")
    }

    /// The families this schema cannot give, and the first missing column of each.
    fn absent(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        let first_missing = |table: &HashSet<String>, cols: &[&str], t: &str| {
            cols.iter()
                .find(|c| !table.contains(**c))
                .map(|c| format!("{t}.{c}"))
        };
        let core_trades = ["id", "strategy", "pair", "is_open", "amount", "open_rate"];
        if let Some(m) = first_missing(&self.trades, &core_trades, "trades") {
            for f in [
                "trading_pnl_realized",
                "trading_positions_open",
                "trading_position_notional",
                "trading_gross_exposure",
                "trading_net_exposure",
                "trading_position_concentration_ratio",
                "trading_fees_total",
            ]
            .into_iter()
            .chain(EQUITY_FAMILIES)
            {
                out.push((f, m.clone()));
            }
        }
        if let Some(m) = first_missing(&self.trades, &["close_profit_abs", "close_date"], "trades")
        {
            for f in EQUITY_FAMILIES {
                out.push((f, m.clone()));
            }
        }
        if let Some(m) = first_missing(
            &self.trades,
            &["close_profit_abs", "realized_profit"],
            "trades",
        ) {
            out.push(("trading_pnl_realized", m));
        }
        if let Some(m) = first_missing(&self.trades, &["fee_open_cost", "fee_close_cost"], "trades")
        {
            out.push(("trading_fees_total", m));
        }
        let core_orders = [
            "id",
            "ft_trade_id",
            "side",
            "status",
            "ft_is_open",
            "filled",
        ];
        if let Some(m) = first_missing(&self.orders, &core_orders, "orders") {
            for f in ORDER_FAMILIES {
                out.push((f, m.clone()));
            }
        } else {
            if !self.has_order("average") && !self.has_order("price") {
                out.push(("trading_traded_notional_total", "orders.price".into()));
            }
            if let Some(m) = first_missing(&self.orders, &["order_date"], "orders") {
                out.push(("trading_execution_rate_ratio", m.clone()));
                out.push(("trading_order_fill_latency_seconds", m));
            }
            if let Some(m) = first_missing(&self.orders, &["order_filled_date"], "orders") {
                out.push(("trading_order_fill_latency_seconds", m));
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

const EQUITY_FAMILIES: [&str; 8] = [
    "trading_equity",
    "trading_equity_peak",
    "trading_drawdown_ratio",
    "trading_max_drawdown_ratio",
    "trading_pnl_daily",
    "trading_portfolio_equity",
    "trading_portfolio_drawdown_ratio",
    "trading_portfolio_pnl_daily",
];

const ORDER_FAMILIES: [&str; 7] = [
    "trading_orders_total",
    "trading_orders_closed_total",
    "trading_orders_open",
    "trading_fills_total",
    "trading_traded_notional_total",
    "trading_execution_rate_ratio",
    "trading_order_fill_latency_seconds",
];

/// The curve's key: close date, then id (freqtrade sorts by close date; ids break ties).
type Key = (NaiveDateTime, i64);

/// One `trades` row.
#[derive(Debug, Clone)]
struct TradeRow {
    id: i64,
    strategy: String,
    pair: String,
    is_open: bool,
    is_short: bool,
    amount: f64,
    open_rate: f64,
    close_profit_abs: Option<Decimal>,
    realized_profit: Option<Decimal>,
    close_date: Option<NaiveDateTime>,
    fees: Decimal,
}

/// One `orders` row, with its trade's strategy.
#[derive(Debug, Clone)]
struct OrderRow {
    id: i64,
    strategy: String,
    side: &'static str,
    status: &'static str,
    filled: Decimal,
    notional: Decimal,
    order_date: Option<NaiveDateTime>,
    latency: Option<f64>,
}

/// Per-(strategy, side) all-time order counters.
#[derive(Debug, Clone, Default)]
struct OrderTotals {
    by_status: HashMap<&'static str, i64>,
    fills: i64,
    notional: Decimal,
}

/// Everything folded so far; reset when the schema changes or the curve needs a rebuild.
#[derive(Default)]
struct State {
    schema: Option<Schema>,
    warned: HashSet<String>,
    ids: StrategyIds,
    trades_wm: Watermark,
    orders_wm: Watermark,
    /// Closed trades: Σ close_profit_abs and Σ fees per strategy id.
    closed_realized: HashMap<i64, Decimal>,
    closed_fees: HashMap<i64, Decimal>,
    curves: HashMap<i64, Curve<Key>>,
    account: Option<Curve<Key>>,
    open_trades: BTreeMap<i64, TradeRow>,
    /// Final orders per (strategy, side).
    orders: HashMap<(i64, &'static str), OrderTotals>,
    latency: HashMap<(i64, u64), (i64, Decimal)>,
    /// Terminal orders created at or after the oldest trading-day start asked for:
    /// (order_date, strategy id, filled).
    recent_terminal: Vec<(NaiveDateTime, i64, bool)>,
    open_orders: BTreeMap<i64, OrderRow>,
    /// Set when a closed trade arrived older than the settled curve: rebuild next read.
    rebuild: bool,
}

impl State {
    /// Back to nothing (the next read folds all rows), keeping which columns were logged.
    fn reset(&mut self) {
        *self = State {
            warned: std::mem::take(&mut self.warned),
            ..State::default()
        };
    }
}

/// What one read of the store returned.
struct Delta {
    schema: Schema,
    trades: Vec<TradeRow>,
    orders: Vec<OrderRow>,
}

/// One open trade as `/api/v1/status` gives it.
struct ApiTrade {
    strategy: String,
    pair: String,
    profit_abs: Decimal,
    current_rate: Option<f64>,
}

impl Delta {
    /// Rows past the watermarks (the part of a read that LIMIT bounds).
    fn new_rows(&self, state: &State) -> i64 {
        let t = self
            .trades
            .iter()
            .filter(|t| t.id > state.trades_wm.high)
            .count();
        let o = self
            .orders
            .iter()
            .filter(|o| o.id > state.orders_wm.high)
            .count();
        t.max(o) as i64
    }
}

/// What the REST API said (each part absent when its call failed).
#[derive(Default)]
struct ApiView {
    /// `/api/v1/status`: the open trades.
    status: Option<Vec<ApiTrade>>,
    last_process: Option<DateTime<Utc>>,
    /// (state, strategy).
    config: Option<(String, Option<String>)>,
}

impl Source for Freqtrade {
    fn name(&self) -> &str {
        &self.name
    }

    fn read<'a>(&'a self, ctx: ReadContext) -> BoxFuture<'a, Result<TradingData, SourceError>> {
        Box::pin(async move {
            let mut state = self.state.lock().await;
            let api = async {
                match &self.api {
                    Some(api) => Some(self.read_api(api).await),
                    None => None,
                }
            };
            let (delta, api) = futures::join!(self.read_store(&state, ctx), api);
            let mut delta = delta?;
            if state.schema.as_ref().is_some_and(|s| *s != delta.schema) {
                // freqtrade migrated its tables under us: what was folded may lack a column
                // that is there now. Start over from all rows (watermarks back at 0).
                tracing::info!(source = %self.name, "freqtrade: the tables' columns changed; recomputing from all rows");
                state.reset();
                delta = self.read_store(&state, ctx).await?;
            }
            let mut rebuilt = false;
            loop {
                // At most CHUNK new rows per table and transaction: a first read (or one after
                // a long outage) folds history over several transactions, each persisted, so
                // a deadline cuts it short without losing what was folded.
                let more = delta.new_rows(&state) >= CHUNK;
                self.apply(&mut state, delta, ctx, !more);
                if state.rebuild && !rebuilt {
                    // A closed trade older than the settled curve: fold everything again, once.
                    tracing::info!(source = %self.name, "freqtrade: a trade closed before already-settled ones; recomputing the equity curve from all rows");
                    rebuilt = true;
                    state.reset();
                } else if !more {
                    break;
                }
                if Instant::now() + CHUNK_MARGIN >= ctx.deadline {
                    return Err(SourceError::Busy(format!(
                        "catching up with the bot's history ({} trades and {} orders folded so \
                         far); the next reads go on",
                        state.trades_wm.high, state.orders_wm.high
                    )));
                }
                delta = self.read_store(&state, ctx).await?;
            }
            Ok(self.data(&state, api, ctx))
        })
    }
}

impl Freqtrade {
    async fn read_store(&self, state: &State, ctx: ReadContext) -> Result<Delta, SourceError> {
        let trades_filter = state.trades_wm.conditions("t.id");
        let orders_filter = state.orders_wm.conditions("o.id");
        match &self.store {
            Store::Sqlite(store) => {
                let r = store
                    .retry_until(ctx.deadline, || async {
                        let mut tx = store.begin().await?;
                        let r = read_sqlite(tx.conn(), &trades_filter, &orders_filter).await;
                        tx.finish(r).await
                    })
                    .await;
                r.map_err(SourceError::from)
            }
            Store::Postgres(pool) => {
                let wait = ctx.deadline.saturating_duration_since(Instant::now());
                let mut lease = session::begin(
                    pool,
                    wait,
                    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                )
                .await
                .map_err(SourceError::Unreachable)?;
                let r = read_pg(lease.conn(), &trades_filter, &orders_filter).await;
                if r.is_ok() {
                    session::finish(lease).await;
                }
                r.map_err(|e| SourceError::Query(e.to_string()))
            }
        }
    }

    /// Folds final rows into the state and replaces the open ones (after a consistent read).
    /// `settle`: fold the curves' old points (not while catching up: history arrives in id
    /// order, not close-date order).
    fn apply(&self, state: &mut State, delta: Delta, ctx: ReadContext, settle: bool) {
        state.schema = Some(delta.schema.clone());
        for (family, column) in delta.schema.absent() {
            if state.warned.insert(column.clone()) {
                tracing::warn!(source = %self.name, column = %column, family, "freqtrade: a column the family needs is missing; the family is left out");
            }
        }
        let now = Instant::now();
        let schema = delta.schema;
        // Trades.
        let seen: Vec<(i64, bool)> = delta.trades.iter().map(|t| (t.id, !t.is_open)).collect();
        let fold: HashSet<i64> = state.trades_wm.advance(&seen, now).into_iter().collect();
        let returned_open: HashSet<i64> =
            seen.iter().filter(|(_, f)| !f).map(|(i, _)| *i).collect();
        state.open_trades.retain(|id, _| returned_open.contains(id));
        for t in delta.trades {
            let sid = state.ids.id(&t.strategy);
            if t.is_open {
                state.open_trades.insert(t.id, t);
                continue;
            }
            if !fold.contains(&t.id) {
                continue;
            }
            let profit = t.close_profit_abs.unwrap_or_default();
            let e = state.closed_realized.entry(sid).or_default();
            *e = e.saturating_add(profit);
            let e = state.closed_fees.entry(sid).or_default();
            *e = e.saturating_add(t.fees);
            if let (Some(capital), Some(date), true) =
                (self.capital, t.close_date, schema.curve_ok())
            {
                let key = (date, t.id);
                let curve = state
                    .curves
                    .entry(sid)
                    .or_insert_with(|| Curve::new(capital));
                let a = curve.add(key, profit);
                let account = state.account.get_or_insert_with(|| Curve::new(capital));
                if a.is_err() || account.add(key, profit).is_err() {
                    state.rebuild = true;
                }
            }
        }
        // Settle what lies before the trading day (and a minute back from now).
        let settle_before = (
            ctx.day_start
                .naive_utc()
                .min(ctx.now.naive_utc() - chrono::TimeDelta::seconds(60)),
            i64::MIN,
        );
        if settle {
            for c in state.curves.values_mut().chain(state.account.iter_mut()) {
                c.settle(&settle_before);
            }
        }
        // Orders.
        let seen: Vec<(i64, bool)> = delta
            .orders
            .iter()
            .map(|o| (o.id, !matches!(o.status, "new" | "partially_filled")))
            .collect();
        let fold: HashSet<i64> = state.orders_wm.advance(&seen, now).into_iter().collect();
        let returned_open: HashSet<i64> =
            seen.iter().filter(|(_, f)| !f).map(|(i, _)| *i).collect();
        state.open_orders.retain(|id, _| returned_open.contains(id));
        let day = ctx.day_start.naive_utc();
        for o in delta.orders {
            let sid = state.ids.id(&o.strategy);
            if matches!(o.status, "new" | "partially_filled") {
                state.open_orders.insert(o.id, o);
                continue;
            }
            if !fold.contains(&o.id) {
                continue;
            }
            let totals = state.orders.entry((sid, o.side)).or_default();
            *totals.by_status.entry(o.status).or_default() += 1;
            if o.filled > Decimal::ZERO {
                totals.fills += 1;
                totals.notional = totals.notional.saturating_add(o.notional);
                if let Some(l) = o.latency {
                    let le = latency_bucket(&self.buckets, l);
                    let e = state.latency.entry((sid, le.to_bits())).or_default();
                    e.0 += 1;
                    e.1 = e.1.saturating_add(Decimal::from_f64(l).unwrap_or_default());
                }
            }
            if let Some(d) = o.order_date
                && d >= day
            {
                state.recent_terminal.push((d, sid, o.status == "filled"));
            }
        }
        state.recent_terminal.retain(|(d, _, _)| *d >= day);
    }

    async fn read_api(&self, api: &Api) -> ApiView {
        let auth = match (&api.username, &api.password) {
            (Some(u), Some(p)) => Some((u.as_str(), p.expose())),
            _ => None,
        };
        let (status, health, config) = futures::join!(
            get_json(&api.base, "/api/v1/status", auth),
            get_json(&api.base, "/api/v1/health", auth),
            get_json(&api.base, "/api/v1/show_config", auth),
        );
        let mut view = ApiView::default();
        match status {
            Ok(serde_json::Value::Array(trades)) => {
                view.status = Some(
                    trades
                        .iter()
                        .map(|t| ApiTrade {
                            strategy: t["strategy"].as_str().unwrap_or_default().to_string(),
                            pair: t["pair"].as_str().unwrap_or_default().to_string(),
                            profit_abs: t["profit_abs"]
                                .as_f64()
                                .and_then(Decimal::from_f64)
                                .unwrap_or_default(),
                            current_rate: t["current_rate"].as_f64(),
                        })
                        .collect(),
                )
            }
            Ok(_) => {
                tracing::warn!(source = %self.name, "freqtrade API: /api/v1/status is not a list")
            }
            Err(e) => {
                tracing::warn!(source = %self.name, error = %e, "freqtrade API: /api/v1/status failed")
            }
        }
        match health {
            Ok(h) => {
                view.last_process = h["last_process_ts"]
                    .as_i64()
                    .and_then(|t| DateTime::from_timestamp(t, 0))
                    .or_else(|| {
                        h["last_process"]
                            .as_str()
                            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                            .map(|t| t.with_timezone(&Utc))
                    })
            }
            Err(e) => {
                tracing::warn!(source = %self.name, error = %e, "freqtrade API: /api/v1/health failed")
            }
        }
        match config {
            Ok(c) => {
                // An empty state: the API runs without a bot (webserver mode).
                if let Some(st) = c["state"].as_str().filter(|s| !s.is_empty()) {
                    view.config = Some((
                        st.to_ascii_lowercase(),
                        c["strategy"].as_str().map(str::to_string),
                    ));
                }
            }
            Err(e) => {
                tracing::warn!(source = %self.name, error = %e, "freqtrade API: /api/v1/show_config failed")
            }
        }
        view
    }

    /// The state (and the API's answers) as the reference rows.
    fn data(&self, state: &State, api: Option<ApiView>, ctx: ReadContext) -> TradingData {
        let mut ids = state.ids.clone();
        let schema = state.schema.clone().unwrap_or_default();
        let api = api.unwrap_or_default();
        let running = api.config.as_ref().and_then(|(_, s)| s.clone());
        if let Some(s) = &running {
            ids.id(s);
        }
        for t in api.status.iter().flatten() {
            ids.id(&t.strategy);
        }
        let mut absent: Vec<&'static str> = schema.absent().into_iter().map(|(f, _)| f).collect();
        if self.capital.is_none() {
            absent.extend(EQUITY_FAMILIES);
        }
        if api.config.is_none() {
            absent.push("trading_strategy_up");
            absent.push("trading_strategy_status");
        }
        let current_rate: HashMap<&str, f64> = api
            .status
            .iter()
            .flatten()
            .filter_map(|t| t.current_rate.map(|r| (t.pair.as_str(), r)))
            .collect();

        // Open trades: realized partial exits, fees, positions.
        let mut realized: HashMap<i64, Decimal> = state.closed_realized.clone();
        let mut fees: HashMap<i64, Decimal> = state.closed_fees.clone();
        let mut positions: BTreeMap<(i64, &str), (f64, f64)> = BTreeMap::new();
        for t in state.open_trades.values() {
            let sid = ids.id(&t.strategy);
            let e = realized.entry(sid).or_default();
            *e = e.saturating_add(t.realized_profit.unwrap_or_default());
            let e = fees.entry(sid).or_default();
            *e = e.saturating_add(t.fees);
            let price = current_rate
                .get(t.pair.as_str())
                .copied()
                .unwrap_or(t.open_rate);
            let signed = if t.is_short { -t.amount } else { t.amount };
            let p = positions.entry((sid, t.pair.as_str())).or_default();
            p.0 += signed;
            p.1 = price;
        }
        let positions: Vec<PositionRow> = positions
            .into_iter()
            .filter(|(_, (q, _))| *q != 0.0)
            .map(|((sid, pair), (q, price))| PositionRow {
                strategy_id: sid,
                symbol: pair.to_string(),
                quantity: Decimal::from_f64(q).unwrap_or_default(),
                avg_price: Decimal::ZERO,
                market_price: Decimal::from_f64(price).unwrap_or_default(),
            })
            .collect();

        let day_key: Key = (ctx.day_start.naive_utc(), i64::MIN);
        let mut strategies = Vec::new();
        for (sid, name) in ids.all() {
            let figures = self.capital.map(|c| {
                state.curves.get(&sid).map_or_else(
                    || Curve::<Key>::new(c).figures(&day_key),
                    |cv| cv.figures(&day_key),
                )
            });
            let status = match (&api.config, &running) {
                (Some((st, _)), Some(r)) if r == name => match st.as_str() {
                    "running" => "active",
                    // RELOAD_CONFIG lasts seconds: not trading meanwhile, not an error.
                    "paused" | "reload_config" => "paused",
                    "stopped" => "stopped",
                    _ => "error",
                },
                // A strategy the bot does not run now (an earlier one in its trades): no
                // state of its own, so no `trading_strategy_up` to alert on forever.
                _ => "",
            };
            strategies.push(StrategyRow {
                id: sid,
                name: name.to_string(),
                status: status.to_string(),
                risk_budget: None,
                heartbeat_at: if running.as_deref() == Some(name) {
                    api.last_process
                } else {
                    None
                },
                latest_ts: None,
                latest_equity: figures.as_ref().map(|f| f.equity),
                latest_realized: realized.get(&sid).copied().or(Some(Decimal::ZERO)),
                peak: figures.as_ref().map(|f| f.peak),
                max_drawdown: figures.as_ref().map(|f| f.max_drawdown),
                before_day_equity: figures.as_ref().map(|f| f.before_day),
                first_of_day_ts: None,
                first_of_day_equity: None,
            });
        }

        // Orders: folded finals plus the open ones now.
        let mut counts: HashMap<(i64, &'static str, &'static str), i64> = HashMap::new();
        let mut fills: HashMap<(i64, &'static str), (i64, Decimal)> = HashMap::new();
        for ((sid, side), t) in &state.orders {
            for (st, n) in &t.by_status {
                *counts.entry((*sid, side, st)).or_default() += n;
            }
            let f = fills.entry((*sid, side)).or_default();
            f.0 += t.fills;
            f.1 = f.1.saturating_add(t.notional);
        }
        for o in state.open_orders.values() {
            let sid = ids.id(&o.strategy);
            *counts.entry((sid, o.side, o.status)).or_default() += 1;
            if o.filled > Decimal::ZERO {
                let f = fills.entry((sid, o.side)).or_default();
                f.0 += 1;
                f.1 = f.1.saturating_add(o.notional);
            }
        }
        let order_counts = counts
            .into_iter()
            .map(|((sid, side, status), n)| OrderCountRow {
                strategy_id: sid,
                side: side.to_string(),
                status: status.to_string(),
                n,
            })
            .collect();
        let mut fill_totals: Vec<FillTotalRow> = Vec::new();
        for (sid, _) in ids.all() {
            for side in ["buy", "sell"] {
                let (n, notional) = fills.get(&(sid, side)).copied().unwrap_or_default();
                fill_totals.push(FillTotalRow {
                    strategy_id: sid,
                    side: side.to_string(),
                    fills: n,
                    notional,
                    // The rendering publishes only the sum over sides; freqtrade's fees are
                    // per trade, not per order side.
                    fees: if side == "buy" {
                        fees.get(&sid).copied().unwrap_or_default()
                    } else {
                        Decimal::ZERO
                    },
                });
            }
        }
        let latency = state
            .latency
            .iter()
            .map(|((sid, le), (n, sum))| LatencyRow {
                strategy_id: *sid,
                le: f64::from_bits(*le),
                n: *n,
                sum_seconds: *sum,
            })
            .collect();
        let day = ctx.day_start.naive_utc();
        let now = ctx.now.naive_utc();
        let mut execution: HashMap<i64, (i64, i64)> = HashMap::new();
        for (d, sid, filled) in &state.recent_terminal {
            if *d >= day && *d <= now {
                let e = execution.entry(*sid).or_default();
                e.1 += 1;
                if *filled {
                    e.0 += 1;
                }
            }
        }
        let execution = execution
            .into_iter()
            .map(|(sid, (filled, terminal))| ExecutionRow {
                strategy_id: sid,
                filled,
                terminal,
            })
            .collect();

        let unrealized = api.status.as_ref().map(|trades| {
            let mut m: HashMap<i64, Decimal> = HashMap::new();
            for (sid, _) in ids.all() {
                m.insert(sid, Decimal::ZERO);
            }
            for t in trades {
                let sid = ids.id(&t.strategy);
                let e = m.entry(sid).or_default();
                *e = e.saturating_add(t.profit_abs);
            }
            m
        });
        if unrealized.is_none() {
            absent.push("trading_pnl_unrealized");
        }
        let portfolio = self.capital.map(|c| {
            let f = state.account.as_ref().map_or_else(
                || Curve::<Key>::new(c).figures(&day_key),
                |a| a.figures(&day_key),
            );
            PortfolioFigures {
                equity: f.equity,
                peak: f.peak,
                day_base: Some(f.before_day),
            }
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
                absent,
                unrealized,
                portfolio,
            },
        }
    }
}

/// Reads the columns present and the rows past the watermarks, in one transaction.
async fn read_sqlite(
    conn: &mut SqliteConnection,
    trades_filter: &[String],
    orders_filter: &[String],
) -> Result<Delta, sqlx::Error> {
    let cols = |table: &'static str| format!("SELECT name FROM pragma_table_info('{table}')");
    let trades: Vec<String> = sqlx::query_scalar(&cols("trades"))
        .fetch_all(&mut *conn)
        .await?;
    let orders: Vec<String> = sqlx::query_scalar(&cols("orders"))
        .fetch_all(&mut *conn)
        .await?;
    let schema = Schema {
        trades: trades.into_iter().collect(),
        orders: orders.into_iter().collect(),
    };
    let mut delta = Delta {
        schema,
        trades: Vec::new(),
        orders: Vec::new(),
    };
    if delta.schema.trades_ok() {
        let (sql, idx) = trades_sql(&delta.schema, trades_filter);
        // Streamed: a first read folds all history, and a driver row costs far more than ours.
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await? {
            delta.trades.extend(trade_row(&sqlite_row(&r), &idx));
        }
    }
    if delta.schema.orders_ok() {
        let (sql, idx) = orders_sql(&delta.schema, orders_filter);
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await? {
            delta.orders.extend(order_row(&sqlite_row(&r), &idx));
        }
    }
    Ok(delta)
}

async fn read_pg(
    conn: &mut PgConnection,
    trades_filter: &[String],
    orders_filter: &[String],
) -> Result<Delta, sqlx::Error> {
    let cols = "SELECT table_name::text, column_name::text FROM information_schema.columns \
                WHERE table_schema = current_schema() AND table_name IN ('trades', 'orders')";
    let rows: Vec<(String, String)> = sqlx::query_as(cols).fetch_all(&mut *conn).await?;
    let mut schema = Schema::default();
    for (t, c) in rows {
        if t == "trades" {
            schema.trades.insert(c);
        } else {
            schema.orders.insert(c);
        }
    }
    let mut delta = Delta {
        schema,
        trades: Vec::new(),
        orders: Vec::new(),
    };
    if delta.schema.trades_ok() {
        let (sql, idx) = trades_sql(&delta.schema, trades_filter);
        let mut rows = sqlx::query(&sql).persistent(false).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await? {
            delta.trades.extend(trade_row(&pg_row(&r), &idx));
        }
    }
    if delta.schema.orders_ok() {
        let (sql, idx) = orders_sql(&delta.schema, orders_filter);
        let mut rows = sqlx::query(&sql).persistent(false).fetch(&mut *conn);
        while let Some(r) = rows.try_next().await? {
            delta.orders.extend(order_row(&pg_row(&r), &idx));
        }
    }
    Ok(delta)
}

/// Column name → position in the select list (only the columns present are selected).
type Index = HashMap<&'static str, usize>;

fn select_list(
    present: &HashSet<String>,
    wanted: &[&'static str],
    alias: &str,
) -> (Vec<String>, Index) {
    let mut cols = Vec::new();
    let mut idx = Index::new();
    for c in wanted {
        if present.contains(*c) {
            idx.insert(*c, cols.len());
            cols.push(format!("{alias}.{c}"));
        }
    }
    (cols, idx)
}

fn trades_sql(schema: &Schema, conditions: &[String]) -> (String, Index) {
    let (cols, idx) = select_list(&schema.trades, &TRADE_COLUMNS, "t");
    let one = |c: &String| format!("SELECT {} FROM trades t WHERE {c}", cols.join(", "));
    (union_all(conditions, one, "t.id"), idx)
}

fn orders_sql(schema: &Schema, conditions: &[String]) -> (String, Index) {
    let (mut cols, mut idx) = select_list(&schema.orders, &ORDER_COLUMNS, "o");
    idx.insert("strategy", cols.len());
    cols.push("t.strategy".into());
    // CROSS JOIN: SQLite then keeps `orders` as the outer loop, reading only the rows asked
    // for by primary key (a plain JOIN may let it scan all trades).
    let one = |c: &String| {
        format!(
            "SELECT {} FROM orders o CROSS JOIN trades t WHERE t.id = o.ft_trade_id AND {c}",
            cols.join(", ")
        )
    };
    (union_all(conditions, one, "o.id"), idx)
}

/// One SELECT per condition (each a primary-key range or lookup), joined by `UNION ALL`; the
/// first (`id > high`) reads at most [`CHUNK`] rows, lowest ids first.
fn union_all(conditions: &[String], one: impl Fn(&String) -> String, id: &str) -> String {
    conditions
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                format!(
                    "SELECT * FROM ({} ORDER BY {id} LIMIT {CHUNK}) AS part",
                    one(c)
                )
            } else {
                one(c)
            }
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

fn get<'a>(row: &'a [Val], idx: &Index, col: &str) -> &'a Val {
    idx.get(col).and_then(|i| row.get(*i)).unwrap_or(&Val::Null)
}

fn trade_row(row: &[Val], idx: &Index) -> Option<TradeRow> {
    let g = |c: &str| get(row, idx, c);
    let fees = g("fee_open_cost")
        .decimal()
        .unwrap_or_default()
        .saturating_add(g("fee_close_cost").decimal().unwrap_or_default());
    Some(TradeRow {
        id: g("id").i64()?,
        strategy: g("strategy").text().unwrap_or_default().to_string(),
        pair: g("pair").text().unwrap_or_default().to_string(),
        is_open: g("is_open").bool()?,
        is_short: g("is_short").bool().unwrap_or(false),
        amount: g("amount").f64().unwrap_or(0.0),
        open_rate: g("open_rate").f64().unwrap_or(0.0),
        close_profit_abs: g("close_profit_abs").decimal(),
        realized_profit: g("realized_profit").decimal(),
        close_date: g("close_date").time(),
        fees,
    })
}

fn order_row(row: &[Val], idx: &Index) -> Option<OrderRow> {
    let g = |c: &str| get(row, idx, c);
    let filled_f = g("filled").f64().unwrap_or(0.0);
    let filled = g("filled").decimal().unwrap_or_default();
    let open = g("ft_is_open").bool()?;
    let status = if open {
        if filled_f > 0.0 {
            "partially_filled"
        } else {
            "new"
        }
    } else {
        match g("status").text().unwrap_or_default() {
            "closed" => "filled",
            "rejected" => "rejected",
            // canceled, cancelled, expired, and anything else no longer working.
            _ => "cancelled",
        }
    };
    let side = match g("side").text().unwrap_or_default() {
        "sell" => "sell",
        _ => "buy",
    };
    let price = if g("average").is_null() {
        g("price")
    } else {
        g("average")
    };
    let notional = match (g("filled").f64(), price.f64()) {
        (Some(f), Some(p)) => Decimal::from_f64(f * p).unwrap_or_default(),
        _ => Decimal::ZERO,
    };
    let order_date = g("order_date").time();
    let latency = match (order_date, g("order_filled_date").time()) {
        (Some(a), Some(b)) => (b - a).num_microseconds().map(|us| us as f64 / 1e6),
        _ => None,
    };
    Some(OrderRow {
        id: g("id").i64()?,
        strategy: g("strategy").text().unwrap_or_default().to_string(),
        side,
        status,
        filled,
        notional,
        order_date,
        latency,
    })
}
