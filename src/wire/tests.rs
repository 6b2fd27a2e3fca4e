use std::net::IpAddr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::fixtures::{self, bytes};
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn parsed(frame: &[u8]) -> (Vec<u8>, Headers) {
    let f = bytes(frame);
    let p = parse(&f).expect("parses").expect("is IP");
    (f, p)
}

#[test]
fn fixtures_checksums_verify_independently() {
    // etherparse computes the TCP/UDP checksums itself: guards the fixtures.
    for fixture in [
        fixtures::TCP_SYN_V4,
        fixtures::TCP_V4_VLAN,
        fixtures::UDP_V4_QINQ,
        fixtures::TCP_SYN_V6,
        fixtures::UDP_V6,
    ] {
        let f = bytes(fixture);
        let s = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let ok = match (&s.net, &s.transport) {
            (Some(etherparse::NetSlice::Ipv4(v4)), Some(etherparse::TransportSlice::Tcp(t))) => {
                t.calc_checksum_ipv4(v4.header().source(), v4.header().destination())
                    .unwrap()
                    == t.checksum()
            }
            (Some(etherparse::NetSlice::Ipv4(v4)), Some(etherparse::TransportSlice::Udp(u))) => {
                u.to_header()
                    .calc_checksum_ipv4_raw(
                        v4.header().source(),
                        v4.header().destination(),
                        u.payload(),
                    )
                    .unwrap()
                    == u.checksum()
            }
            (Some(etherparse::NetSlice::Ipv6(v6)), Some(etherparse::TransportSlice::Tcp(t))) => {
                t.calc_checksum_ipv6(v6.header().source(), v6.header().destination())
                    .unwrap()
                    == t.checksum()
            }
            (Some(etherparse::NetSlice::Ipv6(v6)), Some(etherparse::TransportSlice::Udp(u))) => {
                u.to_header()
                    .calc_checksum_ipv6_raw(
                        v6.header().source(),
                        v6.header().destination(),
                        u.payload(),
                    )
                    .unwrap()
                    == u.checksum()
            }
            other => panic!("unexpected {other:?}"),
        };
        assert!(ok, "fixture checksum {fixture:02x?}");
        let p = parse(&f).unwrap().unwrap();
        assert!(verify_l4_checksum(&f, &p));
    }
}

