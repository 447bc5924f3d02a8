-- Escalation: outbox rows of kind 'escalate' carry their step number and who to mention;
-- alert_state holds the chain of each escalated alert (which firing event started it, ack).
ALTER TABLE outbox ADD COLUMN step INTEGER;
ALTER TABLE outbox ADD COLUMN mentions TEXT;
CREATE INDEX outbox_chain ON outbox (fingerprint, kind, state);
CREATE INDEX outbox_event ON outbox (event_id);

CREATE TABLE alert_state (
    fingerprint       TEXT    PRIMARY KEY,
    -- The firing event that started the current chain.
    event_id          INTEGER NOT NULL REFERENCES alert_events (id),
    policy            TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    chain_started_at  INTEGER NOT NULL,
    acked_by          TEXT,
    acked_at          INTEGER,
    resolved_at       INTEGER
);
CREATE INDEX alert_state_status ON alert_state (status);
