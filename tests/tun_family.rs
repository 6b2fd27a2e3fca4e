//! TUN between address families, as IPVS does since Linux 3.18: an IPv4
//! VIP's packets to an IPv6 real server ride an IPv6 outer header (next
//! header 4), an IPv6 VIP's packets to an IPv4 real server an IPv4 outer
//! header (protocol 41), from the director's address of the real server's
//! family. Packets too big for the tunnel are answered in the client's
//! family with the MTU the outer header leaves. (The first SYN of such a
//! service used to panic the worker; then it was dropped.)
#![forbid(unsafe_code)]

use std::net::IpAddr;

mod common;
use common::*;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lvsfwd::config;
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, DropReason, Verdict};
use lvsfwd::dest::DestSpec;
use lvsfwd::sched::SchedKind;
use lvsfwd::service::{FwdMethod, Protocol, ServiceKey, ServiceSpec, ServiceTable};
use lvsfwd::time::Timestamp;
use lvsfwd::wire::FrameBuf;

const HEADROOM: usize = 256;

/// A data plane with one TUN service on `vip`:80 whose only real server is
/// `rs`, and director addresses of both families (so that the tunnel has a
/// source whatever the real server's family).
fn dataplane(vip: &str, rs: &str) -> Dataplane {
    dataplane_with(vip, rs, &["198.18.0.1", "2001:2::1"])
}

/// [`dataplane`] with the director's addresses `own`.
fn dataplane_with(vip: &str, rs: &str, own: &[&str]) -> Dataplane {
    let base = config::parse_str("[global]\ninterface = \"lf0\"\n", "lb.toml")
        .unwrap()
        .dataplane_config();
    let mut dest = DestSpec::new(ip(rs), 80, FwdMethod::Tunnel);
    dest.mac = Some(rs_mac(1));
    let key = ServiceKey {
        proto: Protocol::Tcp,
        addr: ip(vip),
        port: 80,
        fwmark: 0,
    };
    let spec = ServiceSpec::new(key, SchedKind::Rr, vec![dest]);
    Dataplane::new(
        DataplaneConfig {
            own_macs: vec![DIRECTOR_MAC],
            own_addrs: own.iter().map(|a| ip(a)).collect(),
            ..base
        },
        ServiceTable::from_specs(&[spec]),
    )
}

/// Runs `frame` through `dp` (with headroom for a tunnel header); the
/// verdict and the frame as it leaves.
fn process(dp: &mut Dataplane, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + frame.len()];
    buf[HEADROOM..].copy_from_slice(frame);
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, frame.len());
    let v = dp.process(&mut fb, Timestamp::from_secs(now));
    let out = fb.data().to_vec();
    (v, out)
}

/// Sets DF on an IPv4 frame built by etherparse and fixes its checksum.
fn with_df(mut f: Vec<u8>) -> Vec<u8> {
    f[20] |= 0x40;
    f[24..26].fill(0);
    let sum = !naive_sum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f
}

#[test]
fn tun_across_families_encapsulates_in_the_real_servers_family() {
    for (client, vip, rs, outer_src, inner_proto) in [
        ("198.18.5.1", "198.18.0.100", "2001:2::11", "2001:2::1", 4u8),
        (
            "2001:2:5::1",
            "2001:2::100",
            "198.18.1.11",
            "198.18.0.1",
            41,
        ),
    ] {
        let mut dp = dataplane(vip, rs);
        for (i, f) in [SYN, ACK, PSHACK].into_iter().enumerate() {
            let sent = tcp(client, 40000, vip, 80, f);
            let (v, out) = process(&mut dp, &sent, 1 + i as u64);
            assert_eq!(v, Verdict::Tx(0), "{vip} -> {rs}");
            assert_eq!(&out[..6], &rs_mac(1), "to the real server's MAC");
            assert_eq!(&out[6..12], &DIRECTOR_MAC);
            let s = SlicedPacket::from_ethernet(&out).expect("etherparse decodes it");
            let (src, dst, hlen) = match (&s.net, rs.contains(':')) {
                (Some(NetSlice::Ipv6(o)), true) => {
                    let h = o.header();
                    assert_eq!(&out[12..14], &[0x86, 0xdd]);
                    assert_eq!(h.next_header().0, inner_proto);
                    assert_eq!(h.payload_length() as usize, sent.len() - 14);
                    (h.source_addr().into(), h.destination_addr().into(), 40)
                }
                (Some(NetSlice::Ipv4(o)), false) => {
                    let h = o.header();
                    assert_eq!(&out[12..14], &[0x08, 0x00]);
                    assert_eq!(h.protocol().0, inner_proto);
                    assert_eq!(h.total_len() as usize, 20 + sent.len() - 14);
                    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
                    assert!(!h.dont_fragment(), "IPv6 inside: DF clear");
                    (h.source_addr().into(), h.destination_addr().into(), 20)
                }
                other => panic!("{vip} -> {rs}: outer {other:?}"),
            };
            assert_eq!((src, dst), (ip(outer_src), ip(rs)), "{vip} -> {rs}");
            let inner = SlicedPacket::from_ip(&out[14 + hlen..]).expect("inner packet");
            assert!(matches!(inner.transport, Some(TransportSlice::Tcp(_))));
            // The inner packet byte for byte but the TTL/hop limit IPVS
            // decrements (and the IPv4 checksum that follows it).
            let inner = &out[14 + hlen..];
            assert_eq!(inner.len(), sent.len() - 14);
            if client.contains(':') {
                assert_eq!(&inner[..7], &sent[14..21]);
                assert_eq!(inner[7], sent[21] - 1, "hop limit");
                assert_eq!(&inner[8..], &sent[22..]);
            } else {
                assert_eq!(inner[8], sent[22] - 1, "TTL");
                assert_eq!(&inner[12..], &sent[26..]);
            }
        }
        assert_eq!(dp.counters.tx, 3);
        assert_eq!(dp.counters.drop, 0);
        assert_eq!(dp.counters.drops(DropReason::TunnelFamily), 0);
    }
}

