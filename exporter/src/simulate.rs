//! `quantwatch-exporter simulate`: realistic trading activity written into a database with the
//! reference schema, for the demo, the end-to-end tests and the benchmarks.
//!
//! Several strategies (named `alpha`, `beta`, `gamma`, … in that order, so tests can name
//! them) trade a shared set of symbols whose prices follow a random walk. Each order is
//! inserted `new` and resolves after an exchange-like latency: filled in one to three fills,
//! partially filled then cancelled, cancelled or rejected. Positions carry average prices and
//! are marked to market; each strategy writes an equity snapshot every `snapshot_interval`
//! and a heartbeat every second. `--force-drawdown NAME` makes a strategy's equity end each
//! snapshot 1 % below the one before, whatever its positions did in between (so its drawdown
//! crosses -15 % at the 17th snapshot, not whenever marked-to-market noise allows: the demo
//! and the end-to-end tests wait for that page); `--stop-heartbeat NAME` makes it look like a hung process (status
//! stays `active`, nothing more is written for it). Everything is deterministic given
//! `--seed`, apart from wall-clock timing.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub mod freqtrade;

/// Strategy names, in creation order.
pub const STRATEGY_NAMES: [&str; 24] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
];

const SYMBOLS: [(&str, f64); 8] = [
    ("AAPL", 190.0),
    ("MSFT", 410.0),
    ("BTCUSDT", 65000.0),
    ("ETHUSDT", 3200.0),
    ("600519.SH", 1650.0),
    ("ESZ4", 5600.0),
    ("EURUSD", 1.08),
    ("TSLA", 240.0),
];

const TICK: Duration = Duration::from_millis(100);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
const START_EQUITY: i64 = 1_000_000;

/// The name of the `i`-th simulated strategy (0-based).
pub fn strategy_name(i: usize) -> String {
    STRATEGY_NAMES
        .get(i)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("strategy{}", i + 1))
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Database with the reference schema (run `quantwatch-exporter migrate` first).
    #[arg(long = "database-url", env = "TRADING_DATABASE_URL")]
    pub database_url: String,
    /// How many strategies trade (alpha, beta, gamma, …).
    #[arg(long, default_value_t = 4)]
    pub strategies: usize,
    /// Orders per second, over all strategies.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Time between two equity snapshots of a strategy.
    #[arg(long = "snapshot-interval", default_value = "2s", value_parser = humantime::parse_duration)]
    pub snapshot_interval: Duration,
    /// Make this strategy's equity fall 1 % per snapshot, whatever the market does (repeatable).
    #[arg(long = "force-drawdown")]
    pub force_drawdown: Vec<String>,
    /// Stop this strategy's heartbeat and activity while its status stays active (repeatable).
    #[arg(long = "stop-heartbeat")]
    pub stop_heartbeat: Vec<String>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also run a freqtrade bot writing freqtrade's `trades` and `orders` tables into this
    /// SQLite file (created if missing; continued if it exists).
    #[arg(long = "freqtrade-db")]
    pub freqtrade_db: Option<PathBuf>,
    /// The freqtrade bot's starting balance (the exporter's `starting_capital` for it).
    #[arg(long = "freqtrade-starting-capital", default_value_t = 1000.0)]
    pub freqtrade_starting_capital: f64,
    /// Make every freqtrade trade lose 8 % of its stake (a losing streak into a drawdown).
    #[arg(long = "freqtrade-force-drawdown", requires = "freqtrade_db")]
    pub freqtrade_force_drawdown: bool,
    /// Stop after this long (default: run until SIGTERM or Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--strategies must be between 1 and 1000")]
    Strategies,
    #[error("--rate must be a positive number of orders per second")]
    Rate,
    #[error("--snapshot-interval must be at least 100ms")]
    SnapshotInterval,
    #[error("--{flag} {name:?} is not one of the simulated strategies ({known})")]
    UnknownStrategy {
        flag: &'static str,
        name: String,
        known: String,
    },
    #[error("--freqtrade-starting-capital must be a positive number")]
    FreqtradeCapital,
    #[error("freqtrade database {path}: {source}")]
    Freqtrade { path: String, source: sqlx::Error },
    #[error("trading database: {0} (did you run `quantwatch-exporter migrate`?)")]
    Database(#[from] sqlx::Error),
}

