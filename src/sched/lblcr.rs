//! Locality-based least-connection with replication (`ip_vs_lblcr.c`).
//!
//! Like lblc, but a destination address maps to a *set* of dests. The least
//! loaded usable member of the set (weighted least-connection, first member
//! on ties) serves it; when there is none, or it is "overloaded" in lblc's
//! sense, a dest is chosen by weighted least-connection over the service and
//! added to the set. A set that has not changed for the expiration time and
//! has more than one member loses its most loaded member (by overhead /
//! weight, positive weights only, removed dests included, as the kernel
//! keeps them referenced in the set) on the next lookup.
//!
//! Sets are lists with the newest member first, as `list_add_rcu` makes
//! them; order decides ties. Members come from one element pool reserved
//! with the table (two per cached address on average); when it runs out a
//! dest is not added, as when the kernel's `kmalloc` fails. The address
//! table and its expiry are [`super::locality`]'s.

use std::time::Duration;

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};
use crate::time::Timestamp;

use super::common::{Rank, least, least_by, locality_overloaded};
use super::locality::{CAPACITY, DEFAULT_EXPIRATION, LocalityTable, NIL};
use super::wlc::WeightedLeastConn;

/// Set members reserved per table.
const ELEM_CAPACITY: usize = CAPACITY * 2;

/// `struct ip_vs_dest_set`.
#[derive(Debug)]
struct DestSet {
    head: u32,
    size: u32,
    lastmod: Timestamp,
}

#[derive(Debug, Clone, Copy)]
struct Elem {
    dest: u32,
    next: u32,
}

/// The members of every set, chained by index.
#[derive(Debug)]
struct Elems {
    pool: Vec<Elem>,
    free: u32,
    capacity: usize,
}

impl Elems {
    fn new(capacity: usize) -> Elems {
        Elems {
            pool: Vec::with_capacity(capacity),
            free: NIL,
            capacity,
        }
    }

    fn iter(&self, set: &DestSet) -> impl Iterator<Item = usize> + '_ {
        let mut e = set.head;
        std::iter::from_fn(move || {
            if e == NIL {
                return None;
            }
            let el = self.pool[e as usize];
            e = el.next;
            Some(el.dest as usize)
        })
    }

    /// `ip_vs_dest_set_insert`: newest first; `check` skips a dest already
    /// in the set (and then `lastmod` is left alone).
    fn insert(&mut self, set: &mut DestSet, dest: usize, check: bool, now: Timestamp) {
        if check && self.iter(set).any(|d| d == dest) {
            return;
        }
        let elem = Elem {
            dest: dest as u32,
            next: set.head,
        };
        let idx = if self.free != NIL {
            let idx = self.free;
            self.free = self.pool[idx as usize].next;
            self.pool[idx as usize] = elem;
            idx
        } else if self.pool.len() < self.capacity {
            self.pool.push(elem);
            (self.pool.len() - 1) as u32
        } else {
            return;
        };
        set.head = idx;
        set.size += 1;
        set.lastmod = now;
    }

    /// `ip_vs_dest_set_erase`: drops the first member for `dest`.
    fn erase(&mut self, set: &mut DestSet, dest: usize, now: Timestamp) {
        let mut prev = NIL;
        let mut e = set.head;
        while e != NIL {
            let el = self.pool[e as usize];
            if el.dest as usize == dest {
                if prev == NIL {
                    set.head = el.next;
                } else {
                    self.pool[prev as usize].next = el.next;
                }
                self.pool[e as usize].next = self.free;
                self.free = e;
                set.size -= 1;
                set.lastmod = now;
                return;
            }
            prev = e;
            e = el.next;
        }
    }

    /// `ip_vs_dest_set_eraseall`.
    fn clear(&mut self, set: &mut DestSet) {
        let mut e = set.head;
        while e != NIL {
            let next = self.pool[e as usize].next;
            self.pool[e as usize].next = self.free;
            self.free = e;
            e = next;
        }
        set.head = NIL;
        set.size = 0;
    }

    /// The members with their dests, in set order.
    fn members<'a>(
        &'a self,
        set: &DestSet,
        dests: &'a [Dest],
    ) -> impl Iterator<Item = (usize, &'a Dest)> + 'a {
        self.iter(set).filter_map(|i| dests.get(i).map(|d| (i, d)))
    }

    /// `ip_vs_dest_set_min`: weighted least-connection among the linked,
    /// non-overloaded members of positive weight, the first on ties.
    fn min(&self, set: &DestSet, dests: &[Dest]) -> Option<usize> {
        least_by::<WeightedLeastConn>(self.members(set, dests))
    }

    /// `ip_vs_dest_set_max`: the most loaded member of positive weight,
    /// whatever its state, the first on ties.
    fn max(&self, set: &DestSet, dests: &[Dest]) -> Option<usize> {
        least_by::<MostLoaded>(self.members(set, dests))
    }
}

/// `ip_vs_dest_set_max`'s order: the most loaded is the least by negated
/// overhead (`moh * dw < doh * mw` is `-moh * dw > -doh * mw`).
struct MostLoaded;

