//! Email over SMTP (lettre): STARTTLS (required, never a silent plain fallback) or implicit
//! TLS, optional AUTH, multipart/alternative text + HTML.

use std::time::Duration;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use serde::Deserialize;

use super::{Channel, ChannelSpec, Common, Limits, Message, SendError, check};
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::render::template::{self, Template, TemplateError};

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, never silently plain).
    Starttls,
    /// Implicit TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a local relay.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub name: String,
    pub host: String,
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Extra CA (PEM file) to trust, for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    pub language: Option<Language>,
    pub template: Option<String>,
    /// IANA zone of this channel's times, over the router's `timezone`.
    pub timezone: Option<String>,
    pub html_template: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl ChannelSpec for EmailConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "email"
    }
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn validate(&self, p: &mut check::Problems) {
        let mut prob = |k: &str, reason: String| p.push((k.into(), reason));
        if self.host.is_empty() {
            prob("host", "is empty".into());
        }
        if self.from.parse::<Mailbox>().is_err() {
            prob("from", format!("{:?} is not an email address", self.from));
        }
        if self.to.is_empty() {
            prob("to", "needs at least one recipient".into());
        }
        for (i, t) in self.to.iter().enumerate() {
            if t.parse::<Mailbox>().is_err() {
                prob(
                    &format!("to[{i}]"),
                    format!("{t:?} is not an email address"),
                );
            }
        }
        if self.username.is_some() != self.password.is_some() {
            prob("password", "username and password go together".into());
        }
        if let Some(ca) = &self.ca_file
            && let Err(err) = std::fs::read(ca)
        {
            prob("ca_file", format!("cannot read {}: {err}", ca.display()));
        }
        check::duration(p, "timeout", &self.timeout);
        check::template(p, "template", "text", &self.template);
        check::template(p, "html_template", "email.html", &self.html_template);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Email::new(self, common)?))
    }
}

/// How this channel's messages are read; titles are escaped for it like template values.
const MARKUP: template::Markup = template::Markup::Text;

pub struct Email {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    language: Language,
    text: Template,
    html: Template,
    timeout: Duration,
    common: Common,
}

impl Email {
    pub fn new(c: &EmailConfig, common: &Common) -> Result<Email, String> {
        let tls = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(ca) = &c.ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
                b = b.add_root_certificate(
                    Certificate::from_pem(&pem)
                        .map_err(|e| format!("ca_file {}: {e}", ca.display()))?,
                );
            }
            b.build_rustls().map_err(|e| format!("TLS: {e}"))
        };
        let (tls, default_port) = match c.tls {
            SmtpTls::Starttls => (Tls::Required(tls()?), 587),
            SmtpTls::Tls => (Tls::Wrapper(tls()?), 465),
            SmtpTls::None => (Tls::None, 25),
        };
        let timeout = super::timeout_of(c.timeout.as_deref());
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(c.port.unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Email {
            name: c.name.clone(),
            transport: b.build(),
            from: c.from.parse().map_err(|e| format!("from: {e}"))?,
            to: c
                .to
                .iter()
                .map(|t| t.parse().map_err(|e| format!("to {t:?}: {e}")))
                .collect::<Result<_, String>>()?,
            language: c.language.unwrap_or(common.language),
            text: Template::new("text", c.template.as_deref().unwrap_or(template::TEXT))
                .map_err(|e| e.to_string())?,
            html: Template::new(
                "email.html",
                c.html_template.as_deref().unwrap_or(template::HTML),
            )
            .map_err(|e| e.to_string())?,
            timeout,
            common: common.clone(),
        })
    }
}

#[async_trait]
impl Channel for Email {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "email"
    }
    fn limits(&self) -> Limits {
        // Mail servers have no per-minute robot limit; a 1/s pace keeps a storm from tripping
        // a relay's anti-spam throttle and still merges a storm into digests.
        Limits {
            rate: Some((1, Duration::from_secs(1))),
            max_body_bytes: None,
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        let ctx = template::context_for(
            alerts,
            self.language,
            &self.common.links,
            &self.common.message,
        );
        Ok(Message {
            title: template::title(alerts, self.language, MARKUP),
            body: self.text.render(&ctx)?,
            html: Some(self.html.render(&ctx)?),
            mentions: Vec::new(),
            buttons: Vec::new(),
            severity: super::gravest_severity(alerts),
            step: None,
        })
    }
    fn chart_delivery(&self) -> crate::render::chart::ChartDelivery {
        crate::render::chart::ChartDelivery::Inline
    }
    async fn send_with_chart(
        &self,
        msg: &Message,
        chart: Option<&crate::render::chart::ChartOutcome>,
    ) -> Result<(), SendError> {
        self.deliver(msg, chart.and_then(|c| c.png.as_deref()).map(Vec::as_slice))
            .await
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        self.deliver(msg, None).await
    }
}

/// The body: text and HTML alternatives; with a chart the HTML is `multipart/related` with the
/// PNG as the inline part its `cid:` names (only when the HTML does reference it).
fn body(msg: &Message, png: Option<&[u8]>) -> Result<MultiPart, SendError> {
    let html = msg.html.clone().unwrap_or_default();
    let cid = crate::render::chart::EMAIL_CID;
    match png {
        Some(png) if html.contains(&format!("cid:{cid}")) => {
            let png_type = ContentType::parse("image/png")
                .map_err(|e| SendError::Permanent(format!("image/png: {e}")))?;
            Ok(MultiPart::alternative()
                .singlepart(SinglePart::plain(msg.body.clone()))
                .multipart(
                    MultiPart::related()
                        .singlepart(SinglePart::html(html))
                        .singlepart(
                            Attachment::new_inline(cid.to_string()).body(png.to_vec(), png_type),
                        ),
                ))
        }
        _ => Ok(MultiPart::alternative_plain_html(msg.body.clone(), html)),
    }
}

impl Email {
    async fn deliver(&self, msg: &Message, png: Option<&[u8]>) -> Result<(), SendError> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(msg.title.clone());
        for t in &self.to {
            b = b.to(t.clone());
        }
        for m in &msg.mentions {
            let to = m.parse().map_err(|e| {
                SendError::Permanent(format!(
                    "escalation mention {m:?} is not an email address: {e}"
                ))
            })?;
            b = b.to(to);
        }
        let email = b
            .multipart(body(msg, png)?)
            .map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))?;
        // lettre's own timeout does not cover every read (a server silent after AUTH hangs it),
        // so the whole transaction is bounded: twice the timeout, for connect plus dialogue.
        match tokio::time::timeout(self.timeout * 2, self.transport.send(email)).await {
            Err(_) => Err(SendError::Retryable(format!(
                "SMTP: timeout after {:?}",
                self.timeout * 2
            ))),
            Ok(Ok(_)) => Ok(()),
            // 5xx answers and client-side errors (no common AUTH mechanism, bad address) cannot heal.
            Ok(Err(e)) if e.is_permanent() || e.is_client() => {
                Err(SendError::Permanent(format!("SMTP: {e}")))
            }
            Ok(Err(e)) => Err(SendError::Retryable(format!("SMTP: {e}"))),
        }
    }
}