#[test]
fn tun_across_families_too_big_answers_in_the_clients_family() {
    // 1500-byte packets with DF (IPv6: always) do not fit a 1500 link once
    // the outer header is on: the client hears the MTU the outer header
    // leaves (1460 under IPv6, 1480 under IPv4) in its own ICMP.
    for (client, vip, rs, hlen, mtu) in [
        ("198.18.5.1", "198.18.0.100", "2001:2::11", 20usize, 1460u32),
        ("2001:2:5::1", "2001:2::100", "198.18.1.11", 40, 1480),
    ] {
        let mut dp = dataplane(vip, rs);
        let (v, _) = process(&mut dp, &tcp(client, 40000, vip, 80, SYN), 1);
        assert_eq!(v, Verdict::Tx(0));
        let payload = vec![0x61; 1500 - hlen - 20];
        let big = tcp_frame(
            CLIENT_MAC,
            DIRECTOR_MAC,
            (ip(client), 40000),
            (ip(vip), 80),
            PSHACK,
            &payload,
        );
        let big = if hlen == 20 { with_df(big) } else { big };
        assert_eq!(big.len(), 14 + 1500);
        let (v, out) = process(&mut dp, &big, 2);
        assert_eq!(v, Verdict::Tx(0), "{vip} -> {rs}: back to the client");
        assert_eq!(dp.counters.icmp_too_big, 1);
        let s = SlicedPacket::from_ethernet(&out).expect("etherparse decodes it");
        let (from, to) = match &s.net {
            Some(NetSlice::Ipv4(h)) => (
                IpAddr::from(h.header().source_addr()),
                IpAddr::from(h.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(h)) => (
                IpAddr::from(h.header().source_addr()),
                IpAddr::from(h.header().destination_addr()),
            ),
            other => panic!("{other:?}"),
        };
        assert_eq!((from, to), (ip(vip), ip(client)), "from the VIP");
        match &s.transport {
            Some(TransportSlice::Icmpv4(i)) => {
                assert_eq!((i.type_u8(), i.code_u8()), (3, 4), "frag needed");
                assert_eq!(u16::from_be_bytes([i.slice()[6], i.slice()[7]]) as u32, mtu);
            }
            Some(TransportSlice::Icmpv6(i)) => {
                assert_eq!(i.type_u8(), 2, "packet too big");
                let b = i.slice();
                assert_eq!(u32::from_be_bytes([b[4], b[5], b[6], b[7]]), mtu);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn tun_within_a_family_still_tunnels() {
    for (client, vip, rs) in [
        ("198.18.5.1", "198.18.0.100", "198.18.1.11"),
        ("2001:2:5::1", "2001:2::100", "2001:2::11"),
    ] {
        let mut dp = dataplane(vip, rs);
        let (v, out) = process(&mut dp, &tcp(client, 40000, vip, 80, SYN), 1);
        assert_eq!(v, Verdict::Tx(0), "{vip} -> {rs}");
        let want: [u8; 2] = if rs.contains(':') {
            [0x86, 0xdd]
        } else {
            [8, 0]
        };
        assert_eq!(&out[12..14], &want);
        assert_eq!(dp.counters.drops(DropReason::TunnelFamily), 0);
    }
}

#[test]
fn the_outer_source_is_never_an_ipv6_link_local_address() {
    // The first IPv6 address is link-local: the global one is taken.
    let mut dp = dataplane_with(
        "198.18.0.100",
        "2001:2::11",
        &["198.18.0.1", "fe80::1", "2001:2::1"],
    );
    let (v, out) = process(
        &mut dp,
        &tcp("198.18.5.1", 40000, "198.18.0.100", 80, SYN),
        1,
    );
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(&out[22..38], &ip6_octets("2001:2::1"), "outer source");
    // Only a link-local one: no source, dropped and counted.
    let mut dp = dataplane_with("198.18.0.100", "2001:2::11", &["198.18.0.1", "fe80::1"]);
    let (v, _) = process(
        &mut dp,
        &tcp("198.18.5.1", 40000, "198.18.0.100", 80, SYN),
        1,
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoSourceAddr));
}

fn ip6_octets(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}
