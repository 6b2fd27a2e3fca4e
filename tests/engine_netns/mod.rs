//! Test rig of the engine tests: two network namespaces joined by a veth
//! pair (the director's end served by the engine, the peer's end where a
//! python3 AF_PACKET script plays clients and real servers), frame builders
//! and a parser for what comes back.
//!
//! Rules kept: names start with `lf` and carry the process id and a counter;
//! everything lives in namespaces created here and is deleted on Drop (also
//! when a test fails); addresses are in 198.18.0.0/15; every wait is
//! bounded.
#![forbid(unsafe_code)]
#![allow(dead_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use etherparse::PacketBuilder;
use lvsfwd::config::{XdpMode, ZeroCopy};
use lvsfwd::dataplane::{Dataplane, Snapshot};
use lvsfwd::wire::{self, L4};
use lvsfwd::xsk::engine::{Engine, EngineConfig, WorkerDeath, WorkerInfo};
use lvsfwd::xsk::prog::{self, Filter, XdpProgram};
use lvsfwd::xsk::shared::{Shared, WorkerCounters};

pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0x1f, 0xd0, 0, 0, 0x01];
pub const PEER_MAC: [u8; 6] = [0x02, 0x1f, 0xe0, 0, 0, 0x01];
pub const RS_MAC: [u8; 6] = [0x02, 0x1f, 0xaa, 0, 0, 0x11];
/// The director's own address (tunnel source), published in the snapshot.
pub const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const RS: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);

static SEQ: AtomicU32 = AtomicU32::new(0);

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Fails (not skips) when not root: these tests need namespaces and XDP.
pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the engine tests need root (network namespaces, XDP)"
    );
}

/// Two namespaces and the veth pair between them.
pub struct Rig {
    pub dns: String,
    pub pns: String,
    pub dev: String,
    pub peer: String,
}

