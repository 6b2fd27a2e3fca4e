//! Table-level tests on a simulated clock, with a deterministic test
//! scheduler (round-robin over usable dests) standing in for the real ones.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::sched::{SchedFlags, SchedInput, SchedKind, Scheduler};
use crate::service::{Dest, FwdMethod, Protocol, Service, ServiceKey, ServiceTable, Stats};

#[derive(Debug, Default)]
struct TestRr {
    next: usize,
}

impl Scheduler for TestRr {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }
    fn update(&mut self, _dests: &[Dest]) {}
    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let n = dests.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let d = &dests[i];
            if d.available && d.weight > 0 && !d.overloaded {
                self.next = i + 1;
                return Some(i);
            }
        }
        None
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const VIP: &str = "192.0.2.10";
const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

struct Svc {
    proto: Protocol,
    port: u16,
    dests: Vec<(&'static str, u16, FwdMethod)>,
    persistence: Option<Duration>,
    prefix: u8,
    ops: bool,
    local: Vec<&'static str>,
}

impl Svc {
    fn new(proto: Protocol, fwd: FwdMethod) -> Svc {
        Svc {
            proto,
            port: 80,
            dests: vec![("198.18.0.1", 8080, fwd), ("198.18.0.2", 8080, fwd)],
            persistence: None,
            prefix: 32,
            ops: false,
            local: vec![],
        }
    }
    fn build(self) -> ServiceTable {
        let mut t = ServiceTable::default();
        t.add(Service {
            key: ServiceKey {
                proto: self.proto,
                addr: ip(VIP),
                port: self.port,
                fwmark: 0,
            },
            sched_flags: SchedFlags::default(),
            persistence: self.persistence,
            persistence_prefix: self.prefix,
            ops: self.ops,
            local_addrs: self.local.iter().map(|a| ip(a)).collect(),
            laddr_conflicts: vec![0; self.local.len()],
            fwmark_matches: Vec::new(),
            dests: self
                .dests
                .iter()
                .map(|&(a, p, f)| Dest::new(ip(a), p, f, 1))
                .collect(),
            sched: Box::new(TestRr::default()),
            stats: Stats::default(),
        });
        t
    }
}

fn t0() -> Timestamp {
    Timestamp::from_secs(1_000)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn flow(proto: Protocol, client: &str, cport: u16, tcp: Option<TcpFlags>) -> NewFlow {
    NewFlow {
        proto,
        caddr: ip(client),
        cport,
        vaddr: ip(VIP),
        vport: 80,
        client_mac: MAC,
        client_nic: 0,
        tcp,
    }
}

fn syn(client: &str, cport: u16) -> NewFlow {
    flow(Protocol::Tcp, client, cport, Some(TcpFlags::SYN))
}

fn udp(client: &str, cport: u16) -> NewFlow {
    flow(Protocol::Udp, client, cport, None)
}

fn table() -> ConnTable {
    ConnTable::new(64, Timeouts::default())
}

/// (ActiveConn, InActConn, PersistConn) of dest `d` of service 0.
fn counters(s: &ServiceTable, d: usize) -> (u32, u32, u32) {
    let d = &s.services[0].dests[d];
    (d.active_conns, d.inact_conns, d.persist_conns)
}

/// The TCP conn of `client:cport -> VIP:80`.
fn tcp_in(t: &ConnTable, client: &str, cport: u16) -> Option<ConnId> {
    t.lookup_in(Protocol::Tcp, ip(client), cport, ip(VIP), 80)
}

/// A 52-byte ACK from the client on conn `id` at `at`.
fn ack_in(t: &mut ConnTable, id: ConnId, at: Timestamp, s: &mut ServiceTable) {
    t.on_packet(id, Direction::In, Some(TcpFlags::ACK), 52, at, s);
}

/// A conn of `client:cport -> VIP:80` opened at `at` (its SYN scheduled)
/// and ESTABLISHED by the client's ACK.
fn established(
    t: &mut ConnTable,
    s: &mut ServiceTable,
    client: &str,
    cport: u16,
    at: Timestamp,
) -> ConnId {
    let id = t.schedule(s, 0, &syn(client, cport), 60, at, 0).unwrap();
    ack_in(t, id, at, s);
    id
}

/// The conns counted by dests 0 and 1 of service 0, active and inactive.
fn counted(s: &ServiceTable) -> u32 {
    (0..2).map(|d| counters(s, d).0 + counters(s, d).1).sum()
}

fn state(t: &ConnTable, id: ConnId) -> ConnState {
    t.get(id).state
}

#[test]
fn slab_entry_is_compact() {
    let conn = std::mem::size_of::<Conn>();
    let t = ConnTable::new(100_000, Timeouts::default());
    let per_conn = t.memory_bytes() as f64 / 100_000.0;
    println!("Conn {conn} B, timer links 8 B, table total {per_conn:.1} B per entry");
    assert!(conn <= 120, "Conn is {conn} bytes");
    assert!(conn + 8 <= 128, "slab entry with links");
    // entry + links + two indexes at 1.5 slots of 8 B each (+ wheel heads)
    assert!(per_conn <= 128.0 + 8.0 + 24.0 + 1.0, "{per_conn}");
}

#[test]
fn nat_tcp_lifecycle_states_counters_stats_and_timers() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let id = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 40000), 60, now, 0)
        .unwrap();
    let c = t.get(id).clone();
    assert_eq!((c.daddr, c.dport), (ip("198.18.0.1"), 8080));
    assert_eq!(
        (c.laddr, c.lport),
        (ip("10.0.0.1"), 40000),
        "NAT: local side is the client"
    );
    assert_eq!(c.client_mac, MAC);
    assert_eq!(c.state, ConnState::SynRecv);
    assert_eq!(c.expires, now + secs(60));
    assert!(!c.is_inactive());
    assert_eq!(counters(&s, 0), (1, 0, 0), "SYN_RECV counts as active");
    assert_eq!(tcp_in(&t, "10.0.0.1", 40000), Some(id));
    let out = t.lookup_out(Protocol::Tcp, ip("198.18.0.1"), 8080, ip("10.0.0.1"), 40000);
    assert_eq!(out, Some(id));

    t.on_packet(id, Direction::Out, Some(TcpFlags::SYN_ACK), 60, now, &mut s);
    assert_eq!(state(&t, id), ConnState::SynRecv);
    ack_in(&mut t, id, now, &mut s);
    assert_eq!(state(&t, id), ConnState::Established);
    assert_eq!(t.get(id).expires, now + secs(900));
    t.on_packet(id, Direction::In, Some(TcpFlags::ACK), 1052, now, &mut s);
    t.on_packet(id, Direction::Out, Some(TcpFlags::ACK), 1500, now, &mut s);
    assert_eq!(counters(&s, 0), (1, 0, 0));

    t.on_packet(id, Direction::In, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(state(&t, id), ConnState::CloseWait);
    assert_eq!(counters(&s, 0), (0, 1, 0), "leaving the active states");
    assert_eq!(t.get(id).expires, now + secs(60));
    t.on_packet(id, Direction::Out, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(state(&t, id), ConnState::TimeWait);
    ack_in(&mut t, id, now, &mut s);
    assert_eq!(state(&t, id), ConnState::TimeWait);
    assert_eq!(t.get(id).expires, now + secs(120));

    let d = &s.services[0].dests[0].stats;
    assert_eq!(
        (d.conns, d.inpkts, d.inbytes, d.outpkts, d.outbytes),
        (1, 5, 60 + 52 + 1052 + 52 + 52, 3, 60 + 1500 + 52)
    );
    assert_eq!(
        s.services[0].stats, *d,
        "service stats mirror the only dest's"
    );

    assert_eq!(t.expire(Timestamp(now.0 + 120_000_000_000 - 1), &mut s), 0);
    assert_eq!(t.len(), 1);
    assert_eq!(t.expire(now + secs(120), &mut s), 1);
    assert_eq!(t.len(), 0);
    assert_eq!(counters(&s, 0), (0, 0, 0));
    assert_eq!(tcp_in(&t, "10.0.0.1", 40000), None);
    assert_eq!(
        t.lookup_out(Protocol::Tcp, ip("198.18.0.1"), 8080, ip("10.0.0.1"), 40000),
        None
    );
}

#[test]
fn dr_uses_the_input_only_table() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    let now = t0();
    let id = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 40000), 60, now, 0)
        .unwrap();
    assert_eq!(state(&t, id), ConnState::SynRecv);
    assert_eq!(
        t.lookup_out(Protocol::Tcp, ip("198.18.0.1"), 8080, ip("10.0.0.1"), 40000),
        None
    );
    ack_in(&mut t, id, now, &mut s);
    assert_eq!(state(&t, id), ConnState::Established);
    // Client FIN: NAT would go to CLOSE_WAIT; input-only goes to FIN_WAIT.
    t.on_packet(id, Direction::In, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(state(&t, id), ConnState::FinWait);
    assert_eq!(t.get(id).expires, now + secs(120));
    assert_eq!(counters(&s, 0), (0, 1, 0));
    ack_in(&mut t, id, now, &mut s);
    assert_eq!(state(&t, id), ConnState::FinWait);
    t.on_packet(id, Direction::In, Some(TcpFlags::RST), 40, now, &mut s);
    assert_eq!(state(&t, id), ConnState::Close);
    assert_eq!(t.get(id).expires, now + secs(10));
    assert_eq!(t.expire(now + secs(10), &mut s), 1);
}

