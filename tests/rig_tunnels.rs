//! End to end, TUN between address families (IPVS since Linux 3.18): HTTP
//! to an IPv4 VIP reaches IPv6 real servers in IPv6 outer headers (next
//! header 4), HTTP to an IPv6 VIP reaches IPv4 real servers in IPv4 outer
//! headers (protocol 41). The real servers end the tunnels with the rig's
//! userspace decapsulator (tests/rig/decap.py) and answer the client from
//! the VIP directly. One service from lb.toml, one built with lvsadm.
//! Needs root.
#![forbid(unsafe_code)]

mod rig;

use std::net::SocketAddr;

use rig::daemon::{Lvsfwd, lvsadm_ok as ok};
use rig::{Fam, Mode, Rig};

const REQUESTS: usize = 24;

/// lb.toml: one TUN virtual server on the `vip` family's VIP whose real
/// servers are the rig's addresses of the `rs` family.
fn cross_family_toml(rig: &Rig, vip: Fam, rs: Fam) -> String {
    let mut s = rig.lb_toml(&[]);
    s += &format!(
        "\n[[virtual_server]]\naddress = \"{}\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\nlb_kind = \"TUN\"\n",
        SocketAddr::new(rig.vip(vip), 80)
    );
    for n in 1..=rig.real_servers().len() {
        s += &format!(
            "\n  [[virtual_server.real_server]]\n  address = \"{}\"\n  weight = 1\n",
            SocketAddr::new(rig.rip(n, rs), 80)
        );
    }
    s
}

#[test]
fn tun_ipv4_vip_to_ipv6_real_servers_from_lb_toml() {
    let rig = Rig::builder(Mode::Tun).build();
    let config = cross_family_toml(&rig, Fam::V4, Fam::V6);
    let mut lb = Lvsfwd::start(&rig, &config);
    let what = "IPv4 VIP over IPv6 tunnels";
    let t = rig.http(
        rig.client(),
        SocketAddr::new(rig.vip(Fam::V4), 80),
        REQUESTS,
    );
    t.assert_all_ok(what);
    t.assert_even_split(&rig.rs_names(), what);
    t.assert_client_seen(rig.seen_client_ip(Fam::V4), what);
    lb.assert_running();
    assert!(lb.terminate().success());
}

#[test]
fn tun_ipv6_vip_to_ipv4_real_servers_with_lvsadm() {
    let rig = Rig::builder(Mode::Tun).build();
    let sock = rig.dir().join("admin.sock");
    let sock = sock.to_str().unwrap();
    let mut lb = Lvsfwd::start_args(&rig, &["--interface", "lfeth0"], &[("LVSFWD_SOCKET", sock)]);
    let svc = SocketAddr::new(rig.vip(Fam::V6), 80).to_string();
    ok(sock, &["-A", "-t", &svc, "-s", "rr"]);
    for n in 1..=rig.real_servers().len() {
        let r = rig.rip(n, Fam::V4).to_string();
        ok(sock, &["-a", "-t", &svc, "-r", &r, "-i", "-w", "1"]);
    }
    let listing = ok(sock, &["-L", "-n"]);
    for n in 1..=rig.real_servers().len() {
        let rs = format!("{}:80", rig.rip(n, Fam::V4));
        assert!(
            listing.contains(&format!("  -> {rs:<28} Tunnel  1")),
            "{listing}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let what = "IPv6 VIP over IPv4 tunnels";
    let t = rig.http(
        rig.client(),
        SocketAddr::new(rig.vip(Fam::V6), 80),
        REQUESTS,
    );
    t.assert_all_ok(what);
    t.assert_even_split(&rig.rs_names(), what);
    t.assert_client_seen(rig.seen_client_ip(Fam::V6), what);
    lb.assert_running();
    assert!(lb.terminate().success());
}
