//! `lvsperf soak`: a long, bounded reliability run (see perf/README.md,
//! "Soak").
//!
//! One L2 segment (a bridge in a switch namespace) and one namespace per
//! host, every name `lfsoak-<pid>-*` (swept at the next start if a run is
//! killed before its Drop):
//!
//! ```text
//!  client 198.18.0.100   d1 198.18.0.2 (lvsfwd, VRRP MASTER prio 100)
//!                        d2 198.18.0.3 (lvsfwd, VRRP BACKUP prio 90)
//!  VIP 198.18.0.250 (VRRP VRID 51), DR to rs1-3 198.18.0.11-13 (VIP on lo),
//!  HTTP_GET health checks every second
//! ```
//!
//! The client (perf/soak_load.py) sends a steady stream of short HTTP
//! connections plus bursts; on a schedule the harness reloads lb.toml
//! (SIGHUP, new weights), edits the tables with lvsadm (-e, -d, -a), kills
//! and restarts a real server's HTTP server, and fails the VRRP master over
//! (SIGTERM or SIGKILL, alternately) and back (restart, preemption). Every
//! few seconds it samples each lvsfwd's RSS, open files, threads and
//! connection-table size. At the end: `<prefix>.json`, `<prefix>.png` and
//! `<PREFIX>.md` in the output directory, every failed request attributed to
//! the detection window of an event or listed as unexplained, and every
//! sampled series checked for growth.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::rig::{CMD_TIMEOUT, cmd, kill_ns_pids, sweep_stale_with};

const NS_PREFIX: &str = "lfsoak-";
const IFACE: &str = "lfeth0";
const VIP: &str = "198.18.0.250";
const CLIENT: &str = "198.18.0.100";
const RS: [&str; 3] = ["198.18.0.11", "198.18.0.12", "198.18.0.13"];
/// Master_Down_Interval of the backup (priority 90, advert_int 1 s).
const MDI_S: f64 = 3.0 + (256.0 - 90.0) / 256.0;
/// Worst-case health-check detection: delay_loop 1 + connect_timeout 1 x
/// (retry 1 + 1) + delay_before_retry 1, plus a second of slack.
const HC_DETECT_S: f64 = 5.0;
/// The client's per-request timeout (a request started this long before an
/// event can still fail because of it).
const REQ_TIMEOUT_S: f64 = 3.0;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// Length of the loaded run in minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Output directory.
    #[arg(long, default_value = "perf")]
    out: PathBuf,
    /// Output file prefix (default: `soak`, or `soak-short` under 30 minutes).
    #[arg(long)]
    prefix: Option<String>,
    /// Seconds between samples.
    #[arg(long, default_value_t = 2.0)]
    sample: f64,
    /// Steady request rate (requests/s).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds between bursts.
    #[arg(long, default_value_t = 20.0)]
    burst_every: f64,
    /// Requests per burst.
    #[arg(long, default_value_t = 150)]
    burst_size: u32,
    /// Length of one event cycle in seconds (default min(240, run length)).
    #[arg(long)]
    cycle: Option<f64>,
    /// The command line recorded in the report.
    #[arg(long, default_value = "")]
    command: String,
    /// Run the directors with IPVS's `expire_nodest_conn` on (what
    /// keepalived deployments set): a connection whose real server left is
    /// expired at its next packet instead of dropping it until it times
    /// out, so clients reusing its source port are not stuck.
    #[arg(long)]
    expire_nodest_conn: bool,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name(name);
    if !p.exists() {
        bail!(
            "{} not found (build it: cargo build --release)",
            p.display()
        );
    }
    Ok(p)
}

/// The rig: namespaces, the temp directory, and every process started.
struct SoakRig {
    pid: u32,
    dir: PathBuf,
    namespaces: Vec<String>,
    procs: Vec<Child>,
}

impl SoakRig {
    fn ns(&self, host: &str) -> String {
        format!("{NS_PREFIX}{}-{host}", self.pid)
    }

    fn exec(&self, host: &str, argv: &[&str]) -> Result<String> {
        let ns = self.ns(host);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(argv);
        cmd(&full, CMD_TIMEOUT)
    }

