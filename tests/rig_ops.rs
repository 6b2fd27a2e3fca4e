//! Operations end to end on a DR rig: a real Prometheus server scrapes
//! lvsfwd's `[metrics]` endpoint, systemd's notification protocol on a
//! `NOTIFY_SOCKET` the test owns, the SIGUSR1/SIGUSR2 JSON dumps, `lvsfwd
//! genhash` against the real servers' pages (plain and TLS) and the digest
//! it prints accepted by lvsfwd's HTTP_GET checker, and lvsfwd running with
//! only the capabilities configs/lvsfwd.service grants.
//!
//! Prometheus (Debian's `prometheus`) and lvsfwd both run in the director's
//! namespace; the endpoint binds only the namespace's loopback, as lb.toml
//! says. `promtool check metrics` lints the scraped text.
#![forbid(unsafe_code)]

mod rig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rig::daemon::{Lvsfwd, lvsadm_ok};
use rig::{CMD_TIMEOUT, Fam, HTTP_PORT, Host, Mode, Rig, python, run, wait_until};

const METRICS: &str = "127.0.0.1:19478";
const PROMETHEUS: &str = "127.0.0.1:19090";
const HEALTH_PORT: u16 = 8080;
const TLS_PORT: u16 = 8443;
/// Connections sent through the VIP.
const CONNS: usize = 12;
/// A VRRP instance on an address of its own (the service VIP is served
/// from the start).
const VRRP_VIP: &str = "198.18.0.240";

fn lb_toml(rig: &Rig, extra: &str, rs_extra: &dyn Fn(usize) -> String) -> String {
    let mut s = format!(
        "[global]\ninterface = \"{}\"\nadmin_socket = \"{}\"\n\n{extra}\n\
         [[virtual_server]]\naddress = \"{}:{HTTP_PORT}\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\
         delay_loop = 1\n",
        rig::IFACE,
        sock(rig).display(),
        rig.vip(Fam::V4)
    );
    for i in 1..=3 {
        s += &format!(
            "\n[[virtual_server.real_server]]\naddress = \"{}:{HTTP_PORT}\"\nweight = 1\n{}",
            rig.rip(i, Fam::V4),
            rs_extra(i)
        );
    }
    s
}

fn sock(rig: &Rig) -> PathBuf {
    rig.dir().join("admin.sock")
}

fn vrrp_instance() -> String {
    format!(
        "[[vrrp_instance]]\nname = \"VI_OPS\"\nstate = \"BACKUP\"\ninterface = \"{}\"\n\
         virtual_router_id = 77\npriority = 100\nadvert_int = 1\n\
         virtual_ipaddress = [\"{VRRP_VIP}/32\"]\n",
        rig::IFACE
    )
}

/// `curl` in the director's namespace: (HTTP status, body).
fn curl(rig: &Rig, url: &str) -> (u16, String) {
    let out = rig.director().exec(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        url,
    ]);
    assert!(out.ok(), "curl {url}: {}", out.stderr);
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

/// `name{labels} value` lines of a Prometheus text page.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `lvsadm -L -n --stats --exact`: "VIP:PORT" or "VIP:PORT>RIP:PORT" ->
/// [conns, inpkts, outpkts, inbytes, outbytes].
fn lvsadm_stats(rig: &Rig) -> BTreeMap<String, [u64; 5]> {
    let text = lvsadm_ok(
        sock(rig).to_str().unwrap(),
        &["-L", "-n", "--stats", "--exact"],
    );
    let mut out = BTreeMap::new();
    let mut svc = String::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let nums = |f: &[&str]| -> Option<[u64; 5]> {
            let v: Vec<u64> = f.iter().map(|x| x.parse().ok()).collect::<Option<_>>()?;
            v.try_into().ok()
        };
        match f.as_slice() {
            ["TCP" | "UDP", addr, rest @ ..] if rest.len() == 5 => {
                svc = addr.to_string();
                out.insert(svc.clone(), nums(rest).expect("numbers"));
            }
            ["->", addr, rest @ ..] if rest.len() == 5 => {
                if let Some(n) = nums(rest) {
                    out.insert(format!("{svc}>{addr}"), n);
                }
            }
            _ => {}
        }
    }
    out
}

const TRAFFIC: [&str; 5] = [
    "connections",
    "incoming_packets",
    "outgoing_packets",
    "incoming_bytes",
    "outgoing_bytes",
];

