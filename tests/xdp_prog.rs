//! lvsfwd's XDP program decision by decision, through BPF_PROG_TEST_RUN
//! over crafted frames: no interface, no socket. Without a socket in the
//! XSKMAP every redirect falls back to XDP_PASS, so the decision is read
//! from the program's counters (and `redirect_failed` must follow every
//! redirect decision). Needs root: these tests fail, not skip, without it.
#![forbid(unsafe_code)]

use std::net::IpAddr;

use etherparse::{IpNumber, PacketBuilder, VlanId};
use lvsfwd::sched::SchedKind;
use lvsfwd::service::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};
use lvsfwd::xsk::prog::{Filter, ProgCounters, XdpObject};

const XDP_PASS: u32 = 2;

const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
const MAC_D: [u8; 6] = [0x02, 0, 0, 0, 0, 0xd1];

const CLIENT: [u8; 4] = [198, 18, 3, 5];
const VIP: [u8; 4] = [198, 18, 0, 10];
const VIP_ANYPORT: [u8; 4] = [198, 18, 0, 11];
const OWN: [u8; 4] = [198, 18, 0, 2];
const NAT_RS: [u8; 4] = [198, 18, 1, 21];
const DR_RS: [u8; 4] = [198, 18, 1, 31];
const LOCAL: [u8; 4] = [198, 18, 2, 1];
const OTHER: [u8; 4] = [198, 18, 9, 9];

const CLIENT6: &str = "2001:2:0:3::5";
const VIP6: &str = "2001:2::10";
const OWN6: &str = "2001:2::2";
const NAT_RS6: &str = "2001:2:0:1::21";
const LOCAL6: &str = "2001:2:0:2::1";

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Decision {
    Service,
    Reply,
    Icmp,
    Fragment,
    Pass,
}

fn assert_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap();
    assert_eq!(uid, "0", "XDP program tests need root (BPF_PROG_TEST_RUN)");
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dest(addr: &str, port: u16, fwd: FwdMethod) -> DestSpec {
    DestSpec::new(ip(addr), port, fwd)
}

fn spec(proto: Protocol, vip: &str, port: u16, dests: Vec<DestSpec>) -> ServiceSpec {
    let key = ServiceKey {
        proto,
        addr: ip(vip),
        port,
        fwmark: 0,
    };
    ServiceSpec::new(key, SchedKind::Rr, dests)
}

/// The configuration every test starts from.
fn specs() -> Vec<ServiceSpec> {
    let mut full = spec(
        Protocol::Tcp,
        "198.18.0.12",
        443,
        vec![dest("198.18.1.41", 8443, FwdMethod::FullNat)],
    );
    full.local_addrs = vec![ip("198.18.2.1")];
    let mut full6 = spec(
        Protocol::Tcp,
        "2001:2::12",
        443,
        vec![dest("2001:2:0:1::41", 8443, FwdMethod::FullNat)],
    );
    full6.local_addrs = vec![ip(LOCAL6)];
    vec![
        spec(
            Protocol::Tcp,
            "198.18.0.10",
            80,
            vec![
                dest("198.18.1.21", 8080, FwdMethod::Masq),
                dest("198.18.1.31", 80, FwdMethod::Route),
            ],
        ),
        spec(
            Protocol::Udp,
            "198.18.0.10",
            53,
            vec![dest("198.18.1.31", 53, FwdMethod::Route)],
        ),
        spec(
            Protocol::Tcp,
            "198.18.0.11",
            0,
            vec![dest("198.18.1.22", 0, FwdMethod::Masq)],
        ),
        spec(
            Protocol::Tcp,
            VIP6,
            443,
            vec![dest("2001:2:0:1::31", 443, FwdMethod::Route)],
        ),
        spec(
            Protocol::Udp,
            VIP6,
            53,
            vec![dest(NAT_RS6, 5353, FwdMethod::Masq)],
        ),
        full,
        full6,
    ]
}

fn own() -> Vec<IpAddr> {
    vec![ip("198.18.0.2"), ip(OWN6)]
}

fn loaded() -> XdpObject {
    assert_root();
    let mut obj = XdpObject::load().expect("load the XDP program");
    obj.set_filter(&Filter::from_specs(&specs(), &own()))
        .unwrap();
    obj
}

