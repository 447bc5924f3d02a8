//! Reading a bot's SQLite file without ever disturbing the bot.
//!
//! The bot's writer (SQLAlchemy's default rollback journal, perhaps no busy timeout) must
//! never wait or see `SQLITE_BUSY` because of us. In rollback-journal mode any reader holding
//! the file's SHARED lock makes a committing writer wait, or fail at once when it has no busy
//! timeout, however short the read. So we take no lock at all:
//!
//! - the file is opened read-only (`SQLITE_OPEN_READONLY`, never created) through SQLite's
//!   `unix-none` VFS (the `nolock=1` behaviour): no POSIX lock is ever taken, nothing is
//!   created beside the file (no `-journal`, no `-shm`), nothing is ever written or
//!   checkpointed, `query_only` is on;
//! - without locks a read could see a writer's commit half-way, so every read transaction is
//!   validated instead: the file change counter (header offset 24, incremented by every
//!   commit in rollback mode, and written with page 1, the first page a commit writes) is
//!   read before and after it, and the `-journal` must be absent (or zeroed) before and after
//!   it. A writer only modifies the database file while its journal is live, and deletes or
//!   zeroes the journal only after the whole commit (page 1 included) is on disk; so a read
//!   that sees the same counter and no live journal on both sides saw one committed state.
//!   Otherwise the read is discarded, the connection (and its page cache) closed, and the
//!   caller tries again after a short pause. SQLite itself refuses to read past a live
//!   journal on a read-only connection (`SQLITE_READONLY_ROLLBACK`), which is handled the
//!   same way;
//! - a file in WAL mode (header bytes 18–19 = 2) is read through the normal VFS, read-only:
//!   WAL readers never block writers, the bot's `-shm` already exists, and a read-only
//!   connection never checkpoints. Its transactions are snapshots: nothing to validate.
//!
//! Not covered: a writer with `journal_mode=MEMORY` or `OFF` (no journal on disk to see) or
//! `locking_mode=EXCLUSIVE` (the counter then moves only once); freqtrade and hummingbot use
//! neither.
//!
//! Transactions stay short: each source reads only what changed since its last read (see its
//! module), one transaction per scrape.

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait before trying again after a writer's commit overlapped a read.
pub const RETRY_PAUSE: Duration = Duration::from_millis(3);

/// Why a read got nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The file cannot be opened or is not a SQLite database (missing, permission denied…).
    #[error("{path}: {reason}")]
    Open { path: String, reason: String },
    /// A writer's commit overlapped the read: try again.
    #[error("a commit by the bot overlapped the read")]
    Busy,
    #[error("{0}")]
    Query(sqlx::Error),
}

impl SqliteError {
    pub fn retryable(&self) -> bool {
        matches!(self, SqliteError::Busy)
    }
}

/// How a failed SQLite read shows in `trading_source_up 0` (the same for every source).
impl From<SqliteError> for super::SourceError {
    fn from(e: SqliteError) -> Self {
        match e {
            SqliteError::Open { .. } => super::SourceError::Unreachable(e.to_string()),
            SqliteError::Busy => super::SourceError::Busy(e.to_string()),
            SqliteError::Query(q) => super::SourceError::Query(q.to_string()),
        }
    }
}

/// The facts of the database header a read depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    change_counter: u32,
    wal: bool,
}

fn read_header(path: &Path) -> Result<Header, SqliteError> {
    let open_err = |reason: String| SqliteError::Open {
        path: path.display().to_string(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| open_err(e.to_string()))?;
    let mut h = [0u8; 100];
    f.read_exact(&mut h)
        .map_err(|_| open_err("shorter than a SQLite header (empty or not a database)".into()))?;
    if &h[..16] != b"SQLite format 3\0" {
        return Err(open_err("not a SQLite 3 database".into()));
    }
    Ok(Header {
        change_counter: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
        wal: h[18] == 2 || h[19] == 2,
    })
}

/// Whether a writer's rollback journal is live: the file exists with a non-zero header
/// (DELETE mode removes it at commit, TRUNCATE empties it, PERSIST zeroes its header).
fn journal_live(path: &Path) -> bool {
    let mut j = path.as_os_str().to_owned();
    j.push("-journal");
    let Ok(mut f) = std::fs::File::open(PathBuf::from(j)) else {
        return false;
    };
    let mut first = [0u8; 8];
    match f.read(&mut first) {
        Ok(0) => false,
        Ok(n) => first[..n].iter().any(|b| *b != 0),
        // Unreadable: assume a writer is at work rather than risk a torn read.
        Err(_) => true,
    }
}

struct Open {
    conn: SqliteConnection,
    wal: bool,
}

/// One bot database file, read one transaction at a time.
pub struct SqliteStore {
    path: PathBuf,
    conn: tokio::sync::Mutex<Option<Open>>,
}

/// A read transaction in progress; end it with [`ReadTx::finish`].
pub struct ReadTx<'a> {
    store: &'a SqliteStore,
    guard: tokio::sync::MutexGuard<'a, Option<Open>>,
    before: Header,
}

