//! A two-armed director: one NIC towards the clients, one towards the real
//! servers, in the kernel's own IPVS self-test topology
//! (tools/testing/selftests/net/netfilter/ipvs.sh), with lvsfwd in the
//! director's place and `lvsadm` running the self-test's ipvsadm commands.
//!
//! ```text
//!  client 198.18.0.100 ── switch ── director lfeth0 198.18.0.2 (client side)
//!                           │       director lfeth1 198.18.1.1 ── rs1 lfeth1 198.18.1.2
//!                           └────── rs1 lfeth0 198.18.0.3 (DR/TUN replies; down for NAT/FULLNAT)
//!  VIP 198.18.5.110 on the director's and rs1's lo; the client routes it via 198.18.0.2
//! ```
//!
//! As in the self-test, the real server answers DR and TUN clients through
//! its own leg on the client segment, and NAT clients through the director
//! (its default route). FULLNAT's local address 198.18.1.9 sits on the
//! server-side NIC. Every frame lvsfwd forwards to the real server leaves
//! through lfeth1, every reply to the client through lfeth0; the kernel of
//! the director forwards nothing (ip_forward off).
#![forbid(unsafe_code)]

mod rig;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rig::daemon::{Lvsfwd, lvsadm, lvsadm_ok as ok};
use rig::two_arm::{DIP, PORT, RIP, VIP, serving_rs};
use rig::{IFACE, Mode, Rig};

const IFACE2: &str = "lfeth1";
const CIP: &str = "198.18.0.100";
const GIP: &str = "198.18.0.2";
const SIP: &str = "198.18.0.3";
const LIP: &str = "198.18.1.9";

/// The self-test's `setup` plus the wiring of `mode` (its `test_dr`,
/// `test_nat`, `test_tun`; FULLNAT like NAT without the real server's route
/// back). veth keeps its default offloads on every new link, as containers
/// have them.
fn two_armed(mode: Mode) -> Rig {
    let rig = Rig::builder(Mode::Bare)
        .real_servers(1)
        .veth_offloads(true)
        .build();
    let (c, d, rs) = (rig.client(), rig.director(), rig.rs(1));
    d.ip(&[
        "link", "add", IFACE2, "type", "veth", "peer", "name", IFACE2, "netns", &rs.ns,
    ]);
    // The director's own XDP program redirects on both NICs; its peers run
    // NAPI like the rig's switch port does.
    rs.exec_ok(&["ethtool", "-K", IFACE2, "gro", "on"]);
    d.ip(&["link", "set", IFACE2, "up"]);
    rs.ip(&["link", "set", IFACE2, "up"]);

    c.add_addr(IFACE, &format!("{CIP}/24"));
    c.add_route(&[VIP, "via", GIP, "dev", IFACE]);
    d.add_addr(IFACE, &format!("{GIP}/24"));
    serving_rs(&rig, IFACE2);
    rs.add_addr(IFACE, &format!("{SIP}/24"));
    match mode {
        Mode::Dr => {}
        Mode::Tun => {
            rig.start_decap(rs);
            // start_decap relaxes rp_filter on lfeth0; the tunnel arrives
            // on lfeth1.
            rs.sysctl(&format!("net.ipv4.conf.{IFACE2}.rp_filter"), "0");
        }
        Mode::Nat => {
            rs.ip(&["link", "set", IFACE, "down"]);
            rs.add_route(&["default", "via", DIP, "dev", IFACE2]);
        }
        Mode::FullNat => {
            rs.ip(&["link", "set", IFACE, "down"]);
            d.add_addr(IFACE2, &format!("{LIP}/24"));
        }
        Mode::Bare => unreachable!("a wired mode"),
    }
    rig
}

fn vip() -> SocketAddr {
    SocketAddr::new(VIP.parse().unwrap(), PORT)
}

/// Requests from the client reach rs1 through lvsfwd, and every forwarded
/// frame went out of the right NIC (the director's kernel forwards none).
fn served_through_both_nics(rig: &Rig, seen_client: &str) {
    let t = rig.http(rig.client(), vip(), 20);
    t.assert_all_ok(&format!("HTTP to {VIP}:{PORT} through two NICs"));
    assert_eq!(t.per_server().get("rs1"), Some(&20), "{t:?}");
    t.assert_client_seen(seen_client.parse::<IpAddr>().unwrap(), "two-armed");
}

