//! Alert events written straight through the store (no webhook, no routing), for the tests
//! that need history the API cannot make: firings resolved months ago, for retention.

use quantwatch_alert_router::core::model::{AlertEvent, Status};
use quantwatch_alert_router::store::escalation::Plan;
use quantwatch_alert_router::store::{RoutedEvent, Store};

/// One `Disk` alert event of instance `fp`, its summary annotation `note`.
pub fn event(fp: &str, status: Status, starts_at: i64, note: &str) -> AlertEvent {
    AlertEvent {
        group_key: "{}:{alertname=\"Disk\"}".into(),
        fingerprint: fp.into(),
        status,
        labels: [
            ("alertname", "Disk"),
            ("severity", "critical"),
            ("instance", fp),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: [("summary".to_string(), note.to_string())].into(),
        starts_at,
        ends_at: (status == Status::Resolved).then_some(starts_at + 1),
        generator_url: None,
        receiver: Some("router".into()),
    }
}

/// `ev` as intake would store it: notified on `channels`, escalated by `escalation`.
pub fn routed(ev: AlertEvent, channels: &[&str], escalation: Option<Plan>) -> RoutedEvent {
    RoutedEvent {
        event: ev,
        channels: channels.iter().map(|c| c.to_string()).collect(),
        escalation,
    }
}

/// The firings `fps`, started and stored at `fired_at`, resolved (stored) at `resolved_at`,
/// with no notifications (fast to store), 1,000 events per transaction.
pub async fn resolved_firings(
    store: &dyn Store,
    fps: &[String],
    fired_at: i64,
    resolved_at: i64,
    note: &str,
) {
    for (status, at) in [(Status::Firing, fired_at), (Status::Resolved, resolved_at)] {
        let evs: Vec<RoutedEvent> = fps
            .iter()
            .map(|fp| routed(event(fp, status, fired_at, note), &[], None))
            .collect();
        for chunk in evs.chunks(1000) {
            store
                .ingest(chunk, at)
                .await
                .expect("seed resolved firings");
        }
    }
}
