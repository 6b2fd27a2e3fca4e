//! Proves the test rig itself, without lvsfwd: namespaces come and go, each
//! mode is wired as an LVS operator would wire it, and the probes the
//! end-to-end tests rely on can tell a working setup from a broken one.
//! Needs root (network namespaces), like every `rig_*` test.
#![forbid(unsafe_code)]

mod rig;

use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rig::plan::{self, Svc};
use rig::{Fam, HTTP_PORT, IFACE, Mode, Rig, UDP_PORT, netns_list, python, script};

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

fn assert_gone(names: &[String], pids: &[u32]) {
    let now = netns_list();
    for n in names {
        assert!(!now.contains(n), "namespace {n} survived its rig");
    }
    for p in pids {
        assert!(
            !Path::new(&format!("/proc/{p}")).exists(),
            "process {p} survived its rig"
        );
    }
}

#[test]
fn rig_is_removed_on_drop() {
    let rig = Rig::builder(Mode::Bare).real_servers(4).build();
    let names = rig.namespaces();
    // switch + client + director + 4 real servers
    assert_eq!(names.len(), 7, "{names:?}");
    let now = netns_list();
    for n in &names {
        assert!(n.starts_with("lf"), "{n}");
        assert!(now.contains(n), "namespace {n} missing");
    }
    let bridged = run_in_switch(&rig, &["ip", "-o", "link", "show", "type", "veth"]);
    for h in rig.hosts() {
        assert!(bridged.contains(&rig.switch_port(h)), "{bridged}");
        assert!(h.ip(&["link", "show", IFACE]).contains(&h.mac));
    }
    let pid = rig.spawn(rig.rs(4), "sleeper", &["sleep", "30"]);
    drop(rig);
    assert_gone(&names, &[pid]);
}

fn run_in_switch(rig: &Rig, argv: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", rig.switch_ns()];
    full.extend_from_slice(argv);
    rig::run(&full, rig::CMD_TIMEOUT).expect_ok()
}

#[test]
fn rig_is_removed_after_a_panic_inside_it() {
    let seen: Mutex<(Vec<String>, Vec<u32>)> = Mutex::new((Vec::new(), Vec::new()));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let rig = Rig::builder(Mode::Bare).real_servers(1).build();
        let pid = rig.spawn(rig.client(), "sleeper", &["sleep", "30"]);
        *seen.lock().unwrap() = (rig.namespaces(), vec![pid]);
        panic!("deliberate panic inside a rig (expected by this test)");
    }));
    assert!(result.is_err());
    let (names, pids) = seen.into_inner().unwrap();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_gone(&names, &pids);
}

/// Every real server answers HTTP and UDP on its own address with its name
/// and the client address it saw.
fn serves_directly(rig: &Rig, from: &rig::Host, bind: Option<IpAddr>, fam: Fam, seen: IpAddr) {
    for (i, h) in rig.real_servers().iter().enumerate() {
        let rip = rig.rip(i + 1, fam);
        let t = match bind {
            Some(b) => rig.http_bound(from, b, sa(rip, HTTP_PORT), 2),
            None => rig.http(from, sa(rip, HTTP_PORT), 2),
        };
        t.assert_all_ok(&format!("HTTP to {rip}"));
        assert_eq!(t.per_server().get(&h.name()), Some(&2), "{t:?}");
        t.assert_client_seen(seen, &format!("HTTP to {rip}"));
        if bind.is_none() {
            let u = rig.udp(from, sa(rip, UDP_PORT), 2);
            u.assert_all_ok(&format!("UDP to {rip}"));
            assert_eq!(u.per_server().get(&h.name()), Some(&2), "{u:?}");
            u.assert_client_seen(seen, &format!("UDP to {rip}"));
        }
    }
}

