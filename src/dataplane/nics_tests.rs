//! A two-armed director: frames leave through the NIC of their next hop,
//! from that NIC's MAC; NAT replies go back out of the NIC the client's
//! packets arrived on.

use std::net::IpAddr;
use std::sync::Arc;

use etherparse::PacketBuilder;
use rustc_hash::FxHashMap;

use super::*;
use crate::sched::SchedKind;
use crate::service::DestSpec;

const HEADROOM: usize = 256;
/// NIC 0 faces the clients, NIC 1 the real servers.
const MAC0: MacAddr = [2, 0, 0, 0, 0xa0, 0];
const MAC1: MacAddr = [2, 0, 0, 0, 0xa1, 0];
const ROUTER_MAC: MacAddr = [2, 0xc1, 0, 0, 0, 1];
const RS_MAC: MacAddr = [2, 0x5e, 0, 0, 0, 0x11];
const VIP: &str = "198.18.0.250";
const RS: &str = "198.18.2.11";
const CLIENT: &str = "198.18.1.100";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn two_armed(fwd: FwdMethod, mtu: u16) -> Dataplane {
    let port = if fwd == FwdMethod::Masq { 8080 } else { 80 };
    let key = ServiceKey {
        proto: Protocol::Tcp,
        addr: ip(VIP),
        port: 80,
        fwmark: 0,
    };
    let spec = ServiceSpec::new(key, SchedKind::Rr, vec![DestSpec::new(ip(RS), port, fwd)]);
    let mut dp = Dataplane::new(
        DataplaneConfig {
            mtu,
            ..DataplaneConfig::new(1024)
        },
        ServiceTable::from_specs(&[spec]),
    );
    let mut nb = FxHashMap::default();
    nb.insert(
        ip(RS),
        NextHop {
            nic: 1,
            mac: RS_MAC,
            src: None,
        },
    );
    dp.apply_snapshot(&Snapshot {
        neighbours: Arc::new(nb),
        own_macs: Arc::new(vec![MAC0, MAC1]),
        own_addrs: Arc::new(vec![ip("198.18.2.1")]),
        ..Snapshot::default()
    });
    dp
}

fn tcp(src: (&str, u16), dst: (&str, u16), smac: MacAddr, syn: bool, len: usize) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src.0), ip(dst.0)) else {
        panic!("v4")
    };
    let b = PacketBuilder::ethernet2(smac, MAC0)
        .ipv4(s.octets(), d.octets(), 64)
        .tcp(src.1, dst.1, 1, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, &vec![0x61; len]).unwrap();
    v
}

fn run(dp: &mut Dataplane, nic: NicId, f: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + f.len() + 128];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, f.len());
    let v = dp.process_on(&mut fb, nic, Timestamp::from_secs(1));
    (v, fb.data().to_vec())
}

#[test]
fn to_the_real_server_out_of_its_nic_and_back_out_of_the_clients() {
    let mut dp = two_armed(FwdMethod::Masq, 1500);
    let (v, out) = run(
        &mut dp,
        0,
        &tcp((CLIENT, 40000), (VIP, 80), ROUTER_MAC, true, 0),
    );
    assert_eq!(v, Verdict::Tx(1), "{:?}", dp.counters.drop_reasons());
    assert_eq!(&out[0..6], &RS_MAC);
    assert_eq!(&out[6..12], &MAC1, "sent from the server-side NIC's MAC");
    // The reply comes in on NIC 1 and goes back out of NIC 0, to the MAC
    // the client's packets came from.
    let (v, out) = run(
        &mut dp,
        1,
        &tcp((RS, 8080), (CLIENT, 40000), RS_MAC, false, 0),
    );
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(&out[0..6], &ROUTER_MAC);
    assert_eq!(&out[6..12], &MAC0);
    let p = wire::parse(&out).unwrap().unwrap();
    assert_eq!(p.src, ip(VIP));
}

#[test]
fn direct_routing_leaves_through_the_servers_nic() {
    let mut dp = two_armed(FwdMethod::Route, 1500);
    let (v, out) = run(
        &mut dp,
        0,
        &tcp((CLIENT, 40001), (VIP, 80), ROUTER_MAC, true, 0),
    );
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!((&out[0..6], &out[6..12]), (&RS_MAC[..], &MAC1[..]));
}

