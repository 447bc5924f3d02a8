//! Delivery channels: one module per vendor behind the `Channel` trait. Each vendor file holds
//! its own config struct (a [`ChannelSpec`]), wire format, signature and error table; what every
//! vendor does alike lives here (rendering, checks) and in [`http`] (POST JSON, transport and
//! status mapping, error tables). A new vendor is one file here plus one registration line in
//! `config.rs` (`channel_configs!`). This module never imports `config`: config assembles the
//! channels, not the other way round.

pub mod aliyun;
pub mod aliyun_voice;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod http;
pub mod log;
pub mod slack;
pub mod webhook;
pub mod wecom;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::render::chart::{ChartDelivery, ChartOutcome};
use crate::render::template::{
    self, LinkSettings, Markup, MessageSettings, Template, TemplateError,
};

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
    /// URL buttons (label, http(s) URL) for channels that draw them (Feishu cards): ack,
    /// runbook, dashboard. Others carry the same links in the body.
    pub buttons: Vec<(String, String)>,
    /// The gravest `severity` label among the firing alerts, `"resolved"` when none fires:
    /// channels that colour a message (Feishu card header) read it.
    pub severity: String,
    /// The escalation step these notifications belong to (set by the worker; None for a
    /// route's first notification).
    pub step: Option<i64>,
}

/// The gravest severity of these alerts (see [`Message::severity`]).
pub fn gravest_severity(alerts: &[AlertEvent]) -> String {
    let rank = |s: &str| match s {
        "critical" | "page" | "error" | "high" => 3,
        "warning" | "warn" | "medium" => 2,
        "info" | "low" => 1,
        _ => 0,
    };
    alerts
        .iter()
        .filter(|a| a.status == crate::core::model::Status::Firing)
        .map(|a| a.labels.get("severity").cloned().unwrap_or_default())
        .max_by_key(|s| rank(s))
        .unwrap_or_else(|| "resolved".into())
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
    /// The vendor refused the message for its size: the worker splits it (fewer alerts per
    /// digest, smaller parts) and retries; only a part that cannot shrink further fails.
    #[error("too large: {0}")]
    TooLarge(String),
}

/// Vendor limits the delivery worker enforces before calling `send`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// At most `.0` messages per `.1`.
    pub rate: Option<(u32, Duration)>,
    /// Largest message the vendor accepts, in bytes as [`Channel::measure`] counts them.
    pub max_body_bytes: Option<usize>,
}

#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn limits(&self) -> Limits;
    /// Render one message for one alert or a digest of several.
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError>;
    /// The size the vendor's limit counts, for this message as it would be sent (mentions
    /// included): the serialized request body where the vendor's wording allows that reading.
    fn measure(&self, msg: &Message) -> usize {
        msg.body.len() + mention_reserve(&msg.mentions)
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError>;
    /// How this channel shows charts (default: not at all).
    fn chart_delivery(&self) -> ChartDelivery {
        ChartDelivery::None
    }
    /// Send with the message's chart (single-alert messages only); channels that deliver
    /// charts themselves (`Image`, `Inline`, Slack's image block) override it.
    async fn send_with_chart(
        &self,
        msg: &Message,
        chart: Option<&ChartOutcome>,
    ) -> Result<(), SendError> {
        let _ = chart;
        self.send(msg).await
    }
    /// Channels that take over what this one cannot deliver (see [`ChannelSpec::fallback`]).
    fn fallback(&self) -> &[String] {
        &[]
    }
    /// Channels that reach one person per request and learn from a later receipt whether they
    /// answered (voice calls); the worker then calls a step's people in turn (`crate::delivery::calls`).
    fn caller(&self) -> Option<&dyn Caller> {
        None
    }
}

/// Why one call was not placed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The vendor's per-number flow control refused this number for now: the next person is
    /// called instead; when nobody is left the notification waits `retry_after`.
    #[error("flow control for this number: {reason}")]
    FlowControl {
        reason: String,
        retry_after: Duration,
    },
    /// This number cannot be called at all (an illegal number): the next person is called.
    #[error("number refused: {0}")]
    Number(String),
    /// A failure that concerns every call (signature, balance, transport), handled like any
    /// channel's send failure.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// A channel that places calls one person at a time (see [`Channel::caller`]).
#[async_trait]
pub trait Caller: Send + Sync {
    /// The numbers to call, in order, for a notification mentioning these contacts: the step's
    /// people, or the channel's own `phone_numbers` when the step names nobody.
    fn callees(&self, mentions: &[String]) -> Vec<String>;
    /// How long a placed call waits for its receipt before it counts as unanswered.
    fn receipt_timeout(&self) -> Duration;
    /// Place one call to `number` with this message; the vendor's call id.
    async fn call(&self, msg: &Message, number: &str) -> Result<String, CallError>;
}

/// A channel with its configured fallbacks; everything else is the vendor's.
struct WithFallback {
    inner: Arc<dyn Channel>,
    fallback: Vec<String>,
}

