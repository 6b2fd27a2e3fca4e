//! Weighted power of two choices (`ip_vs_twos.c`).
//!
//! Two dests are drawn with probability proportional to weight and the one
//! with the lower overhead / weight wins (the first draw on ties). The
//! kernel draws two `get_random_u32()`; here both come from the single
//! [`SchedInput::rand`]: its low 32 bits are the first draw and its high 32
//! bits the second, so a replay with the same `rand` picks the same dest.
//!
//! The draw keeps the kernel's arithmetic exactly: `r % (sum + 1)` then
//! subtract each usable weight in list order and take the first dest that
//! brings the remainder to zero or below, which gives the first usable dest
//! one extra chance out of `sum + 1`. Stateless.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{least_by, usable};
use super::wlc::WeightedLeastConn;

/// IPVS `twos`.
#[derive(Debug, Default)]
pub struct PowerOfTwo;

impl Scheduler for PowerOfTwo {
    fn kind(&self) -> SchedKind {
        SchedKind::Twos
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let total: i64 = dests
            .iter()
            .filter(|d| usable(d))
            .map(|d| d.weight as i64)
            .sum();
        if !dests.iter().any(usable) {
            return None;
        }
        let modulus = (total + 1) as u64;
        let mut r1 = ((input.rand & 0xFFFF_FFFF) % modulus) as i64;
        let mut r2 = ((input.rand >> 32) % modulus) as i64;
        let mut c1: Option<usize> = None;
        let mut c2: Option<usize> = None;
        for (i, d) in dests.iter().enumerate() {
            if !usable(d) {
                continue;
            }
            r1 -= d.weight as i64;
            r2 -= d.weight as i64;
            if r1 <= 0 && c1.is_none() {
                c1 = Some(i);
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some(i);
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        // The remainders start at most at `total`, so both draws land.
        // The lower overhead / weight wins, the first draw on ties.
        let (a, b) = (c1?, c2?);
        least_by::<WeightedLeastConn>([(a, &dests[a]), (b, &dests[b])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests};

    fn with_rand(r1: u32, r2: u32) -> SchedInput {
        let mut i = any();
        i.rand = (r2 as u64) << 32 | r1 as u64;
        i
    }

    #[test]
    fn draws_follow_kernel_arithmetic() {
        // weights 1,1,1: modulus 4; r=0 -> dest 0, r=1 -> 0, r=2 -> 1, r=3 -> 2
        let mut d = dests(&[1, 1, 1]);
        let mut s = PowerOfTwo;
        // equal load: the first draw wins
        assert_eq!(s.schedule(&d, &with_rand(3, 0)), Some(2));
        assert_eq!(s.schedule(&d, &with_rand(1, 3)), Some(0));
        assert_eq!(s.schedule(&d, &with_rand(2, 2)), Some(1));
        // modulus applies to each half: 7 % 4 = 3
        assert_eq!(s.schedule(&d, &with_rand(7, 0)), Some(2));
        d[2].active_conns = 1;
        assert_eq!(s.schedule(&d, &with_rand(3, 0)), Some(0));
        assert_eq!(s.schedule(&d, &with_rand(3, 6)), Some(1));
    }

    #[test]
    fn comparison_is_weighted() {
        // weights 1,3: modulus 5; r 0,1 -> 0; r 2..4 -> 1
        let mut d = dests(&[1, 3]);
        d[0].active_conns = 1; // 256/1
        d[1].active_conns = 3; // 768/3 = 256/1: tie keeps the first draw
        let mut s = PowerOfTwo;
        assert_eq!(s.schedule(&d, &with_rand(0, 4)), Some(0));
        assert_eq!(s.schedule(&d, &with_rand(4, 0)), Some(1));
        d[1].inact_conns = 1;
        assert_eq!(s.schedule(&d, &with_rand(0, 4)), Some(0));
        assert_eq!(s.schedule(&d, &with_rand(4, 0)), Some(0));
    }

    #[test]
    fn skips_unusable_and_handles_none() {
        let mut d = dests(&[0, 2, 1, 1]);
        d[2].overloaded = true;
        d[3].available = false;
        let mut s = PowerOfTwo;
        for r in 0..10 {
            assert_eq!(s.schedule(&d, &with_rand(r, r * 7)), Some(1));
        }
        d[1].weight = 0;
        assert_eq!(s.schedule(&d, &with_rand(1, 1)), None);
        assert_eq!(s.schedule(&[], &with_rand(1, 1)), None);
    }

    #[test]
    fn idle_dests_share_by_weight() {
        // with no load the first draw decides: frequencies follow the
        // kernel's (w0 + 1) : w1 : w2 over sum + 1
        let d = dests(&[2, 3, 4]);
        let mut s = PowerOfTwo;
        let mut n = [0u32; 3];
        for r in 0..10u32 {
            n[s.schedule(&d, &with_rand(r, 0)).unwrap()] += 1;
        }
        assert_eq!(n, [3, 3, 4]);
    }
}