#[test]
fn too_big_for_the_tunnel_goes_back_out_of_the_nic_it_came_in_on() {
    let mut dp = two_armed(FwdMethod::Tunnel, 1500);
    let mut big = tcp((CLIENT, 40002), (VIP, 80), ROUTER_MAC, false, 1460);
    // Don't fragment, so the director must answer with ICMP.
    big[14 + 6] |= 0x40;
    big[24..26].fill(0);
    let c = crate::wire::checksum::checksum(&big[14..34]);
    big[24..26].copy_from_slice(&c.to_be_bytes());
    let syn = tcp((CLIENT, 40002), (VIP, 80), ROUTER_MAC, true, 0);
    assert_eq!(run(&mut dp, 0, &syn).0, Verdict::Tx(1));
    let (v, out) = run(&mut dp, 0, &big);
    assert_eq!(v, Verdict::Tx(0), "{:?}", dp.counters.drop_reasons());
    assert_eq!(dp.counters.icmp_too_big, 1);
    assert_eq!(&out[6..12], &MAC0);
}

#[test]
fn a_static_mac_leaves_through_the_nic_of_the_route() {
    let mut dp = two_armed(FwdMethod::Route, 1500);
    let key = ServiceKey {
        proto: Protocol::Tcp,
        addr: ip(VIP),
        port: 80,
        fwmark: 0,
    };
    let mut specs = vec![ServiceSpec::new(
        key,
        SchedKind::Rr,
        vec![DestSpec::new(ip(RS), 80, FwdMethod::Route)],
    )];
    specs[0].dests[0].mac = Some([2, 0x57, 0, 0, 0, 1]);
    dp.apply_services(&specs);
    let (v, out) = run(
        &mut dp,
        0,
        &tcp((CLIENT, 40003), (VIP, 80), ROUTER_MAC, true, 0),
    );
    assert_eq!(v, Verdict::Tx(1), "the route's NIC, the static MAC");
    assert_eq!(&out[0..6], &[2, 0x57, 0, 0, 0, 1]);
}

#[test]
fn the_clients_nic_is_remembered_by_its_connection() {
    // The clients behind NIC 1 this time, the real server behind NIC 0: a
    // forgotten ingress NIC would send the reply out of NIC 0.
    let mut dp = two_armed(FwdMethod::Masq, 1500);
    let mut nb = FxHashMap::default();
    nb.insert(
        ip(RS),
        NextHop {
            nic: 0,
            mac: RS_MAC,
            src: None,
        },
    );
    dp.apply_snapshot(&Snapshot {
        neighbours: Arc::new(nb),
        own_macs: Arc::new(vec![MAC0, MAC1]),
        own_addrs: Arc::new(vec![ip("198.18.2.1")]),
        ..Snapshot::default()
    });
    let (v, _) = run(
        &mut dp,
        1,
        &tcp((CLIENT, 40100), (VIP, 80), ROUTER_MAC, true, 0),
    );
    assert_eq!(v, Verdict::Tx(0));
    let (v, out) = run(
        &mut dp,
        0,
        &tcp((RS, 8080), (CLIENT, 40100), RS_MAC, false, 0),
    );
    assert_eq!(v, Verdict::Tx(1), "back out of the client's NIC");
    assert_eq!(&out[6..12], &MAC1);
    let c = dp
        .conns
        .iter()
        .map(|(_, c)| c)
        .next()
        .expect("a connection");
    assert_eq!(c.client_nic, 1);
}

#[test]
fn a_tunnel_s_outer_source_is_the_one_of_the_route_to_the_server() {
    let mut dp = two_armed(FwdMethod::Tunnel, 1500);
    let syn = |port| tcp((CLIENT, port), (VIP, 80), ROUTER_MAC, true, 0);
    let outer_src = |out: &[u8]| wire::parse(out).unwrap().unwrap().src;
    // No source known: the director's first address of the family.
    let (v, out) = run(&mut dp, 0, &syn(40010));
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(outer_src(&out), ip("198.18.2.1"));
    // The kernel's route to the server picks another (the NIC it leaves
    // by, or its preferred source): the tunnel takes that one.
    let mut nb = FxHashMap::default();
    let hop = NextHop {
        nic: 1,
        mac: RS_MAC,
        src: Some(ip("198.18.2.7")),
    };
    nb.insert(ip(RS), hop);
    dp.apply_snapshot(&Snapshot {
        generation: 1,
        neighbours: Arc::new(nb),
        own_macs: Arc::new(vec![MAC0, MAC1]),
        own_addrs: Arc::new(vec![ip("198.18.2.1"), ip("198.18.2.7")]),
        ..Snapshot::default()
    });
    let (v, out) = run(&mut dp, 0, &syn(40011));
    assert_eq!(v, Verdict::Tx(1), "{:?}", dp.counters.drop_reasons());
    assert_eq!(outer_src(&out), ip("198.18.2.7"));
    assert_eq!(&out[6..12], &MAC1);
}
