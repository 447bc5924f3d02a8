-- Every alert state change received (deduplicated) and the notifications it causes.
-- Times are Unix milliseconds (INTEGER) so both backends share one time model.
CREATE TABLE alert_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    group_key     TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER,
    payload       TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    UNIQUE (group_key, fingerprint, status, starts_at)
);

-- The outbox: one row per notification step. A row is due at due_at, claimed with a lease
-- (claimed_by, lease_until) and ends 'sent' or 'failed'. Escalation adds future-dated rows.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     INTEGER REFERENCES alert_events (id),
    fingerprint  TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    kind         TEXT    NOT NULL DEFAULT 'notify',
    -- NULL for a notification of its event (payload read from alert_events, written once);
    -- set for steps that carry their own content.
    payload      TEXT,
    state        TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    claimed_by   TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    sent_at      INTEGER
);
-- Claims scan a channel's pending rows in id order and stop at the batch size.
CREATE INDEX outbox_claim ON outbox (channel, id) WHERE state = 'pending';
CREATE INDEX outbox_order ON outbox (channel, fingerprint, id) WHERE state = 'pending';
CREATE INDEX outbox_pending_created ON outbox (created_at) WHERE state = 'pending';

-- Each message sent to a vendor, so a restarted router still honours the per-minute limit.
CREATE TABLE channel_sends (
    channel  TEXT    NOT NULL,
    sent_at  INTEGER NOT NULL
);
CREATE INDEX channel_sends_at ON channel_sends (channel, sent_at);
