-- Expected signals: heartbeat monitors and the dead man's switch (alert-router/src/heartbeat.rs).
-- Per signal, when it was last heard (Unix ms; for a signal not heard yet, when the router
-- first expected it) and, while its absence is alerted, that alert: its startsAt and the
-- event as sent (JSON), so its resolve carries the same labels even after a config change.
--
-- Written once for both dialects: this file lives in migrations/portable/, and
-- migrations/sqlite/ and migrations/postgres/ hold symlinks to it, so it may use only SQL both
-- accept (TEXT, BIGINT, PRIMARY KEY; no SERIAL or AUTOINCREMENT, no casts).
CREATE TABLE expected_signals (
    name           TEXT    PRIMARY KEY,
    last_seen      BIGINT  NOT NULL,
    missing_since  BIGINT,
    alert          TEXT
);
