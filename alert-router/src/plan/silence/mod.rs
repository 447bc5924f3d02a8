//! Silences from the message: a signed link (`signing::Purpose::Silence`) opens a confirmation
//! page (`GET /silence/{token}`, so a link preview never silences); its form posts `by` and
//! `duration` (`1h`, `4h`, `resolved`) and the router creates the silence on every configured
//! Alertmanager through the v2 API (`POST /api/v2/silences`, matchers = the alert's labels).
//!
//! A silence is recorded (table `alert_silences`, an audit entry in the alert's history) only
//! after every Alertmanager accepted it: when one cannot be reached, those already created are
//! expired again and the page says which one failed, so "silenced" in the router always means
//! silenced everywhere. "Until resolved" silences end at `silences.until_resolved_max` at the
//! latest; the watcher ([`watch`]) expires them (`DELETE /api/v2/silence/{id}`) as soon as the
//! alert resolves. It asks Alertmanager rather than waiting for the resolved webhook, because
//! Alertmanager mutes the resolved notification of a silenced alert too.
//!
//! Without `alertmanager_urls` the message links open Alertmanager's own silence form,
//! prefilled from the alert's `externalURL` and labels.

mod client;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use client::quoted;
pub use client::{AmError, create_one, expire_one, still_firing};

use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::core::settings::Problem;
use crate::core::signing;
use crate::core::text::path_segment;
use crate::store::{AmSilence, SilenceRecord, Store, StoreError};

/// How long a silence from a link lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Hour,
    FourHours,
    /// Until the alert resolves (at most `silences.until_resolved_max`).
    UntilResolved,
}

impl Length {
    pub const ALL: [Length; 3] = [Length::Hour, Length::FourHours, Length::UntilResolved];

    /// The form value (contract: `1h`, `4h`, `resolved`).
    pub fn parse(s: &str) -> Option<Length> {
        match s {
            "1h" => Some(Length::Hour),
            "4h" => Some(Length::FourHours),
            "resolved" => Some(Length::UntilResolved),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Length::Hour => "1h",
            Length::FourHours => "4h",
            Length::UntilResolved => "resolved",
        }
    }

    fn span(self, s: &SilenceSettings) -> Duration {
        match self {
            Length::Hour => Duration::from_secs(3600),
            Length::FourHours => Duration::from_secs(4 * 3600),
            Length::UntilResolved => s.until_resolved_max,
        }
    }

    /// The words of a message link and of the page.
    pub fn label(self, lang: Language) -> &'static str {
        match (lang, self) {
            (Language::Zh, Length::Hour) => "静默1小时",
            (Language::Zh, Length::FourHours) => "静默4小时",
            (Language::Zh, Length::UntilResolved) => "静默至恢复",
            (Language::En, Length::Hour) => "Silence 1h",
            (Language::En, Length::FourHours) => "Silence 4h",
            (Language::En, Length::UntilResolved) => "Silence until resolved",
        }
    }
}

/// The `silences` section as written in the file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileSilences {
    /// How often "until resolved" silences are checked against Alertmanager (default 30s).
    pub check_interval: Option<String>,
    /// Longest "until resolved" silence, in case the alert never resolves (default 24h).
    pub until_resolved_max: Option<String>,
    /// Deadline of one Alertmanager API call (default 5s).
    pub timeout: Option<String>,
}

/// `alertmanager_urls` and `silences`, validated.
#[derive(Debug, Clone)]
pub struct SilenceSettings {
    /// Base URLs without a trailing slash; empty: links open Alertmanager's own form.
    pub alertmanager_urls: Vec<String>,
    pub check_interval: Duration,
    pub until_resolved_max: Duration,
    pub timeout: Duration,
}

