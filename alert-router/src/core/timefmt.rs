//! Times as the on-call reads them: in the operator's IANA zone with the zone's abbreviation
//! (`2026-11-30 09:31:02 CST`), and RFC 3339 with the offset for JSON.
//!
//! Abbreviations come from the tz database through chrono-tz. Many zones have none there (the
//! database spells them `+04`, `-03`); for those we print the numeric offset as `+04:00` so a
//! reader never mistakes a bare number for an hour.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Parse an IANA zone name (`Asia/Shanghai`, `UTC`); the error is the reason for a config
/// problem.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("{name:?} is not an IANA time zone name (e.g. \"Asia/Shanghai\", \"America/New_York\", \"UTC\")")
    })
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

fn zone_label(t: &DateTime<Tz>) -> String {
    let abbr = t.format("%Z").to_string();
    if abbr.starts_with(['+', '-']) || abbr.is_empty() {
        offset_text(t.offset().fix().local_minus_utc())
    } else {
        abbr
    }
}

/// `2026-11-30 09:31:02 CST`: the form every message, page and chart uses.
pub fn human(instant: DateTime<Utc>, tz: Tz) -> String {
    let t = instant.with_timezone(&tz);
    format!("{} {}", t.format("%Y-%m-%d %H:%M:%S"), zone_label(&t))
}

/// `human` for Unix milliseconds (how the store keeps times); out-of-range values print as
/// the raw number rather than a wrong date.
pub fn human_ms(unix_ms: i64, tz: Tz) -> String {
    match Utc.timestamp_millis_opt(unix_ms).single() {
        Some(t) => human(t, tz),
        None => format!("{unix_ms} ms"),
    }
}

/// `09:31` (or `09:31:02` when `seconds`): axis ticks, where the date and zone are said once
/// elsewhere.
pub fn clock(instant: DateTime<Utc>, tz: Tz, seconds: bool) -> String {
    let t = instant.with_timezone(&tz);
    if seconds {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

/// The zone's label at `instant` (`CST`, `EDT`, `+04:00`), for a chart's axis caption.
pub fn zone_at(instant: DateTime<Utc>, tz: Tz) -> String {
    zone_label(&instant.with_timezone(&tz))
}

/// The router-wide zone in force (`timezone`), for the pages and API text that are not tied
/// to a channel. A config going live sets it ([`set_router_zone`]); a global because every
/// page helper prints times and the zone changes only on a reload.
static ROUTER_ZONE: std::sync::RwLock<Tz> = std::sync::RwLock::new(Tz::UTC);

/// Make `tz` the zone of pages and API text (at start and on each reload).
pub fn set_router_zone(tz: Tz) {
    *ROUTER_ZONE.write().unwrap_or_else(|p| p.into_inner()) = tz;
}

/// The zone of pages and API text (UTC until a config goes live).
pub fn router_zone() -> Tz {
    *ROUTER_ZONE.read().unwrap_or_else(|p| p.into_inner())
}

/// RFC 3339 with the zone's offset (`2026-11-30T09:31:02+08:00`; `Z` never appears, UTC
/// prints `+00:00`), for JSON.
pub fn rfc3339(instant: DateTime<Utc>, tz: Tz) -> String {
    instant
        .with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// `rfc3339` for Unix milliseconds; `None` out of range.
pub fn rfc3339_ms(unix_ms: i64, tz: Tz) -> Option<String> {
    Utc.timestamp_millis_opt(unix_ms)
        .single()
        .map(|t| rfc3339(t, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn shanghai_has_no_dst() {
        let tz = parse_zone("Asia/Shanghai").unwrap();
        let t = at("2026-11-30T01:31:02Z");
        assert_eq!(human(t, tz), "2026-11-30 09:31:02 CST");
        assert_eq!(rfc3339(t, tz), "2026-11-30T09:31:02+08:00");
        // Summer: still +08 (China dropped DST in 1991).
        let t = at("2026-07-01T16:00:00Z");
        assert_eq!(human(t, tz), "2026-07-02 00:00:00 CST");
        assert_eq!(rfc3339(t, tz), "2026-07-02T00:00:00+08:00");
    }

    #[test]
    fn new_york_across_spring_forward_and_fall_back() {
        let tz = parse_zone("America/New_York").unwrap();
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let before = at("2026-03-08T06:59:59Z");
        let after = at("2026-03-08T07:00:00Z");
        assert_eq!(human(before, tz), "2026-03-08 01:59:59 EST");
        assert_eq!(human(after, tz), "2026-03-08 03:00:00 EDT");
        assert_eq!(rfc3339(before, tz), "2026-03-08T01:59:59-05:00");
        assert_eq!(rfc3339(after, tz), "2026-03-08T03:00:00-04:00");
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC); 01:30 happens twice and
        // the abbreviation and offset tell the two apart.
        let first = at("2026-11-01T05:30:00Z");
        let second = at("2026-11-01T06:30:00Z");
        assert_eq!(human(first, tz), "2026-11-01 01:30:00 EDT");
        assert_eq!(human(second, tz), "2026-11-01 01:30:00 EST");
        assert_eq!(rfc3339(first, tz), "2026-11-01T01:30:00-04:00");
        assert_eq!(rfc3339(second, tz), "2026-11-01T01:30:00-05:00");
        assert_eq!(zone_at(first, tz), "EDT");
        assert_eq!(clock(second, tz, false), "01:30");
        assert_eq!(clock(second, tz, true), "01:30:00");
    }

    #[test]
    fn numeric_offset_where_the_zone_has_no_abbreviation() {
        // The tz database has no letters for Dubai (+04) or Kathmandu (+0545).
        let t = at("2026-11-30T00:00:00Z");
        assert_eq!(
            human(t, parse_zone("Asia/Dubai").unwrap()),
            "2026-11-30 04:00:00 +04:00"
        );
        assert_eq!(
            human(t, parse_zone("Asia/Kathmandu").unwrap()),
            "2026-11-30 05:45:00 +05:45"
        );
        assert_eq!(
            human(t, parse_zone("America/Sao_Paulo").unwrap()),
            "2026-11-29 21:00:00 -03:00"
        );
        assert_eq!(human(t, Tz::UTC), "2026-11-30 00:00:00 UTC");
        assert_eq!(rfc3339(t, Tz::UTC), "2026-11-30T00:00:00+00:00");
        assert_eq!(
            human_ms(1_795_996_800_000, Tz::UTC),
            "2026-11-30 00:00:00 UTC"
        );
    }

    #[test]
    fn unknown_zones_are_refused_with_a_reason() {
        let e = parse_zone("Asia/Peking").unwrap_err();
        assert!(
            e.contains("\"Asia/Peking\" is not an IANA time zone"),
            "{e}"
        );
        assert!(parse_zone("").is_err());
        assert!(parse_zone("+08:00").is_err());
    }
}
