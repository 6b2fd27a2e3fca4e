//! Fragments to a virtual service: reassembled, forwarded as IPVS does and
//! refragmented; hostile streams (overlaps, duplicates, tiny first
//! fragments, never-completed datagrams, floods) cost bounded memory and
//! are counted; non-DF IPv4 too big for a tunnel leaves fragmented.

use std::net::IpAddr;

use etherparse::PacketBuilder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::reasm::{Added, Reasm, SLOTS};
use super::tests::{client, ip, vip};
use super::*;
use crate::forward::frag::{ExtraTx, fragment};
use crate::sched::SchedKind;
use crate::service::DestSpec;
use crate::wire::{IpVersion, checksum, ipv4};

const RS_MAC: MacAddr = [2, 0, 0, 0, 0, 0x0b];

fn rip(v6: bool) -> IpAddr {
    ip(if v6 { "2001:2:0:2::11" } else { "198.18.2.11" })
}

/// A UDP service on port 53 of each family's VIP, one real server (port
/// 5353 for NAT).
fn dp(fwd: FwdMethod) -> Dataplane {
    let specs: Vec<_> = [false, true]
        .into_iter()
        .map(|v6| {
            let port = if fwd == FwdMethod::Masq { 5353 } else { 53 };
            let mut d = DestSpec::new(rip(v6), port, fwd);
            d.mac = Some(RS_MAC);
            let key = ServiceKey {
                proto: Protocol::Udp,
                addr: vip(v6),
                port: 53,
                fwmark: 0,
            };
            let mut spec = ServiceSpec::new(key, SchedKind::Rr, vec![d]);
            if fwd == FwdMethod::FullNat {
                spec.local_addrs = vec![ip(if v6 { "2001:2:0:9::1" } else { "198.18.9.1" })];
            }
            spec
        })
        .collect();
    let mut dp = Dataplane::new(DataplaneConfig::new(1024), ServiceTable::from_specs(&specs));
    dp.cfg.own_addrs = vec![ip("198.18.0.2"), ip("2001:2::2")];
    dp
}

