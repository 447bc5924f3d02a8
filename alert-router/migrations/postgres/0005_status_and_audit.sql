-- The status page lists every alert, escalated or not: alert_current holds, per fingerprint,
-- the latest event (latest startsAt; at equal startsAt the resolve wins), kept by the ingest
-- transaction, so the page reads one small table instead of the whole event history.
CREATE TABLE alert_current (
    fingerprint  TEXT    PRIMARY KEY,
    event_id     BIGINT  NOT NULL REFERENCES alert_events (id),
    status       TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at    BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX alert_current_status ON alert_current (status, updated_at);
INSERT INTO alert_current (fingerprint, event_id, status, starts_at, updated_at)
SELECT e.fingerprint, e.id, e.status, e.starts_at, e.received_at FROM alert_events e
WHERE e.id = (
    SELECT d.id FROM alert_events d WHERE d.fingerprint = e.fingerprint
    ORDER BY d.starts_at DESC, CASE WHEN d.status = 'resolved' THEN 1 ELSE 0 END DESC, d.id DESC
    LIMIT 1);

-- Who did what to which firing, how and from where: acknowledgements now, silences later.
-- Escalation steps are not copied here; their sent outbox rows are their record.
CREATE TABLE alert_audit (
    id           BIGSERIAL PRIMARY KEY,
    fingerprint  TEXT    NOT NULL,
    starts_at    BIGINT  NOT NULL,
    at           BIGINT  NOT NULL,
    action       TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    -- api, page or link
    via          TEXT    NOT NULL,
    -- the client's IP address as the router saw the connection (NULL when unknown)
    address      TEXT
);
CREATE INDEX alert_audit_fingerprint ON alert_audit (fingerprint, at);
CREATE INDEX alert_audit_at ON alert_audit (at);
