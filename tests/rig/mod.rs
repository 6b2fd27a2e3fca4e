//! Network-namespace test rigs for end-to-end tests of `lvsfwd`.
//!
//! A rig is one L2 segment: a "switch" namespace holding a bridge, and one
//! namespace per host (client, director, real servers) joined to it by a
//! veth pair whose host end is always called [`IFACE`]. The mode presets
//! ([`Rig::dr`], [`Rig::nat`], [`Rig::tun`], [`Rig::fullnat`]) wire the hosts
//! exactly as an LVS operator would for that forwarding method (one-armed
//! director), dual stack (IPv4 198.18.0.0/15 and IPv6 2001:2::/48 only), and
//! start the services the tests talk to: on every real server an HTTP server
//! and a UDP echo that answer `<name> <client address it saw>`, and on the
//! director a TCP banner on its DIP ([`BANNER_PORT`]). See [`plan`] for the
//! address plan of each mode.
//!
//! Invariants:
//! - Every name starts with `lf` and carries the process id and a per-process
//!   counter, so parallel tests and parallel runs never collide; interface
//!   names stay within 15 characters.
//! - Nothing is ever created in or changed in the root namespace: links are
//!   created inside the rig's own namespaces.
//! - `Drop` kills every process the rig started (and anything else left in
//!   its namespaces) and deletes every namespace, also while a test panics.
//! - Every command and every wait is bounded by a timeout.
//!
//! Deliberately not done here: starting `lvsfwd` (see [`daemon`]), and any
//! pre-population of the director's neighbour table (resolving next hops is
//! the daemon's job).
#![allow(dead_code)]
#![forbid(unsafe_code)]

pub mod daemon;
pub mod e2e;
pub mod keepalived;
pub mod plan;
pub mod two_arm;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub use plan::Fam;

/// Name of every host's NIC (the director's is lvsfwd's `interface`).
pub const IFACE: &str = "lfeth0";
/// TUN device of the userspace IPIP decapsulator on TUN-mode real servers.
pub const TUN_IFACE: &str = "lftun0";
/// UDP port the TUN real servers' decapsulator takes GUE on.
pub const GUE_PORT: u16 = 6080;
/// HTTP service on every real server.
pub const HTTP_PORT: u16 = 80;
/// UDP echo service on every real server.
pub const UDP_PORT: u16 = 9053;
/// Plain TCP banner on the director's own addresses (not a virtual service).
pub const BANNER_PORT: u16 = 2222;
/// Bound of any single helper command (`ip`, `sysctl`, `ss`...).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// Forwarding method a rig is wired for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Topology only: no addresses, no services.
    Bare,
    Dr,
    Nat,
    Tun,
    FullNat,
}

impl Mode {
    /// `lb_kind` as written in lb.toml.
    pub fn lb_kind(self) -> &'static str {
        match self {
            Mode::Dr | Mode::Bare => "DR",
            Mode::Nat => "NAT",
            Mode::Tun => "TUN",
            Mode::FullNat => "FULLNAT",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Director,
    /// A second director on the segment (a VRRP peer, e.g. keepalived).
    Peer,
    /// Real server number n (1-based).
    Real(u8),
}

impl Role {
    pub fn name(self) -> String {
        match self {
            Role::Client => "client".into(),
            Role::Director => "director".into(),
            Role::Peer => "peer".into(),
            Role::Real(n) => format!("rs{n}"),
        }
    }
    fn short(self) -> String {
        match self {
            Role::Client => "cl".into(),
            Role::Director => "dir".into(),
            Role::Peer => "pr".into(),
            Role::Real(n) => format!("rs{n}"),
        }
    }
}

/// Result of a bounded command.
#[derive(Debug)]
pub struct Out {
    pub argv: Vec<String>,
    /// `None` when the command was killed at its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
    /// Panics with the whole story unless the command succeeded.
    pub fn expect_ok(self) -> String {
        if !self.ok() {
            panic!("{self}");
        }
        self.stdout
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = match self.status {
            Some(s) => format!("{s}"),
            None => "killed at its timeout".into(),
        };
        write!(
            f,
            "`{}`: {st}\n--- stdout\n{}--- stderr\n{}",
            self.argv.join(" "),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `argv` with a timeout; output is read by threads so that a chatty
/// command cannot block on a full pipe.
pub fn run(argv: &[&str], timeout: Duration) -> Out {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", argv.join(" ")));
    let reader = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let so = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let se = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let status = wait_bounded(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Out {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        status,
        stdout: so.join().unwrap_or_default(),
        stderr: se.join().unwrap_or_default(),
    }
}

/// Waits for `child` at most `timeout`; `None` when it is still running.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for a child process: {e}"),
        }
    }
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Panics with a clear message unless running as root: rigs need network
/// namespaces. Tests fail rather than skip, so CI cannot pass vacuously.
pub fn require_root() {
    let out = run(&["id", "-u"], CMD_TIMEOUT);
    if out.stdout.trim() != "0" {
        panic!(
            "this test builds network namespaces and must run as root (uid 0), \
             but runs as uid {}: run the suite as root (e.g. `sudo -E cargo test`)",
            out.stdout.trim()
        );
    }
}

/// The real python3 interpreter (resolved once: pyenv shims are slow).
pub fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = run(
            &["python3", "-c", "import sys; print(sys.executable)"],
            CMD_TIMEOUT,
        );
        let p = out.stdout.trim();
        if out.ok() && !p.is_empty() {
            p.to_string()
        } else {
            "python3".to_string()
        }
    })
}

