//! Feishu / Lark custom bot ("自定义机器人"): an interactive card (header coloured by severity,
//! the alert as card markdown, URL buttons for ack, runbook and dashboard), optionally signed:
//! `sign = base64(hmac_sha256(key = "{timestamp}\n{secret}", message = ""))` with `timestamp`
//! (seconds) and `sign` in the JSON body. Feishu allows 100 messages a minute and 5 a second
//! per bot and a request body of at most 20 KB.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::http::{self, Class, ErrorTable};
use super::{
    Channel, ChannelSpec, Common, Limits, Message, Render, SendError, WINDOW_MARGIN, check,
};
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::render::template::{self, TemplateError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    pub name: String,
    /// `https://open.feishu.cn/open-apis/bot/v2/hook/...` (Lark: `open.larksuite.com`).
    pub webhook_url: String,
    /// Sign secret when the bot has "签名校验" enabled.
    pub secret: Option<String>,
    pub language: Option<Language>,
    /// Card markdown (`markdown` escaping: links, `<at>` tags and mentions in values are inert).
    pub template: Option<String>,
    /// IANA zone of this channel's times, over the router's `timezone`.
    pub timezone: Option<String>,
    pub timeout: Option<String>,
    /// Messages per minute; Feishu allows 100.
    pub rate_per_minute: Option<u32>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl ChannelSpec for FeishuConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "feishu"
    }
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn validate(&self, p: &mut check::Problems) {
        if check::url(p, "webhook_url", &self.webhook_url)
            && !self.webhook_url.contains("/bot/v2/hook/")
        {
            p.push((
                "webhook_url".into(),
                "is not a custom bot hook (…/open-apis/bot/v2/hook/TOKEN)".into(),
            ));
        }
        check::secret(p, "secret", &self.secret);
        check::rate(
            p,
            "rate_per_minute",
            self.rate_per_minute,
            100,
            "Feishu limits a custom bot to 100 per minute",
        );
        check::duration(p, "timeout", &self.timeout);
        check::template(p, "template", "markdown", &self.template);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Feishu::new(self, common)?))
    }
}

/// Feishu refuses a request body over "20 KB"; 20,000 bytes is the stricter reading.
pub const MAX_BODY_BYTES: usize = 20_000;

/// Feishu's codes: 11232 "frequency limited", 19021 sign mismatch or timestamp over an hour
/// away, 19022 IP not allowed, 19024 "Key Words Not Found", 9499 bad request; all but the
/// frequency limit are permanent.
pub const ERRORS: ErrorTable = ErrorTable {
    code_field: "code",
    msg_field: "msg",
    codes: &[
        (0, Class::Ok),
        (11232, Class::RateLimited(Duration::from_secs(60))),
    ],
};

/// The card header colour for a severity (Feishu's header `template` names).
pub fn colour(severity: &str) -> &'static str {
    match severity {
        "critical" | "page" | "error" | "high" => "red",
        "warning" | "warn" | "medium" => "orange",
        "info" | "low" => "blue",
        "resolved" => "green",
        _ => "grey",
    }
}

