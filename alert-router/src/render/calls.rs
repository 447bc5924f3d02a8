//! How a call reads on the status page and in an alert's history.

use chrono_tz::Tz;

use crate::core::model::CallOutcome;
use crate::core::timefmt;
use crate::plan::oncall::Directory;
use crate::store::HistoryEntry;
use crate::store::history::CallView;

/// `called ann: no answer 03:02:11` — the person's name when the directory knows the number
/// (else only its last four digits), the time of the outcome (of the call while it rings) in
/// the router's zone.
pub fn line(call: &CallView, dir: &Directory, tz: Tz) -> String {
    // A number is personal data: pages show whose it is, or only its last digits.
    let who = match dir.person_with(&call.channel, &call.number) {
        Some(p) => p.to_string(),
        None => {
            let digits: Vec<char> = call.number.chars().collect();
            let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
            format!("number …{tail}")
        }
    };
    let at = call.settled_at.unwrap_or(call.placed_at);
    let clock = chrono::DateTime::from_timestamp_millis(at)
        .map(|t| timefmt::clock(t, tz, true))
        .unwrap_or_default();
    format!("called {who}: {} {clock}", CallOutcome::words(call.outcome))
}

/// The history entry of a call (`action: "call"`).
pub fn history_entry(call: &CallView, dir: &Directory, tz: Tz) -> HistoryEntry {
    let mut e = HistoryEntry::new(call.placed_at, "call", call.starts_at);
    e.step = call.step;
    e.channel = Some(call.channel.clone());
    e.callee = Some(call.number.clone());
    e.by = dir
        .person_with(&call.channel, &call.number)
        .map(str::to_string);
    e.outcome = Some(
        call.outcome
            .map_or("ringing", CallOutcome::as_str)
            .to_string(),
    );
    e.text = Some(line(call, dir, tz));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_line_names_the_person_and_the_local_time() {
        let mut dir = Directory::default();
        dir.people.insert(
            "ann".into(),
            [("voice".to_string(), "13800000001".to_string())].into(),
        );
        let v = CallView {
            fingerprint: "f".into(),
            starts_at: 0,
            channel: "voice".into(),
            step: Some(0),
            number: "13800000001".into(),
            call_id: Some("1^2".into()),
            placed_at: 1_764_442_800_000,
            outcome: Some(CallOutcome::NoAnswer),
            // 2025-11-29 19:02:11 UTC = 2025-11-30 03:02:11 in Shanghai.
            settled_at: Some(1_764_442_931_000),
        };
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
        assert_eq!(line(&v, &dir, tz), "called ann: no answer 03:02:11");
        let other = CallView {
            number: "13900000000".into(),
            outcome: None,
            settled_at: None,
            ..v
        };
        assert_eq!(
            line(&other, &dir, tz),
            "called number …0000: ringing 03:00:00"
        );
    }
}
