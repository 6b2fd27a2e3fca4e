//! The connection timers: a hierarchical timing wheel with intrusive,
//! index-linked lists.
//!
//! Every slab entry `i < n` owns one [`Link`]; the wheel's list heads are
//! sentinel links stored after them (`n + list`), so every list is circular
//! and unlinking needs neither the slot number nor a branch on the head.
//!
//! Layout: ticks of [`TICK_NS`] (1 ms). Level 0 has 256 slots of one tick,
//! levels 1..=4 have 64 slots of 2^8, 2^14, 2^20 and 2^26 ticks: 2^32 ms
//! (49 days) of range; later deadlines are parked in the farthest slot and
//! placed again when it cascades. Two extra lists: `IMMEDIATE` (due at the
//! next [`Wheel::collect_due`] whatever the time, IPVS's "expire now") and
//! `DUE` (entries collected and not yet handled by the table).
//!
//! Invariants:
//! - `cur` is the first tick not yet processed; every entry in a level-0
//!   slot is due once `cur` reaches that slot, every entry of a higher level
//!   is cascaded (re-placed by its real tick) at the block boundary that
//!   starts its block, never later than its tick.
//! - A bit is set in `l0_bits` / `hi_bits` iff the slot's list is non-empty,
//!   so idle time is skipped 256 ticks at a time and an idle wheel costs one
//!   comparison per call.
//! - Nothing here allocates after [`Wheel::new`].
//! - A link is two slab indexes (8 bytes an entry): it does not record
//!   which list the entry is on, so [`Wheel::insert`] always unlinks and
//!   appends. The packets that keep a connection's state do not reach the
//!   wheel at all (the table re-arms lazily), so what moves is a state
//!   change or a lazily re-armed timer that fired. The order of entries
//!   within one list carries no meaning: every entry of a level-0 slot is
//!   due at the same tick, and higher slots are re-placed by each entry's
//!   own tick.
//!
//! Deliberately not here: what an expiry means (the table decides), clocks.

/// Length of one wheel tick in nanoseconds.
pub(crate) const TICK_NS: u64 = 1_000_000;
pub(crate) const NIL: u32 = u32::MAX;

const L0_SLOTS: usize = 256;
const HI_SLOTS: usize = 64;
const HI_LEVELS: usize = 4;
const IMMEDIATE: usize = 0;
const DUE: usize = 1;
const L0_BASE: usize = 2;
const HI_BASE: usize = L0_BASE + L0_SLOTS;
const LISTS: usize = HI_BASE + HI_LEVELS * HI_SLOTS;
const MAX_DELTA: u64 = (1 << 32) - 1;

/// The tick a deadline falls due in (rounded up, so never early).
pub(crate) const fn tick_ceil(ns: u64) -> u64 {
    ns.div_ceil(TICK_NS)
}