/// Runs `frame` through the program once and names the counter that moved.
fn decide(obj: &XdpObject, frame: &[u8]) -> Decision {
    let before = obj.counters().unwrap();
    let act = obj.test_run(frame).unwrap();
    let after = obj.counters().unwrap();
    assert_eq!(act, XDP_PASS, "no socket: every frame ends up passed");
    let d = ProgCounters {
        redirected_service: after.redirected_service - before.redirected_service,
        redirected_reply: after.redirected_reply - before.redirected_reply,
        redirected_icmp: after.redirected_icmp - before.redirected_icmp,
        redirected_fragment: after.redirected_fragment - before.redirected_fragment,
        passed: after.passed - before.passed,
        redirect_failed: after.redirect_failed - before.redirect_failed,
    };
    let moved = [
        (d.redirected_service, Decision::Service),
        (d.redirected_reply, Decision::Reply),
        (d.redirected_icmp, Decision::Icmp),
        (d.redirected_fragment, Decision::Fragment),
        (d.passed, Decision::Pass),
    ];
    let hits: Vec<Decision> = moved
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|&(n, dec)| {
            assert_eq!(n, 1, "one frame, one count: {d:?}");
            dec
        })
        .collect();
    assert_eq!(hits.len(), 1, "exactly one decision per frame: {d:?}");
    let expect_failed = u64::from(hits[0] != Decision::Pass);
    assert_eq!(
        d.redirect_failed, expect_failed,
        "a redirect without a socket is counted as failed: {d:?}"
    );
    hits[0]
}

fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64240)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn synack4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 5000, 64240)
        .syn()
        .ack(1001);
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, b"query").unwrap();
    v
}

fn tcp6(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv6(v6(src), v6(dst), 64)
        .tcp(sport, dport, 1000, 64240)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn udp6(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv6(v6(src), v6(dst), 64)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, b"query").unwrap();
    v
}

/// The first 28 bytes of an IPv4/TCP packet, as an ICMP error quotes it.
fn quote4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, 1000, 64240);
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v.truncate(28);
    v
}

fn icmp4(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, quote: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv4(src, dst, 64)
        .icmpv4_raw(ty, code, [0; 4]);
    let mut v = Vec::new();
    b.write(&mut v, quote).unwrap();
    v
}

fn icmp6(src: &str, dst: &str, ty: u8, code: u8, quote: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .ipv6(v6(src), v6(dst), 64)
        .icmpv6_raw(ty, code, [0; 4]);
    let mut v = Vec::new();
    b.write(&mut v, quote).unwrap();
    v
}

/// The first 48 bytes of an IPv6/TCP packet, as an ICMPv6 error quotes it.
fn quote6(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ipv6(v6(src), v6(dst), 64).tcp(sport, dport, 1000, 64240);
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v.truncate(48);
    v
}

/// The Internet checksum of an IPv4 header, recomputed after a test edits it.
fn fix_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let hlen = usize::from(frame[l3] & 0x0f) * 4;
    frame[l3 + 10] = 0;
    frame[l3 + 11] = 0;
    let mut sum: u32 = 0;
    for c in frame[l3..l3 + hlen].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !(sum as u16);
    frame[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
}

/// Sets the IPv4 flags + fragment offset field (offset in 8-byte units).
fn set_frag4(mut frame: Vec<u8>, more: bool, offset: u16, df: bool) -> Vec<u8> {
    let v = (offset & 0x1fff) | if more { 0x2000 } else { 0 } | if df { 0x4000 } else { 0 };
    frame[14 + 6..14 + 8].copy_from_slice(&v.to_be_bytes());
    fix_ipv4_checksum(&mut frame, 14);
    frame
}

/// Inserts `words` 32-bit NOP option words into the IPv4 header (IHL grows).
fn with_ipv4_options(mut frame: Vec<u8>, words: usize) -> Vec<u8> {
    let l3 = 14;
    let at = l3 + 20;
    frame.splice(at..at, std::iter::repeat_n(1u8, words * 4));
    frame[l3] = 0x40 | (5 + words as u8);
    let total = u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]) + (words * 4) as u16;
    frame[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(&mut frame, l3);
    frame
}

/// Inserts an IPv6 extension header right after the fixed header: `ext` is
/// the header without its next-header byte, which is taken from the chain.
fn with_v6_ext(mut frame: Vec<u8>, ext_type: u8, ext: &[u8]) -> Vec<u8> {
    let l3 = 14;
    let prev_next = frame[l3 + 6];
    frame[l3 + 6] = ext_type;
    let mut h = vec![prev_next];
    h.extend_from_slice(ext);
    let at = l3 + 40;
    let len = h.len();
    frame.splice(at..at, h);
    let plen = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]) + len as u16;
    frame[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
    frame
}