/// Path of one of the rig's helper scripts.
pub fn script(name: &str) -> String {
    format!("{}/tests/rig/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// One host of the rig: a namespace with one NIC ([`IFACE`]) on the segment.
#[derive(Clone, Debug)]
pub struct Host {
    pub role: Role,
    pub ns: String,
    /// MAC of its NIC.
    pub mac: String,
}

impl Host {
    pub fn name(&self) -> String {
        self.role.name()
    }

    /// `ip netns exec NS argv...`, bounded by [`CMD_TIMEOUT`].
    pub fn exec(&self, argv: &[&str]) -> Out {
        self.exec_timeout(argv, CMD_TIMEOUT)
    }

    pub fn exec_timeout(&self, argv: &[&str], timeout: Duration) -> Out {
        let mut full = vec!["ip", "netns", "exec", self.ns.as_str()];
        full.extend_from_slice(argv);
        run(&full, timeout)
    }

    /// Like [`Host::exec`], panicking with the output on failure.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        self.exec(argv).expect_ok()
    }

    /// `ip -n NS args...`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", self.ns.as_str()];
        full.extend_from_slice(args);
        run(&full, CMD_TIMEOUT).expect_ok()
    }

    /// Sets a sysctl of this namespace (`key` in dotted form).
    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec_ok(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    /// Keeps the addresses on lo (a DR or TUN real server's VIP) out of
    /// ARP: `arp_ignore` 1 and `arp_announce` 2 on all and lo, as the LVS
    /// HOWTO has real servers do (seed 004).
    pub fn arp_quiet_lo(&self) {
        for dev in ["all", "lo"] {
            self.sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), "1");
            self.sysctl(&format!("net.ipv4.conf.{dev}.arp_announce"), "2");
        }
    }

    pub fn sysctl_get(&self, key: &str) -> String {
        self.exec_ok(&["sysctl", "-n", key]).trim().to_string()
    }

    /// Adds `cidr` to `dev`; IPv6 addresses skip DAD so they are usable at once.
    pub fn add_addr(&self, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev]);
        }
    }

    pub fn del_addr(&self, dev: &str, cidr: &str) {
        self.ip(&["addr", "del", cidr, "dev", dev]);
    }

    /// `ip route add SPEC...` (family taken from the addresses in it).
    pub fn add_route(&self, spec: &[&str]) {
        let six = spec.iter().any(|s| s.contains(':'));
        let mut args = vec![if six { "-6" } else { "-4" }, "route", "add"];
        args.extend_from_slice(spec);
        self.ip(&args);
    }

    fn listening(&self, flags: &str, port: u16) -> bool {
        let filter = format!("sport = :{port}");
        let out = self.exec(&["ss", "-H", flags, &filter]);
        out.ok() && !out.stdout.trim().is_empty()
    }

    /// Waits until something listens on TCP `port` here; panics at `timeout`.
    pub fn wait_tcp_listen(&self, port: u16, timeout: Duration) {
        if !wait_until(timeout, || self.listening("-ltn", port)) {
            panic!(
                "{}: nothing listens on TCP port {port} after {timeout:?}",
                self.ns
            );
        }
    }

    /// Waits until a UDP socket is bound to `port` here; panics at `timeout`.
    pub fn wait_udp_bound(&self, port: u16, timeout: Duration) {
        if !wait_until(timeout, || self.listening("-lun", port)) {
            panic!(
                "{}: no UDP socket on port {port} after {timeout:?}",
                self.ns
            );
        }
    }

    /// Whether an XDP program (any mode) is attached to this host's NIC.
    pub fn xdp_attached(&self) -> bool {
        self.ip(&["-d", "link", "show", "dev", IFACE])
            .contains("xdp")
    }

    /// `ip link show` of the NIC, for diagnostics.
    pub fn link_details(&self) -> String {
        self.ip(&["-d", "link", "show", "dev", IFACE])
    }
}

