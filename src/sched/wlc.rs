//! Weighted least-connection (`ip_vs_wlc.c`).
//!
//! Picks the dest with the smallest overhead / weight, compared as cross
//! products so no division happens; the first usable dest in list order wins
//! ties. Stateless: everything it reads lives on the [`Dest`] counters.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{Rank, least};

/// IPVS `wlc`.
#[derive(Debug, Default)]
pub struct WeightedLeastConn;

impl Scheduler for WeightedLeastConn {
    fn kind(&self) -> SchedKind {
        SchedKind::Wlc
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        least::<Self>(dests)
    }
}

/// `ip_vs_dest_conn_overhead`; also the rank of lblc, lblcr and twos.
impl Rank for WeightedLeastConn {
    #[inline]
    fn cost(d: &Dest) -> i128 {
        d.overhead() as i128
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests, dests6};

    fn replay(d: &mut [Dest], n: usize) -> Vec<usize> {
        let mut s = WeightedLeastConn;
        s.update(d);
        (0..n)
            .map(|_| {
                let i = s.schedule(d, &any()).unwrap();
                d[i].active_conns += 1;
                i
            })
            .collect()
    }

    #[test]
    fn history_sequence_3_1() {
        let mut d = dests(&[3, 1]);
        // 0/3 vs 0/1 tie -> 0; 256/3 vs 0 -> 1; 256/3 vs 256 -> 0;
        // 768/3 vs 256 tie -> 0; 1024/3 vs 256 -> 1 ...
        assert_eq!(replay(&mut d, 8), [0, 1, 0, 0, 0, 1, 0, 0]);
        assert_eq!((d[0].active_conns, d[1].active_conns), (6, 2));
    }

    #[test]
    fn inactive_connections_count_a_little() {
        let mut d = dests(&[1, 1]);
        d[0].inact_conns = 1;
        let mut s = WeightedLeastConn;
        assert_eq!(s.schedule(&d, &any()), Some(1));
        d[1].inact_conns = 2;
        assert_eq!(s.schedule(&d, &any()), Some(0));
    }

    #[test]
    fn quiesced_overloaded_removed() {
        let mut d = dests(&[0, 1, 1, 1]);
        d[1].active_conns = 5;
        d[2].overloaded = true;
        d[3].available = false;
        let mut s = WeightedLeastConn;
        // weight 0 never wins even with no connections at all
        assert_eq!(s.schedule(&d, &any()), Some(1));
        d[1].weight = 0;
        assert_eq!(s.schedule(&d, &any()), None);
    }

    #[test]
    fn ipv6_dests_schedule_the_same() {
        let mut d = dests6(&[3, 1]);
        assert_eq!(replay(&mut d, 6), [0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn huge_counters_do_not_overflow() {
        let mut d = dests(&[i32::MAX, 1]);
        d[0].active_conns = u32::MAX;
        d[1].active_conns = u32::MAX / 2;
        let mut s = WeightedLeastConn;
        assert_eq!(s.schedule(&d, &any()), Some(0));
    }
}