/// 8-byte options header (hop-by-hop / destination options): PadN.
fn opts8() -> Vec<u8> {
    vec![0, 1, 4, 0, 0, 0, 0]
}

/// 24-byte type-0-style routing header with one address, segments left 0.
fn routing24() -> Vec<u8> {
    let mut h = vec![2, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&v6("2001:2::99"));
    h
}

/// 8-byte fragment header: offset in 8-byte units, M flag.
fn frag6(offset: u16, more: bool) -> Vec<u8> {
    let v = (offset << 3) | u16::from(more);
    let mut h = vec![0];
    h.extend_from_slice(&v.to_be_bytes());
    h.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    h
}

fn vlan(single: bool, frame: Vec<u8>) -> Vec<u8> {
    // Re-tag an untagged frame: ethertype moves behind the tags.
    let mut out = frame[..12].to_vec();
    if single {
        out.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    } else {
        out.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64]);
        out.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    }
    out.extend_from_slice(&frame[12..]);
    out
}

fn arp_request(spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&[0xff; 6]);
    v.extend_from_slice(&MAC_C);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    v.extend_from_slice(&MAC_C);
    v.extend_from_slice(&spa);
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&tpa);
    v
}

#[test]
fn tcp_and_udp_to_a_virtual_service_are_redirected() {
    let obj = loaded();
    assert_eq!(
        decide(&obj, &tcp4(CLIENT, 40000, VIP, 80)),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &udp4(CLIENT, 40000, VIP, 53)),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &tcp6(CLIENT6, 40000, VIP6, 443)),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &udp6(CLIENT6, 40000, VIP6, 53)),
        Decision::Service
    );
    // The VIP's other ports and protocols are not services.
    assert_eq!(decide(&obj, &tcp4(CLIENT, 40000, VIP, 22)), Decision::Pass);
    assert_eq!(decide(&obj, &udp4(CLIENT, 40000, VIP, 80)), Decision::Pass);
    assert_eq!(decide(&obj, &tcp4(CLIENT, 40000, VIP, 53)), Decision::Pass);
    assert_eq!(
        decide(&obj, &tcp6(CLIENT6, 40000, VIP6, 22)),
        Decision::Pass
    );
}

#[test]
fn a_port_zero_service_takes_every_port_of_its_protocol() {
    let obj = loaded();
    for port in [1, 22, 80, 65535] {
        assert_eq!(
            decide(&obj, &tcp4(CLIENT, 40000, VIP_ANYPORT, port)),
            Decision::Service,
            "port {port}"
        );
    }
    assert_eq!(
        decide(&obj, &udp4(CLIENT, 40000, VIP_ANYPORT, 53)),
        Decision::Pass
    );
}

#[test]
fn the_directors_own_traffic_goes_to_the_kernel() {
    let obj = loaded();
    // ARP for the VIP and for the director; VRRP adverts; SSH; ping.
    assert_eq!(decide(&obj, &arp_request(CLIENT, VIP)), Decision::Pass);
    assert_eq!(decide(&obj, &arp_request(CLIENT, OWN)), Decision::Pass);
    let vrrp = {
        let b = PacketBuilder::ethernet2(MAC_C, [0x01, 0, 0x5e, 0, 0, 0x12]).ipv4(
            [198, 18, 0, 3],
            [224, 0, 0, 18],
            255,
        );
        let mut v = Vec::new();
        b.write(
            &mut v,
            IpNumber(112),
            &[0x21, 51, 100, 1, 0, 1, 0, 0, 198, 18, 0, 10],
        )
        .unwrap();
        v
    };
    assert_eq!(decide(&obj, &vrrp), Decision::Pass);
    assert_eq!(decide(&obj, &tcp4(CLIENT, 40000, OWN, 22)), Decision::Pass);
    assert_eq!(
        decide(&obj, &tcp6(CLIENT6, 40000, OWN6, 22)),
        Decision::Pass
    );
    let ping = icmp4(CLIENT, VIP, 8, 0, b"abcdefgh");
    assert_eq!(decide(&obj, &ping), Decision::Pass, "echo to a VIP");
    assert_eq!(
        decide(&obj, &icmp4(CLIENT, OWN, 8, 0, b"x")),
        Decision::Pass
    );
    assert_eq!(
        decide(&obj, &icmp6(CLIENT6, VIP6, 128, 0, b"x")),
        Decision::Pass
    );
    // Neighbour solicitation for a VIP (unicast NUD probe).
    let mut ns = vec![0u8; 4];
    ns.extend_from_slice(&v6(VIP6));
    assert_eq!(
        decide(&obj, &icmp6(CLIENT6, VIP6, 135, 0, &ns)),
        Decision::Pass
    );
    // Unrelated traffic crossing the NIC.
    assert_eq!(
        decide(&obj, &tcp4(CLIENT, 40000, OTHER, 80)),
        Decision::Pass
    );
}

