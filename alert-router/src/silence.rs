//! Silences from the message: a signed link (`ack::Purpose::Silence`) opens a confirmation
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

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::ack::{self, Purpose, TokenError};
use crate::alerts::{MAX_BY_CHARS, Peer, acker, client_address};
use crate::auth::Principal;
use crate::config::Problem;
use crate::model::AlertEvent;
use crate::pages::{message, render};
use crate::store::{AmSilence, SilenceRecord, StoreError};
use crate::template::{Language, format_time, path_segment};

/// Annotation holding the webhook payload's `externalURL` (set at intake from the payload;
/// the internal prefix means a sender cannot set it through an annotation).
pub const EXTERNAL_URL: &str = "quantwatch_external_url";

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
        crate::config::duration(p, file, &format!("silences.{k}"), v, def)
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

/// Why an Alertmanager call failed: the page and the log say which Alertmanager and why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AmError {
    #[error("Alertmanager {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Alertmanager {url} refused: HTTP {status} {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .user_agent(concat!(
            "quantwatch-alert-router/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
});

/// The URL as the page and log show it: scheme, host and port (no credentials or path).
fn shown(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "(unparsable URL)".into())
}

async fn answer(url: &str, r: reqwest::Result<reqwest::Response>) -> Result<String, AmError> {
    let resp = r.map_err(|e| AmError::Unreachable {
        url: shown(url),
        reason: if e.is_timeout() {
            "timed out".into()
        } else if e.is_connect() {
            "connection refused or no route".into()
        } else {
            "transport error".into()
        },
    })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(body)
    } else {
        Err(AmError::Refused {
            url: shown(url),
            status: status.as_u16(),
            body: body.chars().take(200).collect(),
        })
    }
}

/// `POST /api/v2/silences`: the new silence's id.
pub async fn create_one(
    base: &str,
    labels: &BTreeMap<String, String>,
    ends_at_ms: i64,
    created_by: &str,
    comment: &str,
    timeout: Duration,
) -> Result<String, AmError> {
    let matchers: Vec<Value> = labels
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true}))
        .collect();
    let rfc = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let body = json!({
        "matchers": matchers,
        "startsAt": rfc(crate::worker::now_ms()),
        "endsAt": rfc(ends_at_ms),
        "createdBy": created_by,
        "comment": comment,
    });
    let r = HTTP
        .post(format!("{base}/api/v2/silences"))
        .timeout(timeout)
        .json(&body)
        .send()
        .await;
    let text = answer(base, r).await?;
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["silenceID"].as_str().map(String::from))
        .ok_or_else(|| AmError::Refused {
            url: shown(base),
            status: 200,
            body: "answer without a silenceID".into(),
        })
}

