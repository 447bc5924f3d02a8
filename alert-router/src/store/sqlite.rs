//! Embedded SQLite (default): WAL journal and `synchronous=FULL` on the writer connection, so a
//! committed webhook survives a power cut, not just a process crash. One writer connection
//! serialises the transactions that read before they write, so no row locks are needed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;
use super::sql::{Dialect, SqlStore};

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const SHARED: bool = false;
    fn lock_rows(_of: &str) -> String {
        String::new()
    }

    const SKIP_LOCKED: &'static str = "";

    fn ids_from_json(n: usize) -> String {
        format!("SELECT value FROM json_each(${n})")
    }

    fn in_json_texts(col: &str, n: usize) -> String {
        format!("{col} IN (SELECT value FROM json_each(${n}))")
    }

    fn in_json_ids(col: &str, n: usize) -> String {
        format!("{col} IN (SELECT value FROM json_each(${n}))")
    }

    fn rows_affected(r: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        r.rows_affected()
    }

    const SIZE_BYTES: &'static str =
        "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s";
    const FREE_PAGES: Option<&'static str> =
        Some("SELECT freelist_count FROM pragma_freelist_count()");
    fn reclaim(pages: i64) -> Option<String> {
        Some(format!("PRAGMA incremental_vacuum({pages})"))
    }
    const CHECKPOINT: Option<&'static str> = Some(PASSIVE_CHECKPOINT);
}

pub type SqliteStore = SqlStore<Sqlite>;

/// Whether a pooled connection may serve again. A COMMIT that fails with `SQLITE_FULL` (the
/// disk is full) makes SQLite roll the transaction back by itself; the driver's rollback then
/// fails and it keeps counting the connection as inside a transaction, so every later
/// `BEGIN` on it would fail ("non-zero transaction depth") long after the disk has room again.
/// Such a connection is closed and a fresh one opened instead.
fn usable(conn: &sqlx::SqliteConnection) -> bool {
    use sqlx::Connection;
    if conn.is_in_transaction() {
        tracing::warn!("closing a store connection left inside a failed transaction");
        return false;
    }
    true
}

/// Never waits for a writer: copies what it can and lets the log start over.
const PASSIVE_CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// Bytes the write-ahead log is truncated back to when it starts over (16 MiB: several times
/// what a second of intake or one retention batch writes).
pub const JOURNAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// Bytes SQLite has allocated in this process, all connections together (`sqlite3_memory_used`):
/// its page caches are the part of the router's memory that grows with use, so the figure
/// beside RSS tells a cache filling to its bound from a leak.
pub fn heap_bytes() -> i64 {
    // SAFETY: a read of SQLite's global memory counter; no arguments, no handle, thread-safe
    // (the library is built with SQLITE_THREADSAFE=1).
    unsafe { libsqlite3_sys::sqlite3_memory_used() }
}

/// Open (creating the file and its directory) and run the SQLite migrations.
/// `fsync_each_commit`: the writer commits with `synchronous=FULL`, else `NORMAL`.
pub async fn open(url: &str, fsync_each_commit: bool) -> Result<SqliteStore, StoreError> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // Before journal_mode (sqlx orders it so) and before the first table: a new file
        // is created with it. An older file is converted once below.
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // Checkpoints run from a background task (below), not inside a webhook's commit.
        .pragma("wal_autocheckpoint", "0")
        // The log is reused from its start after a checkpoint but never shrinks by itself: one
        // burst (the one-time VACUUM of the conversion below writes the whole file into it,
        // a first retention run on a year of alerts) would keep its size on disk for ever.
        // Past this size it is truncated back when it starts over.
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
        .foreign_keys(true);
    let file = opts.get_filename().to_path_buf();
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
        && !url.contains(":memory:")
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    // Delivery bookkeeping, API, checkpoints: `synchronous=NORMAL`. Losing one of these commits
    // in a power cut re-sends a notification (its lease expires); it never loses an alert.
    // Connections to a local file are kept, not reaped after sqlx's 10 idle / 30 minutes:
    // reopening one re-reads the schema, refills its page cache and starts a new connection
    // thread, churn that only moved the router's memory around (README, "Soak"). A
    // connection left broken is dropped by `usable` instead.
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .idle_timeout(None)
        .max_lifetime(None)
        .before_acquire(|conn, _| Box::pin(async move { Ok(usable(conn)) }))
        .connect_with(opts.clone())
        .await?;
    incremental_auto_vacuum(&pool).await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    // The intake's single writer: `synchronous=FULL` unless configured otherwise, so a 2xx
    // means on disk. Its fsync also covers every earlier commit in the WAL.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .before_acquire(|conn, _| Box::pin(async move { Ok(usable(conn)) }))
        .connect_with(opts.synchronous(if fsync_each_commit {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        }))
        .await?;
    let bg = pool.clone();
    tokio::spawn(async move {
        // PASSIVE never blocks writers; it copies what it can and lets the WAL be reused.
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if bg.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query(PASSIVE_CHECKPOINT).execute(&bg).await {
                tracing::debug!(error = %e, "WAL checkpoint");
            }
        }
    });
    Ok(SqlStore { pool, writer })
}

/// Convert a file made before retention (`auto_vacuum = NONE`: deleted rows' pages stay in the
/// file for ever) to `INCREMENTAL`, so that retention's `incremental_vacuum` can shrink it.
/// SQLite applies a new auto_vacuum mode to a file with tables only through `VACUUM`, which
/// rewrites the whole file under an exclusive lock: it runs once, at start, before the router
/// listens, and takes about as long as copying the file (README, "Retention and sizing"); it
/// needs free disk space for a second copy. Later starts find `INCREMENTAL` and skip it.
async fn incremental_auto_vacuum(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut *conn)
        .await?;
    // 0 NONE, 1 FULL, 2 INCREMENTAL. A file without tables takes the mode at creation.
    if mode == 2 {
        return Ok(());
    }
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'")
        .fetch_one(&mut *conn)
        .await?;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT p.page_count * s.page_size FROM pragma_page_count() p, pragma_page_size() s",
    )
    .fetch_one(&mut *conn)
    .await?;
    tracing::warn!(
        from = mode,
        tables,
        bytes,
        "converting the SQLite store to auto_vacuum=INCREMENTAL (a one-time VACUUM: the file is \
         rewritten and locked until it is done)"
    );
    let started = std::time::Instant::now();
    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
        .execute(&mut *conn)
        .await?;
    sqlx::query("VACUUM").execute(&mut *conn).await?;
    let now: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut *conn)
        .await?;
    tracing::warn!(
        auto_vacuum = now,
        seconds = started.elapsed().as_secs_f64(),
        "SQLite store converted"
    );
    Ok(())
}