#[test]
fn nat_replies_are_redirected_unless_addressed_to_the_director() {
    let obj = loaded();
    // A NAT real server's reply to a client.
    assert_eq!(
        decide(&obj, &synack4(NAT_RS, 8080, CLIENT, 40000)),
        Decision::Reply
    );
    // The same server answering the director's health check.
    assert_eq!(
        decide(&obj, &synack4(NAT_RS, 8080, OWN, 51000)),
        Decision::Pass
    );
    // Another port of that server (its SSH, say) is not a real server.
    assert_eq!(
        decide(&obj, &synack4(NAT_RS, 22, CLIENT, 40000)),
        Decision::Pass
    );
    // Protocol matters: UDP from the TCP real server's port.
    assert_eq!(
        decide(&obj, &udp4(NAT_RS, 8080, CLIENT, 40000)),
        Decision::Pass
    );
    // DR real servers answer clients directly, never through us.
    assert_eq!(
        decide(&obj, &synack4(DR_RS, 80, CLIENT, 40000)),
        Decision::Pass
    );
    // A port-0 NAT real server answers from any port.
    assert_eq!(
        decide(&obj, &synack4([198, 18, 1, 22], 3306, CLIENT, 40000)),
        Decision::Reply
    );
    // IPv6 UDP NAT reply; and to the director's own v6 address.
    assert_eq!(
        decide(&obj, &udp6(NAT_RS6, 5353, CLIENT6, 40000)),
        Decision::Reply
    );
    assert_eq!(
        decide(&obj, &udp6(NAT_RS6, 5353, OWN6, 40000)),
        Decision::Pass
    );
}

#[test]
fn anything_to_a_fullnat_local_address_is_redirected() {
    let obj = loaded();
    assert_eq!(
        decide(&obj, &synack4([198, 18, 1, 41], 8443, LOCAL, 5000)),
        Decision::Reply
    );
    assert_eq!(decide(&obj, &udp4(OTHER, 53, LOCAL, 5000)), Decision::Reply);
    assert_eq!(
        decide(&obj, &tcp6("2001:2:0:1::41", 8443, LOCAL6, 5000)),
        Decision::Reply
    );
    let q = quote4(LOCAL, 5000, [198, 18, 1, 41], 8443);
    assert_eq!(decide(&obj, &icmp4(OTHER, LOCAL, 3, 1, &q)), Decision::Icmp);
    // Echo to a local address is not the balancer's.
    assert_eq!(
        decide(&obj, &icmp4(OTHER, LOCAL, 8, 0, b"x")),
        Decision::Pass
    );
}

