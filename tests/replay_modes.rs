//! Every forwarding method through `lvsfwd replay`, IPv4 and IPv6: what the
//! real server (or the client) would receive, byte-checked by an independent
//! parser and checksum verifier.

mod common;
use common::*;

const VIP: &str = "198.18.0.250";
const VIP6: &str = "2001:2::250";

fn rs3(kind: &str, port: u16) -> String {
    config(&vs4(
        &format!("{VIP}:80"),
        "rr",
        kind,
        &[(11, port, 1), (12, port, 1), (13, port, 1)],
        "",
    ))
}

#[test]
fn dr_changes_only_the_destination_mac() {
    let syn = tcp("198.18.100.1", 40001, VIP, 80, SYN);
    let ack = tcp("198.18.100.1", 40001, VIP, 80, PSHACK);
    let r = replay(
        &rs3("DR", 80),
        &[(1.0, syn.clone()), (1.1, ack.clone())],
        &[],
    );
    assert_eq!(r.summary(), (2, 2, 0, 0));
    for ((_, out), inp) in r.out.iter().zip([&syn, &ack]) {
        let e = emitted(out);
        assert_eq!(e.smac, DIRECTOR_MAC);
        // rr over the kernel's list (newest first): the last configured
        // server takes the first connection, as IPVS would.
        assert_eq!(e.dmac, rs_mac(13));
        // Only the TTL (and so the header checksum) changes, as IPVS
        // decrements it on transmit.
        assert_eq!(e.ttl, inp[14 + 8] - 1);
        assert_eq!(
            &out[12..14 + 8],
            &inp[12..14 + 8],
            "DR must not touch the IP packet"
        );
        assert_eq!(&out[14 + 9..14 + 10], &inp[14 + 9..14 + 10]);
        assert_eq!(
            &out[14 + 12..],
            &inp[14 + 12..],
            "DR must not touch the IP packet"
        );
    }
}

#[test]
fn dr_round_robin_spreads_new_connections_and_keeps_flows() {
    let mut frames = Vec::new();
    for c in 0..6u16 {
        frames.push((
            1.0 + c as f64 * 0.01,
            tcp("198.18.100.1", 41000 + c, VIP, 80, SYN),
        ));
    }
    for c in 0..6u16 {
        frames.push((
            2.0 + c as f64 * 0.01,
            tcp("198.18.100.1", 41000 + c, VIP, 80, PSHACK),
        ));
    }
    let r = replay(&rs3("DR", 80), &frames, &[]);
    let macs: Vec<u8> = r.out.iter().map(|(_, f)| emitted(f).dmac[5]).collect();
    assert_eq!(macs, vec![13, 12, 11, 13, 12, 11, 13, 12, 11, 13, 12, 11]);
}

#[test]
fn nat_rewrites_destination_and_replies_back_with_port_mapping() {
    let cfg = rs3("NAT", 8080);
    let c = "198.18.100.7";
    let syn = tcp(c, 40007, VIP, 80, SYN);
    // The real server (13 takes the first connection) answers the client.
    let synack = tcp_frame(
        rs_mac(13),
        DIRECTOR_MAC,
        (ip("198.18.1.13"), 8080),
        (ip(c), 40007),
        SYNACK,
        b"",
    );
    let r = replay(&cfg, &[(1.0, syn), (1.001, synack)], &[]);
    assert_eq!(r.summary(), (2, 2, 0, 0));
    let fwd = emitted(&r.out[0].1);
    assert_eq!(
        (fwd.src, fwd.sport),
        (ip(c), 40007),
        "NAT keeps the client's address"
    );
    assert_eq!((fwd.dst, fwd.dport), (ip("198.18.1.13"), 8080));
    assert_eq!(fwd.dmac, rs_mac(13));
    let back = emitted(&r.out[1].1);
    assert_eq!((back.src, back.sport), (ip(VIP), 80));
    assert_eq!((back.dst, back.dport), (ip(c), 40007));
    assert_eq!(
        back.dmac, CLIENT_MAC,
        "reply goes to the MAC the client's packets came from"
    );
    assert_eq!(back.smac, DIRECTOR_MAC);
}

