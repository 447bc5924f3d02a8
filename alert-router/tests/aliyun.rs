//! Aliyun SMS against the loopback Dysmsapi fake: signed requests accepted, template
//! parameters within 35 characters, flow control is a wait (not a failure), a wrong secret is
//! permanent; the fake refuses a stale timestamp, a reused nonce and a signature over
//! unsorted parameters.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use testkit::fakes::aliyun::{AliyunFake, code_number, expected_signature};

fn yaml(endpoint: &str, secret: &str) -> String {
    format!(
        "language: en\ndelivery:\n  retry_initial: 200ms\n  retry_max: 1s\n  poll_interval: 200ms\nchannels:\n  - type: aliyun_sms\n    name: sms\n    endpoint: \"{endpoint}\"\n    access_key_id: LTAIkey\n    access_key_secret: \"{secret}\"\n    phone_numbers: [\"13800000000\"]\n    sign_name: Quantwatch\n    template_code: SMS_123\n    timeout: 2s\nroute:\n  channels: [sms]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_sms_is_accepted_with_short_parameters_and_a_wrong_secret_fails() {
    let fake = AliyunFake::start("LTAIkey", "the-secret");
    let r = start(&yaml(&fake.endpoint(), "the-secret"), &[]).await;
    let mut a = alert("OrderRejectRateHigh", "firing", "2026-01-01T00:00:00Z", &[]);
    a["annotations"]["summary"] = "x".repeat(200).into();
    r.post(&payload("g", vec![a])).await;
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "received: {:?}", fake.server.received());
    assert_eq!(got[0]["Action"], "SendSms");
    assert_eq!(got[0]["PhoneNumbers"], "13800000000");
    let tp = &fake.template_params()[0];
    assert_eq!(tp["alertname"], "OrderRejectRateHigh");
    assert_eq!(tp["severity"], "critical");
    assert_eq!(tp["summary"].as_str().unwrap().chars().count(), 35);
    r.shutdown().await;

    let fake = AliyunFake::start("LTAIkey", "the-secret");
    let r = start(&yaml(&fake.endpoint(), "a-leaked-old-secret"), &[]).await;
    r.post(&payload(
        "g",
        vec![alert("X", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    assert!(
        r.metric_reaches(
            "quantwatch_router_notifications_total{channel=\"sms\",outcome=\"failed\"}",
            1.0,
            Duration::from_secs(10)
        )
        .await
    );
    assert_eq!(
        fake.server
            .count_errcode(code_number("SignatureDoesNotMatch")),
        1
    );
    assert!(!r.metrics().await.contains("a-leaked-old-secret"));
    r.shutdown().await;
}

fn signed(secret: &str, ts: &str, nonce: &str) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("AccessKeyId", "LTAIkey"),
        ("Action", "SendSms"),
        ("Format", "JSON"),
        ("RegionId", "cn-hangzhou"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce),
        ("SignatureVersion", "1.0"),
        ("Timestamp", ts),
        ("Version", "2017-05-25"),
        ("PhoneNumbers", "13800000000"),
        ("SignName", "Quantwatch"),
        ("TemplateCode", "SMS_1"),
        ("TemplateParam", r#"{"alertname":"A"}"#),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = expected_signature(secret, &p);
    p.push(("Signature".into(), sig));
    p
}

#[test]
fn fake_refuses_stale_reused_unsorted_and_throttles_per_number() {
    let fake = AliyunFake::start("LTAIkey", "sec");
    let now = chrono::Utc::now();
    let ts = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let c = reqwest::blocking::Client::new();
    let code = |p: &Vec<(String, String)>| -> String {
        let v: serde_json::Value = c
            .post(fake.endpoint())
            .form(p)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["Code"].as_str().unwrap().to_string()
    };
    assert_eq!(code(&signed("sec", &ts, "n1")), "OK");
    assert_eq!(code(&signed("sec", &ts, "n1")), "SignatureNonceUsed");
    let stale = (now - chrono::Duration::minutes(20))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_eq!(
        code(&signed("sec", &stale, "n2")),
        "InvalidTimeStamp.Expired"
    );
    assert_eq!(code(&signed("other", &ts, "n3")), "SignatureDoesNotMatch");
    // A signature over the parameters in their sent (unsorted) order is refused.
    let mut p = signed("sec", &ts, "n4");
    p.pop();
    let unsorted: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let bad = {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"sec&").unwrap();
        mac.update(unsorted.join("&").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    p.push(("Signature".into(), bad));
    assert_eq!(code(&p), "SignatureDoesNotMatch");
    assert_eq!(
        code(&signed("sec", &ts, "n5")),
        "isv.BUSINESS_LIMIT_CONTROL"
    );
}
