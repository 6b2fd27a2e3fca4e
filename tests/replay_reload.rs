//! Hitless configuration changes on the replay path: one `Dataplane` built
//! from lb.toml text like `lvsfwd replay` builds it, real frames in, and new
//! configurations applied between batches with `Dataplane::apply_services`
//! (what a SIGHUP reload or an lvsadm edit publishes). Established
//! connections must keep their real servers, counters must survive, and a
//! removed server's connections must follow IPVS's `expire_nodest_conn`.
#![forbid(unsafe_code)]

mod common;
use common::*;

use std::collections::HashMap;
use std::time::Duration;

use lvsfwd::admin::listing::{ListOptions, list_services};
use lvsfwd::config;
use lvsfwd::conn::Timeouts;
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, DropReason, KernelReason, Verdict};
use lvsfwd::service::{Dest, ServiceKey, ServiceSpec};
use lvsfwd::time::Timestamp;
use lvsfwd::wire::FrameBuf;

const VIP: &str = "198.18.0.250";

fn text(expire_nodest: bool, body: &str) -> String {
    format!(
        "[global]\nrouter_id = \"test\"\ninterface = \"lf0\"\nexpire_nodest_conn = {expire_nodest}\n\n{body}"
    )
}

/// A `kind` (DR, NAT) virtual server on VIP:`port` with real servers
/// 198.18.1.N:`port` of the given weights.
fn vs(port: u16, algo: &str, kind: &str, rs: &[(u8, u32)]) -> String {
    let rs: Vec<(u8, u16, u32)> = rs.iter().map(|&(n, w)| (n, port, w)).collect();
    vs4(&format!("{VIP}:{port}"), algo, kind, &rs, "")
}

fn specs(body: &str) -> Vec<ServiceSpec> {
    config::parse_str(&text(false, body), "reload.toml")
        .unwrap()
        .service_specs()
}

fn dataplane(expire_nodest: bool, body: &str) -> Dataplane {
    let cfg = config::parse_str(&text(expire_nodest, body), "lb.toml").unwrap();
    cfg.dataplane(DataplaneConfig {
        own_macs: vec![DIRECTOR_MAC],
        own_addrs: vec![ip("198.18.0.1")],
        ..cfg.dataplane_config()
    })
}

/// What became of one frame: the verdict, and for a transmitted frame the
/// real server it went to (last byte of the destination MAC) and its
/// destination IP.
#[derive(Debug, PartialEq)]
struct Out {
    verdict: Verdict,
    rs: Option<u8>,
    dst: Option<std::net::IpAddr>,
}

fn send(dp: &mut Dataplane, frame: &[u8], now: Timestamp) -> Out {
    const HEAD: usize = 256;
    let mut buf = vec![0u8; HEAD + frame.len() + 64];
    buf[HEAD..HEAD + frame.len()].copy_from_slice(frame);
    let mut fb = FrameBuf::new(&mut buf, HEAD, frame.len());
    let verdict = dp.process(&mut fb, now);
    let data = fb.data();
    let tx = verdict == Verdict::Tx(0);
    Out {
        verdict,
        rs: tx.then(|| data[5]),
        dst: tx.then(|| emitted(data).dst),
    }
}

/// One client connection to VIP:`port`.
#[derive(Clone, Debug)]
struct Flow {
    client: String,
    sport: u16,
    port: u16,
    rs: u8,
    /// Made while its service forwarded with NAT (dst rewritten to the RIP).
    nat: bool,
}

fn client(i: usize) -> String {
    format!("198.18.{}.{}", 100 + i / 200, 1 + i % 200)
}

/// Opens flow number `i` (SYN, then ACK: ESTABLISHED, an ActiveConn).
fn open(dp: &mut Dataplane, i: usize, port: u16, now: Timestamp) -> Flow {
    let c = client(i);
    let sport = 20000 + i as u16;
    let syn = send(dp, &tcp(&c, sport, VIP, port, SYN), now);
    assert_eq!(syn.verdict, Verdict::Tx(0), "SYN of flow {i}");
    let ack = send(dp, &tcp(&c, sport, VIP, port, ACK), now);
    assert_eq!(ack.rs, syn.rs, "ACK of flow {i}");
    let rs = syn.rs.unwrap();
    Flow {
        client: c,
        sport,
        port,
        rs,
        nat: syn.dst != Some(ip(VIP)),
    }
}

