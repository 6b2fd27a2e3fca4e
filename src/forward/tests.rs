use std::net::IpAddr;

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, NetSlice, SlicedPacket, TransportSlice};

use super::*;
use crate::dest::{TunCsum, TunType, TunnelSpec};
use crate::wire::fixtures::{self, bytes};
use crate::wire::{self, Fragment, parse};

const OUR_MAC: MacAddr = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
const RS_MAC: MacAddr = [0x52, 0x54, 0x00, 0x00, 0x00, 0x0b];
const ROUTER_MAC: MacAddr = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const HEADROOM: usize = 64;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A buffer with the fixture at `head` and `tail` spare bytes after it.
fn buffer(frame: &[u8], head: usize, tail: usize) -> (Vec<u8>, usize) {
    let f = bytes(frame);
    let mut buf = vec![0xEE; head + f.len() + tail];
    buf[head..head + f.len()].copy_from_slice(&f);
    (buf, f.len())
}

/// Runs `op` on the fixture in a buffer with headroom and returns the result frame.
fn with_frame(frame: &[u8], op: impl FnOnce(&mut FrameBuf, &Headers)) -> Vec<u8> {
    let (mut buf, len) = buffer(frame, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    op(&mut fb, &p);
    fb.data().to_vec()
}

/// Independent re-parse with etherparse and verification of every checksum
/// by recomputation: IPv4 header, TCP/UDP with pseudo-header, ICMP/ICMPv6.
fn verify(f: &[u8]) -> SlicedPacket<'_> {
    let s = SlicedPacket::from_ethernet(f).expect("etherparse parses the result");
    verify_ip(&s);
    s
}

fn verify_ip(s: &SlicedPacket<'_>) {
    match (&s.net, &s.transport) {
        (Some(NetSlice::Ipv4(v4)), t) => {
            let h = v4.header();
            assert_eq!(
                h.to_header().calc_header_checksum(),
                h.header_checksum(),
                "IPv4 header checksum"
            );
            let (src, dst) = (h.source(), h.destination());
            match t {
                Some(TransportSlice::Tcp(t)) => {
                    assert_eq!(
                        t.calc_checksum_ipv4(src, dst).unwrap(),
                        t.checksum(),
                        "TCP checksum"
                    )
                }
                Some(TransportSlice::Udp(u)) if u.checksum() != 0 => assert_eq!(
                    u.to_header()
                        .calc_checksum_ipv4_raw(src, dst, u.payload())
                        .unwrap(),
                    u.checksum(),
                    "UDP checksum"
                ),
                Some(TransportSlice::Icmpv4(i)) => {
                    assert_eq!(
                        i.header().icmp_type.calc_checksum(i.payload()),
                        i.checksum(),
                        "ICMP checksum"
                    )
                }
                _ => {}
            }
        }
        (Some(NetSlice::Ipv6(v6)), t) => {
            let h = v6.header();
            let (src, dst) = (h.source(), h.destination());
            match t {
                Some(TransportSlice::Tcp(t)) => {
                    assert_eq!(
                        t.calc_checksum_ipv6(src, dst).unwrap(),
                        t.checksum(),
                        "TCP checksum"
                    )
                }
                Some(TransportSlice::Udp(u)) => assert_eq!(
                    u.to_header()
                        .calc_checksum_ipv6_raw(src, dst, u.payload())
                        .unwrap(),
                    u.checksum(),
                    "UDP checksum"
                ),
                Some(TransportSlice::Icmpv6(i)) => assert_eq!(
                    i.header()
                        .icmp_type
                        .calc_checksum(src, dst, i.payload())
                        .unwrap(),
                    i.checksum(),
                    "ICMPv6 checksum"
                ),
                _ => {}
            }
        }
        other => panic!("not IP: {other:?}"),
    }
}

fn tcp_ports(s: &SlicedPacket<'_>) -> (u16, u16) {
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        other => panic!("{other:?}"),
    }
}

fn addrs(s: &SlicedPacket<'_>) -> (IpAddr, IpAddr) {
    match &s.net {
        Some(NetSlice::Ipv4(v)) => (
            v.header().source_addr().into(),
            v.header().destination_addr().into(),
        ),
        Some(NetSlice::Ipv6(v)) => (
            v.header().source_addr().into(),
            v.header().destination_addr().into(),
        ),
        _ => panic!(),
    }
}

#[test]
fn route_changes_only_the_macs() {
    for fixture in [
        fixtures::TCP_SYN_V4,
        fixtures::TCP_V4_VLAN,
        fixtures::UDP_V4_QINQ,
        fixtures::TCP_SYN_V6,
    ] {
        let orig = bytes(fixture);
        let out = with_frame(fixture, |fb, p| route(fb, p, OUR_MAC, RS_MAC));
        assert_eq!(&out[..6], &RS_MAC);
        assert_eq!(&out[6..12], &OUR_MAC);
        assert_eq!(&out[12..], &orig[12..]);
    }
}

