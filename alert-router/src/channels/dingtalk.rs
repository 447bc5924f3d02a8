//! DingTalk custom robot ("自定义机器人"): markdown messages, optional HMAC-SHA256 signing
//! ("加签"), and `at.atMobiles` with each `@mobile` also written in the text, which DingTalk
//! requires for the mention to notify.

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
pub struct DingtalkConfig {
    pub name: String,
    /// `https://oapi.dingtalk.com/robot/send?access_token=...`
    pub webhook_url: String,
    /// Sign secret (`SEC...`) when the robot has "加签" enabled.
    pub secret: Option<String>,
    #[serde(default)]
    pub at_mobiles: Vec<String>,
    #[serde(default)]
    pub at_all: bool,
    pub language: Option<Language>,
    pub template: Option<String>,
    /// IANA zone of this channel's times, over the router's `timezone`.
    pub timezone: Option<String>,
    pub timeout: Option<String>,
    /// Messages per minute; DingTalk allows 20.
    pub rate_per_minute: Option<u32>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl ChannelSpec for DingtalkConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "dingtalk"
    }
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn validate(&self, p: &mut check::Problems) {
        if check::url(p, "webhook_url", &self.webhook_url)
            && !self.webhook_url.contains("access_token=")
        {
            p.push((
                "webhook_url".into(),
                "has no access_token query parameter".into(),
            ));
        }
        check::secret(p, "secret", &self.secret);
        if self.at_mobiles.iter().any(|m| {
            m.is_empty()
                || !m
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
        }) {
            p.push((
                "at_mobiles".into(),
                "every entry must be a phone number".into(),
            ));
        }
        check::rate(
            p,
            "rate_per_minute",
            self.rate_per_minute,
            20,
            "DingTalk bans a robot for 10 minutes above 20 per minute",
        );
        check::duration(p, "timeout", &self.timeout);
        check::template(p, "template", "markdown", &self.template);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(DingTalk::new(self, common)?))
    }
}

/// DingTalk refuses a message over 20,000 bytes (errcode 460101, "message too long, exceed
/// 20000 bytes"). The text does not say which bytes; we count the whole request body, the
/// stricter reading (JSON escaping makes it larger than the markdown).
pub const MAX_BODY_BYTES: usize = 20_000;

/// How long DingTalk blocks a robot after errcode 130101 ("限流 10 分钟").
pub const BAN: Duration = Duration::from_secs(600);

/// DingTalk's errcodes: 130101 "send too fast" (a 10-minute block), -1 system busy, 460101
/// too long; everything else (310000 signature/keyword/IP, 300001 and 400101 token, ...) is
/// permanent.
pub const ERRORS: ErrorTable = ErrorTable {
    code_field: "errcode",
    msg_field: "errmsg",
    codes: &[
        (0, Class::Ok),
        (130101, Class::RateLimited(BAN)),
        (-1, Class::Retry),
        (460101, Class::TooLarge),
    ],
};

pub struct DingTalk {
    name: String,
    url: reqwest::Url,
    secret: Option<String>,
    at_mobiles: Vec<String>,
    at_all: bool,
    rate: u32,
    timeout: Duration,
    render: Render,
    common: Common,
}

/// `base64(hmac_sha256(secret, "{timestamp}\n{secret}"))`, as DingTalk documents it.
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What DingTalk's errcode means for a notification.
pub fn classify(errcode: i64, errmsg: &str) -> Result<(), SendError> {
    ERRORS.classify(errcode, errmsg)
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
            render: Render::new(
                common,
                c.language,
                "markdown",
                c.template.as_deref(),
                template::MARKDOWN,
            )?,
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
            max_body_bytes: Some(MAX_BODY_BYTES),
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        self.render.render(alerts)
    }
    fn chart_delivery(&self) -> crate::render::chart::ChartDelivery {
        // The markdown carries `![chart](url)` (see the templates): DingTalk fetches it.
        crate::render::chart::ChartDelivery::Url
    }
    fn measure(&self, msg: &Message) -> usize {
        http::body_bytes(&self.payload(msg)).len()
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let mut url = self.url.clone();
        if let Some(secret) = &self.secret {
            let ts = crate::core::clock::now().timestamp_millis();
            url.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string())
                .append_pair("sign", &sign(secret, ts));
        }
        let text = http::post_json(
            &self.common.http,
            url,
            self.timeout,
            &[],
            http::body_bytes(&self.payload(msg)),
            Duration::from_secs(60),
        )
        .await?;
        ERRORS.classify_answer(&text)
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
            classify(460101, "message too long, exceed 20000 bytes"),
            Err(SendError::TooLarge(_))
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
            links: crate::render::template::LinkSettings::default(),
            http: reqwest::Client::new(),
            message: Default::default(),
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
            timezone: None,
            timeout: None,
            rate_per_minute: None,
            fallback: vec![],
        };
        let d = DingTalk::new(&cfg, &common).unwrap();
        let ev = crate::core::model::test_alert(0);
        let msg = d.render(std::slice::from_ref(&ev)).unwrap();
        assert_eq!(msg.body, "1 x QuantwatchTestNotification / FIRING");
        let p = d.payload(&msg);
        assert_eq!(
            p["markdown"]["text"],
            "1 x QuantwatchTestNotification / FIRING\n\n@13800000000 "
        );
        // The limit counts the request body as sent, JSON escaping included.
        assert_eq!(d.limits().max_body_bytes, Some(MAX_BODY_BYTES));
        assert_eq!(d.measure(&msg), serde_json::to_vec(&p).unwrap().len());
        assert!(d.measure(&msg) > msg.body.len() + "\n\n@13800000000 ".len());
    }
}
