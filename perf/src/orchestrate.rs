//! `lvsperf run`: builds the rig, measures every point of the plan against
//! each DUT (raw AF_XDP forwarder, lvsfwd DR and NAT, nftables DNAT), and
//! writes results.json, the PNG plots and README.md.
//!
//! Per point: a fresh DUT (lvsfwd restarted, nftables' conntrack flushed),
//! fresh 5-tuples, then one tester run; the DUT's process CPU and the
//! machine's busy time are sampled when the tester announces the window's
//! start and end. The latency points run each DUT at half of the peak it
//! reached at the reference shape.
//!
//! Invariants: every wait is bounded; every process started here is killed
//! on the way out (Drop guards), and the rig's Drop deletes its namespaces,
//! also on error or SIGINT/SIGTERM (checked between and during points).
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lvsfwd_perf::packet::Mix;
use lvsfwd_perf::report::{self, Dut, Facts, Group, Point, Run};
use lvsfwd_perf::stats::TesterResult;

use crate::rig::{
    self, CMD_TIMEOUT, DUT_B_MAC, DUT_MAC, PORT, REAL_SERVERS, REAL_SERVERS_B, Rig, TESTER_B_MAC,
    TESTER_MAC, VIP, cmd,
};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// A short run (1-2 minutes): the reference shape, two NICs, latency.
    #[arg(long)]
    pub quick: bool,
    /// Where README.md, results.json and the plots go.
    #[arg(long, default_value = "perf")]
    pub out: PathBuf,
    /// The lvsfwd binary (default: next to lvsperf).
    #[arg(long)]
    pub lvsfwd: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub tester_core: usize,
    /// Core of the DUT's first worker (the second runs on the tester's).
    #[arg(long, default_value_t = 1)]
    pub dut_core: usize,
    /// Only these DUTs (comma-separated: raw, dr, nat, nft).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also sample the whole machine with `perf record` during the
    /// reference points of the raw forwarder and lvsfwd DR.
    #[arg(long)]
    pub profile: bool,
    /// How many times the full run measures the raw forwarder and lvsfwd
    /// DR at each flow count (1, 100, 10k, 1M), round after round; the
    /// ratio table gives the median of the rounds' ratios. Quick runs
    /// measure once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub rounds: u32,
    /// Length of each point's measured window (default 3000, --quick 1000).
    #[arg(long)]
    pub window_ms: Option<u64>,
    /// The command line to record in the README.
    #[arg(long, default_value = "perf/run.sh")]
    pub command: String,
}

const REF_FLOWS: u32 = 10_000;
const REF_SIZE: usize = 64;
const FULL_FLOWS: [u32; 4] = [1, 100, 10_000, 1_000_000];
const FULL_SIZES: [usize; 2] = [512, 1500];

#[derive(Copy, Clone, Debug, PartialEq)]
enum Rate {
    Max,
    /// Half of what this DUT forwarded at the reference shape.
    HalfPeak,
}

#[derive(Copy, Clone, Debug)]
struct Spec {
    dut: Dut,
    group: Group,
    flows: u32,
    size: usize,
    mix: Mix,
    queues: u32,
    /// 1: one-armed (the first veth pair); 2: in on the first pair, out of
    /// the second.
    nics: u32,
    rate: Rate,
    /// Repetition of the shape (0: the first).
    round: u32,
}

impl Spec {
    fn reference(dut: Dut, group: Group) -> Spec {
        Spec {
            dut,
            group,
            flows: REF_FLOWS,
            size: REF_SIZE,
            mix: Mix::Tcp { new_pct: 0 },
            queues: 1,
            nics: 1,
            rate: Rate::Max,
            round: 0,
        }
    }
    /// The real servers of the point's services (behind the NIC frames
    /// leave by).
    fn real_servers(&self) -> [&'static str; 3] {
        if self.nics > 1 {
            REAL_SERVERS_B
        } else {
            REAL_SERVERS
        }
    }
    fn is_reference(&self) -> bool {
        self.flows == REF_FLOWS
            && self.size == REF_SIZE
            && self.mix == (Mix::Tcp { new_pct: 0 })
            && self.queues == 1
            && self.nics == 1
            && self.rate == Rate::Max
    }
}