#[test]
fn nat_udp_ipv6() {
    let cfg = config(&format!(
        r#"[[virtual_server]]
address = "[{VIP6}]:53"
protocol = "UDP"
lb_algo = "rr"
lb_kind = "NAT"
  [[virtual_server.real_server]]
  address = "[2001:2::1:11]:5353"
  mac = "{}"
"#,
        rs_mac_str(11)
    ));
    let q = udp("2001:2::100:1", 5000, VIP6, 53, b"query");
    let a = udp_frame(
        rs_mac(11),
        DIRECTOR_MAC,
        ip("2001:2::1:11"),
        5353,
        ip("2001:2::100:1"),
        5000,
        b"answer",
    );
    let r = replay(&cfg, &[(1.0, q), (1.5, a)], &[]);
    assert_eq!(r.summary(), (2, 2, 0, 0));
    let f = emitted(&r.out[0].1);
    assert_eq!((f.dst, f.dport, f.proto), (ip("2001:2::1:11"), 5353, 17));
    let b = emitted(&r.out[1].1);
    assert_eq!((b.src, b.sport), (ip(VIP6), 53));
}

#[test]
fn fullnat_maps_the_client_to_a_local_address_and_back() {
    let cfg = config(&vs4(
        &format!("{VIP}:80"),
        "rr",
        "FULLNAT",
        &[(11, 8080, 1)],
        "local_address = [\"198.18.9.1\"]",
    ));
    let c = "198.18.100.9";
    let syn = tcp(c, 40009, VIP, 80, SYN);
    let r1 = replay(&cfg, &[(1.0, syn.clone())], &["--dump-conns"]);
    let f = emitted(&r1.out[0].1);
    assert_eq!(f.src, ip("198.18.9.1"), "source is the local address");
    assert_eq!((f.dst, f.dport), (ip("198.18.1.11"), 8080));
    let lport = f.sport;
    let reply = tcp_frame(
        rs_mac(11),
        DIRECTOR_MAC,
        (ip("198.18.1.11"), 8080),
        (ip("198.18.9.1"), lport),
        SYNACK,
        b"",
    );
    let r = replay(&cfg, &[(1.0, syn), (1.001, reply)], &[]);
    assert_eq!(r.summary(), (2, 2, 0, 0));
    let b = emitted(&r.out[1].1);
    assert_eq!((b.src, b.sport), (ip(VIP), 80));
    assert_eq!((b.dst, b.dport), (ip(c), 40009));
    assert_eq!(b.dmac, CLIENT_MAC);
}

#[test]
fn fullnat_ipv6() {
    let cfg = config(&format!(
        r#"[[virtual_server]]
address = "[{VIP6}]:80"
protocol = "TCP"
lb_algo = "wlc"
lb_kind = "FULLNAT"
local_address = ["2001:2::9:1"]
  [[virtual_server.real_server]]
  address = "[2001:2::1:11]:80"
  mac = "{}"
"#,
        rs_mac_str(11)
    ));
    let syn = tcp("2001:2::100:1", 40010, VIP6, 80, SYN);
    let r = replay(&cfg, &[(1.0, syn)], &[]);
    let f = emitted(&r.out[0].1);
    assert_eq!(f.src, ip("2001:2::9:1"));
    assert_eq!(f.dst, ip("2001:2::1:11"));
}

#[test]
fn tun_encapsulates_ipip_carrying_ttl_and_dscp() {
    let cfg = rs3("TUN", 80);
    let mut syn = tcp("198.18.100.2", 40002, VIP, 80, SYN);
    // DSCP AF41 + ECT(0), TTL 37; fix the header checksum by rebuilding.
    syn[14 + 1] = 0x8a;
    syn[14 + 8] = 37;
    syn[14 + 10] = 0;
    syn[14 + 11] = 0;
    let ck = !naive_sum(&[&syn[14..34]]);
    syn[14 + 10..14 + 12].copy_from_slice(&ck.to_be_bytes());
    let r = replay(&cfg, &[(1.0, syn.clone())], &["--ip", "198.18.0.2"]);
    assert_eq!(r.summary(), (1, 1, 0, 0));
    let e = emitted(&r.out[0].1);
    assert_eq!(e.proto, 4, "IPIP");
    assert_eq!(e.src, ip("198.18.0.2"));
    assert_eq!(e.dst, ip("198.18.1.13"));
    assert_eq!(e.ttl, 36, "inner TTL less one, carried to the outer header");
    assert_eq!(e.tos, 0x8a);
    assert_eq!(e.dmac, rs_mac(13));
    let inner = &e.ip[20..];
    assert_eq!(inner[8], 36);
    assert_eq!(
        &inner[..8],
        &syn[14..14 + 8],
        "inner packet carried unchanged"
    );
    assert_eq!(
        &inner[12..],
        &syn[14 + 12..],
        "inner packet carried unchanged"
    );
}

