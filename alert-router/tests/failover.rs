//! Failover on a permanent refusal, on both stores: a DingTalk robot whose sign secret was
//! rotated refuses with 310000; the alert reaches the WeCom fallback once, the DingTalk row is
//! closed as failed over (not counted failed), and the alert's history shows the handover.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use testkit::Postgres;
use testkit::fakes::dingtalk::DingTalkFake;
use testkit::fakes::wecom::WeComFake;

const API: &str = "api-secret";

async fn refused_then_handed_over(db: Option<&str>) {
    let ding = DingTalkFake::start("tok", Some("SECnew"));
    let wx = WeComFake::start("key-f");
    let yaml = format!(
        "language: en\ndelivery:\n  retry_initial: 200ms\n  retry_max: 1s\n  poll_interval: 200ms\nchannels:\n  - type: dingtalk\n    name: ding\n    webhook_url: \"{}\"\n    secret: SECold\n    fallback: [wx]\n  - type: wecom\n    name: wx\n    webhook_url: \"{}/cgi-bin/webhook/send?key=key-f\"\n    fallback: [ding]\nroute:\n  channels: [ding]\n",
        ding.webhook_url(),
        wx.server.base_url()
    );
    let mut env = vec![("ROUTER_API_TOKEN", API)];
    if let Some(db) = db {
        env.push(("ROUTER_DATABASE_URL", db));
    }
    let r = start(&yaml, &env).await;
    let (s, _) = r
        .post(&payload(
            "g",
            vec![alert("Rotated", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
    assert_eq!(s, 200);
    let got = wx.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "wecom received: {:?}", wx.server.received());
    assert!(
        got[0]["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("Rotated")
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ding.server.count_errcode(310000), 1, "refused once");
    assert_eq!(wx.server.accepted().len(), 1, "handed over once");
    assert_eq!(
        r.metric("quantwatch_router_failovers_total{from=\"ding\",to=\"wx\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"failed\"}")
            .await,
        Some(0.0)
    );
    let failed = r.notifications(API, "failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let text = failed[0].to_string();
    assert!(text.contains("failed over to wx: errcode 310000"), "{text}");
    let text = serde_json::Value::from(r.history(API, "fp-Rotated").await).to_string();
    assert!(
        text.contains("\"failover\"") && text.contains("ding -> wx"),
        "history: {text}"
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusal_fails_over_once_on_sqlite() {
    refused_then_handed_over(None).await;
}

#[test]
fn permanent_refusal_fails_over_once_on_postgres() {
    let rt = common::runtime();
    let pg = Postgres::start();
    let url = pg.create_database("router");
    rt.block_on(refused_then_handed_over(Some(&url)));
}
