//! What the store keeps for silences made from messages and for rota notices (migration 0009).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One silence on one Alertmanager.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AmSilence {
    /// The Alertmanager's base URL as configured.
    pub url: String,
    /// Alertmanager's silence id.
    pub id: String,
}

/// A silence the router made (on every configured Alertmanager), as the status page and
/// `GET /api/v1/silences` show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SilenceRecord {
    pub id: i64,
    pub fingerprint: String,
    /// The firing silenced (Unix milliseconds).
    pub starts_at: i64,
    pub alertname: String,
    /// The matchers (the alert's labels, all equality).
    pub labels: BTreeMap<String, String>,
    /// `1h`, `4h` or `resolved`.
    pub duration: String,
    pub created_by: String,
    pub created_at: i64,
    /// When the silences end in Alertmanager (for `resolved`: the latest end).
    pub ends_at: i64,
    #[serde(skip)]
    pub alertmanagers: Vec<AmSilence>,
    pub expired_at: Option<i64>,
    pub expired_by: Option<String>,
}

/// One outbox row of a router notice (handoff, gap, ack reminder): its own payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub fingerprint: String,
    pub channel: String,
    /// The event JSON the channel renders.
    pub payload: String,
    pub mentions: Vec<String>,
}

// The statements, the same text in both dialects (`$n` parameters, which SQLite reads too).
pub(crate) const CURRENT_EVENT: &str = "SELECT e.payload FROM alert_current c
    JOIN alert_events e ON e.id = c.event_id WHERE c.fingerprint = $1";
pub(crate) const SILENCE_INSERT: &str = "INSERT INTO alert_silences (fingerprint, starts_at,
    alertname, labels, duration, created_by, created_at, ends_at, alertmanagers)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
pub(crate) const AUDIT_INSERT: &str = "INSERT INTO alert_audit (fingerprint, starts_at, at,
    action, actor, via, address) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const SILENCES_ACTIVE: &str = "SELECT id, fingerprint, starts_at, alertname, labels,
    duration, created_by, created_at, ends_at, alertmanagers, expired_at, expired_by
    FROM alert_silences WHERE expired_at IS NULL AND ends_at > $1
    ORDER BY created_at DESC, id DESC LIMIT $2";
pub(crate) const SILENCE_EXPIRE: &str = "UPDATE alert_silences SET expired_at = $1,
    expired_by = $2 WHERE id = $3 AND expired_at IS NULL RETURNING fingerprint, starts_at";
pub(crate) const CLAIM: &str =
    "INSERT INTO rota_claims (key, claimed_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING
     RETURNING key";
pub(crate) const NOTICE_INSERT: &str = "INSERT INTO outbox (fingerprint, channel, kind, payload,
    mentions, due_at, created_at) VALUES ($1, $2, 'notice', $3, $4, $5, $5)";

/// A row of `SILENCES_ACTIVE`.
pub(crate) type SilenceRow = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<i64>,
    Option<String>,
);

pub(crate) fn silence_record(r: SilenceRow) -> Result<SilenceRecord, serde_json::Error> {
    let (id, fingerprint, starts_at, alertname, labels, duration, created_by, created_at) =
        (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7);
    Ok(SilenceRecord {
        id,
        fingerprint,
        starts_at,
        alertname,
        labels: serde_json::from_str(&labels)?,
        duration,
        created_by,
        created_at,
        ends_at: r.8,
        alertmanagers: serde_json::from_str(&r.9)?,
        expired_at: r.10,
        expired_by: r.11,
    })
}

pub(crate) fn mentions(m: &[String]) -> Option<String> {
    (!m.is_empty()).then(|| serde_json::to_string(m).unwrap_or_default())
}
