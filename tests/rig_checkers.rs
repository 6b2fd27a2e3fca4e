//! Every keepalived checker on a DR rig (issue 14), each against a real
//! server of its protocol that goes down and comes back: SSL_GET against a
//! python TLS server, HTTP_GET (HTTP/1.1, Host, per-url virtualhost, regex)
//! against a server that answers by Host, DNS_CHECK against dnsmasq,
//! UDP_CHECK against a UDP echo (from a fixed source port and device),
//! PING_CHECK over IPv4 and IPv6 with the echo dropped by nft, SMTP_CHECK
//! against a banner/HELO server. What the checkers decide is read where an
//! operator reads it: real servers appearing in and leaving `lvsadm -L -n`.
//!
//! The timers (delay_loop 1, retry 0, connect_timeout 1) are set on the
//! virtual server only: the checkers inherit them, as keepalived's do.
//! Detection and recovery times are printed (`-- --nocapture`).
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rig::daemon::{Lvsfwd, lvsadm_ok};
use rig::{Fam, Mode, Rig, python, script, wait_until};

/// Bound on any single detection.
const DETECT_TIMEOUT: Duration = Duration::from_secs(15);

/// `lvsadm -L -n`: real server address -> weight, for every service.
fn listed(sock: &Path) -> BTreeMap<SocketAddr, i64> {
    lvsadm_ok(sock.to_str().unwrap(), &["-L", "-n"])
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

/// Polls the listing until `pred` holds (bounded); returns when.
fn wait_listing(
    sock: &Path,
    what: &str,
    pred: impl Fn(&BTreeMap<SocketAddr, i64>) -> bool,
) -> Instant {
    let ok = wait_until(DETECT_TIMEOUT, || pred(&listed(sock)));
    assert!(
        ok,
        "{what}: not seen within {DETECT_TIMEOUT:?}; listing:\n{}",
        lvsadm_ok(sock.to_str().unwrap(), &["-L", "-n"])
    );
    Instant::now()
}

/// A DR service `proto` on VIP:`port` over real servers 1..=n, each with
/// the checker text `check(i)`; the checkers' timers come from the virtual
/// server.
fn lb_toml(rig: &Rig, proto: &str, port: u16, n: usize, check: &dyn Fn(usize) -> String) -> String {
    let sock = rig.dir().join("admin.sock");
    let mut s = format!(
        "[global]\ninterface = \"{}\"\nadmin_socket = \"{}\"\n\n\
         [[virtual_server]]\naddress = \"{}:{port}\"\nprotocol = \"{proto}\"\nlb_algo = \"rr\"\n\
         lb_kind = \"DR\"\ndelay_loop = 1\nretry = 0\nconnect_timeout = 1\n",
        rig::IFACE,
        sock.display(),
        rig.vip(Fam::V4)
    );
    for i in 1..=n {
        s += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{port}\"\n{}",
            rig.rip(i, Fam::V4),
            check(i)
        );
    }
    s
}

fn rs(rig: &Rig, n: usize, port: u16) -> SocketAddr {
    SocketAddr::new(rig.rip(n, Fam::V4), port)
}

/// The scenario every checker shares: all `n` servers listed, then
/// `break_it` takes real server 1 out (the others stay), `repair` brings it
/// back. Returns (detection, recovery).
fn out_and_back(
    what: &str,
    rig: &Rig,
    port: u16,
    n: usize,
    break_it: &dyn Fn(),
    repair: &dyn Fn(),
) -> (Duration, Duration) {
    let sock = rig.dir().join("admin.sock");
    let all: Vec<SocketAddr> = (1..=n).map(|i| rs(rig, i, port)).collect();
    wait_listing(&sock, &format!("{what}: every server in"), |l| {
        all.iter().all(|a| l.contains_key(a))
    });
    // Several rounds pass and nobody flaps.
    std::thread::sleep(Duration::from_secs(3));
    let l = listed(&sock);
    assert!(
        all.iter().all(|a| l.contains_key(a)),
        "{what}: a healthy server was taken out: {l:?}"
    );
    let t = Instant::now();
    break_it();
    let rs1 = all[0];
    wait_listing(&sock, &format!("{what}: {rs1} out"), |l| {
        !l.contains_key(&rs1) && all[1..].iter().all(|a| l.contains_key(a))
    });
    let detect = t.elapsed();
    let t = Instant::now();
    repair();
    wait_listing(&sock, &format!("{what}: {rs1} back"), |l| {
        all.iter().all(|a| l.contains_key(a))
    });
    let recover = t.elapsed();
    eprintln!("{what}: detection {detect:?}, recovery {recover:?}");
    (detect, recover)
}