#[test]
fn table_quirks_rst_in_syn_recv_and_flagless_segments() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, now, 0)
        .unwrap();
    // A client RST does not leave SYN_RECV (input rst column), a server
    // RST closes it.
    t.on_packet(a, Direction::In, Some(TcpFlags::RST), 40, now, &mut s);
    assert_eq!(state(&t, a), ConnState::SynRecv);
    t.on_packet(a, Direction::Out, Some(TcpFlags::RST), 40, now, &mut s);
    assert_eq!(state(&t, a), ConnState::Close);
    // A segment with none of SYN/FIN/ACK/RST closes an ESTABLISHED conn.
    let b = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 2), 60, now, 0)
        .unwrap();
    ack_in(&mut t, b, now, &mut s);
    t.on_packet(b, Direction::In, Some(TcpFlags::default()), 52, now, &mut s);
    assert_eq!(state(&t, b), ConnState::Close);
    // No header at all (e.g. an ICMP error about the conn): no transition,
    // timer re-armed for the current state.
    let later = now + secs(5);
    t.on_packet(b, Direction::In, None, 56, later, &mut s);
    assert_eq!(state(&t, b), ConnState::Close);
    assert_eq!(t.get(b).expires, later + secs(10));
}

#[test]
fn syn_sent_and_listen_paths_of_the_output_table() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, now, 0)
        .unwrap();
    ack_in(&mut t, a, now, &mut s);
    // Server FIN first: FIN_WAIT; client's FIN then: TIME_WAIT.
    t.on_packet(a, Direction::Out, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(state(&t, a), ConnState::FinWait);
    assert_eq!(counters(&s, 0), (0, 1, 0));
    t.on_packet(a, Direction::In, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(state(&t, a), ConnState::TimeWait);
    // TIME_WAIT + server SYN -> SYN_SENT, active again.
    t.on_packet(a, Direction::Out, Some(TcpFlags::SYN), 60, now, &mut s);
    assert_eq!(state(&t, a), ConnState::SynSent);
    assert_eq!(counters(&s, 0), (1, 0, 0));
    assert_eq!(t.get(a).expires, now + secs(120));
    // SYN_SENT + client SYN -> ESTABLISHED (simultaneous open).
    t.on_packet(a, Direction::In, Some(TcpFlags::SYN), 60, now, &mut s);
    assert_eq!(state(&t, a), ConnState::Established);
}

#[test]
fn out_packet_switches_a_dr_conn_off_input_only() {
    // A DR conn that does see a reply (asymmetric setup) uses the normal
    // tables from then on, as clearing IP_VS_CONN_F_NOOUTPUT does.
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, now, 0)
        .unwrap();
    t.on_packet(a, Direction::Out, Some(TcpFlags::SYN_ACK), 60, now, &mut s);
    ack_in(&mut t, a, now, &mut s);
    t.on_packet(a, Direction::In, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(state(&t, a), ConnState::CloseWait);
}

#[test]
fn custom_timeouts_apply_from_the_next_packet() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let mut t = ConnTable::new(
        8,
        Timeouts {
            tcp: secs(30),
            tcp_fin: secs(7),
            udp: secs(5),
        },
    );
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, now, 0)
        .unwrap();
    ack_in(&mut t, a, now, &mut s);
    assert_eq!(t.get(a).expires, now + secs(30));
    t.on_packet(a, Direction::Out, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(t.get(a).expires, now + secs(7));
    t.set_timeouts(Timeouts {
        tcp_fin: secs(3),
        ..t.timeouts()
    });
    assert_eq!(t.get(a).expires, now + secs(7), "not retroactive");
    t.on_packet(a, Direction::Out, Some(TcpFlags::ACK), 52, now, &mut s);
    assert_eq!(t.get(a).expires, now + secs(3));
    assert_eq!(t.expire(now + secs(3), &mut s), 1);
}

#[test]
fn udp_is_inactive_and_rearmed_per_datagram() {
    let mut s = Svc::new(Protocol::Udp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 5353), 100, now, 0)
        .unwrap();
    assert_eq!(state(&t, a), ConnState::Udp);
    assert_eq!(state(&t, a).name(), "UDP");
    assert_eq!(counters(&s, 0), (0, 1, 0));
    assert_eq!(t.get(a).expires, now + secs(300));
    let later = now + secs(200);
    t.on_packet(a, Direction::Out, None, 300, later, &mut s);
    assert_eq!(t.get(a).expires, later + secs(300));
    assert_eq!(t.expire(now + secs(300), &mut s), 0);
    assert_eq!(t.expire(later + secs(300), &mut s), 1);
    assert_eq!(counters(&s, 0), (0, 0, 0));
}

#[test]
fn only_a_syn_without_rst_creates_a_tcp_conn() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let bad = [
        Some(TcpFlags::ACK),
        Some(TcpFlags::FIN_ACK),
        Some(TcpFlags {
            syn: true,
            rst: true,
            ..TcpFlags::default()
        }),
        None,
    ];
    for f in bad {
        let r = t.schedule(
            &mut s,
            0,
            &flow(Protocol::Tcp, "10.0.0.1", 1, f),
            60,
            now,
            0,
        );
        assert_eq!(r, Err(ScheduleError::NotSyn), "{f:?}");
    }
    assert!(t.is_empty());
    assert_eq!(s.services[0].stats.conns, 0);
    // Like the kernel (active FTP), SYN+ACK may schedule.
    assert!(
        t.schedule(
            &mut s,
            0,
            &flow(Protocol::Tcp, "10.0.0.1", 1, Some(TcpFlags::SYN_ACK)),
            60,
            now,
            0
        )
        .is_ok()
    );
}

#[test]
fn no_dest_creates_nothing() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    for d in &mut s.services[0].dests {
        d.available = false;
    }
    let mut t = table();
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, t0(), 0),
        Err(ScheduleError::NoDest)
    );
    assert_eq!(
        t.schedule(&mut s, 7, &syn("10.0.0.1", 1), 60, t0(), 0),
        Err(ScheduleError::NoDest)
    );
    assert!(t.is_empty());
    assert_eq!(s.services[0].stats, Stats::default());
}

#[test]
fn persistence_sticks_per_client_network_and_templates_are_listed() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Route);
    sv.persistence = Some(secs(300));
    sv.prefix = 24;
    let mut s = sv.build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1000), 60, now, 0)
        .unwrap();
    let b = t
        .schedule(&mut s, 0, &syn("10.0.0.200", 2000), 60, now, 0)
        .unwrap();
    let c = t
        .schedule(&mut s, 0, &syn("10.0.1.1", 3000), 60, now, 0)
        .unwrap();
    assert_eq!(t.get(a).daddr, ip("198.18.0.1"));
    assert_eq!(
        t.get(b).daddr,
        ip("198.18.0.1"),
        "same /24 shares the template"
    );
    assert_eq!(
        t.get(c).daddr,
        ip("198.18.0.2"),
        "other /24 goes through the scheduler"
    );
    assert_eq!(counters(&s, 0), (2, 0, 1));
    assert_eq!(counters(&s, 1), (1, 0, 1));
    let tpls: Vec<Conn> = t
        .iter()
        .map(|(_, c)| c)
        .filter(|c| c.is_template())
        .collect();
    assert_eq!(tpls.len(), 2);
    let ta = tpls
        .iter()
        .find(|c| c.caddr == ip("10.0.0.0"))
        .expect("template keyed by the /24");
    assert_eq!(
        (ta.cport, ta.vport, ta.daddr, ta.dport),
        (0, 80, ip("198.18.0.1"), 8080)
    );
    assert_eq!(ta.state.name(), "NONE");
    assert_eq!(ta.n_control(), 2);
    assert_eq!(ta.expires, now + secs(300));
    let tid = t.get(a).control().unwrap();
    assert_eq!(t.get(b).control(), Some(tid));
    assert!(t.get(tid).is_template());
    // A template is never returned for a packet lookup.
    assert_eq!(tcp_in(&t, "10.0.0.0", 0), None);
    assert_eq!(
        s.services[0].stats.conns, 3,
        "templates are not counted as conns"
    );
    assert_eq!(t.len(), 5);
}

#[test]
fn template_outlives_its_conns_and_lingers_while_controlling() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Masq);
    sv.persistence = Some(secs(300));
    let mut s = sv.build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1000), 60, now, 0)
        .unwrap();
    ack_in(&mut t, a, now, &mut s); // ESTABLISHED, 900 s
    let tpl = t.get(a).control().unwrap();
    // At 300 s the template still controls the conn: re-armed for 60 s.
    assert_eq!(t.expire(now + secs(300), &mut s), 0);
    assert_eq!(t.get(tpl).expires, now + secs(360));
    assert_eq!(counters(&s, 0), (1, 0, 1));
    // A new conn from the same client now refreshes it with 60 s only.
    let b = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1001), 60, now + secs(330), 0)
        .unwrap();
    assert_eq!(t.get(b).daddr, t.get(a).daddr);
    assert_eq!(t.get(tpl).expires, now + secs(390));
    assert_eq!(t.get(tpl).n_control(), 2);
    // b (SYN_RECV, 60 s) goes at 390 s, template lingers on for a.
    assert_eq!(t.expire(now + secs(390), &mut s), 1);
    assert_eq!(t.get(tpl).n_control(), 1);
    assert_eq!(t.get(tpl).expires, now + secs(450));
    // a expires at 900 s; the template is freed at its next firing after.
    let mut freed = 0;
    let mut at = now + secs(450);
    while at <= now + secs(960) {
        freed += t.expire(at, &mut s);
        at = at + secs(60);
    }
    assert_eq!(freed, 2);
    assert!(t.is_empty());
    assert_eq!(counters(&s, 0), (0, 0, 0));
}

