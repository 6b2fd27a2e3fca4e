//! Locality-based least-connection (`ip_vs_lblc.c`).
//!
//! Keeps a cache from a packet's destination address to the dest that got
//! it last (cache clusters: one proxy per origin address). A cached dest is
//! used again while it is linked, has positive weight and is not
//! "overloaded" in lblc's sense: more active connections than its weight
//! while some dest of the service has fewer than half its weight active.
//! The `IP_VS_DEST_F_OVERLOAD` flag is not checked for a cached dest, as in
//! the kernel. Otherwise the dest is chosen by weighted least-connection and
//! the cache entry is (re)pointed at it.
//!
//! The cache, its fixed-size preallocated pool and its expiry live in
//! [`super::locality`]. Dest changes need no work: like the kernel, which
//! has no dest hooks for lblc, entries keep pointing at their dest and the
//! checks above reject it while it is removed.

use std::time::Duration;

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{least, locality_overloaded};
use super::locality::{DEFAULT_EXPIRATION, LocalityTable};
use super::wlc::WeightedLeastConn;

/// IPVS `lblc`.
#[derive(Debug)]
pub struct Lblc {
    table: LocalityTable<u32>,
}

impl Default for Lblc {
    fn default() -> Self {
        Lblc::new()
    }
}

impl Lblc {
    pub fn new() -> Lblc {
        Lblc::with_expiration(DEFAULT_EXPIRATION)
    }

    /// With another `net.ipv4.vs.lblc_expiration`.
    pub fn with_expiration(expiration: Duration) -> Lblc {
        Lblc {
            table: LocalityTable::new(expiration),
        }
    }

    /// Number of cached destination addresses.
    pub fn cached(&self) -> usize {
        self.table.len()
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblc
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let now = input.now;
        self.table.expire(now, |_| {});
        let cached = self.table.get(&input.dst);
        if let Some(e) = cached {
            let en = self.table.entry_mut(e);
            en.lastuse = now;
            let i = en.val as usize;
            if let Some(d) = dests.get(i)
                && d.available
                && d.weight > 0
                && !locality_overloaded(d, dests)
            {
                return Some(i);
            }
        }
        let pick = least::<WeightedLeastConn>(dests)?;
        match cached {
            Some(e) => {
                let en = self.table.entry_mut(e);
                en.val = pick as u32;
                en.lastuse = now;
            }
            None => {
                // A full pool caches nothing, as a failed kmalloc would.
                let _ = self.table.insert(input.dst, now, pick as u32);
            }
        }
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{at, dests, dests6, input};
    use crate::time::Timestamp;

    fn to(dst: &str, secs: u64) -> SchedInput {
        at(input("192.0.2.9", 4000, dst), Timestamp::from_secs(secs))
    }

    #[test]
    fn sticks_to_cached_dest_per_destination_address() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Lblc::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 0)), Some(0));
        d[0].active_conns = 1;
        // new address: wlc -> 1
        assert_eq!(s.schedule(&d, &to("203.0.113.2", 1)), Some(1));
        d[1].active_conns = 1;
        // cached, even though 2 is idle (active 1 is not above weight 1)
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 2)), Some(0));
        assert_eq!(s.schedule(&d, &to("203.0.113.2", 3)), Some(1));
        assert_eq!(s.schedule(&d, &to("203.0.113.3", 4)), Some(2));
        assert_eq!(s.cached(), 3);
    }

    #[test]
    fn overloaded_cached_dest_moves_only_if_someone_is_underused() {
        let mut d = dests(&[2, 4]);
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 0)), Some(0));
        d[0].active_conns = 3; // above weight 2
        d[1].active_conns = 2; // 2*2 < 4 false: nobody underused
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 1)), Some(0));
        d[1].active_conns = 1; // 1*2 < 4: underused peer exists
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 2)), Some(1));
        // the entry now points at 1
        d[0].active_conns = 0;
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 3)), Some(1));
        assert_eq!(s.cached(), 1);
    }

    #[test]
    fn overload_flag_is_ignored_for_a_cached_dest() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 0)), Some(0));
        d[0].overloaded = true;
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 1)), Some(0));
        // but a new address is not given to it
        assert_eq!(s.schedule(&d, &to("203.0.113.2", 1)), Some(1));
    }

    #[test]
    fn quiesced_or_removed_cached_dest_is_replaced() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 0)), Some(0));
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 1)), Some(1));
        d[1].available = false;
        s.update(&d);
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 2)), Some(2));
        // coming back does not steal the address back
        d[0].weight = 1;
        d[1].available = true;
        s.update(&d);
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 3)), Some(2));
        for x in d.iter_mut() {
            x.weight = 0;
        }
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 4)), None);
        assert_eq!(s.schedule(&d, &to("203.0.113.9", 4)), None);
        assert_eq!(s.cached(), 1, "no entry for an unschedulable address");
    }

    #[test]
    fn entries_expire_after_a_day_of_disuse() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblc::new();
        let day = 24 * 3600;
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 0)), Some(0));
        d[0].active_conns = 1; // wlc would now pick 1
        // used again at t = 1000 s: lastuse refreshed
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 1000)), Some(0));
        // full checks run on a 1800 s grid: the one at 86 400 s is before
        // 1000 + 86 400, so the entry is still there (and refreshed again)
        assert_eq!(s.schedule(&d, &to("203.0.113.1", day + 800)), Some(0));
        // the check at 174 600 s is a day after 87 200 s: the entry is gone
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 2 * day + 2000)), Some(1));
    }

    #[test]
    fn configurable_expiration() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblc::with_expiration(Duration::from_secs(60));
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 0)), Some(0));
        d[0].active_conns = 1;
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 1799)), Some(0));
        // full check at 1800 s: idle since 1799 s is under 60 s
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 1801)), Some(0));
        assert_eq!(s.schedule(&d, &to("203.0.113.1", 3600)), Some(1));
    }

    #[test]
    fn ipv6_destination_addresses() {
        let mut d = dests6(&[1, 1]);
        let mut s = Lblc::new();
        let a = at(input("2001:db8:1::9", 1, "2001:db8:ff::1"), Timestamp::ZERO);
        let b = at(input("2001:db8:1::9", 1, "2001:db8:ff::2"), Timestamp::ZERO);
        assert_eq!(s.schedule(&d, &a), Some(0));
        d[0].inact_conns = 1;
        assert_eq!(s.schedule(&d, &b), Some(1));
        assert_eq!(s.schedule(&d, &a), Some(0));
        assert_eq!(s.cached(), 2);
    }
}