/// Per-server state files, "up" at first.
fn state_files(rig: &Rig, n: usize, tag: &str) -> Vec<PathBuf> {
    (1..=n)
        .map(|i| {
            let f = rig.dir().join(format!("{tag}-state-rs{i}"));
            std::fs::write(&f, "up\n").unwrap();
            f
        })
        .collect()
}

/// Starts `tests/rig/checker_servers.py kind ...` on real server `i`.
fn start(rig: &Rig, i: usize, name: &str, args: &[&str]) -> u32 {
    let prog = script("checker_servers.py");
    let mut argv = vec![python(), prog.as_str()];
    argv.extend_from_slice(args);
    rig.spawn_ready(rig.rs(i), name, &argv, Duration::from_secs(10))
}

fn log_of(rig: &Rig, pid: u32) -> String {
    rig.proc_logs(pid).0
}

// ------------------------------------------------------------------ SSL_GET

#[test]
fn ssl_get_follows_a_tls_server_down_and_back() {
    const PORT: u16 = 8443;
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    let (crt, key) = rig.self_signed_cert();
    let states = state_files(&rig, 2, "tls");
    let port = PORT.to_string();
    let tls = |i: usize| {
        start(
            &rig,
            i,
            "tls",
            &[
                "tls",
                "--port",
                &port,
                "--cert",
                crt.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
                "--state",
                states[i - 1].to_str().unwrap(),
            ],
        )
    };
    let mut pids = [tls(1), tls(2)];
    // A self-signed certificate: keepalived verifies none, nor does lvsfwd.
    let check = |_| {
        format!(
            "[virtual_server.real_server.ssl_get]\nconnect_port = {PORT}\nenable_sni = true\n\
             virtualhost = \"tls.rig.test\"\nurl = [{{ path = \"/health\", regex = \"state=up\" }}]\n"
        )
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "TCP", 80, 2, &check));
    out_and_back(
        "SSL_GET regex",
        &rig,
        80,
        2,
        &|| std::fs::write(&states[0], "down\n").unwrap(),
        &|| std::fs::write(&states[0], "up\n").unwrap(),
    );
    // The TLS server itself stops and starts again.
    let old = pids[0];
    let restarted = std::cell::Cell::new(0);
    out_and_back(
        "SSL_GET server stopped",
        &rig,
        80,
        2,
        &|| rig.kill(old),
        &|| restarted.set(tls(1)),
    );
    pids[0] = restarted.get();
    let log = log_of(&rig, pids[1]);
    assert!(
        log.contains("sni tls.rig.test"),
        "SNI from enable_sni:\n{log}"
    );
    assert!(
        log.contains("req GET /health HTTP/1.0 host=tls.rig.test"),
        "{log}"
    );
    lb.assert_running();
    assert!(lb.terminate().success());
}

// ------------------------------------------------------------------ HTTP_GET

#[test]
fn http_get_1_1_sends_each_url_s_host_and_judges_the_regex() {
    const PORT: u16 = 8080;
    // rs3 is checked with a Host its server does not serve: it never joins.
    let rig = Rig::builder(Mode::Dr).real_servers(3).build();
    let states = state_files(&rig, 3, "http");
    let port = PORT.to_string();
    let pids: Vec<u32> = (1..=3)
        .map(|i| {
            start(
                &rig,
                i,
                "http",
                &[
                    "http",
                    "--port",
                    &port,
                    "--state",
                    states[i - 1].to_str().unwrap(),
                    "--hosts",
                    "good.rig.test,other.rig.test",
                ],
            )
        })
        .collect();
    let check = |i: usize| {
        let host = if i == 3 {
            "bad.rig.test"
        } else {
            "good.rig.test"
        };
        format!(
            "[virtual_server.real_server.http_get]\nconnect_port = {PORT}\nhttp_protocol = \"1.1\"\n\
             virtualhost = \"{host}\"\nurl = [{{ path = \"/health\", regex = \"state=up\" }}, \
             {{ path = \"/health\", virtualhost = \"other.rig.test\", regex = \"state=down\", \
             regex_no_match = true }}]\n"
        )
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "TCP", 80, 3, &check));
    let sock = rig.dir().join("admin.sock");
    let (detect, _) = out_and_back(
        "HTTP_GET regex",
        &rig,
        80,
        2,
        &|| std::fs::write(&states[0], "down\n").unwrap(),
        &|| std::fs::write(&states[0], "up\n").unwrap(),
    );
    // retry 0 and delay_loop 1 come from the virtual server: one failed
    // probe is enough (HTTP_GET's own default would retry after 3 s).
    assert!(detect < Duration::from_secs(3), "detection took {detect:?}");
    let rs3 = rs(&rig, 3, 80);
    assert!(
        !listed(&sock).contains_key(&rs3),
        "rs3 is checked with a Host its server refuses"
    );
    let log = log_of(&rig, pids[0]);
    assert!(
        log.contains("req GET /health HTTP/1.1 host=good.rig.test"),
        "{log}"
    );
    assert!(
        log.contains("req GET /health HTTP/1.1 host=other.rig.test"),
        "the second url's own virtualhost:\n{log}"
    );
    assert!(log_of(&rig, pids[2]).contains("host=bad.rig.test"));
    assert!(lb.terminate().success());
}

