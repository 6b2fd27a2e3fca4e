//! Unit tests of the VRRP runtime's pure helpers.
use super::*;
use crate::config::{IpPrefix, VrrpAuth, VrrpState, VrrpVersion};
use crate::sched::{SchedFlags, SchedKind};
use crate::service::{Protocol as L4, ServiceKey};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn inst(name: &str, vips: &[&str]) -> VrrpInstance {
    VrrpInstance {
        name: name.into(),
        state: VrrpState::Backup,
        interface: "lfeth0".into(),
        virtual_router_id: 51,
        priority: 100,
        advert_int: Duration::from_secs(1),
        version: VrrpVersion::V2,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        auth: Some(VrrpAuth::Pass("x".into())),
        virtual_ipaddress: vips
            .iter()
            .map(|v| IpPrefix {
                addr: ip(v),
                len: 32,
            })
            .collect(),
        unicast_src_ip: None,
        unicast_peer: vec![],
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify: None,
        track_script: vec![],
        track_interface: vec![],
    }
}

#[test]
fn gate_serves_only_vips_of_master_instances() {
    let mut g = VipGate::new(&[
        inst("A", &["198.18.0.250", "198.18.0.251"]),
        inst("B", &["198.18.0.251", "198.18.0.252"]),
    ]);
    let set = |v: &[&str]| v.iter().map(|s| ip(s)).collect::<BTreeSet<_>>();
    assert_eq!(
        g.inactive(),
        set(&["198.18.0.250", "198.18.0.251", "198.18.0.252"])
    );
    assert!(g.set("A", true));
    assert_eq!(g.inactive(), set(&["198.18.0.252"]));
    // B master too: .251 is served by both; nothing changes for A's.
    assert!(g.set("B", true));
    assert!(g.inactive().is_empty());
    assert!(!g.set("B", true));
    assert!(g.set("A", false));
    assert_eq!(g.inactive(), set(&["198.18.0.250"]));
    // Unknown names change nothing.
    assert!(!g.set("C", true));
}

#[test]
fn gate_reconfigure_keeps_unchanged_masters_only() {
    let set = |v: &[&str]| v.iter().map(|s| ip(s)).collect::<BTreeSet<_>>();
    let mut g = VipGate::new(&[
        inst("A", &["198.18.0.250"]),
        inst("B", &["198.18.0.251"]),
        inst("C", &["198.18.0.252"]),
    ]);
    g.set("A", true);
    g.set("B", true);
    g.set("C", true);
    // A unchanged keeps serving; B's VIPs changed (starts as not master);
    // C removed (its VIP is no VRRP VIP any more); D added.
    g.reconfigure(&[
        inst("A", &["198.18.0.250"]),
        inst("B", &["198.18.0.253"]),
        inst("D", &["198.18.0.254"]),
    ]);
    assert_eq!(g.inactive(), set(&["198.18.0.253", "198.18.0.254"]));
    assert!(g.set("B", true));
    assert!(!g.set("C", false));
}

fn spec(addr: &str, port: u16) -> ServiceSpec {
    ServiceSpec {
        key: ServiceKey {
            proto: L4::Tcp,
            addr: ip(addr),
            port,
            fwmark: 0,
        },
        sched: SchedKind::Rr,
        sched_flags: SchedFlags::default(),
        persistence: None,
        persistence_prefix: 32,
        ops: false,
        local_addrs: vec![],
        fwmark_matches: Vec::new(),
        dests: vec![],
    }
}

#[test]
fn active_specs_drop_services_on_inactive_vips() {
    let specs = vec![
        spec("198.18.0.250", 80),
        spec("198.18.0.250", 443),
        spec("198.18.0.9", 80),
    ];
    let inactive: BTreeSet<IpAddr> = [ip("198.18.0.250")].into();
    let got = active_specs(&specs, &inactive);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.addr, ip("198.18.0.9"));
    assert_eq!(active_specs(&specs, &BTreeSet::new()), specs);
}

#[test]
fn primary_is_the_first_non_vip_ipv4_or_the_link_local() {
    let addrs = [
        ip("198.18.0.250"),
        ip("198.18.0.2"),
        ip("2001:2::2"),
        ip("fe80::1"),
    ];
    let vips = [ip("198.18.0.250")];
    assert_eq!(
        pick_primary(&addrs, Family::V4, &vips),
        Some(ip("198.18.0.2"))
    );
    assert_eq!(pick_primary(&addrs, Family::V6, &[]), Some(ip("fe80::1")));
    assert_eq!(pick_primary(&addrs[..3], Family::V6, &[]), None);
    assert_eq!(pick_primary(&addrs[..1], Family::V4, &vips), None);
}

