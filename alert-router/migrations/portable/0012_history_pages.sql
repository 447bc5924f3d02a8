-- An alert's history by keyset page (store::history): each of its four tables is read newest
-- first from (fingerprint, time, id), the id ordering rows of one millisecond, so that a
-- page boundary among them is one seek. Each replaces the (fingerprint, time) or
-- (fingerprint, id) index of the same name, which it serves as well (retention's lookups
-- by fingerprint use their leading column).
DROP INDEX IF EXISTS alert_events_history;
CREATE INDEX alert_events_history ON alert_events (fingerprint, received_at, id);
DROP INDEX IF EXISTS outbox_sent_history;
CREATE INDEX outbox_sent_history ON outbox (fingerprint, sent_at, id) WHERE state = 'sent';
DROP INDEX IF EXISTS alert_audit_fingerprint;
CREATE INDEX alert_audit_fingerprint ON alert_audit (fingerprint, at, id);
DROP INDEX IF EXISTS voice_calls_alert;
CREATE INDEX voice_calls_alert ON voice_calls (fingerprint, placed_at, id);
