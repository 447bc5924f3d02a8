//! Generic signed webhook: the receiver verifies the HMAC over "{timestamp}.{body}" and the
//! timestamp window, and gets our JSON with the alerts and their links.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use testkit::fakes::webhook::WebhookReceiver;

fn yaml(url: &str, secret: &str) -> String {
    format!(
        "language: en\ndelivery:\n  retry_initial: 200ms\n  retry_max: 1s\n  poll_interval: 200ms\nchannels:\n  - type: webhook\n    name: pager\n    url: \"{url}\"\n    secret: \"{secret}\"\n    timeout: 2s\nroute:\n  channels: [pager]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_verifies_the_signature_and_gets_alerts_with_links() {
    let rx = WebhookReceiver::start("webhook-secret-0123456789");
    let r = start(
        &yaml(&rx.url(), "webhook-secret-0123456789"),
        &[
            ("ROUTER_PUBLIC_URL", "https://router.example"),
            ("ROUTER_ACK_SECRET", "webhook-test-ack-secret-32-bytes!"),
        ],
    )
    .await;
    let mut a = alert(
        "PnlDrop",
        "firing",
        "2026-01-01T00:00:00Z",
        &[("desk", "fx")],
    );
    a["annotations"]["runbook_url"] = "https://wiki.example/pnl".into();
    let (s, _) = r.post(&payload("g", vec![a])).await;
    assert_eq!(s, 200);
    let got = rx.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "received: {:?}", rx.server.received());
    let m = &got[0];
    assert_eq!(m["version"], 1);
    assert_eq!(m["channel"], "pager");
    assert_eq!(m["title"], "[FIRING] PnlDrop");
    assert_eq!(m["severity"], "critical");
    assert_eq!(m["step"], serde_json::Value::Null);
    let al = &m["alerts"][0];
    assert_eq!(al["alertname"], "PnlDrop");
    assert_eq!(al["labels"]["desk"], "fx");
    assert_eq!(al["starts_at"], "2026-01-01T00:00:00+00:00");
    assert_eq!(al["links"]["runbook"], "https://wiki.example/pnl");
    assert!(
        al["links"]["ack"]
            .as_str()
            .unwrap()
            .starts_with("https://router.example/ack/")
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_by_the_receiver_and_fails_permanently() {
    let rx = WebhookReceiver::start("the-receivers-secret-000");
    let r = start(&yaml(&rx.url(), "not-the-same-secret-000"), &[]).await;
    r.post(&payload(
        "g",
        vec![alert("X", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    assert!(
        r.metric_reaches(
            "quantwatch_router_notifications_total{channel=\"pager\",outcome=\"failed\"}",
            1.0,
            Duration::from_secs(10)
        )
        .await
    );
    assert_eq!(rx.server.count_errcode(401), 1);
    assert!(rx.server.accepted().is_empty());
    r.shutdown().await;
}

#[test]
fn verification_refuses_stale_and_tampered_requests() {
    use quantwatch_alert_router::channels::webhook::signature;
    use testkit::fakes::webhook::verify;
    let mut h = axum::http::HeaderMap::new();
    let body = br#"{"alerts":[]}"#;
    h.insert("x-quantwatch-timestamp", "1700000000".parse().unwrap());
    h.insert(
        "x-quantwatch-signature",
        signature("s3cret", 1_700_000_000, body).parse().unwrap(),
    );
    assert_eq!(verify("s3cret", &h, body, 1_700_000_100), Ok(()));
    assert_eq!(
        verify("s3cret", &h, body, 1_700_000_301),
        Err("stale timestamp")
    );
    assert_eq!(
        verify("s3cret", &h, br#"{"alerts":[1]}"#, 1_700_000_000),
        Err("bad signature")
    );
    assert_eq!(
        verify("other", &h, body, 1_700_000_000),
        Err("bad signature")
    );
}
