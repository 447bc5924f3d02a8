//! Retention (contract "Router: retention"): what an alert leaves behind is deleted once it has
//! been resolved for `resolved_after`, its audit rows once they are older than `audit_after`,
//! so the store (and every query over it) stops growing with the months.
//!
//! The unit is a firing, `(fingerprint, startsAt)`: its events, the notifications and steps
//! they caused (outbox rows, failover copies included), the calls of those rows and their
//! receipts, the chain (`alert_state`) and status-page row (`alert_current`) when they point
//! at it. A firing is kept while any of it is live: its chain still runs (firing, acknowledged
//! or not), a notification of it is pending (a retry, an escalation step, an ack announcement),
//! or a call of it still rings. A firing without a resolve is never touched. An alert that
//! fires again keeps its new firing; only the old ones go.
//!
//! Deletes run in small batches, each its own short write transaction (SQLite: `BEGIN
//! IMMEDIATE`, like every write), with a pause between batches as long as the batch took: the
//! intake's group commit and the delivery workers wait for one batch at most, never for the
//! whole run. On SQLite the freed pages are then handed back to the file system in bounded
//! `incremental_vacuum` steps (the file is `auto_vacuum = INCREMENTAL`, `sqlite.rs`).
//!
//! One runner ([`run_as`]): replicas sharing one PostgreSQL would otherwise all run the same
//! deletes every interval. A round runs under a lease row (`store_leases`, migration 0013),
//! taken the way an outbox row is claimed (`claimed_by`, `lease_until`, free once expired)
//! with the rota claims' upsert, renewed between batches and kept for one `interval` after
//! the round, so the replica that ran keeps running and the others skip. A replica that dies
//! loses the lease when it expires, and the next replica whose interval comes round takes
//! over. Not an advisory lock: a session lock belongs to one pooled connection (released on
//! that connection or never), a transaction lock ends with one of the many short batch
//! transactions; and neither says when the last round finished, which the skipping replicas
//! report. SQLite (`Dialect::SHARED` false) has one process per file: every lease is granted
//! without a write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql::{Dialect, SqlStore, sql_impl};
use super::{Store, StoreError, retry_busy};
use crate::core::settings::{Problem, duration};

/// The `retention:` section as written (contract: `{resolved_after: 90d, audit_after: 400d,
/// interval: 1h}`; the section and each key are optional).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    pub resolved_after: Option<String>,
    pub audit_after: Option<String>,
    pub interval: Option<String>,
}

/// Retention, validated: every duration non-zero and `audit_after >= resolved_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// A firing resolved longer ago than this is deleted.
    pub resolved_after: Duration,
    /// Audit rows (acks, silences, failovers) of deleted firings are kept this long.
    pub audit_after: Duration,
    /// Time between two runs (the first runs at start).
    pub interval: Duration,
    /// Firings (or audit, silence, notice, claim rows) deleted per transaction. Not in the
    /// file: the bound on how long intake can wait for a prune, measured, not tuned per site.
    pub batch: usize,
    /// How long a running round's lease lasts without renewal (it is renewed between
    /// batches): a replica that dies mid-round is replaced after at most this. Not in the
    /// file: long beside a batch (milliseconds), short beside `interval`.
    pub lease: Duration,
}

/// The runner's lease lasts 2 minutes unless renewed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// The name of retention's row in `store_leases`.
pub const LEASE_NAME: &str = "retention";

/// Firings per delete transaction: a firing is ~2 events, 2–10 outbox rows and a few others,
/// so a batch deletes ~1,000–2,000 rows, a few milliseconds on SQLite and PostgreSQL.
pub const DEFAULT_BATCH: usize = 200;

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            resolved_after: Duration::from_secs(90 * 86_400),
            audit_after: Duration::from_secs(400 * 86_400),
            interval: Duration::from_secs(3_600),
            batch: DEFAULT_BATCH,
            lease: DEFAULT_LEASE,
        }
    }
}

