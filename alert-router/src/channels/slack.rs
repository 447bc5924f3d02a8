//! Slack incoming webhook: Block Kit section blocks of at most 3,000 characters each (we count
//! bytes, which is stricter), one message per second, `Retry-After` honoured on 429.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::http;
use super::{Channel, ChannelSpec, Common, Limits, Message, Render, SendError, check};
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::core::text::split_utf8;
use crate::render::template::{self, TemplateError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub name: String,
    pub webhook_url: String,
    pub language: Option<Language>,
    pub template: Option<String>,
    /// IANA zone of this channel's times, over the router's `timezone`.
    pub timezone: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl ChannelSpec for SlackConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "slack"
    }
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn validate(&self, p: &mut check::Problems) {
        check::url(p, "webhook_url", &self.webhook_url);
        check::duration(p, "timeout", &self.timeout);
        check::template(p, "template", "slack", &self.template);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Slack::new(self, common)?))
    }
}

/// Slack refuses a section text over 3,000 characters (`invalid_blocks`).
pub const MAX_BLOCK_BYTES: usize = 3000;
/// Slack accepts at most 50 blocks per message.
pub const MAX_BLOCKS: usize = 50;

pub struct Slack {
    name: String,
    url: reqwest::Url,
    timeout: Duration,
    render: Render,
    common: Common,
}

impl Slack {
    pub fn new(c: &SlackConfig, common: &Common) -> Result<Slack, String> {
        Ok(Slack {
            name: c.name.clone(),
            url: reqwest::Url::parse(&c.webhook_url).map_err(|e| format!("webhook_url: {e}"))?,
            timeout: super::timeout_of(c.timeout.as_deref()),
            render: Render::new(
                common,
                c.language,
                "slack",
                c.template.as_deref(),
                template::SLACK,
            )?,
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

    /// `payload` with the chart as an image block Slack's servers fetch from `url`.
    pub fn payload_with_chart(msg: &Message, url: &str, alt: &str) -> serde_json::Value {
        let mut p = Self::payload(msg);
        if let Some(blocks) = p["blocks"].as_array_mut() {
            blocks.push(json!({"type": "image", "image_url": url, "alt_text": alt}));
        }
        p
    }

    async fn post(&self, payload: &serde_json::Value) -> Result<(), SendError> {
        // Slack answers a plain "ok"; refusals (invalid_payload, invalid_blocks, invalid_token,
        // no_service, channel_is_archived) come as 4xx, which `post_json` makes permanent.
        http::post_json(
            &self.common.http,
            self.url.clone(),
            self.timeout,
            &[],
            http::body_bytes(payload),
            Duration::from_secs(1),
        )
        .await
        .map(|_| ())
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
        self.render.render(alerts)
    }
    fn chart_delivery(&self) -> crate::render::chart::ChartDelivery {
        crate::render::chart::ChartDelivery::Url
    }
    async fn send_with_chart(
        &self,
        msg: &Message,
        chart: Option<&crate::render::chart::ChartOutcome>,
    ) -> Result<(), SendError> {
        match chart.and_then(|c| c.url.as_deref()) {
            Some(url) => {
                self.post(&Self::payload_with_chart(msg, url, &msg.title))
                    .await
            }
            None => self.send(msg).await,
        }
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        // Slack answers a plain "ok"; refusals (invalid_payload, invalid_blocks, invalid_token,
        // no_service, channel_is_archived) come as 4xx, which `post_json` makes permanent.
        http::post_json(
            &self.common.http,
            self.url.clone(),
            self.timeout,
            &[],
            http::body_bytes(&Self::payload(msg)),
            Duration::from_secs(1),
        )
        .await
        .map(|_| ())
    }
}