impl Rank for MostLoaded {
    #[inline]
    fn eligible(d: &Dest) -> bool {
        d.weight > 0
    }

    #[inline]
    fn cost(d: &Dest) -> i128 {
        -WeightedLeastConn::cost(d)
    }
}

/// IPVS `lblcr`.
#[derive(Debug)]
pub struct Lblcr {
    table: LocalityTable<DestSet>,
    elems: Elems,
}

impl Default for Lblcr {
    fn default() -> Self {
        Lblcr::new()
    }
}

impl Lblcr {
    pub fn new() -> Lblcr {
        Lblcr::with_expiration(DEFAULT_EXPIRATION)
    }

    /// With another `net.ipv4.vs.lblcr_expiration`.
    pub fn with_expiration(expiration: Duration) -> Lblcr {
        Lblcr {
            table: LocalityTable::new(expiration),
            elems: Elems::new(ELEM_CAPACITY),
        }
    }

    #[cfg(test)]
    fn with_limits(max_size: usize, capacity: usize, elems: usize) -> Lblcr {
        Lblcr {
            table: LocalityTable::with_limits(max_size, capacity, DEFAULT_EXPIRATION),
            elems: Elems::new(elems),
        }
    }

    /// Number of cached destination addresses.
    pub fn cached(&self) -> usize {
        self.table.len()
    }

