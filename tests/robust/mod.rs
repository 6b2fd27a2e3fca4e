//! Helpers of the robustness tests (rig_flood, rig_faults, security): the
//! admin client, the daemon's memory and stop counters, request drivers
//! with their own timeouts, and the flood sender (tests/rig/flood.py).
//!
//! Everything here runs through the rig's bounded commands; nothing waits
//! without a deadline.
#![allow(dead_code)]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::rig::{CMD_TIMEOUT, Host, Out, Rig, python, run, script};

/// Makes the rig's switch a plain wire: with the host's `br_netfilter`
/// loaded, the bridge would validate IPv4 headers (and drop or trim the
/// malformed frames these tests send) before they reach the director. A
/// no-op where br_netfilter is absent.
pub fn plain_wire(rig: &Rig) {
    for k in ["iptables", "ip6tables", "arptables"] {
        let key = format!("net.bridge.bridge-nf-call-{k}=0");
        let _ = run(
            &[
                "ip",
                "netns",
                "exec",
                rig.switch_ns(),
                "sysctl",
                "-qw",
                &key,
            ],
            CMD_TIMEOUT,
        );
    }
}

/// `lvsadm ARGS --socket SOCK` (the rig's admin socket path).
pub fn lvsadm(socket: &str, args: &[&str]) -> Out {
    let mut argv = vec![env!("CARGO_BIN_EXE_lvsadm")];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--socket", socket]);
    run(&argv, CMD_TIMEOUT)
}

/// The admin socket path the rig's lb.toml sets.
pub fn admin_socket(rig: &Rig) -> String {
    rig.dir().join("admin.sock").to_string_lossy().into_owned()
}

/// ActiveConn + InActConn summed over the real servers of `lvsadm -L -n`.
pub fn listed_conns(listing: &str) -> u64 {
    listing
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("-> "))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // addr:port Forward Weight ActiveConn InActConn
            let a: u64 = w.get(3)?.parse().ok()?;
            let i: u64 = w.get(4)?.parse().ok()?;
            Some(a + i)
        })
        .sum()
}

/// A `/proc/PID/status` memory field (VmRSS, VmHWM...) in KiB.
pub fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The drop counters of the daemon's stop line
/// `lvsfwd: stopped (rx N tx N drop N kernel N to_kernel N
/// kernel_port_drop N: reason n, ...)`: totals and reasons (drops and
/// hand-overs to the kernel) alike.
pub fn stop_counters(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("lvsfwd: stopped"))
        .unwrap_or_else(|| panic!("no stop line in:\n{stderr}"));
    let inner = line
        .split_once('(')
        .and_then(|(_, r)| r.rsplit_once(')'))
        .map(|(i, _)| i)
        .unwrap_or("");
    let mut m = BTreeMap::new();
    let (totals, reasons) = inner.split_once(':').unwrap_or((inner, ""));
    let t: Vec<&str> = totals.split_whitespace().collect();
    for pair in t.chunks(2) {
        if let [k, v] = pair
            && let Ok(n) = v.parse()
        {
            m.insert(k.to_string(), n);
        }
    }
    for r in reasons.split(',') {
        let mut w = r.split_whitespace();
        if let (Some(k), Some(v)) = (w.next(), w.next())
            && let Ok(n) = v.parse()
        {
            m.insert(k.to_string(), n);
        }
    }
    m
}

/// Outcome of a batch of HTTP requests.
#[derive(Debug, Default)]
pub struct Requests {
    pub ok: usize,
    pub failed: Vec<String>,
    pub per_server: BTreeMap<String, usize>,
}

impl Requests {
    pub fn total(&self) -> usize {
        self.ok + self.failed.len()
    }
    pub fn ratio(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            self.ok as f64 / self.total() as f64
        }
    }
}

/// `count` sequential HTTP GETs from `from`, each a new connection with a
/// `timeout` of its own (SYN retransmissions included), all within
/// `deadline`.
pub fn http(
    from: &Host,
    target: SocketAddr,
    count: usize,
    timeout: Duration,
    deadline: Duration,
) -> Requests {
    let t = target.to_string();
    let c = count.to_string();
    let to = format!("{}", timeout.as_secs_f64());
    let dl = format!("{}", deadline.as_secs_f64());
    let s = script("client.py");
    let out = from.exec_timeout(
        &[
            python(),
            &s,
            "http",
            "--target",
            &t,
            "--count",
            &c,
            "--timeout",
            &to,
            "--deadline",
            &dl,
        ],
        deadline + Duration::from_secs(15),
    );
    let mut r = Requests::default();
    for line in out.stdout.lines() {
        if let Some(body) = line.strip_prefix("ok ") {
            r.ok += 1;
            let server = body.split_whitespace().next().unwrap_or("").to_string();
            *r.per_server.entry(server).or_default() += 1;
        } else if !line.trim().is_empty() {
            r.failed.push(line.to_string());
        }
    }
    while r.total() < count {
        r.failed.push(format!("no answer line: {out}"));
    }
    r
}

/// lb.toml with `key = value` added to its `[global]` table.
pub fn with_global(toml: &str, key: &str, value: &str) -> String {
    toml.replacen("[global]\n", &format!("[global]\n{key} = {value}\n"), 1)
}

/// Sends `sig` (e.g. "KILL", "HUP") to `pid`.
pub fn signal(pid: u32, sig: &str) {
    run(&["kill", &format!("-{sig}"), &pid.to_string()], CMD_TIMEOUT).expect_ok();
}

/// A counter of `/proc/net/snmp` in `host`'s namespace (e.g. "Tcp",
/// "InCsumErrors").
pub fn snmp(host: &Host, proto: &str, field: &str) -> u64 {
    let text = host.exec_ok(&["cat", "/proc/net/snmp"]);
    let prefix = format!("{proto}:");
    let mut rows = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (rows.next().unwrap_or(""), rows.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == field)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {proto} {field} in /proc/net/snmp"))
}

/// Starts tests/rig/flood.py `args` in `host`'s namespace in the
/// background; returns its pid (see [`flood_result`]).
pub fn flood(rig: &Rig, host: &Host, args: &[&str]) -> u32 {
    let s = script("flood.py");
    let mut argv = vec![python(), s.as_str()];
    argv.extend_from_slice(args);
    rig.spawn(host, "flood", &argv)
}

/// Waits (bounded) for a background flood to print `last_line_prefix` and
/// returns its stdout.
pub fn flood_result(rig: &Rig, pid: u32, done: &str, timeout: Duration) -> String {
    let mut text = String::new();
    let ok = crate::rig::wait_until(timeout, || {
        text = rig.proc_logs(pid).0;
        text.lines().any(|l| l.starts_with(done))
    });
    if !ok {
        let (o, e) = rig.proc_logs(pid);
        panic!("flood did not finish within {timeout:?}:\n{o}\n{e}");
    }
    text
}