#[test]
fn dr_rig_serves_directly_and_only_the_director_answers_arp_for_the_vip() {
    let rig = Rig::dr();
    let (c, d) = (rig.client(), rig.director());
    for fam in [Fam::V4, Fam::V6] {
        serves_directly(&rig, c, None, fam, rig.client_ip(fam));
        rig::e2e::director_reachable(&rig, fam);
    }
    let (cip, vip) = (rig.client_ip(Fam::V4), rig.vip(Fam::V4));
    let answers = rig.arp_who_answers(c, cip, vip);
    assert_eq!(answers, [d.mac.clone()].into(), "ARP for the VIP");
    // The kernel's own resolution agrees.
    rig.ping(c, vip)
        .expect("the director answers ping on the VIP");
    let neigh = c.ip(&["neigh", "show", &vip.to_string(), "dev", IFACE]);
    assert!(neigh.contains(&d.mac), "client neighbour entry: {neigh}");

    // Without the director holding it, nobody answers: arp_ignore works.
    d.del_addr(IFACE, &plan::cidr(vip, 32));
    assert!(rig.arp_who_answers(c, cip, vip).is_empty());
    // Control: a real server without arp_ignore does answer, so the probe
    // would catch a mis-wired real server.
    let rs1 = rig.rs(1);
    rs1.sysctl("net.ipv4.conf.all.arp_ignore", "0");
    rs1.sysctl("net.ipv4.conf.lo.arp_ignore", "0");
    assert_eq!(rig.arp_who_answers(c, cip, vip), [rs1.mac.clone()].into());
    rs1.sysctl("net.ipv4.conf.all.arp_ignore", "1");
    rs1.sysctl("net.ipv4.conf.lo.arp_ignore", "1");
    assert!(rig.arp_who_answers(c, cip, vip).is_empty());
    // The DR sysctls of seed 004 are in place everywhere.
    for h in rig.real_servers() {
        for dev in ["all", "lo"] {
            assert_eq!(
                h.sysctl_get(&format!("net.ipv4.conf.{dev}.arp_ignore")),
                "1"
            );
            assert_eq!(
                h.sysctl_get(&format!("net.ipv4.conf.{dev}.arp_announce")),
                "2"
            );
        }
    }
}

/// Sends one IPIP frame from the director to real server `n` carrying a SYN
/// client -> VIP:80 from `sport`; returns (SYN-ACK seen by the client, ICMP
/// unreachable seen by the director).
fn ipip_syn(rig: &Rig, n: usize, sport: u16) -> (bool, bool) {
    let (c, d, h) = (rig.client(), rig.director(), rig.rs(n));
    let cip = rig.client_ip(Fam::V4).to_string();
    let vip = rig.vip(Fam::V4).to_string();
    let dip = rig.dip(Fam::V4).to_string();
    let rip = rig.rip(n, Fam::V4).to_string();
    let sport = sport.to_string();
    let py = python();
    let cl = script("client.py");
    let synack = rig.spawn_ready(
        c,
        "sniff",
        &[
            py,
            &cl,
            "sniff",
            "--iface",
            IFACE,
            "--src",
            &vip,
            "--dst",
            &cip,
            "--sport",
            "80",
            "--dport",
            &sport,
            "--flags",
            "SA",
            "--timeout",
            "4",
        ],
        Duration::from_secs(10),
    );
    let icmp = rig.spawn_ready(
        d,
        "sniff",
        &[
            py,
            &cl,
            "sniff",
            "--iface",
            IFACE,
            "--src",
            &rip,
            "--dst",
            &dip,
            "--icmp-unreach",
            "--timeout",
            "1.5",
        ],
        Duration::from_secs(10),
    );
    d.exec_ok(&[
        py,
        &cl,
        "ipip",
        "--iface",
        IFACE,
        "--dst-mac",
        &h.mac,
        "--outer-src",
        &dip,
        "--outer-dst",
        &rip,
        "--inner-src",
        &cip,
        "--inner-dst",
        &vip,
        "--sport",
        &sport,
        "--dport",
        "80",
    ]);
    let finished = |pid| {
        rig::wait_until(Duration::from_secs(8), || {
            let (out, _) = rig.proc_logs(pid);
            out.contains("seen") || out.contains("timeout")
        })
    };
    let got_synack = finished(synack) && rig.proc_logs(synack).0.contains("seen");
    let got_icmp = finished(icmp) && rig.proc_logs(icmp).0.contains("seen");
    (got_synack, got_icmp)
}

#[test]
fn tun_rig_decapsulates_a_hand_built_ipip_packet() {
    let rig = Rig::tun();
    serves_directly(&rig, rig.client(), None, Fam::V4, rig.client_ip(Fam::V4));
    for (i, h) in rig.real_servers().iter().enumerate() {
        let (synack, icmp) = ipip_syn(&rig, i + 1, 41000 + i as u16);
        assert!(
            synack,
            "no SYN-ACK VIP:80 -> client from {} after an IPIP SYN; {}",
            h.name(),
            h.ip(&["-s", "link", "show", rig::TUN_IFACE])
        );
        // Like the ipip module, the helper consumes the packet: the kernel
        // must not tell the director "protocol unreachable".
        assert!(
            !icmp,
            "{} answered the IPIP packet with ICMP unreachable",
            h.name()
        );
    }
    // Control: without the helper the same packet gets no SYN-ACK, and the
    // kernel's ICMP is there, so both probes above can fail.
    for pid in rig.pids_named(rig.rs(1), "decap") {
        rig.kill(pid);
    }
    assert_eq!(ipip_syn(&rig, 1, 42000), (false, true));
}