impl SqliteStore {
    pub fn new(path: PathBuf) -> SqliteStore {
        SqliteStore {
            path,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts one read transaction (one attempt: [`SqliteError::Busy`] when a writer is
    /// committing right now).
    pub async fn begin(&self) -> Result<ReadTx<'_>, SqliteError> {
        let mut guard = self.conn.lock().await;
        let before = read_header(&self.path)?;
        if !before.wal && journal_live(&self.path) {
            return Err(SqliteError::Busy);
        }
        if guard.as_ref().is_some_and(|o| o.wal != before.wal)
            && let Some(o) = guard.take()
        {
            let _ = o.conn.close().await;
        }
        if guard.is_none() {
            *guard = Some(Open {
                conn: self.connect(before.wal).await?,
                wal: before.wal,
            });
        }
        let Some(open) = guard.as_mut() else {
            return Err(SqliteError::Busy);
        };
        if let Err(e) = open.conn.execute("BEGIN").await {
            *guard = None;
            return Err(classify(e));
        }
        Ok(ReadTx {
            store: self,
            guard,
            before,
        })
    }

    async fn connect(&self, wal: bool) -> Result<SqliteConnection, SqliteError> {
        let mut opts = SqliteConnectOptions::new()
            .filename(&self.path)
            .read_only(true)
            .create_if_missing(false)
            .foreign_keys(false)
            .pragma("query_only", "1")
            // Our own retry loop paces the attempts; SQLite must not wait on its own.
            .busy_timeout(Duration::ZERO)
            .statement_cache_capacity(32)
            .disable_statement_logging();
        if !wal {
            opts = opts.vfs("unix-none");
        }
        opts.connect().await.map_err(|e| match e {
            sqlx::Error::Database(d) => SqliteError::Open {
                path: self.path.display().to_string(),
                reason: d.message().to_string(),
            },
            e => SqliteError::Open {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            },
        })
    }

    /// Runs `attempt` until a read is consistent or `deadline` passes.
    pub async fn retry_until<T, F, Fut>(
        &self,
        deadline: Instant,
        mut attempt: F,
    ) -> Result<T, SqliteError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SqliteError>>,
    {
        loop {
            match attempt().await {
                Err(e) if e.retryable() && Instant::now() + RETRY_PAUSE < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                r => return r,
            }
        }
    }
}

impl ReadTx<'_> {
    pub fn conn(&mut self) -> &mut SqliteConnection {
        match self.guard.as_mut() {
            Some(o) => &mut o.conn,
            // `begin` only hands out a transaction on an open connection.
            None => unreachable!("a ReadTx always holds an open connection"),
        }
    }

    /// Ends the transaction and says whether what was read is one committed state: `Ok` with
    /// `result` when it is, [`SqliteError::Busy`] when a writer's commit overlapped it (the
    /// connection and its page cache are then dropped).
    pub async fn finish<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, SqliteError> {
        let ended = match self.guard.as_mut() {
            Some(o) => o.conn.execute("ROLLBACK").await.is_ok(),
            None => false,
        };
        let consistent = self.before.wal
            || (read_header(&self.store.path).ok() == Some(self.before)
                && !journal_live(&self.store.path));
        if !consistent {
            self.drop_connection().await;
            return Err(SqliteError::Busy);
        }
        match result {
            Ok(v) => {
                if !ended {
                    self.drop_connection().await;
                }
                Ok(v)
            }
            Err(e) => {
                self.drop_connection().await;
                Err(classify(e))
            }
        }
    }

    async fn drop_connection(&mut self) {
        if let Some(o) = self.guard.take() {
            let _ = o.conn.close().await;
        }
    }
}

/// SQLite's "a writer is in the middle of something" answers become [`SqliteError::Busy`].
fn classify(e: sqlx::Error) -> SqliteError {
    if let sqlx::Error::Database(d) = &e
        && let Some(code) = d.code()
        && let Ok(code) = code.parse::<i32>()
    {
        // SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_READONLY_ROLLBACK (776, a live journal),
        // SQLITE_CORRUPT (11) and SQLITE_IOERR_SHORT_READ (522): a page read mid-commit.
        if matches!(code & 0xff, 5 | 6 | 11) || code == 776 || code == 522 {
            return SqliteError::Busy;
        }
    }
    SqliteError::Query(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_of_a_non_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sqlite");
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(read_header(&p), Err(SqliteError::Open { .. })));
        assert!(matches!(
            read_header(&dir.path().join("missing")),
            Err(SqliteError::Open { .. })
        ));
        assert!(!journal_live(&p));
        let mut j = p.as_os_str().to_owned();
        j.push("-journal");
        std::fs::write(PathBuf::from(&j), [0u8; 16]).unwrap();
        assert!(!journal_live(&p), "a zeroed journal is not live");
        std::fs::write(PathBuf::from(&j), [0xd9, 0xd5, 0x05, 0xf9]).unwrap();
        assert!(journal_live(&p));
    }
}
