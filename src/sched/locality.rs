//! The destination-address cache of lblc and lblcr (`ip_vs_lblc_table`,
//! `ip_vs_lblcr_table`), with the kernel's garbage collection.
//!
//! Layout follows the kernel: 1024 hash buckets (`hash_32` of the folded
//! address, 10 bits), entries chained from a bucket head. Unlike the kernel,
//! which `kmalloc`s an entry per new address, entries live in a pool that is
//! reserved once (twice the kernel's `max_size` of 16 384 entries) and
//! recycled through a free list, so scheduling never allocates; the pool's
//! pages are only touched as entries are used. When the pool is exhausted a
//! new address is simply not cached: that is exactly what the kernel does when
//! its `GFP_ATOMIC` allocation fails, and the connection is still scheduled.
//!
//! Garbage collection mirrors `ip_vs_lblc_check_expire`, a timer that fires
//! every 60 s from service creation: every 30th firing drops entries unused
//! for the expiration time (24 h by default, `lblc_expiration`); otherwise,
//! while the table holds more than `max_size` entries, it drops entries
//! unused for 6 minutes, walking buckets from a rover, until a goal of
//! `(entries - max_size) * 4 / 3` (at most `max_size / 2`) is met. Here the
//! timer is driven by the `now` of [`LocalityTable::expire`], called first
//! thing in every schedule: all firings due by `now` are run at their own
//! times before the lookup, so what a lookup can see is what the kernel's
//! lookup would see. The first call arms the timer (the pure core is not told
//! when the service was created). After a silence longer than 30 periods
//! only the last 30 firings are run and the earlier ones are just counted:
//! nothing touches the table during a silence, so the firings that are run
//! remove at least what the skipped ones would have.

use std::net::IpAddr;
use std::time::Duration;

use crate::time::Timestamp;

use super::common::{fold_addr, hash_32};

/// `IP_VS_LBLC_TAB_BITS` (`CONFIG_IP_VS_LBLC_TAB_BITS` default).
pub(crate) const TAB_BITS: u32 = 10;
pub(crate) const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: usize = TAB_SIZE - 1;
/// The kernel's `tbl->max_size`.
pub(crate) const MAX_SIZE: usize = TAB_SIZE * 16;
/// Entries reserved per table.
pub(crate) const CAPACITY: usize = MAX_SIZE * 2;
/// `CHECK_EXPIRE_INTERVAL`.
pub(crate) const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `ENTRY_TIMEOUT`: idle time after which an entry may go when the table is
/// over `max_size`.
pub(crate) const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `DEFAULT_EXPIRATION` of the `lblc_expiration`/`lblcr_expiration` sysctls.
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
/// `COUNT_FOR_FULL_EXPIRATION`.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

pub(crate) const NIL: u32 = u32::MAX;

#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub addr: IpAddr,
    pub lastuse: Timestamp,
    next: u32,
    pub val: V,
}

#[derive(Debug)]
pub(crate) struct LocalityTable<V> {
    buckets: Vec<u32>,
    pool: Vec<Entry<V>>,
    free: u32,
    entries: usize,
    capacity: usize,
    max_size: usize,
    rover: usize,
    counter: u32,
    next_check: Option<Timestamp>,
    pub expiration: Duration,
}

fn bucket_of(addr: &IpAddr) -> usize {
    hash_32(fold_addr(addr), TAB_BITS) as usize
}

fn expired(lastuse: Timestamp, age: Duration, now: Timestamp) -> bool {
    now >= lastuse + age
}

impl<V> LocalityTable<V> {
    pub fn new(expiration: Duration) -> Self {
        Self::with_limits(MAX_SIZE, CAPACITY, expiration)
    }