// ----------------------------------------------------------------- DNS_CHECK

fn dnsmasq(rig: &Rig, i: usize) -> u32 {
    let listen = format!("--listen-address={}", rig.rip(i, Fam::V4));
    let pid = rig.spawn(
        rig.rs(i),
        "dnsmasq",
        &[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--port=5353",
            &listen,
            "--address=/rig.test/198.18.0.99",
            "--pid-file=",
            "--user=root",
            "--log-queries",
        ],
    );
    rig.rs(i).wait_udp_bound(5353, Duration::from_secs(10));
    pid
}

#[test]
fn dns_check_follows_dnsmasq_down_and_back() {
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    let pids = [dnsmasq(&rig, 1), dnsmasq(&rig, 2)];
    let check = |_| {
        "[virtual_server.real_server.dns_check]\nconnect_port = 5353\ntype = \"A\"\nname = \"www.rig.test\"\n"
            .to_string()
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "UDP", 53, 2, &check));
    out_and_back("DNS_CHECK", &rig, 53, 2, &|| rig.kill(pids[0]), &|| {
        dnsmasq(&rig, 1);
    });
    let (_, err) = rig.proc_logs(pids[1]);
    assert!(err.contains("query[A] www.rig.test"), "{err}");
    assert!(lb.terminate().success());
}

#[test]
fn dns_check_fails_on_an_error_rcode() {
    // dnsmasq without upstream servers refuses names it has no record for:
    // the answer comes back, with rcode REFUSED, and the server stays out.
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    dnsmasq(&rig, 1);
    dnsmasq(&rig, 2);
    let check = |i: usize| {
        let name = if i == 1 {
            "nowhere.example"
        } else {
            "rig.test"
        };
        format!(
            "[virtual_server.real_server.dns_check]\nconnect_port = 5353\ntype = \"A\"\nname = \"{name}\"\n"
        )
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "UDP", 53, 2, &check));
    let sock = rig.dir().join("admin.sock");
    let (rs1, rs2) = (rs(&rig, 1, 53), rs(&rig, 2, 53));
    wait_listing(&sock, "rs1 out on REFUSED, rs2 in", |l| {
        !l.contains_key(&rs1) && l.contains_key(&rs2)
    });
    std::thread::sleep(Duration::from_secs(3));
    let l = listed(&sock);
    assert!(!l.contains_key(&rs1) && l.contains_key(&rs2), "{l:?}");
    assert!(lb.terminate().success());
}

// ----------------------------------------------------------------- UDP_CHECK

#[test]
fn udp_check_follows_an_echo_server_from_its_source_port_and_device() {
    const PORT: u16 = 9999;
    const SRC: u16 = 40001;
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    let port = PORT.to_string();
    let echo = |i: usize| start(&rig, i, "echo", &["udp", "--port", &port]);
    let pids = [echo(1), echo(2)];
    // "ping" out, a reply starting "ok p" (a wildcard nibble) required.
    let check = |_| {
        format!(
            "[virtual_server.real_server.udp_check]\nconnect_port = {PORT}\npayload = \"70 69 6e 67\"\n\
             require_reply = \"6f 6b 20 7x\"\nmin_reply_length = 4\nbind_port = {SRC}\nbind_if = \"{}\"\n",
            rig::IFACE
        )
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "UDP", 53, 2, &check));
    out_and_back("UDP_CHECK", &rig, 53, 2, &|| rig.kill(pids[0]), &|| {
        echo(1);
    });
    let log = log_of(&rig, pids[1]);
    let dip = rig.dip(Fam::V4);
    assert!(
        log.contains(&format!("from {dip} {SRC}")),
        "probes from {dip}:{SRC} (bind_port):\n{log}"
    );
    assert!(lb.terminate().success());
}