fn start(rig: &Rig) -> (Lvsfwd, String) {
    Lvsfwd::start_admin(rig, &["--interface", IFACE, "--interface", IFACE2])
}

/// The self-test's ipvsadm lines, with lvsadm.
fn selftest_service(sock: &str, flag: &str) {
    let svc = format!("{VIP}:{PORT}");
    ok(sock, &["-A", "-t", &svc, "-s", "rr"]);
    ok(
        sock,
        &["-a", flag, "-t", &svc, "-r", &format!("{RIP}:{PORT}")],
    );
}

#[test]
fn selftest_dr_through_two_nics() {
    let rig = two_armed(Mode::Dr);
    let (mut lb, sock) = start(&rig);
    selftest_service(&sock, "-g");
    served_through_both_nics(&rig, CIP);
    assert!(lb.terminate().success(), "{}", lb.stderr());
}

#[test]
fn selftest_nat_through_two_nics() {
    let rig = two_armed(Mode::Nat);
    let (mut lb, sock) = start(&rig);
    selftest_service(&sock, "-m");
    served_through_both_nics(&rig, CIP);
    let listing = ok(&sock, &["-L", "-n"]);
    assert!(listing.contains(&format!("-> {RIP}:{PORT}")), "{listing}");
    assert!(listing.contains("Masq"), "{listing}");
    assert!(lb.terminate().success(), "{}", lb.stderr());
}

#[test]
fn selftest_tun_through_two_nics() {
    let rig = two_armed(Mode::Tun);
    let (mut lb, sock) = start(&rig);
    selftest_service(&sock, "-i");
    served_through_both_nics(&rig, CIP);
    assert!(lb.terminate().success(), "{}", lb.stderr());
}

#[test]
fn fullnat_through_two_nics() {
    let rig = two_armed(Mode::FullNat);
    let config = format!(
        "[global]\ninterface = [\"{IFACE}\", \"{IFACE2}\"]\nadmin_socket = \"{}\"\n\n\
         [[virtual_server]]\naddress = \"{VIP}:{PORT}\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\n\
         lb_kind = \"FULLNAT\"\nlocal_address = [\"{LIP}\"]\n\
         [[virtual_server.real_server]]\naddress = \"{RIP}:{PORT}\"\n",
        rig.dir().join("admin.sock").display()
    );
    let mut lb = Lvsfwd::start(&rig, &config);
    served_through_both_nics(&rig, LIP);
    assert!(lb.terminate().success(), "{}", lb.stderr());
}

