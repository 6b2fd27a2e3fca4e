//! Weighted failover (`ip_vs_fo.c`).
//!
//! Every new connection goes to the linked, non-overloaded dest with the
//! highest weight; the first such dest in list order wins ties. Connection
//! counts play no part. Stateless.

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{Rank, least};

/// IPVS `fo`.
#[derive(Debug, Default)]
pub struct Failover;

impl Scheduler for Failover {
    fn kind(&self) -> SchedKind {
        SchedKind::Fo
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        least::<Self>(dests)
    }
}

/// The heaviest dest is the least by `1 / weight`.
impl Rank for Failover {
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
    fn highest_weight_first_in_list_on_ties() {
        let mut d = dests(&[2, 5, 5, 1]);
        d[1].active_conns = 10_000;
        let mut s = Failover;
        assert_eq!(s.schedule(&d, &any()), Some(1));
        d[1].overloaded = true;
        assert_eq!(s.schedule(&d, &any()), Some(2));
        d[2].available = false;
        assert_eq!(s.schedule(&d, &any()), Some(0));
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &any()), Some(3));
        d[3].weight = 0;
        assert_eq!(s.schedule(&d, &any()), None);
    }
}
