//! Hash indexes from a connection tuple to its slab entry.
//!
//! An [`Index`] is a fixed-size linear-probing table of `u64` slots, each
//! holding the upper 32 bits of the key's hash (the tag) and the slab index
//! plus one (0 = empty). The key itself is not stored: a tag match is
//! confirmed by the caller against the slab entry, so a slot is 8 bytes.
//! Insertion keeps Robin Hood order (an entry farther from its home takes
//! the slot of one nearer to its own), so a lookup stops at the first entry
//! nearer to its home than the probe is, and probes stay short at a high
//! load. Deletion shifts followers back (no tombstones), so probe sequences
//! never degrade over time.
//!
//! Invariants: the slot count is fixed at construction and always larger
//! than the number of entries (the table holds at most `capacity` entries
//! and has `capacity * 9 / 8 + 1` slots, load <= 8/9: 9 bytes an entry),
//! so insertion never allocates and every probe ends at an empty slot or
//! by the Robin Hood order. Along a probe, entries are ordered by home
//! slot (cyclically); the home slot depends on the tag only, which is what
//! lets a lookup and deletion compute any entry's distance from its home.
//!
//! Hashing is seeded ([`tuple_hash`]) so clients cannot precompute colliding
//! tuples for a given seed; it is a fast mixer, not a keyed PRF. The seed
//! only protects if clients cannot know it: the daemon draws it from the OS
//! at start (`config::os_hash_seeds`), `lvsfwd replay` and tests use
//! [`crate::dataplane::HashSeeds::FIXED`]. Every multiplicand an address
//! word enters is keyed with the seed too: against a constant, a client
//! word equal to it (or to its complement) makes the product constant, and
//! every such tuple would share a hash whatever the seed.

#[cfg(test)]
use std::net::IpAddr;

#[derive(Debug)]
pub(crate) struct Index {
    slots: Box<[u64]>,
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl Index {
    /// An index for up to `entries` keys.
    pub(crate) fn with_capacity(entries: usize) -> Index {
        let n = (entries + entries / 8 + 1).max(4);
        Index {
            slots: crate::hugemem::boxed_slice(n, |_| 0u64),
        }
    }

    /// The slots' middle byte (for tests of their memory).
    #[cfg(test)]
    pub(crate) fn middle(&self) -> *const u8 {
        crate::hugemem::tests::middle(&self.slots)
    }

    /// Bytes used by the slots.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }

    #[inline(always)]
    fn home(&self, tag: u32) -> usize {
        ((tag as u64 * self.slots.len() as u64) >> 32) as usize
    }

    #[inline(always)]
    fn next(&self, p: usize) -> usize {
        if p + 1 == self.slots.len() { 0 } else { p + 1 }
    }

    /// How far slot value `v`, found at `p`, sits from its home.
    #[inline(always)]
    fn dist(&self, p: usize, v: u64) -> usize {
        let h = self.home((v >> 32) as u32);
        if p >= h {
            p - h
        } else {
            p + self.slots.len() - h
        }
    }

    /// Prefetches the slot a lookup of `hash` starts at.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        crate::hint::prefetch(&self.slots[self.home(tag_of(hash))]);
    }

    /// The first entry filed under `hash`'s tag, unconfirmed: what a lookup
    /// of `hash` will most likely compare against (for prefetching it).
    #[inline]
    pub(crate) fn first_with_tag(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// The entry whose key `eq` confirms among those with `hash`'s tag.
    /// Inlined into the per-packet lookups (a call spilled the key and
    /// the probe state to the stack).
    #[inline(always)]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mut p = self.home(tag);
        let mut d = 0;
        loop {
            let v = self.slots[p];
            if v == 0 {
                return None;
            }
            if (v >> 32) as u32 == tag {
                let i = (v as u32).wrapping_sub(1);
                if eq(i) {
                    return Some(i);
                }
            } else if d > 0 && self.dist(p, v) < d {
                // Robin Hood order: a key this far from its home would sit
                // before an entry nearer to its own. (Nothing is nearer
                // than 0: the home slot needs no check.)
                return None;
            }
            p = self.next(p);
            d += 1;
        }
    }