fn dut_key(d: Dut) -> &'static str {
    match d {
        Dut::Raw => "raw",
        Dut::LvsfwdDr => "dr",
        Dut::LvsfwdNat => "nat",
        Dut::NftDnat => "nft",
    }
}

fn plan(quick: bool, rounds: u32, only: &[String]) -> Vec<Spec> {
    let mut v = Vec::new();
    let main = [Dut::Raw, Dut::LvsfwdDr, Dut::NftDnat];
    if quick {
        for d in main {
            v.push(Spec::reference(d, Group::Flows));
        }
    } else {
        // Shape by shape, the DUTs one after the other: the ratios compare
        // points measured a few seconds apart. (DUT by DUT, a machine whose
        // speed drifts over the run, as a VM under sustained load does,
        // shows up as a difference between DUTs.)
        // The budget's shapes, in rounds: every round measures every flow
        // count (raw, lvsfwd DR, and nftables in the first only), so the
        // rounds of one shape are spread over the group's minutes and a
        // passing disturbance of the machine hits one round, not all.
        for round in 0..rounds.max(1) {
            for flows in FULL_FLOWS {
                for d in main {
                    if round > 0 && d == Dut::NftDnat {
                        continue;
                    }
                    v.push(Spec {
                        flows,
                        round,
                        ..Spec::reference(d, Group::Flows)
                    });
                }
            }
        }
        for size in FULL_SIZES {
            for d in main {
                v.push(Spec {
                    size,
                    ..Spec::reference(d, Group::Size)
                });
            }
        }
        for mix in [Mix::Tcp { new_pct: 10 }, Mix::Syn, Mix::Udp] {
            for d in [Dut::LvsfwdDr, Dut::NftDnat] {
                v.push(Spec {
                    mix,
                    ..Spec::reference(d, Group::Mix)
                });
            }
        }
        v.push(Spec::reference(Dut::LvsfwdNat, Group::Mix));
        for d in [Dut::Raw, Dut::LvsfwdDr] {
            v.push(Spec {
                queues: 2,
                ..Spec::reference(d, Group::Queues)
            });
        }
    }
    // Two NICs, in quick runs too (a few seconds each): the ceiling and
    // lvsfwd's two kinds of rewrite.
    for d in [Dut::Raw, Dut::LvsfwdDr, Dut::LvsfwdNat] {
        v.push(Spec {
            nics: 2,
            ..Spec::reference(d, Group::Nics)
        });
    }
    for d in main {
        v.push(Spec {
            rate: Rate::HalfPeak,
            ..Spec::reference(d, Group::Latency)
        });
    }
    v.retain(|s| only.is_empty() || only.iter().any(|o| o == dut_key(s.dut)));
    v
}

/// A child process whose output lines arrive on a channel and are kept.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    done: bool,
}

impl Proc {
    fn spawn(name: &str, argv: &[String], env: &[(&str, &str)]) -> Result<Proc> {
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}: {argv:?}"))?;
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let (tx, log) = (tx.clone(), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line.clone());
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            lines,
            log,
            done: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Waits for a line starting with `prefix`; fails if the process exits
    /// or `timeout` passes first.
    fn wait_line(&mut self, prefix: &str, timeout: Duration, stop: &AtomicBool) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted");
            }
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "{} ended before printing {prefix:?}:\n{}",
                    self.name,
                    self.log_text()
                ),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} printed no {prefix:?} within {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
        }
    }

    /// SIGTERM, then waits up to 10 s (SIGKILL after that).
    fn terminate(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        let _ = cmd(&["kill", "-TERM", &self.pid().to_string()], CMD_TIMEOUT);
        self.wait(Duration::from_secs(10))
    }

    fn wait(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait()? {
                self.done = true;
                // Let the reader threads catch the last lines.
                std::thread::sleep(Duration::from_millis(20));
                if !st.success() {
                    bail!("{} exited with {st}:\n{}", self.name, self.log_text());
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.done = true;
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Busy ticks of the whole machine and, if given, of one process.
#[derive(Copy, Clone, Debug, Default)]
struct CpuSample {
    machine: u64,
    process: Option<u64>,
}

fn sample_cpu(pid: Option<u32>) -> CpuSample {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let l = s.lines().next()?.to_string();
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some(v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4)?)
        })
        .unwrap_or(0);
    let process = pid.and_then(|p| {
        let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // Fields after the parenthesised name; utime and stime are the
        // 14th and 15th fields overall.
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    });
    CpuSample { machine, process }
}