/// `DELETE /api/v2/silence/{id}`; a silence that is already expired (another replica, an
/// operator in Alertmanager's UI; Alertmanager 0.25 answers 200) or that the Alertmanager no
/// longer knows (it lost its state; 0.25 answers 500 "silence not found", later versions 404)
/// counts as expired: it silences nothing there.
pub async fn expire_one(base: &str, id: &str, timeout: Duration) -> Result<(), AmError> {
    let r = HTTP
        .delete(format!("{base}/api/v2/silence/{}", path_segment(id)))
        .timeout(timeout)
        .send()
        .await;
    match answer(base, r).await {
        Ok(_) => Ok(()),
        Err(AmError::Refused { status: 404, .. }) => Ok(()),
        Err(AmError::Refused { body, .. })
            if body.contains("already expired") || body.contains("not found") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A label value as a string literal of Alertmanager's matcher syntax.
fn quoted(v: &str) -> String {
    let mut o = String::with_capacity(v.len() + 2);
    o.push('"');
    for c in v.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Whether Alertmanager still holds the alert with exactly these labels as unresolved
/// (silenced or not): `GET /api/v2/alerts` lists no resolved alerts.
pub async fn still_firing(
    base: &str,
    labels: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<bool, AmError> {
    let mut q: Vec<(&str, String)> = ["active", "silenced", "inhibited", "unprocessed"]
        .iter()
        .map(|k| (*k, "true".to_string()))
        .collect();
    for (k, v) in labels {
        q.push(("filter", format!("{k}={}", quoted(v))));
    }
    let r = HTTP
        .get(format!("{base}/api/v2/alerts"))
        .query(&q)
        .timeout(timeout)
        .send()
        .await;
    let text = answer(base, r).await?;
    let list: Vec<Value> = serde_json::from_str(&text).map_err(|_| AmError::Refused {
        url: shown(base),
        status: 200,
        body: "the alert list is not JSON".into(),
    })?;
    Ok(list.iter().any(|a| {
        serde_json::from_value::<BTreeMap<String, String>>(a["labels"].clone())
            .is_ok_and(|l| &l == labels)
    }))
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
pub async fn create(
    app: &App,
    ev: &AlertEvent,
    by: &str,
    length: Length,
    via: &str,
    address: Option<String>,
) -> Result<SilenceRecord, SilenceError> {
    let settings = app.live().config.silences.clone();
    if settings.alertmanager_urls.is_empty() {
        return Err(SilenceError::NotConfigured);
    }
    let now = crate::worker::now_ms();
    let ends_at =
        now.saturating_add(i64::try_from(length.span(&settings).as_millis()).unwrap_or(0));
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
        match create_one(url, &ev.labels, ends_at, by, &comment, settings.timeout).await {
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
    match app
        .store
        .record_silence(&rec, via, address.as_deref())
        .await
    {
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
    app: &App,
    rec: &SilenceRecord,
    by: &str,
    via: &str,
    address: Option<String>,
) -> Result<bool, SilenceError> {
    let timeout = app.live().config.silences.timeout;
    for s in &rec.alertmanagers {
        expire_one(&s.url, &s.id, timeout)
            .await
            .map_err(SilenceError::Alertmanager)?;
    }
    Ok(app
        .store
        .expire_silence(rec.id, by, via, address.as_deref(), crate::worker::now_ms())
        .await?)
}

/// Whether the firing a silence was made for is over: the router saw it resolve (or fire
/// anew), or no Alertmanager holds it any more. `None`: cannot tell now (one unreachable).
async fn resolved(app: &App, rec: &SilenceRecord) -> Result<Option<bool>, StoreError> {
    match app.store.current_event(&rec.fingerprint).await? {
        Some(ev) if ev.status == "firing" && ev.starts_at == rec.starts_at => {}
        _ => return Ok(Some(true)),
    }
    let timeout = app.live().config.silences.timeout;
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
pub async fn expire_resolved(app: &App, now_ms: i64) -> Result<usize, StoreError> {
    let mut n = 0;
    for rec in app.store.active_silences(now_ms, 1000).await? {
        if rec.duration != Length::UntilResolved.as_str() {
            continue;
        }
        if resolved(app, &rec).await? != Some(true) {
            continue;
        }
        match expire(app, &rec, "quantwatch-alert-router", "resolved", None).await {
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

/// Run [`expire_resolved`] every `silences.check_interval` until the task is aborted.
pub async fn watch(app: Arc<App>) {
    loop {
        let every = app.live().config.silences.check_interval;
        tokio::time::sleep(every).await;
        if app.live().config.silences.alertmanager_urls.is_empty() {
            continue;
        }
        if let Err(e) = expire_resolved(&app, crate::worker::now_ms()).await {
            tracing::warn!(error = %e, "cannot check silences of resolved alerts");
        }
    }
}

/// Alertmanager's own "new silence" form prefilled with the alert's labels, from the
/// payload's `externalURL`; `None` when that is missing or not an http(s) URL. Characters
/// that end a link in chat markup are percent-encoded: the URL came from outside.
pub fn form_url(ev: &AlertEvent) -> Option<String> {
    let base = reqwest::Url::parse(ev.annotations.get(EXTERNAL_URL)?).ok()?;
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

/// `{public_url}/silence/{token}?duration=…` for each length, or the Alertmanager form.
/// Firing alerts only (a resolved alert has nothing to silence).
pub fn links(
    ev: &AlertEvent,
    lang: Language,
    public_url: Option<&str>,
    secret: Option<&str>,
    ttl_s: i64,
    configured: bool,
) -> Vec<Value> {
    if ev.status != "firing" || ev.annotations.contains_key(crate::rota::NOTICE) {
        return Vec::new();
    }
    if let (true, Some(base), Some(secret)) = (configured, public_url, secret) {
        let expires = chrono::Utc::now().timestamp().saturating_add(ttl_s);
        let token = ack::silence_token(secret, &ev.fingerprint, ev.starts_at, expires);
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

// ---- pages ----

fn refused(e: &TokenError) -> Response {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        _ => StatusCode::FORBIDDEN,
    };
    message(
        status,
        "Silence link refused",
        &format!("{e}. Nothing was silenced."),
    )
}

fn store_down(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "store unavailable");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "Cannot reach the alert store; nothing was silenced. Try again.",
    )
}

/// The firing a valid link names, or the page that says why not.
async fn firing(app: &App, token: &str) -> Result<AlertEvent, Box<Response>> {
    let live = app.live();
    let Some(secret) = &live.config.ack_secret else {
        return Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Silence links are disabled",
            "ROUTER_ACK_SECRET is not set.",
        )));
    };
    let link = ack::verify(
        secret,
        Purpose::Silence,
        token,
        crate::worker::now_ms() / 1000,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "silence link refused");
        Box::new(refused(&e))
    })?;
    if live.config.silences.alertmanager_urls.is_empty() {
        return Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Silences are not configured",
            "The router has no alertmanager_urls; silence the alert in Alertmanager.",
        )));
    }
    match app.store.current_event(&link.fingerprint).await {
        Err(e) => Err(Box::new(store_down(&e))),
        Ok(Some(ev)) if ev.status == "firing" && ev.starts_at == link.starts_at => Ok(ev),
        Ok(Some(ev)) if ev.status == "firing" => Err(Box::new(message(
            StatusCode::GONE,
            "Silence link refused",
            "This link is for an earlier firing of the alert, which fires again since. Nothing was silenced.",
        ))),
        Ok(_) => Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Alert not active",
            "This alert is resolved; there is nothing to silence.",
        ))),
    }
}