    /// How many slots a lookup of `hash` examines before `eq` confirms an
    /// entry or the probe ends (1: found, or absent, at its home). For
    /// tests and benches measuring collisions; the per-packet path uses
    /// [`Index::find`].
    pub(crate) fn probes(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> usize {
        let tag = tag_of(hash);
        let mut p = self.home(tag);
        let mut n = 1;
        loop {
            let v = self.slots[p];
            if v == 0 {
                return n;
            }
            if (v >> 32) as u32 == tag {
                if eq((v as u32).wrapping_sub(1)) {
                    return n;
                }
            } else if self.dist(p, v) < n - 1 {
                return n;
            }
            p = self.next(p);
            n += 1;
        }
    }

    /// Adds entry `i` under `hash`. An entry already there with an equal key
    /// (as `eq` says) is replaced: the newest entry wins, as the kernel's
    /// head insertion into its hash chain does.
    pub(crate) fn insert(&mut self, hash: u64, i: u32, mut eq: impl FnMut(u32) -> bool) {
        let tag = tag_of(hash);
        let v_new = ((tag as u64) << 32) | (i as u64 + 1);
        let mut p = self.home(tag);
        let mut d = 0;
        loop {
            let v = self.slots[p];
            if v == 0 {
                self.slots[p] = v_new;
                return;
            }
            if (v >> 32) as u32 == tag && eq((v as u32).wrapping_sub(1)) {
                self.slots[p] = v_new;
                return;
            }
            let dv = self.dist(p, v);
            if dv < d {
                // An equal key would have been found by now: take this
                // slot and carry the poorer entry on.
                self.slots[p] = v_new;
                self.displace(self.next(p), v, dv + 1);
                return;
            }
            p = self.next(p);
            d += 1;
        }
    }

    /// Robin Hood insertion of `v`, `d` slots from its home at `p`, that
    /// swaps with every entry nearer to its home than the carried one.
    fn displace(&mut self, mut p: usize, mut v: u64, mut d: usize) {
        loop {
            let cur = self.slots[p];
            if cur == 0 {
                self.slots[p] = v;
                return;
            }
            let dc = self.dist(p, cur);
            if dc < d {
                self.slots[p] = v;
                v = cur;
                d = dc;
            }
            p = self.next(p);
            d += 1;
        }
    }

    /// Removes entry `i` filed under `hash`; false if it is not there (it
    /// was replaced by a newer entry with the same key).
    pub(crate) fn remove(&mut self, hash: u64, i: u32) -> bool {
        let tag = tag_of(hash);
        let want = ((tag as u64) << 32) | (i as u64 + 1);
        let mut p = self.home(tag);
        let mut d = 0;
        loop {
            let v = self.slots[p];
            if v == 0 {
                return false;
            }
            if v == want {
                break;
            }
            if (v >> 32) as u32 != tag && self.dist(p, v) < d {
                return false;
            }
            p = self.next(p);
            d += 1;
        }
        // Backward shift: pull each follower one slot back until an empty
        // slot or one at its home.
        let mut hole = p;
        let mut j = self.next(p);
        loop {
            let v = self.slots[j];
            if v == 0 || self.dist(j, v) == 0 {
                break;
            }
            self.slots[hole] = v;
            hole = j;
            j = self.next(j);
        }
        self.slots[hole] = 0;
        true
    }
}

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xE703_7ED1_A0B4_28DB;
const K2: u64 = 0x8EBC_6AF0_9C88_C6E3;

/// 64x64 -> 128-bit multiply folded back to 64 bits (the wyhash / folded
/// multiply mixer): every input bit reaches the upper half of the result.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// An address as the connection table stores it: its 16 bytes (an IPv4
/// address in the first 4, the rest zero) read as a native-endian `u128`,
/// and whether it is IPv6.
pub(crate) type RawAddr = (u128, bool);

#[inline(always)]
fn v4_word(a: u128) -> u32 {
    let b = a.to_ne_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[inline(always)]
fn v6_words((a, v6): RawAddr) -> (u64, u64) {
    let x = if v6 {
        u128::from_be_bytes(a.to_ne_bytes())
    } else {
        u128::from(std::net::Ipv4Addr::from(v4_word(a)).to_ipv6_mapped())
    };
    ((x >> 64) as u64, x as u64)
}

/// Seeded hash of a `<kind, proto, a:ap, b:bp>` tuple. `kind` separates the
/// key spaces sharing one index (connections vs. templates).
///
/// Two IPv4 addresses fit one word, so the common case is two folded
/// multiplies; anything with an IPv6 address takes four. The family is part
/// of the last word, so a v4 tuple and its v4-mapped v6 twin differ.
#[cfg(test)]
pub(crate) fn tuple_hash(
    seed: u64,
    kind: u8,
    proto: u8,
    a: IpAddr,
    ap: u16,
    b: IpAddr,
    bp: u16,
) -> u64 {
    let raw = |x: IpAddr| match x {
        IpAddr::V4(v) => {
            let mut r = [0u8; 16];
            r[..4].copy_from_slice(&v.octets());
            (u128::from_ne_bytes(r), false)
        }
        IpAddr::V6(v) => (u128::from_ne_bytes(v.octets()), true),
    };
    tuple_hash_raw(seed, kind, proto, raw(a), ap, raw(b), bp)
}

/// [`tuple_hash`] of addresses as the table stores them (the table's own
/// form: the packet path hashes the key it compares).
#[inline(always)]
pub(crate) fn tuple_hash_raw(
    seed: u64,
    kind: u8,
    proto: u8,
    a: RawAddr,
    ap: u16,
    b: RawAddr,
    bp: u16,
) -> u64 {
    let tail = ((kind as u64) << 48) | ((proto as u64) << 32) | ((ap as u64) << 16) | bp as u64;
    if !a.1 && !b.1 {
        let w = (u64::from(v4_word(a.0)) << 32) | u64::from(v4_word(b.0));
        // K1's top byte keeps `tail ^ K1` non-zero for every tail.
        let h = fold_mul(w ^ seed, tail ^ K1);
        fold_mul(h ^ K0, seed ^ K2)
    } else {
        let (a0, a1) = v6_words(a);
        let (b0, b1) = v6_words(b);
        // `a1` is keyed too: against `a1 ^ K0` an address whose low
        // word is K0 zeroed `h` for every `a0` and every seed.
        let h = fold_mul(a0 ^ seed, a1 ^ seed.rotate_left(32) ^ K0);
        let h = fold_mul(h ^ b0, b1 ^ K1);
        let h = fold_mul(h ^ tail ^ (1 << 56), K2);
        fold_mul(h ^ K0, seed ^ K2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_with_collisions() {
        // Force every key into the same tag: the caller's eq decides.
        let keys: Vec<u32> = (0..40).collect();
        let mut ix = Index::with_capacity(keys.len());
        let h = 0xdead_beef_0000_0000u64;
        for &k in &keys {
            ix.insert(h, k, |_| false);
        }
        for &k in &keys {
            assert_eq!(ix.find(h, |i| i == k), Some(k));
        }
        for &k in keys.iter().step_by(3) {
            assert!(ix.remove(h, k));
            assert!(!ix.remove(h, k));
        }
        for &k in &keys {
            assert_eq!(ix.find(h, |i| i == k).is_some(), k % 3 != 0, "key {k}");
        }
    }

    #[test]
    fn equal_key_is_replaced_newest_wins() {
        let mut ix = Index::with_capacity(4);
        ix.insert(1 << 40, 7, |_| false);
        ix.insert(1 << 40, 9, |i| i == 7);
        assert_eq!(ix.find(1 << 40, |_| true), Some(9));
        assert!(!ix.remove(1 << 40, 7), "7 was replaced");
        assert!(ix.remove(1 << 40, 9));
        assert_eq!(ix.find(1 << 40, |_| true), None);
    }

    #[test]
    fn random_churn_keeps_every_live_key_findable() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        let mut rng = SmallRng::seed_from_u64(3);
        const N: usize = 500;
        let mut ix = Index::with_capacity(N);
        let hashes: Vec<u64> = (0..N)
            .map(|i| {
                tuple_hash(
                    11,
                    0,
                    6,
                    [10, 0, (i >> 8) as u8, i as u8].into(),
                    1000,
                    [192, 0, 2, 1].into(),
                    80,
                )
            })
            .collect();
        let mut live = vec![false; N];
        for _ in 0..20_000 {
            let k = rng.random_range(0..N);
            if live[k] {
                assert!(ix.remove(hashes[k], k as u32));
            } else {
                ix.insert(hashes[k], k as u32, |i| i as usize == k);
            }
            live[k] = !live[k];
        }
        for k in 0..N {
            assert_eq!(ix.find(hashes[k], |i| i as usize == k).is_some(), live[k]);
        }
    }

    #[test]
    fn hash_depends_on_seed_kind_and_family() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let a6: IpAddr = "::a00:1".parse().unwrap();
        let v: IpAddr = "192.0.2.1".parse().unwrap();
        let base = tuple_hash(1, 0, 6, a, 1, v, 80);
        assert_ne!(base, tuple_hash(2, 0, 6, a, 1, v, 80));
        assert_ne!(base, tuple_hash(1, 1, 6, a, 1, v, 80));
        assert_ne!(base, tuple_hash(1, 0, 6, a6, 1, v, 80));
        assert_ne!(base, tuple_hash(1, 0, 17, a, 1, v, 80));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_ne!(base, tuple_hash(1, 0, 6, mapped, 1, v_mapped, 80));
    }

    /// IPv6 clients sharing a low word (an interface ID) must not share a
    /// hash: with the low word multiplied against a constant, the interface
    /// IDs equal to it or to its complement made the first product constant,
    /// so every prefix hashed alike under every seed (a seed-independent
    /// collision flood).
    #[test]
    fn no_v6_interface_id_collides_every_prefix() {
        let v: IpAddr = "2001:db8::250".parse().unwrap();
        // A product against a word of zero, or of all ones, is constant:
        // keyed, the words that give one depend on the seed (unknown to
        // clients); against K0, `K0` and `!K0` gave one under every seed.
        for seed in [1u64, 0x1234_5678_9abc_def0, 0xfedc_ba98_7654_3210] {
            for iid in [K0, !K0, K1, !K1, K2, 0, u64::MAX] {
                let mut tags = std::collections::HashSet::new();
                for prefix in 0..256u128 {
                    let c =
                        std::net::Ipv6Addr::from((0x2001_0db8_0000 + prefix) << 64 | iid as u128);
                    tags.insert(tuple_hash(seed, 0, 6, c.into(), 4242, v, 80) >> 32);
                }
                assert!(
                    tags.len() >= 255,
                    "seed {seed:#x} iid {iid:#x}: {} tags",
                    tags.len()
                );
            }
        }
    }

    #[test]
    fn probes_count_the_slots_a_lookup_examines() {
        let mut ix = Index::with_capacity(8);
        let h = 0x4000_0000_0000_0000u64;
        assert_eq!(ix.probes(h, |_| true), 1, "absent at an empty home");
        for k in 0..5 {
            ix.insert(h, k, |_| false);
        }
        for k in 0..5 {
            assert_eq!(ix.probes(h, |i| i == k), k as usize + 1);
        }
        assert_eq!(ix.probes(h, |_| false), 6, "absent: the run and its end");
    }

    /// The tag (upper 32 bits) picks the home slot: over realistic tuples
    /// (one VIP, clients differing in a few address and port bits) tags
    /// must be distinct and spread evenly over the slots.
    #[test]
    fn tags_spread_evenly_over_slots() {
        let v: IpAddr = "198.18.0.250".parse().unwrap();
        let v6: IpAddr = "2001:db8::250".parse().unwrap();
        for six in [false, true] {
            let n = 1 << 16;
            let mut buckets = vec![0u32; 256];
            let mut tags = std::collections::HashSet::new();
            for i in 0..n as u32 {
                let (c, vip) = if six {
                    let c: IpAddr =
                        std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i >> 6))
                            .into();
                    (c, v6)
                } else {
                    (IpAddr::V4((0x0a00_0000 | (i >> 6)).into()), v)
                };
                let h = tuple_hash(0x1234, 0, 6, c, 10_000 + (i & 63) as u16, vip, 80);
                buckets[((h >> 32) as usize * 256) >> 32] += 1;
                tags.insert((h >> 32) as u32);
            }
            // Birthday bound: ~0.5 expected collisions of 2^16 tags in 2^32.
            assert!(tags.len() >= n - 8, "{} distinct tags", tags.len());
            let mean = (n / 256) as u32;
            for (k, &b) in buckets.iter().enumerate() {
                assert!(b > mean * 3 / 4 && b < mean * 5 / 4, "bucket {k}: {b}");
            }
        }
    }
}
