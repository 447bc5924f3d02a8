//! An alert's history (`GET /api/v1/alerts/{fingerprint}/history`) by keyset page, newest
//! page first. The history is four kinds of rows in four tables — events received, audit
//! entries (acks, silences), notifications sent, calls placed — read as one list ordered by
//! [`HistoryKey`]. Each table is read newest first from an index on (fingerprint, time, id),
//! at most one page past the cursor, and the four are merged: a page costs four index seeks
//! whatever the alert's or the store's history, and no row of one table can hide behind the
//! page limit of another (each contributes at most `limit + 1`, enough for any page).

use std::cmp::Ordering;

use serde::Serialize;

use super::{BadCursor, Cursor, OutboxKind, Page};
use crate::core::model::CallOutcome;

/// One line of an alert's history (`GET /api/v1/alerts/{fingerprint}/history`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Unix milliseconds.
    pub at: i64,
    /// `firing` / `resolved` (an event received), `ack`, `step` (an escalation step sent),
    /// `notified` (a plain notification sent), `ack_announced`.
    pub action: String,
    /// The firing this belongs to (Unix milliseconds).
    pub starts_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// How an ack came in: `api`, `page` or `link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The client address of an ack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// A call (`action: "call"`): the number called (`by` names its person when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callee: Option<String>,
    /// A call's outcome: `answered`, `no_answer`, `busy`, `failed`, `no_receipt`,
    /// `flow_control`, `refused`, or `ringing` while no receipt came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The line as people read it: `called ann: no answer 03:02:11`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl HistoryEntry {
    pub(crate) fn new(at: i64, action: &str, starts_at: i64) -> HistoryEntry {
        HistoryEntry {
            at,
            action: action.into(),
            starts_at,
            by: None,
            via: None,
            address: None,
            step: None,
            channel: None,
            mentions: Vec::new(),
            callee: None,
            outcome: None,
            text: None,
        }
    }
}

/// The table a history row comes from. At one millisecond the tables read in this order, so
/// that what happened first reads first: the event before the acks and notifications it
/// caused, an ack before its announcement, a voice step before its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Event = 0,
    Audit = 1,
    Send = 2,
    Call = 3,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Event, Source::Audit, Source::Send, Source::Call];
}

/// The position of a history row: its time, its table, its id in that table. Unique, so
/// that rows at the same millisecond (a storm's steps, a flapping alert) have one order and
/// a page boundary among them neither repeats nor skips one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryKey {
    pub at: i64,
    pub source: Source,
    pub id: i64,
}

impl HistoryKey {
    /// After the newest row: where the first page starts.
    pub const NEWEST: HistoryKey = HistoryKey {
        at: i64::MAX,
        source: Source::Call,
        id: i64::MAX,
    };

    /// The cursor a client passes back: the time as its key, `source:id` as its tie.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            key: self.at,
            tie: format!("{}:{}", self.source as u8, self.id),
        }
    }

    /// The key of a cursor that [`HistoryKey::cursor`] wrote; any other is refused.
    pub fn from_cursor(c: &Cursor) -> Result<HistoryKey, BadCursor> {
        let bad = || BadCursor(c.encode().chars().take(64).collect());
        let (source, id) = c.tie.split_once(':').ok_or_else(bad)?;
        let source = match source {
            "0" => Source::Event,
            "1" => Source::Audit,
            "2" => Source::Send,
            "3" => Source::Call,
            _ => return Err(bad()),
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let id = id.parse().map_err(|_| bad())?;
        Ok(HistoryKey {
            at: c.key,
            source,
            id,
        })
    }

    /// The rows of `source` older than this key are those with `(at, id) < bound`: in its
    /// own table the order is (at, id); at the same millisecond a table ordered before this
    /// key's has all its rows older, one ordered after none.
    pub fn bound(&self, source: Source) -> (i64, i64) {
        match source.cmp(&self.source) {
            Ordering::Less => (self.at, i64::MAX),
            Ordering::Equal => (self.at, self.id),
            Ordering::Greater => (self.at, i64::MIN),
        }
    }
}

/// A history row: an entry as stored, or a call (which the web layer words with the
/// directory of people and the router's time zone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryItem {
    Entry(HistoryEntry),
    Call(CallView),
}

/// An event row: id, status, starts_at, received_at.
pub(crate) type EventRow = (i64, String, i64, i64);
/// An audit row: id, starts_at, at, action, actor, via, address.
pub(crate) type AuditRow = (i64, i64, i64, String, String, String, Option<String>);
/// A sent outbox row: id, kind, step, channel, mentions (JSON), sent_at, the event's starts_at.
pub(crate) type SendRow = (i64, String, Option<i64>, String, Option<String>, i64, i64);

pub(crate) fn event_item(
    (id, status, starts_at, received_at): EventRow,
) -> (HistoryKey, HistoryItem) {
    let key = HistoryKey {
        at: received_at,
        source: Source::Event,
        id,
    };
    (
        key,
        HistoryItem::Entry(HistoryEntry::new(received_at, &status, starts_at)),
    )
}

pub(crate) fn audit_item(r: AuditRow) -> (HistoryKey, HistoryItem) {
    let (id, starts_at, at, action, actor, via, address) = r;
    let mut e = HistoryEntry::new(at, &action, starts_at);
    e.by = Some(actor);
    e.via = Some(via);
    e.address = address;
    let key = HistoryKey {
        at,
        source: Source::Audit,
        id,
    };
    (key, HistoryItem::Entry(e))
}

