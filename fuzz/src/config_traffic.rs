//! The `config_traffic` target: structure-aware fuzzing of configuration ×
//! traffic. The `frames` target throws bytes at one fixed service table;
//! this one builds the table too, so service shapes that table never had
//! (every method, scheduler and flag, persistence, port 0, weights 0,
//! thresholds, real servers that are the director itself, several NICs)
//! meet structured traffic.
//!
//! An input ([`Input`], decoded by `arbitrary`) describes:
//! - two lb.toml files (a start configuration and a reload), written out as
//!   TEXT and loaded with `lvsfwd::config::parse_str` exactly as `lvsfwd
//!   check` does; an input whose first file is refused is skipped, one whose
//!   second is refused reloads the first again. The data plane is built as
//!   the daemon builds it (`Config::dataplane_config`, the NICs' MACs,
//!   addresses and MTU filled in) and receives the daemon's first snapshot:
//!   1–3 NICs, next hops spread across them (`NextHop { nic, mac }`),
//!   the configured services, timeouts and sysctls;
//! - a sequence of steps with non-decreasing timestamps (milliseconds up to
//!   hours: connection and template timers fire; the timers run whenever a
//!   second or more has passed, as the engine runs them every batch):
//!   frames built header by header (Ethernet with an optional VLAN tag,
//!   IPv4 with options or IPv6 with a hop-by-hop header, fragments, TTL
//!   0/1/2/64, TCP with any flags, UDP, ICMP / ICMPv6 errors quoting a
//!   flow, echo requests; checksums valid, partial — the field holding the
//!   pseudo-header sum, as an offloading sender leaves it — or garbage)
//!   between clients, VIPs, real servers, FULLNAT local addresses, the
//!   director and routers; replies to any of the last frames the director
//!   sent (so NAT and FULLNAT reply paths run, and FULLNAT's local ports
//!   are answered); ICMP errors about them (from a router or the peer);
//!   reloads through `Dataplane::apply_snapshot` with `services: Some(..)`;
//!   new next-hop maps; the director's addresses changing (real servers
//!   becoming Local and back); the nodest flush.
//!
//! Checks on every frame:
//! - nothing panics;
//! - `Tx(nic)`: `nic` is one of the NICs, the frame leaves from that NIC's
//!   MAC and passes [`crate::check_emitted_from`] (Ethernet + IP
//!   well-formed, lengths consistent, IPv4 header checksums, and — when the
//!   input's checksums were valid or partial — every TCP, UDP, ICMP and
//!   ICMPv6 checksum, tunnels' inner packets included, tunnels within the
//!   MTU, lvsfwd's own parser takes it back); the TTL / hop limit is the
//!   input's minus one (the inner one of a tunnel), unless the frame is an
//!   error the director generated back to the sender;
//! - `Kernel` and `Pass`: the frame is the input, byte for byte, except a
//!   TCP/UDP checksum field that was completed (and is then valid);
//! - after every step: the counters add up and the connection table holds
//!   no more than its capacity.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use lvsfwd::config::{self, Config};
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, Snapshot, Verdict};
use lvsfwd::dest::NextHop;
use lvsfwd::service::ServiceSpec;
use lvsfwd::time::Timestamp;
use lvsfwd::wire::FrameBuf;
use rustc_hash::FxHashMap;

use crate::{BUF, HEADROOM, check_emitted_from, csum_field, fix_checksums, hex, ip_layout, link};

/// The schedulers, by lb.toml name.
const ALGOS: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf", "twos", "sed", "nq",
];
const KINDS: [&str; 4] = ["DR", "TUN", "NAT", "FULLNAT"];
/// Service and real-server ports; 0 is a port-0 (all ports) service.
const PORTS: [u16; 6] = [80, 443, 0, 53, 8080, 9053];
const MTUS: [u16; 4] = [1500, 1280, 9000, 576];

/// The address plan, by family. VIPs, real servers (the last two are the
/// director's own address and loopback: Local forwarding), FULLNAT local
/// addresses, clients, routers (senders of ICMP errors), the director's
/// candidate addresses.
const VIPS: [[&str; 2]; 2] = [
    ["198.18.0.250", "198.18.0.251"],
    ["2001:2::250", "2001:2::251"],
];
const REALS: [[&str; 6]; 2] = [
    [
        "198.18.0.11",
        "198.18.0.12",
        "198.18.0.13",
        "198.18.0.14",
        "198.18.0.2",
        "127.0.0.1",
    ],
    [
        "2001:2::11",
        "2001:2::12",
        "2001:2::13",
        "2001:2::14",
        "2001:2::2",
        "::1",
    ],
];
const LOCALS: [[&str; 3]; 2] = [
    ["198.18.0.9", "198.18.0.10", "198.18.0.2"],
    ["2001:2::9", "2001:2::10", "2001:2::2"],
];
const CLIENTS: [[&str; 3]; 2] = [
    ["203.0.113.1", "203.0.113.2", "10.9.8.7"],
    ["2001:db8::1", "2001:db8::2", "2001:db8:5::7"],
];
const ROUTERS: [&str; 2] = ["192.0.2.1", "2001:db8:ffff::1"];
/// What the director's address list may hold (`Act::Addrs` picks).
const OWN_POOL: [&str; 6] = [
    "198.18.0.2",
    "2001:2::2",
    "198.18.0.11",
    "2001:2::11",
    "198.18.0.9",
    "2001:2::9",
];

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address plan")
}

