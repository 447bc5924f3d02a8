//! `quantwatch-exporter migrate`: the trading reference schema, its indexes and the summary
//! triggers, applied only when an operator asks (never by the collector, which only reads).

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The migrations shipped in `exporter/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the trading database: {0}")]
    Connect(sqlx::Error),
    #[error("applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("updating the fill-latency buckets: {0}")]
    Buckets(sqlx::Error),
}

/// What a migrate run changed.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrateReport {
    /// Versions applied by this run (empty when the schema was up to date).
    pub applied: Vec<i64>,
    /// Whether the fill-latency buckets changed (the summaries were then rebuilt).
    pub buckets_changed: bool,
}

/// Applies pending migrations, then makes the database's fill-latency buckets equal to
/// `buckets` (finite bounds; +Inf is implied), rebuilding the summaries if they changed.
pub async fn run(url: &str, buckets: &[f64]) -> Result<MigrateReport, MigrateError> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(MigrateError::Connect)?;
    let before: Vec<i64> = if table_exists(&mut conn, "_sqlx_migrations").await {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await
            .map_err(MigrateError::Connect)?
    } else {
        Vec::new()
    };
    MIGRATOR.run(&mut conn).await?;
    let applied = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.contains(v))
        .collect();
    let current: Vec<f64> = sqlx::query_scalar(
        "SELECT le FROM trading_fill_latency_buckets WHERE le < 'Infinity' ORDER BY le",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(MigrateError::Buckets)?;
    let buckets_changed = current != buckets;
    if buckets_changed {
        let mut tx = conn.begin().await.map_err(MigrateError::Buckets)?;
        sqlx::query("DELETE FROM trading_fill_latency_buckets")
            .execute(&mut *tx)
            .await
            .map_err(MigrateError::Buckets)?;
        sqlx::query(
            "INSERT INTO trading_fill_latency_buckets (le) \
             SELECT unnest($1::float8[]) UNION SELECT 'Infinity'",
        )
        .bind(buckets)
        .execute(&mut *tx)
        .await
        .map_err(MigrateError::Buckets)?;
        sqlx::query("SELECT trading_rebuild_summaries()")
            .execute(&mut *tx)
            .await
            .map_err(MigrateError::Buckets)?;
        tx.commit().await.map_err(MigrateError::Buckets)?;
    }
    Ok(MigrateReport {
        applied,
        buckets_changed,
    })
}

async fn table_exists(conn: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap_or(false)
}
