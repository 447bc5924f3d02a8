//! WeCom (企业微信) group robot: markdown messages under the 4,096-byte limit (errcode 40058).
//! Markdown cannot carry `mentioned_mobile_list`, so mentions by user id are written inline as
//! `<@userid>` and mentions by mobile go in a short text message right after the markdown one.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Channel, Common, Limits, Message, SendError, WINDOW_MARGIN};
use crate::config::{Language, WecomConfig};
use crate::model::AlertEvent;
use crate::template::{self, Template, TemplateError};

/// How this channel's messages are read; titles are escaped for it like template values.
const MARKUP: template::Markup = template::Markup::Markdown;

/// WeCom refuses markdown content over 4,096 bytes (errcode 40058).
pub const MAX_MARKDOWN_BYTES: usize = 4096;

pub struct WeCom {
    name: String,
    url: reqwest::Url,
    mentioned_mobiles: Vec<String>,
    mentioned_userids: Vec<String>,
    rate: u32,
    timeout: Duration,
    language: Language,
    template: Template,
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
            language: c.language.unwrap_or(common.language),
            template: super::template_for("markdown", c.template.as_deref(), template::MARKDOWN)
                .map_err(|e| e.to_string())?,
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

    async fn post(&self, body: &serde_json::Value) -> Result<(), SendError> {
        let resp = self
            .common
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(super::transport_error)?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(SendError::Retryable(format!("HTTP {status}")));
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

/// What WeCom's errcode means for a notification.
pub fn classify(errcode: i64, errmsg: &str) -> Result<(), SendError> {
    match errcode {
        0 => Ok(()),
        // "api freq out of limit": more than 20 per minute.
        45009 => Err(SendError::RateLimited {
            reason: format!("errcode 45009: {errmsg}"),
            retry_after: Some(Duration::from_secs(60)),
        }),
        -1 => Err(SendError::Retryable(format!("errcode -1: {errmsg}"))),
        // 93000 invalid webhook key, 40058 content too long, 40008 invalid message type, ...
        _ => Err(SendError::Permanent(format!("errcode {errcode}: {errmsg}"))),
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
            max_body_bytes: Some(MAX_MARKDOWN_BYTES - self.mention_suffix().len()),
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
        for p in self.payloads(msg) {
            self.post(&p).await?;
        }
        Ok(())
    }
}