fn pick<T: Copy>(xs: &[T], i: u8) -> T {
    xs[i as usize % xs.len()]
}

/// A whole input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    global: GlobalIn,
    a: [Option<SvcIn>; 4],
    b: [Option<SvcIn>; 4],
    /// 1–3 NICs.
    nics: u8,
    mtu: u8,
    /// Which of [`OWN_POOL`] the director has (bit mask).
    own_addrs: u8,
    neigh: [Option<NeighIn>; 8],
    #[arbitrary(with = steps)]
    steps: Vec<Step>,
}

/// Steps until the input ends (at most 64): `Vec`'s own decoding takes a
/// length from the input's end, which mutations rarely make long.
fn steps(u: &mut Unstructured) -> arbitrary::Result<Vec<Step>> {
    let mut v = Vec::new();
    while !u.is_empty() && v.len() < 64 {
        v.push(Step::arbitrary(u)?);
    }
    Ok(v)
}

#[derive(Arbitrary, Debug)]
struct GlobalIn {
    conn_max: u8,
    expire_nodest_conn: Option<bool>,
    expire_quiescent_template: Option<bool>,
    drop_entry: Option<bool>,
    tcp: Option<u8>,
    tcp_fin: Option<u8>,
    udp: Option<u8>,
}

#[derive(Arbitrary, Debug)]
struct SvcIn {
    v6: bool,
    vip: u8,
    port: u8,
    udp: bool,
    algo: u8,
    kind: u8,
    /// Bits: flag-1, flag-2, flag-3, and the scheduler's own names (sh-*,
    /// mh-*) when it is sh or mh.
    flags: u8,
    persistence: Option<u16>,
    granularity: Option<u8>,
    ops: bool,
    /// Bit mask over the family's [`LOCALS`] (FULLNAT; at least one).
    pool: u8,
    reals: [Option<RsIn>; 3],
}