/// What the client driver saw, request by request.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Successful answers: (server name, client address the server saw).
    pub ok: Vec<(String, String)>,
    /// One line per failed request.
    pub failures: Vec<String>,
}

impl Tally {
    fn parse(out: &Out, count: usize) -> Tally {
        let mut t = Tally::default();
        for line in out.stdout.lines() {
            if let Some(body) = line.strip_prefix("ok ") {
                let mut it = body.split_whitespace();
                let server = it.next().unwrap_or("").to_string();
                let seen = it.next().unwrap_or("").to_string();
                t.ok.push((server, seen));
            } else {
                t.failures.push(line.to_string());
            }
        }
        let missing = count.saturating_sub(t.ok.len() + t.failures.len());
        for _ in 0..missing {
            t.failures
                .push(format!("no answer line from the driver: {out}"));
        }
        t
    }

    pub fn per_server(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (s, _) in &self.ok {
            *m.entry(s.clone()).or_insert(0) += 1;
        }
        m
    }

    pub fn clients_seen(&self) -> BTreeSet<String> {
        self.ok.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Panics unless every request succeeded.
    pub fn assert_all_ok(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} requests failed: {:?} (per server: {:?})",
            self.failures.len(),
            self.failures.len() + self.ok.len(),
            self.failures,
            self.per_server()
        );
    }

    /// Panics unless every one of `servers` got an equal share, within ±1,
    /// and nobody else got anything (what round robin gives).
    pub fn assert_even_split(&self, servers: &[String], what: &str) {
        let per = self.per_server();
        let total = self.ok.len();
        let share = total as f64 / servers.len() as f64;
        for s in servers {
            let n = per.get(s).copied().unwrap_or(0) as f64;
            assert!(
                (n - share).abs() <= 1.0,
                "{what}: {s} got {n} of {total} answers, expected {share} ± 1 (per server: {per:?})"
            );
        }
        for s in per.keys() {
            assert!(
                servers.contains(s),
                "{what}: unexpected answer from {s} (per server: {per:?})"
            );
        }
    }

    /// Panics unless every answer saw exactly `client` as the client address.
    pub fn assert_client_seen(&self, client: IpAddr, what: &str) {
        let want: BTreeSet<String> = [client.to_string()].into();
        assert_eq!(
            self.clients_seen(),
            want,
            "{what}: client addresses seen by the servers"
        );
    }
}

struct Bg {
    name: String,
    ns: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut v = Vec::new();
    loop {
        v.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    v.reverse();
    String::from_utf8(v).expect("ascii")
}

/// Namespaces of this rig family are `lfrig-<pid>-<n>-<role>`.
const NS_PREFIX: &str = "lfrig-";

/// Removes namespaces left by an earlier test process of ours that was
/// killed before its `Drop` ran (its pid no longer exists). Only names of
/// our own pattern are considered; processes still inside them are ours.
fn sweep_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let out = run(&["ip", "netns", "list"], CMD_TIMEOUT);
        for line in out.stdout.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            kill_ns_pids(name);
            let _ = run(&["ip", "netns", "del", name], CMD_TIMEOUT);
        }
    });
}

fn kill_ns_pids(ns: &str) {
    let out = run(&["ip", "netns", "pids", ns], CMD_TIMEOUT);
    for pid in out.stdout.split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            let _ = run(&["kill", "-KILL", pid], CMD_TIMEOUT);
        }
    }
}

/// Builder of a [`Rig`].
pub struct RigBuilder {
    mode: Mode,
    real_servers: u8,
    services: bool,
    peer: bool,
    veth_offloads: bool,
}

impl RigBuilder {
    /// Whether the client's and real servers' veths keep their default TX
    /// checksum offload, as containers and pods do (default false: they
    /// compute checksums in software, as a host on a real wire delivers
    /// them). With it on, the director receives TCP/UDP frames whose
    /// checksum is partial (the pseudo-header sum the sender left for a NIC
    /// to finish), which lvsfwd must complete before forwarding them.
    pub fn veth_offloads(mut self, on: bool) -> Self {
        self.veth_offloads = on;
        self
    }

    /// Number of real servers (1..=20, default 3).
    pub fn real_servers(mut self, n: u8) -> Self {
        assert!((1..=20).contains(&n), "1..=20 real servers, not {n}");
        self.real_servers = n;
        self
    }