#[test]
fn template_without_conns_expires_at_the_persistence_timeout() {
    let mut sv = Svc::new(Protocol::Udp, FwdMethod::Route);
    sv.persistence = Some(secs(600));
    let mut s = sv.build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 53), 80, now, 0)
        .unwrap();
    assert_eq!(t.expire(now + secs(300), &mut s), 1, "the UDP conn");
    assert_eq!(t.len(), 1);
    assert_eq!(counters(&s, 0), (0, 0, 1));
    // Still sticky while the template lives.
    let b = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 54), 80, now + secs(400), 0)
        .unwrap();
    assert_eq!(t.get(b).daddr, ip("198.18.0.1"));
    let _ = a;
    assert_eq!(t.expire(now + secs(700), &mut s), 1, "conn b");
    assert_eq!(
        t.expire(Timestamp(now.0 + 1_000_000_000_000 - 1), &mut s),
        0
    );
    assert_eq!(
        t.expire(now + secs(1000), &mut s),
        1,
        "template, 600 s after b"
    );
    assert_eq!(counters(&s, 0), (0, 0, 0));
}

#[test]
fn template_to_a_removed_server_is_replaced() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Route);
    sv.persistence = Some(secs(300));
    let mut s = sv.build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1000), 60, now, 0)
        .unwrap();
    let old_tpl = t.get(a).control().unwrap();
    s.services[0].dests[0].available = false;
    let b = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1001), 60, now, 0)
        .unwrap();
    assert_eq!(t.get(b).daddr, ip("198.18.0.2"));
    let new_tpl = t.get(b).control().unwrap();
    assert_ne!(old_tpl, new_tpl);
    let old = t.get(old_tpl);
    assert!(old.is_template());
    assert_eq!(
        (old.vport, old.dport),
        (0xffff, 0xffff),
        "unhashed like ip_vs_check_template"
    );
    assert_eq!(
        counters(&s, 0),
        (1, 0, 1),
        "old template keeps its PersistConn until it dies"
    );
    assert_eq!(counters(&s, 1), (1, 0, 1));
    // The next conn follows the new template.
    let c = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1002), 60, now, 0)
        .unwrap();
    assert_eq!(t.get(c).control(), Some(new_tpl));
}

#[test]
fn quiescent_template_is_kept_unless_the_sysctl_says_otherwise() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Route);
    sv.persistence = Some(secs(300));
    let mut s = sv.build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1000), 60, now, 0)
        .unwrap();
    s.services[0].dests[0].weight = 0;
    let b = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1001), 60, now, 0)
        .unwrap();
    assert_eq!(
        t.get(b).daddr,
        t.get(a).daddr,
        "weight 0 keeps persistent clients"
    );
    t.set_sysctls(ConnSysctls {
        expire_quiescent_template: true,
        ..ConnSysctls::default()
    });
    let c = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1002), 60, now, 0)
        .unwrap();
    assert_eq!(t.get(c).daddr, ip("198.18.0.2"));
}

#[test]
fn ftp_service_templates_are_portless() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Route);
    sv.port = 21;
    sv.persistence = Some(secs(300));
    let mut s = sv.build();
    let mut t = table();
    let f = NewFlow {
        vport: 21,
        ..syn("10.0.0.1", 1000)
    };
    let a = t.schedule(&mut s, 0, &f, 60, t0(), 0).unwrap();
    let tpl = t.get(t.get(a).control().unwrap());
    assert_eq!((tpl.vport, tpl.dport), (0, 0));
    assert_eq!(t.get(a).dport, 8080);
}

#[test]
fn ops_conn_is_unhashed_and_freed_at_the_next_expire() {
    let mut sv = Svc::new(Protocol::Udp, FwdMethod::Masq);
    sv.ops = true;
    let mut s = sv.build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 53), 80, now, 0)
        .unwrap();
    assert!(t.get(a).is_one_packet());
    assert_eq!(
        t.lookup_in(Protocol::Udp, ip("10.0.0.1"), 53, ip(VIP), 80),
        None
    );
    assert_eq!(
        t.lookup_out(Protocol::Udp, ip("198.18.0.1"), 8080, ip("10.0.0.1"), 53),
        None
    );
    assert_eq!(counters(&s, 0), (0, 1, 0));
    // The next datagram of the "same" flow is scheduled on its own.
    let b = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 53), 80, now, 0)
        .unwrap();
    assert_eq!(t.get(b).daddr, ip("198.18.0.2"));
    assert_eq!(t.expire(now, &mut s), 2);
    assert_eq!((counters(&s, 0), counters(&s, 1)), ((0, 0, 0), (0, 0, 0)));
    assert_eq!(s.services[0].stats.conns, 2);
    assert_eq!(s.services[0].stats.inpkts, 2);
    // ops is UDP-only: a TCP service with ops schedules normally.
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Masq);
    sv.ops = true;
    let mut s = sv.build();
    let c = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, now, 0)
        .unwrap();
    assert!(!t.get(c).is_one_packet());
}

#[test]
fn fullnat_local_ports_are_unique_per_real_server_and_run_out() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::FullNat);
    sv.dests.truncate(1);
    sv.local = vec!["203.0.113.1", "2001:db8::1", "203.0.113.2"];
    let mut s = sv.build();
    let mut t = table();
    // Given reversed on purpose: the table orders the bounds.
    t.set_fullnat_ports(std::ops::RangeInclusive::new(5004, 5000));
    let now = t0();
    let mut seen = std::collections::HashSet::new();
    let mut ids = Vec::new();
    for k in 0..10u16 {
        let id = t
            .schedule(
                &mut s,
                0,
                &syn("10.0.0.1", 40000 + k),
                60,
                now,
                u64::from(k) * 7919,
            )
            .unwrap();
        let c = t.get(id);
        assert!(c.laddr.is_ipv4(), "family of the real server");
        assert!((5000..=5004).contains(&c.lport));
        assert!(
            seen.insert((c.laddr, c.lport)),
            "duplicate {:?}",
            (c.laddr, c.lport)
        );
        assert_eq!(
            t.lookup_out(Protocol::Tcp, ip("198.18.0.1"), 8080, c.laddr, c.lport),
            Some(id)
        );
        ids.push(id);
    }
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.0.0.1", 41000), 60, now, 5),
        Err(ScheduleError::NoLocalAddr)
    );
    assert_eq!(t.len(), 10);
    // Freeing one frees its tuple.
    let freed = t.get(ids[3]).clone();
    t.on_packet(ids[3], Direction::In, Some(TcpFlags::RST), 40, now, &mut s);
    t.on_packet(ids[3], Direction::Out, Some(TcpFlags::RST), 40, now, &mut s);
    assert_eq!(t.expire(now + secs(10), &mut s), 1);
    let id = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 41000), 60, now + secs(10), 5)
        .unwrap();
    assert_eq!(
        (t.get(id).laddr, t.get(id).lport),
        (freed.laddr, freed.lport)
    );
}

#[test]
fn fullnat_port_conflicts_are_counted_per_local_address() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::FullNat);
    // An IPv6 address first: the count goes to the IPv4 one's slot.
    sv.local = vec!["2001:db8::1", "203.0.113.1"];
    let mut s = sv.build();
    let mut t = table();
    t.set_fullnat_ports(7000..=7001);
    let conflicts = |s: &ServiceTable| s.services[0].laddr_conflicts.clone();
    // The first conn to 198.18.0.1 finds its port free.
    t.schedule(&mut s, 0, &syn("10.0.0.1", 100), 60, t0(), 0)
        .unwrap();
    assert_eq!(conflicts(&s), [0, 0]);
    // The same random start to 198.18.0.2 (rr): another real server, the
    // same port is free for it.
    t.schedule(&mut s, 0, &syn("10.0.0.1", 101), 60, t0(), 0)
        .unwrap();
    assert_eq!(conflicts(&s), [0, 0]);
    // Back to 198.18.0.1 from the same start: the first port tried is
    // held, the next one is free.
    t.schedule(&mut s, 0, &syn("10.0.0.1", 102), 60, t0(), 0)
        .unwrap();
    assert_eq!(conflicts(&s), [0, 1]);
    t.schedule(&mut s, 0, &syn("10.0.0.1", 103), 60, t0(), 0)
        .unwrap();
    assert_eq!(conflicts(&s), [0, 2]);
    // Both ports held for both servers: each try is a conflict.
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.0.0.1", 104), 60, t0(), 0),
        Err(ScheduleError::NoLocalAddr)
    );
    assert_eq!(conflicts(&s), [0, 4]);
    // The listing's view carries them, summed over workers.
    let live = crate::view::LiveService::of(&s.services[0], None);
    assert_eq!(live.conflicts_of(ip("203.0.113.1")), 4);
    assert_eq!(live.conflicts_of(ip("2001:db8::1")), 0);
    // A pool edit keeps the count of an address that stays; a new or
    // re-added one starts at 0.
    let svc = &mut s.services[0];
    svc.set_local_addrs(&[ip("203.0.113.1"), ip("203.0.113.2")]);
    assert_eq!(svc.laddr_conflicts, [4, 0]);
    svc.set_local_addrs(&[ip("203.0.113.2")]);
    svc.set_local_addrs(&[ip("203.0.113.2"), ip("203.0.113.1")]);
    assert_eq!(svc.laddr_conflicts, [0, 0]);
}

