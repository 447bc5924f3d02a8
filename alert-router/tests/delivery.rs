//! Delivery to the loopback vendor fakes: signing, content, limits, splitting, outages,
//! permanent errors and an alert storm.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{alert, payload, start};
use testkit::fakes::Mode;
use testkit::fakes::dingtalk::DingTalkFake;
use testkit::fakes::slack::SlackFake;
use testkit::fakes::wecom::WeComFake;

const API: &str = "api-secret";

/// (status, alertname) of every alert line or heading in a rendered English message.
fn mentioned(text: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(r"\[(FIRING|RESOLVED)\] (?:\*\*)?([A-Za-z0-9_]+)").unwrap();
    re.captures_iter(text)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

fn dingtalk_yaml(url: &str, secret: &str, extra: &str) -> String {
    format!(
        "language: en\ndelivery:\n  retry_initial: 200ms\n  retry_max: 1s\n  poll_interval: 200ms\nchannels:\n  - type: dingtalk\n    name: ding\n    webhook_url: \"{url}\"\n    secret: \"{secret}\"\n    timeout: 500ms\n{extra}route:\n  channels: [ding]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_gets_signed_markdown_with_mentions() {
    let fake = DingTalkFake::start("tok123", Some("SECsecret"));
    let r = start(
        &dingtalk_yaml(
            &fake.webhook_url(),
            "SECsecret",
            "    at_mobiles: [\"13800000000\"]\n",
        ),
        &[
            ("ROUTER_PUBLIC_URL", "https://router.example"),
            ("ROUTER_ACK_SECRET", "delivery-test-ack-secret-32-bytes"),
        ],
    )
    .await;
    let mut a = alert(
        "DiskFull",
        "firing",
        "2026-01-01T00:00:00Z",
        &[("instance", "db1")],
    );
    a["annotations"]["summary"] = "disk / is 95% full".into();
    let (s, _) = r.post(&payload("g", vec![a])).await;
    assert_eq!(s, 200);
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "received: {:?}", fake.server.received());
    let m = &got[0];
    assert_eq!(m["msgtype"], "markdown");
    assert_eq!(m["markdown"]["title"], "[FIRING] DiskFull");
    let text = m["markdown"]["text"].as_str().unwrap();
    assert!(text.starts_with("### 🔥 [FIRING] DiskFull\n"), "{text}");
    assert!(text.contains("- **Severity**: critical\n"), "{text}");
    assert!(
        text.contains("- **Summary**: disk / is 95% full\n"),
        "{text}"
    );
    assert!(
        text.contains("- **Description**: DiskFull description\n"),
        "{text}"
    );
    assert!(
        text.contains("- **Started**: 2026-01-01 00:00:00 UTC\n"),
        "{text}"
    );
    assert!(text.contains("instance=db1"), "{text}");
    assert!(
        text.contains("[Acknowledge](https://router.example/ack/ack.fp-DiskFull.1767225600000."),
        "{text}"
    );
    assert!(
        text.ends_with("@13800000000 "),
        "the @mobile must also be in the text: {text}"
    );
    assert_eq!(m["at"]["atMobiles"], serde_json::json!(["13800000000"]));
    assert_eq!(m["at"]["isAtAll"], false);
    assert_eq!(fake.server.count_errcode(310000), 0);
    assert!(
        r.metric_reaches(
            "quantwatch_router_notifications_total{channel=\"ding\",outcome=\"sent\"}",
            1.0,
            Duration::from_secs(5)
        )
        .await
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_a_permanent_error_recorded_with_the_channel() {
    let fake = DingTalkFake::start("tok123", Some("SECright"));
    let r = start(
        &dingtalk_yaml(&fake.webhook_url(), "SECwrong", ""),
        &[("ROUTER_API_TOKEN", API)],
    )
    .await;
    let (s, _) = r
        .post(&payload(
            "g",
            vec![alert("X", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
    assert_eq!(s, 200);
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            r.notifications(API, "failed").await.len() == 1
        })
        .await
    );
    let failed = r.notifications(API, "failed").await;
    assert_eq!(failed[0]["channel"], "ding");
    assert_eq!(failed[0]["alertname"], "X");
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("errcode 310000"),
        "{failed:?}"
    );
    assert_eq!(
        r.metric("quantwatch_router_channel_permanent_errors_total{channel=\"ding\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"failed\"}")
            .await,
        Some(1.0)
    );
    // Not retried: the robot saw exactly one request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.server.received().len(), 1);
    assert_eq!(fake.server.count_errcode(310000), 1);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_502_then_timeouts_then_back_delivers_all_once_in_order() {
    let fake = DingTalkFake::start("tok", Some("SECs"));
    fake.server.set_mode(Mode::Status(502));
    let r = start(
        &dingtalk_yaml(&fake.webhook_url(), "SECs", ""),
        &[("ROUTER_API_TOKEN", API)],
    )
    .await;
    let firing: Vec<_> = (0..10)
        .map(|i| {
            alert(
                &format!("Outage{i:02}"),
                "firing",
                "2026-01-01T00:00:00Z",
                &[],
            )
        })
        .collect();
    assert_eq!(r.post(&payload("g", firing)).await.0, 200);
    let resolved: Vec<_> = (0..5)
        .map(|i| {
            alert(
                &format!("Outage{i:02}"),
                "resolved",
                "2026-01-01T00:00:00Z",
                &[],
            )
        })
        .collect();
    assert_eq!(r.post(&payload("g", resolved)).await.0, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    fake.server.set_mode(Mode::Hang);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(fake.server.accepted().is_empty());
    let retries = r
        .metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"retry\"}")
        .await
        .unwrap_or(0.0);
    assert!(retries >= 2.0, "the outage caused retries: {retries}");
    fake.server.set_mode(Mode::Normal);
    assert!(
        common::eventually(Duration::from_secs(40), || async {
            r.notifications(API, "pending").await.is_empty()
        })
        .await,
        "everything delivered after the outage"
    );
    // Each (status, alert) exactly once; per alert, firing before resolved.
    let texts: Vec<String> = fake
        .server
        .accepted()
        .iter()
        .map(|b| b["markdown"]["text"].as_str().unwrap().to_string())
        .collect();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut first_msg: HashMap<(String, String), usize> = HashMap::new();
    for (i, t) in texts.iter().enumerate() {
        for k in mentioned(t) {
            *seen.entry(k.clone()).or_default() += 1;
            first_msg.entry(k).or_insert(i);
        }
    }
    assert_eq!(seen.len(), 15, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "none twice: {seen:?}");
    for i in 0..5 {
        let name = format!("Outage{i:02}");
        assert!(
            first_msg[&("FIRING".into(), name.clone())]
                < first_msg[&("RESOLVED".into(), name.clone())],
            "{name}: firing before resolved"
        );
    }
    assert_eq!(fake.server.count_errcode(130101), 0);
    assert_eq!(r.metric("quantwatch_router_queue_depth").await, Some(0.0));
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_1000_alerts_stays_under_the_robot_limit_and_arrives_within_60s() {
    let fake = DingTalkFake::start("tok", Some("SECs"));
    let r = start(&dingtalk_yaml(&fake.webhook_url(), "SECs", ""), &[]).await;
    let t0 = Instant::now();
    // One webhook every 95 ms on a fixed schedule (a slow answer does not stretch the storm).
    let mut pace = tokio::time::interval(Duration::from_millis(95));
    for batch in 0..100 {
        pace.tick().await;
        let alerts = (0..10)
            .map(|i| {
                alert(
                    &format!("Storm{:04}", batch * 10 + i),
                    "firing",
                    "2026-01-01T00:00:00Z",
                    &[],
                )
            })
            .collect();
        let (s, _) = r.post(&payload(&format!("g{batch}"), alerts)).await;
        assert_eq!(s, 200);
    }
    // 9.5 s of schedule; more only if the webhook answered slowly (a busy machine: the
    // delivery bound below counts from the storm's start either way).
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "storm took {:?}",
        t0.elapsed()
    );
    let all_seen = || {
        let names: std::collections::HashSet<String> = fake
            .texts()
            .iter()
            .flat_map(|t| mentioned(t))
            .map(|(_, n)| n)
            .collect();
        names.len()
    };
    while all_seen() < 1000 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n = all_seen();
    assert_eq!(
        n,
        1000,
        "alerts delivered within 60 s: {n} (after {:?})",
        t0.elapsed()
    );
    assert_eq!(
        fake.server.count_errcode(130101),
        0,
        "the robot's 20/min limit was never hit"
    );
    assert_eq!(
        fake.server.count_errcode(460101),
        0,
        "no message over 20,000 bytes"
    );
    assert!(
        fake.server.accepted().len() <= 20,
        "{} messages",
        fake.server.accepted().len()
    );
    r.shutdown().await;
}

/// Post 1,000 firing alerts named `Storm0000`..`Storm0999` whose summaries need JSON escaping.
async fn post_storm(r: &common::RouterUnderTest) {
    for batch in 0..100 {
        let alerts = (0..10)
            .map(|i| {
                let mut a = alert(
                    &format!("Storm{:04}", batch * 10 + i),
                    "firing",
                    "2026-01-01T00:00:00Z",
                    &[],
                );
                a["annotations"]["summary"] = "path C:\\data \"hot\"\ttab".into();
                a
            })
            .collect();
        let (s, _) = r.post(&payload(&format!("g{batch}"), alerts)).await;
        assert_eq!(s, 200);
    }
}

/// The alert names in every message the fake accepted.
fn storm_names(fake: &DingTalkFake) -> std::collections::HashSet<String> {
    fake.texts()
        .iter()
        .flat_map(|t| mentioned(t))
        .map(|(_, n)| n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_digests_are_measured_on_the_request_body_and_never_refused() {
    let fake = DingTalkFake::start("tok", Some("SECs"));
    let r = start(&dingtalk_yaml(&fake.webhook_url(), "SECs", ""), &[]).await;
    let t0 = Instant::now();
    post_storm(&r).await;
    while storm_names(&fake).len() < 1000 && t0.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(storm_names(&fake).len(), 1000, "alerts delivered");
    assert_eq!(
        fake.server.count_errcode(460101),
        0,
        "no body over 20,000 bytes"
    );
    let biggest = fake
        .server
        .accepted()
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap().len())
        .max()
        .unwrap();
    assert!(
        biggest > 15_000 && biggest <= 20_000,
        "digests fill the body limit: {biggest}"
    );
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"failed\"}")
            .await,
        Some(0.0)
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_refused_for_size_by_a_stricter_robot_is_split_and_all_delivered() {
    // The robot refuses bodies over 12,000 bytes; the router measures against 20,000, so its
    // first digests are refused with 460101 and must be split, never failed.
    let fake = DingTalkFake::start_with_limit("tok", Some("SECs"), 12_000);
    let r = start(&dingtalk_yaml(&fake.webhook_url(), "SECs", ""), &[]).await;
    let t0 = Instant::now();
    post_storm(&r).await;
    while storm_names(&fake).len() < 1000 && t0.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(storm_names(&fake).len(), 1000, "alerts delivered");
    assert!(
        fake.server.count_errcode(460101) >= 1,
        "the robot refused a digest for its size"
    );
    assert!(
        fake.server.accepted().len() <= 20,
        "no 130101 ban from splitting"
    );
    assert_eq!(fake.server.count_errcode(130101), 0);
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"failed\"}")
            .await,
        Some(0.0)
    );
    assert!(
        r.metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"split\"}")
            .await
            .is_some_and(|v| v >= 1.0)
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_splits_long_messages_under_4096_bytes_on_char_boundaries() {
    let fake = WeComFake::start("key-1");
    let yaml = format!(
        "language: zh\nchannels:\n  - type: wecom\n    name: wx\n    webhook_url: \"{}\"\n    mentioned_userids: [\"zhangsan\"]\nroute:\n  channels: [wx]\n",
        fake.webhook_url()
    );
    let r = start(&yaml, &[]).await;
    let long = "数据库连接池耗尽，".repeat(400); // 10,800 bytes
    let mut a = alert("PoolExhausted", "firing", "2026-01-01T00:00:00Z", &[]);
    a["annotations"]["description"] = long.clone().into();
    assert_eq!(r.post(&payload("g", vec![a])).await.0, 200);
    let got = fake.server.wait_accepted(3, Duration::from_secs(20));
    assert!(
        got.len() >= 3,
        "split into parts: {:?}",
        fake.server.received().len()
    );
    assert_eq!(fake.server.count_errcode(40058), 0);
    let parts = fake.markdowns();
    assert!(parts.iter().all(|p| p.len() <= 4096));
    assert!(
        parts.iter().all(|p| p.ends_with("<@zhangsan>")),
        "every part mentions"
    );
    let joined: String = parts
        .iter()
        .map(|p| p.trim_end_matches("<@zhangsan>").trim_end_matches('\n'))
        .collect();
    assert!(
        joined.contains(&long),
        "the description survives the split intact"
    );
    assert!(
        parts[0].starts_with("### 🔥 [告警] PoolExhausted"),
        "{}",
        parts[0]
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_blocks_stay_under_3000_and_wrong_hook_is_permanent() {
    let fake = SlackFake::start("T1/B1/abc");
    let yaml = format!(
        "language: en\nchannels:\n  - type: slack\n    name: sl\n    webhook_url: \"{}\"\n  - type: slack\n    name: wrong\n    webhook_url: \"{}/services/T1/B1/nope\"\nroute:\n  channels: [sl, wrong]\n",
        fake.webhook_url(),
        fake.server.base_url()
    );
    let r = start(&yaml, &[("ROUTER_API_TOKEN", API)]).await;
    let mut a = alert("LatencyHigh", "firing", "2026-01-01T00:00:00Z", &[]);
    a["annotations"]["description"] = "p99 above 250ms on the order gateway. ".repeat(200).into(); // 7,600 bytes
    assert_eq!(r.post(&payload("g", vec![a])).await.0, 200);
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            r.notifications(API, "failed").await.len() == 1
        })
        .await
    );
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let blocks = got[0]["blocks"].as_array().unwrap();
    assert!(blocks.len() >= 3, "{} blocks", blocks.len());
    assert!(
        blocks
            .iter()
            .all(|b| b["text"]["text"].as_str().unwrap().len() <= 3000)
    );
    assert_eq!(got[0]["text"], "[FIRING] LatencyHigh");
    let failed = r.notifications(API, "failed").await;
    assert_eq!(failed[0]["channel"], "wrong");
    assert!(
        failed[0]["last_error"].as_str().unwrap().contains("404"),
        "{failed:?}"
    );
    assert_eq!(fake.server.count_errcode(400), 0);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_retry_after_is_honoured_and_nothing_is_lost() {
    // Two channels on one hook: their own limiters cannot know about each other, so Slack
    // answers 429 to one of them; it must wait Retry-After and deliver.
    let fake = SlackFake::start("T2/B2/x");
    let yaml = format!(
        "language: en\nchannels:\n  - type: slack\n    name: s1\n    webhook_url: \"{u}\"\n  - type: slack\n    name: s2\n    webhook_url: \"{u}\"\nroute:\n  channels: [s1, s2]\n",
        u = fake.webhook_url()
    );
    let r = start(&yaml, &[]).await;
    assert_eq!(
        r.post(&payload(
            "g",
            vec![alert("Twice", "firing", "2026-01-01T00:00:00Z", &[])]
        ))
        .await
        .0,
        200
    );
    let got = fake.server.wait_accepted(2, Duration::from_secs(10));
    assert_eq!(
        got.len(),
        2,
        "received: {:?}",
        fake.server
            .received()
            .iter()
            .map(|r| r.errcode)
            .collect::<Vec<_>>()
    );
    let received = fake.server.received();
    assert_eq!(fake.server.count_errcode(429), 1);
    let refused = received.iter().find(|r| r.errcode == 429).unwrap().at;
    let retried = received
        .iter()
        .filter(|r| r.errcode == 0)
        .map(|r| r.at)
        .max()
        .unwrap();
    assert!(
        retried.duration_since(refused) >= Duration::from_millis(950),
        "waited Retry-After: {:?}",
        retried.duration_since(refused)
    );
    let limited: f64 = [
        r.metric("quantwatch_router_notifications_total{channel=\"s1\",outcome=\"rate_limited\"}")
            .await
            .unwrap_or(0.0),
        r.metric("quantwatch_router_notifications_total{channel=\"s2\",outcome=\"rate_limited\"}")
            .await
            .unwrap_or(0.0),
    ]
    .iter()
    .sum();
    assert_eq!(limited, 1.0);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_alerts_survive_a_restart() {
    let fake = DingTalkFake::start("tok", Some("SECs"));
    fake.server.set_mode(Mode::Status(502));
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/state/router.db", dir.path().display());
    let yaml = dingtalk_yaml(&fake.webhook_url(), "SECs", "");
    let r = start(&yaml, &[("ROUTER_DATABASE_URL", &db)]).await;
    let alerts = (0..3)
        .map(|i| {
            alert(
                &format!("Restart{i}"),
                "firing",
                "2026-01-01T00:00:00Z",
                &[],
            )
        })
        .collect();
    assert_eq!(r.post(&payload("g", alerts)).await.0, 200);
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            r.metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"retry\"}")
                .await
                .unwrap_or(0.0)
                >= 1.0
        })
        .await
    );
    assert_eq!(r.metric("quantwatch_router_queue_depth").await, Some(3.0));
    assert!(
        r.metric("quantwatch_router_oldest_pending_seconds")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    r.shutdown().await;

    fake.server.set_mode(Mode::Normal);
    let r = start(
        &yaml,
        &[("ROUTER_DATABASE_URL", &db), ("ROUTER_API_TOKEN", API)],
    )
    .await;
    assert!(
        common::eventually(Duration::from_secs(15), || async {
            r.notifications(API, "pending").await.is_empty()
        })
        .await
    );
    let names: Vec<String> = fake
        .texts()
        .iter()
        .flat_map(|t| mentioned(t))
        .map(|(_, n)| n)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["Restart0", "Restart1", "Restart2"],
        "each once: {names:?}"
    );
    // Re-sent by Alertmanager after the restart: still a duplicate.
    let again = (0..3)
        .map(|i| {
            alert(
                &format!("Restart{i}"),
                "firing",
                "2026-01-01T00:00:00Z",
                &[],
            )
        })
        .collect();
    let (s, b) = r.post(&payload("g", again)).await;
    assert_eq!((s, b["duplicates"].clone()), (200, serde_json::json!(3)));
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_mentions_by_mobile_follow_the_markdown_as_text() {
    let fake = WeComFake::start("key-2");
    let yaml = format!(
        "language: en\nchannels:\n  - type: wecom\n    name: wx\n    webhook_url: \"{}\"\n    mentioned_mobiles: [\"13800000001\"]\nroute:\n  channels: [wx]\n",
        fake.webhook_url()
    );
    let r = start(&yaml, &[]).await;
    assert_eq!(
        r.post(&payload(
            "g",
            vec![alert("GatewayDown", "firing", "2026-01-01T00:00:00Z", &[])]
        ))
        .await
        .0,
        200
    );
    let got = fake.server.wait_accepted(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["msgtype"], "markdown");
    assert!(
        got[0]["markdown"]["content"]
            .as_str()
            .unwrap()
            .starts_with("### 🔥 [FIRING] GatewayDown")
    );
    assert_eq!(got[1]["msgtype"], "text");
    assert_eq!(got[1]["text"]["content"], "[FIRING] GatewayDown");
    assert_eq!(
        got[1]["text"]["mentioned_mobile_list"],
        serde_json::json!(["13800000001"])
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_dingtalk_robot_hands_its_alerts_to_the_wecom_fallback_once() {
    // The robot allows 20 a minute and then answers 130101 for 10 minutes.
    let ding = DingTalkFake::start("tok", Some("SECs"));
    let wx = WeComFake::start("key-f");
    let yaml = format!(
        "language: en\ndelivery:\n  retry_initial: 200ms\n  retry_max: 1s\n  poll_interval: 200ms\n  round_interval: 100ms\nchannels:\n  - type: dingtalk\n    name: ding\n    webhook_url: \"{}\"\n    secret: SECs\n    fallback: [wx]\n  - type: wecom\n    name: wx\n    webhook_url: \"{}/cgi-bin/webhook/send?key=key-f\"\nroute:\n  channels: [ding]\n",
        ding.webhook_url(),
        wx.server.base_url()
    );
    let r = start(&yaml, &[("ROUTER_API_TOKEN", API)]).await;
    // Another sender on the same robot used up its minute: the next request gets 130101.
    let client = reqwest::Client::new();
    for i in 0..20 {
        let ts = chrono::Utc::now().timestamp_millis();
        let url = format!(
            "{}&timestamp={ts}&sign={}",
            ding.webhook_url(),
            testkit::fakes::percent_encode(&testkit::fakes::dingtalk::expected_sign(
                "SECs",
                &ts.to_string()
            ))
        );
        let body = serde_json::json!({"msgtype": "markdown", "markdown": {"title": "t", "text": format!("other {i}")}});
        client.post(&url).json(&body).send().await.unwrap();
    }
    assert_eq!(ding.server.accepted().len(), 20);
    let (s, _) = r
        .post(&payload(
            "g1",
            vec![alert("BannedA", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
    assert_eq!(s, 200);
    let got = wx.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "wecom received: {:?}", wx.server.received());
    assert!(
        got[0]["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("BannedA")
    );
    assert_eq!(ding.server.count_errcode(130101), 1);
    // During the ban, new alerts go straight to the fallback: the robot sees no attempt.
    let (s, _) = r
        .post(&payload(
            "g2",
            vec![alert("BannedB", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
    assert_eq!(s, 200);
    let got = wx.server.wait_accepted(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2);
    assert!(
        got[1]["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("BannedB")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ding.server.received().len(),
        21,
        "one refused attempt, then nothing during the ban"
    );
    assert_eq!(
        wx.server.accepted().len(),
        2,
        "each alert reached the fallback once"
    );
    assert_eq!(
        r.metric("quantwatch_router_failovers_total{from=\"ding\",to=\"wx\"}")
            .await,
        Some(2.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"wx\",outcome=\"sent\"}")
            .await,
        Some(2.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"ding\",outcome=\"sent\"}")
            .await,
        Some(0.0),
        "never both delivered and failed over"
    );
    // The alert's history records the handover.
    let text = serde_json::Value::from(r.history(API, "fp-BannedA").await).to_string();
    assert!(text.contains("failover"), "history: {text}");
    r.shutdown().await;
}
