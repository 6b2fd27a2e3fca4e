//! Expiry and eviction: the timers, and reclaiming entries when the slab
//! is full (the capacity policy and `drop_entry` of the `conn` module doc).

use super::{ConnTable, KIND_CONN, KIND_OUT, KIND_TPL, Tuple};
use crate::conn::wheel::tick_floor;
use crate::conn::{
    ConnState, DROP_ENTRY_MAX_PKTS, EVICT_SCAN, F_TPL_INVALID, F_TPL_LINGER, TEMPLATE_LINGER,
};
use crate::service::ServiceTable;
use crate::time::Timestamp;

impl ConnTable {
    /// Runs every timer due at `now`: frees expired conns and templates
    /// (unbinding them from their dest) and re-arms templates that still
    /// control conns for [`TEMPLATE_LINGER`]. Returns how many entries were
    /// freed. O(1) when nothing is due.
    #[inline]
    pub fn expire(&mut self, now: Timestamp, services: &mut ServiceTable) -> usize {
        self.expire_some(now, services, usize::MAX)
    }

    /// [`ConnTable::expire`] taking at most `budget` due timers: a worker's
    /// round calls it so that thousands of connections falling due in the
    /// same tick (opened in the same burst) cost several rounds a slice
    /// each rather than one round a stall that every frame queued behind
    /// it waits out. What is left stays due (a lookup still finds those
    /// conns, and a packet for one re-arms it, as a packet racing the
    /// kernel's timer would) and is taken first by the next call;
    /// [`ConnTable::expiry_pending`] says so.
    #[inline]
    pub fn expire_some(
        &mut self,
        now: Timestamp,
        services: &mut ServiceTable,
        budget: usize,
    ) -> usize {
        // Inlined: the per-batch call with nothing due is one comparison
        // (no tick division, no call).
        if self.wheel.idle_at(now.0) {
            return 0;
        }
        self.expire_due(now, services, budget)
    }

    /// Whether timers are due that an [`ConnTable::expire_some`] left for
    /// later.
    #[inline]
    pub fn expiry_pending(&self) -> bool {
        self.wheel.has_due()
    }

    #[inline(never)]
    fn expire_due(&mut self, now: Timestamp, services: &mut ServiceTable, budget: usize) -> usize {
        let now_tick = tick_floor(now.0);
        if self.wheel.idle(now_tick) {
            return 0;
        }
        self.observe(now);
        let clock = self.clock;
        self.collect_due(now_tick);
        let mut freed = 0;
        // Round 0 runs every due timer. A template that still controls conns
        // is re-armed for TEMPLATE_LINGER after its own deadline, as the
        // kernel's timer would have been; when `now` is already past that
        // (a sparse clock: replay, an idle worker), it is deferred to round 1,
        // after every conn due by `now` has been freed, so it sees what the
        // kernel would see at that later deadline.
        // With a budget that runs out, round 1 waits for a later call (the
        // deferred templates are on the immediate list by then).
        let mut deferred = false;
        let mut taken = 0;
        for round in 0..2 {
            if round == 1 {
                if !deferred {
                    break;
                }
                self.collect_due(now_tick);
            }
            while taken < budget
                && let Some(i) = self.wheel.pop_due()
            {
                taken += 1;
                let c = &mut self.slab[i as usize];
                // Re-armed lazily (`rearm`): not due yet, file it by its
                // real deadline.
                let due = c.due_tick(clock);
                if due > now_tick {
                    self.wheel.insert(i, due);
                    continue;
                }
                if c.is_template() && c.control > 0 {
                    c.flags |= F_TPL_LINGER;
                    let mut next = c.expires(clock) + TEMPLATE_LINGER;
                    if round == 0 && next <= now {
                        c.set_expires(next, clock);
                        self.wheel.insert_immediate(i);
                        deferred = true;
                        continue;
                    }
                    if next <= now {
                        // Still controlling live conns: the kernel re-armed
                        // it every TEMPLATE_LINGER until now.
                        let periods = now.since(next).as_nanos() / TEMPLATE_LINGER.as_nanos() + 1;
                        next = next + TEMPLATE_LINGER * periods as u32;
                    }
                    c.set_expires(next, clock);
                    self.wheel.insert(i, c.due_tick(clock));
                    continue;
                }
                self.release(i, services);
                freed += 1;
            }
        }
        self.prefetch_next_due(now_tick);
        freed
    }