#[derive(Arbitrary, Debug)]
struct RsIn {
    addr: u8,
    port: u8,
    weight: u8,
    mac: Option<u8>,
    uthreshold: Option<u8>,
    lthreshold: Option<u8>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct NeighIn {
    v6: bool,
    /// Over the family's [`REALS`] then [`CLIENTS`].
    addr: u8,
    nic: u8,
    mac: u8,
}

#[derive(Arbitrary, Debug)]
struct Step {
    dt: u8,
    /// dt in ms, 10 ms, s or minutes.
    unit: u8,
    act: Act,
}

#[derive(Arbitrary, Debug)]
enum Act {
    Frame(FrameIn),
    /// The reply of the peer of one of the last frames sent.
    Reply {
        pick: u8,
        flags: u8,
        csum: Csum,
        nic: u8,
    },
    /// An ICMP error about one of the last frames sent, from a router on
    /// its way or from its destination, to its source.
    IcmpAbout {
        pick: u8,
        kind: u8,
        from_router: bool,
        quote: u16,
        nic: u8,
    },
    Reload,
    Tick,
    Flush,
    Addrs(u8),
    Neigh([Option<NeighIn>; 8]),
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Csum {
    Valid,
    Partial,
    Garbage(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Ep {
    /// Client, VIP (most often), real server, local address, director,
    /// router.
    role: u8,
    idx: u8,
    port: u16,
    /// The port is one of [`PORTS`] (`port` picks) rather than `port`.
    known_port: bool,
}

#[derive(Arbitrary, Debug)]
enum L4In {
    Tcp {
        flags: u8,
        seq: u32,
    },
    Udp,
    /// An ICMP error quoting a packet `quoted_src` → `quoted_dst`.
    IcmpErr {
        kind: u8,
        tcp: bool,
        quoted_src: Ep,
        quoted_dst: Ep,
        quote: u16,
    },
    Echo,
}

#[derive(Arbitrary, Debug)]
struct FrameIn {
    /// To one of the live configuration's services (its VIP, port,
    /// protocol and family; any port for a port-0 service) rather than to
    /// `dst`.
    service: Option<u8>,
    nic: u8,
    v6: bool,
    src: Ep,
    dst: Ep,
    l4: L4In,
    ttl: u8,
    frag: u8,
    opts: u8,
    csum: Csum,
    len: u16,
    vlan: Option<u16>,
    /// 0: broadcast; otherwise the director's MAC on the ingress NIC.
    dmac: u8,
}

// ---- lb.toml text

fn q(s: impl std::fmt::Display) -> String {
    format!("\"{s}\"")
}

fn sockaddr(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}:{port}"),
        IpAddr::V6(_) => format!("[{a}]:{port}"),
    }
}

/// The lb.toml an input describes: `[global]`, `[timeouts]`, services.
fn lb_toml(g: &GlobalIn, nics: usize, svcs: &[Option<SvcIn>]) -> String {
    let mut t = String::new();
    let ifs: Vec<String> = (0..nics).map(|i| q(format!("lf{i}"))).collect();
    let _ = writeln!(t, "[global]\ninterface = [{}]", ifs.join(", "));
    let _ = writeln!(
        t,
        "conn_max = {}",
        [1u32, 8, 64, 1024][g.conn_max as usize % 4]
    );
    for (k, v) in [
        ("expire_nodest_conn", g.expire_nodest_conn),
        ("expire_quiescent_template", g.expire_quiescent_template),
        ("drop_entry", g.drop_entry),
    ] {
        if let Some(v) = v {
            let _ = writeln!(t, "{k} = {v}");
        }
    }
    let _ = writeln!(t, "\n[timeouts]");
    for (k, v) in [("tcp", g.tcp), ("tcp_fin", g.tcp_fin), ("udp", g.udp)] {
        if let Some(v) = v {
            let _ = writeln!(t, "{k} = {}", v.max(1));
        }
    }
    for s in svcs.iter().flatten() {
        let f = s.v6 as usize;
        let vip = ip(pick(&VIPS[f], s.vip));
        let port = pick(&PORTS, s.port);
        let algo = pick(&ALGOS, s.algo);
        let kind = pick(&KINDS, s.kind);
        let _ = writeln!(t, "\n[[virtual_server]]");
        let _ = writeln!(t, "address = {}", q(sockaddr(vip, port)));
        let _ = writeln!(t, "protocol = {}", q(if s.udp { "UDP" } else { "TCP" }));
        let _ = writeln!(t, "lb_algo = {}\nlb_kind = {}", q(algo), q(kind));
        let mut flags = Vec::new();
        for (bit, name) in [(1, "flag-1"), (2, "flag-2"), (4, "flag-3")] {
            if s.flags & bit != 0 {
                flags.push(q(name));
            }
        }
        if matches!(algo, "sh" | "mh") {
            for (bit, name) in [(8, "fallback"), (16, "port")] {
                if s.flags & bit != 0 {
                    flags.push(q(format!("{algo}-{name}")));
                }
            }
        }
        if !flags.is_empty() {
            let _ = writeln!(t, "sched_flags = [{}]", flags.join(", "));
        }
        // Port 0 needs persistence (ipvsadm's rule): give it some.
        let persistence = match s.persistence {
            None if port == 0 => Some(30),
            p => p,
        };
        if let Some(p) = persistence {
            match p % 1000 {
                0 => {
                    let _ = writeln!(t, "persistence_timeout = true");
                }
                n => {
                    let _ = writeln!(t, "persistence_timeout = {n}");
                }
            }
            if let Some(g) = s.granularity {
                if s.v6 {
                    let _ = writeln!(t, "persistence_granularity = {}", g % 129);
                } else {
                    let bits = (g % 33) as u32;
                    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                    let _ = writeln!(
                        t,
                        "persistence_granularity = {}",
                        q(std::net::Ipv4Addr::from(mask))
                    );
                }
            }
        }
        if s.ops && s.udp {
            let _ = writeln!(t, "ops = true");
        }
        if kind == "FULLNAT" {
            let pool: Vec<String> = LOCALS[f]
                .iter()
                .enumerate()
                .filter(|(i, _)| s.pool & (1 << i) != 0 || (*i == 0 && s.pool & 7 == 0))
                .map(|(_, a)| q(a))
                .collect();
            let _ = writeln!(t, "local_address = [{}]", pool.join(", "));
        }
        let mut seen = Vec::new();
        for r in s.reals.iter().flatten() {
            let a = ip(pick(&REALS[f], r.addr));
            let rport = if matches!(kind, "DR" | "TUN") {
                port
            } else {
                pick(&PORTS, r.port)
            };
            if seen.contains(&(a, rport)) {
                continue;
            }
            seen.push((a, rport));
            let _ = writeln!(t, "  [[virtual_server.real_server]]");
            let _ = writeln!(t, "  address = {}", q(sockaddr(a, rport)));
            let w = match r.weight % 8 {
                0 => 0,
                7 => 65535,
                n => n as u32,
            };
            let _ = writeln!(t, "  weight = {w}");
            if let Some(m) = r.mac {
                let _ = writeln!(t, "  mac = {}", q(format!("02:00:00:00:01:{m:02x}")));
            }
            let u = r.uthreshold.map(|u| u % 4);
            if let Some(u) = u {
                let _ = writeln!(t, "  uthreshold = {u}");
            }
            if let Some(l) = r.lthreshold {
                let _ = writeln!(t, "  lthreshold = {}", (l % 4).min(u.unwrap_or(0)));
            }
        }
    }
    t
}

// ---- frames

fn own_mac(nic: usize) -> [u8; 6] {
    [0x02, 0x1f, 0, 0, 0, 0x02 + nic as u8]
}
const PEER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];

impl Ep {
    fn addr(&self, v6: bool) -> IpAddr {
        let f = v6 as usize;
        ip(match self.role % 8 {
            0 | 1 => pick(&CLIENTS[f], self.idx),
            2..=4 => pick(&VIPS[f], self.idx),
            5 => pick(&REALS[f], self.idx),
            6 => pick(&LOCALS[f], self.idx),
            _ if self.idx & 1 == 0 => OWN_POOL[f],
            _ => ROUTERS[f],
        })
    }
    fn port(&self) -> u16 {
        if self.known_port {
            pick(&PORTS, self.port as u8)
        } else {
            self.port
        }
    }
}

/// An IP packet `src` → `dst` carrying `l4` (protocol `proto`): IPv4 with
/// `opts` option words, or IPv6 with a hop-by-hop header when `opts` asks;
/// `frag` makes it a first (MF) or a later fragment.
fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: &[u8],
    ttl: u8,
    frag: u8,
    opts: u8,
) -> Vec<u8> {
    let frag = match frag % 8 {
        6 => Some((0u16, true)),
        7 => Some((185u16, false)),
        _ => None,
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let opt: &[u8] = match opts % 4 {
                1 => &[1, 1, 1, 0],
                2 => &[7, 7, 4, 0, 0, 0, 0, 1],
                _ => &[],
            };
            let hlen = 20 + opt.len();
            let total = (hlen + l4.len()).min(u16::MAX as usize);
            let mut p = vec![0x40 | (hlen / 4) as u8, 0];
            p.extend_from_slice(&(total as u16).to_be_bytes());
            p.extend_from_slice(&[0x12, 0x34]);
            let fo = match frag {
                None if opts & 4 != 0 => 0,
                None => 0x4000u16,
                Some((off, mf)) => off | if mf { 0x2000 } else { 0 },
            };
            p.extend_from_slice(&fo.to_be_bytes());
            p.extend_from_slice(&[ttl, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(opt);
            p.extend_from_slice(l4);
            p.truncate(total);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ext = Vec::new();
            let mut first = proto;
            if let Some((off, mf)) = frag {
                let fo = ((off << 3) | mf as u16).to_be_bytes();
                ext = vec![first, 0, fo[0], fo[1], 0, 0, 0x56, 0x78];
                first = 44;
            }
            if opts % 4 == 1 {
                // Hop-by-hop: PadN over six bytes.
                ext.splice(0..0, [first, 0, 1, 4, 0, 0, 0, 0]);
                first = 0;
            }
            let plen = (ext.len() + l4.len()).min(u16::MAX as usize);
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(plen as u16).to_be_bytes());
            p.extend_from_slice(&[first, ttl]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&ext);
            p.extend_from_slice(l4);
            p.truncate(40 + plen);
            p
        }
        _ => unreachable!("one family per packet"),
    }
}

fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: usize) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(20 + payload, 0x61);
    t
}

fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let len = (8 + payload).min(u16::MAX as usize);
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(len, 0x62);
    u
}

/// An ICMP (v4) or ICMPv6 error of kind `kind` quoting `quoted`.
fn icmp_error(v6: bool, kind: u8, quoted: &[u8], quote: u16) -> (u8, Vec<u8>) {
    let (proto, ty, code, extra): (u8, u8, u8, [u8; 4]) = match (v6, kind % 4) {
        (false, 0) => (1, 3, 3, [0; 4]),          // port unreachable
        (false, 1) => (1, 3, 4, [0, 0, 5, 0x78]), // frag needed, MTU 1400
        (false, 2) => (1, 11, 0, [0; 4]),         // time exceeded
        (false, _) => (1, 3, 1, [0; 4]),          // host unreachable
        (true, 0) => (58, 1, 4, [0; 4]),          // port unreachable
        (true, 1) => (58, 2, 0, [0, 0, 5, 0x78]), // packet too big
        (true, 2) => (58, 3, 0, [0; 4]),          // time exceeded
        (true, _) => (58, 1, 3, [0; 4]),          // address unreachable
    };
    let n = quoted.len().min(match quote % 4 {
        0 => 28,
        1 => 48,
        2 => 8 + quote as usize / 4,
        _ => usize::MAX,
    });
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&extra);
    m.extend_from_slice(&quoted[..n]);
    (proto, m)
}