    /// The dest set of a destination address, newest member first.
    pub fn set_of(&self, addr: &std::net::IpAddr) -> Option<Vec<usize>> {
        let e = self.table.get(addr)?;
        Some(self.elems.iter(&self.table.entry(e).val).collect())
    }
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblcr
    }

    fn update(&mut self, _dests: &[Dest]) {}

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let now = input.now;
        let elems = &mut self.elems;
        self.table.expire(now, |set| elems.clear(set));
        let expiration = self.table.expiration;

        if let Some(e) = self.table.get(&input.dst) {
            let en = self.table.entry_mut(e);
            en.lastuse = now;
            let set = &mut en.val;
            let dest = self.elems.min(set, dests);
            if set.size > 1
                && now > set.lastmod + expiration
                && let Some(m) = self.elems.max(set, dests)
            {
                self.elems.erase(set, m, now);
            }
            // The pick stands even if the shrink just removed it from the set.
            if let Some(i) = dest
                && !locality_overloaded(&dests[i], dests)
            {
                return Some(i);
            }
            let pick = least::<WeightedLeastConn>(dests)?;
            self.elems.insert(set, pick, true, now);
            return Some(pick);
        }

        let pick = least::<WeightedLeastConn>(dests)?;
        let empty = DestSet {
            head: NIL,
            size: 0,
            lastmod: now,
        };
        if let Some(e) = self.table.insert(input.dst, now, empty) {
            let set = &mut self.table.entry_mut(e).val;
            self.elems.insert(set, pick, false, now);
        }
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{at, dests, dests6, input};
    use std::net::IpAddr;

    const ORIGIN: &str = "203.0.113.1";

    fn to(dst: &str, secs: u64) -> SchedInput {
        at(input("192.0.2.9", 4000, dst), Timestamp::from_secs(secs))
    }

    fn origin() -> IpAddr {
        ORIGIN.parse().unwrap()
    }

    #[test]
    fn set_grows_when_member_is_overloaded() {
        let mut d = dests(&[2, 2, 2]);
        let mut s = Lblcr::new();
        s.update(&d);
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        assert_eq!(s.set_of(&origin()), Some(vec![0]));
        d[0].active_conns = 3; // > 2, and 1 and 2 are idle
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![1, 0]), "newest first");
        // 1 is least loaded in the set now
        d[1].active_conns = 1;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 2)), Some(1));
        // 0 and 1 both loaded: set min is 1 (256/2 < 768/2), not overloaded
        d[1].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 3)), Some(1));
        d[1].active_conns = 3;
        // set min is 1 again (tie with 0, first member wins), overloaded,
        // 2 is idle: it joins
        assert_eq!(s.schedule(&d, &to(ORIGIN, 4)), Some(2));
        assert_eq!(s.set_of(&origin()), Some(vec![2, 1, 0]));
        assert_eq!(s.cached(), 1);
    }

    #[test]
    fn set_min_skips_quiesced_overloaded_removed_members() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![1, 0]));
        d[1].overloaded = true;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 2)), Some(2));
        d[2].available = false;
        s.update(&d);
        d[1].overloaded = false;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 3)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![2, 1, 0]));
        d[1].weight = 0;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 4)), None);
    }

    #[test]
    fn stale_set_sheds_its_most_loaded_member() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblcr::new();
        let day = 24 * 3600;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 10)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![1, 0]));
        // lookups keep the entry alive but do not modify the set
        d[1].active_conns = 1;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1000)), Some(1));
        // lastmod 10 + a day is not yet passed (strictly after is needed)
        assert_eq!(s.schedule(&d, &to(ORIGIN, day + 10)), Some(1));
        assert_eq!(s.set_of(&origin()).unwrap().len(), 2);
        // one second later 0 (most loaded) goes; 1 is still picked
        assert_eq!(s.schedule(&d, &to(ORIGIN, day + 11)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![1]));
        // a single member is never shed (the entry itself, last used at
        // day + 11, survives the full check at 172 800 s)
        assert_eq!(s.schedule(&d, &to(ORIGIN, 2 * day + 100)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![1]));
    }

    #[test]
    fn shed_member_may_still_serve_this_connection() {
        let mut d = dests(&[1, 4]);
        let mut s = Lblcr::new();
        let day = 24 * 3600;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        // 1 loaded 3/4, 0 idle: set min = 0; set max = 1 (768/4 > 0/1)
        d[0].active_conns = 0;
        d[1].active_conns = 3;
        assert_eq!(s.schedule(&d, &to(ORIGIN, day + 2)), Some(0));
        assert_eq!(s.set_of(&origin()), Some(vec![0]));
        // now make the min also the max: 1 idle again, 0 loaded 1/1
        let mut s = Lblcr::new();
        d[0].active_conns = 0;
        d[1].active_conns = 0;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        d[0].active_conns = 1; // 256/1
        d[1].active_conns = 2; // 512/4: min is 1 and max is 0
        d[1].overloaded = true; // min is 0 now, and max is 0 too
        assert_eq!(s.schedule(&d, &to(ORIGIN, day + 2)), Some(0));
        assert_eq!(s.set_of(&origin()), Some(vec![1]));
    }

    #[test]
    fn rescheduling_to_a_member_neither_duplicates_nor_touches_lastmod() {
        let mut d = dests(&[1, 1, 8]);
        let mut s = Lblcr::new();
        let day = 24 * 3600;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![1, 0]));
        // set min is 1 (tie, first member) and it is overloaded since 2 is
        // underused (no active); wlc over the service picks 0 because 2's
        // inactive connections weigh 10000/8
        d[1].active_conns = 2;
        d[2].inact_conns = 10_000;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 2)), Some(0));
        assert_eq!(s.set_of(&origin()), Some(vec![1, 0]));
        // lastmod is still 1 s: the set is stale one day and one second
        // later and sheds its most loaded member (1, first on the tie)
        assert_eq!(s.schedule(&d, &to(ORIGIN, day + 2)), Some(0));
        assert_eq!(s.set_of(&origin()), Some(vec![0]));
    }

    #[test]
    fn set_max_counts_removed_members() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblcr::new();
        let day = 24 * 3600;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        d[0].available = false;
        s.update(&d);
        assert_eq!(s.schedule(&d, &to(ORIGIN, day + 2)), Some(1));
        assert_eq!(s.set_of(&origin()), Some(vec![1]));

        // the removed dest can also seed the search as the newest member
        let mut d = dests(&[1, 1]);
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        d[1].active_conns = 3;
        d[1].available = false;
        s.update(&d);
        // set min skips removed 1 and serves 0; set max is removed 1
        assert_eq!(s.schedule(&d, &to(ORIGIN, day + 2)), Some(0));
        assert_eq!(s.set_of(&origin()), Some(vec![0]));
    }

    #[test]
    fn whole_entries_expire_and_release_their_members() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblcr::with_limits(16, 4, 2);
        assert_eq!(s.schedule(&d, &to(ORIGIN, 0)), Some(0));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to(ORIGIN, 1)), Some(1));
        // member pool (2) is full: a new address gets an entry, no member
        assert_eq!(s.schedule(&d, &to("203.0.113.2", 2)), Some(1));
        assert_eq!(s.set_of(&"203.0.113.2".parse().unwrap()), Some(vec![]));
        // an empty set has no min: scheduled afresh, member pool still full
        assert_eq!(s.schedule(&d, &to("203.0.113.2", 3)), Some(1));
        // full check at 1800 s grid after lastuse + a day frees everything
        let later = 2 * 24 * 3600;
        d[0].active_conns = 0;
        assert_eq!(s.schedule(&d, &to("203.0.113.3", later)), Some(0));
        assert_eq!(s.cached(), 1);
        assert_eq!(s.set_of(&"203.0.113.3".parse().unwrap()), Some(vec![0]));
        d[0].active_conns = 2;
        assert_eq!(s.schedule(&d, &to("203.0.113.3", later + 1)), Some(1));
        assert_eq!(s.set_of(&"203.0.113.3".parse().unwrap()), Some(vec![1, 0]));
    }

    #[test]
    fn ipv6_destination_addresses() {
        let mut d = dests6(&[1, 1]);
        let mut s = Lblcr::new();
        let a = at(input("2001:db8:1::9", 1, "2001:db8:ff::1"), Timestamp::ZERO);
        let b = at(input("2001:db8:1::9", 1, "2001:db8:ff::2"), Timestamp::ZERO);
        assert_eq!(s.schedule(&d, &a), Some(0));
        d[0].inact_conns = 1;
        assert_eq!(s.schedule(&d, &b), Some(1));
        assert_eq!(s.schedule(&d, &a), Some(0));
        assert_eq!(s.cached(), 2);
    }
}
