-- Calls of calling channels (voice, "call until someone answers"): one row per call and
-- outbox row (alert) it was about, keyed by the vendor's call id. Attempts the vendor refused
-- to place (per-number flow control, an illegal number) have no call id. `outcome` stays NULL
-- while the call rings; a receipt or the receipt timeout sets it once.
CREATE TABLE voice_calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT,
    outbox_id   INTEGER NOT NULL,
    fingerprint TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    channel     TEXT    NOT NULL,
    step        INTEGER,
    callee      TEXT    NOT NULL,
    placed_at   INTEGER NOT NULL,
    outcome     TEXT,
    settled_at  INTEGER
);
CREATE INDEX voice_calls_call ON voice_calls (call_id);
CREATE INDEX voice_calls_outbox ON voice_calls (outbox_id);
CREATE INDEX voice_calls_alert ON voice_calls (fingerprint, id);
CREATE INDEX voice_calls_placed ON voice_calls (placed_at);

-- Call-status receipts as the vendor pushed them (Aliyun VoiceReport), once per call id:
-- pushes may repeat.
CREATE TABLE voice_receipts (
    call_id      TEXT    PRIMARY KEY,
    outcome      TEXT    NOT NULL,
    status_code  TEXT    NOT NULL,
    status_msg   TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    received_at  INTEGER NOT NULL
);