/// Ethernet (+ VLAN) around an IP packet.
fn ether(dst: [u8; 6], vlan: Option<u16>, v6: bool, packet: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + packet.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&PEER_MAC);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&(v & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(packet);
    f
}

/// Applies a checksum mode to a built frame: repairs every checksum, then
/// leaves the TCP/UDP one partial (the pseudo-header sum, uncomplemented)
/// or overwrites it.
fn apply_csum(frame: &mut [u8], mode: Csum) {
    fix_checksums(frame);
    if mode == Csum::Valid {
        return;
    }
    let Some((off, et)) = link(frame) else { return };
    let Ok(l) = ip_layout(&frame[off..], et) else {
        return;
    };
    if l.fragment || !matches!(l.proto, 6 | 17) {
        return;
    }
    let Some((at, _)) = csum_field(l.proto, l.v4) else {
        return;
    };
    let field = off + l.l4_off + at;
    if field + 2 > off + l.total {
        return;
    }
    let value = match mode {
        Csum::Garbage(v) => v,
        _ => {
            let p = &frame[off..];
            let ps = crate::pseudo(p, &l, l.total - l.l4_off);
            crate::naive_sum(&[&ps])
        }
    };
    frame[field..field + 2].copy_from_slice(&value.to_be_bytes());
}

/// The source, destination and TTL / hop limit of an IP packet, and
/// whether it is a tunnel (IPIP / IPv6-in-IP) — then with the inner TTL.
struct Seen {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tunnel_inner_ttl: Option<u8>,
}

fn seen(frame: &[u8]) -> Option<Seen> {
    let (off, et) = link(frame)?;
    let p = frame.get(off..)?;
    let l = ip_layout(p, et).ok()?;
    let (src, dst) = if l.v4 {
        (
            IpAddr::from(<[u8; 4]>::try_from(&p[12..16]).ok()?),
            IpAddr::from(<[u8; 4]>::try_from(&p[16..20]).ok()?),
        )
    } else {
        (
            IpAddr::from(<[u8; 16]>::try_from(&p[8..24]).ok()?),
            IpAddr::from(<[u8; 16]>::try_from(&p[24..40]).ok()?),
        )
    };
    let tunnel_inner_ttl = match l.proto {
        4 => p.get(l.l4_off + 8).copied(),
        41 => p.get(l.l4_off + 7).copied(),
        _ => None,
    };
    Some(Seen {
        src,
        dst,
        ttl: l.ttl,
        tunnel_inner_ttl,
    })
}

// ---- the run

/// The last frames the director sent, for replies and ICMP errors.
const KEEP: usize = 8;

struct Run {
    dp: Dataplane,
    nics: usize,
    mtu: u16,
    configs: [Option<(Arc<Vec<ServiceSpec>>, Config)>; 2],
    current: usize,
    /// The configuration last applied.
    applied: usize,
    neighbours: Arc<FxHashMap<IpAddr, NextHop>>,
    own_macs: Arc<Vec<[u8; 6]>>,
    own_addrs: Arc<Vec<IpAddr>>,
    generation: u64,
    now: Timestamp,
    sent: Vec<Vec<u8>>,
}

fn neighbours(list: &[Option<NeighIn>], nics: usize) -> FxHashMap<IpAddr, NextHop> {
    list.iter()
        .flatten()
        .map(|n| {
            let f = n.v6 as usize;
            let a = n.addr as usize % (REALS[f].len() + CLIENTS[f].len());
            let a = REALS[f]
                .get(a)
                .copied()
                .unwrap_or_else(|| CLIENTS[f][a - REALS[f].len()]);
            (
                ip(a),
                NextHop {
                    nic: (n.nic as usize % nics) as _,
                    mac: [0x02, 0x1f, 0, 1, n.nic, n.mac],
                    src: None,
                },
            )
        })
        .collect()
}

fn own_addrs(bits: u8) -> Vec<IpAddr> {
    OWN_POOL
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, a)| ip(a))
        .collect()
}

