//! DingTalk custom robot ("自定义机器人"): markdown messages, optional HMAC-SHA256 signing
//! ("加签"), and `at.atMobiles` with each `@mobile` also written in the text, which DingTalk
//! requires for the mention to notify.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{Channel, Common, Limits, Message, SendError, WINDOW_MARGIN};
use crate::config::{DingtalkConfig, Language};
use crate::model::AlertEvent;
use crate::template::{self, Template, TemplateError};

/// How this channel's messages are read; titles are escaped for it like template values.
const MARKUP: template::Markup = template::Markup::Markdown;

/// DingTalk refuses markdown text over 20,000 bytes (errcode 460101).
pub const MAX_TEXT_BYTES: usize = 20_000;

pub struct DingTalk {
    name: String,
    url: reqwest::Url,
    secret: Option<String>,
    at_mobiles: Vec<String>,
    at_all: bool,
    rate: u32,
    timeout: Duration,
    language: Language,
    template: Template,
    common: Common,
}

/// `base64(hmac_sha256(secret, "{timestamp}\n{secret}"))`, as DingTalk documents it.
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl DingTalk {
    pub fn new(c: &DingtalkConfig, common: &Common) -> Result<DingTalk, String> {
        Ok(DingTalk {
            name: c.name.clone(),
            url: reqwest::Url::parse(&c.webhook_url).map_err(|e| format!("webhook_url: {e}"))?,
            secret: c.secret.clone(),
            at_mobiles: c.at_mobiles.clone(),
            at_all: c.at_all,
            rate: c.rate_per_minute.unwrap_or(20),
            timeout: super::timeout_of(c.timeout.as_deref()),
            language: c.language.unwrap_or(common.language),
            template: super::template_for("markdown", c.template.as_deref(), template::MARKDOWN)
                .map_err(|e| e.to_string())?,
            common: common.clone(),
        })
    }

    fn mention_suffix(&self) -> String {
        let mut s = String::new();
        if !self.at_mobiles.is_empty() || self.at_all {
            s.push_str("\n\n");
            for m in &self.at_mobiles {
                s.push_str(&format!("@{m} "));
            }
            if self.at_all {
                s.push_str("@all");
            }
        }
        s
    }

    /// The request body DingTalk expects for a markdown message.
    pub fn payload(&self, msg: &Message) -> serde_json::Value {
        let (mobiles, ids): (Vec<&String>, Vec<&String>) =
            msg.mentions.iter().partition(|m| super::is_mobile(m));
        let mut at_mobiles: Vec<&String> = self.at_mobiles.iter().collect();
        at_mobiles.extend(mobiles.iter().filter(|m| !self.at_mobiles.contains(m)));
        // DingTalk notifies only people written as @mobile / @userid in the text too.
        let extra: String = mobiles
            .iter()
            .chain(ids.iter())
            .map(|m| format!("@{m} "))
            .collect();
        let sep = if extra.is_empty() { "" } else { "\n\n" };
        let mut at = json!({ "atMobiles": at_mobiles, "isAtAll": self.at_all });
        if !ids.is_empty() {
            at["atUserIds"] = json!(ids);
        }
        json!({
            "msgtype": "markdown",
            "markdown": { "title": msg.title, "text": format!("{}{}{sep}{extra}", msg.body, self.mention_suffix()) },
            "at": at,
        })
    }
}

/// What DingTalk's errcode means for a notification.
pub fn classify(errcode: i64, errmsg: &str) -> Result<(), SendError> {
    match errcode {
        0 => Ok(()),
        // "send too fast": the robot is throttled (10 minutes after a burst).
        130101 => Err(SendError::RateLimited {
            reason: format!("errcode 130101: {errmsg}"),
            retry_after: Some(Duration::from_secs(60)),
        }),
        // System busy: transient by DingTalk's own description.
        -1 => Err(SendError::Retryable(format!("errcode -1: {errmsg}"))),
        // 310000 bad signature / keyword / IP, 300001 and 400101 bad token, 460101 too long, ...
        _ => Err(SendError::Permanent(format!("errcode {errcode}: {errmsg}"))),
    }
}

#[async_trait]
impl Channel for DingTalk {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "dingtalk"
    }
    fn limits(&self) -> Limits {
        Limits {
            rate: Some((self.rate, Duration::from_secs(60) + WINDOW_MARGIN)),
            max_body_bytes: Some(MAX_TEXT_BYTES - self.mention_suffix().len()),
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        let ctx = template::context(alerts, self.language, &self.common.links);
        Ok(Message {
            title: template::title(alerts, self.language, MARKUP),
            body: self.template.render(&ctx)?,
            html: None,
            mentions: Vec::new(),
        })
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let mut url = self.url.clone();
        if let Some(secret) = &self.secret {
            let ts = chrono::Utc::now().timestamp_millis();
            url.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string())
                .append_pair("sign", &sign(secret, ts));
        }
        let resp = self
            .common
            .http
            .post(url)
            .timeout(self.timeout)
            .json(&self.payload(msg))
            .send()
            .await
            .map_err(super::transport_error)?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(SendError::Retryable(format!("HTTP {status}")));
        }
        if status.as_u16() == 429 {
            return Err(SendError::RateLimited {
                reason: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(60)),
            });
        }
        if !status.is_success() {
            return Err(SendError::Permanent(format!("HTTP {status}")));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| SendError::Retryable(format!("unreadable answer: {}", e.without_url())))?;
        classify(
            body["errcode"].as_i64().unwrap_or(-1),
            body["errmsg"].as_str().unwrap_or(""),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_documented_algorithm() {
        // Python: base64.b64encode(hmac.new(b"SECabc", b"1700000000000\nSECabc", hashlib.sha256).digest())
        assert_eq!(
            sign("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
        );
    }

    #[test]
    fn errcodes_are_classified() {
        assert_eq!(classify(0, "ok"), Ok(()));
        assert!(matches!(
            classify(130101, "send too fast"),
            Err(SendError::RateLimited { .. })
        ));
        assert!(matches!(
            classify(310000, "sign not match"),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(classify(-1, "busy"), Err(SendError::Retryable(_))));
    }

    #[test]
    fn per_channel_template_override_and_mentions_in_text() {
        let common = Common {
            language: Language::Zh,
            links: crate::template::LinkSettings::default(),
            http: reqwest::Client::new(),
        };
        let cfg = DingtalkConfig {
            name: "d".into(),
            webhook_url: "https://oapi.dingtalk.com/robot/send?access_token=x".into(),
            secret: None,
            at_mobiles: vec!["13800000000".into()],
            at_all: false,
            language: Some(Language::En),
            template: Some(
                "{{ alerts|length }} x {{ alerts[0].alertname }} / {{ t.firing }}".into(),
            ),
            timeout: None,
            rate_per_minute: None,
        };
        let d = DingTalk::new(&cfg, &common).unwrap();
        let ev = crate::cli::test_alert();
        let msg = d.render(std::slice::from_ref(&ev)).unwrap();
        assert_eq!(msg.body, "1 x QuantwatchTestNotification / FIRING");
        let p = d.payload(&msg);
        assert_eq!(
            p["markdown"]["text"],
            "1 x QuantwatchTestNotification / FIRING\n\n@13800000000 "
        );
        assert_eq!(
            d.limits().max_body_bytes,
            Some(MAX_TEXT_BYTES - "\n\n@13800000000 ".len())
        );
    }
}
