//! The Alertmanager webhook payload (version 4) and the alert event we store per alert.
//!
//! Parsing is lenient where Alertmanager versions differ (unknown fields, missing optional
//! fields, a missing fingerprint) and strict where a wrong value would misroute or mis-deduplicate
//! (status, startsAt), so a bad body is refused with a reason instead of stored half-right.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
pub struct WebhookPayload {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(rename = "groupKey", default)]
    pub group_key: Option<String>,
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(rename = "externalURL", default)]
    pub external_url: Option<String>,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize)]
pub struct WebhookAlert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", default)]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Whether an alert fires or has resolved; written as Alertmanager writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }

    /// Alertmanager's text; `None` for anything else.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "firing" => Some(Status::Firing),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert state change as received; the unit of deduplication and notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AlertEvent {
    pub group_key: String,
    pub fingerprint: String,
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unix milliseconds.
    pub starts_at: i64,
    /// Unix milliseconds; only meaningful for resolved alerts.
    pub ends_at: Option<i64>,
    pub generator_url: Option<String>,
    pub receiver: Option<String>,
}

impl AlertEvent {
    pub fn alertname(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Why a body was refused; shown to the sender as the JSON `reason`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("body is not a valid Alertmanager webhook payload: {0}")]
    Json(String),
    #[error("alerts[{index}].{field}: {reason}")]
    Field {
        index: usize,
        field: &'static str,
        reason: String,
    },
}

fn parse_time(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

/// Fingerprint of a label set when the sender did not give one (stable across peers).
pub fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xff]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parse and check a webhook body into events.
pub fn parse_payload(body: &[u8]) -> Result<Vec<AlertEvent>, PayloadError> {
    let p: WebhookPayload =
        serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    let mut out = Vec::with_capacity(p.alerts.len());
    for (index, a) in p.alerts.into_iter().enumerate() {
        let status = match Status::parse(&a.status) {
            Some(s) => s,
            None => {
                let other = a.status.as_str();
                return Err(PayloadError::Field {
                    index,
                    field: "status",
                    reason: format!("{other:?} is neither \"firing\" nor \"resolved\""),
                });
            }
        };
        let starts_at = parse_time(&a.starts_at).map_err(|reason| PayloadError::Field {
            index,
            field: "startsAt",
            reason,
        })?;
        // Alertmanager sends "0001-01-01T00:00:00Z" for "no end"; keep only real end times.
        let ends_at = match a.ends_at.as_deref() {
            None | Some("") => None,
            Some(s) => {
                let t = parse_time(s).map_err(|reason| PayloadError::Field {
                    index,
                    field: "endsAt",
                    reason,
                })?;
                (t > 0).then_some(t)
            }
        };
        let fingerprint = a
            .fingerprint
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| label_fingerprint(&a.labels));
        // Without a groupKey (not Alertmanager), the receiver plus labels still identify the alert.
        let group_key = p
            .group_key
            .clone()
            .unwrap_or_else(|| format!("{}:{fingerprint}", p.receiver.clone().unwrap_or_default()));
        // The router marks events with `quantwatch_*` annotations itself (an ack announcement
        // carries who acknowledged); from outside they would announce an ack that never
        // happened. Dropped, not refused: refusing would make Alertmanager retry the whole
        // group forever and lose its other alerts.
        let mut annotations = a.annotations;
        let before = annotations.len();
        annotations.retain(|k, _| !k.starts_with(crate::core::annotations::INTERNAL_PREFIX));
        if annotations.len() != before {
            tracing::warn!(
                fingerprint = %fingerprint,
                dropped = before - annotations.len(),
                "incoming alert carried router-internal quantwatch_* annotations; dropped them"
            );
        }
        // Where the alert's Alertmanager lives: silence links fall back to its form.
        if let Some(u) = p.external_url.as_deref().filter(|u| !u.is_empty()) {
            annotations.insert(crate::core::annotations::EXTERNAL_URL.into(), u.to_string());
        }
        out.push(AlertEvent {
            group_key,
            fingerprint,
            status,
            labels: a.labels,
            annotations,
            starts_at,
            ends_at,
            generator_url: a.generator_url.filter(|s| !s.is_empty()),
            receiver: p.receiver.clone(),
        });
    }
    Ok(out)
}

