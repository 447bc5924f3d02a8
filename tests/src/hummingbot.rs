//! A hummingbot bot writing its SQLite store as hummingbot does, for the exporter's
//! concurrency test and the hummingbot benchmark: its connection settings and one filled
//! order committed the way its markets recorder commits one.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::path::Path;
use std::time::Duration;

/// hummingbot's own connection settings (SQLAlchemy's defaults): rollback journal, no busy
/// timeout (a locked database is `SQLITE_BUSY` at once), foreign keys not enforced. `create`
/// makes the file when it is missing (a generated store).
pub async fn bot_connection(path: &Path, create: bool) -> sqlx::Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Delete)
        .busy_timeout(Duration::ZERO)
        .foreign_keys(false)
        .connect()
        .await
}

/// Whether a SQLite error code (sqlx's text form) is `SQLITE_BUSY` or one of its extended
/// codes (the primary code is the low byte).
pub fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// The order row, parameters as [`FilledBuy::bind_all`] binds them.
const ORDER: &str = "INSERT INTO \"Order\" (id, config_file_path, strategy, market, symbol, \
    base_asset, quote_asset, creation_timestamp, order_type, amount, leverage, price, \
    last_status, last_update_timestamp, exchange_order_id, position) \
    VALUES (?1, ?3, ?4, 'binance', ?5, ?6, ?7, ?2, 'LIMIT', ?9, 1, ?8, \
    'BuyOrderCompleted', ?2, ?1, 'NIL')";

/// The fill row (fee 0.1 quote), parameters as [`FilledBuy::bind_all`] binds them.
const TRADE_FILL: &str = "INSERT INTO TradeFill (config_file_path, strategy, market, symbol, \
    base_asset, quote_asset, timestamp, order_id, trade_type, order_type, price, amount, \
    leverage, trade_fee, trade_fee_in_quote, exchange_trade_id, position) \
    VALUES (?3, ?4, 'binance', ?5, ?6, ?7, ?2, ?1, 'BUY', 'LIMIT', ?8, ?9, 1, \
    '{}', 100000, ?1, 'NIL')";

/// One limit buy of `amount` at `price` (both in hummingbot's 1e-6 fixed point), filled at
/// once: the `Order`, its three `OrderStatus` rows and its `TradeFill`, in one transaction
/// as the recorder writes them.
pub struct FilledBuy<'a> {
    /// The order id, also the exchange's order and trade id.
    pub id: &'a str,
    /// Milliseconds since the epoch: creation, every status and the fill.
    pub timestamp_ms: i64,
    pub config_file_path: &'a str,
    pub strategy: &'a str,
    /// `BASE-QUOTE`, as hummingbot names a trading pair.
    pub symbol: &'a str,
    pub price: i64,
    pub amount: i64,
}

impl<'a> FilledBuy<'a> {
    /// Binds ?1..?9 as both row statements number them: id, timestamp, config file,
    /// strategy, symbol, base, quote, price, amount.
    fn bind_all(&self, q: SqliteQuery<'a>) -> SqliteQuery<'a> {
        let (base, quote) = self.symbol.split_once('-').unwrap_or((self.symbol, ""));
        q.bind(self.id)
            .bind(self.timestamp_ms)
            .bind(self.config_file_path)
            .bind(self.strategy)
            .bind(self.symbol)
            .bind(base)
            .bind(quote)
            .bind(self.price)
            .bind(self.amount)
    }

    /// Commits the order; `Ok(false)` when SQLite answered `SQLITE_BUSY` (nothing written:
    /// the transaction rolled back), any other failure is an error.
    pub async fn commit(&self, c: &mut SqliteConnection) -> sqlx::Result<bool> {
        let r: sqlx::Result<()> = async {
            let mut tx = c.begin().await?;
            self.bind_all(sqlx::query(ORDER)).execute(&mut *tx).await?;
            for status in ["BuyOrderCreated", "OrderFilled", "BuyOrderCompleted"] {
                sqlx::query(
                    "INSERT INTO OrderStatus (order_id, timestamp, status) VALUES (?1, ?2, ?3)",
                )
                .bind(self.id)
                .bind(self.timestamp_ms)
                .bind(status)
                .execute(&mut *tx)
                .await?;
            }
            self.bind_all(sqlx::query(TRADE_FILL))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        match r {
            Ok(()) => Ok(true),
            Err(sqlx::Error::Database(d)) if is_busy(d.code().as_deref()) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