/// A whole UDP datagram client -> VIP:53 of `len` payload bytes, IPv4
/// identification `id`, DF clear.
fn datagram(v6: bool, len: usize, id: u16) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0, 0, 0, 0, 1]);
    let b = match (client(v6), vip(v6)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let mut v = Vec::new();
    b.udp(40000, 53).write(&mut v, &payload).unwrap();
    if !v6 {
        let h = &mut v[wire::ETH_HLEN..wire::ETH_HLEN + 20];
        h[ipv4::field::IDENT].copy_from_slice(&id.to_be_bytes());
        h[ipv4::field::FLG_OFF].fill(0);
        h[ipv4::field::CHECKSUM].fill(0);
        let c = checksum::checksum(h);
        h[ipv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
    v
}

/// `d` cut into fragments of at most `mtu` bytes of IP.
fn frags(d: &[u8], v6: bool, mtu: usize, id: u32) -> Vec<Vec<u8>> {
    let mut x = ExtraTx::with_capacity(200_000, 200);
    let ver = if v6 { IpVersion::V6 } else { IpVersion::V4 };
    fragment(d, wire::ETH_HLEN, ver, mtu, id, &mut x, 0).unwrap();
    x.iter().map(|(f, _)| f.to_vec()).collect()
}

fn feed(dp: &mut Dataplane, f: &[u8], now: Timestamp) -> Verdict {
    let mut buf = vec![0u8; 256 + f.len() + 64];
    buf[256..256 + f.len()].copy_from_slice(f);
    let mut fb = FrameBuf::new(&mut buf, 256, f.len());
    dp.process(&mut fb, now)
}

fn taken(dp: &mut Dataplane) -> Vec<Vec<u8>> {
    let v = dp.extra().map(|(f, _)| f.to_vec()).collect();
    dp.clear_extra();
    v
}

/// Reassembles frames (of any destination) the way a receiver would.
fn rejoin(out: &[Vec<u8>]) -> Vec<u8> {
    let mut r = Reasm::new();
    for f in out {
        let p = wire::parse(f).unwrap().unwrap();
        if p.frag == Fragment::None {
            return f.clone();
        }
        if let Added::Whole(i) = r.add(f, &p, Timestamp::from_secs(1)) {
            let w = r.take(i);
            return w.buf[w.head..w.head + w.len].to_vec();
        }
    }
    panic!("the frames sent do not make a datagram");
}

fn udp_payload(f: &[u8]) -> Vec<u8> {
    let p = wire::parse(f).unwrap().unwrap();
    f[p.l4_off + 8..p.l3_end()].to_vec()
}

fn reassembled_and_forwarded(fwd: FwdMethod, v6: bool) {
    let what = format!("{} v{}", fwd.name(), if v6 { 6 } else { 4 });
    let mut dp = dp(fwd);
    let d = datagram(v6, 3000, 0x1234);
    let fr = frags(&d, v6, 1500, 77);
    assert_eq!(fr.len(), 3, "{what}");
    // Out of order: last first.
    for f in fr.iter().rev().take(2) {
        assert_eq!(feed(&mut dp, f, Timestamp::from_secs(1)), Verdict::Consumed);
        assert!(dp.extra().next().is_none(), "{what}: nothing sent yet");
    }
    assert_eq!(dp.frags_held().0, 1);
    assert_eq!(
        feed(&mut dp, &fr[0], Timestamp::from_secs(1)),
        Verdict::Consumed
    );
    assert_eq!(dp.frags_held(), (0, 0), "{what}: slot freed");
    let out = taken(&mut dp);
    assert_eq!(out.len(), 3, "{what}: refragmented like it came");
    for f in &out {
        let p = wire::parse(f).unwrap().unwrap();
        assert!(p.ip_len as usize <= 1500, "{what}");
        assert_eq!(&f[..6], &RS_MAC, "{what}: to the real server");
        assert_eq!(p.ttl, 63, "{what}: TTL decremented once");
    }
    let whole = rejoin(&out);
    let p = wire::parse(&whole).unwrap().unwrap();
    assert!(wire::verify_l4_checksum(&whole, &p), "{what}: checksum");
    assert_eq!(udp_payload(&whole), udp_payload(&d), "{what}: payload");
    let want_dst = match fwd {
        FwdMethod::Masq => (rip(v6), 5353),
        FwdMethod::FullNat => (rip(v6), 53),
        _ => (vip(v6), 53),
    };
    let L4::Udp { dport, .. } = p.l4 else {
        panic!()
    };
    assert_eq!((p.dst, dport), want_dst, "{what}");
    if fwd == FwdMethod::FullNat {
        let local = ip(if v6 { "2001:2:0:9::1" } else { "198.18.9.1" });
        assert_eq!(p.src, local, "{what}: from the local address");
    }
    assert_eq!(dp.counters.frag_reassembled, 1);
    assert_eq!(dp.counters.frag_sent, 3);
    assert_eq!(dp.conns.len(), 1, "{what}: one connection, scheduled once");
}

#[test]
fn dr_reassembles_and_refragments() {
    reassembled_and_forwarded(FwdMethod::Route, false);
    reassembled_and_forwarded(FwdMethod::Route, true);
}

#[test]
fn nat_reassembles_rewrites_and_refragments() {
    reassembled_and_forwarded(FwdMethod::Masq, false);
    reassembled_and_forwarded(FwdMethod::Masq, true);
}

#[test]
fn fullnat_reassembles_rewrites_both_addresses_and_refragments() {
    reassembled_and_forwarded(FwdMethod::FullNat, false);
    reassembled_and_forwarded(FwdMethod::FullNat, true);
}

#[test]
fn refragmented_to_the_largest_fragment_received() {
    let mut dp = dp(FwdMethod::Route);
    let d = datagram(false, 3000, 9);
    let fr = frags(&d, false, 576, 0);
    for f in &fr {
        feed(&mut dp, f, Timestamp::from_secs(1));
    }
    let out = taken(&mut dp);
    assert_eq!(out.len(), fr.len(), "frag_max_size geometry");
    assert!(out.iter().all(|f| f.len() <= wire::ETH_HLEN + 576));
}

#[test]
fn tunnel_of_a_reassembled_datagram_fragments_the_outer_packet() {
    // IPv6 fragments must fit once encapsulated (frag_max_size + 40 <=
    // MTU, __mtu_check_toobig_v6); IPv4 without DF is always fragmented.
    for (v6, cut) in [(false, 1500), (true, 1280)] {
        let mut dp = dp(FwdMethod::Tunnel);
        let d = datagram(v6, 3000, 5);
        for f in frags(&d, v6, cut, 3) {
            feed(&mut dp, &f, Timestamp::from_secs(1));
        }
        let out = taken(&mut dp);
        assert!(out.len() >= 3, "v6 {v6}: {:?}", dp.counters.drop_reasons());
        let outer = rejoin(&out);
        let p = wire::parse(&outer).unwrap().unwrap();
        assert_eq!(p.dst, rip(v6));
        let hdr = if v6 { wire::IPV6_HLEN } else { wire::IPV4_HLEN };
        let mut inner = outer[..wire::ETH_HLEN].to_vec();
        inner.extend_from_slice(&outer[wire::ETH_HLEN + hdr..]);
        assert_eq!(udp_payload(&inner), udp_payload(&d), "v6 {v6}");
    }
    // IPv6 fragments of 1500 bytes do not fit the tunnel: Packet Too Big
    // back to the client, from the VIP.
    let mut dp = dp(FwdMethod::Tunnel);
    let d = datagram(true, 3000, 5);
    for f in frags(&d, true, 1500, 4) {
        feed(&mut dp, &f, Timestamp::from_secs(1));
    }
    let out = taken(&mut dp);
    assert_eq!(out.len(), 1);
    let p = wire::parse(&out[0]).unwrap().unwrap();
    assert_eq!((p.src, p.dst), (vip(true), client(true)));
    assert!(
        matches!(p.l4, L4::IcmpOther { ty: 2, .. } | L4::IcmpError(_)),
        "{:?}",
        p.l4
    );
    assert_eq!(dp.counters.icmp_too_big, 1);
}

#[test]
fn non_df_ipv4_too_big_for_the_tunnel_leaves_fragmented() {
    let mut dp = dp(FwdMethod::Tunnel);
    // 1500 bytes of IP: 1520 with the outer header.
    let d = datagram(false, 1472, 1);
    assert_eq!(
        feed(&mut dp, &d, Timestamp::from_secs(1)),
        Verdict::Consumed
    );
    let out = taken(&mut dp);
    assert_eq!(out.len(), 2);
    for f in &out {
        let p = wire::parse(f).unwrap().unwrap();
        assert_eq!(p.proto, wire::IPPROTO_IPIP);
        assert!(p.ip_len <= 1500);
    }
    let outer = rejoin(&out);
    let mut inner = outer[..wire::ETH_HLEN].to_vec();
    inner.extend_from_slice(&outer[wire::ETH_HLEN + 20..]);
    assert_eq!(udp_payload(&inner), udp_payload(&d));
    assert_eq!(dp.counters.drops(DropReason::NeedsFragmentation), 0);
    // With DF it is still "fragmentation needed" back to the client.
    let mut df = datagram(false, 1472, 2);
    df[wire::ETH_HLEN + 6] |= 0x40;
    let h = &mut df[wire::ETH_HLEN..wire::ETH_HLEN + 20];
    h[10..12].fill(0);
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(feed(&mut dp, &df, Timestamp::from_secs(1)), Verdict::Tx(0));
    assert_eq!(dp.counters.icmp_too_big, 1);
}

#[test]
fn overlapping_fragment_drops_the_whole_datagram() {
    for v6 in [false, true] {
        let mut dp = dp(FwdMethod::Route);
        let d = datagram(v6, 3000, 7);
        let a = frags(&d, v6, 1500, 1);
        let b = frags(&d, v6, 1000, 1);
        feed(&mut dp, &a[0], Timestamp::from_secs(1));
        // b[1] starts inside a[0] and runs past it.
        let v = feed(&mut dp, &b[1], Timestamp::from_secs(1));
        assert_eq!(v, Verdict::Drop(DropReason::FragOverlap), "v6 {v6}");
        assert_eq!(dp.frags_held(), (0, 0), "v6 {v6}: datagram gone");
        // The rest cannot complete it.
        for f in &a[1..] {
            feed(&mut dp, f, Timestamp::from_secs(1));
        }
        assert!(dp.extra().next().is_none());
        assert_eq!(dp.counters.frag_reassembled, 0);
    }
}

#[test]
fn duplicate_fragment_is_dropped_alone() {
    let mut dp = dp(FwdMethod::Route);
    let d = datagram(false, 3000, 8);
    let a = frags(&d, false, 1500, 0);
    feed(&mut dp, &a[0], Timestamp::from_secs(1));
    let v = feed(&mut dp, &a[0], Timestamp::from_secs(1));
    assert_eq!(v, Verdict::Drop(DropReason::FragDup));
    for f in &a[1..] {
        feed(&mut dp, f, Timestamp::from_secs(1));
    }
    assert_eq!(dp.counters.frag_reassembled, 1);
}

#[test]
fn never_completed_datagram_times_out_after_30s() {
    let mut dp = dp(FwdMethod::Route);
    let d = datagram(true, 3000, 0);
    let a = frags(&d, true, 1500, 42);
    feed(&mut dp, &a[0], Timestamp::from_secs(10));
    dp.tick(Timestamp::from_secs(39));
    assert_eq!(dp.frags_held().0, 1, "not yet");
    dp.tick(Timestamp::from_secs(40));
    assert_eq!(dp.frags_held(), (0, 0));
    assert_eq!(dp.counters.drops(DropReason::FragTimeout), 1);
    // The rest of it now starts a new datagram that cannot complete.
    feed(&mut dp, &a[1], Timestamp::from_secs(41));
    feed(&mut dp, &a[2], Timestamp::from_secs(41));
    assert_eq!(dp.counters.frag_reassembled, 0);
}

#[test]
fn a_flood_of_first_fragments_fills_the_pool_and_no_more() {
    let mut dp = dp(FwdMethod::Route);
    for id in 0..200u16 {
        let d = datagram(false, 3000, id);
        let v = feed(
            &mut dp,
            &frags(&d, false, 1500, 0)[0],
            Timestamp::from_secs(1),
        );
        let want = if (id as usize) < SLOTS {
            Verdict::Consumed
        } else {
            Verdict::Drop(DropReason::FragNoRoom)
        };
        assert_eq!(v, want, "id {id}");
    }
    assert_eq!(dp.frags_held().0, SLOTS);
    assert_eq!(
        dp.counters.drops(DropReason::FragNoRoom),
        200 - SLOTS as u64
    );
    // Once they time out, fragments are taken again.
    dp.tick(Timestamp::from_secs(31));
    assert_eq!(dp.counters.drops(DropReason::FragTimeout), SLOTS as u64);
    let d = datagram(false, 3000, 999);
    for f in frags(&d, false, 1500, 0) {
        feed(&mut dp, &f, Timestamp::from_secs(32));
    }
    assert_eq!(dp.counters.frag_reassembled, 1);
}

/// A DR TCP service on port 80 of each family's VIP.
fn tcp_dp() -> Dataplane {
    let specs: Vec<_> = [false, true]
        .into_iter()
        .map(|v6| {
            let mut d = DestSpec::new(rip(v6), 80, FwdMethod::Route);
            d.mac = Some(RS_MAC);
            let key = ServiceKey {
                proto: Protocol::Tcp,
                addr: vip(v6),
                port: 80,
                fwmark: 0,
            };
            ServiceSpec::new(key, SchedKind::Rr, vec![d])
        })
        .collect();
    Dataplane::new(DataplaneConfig::new(1024), ServiceTable::from_specs(&specs))
}

/// A TCP SYN client -> VIP:80 with 100 payload bytes and `opts` bytes of
/// TCP options (NOPs), DF clear.
fn syn_segment(v6: bool, opts: usize) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0, 0, 0, 0, 1]);
    let b = match (client(v6), vip(v6)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!(),
    };
    let mut v = Vec::new();
    b.tcp(40000, 80, 1, 1000)
        .options_raw(&vec![1u8; opts])
        .unwrap()
        .syn()
        .write(&mut v, &[0x33; 100])
        .unwrap();
    if !v6 {
        let h = &mut v[wire::ETH_HLEN..wire::ETH_HLEN + 20];
        h[ipv4::field::FLG_OFF].fill(0);
        h[ipv4::field::CHECKSUM].fill(0);
        let c = checksum::checksum(h);
        h[ipv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
    v
}

/// Feeds `fr` in order; returns the last verdict and what was sent.
fn feed_all(dp: &mut Dataplane, fr: &[Vec<u8>]) -> (Vec<Verdict>, Vec<Vec<u8>>) {
    let v = fr
        .iter()
        .map(|f| feed(dp, f, Timestamp::from_secs(1)))
        .collect();
    (v, taken(dp))
}

#[test]
fn tiny_ipv4_first_fragment_is_reassembled_like_the_kernel_does() {
    let mut dp = tcp_dp();
    let seg = syn_segment(false, 0);
    // The first 8 bytes of the TCP header alone, MF set: ip_defrag takes
    // it like any other fragment.
    let fr = frags(&seg, false, 28, 0);
    let first = wire::parse(&fr[0]).unwrap().unwrap();
    assert_eq!((first.frag, first.l4), (Fragment::First, L4::Other));
    let (v, out) = feed_all(&mut dp, &fr);
    assert!(v.iter().all(|v| *v == Verdict::Consumed), "{v:?}");
    assert_eq!(dp.counters.frag_reassembled, 1);
    assert_eq!(dp.conns.len(), 1, "scheduled with its ports");
    assert!(out.iter().all(|f| f[..6] == RS_MAC), "to the real server");
    let whole = rejoin(&out);
    let p = wire::parse(&whole).unwrap().unwrap();
    assert!(wire::verify_l4_checksum(&whole, &p));
    assert_eq!(&whole[p.l4_off..], &seg[p.l4_off..]);
}

#[test]
fn ipv6_first_fragment_needs_the_base_tcp_header_as_nf_ct_frag6_gather() {
    // 16 bytes of TCP header in the first fragment: dropped
    // (ipv6frag_thdr_truncated), so the datagram cannot complete.
    let mut dp = tcp_dp();
    let fr = frags(&syn_segment(true, 0), true, 40 + 8 + 16, 5);
    let r = feed(&mut dp, &fr[0], Timestamp::from_secs(1));
    assert_eq!(
        r,
        Verdict::Drop(DropReason::Malformed(ParseError::TcpTruncated))
    );
    assert_eq!(dp.frags_held().0, 0);
    // 24 bytes: the 20-byte header and part of its 12 bytes of options.
    // The kernel asks no more (sizeof(struct tcphdr)): reassembled.
    let mut dp = tcp_dp();
    let seg = syn_segment(true, 12);
    let fr = frags(&seg, true, 40 + 8 + 24, 6);
    let first = wire::parse(&fr[0]).unwrap().unwrap();
    assert_eq!((first.frag, first.l4), (Fragment::First, L4::Other));
    let (v, out) = feed_all(&mut dp, &fr);
    assert!(v.iter().all(|v| *v == Verdict::Consumed), "{v:?}");
    assert_eq!(dp.counters.frag_reassembled, 1);
    assert_eq!(dp.conns.len(), 1);
    let whole = rejoin(&out);
    let p = wire::parse(&whole).unwrap().unwrap();
    assert!(wire::verify_l4_checksum(&whole, &p));
    // UDP needs its 8 bytes, which any first fragment holds (non-last
    // fragments carry multiples of 8).
}

#[test]
fn fragments_beyond_64k_or_past_the_last_are_bad() {
    let mut dp = dp(FwdMethod::Route);
    let d = datagram(false, 3000, 3);
    let mut fr = frags(&d, false, 1500, 0);
    // Offset 65528: the datagram would exceed 65535 bytes.
    let h = &mut fr[1][wire::ETH_HLEN..wire::ETH_HLEN + 20];
    let w = ipv4::MF | (65528 / 8) as u16;
    h[6..8].copy_from_slice(&w.to_be_bytes());
    h[10..12].fill(0);
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        feed(&mut dp, &fr[1], Timestamp::from_secs(1)),
        Verdict::Drop(DropReason::FragBad)
    );
    // A middle fragment beyond the last one.
    feed(&mut dp, &fr[2], Timestamp::from_secs(1));
    let late = frags(&datagram(false, 6000, 3), false, 1500, 0);
    assert_eq!(
        feed(&mut dp, &late[3], Timestamp::from_secs(1)),
        Verdict::Drop(DropReason::FragBad)
    );
}