#[test]
fn udp_check_without_require_reply_passes_on_silence_and_fails_on_icmp() {
    const PORT: u16 = 9998;
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    // rs2 listens and never answers (a sink); rs1 has nothing on the port:
    // its kernel answers port unreachable.
    let port = PORT.to_string();
    let sink = |i: usize| start(&rig, i, "sink", &["udp", "--port", &port, "--silent"]);
    let pid2 = sink(2);
    let check = |_| format!("[virtual_server.real_server.udp_check]\nconnect_port = {PORT}\n");
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "UDP", 53, 2, &check));
    let sock = rig.dir().join("admin.sock");
    let (rs1, rs2) = (rs(&rig, 1, 53), rs(&rig, 2, 53));
    wait_listing(&sock, "rs1 out (port unreachable), rs2 in (silence)", |l| {
        !l.contains_key(&rs1) && l.contains_key(&rs2)
    });
    // rs1 starts listening (silently too): it comes in.
    sink(1);
    wait_listing(&sock, "rs1 in once it listens", |l| {
        l.contains_key(&rs1) && l.contains_key(&rs2)
    });
    assert!(log_of(&rig, pid2).contains("from "), "rs2 got the probes");
    assert!(lb.terminate().success());
}

// ---------------------------------------------------------------- PING_CHECK

fn nft_drop(rig: &Rig, i: usize, rule: &str) {
    rig.rs(i).exec_ok(&[
        "nft",
        &format!(
            "add table inet lfping; add chain inet lfping in {{ type filter hook input priority 0; }}; \
             add rule inet lfping in {rule} drop"
        ),
    ]);
}

fn nft_flush(rig: &Rig, i: usize) {
    rig.rs(i).exec_ok(&["nft", "delete table inet lfping"]);
}

#[test]
fn ping_check_over_ipv4_and_ipv6_both_must_pass() {
    let rig = Rig::builder(Mode::Dr)
        .real_servers(2)
        .services(false)
        .build();
    // Two PING_CHECKs per real server: its IPv4 and its IPv6 address. The
    // IPv6 probe leaves from the director's own address: Linux would pick
    // the VIP (the longest match within its /128), which a DR real server
    // holds on lo and would answer to itself.
    let check = |i: usize| {
        format!(
            "[[virtual_server.real_server.ping_check]]\n\
             [[virtual_server.real_server.ping_check]]\nconnect_ip = \"{}\"\nbindto = \"{}\"\n",
            rig.rip(i, Fam::V6),
            rig.dip(Fam::V6)
        )
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "TCP", 80, 2, &check));
    out_and_back(
        "PING_CHECK IPv6",
        &rig,
        80,
        2,
        &|| nft_drop(&rig, 1, "icmpv6 type echo-request"),
        &|| nft_flush(&rig, 1),
    );
    out_and_back(
        "PING_CHECK IPv4",
        &rig,
        80,
        2,
        &|| nft_drop(&rig, 1, "icmp type echo-request"),
        &|| nft_flush(&rig, 1),
    );
    assert!(lb.terminate().success());
}

// ---------------------------------------------------------------- SMTP_CHECK

#[test]
fn smtp_check_follows_the_banner_and_helo() {
    const PORT: u16 = 2525;
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    let states = state_files(&rig, 2, "smtp");
    let port = PORT.to_string();
    let smtp = |i: usize| {
        start(
            &rig,
            i,
            "smtp",
            &[
                "smtp",
                "--port",
                &port,
                "--state",
                states[i - 1].to_str().unwrap(),
            ],
        )
    };
    let pids = [smtp(1), smtp(2)];
    let check = |_| {
        format!(
            "[virtual_server.real_server.smtp_check]\nconnect_port = {PORT}\nhelo_name = \"lb.rig.test\"\n"
        )
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "TCP", 80, 2, &check));
    out_and_back(
        "SMTP_CHECK banner 421",
        &rig,
        80,
        2,
        &|| std::fs::write(&states[0], "down\n").unwrap(),
        &|| std::fs::write(&states[0], "up\n").unwrap(),
    );
    out_and_back(
        "SMTP_CHECK server stopped",
        &rig,
        80,
        2,
        &|| rig.kill(pids[0]),
        &|| {
            smtp(1);
        },
    );
    let log = log_of(&rig, pids[1]);
    assert!(log.contains("helo lb.rig.test"), "{log}");
    assert!(lb.terminate().success());
}

