//! The per-frame pipeline with partial checksums (a sender's checksum
//! offload, unfinished): every forwarding method completes them before its
//! rewrite and counts them; complete checksums pass untouched and uncounted.
//! Then what goes to the director's own stack: Local real servers (IPVS's
//! LOCALNODE) and TCP segments without a connection.

use std::net::IpAddr;

use etherparse::PacketBuilder;

use super::*;
use crate::sched::SchedKind;
use crate::service::DestSpec;
use crate::wire::checksum;

const HEADROOM: usize = 256;
const CLIENT_MAC: MacAddr = [2, 0xc1, 0, 0, 0, 1];
const PAYLOAD: &[u8] = b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n";

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

// The address parser, VIP and client the data plane's test modules share.
pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn vip(v6: bool) -> IpAddr {
    ip(if v6 { "2001:2::250" } else { "198.18.0.250" })
}

pub(super) fn client(v6: bool) -> IpAddr {
    ip(if v6 {
        "2001:2:0:1::100"
    } else {
        "198.18.1.100"
    })
}

/// One TCP and one UDP service per family, `fwd` forwarding, one real
/// server each (on another port, so NAT rewrites ports too).
fn dp(fwd: FwdMethod) -> Dataplane {
    let mut specs = Vec::new();
    for (v6, rip, local, mac) in [
        (false, "198.18.2.11", "198.18.9.1", [2, 0, 0, 0, 0, 0x0b]),
        (
            true,
            "2001:2:0:2::11",
            "2001:2:0:9::1",
            [2, 0, 0, 0, 0, 0x16],
        ),
    ] {
        for proto in [Protocol::Tcp, Protocol::Udp] {
            let port = if matches!(fwd, FwdMethod::Route | FwdMethod::Tunnel) {
                80
            } else {
                8080
            };
            let mut d = DestSpec::new(ip(rip), port, fwd);
            d.mac = Some(mac);
            let key = ServiceKey {
                proto,
                addr: vip(v6),
                port: 80,
                fwmark: 0,
            };
            let mut spec = ServiceSpec::new(key, SchedKind::Rr, vec![d]);
            if fwd == FwdMethod::FullNat {
                spec.local_addrs = vec![ip(local)];
            }
            specs.push(spec);
        }
    }
    Dataplane::new(DataplaneConfig::new(4096), ServiceTable::from_specs(&specs))
}

/// A frame with a complete checksum (etherparse computes it). TCP: `syn`
/// and `ack` pick the flags; UDP ignores them.
/// A TCP segment of the IPv4 client from `cport` to the VIP's port 80.
fn tcp4(cport: u16, syn: bool, ack: bool) -> Vec<u8> {
    frame(
        Proto::Tcp,
        (client(false), cport),
        (vip(false), 80),
        syn,
        ack,
    )
}

fn frame(proto: Proto, src: (IpAddr, u16), dst: (IpAddr, u16), syn: bool, ack: bool) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, [2, 0, 0, 0, 0, 1]);
    let ipb = match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let mut v = Vec::new();
    match proto {
        Proto::Udp => ipb.udp(src.1, dst.1).write(&mut v, PAYLOAD).unwrap(),
        Proto::Tcp => {
            let b = ipb.tcp(src.1, dst.1, 1000, 64240);
            let b = if syn { b.syn() } else { b };
            let b = if ack { b.ack(1) } else { b };
            let payload = if syn { &[][..] } else { PAYLOAD };
            b.write(&mut v, payload).unwrap()
        }
    }
    v
}

/// The checksum field's offset in `f`.
fn csum_at(f: &[u8]) -> usize {
    let p = wire::parse(f).unwrap().unwrap();
    p.l4_off
        + match p.l4 {
            L4::Tcp { .. } => wire::tcp::field::CHECKSUM.start,
            L4::Udp { .. } => wire::udp::field::CHECKSUM.start,
            other => panic!("{other:?}"),
        }
}

/// `f` as a sender with checksum offload hands it over: the checksum field
/// holds the pseudo-header sum, not complemented.
fn partial(mut f: Vec<u8>) -> Vec<u8> {
    let p = wire::parse(&f).unwrap().unwrap();
    let len = (p.l3_end() - p.l4_off) as u32;
    let ph = checksum::pseudo(p.src, p.dst, p.proto, len);
    let at = csum_at(&f);
    f[at..at + 2].copy_from_slice(&ph.to_be_bytes());
    let p = wire::parse(&f).unwrap().unwrap();
    assert!(!wire::verify_l4_checksum(&f, &p), "partial is not valid");
    f
}

