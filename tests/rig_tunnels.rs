//! End to end, every TUN encapsulation IPVS has: IPIP between address
//! families (IPVS since Linux 3.18: HTTP to an IPv4 VIP reaches IPv6 real
//! servers in IPv6 outer headers, next header 4; HTTP to an IPv6 VIP reaches
//! IPv4 real servers in IPv4 outer headers, protocol 41), GUE and GRE with
//! and without their checksums, from lvsadm (`-i --tun-type gue --tun-port
//! 6080`) and from lb.toml (`tun_type`, `tun_port`, `tun_flags`). The real
//! servers end the tunnels with the rig's userspace decapsulator
//! (tests/rig/decap.py, which verifies GRE's checksum and, through the
//! kernel's UDP socket, GUE's) and answer the client from the VIP directly;
//! its per-tunnel counts show which encapsulation carried the requests.
//! Needs root.
#![forbid(unsafe_code)]

mod rig;

use std::net::SocketAddr;

use rig::daemon::{Lvsfwd, lvsadm_ok as ok};
use rig::{Fam, GUE_PORT, Mode, Rig};

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
    let (mut lb, sock) = Lvsfwd::start_admin(&rig, &["--interface", "lfeth0"]);
    let sock = sock.as_str();
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

/// Every real server's decapsulator took packets of `kinds[i]` only (and
/// refused none).
fn assert_carried_by(rig: &Rig, kinds: &[&str], what: &str) {
    for (h, kind) in rig.real_servers().iter().zip(kinds) {
        let c = rig.decap_counts(h);
        let n = |k: &str| c.get(k).copied().unwrap_or(0);
        assert!(n(kind) > 0, "{what}: {} took no {kind}: {c:?}", h.name());
        for other in ["ipip", "gre", "gue", "bad"] {
            if other != *kind {
                assert_eq!(n(other), 0, "{what}: {} took {other}: {c:?}", h.name());
            }
        }
    }
}