fn data(dp: &mut Dataplane, f: &Flow, now: Timestamp) -> Out {
    send(dp, &tcp(&f.client, f.sport, VIP, f.port, PSHACK), now)
}

fn key(port: u16) -> ServiceKey {
    ServiceKey {
        proto: lvsfwd::service::Protocol::Tcp,
        addr: ip(VIP),
        port,
        fwmark: 0,
    }
}

/// The available dest for real server N of VIP:`port`.
fn dest(dp: &Dataplane, port: u16, n: u8) -> &Dest {
    let svc = dp.services.lookup(&key(port)).expect("service");
    let s = &dp.services.services[svc as usize];
    let i = s
        .find_dest(ip(&format!("198.18.1.{n}")), port)
        .expect("dest");
    &s.dests[i]
}

/// `lvsadm -L -n --stats --exact`: (real server, Conns) per listed dest.
fn stats(dp: &Dataplane) -> HashMap<String, u64> {
    let mut out = String::new();
    let opts = ListOptions {
        numeric: true,
        stats: true,
        exact: true,
        ..ListOptions::default()
    };
    list_services(&mut out, &dp.services, &opts, dp.conns.capacity(), None).unwrap();
    stats_conns(&out).into_iter().collect()
}

fn per_server(flows: &[Flow]) -> HashMap<u8, u32> {
    let mut m = HashMap::new();
    for f in flows {
        *m.entry(f.rs).or_default() += 1;
    }
    m
}

