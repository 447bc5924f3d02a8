//! Expected signals: an alert when something that should keep arriving stops.
//!
//! Two uses, one mechanism. The **dead man's switch** listens for Alertmanager's always-firing
//! `Watchdog` alert on the webhook (per Alertmanager peer, told apart by the payload's
//! `externalURL`): when none arrives for `deadman.deadline`, Prometheus, Alertmanager or the
//! path between them and the router is down, and nothing else would page. **Heartbeat
//! monitors** are jobs that call `POST /api/v1/heartbeats/{name}` every `period`; one silent for
//! `period + grace` (inside its `window`, when it has one) is missing.
//!
//! Each signal is a row of `expected_signals` (last heard, and the alert raised while it is
//! missing). A watcher task in every replica evaluates them against the stored times, so a
//! deadline counts from the last heartbeat stored, not from process start, and survives a
//! restart. The alert it raises is an ordinary event through routing, escalation and the
//! outbox. Exactly once across replicas and restarts because the event is a pure function of
//! stored state: its startsAt is the instant the signal became missing (last heard + allowed
//! silence, or the window's opening + allowed silence), so every replica builds the same
//! (fingerprint, status, startsAt) identity and the store keeps the first copy only (the
//! unique index of migration 0004 is the claim). `signal_missing` then records it (a
//! conditional UPDATE) for the status page and for the resolve, which is raised the same way
//! once a heartbeat newer than the alert's start is stored.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Settings;
use super::routing::route_event_via;
use crate::core::language::Language;
use crate::core::metrics::Metrics;
use crate::core::model::{AlertEvent, label_fingerprint};
use crate::plan::oncall::TimeWindow;
use crate::plan::routing::RouteTree;
use crate::store::Store;
use crate::store::ingest::Ingestor;
use crate::store::{SignalRow, StoreError};

/// The alert Alertmanager always fires, by default (kube-prometheus and most rule sets).
pub const DEFAULT_ALERTNAME: &str = "Watchdog";
/// Silence tolerated from the whole monitoring pipeline by default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);
/// What the router raises: every Alertmanager is silent (a page)…
pub const PIPELINE_SILENT: &str = "MonitoringPipelineSilent";
/// …one of several is (a warning)…
pub const PEER_SILENT: &str = "AlertmanagerSilent";
/// …a heartbeat monitor missed its period.
pub const HEARTBEAT_MISSING: &str = "HeartbeatMissing";
/// Longest Alertmanager peer name kept (the payload's `externalURL`; outside input).
const MAX_PEER_CHARS: usize = 200;
/// The watcher looks at the store at least this often (windows open; heartbeats resolve).
pub const MAX_SLEEP_MS: i64 = 1000;
/// How far back an open window's opening is searched (minute by minute); a window open for
/// longer counts as always open.
const WINDOW_LOOKBACK_MS: i64 = 8 * 86_400_000;

const KEY_DEADMAN: &str = "deadman";

pub fn heartbeat_key(name: &str) -> String {
    format!("heartbeat:{name}")
}

fn peer_key(peer: &str) -> String {
    format!("deadman:{peer}")
}

/// `deadman:` as written in the file; `R` is the config's route type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDeadman<R> {
    pub alertname: Option<String>,
    pub deadline: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub route: Option<R>,
}

/// One entry of `heartbeats:` as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeartbeat<R> {
    pub name: String,
    pub period: String,
    pub grace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub route: Option<R>,
    /// A `time_windows` name: only then is silence an incident.
    pub window: Option<String>,
}

/// The dead man's switch, validated.
#[derive(Debug, Clone)]
pub struct Deadman {
    pub alertname: String,
    pub deadline: Duration,
    pub labels: BTreeMap<String, String>,
    /// Where its alerts go; `None`: the main route tree, by their labels.
    pub route: Option<RouteTree>,
}

/// A heartbeat monitor, validated.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub name: String,
    pub period: Duration,
    pub grace: Duration,
    pub labels: BTreeMap<String, String>,
    pub route: Option<RouteTree>,
    pub window: Option<String>,
}

