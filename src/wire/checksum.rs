//! Internet checksums: RFC 1071 sums, pseudo-header sums and RFC 1624
//! incremental updates.
//!
//! All values are host-order `u16`s of the big-endian words on the wire.
//! A "sum" is the folded one's-complement sum (never complemented); a
//! "checksum" is the complement of a sum, as stored in a header.
//!
//! Invariants:
//! - [`sum`] of data that is not all zero is never `0x0000` (end-around carry
//!   keeps it in `1..=0xFFFF`), so a checksum computed from scratch and one
//!   updated with [`update_u16`] and friends (RFC 1624 eqn. 3) agree bit for bit.
//! - Only the last slice fed to a multi-part sum may have an odd length: an
//!   odd byte is padded as the high byte of a final word.
//!
//! Deliberately not here: the UDP "zero means none" rule and the
//! 0 -> 0xFFFF substitution belong to the callers that know the protocol
//! (see [`udp_fixup`]), because TCP and ICMP never substitute.
//!
//! Partial checksums (a sender's checksum offload that nothing finished:
//! veth, virtio) are recognised by [`maybe_partial`] and finished by
//! [`complete_partial`].

use std::net::IpAddr;

/// Folds a wide accumulator into 16 bits with end-around carry.
///
/// A fixed sequence of four folds, no loop: 64 -> 33 -> 18 -> 17 -> 16
/// bits. Each fold keeps the value modulo 0xFFFF and keeps it non-zero
/// unless it was zero, so the result is the same as folding until it fits.
#[inline]
pub fn fold(acc: u64) -> u16 {
    let acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    acc as u16
}

/// Adds `data` to an unfolded accumulator. 32-bit words are summed into a
/// `u64` (2^32 == 1 mod 0xFFFF, so folding afterwards gives the RFC 1071
/// 16-bit sum); a trailing odd byte is padded with zero.
#[inline]
pub fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        let w = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]) as u64;
        acc += w(0) + w(4) + w(8) + w(12);
    }
    let mut rest = chunks.remainder();
    while rest.len() >= 2 {
        acc += u16::from_be_bytes([rest[0], rest[1]]) as u64;
        rest = &rest[2..];
    }
    if let [b] = rest {
        acc += (*b as u64) << 8;
    }
    acc
}

/// The folded one's-complement sum of `data` (RFC 1071).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// One's-complement addition of two folded sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// The checksum to store for `data` (whose checksum field must be zero).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// The checksum to store for data whose sum (pseudo-header included) is `s`.
#[inline]
pub fn finish(s: u16) -> u16 {
    !s
}

/// True when `data`, checksum field included, sums to all ones.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xFFFF
}

/// [`verify`] for an option-less IPv4 header: the same result, as five
/// 32-bit words with no length-dependent loop (the per-packet fast path).
#[inline(always)]
pub fn verify_ipv4_header(h: &[u8; 20]) -> bool {
    let w = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
    fold(w(0) + w(4) + w(8) + w(12) + w(16)) == 0xFFFF
}

/// Sum of the IPv4 pseudo-header (RFC 793 / 768): two 32-bit words and
/// two small ones, no byte loop (it runs for every forwarded segment).
#[inline(always)]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u16 {
    let acc = u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(proto)
        + u64::from(l4_len);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1), as eight 32-bit
/// words.
#[inline(always)]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, l4_len: u32) -> u16 {
    let words = |a: [u8; 16]| {
        let v = u128::from_be_bytes(a);
        (v >> 96) as u32 as u64
            + (v >> 64) as u32 as u64
            + (v >> 32) as u32 as u64
            + v as u32 as u64
    };
    let acc = words(src) + words(dst) + u64::from(l4_len) + u64::from(proto);
    fold(acc)
}

/// Pseudo-header sum for either family. Mixed families are a caller bug;
/// they give the sum of the v6-mapped form, which never verifies.
pub fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, l4_len: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_v4(s.octets(), d.octets(), proto, l4_len as u16),
        (s, d) => pseudo_v6(to_v6(s), to_v6(d), proto, l4_len),
    }
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// RFC 1624 eqn. 3 for one 16-bit word: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update_u16(hc: u16, old: u16, new: u16) -> u16 {
    // Three 16-bit terms stay below 0x3_0000: two folds bring any such
    // sum into 16 bits (see `fold` for why the result is the same).
    let acc = u32::from(!hc) + u32::from(!old) + u32::from(new);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    !(acc as u16)
}

/// RFC 1624 eqn. 3 for a 32-bit field (two words).
#[inline]
pub fn update_u32(hc: u16, old: u32, new: u32) -> u16 {
    let acc = (!hc) as u64
        + (!(old >> 16) & 0xFFFF) as u64
        + (!old & 0xFFFF) as u64
        + (new >> 16) as u64
        + (new & 0xFFFF) as u64;
    !fold(acc)
}