fn at(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

#[test]
fn established_connections_keep_their_server_across_edits() {
    let mut dp = dataplane(false, &vs(80, "wlc", "DR", &[(1, 1), (2, 1), (3, 1)]));
    let flows: Vec<Flow> = (0..30).map(|i| open(&mut dp, i, 80, at(1))).collect();
    let on = per_server(&flows);
    assert_eq!(on.len(), 3, "{on:?}");
    let check = |dp: &mut Dataplane, flows: &[Flow], now| {
        for f in flows {
            let o = data(dp, f, now);
            assert_eq!((o.verdict, o.rs), (Verdict::Tx(0), Some(f.rs)), "{f:?}");
        }
    };
    check(&mut dp, &flows, at(2));
    let conns_before = stats(&dp);
    assert_eq!(conns_before["198.18.1.1:80"], u64::from(on[&1]));

    // A new server: old flows stay, the idle one takes the next SYN (wlc).
    let sum = dp.apply_services(&specs(&vs(
        80,
        "wlc",
        "DR",
        &[(1, 1), (2, 1), (3, 1), (4, 1)],
    )));
    assert_eq!(sum.dests_added, 1);
    check(&mut dp, &flows, at(3));
    let f4 = open(&mut dp, 100, 80, at(3));
    assert_eq!(f4.rs, 4);

    // Weights: 2 quiesced (its flows continue, no new ones), 1 heavier.
    dp.apply_services(&specs(&vs(
        80,
        "wlc",
        "DR",
        &[(1, 3), (2, 0), (3, 1), (4, 1)],
    )));
    check(&mut dp, &flows, at(4));
    let more: Vec<Flow> = (200..220).map(|i| open(&mut dp, i, 80, at(4))).collect();
    assert!(more.iter().all(|f| f.rs != 2), "quiesced server scheduled");

    // Another scheduler.
    let sum = dp.apply_services(&specs(&vs(
        80,
        "rr",
        "DR",
        &[(1, 3), (2, 0), (3, 1), (4, 1)],
    )));
    assert_eq!(sum.scheds_replaced, 1);
    check(&mut dp, &flows, at(5));
    check(&mut dp, &more, at(5));

    // Counters survived all of it: Conns (--stats) and the dest fields.
    let conns = stats(&dp);
    for n in 1..=3u8 {
        let name = format!("198.18.1.{n}:80");
        let now = conns[&name];
        let added = more.iter().filter(|f| f.rs == n).count() as u64;
        assert_eq!(now, conns_before[&name] + added, "{name}");
    }
    assert_eq!(dest(&dp, 80, 2).active_conns, on[&2]);
    // SYN, ACK and four data segments each.
    assert_eq!(dest(&dp, 80, 2).stats.inpkts, u64::from(on[&2]) * 6);

    // Server 3 removed (expire_nodest_conn off): its flows are dropped, the
    // conns stay until their timers; everyone else is untouched.
    let sum = dp.apply_services(&specs(&vs(80, "rr", "DR", &[(1, 3), (2, 0), (4, 1)])));
    assert_eq!(sum.dests_removed, 1);
    for f in &flows {
        let o = data(&mut dp, f, at(6));
        if f.rs == 3 {
            assert_eq!(o.verdict, Verdict::Drop(DropReason::DestUnavailable));
        } else {
            assert_eq!((o.verdict, o.rs), (Verdict::Tx(0), Some(f.rs)));
        }
    }
    assert!(!stats(&dp).contains_key("198.18.1.3:80"), "not listed");
    let gone = flows.iter().filter(|f| f.rs == 3).count();
    let alive = flows.len() + more.len() + 1;
    assert_eq!(
        dp.conns.len(),
        alive,
        "conns of 3 live on until their timers"
    );
    assert!(gone > 0);
    // A SYN retransmitted on a dead server's flow is dropped too (the conn
    // still owns the tuple; only expire_nodest_conn frees it).
    let f3 = flows.iter().find(|f| f.rs == 3).unwrap();
    let o = send(&mut dp, &tcp(&f3.client, f3.sport, VIP, 80, SYN), at(6));
    assert_eq!(o.verdict, Verdict::Drop(DropReason::DestUnavailable));
}

#[test]
fn with_expire_nodest_conn_a_removed_servers_flows_are_expired_or_rescheduled() {
    let mut dp = dataplane(true, &vs(80, "rr", "DR", &[(1, 1), (2, 1)]));
    let flows: Vec<Flow> = (0..6).map(|i| open(&mut dp, i, 80, at(1))).collect();
    let on2: Vec<&Flow> = flows.iter().filter(|f| f.rs == 2).collect();
    assert_eq!(on2.len(), 3);
    dp.apply_services(&specs(&vs(80, "rr", "DR", &[(1, 1)])));

    // A data segment expires the conn and cannot open a new one: like
    // IPVS's NF_ACCEPT, it goes to the director's stack (which answers RST).
    let o = data(&mut dp, on2[0], at(2));
    assert_eq!(o.verdict, Verdict::Kernel(KernelReason::NoConn));
    // The client's new SYN on the same tuple goes to the surviving server.
    let o = send(
        &mut dp,
        &tcp(&on2[0].client, on2[0].sport, VIP, 80, SYN),
        at(2),
    );
    assert_eq!((o.verdict, o.rs), (Verdict::Tx(0), Some(1)));
    // A SYN hitting the dead conn directly is rescheduled in one go.
    let o = send(
        &mut dp,
        &tcp(&on2[1].client, on2[1].sport, VIP, 80, SYN),
        at(2),
    );
    assert_eq!((o.verdict, o.rs), (Verdict::Tx(0), Some(1)));
    // Flows of the surviving server are untouched.
    for f in flows.iter().filter(|f| f.rs == 1) {
        assert_eq!(data(&mut dp, f, at(2)).rs, Some(1));
    }

    // The rest (one conn) is expired at once by the flush, as kernels since
    // 5.9 do after a deletion; the removed dest's counters drop to zero.
    let before = dp.conns.len();
    assert_eq!(dp.flush_nodest_conns(), 1);
    assert_eq!(dp.conns.len(), before - 1);
    let svc = &dp.services.services[0];
    let gone = svc.dests.iter().find(|d| !d.available).unwrap();
    assert_eq!(gone.active_conns + gone.inact_conns, 0);
    assert_eq!(dp.flush_nodest_conns(), 0, "nothing left");
}

#[test]
fn flush_does_nothing_with_expire_nodest_conn_off() {
    let mut dp = dataplane(false, &vs(80, "rr", "DR", &[(1, 1), (2, 1)]));
    for i in 0..4 {
        open(&mut dp, i, 80, at(1));
    }
    dp.apply_services(&specs(&vs(80, "rr", "DR", &[(1, 1)])));
    assert_eq!(dp.flush_nodest_conns(), 0);
    assert_eq!(dp.conns.len(), 4);
}

#[test]
fn a_removed_service_stops_scheduling_and_comes_back_with_its_conns() {
    let both = format!(
        "{}{}",
        vs(80, "rr", "DR", &[(1, 1), (2, 1)]),
        vs(443, "rr", "DR", &[(5, 1)])
    );
    let mut dp = dataplane(false, &both);
    let web: Vec<Flow> = (0..4).map(|i| open(&mut dp, i, 80, at(1))).collect();
    let tls = open(&mut dp, 50, 443, at(1));
    let inpkts = dest(&dp, 80, 1).stats.inpkts;

    let sum = dp.apply_services(&specs(&vs(443, "rr", "DR", &[(5, 1)])));
    assert_eq!((sum.services_removed, sum.dests_removed), (1, 2));
    // Not a virtual service any more: new SYNs are the kernel's.
    let o = send(&mut dp, &tcp(&client(9), 30000, VIP, 80, SYN), at(2));
    assert_eq!(o.verdict, Verdict::Pass);
    for f in &web {
        let o = data(&mut dp, f, at(2));
        assert_eq!(o.verdict, Verdict::Drop(DropReason::DestUnavailable));
    }
    assert_eq!(data(&mut dp, &tls, at(2)).rs, Some(5));
    assert_eq!(stats(&dp).len(), 1, "only 443's server listed");

    // The same key again: its slot, its dests (IPVS's trash) and their
    // conns come back; a re-created service starts with zero stats.
    let sum = dp.apply_services(&specs(&both));
    assert_eq!((sum.services_restored, sum.dests_restored), (1, 2));
    for f in &web {
        assert_eq!(data(&mut dp, f, at(3)).rs, Some(f.rs), "{f:?}");
    }
    let d1 = dest(&dp, 80, 1);
    let on1 = web.iter().filter(|f| f.rs == 1).count() as u32;
    assert_eq!(d1.active_conns, on1);
    assert_eq!(d1.stats.inpkts, u64::from(on1), "zeroed, then one each");
    assert!(inpkts > u64::from(on1));
}

#[test]
fn vips_and_port_zero_follow_the_table() {
    let mut dp = dataplane(false, &vs(80, "rr", "DR", &[(1, 1)]));
    let other = "198.18.0.251";
    let syn = |dp: &mut Dataplane, port: u16| {
        send(dp, &tcp(&client(1), 31000 + port, other, port, SYN), at(1))
    };
    assert_eq!(syn(&mut dp, 8443).verdict, Verdict::Pass);
    // A port-0 (all ports) service on another VIP, added live.
    let body = format!(
        "{}{}",
        vs(80, "rr", "DR", &[(1, 1)]),
        vs4(
            &format!("{other}:0"),
            "rr",
            "DR",
            &[(7, 0, 1)],
            "persistence_timeout = 60"
        )
    );
    let sum = dp.apply_services(&specs(&body));
    assert_eq!(sum.services_added, 1);
    let o = syn(&mut dp, 8443);
    assert_eq!((o.verdict, o.rs), (Verdict::Tx(0), Some(7)));
    // Removed again: its VIP is no longer ours.
    dp.apply_services(&specs(&vs(80, "rr", "DR", &[(1, 1)])));
    assert_eq!(syn(&mut dp, 9443).verdict, Verdict::Pass);
}

#[test]
fn set_timeouts_applies_from_the_next_packet() {
    let mut dp = dataplane(false, &vs(80, "rr", "DR", &[(1, 1)]));
    let f = open(&mut dp, 0, 80, at(1));
    dp.set_timeouts(Timeouts {
        tcp: Duration::from_secs(30),
        ..Timeouts::default()
    });
    assert_eq!(dp.conns.timeouts().tcp, Duration::from_secs(30));
    assert_eq!(data(&mut dp, &f, at(2)).rs, Some(1));
    let views = dp.conn_views(at(2));
    assert_eq!(views[0].expires_in, Duration::from_secs(30));
    dp.tick(at(33));
    assert!(dp.conns.is_empty(), "expired on the new timeout");
}

/// One virtual server of a step: VIP port, scheduler, forwarding method,
/// (server, weight) list.
type Vs = (u16, &'static str, &'static str, Vec<(u8, u32)>);

/// The configuration of one step of the ten-apply run.
struct Step {
    services: Vec<Vs>,
}

impl Step {
    fn body(&self) -> String {
        self.services
            .iter()
            .map(|(port, algo, kind, rs)| vs(*port, algo, kind, rs))
            .collect()
    }
    fn has(&self, port: u16, rs: u8) -> bool {
        self.services
            .iter()
            .any(|(p, _, _, list)| *p == port && list.iter().any(|&(n, _)| n == rs))
    }
    fn weight(&self, port: u16, rs: u8) -> Option<u32> {
        self.services
            .iter()
            .filter(|(p, ..)| *p == port)
            .flat_map(|(_, _, _, list)| list.iter())
            .find(|&&(n, _)| n == rs)
            .map(|&(_, w)| w)
    }
}

#[test]
fn ten_applies_under_traffic_drop_no_packet_of_a_surviving_flow() {
    let a = |rs: Vec<(u8, u32)>| (80u16, "wlc", "DR", rs);
    let steps = [
        // 1: a server added
        Step {
            services: vec![
                a(vec![(1, 1), (2, 1), (3, 1), (4, 1), (7, 1)]),
                (443, "rr", "DR", vec![(5, 1), (6, 1)]),
            ],
        },
        // 2: weights edited
        Step {
            services: vec![
                a(vec![(1, 5), (2, 1), (3, 2), (4, 1), (7, 1)]),
                (443, "rr", "DR", vec![(5, 1), (6, 3)]),
            ],
        },
        // 3: scheduler changed
        Step {
            services: vec![
                (80, "rr", "DR", vec![(1, 5), (2, 1), (3, 2), (4, 1), (7, 1)]),
                (443, "rr", "DR", vec![(5, 1), (6, 3)]),
            ],
        },
        // 4: a server removed
        Step {
            services: vec![
                (80, "rr", "DR", vec![(1, 5), (3, 2), (4, 1), (7, 1)]),
                (443, "rr", "DR", vec![(5, 1), (6, 3)]),
            ],
        },
        // 5: a service added
        Step {
            services: vec![
                (80, "rr", "DR", vec![(1, 5), (3, 2), (4, 1), (7, 1)]),
                (443, "rr", "DR", vec![(5, 1), (6, 3)]),
                (8080, "wrr", "DR", vec![(9, 1), (10, 2)]),
            ],
        },
        // 6: a service removed
        Step {
            services: vec![
                (80, "rr", "DR", vec![(1, 5), (3, 2), (4, 1), (7, 1)]),
                (8080, "wrr", "DR", vec![(9, 1), (10, 2)]),
            ],
        },
        // 7: a removed server back, a weight 0 (quiesced, flows continue)
        Step {
            services: vec![
                (80, "rr", "DR", vec![(1, 5), (2, 1), (3, 2), (4, 1), (7, 1)]),
                (8080, "wrr", "DR", vec![(9, 0), (10, 2)]),
            ],
        },
        // 8: scheduler and server set of 8080 edited
        Step {
            services: vec![
                (80, "rr", "DR", vec![(1, 5), (2, 1), (3, 2), (4, 1), (7, 1)]),
                (8080, "lc", "DR", vec![(9, 0), (10, 2), (11, 1)]),
            ],
        },
        // 9: the removed service back with one of its servers
        Step {
            services: vec![
                (80, "rr", "DR", vec![(1, 5), (2, 1), (3, 2), (4, 1), (7, 1)]),
                (443, "sh", "DR", vec![(5, 1)]),
                (8080, "lc", "DR", vec![(9, 0), (10, 2), (11, 1)]),
            ],
        },
        // 10: forwarding method changed (new conns NAT, old ones stay DR),
        // one server out, one in
        Step {
            services: vec![
                (
                    80,
                    "rr",
                    "NAT",
                    vec![(1, 5), (2, 1), (4, 1), (7, 1), (12, 1)],
                ),
                (443, "sh", "DR", vec![(5, 1)]),
                (8080, "lc", "DR", vec![(9, 0), (10, 2), (11, 1)]),
            ],
        },
    ];
    let initial = Step {
        services: vec![
            a(vec![(1, 1), (2, 1), (3, 1), (4, 1)]),
            (443, "rr", "DR", vec![(5, 1), (6, 1)]),
        ],
    };
    let mut dp = dataplane(false, &initial.body());
    let mut next = 0usize;
    let mut flows: Vec<Flow> = Vec::new();
    for port in [80, 443] {
        for _ in 0..12 {
            flows.push(open(&mut dp, next, port, at(1)));
            next += 1;
        }
    }
    let mut surviving_drops = 0u32;
    let mut surviving_pkts = 0u32;
    // Flows of removed servers, by source port (unique per flow).
    let mut was_dead = std::collections::HashSet::new();
    let mut revived = 0;
    let mut t = 1;
    for (k, step) in steps.iter().enumerate() {
        let n = k + 1;
        t += 1;
        dp.tick(at(t));
        dp.apply_services(&specs(&step.body()));
        // Flows whose server is not configured now are IPVS's dead flows:
        // dropped (expire_nodest_conn off), their conns kept until their
        // timers. A server that comes back (step 7, 9) revives its flows.
        let (alive, dead): (Vec<Flow>, Vec<Flow>) =
            flows.into_iter().partition(|f| step.has(f.port, f.rs));
        for f in &dead {
            let o = data(&mut dp, f, at(t));
            assert_eq!(o.verdict, Verdict::Drop(DropReason::DestUnavailable));
        }
        revived += alive.iter().filter(|f| was_dead.remove(&f.sport)).count();
        was_dead.extend(dead.iter().map(|f| f.sport));
        flows = alive;
        // Three rounds of traffic on every surviving flow, new flows after
        // each round.
        for _ in 0..3 {
            for f in &flows {
                let o = data(&mut dp, f, at(t));
                surviving_pkts += 1;
                if (o.verdict, o.rs) != (Verdict::Tx(0), Some(f.rs)) {
                    surviving_drops += 1;
                    eprintln!("step {n}: {f:?} -> {o:?}");
                }
                // A conn keeps the forwarding method it was made with.
                let rip = ip(&format!("198.18.1.{}", f.rs));
                let want = if f.nat { rip } else { ip(VIP) };
                assert_eq!(o.dst, Some(want), "step {n}: {f:?}");
            }
            for (port, _, kind, _) in &step.services {
                let f = open(&mut dp, next, *port, at(t));
                next += 1;
                assert!(step.has(*port, f.rs), "scheduled to a removed server");
                assert_ne!(step.weight(*port, f.rs), Some(0), "to a quiesced one");
                assert_eq!(f.nat, *kind == "NAT", "new conns take the new method");
                flows.push(f);
            }
        }
        // Counters: every server carries exactly its flows (revived ones
        // included).
        for (port, _, _, rs) in &step.services {
            for &(srv, _) in rs {
                let mine = flows
                    .iter()
                    .filter(|f| f.port == *port && f.rs == srv)
                    .count() as u32;
                let d = dest(&dp, *port, srv);
                assert_eq!(d.active_conns, mine, "step {n}: 198.18.1.{srv}");
            }
        }
        flows.extend(dead);
    }
    assert!(revived > 0, "no flow came back with its server");
    assert!(flows.iter().any(|f| f.nat) && flows.iter().any(|f| !f.nat));
    assert!(surviving_pkts > 1000, "{surviving_pkts}");
    assert_eq!(surviving_drops, 0, "of {surviving_pkts} packets");
}
