//! Config validation of the channel layer: the new channel types and `fallback`, every problem
//! named by file and key, and no secret value in any reason.

use std::collections::HashMap;

use quantwatch_alert_router::app::config;

fn problems(yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    std::fs::write(&path, yaml).unwrap();
    match config::load(Some(&path), &HashMap::<String, String>::new()) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|p| format!("{}: {}", p.key, p.reason))
                .collect()
        }
    }
}

#[test]
fn new_channel_types_and_fallbacks_are_checked_without_quoting_secrets() {
    let p = problems(
        r#"
channels:
  - type: feishu
    name: lark
    webhook_url: "ftp://open.feishu.cn/open-apis/bot/v2/hook/TOKEN-SECRET-1"
    secret: ""
    rate_per_minute: 101
    fallback: [lark]
  - type: webhook
    name: pager
    url: "https://pager.example/hook"
    secret: "short-SECRET-2"
    fallback: [nowhere]
  - type: dingtalk
    name: ding
    webhook_url: "https://oapi.dingtalk.com/robot/send?access_token=x"
    fallback: [pager]
route:
  channels: [ding]
"#,
    );
    let want = [
        "channels[0] (lark).webhook_url: is not an http(s) URL",
        "channels[0] (lark).secret: is empty (remove the key if the robot does not sign)",
        "channels[0] (lark).rate_per_minute: must be 1..=100 (Feishu limits a custom bot to 100 per minute)",
        "channels[1] (pager).secret: must be at least 16 bytes (it signs every request)",
        "channels[0] (lark).fallback: a channel cannot be its own fallback",
        "channels[1] (pager).fallback: no channel is named \"nowhere\"",
    ];
    for w in want {
        assert!(p.iter().any(|x| x == w), "missing {w:?} in {p:#?}");
    }
    assert_eq!(p.len(), want.len(), "{p:#?}");
    let all = p.join("\n");
    assert!(!all.contains("SECRET"), "a secret leaked: {all}");
}

#[test]
fn a_valid_feishu_webhook_and_fallback_config_loads() {
    assert_eq!(
        problems(
            r#"
channels:
  - type: feishu
    name: lark
    webhook_url: "https://open.feishu.cn/open-apis/bot/v2/hook/abc"
    secret: "s"
    fallback: [pager]
  - type: webhook
    name: pager
    url: "https://pager.example/hook"
    secret: "0123456789abcdef"
route:
  channels: [lark]
"#
        ),
        Vec::<String>::new()
    );
}

#[test]
fn aliyun_voice_is_checked_without_quoting_its_secrets() {
    let p = problems(
        r#"
channels:
  - type: aliyun_voice
    name: phone
    endpoint: "dyvmsapi.aliyuncs.com"
    access_key_id: "LTAI-ID"
    access_key_secret: ""
    phone_numbers: ["13800000000", "not-a-number"]
    called_show_number: ""
    tts_code: TTS_1
    callback_token: "short-TOKEN-SECRET"
    receipt_timeout: soon
  - type: aliyun_voice
    name: phone2
    endpoint: "https://dyvmsapi.aliyuncs.com/"
    access_key_id: "LTAI-ID"
    access_key_secret: "SECRET-3"
    phone_numbers: []
    called_show_number: "057100000000"
    tts_code: TTS_1
    callback_token: "0123456789abcdef0123456789abcde/SECRET"
route:
  channels: [phone]
"#,
    );
    let token_reason = "must be at least 32 characters of A-Z, a-z, 0-9, - and _ (it is a URL path segment and the only credential of the receipt endpoint)";
    let want = [
        "channels[0] (phone).endpoint: is not an http(s) URL".to_string(),
        "channels[0] (phone).access_key_secret: is empty".into(),
        "channels[0] (phone).called_show_number: is empty".into(),
        "channels[0] (phone).phone_numbers: every entry must be a phone number".into(),
        format!("channels[0] (phone).callback_token: {token_reason}"),
        "channels[0] (phone).receipt_timeout: is not a duration like \"10s\"".into(),
        "channels[1] (phone2).phone_numbers: needs at least one number".into(),
        format!("channels[1] (phone2).callback_token: {token_reason}"),
    ];
    for w in &want {
        assert!(p.iter().any(|x| x == w), "missing {w:?} in {p:#?}");
    }
    assert_eq!(p.len(), want.len(), "{p:#?}");
    let all = p.join("\n");
    assert!(!all.contains("SECRET"), "a secret leaked: {all}");
    // An empty token (a `${VAR:-}` default) is no token: the channel loads.
    assert_eq!(
        problems(
            r#"
channels:
  - type: aliyun_voice
    name: phone
    endpoint: "https://dyvmsapi.aliyuncs.com/"
    access_key_id: "LTAI-ID"
    access_key_secret: "s"
    phone_numbers: ["13800000000"]
    called_show_number: "057100000000"
    tts_code: TTS_1
    callback_token: ""
route:
  channels: [phone]
"#
        ),
        Vec::<String>::new()
    );
}
