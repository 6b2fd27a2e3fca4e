//! fwmark services in the pipeline: `[[fwmark]]` rules classify a new
//! flow's first frame ahead of the address services (`ip_vs_service_find`
//! looks the mark up first), and a persistent fwmark service keeps a client
//! on one real server across every port of the mark (one template
//! `<IP, client, 0, mark, 0>`).

use std::net::IpAddr;
use std::time::Duration;

use etherparse::PacketBuilder;

use super::*;
use crate::sched::SchedKind;
use crate::service::{DestSpec, FwmarkMatch};

const HEADROOM: usize = 256;
const RS1_MAC: MacAddr = [2, 0, 0, 0, 0, 0x11];
const RS2_MAC: MacAddr = [2, 0, 0, 0, 0, 0x12];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const VIP: &str = "198.18.0.250";

fn tcp_match(port: u16) -> FwmarkMatch {
    FwmarkMatch {
        proto: Some(Protocol::Tcp),
        addr: ip(VIP),
        port: Some(port),
    }
}

/// Mark 1 (TCP VIP:80 and VIP:443) to two DR servers, rr, with
/// `persistence`; an address service on VIP:8080 and on VIP:80 to a
/// third server.
fn dp(persistence: Option<Duration>) -> Dataplane {
    let rs = |a: &str, mac| {
        let mut d = DestSpec::new(ip(a), 0, FwdMethod::Route);
        d.mac = Some(mac);
        d
    };
    let mut fwm = ServiceSpec::new(
        ServiceKey::fwmark(1, false),
        SchedKind::Rr,
        vec![rs("198.18.2.11", RS1_MAC), rs("198.18.2.12", RS2_MAC)],
    );
    fwm.persistence = persistence;
    fwm.fwmark_matches = vec![tcp_match(80), tcp_match(443)];
    let mut specs = vec![fwm];
    for port in [80, 8080] {
        let mut d = DestSpec::new(ip("198.18.2.13"), port, FwdMethod::Route);
        d.mac = Some([2, 0, 0, 0, 0, 0x13]);
        specs.push(ServiceSpec::new(
            ServiceKey::addr(Protocol::Tcp, ip(VIP), port),
            SchedKind::Rr,
            vec![d],
        ));
    }
    Dataplane::new(DataplaneConfig::new(4096), ServiceTable::from_specs(&specs))
}

fn syn(client: &str, sport: u16, dport: u16) -> Vec<u8> {
    let (IpAddr::V4(c), IpAddr::V4(v)) = (ip(client), ip(VIP)) else {
        unreachable!()
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0, 0, 0, 0, 1])
        .ipv4(c.octets(), v.octets(), 64)
        .tcp(sport, dport, 1000, 64240)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    f
}

/// The verdict and, when sent, the destination MAC (which real server).
fn run(dp: &mut Dataplane, f: &[u8], secs: u64) -> (Verdict, MacAddr) {
    let mut buf = vec![0u8; HEADROOM + f.len() + 64];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, f.len());
    let v = dp.process(&mut fb, Timestamp::from_secs(secs));
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&fb.data()[..6]);
    (v, mac)
}

#[test]
fn persistence_holds_across_the_ports_of_a_mark() {
    let mut dp = dp(Some(Duration::from_secs(60)));
    let (v, a80) = run(&mut dp, &syn("198.18.1.1", 40000, 80), 1);
    assert_eq!(v, Verdict::Tx(0));
    // rr would pick the other server next: persistence keeps this one,
    // for the other port of the mark and for a later port-80 connection.
    let (_, a443) = run(&mut dp, &syn("198.18.1.1", 40001, 443), 2);
    let (_, again) = run(&mut dp, &syn("198.18.1.1", 40002, 80), 3);
    assert!([RS1_MAC, RS2_MAC].contains(&a80));
    assert_eq!((a443, again), (a80, a80));
    // Another client gets the next server, and keeps it on both ports.
    let (_, b443) = run(&mut dp, &syn("198.18.1.2", 40000, 443), 4);
    let (_, b80) = run(&mut dp, &syn("198.18.1.2", 40001, 80), 5);
    assert_ne!(b443, a80);
    assert_eq!(b80, b443);
    // One template per client, keyed by the mark (listed as IPVS's `IP`,
    // virtual address 0.0.0.1, port 0), beside the five conns.
    let views = dp.conn_views(Timestamp::from_secs(5));
    let tpls: Vec<_> = views.iter().filter(|c| c.any_proto).collect();
    assert_eq!(tpls.len(), 2, "{views:?}");
    assert!(
        tpls.iter()
            .all(|t| t.vaddr == ip("0.0.0.1") && t.vport == 0 && t.cport == 0)
    );
    assert_eq!(views.len(), 7);
}