// ------------------------------------------------------------- sorry server

/// `lvsadm -L -n`: real server address -> (forwarding method, weight).
fn listed_fwd(sock: &Path) -> BTreeMap<SocketAddr, (String, i64)> {
    lvsadm_ok(sock.to_str().unwrap(), &["-L", "-n"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = w.next()?.parse().ok()?;
            let fwd = w.next()?.to_string();
            Some((addr, (fwd, w.next()?.parse().ok()?)))
        })
        .collect()
}

#[test]
fn sorry_server_inhibit_keeps_it_listed_at_weight_zero_with_its_own_method() {
    const PORT: u16 = 2525;
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    let states = state_files(&rig, 1, "sorry");
    let port = PORT.to_string();
    start(
        &rig,
        1,
        "smtp",
        &[
            "smtp",
            "--port",
            &port,
            "--state",
            states[0].to_str().unwrap(),
        ],
    );
    let sorry = rs(&rig, 2, 80);
    let toml = lb_toml(&rig, "TCP", 80, 1, &|_| {
        format!("[virtual_server.real_server.smtp_check]\nconnect_port = {PORT}\n")
    })
    .replace(
        "connect_timeout = 1\n",
        &format!(
            "connect_timeout = 1\nsorry_server = \"{sorry}\"\nsorry_server_inhibit = true\n\
             sorry_server_lvs_method = \"NAT\"\n"
        ),
    );
    let mut lb = Lvsfwd::start(&rig, &toml);
    let sock = rig.dir().join("admin.sock");
    let rs1 = rs(&rig, 1, 80);
    let masq = |w: i64| Some(("Masq".to_string(), w));
    let ok = wait_until(DETECT_TIMEOUT, || {
        let l = listed_fwd(&sock);
        l.get(&rs1) == Some(&("Route".to_string(), 1)) && l.get(&sorry) == masq(0).as_ref()
    });
    assert!(
        ok,
        "rs1 up, the sorry server at weight 0: {:?}",
        listed_fwd(&sock)
    );
    std::fs::write(&states[0], "down\n").unwrap();
    let ok = wait_until(DETECT_TIMEOUT, || {
        let l = listed_fwd(&sock);
        !l.contains_key(&rs1) && l.get(&sorry) == masq(1).as_ref()
    });
    assert!(ok, "rs1 out, the sorry server in: {:?}", listed_fwd(&sock));
    std::fs::write(&states[0], "up\n").unwrap();
    let ok = wait_until(DETECT_TIMEOUT, || {
        let l = listed_fwd(&sock);
        l.contains_key(&rs1) && l.get(&sorry) == masq(0).as_ref()
    });
    assert!(ok, "back: {:?}", listed_fwd(&sock));
    assert!(lb.terminate().success());
}

// -------------------------------------------------------------------- omega

#[test]
fn omega_runs_notify_down_and_quorum_down_at_shutdown() {
    const PORT: u16 = 2525;
    let rig = Rig::builder(Mode::Dr).real_servers(1).build();
    let states = state_files(&rig, 1, "omega");
    let port = PORT.to_string();
    start(
        &rig,
        1,
        "smtp",
        &[
            "smtp",
            "--port",
            &port,
            "--state",
            states[0].to_str().unwrap(),
        ],
    );
    let record = rig.dir().join("omega.log");
    let script = rig.dir().join("record.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" >> '{}'\n", record.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sh = script.display();
    let toml = lb_toml(&rig, "TCP", 80, 1, &|_| {
        format!(
            "notify_down = \"{sh} rs-down\"\n\
             [virtual_server.real_server.smtp_check]\nconnect_port = {PORT}\n"
        )
    })
    .replace(
        "connect_timeout = 1\n",
        &format!("connect_timeout = 1\nomega = true\nquorum_down = \"{sh} quorum-down\"\n"),
    );
    let mut lb = Lvsfwd::start(&rig, &toml);
    let sock = rig.dir().join("admin.sock");
    let rs1 = rs(&rig, 1, 80);
    wait_listing(&sock, "rs1 in", |l| l.contains_key(&rs1));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!record.exists(), "nothing ran while up");
    assert!(lb.terminate().success());
    // Both run at once, in either order.
    let log = std::fs::read_to_string(&record).unwrap_or_default();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["quorum-down", "rs-down"],
        "omega's notifies at shutdown"
    );
}

