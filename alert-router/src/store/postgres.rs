//! PostgreSQL store, for several router replicas sharing one outbox: rows are claimed with
//! `FOR UPDATE SKIP LOCKED` plus a lease, so two replicas never send the same row at once.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{NotificationView, OutboxRow, QueueStats, RoutedEvent, Store, StoreError};

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ingest(&self, events: &[RoutedEvent], now_ms: i64) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(events.len());
        for r in events {
            let e = &r.event;
            let payload = serde_json::to_string(e)?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO alert_events (group_key, fingerprint, status, starts_at, ends_at, payload, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&e.group_key)
            .bind(&e.fingerprint)
            .bind(&e.status)
            .bind(e.starts_at)
            .bind(e.ends_at)
            .bind(&payload)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                for ch in &r.channels {
                    sqlx::query(
                        "INSERT INTO outbox (event_id, fingerprint, channel, kind, payload, due_at, created_at)
                         VALUES ($1, $2, $3, 'notify', $4, $5, $6)",
                    )
                    .bind(id)
                    .bind(&e.fingerprint)
                    .bind(ch)
                    .bind(&payload)
                    .bind(now_ms)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            out.push(id.is_some());
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn claim(
        &self,
        channel: &str,
        now_ms: i64,
        limit: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "WITH c AS (
               SELECT o.id FROM outbox o
               WHERE o.channel = $3 AND o.state = 'pending' AND o.due_at <= $4
                 AND (o.lease_until IS NULL OR o.lease_until < $4)
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.fingerprint = o.fingerprint
                                 AND p.state = 'pending' AND p.id < o.id)
               ORDER BY o.id LIMIT $5 FOR UPDATE SKIP LOCKED)
             UPDATE outbox SET claimed_by = $1, lease_until = $2 FROM c WHERE outbox.id = c.id
             RETURNING outbox.id, outbox.fingerprint, outbox.channel, outbox.kind, outbox.payload, outbox.attempts::BIGINT AS attempts, outbox.created_at",
        )
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
                kind: r.try_get("kind")?,
                event: serde_json::from_str(&payload)?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
            });
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn mark_sent(&self, ids: &[i64], now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $1, claimed_by = NULL, lease_until = NULL, attempts = attempts + 1
             WHERE id = ANY($2)",
        )
        .bind(now_ms)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_send(&self, channel: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO channel_sends (channel, sent_at) VALUES ($1, $2)")
            .bind(channel)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn reschedule(&self, ids: &[i64], due_ms: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET due_at = $1, last_error = $2, attempts = attempts + 1, claimed_by = NULL, lease_until = NULL
             WHERE id = ANY($3)",
        )
        .bind(due_ms)
        .bind(error)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_failed(&self, ids: &[i64], error: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = 'failed', last_error = $1, attempts = attempts + 1, claimed_by = NULL, lease_until = NULL, sent_at = NULL, due_at = $2
             WHERE id = ANY($3)",
        )
        .bind(error)
        .bind(now_ms)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release(&self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET claimed_by = NULL, lease_until = NULL WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
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
        Ok(sqlx::query_scalar("SELECT sent_at FROM channel_sends WHERE channel = $1 AND sent_at >= $2 ORDER BY sent_at")
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
        let rows = sqlx::query(
            "SELECT id, channel, fingerprint, payload, state, attempts::BIGINT AS attempts, last_error, created_at, due_at, sent_at FROM outbox
             WHERE ($1::TEXT IS NULL OR state = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
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
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn prune_sends(&self, before_ms: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM channel_sends WHERE sent_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