/// Runs `f` through the pipeline; wants `Tx` and returns the frame sent.
fn run(dp: &mut Dataplane, f: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; HEADROOM + f.len() + 64];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, f.len());
    let v = dp.process(&mut fb, Timestamp::from_secs(1));
    assert_eq!(v, Verdict::Tx(0), "{:?}", dp.counters.drop_reasons());
    fb.data().to_vec()
}

/// Parses a sent frame and checks its TCP/UDP checksum.
fn valid(f: &[u8], what: &str) -> Headers {
    let p = wire::parse(f).unwrap().unwrap();
    assert!(
        wire::verify_l4_checksum(f, &p),
        "{what}: the checksum of the frame sent does not verify"
    );
    p
}

fn ports(p: &Headers) -> (u16, u16) {
    match p.l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
        other => panic!("{other:?}"),
    }
}

/// Both directions of one flow of `kind`: partial checksums leave valid and
/// are counted once each; complete ones leave valid, uncounted, and (DR)
/// with the L4 segment byte for byte as it came.
fn flow(kind: FwdMethod, proto: Proto, v6: bool) {
    let what = format!("{} {proto:?} v{}", kind.name(), if v6 { 6 } else { 4 });
    let mut dp = dp(kind);
    let c = (client(v6), 40000);
    let v = (vip(v6), 80);

    // Sends `f`: what leaves is valid, and `counted` partial checksums
    // have been completed so far.
    let send = |dp: &mut Dataplane, f: &[u8], counted: u64, note: &str| {
        let out = run(dp, f);
        let h = valid(&out, &what);
        assert_eq!(dp.counters.partial_csum, counted, "{what}: {note}");
        (out, h)
    };

    // Client to VIP, partial: the packet that opens the connection.
    let first = partial(frame(proto, c, v, true, false));
    let (_, p) = send(&mut dp, &first, 1, "counted");

    // Client to VIP, complete: untouched, not counted.
    let second = frame(proto, c, v, false, true);
    let (out2, _) = send(&mut dp, &second, 1, "a valid one is not counted");
    if kind == FwdMethod::Route {
        let l4 = wire::parse(&second).unwrap().unwrap().l4_off;
        assert_eq!(out2[l4..], second[l4..], "{what}: DR leaves L4 alone");
    }

    if kind == FwdMethod::Route {
        return;
    }
    // The real server's replies to whatever the director sent it.
    let (sport, dport) = ports(&p);
    let rs = (p.dst, dport);
    let to = (p.src, sport);
    let reply = partial(frame(proto, rs, to, true, true));
    let (_, b) = send(&mut dp, &reply, 2, "reply counted");
    assert_eq!((b.src, b.dst), (vip(v6), client(v6)), "{what}: reply");
    let reply2 = frame(proto, rs, to, false, true);
    send(&mut dp, &reply2, 2, "valid reply not counted");
}

fn every_flow(kind: FwdMethod) {
    for proto in [Proto::Tcp, Proto::Udp] {
        for v6 in [false, true] {
            flow(kind, proto, v6);
        }
    }
}

/// The per-NIC switch: frames received on a NIC whose bit in
/// `partial_csum_nics` is clear (a physical NIC, checksums complete as on
/// the wire) are not tested, so a partial one would go out as it came;
/// frames received on a NIC whose bit is set are completed. Pins both the
/// saving and that it is per NIC.
#[test]
fn the_partial_checksum_test_runs_only_for_nics_that_may_need_it() {
    let mut dp = dp(FwdMethod::Route);
    dp.cfg.own_macs = vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
    dp.cfg.partial_csum_nics = 0b10;
    let f = partial(tcp4(40000, true, false));
    let on = |dp: &mut Dataplane, nic: NicId| {
        let mut buf = vec![0u8; HEADROOM + f.len() + 64];
        buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(&f);
        let mut fb = FrameBuf::new(&mut buf, HEADROOM, f.len());
        let v = dp.process_on(&mut fb, nic, Timestamp::from_secs(1));
        assert_eq!(v, Verdict::Tx(0));
        fb.data().to_vec()
    };
    let physical = on(&mut dp, 0);
    let l4 = csum_at(&f);
    assert_eq!(physical[l4..l4 + 2], f[l4..l4 + 2], "NIC 0: not tested");
    assert_eq!(dp.counters.partial_csum, 0);
    let virt = on(&mut dp, 1);
    valid(&virt, "NIC 1");
    assert_eq!(dp.counters.partial_csum, 1, "NIC 1: completed");
}