impl Run {
    fn snapshot(&mut self, services: Option<usize>) {
        self.generation += 1;
        let (specs, cfg) = match services.and_then(|i| self.configs[i].as_ref()) {
            Some((s, c)) => (Some(Arc::clone(s)), Some(c)),
            None => (None, None),
        };
        self.dp.apply_snapshot(&Snapshot {
            generation: self.generation,
            neighbours: Arc::clone(&self.neighbours),
            own_macs: Arc::clone(&self.own_macs),
            own_addrs: Arc::clone(&self.own_addrs),
            services: specs,
            timeouts: cfg.map(|c| c.timeouts),
            sysctls: cfg.map(|c| c.sysctls()),
        });
    }

    fn advance(&mut self, dt: u8, unit: u8) {
        let ns = dt as u64
            * match unit % 4 {
                0 => 1_000_000,
                1 => 10_000_000,
                2 => 1_000_000_000,
                _ => 60_000_000_000,
            };
        self.now = Timestamp::from_nanos(self.now.as_nanos().saturating_add(ns));
        if ns >= 1_000_000_000 {
            self.dp.tick(self.now);
        }
    }

    fn step(&mut self, s: &Step) {
        self.advance(s.dt, s.unit);
        match &s.act {
            Act::Frame(f) => {
                let (frame, strict) = self.build(f);
                self.send(frame, f.nic, strict);
            }
            Act::Reply {
                pick,
                flags,
                csum,
                nic,
            } => {
                if self.sent.is_empty() {
                    return;
                }
                let last = &self.sent[*pick as usize % self.sent.len()];
                let mut f = crate::reply_to(last, Some(*flags));
                // Addressed to the director's MAC on the NIC it arrives on.
                let nic = *nic as usize % self.nics;
                if f.len() >= 12 {
                    f[0..6].copy_from_slice(&own_mac(nic));
                    f[6..12].copy_from_slice(&PEER_MAC);
                }
                apply_csum(&mut f, *csum);
                let strict = !matches!(csum, Csum::Garbage(_));
                self.send(f, nic as u8, strict);
            }
            Act::IcmpAbout {
                pick,
                kind,
                from_router,
                quote,
                nic,
            } => {
                if self.sent.is_empty() {
                    return;
                }
                let last = &self.sent[*pick as usize % self.sent.len()];
                let (Some((off, _)), Some(s)) = (link(last), seen(last)) else {
                    return;
                };
                let v6 = s.src.is_ipv6();
                let from = if *from_router {
                    ip(ROUTERS[v6 as usize])
                } else {
                    s.dst
                };
                let (proto, m) = icmp_error(v6, *kind, &last[off..], *quote);
                let p = ip_packet(from, s.src, proto, &m, 64, 0, 0);
                let nic = *nic as usize % self.nics;
                let mut f = ether(own_mac(nic), None, v6, &p);
                fix_checksums(&mut f);
                self.send(f, nic as u8, true);
            }
            Act::Reload => {
                self.current ^= 1;
                let i = if self.configs[self.current].is_some() {
                    self.current
                } else {
                    0
                };
                self.applied = i;
                self.snapshot(Some(i));
            }
            Act::Tick => self.dp.tick(self.now),
            Act::Flush => {
                self.dp.flush_nodest_conns();
            }
            Act::Addrs(bits) => {
                self.own_addrs = Arc::new(own_addrs(*bits));
                self.snapshot(None);
            }
            Act::Neigh(list) => {
                self.neighbours = Arc::new(neighbours(list, self.nics));
                self.snapshot(None);
            }
        }
        let c = &self.dp.counters;
        assert_eq!(
            c.rx,
            c.tx + c.pass + c.drop + c.kernel + c.consumed,
            "counters do not add up"
        );
        assert!(
            self.dp.conns.len() <= self.dp.conns.capacity(),
            "conn table over capacity"
        );
    }

