//! Maglev hashing (`ip_vs_mh.c`).
//!
//! A lookup table of 4093 slots (the prime of the kernel's default
//! `CONFIG_IP_VS_MH_TAB_INDEX = 12`) is filled Maglev-style: each linked dest
//! walks its own permutation of the slots (start `offset`, stride `skip`)
//! and, in list order, claims its next free slot `turns` times per round
//! until every slot is taken. A connection goes to slot
//! `hsiphash(port + folded source address) % 4093`, the port being the
//! source port with `flags.port` (`mh-port`), else 0.
//!
//! Kernel details kept:
//! - `offset`/`skip` hash the dest's address plus its port with two keys. The
//!   kernel's `generate_hash_secret` uses fixed constants (2654435761 and
//!   2654446892 in both key words), not random ones, so tables match a real
//!   director's slot for slot. `hsiphash` on 64-bit kernels is SipHash-1-3
//!   over the 4 bytes of the (little-endian) u32, truncated to 32 bits; it is
//!   implemented below (32-bit kernels use HalfSipHash and differ).
//! - `turns` come from the dest's *last non-zero* weight divided by the gcd
//!   and shifted right so the largest ratio fits in 6 bits (`rshift`); a
//!   ratio shifted to 0 still gets one turn. Because a dest set to weight 0
//!   keeps its last weight, quiescing does not reshuffle the table: the dest
//!   keeps its slots and connections hashing there get no dest (or, with
//!   `flags.fallback`, the next usable slot from `ip_vs_mh_get_fallback`).
//!   A dest added with weight 0 gets no slots.
//! - More linked dests than slots: the table is left as it was (the kernel
//!   refuses the change with `-EINVAL`).
//!
//! Rebuilt on every [`Scheduler::update`] (`ip_vs_mh_dest_changed`).

use crate::dest::Dest;
use crate::sched::{SchedFlags, SchedInput, SchedKind, Scheduler};

use super::common::{NO_DEST, fold_addr, hashed_dest};

/// `IP_VS_MH_TAB_SIZE` for the default `CONFIG_IP_VS_MH_TAB_INDEX` of 12.
pub const TAB_SIZE: usize = 4093;
/// `IP_VS_MH_TAB_BITS`: `CONFIG_IP_VS_MH_TAB_INDEX / 2`.
const TAB_BITS: u32 = 6;
/// `generate_hash_secret`: hash1 and hash2 keys (both words equal).
const KEY1: u64 = 2_654_435_761;
const KEY2: u64 = 2_654_446_892;

