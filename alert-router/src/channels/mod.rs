//! Delivery channels: one module per vendor behind the `Channel` trait. A new channel is one new
//! file plus one line in `build` and one in `validate`.

pub mod dingtalk;
pub mod email;
pub mod log;
pub mod slack;
pub mod wecom;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{ChannelConfig, Config, Language, Problem};
use crate::model::AlertEvent;
use crate::template::{LinkSettings, Template, TemplateError};

/// A rendered message, before vendor framing.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub title: String,
    pub body: String,
    /// HTML alternative (email only).
    pub html: Option<String>,
    /// People an escalation step mentions, in the channel's own form (DingTalk mobile or user
    /// id, WeCom user id or mobile, Slack user id, email address); on top of the channel's own.
    pub mentions: Vec<String>,
}

/// A mention that is a phone number (DingTalk `atMobiles`, WeCom `mentioned_mobile_list`)
/// rather than a user id.
pub fn is_mobile(m: &str) -> bool {
    let digits = m.strip_prefix('+').unwrap_or(m);
    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Bytes the channels may add to a body for these mentions (`<@id> `, `@mobile `).
pub fn mention_reserve(mentions: &[String]) -> usize {
    mentions.iter().map(|m| m.len() + 4).sum::<usize>() + if mentions.is_empty() { 0 } else { 2 }
}

/// How a send failed decides what happens to the notification.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Timeouts, transport errors, 5xx: retried with backoff until delivered.
    #[error("{0}")]
    Retryable(String),
    /// The vendor said "too fast": retried after `retry_after` (or backoff).
    #[error("rate limited: {reason}")]
    RateLimited {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Cannot heal by retrying (bad signature, invalid key, refused content): recorded as failed.
    #[error("{0}")]
    Permanent(String),
}

/// Vendor limits the delivery worker enforces before calling `send`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// At most `.0` messages per `.1`.
    pub rate: Option<(u32, Duration)>,
    /// Largest `Message::body` in bytes the vendor accepts (after the channel's own additions).
    pub max_body_bytes: Option<usize>,
}

#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn limits(&self) -> Limits;
    /// Render one message for one alert or a digest of several.
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError>;
    async fn send(&self, msg: &Message) -> Result<(), SendError>;
}

/// Shared inputs of every channel.
#[derive(Clone)]
pub struct Common {
    pub language: Language,
    pub links: LinkSettings,
    pub http: reqwest::Client,
}

/// A margin added to vendor windows: our clock and theirs count a minute from different
/// instants (request sent vs. received), so 20 sends exactly 60 s apart could be 21 to them.
pub const WINDOW_MARGIN: Duration = Duration::from_secs(1);

pub(crate) fn timeout_of(s: Option<&str>) -> Duration {
    s.and_then(|s| humantime::parse_duration(s).ok())
        .unwrap_or(Duration::from_secs(10))
}

pub(crate) fn template_for(
    name: &str,
    custom: Option<&str>,
    default: &str,
) -> Result<Template, TemplateError> {
    Template::new(name, custom.unwrap_or(default))
}

/// Map an HTTP transport error to a retryable failure without leaking the URL (it holds the
/// robot's access token).
pub(crate) fn transport_error(e: reqwest::Error) -> SendError {
    let what = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    SendError::Retryable(format!("{what}: {}", e.without_url()))
}

