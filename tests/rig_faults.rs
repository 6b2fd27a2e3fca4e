//! Faults on a DR rig, measured against the real daemon:
//!
//! - lvsfwd killed with SIGKILL (no clean-up: its XDP program stays on the
//!   NIC, its admin socket file stays behind) and started again: the stale
//!   program is replaced, the stale socket reclaimed, service resumes; the
//!   time from the restart to `ready` and to the first served request is
//!   printed.
//! - A real server killed in the middle of transfers: the transfers on the
//!   other real servers complete intact, the killed server's break; new
//!   requests keep being served by the others, and once the operator takes
//!   the dead server out (`lvsadm -d`) every request succeeds again.
//! - A reload (SIGHUP) with an invalid lb.toml: refused with an error that
//!   names the file, line and column; the old configuration keeps serving;
//!   a valid reload afterwards applies.
//! - The director's kernel loses a real server's neighbour entry (garbage
//!   collection, a failed probe: here deleted while the server ignores ARP
//!   requests): lvsfwd keeps the MAC it learnt and the server keeps its
//!   share.
//! - A worker dies under the running daemon (here: the director's NIC is
//!   deleted, so the kernel unbinds its AF_XDP socket): the daemon does not
//!   live on half-served; it stops on its own and exits 1 naming the
//!   worker, its queue and the cause.
//!
//! Needs root (network namespaces).
#![forbid(unsafe_code)]

mod rig;
mod robust;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rig::daemon::Lvsfwd;
use rig::{Fam, HTTP_PORT, Rig, e2e, python, script, wait_until};
use robust::{admin_socket, http, lvsadm, signal};

#[test]
fn sigkill_then_restart_replaces_the_stale_program_and_resumes() {
    let rig = Rig::dr();
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let lb = Lvsfwd::start(&rig, &config);
    rig.http(rig.client(), vip, 9)
        .assert_all_ok("before SIGKILL");
    let old_prog = xdp_prog_id(&rig);

    signal(lb.pid(), "KILL");
    let killed_at = Instant::now();
    drop(lb);
    assert!(
        rig.director().xdp_attached(),
        "SIGKILL leaves the XDP program attached (nothing could detach it)"
    );
    assert!(
        std::path::Path::new(&admin_socket(&rig)).exists(),
        "SIGKILL leaves the admin socket file behind"
    );
    // While nothing serves, the stale program has no socket to redirect to
    // and falls back to the kernel: requests fail, nothing hangs.
    let down = http(
        rig.client(),
        vip,
        1,
        Duration::from_secs(1),
        Duration::from_secs(3),
    );
    assert_eq!(down.ok, 0, "served with no lvsfwd running?");

    let t0 = Instant::now();
    let mut lb = Lvsfwd::start(&rig, &config);
    let ready = t0.elapsed();
    let mut first = None;
    let mut served_at = Instant::now();
    let served = wait_until(Duration::from_secs(20), || {
        let r = http(
            rig.client(),
            vip,
            1,
            Duration::from_millis(500),
            Duration::from_secs(2),
        );
        if r.ok == 1 {
            first = Some(t0.elapsed());
            served_at = Instant::now();
        }
        r.ok == 1
    });
    assert!(served, "no request served within 20 s of the restart");
    let first = first.expect("set when served");
    eprintln!(
        "SIGKILL recovery: restart -> ready {:.0} ms, restart -> first request served {:.0} ms \
         (SIGKILL -> served again {:.0} ms, including this test's own checks of the outage)",
        ready.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        (served_at - killed_at).as_secs_f64() * 1e3
    );
    assert!(
        first < Duration::from_secs(10),
        "first request after {first:?}"
    );
    let new_prog = xdp_prog_id(&rig);
    assert_ne!(old_prog, new_prog, "the stale XDP program was not replaced");
    let t = rig.http(rig.client(), vip, 30);
    t.assert_all_ok("after the restart");
    t.assert_even_split(&rig.rs_names(), "after the restart");
    let l = lvsadm(&admin_socket(&rig), &["-L", "-n"]);
    assert!(l.ok(), "lvsadm against the restarted daemon: {l}");
    e2e::clean_stop(&rig, &mut lb);
}

/// The id of the XDP program on the director's NIC.
fn xdp_prog_id(rig: &Rig) -> String {
    let d = rig.director().link_details();
    d.split_whitespace()
        .skip_while(|w| *w != "id")
        .nth(1)
        .unwrap_or_else(|| panic!("no XDP program id in:\n{d}"))
        .to_string()
}