#[async_trait]
impl Channel for WithFallback {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn limits(&self) -> Limits {
        self.inner.limits()
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        self.inner.render(alerts)
    }
    fn measure(&self, msg: &Message) -> usize {
        self.inner.measure(msg)
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        self.inner.send(msg).await
    }
    fn chart_delivery(&self) -> ChartDelivery {
        self.inner.chart_delivery()
    }
    async fn send_with_chart(
        &self,
        msg: &Message,
        chart: Option<&ChartOutcome>,
    ) -> Result<(), SendError> {
        self.inner.send_with_chart(msg, chart).await
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn caller(&self) -> Option<&dyn Caller> {
        self.inner.caller()
    }
}

/// Shared inputs of every channel.
#[derive(Clone)]
pub struct Common {
    pub language: Language,
    pub links: LinkSettings,
    pub http: reqwest::Client,
    /// The channel's zone and link bases (`build_all` applies a channel's own `timezone`).
    pub message: MessageSettings,
}

/// A margin added to vendor windows: our clock and theirs count a minute from different
/// instants (request sent vs. received), so 20 sends exactly 60 s apart could be 21 to them.
pub const WINDOW_MARGIN: Duration = Duration::from_secs(1);

/// A channel's config as written in the file: it names the channel, checks itself and builds
/// the channel. Implemented by each vendor's config struct; `config.rs` lists them.
pub trait ChannelSpec: std::fmt::Debug + Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    /// Channels that take over a notification this channel cannot deliver (blocked, refused).
    fn fallback(&self) -> &[String] {
        &[]
    }
    /// The channel's own `timezone` (IANA), over the router's; validated by `config`.
    fn timezone(&self) -> Option<&str> {
        None
    }
    /// Push `(key, reason)` for every problem; keys are relative to the channel entry. Reasons
    /// never quote a secret.
    fn validate(&self, problems: &mut Vec<(String, String)>);
    /// A calling channel (voice): a step calls its people one after another until one answers
    /// (see [`Channel::caller`]), so a step's rotation contributes all its people in rotation
    /// order, not only the one on call.
    fn calls(&self) -> bool {
        false
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String>;
}

/// Settings every channel shares, from the top level of the config.
pub struct Settings {
    pub language: Language,
    pub links: LinkSettings,
    pub message: MessageSettings,
}

/// Build every configured channel.
pub fn build_all(
    specs: &[&dyn ChannelSpec],
    settings: Settings,
) -> Result<Vec<Arc<dyn Channel>>, String> {
    let common = Common {
        language: settings.language,
        links: settings.links,
        http: reqwest::Client::builder()
            .user_agent(concat!(
                "quantwatch-alert-router/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?,
        message: settings.message,
    };
    specs
        .iter()
        .map(|c| {
            let mut common = common.clone();
            if let Some(z) = c.timezone() {
                common.message.tz = crate::core::timefmt::parse_zone(z)
                    .map_err(|e| format!("channel {}: timezone: {e}", c.name()))?;
            }
            let ch = c
                .build(&common)
                .map_err(|e| format!("channel {}: {e}", c.name()))?;
            Ok(if c.fallback().is_empty() {
                ch
            } else {
                Arc::new(WithFallback {
                    inner: ch,
                    fallback: c.fallback().to_vec(),
                }) as Arc<dyn Channel>
            })
        })
        .collect()
}

/// The settings every channel renders with: its template (a per-channel override or the
/// default of its format), language and markup. Titles are escaped for the markup like values.
pub struct Render {
    pub language: Language,
    pub template: Template,
    pub markup: Markup,
    pub links: LinkSettings,
    pub message: MessageSettings,
}

impl Render {
    /// `format` names the template (and so its markup: `markdown`, `slack`, `text`, ...).
    pub fn new(
        common: &Common,
        language: Option<Language>,
        format: &str,
        custom: Option<&str>,
        default: &str,
    ) -> Result<Render, String> {
        let template =
            Template::new(format, custom.unwrap_or(default)).map_err(|e| e.to_string())?;
        Ok(Render {
            language: language.unwrap_or(common.language),
            markup: Markup::of_template(format),
            template,
            links: common.links.clone(),
            message: common.message.clone(),
        })
    }

    pub fn context(&self, alerts: &[AlertEvent]) -> serde_json::Value {
        template::context_for(alerts, self.language, &self.links, &self.message)
    }

    pub fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        let ctx = self.context(alerts);
        Ok(Message {
            title: template::title(alerts, self.language, self.markup),
            body: self.template.render(&ctx)?,
            html: None,
            mentions: Vec::new(),
            buttons: Vec::new(),
            severity: gravest_severity(alerts),
            step: None,
        })
    }
}

pub(crate) fn timeout_of(s: Option<&str>) -> Duration {
    s.and_then(|s| humantime::parse_duration(s).ok())
        .unwrap_or(Duration::from_secs(10))
}

/// Checks shared by the vendors' `validate`.
pub mod check {
    use super::Template;

    pub type Problems = Vec<(String, String)>;

    pub fn url(p: &mut Problems, key: &str, u: &str) -> bool {
        let ok = reqwest::Url::parse(u)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !ok {
            // The URL itself is not quoted: robot URLs carry their access token.
            p.push((key.into(), "is not an http(s) URL".into()));
        }
        ok
    }

    pub fn duration(p: &mut Problems, key: &str, d: &Option<String>) {
        if !d
            .as_deref()
            .is_none_or(|s| humantime::parse_duration(s).is_ok_and(|d| !d.is_zero()))
        {
            p.push((key.into(), "is not a duration like \"10s\"".into()));
        }
    }

    pub fn template(p: &mut Problems, key: &str, format: &str, t: &Option<String>) {
        if let Some(t) = t.as_deref()
            && let Err(e) = Template::new(format, t)
        {
            p.push((key.into(), e.to_string()));
        }
    }

    pub fn rate(p: &mut Problems, key: &str, r: Option<u32>, max: u32, why: &str) {
        if r.is_some_and(|r| r == 0 || r > max) {
            p.push((key.into(), format!("must be 1..={max} ({why})")));
        }
    }

    pub fn secret(p: &mut Problems, key: &str, s: &Option<String>) {
        if s.as_deref().is_some_and(str::is_empty) {
            p.push((
                key.into(),
                "is empty (remove the key if the robot does not sign)".into(),
            ));
        }
    }
}