#[test]
fn fullnat_ports_are_reused_across_real_servers_and_need_a_family_match() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::FullNat);
    sv.local = vec!["203.0.113.1"];
    let mut s = sv.build();
    let mut t = table();
    t.set_fullnat_ports(6000..=6001);
    // 2 servers x 2 ports: four conns, each server's pair unique.
    for k in 0..4u16 {
        t.schedule(&mut s, 0, &syn("10.0.0.1", 100 + k), 60, t0(), 0)
            .unwrap();
    }
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.0.0.1", 200), 60, t0(), 0),
        Err(ScheduleError::NoLocalAddr)
    );
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::FullNat);
    sv.local = vec!["2001:db8::1"];
    let mut s = sv.build();
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.0.0.1", 300), 60, t0(), 0),
        Err(ScheduleError::NoLocalAddr)
    );
}

#[test]
fn full_table_evicts_the_soonest_half_open_conn_and_without_drop_entry_never_established() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = ConnTable::new(4, Timeouts::default());
    t.set_sysctls(ConnSysctls {
        drop_entry: false,
        ..ConnSysctls::default()
    });
    let now = t0();
    let est: Vec<ConnId> = (0..2u16)
        .map(|k| established(&mut t, &mut s, "10.0.0.1", k, now))
        .collect();
    let old = t
        .schedule(&mut s, 0, &syn("10.6.6.6", 1), 60, now, 0)
        .unwrap();
    let _young = t
        .schedule(&mut s, 0, &syn("10.6.6.6", 2), 60, now + secs(1), 0)
        .unwrap();
    assert_eq!(t.len(), 4);
    let n = t
        .schedule(&mut s, 0, &syn("10.6.6.6", 3), 60, now + secs(2), 0)
        .unwrap();
    assert_eq!(t.evictions(), 1);
    assert_eq!(t.len(), 4);
    assert_eq!(n, old, "slot of the evicted conn reused");
    assert_eq!(tcp_in(&t, "10.6.6.6", 1), None);
    assert!(tcp_in(&t, "10.6.6.6", 2).is_some());
    for id in &est {
        assert_eq!(t.get(*id).state, ConnState::Established);
    }
    // Counters follow the eviction (2 ESTABLISHED + 2 SYN_RECV active).
    assert_eq!(counted(&s), 4);
    // Only ESTABLISHED conns: nothing may be evicted.
    for c in ["10.6.6.6:2", "10.6.6.6:3"] {
        let (a, p) = c.split_once(':').unwrap();
        let id = tcp_in(&t, a, p.parse().unwrap()).unwrap();
        ack_in(&mut t, id, now + secs(2), &mut s);
    }
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.6.6.6", 4), 60, now + secs(3), 0),
        Err(ScheduleError::TableFull)
    );
    assert_eq!(t.evictions(), 1);
}

/// drop_entry (on by default): with no half-open or closing conn left, an
/// ESTABLISHED conn that carried few client packets (a spoofed SYN + ACK
/// in DR) is reclaimed, the one nearest to expiry first; conns with more
/// than `DROP_ENTRY_MAX_PKTS` client packets and half-open ones keep their
/// precedence rules.
#[test]
fn drop_entry_reclaims_established_conns_with_few_client_packets() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = ConnTable::new(3, Timeouts::default());
    assert!(t.sysctls().drop_entry, "on by default");
    let now = t0();
    // Three ESTABLISHED conns (SYN + ACK: 2 client packets), armed 1 s
    // apart; the first then carries a long transfer (> 8 packets).
    let ids: Vec<ConnId> = (0..3u16)
        .map(|k| {
            let at = now + secs(u64::from(k));
            let id = established(&mut t, &mut s, "10.9.9.9", k, at);
            assert_eq!(t.get(id).in_pkts(), 2);
            id
        })
        .collect();
    for _ in 0..DROP_ENTRY_MAX_PKTS {
        t.on_packet(
            ids[0],
            Direction::In,
            Some(TcpFlags::ACK),
            1500,
            now,
            &mut s,
        );
    }
    assert_eq!(t.get(ids[0]).in_pkts(), 2 + DROP_ENTRY_MAX_PKTS);
    // No half-open conn: the few-packet ESTABLISHED conn nearest to expiry
    // goes (port 1; port 0 expires sooner but is busy).
    let n = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 7), 60, now + secs(3), 0)
        .unwrap();
    assert_eq!(t.evictions(), 1);
    assert_eq!(n, ids[1], "slot of the evicted conn reused");
    assert_eq!(tcp_in(&t, "10.9.9.9", 1), None);
    assert!(tcp_in(&t, "10.9.9.9", 0).is_some());
    // Now a SYN_RECV conn (the one just made) exists: it goes before the
    // remaining few-packet ESTABLISHED conn.
    let m = t
        .schedule(&mut s, 0, &syn("10.0.0.2", 8), 60, now + secs(4), 0)
        .unwrap();
    assert_eq!(m, n, "the half-open conn was taken first");
    assert!(tcp_in(&t, "10.9.9.9", 2).is_some());
    // Counters stay consistent: three conns, all counted once.
    assert_eq!(counted(&s), 3);
    // Make every conn busy: nothing may be evicted any more.
    for id in t.iter().map(|(id, _)| id).collect::<Vec<_>>() {
        for _ in 0..=DROP_ENTRY_MAX_PKTS {
            ack_in(&mut t, id, now + secs(5), &mut s);
        }
    }
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.0.0.3", 9), 60, now + secs(6), 0),
        Err(ScheduleError::TableFull)
    );
    assert_eq!(t.evictions(), 2);
}

#[test]
fn templates_are_never_evicted_and_a_failed_reclaim_evicts_nothing() {
    let mut sv = Svc::new(Protocol::Udp, FwdMethod::Route);
    sv.persistence = Some(secs(300));
    let mut s = sv.build();
    let mut t = ConnTable::new(2, Timeouts::default());
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 1), 80, now, 0)
        .unwrap(); // template + conn
    // A new client needs two entries but only the conn may go: refused,
    // and the conn survives.
    assert_eq!(
        t.schedule(&mut s, 0, &udp("10.0.0.9", 1), 80, now, 0),
        Err(ScheduleError::TableFull)
    );
    assert_eq!(t.evictions(), 0);
    assert_eq!(
        t.lookup_in(Protocol::Udp, ip("10.0.0.1"), 1, ip(VIP), 80),
        Some(a)
    );
    // The same client needs only a conn entry: its older conn makes room.
    t.schedule(&mut s, 0, &udp("10.0.0.1", 2), 80, now + secs(1), 0)
        .unwrap();
    assert_eq!(t.evictions(), 1);
    assert_eq!(
        t.lookup_in(Protocol::Udp, ip("10.0.0.1"), 1, ip(VIP), 80),
        None
    );
    assert_eq!(t.iter().filter(|(_, c)| c.is_template()).count(), 1);
    assert_eq!(counters(&s, 0), (0, 1, 1));
}

#[test]
fn two_entries_can_be_reclaimed_for_a_new_template() {
    let mut sv = Svc::new(Protocol::Udp, FwdMethod::Route);
    sv.persistence = Some(secs(300));
    let mut s = sv.build();
    let mut t = ConnTable::new(3, Timeouts::default());
    let now = t0();
    t.schedule(&mut s, 0, &udp("10.0.0.1", 1), 80, now, 0)
        .unwrap();
    t.schedule(&mut s, 0, &udp("10.0.0.1", 2), 80, now, 0)
        .unwrap();
    t.schedule(&mut s, 0, &udp("10.0.0.9", 1), 80, now, 0)
        .unwrap();
    assert_eq!(t.evictions(), 2);
    assert_eq!(t.iter().filter(|(_, c)| c.is_template()).count(), 2);
}

#[test]
fn removed_server_without_expire_nodest_conn_drops_until_timeout() {
    let mut s = Svc::new(Protocol::Udp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 53), 80, now, 0)
        .unwrap();
    s.services[0].dests[0].available = false;
    let d = t.resolve_in(Protocol::Udp, ip("10.0.0.1"), 53, ip(VIP), 80, None, &mut s);
    assert_eq!(d, InDecision::DropNoDest);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t.get(a).expires,
        now + secs(300),
        "a dropped packet does not re-arm"
    );
    assert_eq!(t.expire(now + secs(300), &mut s), 1);
    assert_eq!(counters(&s, 0), (0, 0, 0));
}