/// Random fragment streams (pieces of real datagrams, cut, shuffled,
/// duplicated, with random offsets, flags and lengths) never panic and
/// never hold more than the pool.
#[test]
fn random_fragment_streams_stay_within_the_pool() {
    for seed in 0..40u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut dp = dp(if seed % 2 == 0 {
            FwdMethod::Masq
        } else {
            FwdMethod::Tunnel
        });
        let mut now = 1u64;
        for _ in 0..400 {
            let v6 = rng.random_bool(0.5);
            let d = datagram(v6, rng.random_range(1..5000), rng.random_range(0..48));
            let mtu = rng.random_range(200..1600);
            let mut fr = frags(&d, v6, mtu, rng.random_range(0..48));
            for f in &mut fr {
                if rng.random_bool(0.2) {
                    let at = rng.random_range(wire::ETH_HLEN..f.len());
                    f[at] = rng.random();
                }
                if rng.random_bool(0.1) {
                    let n = rng.random_range(wire::ETH_HLEN..f.len() + 1);
                    f.truncate(n);
                }
            }
            for _ in 0..fr.len() {
                let i = rng.random_range(0..fr.len());
                feed(&mut dp, &fr[i], Timestamp::from_secs(now));
                dp.clear_extra();
            }
            let (n, bytes) = dp.frags_held();
            assert!(n <= SLOTS && bytes <= SLOTS * 65535, "seed {seed}");
            if rng.random_bool(0.05) {
                now += 31;
                dp.tick(Timestamp::from_secs(now));
            }
        }
    }
}

