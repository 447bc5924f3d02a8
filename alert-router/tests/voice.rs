//! Aliyun voice (`aliyun_voice`) against the loopback Dyvmsapi fake, which verifies the signed
//! `SingleCallByTts` and pushes `VoiceReport` receipts back to the router's callback:
//! a step calls its rotation's people in turn until one answers (on SQLite and PostgreSQL),
//! a lost receipt counts as unanswered after the timeout, a flow-controlled number is skipped
//! for the next person, the receipt endpoint takes only its token, and the fake refuses what
//! Aliyun refuses.

mod common;

use std::time::{Duration, Instant};

use common::{alert, payload, start};
use serde_json::Value;
use testkit::Postgres;
use testkit::fakes::aliyun::{code_number, expected_signature};
use testkit::fakes::aliyun_voice::{AliyunVoiceFake, Answer};
use testkit::fakes::percent_encode;

const API: &str = "api-secret";
const SECRET: &str = "voice-access-key-secret-7d1c";
const TOKEN: &str = "cb-token-0123456789abcdef0123456789abcdef";
const ANN: &str = "13800000001";
const BO: &str = "13800000002";
const CY: &str = "13800000003";

/// A router whose only escalation step calls the `oncall` rotation (ann, bo, cy; ann on call
/// today) on the voice channel.
fn yaml(endpoint: &str, secret: &str, receipt_timeout: &str) -> String {
    let today = chrono::Utc::now().format("%Y-%m-%d");
    format!(
        r#"language: en
timezone: Asia/Shanghai
delivery:
  retry_initial: 200ms
  retry_max: 1s
  poll_interval: 200ms
channels:
  - type: aliyun_voice
    name: voice
    endpoint: "{endpoint}"
    access_key_id: LTAIvoice
    access_key_secret: "{secret}"
    phone_numbers: ["{ANN}"]
    called_show_number: "057100000000"
    tts_code: TTS_100001
    callback_token: {TOKEN}
    receipt_timeout: {receipt_timeout}
    timeout: 2s
people:
  ann: {{voice: "{ANN}"}}
  bo: {{voice: "{BO}"}}
  cy: {{voice: "{CY}"}}
rotations:
  oncall:
    timezone: UTC
    period: daily
    handoff: "00:00"
    start: {today}
    people: [ann, bo, cy]
route:
  channels: [voice]
  escalation: wake
escalation_policies:
  wake:
    steps:
      - delay: 0s
        channels: [voice]
        rotations: [oncall]
"#
    )
}

fn fake() -> AliyunVoiceFake {
    AliyunVoiceFake::start("LTAIvoice", SECRET, "057100000000", "TTS_100001")
}

