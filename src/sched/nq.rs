//! Never queue (`ip_vs_nq.c`).
//!
//! The first usable dest (in list order) with no active connection gets the
//! connection at once; when none is idle it falls back to the shortest
//! expected delay rule of sed. Stateless.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{Rank, least};
use super::sed::ShortestExpectedDelay;

/// IPVS `nq`.
#[derive(Debug, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn kind(&self) -> SchedKind {
        SchedKind::Nq
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        least::<Self>(dests)
    }
}

/// sed's cost (`ip_vs_nq_dest_overhead`), but an idle dest wins at once.
impl Rank for NeverQueue {
    #[inline]
    fn takes_at_once(d: &Dest) -> bool {
        d.active_conns == 0
    }

    #[inline]
    fn cost(d: &Dest) -> i128 {
        ShortestExpectedDelay::cost(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests};

    #[test]
    fn idle_server_first_then_sed() {
        let mut d = dests(&[1, 3]);
        let mut s = NeverQueue;
        s.update(&d);
        let seq: Vec<usize> = (0..8)
            .map(|_| {
                let i = s.schedule(&d, &any()).unwrap();
                d[i].active_conns += 1;
                i
            })
            .collect();
        // sed would start with 1; nq serves the idle dest 0 first
        assert_eq!(seq, [0, 1, 1, 1, 1, 1, 0, 1]);
    }

    #[test]
    fn idle_beats_better_ratio_and_inactive_is_ignored() {
        let mut d = dests(&[100, 1]);
        d[0].active_conns = 1;
        d[1].inact_conns = 50;
        let mut s = NeverQueue;
        assert_eq!(s.schedule(&d, &any()), Some(1));
    }

    #[test]
    fn quiesced_overloaded_removed() {
        let mut d = dests(&[0, 1, 1, 2]);
        d[1].overloaded = true;
        d[2].available = false;
        d[3].active_conns = 7;
        let mut s = NeverQueue;
        assert_eq!(s.schedule(&d, &any()), Some(3));
        d[3].weight = 0;
        assert_eq!(s.schedule(&d, &any()), None);
    }
}
