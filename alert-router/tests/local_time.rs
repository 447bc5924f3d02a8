//! Local time end to end: a channel's own `timezone` over the router's, the router's zone on
//! the status page, across New York's fall-back hour.

mod common;

use std::time::Duration;

use testkit::fakes::{dingtalk::DingTalkFake, slack::SlackFake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_writes_its_zone_and_the_status_page_the_routers() {
    let ding = DingTalkFake::start("tok", None);
    let slack = SlackFake::start("T000/B000/XXXX");
    let yaml = format!(
        "language: en\ntimezone: America/New_York\nchannels:\n  - {{type: dingtalk, name: ding, webhook_url: \"{}\", timezone: Asia/Shanghai}}\n  - {{type: slack, name: slack, webhook_url: \"{}\"}}\nroute:\n  channels: [ding, slack]\n",
        ding.webhook_url(),
        slack.webhook_url()
    );
    let r = common::start(&yaml, &[("ROUTER_API_TOKEN", "api-token")]).await;
    // 05:30 UTC on 2026-11-01: 01:30 EDT, the first of New York's two 01:30s; 13:30 in Shanghai.
    let a = common::alert("DiskFull", "firing", "2026-11-01T05:30:00Z", &[]);
    assert_eq!(r.post(&common::payload("g", vec![a])).await.0, 200);
    let d = tokio::task::block_in_place(|| ding.server.wait_accepted(1, Duration::from_secs(20)));
    let text = d[0]["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("- **Started**: 2026-11-01 13:30:00 CST\n"),
        "{text}"
    );
    let s = tokio::task::block_in_place(|| slack.server.wait_accepted(1, Duration::from_secs(20)));
    let body = s[0]["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        body.contains("*Started*: 2026-11-01 01:30:00 EDT\n"),
        "{body}"
    );
    let page = reqwest::Client::new()
        .get(format!("{}/", r.url))
        .bearer_auth("api-token")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("2026-11-01 01:30:00 EDT"), "{html}");
    assert!(!html.contains("UTC"), "{html}");
    r.shutdown().await;
}
