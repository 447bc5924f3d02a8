//! Aliyun voice call (`aliyun_voice`, Dyvmsapi 2017-05-25 `SingleCallByTts`): one call per
//! request to one number, reading a TTS template whose variables `${alertname}`,
//! `${severity}` and `${summary}` carry the alert. Signed like every Aliyun RPC call
//! ([`super::aliyun::Aliyun`]).
//!
//! The vendor's rules this file keeps (Dyvmsapi documentation):
//! - `TtsParam` as a whole must stay under 250 characters and may carry no link (the variables
//!   of one template are not limited one by one); a template with three variables needs the
//!   dedicated mode, so `CalledShowNumber` (a purchased number) is required.
//! - Per called number: 1 call a minute, 5 an hour, 20 a day, counted whether or not the call
//!   connects; over it the answer is `isv.BUSINESS_LIMIT_CONTROL`, a wait for that number,
//!   not a failure ([`CallError::FlowControl`]: the next person is called meanwhile).
//! - The answer carries a `CallId`; the call's outcome arrives later as a `VoiceReport`
//!   receipt pushed to the account's callback URL (`crate::delivery::calls`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::aliyun::{Aliyun, RpcProvider};
use super::{CallError, Caller, Channel, ChannelSpec, Common, Limits, Message, SendError, check};
use crate::core::language::Language;
use crate::core::model::{AlertEvent, CallOutcome};
use crate::render::template::{self, TemplateError};

/// `TtsParam` (the JSON text as sent) must be shorter than this many characters.
pub const MAX_TTS_PARAM_CHARS: usize = 250;
/// How long a placed call waits for its receipt by default.
pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// The shortest window of Aliyun's per-number flow control (one call a minute).
pub const NUMBER_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunVoiceConfig {
    pub name: String,
    /// `https://dyvmsapi.aliyuncs.com/`
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    /// Called in order when a step names nobody on this channel.
    pub phone_numbers: Vec<String>,
    /// The purchased number (or service instance id) the call shows: dedicated mode.
    pub called_show_number: String,
    /// An approved TTS template with `${alertname}`, `${severity}` and `${summary}`.
    pub tts_code: String,
    /// The secret last path segment of the receipt callback URL configured in the Aliyun
    /// console (`{public_url}/callbacks/aliyun/voice/{callback_token}`): Aliyun's HTTP push
    /// carries no signature, so the URL itself is the credential. Without it no receipt is
    /// accepted and every call counts as unanswered after `receipt_timeout`.
    pub callback_token: Option<String>,
    /// How long a call waits for its receipt before the next person is called (default 3m).
    pub receipt_timeout: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

/// Shortest accepted `callback_token`.
pub const MIN_CALLBACK_TOKEN: usize = 32;

impl ChannelSpec for AliyunVoiceConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "aliyun_voice"
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn calls(&self) -> bool {
        true
    }
    fn validate(&self, p: &mut check::Problems) {
        super::aliyun::check_account(
            p,
            &self.endpoint,
            &self.phone_numbers,
            &[
                ("access_key_id", &self.access_key_id),
                ("access_key_secret", &self.access_key_secret),
                ("called_show_number", &self.called_show_number),
                ("tts_code", &self.tts_code),
            ],
        );
        // Empty counts as unset (a `${VAR:-}` default): no receipts are taken then.
        if let Some(t) = self.callback_token.as_deref().filter(|t| !t.is_empty()) {
            // Never quoted: it is the receipt endpoint's credential.
            if t.len() < MIN_CALLBACK_TOKEN
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                p.push((
                    "callback_token".into(),
                    format!(
                        "must be at least {MIN_CALLBACK_TOKEN} characters of A-Z, a-z, 0-9, - and _ (it is a URL path segment and the only credential of the receipt endpoint)"
                    ),
                ));
            }
        }
        check::duration(p, "receipt_timeout", &self.receipt_timeout);
        check::duration(p, "timeout", &self.timeout);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(AliyunVoice {
            name: self.name.clone(),
            url: reqwest::Url::parse(&self.endpoint).map_err(|e| format!("endpoint: {e}"))?,
            provider: Aliyun {
                access_key_id: self.access_key_id.clone(),
                access_key_secret: self.access_key_secret.clone(),
                version: "2017-05-25",
            },
            phone_numbers: self.phone_numbers.clone(),
            called_show_number: self.called_show_number.clone(),
            tts_code: self.tts_code.clone(),
            receipt_timeout: self
                .receipt_timeout
                .as_deref()
                .and_then(|s| humantime::parse_duration(s).ok())
                .unwrap_or(DEFAULT_RECEIPT_TIMEOUT),
            timeout: super::timeout_of(self.timeout.as_deref()),
            common: common.clone(),
        }))
    }
}

