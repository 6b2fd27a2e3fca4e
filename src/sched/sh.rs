//! Source hashing (`ip_vs_sh.c`).
//!
//! A 256-bucket table is filled with the linked dests in list order, each
//! repeated `weight` times per round (a dest of weight 0 or less still takes
//! one bucket per round, as in `ip_vs_sh_reassign`). A connection goes to
//! bucket `hash_32(port + folded source address, 8)`, the port being the
//! source port with `flags.port` (`sh-port`) and 0 otherwise.
//!
//! When that dest is quiesced, overloaded or removed there is no dest, unless
//! `flags.fallback` (`sh-fallback`): then `ip_vs_sh_get_fallback` probes
//! further buckets, `(offset + h) & 255` for `offset = h + k`, k = 0..255 —
//! the kernel adds the original bucket twice, so probing starts at `2h`.
//! Rebuilt on every [`Scheduler::update`].

use crate::dest::Dest;
use crate::sched::{SchedFlags, SchedInput, SchedKind, Scheduler};

use super::common::{NO_DEST, fill_round_robin, fold_addr, hash_32, hashed_dest};

/// `IP_VS_SH_TAB_BITS`.
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;

/// IPVS `sh`.
#[derive(Debug)]
pub struct SourceHash {
    flags: SchedFlags,
    buckets: [u32; TAB_SIZE],
}

/// `ip_vs_sh_hashkey`.
fn hashkey(fold: u32, port: u16, offset: u32) -> usize {
    (offset.wrapping_add(hash_32((port as u32).wrapping_add(fold), TAB_BITS)) & TAB_MASK) as usize
}

impl SourceHash {
    pub fn new(flags: SchedFlags) -> SourceHash {
        SourceHash {
            flags,
            buckets: [NO_DEST; TAB_SIZE],
        }
    }
}

impl Scheduler for SourceHash {
    fn kind(&self) -> SchedKind {
        SchedKind::Sh
    }

    fn update(&mut self, dests: &[Dest]) {
        fill_round_robin(&mut self.buckets, dests, |d| d.weight);
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let fold = fold_addr(&input.src);
        let port = if self.flags.port { input.sport } else { 0 };
        let ihash = hashkey(fold, port, 0);
        let probes = if self.flags.fallback { TAB_SIZE } else { 0 };
        hashed_dest(dests, self.buckets[ihash], probes, |offset| {
            let roffset = ((offset + ihash) % TAB_SIZE) as u32;
            self.buckets[hashkey(fold, port, roffset)]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{PLAIN, dests, dests6, from, input};

    fn built(d: &[Dest], flags: SchedFlags) -> SourceHash {
        let mut s = SourceHash::new(flags);
        s.update(d);
        s
    }

    #[test]
    fn weights_replicate_buckets() {
        let d = dests(&[2, 1, 0]);
        let s = built(&d, PLAIN);
        // rounds of A A B C (weight 0 still gets one)
        let pattern = [0, 0, 1, 2];
        for (b, &x) in s.buckets.iter().enumerate() {
            assert_eq!(x as usize, pattern[b % 4], "bucket {b}");
        }
        let d = dests(&[3, 1]);
        let s = built(&d, PLAIN);
        let n0 = s.buckets.iter().filter(|&&x| x == 0).count();
        assert_eq!((n0, 256 - n0), (192, 64));
    }

    #[test]
    fn bucket_is_golden_ratio_hash_of_source() {
        let d = dests(&[1, 1, 1]);
        let mut s = built(&d, PLAIN);
        // hash_32(0xC0000201, 8) = 50 -> dest 50 % 3 = 2; port ignored
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1000)), Some(2));
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 2000)), Some(2));
    }

    #[test]
    fn port_flag_adds_source_port() {
        let d = dests(&[1, 1, 1]);
        let flags = SchedFlags {
            port: true,
            ..PLAIN
        };
        let mut s = built(&d, flags);
        for sport in [0u16, 1, 80, 1234, 65535] {
            let b = hash_32(0xC000_0201u32.wrapping_add(sport as u32), 8) as usize;
            assert_eq!(s.schedule(&d, &from("192.0.2.1", sport)), Some(b % 3));
        }
        let picks: std::collections::HashSet<_> = (1000..1100)
            .map(|p| s.schedule(&d, &from("192.0.2.1", p)))
            .collect();
        assert_eq!(picks.len(), 3, "ports spread one client");
    }

    #[test]
    fn unusable_without_fallback_is_none() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = built(&d, PLAIN);
        d[2].weight = 0;
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), None);
        d[2].weight = 1;
        d[2].overloaded = true;
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), None);
    }

    #[test]
    fn fallback_probes_from_twice_the_bucket() {
        let mut d = dests(&[1, 1, 1]);
        let flags = SchedFlags {
            fallback: true,
            ..PLAIN
        };
        let mut s = built(&d, flags);
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), Some(2));
        d[2].weight = 0;
        // probe starts at bucket 100 (100 % 3 = 1), not 51 (dest 0)
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), Some(1));
        d[1].overloaded = true;
        // bucket 101 -> dest 2 (quiesced), 102 -> dest 0
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), Some(0));
        d[0].weight = 0;
        assert_eq!(s.schedule(&d, &from("192.0.2.1", 1)), None);
    }

    #[test]
    fn quiescing_keeps_other_clients_in_place_removal_does_not() {
        let mut d = dests(&[1, 1, 1, 1]);
        let mut s = built(&d, PLAIN);
        let clients: Vec<String> = (0..200).map(|i| format!("10.9.{}.{}", i / 50, i)).collect();
        let before: Vec<_> = clients
            .iter()
            .map(|c| s.schedule(&d, &from(c, 1)))
            .collect();
        d[1].weight = 0;
        s.update(&d);
        for (c, b) in clients.iter().zip(&before) {
            let now = s.schedule(&d, &from(c, 1));
            if *b == Some(1) {
                assert_eq!(now, None);
            } else {
                assert_eq!(now, *b);
            }
        }
        d[1].weight = 1;
        d[1].available = false;
        s.update(&d);
        let moved = clients
            .iter()
            .zip(&before)
            .filter(|(c, b)| **b != Some(1) && s.schedule(&d, &from(c, 1)) != **b)
            .count();
        assert!(moved > 0, "sh is not consistent hashing");
    }

    #[test]
    fn ipv6_source_folds_words() {
        let d = dests6(&[1, 1, 1]);
        let mut s = built(&d, PLAIN);
        let want = hash_32(0x2001_0db8 ^ 0xC000_0201, 8) as usize % 3;
        let i = input("2001:db8::c000:201", 5, "2001:db8:ff::1");
        assert_eq!(s.schedule(&d, &i), Some(want));
    }

    #[test]
    fn empty_service() {
        let mut s = built(
            &[],
            SchedFlags {
                fallback: true,
                ..PLAIN
            },
        );
        assert_eq!(s.schedule(&[], &from("192.0.2.1", 1)), None);
    }
}
