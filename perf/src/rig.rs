//! The perf rig (interface.md §5): two network namespaces joined by two
//! multi-queue veth pairs, tester and DUT, like a tester cabled to a load
//! balancer's two ports. The one-NIC points use the first pair only (a
//! one-armed director); the two-NIC points send on the first and sink what
//! leaves by the second, where their real servers live.
//!
//! ```text
//!  lfperf-<pid>-t (tester)                    lfperf-<pid>-d (DUT)
//!  lfpt<pid>  02:1f:70:00:00:01  <==veth==>  lfpd<pid>  02:1f:70:00:00:02
//!  real servers 198.18.0.11-13/24              DIP 198.18.0.2/24
//!  (answer ARP; the sink takes their            VIP 198.18.0.250/32
//!   service traffic through XDP)                clients 198.19.0.0/16 and
//!  clients 198.19.0.0/16, 198.18.128.0/17       198.18.128.0/17 on-link
//!  (generated, never configured)
//!  lfpu<pid>  02:1f:70:00:00:03  <==veth==>  lfpe<pid>  02:1f:70:00:00:04
//!  real servers 198.18.1.11-13/24              DIP 198.18.1.2/24
//!   (the two-NIC points')
//! ```
//!
//! Every name starts with `lf` and carries the process id; [`Rig`]'s Drop
//! kills what runs in the namespaces and deletes them (also on failure), and
//! [`sweep_stale`] removes those of an earlier run whose process is gone.
//! Every command is bounded by [`CMD_TIMEOUT`]. Nothing is done in the root
//! namespace.
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);
pub const TESTER_MAC: &str = "02:1f:70:00:00:01";
pub const DUT_MAC: &str = "02:1f:70:00:00:02";
pub const DIP: &str = "198.18.0.2";
pub const VIP: &str = "198.18.0.250";
pub const PORT: u16 = 80;
pub const REAL_SERVERS: [&str; 3] = ["198.18.0.11", "198.18.0.12", "198.18.0.13"];
/// The second pair: the tester's and the DUT's ends, the DUT's address on
/// it, and the real servers of the two-NIC points (on the tester's end).
pub const TESTER_B_MAC: &str = "02:1f:70:00:00:03";
pub const DUT_B_MAC: &str = "02:1f:70:00:00:04";
pub const DIP_B: &str = "198.18.1.2";
pub const REAL_SERVERS_B: [&str; 3] = ["198.18.1.11", "198.18.1.12", "198.18.1.13"];
const NS_PREFIX: &str = "lfperf-";

/// Runs `argv` to completion within `timeout`; its stdout on success.
pub fn cmd(argv: &[&str], timeout: Duration) -> Result<String> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run `{}`: {e}", argv.join(" ")))?;
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        Some(st) if st.success() => Ok(out),
        Some(st) => bail!("`{}` failed ({st}): {}{}", argv.join(" "), out, err),
        None => bail!("`{}` killed after {timeout:?}", argv.join(" ")),
    }
}

/// A built rig.
#[derive(Debug)]
pub struct Rig {
    pub tester_ns: String,
    pub dut_ns: String,
    pub tester_if: String,
    pub dut_if: String,
    /// The second pair's ends.
    pub tester_b_if: String,
    pub dut_b_if: String,
    pub queues: u32,
    namespaces: Vec<String>,
}

impl Rig {
    /// Builds the rig with `queues` RX and TX queues on each veth end, and
    /// steers the DUT side's kernel receive work (RPS) to `dut_cpus`.
    pub fn build(queues: u32, dut_cpus: &[usize]) -> Result<Rig> {
        let pid = std::process::id();
        let mut rig = Rig {
            tester_ns: format!("{NS_PREFIX}{pid}-t"),
            dut_ns: format!("{NS_PREFIX}{pid}-d"),
            tester_if: format!("lfpt{pid:x}"),
            dut_if: format!("lfpd{pid:x}"),
            tester_b_if: format!("lfpu{pid:x}"),
            dut_b_if: format!("lfpe{pid:x}"),
            queues,
            namespaces: Vec::new(),
        };
        // From here on Drop removes whatever exists.
        rig.setup(dut_cpus)?;
        Ok(rig)
    }

