//! The portfolio equity series: at each snapshot instant, Σ over strategies of each one's
//! latest equity at or before it (contract). Its current value and day baseline are cheap
//! (per-strategy index lookups); its all-time peak is not, so it is folded incrementally:
//!
//! - once per process, one server-side pass computes the peak over every instant up to
//!   `now − SETTLE_LAG` and each strategy's equity at that point ("settled" state);
//! - every scrape reads only the snapshots after the settled instant (index on `ts`), walks
//!   them on top of the settled state for the current peak, and advances the settled instant
//!   to `now − SETTLE_LAG`.
//!
//! The lag lets snapshots committed late (a writer's transaction spanning the scrape) still
//! count; a snapshot committed more than `SETTLE_LAG` after its own timestamp would be missed
//! by the peak until the exporter restarts (documented in docs/trading.md).

use crate::trading::queries::SnapshotRow;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// How far behind now the settled instant stays.
pub const SETTLE_LAG: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The part of the series that no longer changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// Every snapshot with `ts ≤ until` is folded in.
    pub until: DateTime<Utc>,
    /// Each strategy's latest equity at or before `until`.
    pub equity: HashMap<i64, Decimal>,
    /// Σ of `equity`: the portfolio value at `until`.
    pub total: Decimal,
    /// The peak over every instant ≤ `until`; `None` when there is none.
    pub peak: Option<Decimal>,
}

impl Settled {
    pub fn new(
        until: DateTime<Utc>,
        equity: HashMap<i64, Decimal>,
        peak: Option<Decimal>,
    ) -> Settled {
        let total = equity
            .values()
            .fold(Decimal::ZERO, |a, b| a.saturating_add(*b));
        Settled {
            until,
            equity,
            total,
            peak,
        }
    }
}

/// Walks `tail` (snapshots after `settled.until`, ordered by ts) on top of `settled`.
/// Returns the peak over the whole series and the settled state advanced to `settle_until`.
pub fn fold(
    settled: &Settled,
    tail: &[SnapshotRow],
    settle_until: DateTime<Utc>,
) -> (Option<Decimal>, Settled) {
    let until = settle_until.max(settled.until);
    let mut equity = settled.equity.clone();
    let mut total = settled.total;
    let mut peak = settled.peak;
    let mut next: Option<Settled> = None;
    let mut i = 0;
    while i < tail.len() {
        let ts = tail[i].ts;
        if ts > until && next.is_none() {
            next = Some(Settled {
                until,
                equity: equity.clone(),
                total,
                peak,
            });
        }
        while i < tail.len() && tail[i].ts == ts {
            let r = &tail[i];
            let old = equity
                .insert(r.strategy_id, r.equity)
                .unwrap_or(Decimal::ZERO);
            total = total.saturating_sub(old).saturating_add(r.equity);
            i += 1;
        }
        peak = Some(peak.map_or(total, |p| p.max(total)));
    }
    let next = next.unwrap_or(Settled {
        until,
        equity,
        total,
        peak,
    });
    (peak, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(v: i64) -> Decimal {
        Decimal::from(v)
    }

    fn t(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + i64::from(s), 0).expect("valid test instant")
    }
    fn row(id: i64, s: u32, eq: Decimal) -> SnapshotRow {
        SnapshotRow {
            strategy_id: id,
            ts: t(s),
            equity: eq,
        }
    }

    #[test]
    fn folding_in_pieces_equals_folding_at_once() {
        // A at 0 (100), B at 5 (50), A at 10 (80), B at 10 (90), A at 20 (70).
        // Series: 100, 150, 170, 160 -> peak 170.
        let all = vec![
            row(1, 0, dec(100)),
            row(2, 5, dec(50)),
            row(1, 10, dec(80)),
            row(2, 10, dec(90)),
            row(1, 20, dec(70)),
        ];
        let empty = Settled::new(t(0) - chrono::TimeDelta::seconds(1), HashMap::new(), None);
        let (peak, settled) = fold(&empty, &all, t(10));
        assert_eq!(peak, Some(dec(170)));
        assert_eq!(settled.until, t(10));
        assert_eq!(settled.total, dec(170));
        assert_eq!(settled.peak, Some(dec(170)));
        // The next scrape sees only the tail after t(10).
        let (peak2, settled2) = fold(&settled, &all[4..], t(30));
        assert_eq!(peak2, Some(dec(170)));
        assert_eq!(settled2.total, dec(160));
        assert_eq!(settled2.until, t(30));
    }

    #[test]
    fn settle_point_never_moves_back() {
        let s = Settled::new(t(100), HashMap::from([(1, dec(10))]), Some(dec(12)));
        let (peak, next) = fold(&s, &[], t(50));
        assert_eq!(peak, Some(dec(12)));
        assert_eq!(next.until, t(100));
    }
}