#[test]
fn dr_completes_partial_checksums() {
    every_flow(FwdMethod::Route);
}

#[test]
fn nat_completes_partial_checksums_both_ways() {
    every_flow(FwdMethod::Masq);
}

#[test]
fn fullnat_completes_partial_checksums_both_ways() {
    every_flow(FwdMethod::FullNat);
}

#[test]
fn tun_completes_the_inner_partial_checksum() {
    let mut dp = dp(FwdMethod::Tunnel);
    dp.cfg.own_addrs = vec![ip("198.18.0.2"), ip("2001:2::2")];
    for (n, (proto, v6)) in [
        (Proto::Tcp, false),
        (Proto::Udp, false),
        (Proto::Tcp, true),
        (Proto::Udp, true),
    ]
    .into_iter()
    .enumerate()
    {
        let f = partial(frame(
            proto,
            (client(v6), 40000),
            (vip(v6), 80),
            true,
            false,
        ));
        let out = run(&mut dp, &f);
        // The inner packet, behind the Ethernet header it would have.
        let hdr = if v6 { wire::IPV6_HLEN } else { wire::IPV4_HLEN };
        let mut inner_frame = out[..wire::ETH_HLEN].to_vec();
        inner_frame.extend_from_slice(&out[wire::ETH_HLEN + hdr..]);
        valid(&inner_frame, "TUN inner");
        assert_eq!(dp.counters.partial_csum, n as u64 + 1);
    }
}

#[test]
fn udp_without_checksum_stays_without_and_is_not_counted() {
    let mut dp = dp(FwdMethod::Masq);
    let mut f = frame(
        Proto::Udp,
        (client(false), 40000),
        (vip(false), 80),
        false,
        false,
    );
    let at = csum_at(&f);
    f[at..at + 2].fill(0);
    let out = run(&mut dp, &f);
    let at = csum_at(&out);
    assert_eq!(out[at..at + 2], [0, 0]);
    assert_eq!(dp.counters.partial_csum, 0);
}

/// Runs `f` through the pipeline; returns the verdict and the frame after.
fn verdict(dp: &mut Dataplane, f: &[u8], at: u64) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; HEADROOM + f.len() + 64];
    buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
    let mut fb = FrameBuf::new(&mut buf, HEADROOM, f.len());
    let v = dp.process(&mut fb, Timestamp::from_secs(at));
    (v, fb.data().to_vec())
}

/// One TCP service on the IPv4 VIP's port 80 over `rips` (`fwd`, port
/// 80, static MACs).
fn tcp_service(fwd: FwdMethod, rips: &[&str]) -> ServiceSpec {
    let dests = rips
        .iter()
        .map(|r| {
            let mut d = DestSpec::new(ip(r), 80, fwd);
            d.mac = Some([2, 0, 0, 0, 0, 0x0b]);
            d
        })
        .collect();
    let key = ServiceKey {
        proto: Protocol::Tcp,
        addr: vip(false),
        port: 80,
        fwmark: 0,
    };
    ServiceSpec::new(key, SchedKind::Rr, dests)
}

/// A data plane serving [`tcp_service`]`(fwd, rips)`, `own` its addresses.
fn dp_over(fwd: FwdMethod, rips: &[&str], own: &[&str]) -> Dataplane {
    let mut cfg = DataplaneConfig::new(4096);
    cfg.own_addrs = own.iter().map(|a| ip(a)).collect();
    let mut dp = Dataplane::new(cfg, ServiceTable::from_specs(&[]));
    dp.apply_services(&[tcp_service(fwd, rips)]);
    dp
}

fn dest_fwd(dp: &Dataplane, addr: &str) -> FwdMethod {
    dp.services.services[0]
        .dests
        .iter()
        .find(|d| d.addr == ip(addr))
        .map(|d| d.fwd)
        .unwrap()
}