#[inline]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// The kernel's 64-bit `hsiphash(&v, 4, key)` with `key = {k, k}`:
/// SipHash-1-3 of the four bytes of `v`, low 32 bits of the result.
fn hsiphash_u32(v: u32, k: u64) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575 ^ k,
        0x646f_7261_6e64_6f6d ^ k,
        0x6c79_6765_6e65_7261 ^ k,
        0x7465_6462_7974_6573 ^ k,
    ];
    let b = (4u64 << 56) | v as u64;
    s[3] ^= b;
    sipround(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    sipround(&mut s);
    sipround(&mut s);
    sipround(&mut s);
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

/// `ip_vs_mh_hashkey`.
fn hashkey(fold: u32, port: u16, key: u64, offset: u32) -> u32 {
    hsiphash_u32(offset.wrapping_add(port as u32).wrapping_add(fold), key)
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `fls`: 1-based index of the highest set bit, 0 for 0.
fn fls(x: i32) -> i32 {
    32 - (x as u32).leading_zeros() as i32
}

/// `struct ip_vs_mh_dest_setup`.
struct Setup {
    dest: u32,
    perm: usize,
    skip: usize,
    turns: i32,
}

/// IPVS `mh`.
#[derive(Debug)]
pub struct Maglev {
    flags: SchedFlags,
    lookup: Vec<u32>,
    /// `dest->last_weight` per dest index: the weight given when the dest
    /// was (re)added, then the latest non-zero weight.
    last_weight: Vec<i32>,
    /// Whether each dest was linked at the previous update, to tell a
    /// (re)add from an edit.
    linked: Vec<bool>,
}

impl Maglev {
    pub fn new(flags: SchedFlags) -> Maglev {
        Maglev {
            flags,
            lookup: vec![NO_DEST; TAB_SIZE],
            last_weight: Vec::new(),
            linked: Vec::new(),
        }
    }

    fn track_weights(&mut self, dests: &[Dest]) {
        self.last_weight.resize(dests.len(), 0);
        self.linked.resize(dests.len(), false);
        for (i, d) in dests.iter().enumerate() {
            if d.available && (!self.linked[i] || d.weight != 0) {
                self.last_weight[i] = d.weight;
            }
            self.linked[i] = d.available;
        }
    }

    /// `ip_vs_mh_permutate` + `ip_vs_mh_populate`.
    fn populate(&mut self, dests: &[Dest]) {
        let linked: Vec<usize> = (0..dests.len()).filter(|&i| dests[i].available).collect();
        if linked.len() > TAB_SIZE {
            return;
        }
        let lw = |i: usize| self.last_weight[i];
        let g = linked
            .iter()
            .map(|&i| lw(i))
            .filter(|&w| w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        if g < 1 {
            self.lookup.fill(NO_DEST);
            return;
        }
        let mw = linked.iter().map(|&i| lw(i)).fold(0, i32::max) / g;
        let rshift = (fls(mw) - TAB_BITS as i32).max(0);
        let mut setup: Vec<Setup> = linked
            .iter()
            .map(|&i| {
                let d = &dests[i];
                let fold = fold_addr(&d.addr);
                let offset = hashkey(fold, d.port, KEY1, 0) as usize % TAB_SIZE;
                let skip = hashkey(fold, d.port, KEY2, 0) as usize % (TAB_SIZE - 1) + 1;
                let w = lw(i);
                let t = (w / g) >> rshift;
                Setup {
                    dest: i as u32,
                    perm: offset,
                    skip,
                    turns: if t != 0 { t } else { (w != 0) as i32 },
                }
            })
            .collect();

        let mut taken = vec![false; TAB_SIZE];
        let mut n = 0;
        let mut dt_count = 0;
        loop {
            let mut p = 0;
            while p < setup.len() {
                let ds = &mut setup[p];
                if ds.turns < 1 {
                    p += 1;
                    continue;
                }
                while taken[ds.perm] {
                    ds.perm += ds.skip;
                    if ds.perm >= TAB_SIZE {
                        ds.perm -= TAB_SIZE;
                    }
                }
                taken[ds.perm] = true;
                self.lookup[ds.perm] = ds.dest;
                n += 1;
                if n == TAB_SIZE {
                    return;
                }
                dt_count += 1;
                if dt_count >= ds.turns {
                    dt_count = 0;
                    p += 1;
                }
            }
        }
    }
}

impl Scheduler for Maglev {
    fn kind(&self) -> SchedKind {
        SchedKind::Mh
    }

    fn update(&mut self, dests: &[Dest]) {
        self.track_weights(dests);
        self.populate(dests);
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let fold = fold_addr(&input.src);
        let port = if self.flags.port { input.sport } else { 0 };
        let ihash = hashkey(fold, port, KEY1, 0) as usize % TAB_SIZE;
        let probes = if self.flags.fallback { TAB_SIZE } else { 0 };
        hashed_dest(dests, self.lookup[ihash], probes, |offset| {
            let roffset = ((offset + ihash) % TAB_SIZE) as u32;
            self.lookup[hashkey(fold, port, KEY1, roffset) as usize % TAB_SIZE]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::FwdMethod;
    use crate::sched::common::testutil::{PLAIN, dests, dests6, from, input};

    fn built(d: &[Dest], flags: SchedFlags) -> Maglev {
        let mut s = Maglev::new(flags);
        s.update(d);
        s
    }

    fn counts(s: &Maglev, n: usize) -> Vec<usize> {
        (0..n)
            .map(|i| s.lookup.iter().filter(|&&x| x as usize == i).count())
            .collect()
    }

    #[test]
    fn hsiphash_matches_siphash13_vectors() {
        // Computed with a SipHash-1-3 reference checked against CPython's
        // siphash13 (PYTHONHASHSEED=0), keyed as the kernel keys mh.
        assert_eq!(hsiphash_u32(0, KEY1), 492_468_162);
        assert_eq!(hsiphash_u32(0, KEY2), 4_169_286_463);
        assert_eq!(hsiphash_u32(1, KEY1), 384_591_538);
        assert_eq!(hsiphash_u32(1, KEY2), 2_182_130_385);
        assert_eq!(hsiphash_u32(0xC612_0001, KEY1), 3_758_993_630);
        assert_eq!(hsiphash_u32(0x0102_0304, KEY2), 314_603_690);
    }

    #[test]
    fn pinned_table_and_lookups() {
        // Values from an independent model of ip_vs_mh_populate.
        let d = dests(&[1, 1, 1]);
        let fold = fold_addr(&d[0].addr);
        assert_eq!(hashkey(fold, 80, KEY1, 0) as usize % TAB_SIZE, 3167);
        assert_eq!(
            hashkey(fold, 80, KEY2, 0) as usize % (TAB_SIZE - 1) + 1,
            700
        );
        let mut s = built(&d, PLAIN);
        let first: Vec<u32> = s.lookup[..12].to_vec();
        assert_eq!(first, [0, 1, 1, 2, 2, 0, 1, 2, 2, 0, 0, 1]);
        assert_eq!(counts(&s, 3), [1365, 1364, 1364]);
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 7)), Some(2));
        assert_eq!(s.schedule(&d, &from("192.0.2.2", 7)), Some(1));
        assert_eq!(s.schedule(&d, &from("198.51.100.7", 7)), Some(0));
        let mut p = built(
            &d,
            SchedFlags {
                port: true,
                ..PLAIN
            },
        );
        assert_eq!(p.schedule(&d, &from("192.0.2.1", 1234)), Some(1));
    }

    #[test]
    fn every_slot_filled_in_weight_proportion() {
        let d = dests(&[1, 2, 3]);
        let s = built(&d, PLAIN);
        assert!(s.lookup.iter().all(|&x| x != NO_DEST));
        // rounds of 1 + 2 + 3 slots: 682 rounds and one spare slot
        assert_eq!(counts(&s, 3), [683, 1364, 2046]);
        let d = dests(&[100, 200]);
        assert_eq!(counts(&built(&d, PLAIN), 2), [1365, 2728]);
    }

    #[test]
    fn large_weight_ratios_are_shifted() {
        // gcd 1, max ratio 1000: fls 10 - 6 = shift 4; 1 >> 4 = 0 -> 1 turn,
        // 1000 >> 4 = 62 turns: 64 rounds of 63, then 1 + 60
        let d = dests(&[1, 1000]);
        assert_eq!(counts(&built(&d, PLAIN), 2), [65, 4028]);
    }

    #[test]
    fn removal_disrupts_little() {
        let mut d = dests(&[1; 8]);
        let mut s = built(&d, PLAIN);
        let before = s.lookup.clone();
        d[3].available = false;
        s.update(&d);
        assert!(s.lookup.iter().all(|&x| x != NO_DEST && x != 3));
        let moved = before
            .iter()
            .zip(&s.lookup)
            .filter(|(b, a)| **b != 3 && a != b)
            .count();
        // Maglev: only a few percent of the surviving dests' slots move
        assert!(moved * 100 < TAB_SIZE * 5, "moved {moved}");
        let c = counts(&s, 8);
        assert!(
            c.iter()
                .enumerate()
                .all(|(i, &n)| i == 3 || (584..=585).contains(&n))
        );
    }

    #[test]
    fn quiescing_keeps_the_table_and_fallback_reroutes() {
        let mut d = dests(&[2, 2, 2]);
        let mut s = built(&d, PLAIN);
        let before = s.lookup.clone();
        let victim = s.schedule(&d, &from("192.0.2.1", 1)).unwrap();
        d[victim].weight = 0;
        s.update(&d);
        assert_eq!(s.lookup, before, "last_weight keeps the slots");
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), None);
        let mut f = built(
            &d,
            SchedFlags {
                fallback: true,
                ..PLAIN
            },
        );
        // built fresh with weight 0: that dest never gets slots
        assert!(f.lookup.iter().all(|&x| x as usize != victim));
        let mut f2 = Maglev::new(SchedFlags {
            fallback: true,
            ..PLAIN
        });
        d[victim].weight = 2;
        f2.update(&d);
        d[victim].weight = 0;
        f2.update(&d);
        assert_eq!(f2.lookup, before);
        let got = f2.schedule(&d, &from("192.0.2.1", 1)).unwrap();
        assert_ne!(got, victim);
        // overloaded is treated like quiesced
        d[victim].weight = 2;
        d[victim].overloaded = true;
        assert_ne!(f2.schedule(&d, &from("192.0.2.1", 1)), Some(victim));
        assert!(f.schedule(&d, &from("192.0.2.1", 1)).is_some());
    }

    #[test]
    fn weight_edit_rebalances() {
        let mut d = dests(&[1, 1]);
        let mut s = built(&d, PLAIN);
        d[1].weight = 3;
        s.update(&d);
        assert_eq!(counts(&s, 2), [1024, 3069]);
    }

    #[test]
    fn readded_dest_takes_its_new_weight() {
        let mut d = dests(&[1, 1]);
        let mut s = built(&d, PLAIN);
        d[1].weight = 0;
        s.update(&d); // quiesced: keeps last weight 1
        d[1].available = false;
        s.update(&d);
        assert!(s.lookup.iter().all(|&x| x == 0));
        // re-added with weight 0: last_weight is 0, no slots
        d[1].available = true;
        s.update(&d);
        assert!(s.lookup.iter().all(|&x| x == 0));
    }

    #[test]
    fn no_weight_means_empty_table() {
        let d = dests(&[0, 0]);
        let mut s = built(
            &d,
            SchedFlags {
                fallback: true,
                ..PLAIN
            },
        );
        assert!(s.lookup.iter().all(|&x| x == NO_DEST));
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), None);
        let mut e = built(&[], PLAIN);
        assert_eq!(e.schedule(&[], &from("192.0.2.1", 1)), None);
    }

    #[test]
    fn dest_port_is_part_of_its_permutation() {
        let a = dests(&[1, 1]);
        let mut b = a.clone();
        b[0] = Dest::new(a[0].addr, 8080, FwdMethod::Route, 1);
        assert_ne!(built(&a, PLAIN).lookup, built(&b, PLAIN).lookup);
    }

    #[test]
    fn ipv6_and_port_spread() {
        let d = dests6(&[1, 1, 1]);
        let mut s = built(
            &d,
            SchedFlags {
                port: true,
                ..PLAIN
            },
        );
        let picks: std::collections::HashSet<_> = (1000..1100)
            .map(|p| s.schedule(&d, &input("2001:db8:9::1", p, "2001:db8::80")))
            .collect();
        assert_eq!(picks.len(), 3);
        let mut plain = built(&d, PLAIN);
        let one: std::collections::HashSet<_> = (1000..1100)
            .map(|p| plain.schedule(&d, &input("2001:db8:9::1", p, "2001:db8::80")))
            .collect();
        assert_eq!(one.len(), 1);
    }
}