#[test]
fn tun_ipv6_in_ipv6() {
    let cfg = config(&format!(
        r#"[[virtual_server]]
address = "[{VIP6}]:80"
protocol = "TCP"
lb_kind = "TUN"
  [[virtual_server.real_server]]
  address = "[2001:2::1:11]:80"
  mac = "{}"
"#,
        rs_mac_str(11)
    ));
    let syn = tcp("2001:2::100:1", 40003, VIP6, 80, SYN);
    let r = replay(&cfg, &[(1.0, syn.clone())], &["--ip", "2001:2::2"]);
    let e = emitted(&r.out[0].1);
    assert_eq!(e.proto, 41);
    assert_eq!(e.src, ip("2001:2::2"));
    assert_eq!(e.dst, ip("2001:2::1:11"));
    assert_eq!(e.ttl, 63);
    assert_eq!(&e.ip[40..40 + 7], &syn[14..14 + 7]);
    assert_eq!(
        &e.ip[40 + 8..],
        &syn[14 + 8..],
        "only the hop limit changes"
    );
}

#[test]
fn tun_too_big_with_df_answers_frag_needed_to_the_client() {
    let cfg = rs3("TUN", 80);
    // 1500-byte IP packet with DF: 20 more bytes of IPIP exceed MTU 1500.
    let payload = vec![0x55u8; 1500 - 20 - 20];
    let big = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC,
        (ip("198.18.100.3"), 40004),
        (ip(VIP), 80),
        PSHACK,
        &payload,
    );
    assert_eq!(big.len(), 14 + 1500);
    assert_eq!(big[14 + 6] & 0x40, 0x40, "etherparse sets DF by default");
    let syn = tcp("198.18.100.3", 40004, VIP, 80, SYN);
    let r = replay(&cfg, &[(1.0, syn), (1.1, big)], &["--ip", "198.18.0.2"]);
    assert_eq!(r.summary(), (2, 2, 0, 0));
    let icmp = emitted(&r.out[1].1);
    assert_eq!(icmp.proto, 1);
    assert_eq!(icmp.src, ip(VIP));
    assert_eq!(icmp.dst, ip("198.18.100.3"));
    assert_eq!(icmp.dmac, CLIENT_MAC);
    let l4 = &icmp.ip[20..];
    assert_eq!((l4[0], l4[1]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([l4[6], l4[7]]), 1480, "next-hop MTU");
}

#[test]
fn frames_not_for_a_service_go_to_the_kernel() {
    let arp: Vec<u8> = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[198, 18, 100, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 250]);
        f
    };
    let other_port = tcp("198.18.100.1", 40001, VIP, 22, SYN);
    let to_director = tcp("198.18.100.1", 40001, "198.18.0.2", 80, SYN);
    let r = replay(
        &rs3("DR", 80),
        &[
            (1.0, arp.clone()),
            (1.1, other_port.clone()),
            (1.2, to_director.clone()),
        ],
        &[],
    );
    assert_eq!(r.summary(), (3, 0, 3, 0));
    assert_eq!(r.pass.len(), 3);
    assert_eq!(r.pass[0].1, arp);
    assert_eq!(r.pass[1].1, other_port);
    assert_eq!(r.pass[2].1, to_director);
}

#[test]
fn vlan_tag_is_kept() {
    let mut syn = tcp("198.18.100.1", 40001, VIP, 80, SYN);
    syn.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
    let r = replay(&rs3("NAT", 80), &[(1.0, syn)], &[]);
    assert_eq!(r.summary(), (1, 1, 0, 0));
    let e = emitted(&r.out[0].1);
    assert_eq!(e.vlan, Some(100));
    assert_eq!(e.dst, ip("198.18.1.13"));
}