/// Everything the router expects to keep hearing.
#[derive(Debug, Clone, Default)]
pub struct Watches {
    pub deadman: Option<Deadman>,
    pub heartbeats: Vec<Heartbeat>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn parse_duration(
    p: &mut Vec<(String, String)>,
    key: &str,
    v: &str,
    zero_ok: bool,
) -> Option<Duration> {
    match humantime::parse_duration(v) {
        Ok(d) if d.is_zero() && !zero_ok => {
            p.push((key.into(), "must be greater than zero".into()));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            p.push((
                key.into(),
                format!("{v:?} is not a duration like \"30s\" or \"5m\": {e}"),
            ));
            None
        }
    }
}

/// Label names as Prometheus allows them; `alertname` and the identifying label are the
/// router's.
fn check_labels(
    p: &mut Vec<(String, String)>,
    key: &str,
    labels: &BTreeMap<String, String>,
    reserved: &[&str],
) {
    for k in labels.keys() {
        let valid = k
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
            && !k.is_empty();
        if !valid {
            p.push((
                format!("{key}.labels"),
                format!("{k:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            ));
        } else if reserved.contains(&k.as_str()) {
            p.push((
                format!("{key}.labels.{k}"),
                "is set by the router and cannot be configured".into(),
            ));
        }
    }
}

/// Validate `deadman:` and `heartbeats:`. `window_exists` knows the `time_windows` names;
/// `route` builds a monitor's `route` (reporting its own problems under the key it is given).
/// Problems are (key, reason).
pub fn validate<R>(
    deadman: Option<&FileDeadman<R>>,
    heartbeats: &[FileHeartbeat<R>],
    window_exists: &dyn Fn(&str) -> bool,
    route: &mut dyn FnMut(&R, &str) -> RouteTree,
    p: &mut Vec<(String, String)>,
) -> Watches {
    let deadman = deadman.and_then(|d| {
        let alertname = d
            .alertname
            .clone()
            .unwrap_or_else(|| DEFAULT_ALERTNAME.into());
        if alertname.is_empty() {
            p.push(("deadman.alertname".into(), "must not be empty".into()));
        }
        let deadline = match &d.deadline {
            None => Some(DEFAULT_DEADLINE),
            Some(v) => parse_duration(p, "deadman.deadline", v, false),
        };
        check_labels(p, "deadman", &d.labels, &["alertname", "alertmanager"]);
        let route = d.route.as_ref().map(|r| route(r, "deadman.route"));
        Some(Deadman {
            alertname,
            deadline: deadline?,
            labels: d.labels.clone(),
            route,
        })
    });
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, h) in heartbeats.iter().enumerate() {
        let key = format!("heartbeats[{i}]");
        let name_ok = !h.name.is_empty()
            && h.name.len() <= 64
            && h.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            p.push((
                format!("{key}.name"),
                format!(
                    "{:?} must be 1 to 64 ASCII letters, digits, '-', '_' or '.' (it is a URL path segment)",
                    h.name
                ),
            ));
        } else if !seen.insert(h.name.clone()) {
            p.push((
                format!("{key}.name"),
                format!("heartbeat {:?} is configured twice", h.name),
            ));
        }
        let period = parse_duration(p, &format!("{key}.period"), &h.period, false);
        let grace = match &h.grace {
            None => Some(Duration::ZERO),
            Some(v) => parse_duration(p, &format!("{key}.grace"), v, true),
        };
        if let Some(w) = &h.window
            && !window_exists(w)
        {
            p.push((
                format!("{key}.window"),
                format!("no time window is named {w:?} (see time_windows)"),
            ));
        }
        check_labels(p, &key, &h.labels, &["alertname", "heartbeat"]);
        let route = h.route.as_ref().map(|r| route(r, &format!("{key}.route")));
        if let (Some(period), Some(grace), true) = (period, grace, name_ok) {
            out.push(Heartbeat {
                name: h.name.clone(),
                period,
                grace,
                labels: h.labels.clone(),
                route,
                window: h.window.clone(),
            });
        }
    }
    Watches {
        deadman,
        heartbeats: out,
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Start of the open stretch of `w` that contains `now` (windows open and close on whole local
/// minutes, so the minute boundaries are enough); `i64::MIN` when it has been open for longer
/// than the lookback.
fn open_since(w: &TimeWindow, now: i64) -> i64 {
    let mut b = now - now.rem_euclid(60_000);
    while b > now - WINDOW_LOOKBACK_MS {
        if !w.contains(utc(b - 1)) {
            return b;
        }
        b -= 60_000;
    }
    i64::MIN
}

/// The instant a signal last heard at `last_seen` became missing, when it is missing at
/// `now`: `allowed` ms of silence after it was last heard or, with a window, after the
/// window's current opening if that is later. Outside its window a signal is never missing.
/// The result depends only on stored state and the configuration (not on when it is
/// evaluated), which is what makes every replica raise the same alert.
pub fn missing_since(
    last_seen: i64,
    allowed: i64,
    window: Option<&TimeWindow>,
    now: i64,
) -> Option<i64> {
    if last_seen.saturating_add(allowed) > now {
        return None;
    }
    let base = match window {
        None => last_seen,
        Some(w) if w.contains(utc(now)) => last_seen.max(open_since(w, now)),
        Some(_) => return None,
    };
    let due = base.saturating_add(allowed);
    (due <= now).then_some(due)
}

/// One signal the watcher evaluates, with the alert its absence raises.
struct Check<'a> {
    key: String,
    allowed: i64,
    window: Option<&'a TimeWindow>,
    route: Option<&'a RouteTree>,
    /// `false`: it may resolve but not fire now (a peer while the whole pipeline is silent).
    may_fire: bool,
    labels: BTreeMap<String, String>,
    summary: String,
    description: String,
    /// The runbook the message links to (served by the router, `runbooks`).
    runbook: Option<&'static str>,
}

fn at_clock(ms: i64, tz: chrono_tz::Tz) -> String {
    let t = utc(ms);
    format!(
        "{} {}",
        crate::core::timefmt::clock(t, tz, false),
        crate::core::timefmt::zone_at(t, tz)
    )
}

fn human_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn heartbeat_check<'a>(cfg: &'a Settings, h: &'a Heartbeat, last_seen: i64) -> Check<'a> {
    let tz = cfg.timezone;
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), HEARTBEAT_MISSING.to_string()),
        ("severity".to_string(), "critical".to_string()),
    ]);
    labels.extend(h.labels.clone());
    labels.insert("heartbeat".into(), h.name.clone());
    let (since, full) = (
        at_clock(last_seen, tz),
        crate::core::timefmt::human_ms(last_seen, tz),
    );
    let window = h.window.as_deref().map(|w| match cfg.language {
        Language::Zh => format!("，时段 {w}"),
        Language::En => format!(", during {w}"),
    });
    let window = window.unwrap_or_default();
    let (summary, description) = match cfg.language {
        Language::Zh => (
            format!("心跳 {} 自 {since} 起缺失", h.name),
            format!(
                "心跳 {} 最后一次收到于 {full}；应每 {} 一次（宽限 {}{window}）。",
                h.name,
                human_duration(h.period),
                human_duration(h.grace)
            ),
        ),
        Language::En => (
            format!("heartbeat {} missing since {since}", h.name),
            format!(
                "Heartbeat {} was last heard at {full}; it is expected every {} (grace {}{window}).",
                h.name,
                human_duration(h.period),
                human_duration(h.grace)
            ),
        ),
    };
    Check {
        key: heartbeat_key(&h.name),
        allowed: ms(h.period).saturating_add(ms(h.grace)),
        window: h
            .window
            .as_deref()
            .and_then(|w| cfg.directory.windows.get(w)),
        route: h.route.as_ref(),
        may_fire: true,
        labels,
        summary,
        description,
        runbook: None,
    }
}

