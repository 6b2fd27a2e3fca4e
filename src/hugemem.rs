//! Large tables on transparent huge pages.
//!
//! The connection table's slab, indexes and timer links take about 126 MB
//! at a million conns, and a packet reads them at places no cache or TLB
//! has seen lately. On 4 KiB pages each such read also misses the TLB (a
//! million conns span some 30,000 pages, where a core's second-level TLB
//! holds a couple of thousand), and the page walk that follows (two-level
//! under a hypervisor: guest tables, then the host's) costs about as much
//! as the cache miss itself. On 2 MiB pages the same tables span some 60.
//! DPVS gets the same effect from DPDK's hugepages.
//!
//! Linux's transparent huge pages in `madvise` mode (the default of Debian
//! and most distributions) back only regions a program marks with
//! `MADV_HUGEPAGE`, so [`boxed_slice`] marks a large table before its first
//! write: the faults that fill it then take huge pages where the kernel
//! has them. In `always` mode the mark changes nothing; in `never` mode,
//! or where the kernel has no huge page free, the table stays on 4 KiB
//! pages: only speed depends on it, never behaviour. Like a prefetch, the
//! mark is a hint to the machine, not I/O: the core makes it; which mode
//! the kernel is in is the shell's to read and report
//! (`xsk::engine::huge_pages_note`).

/// Tables smaller than this are left alone (a few huge pages at most).
const MIN_BYTES: usize = 4 << 20;
const PAGE: usize = 4096;

/// `n` values made by `fill(i)`, in an allocation marked for huge pages
/// when it is large.
pub fn boxed_slice<T>(n: usize, fill: impl FnMut(usize) -> T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(
        v.as_ptr().cast::<u8>(),
        n.saturating_mul(std::mem::size_of::<T>()),
    );
    v.extend((0..n).map(fill));
    v.into_boxed_slice()
}

/// Marks the whole pages inside `[p, p + len)` for huge pages; `false`
/// where nothing was marked (small, or the kernel refused).
fn advise_huge(p: *const u8, len: usize) -> bool {
    if len < MIN_BYTES {
        return false;
    }
    let start = (p as usize).next_multiple_of(PAGE);
    let end = (p as usize + len) & !(PAGE - 1);
    if end <= start {
        return false;
    }
    // SAFETY: [start, end) are whole pages inside one live allocation of
    // ours (rounded inwards from it). MADV_HUGEPAGE only lets the kernel
    // back them with larger pages: it changes neither their contents nor
    // which addresses are mapped, so no Rust reference or value sees a
    // difference.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    rc == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn fills_every_value_in_order() {
        let small = boxed_slice(5, |i| i * 3);
        assert_eq!(&*small, &[0, 3, 6, 9, 12]);
        let n = (MIN_BYTES / 8) * 3;
        let big = boxed_slice(n, |i| i as u64);
        assert_eq!(big.len(), n);
        assert!(big.iter().enumerate().all(|(i, &v)| v == i as u64));
    }

    /// Whether the mapping holding `p` may take huge pages, as the kernel
    /// reports it (`THPeligible` in /proc/self/smaps). The advice covers
    /// whole pages only: ask about a byte well inside a table.
    pub(crate) fn thp_eligible(p: *const u8) -> bool {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let a = p as usize;
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&a);
            } else if inside && let Some(v) = line.strip_prefix("THPeligible:") {
                return v.trim() == "1";
            }
        }
        panic!("no mapping holds {a:#x}");
    }

    /// The middle byte of `s`.
    pub(crate) fn middle<T>(s: &[T]) -> *const u8 {
        s.as_ptr()
            .cast::<u8>()
            .wrapping_add(std::mem::size_of_val(s) / 2)
    }

    /// Whether the kernel's transparent huge pages are on (`always` or
    /// `madvise`), where the advice takes effect.
    pub(crate) fn thp_on() -> bool {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        mode.contains("[madvise]") || mode.contains("[always]")
    }

    #[test]
    fn a_large_table_may_take_huge_pages() {
        let big = boxed_slice(MIN_BYTES * 4 / 8, |i| i as u64);
        if thp_on() {
            assert!(thp_eligible(middle(&big)), "advice not taken");
        }
    }

    #[test]
    fn advises_only_large_regions() {
        let v = vec![0u8; MIN_BYTES * 2];
        assert!(!advise_huge(v.as_ptr(), MIN_BYTES - 1));
        // The kernel accepts the advice in `always` and `madvise` modes;
        // in `never` it returns EINVAL.
        if thp_on() {
            assert!(advise_huge(v.as_ptr(), v.len()));
        }
    }
}