/// The outer source of each tunnelled packet, as tshark reads them from
/// a capture of `rs`'s `nic` while `count` requests are served.
fn tunnel_sources(rig: &Rig, count: usize) -> Vec<String> {
    let rs = rig.rs(1);
    // Decoded as captured, one line a packet (`-l` flushes each): a
    // capture file killed with its writer can lose the packets it had not
    // flushed yet.
    let tpid = rig.spawn(
        rs,
        "tshark",
        &[
            "tshark",
            "-i",
            IFACE2,
            "-f",
            "ip proto 4",
            "-l",
            "-T",
            "fields",
            "-e",
            "ip.src",
        ],
    );
    let up = rig::wait_until(Duration::from_secs(10), || {
        rig.proc_logs(tpid).1.contains("Capturing on")
    });
    assert!(up, "tshark did not start: {}", rig.proc_logs(tpid).1);
    let t = rig.http(rig.client(), vip(), count);
    t.assert_all_ok("HTTP through the tunnel");
    rig::wait_until(Duration::from_secs(5), || {
        !rig.proc_logs(tpid).0.trim().is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    rig.kill(tpid);
    // IPIP: the outer header's source first, then the inner one's.
    rig.proc_logs(tpid)
        .0
        .lines()
        .filter_map(|l| l.split(',').next())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The tunnel's outer source is the director's address on the NIC the
/// packet leaves by (lfeth1's, not lfeth0's, which comes first), and a
/// route's preferred source when it has one: what the kernel's route to
/// the real server picks, as IPVS's tunnel xmit takes it.
#[test]
fn tun_outer_source_is_the_address_of_the_route_to_the_server() {
    let rig = two_armed(Mode::Tun);
    let (mut lb, sock) = start(&rig);
    selftest_service(&sock, "-i");
    let srcs = tunnel_sources(&rig, 10);
    assert!(!srcs.is_empty(), "no tunnelled packet captured");
    assert!(srcs.iter().all(|s| s == DIP), "outer sources {srcs:?}");

    // A preferred source on the route to the real server.
    let d = rig.director();
    d.add_addr(IFACE2, "198.18.1.7/24");
    d.ip(&["route", "replace", RIP, "dev", IFACE2, "src", "198.18.1.7"]);
    // The next hops (and the addresses) are refreshed every second.
    std::thread::sleep(Duration::from_secs(3));
    let srcs = tunnel_sources(&rig, 10);
    assert!(!srcs.is_empty(), "no tunnelled packet captured");
    assert!(
        srcs.iter().all(|s| s == "198.18.1.7"),
        "outer sources {srcs:?}"
    );
    assert!(lb.terminate().success(), "{}", lb.stderr());
}

/// A real server behind a NIC lvsfwd does not serve is refused, by lvsadm
/// and at start, naming that NIC; the running table is untouched.
#[test]
fn a_real_server_behind_an_unserved_nic_is_refused_by_name() {
    let rig = two_armed(Mode::Dr);
    let d = rig.director();
    // A third NIC lvsfwd is not given (no dummy module here: a veth pair).
    d.ip(&[
        "link", "add", "lfdum0", "type", "veth", "peer", "name", "lfdum1",
    ]);
    d.ip(&["link", "set", "lfdum1", "up"]);
    d.ip(&["link", "set", "lfdum0", "up"]);
    d.add_addr("lfdum0", "198.18.7.1/24");
    let (mut lb, sock) = start(&rig);
    selftest_service(&sock, "-g");
    let svc = format!("{VIP}:{PORT}");
    let (code, _, err) = lvsadm(&sock, &["-a", "-t", &svc, "-r", "198.18.7.5:8080", "-g"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("198.18.7.5") && err.contains("lfdum0"),
        "names the server and the NIC: {err}"
    );
    let listing = ok(&sock, &["-L", "-n"]);
    assert!(!listing.contains("198.18.7.5"), "{listing}");
    served_through_both_nics(&rig, CIP);
    assert!(lb.terminate().success(), "{}", lb.stderr());

    // At start: refused with the same words, nothing attached.
    let cfg = rig.dir().join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[global]\ninterface = [\"{IFACE}\", \"{IFACE2}\"]\nadmin_socket = \"{}\"\n\n\
             [[virtual_server]]\naddress = \"{VIP}:{PORT}\"\nprotocol = \"TCP\"\nlb_kind = \"DR\"\n\
             [[virtual_server.real_server]]\naddress = \"198.18.7.5:{PORT}\"\n",
            rig.dir().join("bad.sock").display()
        ),
    )
    .unwrap();
    let out = d.exec_timeout(
        &[rig::daemon::binary(), "--config", cfg.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert!(!out.ok(), "started with an unreachable real server: {out}");
    let text = out.to_string();
    assert!(
        text.contains("lfdum0") && text.contains("198.18.7.5"),
        "{text}"
    );
    assert!(!d.xdp_attached(), "nothing left attached");

    // A FULLNAT local address on the unserved NIC: its replies would never
    // reach lvsfwd.
    d.add_addr("lfdum0", "198.18.7.9/24");
    std::fs::write(
        &cfg,
        format!(
            "[global]\ninterface = [\"{IFACE}\", \"{IFACE2}\"]\nadmin_socket = \"{}\"\n\n\
             [[virtual_server]]\naddress = \"{VIP}:{PORT}\"\nprotocol = \"TCP\"\n\
             lb_kind = \"FULLNAT\"\nlocal_address = [\"198.18.7.9\"]\n\
             [[virtual_server.real_server]]\naddress = \"{RIP}:{PORT}\"\n",
            rig.dir().join("bad.sock").display()
        ),
    )
    .unwrap();
    let out = d.exec_timeout(
        &[rig::daemon::binary(), "--config", cfg.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert!(
        !out.ok(),
        "started with a local address off its NICs: {out}"
    );
    assert!(
        out.to_string().contains("FULLNAT local address 198.18.7.9"),
        "{out}"
    );
}
