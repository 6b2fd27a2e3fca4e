//! Health checking end to end on a DR rig: lvsfwd's probes run through the
//! director's kernel stack while its XDP data plane serves the same NIC,
//! and what they find reaches the data plane.
//!
//! Every scenario runs a steady stream of HTTP requests through the VIP
//! (batches of new connections, timestamped), breaks a real server's
//! health, measures how long lvsfwd takes to take it out (polling `lvsadm
//! -L -n` on the admin socket), checks that afterwards no request goes to
//! it and none fails, then repairs it and checks that it gets traffic
//! again. Short timers (delay_loop 1 s, connect_timeout 1 s) keep each
//! scenario within seconds; every wait is bounded. Measured detection
//! times are printed (`cargo test --test rig_health -- --nocapture`).
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rig::daemon::Lvsfwd;
use rig::{Fam, HTTP_PORT, Host, Mode, Rig, Tally, python, script, wait_until};

/// Port of the per-server health page (python's http.server over a
/// directory the test controls).
const HEALTH_PORT: u16 = 8080;
/// Requests per traffic batch (each a new connection).
const BATCH: usize = 3;
/// Bound on any single detection.
const DETECT_TIMEOUT: Duration = Duration::from_secs(15);
/// After lvsadm shows a change, the workers may still be picking the
/// snapshot up (publish waits 60 ms for them).
const SETTLE: Duration = Duration::from_millis(300);

fn lvsadm(sock: &Path, args: &[&str]) -> String {
    rig::daemon::lvsadm_ok(&sock.to_string_lossy(), args)
}

/// `lvsadm -L -n`: real server address -> weight, for every service.
fn listed(sock: &Path) -> BTreeMap<SocketAddr, i64> {
    lvsadm(sock, &["-L", "-n"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = w.next()?.parse().ok()?;
            let _fwd = w.next()?;
            Some((addr, w.next()?.parse().ok()?))
        })
        .collect()
}

fn rs_addr(rig: &Rig, n: usize) -> SocketAddr {
    SocketAddr::new(rig.rip(n, Fam::V4), HTTP_PORT)
}

/// Polls the listing until `pred` holds; returns when (bounded).
fn wait_listing(
    sock: &Path,
    what: &str,
    pred: impl Fn(&BTreeMap<SocketAddr, i64>) -> bool,
) -> Instant {
    let ok = wait_until(DETECT_TIMEOUT, || pred(&listed(sock)));
    assert!(
        ok,
        "{what}: not seen within {DETECT_TIMEOUT:?}; listing:\n{}",
        lvsadm(sock, &["-L", "-n"])
    );
    Instant::now()
}

/// One batch of the steady stream.
struct Batch {
    start: Instant,
    end: Instant,
    tally: Tally,
}

/// Requests through the VIP in back-to-back batches until told to stop
/// (at most `max` batches).
struct Stream<'a> {
    stop: AtomicBool,
    batches: Mutex<Vec<Batch>>,
    rig: &'a Rig,
}