    /// A table with another `max_size` and pool size (tests).
    pub fn with_limits(max_size: usize, capacity: usize, expiration: Duration) -> Self {
        LocalityTable {
            buckets: vec![NIL; TAB_SIZE],
            pool: Vec::with_capacity(capacity),
            free: NIL,
            entries: 0,
            capacity,
            max_size,
            rover: 0,
            counter: 1,
            next_check: None,
            expiration,
        }
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn get(&self, addr: &IpAddr) -> Option<u32> {
        let mut e = self.buckets[bucket_of(addr)];
        while e != NIL {
            let en = &self.pool[e as usize];
            if en.addr == *addr {
                return Some(e);
            }
            e = en.next;
        }
        None
    }

    pub fn entry(&self, idx: u32) -> &Entry<V> {
        &self.pool[idx as usize]
    }

    pub fn entry_mut(&mut self, idx: u32) -> &mut Entry<V> {
        &mut self.pool[idx as usize]
    }

    /// Adds an entry for an address not in the table, at the head of its
    /// bucket. `None` when the pool is exhausted (nothing is cached).
    pub fn insert(&mut self, addr: IpAddr, now: Timestamp, val: V) -> Option<u32> {
        let b = bucket_of(&addr);
        let head = self.buckets[b];
        let entry = Entry {
            addr,
            lastuse: now,
            next: head,
            val,
        };
        let idx = if self.free != NIL {
            let idx = self.free;
            self.free = self.pool[idx as usize].next;
            self.pool[idx as usize] = entry;
            idx
        } else if self.pool.len() < self.capacity {
            self.pool.push(entry);
            (self.pool.len() - 1) as u32
        } else {
            return None;
        };
        self.buckets[b] = idx;
        self.entries += 1;
        Some(idx)
    }

    /// Runs the garbage-collection timer up to `now`; `release` is handed the
    /// value of every entry dropped.
    pub fn expire(&mut self, now: Timestamp, mut release: impl FnMut(&mut V)) {
        let Some(next) = self.next_check else {
            self.next_check = Some(now + CHECK_EXPIRE_INTERVAL);
            return;
        };
        if now < next {
            return;
        }
        let period = CHECK_EXPIRE_INTERVAL.as_nanos() as u64;
        let due = (now.0 - next.0) / period + 1;
        let mut t = next;
        let keep = COUNT_FOR_FULL_EXPIRATION as u64;
        if due > keep {
            let skip = due - keep;
            let pos = (self.counter as u64 - 1 + skip) % keep;
            self.counter = pos as u32 + 1;
            t = Timestamp(next.0 + skip * period);
        }
        while t <= now {
            self.check_expire(t, &mut release);
            t = t + CHECK_EXPIRE_INTERVAL;
        }
        self.next_check = Some(t);
    }

    /// One firing of `ip_vs_lblc_check_expire` at time `now`.
    fn check_expire(&mut self, now: Timestamp, release: &mut impl FnMut(&mut V)) {
        if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            let exp = self.expiration;
            let mut j = self.rover;
            for _ in 0..TAB_SIZE {
                j = (j + 1) & TAB_MASK;
                self.drop_idle(j, exp, now, release);
            }
            self.rover = j;
            self.counter = 1;
            return;
        }
        if self.entries <= self.max_size {
            self.counter += 1;
            return;
        }
        let over = (self.entries - self.max_size) as i64;
        let mut goal = (over * 4 / 3).min(self.max_size as i64 / 2);
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & TAB_MASK;
            goal -= self.drop_idle(j, ENTRY_TIMEOUT, now, release) as i64;
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
    }

