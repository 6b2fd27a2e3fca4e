//! Fragments to a virtual service: reassembled, forwarded as IPVS does and
//! refragmented; hostile streams (overlaps, duplicates, tiny first
//! fragments, never-completed datagrams, floods) cost bounded memory and
//! are counted; non-DF IPv4 too big for a tunnel leaves fragmented.

use std::net::IpAddr;

use etherparse::PacketBuilder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::reasm::{Added, Reasm, SLOTS};
use super::*;
use crate::forward::frag::{ExtraTx, fragment};
use crate::sched::SchedKind;
use crate::service::DestSpec;
use crate::wire::{IpVersion, checksum, ipv4};

const RS_MAC: MacAddr = [2, 0, 0, 0, 0, 0x0b];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip(v6: bool) -> IpAddr {
    ip(if v6 { "2001:2::250" } else { "198.18.0.250" })
}

fn rip(v6: bool) -> IpAddr {
    ip(if v6 { "2001:2:0:2::11" } else { "198.18.2.11" })
}

fn client(v6: bool) -> IpAddr {
    ip(if v6 {
        "2001:2:0:1::100"
    } else {
        "198.18.1.100"
    })
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

#[test]
fn tiny_first_fragment_without_the_tcp_header_is_dropped() {
    let mut dp = dp(FwdMethod::Route);
    let eth = PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0, 0, 0, 0, 1]);
    let (IpAddr::V4(s), IpAddr::V4(d)) = (client(false), vip(false)) else {
        unreachable!()
    };
    let mut v = Vec::new();
    eth.ipv4(s.octets(), d.octets(), 64)
        .tcp(40000, 53, 1, 1000)
        .write(&mut v, &[0u8; 100])
        .unwrap();
    // The first 8 bytes of the TCP header alone, MF set.
    let fr = frags(&v, false, 28, 0);
    let r = feed(&mut dp, &fr[0], Timestamp::from_secs(1));
    assert!(
        matches!(r, Verdict::Drop(DropReason::Malformed(_))),
        "{r:?}"
    );
    assert_eq!(dp.frags_held().0, 0);
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