    fn build() -> Result<SoakRig> {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("lfsoak-{pid}"));
        std::fs::create_dir_all(&dir)?;
        let mut rig = SoakRig {
            pid,
            dir,
            namespaces: Vec::new(),
            procs: Vec::new(),
        };
        rig.setup()?;
        Ok(rig)
    }

    fn setup(&mut self) -> Result<()> {
        let sw = self.ns("sw");
        let br = format!("lfk{:x}br", self.pid);
        cmd(&["ip", "netns", "add", &sw], CMD_TIMEOUT)?;
        self.namespaces.push(sw.clone());
        let swx = |a: &[&str]| -> Result<String> {
            let mut full = vec!["ip", "-n", sw.as_str()];
            full.extend_from_slice(a);
            cmd(&full, CMD_TIMEOUT)
        };
        swx(&[
            "link",
            "add",
            &br,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        swx(&["link", "set", &br, "up"])?;
        let hosts: [(&str, &str); 6] = [
            ("cl", CLIENT),
            ("d1", "198.18.0.2"),
            ("d2", "198.18.0.3"),
            ("r1", RS[0]),
            ("r2", RS[1]),
            ("r3", RS[2]),
        ];
        for (h, addr) in hosts {
            let ns = self.ns(h);
            cmd(&["ip", "netns", "add", &ns], CMD_TIMEOUT)?;
            self.namespaces.push(ns.clone());
            for k in ["all", "default"] {
                self.exec(
                    h,
                    &[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                    ],
                )?;
            }
            let port = format!("lfk{:x}{h}", self.pid);
            cmd(
                &[
                    "ip", "-n", &ns, "link", "add", IFACE, "type", "veth", "peer", "name", &port,
                    "netns", &sw,
                ],
                CMD_TIMEOUT,
            )?;
            swx(&["link", "set", &port, "master", &br])?;
            swx(&["link", "set", &port, "up"])?;
            self.exec(h, &["ip", "link", "set", "lo", "up"])?;
            self.exec(
                h,
                &["ip", "addr", "add", &format!("{addr}/24"), "dev", IFACE],
            )?;
            self.exec(h, &["ip", "link", "set", IFACE, "up"])?;
            for dev in ["all", "default", IFACE] {
                self.exec(
                    h,
                    &["sysctl", "-qw", &format!("net.ipv4.conf.{dev}.rp_filter=0")],
                )?;
            }
            if h.starts_with('d') {
                self.exec(h, &["sysctl", "-qw", "net.ipv4.ip_forward=0"])?;
            }
            if h.starts_with('r') {
                // DR real server: the VIP on lo, never answering ARP for it.
                self.exec(h, &["ip", "addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
                for dev in ["all", "lo"] {
                    self.exec(
                        h,
                        &[
                            "sysctl",
                            "-qw",
                            &format!("net.ipv4.conf.{dev}.arp_ignore=1"),
                        ],
                    )?;
                    self.exec(
                        h,
                        &[
                            "sysctl",
                            "-qw",
                            &format!("net.ipv4.conf.{dev}.arp_announce=2"),
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Starts `argv` in `host`'s namespace; stdout and stderr to `log`.
    fn spawn(&mut self, host: &str, argv: &[&str], log: &Path) -> Result<u32> {
        let f = std::fs::File::create(log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(argv)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("starting {argv:?}"))?;
        let id = child.id();
        self.procs.push(child);
        Ok(id)
    }

    /// Reaps exited children (so that their pids stay meaningful).
    fn reap(&mut self) {
        self.procs
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }

    fn wait_exit(&mut self, pid: u32, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            self.reap();
            if !self.procs.iter().any(|c| c.id() == pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn has_vip(&self, host: &str) -> bool {
        self.exec(host, &["ip", "-4", "-o", "addr", "show", "dev", IFACE])
            .map(|o| o.contains(&format!(" {VIP}/32 ")))
            .unwrap_or(false)
    }
}

impl Drop for SoakRig {
    fn drop(&mut self) {
        for c in self.procs.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            kill_ns_pids(ns);
            if let Err(e) = cmd(&["ip", "netns", "del", ns], CMD_TIMEOUT) {
                eprintln!("lvsperf soak: could not delete namespace {ns}: {e:#}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// lb.toml of director `who` with real-server weights `w`.
fn lb_toml(
    dir: &Path,
    who: &str,
    state: &str,
    prio: u8,
    w: [u32; 3],
    expire_nodest_conn: bool,
) -> String {
    let mut s = format!(
        "# Written by lvsperf soak.\n[global]\nrouter_id = \"{who}\"\ninterface = \"{IFACE}\"\n\
         expire_nodest_conn = {expire_nodest_conn}\n\
         admin_socket = \"{}\"\n\n\
         [[vrrp_instance]]\nname = \"VI_1\"\nstate = \"{state}\"\ninterface = \"{IFACE}\"\n\
         virtual_router_id = 51\npriority = {prio}\nadvert_int = 1\nauth_type = \"PASS\"\n\
         auth_pass = \"soak\"\nvirtual_ipaddress = [\"{VIP}/32\"]\n\n\
         [[virtual_server]]\naddress = \"{VIP}:80\"\nprotocol = \"TCP\"\nlb_algo = \"wrr\"\n\
         lb_kind = \"DR\"\ndelay_loop = 1\n",
        dir.join(format!("{who}.sock")).display()
    );
    for (i, rs) in RS.iter().enumerate() {
        s += &format!(
            "\n  [[virtual_server.real_server]]\n  address = \"{rs}:80\"\n  weight = {}\n\
             \x20 [virtual_server.real_server.http_get]\n  url = [{{ path = \"/\", status_code = 200 }}]\n\
             \x20 connect_timeout = 1\n  retry = 1\n  delay_before_retry = 1\n",
            w[i]
        );
    }
    s
}

struct Director {
    name: &'static str,
    state: &'static str,
    prio: u8,
    pid: Option<u32>,
    instance: u32,
    logs: Vec<PathBuf>,
}

#[derive(Serialize, Clone)]
struct Sample {
    t: f64,
    director: String,
    instance: u32,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    conns: u64,
    master: bool,
}

#[derive(Serialize, Clone)]
struct Event {
    t: f64,
    /// End of the event's action (e.g. the restarted daemon ready).
    t_end: f64,
    kind: String,
    detail: String,
    /// The window in which failed requests are explained by this event.
    window: (f64, f64),
    /// Whether the event is expected to fail requests at all.
    disruptive: bool,
}

#[derive(Serialize, Clone, Default)]
struct Bucket {
    t: f64,
    ok: u64,
    fail: u64,
    burst: u64,
    by: BTreeMap<String, u64>,
    fails: Vec<(f64, String)>,
}

#[derive(Serialize)]
struct Failure {
    t: f64,
    error: String,
    explained_by: Option<String>,
}

#[derive(Serialize)]
struct Trend {
    series: String,
    samples: usize,
    first_half_mean: f64,
    second_half_mean: f64,
    second_half_slope_per_min: f64,
    max: f64,
    grows: bool,
}

#[derive(Serialize)]
struct Report {
    command: String,
    minutes: f64,
    started_unix: f64,
    rate: f64,
    burst_every: f64,
    burst_size: u32,
    requests_ok: u64,
    requests_failed: u64,
    unexplained: usize,
    events: Vec<Event>,
    failures: Vec<Failure>,
    trends: Vec<Trend>,
    stop_counters: Vec<(String, String)>,
    samples: Vec<Sample>,
    buckets: Vec<Bucket>,
}

fn proc_status(pid: u32) -> Option<(u64, u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some((field("VmRSS:")?, fds, field("Threads:").unwrap_or(0)))
}

/// Connection entries in `lvsadm -L -c -n` output.
fn count_conns(listing: &str) -> u64 {
    listing
        .lines()
        .filter(|l| {
            let w = l.split_whitespace().next().unwrap_or("");
            w == "TCP" || w == "UDP"
        })
        .count() as u64
}

/// Least-squares slope of `(x, y)`.
fn slope(v: &[(f64, f64)]) -> f64 {
    let n = v.len() as f64;
    if v.len() < 2 {
        return 0.0;
    }
    let mx = v.iter().map(|p| p.0).sum::<f64>() / n;
    let my = v.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = v.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = v.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// Growth check of one series (x in seconds): it "grows" when its second
/// half both sits 10% above the first half and still climbs by more than 10%
/// of the first half's mean over the second half's span.
fn trend(name: &str, v: &[(f64, f64)]) -> Trend {
    let mean = |s: &[(f64, f64)]| {
        if s.is_empty() {
            0.0
        } else {
            s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64
        }
    };
    let (a, b) = v.split_at(v.len() / 2);
    let (m1, m2) = (mean(a), mean(b));
    let k = slope(b);
    let span = b.last().map(|p| p.0).unwrap_or(0.0) - b.first().map(|p| p.0).unwrap_or(0.0);
    let floor = m1.max(1.0);
    Trend {
        series: name.to_string(),
        samples: v.len(),
        first_half_mean: m1,
        second_half_mean: m2,
        second_half_slope_per_min: k * 60.0,
        max: v.iter().map(|p| p.1).fold(0.0, f64::max),
        grows: v.len() >= 8 && m2 > 1.1 * floor && k * span > 0.1 * floor,
    }
}

/// The event whose window holds `t`: a disruptive one first.
fn attribute(events: &[Event], t: f64) -> Option<&Event> {
    let inside = |e: &&Event| e.window.0 <= t && t <= e.window.1;
    events
        .iter()
        .filter(inside)
        .find(|e| e.disruptive)
        .or_else(|| events.iter().find(inside))
}

struct Ctx {
    rig: SoakRig,
    lvsfwd: PathBuf,
    lvsadm: PathBuf,
    servers_py: String,
    d: [Director; 2],
    rs_pids: [Option<u32>; 3],
    weights: [u32; 3],
    expire_nodest_conn: bool,
    events: Vec<Event>,
    stop_counters: Vec<(String, String)>,
    /// Start of the loaded run (unix seconds).
    t0: f64,
}

impl Ctx {
    fn write_configs(&self) -> Result<()> {
        for d in &self.d {
            std::fs::write(
                self.rig.dir.join(format!("{}.toml", d.name)),
                lb_toml(
                    &self.rig.dir,
                    d.name,
                    d.state,
                    d.prio,
                    self.weights,
                    self.expire_nodest_conn,
                ),
            )?;
        }
        Ok(())
    }

    fn lvsadm(&self, di: usize, args: &[&str]) -> Result<String> {
        let sock = self.rig.dir.join(format!("{}.sock", self.d[di].name));
        let mut argv = vec![
            self.lvsadm.to_str().unwrap_or("lvsadm"),
            "--socket",
            sock.to_str().unwrap_or(""),
        ];
        argv.extend_from_slice(args);
        self.rig.exec(self.d[di].name, &argv)
    }

    fn start_director(&mut self, di: usize) -> Result<()> {
        let (name, inst) = (self.d[di].name, self.d[di].instance + 1);
        let conf = self.rig.dir.join(format!("{name}.toml"));
        let log = self.rig.dir.join(format!("{name}-{inst}.log"));
        let bin = self.lvsfwd.to_string_lossy().into_owned();
        let pid = self
            .rig
            .spawn(name, &[&bin, "--config", conf.to_str().unwrap_or("")], &log)?;
        let t0 = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().any(|l| l.starts_with("lvsfwd: ready")) {
                break;
            }
            self.rig.reap();
            if !self.rig.procs.iter().any(|c| c.id() == pid) {
                bail!("lvsfwd on {name} exited before ready:\n{text}");
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("lvsfwd on {name} not ready in 30 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let d = &mut self.d[di];
        d.pid = Some(pid);
        d.instance = inst;
        d.logs.push(log);
        Ok(())
    }

    /// Stops director `di` (SIGTERM, or SIGKILL and the VIP removed as the
    /// host's death would) and keeps what it printed at stop.
    fn stop_director(&mut self, di: usize, kill: bool) -> Result<()> {
        let Some(pid) = self.d[di].pid.take() else {
            return Ok(());
        };
        let sig = if kill { "-KILL" } else { "-TERM" };
        cmd(&["kill", sig, &pid.to_string()], CMD_TIMEOUT)?;
        if !self.rig.wait_exit(pid, Duration::from_secs(10)) {
            let _ = cmd(&["kill", "-KILL", &pid.to_string()], CMD_TIMEOUT);
            self.rig.wait_exit(pid, Duration::from_secs(5));
        }
        let name = self.d[di].name;
        if kill && self.rig.has_vip(name) {
            self.rig.exec(
                name,
                &["ip", "addr", "del", &format!("{VIP}/32"), "dev", IFACE],
            )?;
        }
        if let Some(log) = self.d[di].logs.last() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("drop ")
                        || l.starts_with("kernel ")
                        || l.contains("stopped:")
                        || l.starts_with("rx ")
                })
                .collect();
            let label = format!("{name}#{} ({})", self.d[di].instance, &sig[1..]);
            self.stop_counters.push((
                label,
                if tail.is_empty() {
                    "(nothing printed)".into()
                } else {
                    tail.join("; ")
                },
            ));
        }
        Ok(())
    }

    fn start_rs(&mut self, n: usize) -> Result<()> {
        let host = format!("r{}", n + 1);
        let log = self.rig.dir.join(format!("{host}.log"));
        let name = format!("rs{}", n + 1);
        let pid = self.rig.spawn(
            &host,
            &["python3", &self.servers_py, "--name", &name, "--http", "80"],
            &log,
        )?;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if self
                .rig
                .exec(&host, &["ss", "-Hltn", "sport = :80"])
                .is_ok_and(|o| !o.trim().is_empty())
            {
                self.rs_pids[n] = Some(pid);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{name}'s HTTP server does not listen");
    }

    fn stop_rs(&mut self, n: usize) -> Result<()> {
        if let Some(pid) = self.rs_pids[n].take() {
            cmd(&["kill", "-KILL", &pid.to_string()], CMD_TIMEOUT)?;
            self.rig.wait_exit(pid, Duration::from_secs(5));
        }
        Ok(())
    }

    fn event(&mut self, t: f64, kind: &str, detail: String, after: f64, disruptive: bool) {
        let t_end = now_unix();
        println!("lvsperf soak: {:>7.1}s {kind}: {detail}", t - self.t0);
        self.events.push(Event {
            t,
            t_end,
            kind: kind.into(),
            detail,
            window: (t - REQ_TIMEOUT_S, t_end + after),
            disruptive,
        });
    }
}

/// The event schedule of one cycle: (fraction of the cycle, action).
const SCHEDULE: [(f64, &str); 8] = [
    (0.05, "sighup"),
    (0.15, "lvsadm-e"),
    (0.25, "rs-kill"),
    (0.40, "rs-start"),
    (0.45, "lvsadm-d"),
    (0.55, "lvsadm-a"),
    (0.60, "failover"),
    (0.85, "failback"),
];

fn do_event(c: &mut Ctx, action: &str, cycle: usize) -> Result<()> {
    let t = now_unix();
    match action {
        "sighup" => {
            c.weights = match cycle % 3 {
                0 => [2, 1, 1],
                1 => [1, 3, 1],
                _ => [1, 1, 1],
            };
            c.write_configs()?;
            let mut sent = Vec::new();
            for d in &c.d {
                if let Some(pid) = d.pid {
                    cmd(&["kill", "-HUP", &pid.to_string()], CMD_TIMEOUT)?;
                    sent.push(d.name);
                }
            }
            c.event(
                t,
                "sighup",
                format!("reload {sent:?}, weights {:?}", c.weights),
                2.0,
                false,
            );
        }
        "lvsadm-e" => {
            let w = (cycle % 4 + 1).to_string();
            for di in 0..2 {
                if c.d[di].pid.is_some() {
                    c.lvsadm(
                        di,
                        &[
                            "-e",
                            "-t",
                            &format!("{VIP}:80"),
                            "-r",
                            &format!("{}:80", RS[0]),
                            "-g",
                            "-w",
                            &w,
                        ],
                    )?;
                }
            }
            c.event(t, "lvsadm", format!("-e rs1 weight {w}"), 2.0, false);
        }
        "rs-kill" => {
            c.stop_rs(1)?;
            c.event(
                t,
                "rs-down",
                "rs2 HTTP server killed".into(),
                HC_DETECT_S,
                true,
            );
        }
        "rs-start" => {
            c.start_rs(1)?;
            c.event(t, "rs-up", "rs2 HTTP server restarted".into(), 3.0, false);
        }
        "lvsadm-d" => {
            for di in 0..2 {
                if c.d[di].pid.is_some() {
                    c.lvsadm(
                        di,
                        &[
                            "-d",
                            "-t",
                            &format!("{VIP}:80"),
                            "-r",
                            &format!("{}:80", RS[2]),
                        ],
                    )?;
                }
            }
            c.event(t, "lvsadm", "-d rs3".into(), 2.0, true);
        }
        "lvsadm-a" => {
            for di in 0..2 {
                if c.d[di].pid.is_some() {
                    c.lvsadm(
                        di,
                        &[
                            "-a",
                            "-t",
                            &format!("{VIP}:80"),
                            "-r",
                            &format!("{}:80", RS[2]),
                            "-g",
                            "-w",
                            "1",
                        ],
                    )?;
                }
            }
            c.event(t, "lvsadm", "-a rs3".into(), 2.0, false);
        }
        "failover" => {
            let kill = cycle % 2 == 1;
            c.stop_director(0, kill)?;
            c.event(
                t,
                "failover",
                format!("d1 (master) {}", if kill { "SIGKILL" } else { "SIGTERM" }),
                MDI_S + 1.0,
                true,
            );
        }
        "failback" => {
            c.start_director(0)?;
            c.event(t, "failback", "d1 restarted (preempts)".into(), 5.0, true);
        }
        _ => unreachable!(),
    }
    Ok(())
}

pub fn run(a: SoakArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    if !cmd(&["id", "-u"], CMD_TIMEOUT)?.trim().eq("0") {
        bail!("lvsperf soak needs root (network namespaces, AF_XDP)");
    }
    let duration = a.minutes * 60.0;
    let cycle = a.cycle.unwrap_or(duration.min(240.0));
    let prefix = a.prefix.clone().unwrap_or_else(|| {
        if a.minutes >= 30.0 {
            "soak"
        } else {
            "soak-short"
        }
        .to_string()
    });
    sweep_stale_with(NS_PREFIX);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let load_py = manifest.join("soak_load.py");
    let servers_py = manifest.join("../tests/rig/servers.py");
    let mut c = Ctx {
        rig: SoakRig::build()?,
        lvsfwd: sibling("lvsfwd")?,
        lvsadm: sibling("lvsadm")?,
        servers_py: servers_py.to_string_lossy().into_owned(),
        d: [
            Director {
                name: "d1",
                state: "MASTER",
                prio: 100,
                pid: None,
                instance: 0,
                logs: vec![],
            },
            Director {
                name: "d2",
                state: "BACKUP",
                prio: 90,
                pid: None,
                instance: 0,
                logs: vec![],
            },
        ],
        rs_pids: [None; 3],
        weights: [1, 1, 1],
        expire_nodest_conn: a.expire_nodest_conn,
        events: vec![],
        stop_counters: vec![],
        t0: 0.0,
    };
    for n in 0..3 {
        c.start_rs(n)?;
    }
    c.write_configs()?;
    c.start_director(0)?;
    c.start_director(1)?;
    let t0 = Instant::now();
    while !c.rig.has_vip("d1") {
        if t0.elapsed() > Duration::from_secs(15) {
            bail!("d1 never became VRRP master");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Health checks settle, then the client must get through.
    std::thread::sleep(Duration::from_secs(3));
    let probe = c.rig.exec(
        "cl",
        &[
            "python3",
            "-c",
            &format!(
                "import socket;s=socket.create_connection(('{VIP}',80),3);\
                 s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n');print(s.recv(999))"
            ),
        ],
    )?;
    println!(
        "lvsperf soak: rig up, first answer {}; running {:.1} min, cycle {cycle:.0} s",
        probe.trim(),
        a.minutes
    );

    // The load.
    let load_log = c.rig.dir.join("load.err");
    let mut load = Command::new("ip")
        .args(["netns", "exec", &c.rig.ns("cl"), "python3"])
        .arg(&load_py)
        .args(["--vip", VIP, "--duration", &duration.to_string()])
        .args(["--rate", &a.rate.to_string()])
        .args(["--burst-every", &a.burst_every.to_string()])
        .args(["--burst-size", &a.burst_size.to_string()])
        .args(["--timeout", &REQ_TIMEOUT_S.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&load_log)?)
        .spawn()?;
    let buckets: Arc<Mutex<Vec<Bucket>>> = Arc::default();
    let load_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let out = load.stdout.take().expect("piped");
        let buckets = Arc::clone(&buckets);
        let done = Arc::clone(&load_done);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if v.get("done").is_some() {
                    break;
                }
                let b = Bucket {
                    t: v["t"].as_f64().unwrap_or(0.0),
                    ok: v["ok"].as_u64().unwrap_or(0),
                    fail: v["fail"].as_u64().unwrap_or(0),
                    burst: v["burst"].as_u64().unwrap_or(0),
                    by: v["by"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                                .collect()
                        })
                        .unwrap_or_default(),
                    fails: v["fails"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|f| {
                                    (
                                        f[0].as_f64().unwrap_or(0.0),
                                        f[1].as_str().unwrap_or("").to_string(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                buckets.lock().unwrap_or_else(|e| e.into_inner()).push(b);
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let started = now_unix();
    c.t0 = started;
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut next_sample = 0.0;
    let mut schedule: Vec<(f64, usize, &str)> = Vec::new();
    let mut k = 0;
    while (k as f64) * cycle < duration {
        for (f, act) in SCHEDULE {
            let at = (k as f64 + f) * cycle;
            if at < duration - 5.0 {
                schedule.push((at, k, act));
            }
        }
        k += 1;
    }
    let mut si = 0;
    let mut aborted = false;
    let mut err = None;
    while start.elapsed().as_secs_f64() < duration + REQ_TIMEOUT_S + 3.0 {
        if stop.load(Ordering::SeqCst) {
            aborted = true;
            eprintln!("lvsperf soak: interrupted, cleaning up");
            break;
        }
        if load_done.load(Ordering::SeqCst) && start.elapsed().as_secs_f64() >= duration {
            break;
        }
        let el = start.elapsed().as_secs_f64();
        if si < schedule.len() && el >= schedule[si].0 {
            let (_, cyc, act) = schedule[si];
            si += 1;
            if let Err(e) = do_event(&mut c, act, cyc) {
                err = Some(e.context(format!("event {act}")));
                break;
            }
            continue;
        }
        if el >= next_sample {
            next_sample += a.sample;
            c.rig.reap();
            for di in 0..2 {
                let Some(pid) = c.d[di].pid else { continue };
                let Some((rss, fds, threads)) = proc_status(pid) else {
                    continue;
                };
                let conns = c
                    .lvsadm(di, &["-L", "-c", "-n"])
                    .map(|o| count_conns(&o))
                    .unwrap_or(0);
                samples.push(Sample {
                    t: now_unix(),
                    director: c.d[di].name.into(),
                    instance: c.d[di].instance,
                    rss_kib: rss,
                    fds,
                    threads,
                    conns,
                    master: c.rig.has_vip(c.d[di].name),
                });
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = load.kill();
    let _ = load.wait();
    let _ = reader.join();
    for di in 0..2 {
        let _ = c.stop_director(di, false);
    }
    if let Some(e) = err {
        let log = std::fs::read_to_string(&load_log).unwrap_or_default();
        return Err(e.context(format!("load stderr: {log}")));
    }
    if aborted {
        bail!("interrupted");
    }
    let buckets = std::mem::take(&mut *buckets.lock().unwrap_or_else(|e| e.into_inner()));
    let report = analyse(
        &a,
        started,
        c.events.clone(),
        c.stop_counters.clone(),
        samples,
        buckets,
    );
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(
        a.out.join(format!("{prefix}.json")),
        serde_json::to_string_pretty(&report)?,
    )?;
    plot(&report, &a.out.join(format!("{prefix}.png")))?;
    std::fs::write(
        a.out.join(format!("{}.md", prefix.to_uppercase())),
        markdown(&report, &prefix),
    )?;
    println!(
        "lvsperf soak: {} ok, {} failed ({} unexplained); wrote {}/{prefix}.{{json,png}} and {}.md",
        report.requests_ok,
        report.requests_failed,
        report.unexplained,
        a.out.display(),
        prefix.to_uppercase()
    );
    Ok(())
}

fn analyse(
    a: &SoakArgs,
    started: f64,
    events: Vec<Event>,
    stop_counters: Vec<(String, String)>,
    samples: Vec<Sample>,
    mut buckets: Vec<Bucket>,
) -> Report {
    buckets.sort_by(|x, y| x.t.total_cmp(&y.t));
    let failures: Vec<Failure> = buckets
        .iter()
        .flat_map(|b| b.fails.iter())
        .map(|(t, e)| Failure {
            t: *t,
            error: e.clone(),
            explained_by: attribute(&events, *t)
                .map(|ev| format!("{} at {:.1}s: {}", ev.kind, ev.t - started, ev.detail)),
        })
        .collect();
    let mut trends = Vec::new();
    let mut keys: Vec<(String, u32)> = samples
        .iter()
        .map(|s| (s.director.clone(), s.instance))
        .collect();
    keys.sort();
    keys.dedup();
    for (d, i) in keys {
        let mine: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.director == d && s.instance == i)
            .collect();
        let pick = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
            mine.iter().map(|s| (s.t - started, f(s))).collect()
        };
        trends.push(trend(
            &format!("{d}#{i} RSS KiB"),
            &pick(&|s| s.rss_kib as f64),
        ));
        trends.push(trend(
            &format!("{d}#{i} open fds"),
            &pick(&|s| s.fds as f64),
        ));
        trends.push(trend(
            &format!("{d}#{i} threads"),
            &pick(&|s| s.threads as f64),
        ));
        trends.push(trend(
            &format!("{d}#{i} connections"),
            &pick(&|s| s.conns as f64),
        ));
    }
    Report {
        command: a.command.clone(),
        minutes: a.minutes,
        started_unix: started,
        rate: a.rate,
        burst_every: a.burst_every,
        burst_size: a.burst_size,
        requests_ok: buckets.iter().map(|b| b.ok).sum(),
        requests_failed: buckets.iter().map(|b| b.fail).sum(),
        unexplained: failures.iter().filter(|f| f.explained_by.is_none()).count(),
        events,
        failures,
        trends,
        stop_counters,
        samples,
        buckets,
    }
}

fn markdown(r: &Report, prefix: &str) -> String {
    let mut s = format!("# lvsfwd soak ({prefix})\n\n");
    if r.minutes < 30.0 {
        s += &format!(
            "**Short validation run ({:.1} minutes), not the 30-minute soak.**\n\n",
            r.minutes
        );
    }
    s += &format!(
        "Generated by `lvsperf soak` ({}). Two lvsfwd directors (VRRP MASTER 100 / \
         BACKUP 90, DR, wrr, HTTP_GET checks every 1 s) in front of three real servers; \
         the client sends {} short HTTP connections/s plus {} every {} s. \
         Plot: `{prefix}.png`; raw data: `{prefix}.json`.\n\n",
        if r.command.is_empty() {
            "lvsperf soak".to_string()
        } else {
            format!("`{}`", r.command)
        },
        r.rate,
        r.burst_size,
        r.burst_every
    );
    let total = r.requests_ok + r.requests_failed;
    s += &format!(
        "## Requests\n\n{total} requests, {} ok, {} failed ({:.3}%), {} unexplained.\n\n",
        r.requests_ok,
        r.requests_failed,
        100.0 * r.requests_failed as f64 / (total.max(1)) as f64,
        r.unexplained
    );
    s += "| t (s) | event | detail | window (s) | failed requests in it |\n|---|---|---|---|---|\n";
    for e in &r.events {
        let key = format!("{} at {:.1}s: {}", e.kind, e.t - r.started_unix, e.detail);
        let n = r
            .failures
            .iter()
            .filter(|f| f.explained_by.as_deref() == Some(key.as_str()))
            .count();
        s += &format!(
            "| {:.1} | {} | {} | {:.1}..{:.1} | {n} |\n",
            e.t - r.started_unix,
            e.kind,
            e.detail,
            e.window.0 - r.started_unix,
            e.window.1 - r.started_unix
        );
    }
    s += "\nWindows: from the client's request timeout (3 s) before the event to \
          fail-over detection (Master_Down_Interval 3.65 s + 1 s) after a master stop, \
          the restarted master ready + 5 s for fail-back, health-check detection (5 s) \
          after a real server dies, 2-3 s after the others.\n\n";
    let unexplained: Vec<&Failure> = r
        .failures
        .iter()
        .filter(|f| f.explained_by.is_none())
        .collect();
    if unexplained.is_empty() {
        s += "Unexplained failures: none.\n\n";
    } else {
        s += "Unexplained failures:\n\n";
        for f in unexplained.iter().take(50) {
            s += &format!("- {:.2} s: {}\n", f.t - r.started_unix, f.error);
        }
        s += "\n";
    }
    let mut errs: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &r.failures {
        *errs.entry(f.error.as_str()).or_default() += 1;
    }
    if !errs.is_empty() {
        s += "Failure kinds: ";
        s += &errs
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        s += "\n\n";
    }
    s += "## Growth\n\nPer daemon instance (`d1#2` is d1's second start); \"grows\" when the \
          second half's mean is 10% above the first half's and it still climbs by more than \
          10% over the second half.\n\n\
          | series | samples | 1st half mean | 2nd half mean | 2nd half slope /min | max | grows |\n\
          |---|---|---|---|---|---|---|\n";
    for t in &r.trends {
        s += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {} |\n",
            t.series,
            t.samples,
            t.first_half_mean,
            t.second_half_mean,
            t.second_half_slope_per_min,
            t.max,
            if t.grows { "**yes**" } else { "no" }
        );
    }
    s += "\n## Counters printed at stop\n\n";
    for (who, c) in &r.stop_counters {
        s += &format!("- {who}: {c}\n");
    }
    s
}

fn plot(r: &Report, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    lvsfwd_perf::report::register_font()?;
    let e = |e: &dyn std::fmt::Display| anyhow::anyhow!("{e}");
    let t0 = r.started_unix;
    let xmax = r
        .buckets
        .last()
        .map(|b| b.t - t0)
        .unwrap_or(0.0)
        .max(r.minutes * 60.0)
        / 60.0
        + 0.1;
    let root = BitMapBackend::new(path, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let panels = root.split_evenly((3, 1));
    let ev_color = |k: &str| match k {
        "failover" => RGBColor(213, 0, 0),
        "failback" => RGBColor(0, 150, 0),
        "rs-down" | "rs-up" => RGBColor(230, 140, 0),
        "sighup" => RGBColor(120, 0, 200),
        _ => RGBColor(140, 140, 140),
    };
    let d_color = |d: &str| {
        if d == "d1" {
            RGBColor(0, 114, 178)
        } else {
            RGBColor(213, 94, 0)
        }
    };
    // Panel 1: requests per 5 s, failed marked.
    let mut ok5: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for b in &r.buckets {
        let k = ((b.t - t0) / 5.0).floor() as i64;
        let v = ok5.entry(k).or_default();
        v.0 += b.ok;
        v.1 += b.fail;
    }
    let ymax = ok5.values().map(|v| v.0 + v.1).max().unwrap_or(1) as f64 * 1.15;
    let title = format!(
        "lvsfwd soak{}: {} ok, {} failed ({} unexplained)",
        if r.minutes < 30.0 { " (SHORT RUN)" } else { "" },
        r.requests_ok,
        r.requests_failed,
        r.unexplained
    );
    let mut ch = ChartBuilder::on(&panels[0])
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(|x| e(&x))?;
    ch.configure_mesh()
        .y_desc("requests / 5 s")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|x| e(&x))?;
    let mut kinds_seen = Vec::new();
    for ev in &r.events {
        let x = (ev.t - t0) / 60.0;
        let c = ev_color(&ev.kind);
        let s = ch
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, ymax)],
                c.stroke_width(1),
            )))
            .map_err(|x| e(&x))?;
        if !kinds_seen.contains(&ev.kind) {
            kinds_seen.push(ev.kind.clone());
            s.label(ev.kind.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
            });
        }
    }
    ch.draw_series(LineSeries::new(
        ok5.iter()
            .map(|(k, v)| ((*k as f64 * 5.0 + 2.5) / 60.0, v.0 as f64)),
        BLUE.stroke_width(1),
    ))
    .map_err(|x| e(&x))?
    .label("ok")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    ch.draw_series(r.failures.iter().map(|f| {
        let c = if f.explained_by.is_some() { RED } else { BLACK };
        Cross::new(((f.t - t0) / 60.0, ymax * 0.05), 5, c.stroke_width(2))
    }))
    .map_err(|x| e(&x))?
    .label("failed request (black: unexplained)")
    .legend(|(x, y)| Cross::new((x + 10, y), 5, RED.stroke_width(2)));
    ch.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|x| e(&x))?;
    // Panels 2 and 3: RSS and connection table per director.
    type Pick = fn(&Sample) -> f64;
    let specs: [(&str, Pick); 2] = [
        ("RSS (MiB)", |s| s.rss_kib as f64 / 1024.0),
        ("connection entries", |s| s.conns as f64),
    ];
    for (pi, (ydesc, pick)) in specs.iter().enumerate() {
        let ym = r.samples.iter().map(pick).fold(0.0, f64::max) * 1.15 + 1.0;
        let mut ch = ChartBuilder::on(&panels[pi + 1])
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..ym)
            .map_err(|x| e(&x))?;
        ch.configure_mesh()
            .y_desc(*ydesc)
            .x_desc("minutes")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|x| e(&x))?;
        for ev in &r.events {
            let x = (ev.t - t0) / 60.0;
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, ym)],
                ev_color(&ev.kind).mix(0.5).stroke_width(1),
            )))
            .map_err(|x| e(&x))?;
        }
        let mut keys: Vec<(String, u32)> = r
            .samples
            .iter()
            .map(|s| (s.director.clone(), s.instance))
            .collect();
        keys.sort();
        keys.dedup();
        let mut labelled = Vec::new();
        for (d, i) in keys {
            let c = d_color(&d);
            let pts: Vec<(f64, f64)> = r
                .samples
                .iter()
                .filter(|s| s.director == d && s.instance == i)
                .map(|s| ((s.t - t0) / 60.0, pick(s)))
                .collect();
            let s = ch
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(|x| e(&x))?;
            if !labelled.contains(&d) {
                labelled.push(d.clone());
                s.label(d.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            }
        }
        ch.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_flags_a_climb_and_not_a_plateau() {
        let climb: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 100.0 + i as f64)).collect();
        assert!(trend("x", &climb).grows);
        let flat: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, 100.0 + (i % 7) as f64))
            .collect();
        assert!(!trend("x", &flat).grows);
        // Warm-up then plateau.
        let warm: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, if i < 10 { 10.0 * i as f64 } else { 100.0 }))
            .collect();
        assert!(!trend("x", &warm).grows);
    }

    #[test]
    fn failures_go_to_the_disruptive_window() {
        let ev = |t: f64, kind: &str, w: (f64, f64), disruptive| Event {
            t,
            t_end: t,
            kind: kind.into(),
            detail: String::new(),
            window: w,
            disruptive,
        };
        let evs = vec![
            ev(10.0, "sighup", (7.0, 12.0), false),
            ev(11.0, "failover", (8.0, 15.6), true),
        ];
        assert_eq!(
            attribute(&evs, 9.0).map(|e| e.kind.as_str()),
            Some("failover")
        );
        assert_eq!(
            attribute(&evs, 7.5).map(|e| e.kind.as_str()),
            Some("sighup")
        );
        assert!(attribute(&evs, 20.0).is_none());
    }

    #[test]
    fn conns_are_counted_from_the_listing() {
        let l = "IPVS connection entries\npro expire state       source             virtual            destination\n\
                 TCP 00:59  TIME_WAIT   198.18.0.100:4000  198.18.0.250:80    198.18.0.11:80\n\
                 TCP 01:59  FIN_WAIT    198.18.0.100:4001  198.18.0.250:80    198.18.0.12:80\n";
        assert_eq!(count_conns(l), 2);
    }
}
