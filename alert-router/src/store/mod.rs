//! Durable state behind one trait: deduplicated alert events and the notification outbox.
//!
//! Nothing the router promised lives only in memory: the webhook answers 2xx only after
//! `ingest` committed, and delivery works only from outbox rows claimed with a lease, so a
//! crash at any point leaves rows that another worker (or the restarted process) picks up.
//!
//! One implementation serves both backends (`sql.rs`); `sqlite.rs` and `postgres.rs` say only
//! where their SQL, locking and durability differ.

pub mod calls;
pub mod escalation;
pub mod history;
pub mod ingest;
pub mod notices;
pub mod paging;
pub mod postgres;
pub mod retention;
pub mod sql;
pub mod sqlite;

pub use history::{HistoryEntry, HistoryItem, HistoryKey};
pub use notices::{AmSilence, Notice, SilenceRecord};
pub use paging::{BadCursor, Cursor, Page};

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::core::model::AlertEvent;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the SQLite directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("the store did not answer in time")]
    Timeout,
    #[error("stored payload is not valid JSON: {0}")]
    Payload(#[from] serde_json::Error),
}

impl StoreError {
    /// Whether the operation lost a race for a lock and may simply run again: SQLite's
    /// `SQLITE_BUSY` / `SQLITE_LOCKED` and their extended codes (`database is locked`, a stale
    /// snapshot), PostgreSQL's serialization failure, deadlock and lock timeout, or no pooled
    /// connection free in time. Nothing of a failed attempt was committed.
    pub fn is_busy(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|code| match code.parse::<i32>() {
                // SQLite reports the extended code; its low byte is the primary one.
                Ok(n) => matches!(n & 0xff, SQLITE_BUSY | SQLITE_LOCKED),
                Err(_) => matches!(&*code, "40001" | "40P01" | "55P03"),
            }),
            _ => false,
        }
    }
}

const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_FULL: i32 = 13;

impl StoreError {
    /// Whether the store refused for want of disk space: SQLite's `SQLITE_FULL` (its file
    /// system answered ENOSPC), PostgreSQL's `disk_full` (53100). Nothing was committed; the
    /// same write succeeds once space returns.
    pub fn is_full(&self) -> bool {
        let StoreError::Db(sqlx::Error::Database(d)) = self else {
            return false;
        };
        d.code().is_some_and(|code| match code.parse::<i32>() {
            Ok(n) => n & 0xff == SQLITE_FULL,
            Err(_) => &*code == "53100",
        })
    }
}

/// How often a store write that lost a lock race (see [`StoreError::is_busy`]) runs before
/// its error reaches the caller. Each SQLite attempt already waits up to `busy_timeout` for the
/// lock, so this is for the conflicts waiting cannot solve (a stale snapshot, a deadlock
/// victim, a pool that stayed full), not a replacement for it.
pub(crate) const BUSY_ATTEMPTS: u32 = 8;

/// The pause before attempt `attempt + 1`: 20 ms doubling up to 1 s, jittered (a half to the
/// full value) so that the writers that collided do not collide again.
pub(crate) fn busy_backoff(attempt: u32) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let full = std::time::Duration::from_millis(20u64 << attempt.min(6))
        .min(std::time::Duration::from_secs(1));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let frac = (h.finish() % 1000) as u32;
    full / 2 + full / 2 * frac / 1000
}

/// The result type of a store operation's body, named so that [`retry_busy!`] can type an
/// `async` block that uses `?`.
pub(crate) fn store_op<T, F>(f: F) -> F
where
    F: std::future::Future<Output = Result<T, StoreError>>,
{
    f
}

