//! Rate-limited warnings: a condition that persists (a next hop that keeps
//! failing, an interface that went away) is logged when it starts, then at
//! most once per period with the number of repeats held back, and again at
//! once after it cleared and came back. Time is an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a persisting condition is logged again.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(60);

/// Per-key state of the rate limiter.
#[derive(Debug)]
pub struct RateLimit {
    period: Duration,
    /// Key -> (when last logged, repeats held back since).
    seen: HashMap<&'static str, (Instant, u64)>,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new(DEFAULT_PERIOD)
    }
}

impl RateLimit {
    pub fn new(period: Duration) -> RateLimit {
        RateLimit {
            period,
            seen: HashMap::new(),
        }
    }

    /// Whether the condition `key`, seen at `now`, is to be logged:
    /// `Some(n)` with the repeats held back since it was last logged.
    pub fn allow(&mut self, key: &'static str, now: Instant) -> Option<u64> {
        match self.seen.get_mut(key) {
            None => {
                self.seen.insert(key, (now, 0));
                Some(0)
            }
            Some((last, held)) if now.saturating_duration_since(*last) >= self.period => {
                let n = *held;
                *last = now;
                *held = 0;
                Some(n)
            }
            Some((_, held)) => {
                *held += 1;
                None
            }
        }
    }

    /// The condition `key` cleared: its next occurrence is logged at once.
    /// Returns whether it had been logged (so "recovered" can be said).
    pub fn clear(&mut self, key: &'static str) -> bool {
        self.seen.remove(key).is_some()
    }

    /// Logs `msg` at warning level when [`RateLimit::allow`] lets it.
    pub fn warn(&mut self, key: &'static str, now: Instant, msg: impl FnOnce() -> String) {
        match self.allow(key, now) {
            Some(0) => log::warn!("{}", msg()),
            Some(n) => log::warn!("{} ({n} more like it since the last report)", msg()),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_once_a_period_with_the_count_held_back() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut r = RateLimit::new(Duration::from_secs(60));
        assert_eq!(r.allow("nh", s(0)), Some(0));
        for i in 1..60 {
            assert_eq!(r.allow("nh", s(i)), None, "second {i}");
        }
        assert_eq!(r.allow("nh", s(60)), Some(59));
        assert_eq!(r.allow("nh", s(61)), None);
        // Keys are independent.
        assert_eq!(r.allow("addr", s(61)), Some(0));
        // Cleared: the next failure is news.
        assert!(r.clear("nh"));
        assert!(!r.clear("nh"));
        assert_eq!(r.allow("nh", s(62)), Some(0));
    }
}