#[test]
fn nat_reply_fragments_are_reassembled_and_rewritten() {
    for v6 in [false, true] {
        let mut dp = dp(FwdMethod::Masq);
        for f in frags(&datagram(v6, 3000, 1), v6, 1500, 1) {
            feed(&mut dp, &f, Timestamp::from_secs(1));
        }
        taken(&mut dp);
        // The real server's 3000-byte answer, fragmented by its stack.
        let eth = PacketBuilder::ethernet2(RS_MAC, [2, 0, 0, 0, 0, 1]);
        let b = match (rip(v6), client(v6)) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => unreachable!(),
        };
        let mut reply = Vec::new();
        b.udp(5353, 40000).write(&mut reply, &[0x5a; 3000]).unwrap();
        if !v6 {
            reply[wire::ETH_HLEN + 6] = 0;
        }
        for f in frags(&reply, v6, 1500, 9) {
            assert_eq!(
                feed(&mut dp, &f, Timestamp::from_secs(2)),
                Verdict::Consumed
            );
        }
        let out = taken(&mut dp);
        assert_eq!(out.len(), 3, "v6 {v6}");
        let whole = rejoin(&out);
        let p = wire::parse(&whole).unwrap().unwrap();
        assert_eq!((p.src, p.dst), (vip(v6), client(v6)));
        assert!(matches!(
            p.l4,
            L4::Udp {
                sport: 53,
                dport: 40000
            }
        ));
        assert!(wire::verify_l4_checksum(&whole, &p));
    }
}