    /// Whether to add a second director, [`Rig::peer`], on the segment with
    /// its own address (198.18.0.3, 2001:2::3) and nothing else (default
    /// false): the other side of VRRP tests.
    pub fn peer_director(mut self, on: bool) -> Self {
        self.peer = on;
        self
    }

    /// Whether to start the HTTP/UDP/banner services (default true).
    pub fn services(mut self, on: bool) -> Self {
        self.services = on;
        self
    }

    pub fn build(self) -> Rig {
        require_root();
        sweep_stale();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix("lfrig-")
            .tempdir()
            .expect("temp dir for the rig");
        let mut rig = Rig {
            mode: self.mode,
            tag: format!("{}x{}", base36(pid), base36(n)),
            ns_base: format!("{NS_PREFIX}{pid}-{n}"),
            switch_ns: String::new(),
            bridge: String::new(),
            hosts: Vec::new(),
            peer: None,
            namespaces: Vec::new(),
            procs: Mutex::new(Vec::new()),
            dir,
        };
        // From here on a panic drops `rig`, which removes what exists so far.
        rig.build_topology(self.real_servers, self.peer, self.veth_offloads);
        match self.mode {
            Mode::Bare => {}
            Mode::Dr => rig.wire_dr(false),
            Mode::Tun => rig.wire_dr(true),
            Mode::Nat => rig.wire_nat(false),
            Mode::FullNat => rig.wire_nat(true),
        }
        if self.services && self.mode != Mode::Bare {
            rig.start_services();
        }
        rig
    }
}

/// A built rig; see the module documentation.
pub struct Rig {
    pub mode: Mode,
    tag: String,
    ns_base: String,
    switch_ns: String,
    bridge: String,
    /// client, director, rs1..rsN in that order.
    hosts: Vec<Host>,
    /// The optional second director.
    peer: Option<Host>,
    /// Every namespace created, in creation order.
    namespaces: Vec<String>,
    procs: Mutex<Vec<Bg>>,
    dir: tempfile::TempDir,
}

impl Rig {
    pub fn builder(mode: Mode) -> RigBuilder {
        RigBuilder {
            mode,
            real_servers: 3,
            services: true,
            peer: false,
            veth_offloads: false,
        }
    }
    pub fn dr() -> Rig {
        Rig::builder(Mode::Dr).build()
    }
    pub fn nat() -> Rig {
        Rig::builder(Mode::Nat).build()
    }
    pub fn tun() -> Rig {
        Rig::builder(Mode::Tun).build()
    }
    pub fn fullnat() -> Rig {
        Rig::builder(Mode::FullNat).build()
    }