#[test]
fn icmp_errors_about_balanced_traffic_are_redirected() {
    let obj = loaded();
    let q = quote4(VIP, 80, CLIENT, 40000);
    for ty in [3u8, 11, 12] {
        assert_eq!(
            decide(&obj, &icmp4(OTHER, VIP, ty, 0, &q)),
            Decision::Icmp,
            "type {ty}"
        );
    }
    // Not errors: echo reply, redirect, timestamp.
    for ty in [0u8, 5, 13] {
        assert_eq!(
            decide(&obj, &icmp4(OTHER, VIP, ty, 0, &q)),
            Decision::Pass,
            "type {ty}"
        );
    }
    // From a NAT real server to a client (it quotes our packet to it).
    let qrs = quote4(CLIENT, 40000, NAT_RS, 8080);
    assert_eq!(
        decide(&obj, &icmp4(NAT_RS, CLIENT, 3, 3, &qrs)),
        Decision::Icmp
    );
    // To the director itself (about a health check): the kernel's.
    let qhc = quote4(OWN, 51000, NAT_RS, 8080);
    assert_eq!(
        decide(&obj, &icmp4(NAT_RS, OWN, 3, 3, &qhc)),
        Decision::Pass
    );
    // An error between two unrelated hosts.
    assert_eq!(
        decide(&obj, &icmp4(OTHER, CLIENT, 3, 1, &q)),
        Decision::Pass
    );

    let q6 = quote6(VIP6, 443, CLIENT6, 40000);
    for ty in [1u8, 2, 3, 4] {
        assert_eq!(
            decide(&obj, &icmp6(CLIENT6, VIP6, ty, 0, &q6)),
            Decision::Icmp,
            "v6 type {ty}"
        );
    }
    for ty in [129u8, 134, 136] {
        assert_eq!(
            decide(&obj, &icmp6(CLIENT6, VIP6, ty, 0, &q6)),
            Decision::Pass,
            "v6 type {ty}"
        );
    }
    let q6rs = quote6(CLIENT6, 40000, NAT_RS6, 5353);
    assert_eq!(
        decide(&obj, &icmp6(NAT_RS6, CLIENT6, 1, 4, &q6rs)),
        Decision::Icmp
    );
    assert_eq!(
        decide(&obj, &icmp6(NAT_RS6, OWN6, 1, 4, &q6rs)),
        Decision::Pass
    );
    assert_eq!(
        decide(&obj, &icmp6(LOCAL6, CLIENT6, 1, 4, &q6rs)),
        Decision::Pass
    );
}

#[test]
fn ipv4_fragments_to_a_vip_or_local_address_are_redirected() {
    let obj = loaded();
    let first = set_frag4(udp4(CLIENT, 40000, VIP, 53), true, 0, false);
    assert_eq!(decide(&obj, &first), Decision::Fragment);
    let later = set_frag4(udp4(CLIENT, 40000, VIP, 53), false, 185, false);
    assert_eq!(decide(&obj, &later), Decision::Fragment);
    // A VIP port that is no service: still a fragment to a VIP.
    let other_port = set_frag4(udp4(CLIENT, 40000, VIP, 9999), true, 0, false);
    assert_eq!(decide(&obj, &other_port), Decision::Fragment);
    let to_local = set_frag4(udp4(OTHER, 53, LOCAL, 5000), false, 3, true);
    assert_eq!(decide(&obj, &to_local), Decision::Fragment);
    // Fragments of the director's own traffic are the kernel's.
    let own_frag = set_frag4(udp4(CLIENT, 40000, OWN, 53), false, 185, false);
    assert_eq!(decide(&obj, &own_frag), Decision::Pass);
    // Every fragment of a NAT real server's packet to an address not the
    // director's own (a reply: the data plane reassembles it, as IPVS
    // behind nf_defrag), the later pieces too, which have no ports.
    let rs_later = set_frag4(synack4(NAT_RS, 8080, CLIENT, 40000), false, 185, false);
    assert_eq!(decide(&obj, &rs_later), Decision::Fragment);
    let rs_to_own = set_frag4(synack4(NAT_RS, 8080, OWN, 40000), false, 185, false);
    assert_eq!(decide(&obj, &rs_to_own), Decision::Pass);
    // DF alone is not a fragment.
    let df = set_frag4(tcp4(CLIENT, 40000, VIP, 80), false, 0, true);
    assert_eq!(decide(&obj, &df), Decision::Service);
}