    /// Unlinks every entry of bucket `b` idle for `age`; returns how many.
    fn drop_idle(
        &mut self,
        b: usize,
        age: Duration,
        now: Timestamp,
        release: &mut impl FnMut(&mut V),
    ) -> usize {
        let mut removed = 0;
        let mut prev = NIL;
        let mut e = self.buckets[b];
        while e != NIL {
            let en = &mut self.pool[e as usize];
            let next = en.next;
            if expired(en.lastuse, age, now) {
                release(&mut en.val);
                en.next = self.free;
                self.free = e;
                if prev == NIL {
                    self.buckets[b] = next;
                } else {
                    self.pool[prev as usize].next = next;
                }
                self.entries -= 1;
                removed += 1;
            } else {
                prev = e;
            }
            e = next;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> IpAddr {
        IpAddr::V4((0x0A00_0000 + i).into())
    }

    fn secs(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn insert_get_and_pool_exhaustion() {
        let mut t: LocalityTable<u32> = LocalityTable::with_limits(4, 3, DEFAULT_EXPIRATION);
        assert_eq!(t.insert(addr(1), secs(0), 7), Some(0));
        assert!(t.insert(addr(2), secs(0), 8).is_some());
        assert!(t.insert(addr(3), secs(0), 9).is_some());
        assert_eq!(t.insert(addr(4), secs(0), 9), None);
        assert_eq!(t.len(), 3);
        assert_eq!(t.entry(t.get(&addr(2)).unwrap()).val, 8);
        assert_eq!(t.get(&addr(4)), None);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(t.get(&v6), None);
    }

    #[test]
    fn full_check_runs_on_the_30th_firing_and_frees_slots() {
        let mut t: LocalityTable<u32> = LocalityTable::with_limits(16, 2, Duration::from_secs(600));
        t.expire(secs(0), |_| {}); // arms the timer: first firing at 60 s
        t.insert(addr(1), secs(0), 1);
        t.insert(addr(2), secs(0), 2);
        let mut released = Vec::new();
        // firings at 60..=1740 s only count (table within max_size)
        t.expire(secs(1799), |v| released.push(*v));
        assert_eq!(t.len(), 2);
        // the 30th firing, at 1800 s, is the full check
        t.expire(secs(1800), |v| released.push(*v));
        assert_eq!(t.len(), 0);
        released.sort();
        assert_eq!(released, [1, 2]);
        // both slots come back through the free list
        assert!(t.insert(addr(3), secs(1800), 3).is_some());
        assert!(t.insert(addr(4), secs(1800), 4).is_some());
        assert_eq!(t.insert(addr(5), secs(1800), 5), None);
        assert_eq!(t.entry(t.get(&addr(4)).unwrap()).val, 4);
    }

    #[test]
    fn full_check_keeps_recently_used_entries() {
        let mut t: LocalityTable<u32> =
            LocalityTable::with_limits(16, 8, Duration::from_secs(1000));
        t.expire(secs(0), |_| {});
        t.insert(addr(1), secs(0), 1);
        t.insert(addr(2), secs(900), 2);
        t.expire(secs(1800), |_| {});
        assert_eq!(t.get(&addr(1)), None);
        assert!(t.get(&addr(2)).is_some());
        // expiry is inclusive: lastuse + expiration == firing time goes
        let mut t: LocalityTable<u32> =
            LocalityTable::with_limits(16, 8, Duration::from_secs(1800));
        t.expire(secs(0), |_| {});
        t.insert(addr(1), secs(0), 1);
        t.expire(secs(1800), |_| {});
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn over_max_size_drops_entries_idle_for_six_minutes() {
        let mut t: LocalityTable<u32> = LocalityTable::with_limits(4, 16, DEFAULT_EXPIRATION);
        t.expire(secs(0), |_| {});
        for i in 0..6 {
            t.insert(addr(i), secs(0), i);
        }
        t.insert(addr(100), secs(300), 100);
        // 7 entries > 4: goal (7-4)*4/3 = 4, capped at 4/2 = 2, but a
        // bucket is always finished, and only entries idle 360 s may go
        t.expire(secs(359), |_| {});
        assert_eq!(t.len(), 7, "nothing idle for 6 minutes yet");
        t.expire(secs(360), |_| {});
        assert!(t.len() <= 5, "at least the goal of 2 went: {}", t.len());
        assert!(t.get(&addr(100)).is_some(), "recently used entry stays");
        // later firings keep trimming down to max_size
        t.expire(secs(600), |_| {});
        assert!(t.len() <= 4);
        assert!(t.get(&addr(100)).is_some());
    }

    #[test]
    fn long_silence_runs_at_most_thirty_firings_but_still_expires() {
        let mut t: LocalityTable<u32> =
            LocalityTable::with_limits(16, 8, Duration::from_secs(3600));
        t.expire(secs(0), |_| {});
        t.insert(addr(1), secs(0), 1);
        // a year later: the entry is long expired and the timer re-armed on
        // the 60 s grid
        let year = 365 * 24 * 3600;
        t.expire(secs(year), |_| {});
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_check, Some(secs(year + 60)));
    }
}