/// Validate the `retention:` section; problems name `retention.<key>`.
pub fn validate(f: &FileRetention, file: &str, p: &mut Vec<Problem>) -> RetentionConfig {
    let d = RetentionConfig::default();
    let dur = |p: &mut Vec<Problem>, k: &str, v: Option<&str>, def: Duration| {
        duration(p, file, &format!("retention.{k}"), v, def)
    };
    let before = p.len();
    let cfg = RetentionConfig {
        resolved_after: dur(
            p,
            "resolved_after",
            f.resolved_after.as_deref(),
            d.resolved_after,
        ),
        audit_after: dur(p, "audit_after", f.audit_after.as_deref(), d.audit_after),
        interval: dur(p, "interval", f.interval.as_deref(), d.interval),
        batch: d.batch,
        lease: d.lease,
    };
    if p.len() == before && cfg.audit_after < cfg.resolved_after {
        p.push(Problem {
            file: file.into(),
            key: "retention.audit_after".into(),
            reason: format!(
                "{} is shorter than retention.resolved_after ({}): the audit trail must outlive \
                 the alerts it is about",
                humantime::format_duration(cfg.audit_after),
                humantime::format_duration(cfg.resolved_after)
            ),
        });
    }
    cfg
}

/// The tables retention deletes from, as `quantwatch_router_retention_pruned_rows_total`
/// labels them.
pub const TABLES: [&str; 9] = [
    "alert_events",
    "outbox",
    "voice_calls",
    "voice_receipts",
    "alert_state",
    "alert_current",
    "alert_audit",
    "alert_silences",
    "rota_claims",
];

/// What one run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Rows deleted per table (only tables with deletions).
    pub rows: BTreeMap<&'static str, u64>,
    /// Write transactions that deleted something.
    pub batches: u64,
    /// Firings deleted.
    pub firings: u64,
    /// SQLite pages handed back to the file system (0 on PostgreSQL).
    pub reclaimed_pages: u64,
    /// How long the run took, pauses included.
    pub elapsed: Duration,
    /// The round stopped early because another replica took the lease (this one stalled for
    /// longer than `lease`); the rest is that replica's.
    pub lost_lease: bool,
}

impl PruneReport {
    fn add(&mut self, b: &Batch) {
        for (t, n) in &b.rows {
            if *n > 0 {
                *self.rows.entry(t).or_default() += n;
            }
        }
        if b.units > 0 {
            self.batches += 1;
        }
    }

    /// Rows deleted from `table` by this run.
    pub fn rows_of(&self, table: &str) -> u64 {
        self.rows.get(table).copied().unwrap_or(0)
    }
}

/// What one delete transaction did: rows per table, and how many units (firings, or rows of
/// a sweep) it took of the `batch` asked for.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub rows: Vec<(&'static str, u64)>,
    pub units: usize,
}

/// The sweeps after the firings: rows not tied to a stored firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Audit rows older than `audit_after` whose firing is deleted.
    Audit,
    /// Silences ended or expired before the cutoff whose firing is deleted.
    Silences,
    /// Router notices (handoffs, gaps, ack reminders: no event) sent or failed before the
    /// cutoff, with their calls.
    Notices,
    /// Rota claims older than `audit_after` (a claim only has to outlive what it is about).
    RotaClaims,
}

/// A lease request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The caller holds the lease until the time it asked for.
    Granted,
    /// Another holder has it until `until_ms`; `done_ms`: when a round last finished.
    Held {
        by: String,
        until_ms: i64,
        done_ms: Option<i64>,
    },
}

/// What [`run_as`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// This replica held the lease and ran the round.
    Ran(PruneReport),
    /// Another replica holds the lease (runs, or ran, this round); nothing was deleted here.
    /// `done_ms`: when a round on this store last finished, by any replica.
    Skipped {
        by: String,
        until_ms: i64,
        done_ms: Option<i64>,
    },
}

