//! The `log` channel: writes each notification to the log. It is the zero-config default, so a
//! router started with no configuration still shows that alerts arrive and are routed.

use async_trait::async_trait;

use super::{Channel, Common, Limits, Message, SendError};
use crate::config::{Language, LogConfig};
use crate::model::AlertEvent;
use crate::template::{self, Template, TemplateError};

/// How this channel's messages are read; titles are escaped for it like template values.
const MARKUP: template::Markup = template::Markup::Text;

pub struct Log {
    name: String,
    language: Language,
    template: Template,
    common: Common,
}

impl Log {
    pub fn new(c: &LogConfig, common: &Common) -> Result<Log, String> {
        Ok(Log {
            name: c.name.clone(),
            language: c.language.unwrap_or(common.language),
            template: super::template_for("text", c.template.as_deref(), template::TEXT)
                .map_err(|e| e.to_string())?,
            common: common.clone(),
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
        let ctx = template::context(alerts, self.language, &self.common.links);
        Ok(Message {
            title: template::title(alerts, self.language, MARKUP),
            body: self.template.render(&ctx)?,
            html: None,
            mentions: Vec::new(),
        })
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        tracing::info!(channel = %self.name, title = %msg.title, body = %msg.body, mentions = ?msg.mentions, "notification");
        Ok(())
    }
}
