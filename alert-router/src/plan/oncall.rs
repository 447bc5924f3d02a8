//! On-call rotations and time windows: pure functions of an instant, so they are tested with
//! any clock. All wall-clock reasoning happens in the rotation's (or window's) IANA time zone
//! with calendar days, never fixed 24-hour steps, so handoffs stay at the configured local
//! time across midnight in UTC and across DST changes.
//!
//! A step naming `rotations: [X]` mentions, on each of its channels, the contact of whoever is
//! on call in X at the step's due time (resolved when the chain is planned: the due time is
//! known then, so a handoff between two steps is honoured). A route's `escalation_during`
//! picks a faster policy while a window is open.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;

/// How often the on-call person changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Daily,
    Weekly,
}

/// Someone else is on call between two local instants (`from` inclusive, `until` exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub from: NaiveDateTime,
    pub until: NaiveDateTime,
    pub person: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub tz: Tz,
    pub period: Period,
    /// Local time of the handoff.
    pub handoff: NaiveTime,
    /// Local date on which `people[0]`'s first shift starts (at `handoff`); weekly shifts
    /// change on this date's weekday.
    pub start: NaiveDate,
    pub people: Vec<String>,
    /// The first override covering an instant wins over the rotation.
    pub overrides: Vec<Override>,
}

impl Rotation {
    /// The person on call at `at`.
    pub fn on_call(&self, at: DateTime<Utc>) -> Option<&str> {
        let local = at.with_timezone(&self.tz).naive_local();
        if let Some(o) = self
            .overrides
            .iter()
            .find(|o| o.from <= local && local < o.until)
        {
            return Some(&o.person);
        }
        if self.people.is_empty() {
            return None;
        }
        // The shift's local day: before the handoff time it is still yesterday's shift.
        let day = if local.time() >= self.handoff {
            local.date()
        } else {
            local.date() - Duration::days(1)
        };
        let days = (day - self.start).num_days();
        let shifts = match self.period {
            Period::Daily => days,
            Period::Weekly => days.div_euclid(7),
        };
        let n = self.people.len() as i64;
        Some(&self.people[shifts.rem_euclid(n) as usize])
    }
}

/// Local time ranges on some weekdays, e.g. trading sessions 09:30-11:30 and 13:00-15:00
/// Asia/Shanghai, Monday to Friday. A range whose end is before its start runs past midnight
/// and belongs to the weekday it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeWindow {
    pub tz: Tz,
    pub weekdays: Vec<Weekday>,
    pub ranges: Vec<(NaiveTime, NaiveTime)>,
}

impl TimeWindow {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        let (t, today) = (local.time(), local.weekday());
        let yesterday = today.pred();
        self.ranges.iter().any(|&(start, end)| {
            if start < end {
                self.weekdays.contains(&today) && start <= t && t < end
            } else {
                (self.weekdays.contains(&today) && t >= start)
                    || (self.weekdays.contains(&yesterday) && t < end)
            }
        })
    }
}

/// Parse an IANA zone name (`Asia/Shanghai`) for config validation.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA time zone like \"Asia/Shanghai\""))
}

