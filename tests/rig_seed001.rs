//! Seed 001's deployment: two directors (keepalived MASTER/BACKUP in the
//! seed, two lvsfwd here) with an external NIC towards the clients and an
//! internal NIC towards the real servers, the VIP held by VRRP on the
//! external NIC, DR to the real servers on the internal network, HTTP_GET
//! checks, and `sorry_server 127.0.0.1 80` answering from the director
//! itself when every real server is down.
//!
//! ```text
//!  ext 198.18.0.0/24:  client .100   director .140   peer .141   VIP .144 (VRRP)
//!                      rs1 .146, rs2 .147 (their replies to clients, as the seed's eth0)
//!  int 198.18.100.0/24: director .140  peer .141   rs1 .142   rs2 .143
//! ```
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rig::daemon::Lvsfwd;
use rig::{Host, IFACE, Mode, Rig, python, script, wait_until};

const INT: &str = "lfeth1";
const VIP: &str = "198.18.0.144";
const CLIENT: &str = "198.18.0.100";

fn ext_ip(h: &str) -> &'static str {
    match h {
        "director" => "198.18.0.140",
        "peer" => "198.18.0.141",
        "rs1" => "198.18.0.146",
        "rs2" => "198.18.0.147",
        _ => unreachable!(),
    }
}

fn int_ip(h: &str) -> &'static str {
    match h {
        "director" => "198.18.100.140",
        "peer" => "198.18.100.141",
        "rs1" => "198.18.100.142",
        "rs2" => "198.18.100.143",
        _ => unreachable!(),
    }
}

/// A second L2 segment in the rig's switch namespace: `host`'s `INT` NIC on
/// bridge `br`.
fn attach_int(rig: &Rig, br: &str, host: &Host, tag: &str) {
    let port = format!("lfi{tag}{}", std::process::id() % 100_000);
    host.ip(&[
        "link",
        "add",
        INT,
        "type",
        "veth",
        "peer",
        "name",
        &port,
        "netns",
        rig.switch_ns(),
    ]);
    let sw = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", rig.switch_ns(), "ip"];
        full.extend_from_slice(args);
        rig::run(&full, rig::CMD_TIMEOUT).expect_ok();
    };
    sw(&["link", "set", &port, "master", br]);
    sw(&["link", "set", &port, "up"]);
    host.ip(&["link", "set", INT, "up"]);
}

fn seed001_rig() -> Rig {
    let rig = Rig::builder(Mode::Bare)
        .real_servers(2)
        .peer_director(true)
        .veth_offloads(true)
        .build();
    let br = format!("lfbi{}", std::process::id() % 100_000);
    let sw = |args: &[&str]| {
        let mut full = vec!["ip", "netns", "exec", rig.switch_ns(), "ip"];
        full.extend_from_slice(args);
        rig::run(&full, rig::CMD_TIMEOUT).expect_ok();
    };
    sw(&[
        "link",
        "add",
        &br,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
    ]);
    sw(&["link", "set", &br, "up"]);
    let c = rig.client();
    c.add_addr(IFACE, &format!("{CLIENT}/24"));
    // The peer already has the rig's peer address; the seed's plan here.
    for (h, name) in [(rig.director(), "director"), (rig.peer(), "peer")] {
        attach_int(&rig, &br, h, &name[..1]);
        h.add_addr(IFACE, &format!("{}/24", ext_ip(name)));
        h.add_addr(INT, &format!("{}/24", int_ip(name)));
        h.sysctl("net.ipv4.ip_forward", "0");
        // The sorry server: seed 001's `sorry_server 127.0.0.1 80`.
        rig.spawn_ready(
            h,
            "servers",
            &[
                python(),
                &script("servers.py"),
                "--name",
                name,
                "--http",
                "80",
            ],
            Duration::from_secs(10),
        );
        h.wait_tcp_listen(80, Duration::from_secs(10));
    }
    for (i, h) in rig.real_servers().iter().enumerate() {
        let name = format!("rs{}", i + 1);
        attach_int(&rig, &br, h, &format!("r{}", i + 1));
        h.add_addr(IFACE, &format!("{}/24", ext_ip(&name)));
        h.add_addr(INT, &format!("{}/24", int_ip(&name)));
        h.add_addr("lo", &format!("{VIP}/32"));
        h.arp_quiet_lo();
        for dev in ["all", "default", IFACE, INT] {
            h.sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0");
        }
        start_rs(&rig, i + 1);
    }
    rig
}

fn start_rs(rig: &Rig, n: usize) {
    let h = rig.rs(n);
    let name = format!("rs{n}");
    rig.spawn_ready(
        h,
        "servers",
        &[
            python(),
            &script("servers.py"),
            "--name",
            &name,
            "--http",
            "80",
        ],
        Duration::from_secs(10),
    );
    h.wait_tcp_listen(80, Duration::from_secs(10));
}