#[test]
fn removed_server_with_expire_nodest_conn_reschedules() {
    let mut s = Svc::new(Protocol::Udp, FwdMethod::Masq).build();
    let mut t = table();
    t.set_sysctls(ConnSysctls {
        expire_nodest_conn: true,
        ..ConnSysctls::default()
    });
    let now = t0();
    t.schedule(&mut s, 0, &udp("10.0.0.1", 53), 80, now, 0)
        .unwrap();
    s.services[0].dests[0].available = false;
    let d = t.resolve_in(Protocol::Udp, ip("10.0.0.1"), 53, ip(VIP), 80, None, &mut s);
    assert_eq!(d, InDecision::Schedule);
    assert!(t.is_empty());
    assert_eq!(counters(&s, 0), (0, 0, 0));
    let b = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 53), 80, now, 0)
        .unwrap();
    assert_eq!(t.get(b).daddr, ip("198.18.0.2"));
    // TCP: the conn goes, but a non-SYN segment cannot make a new one.
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 7), 60, now, 0)
        .unwrap();
    ack_in(&mut t, a, now, &mut s);
    s.services[0].dests[0].available = false;
    let d = t.resolve_in(
        Protocol::Tcp,
        ip("10.0.0.1"),
        7,
        ip(VIP),
        80,
        Some(TcpFlags::ACK),
        &mut s,
    );
    assert_eq!(d, InDecision::Schedule);
    assert_eq!(counters(&s, 0), (0, 0, 0));
    let f = flow(Protocol::Tcp, "10.0.0.1", 7, Some(TcpFlags::ACK));
    assert_eq!(
        t.schedule(&mut s, 0, &f, 52, now, 0),
        Err(ScheduleError::NotSyn)
    );
}

#[test]
fn syn_to_a_quiesced_server_reschedules_only_with_expire_nodest_conn() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 7), 60, now, 0)
        .unwrap();
    s.services[0].dests[0].weight = 0;
    let resolve = |t: &mut ConnTable, s: &mut ServiceTable, f| {
        t.resolve_in(Protocol::Tcp, ip("10.0.0.1"), 7, ip(VIP), 80, Some(f), s)
    };
    assert_eq!(
        resolve(&mut t, &mut s, TcpFlags::SYN),
        InDecision::Forward(a)
    );
    t.set_sysctls(ConnSysctls {
        expire_nodest_conn: true,
        ..ConnSysctls::default()
    });
    assert_eq!(
        resolve(&mut t, &mut s, TcpFlags::ACK),
        InDecision::Forward(a),
        "only SYNs"
    );
    assert_eq!(resolve(&mut t, &mut s, TcpFlags::SYN), InDecision::Schedule);
    assert!(t.is_empty());
}

#[test]
fn syn_reuses_or_reschedules_a_finished_conn_per_conn_reuse_mode() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let close = |t: &mut ConnTable, s: &mut ServiceTable, port| {
        let id = t
            .schedule(s, 0, &syn("10.0.0.1", port), 60, now, 0)
            .unwrap();
        t.on_packet(id, Direction::In, Some(TcpFlags::ACK), 52, now, s);
        t.on_packet(id, Direction::In, Some(TcpFlags::FIN_ACK), 52, now, s);
        t.on_packet(id, Direction::Out, Some(TcpFlags::FIN_ACK), 52, now, s);
        assert_eq!(t.get(id).state, ConnState::TimeWait);
        id
    };
    // Default mode 1: a SYN on TIME_WAIT starts afresh.
    let a = close(&mut t, &mut s, 1);
    let d = t.resolve_in(
        Protocol::Tcp,
        ip("10.0.0.1"),
        1,
        ip(VIP),
        80,
        Some(TcpFlags::SYN),
        &mut s,
    );
    assert_eq!(d, InDecision::Schedule);
    assert!(t.is_empty(), "{a:?} released");
    assert_eq!(counters(&s, 0), (0, 0, 0));
    // Mode 0: the old conn takes the SYN (TIME_WAIT -> SYN_RECV, active).
    t.set_sysctls(ConnSysctls {
        conn_reuse_mode: 0,
        ..ConnSysctls::default()
    });
    let b = close(&mut t, &mut s, 2);
    let d = t.resolve_in(
        Protocol::Tcp,
        ip("10.0.0.1"),
        2,
        ip(VIP),
        80,
        Some(TcpFlags::SYN),
        &mut s,
    );
    assert_eq!(d, InDecision::Forward(b));
    t.on_packet(b, Direction::In, Some(TcpFlags::SYN), 60, now, &mut s);
    assert_eq!(t.get(b).state, ConnState::SynRecv);
    let dest = if t.get(b).daddr == ip("198.18.0.1") {
        0
    } else {
        1
    };
    assert_eq!(counters(&s, dest), (1, 0, 0));
    // Non-SYN segments never reschedule.
    t.set_sysctls(ConnSysctls::default());
    let c = close(&mut t, &mut s, 3);
    let d = t.resolve_in(
        Protocol::Tcp,
        ip("10.0.0.1"),
        3,
        ip(VIP),
        80,
        Some(TcpFlags::ACK),
        &mut s,
    );
    assert_eq!(d, InDecision::Forward(c));
}

#[test]
fn conn_reuse_spares_persistent_conns_and_bit_1_covers_dr_fin_wait() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Route);
    sv.persistence = Some(secs(300));
    let mut s = sv.build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, now, 0)
        .unwrap();
    t.on_packet(a, Direction::In, Some(TcpFlags::RST), 40, now, &mut s);
    t.on_packet(a, Direction::In, Some(TcpFlags::ACK), 40, now, &mut s);
    t.on_packet(a, Direction::In, Some(TcpFlags::RST), 40, now, &mut s);
    assert_eq!(t.get(a).state, ConnState::Close);
    let d = t.resolve_in(
        Protocol::Tcp,
        ip("10.0.0.1"),
        1,
        ip(VIP),
        80,
        Some(TcpFlags::SYN),
        &mut s,
    );
    assert_eq!(d, InDecision::Forward(a), "controlled by a template");

    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let b = t
        .schedule(&mut s, 0, &syn("10.0.0.2", 1), 60, now, 0)
        .unwrap();
    ack_in(&mut t, b, now, &mut s);
    t.on_packet(b, Direction::In, Some(TcpFlags::FIN_ACK), 52, now, &mut s);
    assert_eq!(t.get(b).state, ConnState::FinWait);
    let resolve = |t: &mut ConnTable, s: &mut ServiceTable| {
        t.resolve_in(
            Protocol::Tcp,
            ip("10.0.0.2"),
            1,
            ip(VIP),
            80,
            Some(TcpFlags::SYN),
            s,
        )
    };
    assert_eq!(resolve(&mut t, &mut s), InDecision::Forward(b));
    t.set_sysctls(ConnSysctls {
        conn_reuse_mode: 3,
        ..ConnSysctls::default()
    });
    assert_eq!(resolve(&mut t, &mut s), InDecision::Schedule);
}

#[test]
fn thresholds_mark_and_clear_overload() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Route);
    sv.dests.truncate(1);
    let mut s = sv.build();
    s.services[0].dests[0].u_threshold = 2;
    let mut t = table();
    let now = t0();
    t.schedule(&mut s, 0, &syn("10.0.0.1", 1), 60, now, 0)
        .unwrap();
    assert!(!s.services[0].dests[0].overloaded);
    t.schedule(&mut s, 0, &syn("10.0.0.1", 2), 60, now, 0)
        .unwrap();
    assert!(s.services[0].dests[0].overloaded);
    assert_eq!(
        t.schedule(&mut s, 0, &syn("10.0.0.1", 3), 60, now, 0),
        Err(ScheduleError::NoDest)
    );
    assert_eq!(t.expire(now + secs(60), &mut s), 2);
    assert!(!s.services[0].dests[0].overloaded);
}

#[test]
fn stats_stop_when_the_server_is_removed() {
    let mut s = Svc::new(Protocol::Udp, FwdMethod::Masq).build();
    let mut t = table();
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 53), 80, now, 0)
        .unwrap();
    s.services[0].dests[0].available = false;
    t.on_packet(a, Direction::Out, None, 500, now, &mut s);
    assert_eq!(s.services[0].dests[0].stats.outpkts, 0);
    assert_eq!(s.services[0].stats.outpkts, 0);
    assert_eq!(s.services[0].dests[0].stats.inpkts, 1);
}

#[test]
fn ipv6_flows_and_prefix_64_persistence() {
    let mut sv = Svc::new(Protocol::Tcp, FwdMethod::Masq);
    sv.dests = vec![
        ("2001:db8:f::1", 80, FwdMethod::Masq),
        ("2001:db8:f::2", 80, FwdMethod::Masq),
    ];
    sv.persistence = Some(secs(60));
    sv.prefix = 64;
    let mut s = sv.build();
    s.services[0].key.addr = ip("2001:db8::80");
    let mut t = table();
    let f = |c: &str, p| NewFlow {
        vaddr: ip("2001:db8::80"),
        ..syn(c, p)
    };
    let a = t
        .schedule(&mut s, 0, &f("2001:db8:1:2::5", 9), 80, t0(), 0)
        .unwrap();
    let b = t
        .schedule(&mut s, 0, &f("2001:db8:1:2::6", 9), 80, t0(), 0)
        .unwrap();
    assert_eq!(t.get(a).daddr, t.get(b).daddr);
    assert_eq!(
        t.lookup_in(
            Protocol::Tcp,
            ip("2001:db8:1:2::5"),
            9,
            ip("2001:db8::80"),
            80
        ),
        Some(a)
    );
    assert_eq!(
        t.lookup_out(Protocol::Tcp, t.get(b).daddr, 80, ip("2001:db8:1:2::6"), 9),
        Some(b)
    );
    let tpl = t.get(t.get(a).control().unwrap());
    assert_eq!(tpl.caddr, ip("2001:db8:1:2::"));
}