#[test]
fn a_datagram_no_service_takes_goes_to_the_kernel_in_fragments() {
    let mut dp = dp(FwdMethod::Route);
    let mut d = datagram(false, 3000, 4);
    // To port 54: the VIP has no service there.
    let p = wire::parse(&d).unwrap().unwrap();
    d[p.l4_off + 3] = 54;
    d[p.l4_off + 6..p.l4_off + 8].fill(0);
    let fr = frags(&d, false, 1500, 0);
    for f in &fr {
        assert_eq!(feed(&mut dp, f, Timestamp::from_secs(1)), Verdict::Consumed);
    }
    let out: Vec<_> = dp.extra().map(|(f, n)| (f.to_vec(), n)).collect();
    assert_eq!(out.len(), fr.len());
    assert!(out.iter().all(|(_, n)| *n == TO_KERNEL));
    assert_eq!(out[0].0, fr[0], "as it came");
}

const OWN: MacAddr = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: MacAddr = [2, 0xc1, 0, 0, 0, 1];

/// Times out a datagram of which only `which` fragments came (at 10 s);
/// returns what the data plane sent on the tick at 40 s.
fn timed_out(dp: &mut Dataplane, fr: &[Vec<u8>], which: &[usize]) -> Vec<(Vec<u8>, NicId)> {
    for &i in which {
        assert_eq!(
            feed(dp, &fr[i], Timestamp::from_secs(10)),
            Verdict::Consumed
        );
    }
    dp.tick(Timestamp::from_secs(39));
    assert_eq!(dp.extra_len(), 0, "not yet");
    dp.tick(Timestamp::from_secs(40));
    assert_eq!(dp.frags_held(), (0, 0));
    let out = dp.extra().map(|(f, n)| (f.to_vec(), n)).collect();
    dp.clear_extra();
    out
}