#[test]
fn real_server_killed_mid_transfer_others_keep_serving() {
    const DOWNLOADS: usize = 9;
    const KIB: usize = 60; // 3 s per transfer at 1 KiB / 50 ms
    let rig = Rig::dr();
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let mut lb = Lvsfwd::start(&rig, &config);
    let target = vip.to_string();
    let (count, kib) = (DOWNLOADS.to_string(), KIB.to_string());
    let client = script("client.py");
    let pid = rig.spawn(
        rig.client(),
        "download",
        &[
            python(),
            &client,
            "download",
            "--target",
            &target,
            "--kib",
            &kib,
            "--count",
            &count,
            "--timeout",
            "5",
            "--deadline",
            "30",
        ],
    );
    assert!(
        wait_until(Duration::from_secs(10), || rig
            .proc_logs(pid)
            .0
            .contains("started")),
        "downloads did not start: {:?}",
        rig.proc_logs(pid)
    );
    std::thread::sleep(Duration::from_millis(800));
    let victim = rig.rs(2).clone();
    for p in rig.pids_named(&victim, "servers") {
        rig.kill(p);
    }
    let done = wait_until(Duration::from_secs(40), || {
        rig.proc_logs(pid)
            .0
            .lines()
            .filter(|l| l.starts_with("ok ") || l.starts_with("err "))
            .count()
            == DOWNLOADS
    });
    let (out, err) = rig.proc_logs(pid);
    assert!(done, "downloads did not finish:\n{out}\n{err}");
    let mut on_victim = 0;
    for line in out
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("err "))
    {
        let server = line.split_whitespace().nth(1).unwrap_or("");
        if server == "rs2" {
            on_victim += 1;
            assert!(
                line.starts_with("err "),
                "a transfer from the killed server completed: {line}"
            );
        } else {
            assert!(
                line.starts_with("ok "),
                "a transfer from a live server broke: {line}\n{out}"
            );
        }
    }
    assert_eq!(on_victim, DOWNLOADS / 3, "rr put a third on rs2:\n{out}");
    eprintln!("mid-transfer kill of rs2: downloads\n{out}");

    // Without a health checker the dead server stays scheduled (as IPVS
    // without keepalived): its share is refused at once, the others serve.
    let r = http(
        rig.client(),
        vip,
        30,
        // 5 s: a lost SYN is retried at 1 s and 3 s; the dead server's
        // share is refused at once (RST).
        Duration::from_secs(5),
        Duration::from_secs(60),
    );
    assert!(
        !r.per_server.contains_key("rs2"),
        "answers from a dead server: {r:?}"
    );
    assert_eq!(r.ok, 20, "the live servers' share: {r:?}");
    eprintln!(
        "after the kill, before removal: {}/{} requests ok ({:?}), failures: {:?}",
        r.ok,
        r.total(),
        r.per_server,
        r.failed.first()
    );
    // The operator takes it out; everything succeeds again.
    let rip2 = SocketAddr::new(rig.rip(2, Fam::V4), HTTP_PORT).to_string();
    let d = lvsadm(&admin_socket(&rig), &["-d", "-t", &target, "-r", &rip2]);
    assert!(d.ok(), "lvsadm -d: {d}");
    std::thread::sleep(Duration::from_millis(200));
    let t = rig.http(rig.client(), vip, 30);
    t.assert_all_ok("after removing the dead server");
    t.assert_even_split(
        &["rs1".to_string(), "rs3".to_string()],
        "after removing the dead server",
    );
    e2e::clean_stop(&rig, &mut lb);
}

