//! The kernel port end to end on DR and NAT rigs: frames that belong to the
//! director's own stack go back to the kernel through lvsfwd's tap.
//!
//! - Seed 001's `sorry_server 127.0.0.1 80`: with the only real server
//!   down, requests to the VIP are answered by an HTTP server on the
//!   director itself (IPVS's Local forwarding, listed as `Local`); when the
//!   real server comes back, new requests go to it.
//! - A stray ACK to VIP:port (no connection) from the client gets the
//!   director's RST, as with IPVS (`NF_ACCEPT`); without the kernel port
//!   nothing would answer it.
//!
//! Both check the tap while lvsfwd runs (`lvsk-<NIC>`, up, rp_filter 2)
//! and that it is gone after a clean stop.
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rig::daemon::Lvsfwd;
use rig::{Fam, HTTP_PORT, Mode, Rig, e2e, python, script, wait_until};

/// The tap lvsfwd creates for the rig's NIC.
const TAP: &str = "lvsk-lfeth0";
const DETECT_TIMEOUT: Duration = Duration::from_secs(15);
/// After the listing shows a change the workers may still be applying it.
const SETTLE: Duration = Duration::from_millis(300);

fn lvsadm(sock: &Path, args: &[&str]) -> String {
    rig::daemon::lvsadm_ok(&sock.to_string_lossy(), args)
}

/// `lvsadm -L -n`'s real servers: address -> Forward column.
fn listed(sock: &Path) -> BTreeMap<SocketAddr, String> {
    lvsadm(sock, &["-L", "-n"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = w.next()?.parse().ok()?;
            Some((addr, w.next()?.to_string()))
        })
        .collect()
}

fn wait_listing(sock: &Path, what: &str, pred: impl Fn(&BTreeMap<SocketAddr, String>) -> bool) {
    let ok = wait_until(DETECT_TIMEOUT, || pred(&listed(sock)));
    assert!(
        ok,
        "{what}: not seen within {DETECT_TIMEOUT:?}; listing:\n{}",
        lvsadm(sock, &["-L", "-n"])
    );
}

/// The counters of lvsfwd's stop line (`name value` pairs, totals and
/// reasons alike).
fn stop_counters(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("lvsfwd: stopped"))
        .unwrap_or_else(|| panic!("no stop line in:\n{stderr}"));
    let inner = line
        .split_once('(')
        .and_then(|(_, r)| r.rsplit_once(')'))
        .map_or("", |(i, _)| i);
    let words: Vec<&str> = inner
        .split([':', ','])
        .flat_map(|p| p.split_whitespace())
        .collect();
    words
        .chunks(2)
        .filter_map(|p| match p {
            [k, v] => Some((k.to_string(), v.parse().ok()?)),
            _ => None,
        })
        .collect()
}

/// The tap exists, is up, and has reverse-path filtering off (an
/// address-less interface fails any reverse-path check).
fn assert_tap_up(rig: &Rig) {
    let link = rig.director().ip(&["link", "show", "dev", TAP]);
    assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
    assert_eq!(
        rig.director()
            .sysctl_get(&format!("net.ipv4.conf.{TAP}.rp_filter")),
        "0"
    );
}

fn assert_tap_gone(rig: &Rig) {
    let out = rig
        .director()
        .exec(&["ip", "-o", "link", "show", "dev", TAP]);
    assert!(!out.ok(), "{TAP} still exists after the stop");
}

/// lb.toml: one `mode` service on the VIP over real server 1 (TCP_CHECK),
/// seed 001's sorry server 127.0.0.1:80.
fn lb_toml(rig: &Rig, mode: Mode, sock: &Path) -> String {
    format!(
        "[global]\ninterface = \"{}\"\nadmin_socket = \"{}\"\n\n\
         [[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nlb_algo = \"rr\"\nlb_kind = \"{}\"\n\
         delay_loop = 1\nsorry_server = \"127.0.0.1:{HTTP_PORT}\"\n\n\
         [[virtual_server.real_server]]\naddress = \"{}:{HTTP_PORT}\"\nweight = 1\n\
         [virtual_server.real_server.tcp_check]\nconnect_timeout = 1\nretry = 1\n\
         delay_before_retry = 1\n",
        rig::IFACE,
        sock.display(),
        rig.vip(Fam::V4),
        mode.lb_kind(),
        rig.rip(1, Fam::V4),
    )
}

/// The rig's HTTP/UDP services on `host`, as the rig starts them.
fn start_servers(rig: &Rig, n: Option<usize>) {
    let (h, name) = match n {
        Some(n) => (rig.rs(n), rig.rs(n).name()),
        None => (rig.director(), "director".to_string()),
    };
    let port = HTTP_PORT.to_string();
    rig.spawn_ready(
        h,
        "servers",
        &[
            python(),
            &script("servers.py"),
            "--name",
            &name,
            "--http",
            &port,
        ],
        Duration::from_secs(10),
    );
    h.wait_tcp_listen(HTTP_PORT, Duration::from_secs(10));
}