/// What arrives on the test's `NOTIFY_SOCKET`, read continuously (as
/// systemd reads it: an unread socket would fill and make lvsfwd drop
/// messages), each with its arrival time.
struct Notes {
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
}

impl Notes {
    fn listen(path: &Path) -> Notes {
        let sock = UnixDatagram::bind(path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !st.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    l.lock().unwrap().push((Instant::now(), m));
                }
            }
        });
        Notes { log, stop }
    }

    /// The first message since `after` with the line `line`, waiting up to
    /// `timeout`.
    fn wait(&self, line: &str, after: Instant, timeout: Duration) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|(t, m)| *t >= after && m.lines().any(|l| l == line))
                .map(|(_, m)| m.clone());
            found.is_some()
        });
        found
    }

    /// Messages with the line `line` that arrived in `[from, to]`.
    fn count(&self, line: &str, from: Instant, to: Instant) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, m)| *t >= from && *t <= to && m.lines().any(|l| l == line))
            .count()
    }
}

impl Drop for Notes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn signal(pid: u32, sig: &str) {
    run(&["kill", sig, &pid.to_string()], CMD_TIMEOUT).expect_ok();
}

fn read_json(path: &Path) -> serde_json::Value {
    let ok = wait_until(Duration::from_secs(5), || path.exists());
    assert!(ok, "{} not written", path.display());
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

#[test]
fn prometheus_scrapes_what_lvsadm_shows_and_systemd_hears_ready_reload_stop() {
    let rig = Rig::builder(Mode::Dr).build();
    let nsock_path = rig.dir().join("notify.sock");
    let notes = Notes::listen(&nsock_path);
    let t0 = Instant::now();
    let runtime = rig.dir().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let cfg = lb_toml(
        &rig,
        &format!("[metrics]\nlisten = \"{METRICS}\"\n\n{}", vrrp_instance()),
        &|_| String::new(),
    );
    let mut lb = Lvsfwd::start_env(
        &rig,
        &[],
        &cfg,
        &[
            ("NOTIFY_SOCKET", nsock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
            ("RUNTIME_DIRECTORY", runtime.to_str().unwrap()),
        ],
    );
    // ---- readiness: READY=1 arrives, and the VIP answers at once.
    let ready = notes
        .wait("READY=1", t0, Duration::from_secs(5))
        .expect("READY=1 on NOTIFY_SOCKET");
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let first = rig.http(rig.client(), vip, 1);
    first.assert_all_ok("the first request after READY=1");
    assert!(ready.contains("STATUS="), "{ready}");
    assert!(rig.director().xdp_attached());
    // ---- the watchdog: pings at half of WATCHDOG_USEC (400 ms).
    let from = Instant::now();
    std::thread::sleep(Duration::from_millis(2000));
    let pings = notes.count("WATCHDOG=1", from, Instant::now());
    // 10 on an idle machine; a loaded one may delay a few turns.
    assert!((5..=12).contains(&pings), "{pings} watchdog pings in 2 s");

    // ---- traffic, then the endpoint.
    let t = rig.http(rig.client(), vip, CONNS - 1);
    t.assert_all_ok("requests through the VIP");
    std::thread::sleep(Duration::from_secs(1));
    let (code, text) = curl(&rig, &format!("http://{METRICS}/metrics"));
    assert_eq!(code, 200, "{text}");

    let (code, _) = curl(&rig, &format!("http://{METRICS}/"));
    assert_eq!(code, 404);
    // Bound only where told: not on the director's LAN address.
    let lan = rig.director().exec(&[
        "curl",
        "-sS",
        "--max-time",
        "3",
        &format!("http://{}:19478/metrics", rig.dip(Fam::V4)),
    ]);
    assert!(!lan.ok(), "metrics answered on the LAN address");

    // ---- promtool lints the page clean.
    let page = rig.dir().join("metrics.txt");
    std::fs::write(&page, &text).unwrap();
    let lint = run(
        &[
            "sh",
            "-c",
            &format!("promtool check metrics < {}", page.display()),
        ],
        CMD_TIMEOUT,
    );
    assert!(
        lint.ok() && lint.stdout.trim().is_empty() && lint.stderr.trim().is_empty(),
        "promtool check metrics:\n{}{}\n{text}",
        lint.stdout,
        lint.stderr
    );

    // ---- the values are lvsadm's.
    let m = samples(&text);
    let stats = lvsadm_stats(&rig);
    let vip_s = vip.to_string();
    let svc = stats.get(&vip_s).expect("the service in lvsadm");
    assert_eq!(svc[0], CONNS as u64, "lvsadm counts the connections");
    for (i, name) in TRAFFIC.iter().enumerate() {
        let labels = format!(
            "{{local_address=\"{}\",local_port=\"{HTTP_PORT}\",proto=\"TCP\"}}",
            rig.vip(Fam::V4)
        );
        assert_eq!(
            m.get(&format!("lvsfwd_service_{name}_total{labels}")),
            Some(&(svc[i] as f64)),
            "{name}\n{text}"
        );
        assert_eq!(
            m.get(&format!("node_ipvs_{name}_total")),
            Some(&(svc[i] as f64)),
            "node_ipvs_{name}_total"
        );
    }
    for n in 1..=3 {
        let rip = rig.rip(n, Fam::V4);
        let rs = stats
            .get(&format!("{vip_s}>{rip}:{HTTP_PORT}"))
            .expect("real server in lvsadm");
        let labels = format!(
            "{{local_address=\"{}\",local_port=\"{HTTP_PORT}\",proto=\"TCP\",remote_address=\"{rip}\",remote_port=\"{HTTP_PORT}\"}}",
            rig.vip(Fam::V4)
        );
        for (i, name) in TRAFFIC.iter().enumerate() {
            assert_eq!(
                m.get(&format!("lvsfwd_real_server_{name}_total{labels}")),
                Some(&(rs[i] as f64)),
                "{name} of {rip}"
            );
        }
        let backend = format!(
            "{{local_address=\"{}\",local_mark=\"\",local_port=\"{HTTP_PORT}\",proto=\"TCP\",remote_address=\"{rip}\",remote_port=\"{HTTP_PORT}\"}}",
            rig.vip(Fam::V4)
        );
        assert_eq!(
            m.get(&format!("node_ipvs_backend_weight{backend}")),
            Some(&1.0)
        );
        let conns = m[&format!("node_ipvs_backend_connections_active{backend}")]
            + m[&format!("node_ipvs_backend_connections_inactive{backend}")];
        assert!(conns >= 1.0, "{rip} has no connection: {text}");
    }
    assert_eq!(
        m.get(&format!(
            "lvsfwd_vrrp_state{{instance=\"VI_OPS\",interface=\"{}\",state=\"MASTER\"}}",
            rig::IFACE
        ))
        .copied()
        .unwrap_or(-1.0)
            + m.get(&format!(
                "lvsfwd_vrrp_state{{instance=\"VI_OPS\",interface=\"{}\",state=\"BACKUP\"}}",
                rig::IFACE
            ))
            .copied()
            .unwrap_or(-1.0),
        1.0,
        "VRRP state\n{text}"
    );
    assert!(
        m.iter()
            .any(|(k, v)| k.starts_with("lvsfwd_worker_frames_total{outcome=\"rx\"") && *v > 0.0)
    );
    assert!(m.contains_key("lvsfwd_drops_total{reason=\"no_dest\"}"));
    assert!(m["lvsfwd_conn_table_entries"] >= 1.0);

    // ---- a real Prometheus scrapes it and its query API has the
    // connections.
    let prom_dir = rig.dir().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom_cfg = rig.dir().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: lvsfwd\n    static_configs:\n      - targets: [\"{METRICS}\"]\n"
        ),
    )
    .unwrap();
    let prom_pid = rig.spawn(
        rig.director(),
        "prometheus",
        &[
            "prometheus",
            &format!("--config.file={}", prom_cfg.display()),
            &format!("--storage.tsdb.path={}", prom_dir.display()),
            &format!("--web.listen-address={PROMETHEUS}"),
        ],
    );
    let query = |q: &str| -> Option<f64> {
        let out = rig.director().exec(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-G",
            &format!("http://{PROMETHEUS}/api/v1/query"),
            "--data-urlencode",
            &format!("query={q}"),
        ]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let seen = wait_until(Duration::from_secs(40), || {
        query("node_ipvs_connections_total{job=\"lvsfwd\"}") == Some(CONNS as f64)
    });
    if !seen {
        let targets = rig.director().exec(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{PROMETHEUS}/api/v1/targets"),
        ]);
        let (_, log) = rig.proc_logs(prom_pid);
        panic!(
            "Prometheus did not see {CONNS} connections: {:?}; up = {:?}; targets: {}\n\
             prometheus's log:\n{log}",
            query("node_ipvs_connections_total"),
            query("up{job=\"lvsfwd\"}"),
            targets.stdout
        );
    }
    assert_eq!(
        query(&format!(
            "sum(lvsfwd_real_server_connections_total{{local_address=\"{}\"}})",
            rig.vip(Fam::V4)
        )),
        Some(CONNS as f64)
    );

    // ---- dumps: SIGUSR1 data, SIGUSR2 stats, in $RUNTIME_DIRECTORY.
    signal(lb.pid(), "-USR1");
    let data = read_json(&runtime.join("lvsfwd.data.json"));
    signal(lb.pid(), "-USR2");
    let stats_dump = read_json(&runtime.join("lvsfwd.stats.json"));
    assert_eq!(data["vrrp_instances"][0]["name"], "VI_OPS", "{data}");
    assert_eq!(data["vrrp_instances"][0]["virtual_ipaddress"][0], VRRP_VIP);
    let rss: Vec<String> = data["virtual_servers"][0]["real_servers"]
        .as_array()
        .expect("real servers")
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (1..=3).map(|n| rig.rip(n, Fam::V4).to_string()).collect();
    assert_eq!(rss, want);
    assert_eq!(stats_dump["vrrp_instances"][0]["name"], "VI_OPS");
    assert_eq!(
        stats_dump["virtual_servers"][0]["traffic"]["conns"],
        CONNS as u64
    );
    assert_eq!(
        stats_dump["virtual_servers"][0]["real_servers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(lb.stderr().contains("dump written to"));

    // ---- SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1.
    let hup = Instant::now();
    signal(lb.pid(), "-HUP");
    let reloading = notes
        .wait("RELOADING=1", hup, Duration::from_secs(5))
        .expect("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    notes
        .wait("READY=1", hup, Duration::from_secs(5))
        .expect("READY=1 after reload");

    // ---- SIGTERM: STOPPING=1.
    lb.assert_running();
    let term = Instant::now();
    assert!(lb.terminate().success());
    assert!(
        notes
            .wait("STOPPING=1", term, Duration::from_secs(2))
            .is_some(),
        "no STOPPING=1 on SIGTERM"
    );
}

/// `<dir>/health` holding `body`, served over HTTP on [`HEALTH_PORT`] by
/// real server `n`, and over TLS on [`TLS_PORT`] when `tls`.
fn serve_page(rig: &Rig, n: usize, body: &str, tls: bool) {
    let dir = rig.dir().join(format!("www-rs{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("health"), body).unwrap();
    let h: &Host = rig.rs(n);
    rig.spawn(
        h,
        "www",
        &[
            python(),
            "-m",
            "http.server",
            &HEALTH_PORT.to_string(),
            "--bind",
            "0.0.0.0",
            "--directory",
            dir.to_str().unwrap(),
        ],
    );
    h.wait_tcp_listen(HEALTH_PORT, Duration::from_secs(10));
    if tls {
        let (cert, key) = rig.self_signed_cert();
        let code = format!(
            "import http.server, ssl, functools\n\
             h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={dir:?})\n\
             s = http.server.HTTPServer(('0.0.0.0', {TLS_PORT}), h)\n\
             c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
             c.load_cert_chain({cert:?}, {key:?})\n\
             s.socket = c.wrap_socket(s.socket, server_side=True)\n\
             s.serve_forever()\n",
            dir = dir.to_str().unwrap(),
            cert = cert.to_str().unwrap(),
            key = key.to_str().unwrap(),
        );
        rig.spawn(h, "tls", &[python(), "-c", &code]);
        h.wait_tcp_listen(TLS_PORT, Duration::from_secs(10));
    }
}

fn genhash(rig: &Rig, args: &[&str]) -> rig::Out {
    let mut argv = vec![rig::daemon::binary(), "genhash"];
    argv.extend_from_slice(args);
    rig.director().exec(&argv)
}

/// The capabilities configs/lvsfwd.service grants, as setpriv names them.
fn unit_capabilities() -> String {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/lvsfwd.service"
    ))
    .unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet in the unit");
    line.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn genhash_prints_the_digest_http_get_accepts_under_the_unit_s_capabilities() {
    let rig = Rig::builder(Mode::Dr).build();
    serve_page(&rig, 1, "ok\n", true);
    serve_page(&rig, 2, "ok\n", false);
    serve_page(&rig, 3, "ok\n", false);
    let rip1 = rig.rip(1, Fam::V4).to_string();
    // md5sum of "ok\n", computed independently.
    let ok_md5 = "eff5bc1ef8ec9d03e640fc4370f5eacd";
    let port = HEALTH_PORT.to_string();
    let out = genhash(&rig, &["-s", &rip1, "-p", &port, "-u", "/health"]);
    assert!(out.ok(), "genhash: {}", out.stderr);
    assert_eq!(out.stdout, format!("MD5SUM = {ok_md5}\n\n"));
    // TLS (self-signed certificate, not verified), and a virtual host.
    let tls = genhash(
        &rig,
        &[
            "-S",
            "-s",
            &rip1,
            "-p",
            &TLS_PORT.to_string(),
            "-u",
            "/health",
            "-V",
            "www.example",
        ],
    );
    assert!(tls.ok(), "genhash -S: {}", tls.stderr);
    assert_eq!(tls.stdout, format!("MD5SUM = {ok_md5}\n\n"));
    // A server that is not there: an error naming it, exit 1.
    let none = genhash(&rig, &["-s", &rip1, "-p", "1", "-u", "/"]);
    assert!(!none.ok());
    assert!(
        none.stderr.contains(&format!("{rip1}:1")),
        "{}",
        none.stderr
    );

    // The printed digest keeps real server 1 up; a wrong one takes real
    // server 2 out. lvsfwd runs with the unit's capabilities only.
    let printed = out
        .stdout
        .trim()
        .strip_prefix("MD5SUM = ")
        .expect("MD5SUM line")
        .to_string();
    let wrong = "0123456789abcdef0123456789abcdef";
    let cfg = lb_toml(&rig, "", &|n| {
        let d = if n == 2 { wrong } else { printed.as_str() };
        format!(
            "[virtual_server.real_server.http_get]\nurl = [{{ path = \"/health\", digest = \"{d}\" }}]\n\
             connect_port = {HEALTH_PORT}\nconnect_timeout = 1\nretry = 1\ndelay_before_retry = 1\n"
        )
    });
    // A metrics address the director does not have: refused at start,
    // naming it, with nothing left attached.
    let bad = rig.dir().join("bad.toml");
    std::fs::write(
        &bad,
        lb_toml(&rig, "[metrics]\nlisten = \"198.18.0.77:9478\"\n", &|_| {
            String::new()
        }),
    )
    .unwrap();
    let refused = rig.director().exec_timeout(
        &[rig::daemon::binary(), "--config", bad.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(
        refused.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("[metrics] listen 198.18.0.77:9478: Cannot assign requested address"),
        "{}",
        refused.stderr
    );
    assert!(!rig.director().xdp_attached(), "XDP left attached");

    let caps = unit_capabilities();
    let bounding = format!("--bounding-set=-all,{caps}");
    let mut lb = Lvsfwd::start_env(&rig, &["setpriv", "--inh-caps=-all", &bounding], &cfg, &[]);
    let cap_eff = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| v.trim().to_string())
    };
    let mine = cap_eff(&std::fs::read_to_string("/proc/self/status").unwrap());
    let its = cap_eff(&std::fs::read_to_string(format!("/proc/{}/status", lb.pid())).unwrap());
    assert!(
        its.is_some() && its != mine,
        "lvsfwd runs with the test's capabilities: {its:?}"
    );
    let s = sock(&rig);
    let listed = |rip: usize| {
        lvsadm_ok(s.to_str().unwrap(), &["-L", "-n"])
            .contains(&format!("{}:{HTTP_PORT}", rig.rip(rip, Fam::V4)))
    };
    let out2 = wait_until(Duration::from_secs(15), || !listed(2));
    assert!(out2, "the wrong digest did not take real server 2 out");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        listed(1) && listed(3),
        "the printed digest took a server out"
    );
    assert!(!listed(2));
    let vip = SocketAddr::new(rig.vip(Fam::V4), HTTP_PORT);
    let t = rig.http(rig.client(), vip, 6);
    t.assert_all_ok("requests through the VIP with reduced capabilities");
    assert!(t.per_server().len() == 2, "{:?}", t.per_server());
    lb.assert_running();
    assert!(lb.terminate().success());
}