#[test]
fn icmp_port_unreachable_from_a_nat_real_server_reaches_the_client() {
    let cfg = rs3("NAT", 8080);
    let c = "198.18.100.4";
    let syn = tcp(c, 40020, VIP, 80, SYN);
    let r0 = replay(&cfg, &[(1.0, syn.clone())], &[]);
    // What the real server received: quote it in a port unreachable.
    let to_rs = &r0.out[0].1[14..];
    let mut icmp = Vec::new();
    etherparse::PacketBuilder::ethernet2(rs_mac(13), DIRECTOR_MAC)
        .ipv4([198, 18, 1, 13], [198, 18, 100, 4], 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut icmp, &to_rs[..28])
        .unwrap();
    let r = replay(&cfg, &[(1.0, syn), (1.2, icmp)], &[]);
    assert_eq!(r.summary(), (2, 2, 0, 0));
    let e = emitted(&r.out[1].1);
    assert_eq!(e.proto, 1);
    assert_eq!(e.src, ip(VIP), "the error appears to come from the VIP");
    assert_eq!(e.dst, ip(c));
    assert_eq!(e.dmac, CLIENT_MAC);
    let inner = &e.ip[28..];
    assert_eq!(
        &inner[16..20],
        &[198, 18, 0, 250],
        "quoted destination is the VIP again"
    );
    assert_eq!(
        u16::from_be_bytes([inner[22], inner[23]]),
        80,
        "quoted port is vport"
    );
    assert_eq!(
        naive_sum(&[&inner[..20]]),
        0xffff,
        "quoted header checksum fixed"
    );
}

#[test]
fn icmp_frag_needed_from_a_router_reaches_the_nat_real_server() {
    let cfg = rs3("NAT", 8080);
    let c = "198.18.100.5";
    let syn = tcp(c, 40021, VIP, 80, SYN);
    // The director's reply VIP:80 -> client, as the client side saw it.
    let reply_seen = tcp_frame(
        DIRECTOR_MAC,
        CLIENT_MAC,
        (ip(VIP), 80),
        (ip(c), 40021),
        SYNACK,
        b"",
    );
    let mut icmp = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4([198, 18, 200, 1], [198, 18, 0, 250], 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut icmp, &reply_seen[14..14 + 28])
        .unwrap();
    let r = replay(&cfg, &[(1.0, syn), (1.1, icmp)], &[]);
    assert_eq!(r.summary(), (2, 2, 0, 0));
    let e = emitted(&r.out[1].1);
    assert_eq!(e.dst, ip("198.18.1.13"));
    assert_eq!(e.dmac, rs_mac(13));
    let inner = &e.ip[28..];
    assert_eq!(
        &inner[12..16],
        &[198, 18, 1, 13],
        "quoted source is the real server"
    );
    assert_eq!(u16::from_be_bytes([inner[20], inner[21]]), 8080);
}

#[test]
fn a_local_real_server_gets_its_packets_in_the_pass_capture_untouched() {
    // Seed 001's sorry server on the director itself (127.0.0.1), and a
    // real server at the NIC's own address (--ip): both IPVS Local.
    let cfg = config(&format!(
        "[[virtual_server]]\naddress = \"{VIP}:80\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\n\
         lb_kind = \"NAT\"\n\n  [[virtual_server.real_server]]\n  address = \"127.0.0.1:80\"\n\n\
         [[virtual_server]]\naddress = \"{VIP}:81\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\n\
         lb_kind = \"DR\"\n\n  [[virtual_server.real_server]]\n  address = \"198.18.0.2:81\"\n"
    ));
    let syn = tcp("198.18.100.1", 40001, VIP, 80, SYN);
    let ack = tcp("198.18.100.1", 40001, VIP, 80, ACK);
    let syn81 = tcp("198.18.100.1", 40002, VIP, 81, SYN);
    let r = replay(
        &cfg,
        &[(1.0, syn.clone()), (1.1, ack.clone()), (1.2, syn81.clone())],
        &["--ip", "198.18.0.2", "--dump-conns", "--stats"],
    );
    assert_eq!(r.summary(), (3, 0, 3, 0), "{}", r.stderr);
    assert_eq!(r.kernel("local"), 3, "{}", r.stderr);
    let passed: Vec<&Vec<u8>> = r.pass.iter().map(|(_, f)| f).collect();
    assert_eq!(passed, [&syn, &ack, &syn81], "handed over as received");
    let rows = conn_rows(&r.stdout);
    assert_eq!(rows.len(), 2, "{}", r.stdout);
    assert!(
        rows.iter().any(|c| c.dest == "127.0.0.1:80"),
        "{}",
        r.stdout
    );
    assert!(
        rows.iter().any(|c| c.dest == "198.18.0.2:81"),
        "{}",
        r.stdout
    );
}