    /// A frame from its description; whether its checksums are meant to
    /// hold (valid or partial).
    fn build(&self, f: &FrameIn) -> (Vec<u8>, bool) {
        let specs = self.configs[self.applied].as_ref().map(|c| &c.0[..]);
        let svc = match (f.service, specs) {
            (Some(i), Some(s)) if !s.is_empty() => Some(&s[i as usize % s.len()].key),
            _ => None,
        };
        let v6 = svc.map_or(f.v6, |k| k.addr.is_ipv6());
        let src = f.src.addr(v6);
        let (dst, dport) = match svc {
            Some(k) if k.port != 0 => (k.addr, k.port),
            Some(k) => (k.addr, f.dst.port()),
            None => (f.dst.addr(v6), f.dst.port()),
        };
        let svc_udp = svc.map(|k| k.proto == lvsfwd::service::Protocol::Udp);
        let payload = match f.len % 8 {
            0..=4 => (f.len / 8) as usize % 64,
            5 | 6 => (f.len / 8) as usize % 1500,
            _ => (f.len / 8) as usize % 3800,
        };
        let (proto, l4) = match &f.l4 {
            L4In::Tcp { .. } | L4In::Udp if svc_udp == Some(true) => {
                (17, udp(f.src.port(), dport, payload))
            }
            L4In::Tcp { flags, seq } => {
                let flags = match flags & 3 {
                    0 => 0x02,
                    1 => 0x10,
                    2 => 0x11,
                    _ => flags >> 2,
                };
                (6, tcp(f.src.port(), dport, *seq, flags, payload))
            }
            L4In::Udp if svc_udp == Some(false) => (6, tcp(f.src.port(), dport, 0, 0x02, payload)),
            L4In::Udp => (17, udp(f.src.port(), dport, payload)),
            L4In::Echo => {
                let mut m = if v6 {
                    vec![128, 0, 0, 0]
                } else {
                    vec![8, 0, 0, 0]
                };
                m.extend_from_slice(&[0, 1, 0, 1]);
                m.resize(8 + payload, 0x63);
                (if v6 { 58 } else { 1 }, m)
            }
            L4In::IcmpErr {
                kind,
                tcp: t,
                quoted_src,
                quoted_dst,
                quote,
            } => {
                let (qs, qd) = (quoted_src.addr(v6), quoted_dst.addr(v6));
                let (qp, ql4) = if *t {
                    (6, tcp(quoted_src.port(), quoted_dst.port(), 1, 0x02, 0))
                } else {
                    (17, udp(quoted_src.port(), quoted_dst.port(), 16))
                };
                let mut inner = ip_packet(qs, qd, qp, &ql4, 63, 0, 0);
                crate::fix_ip(&mut inner, if v6 { 0x86dd } else { 0x0800 });
                icmp_error(v6, *kind, &inner, *quote)
            }
        };
        let ttl = match f.ttl % 8 {
            0 => 0,
            1 => 1,
            2 => 2,
            _ => 64,
        };
        let p = ip_packet(src, dst, proto, &l4, ttl, f.frag, f.opts);
        let dmac = if f.dmac == 0 {
            [0xff; 6]
        } else {
            own_mac(f.nic as usize % self.nics)
        };
        let mut frame = ether(dmac, f.vlan, v6, &p);
        apply_csum(&mut frame, f.csum);
        (frame, !matches!(f.csum, Csum::Garbage(_)))
    }

    fn send(&mut self, input: Vec<u8>, nic: u8, strict: bool) {
        let nic = nic as usize % self.nics;
        if input.len() + HEADROOM > BUF {
            self.dp.count_oversized();
            return;
        }
        let mut buf = [0u8; BUF];
        buf[HEADROOM..HEADROOM + input.len()].copy_from_slice(&input);
        let mut fb = FrameBuf::new(&mut buf, HEADROOM, input.len());
        let v = self.dp.process_on(&mut fb, nic as _, self.now);
        let out = fb.data().to_vec();
        let fail = |what: String| -> ! {
            panic!(
                "{what}\n verdict {v:?} on NIC {nic}\n input  {}\n output {}",
                hex(&input),
                hex(&out)
            )
        };
        match v {
            Verdict::Tx(o) => {
                let o = usize::from(o);
                if o >= self.nics {
                    fail(format!("sent out of NIC {o} of {}", self.nics));
                }
                if let Err(e) = check_emitted_from(&out, strict, self.mtu, own_mac(o)) {
                    fail(format!("emitted frame is wrong: {e}"));
                }
                if let (Some(i), Some(s)) = (seen(&input), seen(&out)) {
                    let generated = s.dst == i.src;
                    let ttl = if i.tunnel_inner_ttl.is_none() {
                        s.tunnel_inner_ttl.unwrap_or(s.ttl)
                    } else {
                        s.ttl
                    };
                    if !generated && ttl != i.ttl.wrapping_sub(1) {
                        fail(format!("TTL {} in, {ttl} out", i.ttl));
                    }
                }
                if self.sent.len() == KEEP {
                    self.sent.remove(0);
                }
                self.sent.push(out);
            }
            Verdict::Kernel(_) | Verdict::Pass => {
                if out.len() != input.len() {
                    fail("the kernel's frame changed length".into());
                }
                let diff: Vec<usize> = (0..out.len()).filter(|&i| out[i] != input[i]).collect();
                if !diff.is_empty() {
                    // Only a completed TCP/UDP checksum may differ.
                    let field = link(&out).and_then(|(off, et)| {
                        let l = ip_layout(&out[off..], et).ok()?;
                        let (at, _) =
                            csum_field(l.proto, l.v4).filter(|_| matches!(l.proto, 6 | 17))?;
                        Some(off + l.l4_off + at)
                    });
                    match field {
                        Some(at) if diff.iter().all(|&i| i == at || i == at + 1) => {
                            if !crate::checksums_valid(&out) {
                                fail("a completed checksum is not valid".into());
                            }
                        }
                        _ => fail(format!("the kernel's frame changed at bytes {diff:?}")),
                    }
                }
            }
            Verdict::Drop(_) => {}
            // Handed over to the worker holding a synced conn: untouched.
            Verdict::HandOver(_) => {
                if out != input {
                    fail("a frame handed over was changed".into());
                }
            }
            Verdict::Consumed => {
                // Fragments kept, or a datagram / tunnel packet sent in
                // fragments: each well formed, out of a NIC that exists.
                for (f, o) in self.dp.extra() {
                    if o == lvsfwd::dataplane::TO_KERNEL {
                        continue;
                    }
                    let o = usize::from(o);
                    if o >= self.nics {
                        fail(format!("fragment sent out of NIC {o} of {}", self.nics));
                    }
                    if let Err(e) = check_emitted_from(f, strict, self.mtu, own_mac(o)) {
                        fail(format!("emitted fragment is wrong: {e}"));
                    }
                }
                self.dp.clear_extra();
            }
        }
    }
}