#[test]
fn many_conns_churn_keeps_indexes_and_counters_consistent() {
    let mut s = Svc::new(Protocol::Udp, FwdMethod::Masq).build();
    let mut t = ConnTable::with_seed(
        2000,
        Timeouts {
            udp: secs(30),
            ..Timeouts::default()
        },
        99,
    );
    let mut now = t0();
    for round in 0..20u64 {
        for k in 0..150u16 {
            let c = format!("10.{}.{}.{}", round % 7, k / 200, k % 200);
            if let InDecision::Schedule =
                t.resolve_in(Protocol::Udp, ip(&c), k, ip(VIP), 80, None, &mut s)
            {
                t.schedule(&mut s, 0, &udp(&c, k), 80, now, round).unwrap();
            }
        }
        now = now + secs(7);
        t.expire(now, &mut s);
        let live = t.iter().count();
        assert_eq!(live, t.len());
        let inact: u32 = (0..2).map(|d| counters(&s, d).1).sum();
        assert_eq!(inact as usize, live);
        for (id, c) in t.iter() {
            assert_eq!(
                t.lookup_in(Protocol::Udp, c.caddr, c.cport, c.vaddr, c.vport),
                Some(id)
            );
            assert_eq!(
                t.lookup_out(Protocol::Udp, c.daddr, c.dport, c.laddr, c.lport),
                Some(id)
            );
            assert!(c.expires > now);
        }
    }
    t.expire(now + secs(30), &mut s);
    assert!(t.is_empty());
}

#[test]
fn huge_timeouts_saturate_the_deadline() {
    let mut s = Svc::new(Protocol::Udp, FwdMethod::Masq).build();
    let mut t = table();
    t.set_timeouts(Timeouts {
        udp: Duration::MAX,
        ..Timeouts::default()
    });
    let now = t0();
    let a = t
        .schedule(&mut s, 0, &udp("10.0.0.1", 5353), 100, now, 0)
        .unwrap();
    assert_eq!(t.get(a).expires, crate::time::Timestamp(u64::MAX));
    assert_eq!(t.get(a).expires, now + Duration::MAX);
    assert_eq!(t.expire(now + secs(86_400 * 365), &mut s), 0);
    assert_eq!(t.len(), 1);
}

#[test]
fn a_busy_flow_never_expires_and_goes_exactly_one_timeout_after_its_last_packet() {
    // Packets that keep the state push the deadline without touching the
    // wheel (lazy re-arm); the timer armed earlier fires, finds the real
    // deadline later and re-files the entry. Nothing may expire early or
    // late for it, and a state change with a shorter timeout applies at
    // once.
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    let start = t0();
    let id = established(&mut t, &mut s, "10.0.0.1", 40000, start);
    assert_eq!(state(&t, id), ConnState::Established);
    let mut now = start;
    // One packet every 97 s for an hour, the clock ticking every second.
    for step in 1..=(3600 / 97) {
        let next = start + secs(97 * step);
        while now < next {
            now = now + secs(1);
            assert_eq!(t.expire(now, &mut s), 0, "expired at {now:?}");
        }
        ack_in(&mut t, id, now, &mut s);
    }
    let last = now;
    assert_eq!(t.get(id).expires, last + secs(900));
    assert_eq!(t.expire(last + secs(899), &mut s), 0);
    assert_eq!(t.len(), 1);
    assert_eq!(t.expire(last + secs(900), &mut s), 1);
    assert_eq!(t.len(), 0);

    // ESTABLISHED (900 s) then FIN (input-only FIN_WAIT, 120 s): the
    // shorter deadline holds although the earlier timer was far out.
    let now = last + secs(900);
    let id = t
        .schedule(&mut s, 0, &syn("10.0.0.2", 40000), 60, now, 0)
        .unwrap();
    ack_in(&mut t, id, now, &mut s);
    let fin = now + secs(10);
    t.on_packet(id, Direction::In, Some(TcpFlags::FIN_ACK), 52, fin, &mut s);
    assert_eq!(state(&t, id), ConnState::FinWait);
    assert_eq!(t.expire(fin + secs(119), &mut s), 0);
    assert_eq!(t.expire(fin + secs(120), &mut s), 1);
}

#[test]
fn reply_conns_are_counted_in_and_out_of_the_table() {
    // Gates the reply lookup of every new connection (dataplane).
    let now = t0();
    let mut dr = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    t.schedule(&mut dr, 0, &syn("10.0.0.1", 40000), 60, now, 0)
        .unwrap();
    assert!(!t.has_reply_conns(), "a DR conn sees no replies");
    let mut nat = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
    let mut t = table();
    t.schedule(&mut nat, 0, &syn("10.0.0.2", 40000), 60, now, 0)
        .unwrap();
    assert!(t.has_reply_conns());
    // SYN_RECV lives 60 s.
    assert_eq!(t.expire(now + secs(60), &mut nat), 1);
    assert!(!t.has_reply_conns());
}

// ---- collision floods (issue 15) -------------------------------------------

/// `n` client tuples `caddr:cport -> VIP:80` whose hash under `t`'s seed has
/// its top `bits` bits clear: their home slots all lie in the first
/// `2^-bits` of the client index, whatever its size. A client that knows the
/// seed finds them by brute force, as here (about `n * 2^bits` hashes).
fn collision_flood(t: &ConnTable, n: usize, bits: u32) -> Vec<(IpAddr, u16)> {
    (0u32..)
        .map(|i| {
            (
                IpAddr::from((0x0a00_0000 | (i >> 6)).to_be_bytes()),
                1024 + (i & 63) as u16,
            )
        })
        .filter(|&(c, p)| t.hash_in(Protocol::Tcp, c, p, ip(VIP), 80) >> (64 - bits) == 0)
        .take(n)
        .collect()
}

/// Opens a TCP conn for each tuple of `clients` (rr over the service's
/// dests); after every power of two from 64 on, the mean probe distance of
/// a lookup of the conns opened so far.
fn fill_and_probe(t: &mut ConnTable, s: &mut ServiceTable, clients: &[(IpAddr, u16)]) -> Vec<f64> {
    let mut means = Vec::new();
    for (k, &(caddr, cport)) in clients.iter().enumerate() {
        let f = NewFlow {
            caddr,
            cport,
            ..syn(VIP, 0)
        };
        t.schedule(s, 0, &f, 60, t0(), k as u64).expect("room");
        let n = k + 1;
        if n >= 64 && n.is_power_of_two() {
            let sum: usize = clients[..n]
                .iter()
                .map(|&(c, p)| t.probes_in(Protocol::Tcp, c, p, ip(VIP), 80))
                .sum();
            means.push(sum as f64 / n as f64);
        }
    }
    means
}

/// Tuples built to collide under the fixed seed make every lookup walk a
/// probe run as long as the flood (the mean distance doubles with it); in a
/// table with another seed the same tuples probe like ordinary clients.
#[test]
fn a_flood_colliding_under_the_fixed_seed_is_flat_under_another() {
    const CAP: usize = 4096; // 6145 slots: 12 bits pin the home to slot 0 or 1
    let fixed = ConnTable::new(CAP, Timeouts::default());
    let flood = collision_flood(&fixed, 512, 12);
    let ordinary: Vec<(IpAddr, u16)> = (0..512u32)
        .map(|i| {
            (
                IpAddr::from((0x0b00_0000 | (i >> 6)).to_be_bytes()),
                1024 + (i & 63) as u16,
            )
        })
        .collect();
    let run = |seed: u64, clients: &[(IpAddr, u16)]| {
        let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
        let mut t = ConnTable::with_seed(CAP, Timeouts::default(), seed);
        fill_and_probe(&mut t, &mut s, clients)
    };
    let under_fixed = run(FIXED_HASH_SEED, &flood);
    let under_other = run(0x0123_4567_89ab_cdef, &flood);
    let baseline = run(FIXED_HASH_SEED, &ordinary);
    // Flood sizes 64, 128, 256, 512: a run of n keys from one home slot
    // probes (n + 1) / 2 on average.
    for (i, m) in under_fixed.iter().enumerate() {
        let n = 64 << i;
        assert!(*m >= n as f64 / 4.0, "fixed seed, flood {n}: mean {m}");
    }
    for (i, (o, b)) in under_other.iter().zip(&baseline).enumerate() {
        assert!(*b < 1.5, "ordinary clients, {}: mean {b}", 64 << i);
        assert!(
            *o < b + 0.5,
            "other seed, flood {}: mean {o} vs {b}",
            64 << i
        );
    }
}

