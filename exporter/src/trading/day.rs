//! Trading-day boundaries: "the latest instant ≤ now at which the trading day starts".
//!
//! The start is a local wall-clock time in an IANA zone, so DST matters twice a year:
//! - when the start time falls in a spring-forward gap (it does not exist that day), the day
//!   starts at the first instant the local clock reads that time or later (the end of the gap);
//! - when it falls in a fall-back overlap (it exists twice), the day starts at the first one.
//!
//! Either way the day starts the first time the local clock shows `day_start` or later, which
//! is what a desk whose books roll at that time expects.
//!
//! The zone is a jiff [`TimeZone`] read from the system's tz database (`trading::zone`); the
//! rest of the exporter speaks chrono, so [`local_date`] and [`resolve`] are the only places
//! that convert between the two.

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
    Utc,
};
use jiff::tz::{AmbiguousOffset, TimeZone as Tz};

/// The start of the trading day containing `now`.
pub fn trading_day_start(now: DateTime<Utc>, tz: &Tz, start: NaiveTime) -> DateTime<Utc> {
    let Some(today) = local_date(now, tz) else {
        // Outside jiff's range (years -9999..=9999): no trading day to speak of.
        return now;
    };
    // Today's start, else yesterday's; a DST shift moves a start by at most a few hours, so
    // going back two days always finds one.
    let mut date = today;
    for _ in 0..3 {
        let candidate = start_of(tz, date, start);
        if candidate <= now {
            return candidate;
        }
        date = match date.checked_sub_days(Days::new(1)) {
            Some(d) => d,
            None => break,
        };
    }
    // Only reachable at the very beginning of chrono's calendar.
    now
}

/// The instant the trading day of local `date` starts.
pub fn start_of(tz: &Tz, date: NaiveDate, start: NaiveTime) -> DateTime<Utc> {
    first_instant_at_or_after(tz, date.and_time(start))
}

fn first_instant_at_or_after(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match resolve(tz, local) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(first, _) => first,
        LocalResult::None => {
            // In a gap: the first local minute after it exists (gaps are whole minutes in
            // every zone of the tz database and never longer than a day).
            let mut t = local;
            for _ in 0..(24 * 60) {
                t += chrono::Duration::minutes(1);
                let t0 = t
                    .with_second(0)
                    .and_then(|x| x.with_nanosecond(0))
                    .unwrap_or(t);
                if let LocalResult::Single(x) | LocalResult::Ambiguous(x, _) = resolve(tz, t0) {
                    return x;
                }
            }
            // Unreachable with the tz database; interpret as UTC rather than panic.
            Utc.from_utc_datetime(&local)
        }
    }
}

/// The local calendar date in `tz` at instant `now`; `None` outside jiff's range.
fn local_date(now: DateTime<Utc>, tz: &Tz) -> Option<NaiveDate> {
    let ts = jiff::Timestamp::new(now.timestamp(), now.timestamp_subsec_nanos() as i32).ok()?;
    let d = tz.to_datetime(ts).date();
    NaiveDate::from_ymd_opt(d.year().into(), d.month() as u32, d.day() as u32)
}

/// The instants at which the local clock in `tz` reads `local`, as chrono's
/// `TimeZone::from_local_datetime` reports them: one, two (earlier first: a fall-back
/// overlap) or none (a spring-forward gap, or outside jiff's range).
fn resolve(tz: &Tz, local: NaiveDateTime) -> LocalResult<DateTime<Utc>> {
    let Some(dt) = civil(local) else {
        return LocalResult::None;
    };
    let at = |offset: jiff::tz::Offset| -> Option<DateTime<Utc>> {
        let ts = offset.to_timestamp(dt).ok()?;
        DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond() as u32)
    };
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => match at(offset) {
            Some(t) => LocalResult::Single(t),
            None => LocalResult::None,
        },
        AmbiguousOffset::Fold { before, after } => match (at(before), at(after)) {
            (Some(a), Some(b)) => LocalResult::Ambiguous(a.min(b), a.max(b)),
            (Some(t), None) | (None, Some(t)) => LocalResult::Single(t),
            (None, None) => LocalResult::None,
        },
        AmbiguousOffset::Gap { .. } => LocalResult::None,
    }
}