    fn setup(&mut self, dut_cpus: &[usize]) -> Result<()> {
        for ns in [self.tester_ns.clone(), self.dut_ns.clone()] {
            cmd(&["ip", "netns", "add", &ns], CMD_TIMEOUT)?;
            self.namespaces.push(ns.clone());
            for k in ["all", "default"] {
                self.exec(
                    &ns,
                    &[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                    ],
                )?;
            }
            self.exec(&ns, &["ip", "link", "set", "lo", "up"])?;
        }
        let q = self.queues.to_string();
        let pairs = [
            (
                self.tester_if.clone(),
                TESTER_MAC,
                self.dut_if.clone(),
                DUT_MAC,
            ),
            (
                self.tester_b_if.clone(),
                TESTER_B_MAC,
                self.dut_b_if.clone(),
                DUT_B_MAC,
            ),
        ];
        for (tif, tmac, dif, dmac) in &pairs {
            cmd(
                &[
                    "ip",
                    "-n",
                    &self.tester_ns,
                    "link",
                    "add",
                    tif,
                    "numtxqueues",
                    &q,
                    "numrxqueues",
                    &q,
                    "address",
                    tmac,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    dif,
                    "numtxqueues",
                    &q,
                    "numrxqueues",
                    &q,
                    "address",
                    dmac,
                    "netns",
                    &self.dut_ns,
                ],
                CMD_TIMEOUT,
            )?;
        }
        let (t, d) = (self.tester_ns.clone(), self.dut_ns.clone());
        for (servers, dev) in [
            (REAL_SERVERS, &self.tester_if),
            (REAL_SERVERS_B, &self.tester_b_if),
        ] {
            for rs in servers {
                self.exec(&t, &["ip", "addr", "add", &format!("{rs}/24"), "dev", dev])?;
            }
        }
        for (dip, dev) in [(DIP, &self.dut_if), (DIP_B, &self.dut_b_if)] {
            self.exec(&d, &["ip", "addr", "add", &format!("{dip}/24"), "dev", dev])?;
        }
        self.exec(
            &d,
            &[
                "ip",
                "addr",
                "add",
                &format!("{VIP}/32"),
                "dev",
                &self.dut_if,
            ],
        )?;
        for dev in [
            "all",
            "default",
            self.dut_if.as_str(),
            self.dut_b_if.as_str(),
        ] {
            self.exec(
                &d,
                &["sysctl", "-qw", &format!("net.ipv4.conf.{dev}.rp_filter=0")],
            )?;
            // One-armed: traffic leaves by the NIC it came in on.
            self.exec(
                &d,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv4.conf.{dev}.send_redirects=0"),
                ],
            )?;
        }
        self.set_forwarding(false)?;
        for (ns, dev) in [
            (&t, &self.tester_if),
            (&d, &self.dut_if),
            (&t, &self.tester_b_if),
            (&d, &self.dut_b_if),
        ] {
            self.exec(ns, &["ip", "link", "set", dev, "up"])?;
        }
        for net in ["198.19.0.0/16", "198.18.128.0/17"] {
            self.exec(&d, &["ip", "route", "add", net, "dev", &self.dut_if])?;
        }
        // The kernel's receive work for the DUT side runs on the DUT's
        // cores (RPS), like the AF_XDP DUTs' workers; XDP-redirected frames
        // never reach RPS.
        let mask: usize = dut_cpus.iter().map(|c| 1usize << c).sum();
        for dev in [&self.dut_if, &self.dut_b_if] {
            for i in 0..self.queues {
                let path = format!("/sys/class/net/{dev}/queues/rx-{i}/rps_cpus");
                self.exec(&d, &["sh", "-c", &format!("echo {mask:x} > {path}")])?;
            }
        }
        Ok(())
    }

    /// Kernel IP forwarding in the DUT namespace (on only for the nftables
    /// baseline: only the DUT under test may move frames).
    pub fn set_forwarding(&self, on: bool) -> Result<()> {
        let v = if on { "1" } else { "0" };
        self.exec(
            &self.dut_ns,
            &["sysctl", "-qw", &format!("net.ipv4.ip_forward={v}")],
        )?;
        Ok(())
    }

    /// `ip netns exec NS argv...`, bounded.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(argv);
        cmd(&full, CMD_TIMEOUT)
    }
}

/// SIGKILLs every process left in namespace `ns` (before deleting it).
pub fn kill_ns_pids(ns: &str) {
    if let Ok(out) = cmd(&["ip", "netns", "pids", ns], CMD_TIMEOUT) {
        for pid in out.split_whitespace() {
            if pid.parse::<u32>().is_ok() {
                let _ = cmd(&["kill", "-KILL", pid], CMD_TIMEOUT);
            }
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            kill_ns_pids(ns);
            if let Err(e) = cmd(&["ip", "netns", "del", ns], CMD_TIMEOUT) {
                eprintln!("lvsperf: could not delete namespace {ns}: {e:#}");
            }
        }
    }
}

/// Deletes `lfperf-<pid>-*` namespaces whose process is gone (a run that
/// was killed before its Drop ran).
pub fn sweep_stale() {
    sweep_stale_with(NS_PREFIX);
}

/// Deletes `<prefix><pid>-*` namespaces whose process is gone (also the
/// soak's `lfsoak-`).
pub fn sweep_stale_with(prefix: &str) {
    let Ok(out) = cmd(&["ip", "netns", "list"], CMD_TIMEOUT) else {
        return;
    };
    for line in out.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            kill_ns_pids(name);
            let _ = cmd(&["ip", "netns", "del", name], CMD_TIMEOUT);
        }
    }
}