/// RFC 1624 eqn. 3 for a field of any even length (an address): `old` and
/// `new` must have the same length; both are taken as 16-bit words at an
/// even offset from the start of the checksummed data.
#[inline]
pub fn update_addr(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    debug_assert_eq!(old.len() % 2, 0);
    let mut acc = (!hc) as u64;
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        acc += (!u16::from_be_bytes([o[0], o[1]])) as u64;
        acc += u16::from_be_bytes([n[0], n[1]]) as u64;
    }
    !fold(acc)
}

/// True when two stored checksums are the same one's-complement value
/// (`0x0000` and `0xFFFF` are both zero).
#[inline]
pub fn same(a: u16, b: u16) -> bool {
    a == b || (a | b == 0xFFFF && (a == 0 || b == 0))
}

/// Whether a stored TCP/UDP checksum field may be a partial checksum
/// (Linux's `CHECKSUM_PARTIAL`, left for a NIC to finish): such a field
/// holds the folded pseudo-header sum `pseudo` itself, not complemented
/// (`~tcp_v4_check(len, saddr, daddr, 0)` and its UDP/IPv6 twins). The
/// comparison is one's-complement ([`same`]: Linux stores the sum as
/// `1..=0xFFFF`, another sender might write a zero sum as 0). A UDP field
/// of 0 is never partial: over IPv4 it means "no checksum", over IPv6 it is
/// invalid, and no sender stores a pseudo-header sum that way.
///
/// Cheap (one compare once `pseudo` is known) and not conclusive: a valid
/// full checksum equals `pseudo` when the segment's other words sum to
/// `-2 * pseudo`; [`complete_partial`] tells the two apart.
#[inline(always)]
pub fn maybe_partial(field: u16, pseudo: u16, udp: bool) -> bool {
    same(field, pseudo) && !(udp && field == 0)
}