#[test]
fn reassembly_timeout_sends_icmp_time_exceeded_quoting_the_first_fragment() {
    for v6 in [false, true] {
        let mut dp = dp(FwdMethod::Route);
        dp.cfg.own_macs = vec![OWN];
        let d = datagram(v6, 3000, 0x77);
        let fr = frags(&d, v6, 1500, 0x77);
        let out = timed_out(&mut dp, &fr, &[0, 2]);
        assert_eq!(out.len(), 1, "v6 {v6}");
        assert_eq!(out[0].1, 0, "out of the NIC it came in on");
        let f = &out[0].0;
        assert_eq!((&f[..6], &f[6..12]), (&CLIENT_MAC[..], &OWN[..]));
        let p = wire::parse(f).unwrap().unwrap();
        assert_eq!((p.src, p.dst), (vip(v6), client(v6)), "from the VIP");
        assert_eq!(p.ttl, 64);
        let L4::IcmpError(e) = p.l4 else {
            panic!("v6 {v6}: {:?}", p.l4)
        };
        let want = if v6 { (3, 1) } else { (11, 1) };
        assert_eq!(e.kind, want, "fragment reassembly time exceeded");
        assert!(wire::verify_l4_checksum(f, &p), "v6 {v6}: ICMP checksum");
        // The quote is the first fragment as received, cut at 576 / 1280
        // bytes of ICMP packet.
        let cap = if v6 { 1280 } else { 576 };
        assert_eq!(p.ip_len as usize, cap, "v6 {v6}");
        let quote = &f[e.inner_l3_off..p.l3_end()];
        let first = &fr[0][wire::ETH_HLEN..];
        assert_eq!(quote, &first[..quote.len()], "v6 {v6}");
        assert_eq!(e.inner_frag, Fragment::First);
        assert_eq!(dp.counters.icmp_frag_time, 1);
        assert_eq!(dp.counters.drops(DropReason::FragTimeout), 1);
        if !v6 {
            assert!(checksum::verify(&f[14..34]), "IPv4 header checksum");
            assert_eq!(f[14 + 1], 0xc0, "internetwork control");
        }
    }
}