#[test]
fn dr_sorry_server_on_the_director_answers_while_the_real_server_is_down() {
    local_sorry_server(Mode::Dr);
}

#[test]
fn nat_sorry_server_on_the_director_answers_while_the_real_server_is_down() {
    local_sorry_server(Mode::Nat);
}

fn local_sorry_server(mode: Mode) {
    // veth's default checksum offload, as in containers: the client's
    // segments arrive with partial checksums, which must be completed
    // before the director's stack checks them.
    let rig = Rig::builder(mode)
        .real_servers(1)
        .veth_offloads(true)
        .build();
    let sock = rig.dir().join("admin.sock");
    // The director's own HTTP server: 0.0.0.0:80 (dual stack).
    start_servers(&rig, None);
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, mode, &sock));
    assert_tap_up(&rig);
    let rs1 = SocketAddr::new(rig.rip(1, Fam::V4), HTTP_PORT);
    let sorry: SocketAddr = format!("127.0.0.1:{HTTP_PORT}").parse().unwrap();
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    wait_listing(&sock, "rs1 in", |l| l.len() == 1 && l.contains_key(&rs1));
    let t = rig.http(rig.client(), vip, 4);
    t.assert_all_ok("through rs1");
    assert_eq!(t.per_server().keys().collect::<Vec<_>>(), ["rs1"]);

    // The real server goes down: the sorry server on the director, Local.
    let pid = *rig.pids_named(rig.rs(1), "servers").last().unwrap();
    rig.kill(pid);
    wait_listing(&sock, "only the sorry server, Local", |l| {
        l.len() == 1 && l.get(&sorry).map(String::as_str) == Some("Local")
    });
    std::thread::sleep(SETTLE);
    let t = rig.http(rig.client(), vip, 6);
    t.assert_all_ok("through the sorry server on the director");
    assert_eq!(
        t.per_server().keys().collect::<Vec<_>>(),
        ["director"],
        "{:?}",
        t.per_server()
    );
    t.assert_client_seen(rig.client_ip(Fam::V4), "the director's server");
    let conns = lvsadm(&sock, &["-L", "-n", "-c"]);
    assert!(conns.contains(&format!("127.0.0.1:{HTTP_PORT}")), "{conns}");

    // Back: new requests go to the real server again.
    start_servers(&rig, Some(1));
    wait_listing(&sock, "rs1 back, sorry server out", |l| {
        l.len() == 1 && l.contains_key(&rs1)
    });
    std::thread::sleep(SETTLE);
    let t = rig.http(rig.client(), vip, 4);
    t.assert_all_ok("back on rs1");
    assert_eq!(t.per_server().keys().collect::<Vec<_>>(), ["rs1"]);

    e2e::clean_stop(&rig, &mut lb);
    assert_tap_gone(&rig);
    let c = stop_counters(&lb.stderr());
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    // Each request through the sorry server is several client packets.
    assert!(get("local") >= 6 * 3, "{c:?}");
    assert!(get("to_kernel") >= get("local"), "{c:?}");
    assert_eq!(get("kernel_port_drop"), 0, "{c:?}");
}

#[test]
fn a_stray_ack_to_the_vip_gets_the_directors_rst() {
    let rig = Rig::builder(Mode::Dr).real_servers(1).build();
    let sock = rig.dir().join("admin.sock");
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, Mode::Dr, &sock));
    assert_tap_up(&rig);
    let client = rig.client_ip(Fam::V4).to_string();
    let vip = rig.vip(Fam::V4).to_string();
    let port = HTTP_PORT.to_string();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let out = rig
            .client()
            .exec_ok(&[python(), &script("stray_ack.py"), &client, &vip, &port]);
        answers.push(out.trim().to_string());
    }
    // The director's kernel might rate-limit nothing here, but one lost
    // frame on a veth must not fail the test: most must be answered.
    let rst = answers.iter().filter(|a| *a == "rst").count();
    assert!(rst >= 2, "RSTs for stray ACKs: {answers:?}");
    // A real connection still works next to it.
    let t = rig.http(
        rig.client(),
        SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT),
        2,
    );
    t.assert_all_ok("through rs1");
    e2e::clean_stop(&rig, &mut lb);
    assert_tap_gone(&rig);
    let c = stop_counters(&lb.stderr());
    assert!(c.get("no_conn").copied().unwrap_or(0) >= 3, "{c:?}");
}
