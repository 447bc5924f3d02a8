//! The `log` channel: writes each notification to the log. It is the zero-config default, so a
//! router started with no configuration still shows that alerts arrive and are routed.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Channel, ChannelSpec, Common, Limits, Message, Render, SendError, check};
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::render::template::{self, TemplateError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub name: String,
    pub language: Option<Language>,
    pub template: Option<String>,
    /// IANA zone of this channel's times, over the router's `timezone`.
    pub timezone: Option<String>,
}

impl ChannelSpec for LogConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "log"
    }
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    fn validate(&self, p: &mut check::Problems) {
        check::template(p, "template", "text", &self.template);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Log::new(self, common)?))
    }
}

pub struct Log {
    name: String,
    render: Render,
}

impl Log {
    pub fn new(c: &LogConfig, common: &Common) -> Result<Log, String> {
        Ok(Log {
            name: c.name.clone(),
            render: Render::new(
                common,
                c.language,
                "text",
                c.template.as_deref(),
                template::TEXT,
            )?,
        })
    }
}

#[async_trait]
impl Channel for Log {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "log"
    }
    fn limits(&self) -> Limits {
        Limits {
            rate: None,
            max_body_bytes: None,
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        self.render.render(alerts)
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        tracing::info!(channel = %self.name, title = %msg.title, body = %msg.body, mentions = ?msg.mentions, "notification");
        Ok(())
    }
}