    pub fn client(&self) -> &Host {
        &self.hosts[0]
    }
    pub fn director(&self) -> &Host {
        &self.hosts[1]
    }
    /// The second director; panics unless the rig was built with
    /// [`RigBuilder::peer_director`].
    pub fn peer(&self) -> &Host {
        self.peer
            .as_ref()
            .expect("rig built without a peer director")
    }
    /// Real server `n`, 1-based.
    pub fn rs(&self, n: usize) -> &Host {
        assert!(n >= 1 && n + 1 < self.hosts.len(), "no real server {n}");
        &self.hosts[n + 1]
    }
    pub fn real_servers(&self) -> &[Host] {
        &self.hosts[2..]
    }
    pub fn rs_names(&self) -> Vec<String> {
        self.real_servers().iter().map(Host::name).collect()
    }
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// Every namespace of the rig (switch included).
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.clone()
    }
    pub fn switch_ns(&self) -> &str {
        &self.switch_ns
    }
    /// Name of the switch-side end of `host`'s veth pair (in the switch ns).
    pub fn switch_port(&self, host: &Host) -> String {
        format!("lf{}{}", host.role.short(), self.tag)
    }
    /// A private directory that lives as long as the rig (configs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    // ---- addresses of this rig's mode (see `plan`)

    pub fn vip(&self, f: Fam) -> IpAddr {
        plan::vip(f)
    }
    pub fn dip(&self, f: Fam) -> IpAddr {
        plan::dip(f)
    }
    pub fn lip(&self, f: Fam) -> IpAddr {
        plan::lip(f)
    }
    pub fn rip(&self, n: usize, f: Fam) -> IpAddr {
        plan::rip(n, f)
    }
    pub fn client_ip(&self, f: Fam) -> IpAddr {
        plan::client(self.mode, f)
    }
    /// The client address a real server sees for a balanced connection.
    pub fn seen_client_ip(&self, f: Fam) -> IpAddr {
        plan::seen_client(self.mode, f)
    }

    // ---- building

    fn add_ns(&mut self, role: &str) -> String {
        let ns = format!("{}-{role}", self.ns_base);
        run(&["ip", "netns", "add", &ns], CMD_TIMEOUT).expect_ok();
        self.namespaces.push(ns.clone());
        let ip = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", ns.as_str()];
            full.extend_from_slice(args);
            run(&full, CMD_TIMEOUT).expect_ok();
        };
        // Before any link exists, so that links inherit it: no DAD delay on
        // link-local addresses either.
        ip(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
        ip(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        ip(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn build_topology(&mut self, real_servers: u8, peer: bool, veth_offloads: bool) {
        self.switch_ns = self.add_ns("sw");
        self.bridge = format!("lfbr{}", self.tag);
        let sw = Host {
            role: Role::Client,
            ns: self.switch_ns.clone(),
            mac: String::new(),
        };
        sw.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        sw.sysctl("net.ipv6.conf.default.disable_ipv6", "1");
        sw.ip(&[
            "link",
            "add",
            &self.bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ]);
        sw.ip(&["link", "set", &self.bridge, "up"]);
        let mut roles = vec![Role::Client, Role::Director];
        roles.extend((1..=real_servers).map(Role::Real));
        if peer {
            roles.push(Role::Peer);
        }
        for role in roles {
            let ns = self.add_ns(&role.short());
            let mac = plan::mac(role);
            let host = Host { role, ns, mac };
            let port = self.switch_port(&host);
            assert!(port.len() <= 15, "interface name {port} too long");
            host.ip(&[
                "link",
                "add",
                IFACE,
                "address",
                &host.mac,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &self.switch_ns,
            ]);
            sw.ip(&["link", "set", &port, "master", &self.bridge]);
            sw.ip(&["link", "set", &port, "up"]);
            if role == Role::Director {
                // Lets the director's NIC use XDP_TX/redirect in native mode:
                // veth delivers such frames only to a peer running NAPI, which
                // GRO turns on. A switch port accepts whatever it is sent.
                sw.exec_ok(&["ethtool", "-K", &port, "gro", "on"]);
            } else if !veth_offloads {
                // A real wire carries complete checksums; with veth's
                // default offload the director gets partial ones instead
                // (see `RigBuilder::veth_offloads`).
                host.exec_ok(&["ethtool", "-K", IFACE, "tx", "off"]);
            } else {
                // The kernel's default is what the scenario is about.
                let k = host.exec_ok(&["ethtool", "-k", IFACE]);
                assert!(
                    k.lines().any(|l| l.starts_with("tx-checksumming: on")),
                    "veth TX checksum offload is not on by default:\n{k}"
                );
            }
            host.ip(&["link", "set", IFACE, "up"]);
            if role == Role::Peer {
                host.add_addr(IFACE, &plan::cidr(plan::peer_ip(Fam::V4), 24));
                host.add_addr(IFACE, &plan::cidr(plan::peer_ip(Fam::V6), 64));
                self.peer = Some(host);
            } else {
                self.hosts.push(host);
            }
        }
    }

    /// DR and TUN: one subnet; the VIP on the director's NIC and on every
    /// real server's lo, which must not answer ARP for it (seed 004).
    fn wire_dr(&self, tun: bool) {
        let mode = self.mode;
        let c = self.client().clone();
        c.add_addr(IFACE, &plan::cidr(plan::client(mode, Fam::V4), 24));
        c.add_addr(IFACE, &plan::cidr(plan::client(mode, Fam::V6), 64));
        self.wire_director(false);
        for (i, h) in self.real_servers().to_vec().iter().enumerate() {
            let n = i + 1;
            h.add_addr(IFACE, &plan::cidr(plan::rip(n, Fam::V4), 24));
            h.add_addr(IFACE, &plan::cidr(plan::rip(n, Fam::V6), 64));
            h.add_addr("lo", &plan::cidr(plan::vip(Fam::V4), 32));
            h.add_addr("lo", &plan::cidr(plan::vip(Fam::V6), 128));
            h.arp_quiet_lo();
            if tun {
                self.start_decap(h);
            }
        }
    }

    /// The userspace tunnel endpoint (see decap.py: IPIP, GRE, and GUE on
    /// [`GUE_PORT`], either outer family) and its TUN device.
    pub fn start_decap(&self, h: &Host) {
        let stats = self.decap_stats(h);
        let port = GUE_PORT.to_string();
        self.spawn_ready(
            h,
            "decap",
            &[
                python(),
                &script("decap.py"),
                "--tun",
                TUN_IFACE,
                "--gue-port",
                &port,
                "--stats",
                &stats.to_string_lossy(),
            ],
            Duration::from_secs(10),
        );
        h.ip(&["link", "set", TUN_IFACE, "up"]);
        // Inner packets come from clients that are routed via the NIC, not
        // via the tunnel: strict reverse-path filtering would drop them.
        for dev in ["all", "default", TUN_IFACE, IFACE] {
            h.sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0");
        }
    }

    /// Where `h`'s decapsulator writes its per-tunnel counts.
    pub fn decap_stats(&self, h: &Host) -> PathBuf {
        self.dir().join(format!("decap-{}.json", h.name()))
    }

    /// Packets `h`'s decapsulator took per tunnel kind (`ipip`, `gre`,
    /// `gue`) and refused (`bad`); zero before the first packet.
    pub fn decap_counts(&self, h: &Host) -> BTreeMap<String, u64> {
        let text = std::fs::read_to_string(self.decap_stats(h)).unwrap_or_default();
        let mut out = BTreeMap::new();
        for kv in text
            .trim_matches(|c| c == '{' || c == '}' || c == '\n')
            .split(',')
        {
            let mut it = kv.split(':');
            if let (Some(k), Some(v)) = (it.next(), it.next())
                && let Ok(n) = v.trim().parse()
            {
                out.insert(k.trim().trim_matches('"').to_string(), n);
            }
        }
        out
    }

    /// NAT and FULLNAT: the client in its own subnet behind the director;
    /// real servers route to it through the director (NAT) or not at all
    /// (FULLNAT, where they answer the director's local address).
    fn wire_nat(&self, fullnat: bool) {
        let mode = self.mode;
        let c = self.client().clone();
        c.add_addr(IFACE, &plan::cidr(plan::client(mode, Fam::V4), 24));
        c.add_addr(IFACE, &plan::cidr(plan::client(mode, Fam::V6), 64));
        c.add_route(&[
            "default",
            "via",
            &plan::client_gw(Fam::V4).to_string(),
            "dev",
            IFACE,
        ]);
        c.add_route(&[
            "default",
            "via",
            &plan::client_gw(Fam::V6).to_string(),
            "dev",
            IFACE,
        ]);
        // The self-tests switch kernel forwarding on in the director; its
        // redirects must not teach the client a path around it.
        for dev in ["all", IFACE] {
            c.sysctl(&format!("net.ipv4.conf.{dev}.accept_redirects"), "0");
            c.sysctl(&format!("net.ipv6.conf.{dev}.accept_redirects"), "0");
        }
        self.wire_director(true);
        for (i, h) in self.real_servers().to_vec().iter().enumerate() {
            let n = i + 1;
            h.add_addr(IFACE, &plan::cidr(plan::rip(n, Fam::V4), 24));
            h.add_addr(IFACE, &plan::cidr(plan::rip(n, Fam::V6), 64));
            if !fullnat {
                for f in [Fam::V4, Fam::V6] {
                    h.add_route(&["default", "via", &plan::dip(f).to_string(), "dev", IFACE]);
                }
            }
        }
    }

    fn wire_director(&self, nat: bool) {
        let d = self.director();
        d.add_addr(IFACE, &plan::cidr(plan::dip(Fam::V4), 24));
        d.add_addr(IFACE, &plan::cidr(plan::dip(Fam::V6), 64));
        d.add_addr(IFACE, &plan::cidr(plan::vip(Fam::V4), 32));
        d.add_addr(IFACE, &plan::cidr(plan::vip(Fam::V6), 128));
        if nat {
            d.add_addr(IFACE, &plan::cidr(plan::client_gw(Fam::V4), 24));
            d.add_addr(IFACE, &plan::cidr(plan::client_gw(Fam::V6), 64));
        }
        if self.mode == Mode::FullNat {
            d.add_addr(IFACE, &plan::cidr(plan::lip(Fam::V4), 24));
            d.add_addr(IFACE, &plan::cidr(plan::lip(Fam::V6), 64));
        }
        // Only lvsfwd may move packets between client and real servers.
        d.sysctl("net.ipv4.ip_forward", "0");
        d.sysctl("net.ipv6.conf.all.forwarding", "0");
        // One-armed director: traffic in and out of the same NIC must not
        // make the kernel send ICMP redirects (LVS-NAT HOWTO advice).
        for dev in ["all", "default", IFACE] {
            d.sysctl(&format!("net.ipv4.conf.{dev}.send_redirects"), "0");
        }
    }

    fn start_services(&self) {
        let port = HTTP_PORT.to_string();
        let udp = UDP_PORT.to_string();
        for h in self.real_servers() {
            let name = h.name();
            self.spawn_ready(
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
        }
        let banner = BANNER_PORT.to_string();
        self.spawn_ready(
            self.director(),
            "banner",
            &[
                python(),
                &script("servers.py"),
                "--name",
                "director",
                "--banner",
                &banner,
            ],
            Duration::from_secs(10),
        );
        for h in self.real_servers() {
            h.wait_tcp_listen(HTTP_PORT, Duration::from_secs(10));
            h.wait_udp_bound(UDP_PORT, Duration::from_secs(10));
        }
        self.director()
            .wait_tcp_listen(BANNER_PORT, Duration::from_secs(10));
    }

    // ---- background processes

    /// Starts `argv` in `host`'s namespace for the rig's lifetime (killed on
    /// Drop). stdout and stderr go to files in [`Rig::dir`]. Returns the pid.
    pub fn spawn(&self, host: &Host, name: &str, argv: &[&str]) -> u32 {
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        let idx = procs.len();
        let stdout = self.dir().join(format!("{}-{name}-{idx}.out", host.name()));
        let stderr = self.dir().join(format!("{}-{name}-{idx}.err", host.name()));
        let child = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("log file"))
            .stderr(std::fs::File::create(&stderr).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?} in {}: {e}", host.ns));
        let pid = child.id();
        procs.push(Bg {
            name: format!("{}/{name}", host.name()),
            ns: host.ns.clone(),
            child,
            stdout,
            stderr,
        });
        pid
    }

    /// [`Rig::spawn`], then waits until the process prints a `ready` line;
    /// panics with its stderr if it exits or stays silent past `timeout`.
    pub fn spawn_ready(&self, host: &Host, name: &str, argv: &[&str], timeout: Duration) -> u32 {
        let pid = self.spawn(host, name, argv);
        let (out, err) = {
            let procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
            let bg = procs.last().expect("just pushed");
            (bg.stdout.clone(), bg.stderr.clone())
        };
        let mut exited = None;
        let ready = wait_until(timeout, || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.lines().any(|l| l.trim() == "ready") {
                return true;
            }
            let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(bg) = procs.iter_mut().find(|b| b.child.id() == pid)
                && let Ok(Some(st)) = bg.child.try_wait()
            {
                exited = Some(st);
                return true;
            }
            false
        });
        if !ready || exited.is_some() {
            panic!(
                "{name} in {} did not become ready within {timeout:?} ({}); stderr:\n{}",
                host.ns,
                match exited {
                    Some(st) => format!("exited: {st}"),
                    None => "still silent".into(),
                },
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        pid
    }

    /// Pids of the background processes started as `name` on `host`.
    pub fn pids_named(&self, host: &Host, name: &str) -> Vec<u32> {
        let full = format!("{}/{name}", host.name());
        let procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        procs
            .iter()
            .filter(|b| b.name == full && b.ns == host.ns)
            .map(|b| b.child.id())
            .collect()
    }

    /// Kills one background process of the rig (SIGKILL) and reaps it.
    pub fn kill(&self, pid: u32) {
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        let bg = procs
            .iter_mut()
            .find(|b| b.child.id() == pid)
            .expect("no such background process");
        let _ = bg.child.kill();
        let _ = bg.child.wait();
    }

    /// A self-signed certificate and key (openssl) in the rig's directory,
    /// as any HTTPS real server has: (certificate, key).
    pub fn self_signed_cert(&self) -> (PathBuf, PathBuf) {
        let (c, k) = (self.dir().join("rs.crt"), self.dir().join("rs.key"));
        run(
            &[
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=rs.rig.test",
                "-keyout",
                k.to_str().unwrap(),
                "-out",
                c.to_str().unwrap(),
            ],
            CMD_TIMEOUT,
        )
        .expect_ok();
        (c, k)
    }

    /// stdout and stderr of the background process with `pid`.
    pub fn proc_logs(&self, pid: u32) -> (String, String) {
        let procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        let bg = procs
            .iter()
            .find(|b| b.child.id() == pid)
            .expect("no such background process");
        (
            std::fs::read_to_string(&bg.stdout).unwrap_or_default(),
            std::fs::read_to_string(&bg.stderr).unwrap_or_default(),
        )
    }

    // ---- traffic

    fn driver(&self, from: &Host, args: &[&str], deadline: Duration) -> Out {
        let dl = format!("{}", deadline.as_secs_f64());
        let s = script("client.py");
        let mut argv = vec![python(), s.as_str()];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--deadline", &dl]);
        from.exec_timeout(&argv, deadline + Duration::from_secs(10))
    }

    fn requests(
        &self,
        kind: &str,
        from: &Host,
        bind: Option<IpAddr>,
        target: SocketAddr,
        count: usize,
    ) -> Tally {
        let t = target.to_string();
        let c = count.to_string();
        let b = bind.map(|b| b.to_string());
        // Each request has 5 s: a lost SYN (retransmitted after 1 s, then
        // 3 s) or a stalled VM must not read as a failure; what the rig
        // tests catch (frames sent to the wrong or a dead server) fails
        // every time, not once. The whole run at most 60 s even if all fail.
        let deadline = Duration::from_secs((5 * count as u64).clamp(10, 60));
        let mut args = vec![kind, "--target", &t, "--count", &c, "--timeout", "5"];
        if let Some(b) = &b {
            args.extend_from_slice(&["--bind", b]);
        }
        let out = self.driver(from, &args, deadline);
        Tally::parse(&out, count)
    }

    /// `count` HTTP GETs from `from` to `target`, each a new TCP connection.
    pub fn http(&self, from: &Host, target: SocketAddr, count: usize) -> Tally {
        self.requests("http", from, None, target, count)
    }

    /// [`Rig::http`] from the source address `bind`.
    pub fn http_bound(&self, from: &Host, bind: IpAddr, target: SocketAddr, count: usize) -> Tally {
        self.requests("http", from, Some(bind), target, count)
    }

    /// `count` UDP requests from `from` to `target`, each from a new port.
    pub fn udp(&self, from: &Host, target: SocketAddr, count: usize) -> Tally {
        self.requests("udp", from, None, target, count)
    }

    /// Reads the banner of a plain TCP service.
    pub fn banner(&self, from: &Host, target: SocketAddr) -> Result<String, String> {
        let t = self.requests("tcp", from, None, target, 1);
        match t.ok.first() {
            Some((name, seen)) => Ok(format!("{name} {seen}")),
            None => Err(t.failures.join("; ")),
        }
    }

    /// One ICMP echo from `from` to `to` (2 s timeout).
    pub fn ping(&self, from: &Host, to: IpAddr) -> Result<(), String> {
        let t = to.to_string();
        let out = self.driver(
            from,
            &["ping", "--target", &t, "--count", "1", "--timeout", "2"],
            Duration::from_secs(5),
        );
        if out.stdout.lines().any(|l| l.trim() == "ok") {
            Ok(())
        } else {
            Err(format!("ping {to} from {}: {out}", from.name()))
        }
    }

    /// Broadcasts one ARP request for `target` from `from` (sender address
    /// `src`) and returns the MACs of everyone who answered within 1 s.
    pub fn arp_who_answers(&self, from: &Host, src: IpAddr, target: IpAddr) -> BTreeSet<String> {
        let (s, t) = (src.to_string(), target.to_string());
        let out = from
            .exec_timeout(
                &[
                    python(),
                    &script("client.py"),
                    "arp",
                    "--iface",
                    IFACE,
                    "--src",
                    &s,
                    "--target",
                    &t,
                ],
                Duration::from_secs(10),
            )
            .expect_ok();
        out.lines()
            .filter_map(|l| l.strip_prefix("reply "))
            .map(|m| m.trim().to_string())
            .collect()
    }

    /// The lb.toml for this rig: one virtual service per entry of
    /// `services`, of the rig's mode, rr, every real server, no MACs.
    pub fn lb_toml(&self, services: &[plan::Svc]) -> String {
        let sock = self.dir().join("admin.sock");
        plan::lb_toml(
            self.mode,
            self.real_servers().len(),
            services,
            &sock.to_string_lossy(),
        )
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let panicking = thread::panicking();
        let mut procs = std::mem::take(self.procs.get_mut().unwrap_or_else(|e| e.into_inner()));
        for bg in procs.iter_mut() {
            if panicking && let Ok(Some(st)) = bg.child.try_wait() {
                eprintln!(
                    "rig: background process {} in {} had exited ({st}); stderr:\n{}",
                    bg.name,
                    bg.ns,
                    std::fs::read_to_string(&bg.stderr).unwrap_or_default()
                );
            }
            let _ = bg.child.kill();
            let _ = bg.child.wait();
        }
        // Hosts first, the switch last (veth pairs die with either end).
        for ns in self.namespaces.iter().rev() {
            kill_ns_pids(ns);
            let out = run(&["ip", "netns", "del", ns], CMD_TIMEOUT);
            if !out.ok() {
                eprintln!("rig: could not delete namespace {ns}: {out}");
            }
        }
    }
}

/// Names of the network namespaces that exist right now.
pub fn netns_list() -> BTreeSet<String> {
    run(&["ip", "netns", "list"], CMD_TIMEOUT)
        .expect_ok()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}
