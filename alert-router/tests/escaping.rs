//! Alert text is data, never markup: hostile label and annotation values reach DingTalk, WeCom
//! and Slack (read back from the fakes) and the log and email renderings inert, the only link in
//! each message is the router's own ack link, and an injected `quantwatch_acked_by` annotation
//! announces nothing.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use quantwatch_alert_router::channels::email::{EmailConfig, SmtpTls};
use quantwatch_alert_router::channels::log::LogConfig;
use quantwatch_alert_router::channels::{Channel, Common};
use quantwatch_alert_router::core::language::Language;
use quantwatch_alert_router::core::model::parse_payload;
use serde_json::Value;
use testkit::fakes::dingtalk::DingTalkFake;
use testkit::fakes::slack::SlackFake;
use testkit::fakes::wecom::WeComFake;

const SUMMARY: &str = "[确认告警](http://phish) <http://x|click> <!here> <!channel> \
<font color=\"warning\">red</font> <@all> @13800000000";

/// An alert whose every outside string tries to be markup, plus a forged ack mark.
fn hostile() -> Value {
    let mut a = alert(
        "Hostile",
        "firing",
        "2026-01-01T00:00:00Z",
        &[
            ("instance", "db1\n### [FIRING] Forged"),
            ("team", "<!channel>"),
        ],
    );
    a["annotations"]["summary"] = SUMMARY.into();
    a["annotations"]["description"] = "line1\nline2".into();
    a["annotations"]["quantwatch_acked_by"] = "mallory".into();
    a["annotations"]["quantwatch_acked_at"] = "1767225600000".into();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_inert_on_dingtalk_wecom_and_slack() {
    let ding = DingTalkFake::start("tok", None);
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
  - type: wecom
    name: wecom
    webhook_url: "{}"
  - type: slack
    name: slack
    webhook_url: "{}"
route:
  channels: [ding, wecom, slack]
"#,
            ding.webhook_url(),
            wecom.webhook_url(),
            slack.webhook_url()
        ),
        &[
            ("ROUTER_PUBLIC_URL", "https://router.example"),
            ("ROUTER_ACK_SECRET", "escaping-test-ack-secret-32-bytes"),
        ],
    )
    .await;
    let (s, _) = r.post(&payload("g", vec![hostile()])).await;
    assert_eq!(s, 200);

    let d = ding.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(d.len(), 1, "{:?}", ding.server.received());
    let text = d[0]["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains(
            "- **Summary**: ［确认告警］(http://phish) ＜http://x|click＞ ＜!here＞ ＜!channel＞ \
             ＜font color=\"warning\"＞red＜/font＞ ＜＠all＞ ＠13800000000\n"
        ),
        "{text}"
    );
    // Exactly three markdown links, ours (the source graph, silence in Alertmanager's form,
    // whose filter carries the hostile labels percent-encoded, and the ack link); no mention
    // anywhere (none is configured).
    assert_eq!(text.matches("](").count(), 3, "{text}");
    assert!(
        text.contains("\n[Source graph](http://prometheus/graph) · [Silence in Alertmanager](http://alertmanager:9093/#/silences/new?filter=%7Balertname%3D%22Hostile%22%2Cinstance%3D%22db1%5Cn%23%23%23%20%5BFIRING%5D%20Forged%22%2C"),
        "{text}"
    );
    assert!(
        text.contains("· [Acknowledge](https://router.example/ack/ack.fp-Hostile."),
        "{text}"
    );
    assert!(!text.contains('@') && !text.contains('<'), "{text}");
    assert_eq!(d[0]["at"]["atMobiles"], serde_json::json!([]));
    // A value stays on its line: the label's newline cannot start a heading.
    assert!(
        text.contains("instance=db1 ### ［FIRING］ Forged, severity=critical"),
        "{text}"
    );
    assert!(text.contains("- **Description**: line1 line2\n"), "{text}");
    assert!(
        !text.contains("mallory") && !text.contains("ACK:"),
        "{text}"
    );

    let w = wecom.markdowns();
    assert_eq!(w.len(), 1, "{:?}", wecom.server.received());
    let content = &w[0];
    assert_eq!(content.matches("](").count(), 3, "{content}");
    assert!(
        !content.contains('<') && !content.contains('@'),
        "{content}"
    );
    assert!(
        content.contains("＜font color=\"warning\"＞red＜/font＞"),
        "{content}"
    );
    assert!(!content.contains("mallory"), "{content}");

    let sl = slack.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(sl.len(), 1, "{:?}", slack.server.received());
    let body: String = sl[0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        body.contains(
            "*Summary*: [确认告警](http://phish) &lt;http://x|click&gt; &lt;!here&gt; \
             &lt;!channel&gt; &lt;font color=\"warning\"&gt;red&lt;/font&gt; &lt;@all&gt; @13800000000\n"
        ),
        "{body}"
    );
    assert!(body.contains("`team=&lt;!channel&gt;`"), "{body}");
    assert!(
        body.contains("`instance=db1 ### [FIRING] Forged`"),
        "{body}"
    );
    // The only <...> sequences Slack will parse are our links: source graph, silence in
    // Alertmanager's form, ack.
    let seqs: Vec<&str> = body.match_indices('<').map(|(i, _)| &body[i..]).collect();
    assert_eq!(seqs.len(), 3, "{body}");
    assert!(
        seqs[1].starts_with("<http://alertmanager:9093/#/silences/new?filter=%7Balertname")
            && seqs[1].find('|') == seqs[1].find("|Silence in Alertmanager>"),
        "{body}"
    );
    assert!(
        seqs[0].starts_with("<http://prometheus/graph|Source graph> · "),
        "{body}"
    );
    assert!(
        seqs[2].starts_with("<https://router.example/ack/ack.fp-Hostile."),
        "{body}"
    );
    assert!(!body.contains("mallory"), "{body}");
    assert_eq!(sl[0]["text"], "[FIRING] Hostile");
    r.shutdown().await;
}

