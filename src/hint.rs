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
