//! Embedded SQLite (default): WAL journal and `synchronous=FULL` on the writer connection, so a
//! committed webhook survives a power cut, not just a process crash. One writer connection
//! serialises the transactions that read before they write, so no row locks are needed.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;
use super::sql::{Dialect, SqlStore};

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
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
}

pub type SqliteStore = SqlStore<Sqlite>;

/// Open (creating the file and its directory) and run the SQLite migrations.
/// `fsync_each_commit`: the writer commits with `synchronous=FULL`, else `NORMAL`.
pub async fn open(url: &str, fsync_each_commit: bool) -> Result<SqliteStore, StoreError> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // Checkpoints run from a background task (below), not inside a webhook's commit.
        .pragma("wal_autocheckpoint", "0")
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
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts.clone())
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    // The intake's single writer: `synchronous=FULL` unless configured otherwise, so a 2xx
    // means on disk. Its fsync also covers every earlier commit in the WAL.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
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
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&bg)
                .await
            {
                tracing::debug!(error = %e, "WAL checkpoint");
            }
        }
    });
    Ok(SqlStore { pool, writer })
}
