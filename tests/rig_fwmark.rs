//! fwmark services and virtual_server_group on a live DR rig.
//!
//! - A fwmark service over ports 80 and 443 (lb.toml's `[[fwmark]]` rule
//!   marks them; the service itself comes from `lvsadm -A -f 1 -s rr -p 60`
//!   and `-a -f 1 -r RIP -g`): a client's connections to both ports land on
//!   one real server, another client's on another one, and the listings
//!   are ipvsadm's (`FWM  1`, `-A -f 1`, `IP` templates).
//! - A `virtual_server group` whose member is a range of VIPs
//!   (`198.18.0.240-242:80`): each address is a service of its own with the
//!   virtual server's real servers.
//!
//! The real servers serve HTTP on both ports (tests/rig/servers.py, a
//! second instance on 443), so the answer names the server that took it.
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rig::daemon::{Lvsfwd, lvsadm_ok as ok};
use rig::{Fam, IFACE, Mode, Rig, python, script};

/// A second HTTP server on `port` on every real server.
fn serve_port(rig: &Rig, port: u16) {
    let p = port.to_string();
    for h in rig.real_servers() {
        let name = h.name();
        rig.spawn_ready(
            h,
            &format!("http{port}"),
            &[
                python(),
                &script("servers.py"),
                "--name",
                &name,
                "--http",
                &p,
            ],
            Duration::from_secs(10),
        );
        h.wait_tcp_listen(port, Duration::from_secs(10));
    }
}

fn servers_of(t: &rig::Tally) -> BTreeSet<String> {
    t.per_server().into_keys().collect()
}

#[test]
fn fwmark_service_keeps_a_client_on_one_server_across_ports() {
    let rig = Rig::builder(Mode::Dr).real_servers(3).build();
    serve_port(&rig, 443);
    let sock = rig.dir().join("admin.sock");
    let sock = sock.to_str().unwrap();
    let vip = rig.vip(Fam::V4);
    let toml = format!(
        "[global]\ninterface = \"{IFACE}\"\nadmin_socket = \"{sock}\"\n\n\
         [[fwmark]]\nmark = 1\nmatch = [\"TCP {vip}:80\", \"TCP {vip}:443\"]\n"
    );
    let mut lb = Lvsfwd::start(&rig, &toml);
    ok(sock, &["-A", "-f", "1", "-s", "rr", "-p", "60"]);
    for n in 1..=3 {
        let r = rig.rip(n, Fam::V4).to_string();
        ok(sock, &["-a", "-f", "1", "-r", &r, "-g"]);
    }
    let mut expected = String::new();
    expected += "IP Virtual Server version 1.2.1 (size=1048576)\n";
    expected += "Prot LocalAddress:Port Scheduler Flags\n";
    expected += "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    expected += "FWM  1 rr persistent 60\n";
    for n in 1..=3 {
        let rs = format!("{}:0", rig.rip(n, Fam::V4));
        expected += &format!("  -> {rs:<28} Route   1      0          0         \n");
    }
    assert_eq!(ok(sock, &["-L", "-n"]), expected);

    std::thread::sleep(Duration::from_millis(300));
    // Client 1: both ports, interleaved; one server for all of them.
    let c1 = rig.client_ip(Fam::V4);
    let mut one = BTreeSet::new();
    for port in [80, 443, 80, 443] {
        let t = rig.http_bound(rig.client(), c1, SocketAddr::new(vip, port), 3);
        t.assert_all_ok(&format!("client 1 to port {port}"));
        one.extend(servers_of(&t));
    }
    assert_eq!(one.len(), 1, "client 1 moved between servers: {one:?}");
    // Client 2 (another address): rr gives it the next server, and it
    // keeps that one on both ports too.
    let c2: IpAddr = "198.18.0.101".parse().unwrap();
    rig.client().add_addr(IFACE, "198.18.0.101/24");
    let mut two = BTreeSet::new();
    for port in [443, 80] {
        let t = rig.http_bound(rig.client(), c2, SocketAddr::new(vip, port), 3);
        t.assert_all_ok(&format!("client 2 to port {port}"));
        two.extend(servers_of(&t));
    }
    assert_eq!(two.len(), 1, "client 2 moved between servers: {two:?}");
    assert_ne!(one, two, "rr gave both clients one server");

    // One template per client: IPVS's `IP` entries keyed by the mark.
    let conns = ok(sock, &["-L", "-n", "-c"]);
    let tpls: Vec<&str> = conns.lines().filter(|l| l.starts_with("IP ")).collect();
    assert_eq!(tpls.len(), 2, "{conns}");
    assert!(tpls.iter().all(|l| l.contains(" 0.0.0.1:0 ")), "{conns}");
    assert!(conns.contains(&format!(" {vip}:443 ")), "{conns}");
    let save = ok(sock, &["-S", "-n"]);
    assert!(save.starts_with("-A -f 1 -s rr -p 60\n"), "{save}");
    assert!(
        save.contains(&format!("-a -f 1 -r {}:0 -g -w 1\n", rig.rip(1, Fam::V4))),
        "{save}"
    );
    let stats = ok(sock, &["-L", "-n", "--stats", "--exact"]);
    // 4 x 3 requests of client 1, 2 x 3 of client 2.
    assert!(
        stats.contains("\nFWM  1                                  18 "),
        "{stats}"
    );
    // -D -f removes it: the VIP's ports are no longer served.
    ok(sock, &["-D", "-f", "1"]);
    assert_eq!(ok(sock, &["-S", "-n"]), "");
    lb.assert_running();
    assert!(lb.terminate().success());
}

#[test]
fn group_with_a_range_member_is_a_service_per_address() {
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    let vips = ["198.18.0.240", "198.18.0.241", "198.18.0.242"];
    for v in vips {
        rig.director().add_addr(IFACE, &format!("{v}/32"));
        for h in rig.real_servers() {
            h.add_addr("lo", &format!("{v}/32"));
        }
    }
    let sock = rig.dir().join("admin.sock");
    let sock = sock.to_str().unwrap();
    let mut toml = format!(
        "[global]\ninterface = \"{IFACE}\"\nadmin_socket = \"{sock}\"\n\n\
         [[virtual_server_group]]\nname = \"web\"\nmembers = [\"198.18.0.240-242:80\"]\n\n\
         [[virtual_server]]\ngroup = \"web\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n"
    );
    for n in 1..=2 {
        toml += &format!(
            "\n  [[virtual_server.real_server]]\n  address = \"{}\"\n",
            rig.rip(n, Fam::V4)
        );
    }
    let mut lb = Lvsfwd::start(&rig, &toml);
    let listing = ok(sock, &["-L", "-n"]);
    for v in vips {
        assert!(listing.contains(&format!("TCP  {v}:80 rr\n")), "{listing}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let names = rig.rs_names();
    for v in vips {
        let t = rig.http(rig.client(), SocketAddr::new(v.parse().unwrap(), 80), 6);
        t.assert_all_ok(&format!("member {v}"));
        t.assert_even_split(&names, &format!("member {v}"));
    }
    // The address just past the range is no service.
    let save = ok(sock, &["-S", "-n"]);
    assert_eq!(
        save.lines().filter(|l| l.starts_with("-A ")).count(),
        3,
        "{save}"
    );
    lb.assert_running();
    assert!(lb.terminate().success());
}
