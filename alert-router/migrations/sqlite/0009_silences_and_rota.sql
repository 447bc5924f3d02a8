-- Silences made from message links (one row per silence, covering every configured
-- Alertmanager) and the claims that make rota notices (handoff announcements, gap warnings,
-- ack reminders) happen once across restarts and replicas.
CREATE TABLE alert_silences (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint    TEXT    NOT NULL,
    -- the firing silenced
    starts_at      INTEGER NOT NULL,
    alertname      TEXT    NOT NULL,
    -- JSON object: the matchers (the alert's labels)
    labels         TEXT    NOT NULL,
    duration       TEXT    NOT NULL CHECK (duration IN ('1h', '4h', 'resolved')),
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    ends_at        INTEGER NOT NULL,
    -- JSON list of {url, id}: the silence on each Alertmanager
    alertmanagers  TEXT    NOT NULL,
    expired_at     INTEGER,
    expired_by     TEXT
);
CREATE INDEX alert_silences_active ON alert_silences (ends_at) WHERE expired_at IS NULL;

CREATE TABLE rota_claims (
    -- what the notice is about, e.g. handoff:primary:1773147600000
    key         TEXT    PRIMARY KEY,
    claimed_at  INTEGER NOT NULL
);