/// chrono's local date-time as jiff's; `None` outside jiff's range.
fn civil(t: NaiveDateTime) -> Option<jiff::civil::DateTime> {
    jiff::civil::DateTime::new(
        i16::try_from(t.year()).ok()?,
        t.month() as i8,
        t.day() as i8,
        t.hour() as i8,
        t.minute() as i8,
        t.second() as i8,
        // chrono's leap-second nanoseconds (≥ 1e9) have no jiff counterpart: clamp.
        t.nanosecond().min(999_999_999) as i32,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("test timestamps are RFC 3339")
    }
    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("valid test time")
    }
    fn zone(name: &str) -> Tz {
        let dir = crate::trading::zone::tzdir(std::env::var("TZDIR").ok().as_deref());
        crate::trading::zone::load(name, &dir).expect("tzdata is installed")
    }

    #[test]
    fn shanghai_nine_oclock() {
        let tz = &zone("Asia/Shanghai");
        // 2024-05-10 10:00 +08 -> day started 2024-05-10 09:00 +08 = 01:00Z.
        assert_eq!(
            trading_day_start(utc("2024-05-10T02:00:00Z"), tz, hm(9, 0)),
            utc("2024-05-10T01:00:00Z")
        );
        // 08:59:59 local is still the previous trading day.
        assert_eq!(
            trading_day_start(utc("2024-05-10T00:59:59Z"), tz, hm(9, 0)),
            utc("2024-05-09T01:00:00Z")
        );
        // Exactly at the start: the day has started.
        assert_eq!(
            trading_day_start(utc("2024-05-10T01:00:00Z"), tz, hm(9, 0)),
            utc("2024-05-10T01:00:00Z")
        );
    }

    #[test]
    fn new_york_across_both_dst_changes() {
        let tz = &zone("America/New_York");
        // Spring forward 2024-03-10: midnight is EST (-5), the afternoon EDT (-4).
        assert_eq!(
            trading_day_start(utc("2024-03-10T19:00:00Z"), tz, hm(0, 0)),
            utc("2024-03-10T05:00:00Z")
        );
        // Next day starts at midnight EDT.
        assert_eq!(
            trading_day_start(utc("2024-03-11T04:30:00Z"), tz, hm(0, 0)),
            utc("2024-03-11T04:00:00Z")
        );
        // 02:30 does not exist on 2024-03-10: the day starts at 03:00 EDT = 07:00Z.
        assert_eq!(
            trading_day_start(utc("2024-03-10T12:00:00Z"), tz, hm(2, 30)),
            utc("2024-03-10T07:00:00Z")
        );
        // Fall back 2024-11-03: 01:30 happens twice; the first (EDT, 05:30Z) starts the day.
        assert_eq!(
            trading_day_start(utc("2024-11-03T06:15:00Z"), tz, hm(1, 30)),
            utc("2024-11-03T05:30:00Z")
        );
    }

    #[test]
    fn utc_default() {
        assert_eq!(
            trading_day_start(utc("2024-01-01T00:00:00Z"), &Tz::UTC, NaiveTime::MIN),
            utc("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            trading_day_start(utc("2023-12-31T23:59:59Z"), &Tz::UTC, NaiveTime::MIN),
            utc("2023-12-31T00:00:00Z")
        );
    }

    #[test]
    fn gaps_and_overlaps_in_other_zones() {
        // Lord Howe moves its clocks by 30 minutes: 2024-10-06 02:00 +10:30 -> 02:30 +11.
        // 02:15 does not exist; the day starts at 02:30 +11 = 2024-10-05T15:30Z.
        let lh = &zone("Australia/Lord_Howe");
        assert_eq!(
            trading_day_start(utc("2024-10-05T20:00:00Z"), lh, hm(2, 15)),
            utc("2024-10-05T15:30:00Z")
        );
        // 2024-04-07 02:00 +11 -> 01:30 +10:30: 01:45 happens twice, first at +11.
        assert_eq!(
            trading_day_start(utc("2024-04-06T20:00:00Z"), lh, hm(1, 45)),
            utc("2024-04-06T14:45:00Z")
        );
        // Santiago springs forward at midnight (2024-09-08 00:00 -04 -> 01:00 -03): a desk
        // rolling at midnight starts that day at 01:00 -03 = 04:00Z.
        let scl = &zone("America/Santiago");
        assert_eq!(
            trading_day_start(utc("2024-09-08T12:00:00Z"), scl, hm(0, 0)),
            utc("2024-09-08T04:00:00Z")
        );
        // And falls back at midnight (2024-04-07 00:00 -03 -> 23:00 -04 on the 6th): 23:30 on
        // 2024-04-06 happens twice; the first is at -03 = 02:30Z.
        assert_eq!(
            trading_day_start(utc("2024-04-07T03:45:00Z"), scl, hm(23, 30)),
            utc("2024-04-07T02:30:00Z")
        );
        // Berlin: 2024-03-31 02:00 CET -> 03:00 CEST; 02:00 starts at 03:00 CEST = 01:00Z.
        let ber = &zone("Europe/Berlin");
        assert_eq!(
            trading_day_start(utc("2024-03-31T01:00:00Z"), ber, hm(2, 0)),
            utc("2024-03-31T01:00:00Z")
        );
        // One second earlier the previous day (02:00 CET on 03-30 = 01:00Z) still runs.
        assert_eq!(
            trading_day_start(utc("2024-03-31T00:59:59Z"), ber, hm(2, 0)),
            utc("2024-03-30T01:00:00Z")
        );
    }

    /// The chrono-tz implementation this module replaced, kept as the reference: for the
    /// same rules the two must agree to the nanosecond (chrono-tz is a dev-dependency only).
    fn reference(now: DateTime<Utc>, tz: chrono_tz::Tz, start: NaiveTime) -> DateTime<Utc> {
        let first = |local: NaiveDateTime| -> DateTime<Utc> {
            match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
                LocalResult::None => {
                    let mut t = local;
                    for _ in 0..(24 * 60) {
                        t += chrono::Duration::minutes(1);
                        let t0 = t.with_second(0).and_then(|x| x.with_nanosecond(0)).unwrap();
                        if let LocalResult::Single(x) | LocalResult::Ambiguous(x, _) =
                            tz.from_local_datetime(&t0)
                        {
                            return x.with_timezone(&Utc);
                        }
                    }
                    panic!("no end of gap")
                }
            }
        };
        let mut date = now.with_timezone(&tz).date_naive();
        for _ in 0..3 {
            let c = first(date.and_time(start));
            if c <= now {
                return c;
            }
            date = date.pred_opt().unwrap();
        }
        now
    }

    #[test]
    fn agrees_with_chrono_tz_through_dst_changes() {
        // Zones whose rules did not change in 2023-2025 (the system tzdata and chrono-tz's
        // copy may be different releases): both hemispheres, 30-minute shifts, midnight
        // changes, zones without DST.
        let zones = [
            "America/New_York",
            "Europe/Berlin",
            "Europe/London",
            "Australia/Sydney",
            "Australia/Lord_Howe",
            "America/Santiago",
            "America/Havana",
            "Asia/Shanghai",
            "Asia/Kolkata",
            "Pacific/Chatham",
        ];
        let starts = [
            hm(0, 0),
            hm(0, 30),
            hm(1, 30),
            hm(2, 0),
            hm(2, 30),
            hm(3, 0),
            hm(9, 0),
            hm(23, 30),
        ];
        let mut checked = 0;
        for name in zones {
            let ours = zone(name);
            let theirs: chrono_tz::Tz = name.parse().unwrap();
            let mut now = utc("2023-01-01T00:00:00Z");
            let end = utc("2026-01-01T00:00:00Z");
            while now < end {
                for &start in &starts {
                    let want = reference(now, theirs, start);
                    assert_eq!(
                        trading_day_start(now, &ours, start),
                        want,
                        "{name} at {now}, day start {start}"
                    );
                    // The boundary itself and the instant before it.
                    for t in [want, want - chrono::Duration::seconds(1)] {
                        assert_eq!(
                            trading_day_start(t, &ours, start),
                            reference(t, theirs, start),
                            "{name} at {t}, day start {start}"
                        );
                    }
                    checked += 1;
                }
                now += chrono::Duration::minutes(7 * 60 + 13);
            }
        }
        assert!(checked > 100_000, "{checked}");
    }
}
