//! The seeds' ipvsadm-only workflow and hitless changes on a live rig:
//! `lvsfwd --interface IF` driven by `lvsadm` running the seed scripts'
//! commands (ipvsadm replaced by lvsadm), and SIGHUP reloads / lvsadm edits
//! under a steady stream of requests.

mod rig;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use rig::daemon::{Lvsfwd, lvsadm, lvsadm_ok as ok};
use rig::plan::Svc;
use rig::{Fam, Mode, Rig};

#[test]
fn seed_004_director_script_with_lvsadm_on_an_empty_daemon() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let sock = sock.to_str().unwrap();
    let mut lb = Lvsfwd::start_args(&rig, &["--interface", "lfeth0"], &[("LVSFWD_SOCKET", sock)]);
    let vip = rig.vip(Fam::V4);
    let svc = format!("{vip}:80");
    let rip = |n| rig.rip(n, Fam::V4).to_string();
    // lvs-DR.sh's start), with ipvsadm replaced by lvsadm.
    ok(sock, &["-C"]);
    ok(sock, &["-A", "-t", &svc, "-s", "wrr", "-p", "60"]);
    ok(sock, &["-a", "-t", &svc, "-r", &rip(1), "-g", "-w", "2"]);
    ok(sock, &["-a", "-t", &svc, "-r", &rip(2), "-g", "-w", "1"]);
    ok(sock, &["-a", "-t", &svc, "-r", &rip(3), "-g", "-w", "1"]);
    let listing = ok(sock, &["-L", "-n"]);
    // ipvsadm's columns (what seed 004 shows with its spaces squeezed).
    let mut expected = String::new();
    expected += "IP Virtual Server version 1.2.1 (size=1048576)\n";
    expected += "Prot LocalAddress:Port Scheduler Flags\n";
    expected += "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";
    expected += &format!("TCP  {svc} wrr persistent 60\n");
    for (n, w) in [(1, 2), (2, 1), (3, 1)] {
        let rs = format!("{}:80", rip(n));
        expected += &format!("  -> {rs:<28} Route   {w:<6} 0          0         \n");
    }
    assert_eq!(listing, expected);
    // Traffic flows, and with persistence one client sticks to one server.
    std::thread::sleep(Duration::from_millis(300));
    let t = rig.http(rig.client(), SocketAddr::new(vip, 80), 12);
    t.assert_all_ok("seed 004 through lvsadm");
    assert_eq!(
        t.per_server().len(),
        1,
        "persistent 60: {:?}",
        t.per_server()
    );
    // The counters show in the listing: ActiveConn + InActConn = 12.
    let listing = ok(sock, &["-L", "-n", "--stats", "--exact"]);
    assert!(listing.contains(&format!("TCP  {svc:<21}")), "{listing}");
    let conns = ok(sock, &["-L", "-n", "-c"]);
    assert!(
        conns.lines().filter(|l| l.starts_with("TCP")).count() >= 12,
        "{conns}"
    );
    // Bad arguments: ipvsadm's message style, exit 1, nothing changed.
    let (code, _, err) = lvsadm(sock, &["-a", "-t", &svc, "-r", &rip(1), "-w", "-5"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(ok(sock, &["-S", "-n"]).lines().count(), 4);
    lb.assert_running();
    assert!(lb.terminate().success());
}

#[test]
fn seed_002_round_robin_with_lvsadm() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let sock = sock.to_str().unwrap();
    let mut lb = Lvsfwd::start_args(&rig, &["--interface", "lfeth0"], &[("LVSFWD_SOCKET", sock)]);
    let vip = rig.vip(Fam::V4);
    let svc = format!("{vip}:80");
    ok(sock, &["-A", "-t", &svc, "-s", "rr"]);
    for n in 1..=3 {
        let r = rig.rip(n, Fam::V4).to_string();
        ok(sock, &["-a", "-t", &svc, "-r", &r, "-g", "-w", "1"]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = rig.http(rig.client(), SocketAddr::new(vip, 80), 30);
    t.assert_all_ok("seed 002 through lvsadm");
    t.assert_even_split(&rig.rs_names(), "seed 002");
    assert!(lb.terminate().success());
}

/// lb.toml for the DR rig with the given real servers (number, weight) on
/// port 80, and optionally a second service on port 8080.
fn config(rig: &Rig, rs: &[(usize, u32)], algo: &str, second: bool) -> String {
    let base = rig.lb_toml(&[Svc::tcp(Fam::V4, 80)]);
    // Keep [global] (interface, admin socket) from the rig's generator.
    let global = base.split("[[virtual_server]]").next().unwrap().to_string();
    let mut s = format!(
        "{global}[[virtual_server]]\naddress = \"{}:80\"\nlb_algo = \"{algo}\"\nlb_kind = \"DR\"\n",
        rig.vip(Fam::V4)
    );
    for (n, w) in rs {
        s += &format!(
            "  [[virtual_server.real_server]]\n  address = \"{}:80\"\n  weight = {w}\n",
            rig.rip(*n, Fam::V4)
        );
    }
    if second {
        s += &format!(
            "[[virtual_server]]\naddress = \"{}:8080\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n  [[virtual_server.real_server]]\n  address = \"{}:8080\"\n",
            rig.vip(Fam::V4),
            rig.rip(1, Fam::V4)
        );
    }
    s
}

#[test]
fn ten_sighup_reloads_under_traffic_lose_nothing() {
    let rig = Rig::builder(Mode::Dr).build();
    let mut lb = Lvsfwd::start(&rig, &config(&rig, &[(1, 1), (2, 1), (3, 1)], "rr", false));
    let cfg_path = lb.config.clone();
    let pid = lb.pid().to_string();
    let vip = rig.vip(Fam::V4);
    // Each step adds, edits or removes real servers and services; a server
    // is quiesced (weight 0) one step before it is removed, as operators do.
    let steps: Vec<String> = vec![
        config(&rig, &[(1, 1), (2, 1), (3, 1)], "rr", true),
        config(&rig, &[(1, 2), (2, 1), (3, 1)], "wrr", true),
        config(&rig, &[(1, 2), (2, 1), (3, 0)], "wrr", true),
        config(&rig, &[(1, 2), (2, 1)], "wrr", true),
        config(&rig, &[(1, 1), (2, 1)], "wlc", false),
        config(&rig, &[(1, 1), (2, 1), (3, 1)], "wlc", false),
        config(&rig, &[(1, 0), (2, 1), (3, 1)], "rr", true),
        config(&rig, &[(2, 1), (3, 1)], "rr", true),
        config(&rig, &[(1, 1), (2, 1), (3, 1)], "lc", false),
        config(&rig, &[(1, 1), (2, 1), (3, 1)], "rr", false),
    ];
    // The client keeps sending, in batches, until the ten reloads are done;
    // each reload waits for a batch to finish after it, so every one of them
    // lands under traffic however slowly the machine runs the batches.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let done = AtomicBool::new(false);
    let batches = AtomicUsize::new(0);
    let tallies = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut v = Vec::new();
            while !done.load(Ordering::Relaxed) {
                v.push(rig.http(rig.client(), SocketAddr::new(vip, 80), 20));
                batches.fetch_add(1, Ordering::Relaxed);
            }
            v
        });
        let next_batch = || {
            let b0 = batches.load(Ordering::Relaxed);
            let end = std::time::Instant::now() + Duration::from_secs(60);
            while batches.load(Ordering::Relaxed) <= b0 && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        next_batch();
        for step in &steps {
            std::fs::write(&cfg_path, step).unwrap();
            let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
            assert!(st.success());
            next_batch();
        }
        done.store(true, Ordering::Relaxed);
        load.join().unwrap()
    });
    let requests: usize = tallies.iter().map(|t| t.ok.len() + t.failures.len()).sum();
    for t in &tallies {
        t.assert_all_ok("requests across ten reloads");
    }
    assert!(
        tallies.len() >= 11,
        "the load overlapped every reload: {} batches, {requests} requests",
        tallies.len()
    );
    lb.assert_running();
    let log = lb.stderr();
    assert_eq!(
        log.matches("reloaded").count(),
        10,
        "every reload was applied: {log}"
    );
    // A broken lb.toml is refused with its line and the old one keeps serving.
    std::fs::write(&cfg_path, "[global]\nnope = 1\n").unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rig.http(rig.client(), SocketAddr::new(vip, 80), 10)
        .assert_all_ok("after a refused reload");
    assert!(lb.stderr().contains(":2:1:"), "{}", lb.stderr());
    assert!(lb.terminate().success());
}

