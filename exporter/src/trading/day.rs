//! Trading-day boundaries: "the latest instant ≤ now at which the trading day starts".
//!
//! The start is a local wall-clock time in an IANA zone, so DST matters twice a year:
//! - when the start time falls in a spring-forward gap (it does not exist that day), the day
//!   starts at the first instant the local clock reads that time or later (the end of the gap);
//! - when it falls in a fall-back overlap (it exists twice), the day starts at the first one.
//!
//! Either way the day starts the first time the local clock shows `day_start` or later, which
//! is what a desk whose books roll at that time expects.

use chrono::{
    DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The start of the trading day containing `now`.
pub fn trading_day_start(now: DateTime<Utc>, tz: Tz, start: NaiveTime) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
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
pub fn start_of(tz: Tz, date: NaiveDate, start: NaiveTime) -> DateTime<Utc> {
    first_instant_at_or_after(tz, date.and_time(start))
}

fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
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
                if let LocalResult::Single(x) | LocalResult::Ambiguous(x, _) =
                    tz.from_local_datetime(&t0)
                {
                    return x.with_timezone(&Utc);
                }
            }
            // Unreachable with the tz database; interpret as UTC rather than panic.
            Utc.from_utc_datetime(&local)
        }
    }
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

    #[test]
    fn shanghai_nine_oclock() {
        let tz = chrono_tz::Asia::Shanghai;
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
        let tz = chrono_tz::America::New_York;
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
            trading_day_start(utc("2024-01-01T00:00:00Z"), Tz::UTC, NaiveTime::MIN),
            utc("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            trading_day_start(utc("2023-12-31T23:59:59Z"), Tz::UTC, NaiveTime::MIN),
            utc("2023-12-31T00:00:00Z")
        );
    }
}
