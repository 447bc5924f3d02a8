//! Feishu custom bot: the signed card, its buttons and colour, escaping of alert text in card
//! markdown, and a long digest split under the 20 KB body limit — against the loopback fake
//! that verifies what Feishu verifies.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use testkit::fakes::feishu::FeishuFake;

fn yaml(url: &str, secret: &str) -> String {
    format!(
        "language: en\ndelivery:\n  retry_initial: 200ms\n  retry_max: 1s\n  poll_interval: 200ms\nchannels:\n  - type: feishu\n    name: lark\n    webhook_url: \"{url}\"\n    secret: \"{secret}\"\n    timeout: 2s\nroute:\n  channels: [lark]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_card_with_colour_buttons_and_inert_alert_text() {
    let fake = FeishuFake::start("hook-1", Some("lark-secret"), Some("FIRING"));
    let r = start(
        &yaml(&fake.webhook_url(), "lark-secret"),
        &[
            ("ROUTER_PUBLIC_URL", "https://router.example"),
            ("ROUTER_ACK_SECRET", "feishu-test-ack-secret-32-bytes!!"),
        ],
    )
    .await;
    let mut a = alert("OrderGatewayDown", "firing", "2026-01-01T00:00:00Z", &[]);
    a["annotations"]["summary"] = "<at id=all></at> see [here](https://evil.example)".into();
    a["annotations"]["runbook_url"] = "https://wiki.example/runbooks/gateway".into();
    a["annotations"]["dashboard_url"] = "javascript:alert(1)".into();
    let (s, _) = r.post(&payload("g", vec![a])).await;
    assert_eq!(s, 200);
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "received: {:?}", fake.server.received());
    let m = &got[0];
    assert_eq!(m["msg_type"], "interactive");
    assert_eq!(m["timestamp"].as_str().unwrap().len(), 10, "seconds");
    let card = &m["card"];
    assert_eq!(card["header"]["template"], "red", "critical is red");
    assert_eq!(
        card["header"]["title"]["content"],
        "[FIRING] OrderGatewayDown"
    );
    let text = card["elements"][0]["content"].as_str().unwrap();
    assert!(
        text.contains("＜at id=all＞＜/at＞ see ［here］(https://evil.example)"),
        "alert text is data, not a mention or a link: {text}"
    );
    assert!(!text.contains("<at"), "{text}");
    let buttons = card["elements"][1]["actions"].as_array().unwrap();
    let labels: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["Acknowledge", "Silence in Alertmanager", "Runbook"],
        "no javascript: button"
    );
    assert!(
        buttons[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://router.example/ack/")
    );
    assert!(buttons[1]["url"].as_str().unwrap().starts_with(
        "http://alertmanager:9093/#/silences/new?filter=%7Balertname%3D%22OrderGatewayDown%22"
    ));
    assert_eq!(buttons[2]["url"], "https://wiki.example/runbooks/gateway");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_permanent_and_resolved_is_green() {
    let fake = FeishuFake::start("hook-2", Some("right"), None);
    let r = start(&yaml(&fake.webhook_url(), "wrong"), &[]).await;
    let (s, _) = r
        .post(&payload(
            "g",
            vec![alert("Disk", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
    assert_eq!(s, 200);
    assert!(
        r.metric_reaches(
            "quantwatch_router_notifications_total{channel=\"lark\",outcome=\"failed\"}",
            1.0,
            Duration::from_secs(10)
        )
        .await
    );
    assert_eq!(
        fake.server.count_errcode(19021),
        1,
        "refused once, not retried"
    );
    r.shutdown().await;

    let fake = FeishuFake::start("hook-3", None, None);
    let r = start(
        &yaml(&fake.webhook_url(), "unused").replace("    secret: \"unused\"\n", ""),
        &[],
    )
    .await;
    r.post(&payload(
        "g",
        vec![alert("Disk", "resolved", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["card"]["header"]["template"], "green");
    assert!(got[0].get("sign").is_none(), "an unsigned bot gets no sign");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_digest_is_split_under_the_body_limit_and_nothing_is_lost() {
    let fake = FeishuFake::start("hook-4", Some("s"), None);
    let r = start(&yaml(&fake.webhook_url(), "s"), &[]).await;
    // 300 alerts of ~200 bytes each: about 60 KB of card markdown, in one webhook.
    let alerts = (0..300)
        .map(|i| {
            let mut a = alert(
                &format!("Long{i:03}"),
                "firing",
                "2026-01-01T00:00:00Z",
                &[],
            );
            a["annotations"]["summary"] = format!("\"quoted\" {}", "x".repeat(120)).into();
            a
        })
        .collect();
    let (s, _) = r.post(&payload("g", alerts)).await;
    assert_eq!(s, 200);
    let names = || {
        let re = regex::Regex::new(r"\*\*(Long\d{3})\*\*").unwrap();
        fake.texts()
            .iter()
            .flat_map(|t| {
                re.captures_iter(t)
                    .map(|c| c[1].to_string())
                    .collect::<Vec<_>>()
            })
            .collect::<std::collections::HashSet<_>>()
    };
    let t0 = std::time::Instant::now();
    while names().len() < 300 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(names().len(), 300);
    let accepted = fake.server.accepted();
    assert!(accepted.len() >= 3, "{} messages", accepted.len());
    for b in &accepted {
        let n = serde_json::to_vec(b).unwrap().len();
        assert!(n <= 20_000, "body of {n} bytes");
    }
    assert_eq!(
        fake.server.received().len(),
        accepted.len(),
        "nothing refused: {:?}",
        fake.server
            .received()
            .iter()
            .filter(|x| x.errcode != 0)
            .map(|x| x.errcode)
            .collect::<Vec<_>>()
    );
    r.shutdown().await;
}