#[test]
fn no_icmp_without_the_first_fragment() {
    for v6 in [false, true] {
        let mut dp = dp(FwdMethod::Route);
        let fr = frags(&datagram(v6, 3000, 5), v6, 1500, 5);
        assert!(timed_out(&mut dp, &fr, &[1, 2]).is_empty(), "v6 {v6}");
        assert_eq!(dp.counters.icmp_frag_time, 0);
        assert_eq!(dp.counters.drops(DropReason::FragTimeout), 1);
    }
}

#[test]
fn a_nat_reply_s_timeout_is_answered_only_in_ipv6() {
    for v6 in [false, true] {
        let mut dp = dp(FwdMethod::Masq);
        let eth = PacketBuilder::ethernet2(RS_MAC, OWN);
        let b = match (rip(v6), client(v6)) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => unreachable!(),
        };
        let mut reply = Vec::new();
        b.udp(5353, 40000).write(&mut reply, &[0x5a; 3000]).unwrap();
        if !v6 {
            reply[wire::ETH_HLEN + 6] = 0;
        }
        let fr = frags(&reply, v6, 1500, 9);
        let out = timed_out(&mut dp, &fr, &[0]);
        if v6 {
            // ip6frag_expire_frag_queue answers whatever the destination,
            // from the director's address.
            assert_eq!(out.len(), 1);
            let p = wire::parse(&out[0].0).unwrap().unwrap();
            assert_eq!((p.src, p.dst), (ip("2001:2::2"), rip(true)));
            assert_eq!(&out[0].0[..6], &RS_MAC);
        } else {
            // ip_expire: only an end host answers (RFC 792).
            assert!(out.is_empty());
        }
    }
}

#[test]
fn time_exceeded_is_rate_limited_per_destination_like_icmp_send() {
    let mut dp = dp(FwdMethod::Route);
    for id in 0..10u16 {
        let d = datagram(false, 3000, id);
        feed(
            &mut dp,
            &frags(&d, false, 1500, 0)[0],
            Timestamp::from_secs(1),
        );
    }
    dp.tick(Timestamp::from_secs(31));
    // A burst of 6 (XRLIM_BURST_FACTOR), then one a second.
    assert_eq!(dp.extra_len(), 6);
    assert_eq!(dp.counters.icmp_frag_time, 6);
    assert_eq!(dp.counters.icmp_frag_time_limited, 4);
    dp.clear_extra();
    for (id, t) in [(20u16, 2), (21, 2), (22, 3)] {
        let d = datagram(false, 3000, id);
        feed(
            &mut dp,
            &frags(&d, false, 1500, 0)[0],
            Timestamp::from_secs(t),
        );
    }
    dp.tick(Timestamp::from_secs(32));
    assert_eq!(dp.extra_len(), 1, "one second's worth of credit");
    dp.clear_extra();
    dp.tick(Timestamp::from_secs(33));
    assert_eq!(dp.extra_len(), 1);
    assert_eq!(dp.counters.icmp_frag_time, 8);
    assert_eq!(dp.counters.icmp_frag_time_limited, 5);
}

#[test]
fn error_limit_keeps_destinations_apart_and_forgets_the_oldest() {
    use super::reasm::{ErrorLimit, LIMIT_PEERS};
    let mut l = ErrorLimit::new();
    let t = Timestamp::from_secs(100);
    let a = ip("198.18.1.1");
    for _ in 0..6 {
        assert!(l.allow(a, t));
    }
    assert!(!l.allow(a, t));
    assert!(l.allow(ip("198.18.1.2"), t), "another destination");
    // The global bucket: 50 at once, then 1000 a second.
    let mut g = ErrorLimit::new();
    let n = (0..200u32)
        .filter(|i| g.allow(IpAddr::from([198, 18, 2, *i as u8]), t))
        .count();
    assert_eq!(n, 50);
    assert!(g.allow(ip("198.18.3.1"), Timestamp(t.0 + 1_000_000)));
    // More destinations than the table: the least recent goes, and comes
    // back with a whole burst.
    for i in 0..LIMIT_PEERS as u32 {
        let t = Timestamp::from_secs(200 + u64::from(i));
        assert!(l.allow(IpAddr::from([198, 18, 4, i as u8]), t));
    }
    assert!(l.allow(a, Timestamp::from_secs(300)));
}