impl<'a> Stream<'a> {
    fn new(rig: &'a Rig) -> Stream<'a> {
        Stream {
            stop: AtomicBool::new(false),
            batches: Mutex::new(Vec::new()),
            rig,
        }
    }

    fn run(&self, max: usize) {
        let vip = SocketAddr::new(self.rig.vip(Fam::V4), HTTP_PORT);
        for _ in 0..max {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let start = Instant::now();
            let tally = self.rig.http(self.rig.client(), vip, BATCH);
            self.batches.lock().unwrap().push(Batch {
                start,
                end: Instant::now(),
                tally,
            });
        }
    }

    /// Waits (at least 3 s, at most 30 s) until the batches that started
    /// after `from` and have finished hold `requests` requests.
    fn wait_for(&self, from: Instant, requests: usize) {
        std::thread::sleep(Duration::from_secs(3));
        let deadline = Instant::now() + Duration::from_secs(27);
        while Instant::now() < deadline {
            let t = self.within(from, Instant::now());
            if t.ok.len() + t.failures.len() >= requests {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every batch entirely within `[from, to]`.
    fn within(&self, from: Instant, to: Instant) -> Tally {
        self.select(|b| b.start >= from && b.end <= to)
    }

    /// [`Stream::within`], split by whether a batch overlapped the window
    /// `lo..=hi`: (the batches that did, the others).
    fn across(&self, from: Instant, to: Instant, lo: Instant, hi: Instant) -> (Tally, Tally) {
        let spans = |b: &Batch| b.start <= hi && b.end >= lo;
        (
            self.select(|b| b.start >= from && b.end <= to && spans(b)),
            self.select(|b| b.start >= from && b.end <= to && !spans(b)),
        )
    }

    fn select(&self, keep: impl Fn(&Batch) -> bool) -> Tally {
        let mut t = Tally::default();
        for b in self.batches.lock().unwrap().iter() {
            if keep(b) {
                t.ok.extend(b.tally.ok.iter().cloned());
                t.failures.extend(b.tally.failures.iter().cloned());
            }
        }
        t
    }
}

/// lb.toml: one DR service on the VIP over real servers 1..=n (each with
/// `check`, given the server's number), and `vs_extra` keys.
fn lb_toml(rig: &Rig, n: usize, vs_extra: &str, rs_extra: &dyn Fn(usize) -> String) -> String {
    let sock = rig.dir().join("admin.sock");
    let mut s = format!(
        "[global]\ninterface = \"{}\"\nadmin_socket = \"{}\"\n\n\
         [[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\
         delay_loop = 1\n{vs_extra}",
        rig::IFACE,
        sock.display(),
        rig.vip(Fam::V4)
    );
    for i in 1..=n {
        s += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}\"\nweight = 1\n{}",
            rs_addr(rig, i),
            rs_extra(i)
        );
    }
    s
}

fn tcp_check(_: usize) -> String {
    "[virtual_server.real_server.tcp_check]\nconnect_timeout = 1\nretry = 1\ndelay_before_retry = 1\n"
        .into()
}

/// The pid of real server `n`'s HTTP/UDP services.
fn services_pid(rig: &Rig, n: usize) -> u32 {
    *rig.pids_named(rig.rs(n), "servers")
        .last()
        .expect("the rig's services")
}

/// Starts real server `n`'s services again, as the rig started them.
fn restart_services(rig: &Rig, n: usize) {
    let h = rig.rs(n);
    let name = h.name();
    let port = HTTP_PORT.to_string();
    let udp = rig::UDP_PORT.to_string();
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
            "--udp",
            &udp,
        ],
        Duration::from_secs(10),
    );
    h.wait_tcp_listen(HTTP_PORT, Duration::from_secs(10));
}

