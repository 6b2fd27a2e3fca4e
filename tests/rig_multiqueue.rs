//! A two-armed director whose NICs have different RX queue counts: 4
//! towards the client, 2 towards the real server. lvsfwd runs one worker
//! per queue number (4); workers 2 and 3 have no socket on the server-side
//! NIC, so what they forward to the real server is handed to a worker that
//! has one. Every RX queue of both NICs must be served: the client's
//! connections spread over the 4 queues of the client-side NIC (veth picks
//! the queue by the sender's flow hash), the real server's NAT replies over
//! the 2 of the other; veth's own per-queue XDP counters (`ethtool -S`,
//! `rx_queue_N_xdp_redirect`) show frames went to lvsfwd's sockets on each.
//!
//! ```text
//!  client lfmq0 198.18.2.100 ══4 queues══ lfmq0 198.18.2.1 director lfmq1 198.18.1.1 ══2 queues══ lfmq1 198.18.1.2 rs1
//!  client lfeth0 198.18.0.100 ── switch ── rs1 lfeth0 198.18.0.3 (DR replies; down for NAT)
//!  VIP 198.18.5.110 on the director's and rs1's lo
//! ```
#![forbid(unsafe_code)]

mod rig;

use std::net::{IpAddr, SocketAddr};

use rig::daemon::{Lvsfwd, lvsadm_ok as ok};
use rig::two_arm::{DIP, PORT, RIP, VIP, serving_rs};
use rig::{Host, IFACE, Mode, Rig};

const CLIENT_NIC: &str = "lfmq0";
const SERVER_NIC: &str = "lfmq1";
const CLIENT_QUEUES: u32 = 4;
const SERVER_QUEUES: u32 = 2;
const CIP: &str = "198.18.2.100";
const CSW: &str = "198.18.0.100";
const GIP: &str = "198.18.2.1";
const SIP: &str = "198.18.0.3";
/// Connections per test: each queue of 4 is missed by all of them with
/// probability (3/4)^64, about 1e-8.
const CONNS: usize = 64;

/// A veth pair `name` (the same name on both ends) from the director to
/// `peer` with `queues` RX and TX queues on each end; the peer runs NAPI
/// (GRO) so that the director's redirected frames reach it.
fn multiqueue_link(d: &Host, peer: &Host, name: &str, queues: u32) {
    let q = queues.to_string();
    d.ip(&[
        "link",
        "add",
        name,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        name,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        &peer.ns,
    ]);
    peer.exec_ok(&["ethtool", "-K", name, "gro", "on"]);
    d.ip(&["link", "set", name, "up"]);
    peer.ip(&["link", "set", name, "up"]);
}

fn topology(mode: Mode) -> Rig {
    let rig = Rig::builder(Mode::Bare)
        .real_servers(1)
        .veth_offloads(true)
        .build();
    let (c, d, rs) = (rig.client(), rig.director(), rig.rs(1));
    multiqueue_link(d, c, CLIENT_NIC, CLIENT_QUEUES);
    multiqueue_link(d, rs, SERVER_NIC, SERVER_QUEUES);

    c.add_addr(CLIENT_NIC, &format!("{CIP}/24"));
    c.add_addr(IFACE, &format!("{CSW}/24"));
    c.add_route(&[VIP, "via", GIP, "dev", CLIENT_NIC]);
    // DR replies come back from the VIP over the switch, not the route to
    // the VIP.
    for dev in ["all", "default", IFACE, CLIENT_NIC] {
        c.sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0");
    }
    d.add_addr(CLIENT_NIC, &format!("{GIP}/24"));
    serving_rs(&rig, SERVER_NIC);
    match mode {
        Mode::Dr => {
            rs.add_addr(IFACE, &format!("{SIP}/24"));
            rs.add_route(&[CIP, "via", CSW, "dev", IFACE]);
        }
        Mode::Nat => {
            rs.ip(&["link", "set", IFACE, "down"]);
            rs.add_route(&["default", "via", DIP, "dev", SERVER_NIC]);
        }
        _ => unreachable!("DR or NAT"),
    }
    rig
}

fn start(rig: &Rig, flag: &str) -> (Lvsfwd, String) {
    let (lb, sock) =
        Lvsfwd::start_admin(rig, &["--interface", CLIENT_NIC, "--interface", SERVER_NIC]);
    let svc = format!("{VIP}:{PORT}");
    ok(&sock, &["-A", "-t", &svc, "-s", "rr"]);
    ok(
        &sock,
        &["-a", flag, "-t", &svc, "-r", &format!("{RIP}:{PORT}")],
    );
    (lb, sock)
}

/// Per RX queue of the director's `nic`: frames its XDP program redirected
/// to an AF_XDP socket (veth's own counters).
fn redirected_per_queue(d: &Host, nic: &str, queues: u32) -> Vec<u64> {
    let stats = d.exec_ok(&["ethtool", "-S", nic]);
    (0..queues)
        .map(|q| {
            let key = format!("rx_queue_{q}_xdp_redirect:");
            stats
                .lines()
                .find_map(|l| l.trim().strip_prefix(&key))
                .unwrap_or_else(|| panic!("no {key} in ethtool -S {nic}:\n{stats}"))
                .trim()
                .parse()
                .expect("a count")
        })
        .collect()
}

fn serve(rig: &Rig) {
    let vip = SocketAddr::new(VIP.parse().unwrap(), PORT);
    let t = rig.http(rig.client(), vip, CONNS);
    t.assert_all_ok(&format!("HTTP to {VIP}:{PORT} over NICs of 4 and 2 queues"));
    assert_eq!(t.per_server().get("rs1"), Some(&CONNS), "{t:?}");
    t.assert_client_seen(CIP.parse::<IpAddr>().unwrap(), "multi-queue");
}

fn assert_every_queue(d: &Host, nic: &str, queues: u32) {
    let per = redirected_per_queue(d, nic, queues);
    assert!(
        per.iter().all(|&n| n > 0),
        "every RX queue of {nic} redirected frames to lvsfwd: {per:?}"
    );
}

#[test]
fn dr_over_nics_with_4_and_2_queues() {
    let rig = topology(Mode::Dr);
    let (mut lb, _sock) = start(&rig, "-g");
    assert!(
        lb.stderr().contains("(4 queues"),
        "one worker per queue of the NIC with the most: {}",
        lb.stderr()
    );
    serve(&rig);
    // Every client frame arrived on the 4-queue NIC and left by the
    // 2-queue one: those of queues 2 and 3 crossed to workers 0 and 1.
    assert_every_queue(rig.director(), CLIENT_NIC, CLIENT_QUEUES);
    assert!(lb.terminate().success(), "{}", lb.stderr());
}

#[test]
fn nat_over_nics_with_4_and_2_queues() {
    let rig = topology(Mode::Nat);
    let (mut lb, sock) = start(&rig, "-m");
    serve(&rig);
    assert_every_queue(rig.director(), CLIENT_NIC, CLIENT_QUEUES);
    assert_every_queue(rig.director(), SERVER_NIC, SERVER_QUEUES);
    let listing = ok(&sock, &["-L", "-n", "--stats"]);
    assert!(listing.contains(&format!("-> {RIP}:{PORT}")), "{listing}");
    assert!(lb.terminate().success(), "{}", lb.stderr());
}
