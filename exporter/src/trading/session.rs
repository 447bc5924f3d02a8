//! Read-only transactions on the scrape pool ([`crate::collectors::pg_conn`]): one connect
//! attempt (a down database fails the scrape fast instead of waiting out a pool timeout), and
//! a pooled connection that died with a restarted server is replaced once.

use crate::collectors::pg_conn::{ConnPool, Lease};
use sqlx::Executor;
use std::time::Duration;

/// Takes a connection and runs `begin` (a `BEGIN …` statement) on it.
pub async fn begin<'a>(
    pool: &'a ConnPool,
    wait: Duration,
    begin: &str,
) -> Result<Lease<'a>, String> {
    let mut lease = pool.get(wait).await.map_err(|e| e.to_string())?;
    match lease.conn().execute(begin).await {
        Ok(_) => Ok(lease),
        Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) if lease.reused => {
            tracing::debug!(error = %e, "trading: stale pooled connection; reconnecting");
            drop(lease);
            pool.clear();
            let mut lease = pool.get(wait).await.map_err(|e| e.to_string())?;
            lease
                .conn()
                .execute(begin)
                .await
                .map_err(|e| e.to_string())?;
            Ok(lease)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Ends the (read-only) transaction and gives the connection back for the next scrape.
/// A connection whose rollback fails is closed instead.
pub async fn finish(mut lease: Lease<'_>) {
    if lease.conn().execute("ROLLBACK").await.is_ok() {
        lease.release();
    }
}