/// Build every configured channel.
pub fn build_all(cfg: &Config) -> Result<Vec<Arc<dyn Channel>>, String> {
    let common = Common {
        language: cfg.language,
        links: LinkSettings {
            public_url: cfg.public_url.clone(),
            ack_secret: cfg.ack_secret.clone(),
            ack_link_ttl: cfg.ack_link_ttl,
        },
        http: reqwest::Client::builder()
            .user_agent(concat!(
                "quantwatch-alert-router/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?,
    };
    cfg.channels.iter().map(|c| build(c, &common)).collect()
}

pub fn build(c: &ChannelConfig, common: &Common) -> Result<Arc<dyn Channel>, String> {
    let named = |e: String| format!("channel {}: {e}", c.name());
    Ok(match c {
        ChannelConfig::Dingtalk(d) => Arc::new(dingtalk::DingTalk::new(d, common).map_err(named)?),
        ChannelConfig::Wecom(w) => Arc::new(wecom::WeCom::new(w, common).map_err(named)?),
        ChannelConfig::Slack(s) => Arc::new(slack::Slack::new(s, common).map_err(named)?),
        ChannelConfig::Email(e) => Arc::new(email::Email::new(e, common).map_err(named)?),
        ChannelConfig::Log(l) => Arc::new(log::Log::new(l, common).map_err(named)?),
    })
}

/// Check one channel's settings (called from config validation).
pub fn validate(c: &ChannelConfig, key: &str, file: &str, p: &mut Vec<Problem>) {
    let mut prob = |k: &str, reason: String| {
        p.push(Problem {
            file: file.into(),
            key: format!("{key}.{k}"),
            reason,
        })
    };
    let url_ok = |u: &str| {
        reqwest::Url::parse(u)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false)
    };
    let dur_ok = |d: &Option<String>| {
        d.as_deref()
            .is_none_or(|s| humantime::parse_duration(s).is_ok_and(|d| !d.is_zero()))
    };
    let tpl_ok = |name: &str, t: &Option<String>| {
        t.as_deref()
            .map_or(Ok(()), |t| Template::new(name, t).map(|_| ()))
    };
    match c {
        ChannelConfig::Dingtalk(d) => {
            if !url_ok(&d.webhook_url) {
                prob("webhook_url", "is not an http(s) URL".into());
            } else if !d.webhook_url.contains("access_token=") {
                prob("webhook_url", "has no access_token query parameter".into());
            }
            if d.secret.as_deref().is_some_and(str::is_empty) {
                prob(
                    "secret",
                    "is empty (remove the key if the robot does not sign)".into(),
                );
            }
            if d.at_mobiles.iter().any(|m| {
                m.is_empty()
                    || !m
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
            }) {
                prob("at_mobiles", "every entry must be a phone number".into());
            }
            if d.rate_per_minute.is_some_and(|r| r == 0 || r > 20) {
                prob(
                    "rate_per_minute",
                    "must be 1..=20 (DingTalk bans a robot for 10 minutes above 20 per minute)"
                        .into(),
                );
            }
            if !dur_ok(&d.timeout) {
                prob("timeout", "is not a duration like \"10s\"".into());
            }
            if let Err(e) = tpl_ok("markdown", &d.template) {
                prob("template", e.to_string());
            }
        }
        ChannelConfig::Wecom(w) => {
            if !url_ok(&w.webhook_url) {
                prob("webhook_url", "is not an http(s) URL".into());
            } else if !w.webhook_url.contains("key=") {
                prob("webhook_url", "has no key query parameter".into());
            }
            if w.rate_per_minute.is_some_and(|r| r == 0 || r > 20) {
                prob(
                    "rate_per_minute",
                    "must be 1..=20 (WeCom refuses more than 20 per minute)".into(),
                );
            }
            if !dur_ok(&w.timeout) {
                prob("timeout", "is not a duration like \"10s\"".into());
            }
            if let Err(e) = tpl_ok("markdown", &w.template) {
                prob("template", e.to_string());
            }
        }
        ChannelConfig::Slack(s) => {
            if !url_ok(&s.webhook_url) {
                prob("webhook_url", "is not an http(s) URL".into());
            }
            if !dur_ok(&s.timeout) {
                prob("timeout", "is not a duration like \"10s\"".into());
            }
            if let Err(e) = tpl_ok("slack", &s.template) {
                prob("template", e.to_string());
            }
        }
        ChannelConfig::Email(e) => {
            if e.host.is_empty() {
                prob("host", "is empty".into());
            }
            if e.from.parse::<lettre::message::Mailbox>().is_err() {
                prob("from", format!("{:?} is not an email address", e.from));
            }
            if e.to.is_empty() {
                prob("to", "needs at least one recipient".into());
            }
            for (i, t) in e.to.iter().enumerate() {
                if t.parse::<lettre::message::Mailbox>().is_err() {
                    prob(
                        &format!("to[{i}]"),
                        format!("{t:?} is not an email address"),
                    );
                }
            }
            if e.username.is_some() != e.password.is_some() {
                prob("password", "username and password go together".into());
            }
            if let Some(ca) = &e.ca_file
                && let Err(err) = std::fs::read(ca)
            {
                prob("ca_file", format!("cannot read {}: {err}", ca.display()));
            }
            if !dur_ok(&e.timeout) {
                prob("timeout", "is not a duration like \"10s\"".into());
            }
            if let Err(err) = tpl_ok("text", &e.template) {
                prob("template", err.to_string());
            }
            if let Err(err) = tpl_ok("email.html", &e.html_template) {
                prob("html_template", err.to_string());
            }
        }
        ChannelConfig::Log(l) => {
            if let Err(e) = tpl_ok("text", &l.template) {
                prob("template", e.to_string());
            }
        }
    }
}