/// A health page for every real server: `<dir>/rsN/health` holding "ok\n",
/// served on [`HEALTH_PORT`].
fn health_pages(rig: &Rig, n: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for i in 1..=n {
        let dir = rig.dir().join(format!("www-rs{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("health");
        std::fs::write(&f, "ok\n").unwrap();
        let h: &Host = rig.rs(i);
        let port = HEALTH_PORT.to_string();
        rig.spawn(
            h,
            "www",
            &[
                python(),
                "-m",
                "http.server",
                &port,
                "--bind",
                "0.0.0.0",
                "--directory",
                dir.to_str().unwrap(),
            ],
        );
        h.wait_tcp_listen(HEALTH_PORT, Duration::from_secs(10));
        files.push(f);
    }
    files
}

/// MD5 of "ok\n".
const OK_MD5: &str = "eff5bc1ef8ec9d03e640fc4370f5eacd";

/// The common scenario: `break_it` breaks real server 1's health at t0,
/// `repair` repairs it; traffic runs throughout. Returns (detection,
/// recovery) times.
fn out_and_back(
    what: &str,
    rig: &Rig,
    sock: &Path,
    break_it: &dyn Fn(),
    repair: &dyn Fn(),
    failures_allowed_before_detection: bool,
) -> (Duration, Duration) {
    let rs1 = rs_addr(rig, 1);
    let all = [rs_addr(rig, 1), rs_addr(rig, 2), rs_addr(rig, 3)];
    // The probes run while the data plane serves the NIC: several check
    // rounds pass and every server stays in.
    wait_listing(sock, "all three servers listed", |l| {
        all.iter().all(|a| l.get(a) == Some(&1))
    });
    std::thread::sleep(Duration::from_secs(3));
    let l = listed(sock);
    assert!(
        all.iter().all(|a| l.get(a) == Some(&1)),
        "{what}: a healthy server was taken out, the probes fail under XDP: {l:?}"
    );
    let stream = Stream::new(rig);
    let (detect, recover) = std::thread::scope(|s| {
        s.spawn(|| stream.run(400));
        std::thread::sleep(Duration::from_secs(1));
        let t_break = Instant::now();
        break_it();
        let t_out = wait_listing(sock, &format!("{what}: {rs1} out"), |l| {
            !l.contains_key(&rs1)
        });
        let detect = t_out - t_break;
        // Long enough for several whole batches to run while it is out,
        // however slowly a loaded machine runs them.
        stream.wait_for(t_out + SETTLE, 9);
        let t_repair = Instant::now();
        repair();
        let t_back = wait_listing(sock, &format!("{what}: {rs1} back"), |l| {
            l.get(&rs1) == Some(&1)
        });
        let recover = t_back - t_repair;
        stream.wait_for(t_back + SETTLE, 9);
        stream.stop.store(true, Ordering::Relaxed);
        // Checks on the windows.
        let out = stream.within(t_out + SETTLE, t_repair);
        assert!(!out.ok.is_empty(), "{what}: no traffic while {rs1} was out");
        out.assert_all_ok(&format!("{what}: while {rs1} was out"));
        assert!(
            !out.per_server().contains_key("rs1"),
            "{what}: requests still reached rs1 after it was taken out: {:?}",
            out.per_server()
        );
        let back = stream.within(t_back + SETTLE, Instant::now());
        back.assert_all_ok(&format!("{what}: after {rs1} came back"));
        assert!(
            back.per_server().get("rs1").copied().unwrap_or(0) > 0,
            "{what}: rs1 got no traffic after it came back: {:?}",
            back.per_server()
        );
        if !failures_allowed_before_detection {
            // A request in flight to rs1 at the moment it is removed loses
            // its next packets, as under IPVS (expire_nodest_conn = 0
            // drops a removed server's conns' packets): at most one, in a
            // batch that ran across the removal (seen at `t_out`, the listing
            // polled at most a second after it happened).
            let (removal, rest) = stream.across(
                t_break - Duration::from_secs(2),
                Instant::now(),
                t_out - Duration::from_secs(1),
                t_out,
            );
            assert!(
                removal.failures.len() <= 1,
                "{what}: more than the request in flight failed at the removal: {:?}",
                removal.failures
            );
            rest.assert_all_ok(&format!("{what}: the service itself never broke"));
        }
        (detect, recover)
    });
    eprintln!("{what}: detection {detect:?}, recovery {recover:?}");
    (detect, recover)
}

#[test]
fn tcp_check_takes_a_stopped_server_out_and_back_in() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, 3, "", &tcp_check));
    let (detect, recover) = out_and_back(
        "TCP_CHECK",
        &rig,
        &sock,
        &|| rig.kill(services_pid(&rig, 1)),
        &|| restart_services(&rig, 1),
        true,
    );
    // delay_loop 1 + one retry after 1 s, plus the probe and the publish.
    assert!(detect < Duration::from_secs(4), "detection took {detect:?}");
    assert!(
        recover < Duration::from_secs(3),
        "recovery took {recover:?}"
    );
    lb.assert_running();
    assert!(lb.terminate().success());
}

fn http_get_rs(digest: bool) -> impl Fn(usize) -> String {
    move |_| {
        let check = if digest {
            format!("digest = \"{OK_MD5}\"")
        } else {
            "status_code = 200".into()
        };
        format!(
            "[virtual_server.real_server.http_get]\nurl = [{{ path = \"/health\", {check} }}]\n\
             connect_port = {HEALTH_PORT}\nconnect_timeout = 1\nretry = 1\ndelay_before_retry = 1\n"
        )
    }
}

#[test]
fn http_get_wrong_status_code_takes_the_server_out() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let pages = health_pages(&rig, 3);
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, 3, "", &http_get_rs(false)));
    let (detect, _) = out_and_back(
        "HTTP_GET status_code",
        &rig,
        &sock,
        // 404 from now on.
        &|| std::fs::remove_file(&pages[0]).unwrap(),
        &|| std::fs::write(&pages[0], "ok\n").unwrap(),
        false,
    );
    assert!(detect < Duration::from_secs(4), "detection took {detect:?}");
    assert!(lb.terminate().success());
}

#[test]
fn http_get_wrong_digest_takes_the_server_out() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let pages = health_pages(&rig, 3);
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, 3, "", &http_get_rs(true)));
    let (detect, _) = out_and_back(
        "HTTP_GET digest",
        &rig,
        &sock,
        // Still 200, another body.
        &|| std::fs::write(&pages[0], "not ok\n").unwrap(),
        &|| std::fs::write(&pages[0], "ok\n").unwrap(),
        false,
    );
    assert!(detect < Duration::from_secs(4), "detection took {detect:?}");
    assert!(lb.terminate().success());
}