fn deadman_check<'a>(
    cfg: &'a Settings,
    d: &'a Deadman,
    peer: Option<&str>,
    last_seen: i64,
) -> Check<'a> {
    let tz = cfg.timezone;
    let mut labels = BTreeMap::from([
        (
            "alertname".to_string(),
            if peer.is_some() {
                PEER_SILENT
            } else {
                PIPELINE_SILENT
            }
            .to_string(),
        ),
        ("severity".to_string(), "critical".to_string()),
    ]);
    labels.extend(d.labels.clone());
    if let Some(peer) = peer {
        // One silent peer of several is a warning: the others still deliver.
        labels.insert("severity".into(), "warning".into());
        labels.insert("alertmanager".into(), peer.to_string());
    }
    let (since, full) = (
        at_clock(last_seen, tz),
        crate::core::timefmt::human_ms(last_seen, tz),
    );
    let deadline = human_duration(d.deadline);
    let name = &d.alertname;
    let (summary, description) = match (cfg.language, peer) {
        (Language::Zh, None) => (
            format!("监控链路自 {since} 起静默"),
            format!(
                "自 {full} 起没有任何 Alertmanager 送来 {name}（期限 {deadline}）：Prometheus、Alertmanager 或它们到路由器的网络出了故障，告警无法送达。"
            ),
        ),
        (Language::Zh, Some(peer)) => (
            format!("Alertmanager {peer} 自 {since} 起静默"),
            format!(
                "自 {full} 起 Alertmanager {peer} 没有送来 {name}（期限 {deadline}）；其他实例仍在送达。"
            ),
        ),
        (Language::En, None) => (
            format!("the monitoring pipeline is silent since {since}"),
            format!(
                "No {name} alert from any Alertmanager since {full} (deadline {deadline}): Prometheus, Alertmanager or the network to the router is down, and alerts are not reaching you."
            ),
        ),
        (Language::En, Some(peer)) => (
            format!("Alertmanager {peer} is silent since {since}"),
            format!(
                "No {name} alert from Alertmanager {peer} since {full} (deadline {deadline}); the other Alertmanagers still deliver."
            ),
        ),
    };
    Check {
        key: peer.map_or_else(|| KEY_DEADMAN.to_string(), peer_key),
        allowed: ms(d.deadline),
        window: None,
        route: d.route.as_ref(),
        may_fire: true,
        labels,
        summary,
        description,
        // Its first checks are the Watchdog's: what carries the Watchdog is what went quiet.
        runbook: Some("/runbooks/Watchdog"),
    }
}