/// A local instant as a UTC instant (the earlier one when a DST change makes it ambiguous).
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn t(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }
    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }
    fn people(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn daily_handoff_across_utc_midnight_in_shanghai() {
        // Handoff 07:00 Shanghai = 23:00 UTC the day before: the UTC date is wrong for it.
        let r = Rotation {
            tz: parse_tz("Asia/Shanghai").unwrap(),
            period: Period::Daily,
            handoff: t("07:00"),
            start: d("2026-03-02"),
            people: people(&["ann", "bo", "cy"]),
            overrides: vec![],
        };
        // 2026-03-02 06:59 Shanghai: still the shift that started 03-01 (cy, index -1).
        assert_eq!(r.on_call(utc("2026-03-01T22:59:00Z")), Some("cy"));
        // 07:00 Shanghai = 23:00 UTC on 03-01: ann takes over although UTC is still 03-01.
        assert_eq!(r.on_call(utc("2026-03-01T23:00:00Z")), Some("ann"));
        assert_eq!(r.on_call(utc("2026-03-02T15:59:59Z")), Some("ann"));
        assert_eq!(
            r.on_call(utc("2026-03-02T16:00:00Z")),
            Some("ann"),
            "local midnight is not a handoff"
        );
        assert_eq!(r.on_call(utc("2026-03-02T23:00:00Z")), Some("bo"));
        assert_eq!(r.on_call(utc("2026-03-03T23:00:00Z")), Some("cy"));
        assert_eq!(
            r.on_call(utc("2026-03-04T23:00:00Z")),
            Some("ann"),
            "wraps around"
        );
    }

    #[test]
    fn weekly_handoff_keeps_local_time_across_dst() {
        // New York: handoff Monday 09:00 local; DST starts Sunday 2026-03-08.
        let r = Rotation {
            tz: parse_tz("America/New_York").unwrap(),
            period: Period::Weekly,
            handoff: t("09:00"),
            start: d("2026-03-02"),
            people: people(&["ann", "bo"]),
            overrides: vec![],
        };
        // Before DST: 09:00 EST = 14:00 UTC.
        assert_eq!(r.on_call(utc("2026-03-02T13:59:00Z")), Some("bo"));
        assert_eq!(r.on_call(utc("2026-03-02T14:00:00Z")), Some("ann"));
        // After DST: 09:00 EDT = 13:00 UTC; a fixed 7x24h step would hand off at 14:00.
        assert_eq!(r.on_call(utc("2026-03-09T12:59:00Z")), Some("ann"));
        assert_eq!(r.on_call(utc("2026-03-09T13:00:00Z")), Some("bo"));
    }

    #[test]
    fn an_override_wins_within_its_dates_only() {
        let r = Rotation {
            tz: parse_tz("Asia/Shanghai").unwrap(),
            period: Period::Daily,
            handoff: t("09:00"),
            start: d("2026-05-01"),
            people: people(&["ann", "bo"]),
            overrides: vec![Override {
                from: dt("2026-05-02 12:00"),
                until: dt("2026-05-03 09:00"),
                person: "dee".into(),
            }],
        };
        // 2026-05-02 11:59 Shanghai: bo's shift, no override yet.
        assert_eq!(r.on_call(utc("2026-05-02T03:59:00Z")), Some("bo"));
        assert_eq!(r.on_call(utc("2026-05-02T04:00:00Z")), Some("dee"));
        assert_eq!(r.on_call(utc("2026-05-03T00:59:00Z")), Some("dee"));
        // Override over (exclusive end): the rotation's ann again.
        assert_eq!(r.on_call(utc("2026-05-03T01:00:00Z")), Some("ann"));
    }

    #[test]
    fn trading_sessions_window_in_shanghai() {
        use Weekday::*;
        let w = TimeWindow {
            tz: parse_tz("Asia/Shanghai").unwrap(),
            weekdays: vec![Mon, Tue, Wed, Thu, Fri],
            ranges: vec![(t("09:30"), t("11:30")), (t("13:00"), t("15:00"))],
        };
        // Monday 2026-03-02, Shanghai = UTC+8.
        assert!(!w.contains(utc("2026-03-02T01:29:59Z")), "09:29:59");
        assert!(w.contains(utc("2026-03-02T01:30:00Z")), "09:30");
        assert!(!w.contains(utc("2026-03-02T03:30:00Z")), "11:30 is the end");
        assert!(!w.contains(utc("2026-03-02T04:59:00Z")), "lunch break");
        assert!(w.contains(utc("2026-03-02T05:00:00Z")), "13:00");
        assert!(!w.contains(utc("2026-03-02T07:00:00Z")), "15:00");
        // Sunday 2026-03-01 in UTC but Monday 09:45 in Shanghai? No: 2026-03-01T01:45Z is
        // Sunday 09:45 Shanghai: closed.
        assert!(!w.contains(utc("2026-03-01T01:45:00Z")));
        // Friday 2026-03-06 14:00 local = 06:00 UTC: open; Saturday: closed.
        assert!(w.contains(utc("2026-03-06T06:00:00Z")));
        assert!(!w.contains(utc("2026-03-07T06:00:00Z")));
        // A night range past midnight belongs to the day it starts.
        let night = TimeWindow {
            tz: parse_tz("Asia/Shanghai").unwrap(),
            weekdays: vec![Fri],
            ranges: vec![(t("21:00"), t("02:30"))],
        };
        assert!(night.contains(utc("2026-03-06T13:00:00Z")), "Fri 21:00");
        assert!(
            night.contains(utc("2026-03-06T18:00:00Z")),
            "Sat 02:00, Friday's night session"
        );
        assert!(!night.contains(utc("2026-03-07T13:00:00Z")), "Sat 21:00");
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(
            local_to_utc(parse_tz("Asia/Shanghai").unwrap(), dt("2026-03-02 09:30")),
            Some(utc("2026-03-02T01:30:00Z"))
        );
    }

    #[test]
    fn a_calling_channel_tries_the_rotation_from_the_on_call_person_on() {
        let rot = Rotation {
            tz: parse_tz("UTC").unwrap(),
            period: Period::Daily,
            handoff: t("00:00"),
            start: d("2026-03-02"),
            people: people(&["ann", "bo", "cy", "dee"]),
            overrides: vec![Override {
                from: dt("2026-03-10 00:00"),
                until: dt("2026-03-11 00:00"),
                person: "cy".into(),
            }],
        };
        let mut dir = Directory::default();
        for (p, n) in [("ann", "1"), ("bo", "2"), ("cy", "3")] {
            dir.people
                .insert(p.into(), [("voice".to_string(), n.to_string())].into());
        }
        // dee has no number on the channel: skipped.
        dir.people.insert("dee".into(), BTreeMap::new());
        dir.rotations.insert("r".into(), rot);
        // 2026-03-03: bo's day; then cy, (dee), ann.
        assert_eq!(
            dir.contacts_in_turn("r", "voice", utc("2026-03-03T12:00:00Z")),
            vec!["2", "3", "1"]
        );
        // 2026-03-10: ann's day by rotation, cy by override: cy first, nobody twice.
        assert_eq!(
            dir.contacts_in_turn("r", "voice", utc("2026-03-10T12:00:00Z")),
            vec!["3", "1", "2"]
        );
        assert!(
            dir.contacts_in_turn("nope", "voice", utc("2026-03-10T12:00:00Z"))
                .is_empty()
        );
        assert_eq!(dir.person_with("voice", "2"), Some("bo"));
        assert_eq!(dir.person_with("voice", "9"), None);
    }
}

