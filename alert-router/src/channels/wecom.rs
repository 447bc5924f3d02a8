//! WeCom (企业微信) group robot: markdown messages under the 4,096-byte limit (errcode 40058).
//! Markdown cannot carry `mentioned_mobile_list`, so mentions by user id are written inline as
//! `<@userid>` and mentions by mobile go in a short text message right after the markdown one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::http::{self, Class, ErrorTable};
use super::{
    Channel, ChannelSpec, Common, Limits, Message, Render, SendError, WINDOW_MARGIN, check,
};
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::render::template::{self, TemplateError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    pub name: String,
    /// `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`
    pub webhook_url: String,
    #[serde(default)]
    pub mentioned_mobiles: Vec<String>,
    #[serde(default)]
    pub mentioned_userids: Vec<String>,
    pub language: Option<Language>,
    pub template: Option<String>,
    /// IANA zone of this channel's times, over the router's `timezone`.
    pub timezone: Option<String>,
    pub timeout: Option<String>,
    pub rate_per_minute: Option<u32>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl ChannelSpec for WecomConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "wecom"
    }
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn validate(&self, p: &mut check::Problems) {
        if check::url(p, "webhook_url", &self.webhook_url) && !self.webhook_url.contains("key=") {
            p.push(("webhook_url".into(), "has no key query parameter".into()));
        }
        check::rate(
            p,
            "rate_per_minute",
            self.rate_per_minute,
            20,
            "WeCom refuses more than 20 per minute",
        );
        check::duration(p, "timeout", &self.timeout);
        check::template(p, "template", "markdown", &self.template);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(WeCom::new(self, common)?))
    }
}

/// WeCom refuses markdown content over 4,096 bytes (errcode 40058). Its wording names the
/// `content` field, so the content is what we measure.
pub const MAX_MARKDOWN_BYTES: usize = 4096;

/// WeCom refuses an image over 2 MB before base64 encoding.
pub const MAX_IMAGE_BYTES: usize = 2 * 1024 * 1024;

/// The `image` message body WeCom documents: the bytes in base64 and their MD5 (hex), both
/// computed over the raw image. `None` over [`MAX_IMAGE_BYTES`].
pub fn image_payload(png: &[u8]) -> Option<serde_json::Value> {
    use base64::Engine;
    use md5::Digest;
    if png.len() > MAX_IMAGE_BYTES {
        return None;
    }
    let md5: String = md5::Md5::digest(png)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(json!({
        "msgtype": "image",
        "image": {
            "base64": base64::engine::general_purpose::STANDARD.encode(png),
            "md5": md5,
        },
    }))
}

/// WeCom's errcodes: 45009 "api freq out of limit" (20 per minute), -1 busy, 40058 content too
/// long; 93000 invalid key, 40008 invalid type and the rest are permanent.
pub const ERRORS: ErrorTable = ErrorTable {
    code_field: "errcode",
    msg_field: "errmsg",
    codes: &[
        (0, Class::Ok),
        (45009, Class::RateLimited(Duration::from_secs(60))),
        (-1, Class::Retry),
        (40058, Class::TooLarge),
    ],
};

/// What WeCom's errcode means for a notification.
pub fn classify(errcode: i64, errmsg: &str) -> Result<(), SendError> {
    ERRORS.classify(errcode, errmsg)
}

pub struct WeCom {
    name: String,
    url: reqwest::Url,
    mentioned_mobiles: Vec<String>,
    mentioned_userids: Vec<String>,
    rate: u32,
    timeout: Duration,
    render: Render,
    common: Common,
}

impl WeCom {
    pub fn new(c: &WecomConfig, common: &Common) -> Result<WeCom, String> {
        Ok(WeCom {
            name: c.name.clone(),
            url: reqwest::Url::parse(&c.webhook_url).map_err(|e| format!("webhook_url: {e}"))?,
            mentioned_mobiles: c.mentioned_mobiles.clone(),
            mentioned_userids: c.mentioned_userids.clone(),
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
        if self.mentioned_userids.is_empty() {
            return String::new();
        }
        let ids: Vec<String> = self
            .mentioned_userids
            .iter()
            .map(|u| format!("<@{u}>"))
            .collect();
        format!("\n{}", ids.join(" "))
    }

    async fn post(&self, body: &serde_json::Value) -> Result<(), SendError> {
        let text = http::post_json(
            &self.common.http,
            self.url.clone(),
            self.timeout,
            &[],
            http::body_bytes(body),
            Duration::from_secs(60),
        )
        .await?;
        ERRORS.classify_answer(&text)
    }

    /// The request bodies of one message: markdown, then a text mention when mobiles are set.
    pub fn payloads(&self, msg: &Message) -> Vec<serde_json::Value> {
        let (mobiles, ids): (Vec<&String>, Vec<&String>) =
            msg.mentions.iter().partition(|m| super::is_mobile(m));
        let extra: String = ids.iter().map(|u| format!(" <@{u}>")).collect();
        let mut v = vec![json!({
            "msgtype": "markdown",
            "markdown": { "content": format!("{}{}{extra}", msg.body, self.mention_suffix()) },
        })];
        let mut all_mobiles: Vec<&String> = self.mentioned_mobiles.iter().collect();
        all_mobiles.extend(
            mobiles
                .iter()
                .filter(|m| !self.mentioned_mobiles.contains(m)),
        );
        if !all_mobiles.is_empty() {
            v.push(json!({
                "msgtype": "text",
                "text": { "content": msg.title, "mentioned_mobile_list": all_mobiles },
            }));
        }
        v
    }
}

#[async_trait]
impl Channel for WeCom {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "wecom"
    }
    fn limits(&self) -> Limits {
        // A mention by mobile costs a second request: halve the message rate.
        let rate = if self.mentioned_mobiles.is_empty() {
            self.rate
        } else {
            (self.rate / 2).max(1)
        };
        Limits {
            rate: Some((rate, Duration::from_secs(60) + WINDOW_MARGIN)),
            max_body_bytes: Some(MAX_MARKDOWN_BYTES),
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        self.render.render(alerts)
    }
    fn measure(&self, msg: &Message) -> usize {
        self.payloads(msg)[0]["markdown"]["content"]
            .as_str()
            .map_or(0, str::len)
    }
    fn chart_delivery(&self) -> crate::render::chart::ChartDelivery {
        crate::render::chart::ChartDelivery::Image
    }
    async fn send_with_chart(
        &self,
        msg: &Message,
        chart: Option<&crate::render::chart::ChartOutcome>,
    ) -> Result<(), SendError> {
        self.send(msg).await?;
        let Some(png) = chart.and_then(|c| c.png.as_deref()) else {
            return Ok(());
        };
        let Some(image) = image_payload(png) else {
            tracing::warn!(channel = %self.name, bytes = png.len(), "chart over WeCom's 2 MB image limit; sent without it");
            return Ok(());
        };
        // The text is delivered: a failed image is logged, not retried (a retry would repeat
        // the text).
        if let Err(e) = self.post(&image).await {
            tracing::warn!(channel = %self.name, error = %e, "chart image not delivered");
        }
        Ok(())
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        for p in self.payloads(msg) {
            let text = http::post_json(
                &self.common.http,
                self.url.clone(),
                self.timeout,
                &[],
                http::body_bytes(&p),
                Duration::from_secs(60),
            )
            .await?;
            ERRORS.classify_answer(&text)?;
        }
        Ok(())
    }
}