/// The data plane's one-pass [`ConnTable::packet_in_hashed`] does what
/// `resolve_in` then `on_packet` do: same decision, same conn (state,
/// timer, packets), same counters and stats, and hands back the conn's
/// method and its server's next hop.
#[test]
fn packet_in_is_resolve_in_then_on_packet() {
    let flags = [
        TcpFlags::ACK,
        TcpFlags::FIN_ACK,
        TcpFlags::ACK,
        TcpFlags::SYN,
        TcpFlags::RST,
        TcpFlags::default(),
    ];
    for (expire_nodest_conn, gone) in [(false, false), (false, true), (true, true)] {
        let mut s1 = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
        let mut s2 = Svc::new(Protocol::Tcp, FwdMethod::Masq).build();
        let (mut t1, mut t2) = (table(), table());
        for t in [&mut t1, &mut t2] {
            t.set_sysctls(ConnSysctls {
                expire_nodest_conn,
                ..ConnSysctls::default()
            });
        }
        let now = t0();
        let a = t1.schedule(&mut s1, 0, &syn("10.0.0.1", 7), 60, now, 0);
        let b = t2.schedule(&mut s2, 0, &syn("10.0.0.1", 7), 60, now, 0);
        assert_eq!(a, b);
        for (k, f) in flags.into_iter().enumerate() {
            if gone && k == 2 {
                s1.services[0].dests[0].available = false;
                s2.services[0].dests[0].available = false;
            }
            let at = now + secs(k as u64);
            let (src, vip) = (ip("10.0.0.1"), ip(VIP));
            let d1 = t1.resolve_in(Protocol::Tcp, src, 7, vip, 80, Some(f), &mut s1);
            if let InDecision::Forward(id) = d1 {
                t1.on_packet(id, Direction::In, Some(f), 52, at, &mut s1);
            }
            let d2 = t2.packet_in(Protocol::Tcp, src, 7, vip, 80, Some(f), 52, at, &mut s2);
            match (d1, d2) {
                (InDecision::Forward(i1), InPacket::Forward { id, fwd, next_hop }) => {
                    assert_eq!(i1, id);
                    assert_eq!(fwd, FwdMethod::Masq);
                    assert_eq!(next_hop, s2.dest(t2.get(id).dest).next_hop);
                    assert_eq!(t1.get(i1), t2.get(id), "step {k}");
                    assert_eq!(t2.route(id), (t2.get(id).fwd, t2.get(id).dest));
                    let c = t2.get(id);
                    assert_eq!(t2.server(id), (c.daddr, c.dport));
                    assert_eq!(t2.local_side_of(id), (c.laddr, c.lport));
                }
                (InDecision::Schedule, InPacket::Schedule)
                | (InDecision::DropNoDest, InPacket::DropNoDest) => {}
                other => panic!("step {k}: {other:?}"),
            }
            assert_eq!(t1.len(), t2.len());
            assert_eq!(format!("{:?}", s1.services), format!("{:?}", s2.services));
        }
    }
}

/// A burst of conns falling due in the same tick, expired with a budget:
/// each call takes at most that many, the rest stay due (still found by a
/// lookup, first in line for the eviction scan) until later calls take
/// them; a packet for one of them in between keeps it, as a packet racing
/// the kernel's timer would.
#[test]
fn expiry_with_a_budget_spreads_a_same_tick_burst_over_calls() {
    let mut s = Svc::new(Protocol::Udp, FwdMethod::Masq).build();
    let mut t = ConnTable::new(256, Timeouts::default());
    let now = t0();
    let ids: Vec<ConnId> = (0..100u16)
        .map(|p| {
            t.schedule(&mut s, 0, &udp("10.0.0.1", 1000 + p), 100, now, 0)
                .unwrap()
        })
        .collect();
    let due = now + secs(300);
    assert!(!t.expiry_pending());
    assert_eq!(t.expire_some(due, &mut s, 30), 30);
    assert!(t.expiry_pending(), "70 left due");
    assert_eq!(t.len(), 70);
    // One of those left is still a conn; a datagram re-arms it.
    let kept = (0..100u16)
        .map(|p| t.lookup_in(Protocol::Udp, ip("10.0.0.1"), 1000 + p, ip(VIP), 80))
        .find_map(|id| id)
        .expect("some conn is left");
    assert!(ids.contains(&kept));
    t.on_packet(kept, Direction::In, None, 100, due, &mut s);
    // The other 69 in slices of at most 30 (a re-filed timer takes a
    // share of a slice too).
    let mut calls = Vec::new();
    while t.expiry_pending() {
        calls.push(t.expire_some(due, &mut s, 30));
        assert!(calls.len() < 10, "{calls:?}");
    }
    assert!(calls.iter().all(|&n| n <= 30), "{calls:?}");
    assert_eq!(calls.iter().sum::<usize>(), 69, "{calls:?}");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(t.len(), 1);
    assert_eq!(t.expire(due + secs(300), &mut s), 1);
    assert_eq!(t.len(), 0);
}

/// The records a master's table has decided on since the last call.
fn synced(t: &mut ConnTable) -> Vec<SyncRecord> {
    t.drain_sync().collect()
}

#[test]
fn a_master_syncs_conns_in_the_kernels_states_and_templates_with_every_look() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route);
    s.persistence = Some(secs(300));
    let mut s = s.build();
    let mut t = table();
    t.set_sync_master(true);
    let now = t0();
    let id = t
        .schedule(&mut s, 0, &syn("10.0.0.1", 1000), 60, now, 0)
        .unwrap();
    // The SYN: the conn is SYN_RECV (not synced), its template is.
    let r = synced(&mut t);
    assert_eq!(r.len(), 1);
    assert!(r[0].template);
    assert_eq!(
        (r[0].timeout, r[0].cport, r[0].fwd),
        (300, 0, FwdMethod::Route)
    );
    let ack = |t: &mut ConnTable, s: &mut ServiceTable| client_ack(t, s, now);
    ack(&mut t, &mut s);
    assert_eq!(synced(&mut t).iter().filter(|r| !r.template).count(), 0);
    ack(&mut t, &mut s);
    let r = synced(&mut t);
    let c: Vec<_> = r.iter().filter(|r| !r.template).collect();
    assert_eq!(c.len(), 1, "the third packet");
    assert_eq!(c[0].state, ConnState::Established);
    assert_eq!(
        (c[0].cport, c[0].timeout, c[0].inactive),
        (1000, 900, false)
    );
    assert_eq!(c[0].daddr, t.get(id).daddr);
    // Off: nothing more is decided.
    t.set_sync_master(false);
    ack(&mut t, &mut s);
    assert!(synced(&mut t).is_empty());
}

/// An ACK of client 10.0.0.1:1000 to the VIP's port 80 (the synced
/// conns' client).
fn client_ack(t: &mut ConnTable, s: &mut ServiceTable, now: Timestamp) -> InPacket {
    t.packet_in(
        Protocol::Tcp,
        ip("10.0.0.1"),
        1000,
        ip(VIP),
        80,
        Some(TcpFlags::ACK),
        52,
        now,
        s,
    )
}

/// The entry a master sends for client 10.0.0.1:1000 of the VIP's port
/// 80 on the real server `daddr`:8080 (DR, ESTABLISHED, 900 s): the
/// tests state only what theirs changes.
fn synced_to(daddr: &str) -> SyncRecord {
    SyncRecord {
        caddr: ip("10.0.0.1"),
        cport: 1000,
        vaddr: ip(VIP),
        daddr: ip(daddr),
        dport: 8080,
        ..SyncRecord::sample()
    }
}

/// The update a master sends when `rec`'s conn closes: FIN_WAIT,
/// inactive, 120 s.
fn fin_of(rec: &SyncRecord) -> SyncRecord {
    SyncRecord {
        state: ConnState::FinWait,
        inactive: true,
        timeout: 120,
        ..*rec
    }
}

#[test]
fn a_backup_creates_updates_and_replaces_entries_as_the_kernel_does() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    let now = t0();
    let rec = SyncRecord {
        no_output: true,
        ..synced_to("198.18.0.2")
    };
    assert_eq!(t.apply_synced(&rec, &mut s, now), SyncApplied::Created);
    let id = tcp_in(&t, "10.0.0.1", 1000).unwrap();
    assert_eq!(t.get(id).daddr, ip("198.18.0.2"));
    assert_eq!(t.get(id).expires, now + secs(900));
    assert_eq!(counters(&s, 1), (1, 0, 0));
    // A packet of the flow goes to that server, no scheduling.
    match client_ack(&mut t, &mut s, now) {
        InPacket::Forward { id: got, .. } => assert_eq!(got, id),
        other => panic!("{other:?}"),
    }
    // An update: FIN_WAIT, inactive, the message's timeout.
    let fin = fin_of(&rec);
    assert_eq!(t.apply_synced(&fin, &mut s, now), SyncApplied::Updated);
    assert_eq!(state(&t, id), ConnState::FinWait);
    assert_eq!(counters(&s, 1), (0, 1, 0));
    assert_eq!(t.get(id).expires, now + secs(120));
    // The expiry of a conn bound elsewhere is ignored; an active one
    // to another server replaces it.
    let other = SyncRecord {
        daddr: ip("198.18.0.1"),
        ..fin
    };
    assert_eq!(t.apply_synced(&other, &mut s, now), SyncApplied::Ignored);
    let other = SyncRecord {
        inactive: false,
        state: ConnState::Established,
        ..other
    };
    assert_eq!(t.apply_synced(&other, &mut s, now), SyncApplied::Created);
    let id = tcp_in(&t, "10.0.0.1", 1000).unwrap();
    assert_eq!(t.get(id).daddr, ip("198.18.0.1"));
    assert_eq!((counters(&s, 0), counters(&s, 1)), ((1, 0, 0), (0, 0, 0)));
    assert_eq!(t.len(), 1);
    // A server this director does not have: created unbound (see
    // a_synced_conn_without_its_server_waits_unbound_and_binds_when_it_appears).
    let unknown = SyncRecord {
        cport: 2000,
        daddr: ip("198.18.0.99"),
        ..rec
    };
    assert_eq!(
        t.apply_synced(&unknown, &mut s, now),
        SyncApplied::CreatedUnbound
    );
    // v0 (no timeout): the state's own.
    let v0 = SyncRecord {
        cport: 3000,
        timeout: 0,
        ..rec
    };
    t.apply_synced(&v0, &mut s, now);
    let id = tcp_in(&t, "10.0.0.1", 3000).unwrap();
    assert_eq!(t.get(id).expires, now + secs(900));
}