fn common() -> Common {
    Common {
        language: Language::En,
        links: Default::default(),
        http: reqwest::Client::new(),
        message: Default::default(),
    }
}

fn hostile_event() -> quantwatch_alert_router::core::model::AlertEvent {
    let body = serde_json::to_vec(&payload("g", vec![hostile()])).unwrap();
    parse_payload(&body).unwrap().remove(0)
}

#[test]
fn a_newline_in_a_label_cannot_forge_a_log_line() {
    let log = quantwatch_alert_router::channels::log::Log::new(
        &LogConfig {
            name: "log".into(),
            language: None,
            template: None,
            timezone: None,
        },
        &common(),
    )
    .unwrap();
    let msg = log.render(&[hostile_event()]).unwrap();
    let mut lines: Vec<&str> = msg.body.lines().collect();
    // Last: Alertmanager's silence form, the hostile labels percent-encoded in one line.
    let silence = lines.pop().unwrap();
    assert!(
        silence.starts_with("Silence in Alertmanager: http://alertmanager:9093/#/silences/new?filter=%7Balertname%3D%22Hostile%22%2Cinstance%3D%22db1%5Cn%23%23%23"),
        "{silence}"
    );
    assert_eq!(
        lines,
        vec![
            "[FIRING] Hostile",
            "Severity: critical",
            &format!("Summary: {SUMMARY}"),
            "Description: line1\\nline2",
            "Started: 2026-01-01 00:00:00 UTC",
            "Labels: alertname=Hostile, instance=db1\\n### [FIRING] Forged, severity=critical, team=<!channel>",
            "Source graph: http://prometheus/graph",
        ],
        "{}",
        msg.body
    );
}

#[test]
fn email_html_and_text_parts_escape_alert_text() {
    let email = quantwatch_alert_router::channels::email::Email::new(
        &EmailConfig {
            name: "mail".into(),
            host: "127.0.0.1".into(),
            port: Some(25),
            tls: SmtpTls::None,
            username: None,
            password: None,
            ca_file: None,
            from: "router@example.com".into(),
            to: vec!["ops@example.com".into()],
            language: None,
            template: None,
            timezone: None,
            html_template: None,
            timeout: None,
            fallback: vec![],
        },
        &common(),
    )
    .unwrap();
    let msg = email.render(&[hostile_event()]).unwrap();
    let html = msg.html.unwrap();
    assert!(!html.contains("<font"), "{html}");
    assert!(
        html.contains("&lt;font color=&quot;warning&quot;&gt;red&lt;"),
        "{html}"
    );
    assert!(!html.contains("mallory"), "{html}");
    assert!(
        msg.body.contains("Description: line1\\nline2\n"),
        "{}",
        msg.body
    );
}