#[test]
fn splits_a_raw_ipv4_datagram() {
    // keepalived's advert as a raw socket returns it (IP header
    // included), TTL 255, tot_len 40.
    let d: [u8; 40] = [
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x14, 0x7d, 0xc6, 0x12, 0x00,
        0x03, 0xe0, 0x00, 0x00, 0x12, // IPv4
        0x21, 0x33, 0x64, 0x01, 0x01, 0x01, 0x50, 0x5b, 0xc6, 0x12, 0x00, 0xfa, 0x31, 0x31, 0x31,
        0x31, 0x00, 0x00, 0x00, 0x00,
    ];
    let (rx, payload) = split_ipv4(&d).unwrap();
    assert_eq!(rx.src, ip("198.18.0.3"));
    assert_eq!(rx.dst, ip("224.0.0.18"));
    assert_eq!(rx.ttl, Some(255));
    assert_eq!(payload, 20..40);
    // Link padding after tot_len is cut off.
    let mut padded = d.to_vec();
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(split_ipv4(&padded).unwrap().1, 20..40);
    // Options: the message starts after them (IHL 6, tot_len 44).
    let mut opt = d[..20].to_vec();
    opt[0] = 0x46;
    opt[3] = 44;
    opt.extend_from_slice(&[1, 1, 1, 0]);
    opt.extend_from_slice(&d[20..]);
    assert_eq!(split_ipv4(&opt).unwrap().1, 24..44);
    // Not VRRP, or not IPv4 at all.
    let mut tcp = d;
    tcp[9] = 6;
    assert!(split_ipv4(&tcp).is_none());
    assert!(split_ipv4(&d[..19]).is_none());
}

#[test]
fn family_and_destinations_of_an_instance() {
    let mut i = inst("A", &["198.18.0.250"]);
    assert_eq!(instance_family(&i), Family::V4);
    assert_eq!(
        advert_destinations(&i, Family::V4, McastGroups::default()),
        [ip("224.0.0.18")]
    );
    i.virtual_ipaddress.clear();
    i.unicast_src_ip = Some(ip("2001:2::2"));
    i.unicast_peer = vec![ip("2001:2::3"), ip("2001:2::4")];
    assert_eq!(instance_family(&i), Family::V6);
    assert_eq!(
        advert_destinations(&i, Family::V6, McastGroups::default()),
        [ip("2001:2::3"), ip("2001:2::4")]
    );
    i.unicast_src_ip = None;
    i.unicast_peer.clear();
    assert_eq!(instance_family(&i), Family::V4);
    assert_eq!(
        advert_destinations(&i, Family::V6, McastGroups::default()),
        [ip("ff02::12")]
    );
}

#[test]
fn adverts_go_to_the_configured_group_and_unicast_peers_ignore_it() {
    let groups = McastGroups {
        v4: "224.0.0.19".parse().unwrap(),
        v6: "ff02::13".parse().unwrap(),
    };
    let mut i = inst("A", &["198.18.0.250"]);
    assert_eq!(
        advert_destinations(&i, Family::V4, groups),
        [ip("224.0.0.19")]
    );
    assert_eq!(
        advert_destinations(&i, Family::V6, groups),
        [ip("ff02::13")]
    );
    let mut g = crate::config::Global::default();
    assert_eq!(McastGroups::of(&g), McastGroups::default());
    g.vrrp_mcast_group4 = groups.v4;
    g.vrrp_mcast_group6 = groups.v6;
    assert_eq!(McastGroups::of(&g), groups);
    i.unicast_peer = vec![ip("198.18.0.3")];
    assert_eq!(
        advert_destinations(&i, Family::V4, groups),
        [ip("198.18.0.3")]
    );
}

#[test]
fn v6_adverts_are_scoped_to_the_link_when_they_must_be() {
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    assert_eq!(v6_scope(v6("ff02::12"), 7), 7);
    assert_eq!(v6_scope(v6("fe80::3"), 7), 7);
    assert_eq!(v6_scope(v6("2001:2::3"), 7), 0);
}

#[test]
fn one_announcement_per_vip_of_its_family() {
    let mac: MacAddr = [2, 0, 0, 0, 0, 1];
    let vips = [
        IpPrefix {
            addr: ip("198.18.0.250"),
            len: 32,
        },
        IpPrefix {
            addr: ip("2001:2::250"),
            len: 128,
        },
    ];
    let got = announcements(mac, &vips);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, ip("198.18.0.250"));
    assert_eq!(
        got[0].1,
        announce::garp(mac, "198.18.0.250".parse().unwrap())
    );
    assert_eq!(got[1].0, ip("2001:2::250"));
    assert_eq!(
        got[1].1,
        announce::unsolicited_na(mac, "2001:2::250".parse().unwrap())
    );
}

#[test]
fn poll_waits_for_the_next_deadline_within_bounds() {
    let max = Duration::from_millis(50);
    let now = Timestamp::from_millis(1000);
    assert_eq!(poll_wait_ms(None, now, max), 50);
    assert_eq!(
        poll_wait_ms(Some(Timestamp::from_millis(1020)), now, max),
        20
    );
    assert_eq!(
        poll_wait_ms(Some(Timestamp::from_millis(9000)), now, max),
        50
    );
    // Due or past: poll briefly all the same.
    assert_eq!(
        poll_wait_ms(Some(Timestamp::from_millis(1000)), now, max),
        1
    );
    assert_eq!(poll_wait_ms(Some(Timestamp::from_millis(10)), now, max), 1);
}