    /// Software pipelining of expiry over the next ticks: what freeing an
    /// entry touches beyond its own slab entry and link is its index slots
    /// (cache misses at random places, most of the cost of freeing it),
    /// and their address needs the entry's key. So, for a few entries
    /// armed for the next tick, the entry (prefetched a tick earlier) is
    /// read and its index slots prefetched; for a few armed for the tick
    /// after, their entry and link are prefetched. A hint only: nothing
    /// changes, and an entry re-armed meanwhile just wasted a prefetch.
    fn prefetch_next_due(&self, now_tick: u64) {
        const AHEAD: usize = 8;
        self.wheel.peek_tick(now_tick + 1, AHEAD, |i| {
            let c = &self.slab[i as usize];
            if !c.used() {
                return;
            }
            if c.is_template() {
                if !c.has(F_TPL_INVALID) {
                    let h = self.hash::<KIND_TPL>(&Tuple::of::<KIND_TPL>(c));
                    self.in_idx.prefetch(h);
                }
            } else if !c.is_one_packet() {
                let h = self.hash::<KIND_CONN>(&Tuple::of::<KIND_CONN>(c));
                self.in_idx.prefetch(h);
                if c.fwd().sees_replies() {
                    let h = self.hash::<KIND_OUT>(&Tuple::of::<KIND_OUT>(c));
                    self.out_idx.prefetch(h);
                }
            }
        });
        self.wheel.peek_tick(now_tick + 2, AHEAD, |i| {
            crate::hint::prefetch(&self.slab[i as usize]);
            crate::hint::prefetch(self.wheel.link(i));
        });
    }

    /// Moves every entry armed for `now_tick` or earlier onto the wheel's
    /// due list (placed by its deadline, which a lazy re-arm may have
    /// pushed out).
    fn collect_due(&mut self, now_tick: u64) {
        let (slab, clock) = (&self.slab, self.clock);
        self.wheel
            .collect_due(now_tick, |i| slab[i as usize].due_tick(clock));
    }

    /// Makes `n` (at most 2) entries free, evicting the best candidates of
    /// one bounded scan (see the module doc). Evicts nothing and returns
    /// false when the scan cannot supply enough candidates.
    pub(super) fn ensure_room(&mut self, n: usize, services: &mut ServiceTable) -> bool {
        let missing = n.saturating_sub(self.slab.len() - self.len);
        if missing == 0 {
            return true;
        }
        debug_assert!(missing <= 2);
        // The `missing` candidates nearest to expiry, soonest first: first
        // among the half-open and closing conns, then (drop_entry) among
        // the established ones with few client packets.
        let mut best: [[Option<(u32, u64)>; 2]; 2] = [[None; 2]; 2];
        let (slab, clock) = (&self.slab, self.clock);
        let drop_entry = self.sysctls.drop_entry;
        self.wheel.scan(EVICT_SCAN, |i| {
            let c = &slab[i as usize];
            let tier = if c.is_template() {
                return;
            } else if c.state != ConnState::Established {
                0
            } else if drop_entry && c.in_pkts <= DROP_ENTRY_MAX_PKTS {
                1
            } else {
                return;
            };
            let cand = (i, c.due_tick(clock));
            let best = &mut best[tier];
            match *best {
                [None, _] => best[0] = Some(cand),
                [Some(a), _] if cand.1 < a.1 => *best = [Some(cand), best[0]],
                [Some(_), None] => best[1] = Some(cand),
                [Some(_), Some(b)] if cand.1 < b.1 => best[1] = Some(cand),
                _ => {}
            }
        });
        let mut ranked = best.into_iter().flatten().flatten();
        let chosen = [ranked.next(), ranked.next()];
        if chosen.iter().take(missing).any(Option::is_none) {
            return false;
        }
        for (i, _) in chosen.into_iter().take(missing).flatten() {
            self.release(i, services);
            self.evictions += 1;
        }
        true
    }
}
