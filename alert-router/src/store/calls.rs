//! The store side of "call until someone answers" (`crate::delivery::calls`): calls keyed by the
//! vendor's call id (`voice_calls`), the receipts as pushed (`voice_receipts`, migration
//! 0008), and what a call or a receipt does to the outbox row carrying the step's sequence.
//! Written once for both dialects like the rest of the store (`sql.rs`); rows are touched one
//! id at a time (a call is about one or a few alerts). Transactions that read before they write
//! run on the writer (SQLite's single connection serialises them).

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::history::{CALL_COLUMNS, CallView, CallViewRow, call_view};
use super::sql::{Dialect, SqlStore, sql_impl};
use super::{StoreError, retry_busy};

use crate::core::model::CallOutcome;

/// A call (or an attempt the vendor refused) about some outbox rows.
#[derive(Debug, Clone)]
pub struct PlacedCall {
    /// The vendor's call id (Aliyun `CallId`), the key receipts name; `None` when the vendor
    /// would not place the call.
    pub call_id: Option<String>,
    pub channel: String,
    /// The outbox rows (alerts) this call is about.
    pub rows: Vec<CallRow>,
    pub number: String,
    pub at: i64,
}

/// One outbox row a call is about.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub id: i64,
    pub fingerprint: String,
    pub starts_at: i64,
    pub step: Option<i64>,
}

impl PlacedCall {
    pub fn ids(&self) -> Vec<i64> {
        self.rows.iter().map(|r| r.id).collect()
    }
}

/// One call-status receipt as stored.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub call_id: String,
    pub outcome: CallOutcome,
    pub status_code: String,
    pub status_msg: String,
    /// The receipt as pushed (one array element), kept for audit.
    pub raw: String,
}

