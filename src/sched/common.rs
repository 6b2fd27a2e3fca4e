//! Pieces several schedulers share, each mirroring a kernel helper: the
//! address folding and multiplicative hashes of the hashing schedulers, the
//! least-load walk of the connection-counting schedulers ([`Rank`],
//! [`least`]), and lblc's notion of an "overloaded" cache server.
//!
//! Invariant kept by every user: a dest with `available == false` is not on
//! the service's list (IPVS unlinks it), so every list walk here skips it.

use std::net::IpAddr;

use crate::dest::Dest;

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The kernel's `hash_32(val, bits)`: multiply by the 32-bit golden ratio and
/// keep the top `bits` bits.
#[inline]
pub(crate) fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// The 32-bit host-order value the IPVS hashing schedulers hash an address
/// by: an IPv4 address as is, an IPv6 address as the XOR of its four 32-bit
/// words (`addr->ip6[0] ^ .. ^ addr->ip6[3]` followed by `ntohl`, and byte
/// swapping distributes over XOR).
#[inline]
pub(crate) fn fold_addr(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

/// The test most schedulers apply before handing a dest a new connection:
/// linked, not `IP_VS_DEST_F_OVERLOAD`, weight above zero.
#[inline]
pub(crate) fn usable(d: &Dest) -> bool {
    d.available && !d.overloaded && d.weight > 0
}

/// How a least-load pass ranks dests: by `cost / weight`, compared as the
/// kernel compares them, by cross products (`loh * dw > doh * lw`), here in
/// `i128` so that no product overflows. Implemented by the scheduler types
/// themselves (wlc, sed, nq, lc, fo, ovf) and used by lblc, lblcr and twos
/// through [`crate::sched::wlc::WeightedLeastConn`].
pub(crate) trait Rank {
    /// Whether `d` may be picked at all. The default is [`usable`]: the
    /// kernel's loops test weight only while seeding, but a dest of weight 0
    /// or less can never win the comparison, so skipping it throughout picks
    /// the same dest.
    #[inline]
    fn eligible(d: &Dest) -> bool {
        usable(d)
    }

    /// Whether an eligible `d` is taken at once, ending the walk (nq's idle
    /// server).
    #[inline]
    fn takes_at_once(_d: &Dest) -> bool {
        false
    }

    /// The dest's load (`ip_vs_dest_conn_overhead` and its variants).
    fn cost(d: &Dest) -> i128;

    /// What the load is divided by.
    #[inline]
    fn weight(d: &Dest) -> i128 {
        d.weight as i128
    }
}

/// The least-load walk of `ip_vs_{wlc,sed,nq,lc,fo,ovf}_schedule`, lblc/lblcr's
/// weighted least-connection and `ip_vs_dest_set_min`/`_max`: over
/// `candidates` in their order, the first eligible one seeds the search and a
/// later one replaces the current pick only when strictly better,
/// `cost(least) * weight(d) > cost(d) * weight(least)`; ties keep the
/// earlier candidate.
#[inline]
pub(crate) fn least_by<'a, R: Rank>(
    candidates: impl IntoIterator<Item = (usize, &'a Dest)>,
) -> Option<usize> {
    let mut least: Option<(usize, &Dest, i128)> = None;
    for (i, d) in candidates {
        if !R::eligible(d) {
            continue;
        }
        if R::takes_at_once(d) {
            return Some(i);
        }
        let doh = R::cost(d);
        let better = match least {
            None => true,
            Some((_, l, loh)) => loh * R::weight(d) > doh * R::weight(l),
        };
        if better {
            least = Some((i, d, doh));
        }
    }
    least.map(|(i, ..)| i)
}

/// [`least_by`] over the whole dest list.
#[inline]
pub(crate) fn least<R: Rank>(dests: &[Dest]) -> Option<usize> {
    least_by::<R>(dests.iter().enumerate())
}

/// An empty slot of a hashing scheduler's table: the service had no linked
/// dest (or, for mh, no weight) when the table was built.
pub(crate) const NO_DEST: u32 = u32::MAX;

/// Fills a dh/sh table in slot order with the linked dests in list order,
/// each taking `turns(dest)` consecutive slots (at least one) per round
/// (`ip_vs_dh_reassign`, `ip_vs_sh_reassign`); every slot is [`NO_DEST`]
/// when no dest is linked.
pub(crate) fn fill_round_robin(table: &mut [u32], dests: &[Dest], turns: impl Fn(&Dest) -> i32) {
    let linked: Vec<usize> = (0..dests.len()).filter(|&i| dests[i].available).collect();
    if linked.is_empty() {
        table.fill(NO_DEST);
        return;
    }
    let mut p = 0;
    let mut count = 0;
    for slot in table.iter_mut() {
        let i = linked[p];
        *slot = i as u32;
        count += 1;
        if count >= turns(&dests[i]) {
            p = (p + 1) % linked.len();
            count = 0;
        }
    }
}

/// The lookup of the hashing schedulers with their `*-fallback` walk
/// (`ip_vs_sh_get_fallback`, `ip_vs_mh_get_fallback`): `first` is the table
/// entry the connection hashes to and `probe(k)`, `k < probes`, the entry of
/// the k-th fallback slot (`probes` is 0 without the fallback flag). The walk
/// takes the first usable dest and ends with none at an empty slot, or after
/// the last probe.
#[inline]
pub(crate) fn hashed_dest(
    dests: &[Dest],
    first: u32,
    probes: usize,
    probe: impl Fn(usize) -> u32,
) -> Option<usize> {
    let mut entry = first;
    let mut k = 0;
    loop {
        if entry == NO_DEST {
            return None;
        }
        let i = entry as usize;
        if dests.get(i).is_some_and(usable) {
            return Some(i);
        }
        if k == probes {
            return None;
        }
        entry = probe(k);
        k += 1;
    }
}

/// lblc/lblcr's `is_overloaded`: the dest has more active connections than
/// its weight while some dest of the service is below half of its own.
pub(crate) fn locality_overloaded(dest: &Dest, dests: &[Dest]) -> bool {
    if (dest.active_conns as i64) <= dest.weight as i64 {
        return false;
    }
    dests
        .iter()
        .filter(|d| d.available)
        .any(|d| (d.active_conns as i64) * 2 < d.weight as i64)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builders for scheduler unit tests: plain `Dest` values whose counters
    //! the tests set by hand to replay a connection history.
    use std::net::IpAddr;

    use crate::dest::{Dest, FwdMethod};
    use crate::sched::SchedInput;
    use crate::time::Timestamp;

    /// No scheduler flags (sh/mh tests).
    pub const PLAIN: crate::sched::SchedFlags = crate::sched::SchedFlags {
        fallback: false,
        port: false,
        flag3: false,
    };

    /// A client `src:sport` to the hash schedulers' test VIP.
    pub fn from(src: &str, sport: u16) -> SchedInput {
        input(src, sport, "198.51.100.1")
    }

    /// Dests 10.0.0.1, 10.0.0.2, ... port 80 with the given weights.
    pub fn dests(weights: &[i32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let addr: IpAddr = format!("10.0.0.{}", i + 1).parse().unwrap();
                Dest::new(addr, 80, FwdMethod::Route, w)
            })
            .collect()
    }

    /// Dests 2001:db8::1, 2001:db8::2, ... port 80 with the given weights.
    pub fn dests6(weights: &[i32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let addr: IpAddr = format!("2001:db8::{:x}", i + 1).parse().unwrap();
                Dest::new(addr, 80, FwdMethod::Route, w)
            })
            .collect()
    }

    pub fn input(src: &str, sport: u16, dst: &str) -> SchedInput {
        SchedInput {
            src: src.parse().unwrap(),
            sport,
            dst: dst.parse().unwrap(),
            dport: 80,
            now: Timestamp::ZERO,
            rand: 0,
        }
    }

    pub fn at(mut i: SchedInput, now: Timestamp) -> SchedInput {
        i.now = now;
        i
    }

    /// A client input for schedulers that look at nothing but the dests.
    pub fn any() -> SchedInput {
        input("192.0.2.1", 1024, "198.51.100.1")
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::dests;
    use super::*;
    use crate::sched::wlc::WeightedLeastConn;

    #[test]
    fn hash_32_matches_kernel_constant() {
        assert_eq!(hash_32(1, 32), 0x61C8_8647);
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 10), 0);
        // 0xC0000201 * 0x61C88647 mod 2^32 = 0x32D51447; top 10 bits 0xCB
        assert_eq!(hash_32(0xC000_0201, 10), 0xCB);
        assert_eq!(hash_32(0xC000_0201, 8), 0x32);
    }

    #[test]
    fn fold_v4_is_host_order_and_v6_xors_words() {
        assert_eq!(fold_addr(&"192.0.2.1".parse().unwrap()), 0xC000_0201);
        let a: IpAddr = "2001:db8:0:1::5".parse().unwrap();
        // words 2001:0db8, 0000:0001, 0000:0000, 0000:0005
        assert_eq!(fold_addr(&a), 0x2001_0db8 ^ 0x0000_0001 ^ 0x0000_0005);
        // a v4-mapped address does not fold like the v4 address
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(fold_addr(&m), 0x0000_ffff ^ 0xC000_0201);
    }

    #[test]
    fn weighted_least_conn_ties_keep_first_and_skips_unusable() {
        let mut d = dests(&[1, 2, 2]);
        assert_eq!(least::<WeightedLeastConn>(&d), Some(0));
        d[0].active_conns = 1; // 256/1 vs 0/2
        assert_eq!(least::<WeightedLeastConn>(&d), Some(1));
        d[1].active_conns = 1; // 256/2 == 256/2 for 2: keep 1
        d[2].active_conns = 1;
        assert_eq!(least::<WeightedLeastConn>(&d), Some(1));
        d[2].inact_conns = 0;
        d[1].inact_conns = 1;
        assert_eq!(least::<WeightedLeastConn>(&d), Some(2));
        d[2].overloaded = true;
        assert_eq!(least::<WeightedLeastConn>(&d), Some(1));
        d[1].available = false;
        assert_eq!(least::<WeightedLeastConn>(&d), Some(0));
        d[0].weight = 0;
        assert_eq!(least::<WeightedLeastConn>(&d), None);
    }

    /// One dest of weight `w` with `active` and `inact` connections.
    fn load(w: i32, active: u32, inact: u32) -> Dest {
        let mut d = dests(&[w]).remove(0);
        (d.active_conns, d.inact_conns) = (active, inact);
        d
    }

    /// `a` and `b` rank equal (with different costs and weights), `c`
    /// ranks strictly better: whatever their order, equals keep the earlier
    /// candidate and the better one wins.
    fn ranks_like_the_kernel<R: Rank>(name: &str, a: Dest, b: Dest, c: Dest) {
        assert_eq!(least_by::<R>([(0, &a), (1, &b)]), Some(0), "{name}: a b");
        assert_eq!(least_by::<R>([(1, &b), (0, &a)]), Some(1), "{name}: b a");
        assert_eq!(least_by::<R>([(2, &c), (0, &a)]), Some(2), "{name}: c a");
        assert_eq!(
            least_by::<R>([(0, &a), (1, &b), (2, &c)]),
            Some(2),
            "{name}"
        );
        assert_eq!(
            least_by::<R>([(2, &c), (0, &a), (1, &b)]),
            Some(2),
            "{name}"
        );
        // the candidates' order decides, not their index (lblcr's sets)
        assert_eq!(least_by::<R>([(7, &b), (3, &a)]), Some(7), "{name}: 7 3");
    }

    #[test]
    fn every_rank_keeps_the_first_of_equals() {
        use crate::sched::{fo, lc, nq, ovf, sed, wlc};
        // 256/1 == 512/2; 256/2 is less
        ranks_like_the_kernel::<wlc::WeightedLeastConn>(
            "wlc",
            load(1, 1, 0),
            load(2, 2, 0),
            load(2, 1, 0),
        );
        // (1+1)/1 == (5+1)/3; (4+1)/3 is less; inactive ignored
        ranks_like_the_kernel::<sed::ShortestExpectedDelay>(
            "sed",
            load(1, 1, 0),
            load(3, 5, 9),
            load(3, 4, 0),
        );
        ranks_like_the_kernel::<nq::NeverQueue>("nq", load(1, 1, 0), load(3, 5, 9), load(3, 4, 0));
        // weights play no part: 257 == 257; 256 is less
        ranks_like_the_kernel::<lc::LeastConn>("lc", load(1, 1, 1), load(5, 1, 1), load(1, 1, 0));
        // the heaviest wins, load aside
        ranks_like_the_kernel::<fo::Failover>("fo", load(3, 9, 0), load(3, 0, 0), load(4, 9, 9));
        ranks_like_the_kernel::<ovf::Overflow>("ovf", load(3, 3, 0), load(3, 0, 0), load(4, 4, 9));
    }

    #[test]
    fn new_scheduler_builds_every_kind() {
        use crate::sched::{SchedFlags, SchedKind, new_scheduler};
        for k in SchedKind::ALL {
            let mut s = new_scheduler(k, SchedFlags::default());
            assert_eq!(s.kind(), k);
            let d = dests(&[1, 1]);
            s.update(&d);
            let got = s.schedule(&d, &super::testutil::any());
            assert!(got.is_some_and(|i| i < 2), "{k}: {got:?}");
        }
    }

    #[test]
    fn locality_overload_needs_an_underused_peer() {
        let mut d = dests(&[2, 4]);
        d[0].active_conns = 3;
        d[1].active_conns = 2; // 4 < 4 false
        assert!(!locality_overloaded(&d[0], &d));
        d[1].active_conns = 1;
        assert!(locality_overloaded(&d[0], &d));
        d[1].available = false;
        assert!(!locality_overloaded(&d[0], &d));
        d[1].available = true;
        d[0].active_conns = 2; // not above its weight
        assert!(!locality_overloaded(&d[0], &d));
    }
}
