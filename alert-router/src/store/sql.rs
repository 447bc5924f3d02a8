//! The one store implementation, for both SQL dialects: every statement is written once, with
//! `$N` placeholders (sqlx binds them by number on SQLite too) and the SQL common to SQLite
//! and PostgreSQL. What really differs — row locks, the list-of-ids parameter, the pools and
//! their durability, the migrations — is the [`Dialect`] (`sqlite.rs`, `postgres.rs`).
//!
//! Consistency between concurrent writers comes from the dialect: on SQLite every write
//! transaction begins IMMEDIATE (`Dialect::BEGIN_WRITE`), taking the database's write lock
//! before its first read, and those that must not interleave (ingest, ack) also share the
//! single writer connection; on PostgreSQL the same statements take row locks
//! (`Dialect::lock_rows`), and claims skip rows another replica holds. Every write runs in
//! [`retry_busy!`]: a lock conflict (`database is locked`, a deadlock victim) is tried again,
//! never handed to the caller as a delivery failure.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::notices;
use super::retry_busy;
use super::{
    AckOutcome, AckRequest, AlertView, AuditEntry, ChainRow, CurrentAlert, Cursor, HistoryItem,
    HistoryKey, INSERT_CHUNK, NotificationView, OutboxKind, OutboxRow, Page, QueueStats,
    RoutedEvent, Store, StoreError, ack_event, fold_chain,
};

/// What differs between the SQL of the two backends.
pub trait Dialect: Database {
    /// Row locks on the rows a reading statement selects (` FOR UPDATE [OF tables]`).
    /// Empty on SQLite, where a write transaction holds the database's write lock from its
    /// start (`BEGIN_WRITE`).
    fn lock_rows(of: &str) -> String;
    /// Appended to the claim's row selection: on PostgreSQL rows another replica is claiming
    /// are skipped rather than waited for.
    const SKIP_LOCKED: &'static str;
    /// A sub-select yielding the ids of a JSON array parameter (`$n`) as rows of one BIGINT.
    fn ids_from_json(n: usize) -> String;
    /// `col IN` the strings of the JSON array parameter `$n`, written so that the planner
    /// looks each one up in `col`'s index: on PostgreSQL `= ANY(ARRAY(...))` (one array,
    /// probed per element), since an `IN (sub-select)` of a set function is planned as a hash
    /// join over a scan of the whole table. The one way to match a list of strings (the
    /// listings by fingerprint, retention's deletes by fingerprint).
    fn in_json_texts(col: &str, n: usize) -> String;
    /// The same for the integers of `$n`.
    fn in_json_ids(col: &str, n: usize) -> String;
    /// Rows a statement changed (sqlx has no trait for it).
    fn rows_affected(r: &Self::QueryResult) -> u64;
    /// The store's size in bytes, one row of one BIGINT (`retention::RetentionStore::size_bytes`).
    const SIZE_BYTES: &'static str;
    /// The number of free pages in the file, where the store can give them back (SQLite).
    const FREE_PAGES: Option<&'static str>;
    /// The statement giving at most `pages` free pages back to the file system.
    fn reclaim(pages: i64) -> Option<String>;
    /// Copy the write-ahead log back into the file (SQLite `wal_checkpoint(PASSIVE)`: never
    /// waits for a writer), so the next write can start the log over. Run by the background
    /// task every second and by retention after each of its bulk writes.
    const CHECKPOINT: Option<&'static str>;
    /// How every write transaction begins, on either pool. SQLite: `BEGIN IMMEDIATE`, so the
    /// write lock is taken (waiting out `busy_timeout`) before the first read; a deferred
    /// transaction that read and then tries to write after another connection committed fails
    /// at once with SQLITE_BUSY_SNAPSHOT ("database is locked"), which `busy_timeout` cannot
    /// help. The writer connection serialises only its own transactions: the delivery
    /// bookkeeping (claims, failover) writes through the read pool. A single statement outside
    /// a transaction needs nothing: SQLite waits for the lock before it reads.
    const BEGIN_WRITE: &'static str;
    /// Whether several router processes can share the store (PostgreSQL replicas): jobs that
    /// should run on one of them at a time take a lease (`retention::RetentionStore::take_lease`).
    /// SQLite: false, one process owns the file, every lease is granted without a write.
    const SHARED: bool;
}

/// The store over one dialect.
pub struct SqlStore<D: Database> {
    /// Delivery bookkeeping, the API, reads.
    pub(crate) pool: Pool<D>,
    /// Transactions that read before they write and must not interleave: ingest and ack. On
    /// SQLite the single (and fully synced) writer connection; on PostgreSQL the same pool
    /// (row locks serialise).
    pub(crate) writer: Pool<D>,
}

fn mentions_json(m: &[String]) -> Option<String> {
    (!m.is_empty()).then(|| serde_json::to_string(m).expect("a list of strings always serialises"))
}

