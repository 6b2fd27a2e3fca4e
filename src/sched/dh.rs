//! Destination hashing (`ip_vs_dh.c`).
//!
//! A 256-bucket table is filled round-robin with the linked dests in list
//! order (weights play no part in the filling), and a connection goes to the
//! bucket of `hash_32(folded destination address, 8)`. If that dest is
//! quiesced, overloaded or removed there is no dest: dh has no fallback in
//! the kernel, so `flags.fallback` is ignored. The table is rebuilt on every
//! [`Scheduler::update`] (the kernel rebuilds on add and delete; a weight edit
//! leaves the filling unchanged anyway).

use crate::dest::Dest;
use crate::sched::{SchedInput, SchedKind, Scheduler};

use super::common::{NO_DEST, fill_round_robin, fold_addr, hash_32, hashed_dest};

/// `IP_VS_DH_TAB_BITS`.
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;

/// IPVS `dh`.
#[derive(Debug)]
pub struct DestHash {
    buckets: [u32; TAB_SIZE],
}

impl Default for DestHash {
    fn default() -> Self {
        DestHash::new()
    }
}

impl DestHash {
    pub fn new() -> DestHash {
        DestHash {
            buckets: [NO_DEST; TAB_SIZE],
        }
    }
}

impl Scheduler for DestHash {
    fn kind(&self) -> SchedKind {
        SchedKind::Dh
    }

    fn update(&mut self, dests: &[Dest]) {
        fill_round_robin(&mut self.buckets, dests, |_| 1);
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let b = hash_32(fold_addr(&input.dst), TAB_BITS) as usize;
        hashed_dest(dests, self.buckets[b], 0, |_| NO_DEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::common::testutil::{dests, dests6, input};

    fn to(dst: &str) -> SchedInput {
        input("192.0.2.200", 1000, dst)
    }

    #[test]
    fn bucket_is_golden_ratio_hash_of_destination() {
        let d = dests(&[1, 1, 1]);
        let mut s = DestHash::new();
        s.update(&d);
        // hash_32(0xC0000201, 8) = 0x32 = 50; bucket 50 holds dest 50 % 3
        assert_eq!(s.schedule(&d, &to("192.0.2.1")), Some(2));
        // source address and ports do not matter
        let mut other = to("192.0.2.1");
        other.src = "198.51.100.1".parse().unwrap();
        other.sport = 9;
        assert_eq!(s.schedule(&d, &other), Some(2));
        // weights do not shape the table
        let w = dests(&[7, 1, 1]);
        s.update(&w);
        assert_eq!(s.schedule(&w, &to("192.0.2.1")), Some(2));
    }

    #[test]
    fn table_round_robins_linked_dests() {
        let mut d = dests(&[1, 1, 1, 1]);
        d[1].available = false;
        let mut s = DestHash::new();
        s.update(&d);
        let linked = [0, 2, 3];
        for (b, &x) in s.buckets.iter().enumerate() {
            assert_eq!(x as usize, linked[b % 3]);
        }
        let mut none = DestHash::new();
        none.update(&[]);
        assert!(none.buckets.iter().all(|&x| x == NO_DEST));
        assert_eq!(none.schedule(&[], &to("192.0.2.1")), None);
    }

    #[test]
    fn unusable_hashed_dest_gives_none_without_fallback() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = DestHash::new();
        s.update(&d);
        d[2].weight = 0;
        assert_eq!(s.schedule(&d, &to("192.0.2.1")), None);
        d[2].weight = 1;
        d[2].overloaded = true;
        assert_eq!(s.schedule(&d, &to("192.0.2.1")), None);
        // removed without a rebuild yet: still refused
        d[2].overloaded = false;
        d[2].available = false;
        assert_eq!(s.schedule(&d, &to("192.0.2.1")), None);
        // after the rebuild bucket 50 holds dest 50 % 2 = 0
        s.update(&d);
        assert_eq!(s.schedule(&d, &to("192.0.2.1")), Some(0));
    }

    #[test]
    fn ipv6_folds_words() {
        let d = dests6(&[1, 1, 1]);
        let mut s = DestHash::new();
        s.update(&d);
        // fold(2001:db8::c000:201) = 0x20010db8 ^ 0xc0000201 = 0xe0010fb9
        let want = hash_32(0xE001_0FB9, 8) as usize % 3;
        let i = input("2001:db8:1::1", 1, "2001:db8::c000:201");
        assert_eq!(s.schedule(&d, &i), Some(want));
    }

    #[test]
    fn same_destination_is_stable() {
        let d = dests(&[1, 1, 1, 1, 1]);
        let mut s = DestHash::new();
        s.update(&d);
        for k in 0..50u32 {
            let dst = format!("198.51.100.{k}");
            let a = s.schedule(&d, &to(&dst));
            assert_eq!(a, s.schedule(&d, &to(&dst)));
            assert!(a.is_some());
        }
    }
}
