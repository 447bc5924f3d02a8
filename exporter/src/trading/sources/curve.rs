//! An account's equity curve built from realized profits (freqtrade's closed trades,
//! hummingbot's fills), folded incrementally: C + cumulative profit after each point, in key
//! order, starting from C itself (the account before its first trade).
//!
//! Points arrive as the bot commits them, almost always in key order. The curve keeps the
//! points of the current trading day (and of the last minute) in a sorted tail and folds
//! older ones into a settled state (cumulative sum, running peak, deepest drawdown), so its
//! memory does not grow with history. A point older than the settled state (a trade whose
//! close date lies before points already folded) cannot be folded exactly: [`Curve::add`]
//! says so and the source rebuilds the curve from all points once.
//!
//! Definitions (contract, "Trading sources"): cum_t = Σ profit of points with key ≤ t;
//! equity = C + cum_now; peak = C + max(0, max_t cum_t); max drawdown = min over t of
//! (C + cum_t) / (C + max(0, max_{s≤t} cum_s)) − 1, which is freqtrade's own relative
//! account drawdown (`calculate_max_drawdown(..., starting_balance=C, relative=True)`),
//! negated.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::collections::BTreeMap;

/// A point older than the settled part of the curve arrived: rebuild from all points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale;

#[derive(Debug, Clone)]
pub struct Curve<K: Ord + Clone> {
    capital: Decimal,
    /// Every point with key ≤ `until` is folded into the fields below.
    until: Option<K>,
    cum: Decimal,
    /// max(0, max cum) over the settled points.
    high: Decimal,
    /// min over the settled points of equity / peak − 1 (0 for none).
    max_drawdown: f64,
    tail: BTreeMap<K, Decimal>,
}

/// The curve's figures at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveFigures {
    pub equity: Decimal,
    pub peak: Decimal,
    pub max_drawdown: f64,
    /// Equity after the last point before the trading-day start (C when there is none).
    pub before_day: Decimal,
    /// Σ profit of every point.
    pub cumulative: Decimal,
}

impl<K: Ord + Clone> Curve<K> {
    pub fn new(capital: Decimal) -> Curve<K> {
        Curve {
            capital,
            until: None,
            cum: Decimal::ZERO,
            high: Decimal::ZERO,
            max_drawdown: 0.0,
            tail: BTreeMap::new(),
        }
    }

    /// Adds one point (keys are unique: add a tie-breaker such as the row id).
    pub fn add(&mut self, key: K, profit: Decimal) -> Result<(), Stale> {
        if self.until.as_ref().is_some_and(|u| key <= *u) {
            return Err(Stale);
        }
        let old = self.tail.insert(key, profit);
        if let Some(old) = old
            && old != profit
        {
            // The same point with another value: the store changed a folded row.
            return Err(Stale);
        }
        Ok(())
    }

    /// Folds the tail points with key < `before` into the settled state.
    pub fn settle(&mut self, before: &K) {
        while let Some(entry) = self.tail.first_entry() {
            if entry.key() >= before {
                break;
            }
            let (k, profit) = entry.remove_entry();
            self.cum = self.cum.saturating_add(profit);
            self.high = self.high.max(self.cum);
            self.max_drawdown =
                self.max_drawdown
                    .min(drawdown_ratio(self.capital, self.cum, self.high));
            self.until = Some(k);
        }
    }

    /// The figures now; `day_start`: the first key of the trading day.
    pub fn figures(&self, day_start: &K) -> CurveFigures {
        let mut cum = self.cum;
        let mut high = self.high;
        let mut max_drawdown = self.max_drawdown;
        let mut before_day = if self.until.as_ref().is_none_or(|u| u < day_start) {
            Some(cum)
        } else {
            None
        };
        for (k, profit) in &self.tail {
            if k < day_start {
                before_day = None;
            }
            cum = cum.saturating_add(*profit);
            high = high.max(cum);
            max_drawdown = max_drawdown.min(drawdown_ratio(self.capital, cum, high));
            if k < day_start {
                before_day = Some(cum);
            }
        }
        CurveFigures {
            equity: self.capital.saturating_add(cum),
            peak: self.capital.saturating_add(high),
            max_drawdown,
            // Settling never passes the day start (see the module doc), so this is only
            // unknown when the caller settled too far: then the settled equity is the best
            // answer there is.
            before_day: self.capital.saturating_add(before_day.unwrap_or(self.cum)),
            cumulative: cum,
        }
    }

    /// Points not yet settled (for tests and benches).
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }
}

/// (C + cum) / (C + high) − 1, 0 when the peak is not positive (the ratio means nothing).
/// Shared with hummingbot's fill fold, whose per-fill curve has the same definition.
pub fn drawdown_ratio(capital: Decimal, cum: Decimal, high: Decimal) -> f64 {
    let peak = capital.saturating_add(high);
    if peak <= Decimal::ZERO {
        return 0.0;
    }
    capital
        .saturating_add(cum)
        .checked_div(peak)
        .and_then(|r| r.to_f64())
        .map_or(0.0, |r| r - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: i64) -> Decimal {
        Decimal::from(v)
    }

    /// C = 100; profits +10, −30, +5, +40, −50: cum 10, −20, −15, 25, −25;
    /// peaks (C + max(0, running max)) 110, 110, 110, 125, 125;
    /// ratios 0, 80/110 − 1, 85/110 − 1, 0, 75/125 − 1 → max drawdown −0.4.
    #[test]
    fn settled_and_unsettled_points_give_the_same_figures() {
        let profits = [10, -30, 5, 40, -50];
        let mut all_tail: Curve<i64> = Curve::new(d(100));
        let mut settled: Curve<i64> = Curve::new(d(100));
        for (i, p) in profits.iter().enumerate() {
            all_tail.add(i as i64, d(*p)).unwrap();
            settled.add(i as i64, d(*p)).unwrap();
            settled.settle(&(i as i64 - 1));
        }
        for c in [&all_tail, &settled] {
            let f = c.figures(&3);
            assert_eq!(f.equity, d(75));
            assert_eq!(f.peak, d(125));
            assert!((f.max_drawdown - (-0.4)).abs() < 1e-12, "{f:?}");
            // Points 0..=2 lie before the day start: before-day equity 100 − 15.
            assert_eq!(f.before_day, d(85));
            assert_eq!(f.cumulative, d(-25));
        }
        assert_eq!(settled.tail_len(), 2);
        assert_eq!(settled.add(1, d(1)), Err(Stale));
    }

    #[test]
    fn no_points_is_the_starting_capital() {
        let c: Curve<i64> = Curve::new(d(1000));
        let f = c.figures(&0);
        assert_eq!(
            (f.equity, f.peak, f.before_day),
            (d(1000), d(1000), d(1000))
        );
        assert_eq!(f.max_drawdown, 0.0);
    }

    #[test]
    fn losses_first_keep_the_capital_as_peak() {
        let mut c: Curve<i64> = Curve::new(d(100));
        c.add(1, d(-20)).unwrap();
        c.add(2, d(10)).unwrap();
        let f = c.figures(&10);
        assert_eq!(f.peak, d(100));
        assert!((f.max_drawdown - (-0.2)).abs() < 1e-12);
        assert_eq!(f.before_day, d(90));
    }
}