#[test]
fn gue_and_gre_with_lvsadm() {
    let rig = Rig::builder(Mode::Tun).build();
    let (mut lb, sock) = Lvsfwd::start_admin(&rig, &["--interface", "lfeth0"]);
    let sock = sock.as_str();
    let vip = rig.vip(Fam::V4);
    let svc = format!("{vip}:80");
    let rip = |n| rig.rip(n, Fam::V4).to_string();
    let port = GUE_PORT.to_string();
    ok(sock, &["-A", "-t", &svc, "-s", "rr"]);
    ok(
        sock,
        &[
            "-a",
            "-t",
            &svc,
            "-r",
            &rip(1),
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            &port,
        ],
    );
    ok(
        sock,
        &[
            "-a",
            "-t",
            &svc,
            "-r",
            &rip(2),
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            &port,
            "--tun-csum",
        ],
    );
    ok(
        sock,
        &[
            "-a",
            "-t",
            &svc,
            "-r",
            &rip(3),
            "-i",
            "--tun-type",
            "gre",
            "--tun-csum",
        ],
    );
    let saved = ok(sock, &["-S", "-n"]);
    for want in [
        format!(
            "-a -t {svc} -r {}:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
            rip(1)
        ),
        format!(
            "-a -t {svc} -r {}:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
            rip(2)
        ),
        format!(
            "-a -t {svc} -r {}:80 -i -w 1 --tun-type gre --tun-csum",
            rip(3)
        ),
    ] {
        assert!(saved.lines().any(|l| l == want), "{want} not in:\n{saved}");
    }
    let info = ok(sock, &["-L", "-n", "--tun-info"]);
    assert!(info.contains("Forward TunnelInfo    Weight"), "{info}");
    assert!(info.contains("Tunnel  gue:6080:+c   1"), "{info}");
    assert!(info.contains("Tunnel  gre:+c        1"), "{info}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let what = "GUE and GRE from lvsadm";
    let t = rig.http(rig.client(), SocketAddr::new(vip, 80), REQUESTS);
    t.assert_all_ok(what);
    t.assert_even_split(&rig.rs_names(), what);
    t.assert_client_seen(rig.seen_client_ip(Fam::V4), what);
    assert_carried_by(&rig, &["gue", "gue", "gre"], what);
    // -e switches the third server to GRE without checksum: new requests
    // keep flowing through it (the decapsulator takes both forms).
    let before = rig.decap_counts(&rig.real_servers()[2])["gre"];
    ok(
        sock,
        &["-e", "-t", &svc, "-r", &rip(3), "-i", "--tun-type", "gre"],
    );
    let saved = ok(sock, &["-S", "-n"]);
    assert!(
        saved.contains(&format!(
            "-r {}:80 -i -w 1 --tun-type gre --tun-nocsum",
            rip(3)
        )),
        "{saved}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = rig.http(rig.client(), SocketAddr::new(vip, 80), REQUESTS);
    t.assert_all_ok("after -e");
    assert!(rig.decap_counts(&rig.real_servers()[2])["gre"] > before);
    lb.assert_running();
    assert!(lb.terminate().success());
}

#[test]
fn gue_and_gre_from_lb_toml_across_families() {
    // An IPv6 VIP over GUE with checksum and GRE to IPv4 real servers, and
    // GUE without checksum (a zero UDP checksum over IPv6, as the kernel
    // sends it) to an IPv6 real server.
    let rig = Rig::builder(Mode::Tun).build();
    let mut config = rig.lb_toml(&[]);
    config += &format!(
        "\n[[virtual_server]]\naddress = \"{}\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\nlb_kind = \"TUN\"\n",
        SocketAddr::new(rig.vip(Fam::V6), 80)
    );
    for (n, fam, keys) in [
        (
            1,
            Fam::V4,
            format!("tun_type = \"gue\"\n  tun_port = {GUE_PORT}\n  tun_flags = \"csum\""),
        ),
        (2, Fam::V4, "tun_type = \"gre\"".to_string()),
        (
            3,
            Fam::V6,
            format!("tun_type = \"gue\"\n  tun_port = {GUE_PORT}\n  tun_flags = \"nocsum\""),
        ),
    ] {
        config += &format!(
            "\n  [[virtual_server.real_server]]\n  address = \"{}\"\n  {keys}\n",
            SocketAddr::new(rig.rip(n, fam), 80)
        );
    }
    let mut lb = Lvsfwd::start(&rig, &config);
    let what = "GUE and GRE from lb.toml, IPv6 VIP";
    let t = rig.http(
        rig.client(),
        SocketAddr::new(rig.vip(Fam::V6), 80),
        REQUESTS,
    );
    t.assert_all_ok(what);
    t.assert_even_split(&rig.rs_names(), what);
    t.assert_client_seen(rig.seen_client_ip(Fam::V6), what);
    assert_carried_by(&rig, &["gue", "gre", "gue"], what);
    lb.assert_running();
    assert!(lb.terminate().success());
}

#[test]
fn tun_real_server_of_a_family_the_director_has_no_address_of_is_refused() {
    let rig = Rig::builder(Mode::Tun).build();
    let (mut lb, sock) = Lvsfwd::start_admin(&rig, &["--interface", "lfeth0"]);
    let sock = sock.as_str();
    // The director keeps a route to the IPv6 real servers but loses every
    // global IPv6 address (its link-local one cannot source a tunnel).
    let d = rig.director();
    d.ip(&[
        "addr",
        "del",
        &format!("{}/64", rig.dip(Fam::V6)),
        "dev",
        "lfeth0",
    ]);
    d.ip(&[
        "addr",
        "del",
        &format!("{}/128", rig.vip(Fam::V6)),
        "dev",
        "lfeth0",
    ]);
    let rs6 = rig.rip(1, Fam::V6);
    let std::net::IpAddr::V6(v6) = rs6 else {
        unreachable!()
    };
    let s = v6.segments();
    let net = format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
    d.ip(&["-6", "route", "add", &net, "dev", "lfeth0"]);
    let svc = format!("{}:80", rig.vip(Fam::V4));
    ok(sock, &["-A", "-t", &svc, "-s", "rr"]);
    let (code, _, err) = rig::daemon::lvsadm(
        sock,
        &["-a", "-t", &svc, "-r", &format!("[{rs6}]:80"), "-i"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "TUN real server {rs6} is IPv6, but no NIC lvsfwd serves has an IPv6 address"
        )),
        "{err}"
    );
    // Nothing changed; the IPv4 real server of the same service is fine.
    assert!(!ok(sock, &["-S", "-n"]).contains(&rs6.to_string()));
    ok(
        sock,
        &[
            "-a",
            "-t",
            &svc,
            "-r",
            &rig.rip(1, Fam::V4).to_string(),
            "-i",
        ],
    );
    lb.assert_running();
    assert!(lb.terminate().success());
}