/// A MISC_CHECK script that exits with the number in `state`.
fn misc_script(rig: &Rig) -> (PathBuf, PathBuf) {
    let state = rig.dir().join("misc-state");
    std::fs::write(&state, "0\n").unwrap();
    let path = rig.dir().join("misc-check.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nread code < '{}'\nexit \"$code\"\n",
            state.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, state)
}

#[test]
fn misc_check_follows_the_script_s_exit_code() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let (script_path, state) = misc_script(&rig);
    let misc = |i: usize| {
        if i == 1 {
            format!(
                "[virtual_server.real_server.misc_check]\nmisc_path = \"{} rs1\"\n\
                 misc_timeout = 2\nmisc_dynamic = true\n",
                script_path.display()
            )
        } else {
            String::new()
        }
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, 3, "", &misc));
    let set = |code: &str| std::fs::write(&state, format!("{code}\n")).unwrap();
    let (detect, _) = out_and_back("MISC_CHECK", &rig, &sock, &|| set("1"), &|| set("0"), false);
    // misc has no retry: one delay_loop plus the script.
    assert!(detect < Duration::from_secs(3), "detection took {detect:?}");
    // misc_dynamic: exit 7 sets weight 5, exit 0 the configured 1 again.
    let rs1 = rs_addr(&rig, 1);
    set("7");
    wait_listing(&sock, "misc_dynamic weight 5", |l| l.get(&rs1) == Some(&5));
    set("0");
    wait_listing(&sock, "configured weight again", |l| {
        l.get(&rs1) == Some(&1)
    });
    assert!(lb.terminate().success());
}

#[test]
fn sorry_server_takes_the_traffic_while_no_real_server_is_up() {
    // rs4 is the sorry server, not a real server of the service.
    let rig = Rig::builder(Mode::Dr).real_servers(4).build();
    let sock = rig.dir().join("admin.sock");
    let sorry = rs_addr(&rig, 4);
    let mut lb = Lvsfwd::start(
        &rig,
        &lb_toml(
            &rig,
            3,
            &format!("sorry_server = \"{sorry}\"\n"),
            &tcp_check,
        ),
    );
    let real = [rs_addr(&rig, 1), rs_addr(&rig, 2), rs_addr(&rig, 3)];
    wait_listing(&sock, "three servers, no sorry server", |l| {
        real.iter().all(|a| l.contains_key(a)) && !l.contains_key(&sorry)
    });
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let t = Instant::now();
    for n in 1..=3 {
        rig.kill(services_pid(&rig, n));
    }
    wait_listing(&sock, "only the sorry server", |l| {
        l.len() == 1 && l.get(&sorry) == Some(&1)
    });
    eprintln!("sorry server in after {:?}", t.elapsed());
    std::thread::sleep(SETTLE);
    let tally = rig.http(rig.client(), vip, 6);
    tally.assert_all_ok("through the sorry server");
    assert_eq!(
        tally.per_server().keys().collect::<Vec<_>>(),
        ["rs4"],
        "{:?}",
        tally.per_server()
    );
    // One real server back: quorum 1 regained, the sorry server goes out.
    restart_services(&rig, 2);
    wait_listing(&sock, "rs2 back, sorry server out", |l| {
        l.len() == 1 && l.get(&real[1]) == Some(&1)
    });
    std::thread::sleep(SETTLE);
    let tally = rig.http(rig.client(), vip, 6);
    tally.assert_all_ok("back on rs2");
    assert_eq!(
        tally.per_server().keys().collect::<Vec<_>>(),
        ["rs2"],
        "{:?}",
        tally.per_server()
    );
    assert!(lb.terminate().success());
}

/// Opens `n` connections to `target` from `host`, prints `ready`, waits for
/// `go` to exist, then sends one GET on each and prints `ok <body>` per
/// connection: connections established before a change, used after it.
const HOLD_PY: &str = r#"
import os, socket, sys, time
target, port, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
conns = []
for _ in range(n):
    s = socket.create_connection((target, port), timeout=5)
    conns.append(s)
    time.sleep(0.05)
print("ready", flush=True)
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
for s in conns:
    try:
        s.sendall(b"GET / HTTP/1.0\r\nHost: rig\r\n\r\n")
        data = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            data += c
        body = data.partition(b"\r\n\r\n")[2].decode().strip()
        print("ok " + body, flush=True)
    except OSError as e:
        print("err " + str(e), flush=True)
