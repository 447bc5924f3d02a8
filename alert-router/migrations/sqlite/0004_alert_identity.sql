-- An alert's identity is (fingerprint, startsAt): the same firing arriving under another
-- groupKey (Alertmanager regrouped it after a group_by change) is a duplicate of the event
-- already stored, so it neither restarts the chain nor clears its acknowledgement.
-- Earlier versions stored such regrouped copies as new events: point everything at the first
-- copy, drop the others, then make the identity unique.
CREATE INDEX alert_events_identity_tmp ON alert_events (fingerprint, status, starts_at, id);
UPDATE outbox SET event_id = (
    SELECT MIN(d.id) FROM alert_events e
    JOIN alert_events d ON d.fingerprint = e.fingerprint AND d.status = e.status AND d.starts_at = e.starts_at
    WHERE e.id = outbox.event_id)
WHERE event_id IS NOT NULL;
UPDATE alert_state SET event_id = (
    SELECT MIN(d.id) FROM alert_events e
    JOIN alert_events d ON d.fingerprint = e.fingerprint AND d.status = e.status AND d.starts_at = e.starts_at
    WHERE e.id = alert_state.event_id);
DELETE FROM alert_events WHERE id NOT IN (
    SELECT MIN(id) FROM alert_events GROUP BY fingerprint, status, starts_at);
DROP INDEX alert_events_identity_tmp;
-- The older UNIQUE (group_key, fingerprint, status, starts_at) stays: implied by this one,
-- and removing it from SQLite would mean rebuilding the table.
CREATE UNIQUE INDEX alert_events_identity ON alert_events (fingerprint, status, starts_at);