/// `INSERT INTO {into} VALUES ($1, …, $cols), (…)` for `rows` rows, then `tail`. Multi-row
/// statements: a group commit of N webhooks costs a handful of round trips, not 2N.
fn insert_sql(into: &str, rows: usize, cols: usize, tail: &str) -> String {
    let mut sql = format!("INSERT INTO {into} VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * cols + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// The upsert of `alert_current` rows: an older event never replaces a newer one.
const CURRENT_UPSERT_TAIL: &str =
    " ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id,
    status = excluded.status, starts_at = excluded.starts_at, updated_at = excluded.updated_at
  WHERE excluded.starts_at > alert_current.starts_at
     OR (excluded.starts_at = alert_current.starts_at AND excluded.status = 'resolved')";

fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("a list of integers always serialises")
}

fn texts_json(texts: &[String]) -> String {
    serde_json::to_string(texts).expect("a list of strings always serialises")
}

/// A row of [`reads::STATE_COLUMNS`].
type StateRow = (i64, String, i64, Option<String>, Option<i64>, String);
/// An escalate row of a chain with its id and event id first (the batch of
/// [`SqlStore::with_chains`]).
type ChainRowOf = (
    i64,
    i64,
    String,
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

/// The statements of the listings (API, status page, history), one function each, used by the
/// store and listed by [`reads::listings`] for the plan test (`tests/listing.rs`), which
/// asks each dialect's planner that every one reads an index in order: no table scan, no sort
/// of more than a page. Keyset conditions are row values, `(key, tie) > ($1, $2)`: one seek
/// into a two-column index, also among thousands of rows with the same key (a storm's alerts
/// share their group commit's time).
pub mod reads {
    use super::Dialect;

    /// The columns of an escalated alert's view: `alert_state s` joined to its chain's event.
    pub const STATE_COLUMNS: &str =
        "s.event_id, s.policy, s.chain_started_at, s.acked_by, s.acked_at, e.payload";
    /// The columns of a notification: an outbox row with its event's payload when it has none.
    pub const NOTIFICATION_COLUMNS: &str = "id, channel, fingerprint,
    COALESCE(payload, (SELECT e.payload FROM alert_events e WHERE e.id = outbox.event_id)) AS payload,
    state, CAST(attempts AS BIGINT) AS attempts, last_error, created_at, due_at, sent_at";

    /// `$1, $2`: cursor key and tie; `$3`: limit.
    pub fn alerts_page() -> String {
        format!(
            "SELECT {STATE_COLUMNS} FROM alert_state s JOIN alert_events e ON e.id = s.event_id
             WHERE s.status = 'firing' AND (s.chain_started_at, s.fingerprint) > ($1, $2)
             ORDER BY s.chain_started_at, s.fingerprint LIMIT $3"
        )
    }

    /// `$1`: JSON list of fingerprints. By primary key, the status read (not filtered): a
    /// status condition would let the planner prefer the partial index of every firing chain.
    pub fn alert_views<D: Dialect>() -> String {
        format!(
            "SELECT {STATE_COLUMNS}, s.status FROM alert_state s JOIN alert_events e ON e.id = s.event_id
             WHERE {}",
            D::in_json_texts("s.fingerprint", 1)
        )
    }

    /// `$1`: JSON list of chain event ids. No ORDER BY: the rows are grouped and ordered by id
    /// after, so no planner is tempted to walk the outbox's primary key for the order.
    pub fn chains<D: Dialect>() -> String {
        format!(
            "SELECT id, event_id, channel, step, state, due_at, sent_at, mentions FROM outbox
             WHERE {} AND kind = 'escalate'",
            D::in_json_ids("event_id", 1)
        )
    }

    /// `$1, $2`: cursor; `$3`: limit.
    pub const FIRING_PAGE: &str = "SELECT c.updated_at, e.payload FROM alert_current c
         JOIN alert_events e ON e.id = c.event_id
         WHERE c.status = 'firing' AND (c.starts_at, c.fingerprint) > ($1, $2)
         ORDER BY c.starts_at, c.fingerprint LIMIT $3";

    /// `$1, $2`: cursor; `$3`: cap.
    pub const COUNT_FIRING: &str = "SELECT COUNT(*) FROM (SELECT 1 AS one FROM alert_current c
         WHERE c.status = 'firing' AND (c.starts_at, c.fingerprint) > ($1, $2) LIMIT $3) AS t";

    /// `$1`: JSON list of fingerprints.
    pub fn current_of<D: Dialect>() -> String {
        format!(
            "SELECT c.updated_at, e.payload FROM alert_current c JOIN alert_events e ON e.id = c.event_id
             WHERE {}",
            D::in_json_texts("c.fingerprint", 1)
        )
    }

    /// `$1`: limit. Firing: oldest first (the longest-burning on top); resolved: the latest
    /// first. The status is a literal, not a parameter: a partial index serves a statement
    /// only when its condition is in the text.
    pub fn current(resolved: bool) -> String {
        let (status, order) = if resolved {
            ("resolved", "c.updated_at DESC, c.fingerprint DESC")
        } else {
            ("firing", "c.starts_at, c.fingerprint")
        };
        format!(
            "SELECT c.updated_at, e.payload FROM alert_current c JOIN alert_events e ON e.id = c.event_id
             WHERE c.status = '{status}' ORDER BY {order} LIMIT $1"
        )
    }

    /// `$1`: state; `$2`: before id; `$3`: limit.
    pub fn notifications_in_state() -> String {
        format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM outbox
             WHERE state = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        )
    }

    /// `$1`: before id; `$2`: limit.
    pub fn notifications() -> String {
        format!("SELECT {NOTIFICATION_COLUMNS} FROM outbox WHERE id < $1 ORDER BY id DESC LIMIT $2")
    }

    /// `$1`: limit.
    pub const RECENT_AUDIT: &str =
        "SELECT fingerprint, starts_at, at, action, actor, via, address FROM alert_audit
         ORDER BY at DESC, id DESC LIMIT $1";

    /// An alert's history, one statement per table (`store::history`): `$1` fingerprint,
    /// `$2, $3` the (time, id) bound of the cursor (`HistoryKey::bound`), `$4` limit. Each
    /// seeks into its table's (fingerprint, time, id) index (migration 0012) and walks back
    /// one page at most.
    pub const HISTORY_EVENTS: &str = "SELECT id, status, starts_at, received_at FROM alert_events
         WHERE fingerprint = $1 AND (received_at, id) < ($2, $3)
         ORDER BY received_at DESC, id DESC LIMIT $4";
    /// See [`HISTORY_EVENTS`].
    pub const HISTORY_AUDIT: &str =
        "SELECT id, starts_at, at, action, actor, via, address FROM alert_audit
         WHERE fingerprint = $1 AND (at, id) < ($2, $3) ORDER BY at DESC, id DESC LIMIT $4";
    /// See [`HISTORY_EVENTS`]. By the outbox's own fingerprint (always its event's).
    pub const HISTORY_SENDS: &str =
        "SELECT o.id, o.kind, o.step, o.channel, o.mentions, o.sent_at, e.starts_at
         FROM outbox o JOIN alert_events e ON e.id = o.event_id
         WHERE o.fingerprint = $1 AND o.state = 'sent' AND (o.sent_at, o.id) < ($2, $3)
         ORDER BY o.sent_at DESC, o.id DESC LIMIT $4";
    /// See [`HISTORY_EVENTS`].
    pub fn history_calls() -> String {
        format!(
            "SELECT {}, id FROM voice_calls
             WHERE fingerprint = $1 AND (placed_at, id) < ($2, $3)
             ORDER BY placed_at DESC, id DESC LIMIT $4",
            crate::store::history::CALL_COLUMNS
        )
    }
    /// `$1`: fingerprint. Whether any event of the alert is stored (a page past its oldest
    /// entry is empty, not 404).
    pub const HISTORY_EXISTS: &str = "SELECT id FROM alert_events WHERE fingerprint = $1 LIMIT 1";

    /// A parameter value for a plan check.
    #[derive(Debug, Clone)]
    pub enum Param {
        Int(i64),
        Text(&'static str),
    }

    /// One listing statement: its name, SQL, parameters to plan it with, and whether a sort
    /// is expected (only of rows already bounded by a page, never of a table).
    #[derive(Debug, Clone)]
    pub struct Listing {
        pub name: &'static str,
        pub sql: String,
        pub params: Vec<Param>,
        pub sorts_a_page: bool,
    }

    /// Every listing statement the API, the status page and the history run.
    pub fn listings<D: Dialect>() -> Vec<Listing> {
        use Param::{Int, Text};
        let l = |name, sql: String, params: Vec<Param>, sorts_a_page| Listing {
            name,
            sql,
            params,
            sorts_a_page,
        };
        vec![
            l(
                "alerts_page",
                alerts_page(),
                vec![Int(0), Text("fp"), Int(101)],
                false,
            ),
            l(
                "alert_views",
                alert_views::<D>(),
                vec![Text("[\"fp\"]")],
                false,
            ),
            l("chains", chains::<D>(), vec![Text("[1, 2]")], false),
            l(
                "firing_page",
                FIRING_PAGE.into(),
                vec![Int(0), Text("fp"), Int(101)],
                false,
            ),
            l(
                "count_firing",
                COUNT_FIRING.into(),
                vec![Int(0), Text("fp"), Int(10_000)],
                false,
            ),
            l(
                "current_of",
                current_of::<D>(),
                vec![Text("[\"fp\"]")],
                false,
            ),
            l("current_firing", current(false), vec![Int(100)], false),
            l("current_resolved", current(true), vec![Int(20)], false),
            l(
                "notifications_in_state",
                notifications_in_state(),
                vec![Text("failed"), Int(i64::MAX), Int(101)],
                false,
            ),
            l(
                "notifications",
                notifications(),
                vec![Int(i64::MAX), Int(101)],
                false,
            ),
            l("recent_audit", RECENT_AUDIT.into(), vec![Int(50)], false),
            l(
                "history_events",
                HISTORY_EVENTS.into(),
                vec![Text("fp"), Int(1_000_000), Int(i64::MAX), Int(101)],
                false,
            ),
            l(
                "history_audit",
                HISTORY_AUDIT.into(),
                vec![Text("fp"), Int(1_000_000), Int(i64::MAX), Int(101)],
                false,
            ),
            l(
                "history_sends",
                HISTORY_SENDS.into(),
                vec![Text("fp"), Int(1_000_000), Int(i64::MAX), Int(101)],
                false,
            ),
            l(
                "history_calls",
                history_calls(),
                vec![Text("fp"), Int(1_000_000), Int(i64::MAX), Int(101)],
                false,
            ),
            l(
                "history_exists",
                HISTORY_EXISTS.into(),
                vec![Text("fp")],
                false,
            ),
        ]
    }
}

/// A parameter of [`SqlStore::settle`]'s `SET` clause, bound as `$1`, `$2`, … in order.
enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// The type bounds of "sqlx can run our statements on `D`" (Rust does not carry a trait's
/// where-clauses to its users, so each generic item states them; this macro writes them once).
macro_rules! sql_impl {
    ($(#[$m:meta])* impl<$d:ident> [$($head:tt)*] { $($body:tt)* }) => {
        $(#[$m])*
        impl<$d> $($head)*
        where
            $d: Dialect,
            for<'c> &'c mut <$d as Database>::Connection: Executor<'c, Database = $d>,
            for<'q> <$d as Database>::Arguments<'q>: IntoArguments<'q, $d> + Default,
            i64: Type<$d> + for<'q> Encode<'q, $d> + for<'r> Decode<'r, $d>,
            String: Type<$d> + for<'q> Encode<'q, $d> + for<'r> Decode<'r, $d>,
            for<'q> &'q str: Type<$d> + Encode<'q, $d>,
            Option<i64>: for<'q> Encode<'q, $d>,
            Option<String>: for<'q> Encode<'q, $d>,
            Option<i64>: Type<$d> + for<'r> Decode<'r, $d>,
            Option<String>: Type<$d> + for<'r> Decode<'r, $d>,
            usize: ColumnIndex<<$d as Database>::Row>,
            for<'a> &'a str: ColumnIndex<<$d as Database>::Row>,
        { $($body)* }
    };
}
pub(crate) use sql_impl;

// The bodies below are the only copy of the store's logic.
sql_impl! {
impl<D> [SqlStore<D>] {
    /// `UPDATE outbox SET {set}` on the rows of `ids`, ending their claim (a worker is done
    /// with them, whatever the outcome): `binds` are the `$n` of `set`, the id list comes last.
    async fn settle<'e, E>(
        e: E,
        set: &str,
        binds: &[Bind<'_>],
        ids: &[i64],
    ) -> Result<(), StoreError>
    where
        E: Executor<'e, Database = D>,
    {
        let sep = if set.is_empty() { "" } else { ", " };
        let sql = format!(
            "UPDATE outbox SET claimed_by = NULL, lease_until = NULL{sep}{set} WHERE id IN ({})",
            D::ids_from_json(binds.len() + 1)
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match *b {
                Bind::Int(v) => q.bind(v),
                Bind::Text(t) => q.bind(t.to_string()),
            };
        }
        q.bind(ids_json(ids)).execute(e).await?;
        Ok(())
    }

    /// One `alert_audit` row for the alert `(fingerprint, starts_at)`, in the caller's
    /// transaction.
    async fn audit(
        tx: &mut <D as Database>::Connection,
        (fingerprint, starts_at): (&str, i64),
        at: i64,
        action: String,
        by: &str,
        via: &str,
        address: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(notices::AUDIT_INSERT)
            .bind(fingerprint.to_string())
            .bind(starts_at)
            .bind(at)
            .bind(action)
            .bind(by.to_string())
            .bind(via.to_string())
            .bind(address.map(String::from))
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Delete the alert's escalation steps that have not gone out. A row claimed by a live
    /// worker (lease not expired) is in flight: it completes and counts as notified.
    async fn cancel_pending(
        tx: &mut <D as Database>::Connection,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM outbox WHERE fingerprint = $1 AND kind = 'escalate' AND state = 'pending'
               AND (lease_until IS NULL OR lease_until < $2)",
        )
        .bind(fingerprint)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Channels a chain has notified or is notifying (in flight), in first-notified order.
    async fn notified_channels(
        tx: &mut <D as Database>::Connection,
        chain_event: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT channel FROM outbox WHERE event_id = $1 AND kind = 'escalate'
               AND (state = 'sent' OR claimed_by IS NOT NULL)
             GROUP BY channel ORDER BY MIN(id)",
        )
        .bind(chain_event)
        .fetch_all(&mut *tx)
        .await?)
    }

    /// Insert the events (first copy of an identity wins); per event its new id, or `None`
    /// for a duplicate.
    async fn insert_events(
        tx: &mut <D as Database>::Connection,
        events: &[RoutedEvent],
        now_ms: i64,
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let payloads: Vec<String> = events
            .iter()
            .map(|r| serde_json::to_string(&r.event))
            .collect::<Result<_, _>>()?;
        let mut ids: Vec<Option<i64>> = Vec::with_capacity(events.len());
        for (chunk_no, chunk) in events.chunks(INSERT_CHUNK).enumerate() {
            let base = chunk_no * INSERT_CHUNK;
            let sql = insert_sql(
                "alert_events (group_key, fingerprint, status, starts_at, ends_at, payload, received_at)",
                chunk.len(),
                7,
                // Any unique key: (fingerprint, status, startsAt) is the identity (0004); a
                // regrouped copy of a stored firing is a duplicate.
                " ON CONFLICT DO NOTHING RETURNING id, fingerprint, status, starts_at",
            );
            let mut q = sqlx::query(&sql);
            for (i, r) in chunk.iter().enumerate() {
                let e = &r.event;
                q = q
                    .bind(&e.group_key)
                    .bind(&e.fingerprint)
                    .bind(e.status.as_str())
                    .bind(e.starts_at)
                    .bind(e.ends_at)
                    .bind(&payloads[base + i])
                    .bind(now_ms);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            let mut inserted: HashMap<(String, String, i64), i64> =
                HashMap::with_capacity(rows.len());
            for row in rows {
                inserted.insert(
                    (
                        row.try_get("fingerprint")?,
                        row.try_get("status")?,
                        row.try_get("starts_at")?,
                    ),
                    row.try_get("id")?,
                );
            }
            // The first event with a key got the row; a repeat in the same batch is a duplicate.
            for r in chunk {
                let e = &r.event;
                ids.push(inserted.remove(&(e.fingerprint.clone(), e.status.as_str().to_string(), e.starts_at)));
            }
        }
        Ok(ids)
    }

    /// A new firing event with a plan (re)starts its alert's chain.
    async fn start_chain(
        tx: &mut <D as Database>::Connection,
        fp: &str,
        id: i64,
        plan: &super::escalation::Plan,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Self::cancel_pending(tx, fp, now_ms).await?;
        sqlx::query(
            "INSERT INTO alert_state (fingerprint, event_id, policy, status, chain_started_at)
             VALUES ($1, $2, $3, 'firing', $4)
             ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, policy = excluded.policy,
               status = 'firing', chain_started_at = excluded.chain_started_at,
               acked_by = NULL, acked_at = NULL, resolved_at = NULL",
        )
        .bind(fp)
        .bind(id)
        .bind(plan.policy.clone())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        for chunk in plan.steps.chunks(INSERT_CHUNK) {
            let sql = insert_sql(
                "outbox (event_id, fingerprint, channel, kind, step, mentions, due_at, created_at)",
                chunk.len(),
                8,
                "",
            );
            let mut q = sqlx::query(&sql);
            for st in chunk {
                q = q
                    .bind(id)
                    .bind(fp)
                    .bind(&st.channel)
                    .bind(OutboxKind::Escalate.as_str())
                    .bind(st.step)
                    .bind(mentions_json(&st.mentions))
                    .bind(now_ms + st.offset_ms)
                    .bind(now_ms);
            }
            q.execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// The views of escalated alerts (rows of [`STATE_COLUMNS`], order kept), every chain's
    /// steps read in one query: a page costs two statements, not one per alert.
    async fn with_chains(&self, rows: Vec<StateRow>) -> Result<Vec<AlertView>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let mut steps: Vec<ChainRowOf> = sqlx::query_as(&reads::chains::<D>())
            .bind(ids_json(&ids))
            .fetch_all(&self.pool)
            .await?;
        steps.sort_unstable_by_key(|r| r.0);
        let mut by_event: HashMap<i64, Vec<ChainRow>> = HashMap::with_capacity(rows.len());
        for (_, event, channel, step, state, due_at, sent_at, mentions) in steps {
            by_event
                .entry(event)
                .or_default()
                .push((channel, step, state, due_at, sent_at, mentions));
        }
        rows.into_iter()
            .map(|(event, policy, started, acked_by, acked_at, payload)| {
                let ev: crate::core::model::AlertEvent = serde_json::from_str(&payload)?;
                let mut view = AlertView::new(&ev, policy, started, acked_by, acked_at);
                fold_chain(&mut view, by_event.remove(&event).unwrap_or_default());
                Ok(view)
            })
            .collect()
    }

    /// `(updated_at, payload)` rows of `alert_current` as the status page shows them.
    fn current_alerts(rows: Vec<(i64, String)>) -> Result<Vec<CurrentAlert>, StoreError> {
        rows.into_iter()
            .map(|(updated_at, payload)| {
                let ev: crate::core::model::AlertEvent = serde_json::from_str(&payload)?;
                Ok(CurrentAlert::new(&ev, updated_at))
            })
            .collect()
    }

    /// A resolved event of an alert with a running chain stops it; returns the channels the
    /// chain notified (where the resolve goes), or `None` when no chain runs.
    async fn stop_chain(
        tx: &mut <D as Database>::Connection,
        fp: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let sql = format!(
            "SELECT s.event_id FROM alert_state s WHERE s.fingerprint = $1 AND s.status = 'firing'{}",
            D::lock_rows("")
        );
        let chain: Option<i64> = sqlx::query_scalar(&sql)
            .bind(fp)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(chain) = chain else { return Ok(None) };
        Self::cancel_pending(tx, fp, now_ms).await?;
        let channels = Self::notified_channels(tx, chain).await?;
        sqlx::query(
            "UPDATE alert_state SET status = 'resolved', resolved_at = $1 WHERE fingerprint = $2",
        )
        .bind(now_ms)
        .bind(fp)
        .execute(&mut *tx)
        .await?;
        Ok(Some(channels))
    }
}
}

sql_impl! {
#[async_trait]
impl<D> [Store for SqlStore<D>] {
    async fn ingest(&self, events: &[RoutedEvent], now_ms: i64) -> Result<Vec<bool>, StoreError> {
        retry_busy!("ingest", async {
        let mut tx = self.writer.begin_with(D::BEGIN_WRITE).await?;
        let ids = Self::insert_events(&mut *tx, events, now_ms).await?;
        let mut channels: Vec<Vec<String>> = events.iter().map(|r| r.channels.clone()).collect();
        for (i, r) in events.iter().enumerate() {
            let Some(id) = ids[i] else { continue };
            let fp = &r.event.fingerprint;
            if r.event.status == crate::core::model::Status::Firing {
                if let Some(plan) = &r.escalation {
                    Self::start_chain(&mut *tx, fp, id, plan, now_ms).await?;
                }
            } else if let Some(notified) = Self::stop_chain(&mut *tx, fp, now_ms).await? {
                channels[i] = notified;
            }
        }
        for chunk in super::current_updates(events, &ids).chunks(INSERT_CHUNK) {
            let sql = insert_sql(
                "alert_current (fingerprint, event_id, status, starts_at, updated_at)",
                chunk.len(),
                5,
                CURRENT_UPSERT_TAIL,
            );
            let mut q = sqlx::query(&sql);
            for (i, id) in chunk {
                let e = &events[*i].event;
                q = q
                    .bind(&e.fingerprint)
                    .bind(*id)
                    .bind(e.status.as_str())
                    .bind(e.starts_at)
                    .bind(now_ms);
            }
            q.execute(&mut *tx).await?;
        }
        let outbox: Vec<(i64, usize, &String)> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| id.map(|id| (id, i)))
            .flat_map(|(id, i)| channels[i].iter().map(move |c| (id, i, c)))
            .collect();
        for chunk in outbox.chunks(INSERT_CHUNK) {
            let sql = insert_sql(
                "outbox (event_id, fingerprint, channel, kind, due_at, created_at)",
                chunk.len(),
                6,
                "",
            );
            let mut q = sqlx::query(&sql);
            for (id, i, ch) in chunk {
                q = q
                    .bind(*id)
                    .bind(&events[*i].event.fingerprint)
                    .bind(*ch)
                    .bind(OutboxKind::Notify.as_str())
                    .bind(now_ms)
                    .bind(now_ms);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids.iter().map(Option::is_some).collect())
    })
    }

    async fn claim(
        &self,
        channel: &str,
        now_ms: i64,
        limit: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        retry_busy!("claim", async {
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, lease_until = $2
             WHERE id IN (
               SELECT o.id FROM outbox o
               WHERE o.channel = $3 AND o.state = 'pending' AND o.due_at <= $4
                 AND (o.lease_until IS NULL OR o.lease_until < $4)
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.fingerprint = o.fingerprint
                                 AND p.state = 'pending' AND p.id < o.id)
               ORDER BY o.id LIMIT $5{})
             RETURNING id, fingerprint, channel, kind, CAST(attempts AS BIGINT) AS attempts, created_at, due_at, step, mentions,
                       COALESCE(payload, (SELECT e.payload FROM alert_events e WHERE e.id = outbox.event_id)) AS payload",
            D::SKIP_LOCKED
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(channel)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let payload: String = r.try_get("payload")?;
            out.push(OutboxRow {
                id: r.try_get("id")?,
                fingerprint: r.try_get("fingerprint")?,
                channel: r.try_get("channel")?,
                kind: OutboxKind::parse(&r.try_get::<String, _>("kind")?),
                event: serde_json::from_str(&payload)?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
                due_at: r.try_get("due_at")?,
                step: r.try_get("step")?,
                mentions: r
                    .try_get::<Option<String>, _>("mentions")?
                    .map(|m| serde_json::from_str(&m))
                    .transpose()?
                    .unwrap_or_default(),
            });
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    })
    }

    async fn mark_sent(&self, ids: &[i64], now_ms: i64) -> Result<(), StoreError> {
        retry_busy!("mark_sent", async {
        Self::settle(
            &self.pool,
            "state = 'sent', sent_at = $1, attempts = attempts + 1",
            &[Bind::Int(now_ms)],
            ids,
        )
        .await
    })
    }

    async fn record_send(&self, channel: &str, now_ms: i64) -> Result<(), StoreError> {
        retry_busy!("record_send", async {
        sqlx::query("INSERT INTO channel_sends (channel, sent_at) VALUES ($1, $2)")
            .bind(channel)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    })
    }

    async fn reschedule(&self, ids: &[i64], due_ms: i64, error: &str) -> Result<(), StoreError> {
        retry_busy!("reschedule", async {
        Self::settle(
            &self.pool,
            "due_at = $1, last_error = $2, attempts = attempts + 1",
            &[Bind::Int(due_ms), Bind::Text(error)],
            ids,
        )
        .await
    })
    }

    async fn mark_failed(&self, ids: &[i64], error: &str, now_ms: i64) -> Result<(), StoreError> {
        retry_busy!("mark_failed", async {
        Self::settle(
            &self.pool,
            "state = 'failed', last_error = $1, attempts = attempts + 1, sent_at = NULL, due_at = $2",
            &[Bind::Text(error), Bind::Int(now_ms)],
            ids,
        )
        .await
    })
    }

    async fn fail_over(
        &self,
        ids: &[i64],
        from: &str,
        to: &[String],
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        retry_busy!("fail_over", async {
        // On the pool, not the writer (delivery bookkeeping is not fsynced per commit), yet
            // IMMEDIATE like every write transaction: a deferred one reads, and its first
            // write after another connection's commit fails with SQLITE_BUSY_SNAPSHOT.
            let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        let sql = format!(
            "SELECT id FROM outbox WHERE id IN ({}) AND state = 'pending' AND failover_from IS NULL
             ORDER BY id{}",
            D::ids_from_json(1),
            D::lock_rows("")
        );
        let moved: Vec<i64> = sqlx::query_scalar(&sql)
            .bind(ids_json(ids))
            .fetch_all(&mut *tx)
            .await?;
        if moved.is_empty() || to.is_empty() {
            return Ok(Vec::new());
        }
        let moved_json = ids_json(&moved);
        let sql = format!(
            "INSERT INTO outbox (event_id, fingerprint, channel, kind, payload, step, due_at, created_at, failover_from)
             SELECT event_id, fingerprint, $1, kind, payload, step, $2, created_at, channel FROM outbox
             WHERE id IN ({}) ORDER BY id",
            D::ids_from_json(3)
        );
        for ch in to {
            sqlx::query(&sql)
                .bind(ch.clone())
                .bind(now_ms)
                .bind(moved_json.clone())
                .execute(&mut *tx)
                .await?;
        }
        let actor = format!("{from} -> {}", to.join(", "));
        let sql = format!(
            "INSERT INTO alert_audit (fingerprint, starts_at, at, action, actor, via)
             SELECT o.fingerprint, e.starts_at, $1, 'failover', $2, 'router' FROM outbox o
             JOIN alert_events e ON e.id = o.event_id WHERE o.id IN ({})",
            D::ids_from_json(3)
        );
        sqlx::query(&sql)
            .bind(now_ms)
            .bind(actor)
            .bind(moved_json)
            .execute(&mut *tx)
            .await?;
        Self::settle(
            &mut *tx,
            "state = 'failed', last_error = $1, attempts = attempts + 1, due_at = $2",
            &[
                Bind::Text(&format!("failed over to {}: {reason}", to.join(", "))),
                Bind::Int(now_ms),
            ],
            &moved,
        )
        .await?;
        tx.commit().await?;
        Ok(moved)
    })
    }

    async fn release(&self, ids: &[i64]) -> Result<(), StoreError> {
        retry_busy!("release", async {
        Self::settle(&self.pool, "", &[], ids).await
    })
    }

    async fn next_due(&self, channel: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(due_at) FROM outbox WHERE channel = $1 AND state = 'pending' AND due_at > $2",
        )
        .bind(channel)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            pending: r.try_get("n")?,
            oldest_created_at: r.try_get("oldest")?,
        })
    }

    async fn sends_since(&self, channel: &str, since_ms: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT sent_at FROM channel_sends WHERE channel = $1 AND sent_at >= $2 ORDER BY sent_at",
        )
        .bind(channel)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn list_notifications(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<NotificationView>, StoreError> {
        Ok(self.notifications_page(state, None, limit).await?.items)
    }

    async fn notifications_page(
        &self,
        state: Option<&str>,
        before: Option<&Cursor>,
        limit: i64,
    ) -> Result<Page<NotificationView>, StoreError> {
        // Two statements, not `($1 IS NULL OR state = $1)`: a plan is made once per
        // statement, and only `state = $1` can walk `outbox_state_id` backwards.
        let before = before.map_or(i64::MAX, |c| c.key);
        let rows = match state {
            Some(state) => {
                sqlx::query(&reads::notifications_in_state())
                .bind(state.to_string())
                .bind(before)
                .bind(limit + 1)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&reads::notifications())
                .bind(before)
                .bind(limit + 1)
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let payload: String = r.try_get("payload")?;
            out.push(
                NotificationView {
                    id: r.try_get("id")?,
                    channel: r.try_get("channel")?,
                    fingerprint: r.try_get("fingerprint")?,
                    alertname: String::new(),
                    status: String::new(),
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    due_at: r.try_get("due_at")?,
                    sent_at: r.try_get("sent_at")?,
                }
                .with_alert(&payload),
            );
        }
        Ok(Page::from_rows(out, limit, |n| Cursor {
            key: n.id,
            tie: String::new(),
        }))
    }

    async fn acknowledge(
        &self,
        req: &AckRequest<'_>,
        now_ms: i64,
    ) -> Result<AckOutcome, StoreError> {
        retry_busy!("acknowledge", async {
        let (fingerprint, by) = (req.fingerprint, req.by);
        // An ack and a resolve (or a second ack) of one alert serialise: the writer
        // connection on SQLite, the row lock on PostgreSQL.
        let mut tx = self.writer.begin_with(D::BEGIN_WRITE).await?;
        let sql = format!(
            "SELECT s.event_id, s.acked_by, s.acked_at, e.payload, e.starts_at FROM alert_state s
             JOIN alert_events e ON e.id = s.event_id WHERE s.fingerprint = $1 AND s.status = 'firing'{}",
            D::lock_rows("s")
        );
        let row = sqlx::query(&sql)
            .bind(fingerprint)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(AckOutcome::NotActive);
        };
        let starts_at: i64 = row.try_get("starts_at")?;
        if req.starts_at.is_some_and(|s| s != starts_at) {
            return Ok(AckOutcome::OtherFiring);
        }
        if let Some(prev) = row.try_get::<Option<String>, _>("acked_by")? {
            return Ok(AckOutcome::AlreadyAcked {
                by: prev,
                at: row.try_get::<Option<i64>, _>("acked_at")?.unwrap_or(0),
            });
        }
        let chain: i64 = row.try_get("event_id")?;
        let payload: String = row.try_get("payload")?;
        sqlx::query("UPDATE alert_state SET acked_by = $1, acked_at = $2 WHERE fingerprint = $3")
            .bind(by)
            .bind(now_ms)
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO alert_audit (fingerprint, starts_at, at, action, actor, via, address)
             VALUES ($1, $2, $3, 'ack', $4, $5, $6)",
        )
        .bind(fingerprint)
        .bind(starts_at)
        .bind(now_ms)
        .bind(by)
        .bind(req.via.as_str())
        .bind(req.address.clone())
        .execute(&mut *tx)
        .await?;
        Self::cancel_pending(&mut *tx, fingerprint, now_ms).await?;
        let announced = Self::notified_channels(&mut *tx, chain).await?;
        let ev = serde_json::to_string(&ack_event(&payload, by, now_ms)?)?;
        for ch in &announced {
            sqlx::query(
                "INSERT INTO outbox (event_id, fingerprint, channel, kind, payload, due_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(chain)
            .bind(fingerprint)
            .bind(ch.clone())
            .bind(OutboxKind::Ack.as_str())
            .bind(ev.clone())
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(AckOutcome::Acked { announced })
    })
    }

    async fn list_alerts(&self) -> Result<Vec<AlertView>, StoreError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.alerts_page(after.as_ref(), 500).await?;
            out.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    async fn alerts_page(
        &self,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<Page<AlertView>, StoreError> {
        let after = after.cloned().unwrap_or_else(Cursor::start);
        let rows: Vec<StateRow> = sqlx::query_as(&reads::alerts_page())
            .bind(after.key)
            .bind(after.tie)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let views = self.with_chains(rows).await?;
        Ok(Page::from_rows(views, limit, |v| Cursor {
            key: v.chain_started_at,
            tie: v.fingerprint.clone(),
        }))
    }

    async fn alert_views(&self, fingerprints: &[String]) -> Result<Vec<AlertView>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, String, i64, Option<String>, Option<i64>, String, String)> =
            sqlx::query_as(&reads::alert_views::<D>())
                .bind(texts_json(fingerprints))
                .fetch_all(&self.pool)
                .await?;
        let firing = rows
            .into_iter()
            .filter(|r| r.6 == "firing")
            .map(|(event, policy, started, by, at, payload, _)| (event, policy, started, by, at, payload))
            .collect();
        self.with_chains(firing).await
    }

    async fn firing_page(
        &self,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<Page<CurrentAlert>, StoreError> {
        let after = after.cloned().unwrap_or_else(Cursor::start);
        let rows = sqlx::query_as::<_, (i64, String)>(reads::FIRING_PAGE)
        .bind(after.key)
        .bind(after.tie)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(Page::from_rows(Self::current_alerts(rows)?, limit, |a| Cursor {
            key: a.starts_at,
            tie: a.fingerprint.clone(),
        }))
    }

    async fn count_firing(&self, after: Option<&Cursor>, cap: i64) -> Result<i64, StoreError> {
        let after = after.cloned().unwrap_or_else(Cursor::start);
        Ok(sqlx::query_scalar(reads::COUNT_FIRING)
        .bind(after.key)
        .bind(after.tie)
        .bind(cap)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn current_of(&self, fingerprints: &[String]) -> Result<Vec<CurrentAlert>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as::<_, (i64, String)>(&reads::current_of::<D>())
            .bind(texts_json(fingerprints))
            .fetch_all(&self.pool)
            .await?;
        Self::current_alerts(rows)
    }

    async fn list_current(
        &self,
        status: &str,
        limit: i64,
    ) -> Result<Vec<CurrentAlert>, StoreError> {
        let resolved = match status {
            "firing" => false,
            "resolved" => true,
            _ => return Ok(Vec::new()),
        };
        let rows = sqlx::query_as::<_, (i64, String)>(&reads::current(resolved))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Self::current_alerts(rows)
    }

    async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query_as::<_, super::FullAuditRow>(reads::RECENT_AUDIT)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(super::audit_entry).collect())
    }

    async fn history_page(
        &self,
        fingerprint: &str,
        before: Option<&HistoryKey>,
        limit: i64,
    ) -> Result<Option<Page<HistoryItem>>, StoreError> {
        use super::history::CallViewRow;
        use super::history::{self, Source};
        let before = before.copied().unwrap_or(HistoryKey::NEWEST);
        let calls_sql = reads::history_calls();
        // Each table's rows older than the cursor, newest first, one more than a page; the
        // statements in the order of `Source`.
        let sql = [reads::HISTORY_EVENTS, reads::HISTORY_AUDIT, reads::HISTORY_SENDS, &calls_sql];
        let read = |s: Source| {
            let (at, id) = before.bound(s);
            sqlx::query(sql[s as usize])
                .bind(fingerprint)
                .bind(at)
                .bind(id)
                .bind(limit + 1)
                .fetch_all(&self.pool)
        };
        fn decode<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
        where
            R: sqlx::Row,
            T: for<'r> sqlx::FromRow<'r, R>,
        {
            Ok(rows.iter().map(T::from_row).collect::<Result<_, _>>()?)
        }
        let events: Vec<history::EventRow> = decode(read(Source::Event).await?)?;
        if events.is_empty() {
            // Never received, or pruned by retention (whose audit rows may outlive the
            // events); or only this page has none: a later one of a stored alert is empty.
            let any: Option<i64> = sqlx::query_scalar(reads::HISTORY_EXISTS)
                .bind(fingerprint)
                .fetch_optional(&self.pool)
                .await?;
            if any.is_none() {
                return Ok(None);
            }
        }
        let audit: Vec<history::AuditRow> = decode(read(Source::Audit).await?)?;
        let sends: Vec<history::SendRow> = decode(read(Source::Send).await?)?;
        // A call as the status page reads it (its columns first, by position), with its id.
        let calls = read(Source::Call).await?;
        let calls: Vec<(i64, CallViewRow)> = calls
            .iter()
            .map(|r| Ok((r.try_get("id")?, sqlx::FromRow::from_row(r)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let rows = events
            .into_iter()
            .map(history::event_item)
            .chain(audit.into_iter().map(history::audit_item))
            .chain(sends.into_iter().map(history::send_item))
            .chain(calls.into_iter().map(|(id, r)| history::call_item(id, r)))
            .collect();
        Ok(Some(history::page(rows, limit)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn prune_sends(&self, before_ms: i64) -> Result<(), StoreError> {
        retry_busy!("prune_sends", async {
        sqlx::query("DELETE FROM channel_sends WHERE sent_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    })
    }

    async fn current_event(
        &self,
        fingerprint: &str,
    ) -> Result<Option<crate::core::model::AlertEvent>, StoreError> {
        let p: Option<String> = sqlx::query_scalar(notices::CURRENT_EVENT)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
        Ok(p.map(|p| serde_json::from_str(&p)).transpose()?)
    }

    async fn record_silence(
        &self,
        s: &super::SilenceRecord,
        via: &str,
        address: Option<&str>,
    ) -> Result<i64, StoreError> {
        retry_busy!("record_silence", async {
        let mut tx = self.writer.begin_with(D::BEGIN_WRITE).await?;
        let id: i64 = sqlx::query_scalar(notices::SILENCE_INSERT)
            .bind(s.fingerprint.clone())
            .bind(s.starts_at)
            .bind(s.alertname.clone())
            .bind(serde_json::to_string(&s.labels)?)
            .bind(s.duration.clone())
            .bind(s.created_by.clone())
            .bind(s.created_at)
            .bind(s.ends_at)
            .bind(serde_json::to_string(&s.alertmanagers)?)
            .fetch_one(&mut *tx)
            .await?;
        Self::audit(
            &mut tx,
            (&s.fingerprint, s.starts_at),
            s.created_at,
            format!("silence_{}", s.duration),
            &s.created_by,
            via,
            address,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    })
    }

    async fn active_silences(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<super::SilenceRecord>, StoreError> {
        let rows = sqlx::query_as::<_, notices::SilenceRow>(notices::SILENCES_ACTIVE)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(notices::silence_record)
            .collect::<Result<_, _>>()?)
    }

    async fn expire_silence(
        &self,
        id: i64,
        by: &str,
        via: &str,
        address: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        retry_busy!("expire_silence", async {
        let mut tx = self.writer.begin_with(D::BEGIN_WRITE).await?;
        let Some((fingerprint, starts_at)) =
            sqlx::query_as::<_, (String, i64)>(notices::SILENCE_EXPIRE)
                .bind(now_ms)
                .bind(by.to_string())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        Self::audit(
            &mut tx,
            (&fingerprint, starts_at),
            now_ms,
            "unsilence".to_string(),
            by,
            via,
            address,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    })
    }

    async fn enqueue_once(
        &self,
        key: &str,
        notices: &[super::Notice],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        retry_busy!("enqueue_once", async {
        // The claim and the rows commit together: a crash leaves both or neither, and a
        // second replica's claim of the same key inserts nothing.
        let mut tx = self.writer.begin_with(D::BEGIN_WRITE).await?;
        let claimed: Option<String> = sqlx::query_scalar(notices::CLAIM)
            .bind(key.to_string())
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
        if claimed.is_none() {
            return Ok(false);
        }
        for n in notices {
            sqlx::query(notices::NOTICE_INSERT)
                .bind(n.fingerprint.clone())
                .bind(n.channel.clone())
                .bind(n.payload.clone())
                .bind(notices::mentions(&n.mentions))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    })
    }

    async fn expect_signals(&self, names: &[String], now_ms: i64) -> Result<(), StoreError> {
        retry_busy!("expect_signals", async {
        for chunk in names.chunks(INSERT_CHUNK) {
            let sql = insert_sql(
                "expected_signals (name, last_seen)",
                chunk.len(),
                2,
                " ON CONFLICT (name) DO NOTHING",
            );
            let mut q = sqlx::query(&sql);
            for n in chunk {
                q = q.bind(n).bind(now_ms);
            }
            q.execute(&self.writer).await?;
        }
        Ok(())
    })
    }

    async fn signals_heard(&self, names: &[String], now_ms: i64) -> Result<(), StoreError> {
        retry_busy!("signals_heard", async {
        for chunk in names.chunks(INSERT_CHUNK) {
            let sql = insert_sql(
                "expected_signals (name, last_seen)",
                chunk.len(),
                2,
                " ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen
                  WHERE excluded.last_seen > expected_signals.last_seen",
            );
            let mut q = sqlx::query(&sql);
            for n in chunk {
                q = q.bind(n).bind(now_ms);
            }
            q.execute(&self.writer).await?;
        }
        Ok(())
    })
    }

    async fn signals(&self) -> Result<Vec<super::SignalRow>, StoreError> {
        let rows = sqlx::query_as::<_, (String, i64, Option<i64>, Option<String>)>(
            "SELECT name, last_seen, missing_since, alert FROM expected_signals ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, last_seen, missing_since, alert)| super::SignalRow {
                name,
                last_seen,
                missing_since,
                alert,
            })
            .collect())
    }

    async fn signal_missing(
        &self,
        name: &str,
        since: i64,
        alert: &str,
    ) -> Result<bool, StoreError> {
        retry_busy!("signal_missing", async {
        let done = sqlx::query(
            "UPDATE expected_signals SET missing_since = $1, alert = $2
             WHERE name = $3 AND missing_since IS NULL",
        )
        .bind(since)
        .bind(alert)
        .bind(name)
        .execute(&self.writer)
        .await?;
        Ok(D::rows_affected(&done) == 1)
    })
    }

    async fn signal_back(&self, name: &str, since: i64) -> Result<bool, StoreError> {
        retry_busy!("signal_back", async {
        let done = sqlx::query(
            "UPDATE expected_signals SET missing_since = NULL, alert = NULL
             WHERE name = $1 AND missing_since = $2",
        )
        .bind(name)
        .bind(since)
        .execute(&self.writer)
        .await?;
        Ok(D::rows_affected(&done) == 1)
    })
    }
}
}
