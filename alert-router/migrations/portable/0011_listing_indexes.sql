-- Listings answer from indexes, in their own order, whatever the stored history (issue 22):
-- each query below seeks to its first row and reads at most one page, never sorting or
-- scanning a table. Written once for both dialects (migrations/portable/, symlinked):
-- partial indexes and DROP ... IF EXISTS mean the same on SQLite and PostgreSQL.

-- /api/v1/alerts and the status page's escalation columns: firing chains in
-- (chain_started_at, fingerprint) order, the keyset cursor of the API.
CREATE INDEX alert_state_firing ON alert_state (chain_started_at, fingerprint) WHERE status = 'firing';
-- Superseded: SQLite's planner, without statistics, preferred this equality on the status
-- alone (every firing chain, then a sort) over the ordered index above.
DROP INDEX IF EXISTS alert_state_status;

-- The status page: firing alerts oldest first (the cursor of its pages), and the latest
-- resolutions newest first. Resolved rows, the bulk of alert_current, never enter the first.
CREATE INDEX alert_current_firing ON alert_current (starts_at, fingerprint) WHERE status = 'firing';
CREATE INDEX alert_current_resolved ON alert_current (updated_at, fingerprint) WHERE status = 'resolved';
-- Superseded by the two above (same reason as alert_state_status).
DROP INDEX IF EXISTS alert_current_status;

-- An alert's history: its events and its sent notifications newest first, cut at the limit.
CREATE INDEX alert_events_history ON alert_events (fingerprint, received_at);
CREATE INDEX outbox_sent_history ON outbox (fingerprint, sent_at) WHERE state = 'sent';

-- /api/v1/notifications?state=...: one state's rows newest first (a few failed among a
-- million sent would otherwise walk the whole table).
CREATE INDEX outbox_state_id ON outbox (state, id);

-- The status page's activity: audit rows newest first with the id as tie-break (an index on
-- (at) alone carries the id on SQLite, not on PostgreSQL).
CREATE INDEX alert_audit_recent ON alert_audit (at, id);