fn http_url(u: &str) -> bool {
    reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// A Feishu user id fit for `<at id=...>`: anything else would be markup.
fn mention_ok(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub struct Feishu {
    name: String,
    url: reqwest::Url,
    secret: Option<String>,
    rate: u32,
    timeout: Duration,
    render: Render,
    common: Common,
}

impl Feishu {
    pub fn new(c: &FeishuConfig, common: &Common) -> Result<Feishu, String> {
        Ok(Feishu {
            name: c.name.clone(),
            url: reqwest::Url::parse(&c.webhook_url).map_err(|e| format!("webhook_url: {e}"))?,
            secret: c.secret.clone(),
            rate: c.rate_per_minute.unwrap_or(100),
            timeout: super::timeout_of(c.timeout.as_deref()),
            render: Render::new(
                common,
                c.language,
                "markdown",
                c.template.as_deref(),
                template::FEISHU,
            )?,
            common: common.clone(),
        })
    }

    /// The card body for this message, signed at `timestamp_s` when the bot has a secret.
    pub fn payload(&self, msg: &Message, timestamp_s: i64) -> serde_json::Value {
        let mut content = msg.body.clone();
        let who: Vec<String> = msg
            .mentions
            .iter()
            .filter(|m| mention_ok(m))
            .map(|m| format!("<at id={m}></at>"))
            .collect();
        if !who.is_empty() {
            content.push('\n');
            content.push_str(&who.join(" "));
        }
        let mut elements = vec![json!({"tag": "markdown", "content": content})];
        if !msg.buttons.is_empty() {
            let actions: Vec<serde_json::Value> = msg
                .buttons
                .iter()
                .enumerate()
                .map(|(i, (label, url))| {
                    json!({
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": label},
                        "type": if i == 0 { "primary" } else { "default" },
                        "url": url,
                    })
                })
                .collect();
            elements.push(json!({"tag": "action", "actions": actions}));
        }
        let mut body = json!({
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": true},
                "header": {
                    "template": colour(&msg.severity),
                    "title": {"tag": "plain_text", "content": msg.title},
                },
                "elements": elements,
            },
        });
        if let Some(secret) = &self.secret {
            body["timestamp"] = json!(timestamp_s.to_string());
            body["sign"] = json!(sign(secret, timestamp_s));
        }
        body
    }
}

#[async_trait]
impl Channel for Feishu {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "feishu"
    }
    fn limits(&self) -> Limits {
        // 100 a minute spaces sends 0.6 s apart, which also keeps under 5 a second.
        Limits {
            rate: Some((self.rate, Duration::from_secs(60) + WINDOW_MARGIN)),
            max_body_bytes: Some(MAX_BODY_BYTES),
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        let mut m = self.render.render(alerts)?;
        if let [a] = alerts {
            let (ack, runbook, dashboard) = match self.render.language {
                Language::Zh => ("确认告警", "处理手册", "监控面板"),
                Language::En => ("Acknowledge", "Runbook", "Dashboard"),
            };
            if a.status == crate::core::model::Status::Firing
                && let Some(u) = self.render.links.ack_url(&a.fingerprint, a.starts_at)
            {
                m.buttons.push((ack.into(), u));
            }
            for s in self.render.links.silence_links(a, self.render.language) {
                if let (Some(l), Some(u)) = (s["label"].as_str(), s["url"].as_str()) {
                    m.buttons.push((l.into(), u.into()));
                }
            }
            let links = crate::render::template::alert_links(a, &self.render.message);
            for (label, url) in [(runbook, links.runbook), (dashboard, links.dashboard)] {
                if let Some(u) = url.filter(|u| http_url(u)) {
                    m.buttons.push((label.into(), u));
                }
            }
        }
        Ok(m)
    }
    fn measure(&self, msg: &Message) -> usize {
        // A timestamp of the same width as the real one: the signature's length is fixed.
        http::body_bytes(&self.payload(msg, 1_700_000_000)).len()
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let body = self.payload(msg, crate::core::clock::now().timestamp());
        let text = http::post_json(
            &self.common.http,
            self.url.clone(),
            self.timeout,
            &[],
            http::body_bytes(&body),
            Duration::from_secs(60),
        )
        .await?;
        ERRORS.classify_answer(&text)
    }
}

/// `base64(hmac_sha256(key = "{timestamp}\n{secret}", message = ""))`, as Feishu documents it
/// (unlike DingTalk, the string is the KEY and the message is empty).
pub fn sign(secret: &str, timestamp_s: i64) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{timestamp_s}\n{secret}").as_bytes())
        .expect("HMAC takes keys of any length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_documented_algorithm() {
        // Python: base64.b64encode(hmac.new(b"1599360473\nsecret", b"", hashlib.sha256).digest())
        assert_eq!(
            sign("secret", 1_599_360_473),
            "q4jswNiMy51J5JuQV566yJat0/lQ/c+22kINzUgKsGU="
        );
    }

    #[test]
    fn codes_are_classified() {
        assert_eq!(ERRORS.classify(0, "success"), Ok(()));
        assert!(matches!(
            ERRORS.classify(11232, "frequency limited"),
            Err(SendError::RateLimited { .. })
        ));
        for code in [19021, 19022, 19024, 9499] {
            assert!(matches!(
                ERRORS.classify(code, "x"),
                Err(SendError::Permanent(_))
            ));
        }
    }
}