/// The checks of the configuration over the stored rows (rows must exist for every
/// configured signal).
fn checks<'a>(cfg: &'a Settings, rows: &HashMap<&str, &SignalRow>, now: i64) -> Vec<Check<'a>> {
    let mut out = Vec::new();
    for h in &cfg.watch.heartbeats {
        if let Some(r) = rows.get(heartbeat_key(&h.name).as_str()) {
            out.push(heartbeat_check(cfg, h, r.last_seen));
        }
    }
    if let Some(d) = &cfg.watch.deadman {
        let Some(any) = rows.get(KEY_DEADMAN) else {
            return out;
        };
        let all = deadman_check(cfg, d, None, any.last_seen);
        let pipeline_silent = any.missing_since.is_some()
            || missing_since(any.last_seen, all.allowed, None, now).is_some();
        out.push(all);
        let peers: Vec<&&SignalRow> = rows
            .iter()
            .filter(|(k, _)| k.starts_with("deadman:"))
            .map(|(_, r)| r)
            .collect();
        for r in &peers {
            let peer = &r.name["deadman:".len()..];
            let mut c = deadman_check(cfg, d, Some(peer), r.last_seen);
            // With one Alertmanager its silence is the pipeline's; with several, a peer is
            // worth a warning only while the others still deliver.
            c.may_fire = peers.len() >= 2 && !pipeline_silent;
            out.push(c);
        }
    }
    out
}