#[test]
fn nat_dnat_ipv4_syn() {
    let out = with_frame(fixtures::TCP_SYN_V4, |fb, p| {
        let rw = Rewrite {
            src: None,
            dst: Some((ip("10.0.0.11"), 8080)),
        };
        rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    let s = verify(&out);
    assert_eq!(addrs(&s), (ip("192.0.2.10"), ip("10.0.0.11")));
    assert_eq!(tcp_ports(&s), (51234, 8080));
    assert_eq!(&out[..12], &[RS_MAC, OUR_MAC].concat()[..]);
    // options, sequence numbers, TTL and ID are untouched
    let orig = bytes(fixtures::TCP_SYN_V4);
    assert_eq!(&out[14..24], &orig[14..24]);
    assert_eq!(&out[38..50], &orig[38..50]);
    assert_eq!(&out[52..], &orig[52..]);
    let p = parse(&out).unwrap().unwrap();
    assert!(wire::verify_l4_checksum(&out, &p));
}

#[test]
fn nat_snat_reply_keeps_padding() {
    // a reply from the real server leaves as VIP:80
    let out = with_frame(fixtures::TCP_ACK_V4_PADDED, |fb, p| {
        let rw = Rewrite {
            src: Some((ip("203.0.113.9"), 443)),
            dst: None,
        };
        rewrite(fb, p, &rw, OUR_MAC, ROUTER_MAC);
    });
    assert_eq!(out.len(), 60);
    assert_eq!(&out[54..], &[0; 6]);
    let s = verify(&out);
    assert_eq!(addrs(&s), (ip("203.0.113.9"), ip("198.51.100.1")));
    assert_eq!(tcp_ports(&s), (443, 80));
}

#[test]
fn fullnat_vlan_keeps_tag() {
    let orig = bytes(fixtures::TCP_V4_VLAN);
    let out = with_frame(fixtures::TCP_V4_VLAN, |fb, p| {
        let rw = Rewrite {
            src: Some((ip("10.0.0.2"), 61000)),
            dst: Some((ip("10.0.0.11"), 8080)),
        };
        rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    assert_eq!(&out[12..18], &orig[12..18]);
    let s = verify(&out);
    assert_eq!(addrs(&s), (ip("10.0.0.2"), ip("10.0.0.11")));
    assert_eq!(tcp_ports(&s), (61000, 8080));
    assert_eq!(s.link_exts.len(), 1);
}

#[test]
fn fullnat_qinq_udp_and_ipv6() {
    let orig = bytes(fixtures::UDP_V4_QINQ);
    let out = with_frame(fixtures::UDP_V4_QINQ, |fb, p| {
        let rw = Rewrite {
            src: Some((ip("10.0.0.2"), 1024)),
            dst: Some((ip("10.0.0.12"), 5353)),
        };
        rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    assert_eq!(&out[12..22], &orig[12..22]);
    let s = verify(&out);
    assert_eq!(tcp_ports(&s), (1024, 5353));

    for fixture in [fixtures::TCP_SYN_V6, fixtures::UDP_V6] {
        let out = with_frame(fixture, |fb, p| {
            let rw = Rewrite {
                src: Some((ip("2001:db8:2::2"), 40404)),
                dst: Some((ip("2001:db8:2::11"), 8443)),
            };
            rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
        });
        let s = verify(&out);
        assert_eq!(addrs(&s), (ip("2001:db8:2::2"), ip("2001:db8:2::11")));
        assert_eq!(tcp_ports(&s), (40404, 8443));
    }
}

#[test]
fn icmpv6_echo_checksum_follows_addresses() {
    // ICMPv6's pseudo-header covers the addresses; build an echo from the
    // UDP_V6 fixture's header (next header 58, 16-byte echo request)
    let mut f = bytes(fixtures::UDP_V6);
    f[14 + 6] = 58;
    let l4 = 54;
    f[l4..l4 + 16].copy_from_slice(&[128, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]);
    let p = parse(&f).unwrap().unwrap();
    let src: [u8; 16] = f[22..38].try_into().unwrap();
    let dst: [u8; 16] = f[38..54].try_into().unwrap();
    let c = checksum::finish(checksum::add(
        checksum::pseudo_v6(src, dst, 58, 16),
        checksum::sum(&f[l4..l4 + 16]),
    ));
    f[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    let mut fb = FrameBuf::new(&mut f, 0, 70);
    let rw = Rewrite {
        src: None,
        dst: Some((ip("2001:db8:2::11"), 0)),
    };
    rewrite(&mut fb, &p, &rw, OUR_MAC, RS_MAC);
    let s = verify(fb.data());
    assert!(matches!(s.transport, Some(TransportSlice::Icmpv6(_))));
    assert_eq!(addrs(&s).1, ip("2001:db8:2::11"));
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let out = with_frame(fixtures::UDP_V4_NO_CSUM, |fb, p| {
        let rw = Rewrite {
            src: Some((ip("10.0.0.2"), 2000)),
            dst: Some((ip("10.0.0.11"), 1123)),
        };
        rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    let s = verify(&out);
    let Some(TransportSlice::Udp(u)) = &s.transport else {
        panic!()
    };
    assert_eq!(u.checksum(), 0);
    assert_eq!((u.source_port(), u.destination_port()), (2000, 1123));
}

#[test]
fn udp_checksum_that_computes_to_zero_is_sent_as_ffff() {
    let f = bytes(fixtures::UDP_V4_QINQ);
    let p = parse(&f).unwrap().unwrap();
    let c = u16::from_be_bytes([f[p.l4_off + 6], f[p.l4_off + 7]]);
    // pick the source port that makes RFC 1624 produce 0x0000
    let x = checksum::add(!c, !40001u16);
    let port = !x;
    assert_eq!(checksum::update_u16(c, 40001, port), 0);
    let out = with_frame(fixtures::UDP_V4_QINQ, |fb, p| {
        let rw = Rewrite {
            src: Some((ip("192.0.2.10"), port)),
            dst: None,
        };
        rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    let s = verify(&out);
    let Some(TransportSlice::Udp(u)) = &s.transport else {
        panic!()
    };
    assert_eq!(u.checksum(), 0xFFFF);
    assert_eq!(u.source_port(), port);
}

#[test]
fn fragments_rewrite_addresses_and_only_first_ports() {
    let orig = bytes(fixtures::UDP_V4_FRAG_LATER);
    let out = with_frame(fixtures::UDP_V4_FRAG_LATER, |fb, p| {
        let rw = Rewrite {
            src: None,
            dst: Some((ip("10.0.0.11"), 9999)),
        };
        rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    let h = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    assert_eq!(h.destination_addr().to_string(), "10.0.0.11");
    assert_eq!(&out[34..], &orig[34..], "later fragment payload untouched");

    let orig = bytes(fixtures::UDP_V4_FRAG_FIRST);
    let out = with_frame(fixtures::UDP_V4_FRAG_FIRST, |fb, p| {
        let rw = Rewrite {
            src: None,
            dst: Some((ip("10.0.0.11"), 9999)),
        };
        rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    let p = parse(&out).unwrap().unwrap();
    assert_eq!(
        p.l4,
        L4::Udp {
            sport: 7000,
            dport: 9999
        }
    );
    assert_eq!(p.frag, Fragment::First);
    // the datagram checksum got the address and port delta
    let old = u16::from_be_bytes([orig[40], orig[41]]);
    let want = checksum::update_u16(
        checksum::update_addr(old, &orig[30..34], &out[30..34]),
        7001,
        9999,
    );
    assert_eq!(u16::from_be_bytes([out[40], out[41]]), want);
}

#[test]
fn tunnel_ipv4_carries_ttl_ds_df() {
    let orig = bytes(fixtures::TCP_ACK_V4_PADDED);
    let (mut buf, len) = buffer(fixtures::TCP_ACK_V4_PADDED, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    tunnel(
        &mut fb,
        &p,
        ip("198.51.100.2"),
        ip("10.0.0.11"),
        OUR_MAC,
        RS_MAC,
        1500,
        0xbeef,
    )
    .unwrap();
    assert_eq!(fb.headroom(), HEADROOM - 20);
    let out = fb.data();
    assert_eq!(out.len(), 14 + 20 + 40, "link padding dropped");
    assert_eq!(&out[..12], &[RS_MAC, OUR_MAC].concat()[..]);
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let h = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    assert_eq!(h.protocol(), etherparse::IpNumber::IPV4);
    assert_eq!(
        (
            h.source_addr().to_string(),
            h.destination_addr().to_string()
        ),
        ("198.51.100.2".into(), "10.0.0.11".into())
    );
    assert_eq!(
        (h.ttl(), h.slice()[1], h.dont_fragment(), h.identification()),
        (64, 0x2a, true, 0xbeef)
    );
    assert_eq!(h.total_len(), 60);
    assert_eq!(&out[34..], &orig[14..54], "inner packet byte for byte");
    let inner = SlicedPacket::from_ip(&out[34..]).unwrap();
    verify_ip(&inner);
}

#[test]
fn tunnel_ipv4_vlan_moves_tag_and_copies_no_df() {
    let orig = bytes(fixtures::UDP_V4_IP_OPTIONS);
    let out = with_frame(fixtures::UDP_V4_IP_OPTIONS, |fb, p| {
        tunnel(
            fb,
            p,
            ip("198.51.100.2"),
            ip("10.0.0.11"),
            OUR_MAC,
            RS_MAC,
            1500,
            7,
        )
        .unwrap();
    });
    let h = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert!(!h.dont_fragment());
    assert_eq!(h.ttl(), 1);
    assert_eq!(&out[34..], &orig[14..]);

    let orig = bytes(fixtures::TCP_V4_VLAN);
    let out = with_frame(fixtures::TCP_V4_VLAN, |fb, p| {
        tunnel(
            fb,
            p,
            ip("198.51.100.2"),
            ip("10.0.0.11"),
            OUR_MAC,
            RS_MAC,
            1500,
            7,
        )
        .unwrap();
    });
    assert_eq!(&out[12..18], &orig[12..18], "tag and ethertype kept");
    let h = Ipv4HeaderSlice::from_slice(&out[18..]).unwrap();
    assert_eq!(h.ttl(), 61);
    assert_eq!(&out[38..], &orig[18..]);
}

#[test]
fn tunnel_ipv6_carries_hop_limit_and_traffic_class() {
    let orig = bytes(fixtures::TCP_SYN_V6);
    let out = with_frame(fixtures::TCP_SYN_V6, |fb, p| {
        tunnel(
            fb,
            p,
            ip("2001:db8:1::2"),
            ip("2001:db8:2::11"),
            OUR_MAC,
            RS_MAC,
            1500,
            0,
        )
        .unwrap();
    });
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    let h = Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.next_header(), etherparse::IpNumber::IPV6);
    assert_eq!(
        (h.traffic_class(), h.hop_limit(), h.flow_label().value()),
        (0xb8, 57, 0)
    );
    assert_eq!(h.payload_length() as usize, orig.len() - 14);
    assert_eq!(h.destination_addr().to_string(), "2001:db8:2::11");
    assert_eq!(&out[54..], &orig[14..]);
    verify_ip(&SlicedPacket::from_ip(&out[54..]).unwrap());
}

#[test]
fn tunnel_refusals_leave_frame_untouched() {
    // IPv4 DF: 1500 + 20 > 1500
    let (mut buf, len) = buffer(fixtures::TCP_DATA_V4_1500, HEADROOM, 0);
    let before = buf.clone();
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("198.51.100.2"),
        ip("10.0.0.11"),
        OUR_MAC,
        RS_MAC,
        1500,
        1,
    );
    assert_eq!(r, Err(TunnelError::TooBig { mtu: 1480 }));
    assert_eq!((fb.head(), fb.len()), (HEADROOM, len));
    assert_eq!(buf, before);
    // fits exactly at 1520
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    assert_eq!(
        tunnel(
            &mut fb,
            &p,
            ip("198.51.100.2"),
            ip("10.0.0.11"),
            OUR_MAC,
            RS_MAC,
            1520,
            1
        ),
        Ok(())
    );

    // IPv6 always counts as DF
    let (mut buf, len) = buffer(fixtures::TCP_DATA_V6_1500, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("2001:db8:1::2"),
        ip("2001:db8:2::11"),
        OUR_MAC,
        RS_MAC,
        1500,
        0,
    );
    assert_eq!(r, Err(TunnelError::TooBig { mtu: 1460 }));

    // no DF: IPVS would fragment, we refuse
    let (mut buf, len) = buffer(fixtures::UDP_V4_IP_OPTIONS, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("198.51.100.2"),
        ip("10.0.0.11"),
        OUR_MAC,
        RS_MAC,
        70,
        0,
    );
    assert_eq!(r, Err(TunnelError::NeedsFragmentation));

    // headroom and tailroom together one byte short of the outer header
    let (mut buf, len) = buffer(fixtures::TCP_SYN_V4, 10, 9);
    let before = buf.clone();
    let p = parse(&buf[10..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, 10, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("198.51.100.2"),
        ip("10.0.0.11"),
        OUR_MAC,
        RS_MAC,
        1500,
        0,
    );
    assert_eq!(r, Err(TunnelError::NoRoom));
    assert_eq!(buf, before);
}

#[test]
fn tunnel_without_headroom_moves_the_packet_toward_the_tail() {
    // The AF_XDP buffer starts at the packet: the outer header is made
    // room for by shifting, and the result is the same frame.
    let run = |head: usize, tail: usize| {
        let (mut buf, len) = buffer(fixtures::TCP_SYN_V4, head, tail);
        let p = parse(&buf[head..]).unwrap().unwrap();
        let mut fb = FrameBuf::new(&mut buf, head, len);
        let r = tunnel(
            &mut fb,
            &p,
            ip("198.51.100.2"),
            ip("10.0.0.11"),
            OUR_MAC,
            RS_MAC,
            1500,
            0,
        );
        assert_eq!(r, Ok(()), "head {head} tail {tail}");
        (fb.head(), fb.data().to_vec())
    };
    let (h, with_headroom) = run(HEADROOM, 0);
    assert_eq!(h, HEADROOM - 20);
    for (head, tail) in [(0, 20), (0, 100), (7, 13)] {
        let (h, out) = run(head, tail);
        assert_eq!(h, 0, "grown to the buffer's start");
        assert_eq!(out, with_headroom, "head {head} tail {tail}");
    }
}

#[test]
fn tunnel_refuses_outer_source_and_destination_of_different_families() {
    // The outer header is of the real server's family; a director source
    // of the other family cannot make one: refused, the frame as it was,
    // never a slice panic.
    let cases = [
        (fixtures::TCP_SYN_V4, "198.51.100.2", "2001:db8::11"),
        (fixtures::TCP_SYN_V4, "2001:db8::1", "10.0.0.11"),
        (fixtures::TCP_SYN_V6, "198.51.100.2", "2001:db8::11"),
        (fixtures::TCP_SYN_V6, "2001:db8::1", "10.0.0.11"),
    ];
    for (frame, src, dst) in cases {
        let (mut buf, len) = buffer(frame, HEADROOM, 0);
        let before = buf.clone();
        let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
        let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
        let r = tunnel(&mut fb, &p, ip(src), ip(dst), OUR_MAC, RS_MAC, 1500, 0);
        assert_eq!(r, Err(TunnelError::CrossFamily), "{src} -> {dst}");
        assert_eq!((fb.head(), fb.len()), (HEADROOM, len));
        assert_eq!(buf, before, "{src} -> {dst}: frame untouched");
    }
}

#[test]
fn tunnel_ipv4_in_ipv6() {
    // ip_vs_tunnel_xmit_v6 with an IPv4 packet: next header 4 (IPIP),
    // traffic class and hop limit from the IPv4 TOS and TTL, EtherType IPv6.
    let orig = bytes(fixtures::TCP_ACK_V4_PADDED);
    let (mut buf, len) = buffer(fixtures::TCP_ACK_V4_PADDED, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("2001:db8:1::2"),
        ip("2001:db8:2::11"),
        OUR_MAC,
        RS_MAC,
        1500,
        9,
    );
    assert_eq!(r, Ok(()));
    assert_eq!(fb.headroom(), HEADROOM - 40);
    let out = fb.data().to_vec();
    assert_eq!(out.len(), 14 + 40 + 40, "link padding dropped");
    assert_eq!(&out[..12], &[RS_MAC, OUR_MAC].concat()[..]);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    let h = Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.next_header(), etherparse::IpNumber::IPV4);
    assert_eq!(
        (h.traffic_class(), h.hop_limit(), h.flow_label().value()),
        (0x2a, 64, 0)
    );
    assert_eq!(h.payload_length(), 40);
    assert_eq!(h.source_addr().to_string(), "2001:db8:1::2");
    assert_eq!(h.destination_addr().to_string(), "2001:db8:2::11");
    assert_eq!(&out[54..], &orig[14..54], "inner packet byte for byte");
    // The outer packet decodes; the inner one is a whole TCP/IPv4 packet.
    SlicedPacket::from_ethernet(&out).unwrap();
    verify_ip(&SlicedPacket::from_ip(&out[54..]).unwrap());
    // Our own parser sees the outer IPv6 packet carrying protocol 4.
    let q = parse(&out).unwrap().unwrap();
    assert_eq!((q.version, q.proto), (IpVersion::V6, IPPROTO_IPIP));
    assert_eq!(q.ip_len as usize, 80);

    // Too big: 1500 bytes with DF + 40 > 1500; the client is told 1460 in
    // ICMPv4 (the inner family), as ensure_mtu_is_adequate does.
    let (mut buf, len) = buffer(fixtures::TCP_DATA_V4_1500, HEADROOM, 0);
    let before = buf.clone();
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("2001:db8:1::2"),
        ip("2001:db8:2::11"),
        OUR_MAC,
        RS_MAC,
        1500,
        9,
    );
    assert_eq!(r, Err(TunnelError::TooBig { mtu: 1460 }));
    assert_eq!(buf, before);
    // Without DF it would be fragmented (by IPv6 at the director).
    let (mut buf, len) = buffer(fixtures::UDP_V4_IP_OPTIONS, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("2001:db8:1::2"),
        ip("2001:db8:2::11"),
        OUR_MAC,
        RS_MAC,
        90,
        0,
    );
    assert_eq!(r, Err(TunnelError::NeedsFragmentation));
}

#[test]
fn tunnel_ipv6_in_ipv4() {
    // ip_vs_tunnel_xmit with an IPv6 packet: protocol 41, TOS and TTL from
    // the traffic class and hop limit, DF clear (ip_vs_prepare_tunneled_skb),
    // our ID, a valid header checksum, EtherType IPv4.
    let orig = bytes(fixtures::TCP_SYN_V6);
    let (mut buf, len) = buffer(fixtures::TCP_SYN_V6, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("198.51.100.2"),
        ip("10.0.0.11"),
        OUR_MAC,
        RS_MAC,
        1500,
        0x1234,
    );
    assert_eq!(r, Ok(()));
    assert_eq!(fb.headroom(), HEADROOM - 20);
    let out = fb.data().to_vec();
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let h = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    assert_eq!(h.protocol(), etherparse::IpNumber::IPV6);
    assert_eq!(
        (h.ttl(), h.slice()[1], h.dont_fragment(), h.identification()),
        (57, 0xb8, false, 0x1234)
    );
    assert_eq!(h.total_len() as usize, 20 + orig.len() - 14);
    assert_eq!(h.destination_addr().to_string(), "10.0.0.11");
    assert_eq!(&out[34..], &orig[14..]);
    SlicedPacket::from_ethernet(&out).unwrap();
    verify_ip(&SlicedPacket::from_ip(&out[34..]).unwrap());
    let q = parse(&out).unwrap().unwrap();
    assert_eq!((q.version, q.proto), (IpVersion::V4, IPPROTO_IPV6));

    // IPv6 is never fragmented on its way: too big at 1500 + 20, the
    // client hears 1480 in ICMPv6.
    let (mut buf, len) = buffer(fixtures::TCP_DATA_V6_1500, HEADROOM, 0);
    let before = buf.clone();
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    let r = tunnel(
        &mut fb,
        &p,
        ip("198.51.100.2"),
        ip("10.0.0.11"),
        OUR_MAC,
        RS_MAC,
        1500,
        0,
    );
    assert_eq!(r, Err(TunnelError::TooBig { mtu: 1480 }));
    assert_eq!(buf, before);

    // With a VLAN tag the EtherType after the tag changes, the tag stays.
    let orig = bytes(fixtures::TCP_V4_VLAN);
    let out = with_frame(fixtures::TCP_V4_VLAN, |fb, p| {
        tunnel(
            fb,
            p,
            ip("2001:db8:1::2"),
            ip("2001:db8:2::11"),
            OUR_MAC,
            RS_MAC,
            1500,
            7,
        )
        .unwrap();
    });
    assert_eq!(&out[12..16], &orig[12..16], "tag kept");
    assert_eq!(&out[16..18], &[0x86, 0xdd]);
    assert_eq!(&out[58..], &orig[18..]);
}

#[test]
fn icmp_too_big_ipv4_quotes_up_to_576() {
    let orig = bytes(fixtures::TCP_DATA_V4_1500);
    for (head, tail) in [(HEADROOM, 0), (0, 0)] {
        let (mut buf, len) = buffer(fixtures::TCP_DATA_V4_1500, head, tail);
        let p = parse(&buf[head..]).unwrap().unwrap();
        let mut fb = FrameBuf::new(&mut buf, head, len);
        icmp_too_big(&mut fb, &p, ip("198.51.100.1"), 1480, OUR_MAC).unwrap();
        let out = fb.data();
        assert_eq!(out.len(), 14 + 576);
        assert_eq!(&out[..6], &ROUTER_MAC, "back to the sender's MAC");
        assert_eq!(&out[6..12], &OUR_MAC);
        let s = verify(out);
        assert_eq!(addrs(&s), (ip("198.51.100.1"), ip("192.0.2.10")));
        let Some(NetSlice::Ipv4(v4)) = &s.net else {
            panic!()
        };
        assert_eq!((v4.header().ttl(), v4.header().total_len()), (64, 576));
        assert_eq!(v4.header().protocol(), etherparse::IpNumber::ICMP);
        assert_eq!(v4.header().slice()[1], 0xc0 | (0x2a & 0x1e));
        let Some(TransportSlice::Icmpv4(i)) = &s.transport else {
            panic!()
        };
        assert_eq!(
            i.header().icmp_type,
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1480
                }
            )
        );
        assert_eq!(i.payload(), &orig[14..14 + 548]);
        // our own parser sees a frag-needed quoting the original connection
        let q = parse(out).unwrap().unwrap();
        let L4::IcmpError(e) = q.l4 else { panic!() };
        assert_eq!(
            (e.mtu, e.inner_sport, e.inner_dport),
            (Some(1480), 51234, 80)
        );
    }
}

#[test]
fn icmp_too_big_small_packet_and_vlan() {
    let orig = bytes(fixtures::TCP_V4_VLAN);
    let out = with_frame(fixtures::TCP_V4_VLAN, |fb, p| {
        icmp_too_big(fb, p, ip("198.51.100.1"), 1400, OUR_MAC).unwrap();
    });
    assert_eq!(&out[12..18], &orig[12..18]);
    let ip_len = orig.len() - 18;
    assert_eq!(
        out.len(),
        18 + 28 + ip_len,
        "the whole small packet is quoted"
    );
    let s = verify(&out);
    let Some(TransportSlice::Icmpv4(i)) = &s.transport else {
        panic!()
    };
    assert_eq!(i.payload(), &orig[18..]);
}

#[test]
fn icmp_too_big_ipv6_quotes_up_to_1280() {
    let orig = bytes(fixtures::TCP_DATA_V6_1500);
    for (head, tail) in [(HEADROOM, 0), (0, 0)] {
        let (mut buf, len) = buffer(fixtures::TCP_DATA_V6_1500, head, tail);
        let p = parse(&buf[head..]).unwrap().unwrap();
        let mut fb = FrameBuf::new(&mut buf, head, len);
        icmp_too_big(&mut fb, &p, ip("2001:db8:1::1"), 1280, OUR_MAC).unwrap();
        let out = fb.data();
        assert_eq!(out.len(), 14 + 1280);
        let s = verify(out);
        assert_eq!(addrs(&s), (ip("2001:db8:1::1"), ip("2001:db8::10")));
        let Some(NetSlice::Ipv6(v6)) = &s.net else {
            panic!()
        };
        assert_eq!(v6.header().hop_limit(), 64);
        let Some(TransportSlice::Icmpv6(i)) = &s.transport else {
            panic!()
        };
        assert_eq!(
            i.header().icmp_type,
            etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 }
        );
        assert_eq!(i.payload(), &orig[14..14 + 1232]);
    }
}

#[test]
fn icmp_too_big_without_room_is_refused() {
    // 74-byte SYN in a buffer of exactly its size: 28 more bytes cannot fit
    let (mut buf, len) = buffer(fixtures::TCP_SYN_V4, 0, 0);
    let before = buf.clone();
    let p = parse(&buf).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, 0, len);
    assert_eq!(
        icmp_too_big(&mut fb, &p, ip("198.51.100.1"), 1400, OUR_MAC),
        Err(NoRoom)
    );
    assert_eq!(fb.len(), len);
    assert_eq!(buf, before);
    // tailroom alone is enough
    let (mut buf, len) = buffer(fixtures::TCP_SYN_V4, 0, 28);
    let mut fb = FrameBuf::new(&mut buf, 0, len);
    icmp_too_big(&mut fb, &p, ip("198.51.100.1"), 1400, OUR_MAC).unwrap();
    verify(fb.data());
}

/// Checks a quoted TCP header's checksum against the full segment it came
/// from: the fixture's payload was `fill` repeated `n` times.
fn quoted_tcp_checksum_ok(src: IpAddr, dst: IpAddr, tcp_hdr: &[u8], fill: u8, n: usize) -> bool {
    let mut seg = tcp_hdr.to_vec();
    seg.extend(std::iter::repeat_n(fill, n));
    checksum::add(
        checksum::pseudo(src, dst, 6, seg.len() as u32),
        checksum::sum(&seg),
    ) == 0xFFFF
}

#[test]
fn icmp_rewrite_frag_needed_about_nat_reply() {
    // router -> VIP about the reply VIP:80 -> client; goes to the real server
    // as router -> RIP quoting RIP:8080 -> client
    let orig = bytes(fixtures::ICMP_FRAG_NEEDED_V4);
    let out = with_frame(fixtures::ICMP_FRAG_NEEDED_V4, |fb, p| {
        let rw = IcmpRewrite {
            outer_src: None,
            outer_dst: Some(ip("10.0.0.11")),
            inner_src: Some((ip("10.0.0.11"), 8080)),
            inner_dst: None,
        };
        icmp_rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    assert_eq!(out.len(), orig.len());
    let s = verify(&out);
    assert_eq!(addrs(&s), (ip("203.0.113.1"), ip("10.0.0.11")));
    let Some(TransportSlice::Icmpv4(i)) = &s.transport else {
        panic!()
    };
    let q = i.payload();
    let inner = Ipv4HeaderSlice::from_slice(q).unwrap();
    assert_eq!(
        inner.to_header().calc_header_checksum(),
        inner.header_checksum(),
        "quoted IP header checksum"
    );
    assert_eq!(inner.source_addr().to_string(), "10.0.0.11");
    assert_eq!(inner.destination_addr().to_string(), "192.0.2.10");
    assert_eq!(&q[20..24], &[0x1f, 0x90, 0xc8, 0x22]);
    assert!(quoted_tcp_checksum_ok(
        ip("10.0.0.11"),
        ip("192.0.2.10"),
        &q[20..52],
        0x41,
        1448
    ));
    // the original quote verified the same way before the rewrite
    let oq = &orig[14 + 28..];
    assert!(quoted_tcp_checksum_ok(
        ip("198.51.100.1"),
        ip("192.0.2.10"),
        &oq[20..52],
        0x41,
        1448
    ));
    let p = parse(&out).unwrap().unwrap();
    let L4::IcmpError(e) = p.l4 else { panic!() };
    assert_eq!(
        (e.inner_sport, e.inner_dport, e.mtu),
        (8080, 51234, Some(1400))
    );
}

#[test]
fn icmp_rewrite_port_unreachable_from_real_server() {
    // real server -> client about client -> RIP:5353; leaves as VIP -> client
    // quoting client -> VIP:53
    let out = with_frame(fixtures::ICMP_PORT_UNREACH_V4, |fb, p| {
        let rw = IcmpRewrite {
            outer_src: Some(ip("198.51.100.1")),
            outer_dst: None,
            inner_src: None,
            inner_dst: Some((ip("198.51.100.1"), 53)),
        };
        icmp_rewrite(fb, p, &rw, OUR_MAC, ROUTER_MAC);
    });
    let s = verify(&out);
    assert_eq!(addrs(&s), (ip("198.51.100.1"), ip("192.0.2.10")));
    let Some(TransportSlice::Icmpv4(i)) = &s.transport else {
        panic!()
    };
    // the whole datagram is quoted: etherparse verifies the quoted UDP checksum too
    let inner = SlicedPacket::from_ip(i.payload()).unwrap();
    verify_ip(&inner);
    assert_eq!(addrs(&inner), (ip("192.0.2.10"), ip("198.51.100.1")));
    assert_eq!(tcp_ports(&inner), (40000, 53));
}

#[test]
fn icmp_rewrite_ipv6_packet_too_big() {
    let out = with_frame(fixtures::ICMPV6_PTB, |fb, p| {
        let rw = IcmpRewrite {
            outer_src: None,
            outer_dst: Some(ip("2001:db8:2::11")),
            inner_src: Some((ip("2001:db8:2::11"), 8443)),
            inner_dst: None,
        };
        icmp_rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
    });
    let s = verify(&out);
    assert_eq!(addrs(&s), (ip("2001:db8:ffff::1"), ip("2001:db8:2::11")));
    let Some(TransportSlice::Icmpv6(i)) = &s.transport else {
        panic!()
    };
    let q = i.payload();
    let inner = Ipv6HeaderSlice::from_slice(q).unwrap();
    assert_eq!(inner.source_addr().to_string(), "2001:db8:2::11");
    assert_eq!(&q[40..44], &[0x20, 0xfb, 0xc3, 0x50]);
    assert!(quoted_tcp_checksum_ok(
        ip("2001:db8:2::11"),
        ip("2001:db8::10"),
        &q[40..72],
        0x42,
        1408
    ));
}

#[test]
fn decrement_ttl_fixes_checksum_and_refuses_at_one() {
    let out = with_frame(fixtures::TCP_SYN_V4, |fb, p| decrement_ttl(fb, p).unwrap());
    let s = verify(&out);
    let Some(NetSlice::Ipv4(v4)) = &s.net else {
        panic!()
    };
    assert_eq!(v4.header().ttl(), 63);

    let out = with_frame(fixtures::TCP_SYN_V6, |fb, p| decrement_ttl(fb, p).unwrap());
    assert_eq!(
        Ipv6HeaderSlice::from_slice(&out[14..]).unwrap().hop_limit(),
        56
    );

    let orig = bytes(fixtures::UDP_V4_IP_OPTIONS);
    let out = with_frame(fixtures::UDP_V4_IP_OPTIONS, |fb, p| {
        assert_eq!(decrement_ttl(fb, p), Err(TtlExceeded))
    });
    assert_eq!(out, orig);
    // a tunnel after the decrement carries the new TTL
    let out = with_frame(fixtures::TCP_SYN_V4, |fb, p| {
        decrement_ttl(fb, p).unwrap();
        tunnel(
            fb,
            p,
            ip("198.51.100.2"),
            ip("10.0.0.11"),
            OUR_MAC,
            RS_MAC,
            1500,
            1,
        )
        .unwrap();
    });
    assert_eq!(out[14 + 8], 63);
    verify_ip(&SlicedPacket::from_ip(&out[34..]).unwrap());
}

#[test]
fn rewrites_of_damaged_frames_never_panic_and_stay_parseable() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let seeds = [
        fixtures::TCP_SYN_V4,
        fixtures::TCP_V4_VLAN,
        fixtures::UDP_V4_QINQ,
        fixtures::UDP_V4_NO_CSUM,
        fixtures::TCP_SYN_V6,
        fixtures::UDP_V6_EXT_FRAG_FIRST,
        fixtures::UDP_V6_FRAG_LATER,
        fixtures::ICMP_FRAG_NEEDED_V4,
        fixtures::ICMP_PORT_UNREACH_V4,
        fixtures::ICMPV6_PTB,
    ];
    let mut rng = SmallRng::seed_from_u64(0xf0f0);
    let mut checked = 0;
    for _ in 0..3000 {
        let mut f = bytes(seeds[rng.random_range(0..seeds.len())]);
        for _ in 0..rng.random_range(0..3) {
            let at = rng.random_range(0..f.len());
            f[at] ^= 1 << rng.random_range(0..8);
        }
        if rng.random_bool(0.2) {
            f.truncate(rng.random_range(f.len() / 2..=f.len()));
        }
        let Ok(Some(p)) = parse(&f) else { continue };
        let v6 = p.version == wire::IpVersion::V6;
        let (a, b) = if v6 {
            (ip("2001:db8:2::2"), ip("2001:db8:2::11"))
        } else {
            (ip("10.0.0.2"), ip("10.0.0.11"))
        };
        for op in 0..4 {
            let mut buf = vec![0u8; HEADROOM + f.len() + 32];
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(&f);
            let mut fb = FrameBuf::new(&mut buf, HEADROOM, f.len());
            match op {
                0 => {
                    let rw = Rewrite {
                        src: Some((a, 1)),
                        dst: Some((b, 2)),
                    };
                    rewrite(&mut fb, &p, &rw, OUR_MAC, RS_MAC);
                }
                1 => {
                    let _ = tunnel(&mut fb, &p, a, b, OUR_MAC, RS_MAC, 1500, 3);
                }
                2 => {
                    let _ = icmp_too_big(&mut fb, &p, a, 1280, OUR_MAC);
                }
                _ => {
                    if !matches!(p.l4, L4::IcmpError(_)) {
                        continue;
                    }
                    let rw = IcmpRewrite {
                        outer_src: Some(a),
                        outer_dst: Some(b),
                        inner_src: Some((b, 3)),
                        inner_dst: Some((a, 4)),
                    };
                    icmp_rewrite(&mut fb, &p, &rw, OUR_MAC, RS_MAC);
                }
            }
            // every output is still a well-formed frame for our parser
            assert!(
                matches!(parse(fb.data()), Ok(Some(_))),
                "op {op} on {f:02x?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 2000, "{checked}");
}

mod roundtrip_support {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use rand::Rng;
    use rand::rngs::SmallRng;

    use crate::wire::{
        ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP, checksum,
        ethernet, ipv4, ipv6, tcp, udp,
    };

    pub fn addr(rng: &mut SmallRng, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(rng.random::<u128>()))
        } else {
            IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
        }
    }

    /// A well-formed TCP or UDP frame with valid IP and L4 checksums: 0-2
    /// VLAN tags, IPv4 (maybe with options, DF or not) or IPv6, TCP with
    /// options or UDP (over IPv4 sometimes without checksum), random
    /// addresses, ports and payload, sometimes link padding.
    pub fn valid_frame(
        rng: &mut SmallRng,
        v6: bool,
        proto: u8,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
    ) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::field::ADDRS.end];
        rng.fill(&mut f[..]);
        let tags = [0, 0, 1, 2][rng.random_range(0..4)];
        for t in 0..tags {
            let tpid = if tags == 2 && t == 0 {
                ETH_P_8021AD
            } else {
                ETH_P_8021Q
            };
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(rng.random::<u16>() & 0xefff).to_be_bytes());
        }
        f.extend_from_slice(&if v6 { ETH_P_IPV6 } else { ETH_P_IPV4 }.to_be_bytes());
        let l3 = f.len();

        let mut l4 = match proto {
            IPPROTO_TCP => {
                let opts = 4 * rng.random_range(0..=10usize);
                let mut t = vec![0u8; tcp::HEADER_LEN + opts];
                rng.fill(&mut t[..]);
                t[tcp::field::DATA_OFF] = (((tcp::HEADER_LEN + opts) / 4) as u8) << 4;
                t
            }
            _ => vec![0u8; udp::HEADER_LEN],
        };
        let sp = tcp::field::SRC_PORT;
        let dp = tcp::field::DST_PORT;
        l4[sp].copy_from_slice(&src.1.to_be_bytes());
        l4[dp].copy_from_slice(&dst.1.to_be_bytes());
        let mut payload = vec![0u8; rng.random_range(0..1400)];
        rng.fill(&mut payload[..]);
        l4.extend_from_slice(&payload);
        if proto == IPPROTO_UDP {
            let len = l4.len() as u16;
            l4[udp::field::LENGTH].copy_from_slice(&len.to_be_bytes());
        }
        let csum = if proto == IPPROTO_TCP {
            tcp::field::CHECKSUM
        } else {
            udp::field::CHECKSUM
        };
        l4[csum.clone()].fill(0);
        if !(proto == IPPROTO_UDP && !v6 && rng.random_bool(0.2)) {
            let s = checksum::add(
                checksum::pseudo(src.0, dst.0, proto, l4.len() as u32),
                checksum::sum(&l4),
            );
            let mut c = checksum::finish(s);
            if proto == IPPROTO_UDP && c == 0 {
                c = 0xffff;
            }
            l4[csum].copy_from_slice(&c.to_be_bytes());
        }

        let mut h;
        if v6 {
            use ipv6::field as F;
            h = vec![0u8; ipv6::HEADER_LEN];
            let flow = rng.random::<u32>();
            h[F::VER_TC_FLOW].copy_from_slice(&ipv6::ver_tc_flow(rng.random(), flow));
            h[F::LENGTH].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            h[F::NXT_HDR] = proto;
            h[F::HOP_LIMIT] = rng.random_range(2..=255);
            h[F::SRC].copy_from_slice(&octets(src.0));
            h[F::DST].copy_from_slice(&octets(dst.0));
        } else {
            use ipv4::field as F;
            let opts = if rng.random_bool(0.8) { 0 } else { 4 };
            h = vec![0u8; ipv4::HEADER_LEN + opts];
            if opts != 0 {
                // Router Alert.
                h[ipv4::HEADER_LEN..].copy_from_slice(&[0x94, 4, 0, 0]);
            }
            h[F::VER_IHL] = 0x40 | (h.len() / 4) as u8;
            h[F::DSCP_ECN] = rng.random();
            let total = (h.len() + l4.len()) as u16;
            h[F::LENGTH].copy_from_slice(&total.to_be_bytes());
            h[F::IDENT].copy_from_slice(&rng.random::<u16>().to_be_bytes());
            if rng.random_bool(0.7) {
                h[F::FLG_OFF].copy_from_slice(&ipv4::DF.to_be_bytes());
            }
            h[F::TTL] = rng.random_range(2..=255);
            h[F::PROTOCOL] = proto;
            h[F::SRC].copy_from_slice(&octets(src.0));
            h[F::DST].copy_from_slice(&octets(dst.0));
            let c = checksum::checksum(&h);
            h[F::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&h);
        f.extend_from_slice(&l4);
        debug_assert_eq!(f.len(), l3 + h.len() + l4.len());
        if f.len() < 60 || rng.random_bool(0.1) {
            let pad = 60usize.saturating_sub(f.len()).max(rng.random_range(0..8));
            f.extend(std::iter::repeat_n(0u8, pad));
        }
        f
    }

    pub fn octets(a: IpAddr) -> Vec<u8> {
        match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }
}

/// `(src, sport, dst, dport)` of a re-parsed TCP/UDP frame, after checking
/// that it parses and that its L4 checksum verifies (the IPv4 header
/// checksum is verified by the parse itself).
fn reparsed_tcp_udp(f: &[u8]) -> (Headers, IpAddr, u16, IpAddr, u16) {
    let p = parse(f)
        .unwrap_or_else(|e| panic!("{e:?} on {f:02x?}"))
        .expect("IP");
    assert!(wire::verify_l4_checksum(f, &p), "L4 checksum on {f:02x?}");
    let (sport, dport) = match p.l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
        other => panic!("{other:?}"),
    };
    (p, p.src, sport, p.dst, dport)
}

#[test]
fn roundtrip_every_rewrite_reparses_with_valid_checksums() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use roundtrip_support::{addr, valid_frame};

    const FRAMES: usize = 3000;
    let mut rng = SmallRng::seed_from_u64(0x7247);
    let mut checked = [0usize; 9];
    for i in 0..FRAMES {
        let v6 = i % 2 == 1;
        let proto = if rng.random_bool(0.5) {
            IPPROTO_TCP
        } else {
            IPPROTO_UDP
        };
        let client = (addr(&mut rng, v6), rng.random_range(1024..=u16::MAX));
        let vip = (addr(&mut rng, v6), rng.random_range(1..1024));
        let rs = (addr(&mut rng, v6), rng.random_range(1..=u16::MAX));
        let laddr = (addr(&mut rng, v6), rng.random_range(1024..=u16::MAX));
        let inbound = valid_frame(&mut rng, v6, proto, client, vip);
        let outbound_nat = valid_frame(&mut rng, v6, proto, rs, client);
        let outbound_fnat = valid_frame(&mut rng, v6, proto, rs, laddr);
        // The generator's frames are valid to begin with.
        for f in [&inbound, &outbound_nat, &outbound_fnat] {
            reparsed_tcp_udp(f);
        }
        let run = |f: &[u8], op: &mut dyn FnMut(&mut FrameBuf, &Headers)| -> Vec<u8> {
            let mut buf = vec![0u8; HEADROOM + f.len() + 64];
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            let p = parse(f).unwrap().unwrap();
            let mut fb = FrameBuf::new(&mut buf, HEADROOM, f.len());
            op(&mut fb, &p);
            fb.data().to_vec()
        };

        // DR: addresses and ports untouched, MACs set.
        let out = run(&inbound, &mut |fb, p| route(fb, p, OUR_MAC, RS_MAC));
        let (_, s, sp, d, dp) = reparsed_tcp_udp(&out);
        assert_eq!((s, sp, d, dp), (client.0, client.1, vip.0, vip.1));
        assert_eq!((&out[..6], &out[6..12]), (&RS_MAC[..], &OUR_MAC[..]));
        checked[0] += 1;

        // NAT in: the destination becomes the real server.
        let rw = Rewrite {
            src: None,
            dst: Some(rs),
        };
        let out = run(&inbound, &mut |fb, p| {
            rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
        });
        let (_, s, sp, d, dp) = reparsed_tcp_udp(&out);
        assert_eq!((s, sp, d, dp), (client.0, client.1, rs.0, rs.1));
        checked[1] += 1;

        // NAT out: the real server's reply comes from the VIP.
        let rw = Rewrite {
            src: Some(vip),
            dst: None,
        };
        let out = run(&outbound_nat, &mut |fb, p| {
            rewrite(fb, p, &rw, OUR_MAC, ROUTER_MAC);
        });
        let (_, s, sp, d, dp) = reparsed_tcp_udp(&out);
        assert_eq!((s, sp, d, dp), (vip.0, vip.1, client.0, client.1));
        checked[2] += 1;

        // FULLNAT in: local address -> real server.
        let rw = Rewrite {
            src: Some(laddr),
            dst: Some(rs),
        };
        let out = run(&inbound, &mut |fb, p| {
            rewrite(fb, p, &rw, OUR_MAC, RS_MAC);
        });
        let (_, s, sp, d, dp) = reparsed_tcp_udp(&out);
        assert_eq!((s, sp, d, dp), (laddr.0, laddr.1, rs.0, rs.1));
        checked[3] += 1;

        // FULLNAT out: VIP -> client.
        let rw = Rewrite {
            src: Some(vip),
            dst: Some(client),
        };
        let out = run(&outbound_fnat, &mut |fb, p| {
            rewrite(fb, p, &rw, OUR_MAC, ROUTER_MAC);
        });
        let (_, s, sp, d, dp) = reparsed_tcp_udp(&out);
        assert_eq!((s, sp, d, dp), (vip.0, vip.1, client.0, client.1));
        checked[4] += 1;

        // TUN: the outer header re-parses (IPv4: with a verified header
        // checksum) and the inner packet is the original, checksums intact.
        let (dir, rip) = (addr(&mut rng, v6), addr(&mut rng, v6));
        let mut tun = Ok(());
        let out = run(&inbound, &mut |fb, p| {
            tun = tunnel(fb, p, dir, rip, OUR_MAC, RS_MAC, 9000, 7);
        });
        tun.expect("fits in 9000");
        let p = parse(&out).unwrap().unwrap();
        assert_eq!((p.src, p.dst), (dir, rip));
        assert_eq!(
            p.proto,
            if v6 {
                wire::IPPROTO_IPV6
            } else {
                wire::IPPROTO_IPIP
            }
        );
        assert_eq!(p.l3_end(), out.len());
        let inner: Vec<u8> = [&out[..p.l3_off], &out[p.l4_off..]].concat();
        let (_, s, sp, d, dp) = reparsed_tcp_udp(&inner);
        assert_eq!((s, sp, d, dp), (client.0, client.1, vip.0, vip.1));
        checked[if v6 { 6 } else { 5 }] += 1;

        // ICMP: a "too big" about the packet re-parses as an ICMP error
        // quoting it; rewriting that error as for a NAT reply re-parses to
        // the new addresses and ports, with every checksum valid.
        let mtu = if v6 { 1280 } else { 576 };
        let mut tb = Ok(());
        let icmp = run(&outbound_nat, &mut |fb, p| {
            tb = icmp_too_big(fb, p, vip.0, mtu, OUR_MAC);
        });
        tb.expect("room");
        let check_icmp = |f: &[u8], outer: (IpAddr, IpAddr), quoted: (IpAddr, u16, IpAddr, u16)| {
            let p = parse(f).unwrap().unwrap();
            assert!(wire::verify_l4_checksum(f, &p), "ICMP checksum {f:02x?}");
            assert_eq!((p.src, p.dst), outer);
            let L4::IcmpError(e) = p.l4 else {
                panic!("{:?}", p.l4)
            };
            assert_eq!(e.mtu, Some(u32::from(mtu)));
            assert_eq!(
                (e.inner_src, e.inner_sport, e.inner_dst, e.inner_dport),
                quoted
            );
            assert_eq!(e.inner_proto, proto);
            // The quoted packet, when whole, is itself valid.
            let quote = &f[e.inner_l3_off..p.l3_end()];
            let inner: Vec<u8> = [&f[..p.l3_off], quote].concat();
            if let Ok(Some(q)) = parse(&inner)
                && q.l3_end() == inner.len()
            {
                let (_, s, sp, d, dp) = reparsed_tcp_udp(&inner);
                assert_eq!((s, sp, d, dp), quoted);
                true
            } else {
                if !v6 {
                    let ihl = e.inner_l4_off - e.inner_l3_off;
                    let h = &f[e.inner_l3_off..e.inner_l3_off + ihl];
                    assert!(wire::checksum::verify(h), "quoted IPv4 header checksum");
                }
                false
            }
        };
        check_icmp(&icmp, (vip.0, rs.0), (rs.0, rs.1, client.0, client.1));
        let p = parse(&icmp).unwrap().unwrap();
        let rw = IcmpRewrite {
            outer_src: Some(laddr.0),
            outer_dst: Some(client.0),
            inner_src: Some(vip),
            inner_dst: Some(laddr),
        };
        let mut out = icmp.clone();
        let len = out.len();
        let mut fb = FrameBuf::new(&mut out, 0, len);
        icmp_rewrite(&mut fb, &p, &rw, OUR_MAC, ROUTER_MAC);
        let whole = check_icmp(&out, (laddr.0, client.0), (vip.0, vip.1, laddr.0, laddr.1));
        checked[if whole { 7 } else { 8 }] += 1;
    }
    // DR, NAT in/out, FULLNAT in/out, TUN v4/v6, ICMP with whole and with
    // cut quotes: every kind ran many times.
    assert!(checked.iter().all(|&n| n > 300), "{checked:?}");
}

/// RFC 1071 sum of `chunks`, byte by byte (independent of `checksum`).
fn slow_sum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum: u64 = 0;
    for w in bytes.chunks(2) {
        sum += (u64::from(w[0]) << 8) | u64::from(*w.get(1).unwrap_or(&0));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Encapsulates `fixture` for `tun` from `src` to `dst`; the frame out.
fn encap(fixture: &[u8], src: &str, dst: &str, tun: TunnelSpec, mtu: u16) -> Vec<u8> {
    let (mut buf, len) = buffer(fixture, HEADROOM, 0);
    let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
    tunnel_encap(
        &mut fb,
        &p,
        ip(src),
        ip(dst),
        OUR_MAC,
        RS_MAC,
        mtu,
        0x77,
        &tun,
    )
    .unwrap();
    fb.data().to_vec()
}

fn gue(port: u16, csum: TunCsum) -> TunnelSpec {
    TunnelSpec {
        kind: TunType::Gue,
        port,
        csum,
    }
}

fn gre(csum: TunCsum) -> TunnelSpec {
    TunnelSpec {
        kind: TunType::Gre,
        port: 0,
        csum,
    }
}

#[test]
fn gue_over_ipv4_udp_gue_header_and_checksum() {
    let orig = bytes(fixtures::TCP_ACK_V4_PADDED);
    let inner = &orig[14..54];
    for csum in [TunCsum::NoCsum, TunCsum::Csum, TunCsum::RemCsum] {
        let out = encap(
            fixtures::TCP_ACK_V4_PADDED,
            "198.51.100.2",
            "10.0.0.11",
            gue(6080, csum),
            1500,
        );
        assert_eq!(out.len(), 14 + 20 + 8 + 4 + 40);
        let h = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
        assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
        assert_eq!(h.protocol(), etherparse::IpNumber::UDP);
        assert_eq!(h.total_len() as usize, 20 + 8 + 4 + 40);
        assert!(h.dont_fragment(), "DF copied from the packet");
        let u = &out[34..42];
        let sport = u16::from_be_bytes([u[0], u[1]]);
        assert!((32768..61000).contains(&sport), "{sport}");
        assert_eq!(u16::from_be_bytes([u[2], u[3]]), 6080);
        assert_eq!(u16::from_be_bytes([u[4], u[5]]) as usize, 8 + 4 + 40);
        // GUE version 0, hlen 0, proto_ctype 4 (IPv4 inside), no flags.
        assert_eq!(&out[42..46], &[0, 4, 0, 0]);
        assert_eq!(&out[46..], inner);
        let stored = u16::from_be_bytes([u[6], u[7]]);
        if csum == TunCsum::NoCsum {
            assert_eq!(stored, 0, "no UDP checksum");
        } else {
            let pseudo = [
                &out[26..34],
                &[0, 17][..],
                &((8 + 4 + 40) as u16).to_be_bytes()[..],
            ]
            .concat();
            assert_eq!(slow_sum(&[&pseudo, &out[34..]]), 0xffff, "{csum:?}");
            assert_ne!(stored, 0);
        }
        // etherparse decodes the UDP datagram; our parser sees it too.
        let s = SlicedPacket::from_ethernet(&out).unwrap();
        match s.transport {
            Some(TransportSlice::Udp(u)) => {
                assert_eq!(u.destination_port(), 6080);
                assert_eq!(&u.payload()[4..], inner);
            }
            other => panic!("{other:?}"),
        }
        let q = parse(&out).unwrap().unwrap();
        assert_eq!(q.proto, IPPROTO_UDP);
        assert!(matches!(q.l4, L4::Udp { dport: 6080, .. }));
        verify_ip(&SlicedPacket::from_ip(&out[46..]).unwrap());
    }
}

#[test]
fn gue_source_port_follows_the_flow() {
    // One flow keeps its port; another flow (here: other ports) gets
    // another one, within the local port range.
    let a = encap(
        fixtures::TCP_SYN_V4,
        "198.51.100.2",
        "10.0.0.11",
        gue(6080, TunCsum::NoCsum),
        1500,
    );
    let b = encap(
        fixtures::TCP_SYN_V4,
        "198.51.100.2",
        "10.0.0.11",
        gue(6080, TunCsum::NoCsum),
        1500,
    );
    assert_eq!(a[34..36], b[34..36]);
    let p = parse(&bytes(fixtures::TCP_SYN_V4)).unwrap().unwrap();
    let mut ports = std::collections::BTreeSet::new();
    for sport in 0..64u16 {
        let mut q = p;
        if let L4::Tcp { sport: s, .. } = &mut q.l4 {
            *s = 1024 + sport;
        }
        let port = gue_source_port(&q);
        assert!((LOCAL_PORT_RANGE.0..=LOCAL_PORT_RANGE.1).contains(&port));
        ports.insert(port);
    }
    assert!(ports.len() > 48, "spread: {}", ports.len());
}

#[test]
fn gue_over_ipv6_carries_ipv4_and_ipv6() {
    for (fixture, proto_ctype, tc_hop) in [
        (fixtures::TCP_ACK_V4_PADDED, 4u8, (0x2a, 64)),
        (fixtures::TCP_SYN_V6, 41, (0xb8, 57)),
    ] {
        let orig = bytes(fixture);
        let p = parse(&orig).unwrap().unwrap();
        let inner = &orig[14..p.l3_end()];
        for csum in [TunCsum::NoCsum, TunCsum::Csum] {
            let out = encap(
                fixture,
                "2001:db8:1::2",
                "2001:db8:2::11",
                gue(5555, csum),
                1500,
            );
            assert_eq!(&out[12..14], &[0x86, 0xdd]);
            let h = Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
            assert_eq!(h.next_header(), etherparse::IpNumber::UDP);
            assert_eq!((h.traffic_class(), h.hop_limit()), tc_hop);
            let ulen = 8 + 4 + inner.len();
            assert_eq!(h.payload_length() as usize, ulen);
            let u = &out[54..62];
            assert_eq!(u16::from_be_bytes([u[2], u[3]]), 5555);
            assert_eq!(u16::from_be_bytes([u[4], u[5]]) as usize, ulen);
            assert_eq!(&out[62..66], &[0, proto_ctype, 0, 0]);
            assert_eq!(&out[66..], inner);
            let stored = u16::from_be_bytes([u[6], u[7]]);
            if csum == TunCsum::NoCsum {
                // udp6_set_csum with nocheck: zero (RFC 6935 tunnels).
                assert_eq!(stored, 0);
            } else {
                let pseudo = [
                    &out[22..54],
                    &(ulen as u32).to_be_bytes()[..],
                    &[0, 0, 0, 17][..],
                ]
                .concat();
                assert_eq!(slow_sum(&[&pseudo, &out[54..]]), 0xffff);
            }
        }
    }
}

#[test]
fn gre_with_and_without_checksum() {
    let orig = bytes(fixtures::TCP_SYN_V6);
    let inner = &orig[14..];
    // GRE over IPv4 carrying IPv6: EtherType 0x86dd, no flags.
    let out = encap(
        fixtures::TCP_SYN_V6,
        "198.51.100.2",
        "10.0.0.11",
        gre(TunCsum::NoCsum),
        1500,
    );
    let h = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.protocol(), etherparse::IpNumber::GRE);
    assert_eq!(h.total_len() as usize, 20 + 4 + inner.len());
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
    assert_eq!(&out[34..38], &[0, 0, 0x86, 0xdd]);
    assert_eq!(&out[38..], inner);
    // With the checksum: C flag, checksum over GRE header and packet.
    let out = encap(
        fixtures::TCP_SYN_V6,
        "198.51.100.2",
        "10.0.0.11",
        gre(TunCsum::Csum),
        1500,
    );
    let h = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.total_len() as usize, 20 + 8 + inner.len());
    assert_eq!(&out[34..38], &[0x80, 0, 0x86, 0xdd]);
    assert_eq!(&out[40..42], &[0, 0], "reserved1");
    assert_ne!(&out[38..40], &[0, 0]);
    assert_eq!(slow_sum(&[&out[34..]]), 0xffff, "GRE checksum");
    assert_eq!(&out[42..], inner);
    // GRE over IPv6 carrying IPv4: EtherType 0x0800, next header 47.
    let orig = bytes(fixtures::TCP_ACK_V4_PADDED);
    let out = encap(
        fixtures::TCP_ACK_V4_PADDED,
        "2001:db8:1::2",
        "2001:db8:2::11",
        gre(TunCsum::Csum),
        1500,
    );
    let h = Ipv6HeaderSlice::from_slice(&out[14..]).unwrap();
    assert_eq!(h.next_header(), etherparse::IpNumber::GRE);
    assert_eq!(h.payload_length(), 8 + 40);
    assert_eq!(&out[54..58], &[0x80, 0, 0x08, 0x00]);
    assert_eq!(slow_sum(&[&out[54..]]), 0xffff);
    assert_eq!(&out[62..], &orig[14..54]);
    let q = parse(&out).unwrap().unwrap();
    assert_eq!(q.proto, IPPROTO_GRE);
}

#[test]
fn encapsulation_counts_in_the_mtu() {
    // 1500 bytes with DF: IPv4 outer + GUE leaves 1468, + GRE with
    // checksum 1472, + GRE 1476, as __ip_vs_get_out_rt computes them.
    for (tun, mtu) in [
        (gue(6080, TunCsum::Csum), 1468u16),
        (gre(TunCsum::Csum), 1472),
        (gre(TunCsum::NoCsum), 1476),
        (TunnelSpec::default(), 1480),
    ] {
        let (mut buf, len) = buffer(fixtures::TCP_DATA_V4_1500, HEADROOM, 0);
        let before = buf.clone();
        let p = parse(&buf[HEADROOM..]).unwrap().unwrap();
        let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
        let r = tunnel_encap(
            &mut fb,
            &p,
            ip("198.51.100.2"),
            ip("10.0.0.11"),
            OUR_MAC,
            RS_MAC,
            1500,
            1,
            &tun,
        );
        assert_eq!(r, Err(TunnelError::TooBig { mtu }), "{tun:?}");
        assert_eq!(buf, before);
        // And it fits exactly at mtu + outer.
        let mut fb = FrameBuf::new(&mut buf, HEADROOM, len);
        let r = tunnel_encap(
            &mut fb,
            &p,
            ip("198.51.100.2"),
            ip("10.0.0.11"),
            OUR_MAC,
            RS_MAC,
            1500 + 1500 - mtu,
            1,
            &tun,
        );
        assert_eq!(r, Ok(()), "{tun:?}");
    }
}
