//! Rota health: who is told what about the on-call rota, so a gap or a forgotten alert is
//! found before a page reaches nobody.
//! - **Handoff announcements**: when a rotation's on-call person changes (a shift starts, an
//!   override begins or ends), `rota.announce_channels` hear "from 09:00 Asia/Shanghai the
//!   primary on-call is 张三", mentioning the new person where they have a contact.
//! - **Gap warnings**: a stretch within `rota.gap_lookahead` (default a day) where a rotation
//!   has nobody (no person, or one without any contact) is warned about once per gap.
//! - **Ack reminders**: an alert acknowledged but still firing `rota.ack_reminder` later is
//!   notified again to whoever acknowledged it, once per period.
//!
//! Everything is a pure function of an instant ([`tick`] takes `now`), so tests drive it with
//! any clock. Each notice is claimed in the store under a key naming what it is about
//! (`Store::enqueue_once`) in the same transaction as its outbox rows: a restarted router or a
//! second replica never sends one twice, and delivery retries like any notification.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use super::Settings;
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::core::settings::Problem;
use crate::plan::oncall::{Period, Rotation};
use crate::store::{Notice, Store, StoreError};

/// A handoff is still announced this long after it happened (a router that was down at the
/// handoff announces it late rather than never; older ones are history).
pub const ANNOUNCE_LATE: Duration = Duration::from_secs(3600);

/// The `rota` section as written in the file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileRota {
    /// Channels that hear handoffs and gap warnings (none: both off).
    #[serde(default)]
    pub announce_channels: Vec<String>,
    /// How far ahead to look for stretches nobody covers (default 24h).
    pub gap_lookahead: Option<String>,
    /// Remind whoever acknowledged an alert still firing this long after the ack, and again
    /// every such period (default: off).
    pub ack_reminder: Option<String>,
    /// How often the rota is checked (default 30s).
    pub check_interval: Option<String>,
}

/// The `rota` section, validated.
#[derive(Debug, Clone)]
pub struct RotaSettings {
    pub announce_channels: Vec<String>,
    pub gap_lookahead: Duration,
    pub ack_reminder: Option<Duration>,
    pub check_interval: Duration,
}

impl Default for RotaSettings {
    fn default() -> Self {
        RotaSettings {
            announce_channels: Vec::new(),
            gap_lookahead: Duration::from_secs(24 * 3600),
            ack_reminder: None,
            check_interval: Duration::from_secs(30),
        }
    }
}

pub fn validate(
    f: FileRota,
    channels: &std::collections::BTreeSet<String>,
    file: &str,
    p: &mut Vec<Problem>,
) -> RotaSettings {
    let d = RotaSettings::default();
    for (i, c) in f.announce_channels.iter().enumerate() {
        if !channels.contains(c) {
            p.push(Problem {
                file: file.into(),
                key: format!("rota.announce_channels[{i}]"),
                reason: format!("no channel is named {c:?}"),
            });
        }
    }
    let dur = |p: &mut Vec<Problem>, k: &str, v: Option<&str>, def: Duration| {
        crate::core::settings::duration(p, file, &format!("rota.{k}"), v, def)
    };
    RotaSettings {
        announce_channels: f.announce_channels,
        gap_lookahead: dur(
            p,
            "gap_lookahead",
            f.gap_lookahead.as_deref(),
            d.gap_lookahead,
        ),
        ack_reminder: f
            .ack_reminder
            .as_deref()
            .map(|v| dur(p, "ack_reminder", Some(v), Duration::from_secs(3600))),
        check_interval: dur(
            p,
            "check_interval",
            f.check_interval.as_deref(),
            d.check_interval,
        ),
    }
}

