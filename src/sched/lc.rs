//! Least-connection (`ip_vs_lc.c`).
//!
//! Picks the linked, non-overloaded, non-quiesced dest with the smallest
//! overhead (`active * 256 + inactive`); ties go to the earliest in list
//! order. Weights other than zero are ignored. Stateless.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{Rank, least};

/// IPVS `lc`.
#[derive(Debug, Default)]
pub struct LeastConn;

impl Scheduler for LeastConn {
    fn kind(&self) -> SchedKind {
        SchedKind::Lc
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        least::<Self>(dests)
    }
}

/// `ip_vs_dest_conn_overhead`, weights left out: every dest divides by 1.
impl Rank for LeastConn {
    #[inline]
    fn cost(d: &Dest) -> i128 {
        d.overhead() as i128
    }

    #[inline]
    fn weight(_d: &Dest) -> i128 {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests};

    #[test]
    fn history_sequence() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = LeastConn;
        s.update(&d);
        let mut seq = Vec::new();
        // every pick opens an active connection on the chosen dest
        for _ in 0..6 {
            let i = s.schedule(&d, &any()).unwrap();
            d[i].active_conns += 1;
            seq.push(i);
        }
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        // one connection on 1 goes inactive: 1 now has 256 + 1 < 512
        d[1].active_conns -= 1;
        d[1].inact_conns += 1;
        assert_eq!(s.schedule(&d, &any()), Some(1));
        // 300 inactive on 0 weigh more than one active (256)
        d[0].active_conns = 0;
        d[0].inact_conns = 300;
        d[2].active_conns = 1;
        d[1].active_conns = 2;
        assert_eq!(s.schedule(&d, &any()), Some(2));
    }

    #[test]
    fn weights_do_not_matter_but_zero_quiesces() {
        let mut d = dests(&[1, 100, 0]);
        d[0].inact_conns = 1;
        d[1].inact_conns = 2;
        let mut s = LeastConn;
        assert_eq!(s.schedule(&d, &any()), Some(0));
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &any()), Some(1));
        d[1].weight = 0;
        assert_eq!(s.schedule(&d, &any()), None);
    }

    #[test]
    fn overloaded_and_removed_are_skipped() {
        let mut d = dests(&[1, 1, 1]);
        d[1].inact_conns = 1;
        d[2].inact_conns = 2;
        d[0].overloaded = true;
        let mut s = LeastConn;
        assert_eq!(s.schedule(&d, &any()), Some(1));
        d[1].available = false;
        assert_eq!(s.schedule(&d, &any()), Some(2));
    }
}