/// Runs one input: see the module docs.
pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    run_input(&input);
}

/// Deterministic pseudo-random inputs (xorshift), for the seed corpus and
/// the tests.
pub fn pseudo_random_input(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn load(text: &str) -> Option<(Arc<Vec<ServiceSpec>>, Config)> {
    let cfg = config::parse_str(text, "lb.toml").ok()?;
    Some((Arc::new(cfg.service_specs()), cfg))
}

/// Runs a decoded input; the frames received and sent when its first
/// configuration loaded.
pub fn run_input(input: &Input) -> Option<lvsfwd::dataplane::Counters> {
    let nics = 1 + input.nics as usize % 3;
    let a = load(&lb_toml(&input.global, nics, &input.a))?;
    let b = load(&lb_toml(&input.global, nics, &input.b));
    let mtu = pick(&MTUS, input.mtu);
    let own_macs: Vec<[u8; 6]> = (0..nics).map(own_mac).collect();
    let addrs = own_addrs(input.own_addrs);
    // As the daemon builds a worker's data plane (daemon::dataplane).
    let base = a.1.dataplane_config();
    let dcfg = DataplaneConfig {
        own_macs: own_macs.clone(),
        own_addrs: addrs.clone(),
        mtu,
        conn_max: base.conn_max.min(4096),
        ..base
    };
    let dp = a.1.dataplane(dcfg);
    let mut run = Run {
        dp,
        nics,
        mtu,
        configs: [Some(a), b],
        current: 0,
        applied: 0,
        neighbours: Arc::new(neighbours(&input.neigh, nics)),
        own_macs: Arc::new(own_macs),
        own_addrs: Arc::new(addrs),
        generation: 0,
        now: Timestamp::from_secs(1),
        sent: Vec::with_capacity(KEEP),
    };
    // The daemon's first snapshot: everything, the services included.
    run.snapshot(Some(0));
    for s in input.steps.iter().take(64) {
        run.step(s);
    }
    Some(run.dp.counters.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Most inputs must load and reach the pipeline, or the fuzzer spends
    /// its time in the loader (which the lb_toml target covers).
    #[test]
    fn pseudo_random_inputs_mostly_load_and_forward() {
        let (mut loaded, mut rx, mut tx, mut texts) = (0, 0, 0, 0);
        let mut why = std::collections::BTreeMap::new();
        for seed in 0..400 {
            let data = pseudo_random_input(seed, 4096);
            let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(&data)) else {
                continue;
            };
            texts += 1;
            if let Some(c) = run_input(&input) {
                loaded += 1;
                rx += c.rx;
                tx += c.tx;
                for (k, n) in c.drop_reasons().into_iter().chain(c.kernel_reasons()) {
                    *why.entry(k).or_insert(0) += n;
                }
                *why.entry("pass").or_insert(0) += c.pass;
            }
        }
        eprintln!("{texts} decoded, {loaded} loaded, {rx} frames, {tx} sent; {why:?}");
        assert!(loaded * 2 > texts, "{loaded} of {texts} loaded");
        assert!(tx * 50 > rx, "{tx} of {rx} sent");
    }
}