/// A local wall-clock instant as UTC; a time skipped by a DST change becomes the first
/// instant after the gap (when the shift actually starts by `Rotation::on_call`'s rule).
fn instant(rot: &Rotation, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=180).find_map(|m| {
        rot.tz
            .from_local_datetime(&(local + chrono::Duration::minutes(m)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// Instants in `(from, to]` where the rotation's on-call person may change: shift starts and
/// override edges, sorted.
pub fn boundaries(rot: &Rotation, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let first = from.with_timezone(&rot.tz).date_naive() - chrono::Duration::days(1);
    let last = to.with_timezone(&rot.tz).date_naive() + chrono::Duration::days(1);
    let mut day = first;
    while day <= last {
        let shift = match rot.period {
            Period::Daily => true,
            Period::Weekly => (day - rot.start).num_days().rem_euclid(7) == 0,
        };
        if shift && let Some(t) = instant(rot, day.and_time(rot.handoff)) {
            out.push(t);
        }
        day += chrono::Duration::days(1);
    }
    for o in &rot.overrides {
        out.extend(instant(rot, o.from));
        out.extend(instant(rot, o.until));
    }
    out.retain(|t| *t > from && *t <= to);
    out.sort();
    out.dedup();
    out
}

fn before(t: DateTime<Utc>) -> DateTime<Utc> {
    t - chrono::Duration::milliseconds(1)
}

/// The latest handoff in `(now - within, now]`: when, and who takes over (a change of person;
/// `None` = nobody from then on).
pub fn last_handoff(
    rot: &Rotation,
    now: DateTime<Utc>,
    within: Duration,
) -> Option<(DateTime<Utc>, Option<String>)> {
    let from = now - chrono::Duration::from_std(within).unwrap_or_default();
    boundaries(rot, from, now)
        .into_iter()
        .rev()
        .find(|&b| rot.on_call(b) != rot.on_call(before(b)))
        .map(|b| (b, rot.on_call(b).map(String::from)))
}

/// Stretches `[start, end)` where nobody reachable is on call, that overlap
/// `[now, now + ahead)`; `start` is the gap's true start (before `now` for a gap already
/// running), so the same gap has the same identity at every check (`DateTime::MIN_UTC` for
/// one older than the 15 days looked back), and `end` its true end (at most 15 days past the
/// window).
pub fn gaps(
    rot: &Rotation,
    people: &BTreeMap<String, BTreeMap<String, String>>,
    now: DateTime<Utc>,
    ahead: Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let covered = |t: DateTime<Utc>| {
        rot.on_call(t)
            .is_some_and(|p| people.get(p).is_some_and(|c| !c.is_empty()))
    };
    let end = now + chrono::Duration::from_std(ahead).unwrap_or_default();
    // Back far enough to find where a running gap began (weekly shifts, long overrides).
    let back = now - chrono::Duration::days(15);
    // Forward past the window too, so a gap that starts in it is reported with its true end.
    let horizon = end + chrono::Duration::days(15);
    let mut edges = vec![back];
    edges.extend(boundaries(rot, back, horizon));
    edges.push(horizon);
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for w in edges.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a == b || covered(a) {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => out.push((a, b)),
        }
    }
    out.retain(|(a, b)| *b > now && *a < end);
    // A gap older than the look-back has no known start: one identity for it.
    for g in &mut out {
        if g.0 == back {
            g.0 = DateTime::<Utc>::MIN_UTC;
        }
    }
    out
}

fn notice_event(
    kind: &str,
    fingerprint: String,
    labels: &[(&str, &str)],
    summary: String,
    at: DateTime<Utc>,
) -> AlertEvent {
    let mut ann = BTreeMap::new();
    ann.insert("summary".to_string(), summary);
    ann.insert(
        crate::core::annotations::NOTICE.to_string(),
        kind.to_string(),
    );
    AlertEvent {
        group_key: "quantwatch-rota".into(),
        fingerprint,
        status: crate::core::model::Status::Firing,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: ann,
        starts_at: at.timestamp_millis(),
        ends_at: None,
        generator_url: None,
        receiver: None,
    }
}

/// "from 09:00 Asia/Shanghai the primary on-call is 张三" in the router's language.
pub fn handoff_text(
    lang: Language,
    rotation: &str,
    rot: &Rotation,
    at: DateTime<Utc>,
    who: Option<&str>,
) -> String {
    let clock = crate::core::timefmt::clock(at, rot.tz, false);
    let zone = rot.tz.name();
    match (lang, who) {
        (Language::En, Some(p)) => format!("from {clock} {zone} the {rotation} on-call is {p}"),
        (Language::En, None) => format!("from {clock} {zone} nobody is on call in {rotation}"),
        (Language::Zh, Some(p)) => format!("自 {clock} {zone} 起，{rotation} 值班人为 {p}"),
        (Language::Zh, None) => format!("自 {clock} {zone} 起，{rotation} 无人值班"),
    }
}

fn gap_text(
    lang: Language,
    rotation: &str,
    rot: &Rotation,
    a: DateTime<Utc>,
    b: DateTime<Utc>,
) -> String {
    let a = if a == DateTime::<Utc>::MIN_UTC {
        match lang {
            Language::En => "now".to_string(),
            Language::Zh => "现在".to_string(),
        }
    } else {
        crate::core::timefmt::human(a, rot.tz)
    };
    let (a, b) = (a, crate::core::timefmt::human(b, rot.tz));
    match lang {
        Language::En => format!("nobody is on call in {rotation} from {a} until {b}"),
        Language::Zh => format!("{rotation} 在 {a} 至 {b} 期间无人值班"),
    }
}

/// What one [`tick`] queued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub handoffs: usize,
    pub gaps: usize,
    pub reminders: usize,
}

fn contact_mentions(cfg: &Settings, person: Option<&str>, channel: &str) -> Vec<String> {
    person
        .and_then(|p| cfg.directory.people.get(p))
        .and_then(|c| c.get(channel))
        .cloned()
        .into_iter()
        .collect()
}

async fn queue(
    store: &dyn Store,
    key: &str,
    ev: &AlertEvent,
    targets: Vec<(String, Vec<String>)>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    if targets.is_empty() {
        return Ok(false);
    }
    let payload = serde_json::to_string(ev)?;
    let notices: Vec<Notice> = targets
        .into_iter()
        .map(|(channel, mentions)| Notice {
            fingerprint: ev.fingerprint.clone(),
            channel,
            payload: payload.clone(),
            mentions,
        })
        .collect();
    store.enqueue_once(key, &notices, now_ms).await
}

/// Check the rota at `now`: queue due handoff announcements, gap warnings and ack reminders
/// (each once, whatever the number of replicas and restarts). Returns what this call queued.
pub async fn tick(
    store: &dyn Store,
    cfg: &Settings,
    now: DateTime<Utc>,
) -> Result<TickReport, StoreError> {
    let mut rep = TickReport::default();
    let now_ms = now.timestamp_millis();
    let r = &cfg.rota;
    if !r.announce_channels.is_empty() {
        for (name, rot) in &cfg.directory.rotations {
            if let Some((at, who)) = last_handoff(rot, now, ANNOUNCE_LATE) {
                let ev = notice_event(
                    "handoff",
                    format!("rota:{name}"),
                    &[
                        ("alertname", "OnCallHandoff"),
                        ("severity", "info"),
                        ("rotation", name),
                    ],
                    handoff_text(cfg.language, name, rot, at, who.as_deref()),
                    at,
                );
                let targets = r
                    .announce_channels
                    .iter()
                    .map(|c| (c.clone(), contact_mentions(cfg, who.as_deref(), c)))
                    .collect();
                let key = format!("handoff:{name}:{}", at.timestamp_millis());
                if queue(store, &key, &ev, targets, now_ms).await? {
                    rep.handoffs += 1;
                    tracing::info!(rotation = %name, person = ?who, "on-call handoff announced");
                }
            }
            for (a, b) in gaps(rot, &cfg.directory.people, now, r.gap_lookahead) {
                let ev = notice_event(
                    "gap",
                    format!("rota-gap:{name}"),
                    &[
                        ("alertname", "OnCallGap"),
                        ("severity", "warning"),
                        ("rotation", name),
                    ],
                    gap_text(cfg.language, name, rot, a, b),
                    now,
                );
                let targets = r
                    .announce_channels
                    .iter()
                    .map(|c| (c.clone(), Vec::new()))
                    .collect();
                let key = format!("gap:{name}:{}", a.timestamp_millis());
                if queue(store, &key, &ev, targets, now_ms).await? {
                    rep.gaps += 1;
                    tracing::warn!(rotation = %name, from = %a, until = %b, "gap in the on-call rota warned");
                }
            }
        }
    }
    if let Some(period) = r.ack_reminder {
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
        for view in store.list_alerts().await? {
            let (Some(by), Some(acked_at)) = (view.acked_by.as_deref(), view.acked_at) else {
                continue;
            };
            let k = (now_ms - acked_at) / period_ms;
            if k < 1 {
                continue;
            }
            let Some(mut ev) = store.current_event(&view.fingerprint).await? else {
                continue;
            };
            if ev.status != crate::core::model::Status::Firing || ev.starts_at != view.starts_at {
                continue;
            }
            // To the acknowledger where they have contacts, else where the chain notified.
            let mut targets: Vec<(String, Vec<String>)> = cfg
                .directory
                .people
                .get(by)
                .map(|c| {
                    c.iter()
                        .filter(|(ch, _)| cfg.channels.iter().any(|x| x == *ch))
                        .map(|(ch, contact)| (ch.clone(), vec![contact.clone()]))
                        .collect()
                })
                .unwrap_or_default();
            if targets.is_empty() {
                for n in &view.notified {
                    if !targets.iter().any(|(c, _)| c == &n.channel) {
                        targets.push((n.channel.clone(), Vec::new()));
                    }
                }
            }
            ev.annotations
                .insert(crate::core::annotations::REMINDER.into(), by.to_string());
            ev.annotations.insert(
                crate::core::annotations::ACKED_AT.into(),
                acked_at.to_string(),
            );
            let key = format!("ackrem:{}:{}:{k}", view.fingerprint, view.starts_at);
            if queue(store, &key, &ev, targets, now_ms).await? {
                rep.reminders += 1;
                tracing::info!(fingerprint = %view.fingerprint, by, period = k, "ack reminder queued");
            }
        }
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::oncall::{Override, parse_tz};
    use chrono::{NaiveDate, NaiveTime};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ny_daily(people: &[&str]) -> Rotation {
        Rotation {
            tz: parse_tz("America/New_York").unwrap(),
            period: Period::Daily,
            handoff: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            start: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            people: people.iter().map(|s| s.to_string()).collect(),
            overrides: vec![],
        }
    }

    #[test]
    fn handoffs_keep_local_time_across_dst() {
        let r = ny_daily(&["ann", "bo"]);
        // 09:00 EST = 14:00 UTC on Saturday 03-07; 09:00 EDT = 13:00 UTC on Sunday 03-08.
        let b = boundaries(&r, utc("2026-03-07T00:00:00Z"), utc("2026-03-09T00:00:00Z"));
        assert_eq!(
            b,
            vec![utc("2026-03-07T14:00:00Z"), utc("2026-03-08T13:00:00Z")]
        );
        assert_eq!(
            last_handoff(&r, utc("2026-03-08T13:00:30Z"), Duration::from_secs(3600)),
            Some((utc("2026-03-08T13:00:00Z"), Some("ann".into())))
        );
        assert_eq!(
            last_handoff(&r, utc("2026-03-08T12:59:59Z"), Duration::from_secs(3600)),
            None,
            "an hour after Saturday's handoff it is no longer announced"
        );
        assert_eq!(
            handoff_text(
                Language::En,
                "primary",
                &r,
                utc("2026-03-08T13:00:00Z"),
                Some("bo")
            ),
            "from 09:00 America/New_York the primary on-call is bo"
        );
    }

    #[test]
    fn a_handoff_at_a_skipped_local_time_starts_after_the_gap() {
        let mut r = ny_daily(&["ann", "bo"]);
        r.handoff = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        // 2026-03-08 02:30 does not exist in New York; 03:00 EDT = 07:00 UTC.
        let b = boundaries(&r, utc("2026-03-08T00:00:00Z"), utc("2026-03-08T12:00:00Z"));
        assert_eq!(b, vec![utc("2026-03-08T07:00:00Z")]);
        assert_eq!(r.on_call(b[0]), r.on_call(utc("2026-03-08T08:00:00Z")));
        assert_ne!(r.on_call(b[0]), r.on_call(before(b[0])));
    }

    #[test]
    fn gaps_have_a_stable_start() {
        let mut r = ny_daily(&[]);
        let local = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        r.overrides = vec![
            Override {
                from: local("2026-03-10 09:00"),
                until: local("2026-03-11 09:00"),
                person: "ann".into(),
            },
            Override {
                from: local("2026-03-12 09:00"),
                until: local("2026-03-13 09:00"),
                person: "bo".into(),
            },
        ];
        let mut people = BTreeMap::new();
        people.insert(
            "ann".to_string(),
            BTreeMap::from([("ding".to_string(), "139".to_string())]),
        );
        // bo has no contact anywhere: covering with bo reaches nobody.
        people.insert("bo".to_string(), BTreeMap::new());
        let day = Duration::from_secs(24 * 3600);
        // 2026-03-10 12:00 EDT: ann until 03-11 09:00 EDT (13:00 UTC), then nobody.
        let g = gaps(&r, &people, utc("2026-03-10T16:00:00Z"), day);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].0, utc("2026-03-11T13:00:00Z"));
        // A later check inside the gap names the same start.
        let g2 = gaps(&r, &people, utc("2026-03-11T20:00:00Z"), day);
        assert_eq!(g2[0].0, utc("2026-03-11T13:00:00Z"));
        // bo (no contact) and then nobody at all: the gap runs to the end of what is looked at.
        assert_eq!(g2[0].1, utc("2026-03-27T20:00:00Z"));
    }
}