#[test]
fn loopback_and_own_addresses_are_local_dests_whatever_the_method() {
    for fwd in [
        FwdMethod::Route,
        FwdMethod::Masq,
        FwdMethod::Tunnel,
        FwdMethod::FullNat,
    ] {
        let dp = dp_over(
            fwd,
            &["127.0.0.1", "198.18.0.2", "198.18.2.11"],
            &["198.18.0.2"],
        );
        assert_eq!(dest_fwd(&dp, "127.0.0.1"), FwdMethod::Local, "{fwd:?}");
        assert_eq!(dest_fwd(&dp, "198.18.0.2"), FwdMethod::Local, "{fwd:?}");
        assert_eq!(dest_fwd(&dp, "198.18.2.11"), fwd, "{fwd:?}");
        assert_eq!(dp.services.services[0].dests[0].conf_fwd, fwd);
    }
    assert!(crate::dest::is_local_addr(ip("::1"), &[]));
    assert!(!crate::dest::is_local_addr(ip("2001:2::2"), &[]));
}

#[test]
fn local_ness_follows_the_directors_addresses() {
    let mut dp = dp_over(FwdMethod::Route, &["198.18.0.2"], &[]);
    assert_eq!(dest_fwd(&dp, "198.18.0.2"), FwdMethod::Route);
    let mut snap = Snapshot {
        own_addrs: Arc::new(vec![ip("198.18.0.2")]),
        ..Snapshot::default()
    };
    dp.apply_snapshot(&snap);
    assert_eq!(dest_fwd(&dp, "198.18.0.2"), FwdMethod::Local);
    // A new table keeps it Local while the address is ours.
    let mut d = DestSpec::new(ip("198.18.0.2"), 80, FwdMethod::Route);
    d.weight = 3;
    let spec = ServiceSpec::new(dp.services.services[0].key, SchedKind::Rr, vec![d]);
    dp.apply_services(&[spec]);
    assert_eq!(dest_fwd(&dp, "198.18.0.2"), FwdMethod::Local);
    snap.own_addrs = Arc::new(vec![ip("198.18.0.3")]);
    dp.apply_snapshot(&snap);
    assert_eq!(dest_fwd(&dp, "198.18.0.2"), FwdMethod::Route);
}

#[test]
fn a_local_dests_connections_are_tracked_and_go_to_the_kernel_untouched() {
    let mut dp = dp_over(FwdMethod::Masq, &["127.0.0.1"], &[]);
    let c = (client(false), 40000);
    let v = (vip(false), 80);
    let syn = frame(Proto::Tcp, c, v, true, false);
    let (verdict_syn, out) = verdict(&mut dp, &syn, 1);
    assert_eq!(verdict_syn, Verdict::Kernel(KernelReason::Local));
    assert_eq!(out, syn, "ip_vs_null_xmit: the frame is not rewritten");
    // Scheduled and tracked like any other connection.
    let views = dp.conn_views(Timestamp::from_secs(1));
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].daddr, ip("127.0.0.1"));
    let d = &dp.services.services[0].dests[0];
    assert_eq!((d.inact_conns + d.active_conns, d.stats.conns), (1, 1));
    let data = frame(Proto::Tcp, c, v, false, true);
    assert_eq!(
        verdict(&mut dp, &data, 2).0,
        Verdict::Kernel(KernelReason::Local)
    );
    assert_eq!(dp.services.services[0].dests[0].stats.inpkts, 2);
    assert_eq!(dp.counters.kernel(KernelReason::Local), 2);
    assert_eq!(
        (dp.counters.kernel, dp.counters.tx, dp.counters.drop),
        (2, 0, 0)
    );
    assert_eq!(dp.counters.kernel_reasons(), vec![("local", 2)]);
    // The real server's listing: Local, as ipvsadm shows it.
    let live = crate::view::LiveService::of(&dp.services.services[0], None);
    assert!(live.dests[0].local);
}

#[test]
fn a_segment_without_a_connection_goes_to_the_kernel_counted_as_no_conn() {
    let mut dp = dp_over(FwdMethod::Route, &["198.18.2.11"], &[]);
    let ack = tcp4(40001, false, true);
    let (v, out) = verdict(&mut dp, &ack, 1);
    assert_eq!(v, Verdict::Kernel(KernelReason::NoConn));
    assert_eq!(out, ack);
    assert_eq!(dp.counters.kernel(KernelReason::NoConn), 1);
    assert_eq!(dp.counters.drop, 0);
    assert!(dp.conn_views(Timestamp::from_secs(1)).is_empty());
    // A segment to a port without a service is not the balancer's: Pass.
    let other = frame(
        Proto::Tcp,
        (client(false), 40001),
        (vip(false), 81),
        false,
        true,
    );
    assert_eq!(verdict(&mut dp, &other, 1).0, Verdict::Pass);
}