#[derive(Deserialize)]
pub struct PageQuery {
    duration: Option<String>,
}

/// `GET /silence/{token}`: the confirmation form; never silences.
pub async fn link_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let ev = match firing(&app, &token).await {
        Ok(ev) => ev,
        Err(r) => return *r,
    };
    let pick = q
        .duration
        .as_deref()
        .and_then(Length::parse)
        .unwrap_or(Length::Hour);
    let choices: Vec<Value> = Length::ALL
        .iter()
        .map(
            |l| json!({"value": l.as_str(), "label": l.label(Language::En), "checked": *l == pick}),
        )
        .collect();
    let labels: Vec<String> = ev.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    render(
        StatusCode::OK,
        "silence_link.html",
        json!({
            "title": "Silence this alert?",
            "alert": {
                "alertname": ev.alertname(),
                "severity": ev.labels.get("severity"),
                "summary": ev.annotations.get("summary"),
            },
            "labels": labels,
            "since": format_time(ev.starts_at),
            "token": path_segment(&token),
            "choices": choices,
            "alertmanagers": app.live().config.silences.alertmanager_urls.len(),
            "max_by": MAX_BY_CHARS,
        }),
    )
}

/// The form of the silence-link page.
#[derive(Deserialize)]
pub struct SilenceForm {
    by: Option<String>,
    duration: Option<String>,
}

/// `POST /silence/{token}` (form `by`, `duration`): silences the firing the link names.
pub async fn link_post(
    State(app): State<Arc<App>>,
    principal: Option<Extension<Principal>>,
    peer: Peer,
    Path(token): Path<String>,
    form: Result<axum::extract::Form<SilenceForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let ev = match firing(&app, &token).await {
        Ok(ev) => ev,
        Err(r) => return *r,
    };
    let form = match form {
        Ok(axum::extract::Form(f)) => f,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Bad request", &e.body_text()),
    };
    let principal = principal.map(|Extension(p)| p);
    let by = match acker(principal.as_ref(), form.by.as_deref()) {
        Ok(b) => b,
        Err(reason) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Bad request",
                &reason.replace("acknowledges", "silences"),
            );
        }
    };
    let Some(length) = form.duration.as_deref().and_then(Length::parse) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "\"duration\" must be 1h, 4h or resolved",
        );
    };
    match create(&app, &ev, &by, length, "link", client_address(&peer)).await {
        Ok(rec) => render(
            StatusCode::OK,
            "message.html",
            json!({
                "title": "Silenced",
                "status_link": true,
                "text": format!(
                    "{} is silenced by {by} on {} Alertmanager(s) {}.",
                    rec.alertname,
                    rec.alertmanagers.len(),
                    match length {
                        Length::UntilResolved => format!("until it resolves (at the latest {})", format_time(rec.ends_at)),
                        _ => format!("until {}", format_time(rec.ends_at)),
                    }
                ),
            }),
        ),
        Err(e) => failure(&e),
    }
}

