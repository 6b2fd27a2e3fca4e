//! Cache prefetch hints for the hot path.
//!
//! A worker's frames arrive in batches, and each frame costs two or three
//! cache misses that do not depend on one another across frames: the
//! frame's headers (written by the kernel, often on another core), the
//! connection index slot its tuple hashes to, and the connection entry
//! that slot names. Touched one frame after another, those misses add up;
//! issued ahead of use for the next frames of the batch, they overlap
//! (the pipelining DPDK and VPP graph nodes do). A prefetch is only a
//! hint: it never faults, whatever the address, and changes nothing a
//! program can observe but timing.

/// Asks the CPU to bring the cache line holding `p` into L1.
#[inline(always)]
pub fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it does not fault on any address
    // (mapped or not) and has no architectural effect.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch_ptr`] of the start of `r` and, for values longer than one
/// cache line, of their last byte.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    let p = (r as *const T).cast::<u8>();
    prefetch_ptr(p);
    if std::mem::size_of::<T>() > 64 {
        prefetch_ptr(p.wrapping_add(std::mem::size_of::<T>() - 1));
    }
}

/// A batch of items (a worker's received frames) that [`pipeline`] runs
/// through three prefetch stages before processing each: the stages of
/// item `i`, each reading only what the one before brought in.
pub trait Batch {
    /// Stage 1: the item's own bytes (a frame's headers).
    fn fetch_item(&self, i: usize);
    /// Stage 2: what the item's key hashes to (connection index slots);
    /// reads the item's bytes.
    fn fetch_slots(&self, i: usize);
    /// Stage 3: the entry those slots name; reads the slots.
    fn fetch_entry(&self, i: usize);
    /// The item itself, its lines cached by now.
    fn process(&mut self, i: usize);
}

/// How many items ahead of the one processed [`pipeline`] runs each
/// stage. Each distance must cover a miss of the stage before it
/// (memory latency over the time one item takes, some 50 to 100 ns of
/// processing against up to 150 ns for a miss that also walks the page
/// tables, as under a hypervisor), and the lines in flight (about
/// `ITEM_AHEAD` + `SLOTS_AHEAD` + twice `ENTRY_AHEAD`) must stay within the
/// core's outstanding-miss buffers (20 or more on current x86 cores), or
/// the prefetches themselves stall.
pub const ITEM_AHEAD: usize = 8;
pub const SLOTS_AHEAD: usize = 4;
pub const ENTRY_AHEAD: usize = 2;

/// Processes items `0..n` of `b` in order, item `i + ITEM_AHEAD`'s bytes,
/// `i + SLOTS_AHEAD`'s slots and `i + ENTRY_AHEAD`'s entry prefetched
/// while item `i` is processed (the pipelining DPDK and VPP graph nodes
/// do), so the misses of consecutive items overlap instead of following
/// one another. The first items' stages run up front.
#[inline(always)]
pub fn pipeline(b: &mut impl Batch, n: usize) {
    for i in 0..n.min(ITEM_AHEAD) {
        b.fetch_item(i);
    }
    for i in 0..n.min(SLOTS_AHEAD) {
        b.fetch_slots(i);
    }
    for i in 0..n.min(ENTRY_AHEAD) {
        b.fetch_entry(i);
    }
    for i in 0..n {
        if i + ITEM_AHEAD < n {
            b.fetch_item(i + ITEM_AHEAD);
        }
        if i + SLOTS_AHEAD < n {
            b.fetch_slots(i + SLOTS_AHEAD);
        }
        if i + ENTRY_AHEAD < n {
            b.fetch_entry(i + ENTRY_AHEAD);
        }
        b.process(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the order of the stages.
    struct Log(Vec<(char, usize)>);

    impl Batch for std::cell::RefCell<Log> {
        fn fetch_item(&self, i: usize) {
            self.borrow_mut().0.push(('h', i));
        }
        fn fetch_slots(&self, i: usize) {
            self.borrow_mut().0.push(('s', i));
        }
        fn fetch_entry(&self, i: usize) {
            self.borrow_mut().0.push(('e', i));
        }
        fn process(&mut self, i: usize) {
            self.get_mut().0.push(('p', i));
        }
    }

    #[test]
    fn every_item_runs_each_stage_once_in_order_and_ahead() {
        for n in [0, 1, 2, 3, 5, 8, 9, 64] {
            let mut b = std::cell::RefCell::new(Log(Vec::new()));
            pipeline(&mut b, n);
            let log = b.into_inner().0;
            for i in 0..n {
                let at = |s: char| {
                    let hits: Vec<usize> = (0..log.len()).filter(|&k| log[k] == (s, i)).collect();
                    assert_eq!(hits.len(), 1, "n {n}: stage {s} of item {i}: {hits:?}");
                    hits[0]
                };
                let (h, s, e, p) = (at('h'), at('s'), at('e'), at('p'));
                assert!(h < s && s < e && e < p, "n {n} item {i}: {h} {s} {e} {p}");
                // Ahead: each stage of item i runs before the item its
                // distance back is processed (for items past the prologue).
                for (stage, at_i, ahead) in [
                    ("item", h, ITEM_AHEAD),
                    ("slots", s, SLOTS_AHEAD),
                    ("entry", e, ENTRY_AHEAD),
                ] {
                    if let Some(back) = i.checked_sub(ahead) {
                        let processed = log.iter().position(|&x| x == ('p', back)).unwrap();
                        assert!(at_i < processed, "n {n} item {i}: {stage} not ahead");
                    }
                }
            }
            assert_eq!(log.len(), 4 * n);
        }
    }
}