pub struct AliyunVoice {
    name: String,
    url: reqwest::Url,
    provider: Aliyun,
    phone_numbers: Vec<String>,
    called_show_number: String,
    tts_code: String,
    receipt_timeout: Duration,
    timeout: Duration,
    common: Common,
}

/// Words that are links or addresses (Aliyun refuses variables carrying them:
/// `isv.PARAM_NOT_SUPPORT_URL`) are left out of what the call reads.
pub fn without_links(s: &str) -> String {
    let is_link = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        let lower = w.to_ascii_lowercase();
        lower.contains("://")
            || lower.starts_with("www.")
            || w.split(':')
                .next()
                .is_some_and(|h| h.parse::<std::net::Ipv4Addr>().is_ok())
    };
    s.split_whitespace()
        .filter(|w| !is_link(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `TtsParam` JSON for these values, the summary shortened until the whole text is under
/// [`MAX_TTS_PARAM_CHARS`] characters (the stricter reading of "variables under 250
/// characters": the JSON as sent, escapes included).
pub fn tts_param(alertname: &str, severity: &str, summary: &str) -> String {
    let name: String = without_links(alertname).chars().take(60).collect();
    let severity: String = without_links(severity).chars().take(20).collect();
    let mut summary: Vec<char> = without_links(summary).chars().collect();
    loop {
        let s: String = summary.iter().collect();
        let text = json!({"alertname": name, "severity": severity, "summary": s}).to_string();
        if text.chars().count() < MAX_TTS_PARAM_CHARS || summary.is_empty() {
            return text;
        }
        let over = text.chars().count() + 1 - MAX_TTS_PARAM_CHARS;
        summary.truncate(summary.len().saturating_sub(over.max(1)));
    }
}

impl AliyunVoice {
    async fn single_call(&self, msg: &Message, number: &str) -> Result<String, CallError> {
        let body = self.provider.signed_body(
            "SingleCallByTts",
            vec![
                ("CalledShowNumber".into(), self.called_show_number.clone()),
                ("CalledNumber".into(), number.to_string()),
                ("TtsCode".into(), self.tts_code.clone()),
                ("TtsParam".into(), msg.body.clone()),
            ],
        );
        let (status, text) =
            super::http::post_form(&self.common.http, self.url.clone(), self.timeout, body).await?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let code = v["Code"].as_str().unwrap_or("");
        let reason = || format!("Aliyun {code}: {}", v["Message"].as_str().unwrap_or(""));
        match code {
            // Per called number: 1/minute, 5/hour, 20/day.
            "isv.BUSINESS_LIMIT_CONTROL" => Err(CallError::FlowControl {
                reason: reason(),
                retry_after: NUMBER_WAIT,
            }),
            "isv.MOBILE_NUMBER_ILLEGAL" | "isv.CALLEDNUMBER_ILLEGAL" => {
                Err(CallError::Number(reason()))
            }
            _ => {
                self.provider.classify(status, &text)?;
                match v["CallId"].as_str() {
                    Some(id) if !id.is_empty() => Ok(id.to_string()),
                    _ => Err(CallError::Send(SendError::Retryable(
                        "Aliyun answered OK without a CallId".into(),
                    ))),
                }
            }
        }
    }
}

#[async_trait]
impl Channel for AliyunVoice {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "aliyun_voice"
    }
    fn limits(&self) -> Limits {
        // Flow control is per number and handled per call (`CallError::FlowControl`): a
        // channel-wide window would hold back the next person's call.
        Limits {
            rate: None,
            max_body_bytes: None,
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        let first = alerts.first();
        let mut summary = first
            .and_then(|a| a.annotations.get("summary").cloned())
            .unwrap_or_default();
        if alerts.len() > 1 {
            let more = alerts.len() - 1;
            let tail = match self.common.language {
                Language::Zh => format!("，另有{more}条告警"),
                Language::En => format!(", and {more} more alerts"),
            };
            // The count is what must be heard: it goes first when the summary is cut.
            summary = format!("{tail} {summary}")
                .trim_start_matches([',', '，', ' '])
                .to_string();
        }
        // A call reads plain text: nothing to escape, links left out.
        let body = tts_param(
            first.map(|a| a.alertname()).unwrap_or(""),
            &super::gravest_severity(alerts),
            &summary,
        );
        Ok(Message {
            title: template::title(alerts, self.common.language, template::Markup::Text),
            body,
            html: None,
            mentions: Vec::new(),
            buttons: Vec::new(),
            severity: super::gravest_severity(alerts),
            step: None,
        })
    }
    /// Outside the worker (`test-send`): call every number once.
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        for n in self.callees(&msg.mentions) {
            self.single_call(msg, &n).await.map_err(|e| match e {
                CallError::Send(e) => e,
                CallError::FlowControl {
                    reason,
                    retry_after,
                } => SendError::RateLimited {
                    reason,
                    retry_after: Some(retry_after),
                },
                CallError::Number(r) => SendError::Permanent(r),
            })?;
        }
        Ok(())
    }
    fn caller(&self) -> Option<&dyn Caller> {
        Some(self)
    }
}

#[async_trait]
impl Caller for AliyunVoice {
    fn callees(&self, mentions: &[String]) -> Vec<String> {
        if mentions.is_empty() {
            self.phone_numbers.clone()
        } else {
            mentions.to_vec()
        }
    }
    fn receipt_timeout(&self) -> Duration {
        self.receipt_timeout
    }
    async fn call(&self, msg: &Message, number: &str) -> Result<String, CallError> {
        self.single_call(msg, number).await
    }
}

/// Aliyun's call status codes (`status_code` of a VoiceReport). Anything else counts as
/// answered only when the receipt shows a connected call (a start time or a duration).
pub fn call_outcome(status_code: &str, connected: bool) -> CallOutcome {
    match status_code {
        // 200000 heard to the end, 200001 hung up early, 200008 key-press timeout: someone
        // picked up.
        "200000" | "200001" | "200008" => CallOutcome::Answered,
        "200002" => CallOutcome::Busy,
        "200003" => CallOutcome::NoAnswer,
        _ if connected => CallOutcome::Answered,
        _ => CallOutcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tts_param_stays_under_250_characters_without_links() {
        let long = format!(
            "盘口异常 see https://grafana.example/d/x {}",
            "很".repeat(400)
        );
        let p = tts_param("OrderRejectRateHigh", "critical", &long);
        assert!(
            p.chars().count() < MAX_TTS_PARAM_CHARS,
            "{}",
            p.chars().count()
        );
        assert!(p.chars().count() >= MAX_TTS_PARAM_CHARS - 3);
        assert!(!p.contains("https"));
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["alertname"], "OrderRejectRateHigh");
        assert_eq!(v["severity"], "critical");
        assert!(
            v["summary"]
                .as_str()
                .unwrap()
                .starts_with("盘口异常 see 很很")
        );
        assert_eq!(
            without_links("db 10.0.0.7:5432 down, see www.x.cn or http://a/b. ok"),
            "db down, see or ok"
        );
        // Escapes count: a summary of quotes is cut where the JSON text fits.
        let q = tts_param("A", "b", &"\"".repeat(300));
        assert!(q.chars().count() < MAX_TTS_PARAM_CHARS);
    }
}