#[test]
fn rates_show_through_lvsadm_while_traffic_flows() {
    // `-L -n --rate` against the daemon's estimators (sampled every 2 s,
    // IPVS's averaging): non-zero while requests flow; zero counters on an
    // idle service before.
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let sock = sock.to_str().unwrap();
    let mut lb = Lvsfwd::start_args(&rig, &["--interface", "lfeth0"], &[("LVSFWD_SOCKET", sock)]);
    let vip = rig.vip(Fam::V4);
    let svc = format!("{vip}:80");
    ok(sock, &["-A", "-t", &svc, "-s", "rr"]);
    for n in 1..=3 {
        let r = rig.rip(n, Fam::V4).to_string();
        ok(sock, &["-a", "-t", &svc, "-r", &r, "-g", "-w", "1"]);
    }
    // (CPS, InPPS) of the service line.
    let rates = || -> (u64, u64) {
        let out = ok(sock, &["-L", "-n", "--rate"]);
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("TCP  {svc}")))
            .unwrap_or_else(|| panic!("no service line:\n{out}"));
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .map(|x| x.parse().unwrap_or_else(|_| panic!("{line}")))
            .collect();
        (f[0], f[1])
    };
    assert_eq!(rates(), (0, 0), "no traffic yet");
    let t0 = std::time::Instant::now();
    let mut seen = (0, 0);
    while t0.elapsed() < Duration::from_secs(30) {
        rig.http(rig.client(), SocketAddr::new(vip, 80), 10)
            .assert_all_ok("traffic for the rate estimator");
        seen = rates();
        if seen.0 > 0 && seen.1 > 0 {
            break;
        }
    }
    assert!(
        seen.0 > 0 && seen.1 > 0,
        "CPS and InPPS still {seen:?} after {:?} of traffic",
        t0.elapsed()
    );
    // The real servers' lines carry rates too.
    let out = ok(sock, &["-L", "-n", "--rate"]);
    let rs_with_rate = out
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .filter(|l| l.split_whitespace().nth(2).is_some_and(|cps| cps != "0"))
        .count();
    assert!(rs_with_rate >= 1, "{out}");
    assert!(lb.terminate().success());
}