pub(crate) fn send_item(r: SendRow) -> (HistoryKey, HistoryItem) {
    let (id, kind, step, channel, mentions, sent_at, starts_at) = r;
    let action = match OutboxKind::parse(&kind) {
        OutboxKind::Escalate => "step",
        OutboxKind::Ack => "ack_announced",
        OutboxKind::Notify => "notified",
    };
    let mut e = HistoryEntry::new(sent_at, action, starts_at);
    e.step = step;
    e.channel = Some(channel);
    e.mentions = mentions
        .and_then(|m| serde_json::from_str(&m).ok())
        .unwrap_or_default();
    let key = HistoryKey {
        at: sent_at,
        source: Source::Send,
        id,
    };
    (key, HistoryItem::Entry(e))
}

/// A call with its row id.
pub(crate) fn call_item(id: i64, r: CallViewRow) -> (HistoryKey, HistoryItem) {
    let call = call_view(r);
    let key = HistoryKey {
        at: call.placed_at,
        source: Source::Call,
        id,
    };
    (key, HistoryItem::Call(call))
}

/// The page of the `limit` newest rows among `rows` (each table's rows older than the
/// cursor, at most `limit + 1` of each), oldest first as the history always reads; `next`
/// is the oldest row's key when older rows remain.
pub(crate) fn page(mut rows: Vec<(HistoryKey, HistoryItem)>, limit: i64) -> Page<HistoryItem> {
    rows.sort_unstable_by_key(|(k, _)| std::cmp::Reverse(*k));
    let page = Page::from_rows(rows, limit, |(k, _)| k.cursor());
    Page {
        items: page.items.into_iter().rev().map(|(_, item)| item).collect(),
        next: page.next,
    }
}

/// One call as the history and the status page show it (here, not in `calls.rs`: the
/// listings in `sql.rs` read it, and `calls.rs` builds on `sql.rs`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallView {
    pub fingerprint: String,
    pub starts_at: i64,
    pub channel: String,
    pub step: Option<i64>,
    pub number: String,
    pub call_id: Option<String>,
    pub placed_at: i64,
    /// `None` while ringing (no receipt yet).
    pub outcome: Option<CallOutcome>,
    pub settled_at: Option<i64>,
}

/// The columns a [`CallView`] is read from.
pub(crate) const CALL_COLUMNS: &str =
    "fingerprint, starts_at, channel, step, callee, call_id, placed_at, outcome, settled_at";

pub(crate) type CallViewRow = (
    String,
    i64,
    String,
    Option<i64>,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<i64>,
);

pub(crate) fn call_view(r: CallViewRow) -> CallView {
    let (fingerprint, starts_at, channel, step, number, call_id, placed_at, outcome, settled_at) =
        r;
    CallView {
        fingerprint,
        starts_at,
        channel,
        step,
        number,
        call_id,
        placed_at,
        outcome: outcome.as_deref().and_then(CallOutcome::parse),
        settled_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(at: i64, source: Source, id: i64) -> HistoryKey {
        HistoryKey { at, source, id }
    }

    #[test]
    fn a_key_reads_back_from_its_cursor_and_nothing_else_is_one() {
        let k = key(1_767_225_600_000, Source::Send, 42);
        let text = k.cursor().encode();
        assert_eq!(
            HistoryKey::from_cursor(&Cursor::parse(&text).expect("cursor")),
            Ok(k)
        );
        for tie in [
            "",
            "4:1",
            "1:",
            "1:-3",
            ":5",
            "1:2:3",
            "x:1",
            "1:99999999999999999999",
        ] {
            let c = Cursor {
                key: 5,
                tie: tie.into(),
            };
            assert!(HistoryKey::from_cursor(&c).is_err(), "{tie:?} accepted");
        }
    }

    #[test]
    fn a_bound_keeps_exactly_the_older_rows_of_each_table() {
        let c = key(100, Source::Audit, 7);
        // (at, id) of candidate rows of every table around the cursor's millisecond.
        for source in Source::ALL {
            for (at, id) in [(99, 1_000), (100, 1), (100, 7), (100, 8), (101, 1)] {
                let older = key(at, source, id) < c;
                assert_eq!((at, id) < c.bound(source), older, "{source:?} ({at}, {id})");
            }
        }
    }

    #[test]
    fn pages_are_the_newest_rows_oldest_first() {
        let e = |at: i64| HistoryItem::Entry(HistoryEntry::new(at, "firing", 0));
        let rows = vec![
            (key(5, Source::Send, 1), e(5)),
            (key(5, Source::Event, 9), e(5)),
            (key(7, Source::Event, 2), e(7)),
            (key(1, Source::Audit, 3), e(1)),
        ];
        let p = page(rows, 2);
        let ats: Vec<i64> = p
            .items
            .iter()
            .map(|i| match i {
                HistoryItem::Entry(e) => e.at,
                HistoryItem::Call(c) => c.placed_at,
            })
            .collect();
        assert_eq!(ats, vec![5, 7]);
        assert_eq!(p.next, Some(key(5, Source::Send, 1).cursor()));
    }
}
