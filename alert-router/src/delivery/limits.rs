//! Vendor limits: a per-robot send limiter that is never exceeded, and message splitting on
//! UTF-8 character boundaries under a byte limit.
//!
//! The limiter is a sliding-window log, not a plain token bucket: DingTalk and WeCom count
//! "20 per minute" over any 60 s window, and a bucket with a burst of 20 refilling one token
//! every 3 s can put 21 messages into one such window (and earn a 10-minute ban). The log keeps
//! the send instants of the last window, so the hard cap holds for every window; sends are also
//! spaced by `window / max` so a storm leaves tokens for the minutes after its first second,
//! and what waits for a token is merged into the next (digest) message.

use std::collections::VecDeque;
use std::time::Duration;

/// At most `max` sends in any `window`, sends at least `window / max` apart, and no send before
/// a vendor-imposed `blocked_until` (Retry-After, a rate-limit errcode).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    max: usize,
    window_ms: i64,
    spacing_ms: i64,
    sends: VecDeque<i64>,
    blocked_until: i64,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        let max = max.max(1) as usize;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 4);
        RateLimiter {
            max,
            window_ms,
            spacing_ms: window_ms / max as i64,
            sends: VecDeque::new(),
            blocked_until: 0,
        }
    }

    /// Earliest instant (ms) at which `n` requests fit the window at once: the first obeys
    /// the spacing, the others go right after it as parts of one message (a WeCom chart
    /// image after its markdown).
    pub fn next_allowed_n(&mut self, now_ms: i64, n: usize) -> i64 {
        let at = self.next_allowed(now_ms);
        let n = n.clamp(1, self.max);
        if self.sends.len() + n > self.max {
            // These oldest sends must leave the window first.
            let idx = self.sends.len() + n - 1 - self.max;
            at.max(self.sends[idx] + self.window_ms)
        } else {
            at
        }
    }

    /// Earliest instant (ms) a send is allowed, given the sends recorded so far.
    pub fn next_allowed(&mut self, now_ms: i64) -> i64 {
        while self
            .sends
            .front()
            .is_some_and(|&t| t <= now_ms - self.window_ms)
        {
            self.sends.pop_front();
        }
        let mut at = now_ms.max(self.blocked_until);
        if let Some(&last) = self.sends.back() {
            at = at.max(last + self.spacing_ms);
        }
        if self.sends.len() >= self.max {
            // The oldest send in the window must leave it first.
            let idx = self.sends.len() - self.max;
            at = at.max(self.sends[idx] + self.window_ms);
        }
        at
    }

    /// The wall clock stepped by `step_ms` (see `core::clock::StepWatch`): the recorded sends
    /// and the vendor block move with it, so they keep their distance from now. Unshifted, a
    /// clock stepped back by ten minutes would hold the channel for ten minutes, and one stepped
    /// forward would forget the sends the vendor still counts.
    pub fn shift(&mut self, step_ms: i64) {
        for t in self.sends.iter_mut() {
            *t += step_ms;
        }
        if self.blocked_until != 0 {
            self.blocked_until += step_ms;
        }
    }

    pub fn record(&mut self, at_ms: i64) {
        self.sends.push_back(at_ms);
    }

    pub fn block_until(&mut self, at_ms: i64) {
        self.blocked_until = self.blocked_until.max(at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::text::split_utf8;

    #[test]
    fn a_message_of_two_requests_waits_for_two_free_slots() {
        // 3 per 60 s, spaced 20 s: after two sends at 0 and 20 s, one slot is left.
        let mut l = RateLimiter::new(3, Duration::from_secs(60));
        l.record(0);
        l.record(20_000);
        assert_eq!(l.next_allowed_n(40_000, 1), 40_000);
        // Two requests (markdown + chart image) need the send at 0 to leave the window.
        assert_eq!(l.next_allowed_n(40_000, 2), 60_000);
        l.record(60_000);
        l.record(60_000);
        // Now 20 s, 60 s, 60 s are in the window: the next single request waits for 20 s to
        // leave, and never more than 3 in any window.
        assert_eq!(l.next_allowed(60_001), 80_000);
        assert_eq!(l.next_allowed_n(80_000, 2), 120_000);
    }

    #[test]
    fn a_clock_step_moves_the_window_with_it() {
        let mut l = RateLimiter::new(20, Duration::from_secs(60));
        l.record(600_000);
        // Stepped back ten minutes right after the send: the next one is 3 s away, not 10 min.
        l.shift(-600_000);
        assert_eq!(l.next_allowed(1), 3_000);
        // Stepped forward: the send is still 3 s ago for the vendor, and still counted.
        l.shift(600_000);
        assert_eq!(l.next_allowed(600_001), 603_000);
    }

    #[test]
    fn split_respects_bytes_and_chars() {
        let text = "告警".repeat(10); // 60 bytes, 3 bytes per char
        let parts = split_utf8(&text, 10);
        assert!(parts.iter().all(|p| p.len() <= 10));
        assert_eq!(parts.concat(), text);
        assert_eq!(parts[0], "告警告");
        let lines = "aaaa\nbbbb\ncccc\n";
        assert_eq!(split_utf8(lines, 11), vec!["aaaa\nbbbb\n", "cccc\n"]);
        assert_eq!(split_utf8("short", 100), vec!["short"]);
        assert_eq!(split_utf8("", 100), vec![""]);
    }

    #[test]
    fn never_more_than_max_in_any_window() {
        let mut l = RateLimiter::new(20, Duration::from_secs(60));
        let mut now = 0;
        let mut sends = Vec::new();
        // Always send as early as allowed, for 10 simulated minutes.
        while now < 600_000 {
            let at = l.next_allowed(now);
            l.record(at);
            sends.push(at);
            now = at;
        }
        for (i, &t) in sends.iter().enumerate() {
            let in_window = sends[i..].iter().take_while(|&&s| s < t + 60_000).count();
            assert!(in_window <= 20, "{in_window} sends in the minute from {t}");
        }
        assert_eq!(sends[1] - sends[0], 3_000, "sends are spaced by window/max");
    }

    #[test]
    fn restored_history_and_vendor_block_are_honoured() {
        let mut l = RateLimiter::new(20, Duration::from_secs(60));
        for i in 0..20 {
            l.record(i * 100);
        }
        assert_eq!(
            l.next_allowed(2_000),
            60_000,
            "the 21st send waits for the first to leave the window"
        );
        let mut l = RateLimiter::new(1, Duration::from_secs(1));
        l.block_until(30_000);
        assert_eq!(l.next_allowed(1_000), 30_000);
    }
}
