//! End to end: a real Alertmanager, fed through its API, delivers to the router, which delivers
//! to the DingTalk fake, signed, with the content checked; an HA pair notifies once.

mod common;

use std::time::Duration;

use common::start;
use serde_json::json;
use testkit::Alertmanager;
use testkit::fakes::dingtalk::DingTalkFake;

fn router_yaml(url: &str) -> String {
    format!(
        "language: en\ndelivery:\n  poll_interval: 200ms\nchannels:\n  - type: dingtalk\n    name: ding\n    webhook_url: \"{url}\"\n    secret: SECam\n    at_mobiles: [\"13900000000\"]\nroute:\n  channels: [ding]\n"
    )
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn iso(ts: i64) -> String {
    // Seconds since epoch to RFC 3339 UTC without extra dependencies.
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[test]
fn alertmanager_to_router_to_dingtalk_firing_then_resolved() {
    let rt = common::runtime();
    let fake = DingTalkFake::start("am-token", Some("SECam"));
    let r = rt.block_on(start(
        &router_yaml(&fake.webhook_url()),
        &[("ROUTER_WEBHOOK_TOKEN", "hook-token")],
    ));
    let am = Alertmanager::start(&common::am_config(&r.url, "1h", Some("hook-token")));
    let starts = chrono_now() - 5;
    let alert = |ends: Option<i64>| {
        let mut a = json!({
            "labels": {"alertname": "OrderLatencyHigh", "severity": "critical", "strategy": "mm-1"},
            "annotations": {"summary": "order latency p99 above 250ms", "description": "gateway gw-2"},
            "startsAt": iso(starts),
            "generatorURL": "http://prometheus:9090/graph",
        });
        if let Some(e) = ends {
            a["endsAt"] = iso(e).into();
        }
        json!([a])
    };
    am.post_alerts(&alert(None));
    let got = fake.server.wait_accepted(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "received: {:?}", fake.server.received());
    let text = got[0]["markdown"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("### 🔥 [FIRING] OrderLatencyHigh\n"),
        "{text}"
    );
    assert!(
        text.contains("- **Summary**: order latency p99 above 250ms\n"),
        "{text}"
    );
    assert!(text.contains("- **Description**: gateway gw-2\n"), "{text}");
    assert!(text.contains("strategy=mm-1"), "{text}");
    assert!(
        text.contains(&format!(
            "- **Started**: {} UTC",
            iso(starts).replace('T', " ").trim_end_matches('Z')
        )),
        "{text}"
    );
    assert!(text.contains("@13900000000"), "{text}");
    assert_eq!(got[0]["at"]["atMobiles"], json!(["13900000000"]));
    assert_eq!(
        fake.server.count_errcode(310000),
        0,
        "every request was signed correctly"
    );

    // Resolve it through Alertmanager: the resolved notification follows, once.
    am.post_alerts(&alert(Some(chrono_now() - 1)));
    let got = fake.server.wait_accepted(2, Duration::from_secs(30));
    assert_eq!(got.len(), 2, "received: {:?}", fake.server.received());
    let text = got[1]["markdown"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("### ✅ [RESOLVED] OrderLatencyHigh\n"),
        "{text}"
    );
    assert!(text.contains("- **Resolved**: "), "{text}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fake.server.accepted().len(), 2, "nothing sent twice");
    assert!(
        rt.block_on(r.metric("quantwatch_router_webhooks_received_total{outcome=\"accepted\"}"))
            .unwrap_or(0.0)
            >= 2.0
    );
    assert_eq!(
        rt.block_on(
            r.metric("quantwatch_router_webhooks_received_total{outcome=\"unauthorized\"}")
        ),
        Some(0.0)
    );
    rt.block_on(r.shutdown());
}

#[test]
fn ha_pair_of_alertmanagers_notifies_once() {
    let rt = common::runtime();
    let fake = DingTalkFake::start("am-token", Some("SECam"));
    let r = rt.block_on(start(
        &router_yaml(&fake.webhook_url()),
        &[("ROUTER_WEBHOOK_TOKEN", "hook-token")],
    ));
    let peers =
        Alertmanager::start_cluster(&common::am_config(&r.url, "1h", Some("hook-token")), 2);
    let a = json!([{
        "labels": {"alertname": "FeedStale", "severity": "warning", "venue": "xshg"},
        "annotations": {"summary": "market data feed stale"},
        "startsAt": iso(chrono_now() - 5),
    }]);
    // Prometheus sends every alert to every Alertmanager of an HA pair.
    for p in &peers {
        p.post_alerts(&a);
    }
    let got = fake.server.wait_accepted(1, Duration::from_secs(30));
    assert_eq!(got.len(), 1);
    // Give the second peer time to send its copy (peer_timeout), then check once.
    std::thread::sleep(Duration::from_secs(6));
    let texts = fake.texts();
    assert_eq!(
        texts.iter().filter(|t| t.contains("FeedStale")).count(),
        1,
        "{texts:?}"
    );
    rt.block_on(r.shutdown());
}