/// What became of one call; stored and shown as its `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Answered,
    NoAnswer,
    Busy,
    /// Unreachable, switched off, suspended, illegal number, rejected.
    Failed,
    /// No receipt within the channel's `receipt_timeout`: counted as unanswered.
    NoReceipt,
    /// The vendor's per-number flow control refused to place it.
    FlowControl,
    /// The vendor refused the number itself.
    Refused,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Busy => "busy",
            CallOutcome::Failed => "failed",
            CallOutcome::NoReceipt => "no_receipt",
            CallOutcome::FlowControl => "flow_control",
            CallOutcome::Refused => "refused",
        }
    }

    /// The stored text back; `None` for anything else (a call still ringing).
    pub fn parse(s: &str) -> Option<CallOutcome> {
        [
            CallOutcome::Answered,
            CallOutcome::NoAnswer,
            CallOutcome::Busy,
            CallOutcome::Failed,
            CallOutcome::NoReceipt,
            CallOutcome::FlowControl,
            CallOutcome::Refused,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// How the status page and history say it; `None` is a call still ringing.
    pub fn words(outcome: Option<CallOutcome>) -> &'static str {
        match outcome {
            Some(CallOutcome::Answered) => "answered",
            Some(CallOutcome::NoAnswer) => "no answer",
            Some(CallOutcome::Busy) => "busy",
            Some(CallOutcome::Failed) => "not reachable",
            Some(CallOutcome::NoReceipt) => "no receipt in time",
            Some(CallOutcome::FlowControl) => "not called (vendor flow control)",
            Some(CallOutcome::Refused) => "not called (number refused)",
            None => "ringing",
        }
    }
}

/// A synthetic alert that says what it is.
pub fn test_alert(now: i64) -> AlertEvent {
    AlertEvent {
        group_key: "test-send".into(),
        fingerprint: format!("test-{now}"),
        status: Status::Firing,
        labels: [
            ("alertname", "QuantwatchTestNotification"),
            ("severity", "info"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: [
            ("summary", "Test notification from quantwatch-alert-router"),
            ("description", "If you can read this, the channel works."),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        starts_at: now,
        ends_at: None,
        generator_url: None,
        receiver: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_group_with_unknown_fields() {
        let body = br#"{"version":"4","groupKey":"{}:{alertname=\"X\"}","status":"firing","receiver":"r",
          "truncatedAlerts":0,"extra":{"a":1},"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",
          "alerts":[
            {"status":"firing","labels":{"alertname":"X","severity":"critical"},"annotations":{"summary":"s"},
             "startsAt":"2026-01-02T03:04:05.123+08:00","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://p","fingerprint":"abc","newField":true},
            {"status":"resolved","labels":{"alertname":"Y"},"annotations":{},
             "startsAt":"2026-01-02T00:00:00Z","endsAt":"2026-01-02T01:00:00Z"}]}"#;
        let ev = parse_payload(body).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].fingerprint, "abc");
        assert_eq!(ev[0].status, Status::Firing);
        assert_eq!(ev[0].starts_at, 1_767_294_245_123);
        assert_eq!(ev[0].ends_at, None);
        assert_eq!(ev[1].status, Status::Resolved);
        assert_eq!(ev[1].ends_at, Some(1_767_315_600_000));
        assert_eq!(ev[1].fingerprint.len(), 16);
        assert_eq!(ev[1].group_key, "{}:{alertname=\"X\"}");
    }

    #[test]
    fn router_internal_annotations_are_dropped_at_intake() {
        let ev = parse_payload(
            br#"{"alerts":[{"status":"firing","startsAt":"2026-01-01T00:00:00Z","labels":{"alertname":"X"},
              "annotations":{"summary":"s","quantwatch_acked_by":"mallory","quantwatch_acked_at":"1","quantwatch_x":"y","quantwatchless":"kept"}}]}"#,
        )
        .unwrap();
        let keys: Vec<&str> = ev[0].annotations.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["quantwatchless", "summary"]);
    }

    #[test]
    fn refuses_bad_status_and_time() {
        let e = parse_payload(
            br#"{"alerts":[{"status":"pending","startsAt":"2026-01-01T00:00:00Z"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "alerts[0].status: \"pending\" is neither \"firing\" nor \"resolved\""
        );
        let e = parse_payload(br#"{"alerts":[{"status":"firing","startsAt":"yesterday"}]}"#)
            .unwrap_err();
        assert!(
            matches!(
                e,
                PayloadError::Field {
                    index: 0,
                    field: "startsAt",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(matches!(
            parse_payload(br#"{"alerts":[{"status":"fir"#),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            parse_payload(br#"{"groupKey":"g"}"#),
            Err(PayloadError::Json(_))
        ));
    }
}
