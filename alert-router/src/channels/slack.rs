//! Slack incoming webhook: Block Kit section blocks of at most 3,000 characters each (we count
//! bytes, which is stricter), one message per second, `Retry-After` honoured on 429.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Channel, Common, Limits, Message, SendError};
use crate::config::{Language, SlackConfig};
use crate::limits::split_utf8;
use crate::model::AlertEvent;
use crate::template::{self, Template, TemplateError};

/// How this channel's messages are read; titles are escaped for it like template values.
const MARKUP: template::Markup = template::Markup::Slack;

/// Slack refuses a section text over 3,000 characters (`invalid_blocks`).
pub const MAX_BLOCK_BYTES: usize = 3000;
/// Slack accepts at most 50 blocks per message.
pub const MAX_BLOCKS: usize = 50;

pub struct Slack {
    name: String,
    url: reqwest::Url,
    timeout: Duration,
    language: Language,
    template: Template,
    common: Common,
}

impl Slack {
    pub fn new(c: &SlackConfig, common: &Common) -> Result<Slack, String> {
        Ok(Slack {
            name: c.name.clone(),
            url: reqwest::Url::parse(&c.webhook_url).map_err(|e| format!("webhook_url: {e}"))?,
            timeout: super::timeout_of(c.timeout.as_deref()),
            language: c.language.unwrap_or(common.language),
            template: super::template_for("slack", c.template.as_deref(), template::SLACK)
                .map_err(|e| e.to_string())?,
            common: common.clone(),
        })
    }

    pub fn payload(msg: &Message) -> serde_json::Value {
        let body = if msg.mentions.is_empty() {
            msg.body.clone()
        } else {
            let who: Vec<String> = msg.mentions.iter().map(|u| format!("<@{u}>")).collect();
            format!("{}\n{}", who.join(" "), msg.body)
        };
        let blocks: Vec<serde_json::Value> = split_utf8(&body, MAX_BLOCK_BYTES)
            .into_iter()
            .map(|part| json!({"type": "section", "text": {"type": "mrkdwn", "text": part}}))
            .collect();
        json!({ "text": msg.title, "blocks": blocks })
    }
}

#[async_trait]
impl Channel for Slack {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "slack"
    }
    fn limits(&self) -> Limits {
        // Parts of up to MAX_BLOCK_BYTES each; leave room for split points at line breaks.
        Limits {
            rate: Some((1, Duration::from_secs(1) + Duration::from_millis(100))),
            max_body_bytes: Some(MAX_BLOCK_BYTES * (MAX_BLOCKS / 2)),
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
        let resp = self
            .common
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .json(&Self::payload(msg))
            .send()
            .await
            .map_err(super::transport_error)?;
        let status = resp.status();
        if status.as_u16() == 429 {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(SendError::RateLimited {
                reason: "HTTP 429 rate_limited".into(),
                retry_after,
            });
        }
        let text = resp.text().await.unwrap_or_default();
        if status.is_server_error() {
            return Err(SendError::Retryable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            // invalid_payload, invalid_blocks, invalid_token, no_service, channel_is_archived, ...
            return Err(SendError::Permanent(format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        Ok(())
    }
}