#[test]
fn a_synced_fullnat_conn_takes_its_local_side_and_answers_replies() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::FullNat);
    s.local = vec!["198.18.9.1"];
    let mut s = s.build();
    let mut t = table();
    let now = t0();
    let rec = SyncRecord {
        fwd: FwdMethod::FullNat,
        local: Some((ip("198.18.9.1"), 4321)),
        ..synced_to("198.18.0.1")
    };
    assert_eq!(t.apply_synced(&rec, &mut s, now), SyncApplied::Created);
    assert!(t.learns_macs());
    let out = t
        .lookup_out(
            Protocol::Tcp,
            ip("198.18.0.1"),
            8080,
            ip("198.18.9.1"),
            4321,
        )
        .unwrap();
    assert_eq!(t.get(out).client_mac, [0; 6]);
    t.learn_client(out, MAC, 0);
    assert_eq!(t.get(out).client_mac, MAC);
}

#[test]
fn sloppy_tcp_creates_a_conn_on_any_segment_without_rst() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    t.set_sysctls(ConnSysctls {
        sloppy_tcp: true,
        ..ConnSysctls::default()
    });
    let now = t0();
    let r = t.schedule(
        &mut s,
        0,
        &flow(Protocol::Tcp, "10.0.0.1", 1, Some(TcpFlags::ACK)),
        60,
        now,
        0,
    );
    let id = r.unwrap();
    assert_eq!(state(&t, id), ConnState::Established);
    let rst = t.schedule(
        &mut s,
        0,
        &flow(Protocol::Tcp, "10.0.0.1", 2, Some(TcpFlags::RST)),
        60,
        now,
        0,
    );
    assert_eq!(rst, Err(ScheduleError::NotSyn));
}

/// `ip_vs_proc_conn` with no dest: the backup creates the conn unbound
/// (`ip_vs_conn_new` with `dest == NULL`), keeps it, binds it at its next
/// message once the server exists (`ip_vs_try_bind_dest`) or, beyond the
/// kernel, when the server is added; until then its packets are dropped
/// (never rescheduled elsewhere, not expired by `expire_nodest_conn`).
#[test]
fn a_synced_conn_without_its_server_waits_unbound_and_binds_when_it_appears() {
    let mut s = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let mut t = table();
    t.set_sysctls(ConnSysctls {
        expire_nodest_conn: true,
        ..ConnSysctls::default()
    });
    let now = t0();
    let rec = SyncRecord {
        no_output: true,
        ..synced_to("198.18.0.3")
    };
    assert_eq!(
        t.apply_synced(&rec, &mut s, now),
        SyncApplied::CreatedUnbound
    );
    let id = tcp_in(&t, "10.0.0.1", 1000).expect("created");
    assert_eq!(t.get(id).daddr, ip("198.18.0.3"));
    assert_eq!(t.unbound_len(), 1);
    assert_eq!((counters(&s, 0), counters(&s, 1)), ((0, 0, 0), (0, 0, 0)));
    let ack = |t: &mut ConnTable, s: &mut ServiceTable| client_ack(t, s, now);
    // Dropped, kept (not rescheduled to another server).
    assert_eq!(ack(&mut t, &mut s), InPacket::DropNoDest);
    assert_eq!(tcp_in(&t, "10.0.0.1", 1000), Some(id));
    // An update while the server is still unknown: still unbound, the
    // message's state and timeout taken.
    let fin = fin_of(&rec);
    assert_eq!(t.apply_synced(&fin, &mut s, now), SyncApplied::Updated);
    assert_eq!(t.get(id).expires, now + secs(120));
    assert_eq!(t.bind_unbound(&mut s), 0);
    // The server is added (an lvsadm -a, a reload): bound, counted by its
    // INACTIVE bit, forwarded.
    s.apply_specs(&[crate::service::ServiceSpec::new(
        ServiceKey {
            proto: Protocol::Tcp,
            addr: ip(VIP),
            port: 80,
            fwmark: 0,
        },
        crate::sched::SchedKind::Rr,
        ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
            .iter()
            .map(|a| crate::service::DestSpec::new(ip(a), 8080, FwdMethod::Route))
            .collect(),
    )]);
    let d3 = s.services[0].find_dest(ip("198.18.0.3"), 8080).unwrap();
    assert_eq!(t.bind_unbound(&mut s), 1);
    assert_eq!(t.unbound_len(), 0);
    assert_eq!(counters(&s, d3), (0, 1, 0));
    match ack(&mut t, &mut s) {
        InPacket::Forward { id: got, .. } => assert_eq!(got, id),
        other => panic!("{other:?}"),
    }
    // Nothing left to walk.
    assert_eq!(t.bind_unbound(&mut s), 0);
}

/// The kernel's own binding path: an unbound conn's next sync message
/// binds it once the server exists; an unbound template is never used to
/// pick a server (`ip_vs_check_template`) and the client is scheduled.
#[test]
fn an_unbound_entry_binds_at_its_next_message_and_an_unbound_template_is_unusable() {
    let mut svc = Svc::new(Protocol::Tcp, FwdMethod::Route);
    svc.persistence = Some(secs(300));
    let mut s = svc.build();
    let mut t = table();
    let now = t0();
    let tpl = SyncRecord {
        template: true,
        state: ConnState::None,
        caddr: ip("10.0.0.7"),
        cport: 0,
        timeout: 300,
        ..synced_to("198.18.0.9")
    };
    assert_eq!(
        t.apply_synced(&tpl, &mut s, now),
        SyncApplied::CreatedUnbound
    );
    // A new client conn does not follow the unbound template.
    let id = t
        .schedule(&mut s, 0, &syn("10.0.0.7", 5000), 60, now, 0)
        .unwrap();
    assert_ne!(t.get(id).daddr, ip("198.18.0.9"));
    // A conn synced unbound; the server is then renamed into place in
    // this director's table (dest 1 becomes 198.18.0.9): the next message
    // binds it, as `ip_vs_proc_conn` calls `ip_vs_try_bind_dest`.
    let rec = SyncRecord {
        template: false,
        state: ConnState::Established,
        cport: 6000,
        timeout: 900,
        ..tpl
    };
    assert_eq!(
        t.apply_synced(&rec, &mut s, now),
        SyncApplied::CreatedUnbound
    );
    s.services[0].dests[1].addr = ip("198.18.0.9");
    assert_eq!(t.apply_synced(&rec, &mut s, now), SyncApplied::Updated);
    let c = t.get(tcp_in(&t, "10.0.0.7", 6000).unwrap());
    assert_eq!((c.dest.svc, c.dest.dest), (0, 1));
    assert_eq!(counters(&s, 1).0, 1);
}

/// `sync_persist_mode = 1`: a conn under a persistence template is not
/// sent (`in_persistence`), its template still is; a conn of a service
/// without persistence is sent as in mode 0.
#[test]
fn sync_persist_mode_sends_templates_only_for_persistent_conns() {
    let mut svc = Svc::new(Protocol::Tcp, FwdMethod::Route);
    svc.persistence = Some(secs(300));
    let mut s = svc.build();
    let mut plain = Svc::new(Protocol::Tcp, FwdMethod::Route).build();
    let now = t0();
    let sysctls = ConnSysctls {
        sync: crate::conn::SyncSysctls {
            persist_mode: true,
            ..Default::default()
        },
        ..ConnSysctls::default()
    };
    let run = |s: &mut ServiceTable| {
        let mut t = table();
        t.set_sysctls(sysctls);
        t.set_sync_master(true);
        t.schedule(s, 0, &syn("10.0.0.1", 1000), 60, now, 0)
            .unwrap();
        let mut all = t.drain_sync().collect::<Vec<_>>();
        for _ in 0..3 {
            client_ack(&mut t, s, now);
            all.extend(t.drain_sync());
        }
        all
    };
    let r = run(&mut s);
    assert!(!r.is_empty() && r.iter().all(|r| r.template), "{r:?}");
    let r = run(&mut plain);
    assert_eq!(r.iter().filter(|r| !r.template).count(), 1, "{r:?}");
}