/// What a run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulateReport {
    pub orders: u64,
    pub fills: u64,
    pub snapshots: u64,
}

/// splitmix64: small, fast, good enough for a simulation, and no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

fn money(v: f64, dp: u32) -> Decimal {
    Decimal::from_f64(v).unwrap_or_default().round_dp(dp)
}

#[derive(Default, Clone)]
struct Position {
    qty: Decimal,
    avg: Decimal,
}

struct Strat {
    id: i64,
    cash: Decimal,
    realized: Decimal,
    positions: HashMap<&'static str, Position>,
    drawdown: bool,
    dead: bool,
    /// Equity written at the last snapshot (the forced drawdown's reference).
    last_equity: Option<Decimal>,
}

impl Strat {
    fn equity(&self, prices: &HashMap<&'static str, Decimal>) -> Decimal {
        self.positions.iter().fold(self.cash, |acc, (sym, p)| {
            acc + p.qty * prices.get(sym).copied().unwrap_or_default()
        })
    }

    /// The forced drawdown: a loss (or, after a market loss deeper than 1 %, a gain) booked
    /// to cash and realized PnL so the equity at `marks` is 1 % below the last snapshot's.
    fn force_loss(&mut self, marks: &HashMap<&'static str, Decimal>) {
        let equity = self.equity(marks);
        let reference = self.last_equity.unwrap_or(equity);
        let loss = equity - (reference * Decimal::new(99, 2)).round_dp(2);
        self.cash -= loss;
        self.realized -= loss;
    }

    /// Applies a fill of signed quantity `q` at `price`: cash, average price, realized PnL.
    fn apply_fill(&mut self, sym: &'static str, q: Decimal, price: Decimal, fee: Decimal) {
        self.cash -= q * price + fee;
        self.realized -= fee;
        let p = self.positions.entry(sym).or_default();
        let same_direction = p.qty.is_zero() || (p.qty.is_sign_positive() == q.is_sign_positive());
        if same_direction {
            let total = p.qty.abs() + q.abs();
            p.avg = ((p.qty.abs() * p.avg + q.abs() * price) / total).round_dp(8);
            p.qty += q;
        } else {
            let closing = p.qty.abs().min(q.abs());
            let sign = if p.qty.is_sign_positive() {
                Decimal::ONE
            } else {
                Decimal::NEGATIVE_ONE
            };
            self.realized += closing * (price - p.avg) * sign;
            p.qty += q;
            if !p.qty.is_zero() && p.qty.is_sign_positive() == q.is_sign_positive() {
                p.avg = price; // crossed through zero: the remainder opened at this price
            }
        }
    }
}

enum Outcome {
    Fill(u32),
    PartialThenCancel,
    Cancel,
    Reject,
}

struct Pending {
    due: Instant,
    order_id: i64,
    strat: usize,
    sym: &'static str,
    qty: Decimal,
    sell: bool,
    outcome: Outcome,
    fills_done: u32,
}

