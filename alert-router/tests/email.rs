//! Email delivery to a real SMTP server (aiosmtpd): STARTTLS + AUTH and implicit TLS, the
//! received MIME parsed and checked; a refused AUTH is a permanent error.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use mail_parser::{MessageParser, MimeHeaders};
use testkit::{Smtp, SmtpOptions, SmtpTls};

const API: &str = "api-secret";

fn email_yaml(port: u16, tls: &str, ca: &std::path::Path, password: &str) -> String {
    let auth = if password.is_empty() {
        String::new()
    } else {
        format!("    username: alerts\n    password: \"{password}\"\n")
    };
    format!(
        "language: en\ndelivery:\n  retry_initial: 200ms\n  retry_max: 1s\nchannels:\n  - type: email\n    name: mail\n    host: 127.0.0.1\n    port: {port}\n    tls: {tls}\n{auth}    ca_file: {}\n    from: \"Quantwatch <alerts@quantwatch.test>\"\n    to: [\"oncall@quantwatch.test\", \"risk@quantwatch.test\"]\n    timeout: 5s\nroute:\n  channels: [mail]\n",
        ca.display()
    )
}

fn check_mime(raw: &[u8]) {
    let msg = MessageParser::default()
        .parse(raw)
        .expect("a parseable RFC 5322 message");
    assert_eq!(msg.subject(), Some("[FIRING] MarginCallRisk"));
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    assert_eq!(from, "alerts@quantwatch.test");
    let to: Vec<String> = msg
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(to, vec!["oncall@quantwatch.test", "risk@quantwatch.test"]);
    let ct = msg.content_type().expect("content type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    let text = msg.body_text(0).expect("text part");
    assert!(text.contains("[FIRING] MarginCallRisk"), "{text}");
    assert!(
        text.contains("Summary: margin usage 93% < 100% & rising"),
        "{text}"
    );
    assert!(text.contains("Started: 2026-01-01 00:00:00 UTC"), "{text}");
    let html = msg.body_html(0).expect("html part");
    assert!(
        html.contains("margin usage 93% &lt; 100% &amp; rising"),
        "HTML escaped: {html}"
    );
    assert!(html.contains("<h3>"), "{html}");
}

fn margin_alert() -> serde_json::Value {
    let mut a = alert(
        "MarginCallRisk",
        "firing",
        "2026-01-01T00:00:00Z",
        &[("strategy", "basis-1")],
    );
    a["annotations"]["summary"] = "margin usage 93% < 100% & rising".into();
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_delivers_multipart_text_and_html() {
    let smtp = Smtp::start(SmtpOptions {
        tls: SmtpTls::StartTls,
        auth: Some(("alerts".into(), "s3cret".into())),
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, smtp.cert_pem()).unwrap();
    let r = start(&email_yaml(smtp.port(), "starttls", &ca, "s3cret"), &[]).await;
    assert_eq!(r.post(&payload("g", vec![margin_alert()])).await.0, 200);
    let msgs = tokio::task::block_in_place(|| smtp.wait_for_messages(1, Duration::from_secs(20)));
    assert_eq!(msgs.len(), 1);
    check_mime(&msgs[0]);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_delivers() {
    // Without AUTH: the harness server (aiosmtpd) does not offer AUTH over implicit TLS.
    let smtp = Smtp::start(SmtpOptions {
        tls: SmtpTls::Implicit,
        auth: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, smtp.cert_pem()).unwrap();
    let r = start(&email_yaml(smtp.port(), "tls", &ca, ""), &[]).await;
    assert_eq!(r.post(&payload("g", vec![margin_alert()])).await.0, 200);
    let msgs = tokio::task::block_in_place(|| smtp.wait_for_messages(1, Duration::from_secs(20)));
    check_mime(&msgs[0]);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_silent_after_auth_is_retried_not_waited_on_forever() {
    // aiosmtpd does not answer a refused AUTH at all: the router must time out and retry.
    let smtp = Smtp::start(SmtpOptions {
        tls: SmtpTls::StartTls,
        auth: Some(("alerts".into(), "right".into())),
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, smtp.cert_pem()).unwrap();
    let yaml = email_yaml(smtp.port(), "starttls", &ca, "wrong-pw-xyz")
        .replace("timeout: 5s", "timeout: 1s");
    let r = start(&yaml, &[("ROUTER_API_TOKEN", API)]).await;
    assert_eq!(r.post(&payload("g", vec![margin_alert()])).await.0, 200);
    // The retry is counted before the row records its error: wait for the row.
    let pending = common::wait_for(
        Duration::from_secs(20),
        "the notification is pending with the timeout as its last error",
        || async {
            let pending = r.notifications(API, "pending").await;
            if pending.len() == 1 && pending[0]["last_error"].is_string() {
                Ok(pending)
            } else {
                Err(pending)
            }
        },
    )
    .await;
    assert!(
        r.metric("quantwatch_router_notifications_total{channel=\"mail\",outcome=\"retry\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    let err = pending[0]["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("timeout"), "{err}");
    assert!(
        !err.contains("wrong-pw-xyz"),
        "the password never appears in errors"
    );
    assert!(smtp.messages().is_empty());
    r.shutdown().await;
}