"#;

#[test]
fn inhibit_on_failure_keeps_the_server_at_weight_zero() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let pages = health_pages(&rig, 3);
    let rs = |i: usize| {
        let inhibit = if i == 1 {
            "inhibit_on_failure = true\n"
        } else {
            ""
        };
        format!("{inhibit}{}", http_get_rs(false)(i))
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, 3, "", &rs));
    let rs1 = rs_addr(&rig, 1);
    let all = [rs1, rs_addr(&rig, 2), rs_addr(&rig, 3)];
    wait_listing(&sock, "three servers", |l| {
        all.iter().all(|a| l.get(a) == Some(&1))
    });
    // Three connections established through the VIP: with rr one of them
    // is on each real server.
    let hold = rig.dir().join("hold.py");
    std::fs::write(&hold, HOLD_PY).unwrap();
    let go = rig.dir().join("go");
    let vip = rig.vip(Fam::V4).to_string();
    let port = HTTP_PORT.to_string();
    let pid = rig.spawn_ready(
        rig.client(),
        "hold",
        &[
            python(),
            hold.to_str().unwrap(),
            &vip,
            &port,
            "3",
            go.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    // rs1's health page fails: it stays listed, at weight 0.
    let t = Instant::now();
    std::fs::remove_file(&pages[0]).unwrap();
    wait_listing(&sock, "rs1 at weight 0", |l| l.get(&rs1) == Some(&0));
    eprintln!("inhibit_on_failure: weight 0 after {:?}", t.elapsed());
    let l = listed(&sock);
    assert_eq!(l.len(), 3, "inhibited server still listed: {l:?}");
    std::thread::sleep(SETTLE);
    // New connections avoid it...
    let vipa = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let tally = rig.http(rig.client(), vipa, 8);
    tally.assert_all_ok("with rs1 at weight 0");
    assert!(
        !tally.per_server().contains_key("rs1"),
        "{:?}",
        tally.per_server()
    );
    // ...and the connection established on it keeps working (IPVS keeps a
    // weight-0 server's connections).
    std::fs::write(&go, "").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || rig
            .proc_logs(pid)
            .0
            .lines()
            .count()
            >= 4),
        "held connections did not answer: {:?}",
        rig.proc_logs(pid)
    );
    let (out, _) = rig.proc_logs(pid);
    let answers: Vec<&str> = out.lines().filter(|l| *l != "ready").collect();
    assert!(answers.iter().all(|l| l.starts_with("ok ")), "{answers:?}");
    assert!(
        answers.iter().any(|l| l.starts_with("ok rs1 ")),
        "no held connection on rs1: {answers:?}"
    );
    // Repaired: its weight comes back.
    std::fs::write(&pages[0], "ok\n").unwrap();
    wait_listing(&sock, "rs1 at weight 1 again", |l| l.get(&rs1) == Some(&1));
    assert!(lb.terminate().success());
}

#[test]
fn sighup_keeps_a_down_server_out() {
    let rig = Rig::builder(Mode::Dr).build();
    let sock = rig.dir().join("admin.sock");
    let config = lb_toml(&rig, 3, "", &tcp_check);
    let mut lb = Lvsfwd::start(&rig, &config);
    let rs1 = rs_addr(&rig, 1);
    wait_listing(&sock, "three servers", |l| l.len() == 3);
    rig.kill(services_pid(&rig, 1));
    wait_listing(&sock, "rs1 out", |l| !l.contains_key(&rs1));
    // Reload with another delay_loop (same checks): the checker's verdict
    // survives, rs1 never reappears, not even for a moment.
    std::fs::write(
        &lb.config,
        config.replace("delay_loop = 1\n", "delay_loop = 2\n"),
    )
    .unwrap();
    let pid = lb.pid().to_string();
    rig::run(&["kill", "-HUP", &pid], rig::CMD_TIMEOUT).expect_ok();
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let l = listed(&sock);
        assert!(!l.contains_key(&rs1), "rs1 came back on reload: {l:?}");
        assert_eq!(l.len(), 2, "{l:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lb.stderr().contains("reloaded"), "{}", lb.stderr());
    restart_services(&rig, 1);
    wait_listing(&sock, "rs1 back after the reload", |l| {
        l.get(&rs1) == Some(&1)
    });
    assert!(lb.terminate().success());
}