#[test]
fn ipv4_headers_of_any_length_are_parsed() {
    let obj = loaded();
    for words in [1, 4, 10] {
        let f = with_ipv4_options(tcp4(CLIENT, 40000, VIP, 80), words);
        assert_eq!(decide(&obj, &f), Decision::Service, "IHL {}", 5 + words);
        let g = with_ipv4_options(tcp4(CLIENT, 40000, VIP, 22), words);
        assert_eq!(decide(&obj, &g), Decision::Pass, "IHL {}", 5 + words);
    }
    // IHL below 5 is malformed.
    let mut bad = tcp4(CLIENT, 40000, VIP, 80);
    bad[14] = 0x44;
    assert_eq!(decide(&obj, &bad), Decision::Pass);
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let obj = loaded();
    let base = || tcp6(CLIENT6, 40000, VIP6, 443);
    let hbh = with_v6_ext(base(), 0, &opts8());
    assert_eq!(decide(&obj, &hbh), Decision::Service, "hop-by-hop");
    let dst_rt = with_v6_ext(with_v6_ext(base(), 60, &opts8()), 43, &routing24());
    assert_eq!(
        decide(&obj, &dst_rt),
        Decision::Service,
        "routing + dest-opts"
    );
    let three = with_v6_ext(
        with_v6_ext(with_v6_ext(base(), 60, &opts8()), 43, &routing24()),
        0,
        &opts8(),
    );
    assert_eq!(
        decide(&obj, &three),
        Decision::Service,
        "hbh + routing + dest-opts"
    );
    // An atomic fragment (offset 0, no M) is a whole packet.
    let atomic = with_v6_ext(base(), 44, &frag6(0, false));
    assert_eq!(decide(&obj, &atomic), Decision::Service, "atomic fragment");
    let four = with_v6_ext(three.clone(), 44, &frag6(0, false));
    assert_eq!(
        decide(&obj, &four),
        Decision::Service,
        "four extension headers"
    );
    // A fifth header is beyond the program's bound: not classified.
    let five = with_v6_ext(four, 60, &opts8());
    assert_eq!(
        decide(&obj, &five),
        Decision::Pass,
        "five extension headers"
    );
    // Extension headers before a port that is not a service.
    let ssh = with_v6_ext(tcp6(CLIENT6, 40000, OWN6, 22), 0, &opts8());
    assert_eq!(decide(&obj, &ssh), Decision::Pass);
}

#[test]
fn ipv6_fragments_to_a_vip_or_local_address_are_redirected() {
    let obj = loaded();
    let first = with_v6_ext(udp6(CLIENT6, 40000, VIP6, 53), 44, &frag6(0, true));
    assert_eq!(decide(&obj, &first), Decision::Fragment);
    let later = with_v6_ext(udp6(CLIENT6, 40000, VIP6, 53), 44, &frag6(100, false));
    assert_eq!(decide(&obj, &later), Decision::Fragment);
    let behind_hbh = with_v6_ext(
        with_v6_ext(udp6(CLIENT6, 40000, VIP6, 53), 44, &frag6(100, true)),
        0,
        &opts8(),
    );
    assert_eq!(decide(&obj, &behind_hbh), Decision::Fragment);
    let to_local = with_v6_ext(udp6(CLIENT6, 40000, LOCAL6, 53), 44, &frag6(7, false));
    assert_eq!(decide(&obj, &to_local), Decision::Fragment);
    let to_own = with_v6_ext(udp6(CLIENT6, 40000, OWN6, 53), 44, &frag6(7, true));
    assert_eq!(decide(&obj, &to_own), Decision::Pass);
}

#[test]
fn vlan_tagged_frames_are_classified_by_their_payload() {
    let obj = loaded();
    assert_eq!(
        decide(&obj, &vlan(true, tcp4(CLIENT, 40000, VIP, 80))),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &vlan(false, tcp4(CLIENT, 40000, VIP, 80))),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &vlan(false, tcp6(CLIENT6, 40000, VIP6, 443))),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &vlan(true, tcp4(CLIENT, 40000, OWN, 22))),
        Decision::Pass
    );
    assert_eq!(
        decide(&obj, &vlan(true, synack4(NAT_RS, 8080, CLIENT, 40000))),
        Decision::Reply
    );
    // Three tags are beyond the program's bound.
    let three = vlan(true, vlan(false, tcp4(CLIENT, 40000, VIP, 80)));
    assert_eq!(decide(&obj, &three), Decision::Pass);
    // Built by etherparse's own VLAN support, too.
    let b = PacketBuilder::ethernet2(MAC_C, MAC_D)
        .single_vlan(VlanId::try_new(42).unwrap())
        .ipv4(CLIENT, VIP, 64)
        .udp(40000, 53);
    let mut v = Vec::new();
    b.write(&mut v, b"q").unwrap();
    assert_eq!(decide(&obj, &v), Decision::Service);
}