fn stop_rs(rig: &Rig, n: usize) {
    for pid in rig.pids_named(rig.rs(n), "servers") {
        rig.kill(pid);
    }
}

/// Seed 001's keepalived.conf as lb.toml (what `import-keepalived` makes of
/// it, plus the internal NIC and a 1-second delay_loop for the test).
fn lb_toml(rig: &Rig, who: &str, state: &str, prio: u8) -> String {
    let mut s = format!(
        "[global]\nrouter_id = \"{who}\"\ninterface = [\"{IFACE}\", \"{INT}\"]\n\
         admin_socket = \"{}\"\nvrrp_mcast_group4 = \"224.0.29.18\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"{state}\"\ninterface = \"{IFACE}\"\n\
         virtual_router_id = 20\npriority = {prio}\nadvert_int = 1\nauth_type = \"PASS\"\n\
         auth_pass = \"11112222\"\nvirtual_ipaddress = [\"{VIP}/32\"]\n\n\
         [[virtual_server]]\naddress = \"{VIP}:80\"\nprotocol = \"TCP\"\nlb_algo = \"rr\"\n\
         lb_kind = \"DR\"\ndelay_loop = 1\nsorry_server = \"127.0.0.1:80\"\n",
        rig.dir().join(format!("{who}.sock")).display()
    );
    for rs in ["rs1", "rs2"] {
        s += &format!(
            "\n  [[virtual_server.real_server]]\n  address = \"{}:80\"\n  weight = 1\n\
             \x20 [virtual_server.real_server.http_get]\n  url = [{{ path = \"/\", status_code = 200 }}]\n\
             \x20 connect_timeout = 1\n  retry = 1\n  delay_before_retry = 1\n",
            int_ip(rs)
        );
    }
    s
}

fn has_vip(h: &Host) -> bool {
    h.ip(&["-4", "-o", "addr", "show", "dev", IFACE])
        .contains(&format!(" {VIP}/32 "))
}

fn vip() -> SocketAddr {
    format!("{VIP}:80").parse().unwrap()
}

/// Who answered `n` requests through the VIP, all of which must succeed.
fn answered(rig: &Rig, n: usize, what: &str) -> BTreeMap<String, usize> {
    let t = rig.http(rig.client(), vip(), n);
    t.assert_all_ok(what);
    t.per_server()
}

/// Waits until every request of a batch is answered by one of `who`.
fn until_served_by(rig: &Rig, who: &[&str], what: &str) {
    let ok = wait_until(Duration::from_secs(20), || {
        let t = rig.http(rig.client(), vip(), 4);
        t.per_server().keys().all(|k| who.contains(&k.as_str()))
            && t.per_server().values().sum::<usize>() == 4
    });
    assert!(ok, "{what}: not served by {who:?} within 20 s");
}

#[test]
fn seed_001_two_directors_two_nics_dr_and_the_local_sorry_server() {
    let rig = seed001_rig();
    let mut master = Lvsfwd::start(&rig, &lb_toml(&rig, "director", "MASTER", 100));
    let mut backup = Lvsfwd::start_on(
        &rig,
        rig.peer(),
        "peer.toml",
        &lb_toml(&rig, "peer", "BACKUP", 90),
    );
    assert!(
        wait_until(Duration::from_secs(10), || has_vip(rig.director())),
        "the MASTER never took the VIP"
    );
    assert!(!has_vip(rig.peer()));

    // DR to the internal network: both real servers, evenly, client seen.
    until_served_by(&rig, &["rs1", "rs2"], "through the master");
    let per = answered(&rig, 20, "DR through the master's two NICs");
    assert_eq!(
        (per.get("rs1"), per.get("rs2")),
        (Some(&10), Some(&10)),
        "{per:?}"
    );

    // Every real server down: the director itself answers (Local).
    stop_rs(&rig, 1);
    stop_rs(&rig, 2);
    until_served_by(&rig, &["director"], "the sorry server on the master");

    // The master stops (priority 0): the backup takes the VIP and its own
    // sorry server answers; then the real servers return behind it.
    assert!(master.terminate().success(), "{}", master.stderr());
    assert!(
        wait_until(Duration::from_secs(10), || has_vip(rig.peer())),
        "the BACKUP never took the VIP"
    );
    until_served_by(&rig, &["peer"], "the sorry server on the backup");
    start_rs(&rig, 1);
    start_rs(&rig, 2);
    until_served_by(&rig, &["rs1", "rs2"], "through the backup");
    let per = answered(&rig, 20, "DR through the backup's two NICs");
    assert_eq!(per.values().sum::<usize>(), 20, "{per:?}");
    assert!(backup.terminate().success(), "{}", backup.stderr());
}
