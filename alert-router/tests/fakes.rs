//! The vendor fakes refuse what the real services refuse, with the real codes: a fake that
//! accepted anything would make every delivery test meaningless.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use testkit::fakes::dingtalk::{DingTalkFake, expected_sign};
use testkit::fakes::feishu::FeishuFake;
use testkit::fakes::slack::SlackFake;
use testkit::fakes::wecom::WeComFake;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn post(url: &str, body: &Value) -> (u16, Option<String>, Value) {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .json(body)
        .send()
        .expect("post to fake");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().unwrap_or_default();
    (
        status,
        retry_after,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn md(text: &str) -> Value {
    json!({"msgtype": "markdown", "markdown": {"title": "t", "text": text}})
}

fn signed(fake: &DingTalkFake, secret: &str, ts: i64) -> String {
    let mut url = reqwest::Url::parse(&fake.webhook_url()).unwrap();
    url.query_pairs_mut()
        .append_pair("timestamp", &ts.to_string())
        .append_pair("sign", &expected_sign(secret, &ts.to_string()));
    url.to_string()
}

#[test]
fn dingtalk_fake_checks_token_signature_window_shape_and_size() {
    let fake = DingTalkFake::start("tok", Some("SECx"));
    let code = |(_, _, b): (u16, Option<String>, Value)| b["errcode"].as_i64().unwrap();
    assert_eq!(code(post(&fake.webhook_url(), &md("unsigned"))), 310000);
    let wrong_token =
        signed(&fake, "SECx", now_ms()).replace("access_token=tok", "access_token=nope");
    assert_eq!(code(post(&wrong_token, &md("x"))), 300001);
    assert_eq!(
        code(post(&signed(&fake, "SECother", now_ms()), &md("x"))),
        310000,
        "wrong secret"
    );
    assert_eq!(
        code(post(&signed(&fake, "SECx", now_ms() - 3_700_000), &md("x"))),
        310000,
        "signed over an hour ago"
    );
    assert_eq!(
        code(post(
            &signed(&fake, "SECx", now_ms() - 3_500_000),
            &md("fifty-eight minutes ago is fine")
        )),
        0
    );
    assert_eq!(
        code(post(
            &signed(&fake, "SECx", now_ms()),
            &json!({"msgtype": "markdown", "markdown": {"text": "no title"}})
        )),
        40035
    );
    // The limit counts the request body, not the markdown text.
    let overhead = serde_json::to_vec(&md("")).unwrap().len();
    let exact = md(&"字".repeat((20_000 - overhead) / 3));
    let exact_len = serde_json::to_vec(&exact).unwrap().len();
    assert!(exact_len <= 20_000 && exact_len > 19_997, "{exact_len}");
    assert_eq!(
        code(post(&signed(&fake, "SECx", now_ms()), &exact)),
        0,
        "a body of {exact_len} bytes"
    );
    let over = md(&"a".repeat(20_001 - overhead));
    assert_eq!(serde_json::to_vec(&over).unwrap().len(), 20_001);
    assert_eq!(
        code(post(&signed(&fake, "SECx", now_ms()), &over)),
        460101,
        "a body of 20,001 bytes"
    );
    // 14,000 bytes of markdown, but every line break is two bytes once JSON-escaped.
    let escaped = md(&"a\n".repeat(7_000));
    assert!(serde_json::to_vec(&escaped).unwrap().len() > 21_000);
    assert_eq!(
        code(post(&signed(&fake, "SECx", now_ms()), &escaped)),
        460101,
        "JSON escaping counts"
    );
    assert_eq!(fake.server.accepted().len(), 2);
}

#[test]
fn dingtalk_fake_answers_130101_over_20_a_minute_then_bans() {
    // Same rule with a 5 s window and an 8 s ban so the test does not take ten minutes.
    let fake = DingTalkFake::start_with_window(
        "tok",
        None,
        Duration::from_secs(5),
        Duration::from_secs(8),
    );
    for i in 0..20 {
        assert_eq!(
            post(&fake.webhook_url(), &md(&format!("m{i}"))).2["errcode"],
            0,
            "message {i}"
        );
    }
    assert_eq!(post(&fake.webhook_url(), &md("21st")).2["errcode"], 130101);
    std::thread::sleep(Duration::from_millis(5500));
    assert_eq!(
        post(&fake.webhook_url(), &md("window passed, still banned")).2["errcode"],
        130101
    );
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(post(&fake.webhook_url(), &md("ban over")).2["errcode"], 0);
    assert_eq!(fake.server.count_errcode(130101), 2);
}

#[test]
fn wecom_fake_checks_key_size_and_rate() {
    let fake = WeComFake::start("k1");
    let m = |c: &str| json!({"msgtype": "markdown", "markdown": {"content": c}});
    let code = |(_, _, b): (u16, Option<String>, Value)| b["errcode"].as_i64().unwrap();
    assert_eq!(
        code(post(
            &fake.webhook_url().replace("key=k1", "key=k2"),
            &m("x")
        )),
        93000
    );
    assert_eq!(
        code(post(&fake.webhook_url(), &m(&"a".repeat(4097)))),
        40058
    );
    assert_eq!(
        code(post(&fake.webhook_url(), &json!({"msgtype": "news"}))),
        40008
    );
    assert_eq!(code(post(&fake.webhook_url(), &m(&"a".repeat(4096)))), 0);
    // Every request with the right key counts, refused ones included: 3 so far.
    for _ in 0..17 {
        assert_eq!(code(post(&fake.webhook_url(), &m("ok"))), 0);
    }
    assert_eq!(code(post(&fake.webhook_url(), &m("21st"))), 45009);
}

#[test]
fn slack_fake_checks_hook_blocks_and_rate() {
    let fake = SlackFake::start("T/B/x");
    let sec = |t: &str| json!({"text": "f", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": t}}]});
    assert_eq!(
        post(&fake.webhook_url().replace("T/B/x", "T/B/y"), &sec("x")).0,
        404
    );
    let (s, _, b) = post(&fake.webhook_url(), &sec(&"é".repeat(3001)));
    assert_eq!((s, b), (400, json!("invalid_blocks")));
    std::thread::sleep(Duration::from_millis(1100));
    let (s, _, b) = post(&fake.webhook_url(), &json!({"blocks": []}));
    assert_eq!((s, b), (400, json!("invalid_blocks")));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(post(&fake.webhook_url(), &sec(&"é".repeat(3000))).0, 200);
    let (s, retry_after, _) = post(&fake.webhook_url(), &sec("too soon"));
    assert_eq!((s, retry_after.as_deref()), (429, Some("1")));
}

#[test]
fn feishu_fake_checks_signature_window_keyword_shape_size_and_rate() {
    let fake = FeishuFake::start("tok1", Some("sec"), Some("ALERT"));
    let code = |(_, _, b): (u16, Option<String>, Value)| b["code"].as_i64().unwrap();
    let now_s = now_ms() / 1000;
    let msg = |ts: i64, secret: &str, text: &str| {
        let t = ts.to_string();
        json!({
            "timestamp": t,
            "sign": testkit::fakes::feishu::expected_sign(secret, &t),
            "msg_type": "text",
            "content": {"text": text},
        })
    };
    let url = fake.webhook_url();
    assert_eq!(code(post(&url, &msg(now_s, "sec", "ALERT ok"))), 0);
    assert_eq!(
        code(post(
            &url.replace("tok1", "tok2"),
            &msg(now_s, "sec", "ALERT")
        )),
        19001
    );
    assert_eq!(
        code(post(&url, &msg(now_s, "other", "ALERT"))),
        19021,
        "wrong secret"
    );
    assert_eq!(
        code(post(&url, &msg(now_s - 3700, "sec", "ALERT"))),
        19021,
        "stale"
    );
    assert_eq!(code(post(&url, &msg(now_s - 3500, "sec", "ALERT old"))), 0);
    let mut shifted = msg(now_s, "sec", "ALERT");
    shifted["timestamp"] = json!((now_s + 1).to_string());
    assert_eq!(
        code(post(&url, &shifted)),
        19021,
        "sign is over the exact timestamp"
    );
    assert_eq!(code(post(&url, &msg(now_s, "sec", "no keyword"))), 19024);
    let mut card = msg(now_s, "sec", "ALERT");
    card["msg_type"] = json!("interactive");
    assert_eq!(
        code(post(&url, &card)),
        9499,
        "a card needs header and elements"
    );
    assert_eq!(
        code(post(
            &url,
            &msg(now_s, "sec", &format!("ALERT {}", "x".repeat(20_480)))
        )),
        9499,
        "over 20 KB"
    );
    // Five accepted so far in this second at most; the burst hits the 5/s limit.
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(code(post(
            &url,
            &msg(now_ms() / 1000, "sec", &format!("ALERT {i}")),
        )));
    }
    assert!(codes.contains(&11232), "{codes:?}");
}