#[test]
fn after_the_table_evicted_connections_a_segment_without_one_is_dropped_for_a_while() {
    let mut dp = dp_over(FwdMethod::Route, &["198.18.2.11"], &[]);
    dp.conns = ConnTable::with_seed(8, Timeouts::default(), FIXED_HASH_SEED);
    let ack = tcp4(40001, false, true);
    assert_eq!(
        verdict(&mut dp, &ack, 1).0,
        Verdict::Kernel(KernelReason::NoConn)
    );
    // A SYN flood over a table of 8: half-open entries are reclaimed.
    for i in 0..32u16 {
        let c = IpAddr::from([198, 19, (i >> 8) as u8, i as u8]);
        let syn = frame(Proto::Tcp, (c, 1000 + i), (vip(false), 80), true, false);
        assert_eq!(verdict(&mut dp, &syn, 2).0, Verdict::Tx(0));
    }
    assert!(dp.conns.evictions() > 0);
    // The batch boundary notes when the evictions happened.
    dp.tick(Timestamp::from_secs(2));
    assert_eq!(
        verdict(&mut dp, &ack, 3).0,
        Verdict::Drop(DropReason::NoConnReclaim)
    );
    dp.tick(Timestamp::from_secs(2 + RECLAIM_QUIET.as_secs()));
    assert_eq!(
        verdict(&mut dp, &ack, 2 + RECLAIM_QUIET.as_secs()).0,
        Verdict::Kernel(KernelReason::NoConn)
    );
    assert_eq!(dp.counters.drops(DropReason::NoConnReclaim), 1);
    assert_eq!(dp.counters.kernel(KernelReason::NoConn), 2);
}

#[test]
fn backup_only_passes_everything_while_the_backup_sync_daemon_runs() {
    let mut dp = dp_over(FwdMethod::Route, &["198.18.2.11"], &[]);
    dp.set_sysctls(ConnSysctls {
        backup_only: true,
        ..ConnSysctls::default()
    });
    let syn = tcp4(40001, true, false);
    // Not a backup: balanced.
    assert!(matches!(verdict(&mut dp, &syn, 1).0, Verdict::Tx(_)));
    dp.set_sync_mode(false, true);
    let syn2 = tcp4(40002, true, false);
    assert_eq!(verdict(&mut dp, &syn2, 1).0, Verdict::Pass);
    // backup_only off: a backup balances too, as IPVS does.
    dp.set_sysctls(ConnSysctls::default());
    assert!(matches!(verdict(&mut dp, &syn2, 1).0, Verdict::Tx(_)));
}

#[test]
fn a_master_data_plane_hands_over_records_and_a_backup_applies_them() {
    let mut m = dp_over(FwdMethod::Route, &["198.18.2.11"], &[]);
    m.set_sync_mode(true, false);
    let syn = tcp4(40001, true, false);
    let ack = tcp4(40001, false, true);
    verdict(&mut m, &syn, 1);
    verdict(&mut m, &ack, 1);
    assert_eq!(m.drain_sync().len(), 0);
    verdict(&mut m, &ack, 1);
    let recs: Vec<SyncRecord> = m.drain_sync().collect();
    assert_eq!(recs.len(), 1, "the third packet of an ESTABLISHED conn");
    let mut b = dp_over(FwdMethod::Route, &["198.18.2.11"], &[]);
    b.set_sync_mode(false, true);
    assert_eq!(
        b.apply_synced(&recs[0], Timestamp::from_secs(2)),
        SyncApplied::Created
    );
    assert_eq!(b.sync_counters.created, 1);
    // The backup forwards the flow's next segment: no scheduling needed.
    assert!(matches!(verdict(&mut b, &ack, 2).0, Verdict::Tx(_)));
    assert_eq!(b.counters.kernel(KernelReason::NoConn), 0);
}

