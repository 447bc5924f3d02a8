//! Incremental reads by row id: the counters that only grow (orders, fills, notional, fees,
//! latency; closed trades on the equity curve) fold each row once, when it becomes final,
//! instead of re-reading all history every scrape.
//!
//! Each read asks for `id > high` plus the ids in [`Watermark::recheck`]: rows seen while
//! still open (re-read every time until they are final: an order's fills and status, a
//! trade's partial exits), and ids skipped over (allocated by a transaction that had not
//! committed when a later id had: PostgreSQL hands out sequence values before commit, so ids
//! can commit out of order). A skipped id is asked for until it shows up or
//! [`PENDING_GRACE`] passes (a rolled-back transaction leaves a permanent gap). An open row
//! that disappears was deleted (freqtrade deletes a trade whose entry never filled); when it
//! was the highest id, SQLite may hand that id out again, so the watermark steps back over it.
//!
//! A restart starts from nothing: the first read folds all history once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long an id skipped over is still expected to commit.
pub const PENDING_GRACE: Duration = Duration::from_secs(600);
/// At most this many skipped ids are remembered (oldest forgotten first).
pub const MAX_PENDING: usize = 1000;

#[derive(Debug, Default, Clone)]
pub struct Watermark {
    /// Every id ≤ `high` is folded, open or pending.
    pub high: i64,
    open: BTreeSet<i64>,
    pending: BTreeMap<i64, Instant>,
}

impl Watermark {
    /// Ids to read besides `id > high`.
    pub fn recheck(&self) -> Vec<i64> {
        self.open
            .iter()
            .chain(self.pending.keys())
            .copied()
            .collect()
    }

    /// The conditions selecting the rows to read, each a primary-key lookup: `column > high`
    /// and, when there are ids to re-read, `column IN (…)`. They select disjoint rows: query
    /// each and join with `UNION ALL` (SQLite does not use the primary key for the two
    /// joined with `OR`: it scans the table).
    pub fn conditions(&self, column: &str) -> Vec<String> {
        let mut out = vec![format!("{column} > {}", self.high)];
        let ids = self.recheck();
        if !ids.is_empty() {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            out.push(format!("{column} IN ({})", list.join(",")));
        }
        out
    }

    /// The same as one `WHERE` clause (for engines that plan `OR` on a key well).
    pub fn filter(&self, column: &str) -> String {
        let ids = self.recheck();
        if ids.is_empty() {
            format!("{column} > {}", self.high)
        } else {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!(
                "({column} > {} OR {column} IN ({}))",
                self.high,
                list.join(",")
            )
        }
    }

    /// Records one read: `rows` are (id, final) for every row it returned. Returns the ids
    /// to fold now (final rows not folded before); open rows are the caller's to recompute.
    pub fn advance(&mut self, rows: &[(i64, bool)], now: Instant) -> Vec<i64> {
        let mut fold = Vec::new();
        let mut returned = BTreeSet::new();
        let mut max = self.high;
        for &(id, is_final) in rows {
            returned.insert(id);
            max = max.max(id);
            self.pending.remove(&id);
            if is_final {
                self.open.remove(&id);
                fold.push(id);
            } else {
                self.open.insert(id);
            }
        }
        // Open rows that are gone were deleted.
        let vanished: Vec<i64> = self
            .open
            .iter()
            .filter(|id| !returned.contains(id))
            .copied()
            .collect();
        for id in &vanished {
            self.open.remove(id);
        }
        // Ids skipped over between the old and the new high.
        if max > self.high {
            let mut id = self.high + 1;
            while id < max {
                if !returned.contains(&id) {
                    self.pending.insert(id, now);
                }
                id += 1;
                if self.pending.len() > MAX_PENDING * 2 {
                    break;
                }
            }
            self.high = max;
        }
        while vanished.contains(&self.high) && !self.open.contains(&self.high) {
            self.high -= 1;
        }
        self.pending
            .retain(|_, seen| now.duration_since(*seen) < PENDING_GRACE);
        while self.pending.len() > MAX_PENDING {
            let oldest = self
                .pending
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => self.pending.remove(&id),
                None => break,
            };
        }
        fold
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_rows_fold_once_open_rows_are_rechecked_and_gaps_wait() {
        let t0 = Instant::now();
        let mut w = Watermark::default();
        assert_eq!(w.filter("id"), "id > 0");
        // 1 final, 2 open, 4 final (3 not committed yet).
        assert_eq!(w.advance(&[(1, true), (2, false), (4, true)], t0), [1, 4]);
        assert_eq!(w.high, 4);
        assert_eq!(w.filter("o.id"), "(o.id > 4 OR o.id IN (2,3))");
        assert_eq!(w.conditions("o.id"), ["o.id > 4", "o.id IN (2,3)"]);
        // 3 commits, 2 becomes final, 5 arrives.
        assert_eq!(w.advance(&[(2, true), (3, true), (5, false)], t0), [2, 3]);
        assert_eq!(w.filter("id"), "(id > 5 OR id IN (5))");
        // 5 is deleted (it was the highest id: SQLite may reuse it).
        assert!(w.advance(&[], t0).is_empty());
        assert_eq!(w.high, 4);
        assert_eq!(w.filter("id"), "id > 4");
        // A gap that never fills is forgotten after the grace period.
        w.advance(&[(7, true)], t0);
        assert_eq!(w.recheck(), [5, 6]);
        w.advance(&[], t0 + PENDING_GRACE);
        assert!(w.recheck().is_empty());
    }
}