/// Runs until `shutdown` resolves or `args.duration` elapses.
pub async fn run(
    args: &SimulateArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<SimulateReport, SimulateError> {
    if args.strategies == 0 || args.strategies > 1000 {
        return Err(SimulateError::Strategies);
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(SimulateError::Rate);
    }
    if args.snapshot_interval < Duration::from_millis(100) {
        return Err(SimulateError::SnapshotInterval);
    }
    let names: Vec<String> = (0..args.strategies).map(strategy_name).collect();
    for (flag, list) in [
        ("force-drawdown", &args.force_drawdown),
        ("stop-heartbeat", &args.stop_heartbeat),
    ] {
        for n in list {
            if !names.contains(n) {
                return Err(SimulateError::UnknownStrategy {
                    flag,
                    name: n.clone(),
                    known: names.join(", "),
                });
            }
        }
    }
    let fc = args.freqtrade_starting_capital;
    if !(fc.is_finite() && fc > 0.0) {
        return Err(SimulateError::FreqtradeCapital);
    }
    let ft_error = |source| SimulateError::Freqtrade {
        path: args
            .freqtrade_db
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        source,
    };
    let mut bot = match &args.freqtrade_db {
        Some(path) => Some(
            freqtrade::Bot::open(path, fc, args.freqtrade_force_drawdown)
                .await
                .map_err(ft_error)?,
        ),
        None => None,
    };
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await?;
    let mut rng = Rng(args.seed);
    let mut prices: HashMap<&'static str, f64> = SYMBOLS.iter().copied().collect();
    let mut strats = setup(&pool, &names, args).await?;
    let mut pending: Vec<Pending> = Vec::new();
    let mut report = SimulateReport::default();
    let started = Instant::now();
    let mut last_snapshot = Instant::now() - args.snapshot_interval;
    let mut last_heartbeat = Instant::now() - HEARTBEAT_EVERY;
    let mut order_budget = 0.0;
    let mut ticker = tokio::time::interval(TICK);
    tokio::pin!(shutdown);
    tracing::info!(strategies = ?names, rate = args.rate, "simulating trading activity");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        // Random walk: ~2 % daily-ish volatility compressed into minutes so the demo moves.
        for (_, p) in prices.iter_mut() {
            *p *= (0.0005 * rng.normal()).exp();
        }
        let marks: HashMap<&'static str, Decimal> = prices
            .iter()
            .map(|(s, p)| (*s, money(*p, if *p < 10.0 { 5 } else { 2 })))
            .collect();

        if let Some(bot) = bot.as_mut() {
            bot.step(Instant::now(), freqtrade::wall_now(), &prices, || {
                rng.normal()
            })
            .await
            .map_err(ft_error)?;
        }

        order_budget += args.rate * TICK.as_secs_f64();
        let live: Vec<usize> = (0..strats.len()).filter(|i| !strats[*i].dead).collect();
        while order_budget >= 1.0 && !live.is_empty() {
            order_budget -= 1.0;
            let si = live[rng.below(live.len())];
            let (sym, _) = SYMBOLS[rng.below(SYMBOLS.len())];
            let sell = rng.unit() < 0.5;
            let qty = Decimal::from(1 + rng.below(100) as i64);
            let price = marks[sym];
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO orders (strategy_id, symbol, side, quantity, price, status) \
                 VALUES ($1, $2, $3, $4, $5, 'new') RETURNING id",
            )
            .bind(strats[si].id)
            .bind(sym)
            .bind(if sell { "sell" } else { "buy" })
            .bind(qty)
            .bind(price)
            .fetch_one(&pool)
            .await?;
            report.orders += 1;
            let r = rng.unit();
            let outcome = if r < 0.70 {
                Outcome::Fill(1 + rng.below(3) as u32)
            } else if r < 0.80 {
                Outcome::PartialThenCancel
            } else if r < 0.93 {
                Outcome::Cancel
            } else {
                Outcome::Reject
            };
            pending.push(Pending {
                due: Instant::now() + Duration::from_secs_f64(rng.exp(0.15).min(20.0)),
                order_id: id,
                strat: si,
                sym,
                qty,
                sell,
                outcome,
                fills_done: 0,
            });
        }

        let now = Instant::now();
        let mut i = 0;
        while i < pending.len() {
            if pending[i].due > now || strats[pending[i].strat].dead {
                i += 1;
                continue;
            }
            let done = step(
                &pool,
                &mut pending[i],
                &mut strats,
                &marks,
                &mut rng,
                &mut report,
            )
            .await?;
            if done {
                pending.swap_remove(i);
            } else {
                pending[i].due = now + Duration::from_secs_f64(rng.exp(0.3).min(20.0));
                i += 1;
            }
        }

        if last_snapshot.elapsed() >= args.snapshot_interval {
            last_snapshot = Instant::now();
            mark_to_market(&pool, &marks).await?;
            let ts: DateTime<Utc> = Utc::now();
            for s in strats.iter_mut().filter(|s| !s.dead) {
                if s.drawdown {
                    s.force_loss(&marks);
                }
                let equity = s.equity(&marks).round_dp(2);
                s.last_equity = Some(equity);
                sqlx::query(
                    "INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(s.id)
                .bind(ts)
                .bind(equity)
                .bind(s.realized.round_dp(2))
                .execute(&pool)
                .await?;
                report.snapshots += 1;
            }
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
            last_heartbeat = Instant::now();
            let alive: Vec<i64> = strats.iter().filter(|s| !s.dead).map(|s| s.id).collect();
            sqlx::query("UPDATE strategies SET heartbeat_at = now() WHERE id = ANY($1)")
                .bind(&alive)
                .execute(&pool)
                .await?;
        }
    }
    tracing::info!(
        orders = report.orders,
        fills = report.fills,
        snapshots = report.snapshots,
        "simulation stopped"
    );
    pool.close().await;
    Ok(report)
}