impl Default for SilenceSettings {
    fn default() -> Self {
        SilenceSettings {
            alertmanager_urls: Vec::new(),
            check_interval: Duration::from_secs(30),
            until_resolved_max: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Validate `alertmanager_urls` (env `ROUTER_ALERTMANAGER_URLS`, comma-separated, wins) and
/// the `silences` section. URLs are never quoted in a reason (they may carry credentials).
pub fn validate(
    urls: Vec<String>,
    f: FileSilences,
    env_urls: Option<String>,
    file: &str,
    p: &mut Vec<Problem>,
) -> SilenceSettings {
    let d = SilenceSettings::default();
    let (urls, origin, key) = match env_urls {
        Some(v) => (
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            "(environment)",
            "ROUTER_ALERTMANAGER_URLS",
        ),
        None => (urls, file, "alertmanager_urls"),
    };
    let mut out = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        let ok = reqwest::Url::parse(u)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if ok {
            out.push(u.trim_end_matches('/').to_string());
        } else {
            p.push(Problem {
                file: origin.into(),
                key: format!("{key}[{i}]"),
                reason: "is not an http(s) URL of an Alertmanager (e.g. http://alertmanager:9093)"
                    .into(),
            });
        }
    }
    let dur = |p: &mut Vec<Problem>, k: &str, v: Option<&str>, def: Duration| {
        crate::core::settings::duration(p, file, &format!("silences.{k}"), v, def)
    };
    SilenceSettings {
        alertmanager_urls: out,
        check_interval: dur(
            p,
            "check_interval",
            f.check_interval.as_deref(),
            d.check_interval,
        ),
        until_resolved_max: dur(
            p,
            "until_resolved_max",
            f.until_resolved_max.as_deref(),
            d.until_resolved_max,
        ),
        timeout: dur(p, "timeout", f.timeout.as_deref(), d.timeout),
    }
}

/// Why a silence was not made.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("no alertmanager_urls are configured")]
    NotConfigured,
    #[error("{0}")]
    Alertmanager(AmError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Silence the firing `ev` on every configured Alertmanager and record it; all or nothing.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    settings: &SilenceSettings,
    store: &dyn Store,
    ev: &AlertEvent,
    by: &str,
    length: Length,
    via: &str,
    address: Option<String>,
    now: i64,
) -> Result<SilenceRecord, SilenceError> {
    if settings.alertmanager_urls.is_empty() {
        return Err(SilenceError::NotConfigured);
    }
    let ends_at = now.saturating_add(i64::try_from(length.span(settings).as_millis()).unwrap_or(0));
    let comment = format!(
        "Silenced from quantwatch-alert-router by {by} ({}): {} (fingerprint {})",
        match length {
            Length::UntilResolved => "until resolved".to_string(),
            l => l.as_str().to_string(),
        },
        ev.alertname(),
        ev.fingerprint
    );
    let mut made: Vec<AmSilence> = Vec::new();
    for url in &settings.alertmanager_urls {
        match create_one(
            url,
            &ev.labels,
            now,
            ends_at,
            by,
            &comment,
            settings.timeout,
        )
        .await
        {
            Ok(id) => made.push(AmSilence {
                url: url.clone(),
                id,
            }),
            Err(e) => {
                undo(&made, settings.timeout).await;
                return Err(SilenceError::Alertmanager(e));
            }
        }
    }
    let mut rec = SilenceRecord {
        id: 0,
        fingerprint: ev.fingerprint.clone(),
        starts_at: ev.starts_at,
        alertname: ev.alertname().to_string(),
        labels: ev.labels.clone(),
        duration: length.as_str().into(),
        created_by: by.into(),
        created_at: now,
        ends_at,
        alertmanagers: made.clone(),
        expired_at: None,
        expired_by: None,
    };
    match store.record_silence(&rec, via, address.as_deref()).await {
        Ok(id) => rec.id = id,
        Err(e) => {
            undo(&made, settings.timeout).await;
            return Err(e.into());
        }
    }
    tracing::info!(fingerprint = %ev.fingerprint, by, duration = length.as_str(), via,
        alertmanagers = made.len(), "alert silenced in Alertmanager");
    Ok(rec)
}

/// Expire silences made before a later Alertmanager failed (best effort: logged if not).
async fn undo(made: &[AmSilence], timeout: Duration) {
    for s in made {
        if let Err(e) = expire_one(&s.url, &s.id, timeout).await {
            tracing::warn!(error = %e, silence = %s.id, "cannot expire a silence of a failed attempt; expire it in Alertmanager");
        }
    }
}

/// Expire a recorded silence on its Alertmanagers, then record who expired it. An
/// unreachable Alertmanager leaves the record active (the next attempt retries).
pub async fn expire(
    settings: &SilenceSettings,
    store: &dyn Store,
    rec: &SilenceRecord,
    by: &str,
    via: &str,
    address: Option<String>,
    now: i64,
) -> Result<bool, SilenceError> {
    let timeout = settings.timeout;
    for s in &rec.alertmanagers {
        expire_one(&s.url, &s.id, timeout)
            .await
            .map_err(SilenceError::Alertmanager)?;
    }
    Ok(store
        .expire_silence(rec.id, by, via, address.as_deref(), now)
        .await?)
}

/// Whether the firing a silence was made for is over: the router saw it resolve (or fire
/// anew), or no Alertmanager holds it any more. `None`: cannot tell now (one unreachable).
async fn resolved(
    settings: &SilenceSettings,
    store: &dyn Store,
    rec: &SilenceRecord,
) -> Result<Option<bool>, StoreError> {
    match store.current_event(&rec.fingerprint).await? {
        Some(ev)
            if ev.status == crate::core::model::Status::Firing && ev.starts_at == rec.starts_at => {
        }
        _ => return Ok(Some(true)),
    }
    let timeout = settings.timeout;
    for s in &rec.alertmanagers {
        match still_firing(&s.url, &rec.labels, timeout).await {
            Ok(true) => return Ok(Some(false)),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether a silenced alert resolved");
                return Ok(None);
            }
        }
    }
    Ok(Some(true))
}

/// One pass of the watcher: expire every "until resolved" silence whose alert resolved.
/// Returns how many this pass expired. Replicas may race; expiring twice is harmless and the
/// store records the expiry once.
pub async fn expire_resolved(
    settings: &SilenceSettings,
    store: &dyn Store,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for rec in store.active_silences(now_ms, 1000).await? {
        if rec.duration != Length::UntilResolved.as_str() {
            continue;
        }
        if resolved(settings, store, &rec).await? != Some(true) {
            continue;
        }
        let by = "quantwatch-alert-router";
        match expire(settings, store, &rec, by, "resolved", None, now_ms).await {
            Ok(true) => {
                n += 1;
                tracing::info!(fingerprint = %rec.fingerprint, "alert resolved; its silence expired");
            }
            Ok(false) => {}
            Err(SilenceError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot expire the silence of a resolved alert; retrying")
            }
        }
    }
    Ok(n)
}

/// Alertmanager's own "new silence" form prefilled with the alert's labels, from the
/// payload's `externalURL`; `None` when that is missing or not an http(s) URL. Characters
/// that end a link in chat markup are percent-encoded: the URL came from outside.
pub fn form_url(ev: &AlertEvent) -> Option<String> {
    let base =
        reqwest::Url::parse(ev.annotations.get(crate::core::annotations::EXTERNAL_URL)?).ok()?;
    if !matches!(base.scheme(), "http" | "https") || !base.username().is_empty() {
        return None;
    }
    let filter = format!(
        "{{{}}}",
        ev.labels
            .iter()
            .map(|(k, v)| format!("{k}={}", quoted(v)))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push_str("/#/silences/new?filter=");
    s.push_str(&path_segment(&filter));
    Some(
        s.replace('(', "%28")
            .replace(')', "%29")
            .replace('|', "%7C")
            .replace('*', "%2A"),
    )
}

/// `{public_url}/silence/{token}?duration=…` for each length (valid until `expires_s`, Unix
/// seconds), or the Alertmanager form.
/// Firing alerts only (a resolved alert has nothing to silence).
pub fn links(
    ev: &AlertEvent,
    lang: Language,
    public_url: Option<&str>,
    secret: Option<&str>,
    expires_s: i64,
    configured: bool,
) -> Vec<Value> {
    if ev.status != crate::core::model::Status::Firing
        || ev
            .annotations
            .contains_key(crate::core::annotations::NOTICE)
    {
        return Vec::new();
    }
    if let (true, Some(base), Some(secret)) = (configured, public_url, secret) {
        let token = signing::silence_token(secret, &ev.fingerprint, ev.starts_at, expires_s);
        let base = base.trim_end_matches('/');
        return Length::ALL
            .iter()
            .map(|l| {
                json!({
                    "label": l.label(lang),
                    "url": format!("{base}/silence/{}?duration={}", path_segment(&token), l.as_str()),
                })
            })
            .collect();
    }
    let label = match lang {
        Language::Zh => "在 Alertmanager 中静默",
        Language::En => "Silence in Alertmanager",
    };
    form_url(ev)
        .map(|url| vec![json!({"label": label, "url": url})])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ev() -> AlertEvent {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "Disk(Full)".to_string());
        labels.insert("path".to_string(), "say \"hi\"".to_string());
        AlertEvent {
            group_key: "g".into(),
            fingerprint: "fp1".into(),
            status: crate::core::model::Status::Firing,
            labels,
            annotations: BTreeMap::new(),
            starts_at: 1_767_225_600_000,
            ends_at: None,
            generator_url: None,
            receiver: None,
        }
    }

    #[test]
    fn durations_are_the_contracts_three() {
        assert_eq!(Length::parse("1h"), Some(Length::Hour));
        assert_eq!(Length::parse("4h"), Some(Length::FourHours));
        assert_eq!(Length::parse("resolved"), Some(Length::UntilResolved));
        assert_eq!(Length::parse("2h"), None);
        let s = SilenceSettings::default();
        assert_eq!(Length::FourHours.span(&s), Duration::from_secs(14_400));
        assert_eq!(Length::UntilResolved.span(&s), s.until_resolved_max);
    }

    #[test]
    fn the_fallback_form_url_is_inert_in_chat_markup() {
        let mut e = ev();
        assert_eq!(form_url(&e), None, "no externalURL");
        e.annotations.insert(
            crate::core::annotations::EXTERNAL_URL.into(),
            "http://am.example:9093/".into(),
        );
        let u = form_url(&e).unwrap();
        assert_eq!(
            u,
            "http://am.example:9093/#/silences/new?filter=%7Balertname%3D%22Disk%28Full%29%22%2Cpath%3D%22say%20%5C%22hi%5C%22%22%7D"
        );
        for bad in ["javascript:alert(1)", "ftp://am", "http://u:p@am/"] {
            e.annotations
                .insert(crate::core::annotations::EXTERNAL_URL.into(), bad.into());
            assert_eq!(form_url(&e), None, "{bad}");
        }
        e.annotations.insert(
            crate::core::annotations::EXTERNAL_URL.into(),
            "http://am/x)[y](z".into(),
        );
        let u = form_url(&e).unwrap();
        assert!(!u.contains(')') && !u.contains('('), "{u}");
    }

    #[test]
    fn signed_links_need_configured_alertmanagers() {
        let e = ev();
        let secret = "0123456789abcdef0123456789abcdef";
        let l = links(
            &e,
            Language::En,
            Some("https://r.example/"),
            Some(secret),
            60,
            true,
        );
        let urls: Vec<&str> = l.iter().map(|v| v["url"].as_str().unwrap()).collect();
        assert_eq!(urls.len(), 3);
        assert!(urls[0].starts_with("https://r.example/silence/silence.fp1.1767225600000."));
        assert!(urls[0].ends_with("?duration=1h"));
        assert!(urls[2].ends_with("?duration=resolved"));
        assert_eq!(l[2]["label"], "Silence until resolved");
        // Not configured, no externalURL: nothing to offer.
        assert!(links(&e, Language::Zh, Some("https://r"), Some(secret), 60, false).is_empty());
        let mut r = e.clone();
        r.status = crate::core::model::Status::Resolved;
        assert!(links(&r, Language::En, Some("https://r"), Some(secret), 60, true).is_empty());
    }

    #[test]
    fn matcher_values_are_quoted() {
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
