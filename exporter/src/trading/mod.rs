//! The trading business metrics: the pieces the trading collector
//! ([`crate::collectors::trading`]) is built from.
//!
//! - [`day`]: when the trading day starts (time zone with DST, configurable start time);
//! - [`queries`]: every statement a scrape runs, each an indexed read of bounded size;
//! - [`portfolio`]: the portfolio equity series, folded incrementally in memory;
//! - [`custom`]: operator-supplied SQL metrics for schemas that differ from ours;
//! - [`session`]: read-only transactions on the fail-fast scrape pool;
//! - [`migrate`]: the reference schema and its summary triggers, applied on request only;
//! - [`sources`]: the stores of bots (freqtrade, hummingbot) read where they are.

pub mod custom;
pub mod day;
pub mod migrate;
pub mod portfolio;
pub mod queries;
pub mod session;
pub mod sources;
pub mod zone;

/// Every family the trading collector can produce; custom metrics may not reuse these names.
pub const BUILTIN_FAMILIES: [&str; 32] = [
    "trading_up",
    "trading_source_up",
    "trading_source_last_success_timestamp_seconds",
    "trading_strategy_up",
    "trading_strategy_status",
    "trading_strategy_heartbeat_age_seconds",
    "trading_equity",
    "trading_equity_peak",
    "trading_drawdown_ratio",
    "trading_max_drawdown_ratio",
    "trading_pnl_realized",
    "trading_pnl_unrealized",
    "trading_pnl_daily",
    "trading_positions_open",
    "trading_position_notional",
    "trading_gross_exposure",
    "trading_net_exposure",
    "trading_position_concentration_ratio",
    "trading_risk_budget_usage_ratio",
    "trading_orders_total",
    "trading_orders_closed_total",
    "trading_orders_open",
    "trading_fills_total",
    "trading_traded_notional_total",
    "trading_fees_total",
    "trading_execution_rate_ratio",
    "trading_order_fill_latency_seconds",
    "trading_portfolio_equity",
    "trading_portfolio_drawdown_ratio",
    "trading_portfolio_pnl_daily",
    "trading_custom_metric_success",
    "trading_custom_metric_duration_seconds",
];