#[test]
fn nat_rig_reaches_real_servers_only_through_kernel_forwarding() {
    let rig = Rig::nat();
    let (c, d) = (rig.client(), rig.director());
    assert_eq!(d.sysctl_get("net.ipv4.ip_forward"), "0");
    assert_eq!(d.sysctl_get("net.ipv6.conf.all.forwarding"), "0");
    let rip1 = sa(rig.rip(1, Fam::V4), HTTP_PORT);
    let blocked = rig.http(c, rip1, 1);
    assert_eq!(
        blocked.ok.len(),
        0,
        "reached {rip1} without forwarding: {blocked:?}"
    );
    for fam in [Fam::V4, Fam::V6] {
        rig::e2e::director_reachable(&rig, fam);
    }

    d.sysctl("net.ipv4.ip_forward", "1");
    d.sysctl("net.ipv6.conf.all.forwarding", "1");
    for fam in [Fam::V4, Fam::V6] {
        serves_directly(&rig, c, None, fam, rig.client_ip(fam));
    }
    d.sysctl("net.ipv4.ip_forward", "0");
    d.sysctl("net.ipv6.conf.all.forwarding", "0");
    let blocked = rig.http(c, rip1, 1);
    assert_eq!(
        blocked.ok.len(),
        0,
        "reached {rip1} with forwarding off again: {blocked:?}"
    );
}

#[test]
fn fullnat_rig_real_servers_answer_only_the_local_address() {
    let rig = Rig::fullnat();
    let (c, d) = (rig.client(), rig.director());
    for fam in [Fam::V4, Fam::V6] {
        serves_directly(&rig, d, Some(rig.lip(fam)), fam, rig.lip(fam));
        rig::e2e::director_reachable(&rig, fam);
    }
    // Even with the director routing, the real servers cannot answer the
    // client's own address: only a FULLNAT rewrite can make it work.
    d.sysctl("net.ipv4.ip_forward", "1");
    let rip1 = sa(rig.rip(1, Fam::V4), HTTP_PORT);
    let t = rig.http(c, rip1, 1);
    d.sysctl("net.ipv4.ip_forward", "0");
    assert_eq!(
        t.ok.len(),
        0,
        "a real server answered the client directly: {t:?}"
    );
}