impl Rig {
    /// A veth pair with `queues` RX and TX queues on each end.
    pub fn new(queues: u32) -> Rig {
        require_root();
        let id = format!(
            "{:x}{:x}",
            std::process::id() & 0xfffff,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let rig = Rig {
            dns: format!("lfd-{id}"),
            pns: format!("lfp-{id}"),
            dev: format!("lfd{id}"),
            peer: format!("lfp{id}"),
        };
        assert!(rig.dev.len() <= 15 && rig.peer.len() <= 15);
        // From here on Drop cleans up whatever was created.
        rig.setup(queues)
            .unwrap_or_else(|e| panic!("rig setup: {e}"));
        rig
    }

    fn setup(&self, queues: u32) -> Result<(), String> {
        let q = queues.to_string();
        run(&["ip", "netns", "add", &self.dns])?;
        run(&["ip", "netns", "add", &self.pns])?;
        for ns in [&self.dns, &self.pns] {
            // No IPv6 chatter (DAD, MLD) on the link: captures see only
            // what the test and the engine send.
            for k in ["all", "default"] {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                ])?;
            }
        }
        run(&[
            "ip",
            "-n",
            &self.dns,
            "link",
            "add",
            &self.dev,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "address",
            &mac_str(DIRECTOR_MAC),
            "type",
            "veth",
            "peer",
            "name",
            &self.peer,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "address",
            &mac_str(PEER_MAC),
            "netns",
            &self.pns,
        ])?;
        run(&["ip", "-n", &self.dns, "link", "set", &self.dev, "up"])?;
        run(&["ip", "-n", &self.pns, "link", "set", &self.peer, "up"])?;
        Ok(())
    }

    fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.dns)
    }

    /// Starts the engine on the director's end with lvsfwd's XDP program,
    /// from a thread inside the director namespace that owns both until
    /// [`Director::stop`] (so the workers, the sockets and the program's
    /// detach all happen in that namespace).
    pub fn start(&self, toml: &str, queues: Vec<u32>) -> Director {
        self.try_start(toml, queues, ZeroCopy::Auto)
            .unwrap_or_else(|e| panic!("starting the director: {e}"))
    }

    /// [`Rig::start`] with a zero-copy request, failing with the engine's
    /// error.
    pub fn try_start(
        &self,
        toml: &str,
        queues: Vec<u32>,
        zero_copy: ZeroCopy,
    ) -> Result<Director, String> {
        let toml = toml.replace("IFNAME", &self.dev);
        let cfg = lvsfwd::config::parse_str(&toml, "test.toml").expect("config");
        let n = queues.len();
        let dps: Vec<Dataplane> = (0..n)
            .map(|_| cfg.dataplane(cfg.dataplane_config()))
            .collect();
        let shared = Shared::new(Snapshot {
            own_macs: Arc::new(vec![DIRECTOR_MAC]),
            own_addrs: Arc::new(vec![IpAddr::V4(DIRECTOR_IP)]),
            ..Snapshot::default()
        });
        let ecfg = EngineConfig {
            ifnames: vec![self.dev.clone()],
            cores: (0..n).collect(),
            queues,
            nic_queues: vec![],
            zero_copy,
            frames_per_queue: 1024,
            batch: 64,
            idle_spin: lvsfwd::xsk::engine::DEFAULT_IDLE_SPIN,
            kernel_port: None,
        };
        let path = self.netns_path();
        let dev = self.dev.clone();
        let sh = Arc::clone(&shared);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (death_tx, death_rx) = mpsc::channel::<WorkerDeath>();
        let thread = std::thread::spawn(move || -> Vec<Dataplane> {
            let up = (|| -> anyhow::Result<(XdpProgram, Engine)> {
                prog::enter_netns(Path::new(&path))?;
                let mut p = XdpProgram::attach(&dev, XdpMode::Native)?;
                p.set_filter(&Filter::from_specs(&cfg.service_specs(), &[]))?;
                let e = Engine::start(&ecfg, &mut p, sh, dps)?;
                Ok((p, e))
            })();
            let (p, engine) = match up {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    return Vec::new();
                }
            };
            let _ = ready_tx.send(Ok((engine.counters(), engine.workers())));
            // Until the test stops us (or drops the sender on failure),
            // watching for a dead worker as the daemon's control loop does.
            let mut died = false;
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stop_rx.recv_timeout(Duration::from_millis(10))
            {
                if !died && let Some(d) = engine.dead_worker() {
                    died = true;
                    let _ = death_tx.send(d);
                }
            }
            let dps = engine.stop();
            if died {
                // The link may be what went away, and its program with it.
                let _ = p.detach();
            } else {
                p.detach().expect("detach in the director namespace");
            }
            dps
        });
        let started = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|e| format!("director thread: {e}"))
            .and_then(|r| r);
        let mut d = Director {
            stop: Some(stop_tx),
            deaths: death_rx,
            thread: Some(thread),
            counters: Vec::new(),
            workers: Vec::new(),
            shared,
        };
        // On an error the thread has ended; dropping `d` joins it.
        let (counters, workers) = started?;
        d.counters = counters;
        d.workers = workers;
        Ok(d)
    }

    /// Deletes the director's end of the veth pair (and so the pair) under
    /// a running engine: the kernel unbinds its sockets.
    pub fn delete_director_link(&self) {
        run(&["ip", "-n", &self.dns, "link", "del", &self.dev]).unwrap();
    }

    /// Gives the director's end an address (so its kernel answers ARP).
    pub fn director_addr(&self, cidr: &str) {
        run(&["ip", "-n", &self.dns, "addr", "add", cidr, "dev", &self.dev]).unwrap();
    }

    /// [`Rig::exchange`] waiting for `want` frames, of which it keeps the
    /// TCP ones ([`seen`]) sorted by `key`; asserts that `want` came.
    pub fn exchange_sorted(
        &self,
        frames: &[Vec<u8>],
        want: usize,
        cpu: usize,
        key: fn(&Seen) -> u16,
    ) -> Vec<Seen> {
        let mut got: Vec<Seen> = self
            .exchange(frames, want, 5.0, cpu)
            .iter()
            .filter_map(|f| seen(f))
            .collect();
        got.sort_by_key(key);
        assert_eq!(got.len(), want, "{got:?}");
        got
    }

    /// Sends `frames` from the peer's end (pinned to `cpu`, which picks the
    /// veth queue they travel on) and returns up to `want` frames received
    /// there within `timeout_s`, or fewer if they do not come.
    pub fn exchange(
        &self,
        frames: &[Vec<u8>],
        want: usize,
        timeout_s: f64,
        cpu: usize,
    ) -> Vec<Vec<u8>> {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.pns,
                "taskset",
                "-c",
                &cpu.to_string(),
            ])
            .args(["python3", "-c", PEER_SCRIPT, &self.peer, &want.to_string()])
            .arg(timeout_s.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        {
            let mut stdin = child.stdin.take().unwrap();
            for f in frames {
                let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
                writeln!(stdin, "{hex}").unwrap();
            }
        }
        let out = child.wait_with_output().expect("python3 output");
        assert!(
            out.status.success(),
            "peer script: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                (0..l.len() / 2)
                    .map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).unwrap())
                    .collect()
            })
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it (and with it
        // the pair and any XDP program on it).
        let _ = run(&["ip", "netns", "del", &self.dns]);
        let _ = run(&["ip", "netns", "del", &self.pns]);
    }
}

/// The engine and lvsfwd's XDP program, running in the director namespace.
pub struct Director {
    stop: Option<mpsc::Sender<()>>,
    /// The first dead worker the director thread saw
    /// (`Engine::dead_worker`, polled every 10 ms).
    deaths: mpsc::Receiver<WorkerDeath>,
    thread: Option<JoinHandle<Vec<Dataplane>>>,
    pub counters: Vec<Arc<WorkerCounters>>,
    pub workers: Vec<WorkerInfo>,
    pub shared: Arc<Shared>,
}