fn failure(e: &SilenceError) -> Response {
    match e {
        SilenceError::Alertmanager(am) => {
            tracing::warn!(error = %am, "silence not made");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Alertmanager unreachable",
                &format!("{am}. Nothing was silenced; try again or silence it in Alertmanager."),
            )
        }
        SilenceError::NotConfigured => message(
            StatusCode::NOT_FOUND,
            "Silences are not configured",
            "The router has no alertmanager_urls.",
        ),
        SilenceError::Store(e) => store_down(e),
    }
}

/// Rows of the status page's "Silences" table.
pub fn status_rows(list: &[SilenceRecord]) -> Vec<Value> {
    list.iter()
        .map(|s| {
            json!({
                "id": s.id,
                "alertname": s.alertname,
                "labels": s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
                "by": s.created_by,
                "since": format_time(s.created_at),
                "until": match s.duration.as_str() {
                    "resolved" => format!("resolved (at the latest {})", format_time(s.ends_at)),
                    _ => format_time(s.ends_at),
                },
                "alertmanagers": s.alertmanagers.len(),
            })
        })
        .collect()
}

/// `GET /api/v1/silences`: the active silences the router made.
pub async fn list_api(State(app): State<Arc<App>>) -> Response {
    match app
        .store
        .active_silences(crate::worker::now_ms(), 1000)
        .await
    {
        Ok(list) => axum::Json(json!({"silences": list})).into_response(),
        Err(e) => crate::alerts::store_unavailable(&e),
    }
}

/// `POST /api/v1/silences/{id}/expire`: expire a silence the router made (the status page's
/// button posts a form; JSON callers get JSON). Records the authenticated caller.
pub async fn expire_api(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    principal: Option<Extension<Principal>>,
    peer: Peer,
    Path(id): Path<i64>,
) -> Response {
    let from_page = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let reply = |status: StatusCode, error: &str, text: String| {
        if from_page {
            message(status, "Silence", &text)
        } else {
            (status, axum::Json(json!({"error": error, "reason": text}))).into_response()
        }
    };
    let by = match principal {
        Some(Extension(p)) => p.name,
        None => return reply(StatusCode::UNAUTHORIZED, "unauthorized", "log in".into()),
    };
    let list = match app
        .store
        .active_silences(crate::worker::now_ms(), 1000)
        .await
    {
        Ok(l) => l,
        Err(e) => {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("cannot read the store: {e}"),
            );
        }
    };
    let Some(rec) = list.into_iter().find(|s| s.id == id) else {
        return reply(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no active silence {id} made by the router"),
        );
    };
    let via = if from_page { "page" } else { "api" };
    match expire(&app, &rec, &by, via, client_address(&peer)).await {
        Ok(_) if from_page => render(
            StatusCode::OK,
            "message.html",
            json!({"title": "Silence expired", "status_link": true,
                   "text": format!("The silence of {} is expired by {by}; Alertmanager notifies again.", rec.alertname)}),
        ),
        Ok(_) => axum::Json(json!({"status": "expired", "id": id, "by": by})).into_response(),
        Err(SilenceError::Alertmanager(e)) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "alertmanager_unreachable",
            format!("{e}. The silence stays active; try again."),
        ),
        Err(e) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> AlertEvent {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "Disk(Full)".to_string());
        labels.insert("path".to_string(), "say \"hi\"".to_string());
        AlertEvent {
            group_key: "g".into(),
            fingerprint: "fp1".into(),
            status: "firing".into(),
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
        e.annotations
            .insert(EXTERNAL_URL.into(), "http://am.example:9093/".into());
        let u = form_url(&e).unwrap();
        assert_eq!(
            u,
            "http://am.example:9093/#/silences/new?filter=%7Balertname%3D%22Disk%28Full%29%22%2Cpath%3D%22say%20%5C%22hi%5C%22%22%7D"
        );
        for bad in ["javascript:alert(1)", "ftp://am", "http://u:p@am/"] {
            e.annotations.insert(EXTERNAL_URL.into(), bad.into());
            assert_eq!(form_url(&e), None, "{bad}");
        }
        e.annotations
            .insert(EXTERNAL_URL.into(), "http://am/x)[y](z".into());
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
        r.status = "resolved".into();
        assert!(links(&r, Language::En, Some("https://r"), Some(secret), 60, true).is_empty());
    }

    #[test]
    fn matcher_values_are_quoted() {
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