/// Run `$body` (an `async` block: one whole store operation, its transaction included) again
/// while it fails with [`StoreError::is_busy`], at most [`BUSY_ATTEMPTS`] times with
/// [`busy_backoff`] between. A failed attempt rolled back (its transaction was dropped), so
/// running it again is safe; a lock conflict must never turn a page into `failed`.
macro_rules! retry_busy {
    ($what:literal, $body:expr) => {{
        let mut attempt: u32 = 1;
        loop {
            match $crate::store::store_op($body).await {
                Err(e) if e.is_busy() && attempt < $crate::store::BUSY_ATTEMPTS => {
                    tracing::debug!(operation = $what, attempt, error = %e, "store busy; trying again");
                    tokio::time::sleep($crate::store::busy_backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) if e.is_busy() => {
                    tracing::warn!(operation = $what, attempts = attempt, error = %e, "store still busy; giving up");
                    break Err(e);
                }
                r => break r,
            }
        }
    }};
}
pub(crate) use retry_busy;

/// Rows per multi-row INSERT: 8 parameters each stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters.
pub(crate) const INSERT_CHUNK: usize = 1000;

/// An event plus the channels routing chose for it.
#[derive(Debug, Clone)]
pub struct RoutedEvent {
    pub event: AlertEvent,
    /// Immediate notifications. For a resolved alert whose chain is stored, the store sends to
    /// the channels the chain notified instead.
    pub channels: Vec<String>,
    /// The chain to start when this is a new firing event of an escalated alert.
    pub escalation: Option<escalation::Plan>,
}

/// Outbox row kinds.
/// What an outbox row is for; stored as its `as_str` in `outbox.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// The routed notification of an event.
    Notify,
    /// A step of an escalation chain.
    Escalate,
    /// The announcement that an alert was acknowledged.
    Ack,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Notify => "notify",
            OutboxKind::Escalate => "escalate",
            OutboxKind::Ack => "ack",
        }
    }

    /// The stored text; anything unknown reads as a plain notification.
    pub fn parse(s: &str) -> OutboxKind {
        match s {
            "escalate" => OutboxKind::Escalate,
            "ack" => OutboxKind::Ack,
            _ => OutboxKind::Notify,
        }
    }
}

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// Acknowledged now; the channels the ack is announced on.
    Acked { announced: Vec<String> },
    /// Someone was first.
    AlreadyAcked { by: String, at: i64 },
    /// No firing escalated alert has this fingerprint.
    NotActive,
    /// The alert fires, but not the firing asked for (a link or page of an earlier firing):
    /// an acknowledgement belongs to (fingerprint, startsAt), so nothing was acknowledged.
    OtherFiring,
}

/// How an acknowledgement reached the router (recorded in the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckVia {
    /// `POST /api/v1/alerts/{fingerprint}/ack` with JSON (a machine or a script).
    Api,
    /// The status page's button (an authenticated user in a browser).
    Page,
    /// A signed link from a message (whoever holds the link; the name is typed).
    Link,
}

impl AckVia {
    pub fn as_str(self) -> &'static str {
        match self {
            AckVia::Api => "api",
            AckVia::Page => "page",
            AckVia::Link => "link",
        }
    }
}

/// One acknowledgement, with what the audit trail records about it.
#[derive(Debug, Clone)]
pub struct AckRequest<'a> {
    pub fingerprint: &'a str,
    /// The firing meant (a link's or a page's `startsAt`); `None`: whichever firing is current.
    pub starts_at: Option<i64>,
    pub by: &'a str,
    pub via: AckVia,
    /// The client's IP address.
    pub address: Option<String>,
}

/// An alert as the status page lists it: its latest event, escalated or not.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentAlert {
    pub fingerprint: String,
    pub alertname: String,
    pub severity: String,
    pub summary: String,
    pub status: String,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    /// When the router received the latest event.
    pub updated_at: i64,
}

impl CurrentAlert {
    pub(crate) fn new(ev: &AlertEvent, updated_at: i64) -> CurrentAlert {
        CurrentAlert {
            fingerprint: ev.fingerprint.clone(),
            alertname: ev.alertname().to_string(),
            severity: ev.labels.get("severity").cloned().unwrap_or_default(),
            summary: ev.annotations.get("summary").cloned().unwrap_or_default(),
            status: ev.status.as_str().to_string(),
            starts_at: ev.starts_at,
            ends_at: ev.ends_at,
            updated_at,
        }
    }
}

/// One acknowledgement as the audit trail keeps it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub fingerprint: String,
    pub starts_at: i64,
    pub at: i64,
    pub action: String,
    pub by: String,
    pub via: String,
    pub address: Option<String>,
}

/// Per fingerprint, the index of the event that becomes its `alert_current` row: the latest
/// startsAt, and at equal startsAt the resolve. Only new events (`ids[i]` set) count.
pub(crate) fn current_updates(events: &[RoutedEvent], ids: &[Option<i64>]) -> Vec<(usize, i64)> {
    let mut best: std::collections::HashMap<&str, (usize, i64)> = std::collections::HashMap::new();
    for (i, r) in events.iter().enumerate() {
        let Some(id) = ids[i] else { continue };
        let key = |j: usize| {
            (
                events[j].event.starts_at,
                events[j].event.status == crate::core::model::Status::Resolved,
            )
        };
        best.entry(&r.event.fingerprint)
            .and_modify(|b| {
                if key(i) >= key(b.0) {
                    *b = (i, id);
                }
            })
            .or_insert((i, id));
    }
    let mut v: Vec<(usize, i64)> = best.into_values().collect();
    v.sort_unstable();
    v
}