fn raised(c: &Check<'_>, since: i64) -> AlertEvent {
    AlertEvent {
        group_key: format!("quantwatch-alert-router/{}", c.key),
        fingerprint: label_fingerprint(&c.labels),
        status: crate::core::model::Status::Firing,
        labels: c.labels.clone(),
        annotations: [
            ("summary", Some(c.summary.clone())),
            ("description", Some(c.description.clone())),
            ("runbook_url", c.runbook.map(str::to_string)),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect(),
        starts_at: since,
        ends_at: None,
        generator_url: None,
        receiver: Some("quantwatch-alert-router".into()),
    }
}

enum Change {
    Missing {
        key: String,
        since: i64,
        alert: String,
    },
    Back {
        key: String,
        since: i64,
    },
}

/// One evaluation: raise the alerts of signals that became missing, resolve those heard
/// again. Returns when to look next.
pub async fn tick(
    cfg: &Settings,
    store: &dyn Store,
    ingest: &Ingestor,
    metrics: &Metrics,
    now: i64,
) -> Result<i64, String> {
    let store_err = |e: StoreError| e.to_string();
    let mut expected: Vec<String> = cfg
        .watch
        .heartbeats
        .iter()
        .map(|h| heartbeat_key(&h.name))
        .collect();
    if cfg.watch.deadman.is_some() {
        expected.push(KEY_DEADMAN.into());
    }
    if expected.is_empty() {
        return Ok(now + MAX_SLEEP_MS);
    }
    let mut rows = store.signals().await.map_err(store_err)?;
    let absent: Vec<String> = expected
        .iter()
        .filter(|k| !rows.iter().any(|r| &r.name == *k))
        .cloned()
        .collect();
    if !absent.is_empty() {
        store
            .expect_signals(&absent, now)
            .await
            .map_err(store_err)?;
        // Read back: another replica may have started expecting them first, and every
        // replica must count from the same instant.
        rows = store.signals().await.map_err(store_err)?;
    }
    let by_name: HashMap<&str, &SignalRow> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
    for h in &cfg.watch.heartbeats {
        if let Some(r) = by_name.get(heartbeat_key(&h.name).as_str()) {
            metrics
                .heartbeat_last_seen
                .with_label_values(&[&h.name])
                .set(r.last_seen as f64 / 1000.0);
        }
    }
    let mut next = now + MAX_SLEEP_MS;
    let mut routed = Vec::new();
    let mut changes = Vec::new();
    for c in checks(cfg, &by_name, now) {
        let Some(row) = by_name.get(c.key.as_str()) else {
            continue;
        };
        let routes = c.route.unwrap_or(&cfg.routes);
        match row.missing_since {
            Some(since) if row.last_seen >= since => {
                // Heard again after the alert began: resolve the alert as it was raised (its
                // labels, hence its fingerprint, survive a config change meanwhile).
                let mut ev = row
                    .alert
                    .as_deref()
                    .and_then(|a| serde_json::from_str::<AlertEvent>(a).ok())
                    .unwrap_or_else(|| raised(&c, since));
                ev.status = crate::core::model::Status::Resolved;
                ev.ends_at = Some(row.last_seen);
                tracing::info!(signal = %c.key, since, "expected signal heard again; resolving its alert");
                routed.push(route_event_via(cfg, routes, ev, now));
                changes.push(Change::Back { key: c.key, since });
            }
            Some(_) => {}
            None if c.may_fire => match missing_since(row.last_seen, c.allowed, c.window, now) {
                Some(since) => {
                    let ev = raised(&c, since);
                    let alert = serde_json::to_string(&ev).map_err(|e| e.to_string())?;
                    tracing::warn!(signal = %c.key, since, "expected signal missing; raising an alert");
                    routed.push(route_event_via(cfg, routes, ev, now));
                    changes.push(Change::Missing {
                        key: c.key,
                        since,
                        alert,
                    });
                }
                None if c.window.is_none() => {
                    next = next.min(row.last_seen.saturating_add(c.allowed));
                }
                None => {}
            },
            None => {}
        }
    }
    if routed.is_empty() {
        return Ok(next);
    }
    // Through the intake's group commit: the same dedup, and the workers are woken.
    ingest.ingest(routed).await?;
    for ch in changes {
        let done = match ch {
            Change::Missing { key, since, alert } => {
                store.signal_missing(&key, since, &alert).await
            }
            Change::Back { key, since } => store.signal_back(&key, since).await,
        };
        done.map_err(store_err)?;
    }
    Ok(next)
}

/// The Alertmanager an event came from: the payload's `externalURL`, which intake keeps on
/// every event (`silence::EXTERNAL_URL`), cut to a bounded length.
fn peer_of(event: &AlertEvent) -> String {
    let url = event
        .annotations
        .get(crate::core::annotations::EXTERNAL_URL)
        .map(|u| u.trim())
        .filter(|u| !u.is_empty());
    match url {
        Some(u) => u.chars().take(MAX_PEER_CHARS).collect(),
        None => "unknown".into(),
    }
}

/// Take the dead man's switch out of a webhook's events: a firing `deadman.alertname` is a
/// heartbeat of the pipeline and of the Alertmanager that sent it, stored before the webhook
/// is answered; it is never routed (it always fires). Without `deadman` configured nothing is
/// taken. Returns the events to route, and whether a heartbeat was heard (the watcher then
/// looks at once rather than at its next scheduled look).
pub async fn take_watchdog(
    cfg: &Settings,
    store: &dyn Store,
    events: Vec<AlertEvent>,
    now: i64,
) -> Result<(Vec<AlertEvent>, bool), StoreError> {
    let Some(d) = &cfg.watch.deadman else {
        return Ok((events, false));
    };
    let (watchdog, rest): (Vec<AlertEvent>, Vec<AlertEvent>) = events
        .into_iter()
        .partition(|e| e.alertname() == d.alertname);
    if let Some(e) = watchdog
        .iter()
        .find(|e| e.status == crate::core::model::Status::Firing)
    {
        let names = [KEY_DEADMAN.to_string(), peer_key(&peer_of(e))];
        store.signals_heard(&names, now).await?;
        return Ok((rest, true));
    }
    Ok((rest, false))
}

/// A heartbeat monitor as the API and the status page show it.
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatView {
    pub name: String,
    /// RFC 3339 in the configured zone. For a monitor never heard: when the router started
    /// expecting it.
    pub last_seen: String,
    /// `ok`, `missing` (its alert fires) or `outside_window`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_since: Option<String>,
    pub period_seconds: f64,
    pub grace_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `last_seen` for people (`2026-11-30 09:31:02 CST`).
    #[serde(skip)]
    pub last_seen_human: String,
}

/// The dead man's switch as the API and the status page show it: `*` is any Alertmanager.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub alertmanager: String,
    pub last_seen: String,
    /// `ok` or `missing`.
    pub status: &'static str,
    #[serde(skip)]
    pub last_seen_human: String,
}

