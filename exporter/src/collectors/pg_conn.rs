//! A tiny PostgreSQL connection pool made for scraping.
//!
//! sqlx's `PgPool` retries a refused connect until its acquire timeout, so with the server
//! down every scrape would wait out the whole timeout. Scraping wants the opposite: one
//! connect attempt, fail fast, report `pg_up 0`, try again next scrape. This pool keeps at
//! most `max` connections (a hung server can never hold more of ours), hands out idle ones
//! first, and takes a connection back only when the caller says its session is clean —
//! a lease dropped mid-query (the scrape deadline passed) closes its connection.

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct ConnPool {
    opts: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: std::sync::Arc<Semaphore>,
    connect_timeout: Duration,
}

/// A connection on loan; returned to the pool only through [`Lease::release`].
pub struct Lease<'a> {
    pool: &'a ConnPool,
    conn: Option<PgConnection>,
    _permit: OwnedSemaphorePermit,
    /// Whether the connection came from the idle list (and so may be stale).
    pub reused: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("connecting failed: {0}")]
    Connect(sqlx::Error),
    #[error("all {0} connections are busy")]
    Busy(usize),
}

impl ConnPool {
    pub fn new(opts: PgConnectOptions, max: usize, connect_timeout: Duration) -> ConnPool {
        ConnPool {
            opts,
            idle: Mutex::new(Vec::new()),
            permits: std::sync::Arc::new(Semaphore::new(max)),
            connect_timeout,
        }
    }

    /// An idle connection, or a new one from a single connect attempt.
    pub async fn get(&self, wait: Duration) -> Result<Lease<'_>, PoolError> {
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PoolError::Busy(self.permits.available_permits()))?
            .expect("the semaphore is never closed");
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(conn) = idle {
            return Ok(Lease {
                pool: self,
                conn: Some(conn),
                _permit: permit,
                reused: true,
            });
        }
        let timeout = self.connect_timeout.min(wait);
        let conn = tokio::time::timeout(timeout, PgConnection::connect_with(&self.opts))
            .await
            .map_err(|_| PoolError::ConnectTimeout(timeout))?
            .map_err(PoolError::Connect)?;
        Ok(Lease {
            pool: self,
            conn: Some(conn),
            _permit: permit,
            reused: false,
        })
    }

    /// Drops every idle connection (after the server was seen restarting).
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Lease<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until release or drop")
    }

    /// Gives the connection back for the next scrape: call only when its session is clean.
    pub fn release(mut self) {
        if let Some(c) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(c);
        }
    }
}
