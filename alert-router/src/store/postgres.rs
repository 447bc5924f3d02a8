//! PostgreSQL store, for several router replicas sharing one outbox: rows are claimed with
//! `FOR UPDATE SKIP LOCKED` plus a lease, so two replicas never send the same row at once.

use std::time::Duration;

use async_trait::async_trait;
use std::collections::HashMap;

use sqlx::Postgres;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{QueryBuilder, Row};

use super::notices;
use super::{
    AckOutcome, AckRequest, AlertView, AuditEntry, CurrentAlert, HistoryEntry, INSERT_CHUNK,
    KIND_ACK, KIND_ESCALATE, KIND_NOTIFY, NotificationView, OutboxRow, QueueStats, RoutedEvent,
    Store, StoreError, ack_event, fold_chain,
};

fn mentions_json(m: &[String]) -> Option<String> {
    (!m.is_empty()).then(|| serde_json::to_string(m).expect("a list of strings always serialises"))
}

/// Delete the alert's escalation steps that have not gone out. A row claimed by a live worker
/// (lease not expired) is in flight: it completes and counts as notified.
async fn cancel_pending(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    fingerprint: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM outbox WHERE fingerprint = $1 AND kind = 'escalate' AND state = 'pending'
           AND (lease_until IS NULL OR lease_until < $2)",
    )
    .bind(fingerprint)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Channels a chain has notified or is notifying (in flight), in first-notified order.