/// One channel notified by a chain step.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotifiedView {
    pub step: i64,
    pub channel: String,
    pub mentions: Vec<String>,
    pub sent_at: i64,
}

/// An active escalated alert, as the API and the status page show it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub fingerprint: String,
    pub alertname: String,
    pub severity: String,
    pub summary: String,
    pub policy: String,
    pub starts_at: i64,
    pub chain_started_at: i64,
    /// Highest step already sent (None before the first send).
    pub current_step: Option<i64>,
    pub next_step: Option<i64>,
    pub next_step_at: Option<i64>,
    pub notified: Vec<NotifiedView>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
}

impl AlertView {
    pub(crate) fn new(
        ev: &AlertEvent,
        policy: String,
        chain_started_at: i64,
        acked_by: Option<String>,
        acked_at: Option<i64>,
    ) -> AlertView {
        let get = |m: &std::collections::BTreeMap<String, String>, k: &str| {
            m.get(k).cloned().unwrap_or_default()
        };
        AlertView {
            fingerprint: ev.fingerprint.clone(),
            alertname: ev.alertname().to_string(),
            severity: get(&ev.labels, "severity"),
            summary: get(&ev.annotations, "summary"),
            policy,
            starts_at: ev.starts_at,
            chain_started_at,
            current_step: None,
            next_step: None,
            next_step_at: None,
            notified: Vec::new(),
            acked_by,
            acked_at,
        }
    }
}

/// The event an ack announcement renders: the alert, marked with who acknowledged and when.
/// The marks are annotations, not words, because the row is stored before any channel
/// renders it: each channel's template says it in its own language (`template::context`).
pub(crate) fn ack_event(payload: &str, by: &str, at_ms: i64) -> Result<AlertEvent, StoreError> {
    let mut ev: AlertEvent = serde_json::from_str(payload)?;
    ev.annotations
        .insert(crate::core::annotations::ACKED_BY.into(), by.to_string());
    ev.annotations
        .insert(crate::core::annotations::ACKED_AT.into(), at_ms.to_string());
    Ok(ev)
}

/// One escalate row as the chain view reads it: channel, step, state, due_at, sent_at,
/// mentions (JSON).
pub(crate) type ChainRow = (String, i64, String, i64, Option<i64>, Option<String>);

/// Fold a chain's escalate rows (channel, step, state, due_at, sent_at, mentions JSON, claimed)
/// into the view's step fields.
pub(crate) fn fold_chain(view: &mut AlertView, rows: Vec<ChainRow>) {
    for (channel, step, state, due_at, sent_at, mentions) in rows {
        if state == "sent" {
            view.current_step = Some(view.current_step.map_or(step, |c| c.max(step)));
            view.notified.push(NotifiedView {
                step,
                channel,
                mentions: mentions
                    .and_then(|m| serde_json::from_str(&m).ok())
                    .unwrap_or_default(),
                sent_at: sent_at.unwrap_or(0),
            });
        } else if state == "pending" && view.next_step_at.is_none_or(|t| due_at < t) {
            view.next_step_at = Some(due_at);
            view.next_step = Some(step);
        }
    }
}

/// A claimed notification.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub fingerprint: String,
    pub channel: String,
    pub kind: OutboxKind,
    pub event: AlertEvent,
    pub attempts: i64,
    pub created_at: i64,
    /// When the row fell due (for escalate rows: the step's planned time).
    pub due_at: i64,
    /// Chain step (escalate rows only).
    pub step: Option<i64>,
    /// Who this step mentions on its channel.
    pub mentions: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub pending: i64,
    pub oldest_created_at: Option<i64>,
}

/// A notification as shown by the API.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    pub id: i64,
    pub channel: String,
    pub fingerprint: String,
    pub alertname: String,
    pub status: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub due_at: i64,
    pub sent_at: Option<i64>,
}