/// (who, outcome, text) of the history's call entries, in order.
fn calls_in(h: &[Value]) -> Vec<(String, String, String)> {
    h.iter()
        .filter(|e| e["action"] == "call")
        .map(|e| {
            (
                e["by"].as_str().unwrap_or("").to_string(),
                e["outcome"].as_str().unwrap_or("").to_string(),
                e["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn calls_until_someone_answers(db: Option<&str>) {
    let f = fake();
    f.set_answer(ANN, Answer::NoAnswer);
    f.set_answer(BO, Answer::Busy);
    f.set_answer(CY, Answer::Answered);
    // The receipt timeout (3 minutes) is far longer than the test: only receipts move it on.
    let mut env = vec![("ROUTER_API_TOKEN", API)];
    if let Some(db) = db {
        env.push(("ROUTER_DATABASE_URL", db));
    }
    let r = start(&yaml(&f.endpoint(), SECRET, "3m"), &env).await;
    f.set_callback(&format!("{}/callbacks/aliyun/voice/{TOKEN}", r.url));
    let mut a = alert("OrderRejectRateHigh", "firing", "2026-01-01T00:00:00Z", &[]);
    a["annotations"]["summary"] =
        "Reject rate 12% on strategy alpha, see https://grafana.example/d/1".into();
    let (s, _) = r.post(&payload("g", vec![a])).await;
    assert_eq!(s, 200);

    let calls = f.wait_calls(3, Duration::from_secs(20));
    let numbers: Vec<&str> = calls.iter().map(|c| c.number.as_str()).collect();
    assert_eq!(numbers, vec![ANN, BO, CY], "called in rotation order");
    assert_eq!(calls[0].tts_param["alertname"], "OrderRejectRateHigh");
    assert_eq!(calls[0].tts_param["severity"], "critical");
    assert_eq!(
        calls[0].tts_param["summary"],
        "Reject rate 12% on strategy alpha, see"
    );
    let pushes = f.wait_pushes(3, Duration::from_secs(10));
    assert_eq!(pushes.len(), 3);
    assert!(
        pushes.iter().all(|p| p.accepted && p.answer["code"] == 0),
        "{pushes:?}"
    );
    assert_eq!(pushes[1].call_id, calls[1].call_id);
    // The next person is called on the receipt, not after the 3-minute timeout (the bound
    // leaves room for a busy machine, and is still far below the timeout).
    let gap = calls[2].at.duration_since(pushes[1].at);
    assert!(
        gap < Duration::from_secs(30),
        "cy called {gap:?} after bo's receipt"
    );
    let gap = calls[1].at.duration_since(pushes[0].at);
    assert!(
        gap < Duration::from_secs(30),
        "bo called {gap:?} after ann's receipt"
    );

    // Someone answered: the step's row is done, so nobody else can be called.
    assert!(
        common::eventually(Duration::from_secs(15), || async {
            r.notifications(API, "sent").await.len() == 1
        })
        .await,
        "the step's row is not marked sent after cy answered"
    );
    assert!(r.notifications(API, "pending").await.is_empty());
    assert_eq!(f.calls().len(), 3);

    let h = r.history(API, "fp-OrderRejectRateHigh").await;
    let got = calls_in(&h);
    let who: Vec<(&str, &str)> = got
        .iter()
        .map(|(w, o, _)| (w.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        who,
        vec![("ann", "no_answer"), ("bo", "busy"), ("cy", "answered")],
        "{h:?}"
    );
    for ((w, _, text), words) in got.iter().zip(["no answer", "busy", "answered"]) {
        let prefix = format!("called {w}: {words} ");
        assert!(text.starts_with(&prefix), "{text}");
        let clock = &text[prefix.len()..];
        assert_eq!(clock.len(), 8, "{text}");
        assert!(
            chrono::NaiveTime::parse_from_str(clock, "%H:%M:%S").is_ok(),
            "{text}"
        );
    }
    let step = h
        .iter()
        .find(|e| e["action"] == "step")
        .expect("the step entry");
    assert_eq!(step["mentions"], serde_json::json!([ANN, BO, CY]));

    let (_, page) = r.status_page(API).await;
    for (w, _, text) in &got {
        assert!(
            page.contains(text.as_str()),
            "status page lacks {w}: {page}"
        );
    }
    assert!(
        !page.contains(ANN),
        "the page names people, not their numbers"
    );

    for (o, n) in [
        ("placed", 3.0),
        ("no_answer", 1.0),
        ("busy", 1.0),
        ("answered", 1.0),
    ] {
        assert_eq!(
            r.metric(&format!(
                "quantwatch_router_calls_total{{channel=\"voice\",outcome=\"{o}\"}}"
            ))
            .await,
            Some(n),
            "{o}"
        );
    }
    assert_eq!(
        r.metric("quantwatch_router_call_receipts_total{outcome=\"stored\"}")
            .await,
        Some(3.0)
    );
    // One escalation step went out (its first call), not three.
    assert_eq!(
        r.metric("quantwatch_router_escalation_steps_sent_total")
            .await,
        Some(1.0)
    );
    assert!(!r.metrics().await.contains(SECRET));
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_step_calls_its_people_in_turn_until_one_answers() {
    calls_until_someone_answers(None).await;
}

#[test]
fn a_voice_step_calls_its_people_in_turn_on_postgres() {
    let rt = common::runtime();
    let pg = Postgres::start();
    let url = pg.create_database("router");
    rt.block_on(calls_until_someone_answers(Some(&url)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_receipt_counts_as_unanswered_and_a_flow_controlled_number_is_skipped() {
    let f = fake();
    f.set_answer(ANN, Answer::NoReceipt);
    f.set_answer(BO, Answer::Answered);
    let r = start(
        &yaml(&f.endpoint(), SECRET, "1s"),
        &[("ROUTER_API_TOKEN", API)],
    )
    .await;
    f.set_callback(&format!("{}/callbacks/aliyun/voice/{TOKEN}", r.url));
    r.post(&payload(
        "g",
        vec![alert("FeedStale", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    let calls = f.wait_calls(2, Duration::from_secs(15));
    assert_eq!(calls.len(), 2, "ann and bo called: {calls:?}");
    let waited = calls[1].at.duration_since(calls[0].at);
    assert!(
        waited >= Duration::from_millis(900),
        "bo is called only once ann's receipt is overdue ({waited:?})"
    );
    // The history has both calls once bo's answer is stored (the fake saw the calls first).
    let got = common::wait_for(
        Duration::from_secs(15),
        "FeedStale's history shows ann's call and bo's answer",
        || async {
            let got = calls_in(&r.history(API, "fp-FeedStale").await);
            if got.len() == 2 && got[1].0 == "bo" && got[1].1 == "answered" {
                Ok(got)
            } else {
                Err(got)
            }
        },
    )
    .await;
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str()),
        ("ann", "no_receipt")
    );
    assert!(
        got[0].2.starts_with("called ann: no receipt in time "),
        "{got:?}"
    );

    // ann and bo were called less than a minute ago: the vendor refuses both for a minute.
    // The next alert's step skips them (recorded) and calls cy at once.
    r.post(&payload(
        "g2",
        vec![alert("BookStale", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    let calls = f.wait_calls(3, Duration::from_secs(15));
    assert_eq!(calls.len(), 3, "a third call: {calls:?}");
    assert_eq!(calls[2].number, CY);
    assert_eq!(
        f.server
            .count_errcode(code_number("isv.BUSINESS_LIMIT_CONTROL")),
        2
    );
    // The fake has seen cy's call; the router records it once the vendor answered.
    let got = common::wait_for(
        Duration::from_secs(15),
        "BookStale's history shows ann and bo skipped, then cy called",
        || async {
            let got = calls_in(&r.history(API, "fp-BookStale").await);
            if got.len() == 3 { Ok(got) } else { Err(got) }
        },
    )
    .await;
    let who: Vec<(&str, &str)> = got
        .iter()
        .map(|(w, o, _)| (w.as_str(), o.as_str()))
        .collect();
    assert_eq!(who[..2], [("ann", "flow_control"), ("bo", "flow_control")]);
    assert_eq!(who[2].0, "cy");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_endpoint_takes_only_its_token_and_arrays() {
    let f = fake();
    let r = start(
        &yaml(&f.endpoint(), SECRET, "3m"),
        &[("ROUTER_API_TOKEN", API)],
    )
    .await;
    let post = |path: String, body: &'static str| async move {
        let resp = reqwest::Client::new()
            .post(path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        (s, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let base = format!("{}/callbacks/aliyun/voice", r.url);
    let (s, v) = post(
        format!("{base}/not-the-token-0123456789abcdef0123456789"),
        "[]",
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (401, Some(401)));
    let (s, _) = post(format!("{base}/{TOKEN}"), "{\"call_id\": \"1\"}").await;
    assert_eq!(s, 400);
    // A receipt of a call this router did not place (the account serves others too):
    // acknowledged as Aliyun expects, not stored.
    let (s, v) = post(
        format!("{base}/{TOKEN}"),
        r#"[{"call_id":"999^1","status_code":"200000","duration":"5"}]"#,
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (200, Some(0)));
    assert_eq!(
        r.metric("quantwatch_router_call_receipts_total{outcome=\"unknown_call\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_call_receipts_total{outcome=\"unauthorized\"}")
            .await,
        Some(1.0)
    );
    let big = "x".repeat(300 * 1024);
    let resp = reqwest::Client::new()
        .post(format!("{base}/{TOKEN}"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_permanently_without_showing_it() {
    let f = fake();
    let leaked = "a-rotated-out-voice-secret-99";
    let r = start(
        &yaml(&f.endpoint(), leaked, "3m"),
        &[("ROUTER_API_TOKEN", API)],
    )
    .await;
    r.post(&payload(
        "g",
        vec![alert("X", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    // The metric counts the failure before the row is marked: wait for the row.
    let failed = common::wait_for(
        Duration::from_secs(15),
        "the voice notification is marked failed",
        || async {
            let failed = r.notifications(API, "failed").await;
            if failed.len() == 1 {
                Ok(failed)
            } else {
                Err(failed)
            }
        },
    )
    .await;
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"voice\",outcome=\"failed\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        f.server.count_errcode(code_number("SignatureDoesNotMatch")),
        1
    );
    let text = failed[0].to_string();
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(!text.contains(leaked), "{text}");
    assert!(!r.metrics().await.contains(leaked));
    assert!(f.calls().is_empty());
    r.shutdown().await;
}

/// A signed `SingleCallByTts` request as the router would send it, with these overrides.
fn signed(secret: &str, ts: &str, nonce: &str, over: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("AccessKeyId", "LTAIvoice"),
        ("Action", "SingleCallByTts"),
        ("Format", "JSON"),
        ("RegionId", "cn-hangzhou"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce),
        ("SignatureVersion", "1.0"),
        ("Timestamp", ts),
        ("Version", "2017-05-25"),
        ("CalledShowNumber", "057100000000"),
        ("CalledNumber", "13900000000"),
        ("TtsCode", "TTS_100001"),
        (
            "TtsParam",
            r#"{"alertname":"A","severity":"critical","summary":"s"}"#,
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in over {
        match p.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => p.push((k.to_string(), v.to_string())),
        }
    }
    p.retain(|(_, v)| !v.is_empty());
    let sig = expected_signature(secret, &p);
    p.push(("Signature".into(), sig));
    p
}

fn form(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_what_aliyun_refuses() {
    let f = fake();
    let now = || chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let client = reqwest::Client::new();
    let send = |body: String| {
        let (client, url) = (client.clone(), f.endpoint());
        async move {
            let v: Value = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let code = |v: &Value| v["Code"].as_str().unwrap_or("").to_string();
    let t0 = Instant::now();
    let ok = send(form(&signed(SECRET, &now(), "n1", &[]))).await;
    assert_eq!(code(&ok), "OK");
    assert!(ok["CallId"].as_str().is_some_and(|c| c.contains('^')));
    for (body, want) in [
        (
            form(&signed("wrong", &now(), "n2", &[])),
            "SignatureDoesNotMatch",
        ),
        (
            form(&signed(SECRET, "2020-01-01T00:00:00Z", "n3", &[])),
            "InvalidTimeStamp.Expired",
        ),
        (
            form(&signed(SECRET, &now(), "n1", &[])),
            "SignatureNonceUsed",
        ),
        (
            form(&signed(SECRET, &now(), "n4", &[("CalledNumber", "")])),
            "MissingParameter",
        ),
        (
            form(&signed(SECRET, &now(), "n5", &[("CalledNumber", "12345")])),
            "isv.MOBILE_NUMBER_ILLEGAL",
        ),
        (
            form(&signed(SECRET, &now(), "n6", &[("TtsCode", "TTS_9")])),
            "isv.TTS_TEMPLATE_ILLEGAL",
        ),
        (
            form(&signed(
                SECRET,
                &now(),
                "n7",
                &[("TtsParam", r#"{"alertname":"A"}"#)],
            )),
            "isv.TEMPLATE_MISSING_PARAMETERS",
        ),
        (
            form(&signed(
                SECRET,
                &now(),
                "n8",
                &[
                    ("CalledNumber", "13900000009"),
                    (
                        "TtsParam",
                        &format!(
                            r#"{{"alertname":"A","severity":"c","summary":"{}"}}"#,
                            "x".repeat(210)
                        ),
                    ),
                ],
            )),
            "isv.PARAM_LENGTH_LIMIT",
        ),
        (
            form(&signed(
                SECRET,
                &now(),
                "n9",
                &[(
                    "TtsParam",
                    r#"{"alertname":"A","severity":"c","summary":"see http://x/y"}"#,
                )],
            )),
            "isv.PARAM_NOT_SUPPORT_URL",
        ),
        (
            form(&signed(
                SECRET,
                &now(),
                "n10",
                &[("CalledShowNumber", "05719999")],
            )),
            "isv.DISPLAY_NUMBER_ILLEGAL",
        ),
        (
            form(&signed(
                SECRET,
                &now(),
                "n11",
                &[("OutId", "0123456789abcdef")],
            )),
            "isv.INVALID_PARAMETERS",
        ),
        // The same number again within a minute: the vendor's per-number flow control.
        (
            form(&signed(SECRET, &now(), "n12", &[])),
            "isv.BUSINESS_LIMIT_CONTROL",
        ),
    ] {
        assert_eq!(code(&send(body.clone()).await), want, "{body}");
    }
    // A parameter moved out of sorted order before signing: Aliyun sorts, so the signature
    // over the unsorted string does not match.
    let mut p = signed(SECRET, &now(), "n13", &[("CalledNumber", "13900000001")]);
    p.pop();
    let unsorted: String = p
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let bad = {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let to_sign = format!("POST&%2F&{}", percent_encode(&unsorted));
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{SECRET}&").as_bytes()).unwrap();
        mac.update(to_sign.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    p.push(("Signature".into(), bad));
    assert_eq!(code(&send(form(&p)).await), "SignatureDoesNotMatch");
    assert_eq!(f.calls().len(), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "flow control window still open"
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_quantwatch-alert-router");

#[test]
fn check_config_and_test_send_cover_voice_and_never_print_the_secret() {
    let f = fake();
    let dir = tempfile::tempdir().unwrap();
    let run = |yaml: String, args: &[&str]| {
        let path = dir.path().join("router.yml");
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "debug")
            .env(
                "ROUTER_DATABASE_URL",
                format!("sqlite://{}/r.db", dir.path().display()),
            )
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(yaml(&f.endpoint(), SECRET, "3m"), &["check-config"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    let (code, text) = run(
        yaml(&f.endpoint(), SECRET, "3m"),
        &["test-send", "--channel", "voice"],
    );
    assert_eq!(code, Some(0), "{text}");
    let calls = f.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].number, ANN);
    assert_eq!(
        calls[0].tts_param["alertname"],
        "QuantwatchTestNotification"
    );
    assert!(!text.contains(SECRET), "{text}");

    let leaked = "a-wrong-voice-secret-in-the-config";
    let (code, text) = run(
        yaml(&f.endpoint(), leaked, "3m"),
        &["test-send", "--channel", "voice"],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(!text.contains(leaked), "{text}");

    let bad = yaml(&f.endpoint(), leaked, "3m").replace("tts_code: TTS_100001", "tts_code: \"\"");
    let (code, text) = run(bad, &["check-config"]);
    assert_eq!(code, Some(64), "{text}");
    assert!(
        text.contains("channels[0] (voice).tts_code: is empty"),
        "{text}"
    );
    assert!(!text.contains(leaked), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_while_a_call_rings_stops_the_sequence() {
    let f = fake();
    f.set_answer(ANN, Answer::NoAnswer);
    // Long enough for the ack below to come first on a busy machine.
    f.set_receipt_delay(Duration::from_secs(3));
    let r = start(
        &yaml(&f.endpoint(), SECRET, "3m"),
        &[("ROUTER_API_TOKEN", API)],
    )
    .await;
    f.set_callback(&format!("{}/callbacks/aliyun/voice/{TOKEN}", r.url));
    r.post(&payload(
        "g",
        vec![alert("Halted", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    assert_eq!(f.wait_calls(1, Duration::from_secs(10)).len(), 1);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/alerts/fp-Halted/ack", r.url))
        .bearer_auth(API)
        .json(&serde_json::json!({"by": "ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // ann's "no answer" arrives after the ack: stored, but nobody else is called.
    let pushes = f.wait_pushes(1, Duration::from_secs(15));
    assert!(
        pushes.len() == 1 && pushes[0].accepted,
        "ann's receipt pushed and accepted: {pushes:?}"
    );
    assert!(
        common::eventually(Duration::from_secs(15), || async {
            calls_in(&r.history(API, "fp-Halted").await)
                .iter()
                .any(|(_, o, _)| o == "no_answer")
        })
        .await,
        "ann's no-answer is not in the history"
    );
    assert!(r.notifications(API, "pending").await.is_empty());
    assert_eq!(f.calls().len(), 1, "{:?}", f.calls());
    r.shutdown().await;
}