#[test]
fn truncated_frames_are_passed() {
    let obj = loaded();
    let frames = [
        (tcp4(CLIENT, 40000, VIP, 80), 14 + 20 + 20),
        (udp4(CLIENT, 40000, VIP, 53), 14 + 20 + 8),
        (tcp6(CLIENT6, 40000, VIP6, 443), 14 + 40 + 20),
        (vlan(false, tcp4(CLIENT, 40000, VIP, 80)), 22 + 20 + 20),
        (
            with_ipv4_options(tcp4(CLIENT, 40000, VIP, 80), 10),
            14 + 60 + 20,
        ),
        (
            with_v6_ext(
                with_v6_ext(tcp6(CLIENT6, 40000, VIP6, 443), 43, &routing24()),
                0,
                &opts8(),
            ),
            14 + 40 + 8 + 24 + 20,
        ),
        (
            icmp4(OTHER, VIP, 3, 1, &quote4(VIP, 80, CLIENT, 40000)),
            14 + 20 + 8,
        ),
    ];
    // The kernel's test runner refuses frames shorter than an Ethernet
    // header; from there on, every cut short of the headers the decision
    // needs is passed, and the full headers are classified.
    for (frame, needed) in frames {
        for len in 14..=frame.len() {
            let d = decide(&obj, &frame[..len]);
            if len < needed {
                assert_eq!(d, Decision::Pass, "cut at {len} of {}", frame.len());
            } else {
                assert_ne!(d, Decision::Pass, "cut at {len} of {}", frame.len());
            }
        }
    }
}

#[test]
fn set_filter_adds_and_removes_exactly() {
    assert_root();
    let mut obj = XdpObject::load().unwrap();
    // Empty maps: nothing is redirected.
    assert_eq!(decide(&obj, &tcp4(CLIENT, 40000, VIP, 80)), Decision::Pass);
    obj.set_filter(&Filter::from_specs(&specs(), &own()))
        .unwrap();
    assert_eq!(
        decide(&obj, &tcp4(CLIENT, 40000, VIP, 80)),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &synack4(NAT_RS, 8080, CLIENT, 1)),
        Decision::Reply
    );

    // Drop the TCP/80 service (and its NAT server); make 198.18.0.2 no
    // longer own, and 198.18.9.9 a VIP with TCP/80.
    let mut s = specs();
    s.remove(0);
    s.push(spec(Protocol::Tcp, "198.18.9.9", 80, vec![]));
    obj.set_filter(&Filter::from_specs(&s, &[ip(OWN6)]))
        .unwrap();
    assert_eq!(decide(&obj, &tcp4(CLIENT, 40000, VIP, 80)), Decision::Pass);
    assert_eq!(
        decide(&obj, &udp4(CLIENT, 40000, VIP, 53)),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &tcp4(CLIENT, 40000, OTHER, 80)),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &synack4(NAT_RS, 8080, CLIENT, 1)),
        Decision::Pass
    );
    // A role change on a kept address is an in-place update: the UDP VIP
    // stays a VIP.
    let frag = set_frag4(udp4(CLIENT, 40000, VIP, 53), false, 9, false);
    assert_eq!(decide(&obj, &frag), Decision::Fragment);

    // Back to empty.
    obj.set_filter(&Filter::default()).unwrap();
    for f in [
        tcp4(CLIENT, 40000, OTHER, 80),
        udp4(CLIENT, 40000, VIP, 53),
        udp6(NAT_RS6, 5353, CLIENT6, 1),
        tcp4(OTHER, 1, LOCAL, 2),
        frag,
    ] {
        assert_eq!(decide(&obj, &f), Decision::Pass);
    }
}

#[test]
fn set_filter_refuses_what_does_not_fit_and_keeps_the_old_filter() {
    let mut obj = loaded();
    let mut big = Filter::from_specs(&specs(), &own());
    big.services = (0..5000u32)
        .map(|i| {
            let a = std::net::Ipv4Addr::from(u32::from_be_bytes([198, 19, 0, 0]) + i);
            (Protocol::Tcp, IpAddr::V4(a), 80)
        })
        .collect();
    let err = obj.set_filter(&big).unwrap_err();
    assert!(format!("{err:#}").contains("services"), "{err:#}");
    assert_eq!(
        decide(&obj, &tcp4(CLIENT, 40000, VIP, 80)),
        Decision::Service
    );
    assert_eq!(
        decide(&obj, &tcp4(CLIENT, 40000, [198, 19, 0, 1], 80)),
        Decision::Pass
    );
}

#[test]
fn register_socket_refuses_what_is_not_an_af_xdp_socket() {
    let mut obj = loaded();
    let f = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsRawFd;
    assert!(obj.register_socket(0, f.as_raw_fd()).is_err());
    assert!(obj.register_socket(256, f.as_raw_fd()).is_err());
    assert!(obj.register_socket(0, -1).is_err());
}
