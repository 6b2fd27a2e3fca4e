//! Shortest expected delay (`ip_vs_sed.c`).
//!
//! Like wlc but the cost of a dest is `(active + 1) / weight`: inactive
//! connections are ignored and the incoming connection is counted, which
//! favours heavy servers when all are idle. First usable dest wins ties.
//! Stateless.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{Rank, least};

/// IPVS `sed`.
#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

impl Scheduler for ShortestExpectedDelay {
    fn kind(&self) -> SchedKind {
        SchedKind::Sed
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        least::<Self>(dests)
    }
}

/// `ip_vs_sed_dest_overhead`, shared with nq.
impl Rank for ShortestExpectedDelay {
    #[inline]
    fn cost(d: &Dest) -> i128 {
        d.active_conns as i128 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{any, dests};

    #[test]
    fn history_sequence_3_1() {
        let mut d = dests(&[1, 3]);
        let mut s = ShortestExpectedDelay;
        s.update(&d);
        let seq: Vec<usize> = (0..8)
            .map(|_| {
                let i = s.schedule(&d, &any()).unwrap();
                d[i].active_conns += 1;
                i
            })
            .collect();
        // (a+1)/w: idle heavy server first, unlike wlc which picks dest 0
        assert_eq!(seq, [1, 1, 0, 1, 1, 1, 0, 1]);
    }

    #[test]
    fn inactive_connections_are_ignored() {
        let mut d = dests(&[1, 1]);
        d[0].inact_conns = 1000;
        let mut s = ShortestExpectedDelay;
        assert_eq!(s.schedule(&d, &any()), Some(0));
        d[0].active_conns = 1;
        assert_eq!(s.schedule(&d, &any()), Some(1));
    }

    #[test]
    fn quiesced_overloaded_removed() {
        let mut d = dests(&[0, 1, 5, 5]);
        d[1].active_conns = 9;
        d[2].overloaded = true;
        d[3].available = false;
        let mut s = ShortestExpectedDelay;
        assert_eq!(s.schedule(&d, &any()), Some(1));
        d[1].overloaded = true;
        assert_eq!(s.schedule(&d, &any()), None);
    }
}
