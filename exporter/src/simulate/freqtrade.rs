//! `simulate --freqtrade-db PATH`: a freqtrade bot's store beside the reference schema, so the
//! demo shows a `type: freqtrade` source (and its drawdown page) without installing freqtrade.
//!
//! The tables are freqtrade's own DDL (`tests/fixtures/freqtrade/schema.sql`, dumped from a
//! database freqtrade's code created), in rollback-journal mode: the mode in which a reader
//! can make a bot's commit fail, so the demo exercises the exporter's lock-free read. The bot
//! runs one strategy ([`STRATEGY`]) on two pairs, one trade per pair at a time, as a dry-run bot
//! does: each trade is an entry order, sometimes a partial exit (`realized_profit` on the open
//! trade), and an exit order that closes it with `close_profit_abs` = all its exits' profit.
//! Stakes are a quarter of the current closed-trade equity (freqtrade's compounding
//! `stake_amount: unlimited`). With `--freqtrade-force-drawdown` every exit loses 8 % of its
//! stake (about 2 % of the equity per closed trade), so the bot's drawdown crosses the shipped
//! rule's -15 % after the 8th close, some 20 s after start.

use chrono::{NaiveDateTime, TimeDelta, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// freqtrade's `trades` and `orders` DDL, as its own code created it.
pub const SCHEMA: &str = include_str!("../../../tests/fixtures/freqtrade/schema.sql");
/// The strategy the simulated bot runs (`trades.strategy`).
pub const STRATEGY: &str = "SampleStrategy";
/// (pair, base currency, the simulator's symbol whose price it follows).
pub const PAIRS: [(&str, &str, &str); 2] = [
    ("BTC/USDT", "BTC", "BTCUSDT"),
    ("ETH/USDT", "ETH", "ETHUSDT"),
];
const FEE: f64 = 0.001;
/// Fraction of the equity staked per trade.
const STAKE_FRACTION: f64 = 0.25;
/// A forced exit's rate below the entry.
const FORCED_LOSS: f64 = 0.08;
const OPEN_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
struct OpenTrade {
    id: i64,
    pair: usize,
    amount: f64,
    open_rate: f64,
    /// Profit of the exits so far (freqtrade's `realized_profit`).
    realized: f64,
    fee_close_cost: f64,
    /// Exit half first (decided at entry).
    partial: bool,
    exit_at: Instant,
}

/// The simulated bot and its database connection.
pub struct Bot {
    conn: SqliteConnection,
    capital: f64,
    force: bool,
    /// Σ `close_profit_abs` of the closed trades.
    closed_profit: f64,
    open: Vec<OpenTrade>,
    next_open: Instant,
    orders: i64,
    pub closed: u64,
}

fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

impl Bot {
    /// Opens (creating with freqtrade's DDL if new) the database; trades continue from what
    /// is there, open ones included.
    pub async fn open(path: &Path, capital: f64, force: bool) -> Result<Bot, sqlx::Error> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete)
            // Python's sqlite3 default, as freqtrade's SQLAlchemy engine has it.
            .busy_timeout(Duration::from_secs(5));
        let mut conn = SqliteConnection::connect_with(&opts).await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'trades'",
        )
        .fetch_one(&mut conn)
        .await?;
        if exists == 0 {
            sqlx::raw_sql(SCHEMA).execute(&mut conn).await?;
        }
        let closed_profit: f64 = sqlx::query_scalar(
            "SELECT coalesce(sum(close_profit_abs), 0.0) FROM trades WHERE is_open = 0",
        )
        .fetch_one(&mut conn)
        .await?;
        let orders: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM orders")
            .fetch_one(&mut conn)
            .await?;
        let rows: Vec<(i64, String, f64, f64, Option<f64>)> = sqlx::query_as(
            "SELECT id, pair, amount, open_rate, realized_profit FROM trades WHERE is_open = 1",
        )
        .fetch_all(&mut conn)
        .await?;
        let now = Instant::now();
        let open = rows
            .into_iter()
            .filter_map(|(id, pair, amount, open_rate, realized)| {
                let pair = PAIRS.iter().position(|p| p.0 == pair)?;
                Some(OpenTrade {
                    id,
                    pair,
                    amount,
                    open_rate,
                    realized: realized.unwrap_or_default(),
                    fee_close_cost: 0.0,
                    partial: false,
                    exit_at: now,
                })
            })
            .collect();
        Ok(Bot {
            conn,
            capital,
            force,
            closed_profit,
            open,
            next_open: now,
            orders,
            closed: 0,
        })
    }

    /// The closed-trade equity (what the exporter's curve ends at).
    pub fn equity(&self) -> f64 {
        self.capital + self.closed_profit
    }

    /// One step at `now` (`wall`: the same instant as freqtrade's naive UTC dates): exits
    /// that are due, then an entry on a free pair when one is due. `prices` by simulator
    /// symbol; `noise` a standard-normal draw per call site.
    pub async fn step(
        &mut self,
        now: Instant,
        wall: NaiveDateTime,
        prices: &HashMap<&'static str, f64>,
        mut noise: impl FnMut() -> f64,
    ) -> Result<(), sqlx::Error> {
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].exit_at > now {
                i += 1;
                continue;
            }
            let mark = prices.get(PAIRS[self.open[i].pair].2).copied();
            let t = &self.open[i];
            let rate = if self.force {
                t.open_rate * (1.0 - FORCED_LOSS)
            } else {
                // A bot with a small edge: its exits average 0.4 % above the mark.
                mark.unwrap_or(t.open_rate) * (1.0 + 0.004 + 0.01 * noise())
            };
            if t.partial {
                self.exit(i, rate, wall, false).await?;
                self.open[i].partial = false;
                self.open[i].exit_at = now + Duration::from_secs(2);
                i += 1;
            } else {
                self.exit(i, rate, wall, true).await?;
                self.open.swap_remove(i);
            }
        }
        if now >= self.next_open && self.open.len() < PAIRS.len() {
            self.next_open = now + OPEN_EVERY;
            let pair = (0..PAIRS.len())
                .find(|p| !self.open.iter().any(|t| t.pair == *p))
                .unwrap_or(0);
            if let Some(price) = prices.get(PAIRS[pair].2).copied() {
                let hold = 2.0 + (1.0 + noise().clamp(-1.0, 1.0));
                let partial = noise() > 0.4;
                self.enter(
                    pair,
                    price,
                    wall,
                    now,
                    Duration::from_secs_f64(hold),
                    partial,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn enter(
        &mut self,
        pair: usize,
        rate: f64,
        wall: NaiveDateTime,
        now: Instant,
        hold: Duration,
        partial: bool,
    ) -> Result<(), sqlx::Error> {
        let (name, base, _) = PAIRS[pair];
        let stake = (self.equity() * STAKE_FRACTION).max(1.0);
        let amount = stake / rate;
        let fee_cost = amount * rate * FEE;
        let mut tx = self.conn.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO trades (exchange, pair, base_currency, stake_currency, is_open, \
             fee_open, fee_open_cost, fee_open_currency, fee_close, open_rate, \
             open_rate_requested, open_trade_value, realized_profit, stake_amount, \
             max_stake_amount, amount, amount_requested, open_date, stop_loss, stop_loss_pct, \
             initial_stop_loss, initial_stop_loss_pct, is_stop_loss_trailing, max_rate, \
             min_rate, strategy, timeframe, trading_mode, leverage, is_short, interest_rate, \
             funding_fees, funding_fee_running, record_version) \
             VALUES ('binance', ?1, ?2, 'USDT', 1, ?3, ?4, 'USDT', ?3, ?5, ?5, ?6, 0.0, ?7, ?7, \
             ?8, ?8, ?9, ?10, -0.1, ?10, -0.1, 0, ?5, ?5, ?11, 5, 'SPOT', 1.0, 0, 0.0, 0.0, \
             0.0, 2) RETURNING id",
        )
        .bind(name)
        .bind(base)
        .bind(FEE)
        .bind(fee_cost)
        .bind(rate)
        .bind(amount * rate * (1.0 + FEE))
        .bind(stake)
        .bind(amount)
        .bind(ts(wall))
        .bind(rate * 0.9)
        .bind(STRATEGY)
        .fetch_one(&mut *tx)
        .await?;
        self.orders += 1;
        insert_order(&mut tx, id, self.orders, name, "buy", amount, rate, wall).await?;
        tx.commit().await?;
        self.open.push(OpenTrade {
            id,
            pair,
            amount,
            open_rate: rate,
            realized: 0.0,
            fee_close_cost: 0.0,
            partial,
            exit_at: now + hold,
        });
        Ok(())
    }

    /// An exit order of half the trade (`full` false) or the rest, at `rate`.
    async fn exit(
        &mut self,
        i: usize,
        rate: f64,
        wall: NaiveDateTime,
        full: bool,
    ) -> Result<(), sqlx::Error> {
        let t = self.open[i].clone();
        let name = PAIRS[t.pair].0;
        let amount = if full { t.amount } else { t.amount / 2.0 };
        let fee = amount * rate * FEE;
        let profit = amount * rate * (1.0 - FEE) - amount * t.open_rate * (1.0 + FEE);
        let realized = t.realized + profit;
        let fee_close_cost = t.fee_close_cost + fee;
        let mut tx = self.conn.begin().await?;
        self.orders += 1;
        insert_order(&mut tx, t.id, self.orders, name, "sell", amount, rate, wall).await?;
        if full {
            sqlx::query(
                "UPDATE trades SET is_open = 0, close_rate = ?2, close_rate_requested = ?2, \
                 close_date = ?3, realized_profit = ?4, close_profit_abs = ?4, \
                 close_profit = ?4 / open_trade_value, fee_close_cost = ?5, \
                 fee_close_currency = 'USDT', exit_reason = ?6, exit_order_status = 'closed', \
                 min_rate = min(min_rate, ?2), max_rate = max(max_rate, ?2) WHERE id = ?1",
            )
            .bind(t.id)
            .bind(rate)
            .bind(ts(wall))
            .bind(realized)
            .bind(fee_close_cost)
            .bind(if profit < 0.0 {
                "stop_loss"
            } else {
                "exit_signal"
            })
            .execute(&mut *tx)
            .await?;
        } else {
            // A partial exit: the trade stays open with the rest and its stake.
            sqlx::query(
                "UPDATE trades SET amount = amount - ?2, stake_amount = stake_amount / 2, \
                 realized_profit = ?3, fee_close_cost = ?4, fee_close_currency = 'USDT', \
                 min_rate = min(min_rate, ?5), max_rate = max(max_rate, ?5) WHERE id = ?1",
            )
            .bind(t.id)
            .bind(amount)
            .bind(realized)
            .bind(fee_close_cost)
            .bind(rate)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let o = &mut self.open[i];
        o.amount -= amount;
        o.realized = realized;
        o.fee_close_cost = fee_close_cost;
        if full {
            self.closed_profit += realized;
            self.closed += 1;
        }
        Ok(())
    }
}

/// A limit order filled at once (dry-run style), 80 ms after it was placed.
#[allow(clippy::too_many_arguments)]
async fn insert_order(
    conn: &mut SqliteConnection,
    trade: i64,
    seq: i64,
    pair: &str,
    side: &str,
    amount: f64,
    rate: f64,
    wall: NaiveDateTime,
) -> Result<(), sqlx::Error> {
    let placed = wall - TimeDelta::milliseconds(80);
    sqlx::query(
        "INSERT INTO orders (ft_trade_id, ft_order_side, ft_pair, ft_is_open, ft_amount, \
         ft_price, order_id, status, symbol, order_type, side, price, average, amount, filled, \
         remaining, cost, order_date, order_filled_date, order_update_date, funding_fee) \
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, 'closed', ?3, 'limit', ?2, ?5, ?5, ?4, ?4, 0.0, \
         ?7, ?8, ?9, ?9, 0.0)",
    )
    .bind(trade)
    .bind(side)
    .bind(pair)
    .bind(amount)
    .bind(rate)
    .bind(format!("dry_run_{side}_{seq}"))
    .bind(amount * rate)
    .bind(ts(placed))
    .bind(ts(wall))
    .execute(conn)
    .await?;
    Ok(())
}

/// freqtrade's dates: naive UTC.
pub fn wall_now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::trading::sources::freqtrade::FreqtradeConfig;
    use crate::trading::sources::{ReadContext, Shared, SourceSpec};
    use rust_decimal::Decimal;
    use rust_decimal::prelude::{FromPrimitive, ToPrimitive};

    async fn run_bot(path: &Path, force: bool, closes: u64) -> (Bot, NaiveDateTime) {
        let mut bot = Bot::open(path, 1000.0, force).await.expect("open");
        let prices = HashMap::from([("BTCUSDT", 65000.0), ("ETHUSDT", 3200.0)]);
        let start = Instant::now();
        let wall0 = NaiveDateTime::parse_from_str("2026-12-06 10:00:00", "%Y-%m-%d %H:%M:%S")
            .expect("date");
        let mut k = 0u64;
        let mut wall = wall0;
        // A fixed noise sequence: every third trade exits half first.
        let mut draws = [0.0, 0.5, 0.0, -0.5, 0.9, 0.2].into_iter().cycle();
        while bot.closed < closes {
            k += 1;
            let now = start + Duration::from_millis(250 * k);
            wall = wall0 + TimeDelta::milliseconds(250 * k as i64);
            bot.step(now, wall, &prices, || draws.next().unwrap_or(0.0))
                .await
                .expect("step");
        }
        (bot, wall)
    }

    async fn read_back(path: &Path, now: NaiveDateTime) -> crate::trading::queries::TradingData {
        let mut cfg = FreqtradeConfig {
            name: "ftbot".into(),
            url: Secret::new(format!("sqlite://{}", path.display())),
            starting_capital: Some(1000.0),
            api_url: None,
            api_username: None,
            api_password: None,
            timeout: Duration::from_secs(5),
        };
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        let shared = Shared {
            latency_buckets: vec![0.05, 0.1, 1.0],
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        };
        let source = cfg.build(&shared).expect("source");
        let now = now.and_utc() + TimeDelta::seconds(1);
        source
            .read(ReadContext {
                now,
                day_start: now - TimeDelta::hours(1),
                deadline: Instant::now() + Duration::from_secs(5),
            })
            .await
            .expect("read")
    }

    #[tokio::test]
    async fn a_forced_bot_written_in_freqtrades_tables_reads_back_as_a_drawdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tradesv3.sqlite");
        let (mut bot, wall) = run_bot(&path, true, 9).await;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut bot.conn)
            .await
            .expect("journal");
        assert_eq!(journal, "delete", "rollback-journal mode");
        // Every column the bot wrote is one of freqtrade's: the DDL is the file's.
        let ddl: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'trades'")
            .fetch_one(&mut bot.conn)
            .await
            .expect("ddl");
        assert!(SCHEMA.contains(&ddl), "{ddl}");
        // Partial exits: a closed trade with two exit orders whose profit is both exits'.
        let partial: Vec<(i64, f64, f64)> = sqlx::query_as(
            "SELECT t.id, t.close_profit_abs, t.realized_profit FROM trades t WHERE t.is_open = 0 \
             AND (SELECT count(*) FROM orders o WHERE o.ft_trade_id = t.id AND o.side = 'sell') = 2",
        )
        .fetch_all(&mut bot.conn)
        .await
        .expect("partials");
        assert!(!partial.is_empty(), "some trades exit half first");
        for (id, abs, realized) in &partial {
            assert_eq!(abs, realized, "trade {id}");
        }
        let closed: Vec<f64> = sqlx::query_scalar(
            "SELECT close_profit_abs FROM trades WHERE is_open = 0 ORDER BY close_date, id",
        )
        .fetch_all(&mut bot.conn)
        .await
        .expect("closed");
        assert_eq!(closed.len(), 9);
        assert!(closed.iter().all(|p| *p < 0.0), "{closed:?}");
        let open_realized: f64 = sqlx::query_scalar(
            "SELECT coalesce(sum(realized_profit), 0.0) FROM trades WHERE is_open = 1",
        )
        .fetch_one(&mut bot.conn)
        .await
        .expect("open");

        let data = read_back(&path, wall).await;
        let s = data
            .strategies
            .iter()
            .find(|s| s.name == STRATEGY)
            .expect("the bot's strategy");
        let sum = |v: &[f64]| {
            v.iter()
                .map(|p| Decimal::from_f64(*p).expect("decimal"))
                .sum::<Decimal>()
        };
        let equity = Decimal::from(1000) + sum(&closed);
        assert_eq!(s.latest_equity, Some(equity));
        assert_eq!(
            s.latest_realized,
            Some(sum(&closed) + sum(&[open_realized]))
        );
        // Only losses: the peak is the starting capital, the drawdown equity / C − 1.
        assert_eq!(s.peak, Some(Decimal::from(1000)));
        let drawdown = (equity / Decimal::from(1000) - Decimal::ONE)
            .to_f64()
            .expect("f64");
        assert!((drawdown - (bot.equity() / 1000.0 - 1.0)).abs() < 1e-9);
        // Nine losses of 2 % (compounding, with fees): below the rule's -15 %.
        assert!(
            drawdown < -0.15 && drawdown > -0.18,
            "drawdown after 9 forced losses: {drawdown}"
        );
        assert!(s.max_drawdown.is_some());
    }

    #[tokio::test]
    async fn a_calm_bot_continues_its_file_across_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tradesv3.sqlite");
        let (first, _) = run_bot(&path, false, 3).await;
        let before = first.equity();
        drop(first);
        let (mut bot, wall) = run_bot(&path, false, 3).await;
        let closed: i64 = sqlx::query_scalar("SELECT count(*) FROM trades WHERE is_open = 0")
            .fetch_one(&mut bot.conn)
            .await
            .expect("count");
        assert!(closed >= 6, "both runs' trades are there: {closed}");
        assert!(bot.equity() != before);
        let data = read_back(&path, wall).await;
        let s = &data.strategies[0];
        let equity = s.latest_equity.and_then(|e| e.to_f64()).expect("equity");
        assert!(
            (equity - bot.equity()).abs() < 1e-6,
            "{equity} vs {}",
            bot.equity()
        );
    }
}
