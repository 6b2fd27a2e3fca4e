//! Overflow-connection (`ip_vs_ovf.c`).
//!
//! Like fo, connections go to the highest-weight dest, but a dest whose
//! active connections exceed its weight is passed over, so load "overflows"
//! to the next weight down. The first dest in list order wins ties.
//! Stateless.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{Rank, least, usable};

/// IPVS `ovf`.
#[derive(Debug, Default)]
pub struct Overflow;

impl Scheduler for Overflow {
    fn kind(&self) -> SchedKind {
        SchedKind::Ovf
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        least::<Self>(dests)
    }
}

/// The heaviest dest is the least by `1 / weight`; one whose active
/// connections exceed its weight is not a candidate.
impl Rank for Overflow {
    #[inline]
    fn eligible(d: &Dest) -> bool {
        usable(d) && d.active_conns as i64 <= d.weight as i64
    }

    #[inline]
    fn cost(_d: &Dest) -> i128 {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests};

    #[test]
    fn overflows_when_active_exceeds_weight() {
        let mut d = dests(&[1, 3, 2]);
        let mut s = Overflow;
        let seq: Vec<Option<usize>> = (0..8)
            .map(|_| {
                let i = s.schedule(&d, &any());
                if let Some(i) = i {
                    d[i].active_conns += 1;
                }
                i
            })
            .collect();
        // 1 takes 4 (3 active is not above 3), then 2 takes 3, then 0 takes 2
        let want = [1, 1, 1, 1, 2, 2, 2, 0];
        assert_eq!(seq, want.map(Some));
        assert_eq!(s.schedule(&d, &any()), Some(0));
        assert_eq!(d[0].active_conns, 1);
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &any()), None);
        // inactive connections do not count
        d[1].active_conns = 0;
        d[1].inact_conns = 100;
        assert_eq!(s.schedule(&d, &any()), Some(1));
    }

    #[test]
    fn ties_quiesced_overloaded_removed() {
        let mut d = dests(&[4, 4, 0, 9]);
        d[3].available = false;
        let mut s = Overflow;
        assert_eq!(s.schedule(&d, &any()), Some(0));
        d[0].overloaded = true;
        assert_eq!(s.schedule(&d, &any()), Some(1));
        d[1].weight = 0;
        assert_eq!(s.schedule(&d, &any()), None);
    }
}
