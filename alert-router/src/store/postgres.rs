//! PostgreSQL, for several router replicas sharing one outbox: rows are claimed with
//! `FOR UPDATE SKIP LOCKED` plus a lease, so two replicas never send the same row at once, and
//! transactions that read before they write lock the rows they read.

use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::PgPoolOptions;

use super::StoreError;
use super::sql::{Dialect, SqlStore};

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const SHARED: bool = true;
    fn lock_rows(of: &str) -> String {
        if of.is_empty() {
            " FOR UPDATE".into()
        } else {
            format!(" FOR UPDATE OF {of}")
        }
    }

    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn ids_from_json(n: usize) -> String {
        format!("SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST(${n} AS JSONB))")
    }

    fn in_json_texts(col: &str, n: usize) -> String {
        format!("{col} = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(${n} AS JSONB))))")
    }

    fn in_json_ids(col: &str, n: usize) -> String {
        format!(
            "{col} = ANY(ARRAY(SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST(${n} AS JSONB))))"
        )
    }

    fn rows_affected(r: &sqlx::postgres::PgQueryResult) -> u64 {
        r.rows_affected()
    }

    /// The router's tables in its schema, with their indexes and TOAST: what retention
    /// bounds (`pg_database_size` would add the catalog and other tenants of the database).
    const SIZE_BYTES: &'static str =
        "SELECT CAST(COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS BIGINT)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r'";
    /// Autovacuum makes deleted rows' space reusable; the files do not shrink.
    const FREE_PAGES: Option<&'static str> = None;
    fn reclaim(_pages: i64) -> Option<String> {
        None
    }
    const CHECKPOINT: Option<&'static str> = None;
}

pub type PgStore = SqlStore<Postgres>;

/// Connect and run the PostgreSQL migrations.
pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(SqlStore {
        writer: pool.clone(),
        pool,
    })
}
