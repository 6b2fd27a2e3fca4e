//! The data plane's clock.
//!
//! The pure core never reads a clock: every entry point takes a [`Timestamp`]
//! (nanoseconds on an arbitrary monotonic epoch). The AF_XDP shell feeds it
//! from `CLOCK_MONOTONIC`, `lvsfwd replay` from capture timestamps and unit
//! tests from a simulated clock, so every timer in the core is reproducible.

use std::time::Duration;

/// A point on the data plane's clock, in nanoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub const fn from_nanos(ns: u64) -> Self {
        Timestamp(ns)
    }
    pub const fn from_micros(us: u64) -> Self {
        Timestamp(us.saturating_mul(1_000))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms.saturating_mul(1_000_000))
    }
    pub const fn from_secs(s: u64) -> Self {
        Timestamp(s.saturating_mul(1_000_000_000))
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// `t + d`, saturating at the end of time.
impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(5);
        assert_eq!(
            t + Duration::from_millis(1500),
            Timestamp::from_millis(6500)
        );
        assert_eq!(
            Timestamp(u64::MAX) + Duration::from_secs(1),
            Timestamp(u64::MAX)
        );
        assert_eq!(t.since(Timestamp::from_secs(7)), Duration::ZERO);
        assert_eq!(Timestamp::from_secs(7).since(t), Duration::from_secs(2));
    }
}