#[test]
fn tcp_syn_with_options() {
    let (f, p) = parsed(fixtures::TCP_SYN_V4);
    assert_eq!(p.vlan, None);
    assert_eq!(p.svlan, None);
    assert_eq!(p.l3_off, 14);
    assert_eq!(p.l4_off, 34);
    assert_eq!(p.ip_len, 60);
    assert_eq!(p.version, IpVersion::V4);
    assert_eq!(p.src, ip("192.0.2.10"));
    assert_eq!(p.dst, ip("198.51.100.1"));
    assert_eq!((p.proto, p.ttl, p.tos, p.df), (6, 64, 0, true));
    assert_eq!(p.frag, Fragment::None);
    let L4::Tcp {
        sport,
        dport,
        flags,
        seq,
        ack,
    } = p.l4
    else {
        panic!("{:?}", p.l4)
    };
    assert_eq!((sport, dport, seq, ack), (51234, 80, 0x9a3b1c2d, 0));
    assert!(flags.syn() && !flags.ack() && !flags.fin() && !flags.rst());
    assert_eq!(flags, TcpFlags(TcpFlags::SYN));
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn padded_frame_uses_ip_length() {
    let (f, p) = parsed(fixtures::TCP_ACK_V4_PADDED);
    assert_eq!(f.len(), 60);
    assert_eq!(p.ip_len, 40);
    assert_eq!(p.l3_end(), 54);
    assert_eq!(p.tos, 0x2a);
    let L4::Tcp { flags, ack, .. } = p.l4 else {
        panic!()
    };
    assert!(flags.ack() && !flags.syn());
    assert_eq!(ack, 0x11223344);
    // the padding is not part of the checksummed segment
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn ipv4_with_options() {
    let (f, p) = parsed(fixtures::UDP_V4_IP_OPTIONS);
    assert_eq!(p.l4_off, 14 + 24);
    assert_eq!((p.ttl, p.df), (1, false));
    assert_eq!(
        p.l4,
        L4::Udp {
            sport: 5353,
            dport: 53
        }
    );
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn vlan_tagged() {
    let (f, p) = parsed(fixtures::TCP_V4_VLAN);
    assert_eq!(p.vlan, Some(0x6064));
    assert_eq!(p.svlan, None);
    assert_eq!(p.l3_off, 18);
    assert_eq!(p.l4_off, 38);
    assert_eq!(p.ttl, 61);
    let L4::Tcp {
        sport,
        dport,
        flags,
        ..
    } = p.l4
    else {
        panic!()
    };
    assert_eq!((sport, dport), (40000, 80));
    assert!(flags.has(TcpFlags::PSH | TcpFlags::ACK));
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn qinq_tagged() {
    let (_, p) = parsed(fixtures::UDP_V4_QINQ);
    assert_eq!(p.svlan, Some(200));
    assert_eq!(p.vlan, Some(100));
    assert_eq!(p.l3_off, 22);
    assert_eq!(
        p.l4,
        L4::Udp {
            sport: 40001,
            dport: 53
        }
    );
}

#[test]
fn three_tags_are_not_ip() {
    // a third tag: the parser looks at two at most and hands the rest on
    let mut f = bytes(fixtures::UDP_V4_QINQ);
    f.splice(18..18, [0x81, 0x00, 0x00, 0x05]);
    assert_eq!(parse(&f), Ok(None));
}

#[test]
fn udp_zero_checksum_is_none_over_ipv4() {
    let (f, p) = parsed(fixtures::UDP_V4_NO_CSUM);
    assert_eq!(&f[p.l4_off + 6..p.l4_off + 8], &[0, 0]);
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn icmp_echo() {
    let (f, p) = parsed(fixtures::ICMP_ECHO_V4);
    assert_eq!(
        p.l4,
        L4::IcmpEcho {
            ty: 8,
            code: 0,
            id: 0x1f2e
        }
    );
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn ipv4_fragments() {
    let (f, p) = parsed(fixtures::UDP_V4_FRAG_LATER);
    assert_eq!(p.frag, Fragment::Later);
    assert_eq!(p.l4, L4::Other);
    assert_eq!(p.proto, 17);
    assert!(!verify_l4_checksum(&f, &p));
    let (_, p) = parsed(fixtures::UDP_V4_FRAG_FIRST);
    assert_eq!(p.frag, Fragment::First);
    assert_eq!(
        p.l4,
        L4::Udp {
            sport: 7000,
            dport: 7001
        }
    );
}

#[test]
fn ipv6_syn() {
    let (f, p) = parsed(fixtures::TCP_SYN_V6);
    assert_eq!(p.version, IpVersion::V6);
    assert_eq!(p.src, ip("2001:db8::10"));
    assert_eq!(p.dst, ip("2001:db8:1::1"));
    assert_eq!((p.l4_off, p.ip_len), (54, 80));
    assert_eq!((p.proto, p.ttl, p.tos, p.df), (6, 57, 0xb8, true));
    let L4::Tcp {
        sport,
        dport,
        flags,
        ..
    } = p.l4
    else {
        panic!()
    };
    assert_eq!((sport, dport), (50000, 443));
    assert!(flags.syn());
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn ipv6_hop_by_hop_routing_fragment() {
    let (_, p) = parsed(fixtures::UDP_V6_EXT_FRAG_FIRST);
    // 40 + hop-by-hop 8 + SRH 24 + fragment 8
    assert_eq!(p.l4_off, 14 + 40 + 8 + 24 + 8);
    assert_eq!(p.proto, 17);
    assert_eq!(p.frag, Fragment::First);
    assert_eq!(
        p.l4,
        L4::Udp {
            sport: 5353,
            dport: 53
        }
    );
}

#[test]
fn ipv6_later_fragment_stops_at_fragment_header() {
    // the bytes after the fragment header (60 = "destination options") are
    // payload and must not be walked as headers
    let (_, p) = parsed(fixtures::UDP_V6_FRAG_LATER);
    assert_eq!(p.frag, Fragment::Later);
    assert_eq!(p.proto, 17);
    assert_eq!(p.l4_off, 14 + 48);
    assert_eq!(p.l4, L4::Other);
}

#[test]
fn icmp_frag_needed_quoting_tcp() {
    let (f, p) = parsed(fixtures::ICMP_FRAG_NEEDED_V4);
    assert_eq!(p.src, ip("203.0.113.1"));
    let L4::IcmpError(e) = p.l4 else {
        panic!("{:?}", p.l4)
    };
    assert_eq!(e.kind, (3, 4));
    assert_eq!(e.mtu, Some(1400));
    assert_eq!(e.inner_l3_off, 14 + 20 + 8);
    assert_eq!(e.inner_l4_off, 14 + 20 + 8 + 20);
    assert_eq!(e.inner_src, ip("198.51.100.1"));
    assert_eq!(e.inner_dst, ip("192.0.2.10"));
    assert_eq!(
        (e.inner_proto, e.inner_sport, e.inner_dport),
        (6, 80, 51234)
    );
    assert_eq!(e.inner_frag, Fragment::None);
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn icmp_port_unreachable_quoting_udp() {
    let (_, p) = parsed(fixtures::ICMP_PORT_UNREACH_V4);
    let L4::IcmpError(e) = p.l4 else { panic!() };
    assert_eq!((e.kind, e.mtu), ((3, 3), None));
    assert_eq!(
        (e.inner_src, e.inner_dst),
        (ip("192.0.2.10"), ip("10.0.0.11"))
    );
    assert_eq!(
        (e.inner_proto, e.inner_sport, e.inner_dport),
        (17, 40000, 5353)
    );
}

#[test]
fn icmpv6_packet_too_big() {
    let (f, p) = parsed(fixtures::ICMPV6_PTB);
    assert_eq!(p.proto, 58);
    let L4::IcmpError(e) = p.l4 else { panic!() };
    assert_eq!((e.kind, e.mtu), ((2, 0), Some(1280)));
    assert_eq!(e.inner_l3_off, 14 + 40 + 8);
    assert_eq!(e.inner_l4_off, 14 + 40 + 8 + 40);
    assert_eq!(
        (e.inner_src, e.inner_dst),
        (ip("2001:db8:1::1"), ip("2001:db8::10"))
    );
    assert_eq!(
        (e.inner_proto, e.inner_sport, e.inner_dport),
        (6, 443, 50000)
    );
    assert!(verify_l4_checksum(&f, &p));
}

#[test]
fn arp_is_not_ours() {
    assert_eq!(parse(&bytes(fixtures::ARP_REQUEST)), Ok(None));
}

#[test]
fn icmp_other_types() {
    // a redirect (type 5) is not a connection error here
    let mut f = bytes(fixtures::ICMP_ECHO_V4);
    f[34] = 5;
    f[35] = 1;
    assert_eq!(
        parse(&f).unwrap().unwrap().l4,
        L4::IcmpOther { ty: 5, code: 1 }
    );
}

/// Re-computes the IPv4 header checksum after a test edits the header.
fn fix_ip4(f: &mut [u8], l3: usize) {
    let ihl = (f[l3] & 0xf) as usize * 4;
    f[l3 + 10..l3 + 12].fill(0);
    let c = checksum::checksum(&f[l3..l3 + ihl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn malformed_frames_give_their_drop_reason() {
    use ParseError::*;
    let syn = bytes(fixtures::TCP_SYN_V4);
    let v6 = bytes(fixtures::TCP_SYN_V6);
    let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
        ("short ethernet", syn[..13].to_vec(), TruncatedEthernet),
        (
            "short vlan",
            bytes(fixtures::TCP_V4_VLAN)[..16].to_vec(),
            TruncatedVlan,
        ),
        ("short ipv4", syn[..14 + 19].to_vec(), Ipv4Truncated),
        (
            "ipv4 ihl beyond frame",
            {
                let mut f = syn[..14 + 22].to_vec();
                f[14] = 0x46;
                f
            },
            Ipv4Truncated,
        ),
        (
            "ipv4 version",
            {
                let mut f = syn.clone();
                f[14] = 0x65;
                f
            },
            Ipv4BadVersion,
        ),
        (
            "ipv4 ihl",
            {
                let mut f = syn.clone();
                f[14] = 0x44;
                f
            },
            Ipv4BadIhl,
        ),
        (
            "total length beyond frame",
            {
                let mut f = syn.clone();
                f[17] = 61;
                fix_ip4(&mut f, 14);
                f
            },
            Ipv4BadTotalLength,
        ),
        (
            "total length below header",
            {
                let mut f = syn.clone();
                f[16] = 0;
                f[17] = 19;
                fix_ip4(&mut f, 14);
                f
            },
            Ipv4BadTotalLength,
        ),
        (
            "ipv4 checksum",
            {
                let mut f = syn.clone();
                f[22] = 63; // TTL changed without fixing the checksum
                f
            },
            Ipv4BadChecksum,
        ),
        ("short ipv6", v6[..14 + 39].to_vec(), Ipv6Truncated),
        (
            "ipv6 version",
            {
                let mut f = v6.clone();
                f[14] = 0x4b;
                f
            },
            Ipv6BadVersion,
        ),
        (
            "ipv6 payload length",
            {
                let mut f = v6.clone();
                f[19] += 1;
                f
            },
            Ipv6BadPayloadLength,
        ),
        (
            "hop-by-hop not first",
            {
                let mut f = bytes(fixtures::UDP_V6_EXT_FRAG_FIRST);
                f[14 + 40] = 0; // hop-by-hop's next header -> hop-by-hop again
                f
            },
            Ipv6BadExtHeaders,
        ),
        (
            "ext chain beyond payload",
            {
                let mut f = bytes(fixtures::UDP_V6_EXT_FRAG_FIRST);
                f[14 + 40 + 9] = 200; // SRH length far beyond the packet
                f
            },
            Ipv6BadExtHeaders,
        ),
        (
            "tcp truncated",
            {
                let mut f = syn[..14 + 20 + 19].to_vec();
                f[17] = 39;
                fix_ip4(&mut f, 14);
                f
            },
            TcpTruncated,
        ),
        (
            "tcp options beyond packet",
            {
                let mut f = syn.clone();
                f[46] = 0xb0; // data offset 11 = 44 bytes > 40 present
                f
            },
            TcpTruncated,
        ),
        (
            "tcp data offset",
            {
                let mut f = syn.clone();
                f[46] = 0x40;
                f
            },
            TcpBadDataOffset,
        ),
        (
            "udp truncated",
            {
                let mut f = bytes(fixtures::UDP_V4_NO_CSUM)[..14 + 20 + 7].to_vec();
                f[17] = 27;
                fix_ip4(&mut f, 14);
                f
            },
            UdpTruncated,
        ),
        (
            "icmp truncated",
            {
                let mut f = bytes(fixtures::ICMP_ECHO_V4)[..14 + 20 + 7].to_vec();
                f[17] = 27;
                fix_ip4(&mut f, 14);
                f
            },
            IcmpTruncated,
        ),
        (
            "icmp quote shorter than an ip header",
            {
                let mut f = bytes(fixtures::ICMP_PORT_UNREACH_V4)[..14 + 20 + 8 + 19].to_vec();
                f[17] = 47;
                fix_ip4(&mut f, 14);
                f
            },
            IcmpInnerTruncated,
        ),
        (
            "icmp quote without ports",
            {
                let mut f = bytes(fixtures::ICMP_PORT_UNREACH_V4)[..14 + 20 + 8 + 20 + 3].to_vec();
                f[17] = 51;
                fix_ip4(&mut f, 14);
                f
            },
            IcmpInnerTruncated,
        ),
        (
            "icmp quoting ipv6 in ipv4",
            {
                let mut f = bytes(fixtures::ICMP_PORT_UNREACH_V4);
                f[14 + 28] = 0x65;
                f
            },
            IcmpInnerBad,
        ),
        (
            "icmpv6 quote truncated",
            {
                let mut f = bytes(fixtures::ICMPV6_PTB)[..14 + 40 + 8 + 39].to_vec();
                f[19] = 47;
                f
            },
            IcmpInnerTruncated,
        ),
        (
            "icmpv6 quoting ipv4",
            {
                let mut f = bytes(fixtures::ICMPV6_PTB);
                f[14 + 48] = 0x45;
                f
            },
            IcmpInnerBad,
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (what, f, want) in cases {
        assert_eq!(parse(&f), Err(want), "{what}");
        seen.insert(want);
    }
    for e in ParseError::ALL {
        assert!(seen.contains(e), "no test for {e:?}");
    }
}

#[test]
fn parse_error_names_are_unique_snake_case() {
    let mut names = std::collections::HashSet::new();
    for e in ParseError::ALL {
        let n = e.name();
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
            "{n}"
        );
        assert!(names.insert(n), "duplicate {n}");
    }
    assert_eq!(ParseError::Ipv4BadChecksum.name(), "ipv4_bad_checksum");
}

#[test]
fn random_and_damaged_frames_never_panic() {
    let seeds: Vec<Vec<u8>> = [
        fixtures::TCP_SYN_V4,
        fixtures::TCP_ACK_V4_PADDED,
        fixtures::UDP_V4_IP_OPTIONS,
        fixtures::TCP_V4_VLAN,
        fixtures::UDP_V4_QINQ,
        fixtures::ICMP_ECHO_V4,
        fixtures::TCP_SYN_V6,
        fixtures::UDP_V6_EXT_FRAG_FIRST,
        fixtures::UDP_V6_FRAG_LATER,
        fixtures::ICMP_FRAG_NEEDED_V4,
        fixtures::ICMP_PORT_UNREACH_V4,
        fixtures::ICMPV6_PTB,
        fixtures::ARP_REQUEST,
    ]
    .iter()
    .map(|h| bytes(h))
    .collect();
    let mut rng = SmallRng::seed_from_u64(0x11f0);
    let (mut ok, mut err) = (0, 0);
    for i in 0..6000 {
        let mut f = if i % 6 == 0 {
            let mut f = vec![0u8; rng.random_range(0..200)];
            rng.fill(&mut f[..]);
            if f.len() > 14 && rng.random_bool(0.5) {
                let et: u16 = [0x0800, 0x86dd, 0x8100, 0x88a8][rng.random_range(0..4)];
                f[12..14].copy_from_slice(&et.to_be_bytes());
            }
            f
        } else {
            seeds[rng.random_range(0..seeds.len())].clone()
        };
        for _ in 0..rng.random_range(0..4) {
            if !f.is_empty() {
                let at = rng.random_range(0..f.len());
                f[at] ^= 1 << rng.random_range(0..8);
            }
        }
        if rng.random_bool(0.5) {
            f.truncate(rng.random_range(0..=f.len()));
        }
        match parse(&f) {
            Ok(Some(p)) => {
                ok += 1;
                assert!(p.l3_end() <= f.len());
                assert!(p.l3_off <= p.l4_off && p.l4_off <= p.l3_end());
                let _ = verify_l4_checksum(&f, &p);
            }
            Ok(None) => {}
            Err(_) => err += 1,
        }
    }
    // the mix exercises both outcomes
    assert!(ok > 500 && err > 500, "ok {ok} err {err}");
}

#[test]
fn framebuf_headroom_and_length() {
    let mut buf = vec![0u8; 64];
    buf[16..20].copy_from_slice(&[1, 2, 3, 4]);
    let mut fb = FrameBuf::new(&mut buf, 16, 4);
    assert_eq!(fb.data(), &[1, 2, 3, 4]);
    assert_eq!(
        (fb.head(), fb.headroom(), fb.tailroom(), fb.len()),
        (16, 16, 44, 4)
    );
    fb.push_front(2).unwrap();
    assert_eq!(fb.data(), &[0, 0, 1, 2, 3, 4]);
    // headroom 14 + tailroom 44 = 58 bytes of room, not 59
    assert_eq!(fb.push_front(59), Err(NoRoom));
    assert_eq!(
        (fb.head(), fb.len()),
        (14, 6),
        "a refused push changes nothing"
    );
    assert_eq!(fb.data(), &[0, 0, 1, 2, 3, 4]);
    fb.pull_front(3);
    assert_eq!(fb.data(), &[2, 3, 4]);
    fb.data_mut()[0] = 9;
    assert_eq!(fb.data(), &[9, 3, 4]);
    fb.set_len(1).unwrap();
    assert_eq!(fb.data(), &[9]);
    assert_eq!(fb.set_len(64 - 17 + 1), Err(NoRoom));
    fb.set_len(64 - 17).unwrap();
    assert_eq!(fb.tailroom(), 0);
    fb.pull_front(1000);
    assert!(fb.is_empty());
    // a descriptor beyond the buffer is clamped, not trusted
    let mut small = [0u8; 8];
    let fb = FrameBuf::new(&mut small, 6, 10);
    assert_eq!((fb.head(), fb.len()), (6, 2));
}

#[test]
fn framebuf_push_front_shifts_toward_the_tail_when_headroom_is_short() {
    // No headroom (the AF_XDP buffer): the frame moves back by exactly n.
    let mut buf: Vec<u8> = (0..32).collect();
    let mut fb = FrameBuf::new(&mut buf, 0, 10);
    fb.push_front(4).unwrap();
    assert_eq!((fb.head(), fb.len(), fb.tailroom()), (0, 14, 18));
    assert_eq!(&fb.data()[4..], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    fb.data_mut()[..4].copy_from_slice(&[0xaa; 4]);
    assert_eq!(
        &buf[..14],
        &[0xaa, 0xaa, 0xaa, 0xaa, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    );
    assert_eq!(
        buf[14..],
        (14..32).collect::<Vec<u8>>()[..],
        "the rest untouched"
    );

    // Some headroom: only the missing bytes are shifted; the frame still
    // ends up at the buffer's start.
    let mut buf: Vec<u8> = (0..32).collect();
    let mut fb = FrameBuf::new(&mut buf, 3, 10);
    fb.push_front(8).unwrap();
    assert_eq!((fb.head(), fb.len()), (0, 18));
    assert_eq!(&fb.data()[8..], &(3..13).collect::<Vec<u8>>()[..]);

    // Enough headroom: no shift.
    let mut buf: Vec<u8> = (0..32).collect();
    let mut fb = FrameBuf::new(&mut buf, 8, 10);
    fb.push_front(8).unwrap();
    assert_eq!((fb.head(), fb.len()), (0, 18));
    assert_eq!(fb.data(), &(0..18).collect::<Vec<u8>>()[..]);

    // Exactly all the room there is: fits, and fills the buffer.
    let mut buf: Vec<u8> = (0..32).collect();
    let mut fb = FrameBuf::new(&mut buf, 2, 10);
    fb.push_front(22).unwrap();
    assert_eq!((fb.head(), fb.len(), fb.tailroom()), (0, 32, 0));
    assert_eq!(&fb.data()[22..], &(2..12).collect::<Vec<u8>>()[..]);

    // One byte more: NoRoom, and the frame is left where it was.
    let mut buf: Vec<u8> = (0..32).collect();
    let mut fb = FrameBuf::new(&mut buf, 2, 10);
    assert_eq!(fb.push_front(23), Err(NoRoom));
    assert_eq!((fb.head(), fb.len()), (2, 10));
    assert_eq!(fb.data(), &(2..12).collect::<Vec<u8>>()[..]);
    assert_eq!(buf, (0..32).collect::<Vec<u8>>(), "nothing moved");
}

/// Every fixture frame of `fixtures`.
static ALL_FIXTURES: &[&[u8]] = &[
    fixtures::TCP_SYN_V4,
    fixtures::TCP_ACK_V4_PADDED,
    fixtures::UDP_V4_IP_OPTIONS,
    fixtures::TCP_V4_VLAN,
    fixtures::UDP_V4_QINQ,
    fixtures::UDP_V4_NO_CSUM,
    fixtures::ICMP_ECHO_V4,
    fixtures::UDP_V4_FRAG_LATER,
    fixtures::UDP_V4_FRAG_FIRST,
    fixtures::TCP_SYN_V6,
    fixtures::UDP_V6_EXT_FRAG_FIRST,
    fixtures::UDP_V6_FRAG_LATER,
    fixtures::UDP_V6,
    fixtures::ICMP_FRAG_NEEDED_V4,
    fixtures::ICMP_PORT_UNREACH_V4,
    fixtures::ICMPV6_PTB,
    fixtures::TCP_DATA_V4_1500,
    fixtures::TCP_DATA_V6_1500,
    fixtures::ARP_REQUEST,
];

/// Asserts that the fast path, when it takes `f`, gives exactly what the
/// general parser gives, and that `parse` and `parse_then` always equal the
/// general parser.
/// Returns whether the fast path took the frame.
fn fast_agrees(f: &[u8]) -> bool {
    let full = parse_full(f);
    assert_eq!(parse(f), full, "parse vs parse_full on {f:02x?}");
    if let Ok(Some(p)) = full {
        check_invariants(f, &p);
    }
    let mut copy = f.to_vec();
    let len = copy.len();
    let lent = parse_then(&mut FrameBuf::new(&mut copy, 0, len), |_, r| {
        r.map(|o| o.copied())
    });
    assert_eq!(lent, full, "parse_then vs parse_full on {f:02x?}");
    untagged_agrees(f);
    match fast_headers(f) {
        Some(p) => {
            assert_eq!(full, Ok(Some(p)), "fast path differs on {f:02x?}");
            true
        }
        None => false,
    }
}

/// Asserts that [`untagged_ipv4`] takes exactly the fast path's untagged
/// IPv4 frames, giving what it gives, and that what
/// [`peek_untagged_ipv4`] read before any validation is then their tuple.
/// Returns whether it took the frame.
fn untagged_agrees(f: &[u8]) -> bool {
    let want = fast_headers(f)
        .filter(|p| p.vlan.is_none() && p.svlan.is_none() && p.version == IpVersion::V4);
    assert_eq!(untagged_ipv4(f), want, "untagged_ipv4 on {f:02x?}");
    let Some(p) = want else {
        return false;
    };
    let (sport, dport) = match p.l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
        ref other => panic!("not TCP/UDP: {other:?}"),
    };
    let peeked = peek_untagged_ipv4(f).map(|(proto, src, sport, dst, dport)| {
        (proto, IpAddr::V4(src), sport, IpAddr::V4(dst), dport)
    });
    assert_eq!(
        peeked,
        Some((p.proto, p.src, sport, p.dst, dport)),
        "peek_untagged_ipv4 on {f:02x?}"
    );
    true
}

#[test]
fn untagged_ipv4_takes_its_fixtures_only() {
    let taken: Vec<_> = ALL_FIXTURES
        .iter()
        .filter(|f| untagged_agrees(&bytes(f)))
        .copied()
        .collect();
    let want = [
        fixtures::TCP_SYN_V4,
        fixtures::TCP_ACK_V4_PADDED,
        fixtures::UDP_V4_NO_CSUM,
        fixtures::TCP_DATA_V4_1500,
    ];
    for w in want {
        assert!(taken.contains(&w), "{w:02x?} not taken");
    }
    assert_eq!(taken.len(), want.len(), "taken: {taken:02x?}");
}

#[test]
fn fast_path_equals_full_parser_on_every_fixture() {
    let mut taken = Vec::new();
    for fixture in ALL_FIXTURES {
        if fast_agrees(&bytes(fixture)) {
            taken.push(*fixture);
        }
    }
    // The plain TCP/UDP frames, tagged or not, padded or not, must take the
    // fast path; options, fragments, extension headers, ICMP and ARP not.
    let want = [
        fixtures::TCP_SYN_V4,
        fixtures::TCP_ACK_V4_PADDED,
        fixtures::TCP_V4_VLAN,
        fixtures::UDP_V4_QINQ,
        fixtures::UDP_V4_NO_CSUM,
        fixtures::TCP_SYN_V6,
        fixtures::UDP_V6,
        fixtures::TCP_DATA_V4_1500,
        fixtures::TCP_DATA_V6_1500,
    ];
    assert_eq!(taken, want);
}

/// A random frame of the shapes the parsers know, mostly well formed:
/// 0-3 VLAN tags, IPv4 (with or without options, fragments, good or bad
/// checksum) or IPv6 (with or without an extension header), TCP (with
/// options), UDP, ICMP or another protocol, link padding.
fn random_frame(rng: &mut SmallRng) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    rng.fill(&mut f[..]);
    let ntags = [0, 0, 0, 1, 1, 2, 3][rng.random_range(0..7)];
    for _ in 0..ntags {
        let tpid: u16 = [ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ_OLD][rng.random_range(0..3)];
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&rng.random::<u16>().to_be_bytes());
    }
    let r = rng.random_range(0..20);
    let v6 = r >= 9;
    let ethertype = match r {
        0 => 0x0806,
        1..=8 => ETH_P_IPV4,
        _ => ETH_P_IPV6,
    };
    f.extend_from_slice(&u16::to_be_bytes(ethertype));

    let proto: u8 = [6, 6, 6, 17, 17, 1, 58, 47][rng.random_range(0..8)];
    let mut l4 = Vec::new();
    match proto {
        6 => {
            let opts = 4 * rng.random_range(0..=10usize);
            l4 = vec![0u8; 20 + opts];
            rng.fill(&mut l4[..]);
            let doff = if rng.random_bool(0.9) {
                (20 + opts) / 4
            } else {
                rng.random_range(0..16)
            };
            l4[12] = (doff as u8) << 4 | (l4[12] & 0x0f);
        }
        17 | 1 | 58 => {
            l4 = vec![0u8; 8];
            rng.fill(&mut l4[..]);
        }
        _ => {}
    }
    let mut payload = vec![0u8; rng.random_range(0..40)];
    rng.fill(&mut payload[..]);
    l4.extend_from_slice(&payload);

    if v6 {
        let mut h = [0u8; 40];
        rng.fill(&mut h[..]);
        h[0] = 0x60 | (h[0] & 0x0f);
        let mut ext = Vec::new();
        match rng.random_range(0..6) {
            // Hop-by-hop or fragment header in front of the upper layer.
            0 => {
                h[6] = 0;
                ext = vec![proto, 0, 1, 4, 0, 0, 0, 0];
            }
            1 => {
                h[6] = 44;
                let fo: u16 = if rng.random_bool(0.5) { 0 } else { 8 << 3 };
                let m = u16::from(rng.random_bool(0.5));
                ext = vec![proto, 0, 0, 0, 1, 2, 3, 4];
                ext[2..4].copy_from_slice(&(fo | m).to_be_bytes());
            }
            _ => h[6] = proto,
        }
        let plen = (ext.len() + l4.len()) as u16;
        h[4..6].copy_from_slice(&plen.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(&ext);
    } else {
        let opts = if rng.random_bool(0.8) {
            0
        } else {
            4 * rng.random_range(1..=3usize)
        };
        let mut h = vec![0u8; 20 + opts];
        rng.fill(&mut h[..]);
        h[0] = 0x40 | (5 + opts / 4) as u8;
        let total = (h.len() + l4.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let df = if rng.random_bool(0.5) { 0x4000 } else { 0 };
        let frag = match rng.random_range(0..8) {
            0 => 0x2000,
            1 => rng.random_range(1..0x2000u16),
            _ => 0,
        };
        h[6..8].copy_from_slice(&u16::to_be_bytes(df | frag));
        h[9] = proto;
        h[10] = 0;
        h[11] = 0;
        if rng.random_bool(0.95) {
            let c = checksum::checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&h);
    }
    f.extend_from_slice(&l4);
    let pad = if rng.random_bool(0.3) {
        rng.random_range(1..20)
    } else {
        0
    };
    f.extend(std::iter::repeat_n(0u8, pad));
    f
}

#[test]
fn fast_path_equals_full_parser_on_random_frames() {
    let mut rng = SmallRng::seed_from_u64(0xfa57);
    let (mut fast, mut total) = (0, 0);
    for i in 0..200_000 {
        let mut f = random_frame(&mut rng);
        match i % 10 {
            // Damage: flipped bits in the headers, or a cut anywhere.
            0..=2 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..f.len().min(100));
                    f[at] ^= 1 << rng.random_range(0..8);
                }
            }
            3 => f.truncate(rng.random_range(0..=f.len())),
            _ => {}
        }
        total += 1;
        fast += usize::from(fast_agrees(&f));
    }
    // Most well-formed frames are the fast path's; many are not.
    assert!(
        fast > total / 5 && fast < total * 4 / 5,
        "{fast} of {total}"
    );
}

#[test]
fn peek_tuple_agrees_with_parse_on_plain_tcp_and_udp() {
    for fixture in [
        fixtures::TCP_SYN_V4,
        fixtures::TCP_ACK_V4_PADDED,
        fixtures::UDP_V4_IP_OPTIONS,
        fixtures::TCP_V4_VLAN,
        fixtures::UDP_V4_QINQ,
        fixtures::UDP_V4_NO_CSUM,
        fixtures::TCP_SYN_V6,
        fixtures::UDP_V6,
        fixtures::TCP_DATA_V4_1500,
        fixtures::TCP_DATA_V6_1500,
    ] {
        let (f, p) = parsed(fixture);
        let (sport, dport) = match p.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
            ref other => panic!("fixture is not TCP/UDP: {other:?}"),
        };
        assert_eq!(
            peek_tuple(&f),
            Some((p.proto, p.src, sport, p.dst, dport)),
            "{fixture:02x?}"
        );
    }
}

#[test]
fn peek_tuple_declines_what_has_no_ports_and_never_panics() {
    for fixture in [
        fixtures::ICMP_ECHO_V4,
        fixtures::ARP_REQUEST,
        fixtures::ICMP_FRAG_NEEDED_V4,
        fixtures::ICMPV6_PTB,
    ] {
        assert_eq!(peek_tuple(&bytes(fixture)), None, "{fixture:02x?}");
    }
    let f = bytes(fixtures::TCP_SYN_V4);
    for n in 0..f.len() {
        let _ = peek_tuple(&f[..n]);
    }
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..10_000 {
        let n = rng.random_range(0..80);
        let v: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        let _ = peek_tuple(&v);
    }
}

#[test]
fn parse_error_index_is_its_place_in_all() {
    for (i, e) in ParseError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i, "{e:?}");
    }
}

/// Asserts the invariants documented at the top of this module (and a few
/// more that follow from the parse) for an `Ok(Some(p))` of frame `f`.
fn check_invariants(f: &[u8], p: &Headers) {
    let end = p.l3_end();
    assert!(end <= f.len(), "ip_len beyond frame");
    assert!(p.l3_off <= p.l4_off && p.l4_off <= end, "l4_off outside");
    // Link header: 14 bytes and one 4-byte tag per VLAN; S-tag only with C-tag.
    let tags = usize::from(p.vlan.is_some()) + usize::from(p.svlan.is_some());
    assert!(p.svlan.is_none() || p.vlan.is_some());
    assert_eq!(p.l3_off, ETH_HLEN + tags * vlan::HEADER_LEN);
    let ethertype = u16::from_be_bytes([f[p.l3_off - 2], f[p.l3_off - 1]]);
    let h = &f[p.l3_off..p.l4_off];
    match p.version {
        IpVersion::V4 => {
            assert_eq!(ethertype, ETH_P_IPV4);
            assert!(p.src.is_ipv4() && p.dst.is_ipv4());
            assert_eq!(h.len(), usize::from(h[ipv4::field::VER_IHL] & 0xf) * 4);
            assert!(checksum::verify(h), "IPv4 header checksum not verified");
            assert_eq!(p.proto, h[ipv4::field::PROTOCOL]);
            assert_eq!(p.ttl, h[ipv4::field::TTL]);
        }
        IpVersion::V6 => {
            assert_eq!(ethertype, ETH_P_IPV6);
            assert!(p.src.is_ipv6() && p.dst.is_ipv6() && p.df);
            assert!(h.len() >= IPV6_HLEN);
            assert_eq!(p.ttl, h[ipv6::field::HOP_LIMIT]);
        }
    }
    let l4 = &f[p.l4_off..end];
    match p.l4 {
        L4::Tcp { sport, dport, .. } => {
            assert!(l4.len() >= tcp::HEADER_LEN);
            let doff = usize::from(l4[tcp::field::DATA_OFF] >> 4) * 4;
            assert!(
                doff >= tcp::HEADER_LEN && doff <= l4.len(),
                "TCP options cut"
            );
            assert_eq!(sport, u16::from_be_bytes([l4[0], l4[1]]));
            assert_eq!(dport, u16::from_be_bytes([l4[2], l4[3]]));
        }
        L4::Udp { .. } => assert!(l4.len() >= udp::HEADER_LEN),
        L4::IcmpEcho { .. } | L4::IcmpOther { .. } => assert!(l4.len() >= icmp::HEADER_LEN),
        L4::IcmpError(e) => {
            assert!(l4.len() >= icmp::HEADER_LEN);
            assert_eq!(e.inner_l3_off, p.l4_off + icmp::field::QUOTE);
            assert!(e.inner_l3_off <= e.inner_l4_off && e.inner_l4_off <= end);
            let inner_hlen = e.inner_l4_off - e.inner_l3_off;
            match p.version {
                IpVersion::V4 => {
                    assert!(e.inner_src.is_ipv4() && inner_hlen >= IPV4_HLEN);
                    assert_eq!(f[e.inner_l3_off] >> 4, 4);
                }
                IpVersion::V6 => {
                    assert!(e.inner_src.is_ipv6() && inner_hlen >= IPV6_HLEN);
                    assert_eq!(f[e.inner_l3_off] >> 4, 6);
                }
            }
            if e.inner_frag != Fragment::Later
                && matches!(e.inner_proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
            {
                assert!(e.inner_l4_off + 4 <= end, "quoted ports cut");
                let q = &f[e.inner_l4_off..];
                assert_eq!(e.inner_sport, u16::from_be_bytes([q[0], q[1]]));
                assert_eq!(e.inner_dport, u16::from_be_bytes([q[2], q[3]]));
            } else {
                assert_eq!((e.inner_sport, e.inner_dport), (0, 0));
            }
        }
        L4::Other => {}
    }
    if p.frag == Fragment::Later {
        assert_eq!(p.l4, L4::Other, "a later fragment has no L4 header");
    }
    // Never panics either.
    let _ = verify_l4_checksum(f, p);
}

/// One random edit of a frame: flipped bits, a byte set to an edge value,
/// bytes inserted or removed, or a cut.
fn mutate(rng: &mut SmallRng, f: &mut Vec<u8>) {
    if f.is_empty() {
        f.push(rng.random());
        return;
    }
    let at = rng.random_range(0..f.len());
    match rng.random_range(0..6) {
        0 | 1 => f[at] ^= 1 << rng.random_range(0..8),
        2 => f[at] = [0, 1, 0x40, 0x45, 0x60, 0x7f, 0x80, 0xff][rng.random_range(0..8)],
        3 => f.insert(at, rng.random()),
        4 => {
            let n = rng.random_range(1..=8).min(f.len() - at);
            f.drain(at..at + n);
        }
        _ => f.truncate(at),
    }
}

#[test]
fn property_parse_never_panics_and_ok_headers_keep_the_invariants() {
    const CASES: usize = 120_000;
    let mut rng = SmallRng::seed_from_u64(0x9a25e);
    let (mut ok, mut err, mut not_ip) = (0, 0, 0);
    for i in 0..CASES {
        let mut f = match i % 4 {
            // Arbitrary bytes, half of them behind an IP or VLAN ethertype.
            0 => {
                let mut f = vec![0u8; rng.random_range(0..160)];
                rng.fill(&mut f[..]);
                if f.len() >= ETH_HLEN && rng.random_bool(0.5) {
                    let et = [ETH_P_IPV4, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD];
                    f[12..14].copy_from_slice(&et[rng.random_range(0..4)].to_be_bytes());
                }
                f
            }
            // Valid frames of the known shapes, then damaged.
            1 | 2 => random_frame(&mut rng),
            _ => bytes(ALL_FIXTURES[rng.random_range(0..ALL_FIXTURES.len())]),
        };
        if i % 4 != 0 {
            for _ in 0..rng.random_range(0..4) {
                mutate(&mut rng, &mut f);
            }
        }
        match parse(&f) {
            Ok(Some(p)) => {
                ok += 1;
                check_invariants(&f, &p);
            }
            Ok(None) => not_ip += 1,
            Err(_) => err += 1,
        }
    }
    assert!(
        ok > CASES / 5 && err > CASES / 10 && not_ip > CASES / 50,
        "ok {ok} err {err} not ip {not_ip}"
    );
}

#[test]
fn every_fixture_keeps_the_invariants() {
    for fixture in ALL_FIXTURES {
        let f = bytes(fixture);
        if let Ok(Some(p)) = parse(&f) {
            check_invariants(&f, &p);
        }
        // and every truncation of it
        for n in 0..f.len() {
            if let Ok(Some(p)) = parse(&f[..n]) {
                check_invariants(&f[..n], &p);
            }
        }
    }
}