/// Calls as a store keeps them; a supertrait of `Store`, implemented by each backend through
/// [`call_methods!`].
#[async_trait]
pub trait CallStore: Send + Sync {
    /// A call was placed (`crate::delivery::calls`): record it and put its rows back to wait for the
    /// receipt with the people still to call (`rest`), due at `due_ms` (the receipt timeout);
    /// with nobody left the rows are done. Earlier calls of the rows still without an outcome
    /// get `no_receipt`. One transaction. Returns the rows for which this is the first call
    /// placed (their step has just gone out).
    async fn call_placed(
        &self,
        call: &PlacedCall,
        rest: &[String],
        due_ms: i64,
    ) -> Result<Vec<i64>, StoreError>;
    /// An attempt the vendor would not place (flow control, refused number), for the history.
    async fn call_skipped(&self, call: &PlacedCall, outcome: CallOutcome)
    -> Result<(), StoreError>;
    /// Give claimed rows back with these people to call, due at `due_ms`.
    async fn call_requeue(
        &self,
        ids: &[i64],
        mentions: &[String],
        due_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// Store a receipt of a call we placed and act on it once: answered marks the call's rows
    /// sent (the step stops), any other outcome makes them due now (the next person is
    /// called). Returns the call's channel; `None` when no call of ours has this id.
    async fn call_receipt(&self, r: &Receipt, now_ms: i64) -> Result<Option<String>, StoreError>;
    /// Calls placed at or after `since_ms`, at most `limit` (the newest), oldest first.
    async fn recent_calls(&self, since_ms: i64, limit: i64) -> Result<Vec<CallView>, StoreError>;
}

sql_impl! {
impl<D> [SqlStore<D>] {
    /// One `voice_calls` row: a call (or refused attempt) about outbox row `r`.
    async fn insert_call(
        tx: &mut <D as Database>::Connection,
        call: &PlacedCall,
        r: &CallRow,
        outcome: Option<CallOutcome>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO voice_calls (call_id, outbox_id, fingerprint, starts_at, channel, step, callee, placed_at, outcome, settled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(call.call_id.clone())
        .bind(r.id)
        .bind(r.fingerprint.clone())
        .bind(r.starts_at)
        .bind(call.channel.clone())
        .bind(r.step)
        .bind(call.number.clone())
        .bind(call.at)
        .bind(outcome.map(|o| o.as_str().to_string()))
        .bind(outcome.map(|_| call.at))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Give a claimed row back with the people still to call, due at `due_ms`.
    async fn wait_row(
        tx: &mut <D as Database>::Connection,
        id: i64,
        mentions: &[String],
        due_ms: i64,
        last_error: Option<String>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET mentions = $1, due_at = $2, last_error = $3, claimed_by = NULL,
               lease_until = NULL
             WHERE id = $4 AND state = 'pending'",
        )
        .bind(serde_json::to_string(mentions)?)
        .bind(due_ms)
        .bind(last_error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// A step's sequence is over (someone answered, or nobody is left): its row is
    /// sent, and its mentions become everyone it called, for the history.
    async fn finish_row(
        tx: &mut <D as Database>::Connection,
        id: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        let called: Vec<String> = sqlx::query_scalar(
            "SELECT callee FROM voice_calls WHERE outbox_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $1, mentions = $2, claimed_by = NULL,
               lease_until = NULL, attempts = attempts + 1
             WHERE id = $3 AND state = 'pending'",
        )
        .bind(at)
        .bind(serde_json::to_string(&called)?)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
}

sql_impl! {
#[async_trait]
impl<D> [CallStore for SqlStore<D>] {
    async fn call_placed(
        &self,
        call: &PlacedCall,
        rest: &[String],
        due_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        retry_busy!("call_placed", async {
        let mut tx = self.writer.begin_with(D::BEGIN_WRITE).await?;
        let mut first = Vec::new();
        for r in &call.rows {
            let earlier: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM voice_calls WHERE outbox_id = $1 AND call_id IS NOT NULL",
            )
            .bind(r.id)
            .fetch_one(&mut *tx)
            .await?;
            if earlier == 0 {
                first.push(r.id);
            }
            // An earlier call of this row still without an outcome: its receipt did not
            // come in time, which is why the row fell due again.
            sqlx::query(
                "UPDATE voice_calls SET outcome = 'no_receipt', settled_at = $1
                 WHERE outbox_id = $2 AND outcome IS NULL",
            )
            .bind(call.at)
            .bind(r.id)
            .execute(&mut *tx)
            .await?;
            Self::insert_call(&mut *tx, call, r, None).await?;
            if rest.is_empty() {
                // Nobody left to call: the step is done.
                Self::finish_row(&mut *tx, r.id, call.at).await?;
            } else {
                // Wait for the receipt; past `due_ms` the row falls due and calls the next.
                Self::wait_row(&mut *tx, r.id, rest, due_ms, None).await?;
            }
        }
        tx.commit().await?;
        Ok(first)
    })
    }

    async fn call_skipped(
        &self,
        call: &PlacedCall,
        outcome: CallOutcome,
    ) -> Result<(), StoreError> {
        retry_busy!("call_skipped", async {
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        for r in &call.rows {
            Self::insert_call(&mut *tx, call, r, Some(outcome)).await?;
        }
        tx.commit().await?;
        Ok(())
    })
    }

    async fn call_requeue(
        &self,
        ids: &[i64],
        mentions: &[String],
        due_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        retry_busy!("call_requeue", async {
        let mut tx = self.pool.begin_with(D::BEGIN_WRITE).await?;
        for id in ids {
            Self::wait_row(&mut *tx, *id, mentions, due_ms, Some(reason.to_string())).await?;
        }
        tx.commit().await?;
        Ok(())
    })
    }

    async fn call_receipt(
        &self,
        r: &Receipt,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        retry_busy!("call_receipt", async {
        let mut tx = self.writer.begin_with(D::BEGIN_WRITE).await?;
        let channel: Option<String> = sqlx::query_scalar(
            "SELECT channel FROM voice_calls WHERE call_id = $1 ORDER BY id LIMIT 1",
        )
        .bind(r.call_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(channel) = channel else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO voice_receipts (call_id, outcome, status_code, status_msg, body, received_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(r.call_id.clone())
        .bind(r.outcome.as_str())
        .bind(r.status_code.clone())
        .bind(r.status_msg.clone())
        .bind(r.raw.clone())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // Once: a repeated push, or a receipt after the timeout already decided, changes
        // nothing.
        let rows: Vec<i64> = sqlx::query_scalar(
            "UPDATE voice_calls SET outcome = $1, settled_at = $2 WHERE call_id = $3 AND outcome IS NULL
             RETURNING outbox_id",
        )
        .bind(r.outcome.as_str())
        .bind(now_ms)
        .bind(r.call_id.clone())
        .fetch_all(&mut *tx)
        .await?;
        for id in rows {
            if r.outcome == CallOutcome::Answered {
                // Someone answered: the step stops here.
                Self::finish_row(&mut *tx, id, now_ms).await?;
            } else {
                // Unanswered: the next person is called now (a row claimed right now
                // is already on its way).
                sqlx::query(
                    "UPDATE outbox SET due_at = $1
                     WHERE id = $2 AND state = 'pending' AND (lease_until IS NULL OR lease_until < $1)",
                )
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Some(channel))
    })
    }

    async fn recent_calls(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<CallView>, StoreError> {
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM voice_calls WHERE placed_at >= $1 ORDER BY id DESC LIMIT $2"
        );
        let rows: Vec<CallViewRow> = sqlx::query_as(&sql)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .rev()
            .map(call_view)
            .collect())
    }
}
}
