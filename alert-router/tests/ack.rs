//! Acknowledgement over HTTP against the running router and the Slack fake: the API, signed
//! ack links (a GET never acknowledges; forged, expired and other-alert tokens are refused),
//! the announcement on the notified channel, and the status page.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use quantwatch_alert_router::core::signing as ack;
use serde_json::{Value, json};
use testkit::fakes::slack::SlackFake;

const API: &str = "api-token";
const SECRET: &str = "ack-secret-of-at-least-32-bytes!";

fn yaml(slack_url: &str) -> String {
    format!(
        r#"language: en
delivery:
  poll_interval: 100ms
channels:
  - type: slack
    name: slack
    webhook_url: "{slack_url}"
  - type: log
    name: log
route:
  channels: [log]
  routes:
    - matchers: ['severity="critical"']
      escalation: crit
escalation_policies:
  crit:
    steps:
      - delay: 0s
        channels: [slack]
      - delay: 10m
        channels: [log]
"#
    )
}

async fn start_router(fake: &SlackFake) -> common::RouterUnderTest {
    start(
        &yaml(&fake.webhook_url()),
        &[
            ("ROUTER_API_TOKEN", API),
            ("ROUTER_PUBLIC_URL", "https://router.example"),
            ("ROUTER_ACK_SECRET", SECRET),
        ],
    )
    .await
}