#[test]
fn without_persistence_rr_alternates_across_the_ports() {
    // The control for the test above: the same flows, no persistence.
    let mut dp = dp(None);
    let (_, a80) = run(&mut dp, &syn("198.18.1.1", 40000, 80), 1);
    let (_, a443) = run(&mut dp, &syn("198.18.1.1", 40001, 443), 2);
    assert_ne!(a80, a443);
    assert!(
        dp.conn_views(Timestamp::from_secs(2))
            .iter()
            .all(|c| !c.any_proto)
    );
}

#[test]
fn the_mark_comes_before_the_address_service_and_others_fall_through() {
    let mut dp = dp(None);
    // VIP:80 has an address service too: the fwmark service wins, as in
    // ip_vs_service_find.
    let (v, mac) = run(&mut dp, &syn("198.18.1.1", 40000, 80), 1);
    assert_eq!(v, Verdict::Tx(0));
    assert_ne!(mac, [2, 0, 0, 0, 0, 0x13]);
    // VIP:8080 matches no rule: its address service.
    let (v, mac) = run(&mut dp, &syn("198.18.1.1", 40001, 8080), 1);
    assert_eq!((v, mac), (Verdict::Tx(0), [2, 0, 0, 0, 0, 0x13]));
    // VIP:22: neither.
    let (v, _) = run(&mut dp, &syn("198.18.1.1", 40002, 22), 1);
    assert_eq!(v, Verdict::Pass);
    // A UDP datagram to VIP:80 matches no rule (they say TCP).
    let (IpAddr::V4(c), IpAddr::V4(vip)) = (ip("198.18.1.1"), ip(VIP)) else {
        unreachable!()
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0, 0, 0, 0, 1])
        .ipv4(c.octets(), vip.octets(), 64)
        .udp(40003, 80)
        .write(&mut f, b"x")
        .unwrap();
    assert_eq!(run(&mut dp, &f, 1).0, Verdict::Pass);
}

#[test]
fn removing_the_fwmark_service_removes_its_rules() {
    let mut dp = dp(None);
    let specs: Vec<ServiceSpec> = Vec::new();
    dp.apply_services(&specs);
    assert_eq!(
        run(&mut dp, &syn("198.18.1.1", 40000, 443), 1).0,
        Verdict::Pass
    );
}

fn ack(client: &str, sport: u16, dport: u16) -> Vec<u8> {
    let (IpAddr::V4(c), IpAddr::V4(v)) = (ip(client), ip(VIP)) else {
        unreachable!()
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0xc1, 0, 0, 0, 1], [2, 0, 0, 0, 0, 1])
        .ipv4(c.octets(), v.octets(), 64)
        .tcp(sport, dport, 1001, 64240)
        .ack(1)
        .write(&mut f, b"x")
        .unwrap();
    f
}

#[test]
fn sync_carries_the_mark_and_a_backup_keeps_the_client_on_its_server() {
    use crate::conn::{SyncApplied, SyncRecord};
    let mut m = dp(Some(Duration::from_secs(60)));
    m.set_sync_mode(true, false);
    let (_, server) = run(&mut m, &syn("198.18.1.1", 40000, 443), 1);
    for _ in 0..3 {
        run(&mut m, &ack("198.18.1.1", 40000, 443), 1);
    }
    let recs: Vec<SyncRecord> = m.drain_sync().collect();
    assert!(recs.iter().all(|r| r.fwmark == 1), "{recs:?}");
    let tpl = recs
        .iter()
        .find(|r| r.template)
        .expect("the template is synced");
    // On the wire the template is IPVS's: IPPROTO_IP, the mark as vaddr.
    let w = tpl.to_wire();
    assert_eq!((w.protocol, w.fwmark, w.vport), (0, 1, 0));
    assert_eq!(w.vaddr, ip("0.0.0.1"));
    let back = SyncRecord::from_wire(&w).expect("a fwmark template is taken");
    // (`local` is FULLNAT's, not on the wire of a DR entry.)
    assert_eq!(
        SyncRecord {
            local: tpl.local,
            ..back
        },
        *tpl
    );
    // A backup with the same service takes both, bound by the mark...
    let mut b = dp(Some(Duration::from_secs(60)));
    b.set_sync_mode(false, true);
    let mut sorted = recs.clone();
    sorted.sort_by_key(|r| !r.template);
    for r in &sorted {
        let r = SyncRecord::from_wire(&r.to_wire()).unwrap();
        let a = b.apply_synced(&r, Timestamp::from_secs(2));
        assert!(
            matches!(a, SyncApplied::Created | SyncApplied::Updated),
            "{a:?}"
        );
    }
    let views = b.conn_views(Timestamp::from_secs(2));
    assert_eq!(views.len(), 2, "{views:?}");
    assert_eq!(views.iter().filter(|c| c.any_proto).count(), 1, "{views:?}");
    // ...and after a failover keeps the client on that server, on the
    // other port of the mark too.
    assert_eq!(
        run(&mut b, &ack("198.18.1.1", 40000, 443), 3),
        (Verdict::Tx(0), server)
    );
    assert_eq!(
        run(&mut b, &syn("198.18.1.1", 40001, 80), 3),
        (Verdict::Tx(0), server)
    );
}