impl Director {
    /// The dead worker the engine reports within `timeout`, if any.
    pub fn wait_death(&self, timeout: Duration) -> Option<WorkerDeath> {
        self.deaths.recv_timeout(timeout).ok()
    }

    /// Stops the workers, detaches the program, returns the data planes.
    pub fn stop(mut self) -> Vec<Dataplane> {
        self.stop.take();
        self.thread
            .take()
            .map(|t| t.join().expect("director thread"))
            .unwrap_or_default()
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The peer: an AF_PACKET socket that sends the frames given on stdin (hex,
/// one per line) and prints (hex) the frames it then receives, skipping its
/// own, until it has `want` of them or the timeout passes.
const PEER_SCRIPT: &str = r#"
import select, socket, sys, time
ifname, want, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
frames = [bytes.fromhex(l.strip()) for l in sys.stdin if l.strip()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
for f in frames:
    s.send(f)
got = []
end = time.time() + timeout
while len(got) < want:
    left = end - time.time()
    if left <= 0:
        break
    r, _, _ = select.select([s], [], [], left)
    if not r:
        break
    data, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    got.append(data)
for g in got:
    print(g.hex())
"#;

/// lb.toml of one virtual service `proto` on port `vport` of the VIP, `rr`
/// over one real server `RS:rs_port` (its MAC [`RS_MAC`]) by `kind`,
/// `extra` more lines of the service (e.g. FULLNAT's `local_address`).
/// `IFNAME` stands for the director's link ([`Rig::start`]).
pub fn one_service(proto: &str, vport: u16, kind: &str, rs_port: u16, extra: &str) -> String {
    let mac = mac_str(RS_MAC);
    format!(
        r#"
[global]
interface = "IFNAME"

[[virtual_server]]
address = "{VIP}:{vport}"
protocol = "{proto}"
lb_algo = "rr"
lb_kind = "{kind}"
{extra}
  [[virtual_server.real_server]]
  address = "{RS}:{rs_port}"
  mac = "{mac}"
"#
    )
}

/// Client `i` of the tests that open many flows at once.
pub fn client(i: u16) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 6, 1 + i as u8)
}

/// One TCP segment of each of the clients `client(i)`:`42000 + i`, `i` in
/// `0..n`, to the VIP's port 80, from the peer's MAC.
pub fn from_clients(n: u16, syn: bool, ack: bool) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            tcp(
                PEER_MAC,
                DIRECTOR_MAC,
                client(i),
                42000 + i,
                VIP,
                80,
                syn,
                ack,
            )
        })
        .collect()
}

/// One TCP segment of the real server's `RS:8080` to each of `to(i)`, `i`
/// in `0..n`, from the real server's MAC.
pub fn from_rs(n: u16, to: impl Fn(u16) -> (Ipv4Addr, u16), syn: bool, ack: bool) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let (dst, dport) = to(i);
            tcp(RS_MAC, DIRECTOR_MAC, RS, 8080, dst, dport, syn, ack)
        })
        .collect()
}

/// Asserts that `got` holds, in order, for each `i` in `0..n`, the TCP
/// segment from `want(i).0` to `want(i).1` (address and port), sent to
/// `dmac` with a valid checksum.
pub fn assert_flows(
    got: &[Seen],
    n: u16,
    dmac: [u8; 6],
    want: impl Fn(u16) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)),
) {
    assert_eq!(got.len(), n as usize, "{got:?}");
    for (i, s) in got.iter().enumerate() {
        let ((src, sport), (dst, dport)) = want(i as u16);
        assert_eq!((s.src, s.sport), (IpAddr::V4(src), sport));
        assert_eq!((s.dst, s.dport), (IpAddr::V4(dst), dport));
        assert_eq!(s.dmac, dmac);
        assert!(s.csum_ok);
    }
}

/// [`assert_flows`] for the VIP's answers from port 80 to each of the `n`
/// clients of [`from_clients`] (sorted by destination port), to the peer.
pub fn assert_back_to_clients(to_clients: &[Seen], n: u16) {
    assert_flows(to_clients, n, PEER_MAC, |i| {
        ((VIP, 80), (client(i), 42000 + i))
    });
}

/// A TCP segment in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    syn: bool,
    ack: bool,
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src.octets(), dst.octets(), 64)
        .tcp(sport, dport, 1000, 64240);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(2000);
    }
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

/// What the tests check of a received frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub ttl: u8,
    /// TCP checksum verified by recomputation.
    pub csum_ok: bool,
}

/// Parses a captured TCP frame (None for anything else).
pub fn seen(f: &[u8]) -> Option<Seen> {
    let p = wire::parse(f).ok()??;
    let L4::Tcp { sport, dport, .. } = p.l4 else {
        return None;
    };
    Some(Seen {
        dmac: f[0..6].try_into().unwrap(),
        smac: f[6..12].try_into().unwrap(),
        src: p.src,
        sport,
        dst: p.dst,
        dport,
        ttl: p.ttl,
        csum_ok: wire::verify_l4_checksum(f, &p),
    })
}