/// A backup given an entry for a real server it does not have yet keeps it
/// unbound, drops its segments (never reschedules them elsewhere), and
/// forwards them to that server once an lvsadm edit or reload adds it.
#[test]
fn a_synced_conn_for_an_unknown_server_is_forwarded_once_the_server_is_added() {
    let mut m = dp_over(FwdMethod::Route, &["198.18.2.12"], &[]);
    m.set_sync_mode(true, false);
    let syn = tcp4(40001, true, false);
    let ack = tcp4(40001, false, true);
    for f in [&syn, &ack, &ack] {
        verdict(&mut m, f, 1);
    }
    let recs: Vec<SyncRecord> = m.drain_sync().collect();
    assert_eq!(recs.len(), 1);
    let mut b = dp_over(FwdMethod::Route, &["198.18.2.11"], &[]);
    b.set_sync_mode(false, true);
    assert_eq!(
        b.apply_synced(&recs[0], Timestamp::from_secs(2)),
        SyncApplied::CreatedUnbound
    );
    assert_eq!(b.sync_counters.no_dest, 1);
    assert_eq!(
        verdict(&mut b, &ack, 2).0,
        Verdict::Drop(DropReason::DestUnavailable)
    );
    // The same server set as the master: the conn is bound and its next
    // segment goes to 198.18.2.12 (not rescheduled to .11).
    b.apply_services(&[tcp_service(
        FwdMethod::Route,
        &["198.18.2.11", "198.18.2.12"],
    )]);
    assert!(matches!(verdict(&mut b, &ack, 3).0, Verdict::Tx(_)));
    let c = b.conns.iter().next().unwrap().1;
    assert_eq!(c.daddr, ip("198.18.2.12"));
    assert_eq!(b.counters.kernel(KernelReason::NoConn), 0);
}

/// The reply of a synced FULLNAT conn another worker holds meets its stub
/// in the data plane's own reply lookup: the verdict names that worker,
/// the frame is untouched (a partial checksum not completed: the owner
/// does it) and not counted, and the stub is re-armed as a conn is. The
/// conn's own table still translates the reply (as NAT does its own).
#[test]
fn a_reply_matching_a_stub_is_handed_over_to_its_owner_which_translates_it() {
    let mut m = dp(FwdMethod::FullNat);
    m.set_sync_mode(true, false);
    let (syn, ack) = (tcp4(40001, true, false), tcp4(40001, false, true));
    let (v, sent) = verdict(&mut m, &syn, 1);
    assert_eq!(v, Verdict::Tx(0));
    verdict(&mut m, &ack, 1);
    verdict(&mut m, &ack, 1);
    let recs: Vec<SyncRecord> = m.drain_sync().collect();
    assert_eq!(recs.len(), 1);
    // What the server answers to: the master's local address and port.
    let p = wire::parse(&sent).unwrap().unwrap();
    let (lport, rport) = ports(&p);
    let reply = partial(frame(
        Proto::Tcp,
        (p.dst, rport),
        (p.src, lport),
        false,
        true,
    ));

    // The backup worker owning the local port keeps a stub naming worker 3.
    let mut b = dp(FwdMethod::FullNat);
    b.set_sync_mode(false, true);
    assert!(b.stub_synced(&recs[0], 3, Timestamp::from_secs(2)));
    let before = b.counters.clone();
    let (v, out) = verdict(&mut b, &reply, 800);
    assert_eq!(v, Verdict::HandOver(3));
    assert_eq!(out, reply, "handed over untouched");
    assert_eq!(b.counters, before, "counted by the worker processing it");
    // Re-armed at 800: still there after its first timeout ran out.
    let timeout = u64::from(recs[0].timeout);
    assert!(timeout > 800, "the record carries its timeout");
    let later = 2 + timeout + 10;
    b.tick(Timestamp::from_secs(later));
    assert_eq!(verdict(&mut b, &reply, later).0, Verdict::HandOver(3));
    // Without replies it expires: the frame is the stack's again.
    let gone = later + timeout + 10;
    b.tick(Timestamp::from_secs(gone));
    assert!(!matches!(
        verdict(&mut b, &reply, gone).0,
        Verdict::HandOver(_)
    ));

    // The conn's table (the owner) translates the same frame.
    let (v, out) = verdict(&mut m, &reply, 800);
    assert_eq!(v, Verdict::Tx(0));
    let h = valid(&out, "FULLNAT reply");
    assert_eq!((h.src, h.dst), (vip(false), client(false)));
    assert_eq!(ports(&h), (80, 40001));

    // A NAT conn's reply too.
    let mut n = dp(FwdMethod::Masq);
    let (_, sent) = verdict(&mut n, &syn, 1);
    let p = wire::parse(&sent).unwrap().unwrap();
    let (cport, rport) = ports(&p);
    let reply = frame(Proto::Tcp, (p.dst, rport), (p.src, cport), true, true);
    let (v, out) = verdict(&mut n, &reply, 1);
    assert_eq!(v, Verdict::Tx(0));
    let h = valid(&out, "NAT reply");
    assert_eq!((h.src, h.dst), (vip(false), client(false)));
}