/// The alert's start while the signal is missing; `None` once heard again (its resolve may
/// still be on its way).
fn still_missing(r: &SignalRow) -> Option<i64> {
    r.missing_since.filter(|s| r.last_seen < *s)
}

/// Heartbeat monitors and the dead man's switch peers, from the store.
pub async fn views(
    cfg: &Settings,
    store: &dyn Store,
    now: i64,
) -> Result<(Vec<HeartbeatView>, Vec<PeerView>), StoreError> {
    let tz = cfg.timezone;
    let rows = store.signals().await?;
    let by_name: HashMap<&str, &SignalRow> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
    let rfc = |ms: i64| crate::core::timefmt::rfc3339(utc(ms), tz);
    let heartbeats = cfg
        .watch
        .heartbeats
        .iter()
        .map(|h| {
            let row = by_name.get(heartbeat_key(&h.name).as_str());
            let last = row.map(|r| r.last_seen);
            let missing = row.and_then(|r| still_missing(r));
            let closed = h
                .window
                .as_deref()
                .and_then(|w| cfg.directory.windows.get(w))
                .is_some_and(|w| !w.contains(utc(now)));
            HeartbeatView {
                name: h.name.clone(),
                last_seen: last.map(rfc).unwrap_or_default(),
                status: if missing.is_some() {
                    "missing"
                } else if closed {
                    "outside_window"
                } else {
                    "ok"
                },
                missing_since: missing.map(rfc),
                period_seconds: h.period.as_secs_f64(),
                grace_seconds: h.grace.as_secs_f64(),
                window: h.window.clone(),
                last_seen_human: last
                    .map(|t| crate::core::timefmt::human_ms(t, tz))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let peers = if cfg.watch.deadman.is_some() {
        rows.iter()
            .filter_map(|r| {
                let peer = if r.name == KEY_DEADMAN {
                    "*"
                } else {
                    r.name.strip_prefix("deadman:")?
                };
                Some(PeerView {
                    alertmanager: peer.to_string(),
                    last_seen: rfc(r.last_seen),
                    status: if still_missing(r).is_some() {
                        "missing"
                    } else {
                        "ok"
                    },
                    last_seen_human: crate::core::timefmt::human_ms(r.last_seen, tz),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok((heartbeats, peers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Weekday};

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .timestamp_millis()
    }

    /// Trading session 09:30-11:30 and 13:00-15:00 Asia/Shanghai, Monday to Friday.
    fn session() -> TimeWindow {
        let t = |s| NaiveTime::parse_from_str(s, "%H:%M").expect("time");
        TimeWindow {
            tz: chrono_tz::Asia::Shanghai,
            weekdays: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            ranges: vec![(t("09:30"), t("11:30")), (t("13:00"), t("15:00"))],
        }
    }

    #[test]
    fn without_a_window_missing_after_exactly_the_allowed_silence() {
        let last = at("2026-11-30T03:02:00Z");
        let allowed = 90_000;
        assert_eq!(missing_since(last, allowed, None, last + allowed - 1), None);
        assert_eq!(
            missing_since(last, allowed, None, last + allowed),
            Some(last + allowed)
        );
        // Evaluated later (a restart, another replica): the same instant.
        assert_eq!(
            missing_since(last, allowed, None, last + 3_600_000),
            Some(last + allowed)
        );
    }

    #[test]
    fn a_window_counts_from_its_opening_and_is_silent_outside() {
        let w = session();
        let allowed = 60_000;
        // Last heard Friday 15:00 CST; the feed stops with the session.
        let last = at("2026-11-27T15:00:00+08:00");
        // Friday evening, the weekend, Monday before the open: silent is fine.
        for now in [
            "2026-11-27T18:00:00+08:00",
            "2026-11-29T10:00:00+08:00",
            "2026-11-30T09:29:59+08:00",
        ] {
            assert_eq!(
                missing_since(last, allowed, Some(&w), at(now)),
                None,
                "{now}"
            );
        }
        // Monday 09:30 it opens: one minute of silence allowed from the opening.
        assert_eq!(
            missing_since(last, allowed, Some(&w), at("2026-11-30T09:30:59+08:00")),
            None
        );
        let due = at("2026-11-30T09:31:00+08:00");
        for now in ["2026-11-30T09:31:00+08:00", "2026-11-30T11:00:00+08:00"] {
            assert_eq!(
                missing_since(last, allowed, Some(&w), at(now)),
                Some(due),
                "{now}"
            );
        }
        // Lunch break: outside the window again.
        assert_eq!(
            missing_since(last, allowed, Some(&w), at("2026-11-30T12:00:00+08:00")),
            None
        );
        // The afternoon session opens 13:00: counted from that opening.
        assert_eq!(
            missing_since(last, allowed, Some(&w), at("2026-11-30T13:05:00+08:00")),
            Some(at("2026-11-30T13:01:00+08:00"))
        );
        // Heard inside the window: counts from then.
        let heard = at("2026-11-30T10:00:30+08:00");
        assert_eq!(
            missing_since(heard, allowed, Some(&w), at("2026-11-30T10:01:29+08:00")),
            None
        );
        assert_eq!(
            missing_since(heard, allowed, Some(&w), at("2026-11-30T10:01:30+08:00")),
            Some(at("2026-11-30T10:01:30+08:00"))
        );
    }

    fn route(_: &(), _: &str) -> RouteTree {
        RouteTree {
            matchers: vec![],
            channels: vec![],
            continue_: false,
            escalation: None,
            escalation_during: vec![],
            routes: vec![],
            context: None,
        }
    }

    #[test]
    fn problems_name_the_key_and_the_reason() {
        let hb =
            |name: &str, period: &str, grace: Option<&str>, window: Option<&str>| FileHeartbeat::<
                (),
            > {
                name: name.into(),
                period: period.into(),
                grace: grace.map(Into::into),
                labels: BTreeMap::from([("alertname".to_string(), "x".to_string())]),
                route: None,
                window: window.map(Into::into),
            };
        let dm = FileDeadman::<()> {
            alertname: None,
            deadline: Some("soon".into()),
            labels: BTreeMap::from([("bad-name".to_string(), "x".to_string())]),
            route: None,
        };
        let mut p = Vec::new();
        let w = validate(
            Some(&dm),
            &[
                hb("feed", "1m", Some("0s"), Some("session")),
                hb("feed", "0s", None, None),
                hb("a/b", "1m", Some("x"), Some("nope")),
            ],
            &|w| w == "session",
            &mut route,
            &mut p,
        );
        let keys: Vec<(&str, &str)> = p.iter().map(|(k, r)| (k.as_str(), r.as_str())).collect();
        assert_eq!(
            keys,
            vec![
                (
                    "deadman.deadline",
                    "\"soon\" is not a duration like \"30s\" or \"5m\": expected number at 0"
                ),
                (
                    "deadman.labels",
                    "\"bad-name\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                ),
                (
                    "heartbeats[0].labels.alertname",
                    "is set by the router and cannot be configured"
                ),
                (
                    "heartbeats[1].name",
                    "heartbeat \"feed\" is configured twice"
                ),
                ("heartbeats[1].period", "must be greater than zero"),
                (
                    "heartbeats[1].labels.alertname",
                    "is set by the router and cannot be configured"
                ),
                (
                    "heartbeats[2].name",
                    "\"a/b\" must be 1 to 64 ASCII letters, digits, '-', '_' or '.' (it is a URL path segment)"
                ),
                (
                    "heartbeats[2].grace",
                    "\"x\" is not a duration like \"30s\" or \"5m\": expected number at 0"
                ),
                (
                    "heartbeats[2].window",
                    "no time window is named \"nope\" (see time_windows)"
                ),
                (
                    "heartbeats[2].labels.alertname",
                    "is set by the router and cannot be configured"
                ),
            ]
        );
        assert!(w.deadman.is_none());
        assert_eq!(w.heartbeats.len(), 1);
        assert_eq!(w.heartbeats[0].grace, Duration::ZERO);
    }

    #[test]
    fn the_peer_is_the_payloads_external_url_bounded() {
        // Through intake's parser, as the webhook takes it.
        let peer = |payload: &str| {
            let events = crate::core::model::parse_payload(payload.as_bytes()).expect("payload");
            peer_of(&events[0])
        };
        let alert = r#""alerts":[{"status":"firing","labels":{"alertname":"Watchdog"},"startsAt":"2026-11-30T00:00:00Z"}]"#;
        assert_eq!(
            peer(&format!(r#"{{"externalURL":"http://am-1:9093",{alert}}}"#)),
            "http://am-1:9093"
        );
        assert_eq!(peer(&format!("{{{alert}}}")), "unknown");
        let long = format!(r#"{{"externalURL":"{}",{alert}}}"#, "é".repeat(500));
        assert_eq!(peer(&long).chars().count(), MAX_PEER_CHARS);
    }
}