/// Creates (or takes over) the strategies: active, with a risk budget, positions flattened,
/// cash continuing from the latest snapshot so equity series stay continuous across runs.
async fn setup(
    pool: &PgPool,
    names: &[String],
    args: &SimulateArgs,
) -> Result<Vec<Strat>, sqlx::Error> {
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let budget = Decimal::from(2_000_000 + 500_000 * (i as i64 % 4));
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO strategies (name, status, risk_budget, heartbeat_at) \
             VALUES ($1, 'active', $2, now()) \
             ON CONFLICT (name) DO UPDATE SET status = 'active', heartbeat_at = now() \
             RETURNING id",
        )
        .bind(name)
        .bind(budget)
        .fetch_one(pool)
        .await?;
        let last: Option<(Decimal, Decimal)> = sqlx::query_as(
            "SELECT equity, realized_pnl FROM equity_snapshots WHERE strategy_id = $1 \
             ORDER BY ts DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        sqlx::query("DELETE FROM positions WHERE strategy_id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        let (cash, realized) = last.unwrap_or((Decimal::from(START_EQUITY), Decimal::ZERO));
        out.push(Strat {
            id,
            cash,
            realized,
            positions: HashMap::new(),
            drawdown: args.force_drawdown.contains(name),
            dead: args.stop_heartbeat.contains(name),
            last_equity: last.map(|(equity, _)| equity),
        });
    }
    Ok(out)
}

/// Advances one pending order; returns whether it reached a terminal status.
async fn step(
    pool: &PgPool,
    p: &mut Pending,
    strats: &mut [Strat],
    marks: &HashMap<&'static str, Decimal>,
    rng: &mut Rng,
    report: &mut SimulateReport,
) -> Result<bool, sqlx::Error> {
    let (fill_qty, status) = match p.outcome {
        Outcome::Reject => (None, "rejected"),
        Outcome::Cancel => (None, "cancelled"),
        Outcome::PartialThenCancel if p.fills_done == 0 => (
            Some((p.qty / Decimal::from(2)).floor().max(Decimal::ONE)),
            "partially_filled",
        ),
        Outcome::PartialThenCancel => (None, "cancelled"),
        Outcome::Fill(n) => {
            let remaining_parts = Decimal::from(n - p.fills_done);
            let filled_so_far = (p.qty / Decimal::from(n)).floor() * Decimal::from(p.fills_done);
            let left = p.qty - filled_so_far;
            let q = if p.fills_done + 1 == n {
                left
            } else {
                (left / remaining_parts).floor().max(Decimal::ONE)
            };
            let status = if p.fills_done + 1 == n {
                "filled"
            } else {
                "partially_filled"
            };
            (Some(q), status)
        }
    };
    let mut tx = pool.begin().await?;
    if let Some(q) = fill_qty.filter(|q| *q > Decimal::ZERO) {
        let slip = 1.0 + 0.0002 * rng.normal();
        let mark = marks[p.sym].to_f64().unwrap_or(1.0);
        let price = money(mark * slip, if mark < 10.0 { 5 } else { 2 });
        let fee = (q * price * Decimal::new(2, 4)).round_dp(4); // 2 bp
        sqlx::query("INSERT INTO fills (order_id, quantity, price, fee) VALUES ($1, $2, $3, $4)")
            .bind(p.order_id)
            .bind(q)
            .bind(price)
            .bind(fee)
            .execute(&mut *tx)
            .await?;
        report.fills += 1;
        p.fills_done += 1;
        let s = &mut strats[p.strat];
        let signed = if p.sell { -q } else { q };
        s.apply_fill(p.sym, signed, price, fee);
        let pos = s.positions.get(p.sym).cloned().unwrap_or_default();
        sqlx::query(
            "INSERT INTO positions (strategy_id, symbol, quantity, avg_price, market_price) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (strategy_id, symbol) DO UPDATE \
             SET quantity = EXCLUDED.quantity, avg_price = EXCLUDED.avg_price, \
                 market_price = EXCLUDED.market_price, updated_at = now()",
        )
        .bind(s.id)
        .bind(p.sym)
        .bind(pos.qty)
        .bind(pos.avg)
        .bind(marks[p.sym])
        .execute(&mut *tx)
        .await?;
    } else if matches!(p.outcome, Outcome::PartialThenCancel) {
        p.fills_done += 1;
    }
    sqlx::query("UPDATE orders SET status = $2, updated_at = now() WHERE id = $1")
        .bind(p.order_id)
        .bind(status)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(matches!(status, "filled" | "cancelled" | "rejected"))
}

