//! Generic signed webhook: our own JSON (the alerts with their links, the escalation step, the
//! mentions) POSTed to any in-house pager or SMS gateway, signed so the receiver can tell it
//! came from this router and is fresh.
//!
//! Headers: `X-Quantwatch-Timestamp: <unix seconds>` and
//! `X-Quantwatch-Signature: sha256=<hex(hmac_sha256(secret, "{timestamp}.{body}"))>`, where
//! `body` is the exact request body bytes. A receiver recomputes the HMAC over the timestamp
//! header, a dot and the raw body, compares in constant time, and refuses a timestamp more than
//! a few minutes from its clock (a replay). Answers: 2xx delivered, 429 waits `Retry-After`,
//! 5xx retried, other 4xx permanent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::http;
use super::{Channel, ChannelSpec, Common, Limits, Message, SendError, check};
use crate::core::model::AlertEvent;
use crate::render::template::{self, LinkSettings, TemplateError};

pub const TIMESTAMP_HEADER: &str = "x-quantwatch-timestamp";
pub const SIGNATURE_HEADER: &str = "x-quantwatch-signature";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    /// HMAC key; required (an unsigned webhook would accept pages from anyone).
    pub secret: String,
    pub timeout: Option<String>,
    /// Messages per minute (default: no limit).
    pub rate_per_minute: Option<u32>,
    /// IANA zone of this channel's times, over the router's `timezone`.
    pub timezone: Option<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl ChannelSpec for WebhookConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn validate(&self, p: &mut check::Problems) {
        check::url(p, "url", &self.url);
        if self.secret.len() < 16 {
            p.push((
                "secret".into(),
                "must be at least 16 bytes (it signs every request)".into(),
            ));
        }
        check::rate(
            p,
            "rate_per_minute",
            self.rate_per_minute,
            6000,
            "per minute",
        );
        check::duration(p, "timeout", &self.timeout);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Webhook::new(self, common)?))
    }
}

/// `sha256=` + hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn signature(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

pub struct Webhook {
    name: String,
    url: reqwest::Url,
    secret: String,
    timeout: Duration,
    rate: Option<u32>,
    links: LinkSettings,
    common: Common,
}

impl Webhook {
    pub fn new(c: &WebhookConfig, common: &Common) -> Result<Webhook, String> {
        Ok(Webhook {
            name: c.name.clone(),
            url: reqwest::Url::parse(&c.url).map_err(|e| format!("url: {e}"))?,
            secret: c.secret.clone(),
            timeout: super::timeout_of(c.timeout.as_deref()),
            rate: c.rate_per_minute,
            links: common.links.clone(),
            common: common.clone(),
        })
    }

    /// The request body for a message rendered by `render` (its body holds the alerts).
    pub fn payload(&self, msg: &Message) -> serde_json::Value {
        let alerts: serde_json::Value =
            serde_json::from_str(&msg.body).unwrap_or_else(|_| json!([]));
        json!({
            "version": 1,
            "channel": self.name,
            "title": msg.title,
            "severity": msg.severity,
            "step": msg.step,
            "mentions": msg.mentions,
            "alerts": alerts,
        })
    }
}

#[async_trait]
impl Channel for Webhook {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn limits(&self) -> Limits {
        // JSON is not split: one request carries the whole digest.
        Limits {
            rate: self
                .rate
                .map(|r| (r, Duration::from_secs(60) + super::WINDOW_MARGIN)),
            max_body_bytes: None,
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        let list: Vec<serde_json::Value> = alerts
            .iter()
            .map(|a| {
                let resolved = template::alert_links(a, &self.common.message);
                json!({
                    "status": a.status,
                    "alertname": a.alertname(),
                    "severity": a.labels.get("severity"),
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "starts_at": crate::core::timefmt::rfc3339_ms(a.starts_at, self.common.message.tz),
                    "ends_at": a.ends_at.and_then(|t| crate::core::timefmt::rfc3339_ms(t, self.common.message.tz)),
                    "fingerprint": a.fingerprint,
                    "links": {
                        "ack": self.links.ack_url(&a.fingerprint, a.starts_at),
                        "silence": self.links.silence_links(a, self.common.language),
                        "runbook": resolved.runbook,
                        "dashboard": resolved.dashboard,
                        "source": resolved.source,
                    },
                })
            })
            .collect();
        Ok(Message {
            title: template::title(alerts, self.common.language, template::Markup::Text),
            body: serde_json::Value::Array(list).to_string(),
            html: None,
            mentions: Vec::new(),
            buttons: Vec::new(),
            severity: super::gravest_severity(alerts),
            step: None,
        })
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let body = http::body_bytes(&self.payload(msg));
        let ts = crate::core::clock::now().timestamp();
        let headers = [
            (TIMESTAMP_HEADER, ts.to_string()),
            (SIGNATURE_HEADER, signature(&self.secret, ts, &body)),
        ];
        http::post_json(
            &self.common.http,
            self.url.clone(),
            self.timeout,
            &headers,
            body,
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_over_timestamp_dot_body() {
        // Python: "sha256=" + hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("k", 1_700_000_000, b"{}"),
            "sha256=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
    }
}