async fn alerts(r: &common::RouterUnderTest) -> Vec<Value> {
    r.api_get(API, "/api/v1/alerts").await["alerts"]
        .as_array()
        .cloned()
        .unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_form(url: &str, by: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("by={by}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_link_get_confirms_only_post_acks_and_bad_tokens_are_refused() {
    let fake = SlackFake::start("T000/B000/XXXX");
    let r = start_router(&fake).await;
    let (s, _) = r
        .post(&payload(
            "g",
            vec![alert("DiskFull", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
    assert_eq!(s, 200);
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let text = got[0].to_string();
    let token = regex::Regex::new(r"https://router\.example/ack/([A-Za-z0-9._-]+)\|")
        .unwrap()
        .captures(&text)
        .unwrap_or_else(|| panic!("no ack link in {text}"))[1]
        .to_string();
    assert!(
        token.starts_with("ack.fp-DiskFull.1767225600000."),
        "{token}"
    );

    // API: 401 without the token, then the escalation state.
    let unauth = reqwest::get(format!("{}/api/v1/alerts", r.url))
        .await
        .unwrap();
    assert_eq!(unauth.status().as_u16(), 401);
    let list = alerts(&r).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["fingerprint"], "fp-DiskFull");
    assert_eq!(list[0]["policy"], "crit");
    assert_eq!(list[0]["current_step"], 0);
    assert_eq!(list[0]["next_step"], 1);
    assert_eq!(list[0]["notified"][0]["channel"], "slack");
    assert_eq!(list[0]["acked_by"], Value::Null);

    // GET (what a link-preview bot does) shows a form and acknowledges nothing.
    for _ in 0..2 {
        let (s, page) = get(&format!("{}/ack/{token}", r.url)).await;
        assert_eq!(s, 200);
        assert!(page.contains("Acknowledge this alert?"), "{page}");
        assert!(
            page.contains(&format!("<form method=\"post\" action=\"/ack/{token}\">")),
            "{page}"
        );
    }
    assert_eq!(alerts(&r).await[0]["acked_by"], Value::Null);

    // Forged, expired, and another alert's signature: refused, GET and POST alike.
    let now = chrono::Utc::now().timestamp();
    let sig = token.rsplit('.').next().unwrap();
    let exp: i64 = token.split('.').nth(3).unwrap().parse().unwrap();
    let start = 1_767_225_600_000_i64;
    let forged = ack::token(
        "not-the-secret-but-32-bytes-long",
        "fp-DiskFull",
        start,
        now + 3600,
    );
    let expired = ack::token(SECRET, "fp-DiskFull", start, now - 1);
    let other = format!("ack.fp-Other.{start}.{exp}.{sig}");
    for (t, status) in [(&forged, 403), (&expired, 410), (&other, 403)] {
        let (s, page) = get(&format!("{}/ack/{t}", r.url)).await;
        assert_eq!(s, status, "GET {t}: {page}");
        let (s, page) = post_form(&format!("{}/ack/{t}", r.url), "mallory").await;
        assert_eq!(s, status, "POST {t}: {page}");
        assert!(page.contains("Nothing was acknowledged"), "{page}");
    }
    assert_eq!(alerts(&r).await[0]["acked_by"], Value::Null);

    // POST acknowledges, and the ack is announced on the channel that was notified.
    let (s, page) = post_form(&format!("{}/ack/{token}", r.url), "alice").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Acknowledged by alice"), "{page}");
    let list = alerts(&r).await;
    assert_eq!(list[0]["acked_by"], "alice");
    assert_eq!(list[0]["next_step"], Value::Null);
    let got = fake.server.wait_accepted(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2);
    let text = got[1].to_string();
    assert!(text.contains("acknowledged by alice"), "{text}");
    let (s, _) = post_form(&format!("{}/ack/{token}", r.url), "bob").await;
    assert_eq!(s, 409);

    // The status page shows the alert and who acknowledged it.
    let resp = reqwest::Client::new()
        .get(format!("{}/", r.url))
        .bearer_auth(API)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let status = resp.text().await.unwrap();
    assert!(status.contains("<b>DiskFull</b>"), "{status}");
    assert!(status.contains("acknowledged by alice"), "{status}");
    assert!(status.contains("name=\"viewport\""), "{status}");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_api_needs_the_token_a_name_and_an_active_alert() {
    let fake = SlackFake::start("T000/B000/XXXX");
    let r = start_router(&fake).await;
    r.post(&payload(
        "g",
        vec![alert("CpuHot", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    fake.server.wait_accepted(1, Duration::from_secs(10));
    let c = reqwest::Client::new();
    let ack_url = format!("{}/api/v1/alerts/fp-CpuHot/ack", r.url);
    let send = |body: Value, token: Option<&'static str>| {
        let mut req = c.post(&ack_url).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            let s = resp.status().as_u16();
            (s, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(send(json!({"by": "bob"}), None).await.0, 401);
    assert_eq!(send(json!({"by": "bob"}), Some("wrong")).await.0, 401);
    let (s, v) = send(json!({"by": "  "}), Some(API)).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("bad_request")));
    let (s, _) = send(json!({"who": "bob"}), Some(API)).await;
    assert_eq!(s, 400);
    let (s, v) = send(json!({"by": "bob"}), Some(API)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["announced"], json!(["slack"]));
    let (s, v) = send(json!({"by": "carol"}), Some(API)).await;
    assert_eq!((s, v["by"].as_str()), (409, Some("bob")));
    let (s, v) = c
        .post(format!("{}/api/v1/alerts/nope/ack", r.url))
        .bearer_auth(API)
        .json(&json!({"by": "bob"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!((s, v), (404, ()));
    assert_eq!(
        r.metric("quantwatch_router_escalation_acks_total").await,
        Some(1.0)
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_mentions_reach_dingtalk_wecom_and_slack_in_their_own_form() {
    use testkit::fakes::dingtalk::DingTalkFake;
    use testkit::fakes::wecom::WeComFake;
    let ding = DingTalkFake::start("tok", Some("SECx"));
    let wecom = WeComFake::start("key1");
    let slack = SlackFake::start("T000/B000/XXXX");
    let r = start(
        &format!(
            r#"language: en
delivery:
  poll_interval: 100ms
channels:
  - type: dingtalk
    name: ding
    webhook_url: "{}"
    secret: SECx
  - type: wecom
    name: wecom
    webhook_url: "{}"
  - type: slack
    name: slack
    webhook_url: "{}"
route:
  channels: [ding]
  escalation: p
escalation_policies:
  p:
    steps:
      - delay: 0s
        channels: [ding, wecom, slack]
        mentions:
          ding: ["13800000000", "manager01"]
          wecom: ["zhangsan", "13900000000"]
          slack: ["U024BE7LH"]
"#,
            ding.webhook_url(),
            wecom.webhook_url(),
            slack.webhook_url()
        ),
        &[],
    )
    .await;
    r.post(&payload(
        "g",
        vec![alert("Mention", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    let d = ding.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["at"]["atMobiles"], json!(["13800000000"]));
    assert_eq!(d[0]["at"]["atUserIds"], json!(["manager01"]));
    let text = d[0]["markdown"]["text"].as_str().unwrap();
    assert!(text.ends_with("\n\n@13800000000 @manager01 "), "{text}");
    let w = wecom.server.wait_accepted(2, Duration::from_secs(10));
    assert_eq!(w.len(), 2, "markdown plus the mobile mention");
    let content = w[0]["markdown"]["content"].as_str().unwrap();
    assert!(content.ends_with(" <@zhangsan>"), "{content}");
    assert_eq!(
        w[1]["text"]["mentioned_mobile_list"],
        json!(["13900000000"])
    );
    let s = slack.server.wait_accepted(1, Duration::from_secs(10));
    let first = s[0]["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(first.starts_with("<@U024BE7LH>\n"), "{first}");
    r.shutdown().await;
}

/// The ack link in a Slack message (the token between `/ack/` and `|`).
fn link_token(msg: &Value) -> String {
    let text = msg.to_string();
    regex::Regex::new(r"https://router\.example/ack/([A-Za-z0-9._-]+)\|")
        .unwrap()
        .captures(&text)
        .unwrap_or_else(|| panic!("no ack link in {text}"))[1]
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_for_one_firing_does_not_ack_the_next_firing() {
    let fake = SlackFake::start("T000/B000/XXXX");
    let r = start_router(&fake).await;
    let first = alert("Flap", "firing", "2026-01-01T00:00:00Z", &[]);
    r.post(&payload("g", vec![first])).await;
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    let token_a = link_token(&got[0]);
    assert!(
        token_a.starts_with("ack.fp-Flap.1767225600000."),
        "{token_a}"
    );
    // Firing A resolves; firing B of the same alert (same fingerprint) starts a new chain.
    r.post(&payload(
        "g",
        vec![alert("Flap", "resolved", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    r.post(&payload(
        "g",
        vec![alert("Flap", "firing", "2026-01-02T00:00:00Z", &[])],
    ))
    .await;
    let got = fake.server.wait_accepted(3, Duration::from_secs(10));
    assert_eq!(got.len(), 3, "firing A, resolved A, firing B: {got:?}");
    let token_b = link_token(&got[2]);
    assert!(
        token_b.starts_with("ack.fp-Flap.1767312000000."),
        "{token_b}"
    );

    let (s, page) = get(&format!("{}/ack/{token_a}", r.url)).await;
    assert_eq!(s, 410, "{page}");
    assert!(page.contains("earlier firing"), "{page}");
    let (s, page) = post_form(&format!("{}/ack/{token_a}", r.url), "mallory").await;
    assert_eq!(s, 410, "{page}");
    assert!(page.contains("Nothing was acknowledged"), "{page}");
    let list = alerts(&r).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["starts_at"], 1_767_312_000_000_i64);
    assert_eq!(
        list[0]["acked_by"],
        Value::Null,
        "firing B is not acknowledged"
    );
    // The API refuses a stale startsAt the same way.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/alerts/fp-Flap/ack", r.url))
        .bearer_auth(API)
        .json(&json!({"by": "bob", "starts_at": 1_767_225_600_000_i64}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "other_firing");

    let (s, page) = post_form(&format!("{}/ack/{token_b}", r.url), "alice").await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(alerts(&r).await[0]["acked_by"], "alice");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_events_steps_and_acks_with_who_how_and_address() {
    let fake = SlackFake::start("T000/B000/XXXX");
    let r = start_router(&fake).await;
    // One at a time, so each gets its own message (not one digest).
    for (name, n) in [("DiskFull", 1), ("CpuHot", 2)] {
        r.post(&payload(
            "g",
            vec![alert(name, "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
        assert_eq!(
            fake.server.wait_accepted(n, Duration::from_secs(10)).len(),
            n
        );
    }
    let disk = fake.server.accepted()[0].clone();
    let (s, page) = post_form(&format!("{}/ack/{}", r.url, link_token(&disk)), "alice").await;
    assert_eq!(s, 200, "{page}");
    // The status page's form (here with the API bearer; a logged-in user once the web layer
    // authenticates the page): recorded as "page".
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/alerts/fp-CpuHot/ack", r.url))
        .bearer_auth(API)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("starts_at=1767225600000&by=carol")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("Acknowledged by carol"));
    fake.server.wait_accepted(4, Duration::from_secs(10));

    let unauth = reqwest::get(format!("{}/api/v1/alerts/fp-DiskFull/history", r.url))
        .await
        .unwrap();
    assert_eq!(unauth.status().as_u16(), 401);
    let history = |fp: &'static str| {
        let url = format!("{}/api/v1/alerts/{fp}/history", r.url);
        async move {
            let v: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(API)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["history"].as_array().cloned().unwrap()
        }
    };
    let h = history("fp-DiskFull").await;
    let summary: Vec<(String, Value, Value, Value, Value)> = h
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["by"].clone(),
                e["via"].clone(),
                e["address"].clone(),
                e["channel"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "firing".into(),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ),
            (
                "step".into(),
                Value::Null,
                Value::Null,
                Value::Null,
                json!("slack")
            ),
            (
                "ack".into(),
                json!("alice"),
                json!("link"),
                json!("127.0.0.1"),
                Value::Null
            ),
            (
                "ack_announced".into(),
                Value::Null,
                Value::Null,
                Value::Null,
                json!("slack")
            ),
        ],
        "{h:?}"
    );
    assert_eq!(h[1]["step"], 0);
    assert!(
        h.iter().all(|e| e["starts_at"] == 1_767_225_600_000_i64),
        "{h:?}"
    );
    let h = history("fp-CpuHot").await;
    let ack = h.iter().find(|e| e["action"] == "ack").expect("ack entry");
    assert_eq!(
        (&ack["by"], &ack["via"], &ack["address"]),
        (&json!("carol"), &json!("page"), &json!("127.0.0.1"))
    );
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts/never-seen/history", r.url))
        .bearer_auth(API)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    // The status page shows the trail: who, how and from where.
    let (s, page) = r.status_page(API).await;
    assert_eq!(s, 200);
    assert!(
        page.contains("<td>DiskFull</td><td>alice</td><td>link</td><td>127.0.0.1</td>"),
        "{page}"
    );
    assert!(
        page.contains("<td>CpuHot</td><td>carol</td><td>page</td><td>127.0.0.1</td>"),
        "{page}"
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_lists_every_firing_alert_and_mints_no_links() {
    // No escalation policy at all: plain notifications, as a new user first sets it up.
    let r = start(
        "language: en\n",
        &[
            ("ROUTER_API_TOKEN", API),
            ("ROUTER_PUBLIC_URL", "https://router.example"),
            ("ROUTER_ACK_SECRET", SECRET),
        ],
    )
    .await;
    let (s, _) = r
        .post(&payload(
            "g",
            vec![
                alert("First", "firing", "2026-01-01T00:00:00Z", &[]),
                alert("Second", "firing", "2026-01-01T00:05:00Z", &[]),
                alert("Gone", "firing", "2026-01-01T00:00:00Z", &[]),
            ],
        ))
        .await;
    assert_eq!(s, 200);
    r.post(&payload(
        "g",
        vec![alert("Gone", "resolved", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    let (s, page) = r.status_page(API).await;
    assert_eq!(s, 200);
    assert!(
        page.contains("<title>quantwatch-alert-router: 2 firing</title>"),
        "{page}"
    );
    let first = page.find("<b>First</b>").expect("First listed");
    let second = page.find("<b>Second</b>").expect("Second listed");
    let resolved = page.find("<h2>Recently resolved</h2>").unwrap();
    assert!(first < second && second < resolved, "{page}");
    assert!(page[resolved..].contains("<b>Gone</b>"), "{page}");
    assert_eq!(page.matches("not escalated").count(), 2, "{page}");
    // No signed link for an anonymous visitor, and nothing a strict CSP would block.
    assert!(!page.contains("/ack/"), "{page}");
    for inline in ["<script", "<style", "style=", "onclick"] {
        assert!(!page.contains(inline), "{inline}: {page}");
    }
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/static/style.css\">"));
    let css = reqwest::get(format!("{}/static/style.css", r.url))
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains("border-collapse"));
    r.shutdown().await;
}