/// Finishes a partial checksum as the NIC would: `l4` is the whole TCP or
/// UDP segment whose checksum field (at `csum_at`) holds the pseudo-header
/// sum ([`maybe_partial`] said so), the pseudo-header is thereby already in
/// the sum of `l4`, and the complete checksum is the complement of that sum
/// (UDP: a 0 result is stored as 0xFFFF).
///
/// Returns whether the field changed. A field that already is the valid
/// full checksum is left alone (`false`): when the field equals the
/// pseudo-header sum, the completed checksum equals the field exactly when
/// the segment already verifies, so completing is always right and a valid
/// checksum is never touched. Costs one pass over the segment.
#[cold]
#[inline(never)]
pub fn complete_partial(l4: &mut [u8], csum_at: usize, udp: bool) -> bool {
    let Some(&[hi, lo]) = l4.get(csum_at..csum_at + 2) else {
        return false;
    };
    let field = u16::from_be_bytes([hi, lo]);
    let mut c = checksum(l4);
    if udp {
        c = udp_fixup(c);
    }
    if same(c, field) {
        return false;
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// How a UDP checksum is stored after an update: over IPv4, 0 means "no
/// checksum" and is handled by the caller (left alone); a computed 0 is
/// sent as 0xFFFF (RFC 768), for both families.
#[inline]
pub fn udp_fixup(c: u16) -> u16 {
    if c == 0 { 0xFFFF } else { c }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// RFC 1071 section 4.1, word by word, 32-bit accumulator: the reference.
    fn naive_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            acc += ((data[i] as u32) << 8) | data[i + 1] as u32;
            i += 2;
            while acc > 0xFFFF {
                acc = (acc & 0xFFFF) + (acc >> 16);
            }
        }
        if i < data.len() {
            acc += (data[i] as u32) << 8;
        }
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 numerical example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&d), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn fast_sum_matches_naive_reference() {
        let mut rng = SmallRng::seed_from_u64(1071);
        for _ in 0..2000 {
            let len = rng.random_range(0..300);
            let mut d = vec![0u8; len];
            if rng.random_bool(0.1) {
                d.fill(0xFF);
            } else {
                rng.fill(&mut d[..]);
            }
            assert_eq!(sum(&d), naive_sum(&d), "len {len}");
        }
    }

    /// The loop the fixed fold replaces.
    fn fold_loop(mut acc: u64) -> u16 {
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn update_u16_equals_the_two_step_one_complement_form() {
        let mut rng = SmallRng::seed_from_u64(1624);
        let mut cases: Vec<(u16, u16, u16)> = vec![
            (0, 0, 0),
            (0xFFFF, 0xFFFF, 0xFFFF),
            (0, 0xFFFF, 0),
            (0xFFFF, 0, 0xFFFF),
        ];
        cases.extend((0..200_000).map(|_| (rng.random(), rng.random(), rng.random())));
        for (hc, old, new) in cases {
            assert_eq!(
                update_u16(hc, old, new),
                !add(add(!hc, !old), new),
                "{hc:#x} {old:#x} {new:#x}"
            );
        }
    }

    #[test]
    fn fixed_fold_equals_folding_until_it_fits() {
        let mut rng = SmallRng::seed_from_u64(0xf01d);
        let edges = [
            0,
            1,
            0xFFFF,
            0x1_0000,
            0x1_FFFE,
            0xFFFF_FFFF,
            0x1_0000_0000,
            0xFFFF_FFFF_FFFF,
            u64::MAX,
            u64::MAX - 1,
        ];
        for &x in &edges {
            assert_eq!(fold(x), fold_loop(x), "{x:#x}");
        }
        for _ in 0..200_000 {
            let x: u64 = rng.random::<u64>() >> rng.random_range(0..64);
            assert_eq!(fold(x), fold_loop(x), "{x:#x}");
        }
    }

    #[test]
    fn ipv4_header_verify_agrees_with_generic_verify() {
        let mut rng = SmallRng::seed_from_u64(20);
        let mut agreed_true = 0;
        for n in 0..20_000 {
            let mut h = [0u8; 20];
            match n % 4 {
                // All-zero and all-ones words are the folding corner cases.
                0 => h = [0xff; 20],
                1 => {}
                _ => rng.fill(&mut h[..]),
            }
            if n % 2 == 0 {
                // Store a valid checksum on half of them.
                h[10] = 0;
                h[11] = 0;
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            assert_eq!(verify_ipv4_header(&h), verify(&h), "{h:02x?}");
            agreed_true += usize::from(verify(&h));
        }
        assert!(agreed_true > 5_000);
    }

    #[test]
    fn verify_accepts_stored_checksum() {
        let mut d = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0, 0, 0xac, 0x10, 0x0a,
            0x63, 0xac, 0x10, 0x0a, 0x0c,
        ];
        let c = checksum(&d);
        assert_eq!(c, 0xb1e6);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verify(&d));
        d[3] ^= 1;
        assert!(!verify(&d));
    }

    #[test]
    fn incremental_equals_recomputation_random() {
        let mut rng = SmallRng::seed_from_u64(1624);
        for _ in 0..5000 {
            let words = rng.random_range(4..64usize);
            let mut d = vec![0u8; words * 2];
            rng.fill(&mut d[..]);
            let hc = checksum(&d);
            // change a 16-bit word, a 32-bit field or a 16-byte "address"
            let kind = rng.random_range(0..3);
            let width = [2usize, 4, 16][kind].min(d.len());
            let at = 2 * rng.random_range(0..=(d.len() - width) / 2);
            let old = d[at..at + width].to_vec();
            let mut new = vec![0u8; width];
            rng.fill(&mut new[..]);
            d[at..at + width].copy_from_slice(&new);
            let inc = match width {
                2 => update_u16(
                    hc,
                    u16::from_be_bytes([old[0], old[1]]),
                    u16::from_be_bytes([new[0], new[1]]),
                ),
                4 => update_u32(
                    hc,
                    u32::from_be_bytes([old[0], old[1], old[2], old[3]]),
                    u32::from_be_bytes([new[0], new[1], new[2], new[3]]),
                ),
                _ => update_addr(hc, &old, &new),
            };
            assert_eq!(inc, checksum(&d));
            assert_eq!(inc, !naive_sum(&d));
        }
    }

    #[test]
    fn rfc1624_negative_zero_corner_case() {
        // RFC 1624 section 3: other words sum to 0xCD7A, one word changes from
        // 0x5555 to 0x3285. The true checksum is 0x0000; eqn. 2 would give 0xFFFF.
        let before = [0xCD, 0x7A, 0x55, 0x55];
        let after = [0xCD, 0x7A, 0x32, 0x85];
        let hc = checksum(&before);
        assert_eq!(hc, 0xDD2F);
        assert_eq!(checksum(&after), 0x0000);
        assert_eq!(update_u16(hc, 0x5555, 0x3285), 0x0000);
        assert_eq!(update_addr(hc, &before[2..], &after[2..]), 0x0000);
        // and back again
        assert_eq!(update_u16(0x0000, 0x3285, 0x5555), 0xDD2F);
    }

    #[test]
    fn pseudo_header_sums() {
        let s = [192, 0, 2, 1];
        let d = [198, 51, 100, 7];
        let mut ph = Vec::new();
        ph.extend_from_slice(&s);
        ph.extend_from_slice(&d);
        ph.extend_from_slice(&[0, 6, 0, 40]);
        assert_eq!(pseudo_v4(s, d, 6, 40), naive_sum(&ph));
        assert_eq!(pseudo(s.into(), d.into(), 6, 40), naive_sum(&ph));
        let s6: [u8; 16] = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let d6: [u8; 16] = "2001:db8::2:1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let mut ph = Vec::new();
        ph.extend_from_slice(&s6);
        ph.extend_from_slice(&d6);
        ph.extend_from_slice(&0x0001_0010u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(pseudo_v6(s6, d6, 17, 0x0001_0010), naive_sum(&ph));
    }

    /// A TCP-like segment of `len` random bytes whose checksum field (at
    /// 16) holds the pseudo-header sum `pseudo`, as a sender with checksum
    /// offload leaves it.
    fn partial_segment(rng: &mut SmallRng, len: usize, pseudo: u16) -> Vec<u8> {
        let mut l4 = vec![0u8; len];
        rng.fill(&mut l4[..]);
        l4[16..18].copy_from_slice(&pseudo.to_be_bytes());
        l4
    }

    #[test]
    fn completing_a_partial_checksum_gives_the_full_one() {
        let mut rng = SmallRng::seed_from_u64(0xc5);
        for n in 0..5000 {
            let pseudo: u16 = rng.random_range(1..=0xFFFF);
            let len = rng.random_range(20..300);
            let udp = n % 2 == 1;
            let mut l4 = partial_segment(&mut rng, len, pseudo);
            assert!(maybe_partial(pseudo, pseudo, udp));
            // The reference: zero the field, sum with the pseudo-header.
            let mut zeroed = l4.clone();
            zeroed[16..18].fill(0);
            let mut want = finish(add(sum(&zeroed), pseudo));
            if udp {
                want = udp_fixup(want);
            }
            let changed = complete_partial(&mut l4, 16, udp);
            let got = u16::from_be_bytes([l4[16], l4[17]]);
            assert!(same(got, want), "{got:#x} {want:#x}");
            assert_eq!(add(sum(&l4), pseudo), 0xFFFF, "verifies");
            assert_eq!(changed, !same(want, pseudo));
            assert_eq!(&l4[..16], &zeroed[..16]);
            assert_eq!(&l4[18..], &zeroed[18..]);
        }
    }

    #[test]
    fn a_valid_checksum_that_equals_the_pseudo_sum_is_left_alone() {
        // The one ambiguity: a full checksum can equal the pseudo-header sum
        // when the segment's words make it so. Then the field already is
        // what completion would write: nothing changes, nothing is counted.
        let mut rng = SmallRng::seed_from_u64(0xa11);
        for _ in 0..2000 {
            let pseudo: u16 = rng.random_range(1..=0xFFFF);
            let len = 2 * rng.random_range(12..150);
            let mut l4 = partial_segment(&mut rng, len, pseudo);
            // Choose the last word so that the checksum verifies as stored.
            l4[len - 2..].fill(0);
            let w = !add(sum(&l4), pseudo);
            l4[len - 2..].copy_from_slice(&w.to_be_bytes());
            assert_eq!(add(sum(&l4), pseudo), 0xFFFF);
            let before = l4.clone();
            assert!(maybe_partial(
                u16::from_be_bytes([l4[16], l4[17]]),
                pseudo,
                false
            ));
            assert!(!complete_partial(&mut l4, 16, false));
            assert_eq!(l4, before);
        }
    }

    #[test]
    fn partial_recognition_is_one_complement_and_skips_udp_zero() {
        assert!(maybe_partial(0x1234, 0x1234, false));
        assert!(!maybe_partial(0x1235, 0x1234, false));
        // 0 and 0xFFFF are the same one's-complement value.
        assert!(maybe_partial(0x0000, 0xFFFF, false));
        assert!(maybe_partial(0xFFFF, 0xFFFF, true));
        // UDP's 0 is "no checksum" (IPv4) or invalid (IPv6), never partial.
        assert!(!maybe_partial(0x0000, 0xFFFF, true));
        assert!(same(0, 0xFFFF) && same(0xFFFF, 0) && same(7, 7));
        assert!(!same(0, 1) && !same(0xFFFE, 0xFFFF));
        // A field too short to hold a checksum changes nothing.
        let mut short = [0u8; 17];
        assert!(!complete_partial(&mut short, 16, false));
    }

    #[test]
    fn udp_zero_is_sent_as_all_ones() {
        assert_eq!(udp_fixup(0), 0xFFFF);
        assert_eq!(udp_fixup(0x1234), 0x1234);
    }
}