/// People, rotations and windows from the config, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    /// Person -> channel name -> that person's contact on the channel.
    pub people: BTreeMap<String, BTreeMap<String, String>>,
    pub rotations: BTreeMap<String, Rotation>,
    pub windows: BTreeMap<String, TimeWindow>,
    /// Channels that call people one after another (voice): a step's rotation contributes
    /// everyone in rotation order, starting with whoever is on call.
    pub call_in_turn: std::collections::BTreeSet<String>,
}

impl Directory {
    /// The contacts on `channel` of `rotation`'s people in the order a calling step tries
    /// them at `at`: whoever is on call first (an override's person included), then the
    /// rotation's people after them, wrapping around; people without a contact on the channel
    /// are left out, nobody twice.
    pub fn contacts_in_turn(
        &self,
        rotation: &str,
        channel: &str,
        at: DateTime<Utc>,
    ) -> Vec<String> {
        let Some(r) = self.rotations.get(rotation) else {
            return Vec::new();
        };
        let first = r.on_call(at).map(str::to_string);
        let start = first
            .as_deref()
            .and_then(|f| r.people.iter().position(|p| p == f))
            .unwrap_or(0);
        let order = first
            .into_iter()
            .chain((0..r.people.len()).map(|i| r.people[(start + i) % r.people.len()].clone()));
        let mut out: Vec<String> = Vec::new();
        for person in order {
            if let Some(c) = self.people.get(&person).and_then(|m| m.get(channel))
                && !out.contains(c)
            {
                out.push(c.clone());
            }
        }
        out
    }

    /// The person whose contact on `channel` is `contact` (to name who was called).
    pub fn person_with(&self, channel: &str, contact: &str) -> Option<&str> {
        self.people
            .iter()
            .find(|(_, m)| m.get(channel).is_some_and(|c| c == contact))
            .map(|(p, _)| p.as_str())
    }

    /// The contact on `channel` of whoever is on call in `rotation` at `at` (None when that
    /// person has no contact for the channel: the step still notifies the channel).
    pub fn contact(&self, rotation: &str, channel: &str, at: DateTime<Utc>) -> Option<String> {
        let person = self.rotations.get(rotation)?.on_call(at)?;
        self.people.get(person)?.get(channel).cloned()
    }

    pub fn in_window(&self, window: &str, at: DateTime<Utc>) -> bool {
        self.windows.get(window).is_some_and(|w| w.contains(at))
    }
}

/// A rotation as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRotation {
    pub timezone: String,
    /// `daily` or `weekly`.
    pub period: String,
    /// Local `HH:MM`.
    pub handoff: String,
    /// Local `YYYY-MM-DD`: `people[0]`'s first shift.
    pub start: String,
    pub people: Vec<String>,
    #[serde(default)]
    pub overrides: Vec<FileOverride>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOverride {
    /// Local `YYYY-MM-DD HH:MM`, inclusive.
    pub from: String,
    /// Local `YYYY-MM-DD HH:MM`, exclusive.
    pub until: String,
    pub person: String,
}

