//! Aliyun SMS (`aliyun_sms`, Dysmsapi `SendSms`): a template message to every number, signed
//! with Aliyun's RPC signature. The signing and answer reading sit behind [`RpcProvider`] so a
//! second cloud (Tencent Cloud, TC3) is one more implementation.
//!
//! RPC signature (SignatureVersion 1.0): sort every parameter but `Signature` by name,
//! percent-encode names and values (RFC 3986: unreserved `A-Za-z0-9-_.~` kept, space `%20`),
//! join as `k=v&…`; `StringToSign = "POST&%2F&" + percent(canonical)`;
//! `Signature = base64(hmac_sha1(key = secret + "&", StringToSign))`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha1::Sha1;

use super::{Channel, ChannelSpec, Common, Limits, Message, SendError, check};
use crate::core::model::AlertEvent;
use crate::render::template::{self, TemplateError};

/// RFC 3986 percent-encoding as Aliyun's RPC signature wants it.
pub fn percent(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// The canonical query (sorted, encoded) of these parameters.
pub fn canonical(params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "Signature").collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    p.iter()
        .map(|(k, v)| format!("{}={}", percent(k), percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `base64(hmac_sha1(secret + "&", "POST&%2F&" + percent(canonical(params))))`.
pub fn rpc_signature(secret: &str, params: &[(String, String)]) -> String {
    rpc_signature_for("POST", secret, params)
}

/// The signature for a request of this HTTP method.
pub fn rpc_signature_for(method: &str, secret: &str, params: &[(String, String)]) -> String {
    let to_sign = format!("{method}&{}&{}", percent("/"), percent(&canonical(params)));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A cloud's request signing and answer reading; one implementation per cloud.
pub trait RpcProvider: Send + Sync {
    /// The signed form body for this action and its parameters.
    fn signed_body(&self, action: &str, params: Vec<(String, String)>) -> String;
    /// What the cloud's answer means.
    fn classify(&self, status: u16, body: &str) -> Result<(), SendError>;
}

/// Aliyun's RPC style (Dysmsapi 2017-05-25).
pub struct Aliyun {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub version: &'static str,
}

impl RpcProvider for Aliyun {
    fn signed_body(&self, action: &str, mut params: Vec<(String, String)>) -> String {
        let nonce = format!(
            "{:x}{:x}",
            crate::core::clock::now().timestamp_nanos_opt().unwrap_or(0),
            std::process::id()
        );
        for (k, v) in [
            ("AccessKeyId", self.access_key_id.as_str()),
            ("Action", action),
            ("Format", "JSON"),
            ("RegionId", "cn-hangzhou"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce.as_str()),
            ("SignatureVersion", "1.0"),
            ("Version", self.version),
        ] {
            params.push((k.into(), v.into()));
        }
        params.push((
            "Timestamp".into(),
            crate::core::clock::now()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        ));
        let sig = rpc_signature(&self.access_key_secret, &params);
        format!("Signature={}&{}", percent(&sig), canonical(&params))
    }

    fn classify(&self, status: u16, body: &str) -> Result<(), SendError> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let code = v["Code"].as_str().unwrap_or("");
        let msg = v["Message"].as_str().unwrap_or("");
        let reason = || format!("Aliyun {code}: {msg}");
        match code {
            "OK" => Ok(()),
            // Per-number and per-account flow control: wait, it is not a failure.
            "isv.BUSINESS_LIMIT_CONTROL" | "Throttling.User" | "Throttling" => {
                Err(SendError::RateLimited {
                    reason: reason(),
                    retry_after: Some(Duration::from_secs(60)),
                })
            }
            "ServiceUnavailable" | "InternalError" => Err(SendError::Retryable(reason())),
            "" => Err(SendError::Retryable(format!(
                "HTTP {status}: answer without Code"
            ))),
            // SignatureDoesNotMatch, InvalidAccessKeyId.NotFound, isv.MOBILE_NUMBER_ILLEGAL,
            // isv.AMOUNT_NOT_ENOUGH, isv.SMS_TEMPLATE_ILLEGAL, ...
            _ => Err(SendError::Permanent(reason())),
        }
    }
}

/// What every Aliyun channel's config needs: an http(s) `endpoint`, non-empty `required`
/// values (key, secret, template ...; reasons never quote them) and at least one phone number.
pub fn check_account(
    p: &mut check::Problems,
    endpoint: &str,
    phone_numbers: &[String],
    required: &[(&str, &String)],
) {
    check::url(p, "endpoint", endpoint);
    for (k, v) in required {
        if v.is_empty() {
            p.push((k.to_string(), "is empty".into()));
        }
    }
    if phone_numbers.is_empty() {
        p.push(("phone_numbers".into(), "needs at least one number".into()));
    }
    if !phone_numbers.iter().all(|n| super::is_mobile(n)) {
        p.push((
            "phone_numbers".into(),
            "every entry must be a phone number".into(),
        ));
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunSmsConfig {
    pub name: String,
    /// `https://dysmsapi.aliyuncs.com/`
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub phone_numbers: Vec<String>,
    pub sign_name: String,
    /// A template with `${alertname}`, `${severity}`, `${summary}` and `${link}` variables.
    pub template_code: String,
    pub timeout: Option<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl ChannelSpec for AliyunSmsConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "aliyun_sms"
    }
    fn fallback(&self) -> &[String] {
        &self.fallback
    }
    fn validate(&self, p: &mut check::Problems) {
        check_account(
            p,
            &self.endpoint,
            &self.phone_numbers,
            &[
                ("access_key_id", &self.access_key_id),
                ("access_key_secret", &self.access_key_secret),
                ("sign_name", &self.sign_name),
                ("template_code", &self.template_code),
            ],
        );
        check::duration(p, "timeout", &self.timeout);
    }
    fn build(&self, common: &Common) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(AliyunSms {
            name: self.name.clone(),
            url: reqwest::Url::parse(&self.endpoint).map_err(|e| format!("endpoint: {e}"))?,
            provider: Aliyun {
                access_key_id: self.access_key_id.clone(),
                access_key_secret: self.access_key_secret.clone(),
                version: "2017-05-25",
            },
            phone_numbers: self.phone_numbers.clone(),
            sign_name: self.sign_name.clone(),
            template_code: self.template_code.clone(),
            timeout: super::timeout_of(self.timeout.as_deref()),
            common: common.clone(),
        }))
    }
}

/// Aliyun limits a notification template variable to 35 characters.
pub const MAX_PARAM_CHARS: usize = 35;

fn clip(s: &str) -> String {
    s.chars().take(MAX_PARAM_CHARS).collect()
}

pub struct AliyunSms {
    name: String,
    url: reqwest::Url,
    provider: Aliyun,
    phone_numbers: Vec<String>,
    sign_name: String,
    template_code: String,
    timeout: Duration,
    common: Common,
}

#[async_trait]
impl Channel for AliyunSms {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "aliyun_sms"
    }
    fn limits(&self) -> Limits {
        // Aliyun's default per-number flow control: 1 a minute; a digest waits for it.
        Limits {
            rate: Some((1, Duration::from_secs(60) + super::WINDOW_MARGIN)),
            max_body_bytes: None,
        }
    }
    fn render(&self, alerts: &[AlertEvent]) -> Result<Message, TemplateError> {
        let first = alerts.first();
        let summary = if alerts.len() > 1 {
            format!("+{} more", alerts.len() - 1)
        } else {
            first
                .and_then(|a| a.annotations.get("summary").cloned())
                .unwrap_or_default()
        };
        // Template parameters as JSON in the body; SMS is plain text, nothing to escape.
        let params = json!({
            "alertname": clip(first.map(|a| a.alertname()).unwrap_or("")),
            "severity": clip(&super::gravest_severity(alerts)),
            "summary": clip(&summary),
            "link": first
                .and_then(|a| self.common.links.ack_url(&a.fingerprint, a.starts_at))
                .unwrap_or_default(),
        });
        Ok(Message {
            title: template::title(alerts, self.common.language, template::Markup::Text),
            body: params.to_string(),
            html: None,
            mentions: Vec::new(),
            buttons: Vec::new(),
            severity: super::gravest_severity(alerts),
            step: None,
        })
    }
    async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let body = self.provider.signed_body(
            "SendSms",
            vec![
                ("PhoneNumbers".into(), self.phone_numbers.join(",")),
                ("SignName".into(), self.sign_name.clone()),
                ("TemplateCode".into(), self.template_code.clone()),
                ("TemplateParam".into(), msg.body.clone()),
            ],
        );
        let (status, text) =
            super::http::post_form(&self.common.http, self.url.clone(), self.timeout, body).await?;
        self.provider.classify(status, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_signature_matches_the_documented_example() {
        // Aliyun's signature documentation example (DescribeRegions, GET in the doc; the
        // algorithm with POST is the same string with "POST").
        let p: Vec<(String, String)> = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            canonical(&p),
            "AccessKeyId=testid&Action=DescribeRegions&Format=XML&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0&Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26"
        );
        assert_eq!(percent("a b*~"), "a%20b%2A~");
        // The value Aliyun's documentation gives for this GET request.
        assert_eq!(
            rpc_signature_for("GET", "testsecret", &p),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        // Python: the same with "POST".
        assert_eq!(
            rpc_signature("testsecret", &p),
            "MxbnVAM4w6sft9xjVpe/GCKueuk="
        );
    }
}