#[test]
fn a_timeout_fires_though_the_earliest_deadline_s_slot_was_freed_and_claimed_again() {
    let mut r = Reasm::new();
    let at = Timestamp::from_secs;
    let add = |r: &mut Reasm, f: &[u8], t| r.add(f, &wire::parse(f).unwrap().unwrap(), at(t));
    let a = frags(&datagram(false, 3000, 1), false, 1500, 0);
    let b = frags(&datagram(false, 3000, 2), false, 1500, 0);
    let c = frags(&datagram(false, 3000, 3), false, 1500, 0);
    // A (due 30) completes: its slot is free again.
    add(&mut r, &a[0], 0);
    add(&mut r, &a[1], 1);
    let Added::Whole(i) = add(&mut r, &a[2], 1) else {
        panic!()
    };
    let w = r.take(i);
    r.give_back(w);
    // B claims that same slot at 20 (due 50), C another at 25 (due 55).
    assert_eq!(add(&mut r, &b[0], 20), Added::Held);
    assert_eq!(add(&mut r, &c[0], 25), Added::Held);
    let none = |_: &super::reasm::Expired<'_>| {};
    // A's deadline is stale: a scan that frees nothing, then B, then C.
    assert_eq!(r.expire(at(30), none), 0);
    assert_eq!(r.in_use(), 2);
    assert_eq!(r.expire(at(49), none), 0);
    assert_eq!(r.expire(at(50), none), 1, "B at its own deadline");
    assert_eq!(r.expire(at(54), none), 0);
    assert_eq!(r.expire(at(55), none), 1, "C at its own deadline");
    assert_eq!(r.in_use(), 0);
}

#[test]
fn the_earliest_of_several_deadlines_gates_the_scan() {
    let mut r = Reasm::new();
    let at = Timestamp::from_secs;
    let none = |_: &super::reasm::Expired<'_>| {};
    for (id, t) in [(1u16, 0u64), (2, 10), (3, 5)] {
        let f = &frags(&datagram(false, 3000, id), false, 1500, 0)[0];
        r.add(f, &wire::parse(f).unwrap().unwrap(), at(t));
    }
    assert_eq!(r.expire(at(29), none), 0);
    assert_eq!(r.expire(at(30), none), 1, "the first claimed, due first");
    assert_eq!(
        r.expire(at(35), none),
        1,
        "the third, due before the second"
    );
    assert_eq!(r.expire(at(40), none), 1);
    assert_eq!(r.expire(at(1000), none), 0);
}

#[test]
fn a_parked_datagram_goes_to_another_data_plane_and_its_buffer_comes_back() {
    let mut here = dp(FwdMethod::Masq);
    let mut owner = dp(FwdMethod::Masq);
    here.set_park_whole(true);
    let d = datagram(false, 3000, 0x42);
    for f in frags(&d, false, 1500, 0) {
        assert_eq!(
            feed(&mut here, &f, Timestamp::from_secs(1)),
            Verdict::Consumed
        );
    }
    assert_eq!(here.extra_len(), 0, "parked, not processed");
    let parked = here.parked().unwrap().to_vec();
    let p = wire::parse(&parked).unwrap().unwrap();
    assert_eq!((p.frag, p.ip_len as usize), (Fragment::None, d.len() - 14));
    let mut w = here.take_parked().unwrap();
    assert!(here.parked().is_none());
    // Its slot takes no datagram while the buffer is away.
    for id in 0..SLOTS as u16 {
        let f = &frags(&datagram(false, 3000, 100 + id), false, 1500, 0)[0];
        let want = if (id as usize) < SLOTS - 1 {
            Verdict::Consumed
        } else {
            Verdict::Drop(DropReason::FragNoRoom)
        };
        assert_eq!(feed(&mut here, f, Timestamp::from_secs(1)), want, "{id}");
    }
    assert_eq!(
        owner.process_whole(&mut w, 0, Timestamp::from_secs(1)),
        Verdict::Consumed
    );
    assert_eq!(owner.conns.len(), 1, "the owner holds the connection");
    assert_eq!(here.conns.len(), 0);
    let out = taken(&mut owner);
    assert_eq!(out.len(), 3);
    let whole = rejoin(&out);
    let q = wire::parse(&whole).unwrap().unwrap();
    assert_eq!(q.dst, rip(false));
    here.give_back(w);
    let f = &frags(&datagram(false, 3000, 999), false, 1500, 0)[0];
    assert_eq!(
        feed(&mut here, f, Timestamp::from_secs(1)),
        Verdict::Consumed
    );
    // Processed where it came, a parked datagram is as before.
    let mut one = dp(FwdMethod::Masq);
    one.set_park_whole(true);
    for f in frags(&d, false, 1500, 0) {
        feed(&mut one, &f, Timestamp::from_secs(1));
    }
    assert_eq!(
        one.process_parked(Timestamp::from_secs(1)),
        Some(Verdict::Consumed)
    );
    assert_eq!(taken(&mut one).len(), 3);
    assert_eq!(one.frags_held(), (0, 0));
}