/// A time window as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWindow {
    pub timezone: String,
    /// `mon`..`sun`; empty = every day.
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// `HH:MM-HH:MM`, local.
    pub ranges: Vec<String>,
}

type Problems = Vec<(String, String)>;

fn time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("{s:?} is not a local time HH:MM"))
}

pub fn validate_rotation(
    name: &str,
    r: &FileRotation,
    people: &BTreeMap<String, BTreeMap<String, String>>,
    p: &mut Problems,
) -> Option<Rotation> {
    let key = format!("rotations.{name}");
    let mut err = |k: &str, reason: String| p.push((format!("{key}.{k}"), reason));
    let tz = parse_tz(&r.timezone).map_err(|e| err("timezone", e)).ok();
    let period = match r.period.as_str() {
        "daily" => Some(Period::Daily),
        "weekly" => Some(Period::Weekly),
        other => {
            err("period", format!("{other:?} is neither daily nor weekly"));
            None
        }
    };
    let handoff = time(&r.handoff).map_err(|e| err("handoff", e)).ok();
    let start = NaiveDate::parse_from_str(&r.start, "%Y-%m-%d")
        .map_err(|_| err("start", format!("{:?} is not a date YYYY-MM-DD", r.start)))
        .ok();
    // A rota filled by hand is all overrides; the hours they leave open are gaps that
    // `rota` warns about.
    if r.people.is_empty() && r.overrides.is_empty() {
        err(
            "people",
            "a rotation needs at least one person (or overrides naming who is on call)".into(),
        );
    }
    for (i, who) in r.people.iter().enumerate() {
        if !people.contains_key(who) {
            err(&format!("people[{i}]"), format!("{who:?} is not in people"));
        }
    }
    let mut overrides = Vec::new();
    for (i, o) in r.overrides.iter().enumerate() {
        let parse = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M");
        match (parse(&o.from), parse(&o.until)) {
            (Ok(from), Ok(until)) if from < until => overrides.push(Override {
                from,
                until,
                person: o.person.clone(),
            }),
            (Ok(_), Ok(_)) => err(
                &format!("overrides[{i}]"),
                "until must be after from".into(),
            ),
            _ => err(
                &format!("overrides[{i}]"),
                "from and until must be local times \"YYYY-MM-DD HH:MM\"".into(),
            ),
        }
        if !people.contains_key(&o.person) {
            err(
                &format!("overrides[{i}].person"),
                format!("{:?} is not in people", o.person),
            );
        }
    }
    Some(Rotation {
        tz: tz?,
        period: period?,
        handoff: handoff?,
        start: start?,
        people: r.people.clone(),
        overrides,
    })
}

pub fn validate_window(name: &str, w: &FileWindow, p: &mut Problems) -> Option<TimeWindow> {
    let key = format!("time_windows.{name}");
    let mut ok = true;
    let tz = parse_tz(&w.timezone)
        .map_err(|e| p.push((format!("{key}.timezone"), e)))
        .ok();
    let mut weekdays = Vec::new();
    for (i, d) in w.weekdays.iter().enumerate() {
        match d.parse::<Weekday>() {
            Ok(wd) => weekdays.push(wd),
            Err(_) => {
                ok = false;
                p.push((
                    format!("{key}.weekdays[{i}]"),
                    format!("{d:?} is not a weekday (mon..sun)"),
                ));
            }
        }
    }
    if w.weekdays.is_empty() {
        use Weekday::*;
        weekdays = vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun];
    }
    let mut ranges = Vec::new();
    if w.ranges.is_empty() {
        ok = false;
        p.push((
            format!("{key}.ranges"),
            "a window needs at least one range HH:MM-HH:MM".into(),
        ));
    }
    for (i, r) in w.ranges.iter().enumerate() {
        let parsed = r
            .split_once('-')
            .ok_or_else(|| format!("{r:?} is not HH:MM-HH:MM"))
            .and_then(|(a, b)| Ok((time(a)?, time(b)?)));
        match parsed {
            Ok((a, b)) if a != b => ranges.push((a, b)),
            Ok(_) => {
                ok = false;
                p.push((format!("{key}.ranges[{i}]"), format!("{r:?} is empty")));
            }
            Err(e) => {
                ok = false;
                p.push((format!("{key}.ranges[{i}]"), e));
            }
        }
    }
    (ok).then_some(())?;
    Some(TimeWindow {
        tz: tz?,
        weekdays,
        ranges,
    })
}