#[test]
fn xdp_probe_sees_an_attached_program() {
    let rig = Rig::builder(Mode::Bare).real_servers(1).build();
    let src = rig.dir().join("pass.c");
    let obj = rig.dir().join("pass.o");
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int pass(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let (s, o) = (src.to_string_lossy(), obj.to_string_lossy());
    rig::run(
        &["clang", "-O2", "-target", "bpf", "-c", &s, "-o", &o],
        rig::CMD_TIMEOUT,
    )
    .expect_ok();
    let d = rig.director();
    assert!(!d.xdp_attached(), "{}", d.link_details());
    d.ip(&[
        "link",
        "set",
        "dev",
        IFACE,
        "xdpgeneric",
        "obj",
        &o,
        "sec",
        "xdp",
    ]);
    assert!(d.xdp_attached(), "{}", d.link_details());
    d.ip(&["link", "set", "dev", IFACE, "xdpgeneric", "off"]);
    assert!(!d.xdp_attached(), "{}", d.link_details());
}

/// The lb.toml the end-to-end tests hand to lvsfwd is valid for today's
/// validator, in every mode and family.
#[test]
fn lb_toml_of_every_mode_passes_lvsfwd_check() {
    let dir = tempfile::tempdir().unwrap();
    let services = [
        Svc::tcp(Fam::V4, HTTP_PORT),
        Svc::udp(Fam::V4, UDP_PORT),
        Svc::tcp(Fam::V6, HTTP_PORT),
        Svc::udp(Fam::V6, UDP_PORT),
    ];
    for mode in [Mode::Dr, Mode::Nat, Mode::Tun, Mode::FullNat] {
        let text = plan::lb_toml(mode, 3, &services, "/tmp/lfrig-unused.sock");
        let path = dir.path().join(format!("{}.toml", mode.lb_kind()));
        std::fs::write(&path, &text).unwrap();
        let p = path.to_string_lossy();
        let out = rig::run(
            &[rig::daemon::binary(), "check", "--config", &p],
            rig::CMD_TIMEOUT,
        );
        assert!(out.ok(), "{mode:?}:\n{text}\n{out}");
        assert!(!text.contains("mac ="), "{text}");
        assert_eq!(text.matches("[[virtual_server.real_server]]").count(), 12);
    }
}

const FAKE_DAEMON: &str = "import signal, sys, time\n\
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n\
print('fake lvsfwd args', sys.argv[1:], file=sys.stderr, flush=True)\n\
print('lvsfwd: ready (fake)', file=sys.stderr, flush=True)\n\
time.sleep(30)\n\
sys.exit(7)\n";

const FAKE_BROKEN_DAEMON: &str = "import sys\n\
print('lb.toml:1:1: fake failure', file=sys.stderr, flush=True)\n\
sys.exit(3)\n";

/// The daemon harness passes `--config FILE`, waits for the ready line,
/// keeps stderr, and stops the process with SIGTERM.
#[test]
fn daemon_harness_waits_for_ready_and_stops_with_sigterm() {
    let rig = Rig::builder(Mode::Bare).real_servers(1).build();
    let mut lb = rig::daemon::Lvsfwd::start_program(&rig, &[python(), "-c", FAKE_DAEMON], "# x\n");
    lb.assert_running();
    let err = lb.stderr();
    assert!(err.contains("--config"), "{err}");
    assert!(err.contains(&*lb.config.to_string_lossy()), "{err}");
    assert_eq!(std::fs::read_to_string(&lb.config).unwrap(), "# x\n");
    let st = lb.terminate();
    assert_eq!(st.code(), Some(0), "{st}");
}

#[test]
fn daemon_harness_fails_fast_when_the_daemon_exits_before_ready() {
    let rig = Rig::builder(Mode::Bare).real_servers(1).build();
    let started = std::time::Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| {
        rig::daemon::Lvsfwd::start_program(&rig, &[python(), "-c", FAKE_BROKEN_DAEMON], "");
    }));
    let msg = r.expect_err("start must fail");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("exited before `lvsfwd: ready`"), "{msg}");
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn tally(counts: &[(&str, usize)], seen: &str) -> rig::Tally {
    let mut t = rig::Tally::default();
    for (s, n) in counts {
        for _ in 0..*n {
            t.ok.push((s.to_string(), seen.to_string()));
        }
    }
    t
}

fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

/// The round-robin and client-address checks accept what they should and
/// reject what they should.
#[test]
fn tally_checks_accept_round_robin_and_reject_the_rest() {
    let rs: Vec<String> = ["rs1", "rs2", "rs3"].map(String::from).into();
    let ip: IpAddr = "198.18.0.100".parse().unwrap();
    tally(&[("rs1", 20), ("rs2", 20), ("rs3", 20)], "198.18.0.100").assert_even_split(&rs, "t");
    tally(&[("rs1", 19), ("rs2", 20), ("rs3", 21)], "198.18.0.100").assert_even_split(&rs, "t");
    assert!(panics(|| {
        tally(&[("rs1", 18), ("rs2", 21), ("rs3", 21)], "x").assert_even_split(&rs, "t")
    }));
    assert!(panics(
        || tally(&[("rs1", 30), ("rs2", 30)], "x").assert_even_split(&rs, "t")
    ));
    assert!(panics(|| {
        tally(&[("rs1", 20), ("rs2", 20), ("rs3", 19), ("rs4", 1)], "x").assert_even_split(&rs, "t")
    }));
    tally(&[("rs1", 2)], "198.18.0.100").assert_client_seen(ip, "t");
    assert!(panics(
        || tally(&[("rs1", 2)], "198.18.0.9").assert_client_seen(ip, "t")
    ));
    let mut mixed = tally(&[("rs1", 2)], "198.18.0.100");
    mixed.ok.push(("rs2".into(), "198.18.0.2".into()));
    assert!(panics(|| mixed.assert_client_seen(ip, "t")));
    let mut failed = tally(&[("rs1", 2)], "198.18.0.100");
    failed.assert_all_ok("t");
    failed.failures.push("err timeout".into());
    assert!(panics(|| failed.assert_all_ok("t")));
}