/// The store's side of retention; a supertrait of `Store`.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Delete up to `batch` firings resolved before `cutoff_ms` (received time of the resolve)
    /// and nothing of them live, with everything they left, in one transaction.
    async fn prune_firings(&self, cutoff_ms: i64, batch: usize) -> Result<Batch, StoreError>;
    /// Delete up to `batch` rows of one sweep older than `cutoff_ms`, in one transaction.
    async fn prune_sweep(
        &self,
        sweep: Sweep,
        cutoff_ms: i64,
        batch: usize,
    ) -> Result<Batch, StoreError>;
    /// Hand at most `pages` free pages back to the file system (SQLite `incremental_vacuum`);
    /// returns how many were free before. PostgreSQL: 0 (autovacuum reuses the space).
    async fn reclaim(&self, pages: i64) -> Result<u64, StoreError>;
    /// Copy the write-ahead log back into the file after a bulk write (`Dialect::CHECKPOINT`),
    /// so that a run's batches and vacuum steps do not pile up in the log between the
    /// background checkpoints and ratchet its size up. PostgreSQL: nothing.
    async fn checkpoint(&self) -> Result<(), StoreError>;
    /// The store's size on disk: SQLite `page_count × page_size` (the main file once the WAL
    /// is checkpointed), PostgreSQL the router's tables with their indexes and TOAST.
    async fn size_bytes(&self) -> Result<i64, StoreError>;
    /// Take or renew the lease `name` for `holder` until `until_ms`: granted when nobody has
    /// it, its holder's lease ended before `now_ms`, or `holder` already has it. Where one
    /// process owns the store (SQLite) always granted, nothing written.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Lease, StoreError>;
    /// Record that `holder`'s round finished at `done_ms` and keep the lease until
    /// `until_ms`; nothing if `holder` no longer has it.
    async fn finish_lease(
        &self,
        name: &str,
        holder: &str,
        done_ms: i64,
        until_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Pages per `incremental_vacuum` step (4 MiB at SQLite's default page size): each step is
/// one short write transaction.
pub const RECLAIM_STEP: i64 = 1024;

/// One retention run at `now_ms`: firings first, then the sweeps, then (SQLite) the free
/// pages back to the file system. Each batch is its own transaction, followed by a pause as
/// long as the batch took (at least 5 ms, at most 200 ms), so intake and delivery get the
/// store between batches however many rows are due.
///
/// Without the lease: for a process that knows it is alone with the store (tests, benches).
/// The router runs [`run_as`].
pub async fn run(
    store: &dyn Store,
    cfg: &RetentionConfig,
    now_ms: i64,
) -> Result<PruneReport, StoreError> {
    prune(store, cfg, now_ms, None).await
}

/// One round as `holder` (a replica's unique name) at `now_ms`, if it gets the lease (module
/// doc, "One runner"): the lease for `cfg.lease`, renewed between batches, then kept for one
/// `cfg.interval` after the round. Skipped, with who has it, when another replica does.
pub async fn run_as(
    store: &dyn Store,
    cfg: &RetentionConfig,
    holder: &str,
    now_ms: i64,
) -> Result<Round, StoreError> {
    let lease = ms(cfg.lease);
    if let Lease::Held {
        by,
        until_ms,
        done_ms,
    } = store
        .take_lease(LEASE_NAME, holder, now_ms, now_ms.saturating_add(lease))
        .await?
    {
        return Ok(Round::Skipped {
            by,
            until_ms,
            done_ms,
        });
    }
    let report = prune(store, cfg, now_ms, Some(holder)).await?;
    if !report.lost_lease {
        let done = now_ms.saturating_add(ms(report.elapsed));
        store
            .finish_lease(
                LEASE_NAME,
                holder,
                done,
                done.saturating_add(ms(cfg.interval)),
            )
            .await?;
    }
    Ok(Round::Ran(report))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Renew `holder`'s lease once a third of it has passed since the last renewal; false when
/// another replica has taken it meanwhile.
async fn keep_lease(
    store: &dyn Store,
    cfg: &RetentionConfig,
    holder: Option<&str>,
    renewed: &mut Instant,
    now_ms: i64,
    started: Instant,
) -> Result<bool, StoreError> {
    let Some(holder) = holder else {
        return Ok(true);
    };
    if renewed.elapsed() < cfg.lease / 3 {
        return Ok(true);
    }
    let now = now_ms.saturating_add(ms(started.elapsed()));
    match store
        .take_lease(LEASE_NAME, holder, now, now.saturating_add(ms(cfg.lease)))
        .await?
    {
        Lease::Granted => {
            *renewed = Instant::now();
            Ok(true)
        }
        Lease::Held { by, .. } => {
            tracing::warn!(
                holder,
                by,
                "retention's lease was taken by another replica mid-round; stopping"
            );
            Ok(false)
        }
    }
}

async fn prune(
    store: &dyn Store,
    cfg: &RetentionConfig,
    now_ms: i64,
    holder: Option<&str>,
) -> Result<PruneReport, StoreError> {
    let started = Instant::now();
    let mut renewed = started;
    let cutoff = now_ms.saturating_sub(ms(cfg.resolved_after));
    let audit_cutoff = now_ms.saturating_sub(ms(cfg.audit_after));
    let batch = cfg.batch.max(1);
    let mut report = PruneReport::default();
    loop {
        let t = Instant::now();
        let b = store.prune_firings(cutoff, batch).await?;
        report.firings += b.units as u64;
        report.add(&b);
        checkpoint(store).await;
        if b.units < batch {
            break;
        }
        pause(t.elapsed()).await;
        if !keep_lease(store, cfg, holder, &mut renewed, now_ms, started).await? {
            report.lost_lease = true;
            report.elapsed = started.elapsed();
            return Ok(report);
        }
    }
    for (sweep, at) in [
        (Sweep::Audit, audit_cutoff),
        (Sweep::Silences, cutoff),
        (Sweep::Notices, cutoff),
        (Sweep::RotaClaims, audit_cutoff),
    ] {
        loop {
            let t = Instant::now();
            let b = store.prune_sweep(sweep, at, batch).await?;
            report.add(&b);
            checkpoint(store).await;
            if b.units < batch {
                break;
            }
            pause(t.elapsed()).await;
            if !keep_lease(store, cfg, holder, &mut renewed, now_ms, started).await? {
                report.lost_lease = true;
                report.elapsed = started.elapsed();
                return Ok(report);
            }
        }
    }
    // Bounded: a file freed of more than 256 steps' worth shrinks over the next runs.
    for _ in 0..256 {
        let t = Instant::now();
        let free = store.reclaim(RECLAIM_STEP).await?;
        let done = free.min(RECLAIM_STEP as u64);
        report.reclaimed_pages += done;
        checkpoint(store).await;
        if free <= RECLAIM_STEP as u64 {
            break;
        }
        pause(t.elapsed()).await;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Best effort: a checkpoint that cannot finish now (a reader on an older snapshot) is done
/// by the next one; the run goes on.
async fn checkpoint(store: &dyn Store) {
    if let Err(e) = store.checkpoint().await {
        tracing::debug!(error = %e, "checkpoint after a retention write");
    }
}

async fn pause(took: Duration) {
    tokio::time::sleep(took.clamp(Duration::from_millis(5), Duration::from_millis(200))).await;
}

fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("a list of integers always serialises")
}

/// The firings due, as all their events (id, fingerprint, startsAt): resolved before `$1`,
/// oldest resolve first, at most `$2`, none of them live. Every lookup is indexed: the
/// resolves by `alert_events_resolved` (0010), a firing's events by the identity index
/// (fingerprint, status, startsAt; `status IN (…)` lets it seek instead of reading all of a
/// flapping alert's firings), outbox rows by `outbox_event`, calls by `voice_calls_alert`.
const DUE_FIRINGS: &str = "SELECT e.id, e.fingerprint, e.starts_at FROM alert_events e JOIN (
    SELECT r.fingerprint, r.starts_at FROM alert_events r
    WHERE r.status = 'resolved' AND r.received_at < $1
      AND NOT EXISTS (SELECT 1 FROM alert_state s JOIN alert_events f ON f.id = s.event_id
                      WHERE s.fingerprint = r.fingerprint AND s.status = 'firing'
                        AND f.starts_at = r.starts_at)
      AND NOT EXISTS (SELECT 1 FROM alert_events f JOIN outbox o ON o.event_id = f.id
                      WHERE f.fingerprint = r.fingerprint AND f.status IN ('firing', 'resolved')
                        AND f.starts_at = r.starts_at AND o.state = 'pending')
      AND NOT EXISTS (SELECT 1 FROM voice_calls c
                      WHERE c.fingerprint = r.fingerprint AND c.starts_at = r.starts_at
                        AND c.outcome IS NULL)
    ORDER BY r.received_at LIMIT $2) d
  ON e.fingerprint = d.fingerprint AND e.status IN ('firing', 'resolved')
     AND e.starts_at = d.starts_at";

sql_impl! {
impl<D> [SqlStore<D>] {
    /// Delete the calls (and their receipts) of outbox rows `ob` (JSON ids), then the rows.
    async fn delete_outbox_rows(
        tx: &mut <D as Database>::Connection,
        ob: &str,
        rows: &mut Vec<(&'static str, u64)>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "DELETE FROM voice_receipts WHERE call_id IN (
               SELECT call_id FROM voice_calls WHERE outbox_id IN ({}) AND call_id IS NOT NULL)",
            D::ids_from_json(1)
        );
        let r = sqlx::query(&sql).bind(ob).execute(&mut *tx).await?;
        rows.push(("voice_receipts", D::rows_affected(&r)));
        let sql = format!("DELETE FROM voice_calls WHERE outbox_id IN ({})", D::ids_from_json(1));
        let r = sqlx::query(&sql).bind(ob).execute(&mut *tx).await?;
        rows.push(("voice_calls", D::rows_affected(&r)));
        let sql = format!("DELETE FROM outbox WHERE id IN ({})", D::ids_from_json(1));
        let r = sqlx::query(&sql).bind(ob).execute(&mut *tx).await?;
        rows.push(("outbox", D::rows_affected(&r)));
        Ok(())
    }
}
}

sql_impl! {
#[async_trait]
impl<D> [RetentionStore for SqlStore<D>] {
    async fn prune_firings(&self, cutoff_ms: i64, batch: usize) -> Result<Batch, StoreError> {
        retry_busy!("prune_firings", async {
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        let due: Vec<(i64, String, i64)> = sqlx::query_as(DUE_FIRINGS)
            .bind(cutoff_ms)
            .bind(batch as i64)
            .fetch_all(&mut *tx)
            .await?;
        if due.is_empty() {
            return Ok(Batch::default());
        }
        let ev: Vec<i64> = due.iter().map(|(id, _, _)| *id).collect();
        let mut fps: Vec<&str> = due.iter().map(|(_, fp, _)| fp.as_str()).collect();
        fps.sort_unstable();
        fps.dedup();
        let ev = ids_json(&ev);
        let fps = serde_json::to_string(&fps)?;
        let sql = format!("SELECT id FROM outbox WHERE event_id IN ({})", D::ids_from_json(1));
        let ob: Vec<i64> = sqlx::query_scalar(&sql).bind(&ev).fetch_all(&mut *tx).await?;
        let mut rows = Vec::with_capacity(7);
        Self::delete_outbox_rows(&mut tx, &ids_json(&ob), &mut rows).await?;
        for table in ["alert_state", "alert_current"] {
            // By primary key (fingerprint), then only if it points at a deleted event: a
            // chain or status row of a later firing stays.
            let sql = format!(
                "DELETE FROM {table} WHERE {} AND event_id IN ({})",
                D::in_json_texts("fingerprint", 1),
                D::ids_from_json(2)
            );
            let r = sqlx::query(&sql).bind(&fps).bind(&ev).execute(&mut *tx).await?;
            rows.push((table, D::rows_affected(&r)));
        }
        let sql = format!("DELETE FROM alert_events WHERE id IN ({})", D::ids_from_json(1));
        let r = sqlx::query(&sql).bind(&ev).execute(&mut *tx).await?;
        let events = D::rows_affected(&r);
        rows.push(("alert_events", events));
        tx.commit().await?;
        // Units: firings (the events of one share fingerprint and startsAt).
        let firings: std::collections::BTreeSet<(&str, i64)> =
            due.iter().map(|(_, fp, s)| (fp.as_str(), *s)).collect();
        let firings = firings.len();
        Ok(Batch { rows, units: firings })
    })
    }

    async fn prune_sweep(
        &self,
        sweep: Sweep,
        cutoff_ms: i64,
        batch: usize,
    ) -> Result<Batch, StoreError> {
        retry_busy!("prune_sweep", async {
        let no_firing = |t: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM alert_events e
                             WHERE e.fingerprint = {t}.fingerprint
                               AND e.status IN ('firing', 'resolved')
                               AND e.starts_at = {t}.starts_at)"
            )
        };
        let (table, sql) = match sweep {
            Sweep::Audit => (
                "alert_audit",
                format!(
                    "DELETE FROM alert_audit WHERE id IN (
                       SELECT a.id FROM alert_audit a WHERE a.at < $1 AND {}
                       ORDER BY a.at LIMIT $2)",
                    no_firing("a")
                ),
            ),
            Sweep::Silences => (
                "alert_silences",
                format!(
                    "DELETE FROM alert_silences WHERE id IN (
                       SELECT s.id FROM alert_silences s
                       WHERE (s.ends_at < $1 OR s.expired_at < $1) AND {}
                       ORDER BY s.id LIMIT $2)",
                    no_firing("s")
                ),
            ),
            Sweep::RotaClaims => (
                "rota_claims",
                "DELETE FROM rota_claims WHERE key IN (
                   SELECT key FROM rota_claims WHERE claimed_at < $1 ORDER BY claimed_at LIMIT $2)"
                    .to_string(),
            ),
            Sweep::Notices => {
                let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
                let ob: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM outbox WHERE event_id IS NULL AND state <> 'pending'
                       AND created_at < $1 ORDER BY id LIMIT $2",
                )
                .bind(cutoff_ms)
                .bind(batch as i64)
                .fetch_all(&mut *tx)
                .await?;
                if ob.is_empty() {
                    return Ok(Batch::default());
                }
                let mut rows = Vec::with_capacity(3);
                Self::delete_outbox_rows(&mut tx, &ids_json(&ob), &mut rows).await?;
                tx.commit().await?;
                return Ok(Batch { rows, units: ob.len() });
            }
        };
        // One statement: SQLite takes the write lock before it reads.
        let r = sqlx::query(&sql)
            .bind(cutoff_ms)
            .bind(batch as i64)
            .execute(&self.pool)
            .await?;
        let n = D::rows_affected(&r);
        Ok(Batch {
            rows: vec![(table, n)],
            units: usize::try_from(n).unwrap_or(usize::MAX),
        })
    })
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Some(sql) = D::CHECKPOINT {
            sqlx::query(sql).execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn reclaim(&self, pages: i64) -> Result<u64, StoreError> {
        let (Some(free_sql), Some(step)) = (D::FREE_PAGES, D::reclaim(pages)) else {
            return Ok(0);
        };
        let free: i64 = sqlx::query_scalar(free_sql).fetch_one(&self.pool).await?;
        if free > 0 {
            retry_busy!("reclaim", async {
                sqlx::query(&step).execute(&self.pool).await?;
                Ok(())
            })?;
        }
        Ok(u64::try_from(free).unwrap_or(0))
    }

    async fn size_bytes(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(D::SIZE_BYTES)
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Lease, StoreError> {
        if !D::SHARED {
            return Ok(Lease::Granted);
        }
        retry_busy!("take_lease", async {
            // One statement: of two replicas asking at once, one inserts (or updates) and
            // the other, waiting on that row, finds the condition false and gets no row.
            let got: Option<String> = sqlx::query_scalar(TAKE_LEASE)
                .bind(name)
                .bind(holder)
                .bind(until_ms)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
            if got.is_some() {
                return Ok(Lease::Granted);
            }
            let (by, until_ms, done_ms): (String, i64, Option<i64>) = sqlx::query_as(
                "SELECT claimed_by, lease_until, done_at FROM store_leases WHERE name = $1",
            )
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
            Ok(Lease::Held {
                by,
                until_ms,
                done_ms,
            })
        })
    }

    async fn finish_lease(
        &self,
        name: &str,
        holder: &str,
        done_ms: i64,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        if !D::SHARED {
            return Ok(());
        }
        retry_busy!("finish_lease", async {
            sqlx::query(
                "UPDATE store_leases SET lease_until = $3, done_at = $4
                 WHERE name = $1 AND claimed_by = $2",
            )
            .bind(name)
            .bind(holder)
            .bind(until_ms)
            .bind(done_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }
}
}

/// Take the lease `$1` for `$2` until `$3` if it is free, expired before `$4`, or `$2`'s
/// already (the outbox claim's condition, `lease_until < now`); returns the holder when taken.
const TAKE_LEASE: &str =
    "INSERT INTO store_leases (name, claimed_by, lease_until) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET claimed_by = excluded.claimed_by,
        lease_until = excluded.lease_until
    WHERE store_leases.claimed_by = excluded.claimed_by OR store_leases.lease_until < $4
    RETURNING claimed_by";