async fn mark_to_market(
    pool: &PgPool,
    marks: &HashMap<&'static str, Decimal>,
) -> Result<(), sqlx::Error> {
    let (syms, px): (Vec<&str>, Vec<Decimal>) = marks.iter().map(|(s, p)| (*s, *p)).unzip();
    sqlx::query(
        "UPDATE positions p SET market_price = m.price, updated_at = now() \
         FROM unnest($1::text[], $2::numeric[]) AS m(symbol, price) WHERE p.symbol = m.symbol",
    )
    .bind(&syms)
    .bind(&px)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_fixed_and_extend_past_the_list() {
        assert_eq!(strategy_name(0), "alpha");
        assert_eq!(strategy_name(2), "gamma");
        assert_eq!(strategy_name(24), "strategy25");
    }

    #[test]
    fn fills_keep_average_price_and_realize_on_reduction() {
        let mut s = Strat {
            id: 1,
            cash: Decimal::from(1000),
            realized: Decimal::ZERO,
            positions: HashMap::new(),
            drawdown: false,
            dead: false,
            last_equity: None,
        };
        s.apply_fill("AAPL", Decimal::from(10), Decimal::from(10), Decimal::ZERO);
        s.apply_fill("AAPL", Decimal::from(10), Decimal::from(20), Decimal::ZERO);
        assert_eq!(s.positions["AAPL"].avg, Decimal::from(15));
        s.apply_fill("AAPL", Decimal::from(-5), Decimal::from(25), Decimal::ONE);
        // 5 closed at 25 against 15: +50, minus the fee.
        assert_eq!(s.realized, Decimal::from(49));
        assert_eq!(s.positions["AAPL"].qty, Decimal::from(15));
        // Flip through zero to short 5 at 30: 15 closed at +15 each.
        s.apply_fill("AAPL", Decimal::from(-20), Decimal::from(30), Decimal::ZERO);
        assert_eq!(s.realized, Decimal::from(49 + 225));
        assert_eq!(s.positions["AAPL"].qty, Decimal::from(-5));
        assert_eq!(s.positions["AAPL"].avg, Decimal::from(30));
        // Cash: 1000 - 100 - 200 + 125 - 1 + 600 = 1424; equity at 30: 1424 - 150 = 1274
        // = 1000 + realized 274.
        let prices = HashMap::from([("AAPL", Decimal::from(30))]);
        assert_eq!(s.equity(&prices), Decimal::from(1274));
    }

    #[test]
    fn a_forced_drawdown_ends_each_snapshot_one_percent_lower_whatever_the_market() {
        let mut s = Strat {
            id: 1,
            cash: Decimal::from(1_000_000),
            realized: Decimal::ZERO,
            positions: HashMap::new(),
            drawdown: true,
            dead: false,
            last_equity: Some(Decimal::from(1_000_000)),
        };
        // Long 5 000 at 100; the market then rises 10 %: equity 1 050 000, forced to 990 000.
        s.apply_fill(
            "AAPL",
            Decimal::from(5000),
            Decimal::from(100),
            Decimal::ZERO,
        );
        let up = HashMap::from([("AAPL", Decimal::from(110))]);
        s.force_loss(&up);
        assert_eq!(s.equity(&up), Decimal::from(990_000));
        assert_eq!(s.realized, Decimal::from(-60_000));
        s.last_equity = Some(s.equity(&up));
        // It falls 50 %: equity 715 000, lifted to 980 100 (990 000 less 1 %).
        let down = HashMap::from([("AAPL", Decimal::from(55))]);
        s.force_loss(&down);
        assert_eq!(s.equity(&down), Decimal::from(980_100));
        assert_eq!(s.realized, Decimal::from(-60_000 + 265_100));
        // No snapshot yet (a new strategy): 1 % of today's equity.
        s.last_equity = None;
        s.force_loss(&down);
        assert_eq!(s.equity(&down), Decimal::from(970_299));
    }
}