/// Every backend stores calls too ([`calls::CallStore`], "call until someone answers") and
/// prunes what it stored ([`retention::RetentionStore`]).
#[async_trait]
pub trait Store: calls::CallStore + retention::RetentionStore + Send + Sync {
    /// Store events and their outbox rows in one transaction. Returns, per event, whether it
    /// was new (`true`) or a duplicate of one already stored (`false`).
    async fn ingest(&self, events: &[RoutedEvent], now_ms: i64) -> Result<Vec<bool>, StoreError>;
    /// Lease up to `limit` due rows of a channel, oldest first, skipping rows whose alert has
    /// an earlier row still pending on that channel (per-alert order).
    async fn claim(
        &self,
        channel: &str,
        now_ms: i64,
        limit: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// Mark rows sent (the vendor request itself is recorded with `record_send`).
    async fn mark_sent(&self, ids: &[i64], now_ms: i64) -> Result<(), StoreError>;
    /// Record one vendor request, delivered or not: it counts against the vendor limit.
    async fn record_send(&self, channel: &str, now_ms: i64) -> Result<(), StoreError>;
    async fn reschedule(&self, ids: &[i64], due_ms: i64, error: &str) -> Result<(), StoreError>;
    async fn mark_failed(&self, ids: &[i64], error: &str, now_ms: i64) -> Result<(), StoreError>;
    /// Give rows back without counting an attempt (claimed but not sent).
    async fn release(&self, ids: &[i64]) -> Result<(), StoreError>;
    /// Hand pending rows of channel `from` to each channel in `to`, in one transaction: a copy
    /// per fallback (due now, no mentions: contacts are per channel), the original marked
    /// failed with "failed over to …: reason", and a `failover` entry in the alert's audit
    /// trail. Rows that are themselves failover copies are not handed on (failover happens
    /// once). Returns the ids that were handed over.
    async fn fail_over(
        &self,
        ids: &[i64],
        from: &str,
        to: &[String],
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError>;
    /// The earliest due time after `now_ms` of a channel's pending rows: a worker sleeps until
    /// then instead of a whole poll interval, so escalation steps fire on time.
    async fn next_due(&self, channel: &str, now_ms: i64) -> Result<Option<i64>, StoreError>;
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;
    /// Vendor sends of a channel at or after `since_ms`, oldest first.
    async fn sends_since(&self, channel: &str, since_ms: i64) -> Result<Vec<i64>, StoreError>;
    async fn list_notifications(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<NotificationView>, StoreError>;
    /// Acknowledge the firing escalated alert (the firing `req.starts_at` names, when given):
    /// stop its pending steps, queue an announcement on every channel its chain notified (or is
    /// notifying now) and record who, how and from where, in one transaction.
    async fn acknowledge(
        &self,
        req: &AckRequest<'_>,
        now_ms: i64,
    ) -> Result<AckOutcome, StoreError>;
    /// Shorthand: acknowledge the current firing through the API, from an unknown address.
    async fn ack(
        &self,
        fingerprint: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<AckOutcome, StoreError> {
        let req = AckRequest {
            fingerprint,
            starts_at: None,
            by,
            via: AckVia::Api,
            address: None,
        };
        self.acknowledge(&req, now_ms).await
    }
    /// Firing escalated alerts with their chain state, oldest chain first (every one: for the
    /// planners; the API and the pages read [`Store::alerts_page`]).
    async fn list_alerts(&self) -> Result<Vec<AlertView>, StoreError>;
    /// One page of the firing escalated alerts, in (chain start, fingerprint) order after
    /// `after`: at most `limit`, with their chains read in one batch.
    async fn alerts_page(
        &self,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<Page<AlertView>, StoreError>;
    /// The firing escalated alerts among these fingerprints (any order; absent ones skipped).
    async fn alert_views(&self, fingerprints: &[String]) -> Result<Vec<AlertView>, StoreError>;
    /// One page of the firing alerts (escalated or not), oldest startsAt first, after `after`.
    async fn firing_page(
        &self,
        after: Option<&Cursor>,
        limit: i64,
    ) -> Result<Page<CurrentAlert>, StoreError>;
    /// How many alerts fire after `after` (all with `None`), counted up to `cap` at most: the
    /// count reads index entries, so it is bounded too (`cap` means "cap or more").
    async fn count_firing(&self, after: Option<&Cursor>, cap: i64) -> Result<i64, StoreError>;
    /// The latest event of each of these alerts (any order; unknown ones skipped).
    async fn current_of(&self, fingerprints: &[String]) -> Result<Vec<CurrentAlert>, StoreError>;
    /// One page of notifications, newest first, of one state or all, before the id in
    /// `before` (the cursor's key).
    async fn notifications_page(
        &self,
        state: Option<&str>,
        before: Option<&Cursor>,
        limit: i64,
    ) -> Result<Page<NotificationView>, StoreError>;
    /// Alerts whose latest event has this status (`firing`: every firing alert, escalated or
    /// not, oldest first; `resolved`: the `limit` most recent resolutions, newest first).
    async fn list_current(&self, status: &str, limit: i64)
    -> Result<Vec<CurrentAlert>, StoreError>;
    /// The newest `limit` audit entries across all alerts, newest first.
    async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError>;
    /// One page of everything that happened to one alert over all its firings: the `limit`
    /// newest entries older than `before` (the newest with `None`), oldest first; `next` leads
    /// further back. `None` when no event of the alert is stored (never received, or pruned:
    /// its audit rows may outlive it, in the audit trail, not here).
    async fn history_page(
        &self,
        fingerprint: &str,
        before: Option<&HistoryKey>,
        limit: i64,
    ) -> Result<Option<Page<HistoryItem>>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// Delete send records older than `before_ms` (the limiter needs only the last minute).
    async fn prune_sends(&self, before_ms: i64) -> Result<(), StoreError>;
    /// The latest event of an alert (`alert_current`), if the router ever received one.
    async fn current_event(&self, fingerprint: &str) -> Result<Option<AlertEvent>, StoreError>;
    /// Record a silence made on Alertmanager and a `silence` entry in the alert's audit trail
    /// (actor `created_by`), in one transaction. Returns the record's id.
    async fn record_silence(
        &self,
        s: &SilenceRecord,
        via: &str,
        address: Option<&str>,
    ) -> Result<i64, StoreError>;
    /// Silences not expired and not yet ended at `now_ms`, newest first.
    async fn active_silences(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<SilenceRecord>, StoreError>;
    /// Mark a silence expired with an `unsilence` audit entry; `false` when it already was.
    async fn expire_silence(
        &self,
        id: i64,
        by: &str,
        via: &str,
        address: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Claim `key` and queue `notices` (due now) in one transaction; `false` (nothing
    /// queued) when the key was claimed before, by this process or any other.
    async fn enqueue_once(
        &self,
        key: &str,
        notices: &[Notice],
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Start expecting these signals (`heartbeat`): a signal not stored yet counts as heard at
    /// `now_ms`, so a new monitor gets one full period before it can be missed. Signals already
    /// stored keep their state (a restart does not reset a deadline).
    async fn expect_signals(&self, names: &[String], now_ms: i64) -> Result<(), StoreError>;
    /// These signals were heard at `now_ms` (a later time never goes back).
    async fn signals_heard(&self, names: &[String], now_ms: i64) -> Result<(), StoreError>;
    /// Every stored signal.
    async fn signals(&self) -> Result<Vec<SignalRow>, StoreError>;
    /// Record that the alert `alert` (JSON) starting at `since` was raised for the signal's
    /// absence. `false` when one is recorded already (another replica, or an earlier tick).
    async fn signal_missing(&self, name: &str, since: i64, alert: &str)
    -> Result<bool, StoreError>;
    /// Clear the alert starting at `since` (its resolve was stored). `false` when it was
    /// cleared already.
    async fn signal_back(&self, name: &str, since: i64) -> Result<bool, StoreError>;
}

/// An expected signal as stored (`heartbeat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalRow {
    pub name: String,
    /// Unix ms of the last time it was heard (or first expected).
    pub last_seen: i64,
    /// startsAt of the alert raised for its absence, while that alert fires.
    pub missing_since: Option<i64>,
    /// That alert as stored (JSON of `model::AlertEvent`).
    pub alert: Option<String>,
}

/// Open the store named by the URL and run its migrations.
/// `sqlite_fsync`: commit with `synchronous=FULL` (a 2xx survives power loss) or `NORMAL`
/// (survives a process crash; the WAL is synced at checkpoints). Ignored for PostgreSQL.
pub async fn open(url: &str, sqlite_fsync: bool) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::connect(url).await?))
    } else {
        Ok(Arc::new(sqlite::open(url, sqlite_fsync).await?))
    }
}

impl NotificationView {
    /// Fill alertname and status from the stored event JSON.
    pub(crate) fn with_alert(mut self, payload: &str) -> NotificationView {
        if let Ok(ev) = serde_json::from_str::<AlertEvent>(payload) {
            self.alertname = ev.alertname().to_string();
            self.status = ev.status.as_str().to_string();
        }
        self
    }
}

/// An audit row with its fingerprint first.
pub(crate) type FullAuditRow = (String, i64, i64, String, String, String, Option<String>);

pub(crate) fn audit_entry(r: FullAuditRow) -> AuditEntry {
    let (fingerprint, starts_at, at, action, by, via, address) = r;
    AuditEntry {
        fingerprint,
        starts_at,
        at,
        action,
        by,
        via,
        address,
    }
}