async fn notified_channels(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    chain_event: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT channel FROM outbox WHERE event_id = $1 AND kind = 'escalate'
           AND (state = 'sent' OR claimed_by IS NOT NULL)
         GROUP BY channel ORDER BY MIN(id)",
    )
    .bind(chain_event)
    .fetch_all(&mut **tx)
    .await?)
}

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
        // Multi-row statements: a group commit of N webhooks costs a handful of round trips to
        // the database, not 2N.
        let payloads: Vec<String> = events
            .iter()
            .map(|r| serde_json::to_string(&r.event))
            .collect::<Result<_, _>>()?;
        let mut tx = self.pool.begin().await?;
        let mut ids: Vec<Option<i64>> = Vec::with_capacity(events.len());
        for (chunk_no, chunk) in events.chunks(INSERT_CHUNK).enumerate() {
            let base = chunk_no * INSERT_CHUNK;
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO alert_events (group_key, fingerprint, status, starts_at, ends_at, payload, received_at) ",
            );
            qb.push_values(chunk.iter().enumerate(), |mut b, (i, r)| {
                let e = &r.event;
                b.push_bind(&e.group_key)
                    .push_bind(&e.fingerprint)
                    .push_bind(&e.status)
                    .push_bind(e.starts_at)
                    .push_bind(e.ends_at)
                    .push_bind(&payloads[base + i])
                    .push_bind(now_ms);
            });
            qb.push(
                // Any unique key: (fingerprint, status, startsAt) is the identity (0004); a
                // regrouped copy of a stored firing is a duplicate.
                " ON CONFLICT DO NOTHING RETURNING id, fingerprint, status, starts_at",
            );
            let rows = qb.build().fetch_all(&mut *tx).await?;
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
                ids.push(inserted.remove(&(e.fingerprint.clone(), e.status.clone(), e.starts_at)));
            }
        }
        // Escalation: a new firing event with a plan (re)starts its alert's chain; a resolved
        // event of an alert with a running chain stops it and goes to the channels it notified.
        let mut channels: Vec<Vec<String>> = events.iter().map(|r| r.channels.clone()).collect();
        for (i, r) in events.iter().enumerate() {
            let Some(id) = ids[i] else { continue };
            let fp = &r.event.fingerprint;
            if r.event.status == "firing" {
                if let Some(plan) = &r.escalation {
                    cancel_pending(&mut tx, fp, now_ms).await?;
                    sqlx::query(
                        "INSERT INTO alert_state (fingerprint, event_id, policy, status, chain_started_at)
                         VALUES ($1, $2, $3, 'firing', $4)
                         ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, policy = excluded.policy,
                           status = 'firing', chain_started_at = excluded.chain_started_at,
                           acked_by = NULL, acked_at = NULL, resolved_at = NULL",
                    )
                    .bind(fp)
                    .bind(id)
                    .bind(&plan.policy)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    for chunk in plan.steps.chunks(INSERT_CHUNK) {
                        let mut qb = QueryBuilder::<Postgres>::new(
                            "INSERT INTO outbox (event_id, fingerprint, channel, kind, step, mentions, due_at, created_at) ",
                        );
                        qb.push_values(chunk, |mut b, st| {
                            b.push_bind(id)
                                .push_bind(fp)
                                .push_bind(&st.channel)
                                .push_bind(KIND_ESCALATE)
                                .push_bind(st.step)
                                .push_bind(mentions_json(&st.mentions))
                                .push_bind(now_ms + st.offset_ms)
                                .push_bind(now_ms);
                        });
                        qb.build().execute(&mut *tx).await?;
                    }
                }
            } else {
                let chain: Option<i64> = sqlx::query_scalar(
                    "SELECT event_id FROM alert_state WHERE fingerprint = $1 AND status = 'firing' FOR UPDATE",
                )
                .bind(fp)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(chain) = chain {
                    cancel_pending(&mut tx, fp, now_ms).await?;
                    channels[i] = notified_channels(&mut tx, chain).await?;
                    sqlx::query(
                        "UPDATE alert_state SET status = 'resolved', resolved_at = $1 WHERE fingerprint = $2",
                    )
                    .bind(now_ms)
                    .bind(fp)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        for chunk in super::current_updates(events, &ids).chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO alert_current (fingerprint, event_id, status, starts_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, (i, id)| {
                let e = &events[*i].event;
                b.push_bind(&e.fingerprint)
                    .push_bind(*id)
                    .push_bind(&e.status)
                    .push_bind(e.starts_at)
                    .push_bind(now_ms);
            });
            qb.push(super::CURRENT_UPSERT_TAIL);
            qb.build().execute(&mut *tx).await?;
        }
        let outbox: Vec<(i64, usize, &String)> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| id.map(|id| (id, i)))
            .flat_map(|(id, i)| channels[i].iter().map(move |c| (id, i, c)))
            .collect();
        for chunk in outbox.chunks(INSERT_CHUNK) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO outbox (event_id, fingerprint, channel, kind, due_at, created_at) ",
            );
            qb.push_values(chunk, |mut b, (id, i, ch)| {
                b.push_bind(*id)
                    .push_bind(&events[*i].event.fingerprint)
                    .push_bind(*ch)
                    .push_bind(KIND_NOTIFY)
                    .push_bind(now_ms)
                    .push_bind(now_ms);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ids.iter().map(Option::is_some).collect())
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
             RETURNING outbox.id, outbox.fingerprint, outbox.channel, outbox.kind, outbox.attempts::BIGINT AS attempts, outbox.created_at, outbox.due_at, outbox.step, outbox.mentions,
                       COALESCE(outbox.payload, (SELECT e.payload FROM alert_events e WHERE e.id = outbox.event_id)) AS payload",
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

    async fn fail_over(
        &self,
        ids: &[i64],
        from: &str,
        to: &[String],
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM outbox WHERE id = ANY($1) AND state = 'pending' AND failover_from IS NULL
             ORDER BY id FOR UPDATE",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        if moved.is_empty() || to.is_empty() {
            return Ok(Vec::new());
        }
        for ch in to {
            sqlx::query(
                "INSERT INTO outbox (event_id, fingerprint, channel, kind, payload, step, due_at, created_at, failover_from)
                 SELECT event_id, fingerprint, $1, kind, payload, step, $2, created_at, channel FROM outbox
                 WHERE id = ANY($3) ORDER BY id",
            )
            .bind(ch)
            .bind(now_ms)
            .bind(&moved)
            .execute(&mut *tx)
            .await?;
        }
        let actor = format!("{from} -> {}", to.join(", "));
        sqlx::query(
            "INSERT INTO alert_audit (fingerprint, starts_at, at, action, actor, via)
             SELECT o.fingerprint, e.starts_at, $1, 'failover', $2, 'router' FROM outbox o
             JOIN alert_events e ON e.id = o.event_id WHERE o.id = ANY($3)",
        )
        .bind(now_ms)
        .bind(&actor)
        .bind(&moved)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET state = 'failed', last_error = $1, attempts = attempts + 1, claimed_by = NULL, lease_until = NULL, due_at = $2
             WHERE id = ANY($3)",
        )
        .bind(format!("failed over to {}: {reason}", to.join(", ")))
        .bind(now_ms)
        .bind(&moved)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn release(&self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET claimed_by = NULL, lease_until = NULL WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
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
            "SELECT id, channel, fingerprint, COALESCE(payload, (SELECT e.payload FROM alert_events e WHERE e.id = outbox.event_id)) AS payload, state, attempts::BIGINT AS attempts, last_error, created_at, due_at, sent_at FROM outbox
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

    async fn acknowledge(
        &self,
        req: &AckRequest<'_>,
        now_ms: i64,
    ) -> Result<AckOutcome, StoreError> {
        let (fingerprint, by) = (req.fingerprint, req.by);
        // FOR UPDATE: an ack and a resolve (or a second ack) of one alert serialise.
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT s.event_id, s.acked_by, s.acked_at, e.payload, e.starts_at FROM alert_state s
             JOIN alert_events e ON e.id = s.event_id WHERE s.fingerprint = $1 AND s.status = 'firing'
             FOR UPDATE OF s",
        )
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
        sqlx::query(super::AUDIT_INSERT_PG)
            .bind(fingerprint)
            .bind(starts_at)
            .bind(now_ms)
            .bind(by)
            .bind(req.via.as_str())
            .bind(req.address.as_deref())
            .execute(&mut *tx)
            .await?;
        cancel_pending(&mut tx, fingerprint, now_ms).await?;
        let announced = notified_channels(&mut tx, chain).await?;
        let ev = serde_json::to_string(&ack_event(&payload, by, now_ms)?)?;
        for ch in &announced {
            sqlx::query(
                "INSERT INTO outbox (event_id, fingerprint, channel, kind, payload, due_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(chain)
            .bind(fingerprint)
            .bind(ch)
            .bind(KIND_ACK)
            .bind(&ev)
            .bind(now_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(AckOutcome::Acked { announced })
    }

    async fn list_alerts(&self) -> Result<Vec<AlertView>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.fingerprint, s.event_id, s.policy, s.chain_started_at, s.acked_by, s.acked_at, e.payload
             FROM alert_state s JOIN alert_events e ON e.id = s.event_id
             WHERE s.status = 'firing' ORDER BY s.chain_started_at, s.fingerprint",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let payload: String = r.try_get("payload")?;
            let ev: crate::model::AlertEvent = serde_json::from_str(&payload)?;
            let mut view = AlertView::new(
                &ev,
                r.try_get("policy")?,
                r.try_get("chain_started_at")?,
                r.try_get("acked_by")?,
                r.try_get("acked_at")?,
            );
            let steps = sqlx::query_as::<_, super::ChainRow>(
                "SELECT channel, step, state, due_at, sent_at, mentions FROM outbox
                 WHERE event_id = $1 AND kind = 'escalate' ORDER BY id",
            )
            .bind(r.try_get::<i64, _>("event_id")?)
            .fetch_all(&self.pool)
            .await?;
            fold_chain(&mut view, steps);
            out.push(view);
        }
        Ok(out)
    }

    async fn list_current(
        &self,
        status: &str,
        limit: i64,
    ) -> Result<Vec<CurrentAlert>, StoreError> {
        // Firing: oldest first (the longest-burning on top); resolved: the latest first.
        let order = if status == "firing" {
            "c.starts_at, c.fingerprint"
        } else {
            "c.updated_at DESC, c.fingerprint"
        };
        let rows = sqlx::query_as::<_, (i64, String)>(&format!(
            "SELECT c.updated_at, e.payload FROM alert_current c JOIN alert_events e ON e.id = c.event_id
             WHERE c.status = $1 ORDER BY {order} LIMIT $2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(updated_at, payload)| {
                let ev: crate::model::AlertEvent = serde_json::from_str(&payload)?;
                Ok(CurrentAlert::new(&ev, updated_at))
            })
            .collect()
    }

    async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query_as::<_, super::FullAuditRow>(
            "SELECT fingerprint, starts_at, at, action, actor, via, address FROM alert_audit
             ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(super::audit_entry).collect())
    }

    async fn history(&self, fingerprint: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let events = sqlx::query_as::<_, super::EventRow>(
            "SELECT status, starts_at, received_at FROM alert_events WHERE fingerprint = $1
             ORDER BY received_at DESC LIMIT $2",
        )
        .bind(fingerprint)
        .bind(super::MAX_HISTORY)
        .fetch_all(&self.pool)
        .await?;
        let audit = sqlx::query_as::<_, super::AuditRow>(
            "SELECT starts_at, at, action, actor, via, address FROM alert_audit WHERE fingerprint = $1
             ORDER BY at DESC LIMIT $2",
        )
        .bind(fingerprint)
        .bind(super::MAX_HISTORY)
        .fetch_all(&self.pool)
        .await?;
        let sends = sqlx::query_as::<_, super::SendRow>(
            "SELECT o.kind, o.step, o.channel, o.mentions, o.sent_at, e.starts_at
             FROM outbox o JOIN alert_events e ON e.id = o.event_id
             WHERE e.fingerprint = $1 AND o.state = 'sent' ORDER BY o.sent_at DESC LIMIT $2",
        )
        .bind(fingerprint)
        .bind(super::MAX_HISTORY)
        .fetch_all(&self.pool)
        .await?;
        Ok(super::build_history(events, audit, sends))
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

    async fn current_event(
        &self,
        fingerprint: &str,
    ) -> Result<Option<crate::model::AlertEvent>, StoreError> {
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
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(notices::SILENCE_INSERT)
            .bind(&s.fingerprint)
            .bind(s.starts_at)
            .bind(&s.alertname)
            .bind(serde_json::to_string(&s.labels)?)
            .bind(&s.duration)
            .bind(&s.created_by)
            .bind(s.created_at)
            .bind(s.ends_at)
            .bind(serde_json::to_string(&s.alertmanagers)?)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(notices::AUDIT_INSERT)
            .bind(&s.fingerprint)
            .bind(s.starts_at)
            .bind(s.created_at)
            .bind(format!("silence_{}", s.duration))
            .bind(&s.created_by)
            .bind(via)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
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
        let mut tx = self.pool.begin().await?;
        let Some((fingerprint, starts_at)) =
            sqlx::query_as::<_, (String, i64)>(notices::SILENCE_EXPIRE)
                .bind(now_ms)
                .bind(by)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        sqlx::query(notices::AUDIT_INSERT)
            .bind(fingerprint)
            .bind(starts_at)
            .bind(now_ms)
            .bind("unsilence")
            .bind(by)
            .bind(via)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn enqueue_once(
        &self,
        key: &str,
        notices: &[super::Notice],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(notices::CLAIM)
            .bind(key)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if claimed == 0 {
            return Ok(false);
        }
        for n in notices {
            sqlx::query(notices::NOTICE_INSERT)
                .bind(&n.fingerprint)
                .bind(&n.channel)
                .bind(&n.payload)
                .bind(notices::mentions(&n.mentions))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