// --------------------------------------------------------------- ha_suspend

#[test]
fn ha_suspend_pauses_the_checkers_while_the_vip_is_not_on_the_director() {
    const PORT: u16 = 2525;
    let rig = Rig::builder(Mode::Dr).real_servers(1).build();
    let states = state_files(&rig, 1, "suspend");
    let port = PORT.to_string();
    let pid = start(
        &rig,
        1,
        "smtp",
        &[
            "smtp",
            "--port",
            &port,
            "--state",
            states[0].to_str().unwrap(),
        ],
    );
    let toml = lb_toml(&rig, "TCP", 80, 1, &|_| {
        format!(
            "[virtual_server.real_server.smtp_check]\nconnect_port = {PORT}\nhelo_name = \"probe\"\n"
        )
    })
    .replace("connect_timeout = 1\n", "connect_timeout = 1\nha_suspend = true\n");
    let mut lb = Lvsfwd::start(&rig, &toml);
    let sock = rig.dir().join("admin.sock");
    let rs1 = rs(&rig, 1, 80);
    let probes = || log_of(&rig, pid).matches("helo probe").count();
    // The VIP is on the director (the rig puts it there): probes run.
    assert!(wait_until(DETECT_TIMEOUT, || probes() >= 2), "no probes");
    wait_listing(&sock, "rs1 in", |l| l.contains_key(&rs1));
    // A backup director has no VIP: no probes, the last verdict holds.
    let vip = format!("{}/32", rig.vip(Fam::V4));
    rig.director().del_addr(rig::IFACE, &vip);
    std::thread::sleep(Duration::from_millis(1500));
    let before = probes();
    std::fs::write(&states[0], "down\n").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(probes(), before, "probes while suspended");
    assert!(
        listed(&sock).contains_key(&rs1),
        "verdict kept while suspended"
    );
    // The VIP back: the checker resumes and sees the server down.
    rig.director().add_addr(rig::IFACE, &vip);
    wait_listing(&sock, "rs1 out once resumed", |l| !l.contains_key(&rs1));
    std::fs::write(&states[0], "up\n").unwrap();
    wait_listing(&sock, "rs1 back", |l| l.contains_key(&rs1));
    assert!(lb.terminate().success());
}

// ------------------------------------------------ fwmark, log_all_failures

#[test]
fn a_checker_s_fwmark_marks_its_probes_and_log_all_failures_logs_each() {
    let rig = Rig::builder(Mode::Dr).real_servers(2).build();
    // The director drops its own packets marked 42 (what an operator's
    // policy routing or firewall would act on).
    rig.director().exec_ok(&[
        "nft",
        "add table inet lfmark; add chain inet lfmark out { type filter hook output priority 0; }; \
         add rule inet lfmark out meta mark 42 drop",
    ]);
    let check = |i: usize| {
        format!(
            "[virtual_server.real_server.tcp_check]\nconnect_port = {}\nfwmark = {}\n\
             log_all_failures = true\n",
            rig::HTTP_PORT,
            if i == 1 { 42 } else { 43 }
        )
    };
    let mut lb = Lvsfwd::start(&rig, &lb_toml(&rig, "TCP", 80, 2, &check));
    let sock = rig.dir().join("admin.sock");
    let (rs1, rs2) = (rs(&rig, 1, 80), rs(&rig, 2, 80));
    wait_listing(&sock, "rs1 (mark 42) out, rs2 (mark 43) in", |l| {
        !l.contains_key(&rs1) && l.contains_key(&rs2)
    });
    // Every failure is logged, also while the checker is down.
    let line = format!("TCP_CHECK check of real server {rs1}");
    assert!(
        wait_until(DETECT_TIMEOUT, || lb.stderr().matches(&line).count() >= 3),
        "{}",
        lb.stderr()
    );
    rig.director().exec_ok(&["nft", "delete table inet lfmark"]);
    wait_listing(&sock, "rs1 back without the drop", |l| l.contains_key(&rs1));
    assert!(lb.terminate().success());
}
