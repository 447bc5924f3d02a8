-- Retention (alert-router/src/store/retention.rs) finds the firings whose resolve was received
-- before its cutoff, oldest first. Only resolved events are indexed, so intake of firing
-- events pays nothing for it. Everything else retention deletes by is indexed already
-- (outbox.event_id, voice_calls.outbox_id, alert_audit.at, primary keys).
--
-- Written once for both dialects (a symlink in migrations/sqlite/ and migrations/postgres/).
CREATE INDEX alert_events_resolved ON alert_events (received_at) WHERE status = 'resolved';