fn clk_tck() -> f64 {
    cmd(&["getconf", "CLK_TCK"], CMD_TIMEOUT)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The DUT of one point, running.
enum Running {
    Proc(Proc),
    Nft,
}

struct Orchestrator {
    args: RunArgs,
    rig: Rig,
    me: PathBuf,
    lvsfwd: PathBuf,
    dir: tempdir::Dir,
    stop: Arc<AtomicBool>,
    point_no: u32,
    window_ms: u64,
    warmup_ms: u64,
    ticks_ns: f64,
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A private directory removed on Drop.
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            let p = std::env::temp_dir().join(format!("lfperf-{}", std::process::id()));
            std::fs::create_dir_all(&p)?;
            Ok(Dir(p))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Orchestrator {
    fn dut_cores(&self, queues: u32) -> Vec<usize> {
        let mut c = vec![self.args.dut_core];
        if queues > 1 {
            c.push(self.args.tester_core);
        }
        c
    }

    fn lb_toml(&self, spec: &Spec) -> String {
        let mut ifnames = vec![self.rig.dut_if.as_str()];
        if spec.nics > 1 {
            ifnames.push(&self.rig.dut_b_if);
        }
        lb_toml(
            spec,
            &ifnames,
            &self.dut_cores(spec.queues),
            &self.dir.path().join("admin.sock"),
        )
    }

    fn nft_ruleset() -> String {
        let map: Vec<String> = REAL_SERVERS
            .iter()
            .enumerate()
            .map(|(i, rs)| format!("{i} : {rs}"))
            .collect();
        let map = map.join(", ");
        format!(
            "table ip lfperf {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    ip daddr {VIP} tcp dport {PORT} dnat to numgen inc mod {n} map {{ {map} }}\n    ip daddr {VIP} udp dport {PORT} dnat to numgen inc mod {n} map {{ {map} }}\n  }}\n}}\n",
            n = REAL_SERVERS.len()
        )
    }

    fn start_dut(&self, spec: &Spec) -> Result<Running> {
        let dns = self.rig.dut_ns.clone();
        match spec.dut {
            Dut::Raw => {
                let cores: Vec<String> = self
                    .dut_cores(spec.queues)
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                let queues: Vec<String> = (0..spec.queues).map(|q| q.to_string()).collect();
                let mut argv: Vec<String> = [
                    "ip",
                    "netns",
                    "exec",
                    &dns,
                    &self.me.to_string_lossy(),
                    "rawfwd",
                    "--iface",
                    &self.rig.dut_if,
                    "--queues",
                    &queues.join(","),
                    "--cores",
                    &cores.join(","),
                    "--vip",
                    VIP,
                    "--port",
                    &PORT.to_string(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                if spec.nics > 1 {
                    for a in [
                        "--out-iface",
                        &self.rig.dut_b_if,
                        "--out-src-mac",
                        DUT_B_MAC,
                        "--out-dst-mac",
                        TESTER_B_MAC,
                    ] {
                        argv.push(a.to_string());
                    }
                }
                let mut p = Proc::spawn("rawfwd", &argv, &[("RUST_LOG", "warn")])?;
                p.wait_line("ready", Duration::from_secs(20), &self.stop)?;
                Ok(Running::Proc(p))
            }
            Dut::LvsfwdDr | Dut::LvsfwdNat => {
                let path = self.dir.path().join("lb.toml");
                std::fs::write(&path, self.lb_toml(spec))?;
                let argv: Vec<String> = [
                    "ip",
                    "netns",
                    "exec",
                    &dns,
                    &self.lvsfwd.to_string_lossy(),
                    "--config",
                    &path.to_string_lossy(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let mut p = Proc::spawn("lvsfwd", &argv, &[("RUST_LOG", "warn")])?;
                p.wait_line("lvsfwd: ready", Duration::from_secs(30), &self.stop)?;
                Ok(Running::Proc(p))
            }
            Dut::NftDnat => {
                let path = self.dir.path().join("dnat.nft");
                std::fs::write(&path, Self::nft_ruleset())?;
                self.rig
                    .exec(&dns, &["nft", "-f", &path.to_string_lossy()])?;
                self.rig.exec(&dns, &["conntrack", "-F"])?;
                self.rig.set_forwarding(true)?;
                Ok(Running::Nft)
            }
        }
    }

    /// Stops the DUT; returns what it reported.
    fn stop_dut(&self, dut: Running) -> Result<String> {
        match dut {
            Running::Proc(mut p) => {
                p.terminate()?;
                let log = p.log_text();
                if std::env::var_os("LVSFWD_ROUND_STATS").is_some() {
                    // The DUT's round statistics (lvsfwd's workers, the raw
                    // forwarder's context switches): a debugging aid.
                    for l in log.lines().filter(|l| l.contains("worker ")) {
                        eprintln!("lvsperf:   {l}");
                    }
                }
                let note = log
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("lvsfwd: stopped") || l.starts_with("counters "))
                    .unwrap_or("")
                    .to_string();
                Ok(note)
            }
            Running::Nft => {
                let dns = &self.rig.dut_ns;
                self.rig.set_forwarding(false)?;
                let n = self.rig.exec(dns, &["conntrack", "-C"]).unwrap_or_default();
                self.rig
                    .exec(dns, &["nft", "delete", "table", "ip", "lfperf"])?;
                Ok(format!("conntrack entries at the end: {}", n.trim()))
            }
        }
    }

    fn tester_argv(&self, spec: &Spec, rate: u64) -> Vec<String> {
        let sport_base = 1024 + 32 * self.point_no;
        let new_base = u64::from(self.point_no % 20) * 100_000_000;
        let warmup = self.warmup_ms + u64::from(spec.flows / 1000);
        let mut v: Vec<String> = [
            "ip",
            "netns",
            "exec",
            &self.rig.tester_ns,
            &self.me.to_string_lossy(),
            "tester",
            "--iface",
            &self.rig.tester_if,
            "--rx-queues",
            &self.rig.queues.to_string(),
            "--tx-queues",
            &spec.queues.to_string(),
            "--core",
            &self.args.tester_core.to_string(),
            "--src-mac",
            TESTER_MAC,
            "--dst-mac",
            DUT_MAC,
            "--dst",
            &format!("{VIP}:{PORT}"),
            "--size",
            &spec.size.to_string(),
            "--mix",
            &spec.mix.label(),
            "--flows",
            &spec.flows.to_string(),
            "--sport-base",
            &sport_base.to_string(),
            "--new-base",
            &new_base.to_string(),
            "--rate",
            &rate.to_string(),
            "--warmup-ms",
            &warmup.to_string(),
            "--duration-ms",
            &self.window_ms.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if spec.dut == Dut::NftDnat {
            // conntrack would see SYN-then-ACK without the server's answer
            // as invalid; it picks a mid-stream ACK up as established.
            v.extend(["--open-with".into(), "ack".into()]);
        }
        if spec.nics > 1 {
            v.extend(["--sink-iface".into(), self.rig.tester_b_if.clone()]);
        }
        let mut sinks = vec![format!("tcp:{VIP}:{PORT}"), format!("udp:{VIP}:{PORT}")];
        for rs in spec.real_servers() {
            sinks.push(format!("tcp:{rs}:{PORT}"));
            sinks.push(format!("udp:{rs}:{PORT}"));
        }
        for s in sinks {
            v.extend(["--sink".into(), s]);
        }
        v
    }

    fn measure(&mut self, spec: &Spec, rate: u64) -> Result<Point> {
        self.point_no += 1;
        eprintln!(
            "lvsperf: point {}: {} {:?} flows {} size {} {} queues {} nics {} rate {}",
            self.point_no,
            spec.dut.label(),
            spec.group,
            spec.flows,
            spec.size,
            spec.mix.label(),
            spec.queues,
            spec.nics,
            if rate == 0 {
                "max".into()
            } else {
                rate.to_string()
            }
        );
        let dut = self.start_dut(spec)?;
        let dut_pid = match &dut {
            Running::Proc(p) => Some(p.pid()),
            Running::Nft => None,
        };
        let res = self.run_tester(spec, rate, dut_pid);
        let note = self.stop_dut(dut);
        let (result, cpu) = res?;
        let note = note?;
        let rx = result.rx.max(1) as f64;
        let ns = |ticks: u64| ticks as f64 * self.ticks_ns / rx;
        let point = Point {
            dut: spec.dut,
            group: spec.group,
            flows: spec.flows,
            size: spec.size,
            mix: spec.mix.label(),
            queues: spec.queues,
            nics: spec.nics,
            rate_pps: rate,
            dut_cpu_ns: match (cpu.0.process, cpu.1.process) {
                (Some(a), Some(b)) => Some(ns(b.saturating_sub(a))),
                _ => None,
            },
            machine_cpu_ns: ns(cpu.1.machine.saturating_sub(cpu.0.machine)),
            note,
            result,
            round: spec.round,
        };
        eprintln!(
            "lvsperf:   offered {:.3} Mpps, forwarded {:.3} Mpps, loss {:.2}%, p50 {:.1} us, p99 {:.1} us",
            point.result.offered_pps() / 1e6,
            point.result.forwarded_pps() / 1e6,
            point.result.loss() * 100.0,
            point.result.latency.p50_ns as f64 / 1e3,
            point.result.latency.p99_ns as f64 / 1e3
        );
        Ok(point)
    }

    fn run_tester(
        &self,
        spec: &Spec,
        rate: u64,
        dut_pid: Option<u32>,
    ) -> Result<(TesterResult, (CpuSample, CpuSample))> {
        let argv = self.tester_argv(spec, rate);
        let mut t = Proc::spawn("tester", &argv, &[("RUST_LOG", "warn")])?;
        // Open phase (up to 30 s) + warm-up + window + drain + slack.
        let bound = Duration::from_millis(30_000 + self.warmup_ms + 2 * self.window_ms + 5_000)
            + Duration::from_millis(u64::from(spec.flows / 1000));
        let profile = self.args.profile
            && spec.is_reference()
            && matches!(spec.dut, Dut::Raw | Dut::LvsfwdDr);
        t.wait_line("mark start", bound, &self.stop)?;
        let before = sample_cpu(dut_pid);
        let perf = if profile {
            Some(self.start_profile(spec.dut)?)
        } else {
            None
        };
        t.wait_line("mark end", bound, &self.stop)?;
        let after = sample_cpu(dut_pid);
        let line = t.wait_line("result ", bound, &self.stop)?;
        t.wait(Duration::from_secs(10))?;
        if let Some(p) = perf {
            self.finish_profile(spec.dut, p)?;
        }
        let r: TesterResult = serde_json::from_str(&line["result ".len()..])
            .with_context(|| format!("tester result {line:?}"))?;
        Ok((r, (before, after)))
    }

    fn perf_data(&self, dut: Dut) -> PathBuf {
        self.dir.path().join(format!("perf-{}.data", dut_key(dut)))
    }

    fn start_profile(&self, dut: Dut) -> Result<Proc> {
        let secs = format!("{}", self.window_ms as f64 / 1e3);
        let argv: Vec<String> = [
            "perf",
            "record",
            "-a",
            "-g",
            "-e",
            "cpu-clock",
            "-F",
            "999",
            "-o",
            &self.perf_data(dut).to_string_lossy(),
            "--",
            "sleep",
            &secs,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn("perf record", &argv, &[])
    }

    fn finish_profile(&self, dut: Dut, mut p: Proc) -> Result<()> {
        p.wait(Duration::from_secs(60))?;
        let data = self.perf_data(dut);
        let data = data.to_string_lossy();
        // The DUT's worker thread (queue 0) and the tester: the two threads
        // that spin; the kernel's receive work runs inside them (softirq
        // after their sendto calls) or in ksoftirqd.
        let worker = match dut {
            Dut::Raw => "rawfwd-q0",
            _ => "lvsfwd-q0",
        };
        let report = |extra: &[&str]| -> Result<String> {
            let mut argv = vec![
                "perf",
                "report",
                "-i",
                &data,
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "-n",
            ];
            argv.extend_from_slice(extra);
            let out = cmd(&argv, Duration::from_secs(180))?;
            Ok(out
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .take(60)
                .collect::<Vec<_>>()
                .join("\n"))
        };
        let mut text = format!(
            "# perf record -a -g -e cpu-clock -F 999 during the measured window of {} (reference point)\n\n",
            dut.label()
        );
        text += "## Whole machine, by CPU and command\n\n";
        text += &report(&["--percent-limit", "0.5", "--sort", "cpu,comm"])?;
        text += "\n\n## Whole machine, by command and DSO\n\n";
        text += &report(&["--percent-limit", "0.5", "--sort", "comm,dso"])?;
        text += &format!("\n\n## The DUT worker ({worker}), by symbol, share of its samples\n\n");
        text += &report(&[
            "--comms",
            worker,
            "--percentage",
            "relative",
            "--percent-limit",
            "0.5",
            "--sort",
            "sym",
        ])?;
        text += "\n\n## The tester (lvsperf), by symbol, share of its samples\n\n";
        text += &report(&[
            "--comms",
            "lvsperf",
            "--percentage",
            "relative",
            "--percent-limit",
            "1",
            "--sort",
            "sym",
        ])?;
        text += "\n";
        let name = format!("profile-{}.txt", dut_key(dut));
        std::fs::write(self.args.out.join(&name), text)?;
        let script = cmd(&["perf", "script", "-i", &data], Duration::from_secs(180))?;
        let title = format!(
            "{} at its peak: DUT worker and tester, cpu-clock",
            dut.label()
        );
        let folded = lvsfwd_perf::flame::fold_comms(&script, |c| c == worker || c == "lvsperf");
        std::fs::write(
            self.args.out.join(format!("profile-{}.svg", dut_key(dut))),
            lvsfwd_perf::flame::svg(&folded, &title),
        )?;
        eprintln!(
            "lvsperf:   profile written to {}",
            self.args.out.join(name).display()
        );
        Ok(())
    }
}

/// lvsfwd's lb.toml for a point: one TCP and one UDP service on the VIP,
/// rr over the three real servers (behind the last of `ifnames`), DR or
/// NAT per the DUT, one queue and core per worker.
fn lb_toml(spec: &Spec, ifnames: &[&str], cores: &[usize], admin: &Path) -> String {
    let kind = if spec.dut == Dut::LvsfwdNat {
        "NAT"
    } else {
        "DR"
    };
    let q: Vec<String> = (0..spec.queues).map(|i| i.to_string()).collect();
    let c: Vec<String> = cores.iter().map(|i| i.to_string()).collect();
    // Brand-new connections pile up (SYN_RECV lasts a minute): room for a
    // few seconds of them at a couple of Mpps. Otherwise the default (2^20,
    // enough for the 1M-flow points).
    let conn_max = match spec.mix {
        Mix::Syn | Mix::Tcp { new_pct: 1.. } => format!("conn_max = {}\n", 1 << 23),
        _ => String::new(),
    };
    let ifs: Vec<String> = ifnames.iter().map(|i| format!("\"{i}\"")).collect();
    let mut s = format!(
        "# lvsperf: {kind} to three real servers on the tester\n[global]\ninterface = [{}]\nqueues = [{}]\ncores = [{}]\nadmin_socket = \"{}\"\n{conn_max}",
        ifs.join(", "),
        q.join(", "),
        c.join(", "),
        admin.display()
    );
    for proto in ["TCP", "UDP"] {
        s += &format!(
            "\n[[virtual_server]]\naddress = \"{VIP}:{PORT}\"\nprotocol = \"{proto}\"\nlb_algo = \"rr\"\nlb_kind = \"{kind}\"\n"
        );
        for rs in spec.real_servers() {
            s += &format!(
                "  [[virtual_server.real_server]]\n  address = \"{rs}:{PORT}\"\n  weight = 1\n"
            );
        }
    }
    s
}

fn facts(args: &RunArgs, window_s: f64, rig: &Rig) -> Facts {
    let first_line = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let conntrack_max = rig
        .exec(
            &rig.dut_ns,
            &["sysctl", "-n", "net.netfilter.nf_conntrack_max"],
        )
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    Facts {
        command: args.command.clone(),
        date: cmd(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"], CMD_TIMEOUT)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        kernel: cmd(&["uname", "-r"], CMD_TIMEOUT)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        cpu,
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_before: first_line("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        tester_core: args.tester_core,
        dut_cores: vec![args.dut_core],
        window_s,
        conntrack_max,
    }
}

pub fn run(args: RunArgs) -> Result<()> {
    let uid = cmd(&["id", "-u"], CMD_TIMEOUT)?;
    anyhow::ensure!(
        uid.trim() == "0",
        "lvsperf run needs root (namespaces, XDP)"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let me = std::env::current_exe()?;
    let lvsfwd = args
        .lvsfwd
        .clone()
        .unwrap_or_else(|| me.with_file_name("lvsfwd"));
    anyhow::ensure!(lvsfwd.exists(), "no lvsfwd binary at {}", lvsfwd.display());
    std::fs::create_dir_all(&args.out)?;
    let template_path = args.out.join("README.in.md");
    let template = std::fs::read_to_string(&template_path)
        .with_context(|| format!("reading {}", template_path.display()))?;
    let specs = plan(args.quick, args.rounds, &args.only);
    anyhow::ensure!(
        !specs.is_empty(),
        "nothing to measure (--only {:?})",
        args.only
    );

    rig::sweep_stale();
    let (window_ms, warmup_ms) = if args.quick {
        (1000, 300)
    } else {
        (3000, 1000)
    };
    let window_ms = args.window_ms.unwrap_or(window_ms).max(100);
    let rig = Rig::build(2, &[args.dut_core])?;
    let facts = facts(&args, window_ms as f64 / 1e3, &rig);
    let mut o = Orchestrator {
        rig,
        me,
        lvsfwd,
        dir: tempdir::Dir::new()?,
        stop: Arc::clone(&stop),
        point_no: 0,
        window_ms,
        warmup_ms,
        ticks_ns: 1e9 / clk_tck(),
        args: args.clone(),
    };
    let started = Instant::now();
    let mut points: Vec<Point> = Vec::new();
    for spec in &specs {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let rate = match spec.rate {
            Rate::Max => 0,
            Rate::HalfPeak => {
                // The median of the reference shape's rounds.
                let peak = report::median(
                    points
                        .iter()
                        .filter(|p| {
                            p.dut == spec.dut
                                && p.rate_pps == 0
                                && p.flows == spec.flows
                                && p.size == spec.size
                                && p.mix == spec.mix.label()
                                && p.queues == spec.queues
                                && p.nics == spec.nics
                        })
                        .map(|p| p.result.forwarded_pps())
                        .collect(),
                );
                match peak {
                    Some(p) if p > 0.0 => (p / 2.0) as u64,
                    _ => {
                        eprintln!("lvsperf: no peak for {:?}: latency point skipped", spec.dut);
                        continue;
                    }
                }
            }
        };
        points.push(o.measure(spec, rate)?);
    }
    let run = Run { facts, points };
    write_outputs(&args.out, &template, &run)?;
    eprintln!(
        "lvsperf: {} points in {:.0} s; results in {}",
        run.points.len(),
        started.elapsed().as_secs_f64(),
        args.out.join("README.md").display()
    );
    Ok(())
}

/// results.json, the plots and README.md in `out`.
pub fn write_outputs(out: &Path, template: &str, run: &Run) -> Result<()> {
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(run)?)?;
    let plots = report::plots(run, out)?;
    std::fs::write(
        out.join("README.md"),
        report::readme(template, run, &plots)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main_duts() -> [Dut; 3] {
        [Dut::Raw, Dut::LvsfwdDr, Dut::NftDnat]
    }

    #[test]
    fn the_full_plan_covers_every_question_and_quick_is_small() {
        let full = plan(false, 1, &[]);
        let count = |g: Group| full.iter().filter(|s| s.group == g).count();
        assert_eq!(count(Group::Flows), 12);
        assert_eq!(count(Group::Size), 6);
        assert_eq!(count(Group::Mix), 7);
        assert_eq!(count(Group::Queues), 2);
        assert_eq!(count(Group::Latency), 3);
        assert_eq!(count(Group::Nics), 3);
        assert!(
            full.iter()
                .all(|s| (s.group == Group::Nics) == (s.nics == 2))
        );
        // Each latency point follows the reference point it halves.
        for (i, s) in full.iter().enumerate() {
            if s.rate == Rate::HalfPeak {
                assert!(full[..i].iter().any(|r| r.dut == s.dut && r.is_reference()));
            }
        }
        // Neighbouring points compare DUTs on one shape.
        assert_eq!(
            full[..3]
                .iter()
                .map(|s| (s.dut, s.flows))
                .collect::<Vec<_>>(),
            main_duts().map(|d| (d, FULL_FLOWS[0])).to_vec()
        );
        let quick = plan(true, 3, &[]);
        assert_eq!(quick.len(), 9);
        // Rounds repeat raw and lvsfwd DR at each flow count, round after
        // round; nftables once.
        let three = plan(false, 3, &[]);
        let flows: Vec<(Dut, u32, u32)> = three
            .iter()
            .filter(|s| s.group == Group::Flows)
            .map(|s| (s.dut, s.flows, s.round))
            .collect();
        assert_eq!(flows.len(), 12 + 2 * 8);
        assert_eq!(flows[12], (Dut::Raw, FULL_FLOWS[0], 1));
        assert_eq!(flows[13], (Dut::LvsfwdDr, FULL_FLOWS[0], 1));
        assert_eq!(flows[27], (Dut::LvsfwdDr, FULL_FLOWS[3], 2));
        assert!(
            three
                .iter()
                .filter(|s| s.dut == Dut::NftDnat)
                .all(|s| s.round == 0)
        );
        assert_eq!(three.len(), full.len() + 16);
        let only = plan(false, 1, &["dr".into()]);
        assert!(only.iter().all(|s| s.dut == Dut::LvsfwdDr));
        assert_eq!(only.len(), 4 + 2 + 3 + 1 + 1 + 1);
    }

    #[test]
    fn lvsfwd_configs_are_valid_and_match_the_point() {
        let spec = Spec {
            queues: 2,
            ..Spec::reference(Dut::LvsfwdNat, Group::Queues)
        };
        let text = lb_toml(&spec, &["lfpd1"], &[1, 0], Path::new("/tmp/a.sock"));
        let cfg = lvsfwd::config::parse_str(&text, "lb.toml").expect("valid lb.toml");
        assert_eq!(cfg.global.interfaces, ["lfpd1"]);
        assert_eq!(cfg.global.queues, Some(vec![0, 1]));
        assert_eq!(cfg.global.cores, Some(vec![1, 0]));
        let specs = cfg.service_specs();
        assert_eq!(specs.len(), 2);
        for s in &specs {
            assert_eq!(s.dests.len(), 3);
            assert!(
                s.dests
                    .iter()
                    .all(|d| d.fwd == lvsfwd::service::FwdMethod::Masq)
            );
        }
        let dr = lb_toml(
            &Spec {
                mix: Mix::Syn,
                ..Spec::reference(Dut::LvsfwdDr, Group::Mix)
            },
            &["lfpd1"],
            &[1],
            Path::new("/tmp/a.sock"),
        );
        let cfg = lvsfwd::config::parse_str(&dr, "lb.toml").expect("valid lb.toml");
        assert_eq!(cfg.global.conn_max, 1 << 23, "room for new connections");
        let two = lb_toml(
            &Spec {
                nics: 2,
                ..Spec::reference(Dut::LvsfwdNat, Group::Nics)
            },
            &["lfpd1", "lfpe1"],
            &[1],
            Path::new("/tmp/a.sock"),
        );
        let cfg2 = lvsfwd::config::parse_str(&two, "lb.toml").expect("valid lb.toml");
        assert_eq!(cfg2.global.interfaces, ["lfpd1", "lfpe1"]);
        let rs: Vec<String> = cfg2.service_specs()[0]
            .dests
            .iter()
            .map(|d| d.addr.to_string())
            .collect();
        assert_eq!(rs, REAL_SERVERS_B, "real servers behind the second NIC");
        assert!(
            cfg.service_specs()[0]
                .dests
                .iter()
                .all(|d| d.fwd == lvsfwd::service::FwdMethod::Route)
        );
    }

    #[test]
    fn the_nft_ruleset_balances_over_every_real_server() {
        let r = Orchestrator::nft_ruleset();
        assert!(r.contains(
            "ip daddr 198.18.0.250 tcp dport 80 dnat to numgen inc mod 3 map { 0 : 198.18.0.11, 1 : 198.18.0.12, 2 : 198.18.0.13 }"
        ));
        assert!(r.contains("ip daddr 198.18.0.250 udp dport 80"));
        assert!(r.contains("type nat hook prerouting priority dstnat"));
    }
}