/// The last tick fully elapsed at `ns`.
pub(crate) fn tick_floor(ns: u64) -> u64 {
    ns / TICK_NS
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct Link {
    next: u32,
    prev: u32,
}

const UNLINKED: Link = Link {
    next: NIL,
    prev: NIL,
};

#[derive(Debug)]
pub(crate) struct Wheel {
    links: Box<[Link]>,
    n: u32,
    cur: u64,
    l0_bits: [u64; 4],
    hi_bits: [u64; HI_LEVELS],
}

impl Wheel {
    /// A wheel for entries `0..n`.
    pub(crate) fn new(n: u32) -> Wheel {
        // Entries unlinked, then each list's sentinel, empty (its own
        // neighbour).
        let links = crate::hugemem::boxed_slice(n as usize + LISTS, |i| {
            if i < n as usize {
                UNLINKED
            } else {
                Link {
                    next: i as u32,
                    prev: i as u32,
                }
            }
        });
        Wheel {
            links,
            n,
            cur: 0,
            l0_bits: [0; 4],
            hi_bits: [0; HI_LEVELS],
        }
    }

    /// The links' middle byte (for tests of their memory).
    #[cfg(test)]
    pub(crate) fn middle(&self) -> *const u8 {
        crate::hugemem::tests::middle(&self.links)
    }

    /// Bytes used by the links (entries and sentinels).
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.links)
    }

    fn head(&self, list: usize) -> u32 {
        self.n + list as u32
    }

    fn is_empty_list(&self, list: usize) -> bool {
        let h = self.head(list);
        self.links[h as usize].next == h
    }

    fn set_bit(&mut self, list: usize) {
        if list >= HI_BASE {
            let l = (list - HI_BASE) / HI_SLOTS;
            self.hi_bits[l] |= 1 << ((list - HI_BASE) % HI_SLOTS);
        } else if list >= L0_BASE {
            let s = list - L0_BASE;
            self.l0_bits[s / 64] |= 1 << (s % 64);
        }
    }

    fn clear_bit(&mut self, list: usize) {
        if list >= HI_BASE {
            let l = (list - HI_BASE) / HI_SLOTS;
            self.hi_bits[l] &= !(1 << ((list - HI_BASE) % HI_SLOTS));
        } else if list >= L0_BASE {
            let s = list - L0_BASE;
            self.l0_bits[s / 64] &= !(1 << (s % 64));
        }
    }

    fn push_back(&mut self, list: usize, i: u32) {
        let h = self.head(list);
        let last = self.links[h as usize].prev;
        self.links[i as usize] = Link {
            next: h,
            prev: last,
        };
        self.links[last as usize].next = i;
        self.links[h as usize].prev = i;
        self.set_bit(list);
    }

    /// True when entry `i` is on some list.
    #[cfg(test)]
    pub(crate) fn is_linked(&self, i: u32) -> bool {
        self.links[i as usize].next != NIL
    }

    /// Takes `i` off whatever list it is on (no-op when on none).
    pub(crate) fn remove(&mut self, i: u32) {
        let Link { next, prev, .. } = self.links[i as usize];
        if next == NIL {
            return;
        }
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        self.links[i as usize] = UNLINKED;
        // The list became empty iff both neighbours are its sentinel.
        if prev == next && prev >= self.n {
            self.clear_bit((prev - self.n) as usize);
        }
    }

    /// Whether entry `i` is on a list (armed, or collected as due).
    #[inline]
    pub(crate) fn is_armed(&self, i: u32) -> bool {
        self.links.get(i as usize).is_some_and(|l| l.next != NIL)
    }

    /// Arms entry `i` for `tick` (re-arming it if it was armed: it moves to
    /// the end of the list `tick` maps to).
    #[inline]
    pub(crate) fn insert(&mut self, i: u32, tick: u64) {
        let list = self.slot_for(tick);
        self.remove(i);
        self.push_back(list, i);
    }

    /// Makes entry `i` due at the next `collect_due`, whatever the time.
    pub(crate) fn insert_immediate(&mut self, i: u32) {
        self.remove(i);
        self.push_back(IMMEDIATE, i);
    }

    fn slot_for(&self, tick: u64) -> usize {
        let t = tick.max(self.cur);
        let delta = (t - self.cur).min(MAX_DELTA);
        let t = self.cur + delta;
        if delta < L0_SLOTS as u64 {
            return L0_BASE + (t as usize & (L0_SLOTS - 1));
        }
        // Level k holds deltas below 2^(14 + 6k): from the bit length
        // (9..=32 here) without a loop; the last level takes the rest.
        let bits = (u64::BITS - delta.leading_zeros()) as usize;
        let level = ((bits - 9) / 6).min(HI_LEVELS - 1);
        let shift = 8 + 6 * level;
        HI_BASE + level * HI_SLOTS + ((t >> shift) as usize & (HI_SLOTS - 1))
    }

    /// Moves the whole of list `from` to the end of list `to` in O(1).
    fn splice(&mut self, from: usize, to: usize) {
        if self.is_empty_list(from) {
            return;
        }
        let fh = self.head(from);
        let th = self.head(to);
        let first = self.links[fh as usize].next;
        let last = self.links[fh as usize].prev;
        let tail = self.links[th as usize].prev;
        self.links[tail as usize].next = first;
        self.links[first as usize].prev = tail;
        self.links[last as usize].next = th;
        self.links[th as usize].prev = last;
        self.links[fh as usize] = Link { next: fh, prev: fh };
        self.clear_bit(from);
        self.set_bit(to);
    }

    /// Nothing can be due at `now_tick`: the per-batch fast path. Entries
    /// collected as due but not taken yet (an expiry that ran out of its
    /// budget) count as due.
    pub(crate) fn idle(&self, now_tick: u64) -> bool {
        now_tick < self.cur && self.is_empty_list(IMMEDIATE) && self.is_empty_list(DUE)
    }

    /// Whether entries collected as due wait to be taken.
    #[inline]
    pub(crate) fn has_due(&self) -> bool {
        !self.is_empty_list(DUE)
    }

    /// [`Wheel::idle`] at `now_ns` (`tick_floor(now_ns) < cur` without the
    /// division).
    #[inline]
    pub(crate) fn idle_at(&self, now_ns: u64) -> bool {
        now_ns < self.cur.saturating_mul(TICK_NS)
            && self.is_empty_list(IMMEDIATE)
            && self.is_empty_list(DUE)
    }

    fn wheel_empty(&self) -> bool {
        self.l0_bits == [0; 4] && self.hi_bits == [0; HI_LEVELS]
    }

    /// First non-empty level-0 slot at or after `from` (no wrap).
    fn next_l0(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        let mut bits = self.l0_bits[w] & (u64::MAX << (from % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            if w == 4 {
                return None;
            }
            bits = self.l0_bits[w];
        }
    }

    /// Re-places every entry of one higher-level slot by its real tick.
    /// The slot is detached first, so an entry placed back into the same
    /// slot (a parked far deadline) cannot loop.
    fn cascade_slot(&mut self, list: usize, tick_of: &impl Fn(u32) -> u64) {
        let h = self.head(list);
        let mut i = self.links[h as usize].next;
        if i == h {
            return;
        }
        let last = self.links[h as usize].prev;
        self.links[h as usize] = Link { next: h, prev: h };
        self.clear_bit(list);
        loop {
            let next = self.links[i as usize].next;
            let l = self.slot_for(tick_of(i));
            self.push_back(l, i);
            if i == last {
                break;
            }
            i = next;
        }
    }

    /// At a 256-tick boundary: level 1's slot for the new block, and the
    /// next level's whenever the lower one wrapped to slot 0.
    fn cascade(&mut self, tick_of: &impl Fn(u32) -> u64) {
        for level in 0..HI_LEVELS {
            let shift = 8 + 6 * level;
            let idx = (self.cur >> shift) as usize & (HI_SLOTS - 1);
            if self.hi_bits[level] & (1 << idx) != 0 {
                self.cascade_slot(HI_BASE + level * HI_SLOTS + idx, tick_of);
            }
            if idx != 0 {
                break;
            }
        }
    }

    /// Moves everything due at `now_tick` (and the immediate list) onto the
    /// due list; `tick_of(i)` is entry `i`'s deadline tick.
    pub(crate) fn collect_due(&mut self, now_tick: u64, tick_of: impl Fn(u32) -> u64) {
        self.splice(IMMEDIATE, DUE);
        if self.wheel_empty() {
            self.cur = self.cur.max(now_tick.saturating_add(1));
            return;
        }
        while self.cur <= now_tick {
            if self.cur.is_multiple_of(L0_SLOTS as u64) {
                self.cascade(&tick_of);
            }
            let idx = (self.cur % L0_SLOTS as u64) as usize;
            let block = self.cur - idx as u64;
            match self.next_l0(idx) {
                Some(j) if block + j as u64 <= now_tick => {
                    self.splice(L0_BASE + j, DUE);
                    self.cur = block + j as u64 + 1;
                }
                Some(_) => {
                    self.cur = now_tick + 1;
                }
                None => {
                    let end = block + L0_SLOTS as u64;
                    self.cur = if end > now_tick { now_tick + 1 } else { end };
                }
            }
        }
    }

    /// Visits at most `limit` of the entries armed for exactly `tick`, one
    /// of the 256 ticks from `cur` on (level 0; others visit nothing): for
    /// prefetching what their expiry will touch.
    pub(crate) fn peek_tick(&self, tick: u64, limit: usize, mut visit: impl FnMut(u32)) {
        if tick < self.cur || tick - self.cur >= L0_SLOTS as u64 {
            return;
        }
        let s = (tick % L0_SLOTS as u64) as usize;
        if self.l0_bits[s / 64] & (1 << (s % 64)) != 0 {
            let mut left = limit;
            self.walk(L0_BASE + s, &mut left, &mut visit);
        }
    }

    /// Entry `i`'s link (for prefetching it).
    pub(crate) fn link(&self, i: u32) -> &Link {
        &self.links[i as usize]
    }

    /// Takes the next entry off the due list.
    pub(crate) fn pop_due(&mut self) -> Option<u32> {
        let h = self.head(DUE);
        let i = self.links[h as usize].next;
        if i == h {
            return None;
        }
        self.remove(i);
        Some(i)
    }

    /// Visits at most `limit` armed entries roughly in deadline order:
    /// the due list (collected, not yet taken), the immediate list, then
    /// level 0 from `cur` on, then each higher level from its current slot
    /// on.
    pub(crate) fn scan(&self, limit: usize, mut visit: impl FnMut(u32)) {
        let mut left = limit;
        self.walk(DUE, &mut left, &mut visit);
        self.walk(IMMEDIATE, &mut left, &mut visit);
        let start = (self.cur % L0_SLOTS as u64) as usize;
        for k in 0..L0_SLOTS {
            let s = (start + k) % L0_SLOTS;
            if left > 0 && self.l0_bits[s / 64] & (1 << (s % 64)) != 0 {
                self.walk(L0_BASE + s, &mut left, &mut visit);
            }
        }
        for level in 0..HI_LEVELS {
            let start = (self.cur >> (8 + 6 * level)) as usize & (HI_SLOTS - 1);
            for k in 0..HI_SLOTS {
                let s = (start + k) % HI_SLOTS;
                if left > 0 && self.hi_bits[level] & (1 << s) != 0 {
                    self.walk(HI_BASE + level * HI_SLOTS + s, &mut left, &mut visit);
                }
            }
        }
    }

    fn walk(&self, list: usize, left: &mut usize, visit: &mut impl FnMut(u32)) {
        let h = self.head(list);
        let mut i = self.links[h as usize].next;
        while i != h && *left > 0 {
            visit(i);
            *left -= 1;
            i = self.links[i as usize].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(w: &mut Wheel) -> Vec<u32> {
        let mut v = Vec::new();
        while let Some(i) = w.pop_due() {
            v.push(i);
        }
        v.sort();
        v
    }

    #[test]
    fn fires_at_its_tick_not_before() {
        let mut w = Wheel::new(4);
        let ticks = [5u64, 300, 20_000, 86_400_000];
        for (i, t) in ticks.iter().enumerate() {
            w.insert(i as u32, *t);
        }
        let tick_of = |i: u32| ticks[i as usize];
        for (i, t) in ticks.iter().enumerate() {
            w.collect_due(t - 1, tick_of);
            assert!(drain(&mut w).is_empty(), "entry {i} early");
            w.collect_due(*t, tick_of);
            assert_eq!(drain(&mut w), vec![i as u32]);
        }
        assert!(w.wheel_empty());
    }

    #[test]
    fn idle_is_cheap_and_immediate_is_not_idle() {
        let mut w = Wheel::new(2);
        w.collect_due(1000, |_| 0);
        assert!(w.idle(1000));
        w.insert_immediate(1);
        assert!(!w.idle(1000));
        w.collect_due(1000, |_| 0);
        assert_eq!(drain(&mut w), vec![1]);
    }

    #[test]
    fn remove_clears_the_slot_bit() {
        let mut w = Wheel::new(2);
        w.insert(0, 10);
        w.insert(1, 10);
        w.remove(0);
        assert!(!w.wheel_empty());
        w.remove(1);
        assert!(w.wheel_empty());
        assert!(!w.is_linked(1));
    }

    #[test]
    fn far_deadlines_are_parked_and_placed_again() {
        let mut w = Wheel::new(1);
        let t = 3 * (1u64 << 32);
        w.insert(0, t);
        let tick_of = |_| t;
        w.collect_due(t - 1, tick_of);
        assert!(drain(&mut w).is_empty());
        w.collect_due(t, tick_of);
        assert_eq!(drain(&mut w), vec![0]);
    }

    /// Randomised comparison with a naive model: an entry comes out exactly
    /// at the first `collect_due` whose tick is at or past its deadline.
    #[test]
    fn matches_naive_model() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        let mut rng = SmallRng::seed_from_u64(7);
        const N: usize = 300;
        let mut w = Wheel::new(N as u32);
        let mut deadline: Vec<Option<u64>> = vec![None; N];
        let mut now = 0u64;
        for _ in 0..4000 {
            let i = rng.random_range(0..N);
            match rng.random_range(0..10) {
                0..=5 => {
                    let span =
                        [10u64, 1_000, 100_000, 5_000_000, 90_000_000][rng.random_range(0..5)];
                    let t = now + rng.random_range(0..span);
                    deadline[i] = Some(t);
                    w.insert(i as u32, t);
                }
                6 => {
                    deadline[i] = None;
                    w.remove(i as u32);
                }
                _ => {
                    now += [1u64, 50, 300, 20_000, 2_000_000][rng.random_range(0..5)];
                    let snapshot = deadline.clone();
                    w.collect_due(now, |j| snapshot[j as usize].expect("armed"));
                    let got = drain(&mut w);
                    let want: Vec<u32> = (0..N)
                        .filter(|&j| deadline[j].is_some_and(|t| t <= now))
                        .map(|j| j as u32)
                        .collect();
                    assert_eq!(got, want, "at tick {now}");
                    for j in want {
                        deadline[j as usize] = None;
                    }
                }
            }
        }
    }

    #[test]
    fn level_from_bit_length_matches_the_level_ranges() {
        let mut w = Wheel::new(1);
        w.cur = 12_345;
        let mut deltas: Vec<u64> = (0..=32)
            .flat_map(|b| {
                let p = 1u64 << b;
                [p.saturating_sub(1), p, p + 1]
            })
            .collect();
        deltas.extend([MAX_DELTA, MAX_DELTA + 1, u64::MAX - w.cur]);
        for d in deltas {
            let delta = d.min(MAX_DELTA);
            let t = w.cur + delta;
            let want = if delta < L0_SLOTS as u64 {
                L0_BASE + (t as usize & (L0_SLOTS - 1))
            } else {
                // Level k: delta below 2^(14 + 6k), the last one unbounded.
                let mut level = 0;
                while level < HI_LEVELS - 1 && delta >= 1u64 << (14 + 6 * level) {
                    level += 1;
                }
                HI_BASE + level * HI_SLOTS + ((t >> (8 + 6 * level)) as usize & (HI_SLOTS - 1))
            };
            assert_eq!(w.slot_for(w.cur + d), want, "delta {d}");
        }
    }

    fn order(w: &Wheel) -> Vec<u32> {
        let mut seen = Vec::new();
        w.scan(usize::MAX, |i| seen.push(i));
        seen
    }

    #[test]
    fn rearm_within_the_same_slot_moves_the_entry_to_its_end() {
        let mut w = Wheel::new(3);
        // Level 2 slot (16 s wide in 1 ms ticks): all three share it.
        for i in 0..3 {
            w.insert(i, 900_000);
        }
        assert_eq!(order(&w), vec![0, 1, 2]);
        w.insert(0, 900_500);
        assert_eq!(order(&w), vec![1, 2, 0], "same slot: appended");
        w.insert(0, 2_000_000);
        w.insert(0, 900_001);
        assert_eq!(order(&w), vec![1, 2, 0], "other slot and back: moved");
        let tick_of = |i: u32| if i == 0 { 900_001 } else { 900_000 };
        w.collect_due(900_000, tick_of);
        assert_eq!(drain(&mut w), vec![1, 2]);
        w.collect_due(900_001, tick_of);
        assert_eq!(drain(&mut w), vec![0]);
    }

    #[test]
    fn rearm_of_a_collected_entry_takes_it_off_the_due_list() {
        let mut w = Wheel::new(2);
        w.insert(0, 10);
        w.insert(1, 10);
        w.collect_due(10, |_| 10);
        // Entry 1 is on DUE but still records level-0 slot 10 (the splice
        // does not visit entries): re-arming it for tick 10 + 256 (the same
        // level-0 slot) must still move it.
        w.insert(1, 10 + 256);
        assert_eq!(w.pop_due(), Some(0));
        assert_eq!(w.pop_due(), None);
        w.collect_due(10 + 255, |_| 10 + 256);
        assert_eq!(w.pop_due(), None);
        w.collect_due(10 + 256, |_| 10 + 256);
        assert_eq!(w.pop_due(), Some(1));
    }

    #[test]
    fn scan_visits_nearest_first_and_stops_at_limit() {
        let mut w = Wheel::new(4);
        w.insert(0, 50_000);
        w.insert(1, 40);
        w.insert(2, 3);
        w.insert_immediate(3);
        let mut seen = Vec::new();
        w.scan(3, |i| seen.push(i));
        assert_eq!(seen, vec![3, 2, 1]);
    }
}