#[test]
fn invalid_reload_is_refused_with_its_line_and_the_old_config_keeps_serving() {
    let rig = Rig::dr();
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let mut lb = Lvsfwd::start(&rig, &config);
    rig.http(rig.client(), vip, 9)
        .assert_all_ok("before the reload");

    // An unknown scheduler on a line we know.
    let bad = config.replacen("lb_algo = \"rr\"", "lb_algo = \"fastest\"", 1);
    let line = bad
        .lines()
        .position(|l| l.contains("fastest"))
        .expect("edited line")
        + 1;
    std::fs::write(&lb.config, &bad).expect("write lb.toml");
    signal(lb.pid(), "HUP");
    let path = lb.config.display().to_string();
    let want = format!("{path}:{line}:");
    assert!(
        wait_until(Duration::from_secs(10), || lb
            .stderr()
            .contains("reload refused")),
        "no refusal logged:\n{}",
        lb.stderr()
    );
    let log = lb.stderr();
    let refusal = log
        .lines()
        .find(|l| l.contains("reload refused"))
        .expect("refusal line");
    assert!(
        refusal.contains(&want),
        "the refusal does not name {want}: {refusal}"
    );
    eprintln!("invalid reload: {refusal}");
    lb.assert_running();
    let t = rig.http(rig.client(), vip, 30);
    t.assert_all_ok("old configuration after the refused reload");
    t.assert_even_split(
        &rig.rs_names(),
        "old configuration after the refused reload",
    );

    // A valid reload still applies: rs3 taken out.
    let rip3 = SocketAddr::new(rig.rip(3, Fam::V4), HTTP_PORT).to_string();
    let good: String = {
        let mut out = String::new();
        let mut skip = 0;
        for l in config.lines() {
            if l.trim() == "[[virtual_server.real_server]]" {
                skip = 0;
            }
            if l.contains(&format!("\"{rip3}\"")) {
                // Drop the block header already written and this block.
                let cut = out.trim_end().rfind('\n').unwrap_or(0);
                out.truncate(cut + 1);
                skip = 1;
            }
            if skip == 0 {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    };
    assert!(!good.contains(&rip3), "rs3 still in:\n{good}");
    // ... and a [global] sysctl changed, which a reload applies too.
    assert!(good.contains("[global]\n"), "{good}");
    let good = good.replacen("[global]\n", "[global]\nexpire_nodest_conn = true\n", 1);
    std::fs::write(&lb.config, &good).expect("write lb.toml");
    signal(lb.pid(), "HUP");
    assert!(
        wait_until(Duration::from_secs(10), || lb.stderr().contains("reloaded")),
        "valid reload not applied:\n{}",
        lb.stderr()
    );
    assert!(
        lb.stderr()
            .lines()
            .any(|l| l.contains("reload: connection sysctls now")
                && l.contains("expire_nodest_conn: true")),
        "the reload did not take [global] expire_nodest_conn:\n{}",
        lb.stderr()
    );
    std::thread::sleep(Duration::from_millis(200));
    let t = rig.http(rig.client(), vip, 20);
    t.assert_all_ok("after the valid reload");
    t.assert_even_split(
        &["rs1".to_string(), "rs2".to_string()],
        "after the valid reload",
    );
    e2e::clean_stop(&rig, &mut lb);
}

#[test]
fn a_lapsed_neighbour_entry_keeps_the_real_server_reachable() {
    let rig = Rig::dr();
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let mut lb = Lvsfwd::start(&rig, &config);
    let t = rig.http(rig.client(), vip, 6);
    t.assert_all_ok("before the neighbour entry lapses");
    // rs1 stops sending ARP at all (the neighbours it learnt while serving,
    // the client's next hop among them, are pinned first; an ARP request of
    // its own would let the director re-learn it), and the director's
    // kernel forgets it.
    let rs1 = rig.rs(1);
    let dev = rig::IFACE;
    for line in rs1
        .exec_ok(&["ip", "-4", "neigh", "show", "dev", dev])
        .lines()
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = w.iter().position(|x| *x == "lladdr") {
            rs1.exec_ok(&[
                "ip",
                "neigh",
                "replace",
                w[0],
                "lladdr",
                w[i + 1],
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
    }
    for cmd in [
        "add table arp lfarp",
        "add chain arp lfarp out { type filter hook output priority 0 ; }",
        "add rule arp lfarp out drop",
    ] {
        let mut argv = vec!["nft"];
        argv.extend(cmd.split(' '));
        rs1.exec_ok(&argv);
    }
    let rip1 = rig.rip(1, Fam::V4).to_string();
    rig.director()
        .exec_ok(&["ip", "neigh", "flush", "to", &rip1, "dev", dev]);
    // Several refreshes pass; the kernel's re-resolution fails.
    std::thread::sleep(Duration::from_millis(2500));
    let neigh = rig
        .director()
        .exec_ok(&["ip", "neigh", "show", "to", &rip1, "dev", dev]);
    assert!(
        !neigh.contains("REACHABLE") && !neigh.contains("STALE"),
        "the kernel re-learnt rs1 although it ignores ARP: {neigh}"
    );
    let t = rig.http(rig.client(), vip, 9);
    t.assert_all_ok("after the director's kernel forgot rs1");
    t.assert_even_split(&rig.rs_names(), "after the director's kernel forgot rs1");
    e2e::clean_stop(&rig, &mut lb);
}

#[test]
fn a_dead_worker_stops_the_daemon_with_its_cause() {
    let rig = Rig::dr();
    let config = rig.lb_toml(&[e2e::tcp(Fam::V4)]);
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let mut lb = Lvsfwd::start(&rig, &config);
    rig.http(rig.client(), vip, 3).assert_all_ok("before");
    lb.assert_running();

    let t0 = Instant::now();
    rig.director().ip(&["link", "del", rig::IFACE]);
    let st = lb
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lvsfwd still runs with a dead worker:\n{}", lb.stderr()));
    let took = t0.elapsed();
    let err = lb.stderr();
    assert_eq!(st.code(), Some(1), "{st}; stderr:\n{err}");
    assert!(
        err.contains("lvsfwd: worker 0 (queue 0) died: lfeth0 queue 0: the AF_XDP socket failed"),
        "{err}"
    );
    assert!(
        !err.contains("lvsfwd: stopped"),
        "a dead worker is not a clean stop:\n{err}"
    );
    // The worker notices within its 1 s socket check; the daemon follows
    // within one turn of its control loop, then stops the rest.
    assert!(took < Duration::from_secs(4), "took {took:?}:\n{err}");
}
