//! A TUN service whose real server is of the other address family, built
//! programmatically (lb.toml and lvsadm refuse it): the data plane drops
//! and counts every packet for it instead of panicking on the outer header
//! (a panic used to kill the worker thread of that queue at the first SYN).
#![forbid(unsafe_code)]

mod common;
use common::*;

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
            own_addrs: vec![ip("198.18.0.1"), ip("2001:2::1")],
            ..base
        },
        ServiceTable::from_specs(&[spec]),
    )
}

/// Runs `frame` through `dp` (with headroom for a tunnel header).
fn process(dp: &mut Dataplane, frame: &[u8], now: u64) -> Verdict {
    let mut buf = vec![0u8; HEADROOM + frame.len()];
    buf[HEADROOM..].copy_from_slice(frame);
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, frame.len());
    dp.process(&mut fb, Timestamp::from_secs(now))
}

#[test]
fn tun_across_families_drops_and_counts() {
    for (client, vip, rs) in [
        ("198.18.5.1", "198.18.0.100", "2001:2::11"),
        ("2001:2:5::1", "2001:2::100", "198.18.1.11"),
    ] {
        let mut dp = dataplane(vip, rs);
        let syn = tcp(client, 40000, vip, 80, SYN);
        let v = process(&mut dp, &syn, 1);
        assert_eq!(v, Verdict::Drop(DropReason::TunnelFamily), "{vip} -> {rs}");
        // The SYN was scheduled (IPVS creates the connection first); the
        // next segment of the flow takes the same path and is dropped too.
        let ack = tcp(client, 40000, vip, 80, ACK);
        let v = process(&mut dp, &ack, 2);
        assert_eq!(v, Verdict::Drop(DropReason::TunnelFamily), "{vip} -> {rs}");
        assert_eq!(dp.counters.drops(DropReason::TunnelFamily), 2);
        assert_eq!(dp.counters.drop, 2);
        assert_eq!(dp.counters.tx, 0);
        assert!(
            dp.counters.drop_reasons().contains(&("tunnel_family", 2)),
            "{:?}",
            dp.counters.drop_reasons()
        );
    }
}

#[test]
fn tun_within_a_family_still_tunnels() {
    // The same data planes with a real server of the VIP's family: the
    // refusal above is about the family only.
    for (client, vip, rs) in [
        ("198.18.5.1", "198.18.0.100", "198.18.1.11"),
        ("2001:2:5::1", "2001:2::100", "2001:2::11"),
    ] {
        let mut dp = dataplane(vip, rs);
        let v = process(&mut dp, &tcp(client, 40000, vip, 80, SYN), 1);
        assert_eq!(v, Verdict::Tx(0), "{vip} -> {rs}");
        assert_eq!(dp.counters.drops(DropReason::TunnelFamily), 0);
    }
}
