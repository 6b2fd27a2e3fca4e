//! Shared harness of lvsfwd's fuzz targets: the frame-pipeline driver (a
//! real [`Dataplane`] over a fixed two-configuration service table), an
//! independent checker of every frame the pipeline emits, and the input
//! encodings the targets and the seed generator agree on.
//!
//! Invariants checked by [`FrameRun`] on every input:
//! - nothing panics (the data plane, the conn table, the schedulers);
//! - every transmitted frame is well-formed: Ethernet (tags allowed) + IP
//!   whose lengths fit the frame, sent from the director's MAC, TTL / hop
//!   limit above zero, valid IPv4 header checksums (outer and, for tunnels,
//!   inner), tunnels no larger than the MTU;
//! - when the input frame's checksums were valid (the harness repairs them
//!   when the record asks for it), every checksum of the emitted frame is
//!   valid too: TCP, UDP, ICMP, ICMPv6, the quoted IPv4 header of an ICMP
//!   error, and the inner packet of a tunnel;
//! - the counters add up (rx = tx + pass + drop + kernel) and the connection table
//!   never holds more than its capacity.
//!
//! The checker is deliberately independent of `lvsfwd::wire`: it walks the
//! headers itself and sums with the slow RFC 1071 loop (the approach of
//! tests/common/mod.rs), so a bug shared by the parser and the rewrites
//! cannot hide itself.
//!
//! Not done here: anything that needs the AF_XDP shell or a clock.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::Arc;

pub mod config_traffic;

use lvsfwd::config;
use lvsfwd::conn::ConnSysctls;
use lvsfwd::dataplane::Snapshot;
use lvsfwd::dataplane::{Dataplane, DataplaneConfig, Verdict};
use lvsfwd::dest::NextHop;
use lvsfwd::service::ServiceSpec;
use lvsfwd::time::Timestamp;
use lvsfwd::wire::FrameBuf;
use rustc_hash::FxHashMap;

/// The director's MAC in the fuzzed data plane.
pub const OWN_MAC: [u8; 6] = [0x02, 0x1f, 0, 0, 0, 0x02];
/// Headroom in front of every frame, as the AF_XDP UMEM and replay keep it.
pub const HEADROOM: usize = 256;
/// Size of the frame buffer (headroom included): a UMEM frame.
pub const BUF: usize = 4096;

/// The first configuration: every forwarding method, both families, TCP and
/// UDP, persistence, a port-0 service, one real server without a next hop.
/// Addresses follow the rigs' plan, so frames captured on a rig hit it.
pub const LB_TOML_A: &str = r#"
[global]
interface = "lf0"

[[virtual_server]]
address = "198.18.0.250:80"
protocol = "TCP"
lb_algo = "wlc"
lb_kind = "NAT"
  [[virtual_server.real_server]]
  address = "198.18.0.13:8080"
  weight = 1
  [[virtual_server.real_server]]
  address = "198.18.0.11:8080"
  weight = 1
  [[virtual_server.real_server]]
  address = "198.18.0.12:8080"
  weight = 2

[[virtual_server]]
address = "[2001:2::250]:80"
protocol = "TCP"
lb_algo = "rr"
lb_kind = "TUN"
  [[virtual_server.real_server]]
  address = "[2001:2::11]:80"
  [[virtual_server.real_server]]
  address = "[2001:2::12]:80"

[[virtual_server]]
address = "198.18.0.250:9053"
protocol = "UDP"
lb_algo = "sh"
lb_kind = "FULLNAT"
local_address = ["198.18.0.9"]
  [[virtual_server.real_server]]
  address = "198.18.0.11:9053"
  [[virtual_server.real_server]]
  address = "198.18.0.12:9053"

[[virtual_server]]
address = "[2001:2::250]:9053"
protocol = "UDP"
lb_algo = "rr"
lb_kind = "DR"
ops = true
  [[virtual_server.real_server]]
  address = "[2001:2::11]:9053"

[[virtual_server]]
address = "198.18.0.250:0"
protocol = "TCP"
lb_algo = "lblc"
lb_kind = "DR"
persistence_timeout = 30
  [[virtual_server.real_server]]
  address = "198.18.0.11:0"
  [[virtual_server.real_server]]
  address = "198.18.0.12:0"

[[virtual_server]]
address = "198.18.0.250:443"
protocol = "TCP"
lb_algo = "mh"
lb_kind = "TUN"
persistence_timeout = 60
  [[virtual_server.real_server]]
  address = "198.18.0.11:443"
  [[virtual_server.real_server]]
  address = "198.18.0.12:443"

[[virtual_server]]
address = "[2001:2::250]:443"
protocol = "TCP"
lb_algo = "lc"
lb_kind = "FULLNAT"
local_address = ["2001:2::9"]
  [[virtual_server.real_server]]
  address = "[2001:2::11]:8443"
  [[virtual_server.real_server]]
  address = "[2001:2::12]:8443"
"#;

/// The second configuration (a reload of the first): a real server
/// removed, weights and schedulers changed, a service gone, one added.
pub const LB_TOML_B: &str = r#"
[global]
interface = "lf0"

[[virtual_server]]
address = "198.18.0.250:80"
protocol = "TCP"
lb_algo = "rr"
lb_kind = "NAT"
  [[virtual_server.real_server]]
  address = "198.18.0.11:8080"
  weight = 0
  [[virtual_server.real_server]]
  address = "198.18.0.13:8080"
  weight = 3

[[virtual_server]]
address = "[2001:2::250]:80"
protocol = "TCP"
lb_algo = "wrr"
lb_kind = "TUN"
  [[virtual_server.real_server]]
  address = "[2001:2::12]:80"
  weight = 5

[[virtual_server]]
address = "198.18.0.250:9053"
protocol = "UDP"
lb_algo = "twos"
lb_kind = "FULLNAT"
local_address = ["198.18.0.9", "198.18.0.10"]
  [[virtual_server.real_server]]
  address = "198.18.0.12:9053"

[[virtual_server]]
address = "198.18.0.250:443"
protocol = "TCP"
lb_algo = "sed"
lb_kind = "DR"
persistence_timeout = 60
  [[virtual_server.real_server]]
  address = "198.18.0.12:443"

[[virtual_server]]
address = "198.18.0.251:80"
protocol = "TCP"
lb_algo = "dh"
lb_kind = "NAT"
  [[virtual_server.real_server]]
  address = "198.18.0.14:80"
"#;

fn specs(text: &str) -> Vec<ServiceSpec> {
    config::parse_str(text, "fuzz.toml")
        .unwrap_or_else(|e| panic!("harness configuration refused: {e}"))
        .service_specs()
}

/// Settings picked by the first byte of a frame-pipeline input.
#[derive(Copy, Clone, Debug)]
pub struct Knobs {
    pub conn_max: usize,
    pub mtu: u16,
    pub expire_nodest_conn: bool,
    pub expire_quiescent_template: bool,
}

impl Knobs {
    pub fn from_byte(b: u8) -> Knobs {
        Knobs {
            conn_max: [16, 64, 1024, 4096][(b & 3) as usize],
            mtu: [1500, 1280, 9000, 576][((b >> 2) & 3) as usize],
            expire_nodest_conn: b & 0x10 != 0,
            expire_quiescent_template: b & 0x20 != 0,
        }
    }
}

/// What a record of a frame-pipeline input asks for (its control byte).
pub mod ctl {
    /// Repair the frame's checksums first; then every emitted checksum must
    /// be valid.
    pub const FIX: u8 = 0x01;
    /// The time step is `dt` seconds rather than `dt` x 10 ms.
    pub const SECONDS: u8 = 0x02;
    /// Instead of the record's bytes, send the reply to the last emitted
    /// frame (addresses, ports and MACs swapped), with the record's first
    /// byte as its TCP flags.
    pub const REFLECT: u8 = 0x04;
    /// Apply the other configuration (a hitless reload) before the frame.
    pub const RELOAD: u8 = 0x08;
    /// `flush_nodest_conns` before the frame.
    pub const FLUSH: u8 = 0x10;
    /// Run the timers before the frame.
    pub const TICK: u8 = 0x20;
}

/// Encodes one record of a frame-pipeline input (the inverse of the
/// decoding in [`FrameRun::run`]): control byte, time step, length (LE),
/// bytes.
pub fn record(ctl: u8, dt: u8, frame: &[u8]) -> Vec<u8> {
    let len = frame.len().min(u16::MAX as usize);
    let mut v = vec![ctl, dt];
    v.extend_from_slice(&(len as u16).to_le_bytes());
    v.extend_from_slice(&frame[..len]);
    v
}

/// One frame-pipeline run: a data plane and the state between records.
pub struct FrameRun {
    pub dp: Dataplane,
    configs: [Vec<ServiceSpec>; 2],
    current: usize,
    now: Timestamp,
    /// The last frame the data plane transmitted.
    pub last_tx: Option<Vec<u8>>,
    pub knobs: Knobs,
}

impl FrameRun {
    pub fn new(knobs: Knobs) -> FrameRun {
        // Parsed once per process: the loader has its own target.
        static CONFIGS: std::sync::OnceLock<[Vec<ServiceSpec>; 2]> = std::sync::OnceLock::new();
        let configs = CONFIGS
            .get_or_init(|| [specs(LB_TOML_A), specs(LB_TOML_B)])
            .clone();
        let dcfg = DataplaneConfig {
            own_macs: vec![OWN_MAC],
            own_addrs: vec!["198.18.0.2".parse().unwrap(), "2001:2::2".parse().unwrap()],
            mtu: knobs.mtu,
            partial_csum_nics: u8::MAX,
            conn_max: knobs.conn_max,
            timeouts: Default::default(),
            sysctls: ConnSysctls {
                expire_nodest_conn: knobs.expire_nodest_conn,
                expire_quiescent_template: knobs.expire_quiescent_template,
                ..ConnSysctls::default()
            },
            seed: 7,
            hash_seeds: lvsfwd::dataplane::HashSeeds::FIXED,
        };
        let mut dp = Dataplane::new(dcfg, lvsfwd::service::ServiceTable::from_specs(&configs[0]));
        // Every real server has a next hop except 198.18.0.13 (NoNextHop).
        let neigh: FxHashMap<IpAddr, NextHop> = [
            "198.18.0.11",
            "198.18.0.12",
            "198.18.0.14",
            "2001:2::11",
            "2001:2::12",
        ]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                a.parse::<IpAddr>().unwrap(),
                NextHop {
                    nic: 0,
                    mac: [0x02, 0x1f, 0, 0, 1, i as u8 + 1],
                    src: None,
                },
            )
        })
        .collect();
        dp.apply_snapshot(&Snapshot {
            generation: 1,
            neighbours: Arc::new(neigh),
            own_macs: Arc::new(vec![OWN_MAC]),
            own_addrs: Arc::new(vec![
                "198.18.0.2".parse().unwrap(),
                "2001:2::2".parse().unwrap(),
            ]),
            services: None,
            timeouts: None,
            sysctls: None,
        });
        FrameRun {
            dp,
            configs,
            current: 0,
            now: Timestamp::from_nanos(1_000_000_000),
            last_tx: None,
            knobs,
        }
    }

    /// Runs a whole input: knob byte, then records until the bytes end.
    pub fn run(data: &[u8]) {
        let Some((&k, mut rest)) = data.split_first() else {
            return;
        };
        let mut run = FrameRun::new(Knobs::from_byte(k));
        while rest.len() >= 4 {
            let (c, dt) = (rest[0], rest[1]);
            let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
            let body = &rest[4..];
            let len = len.min(body.len());
            run.step(c, dt, &body[..len]);
            rest = &body[len..];
        }
    }

    /// One record.
    pub fn step(&mut self, c: u8, dt: u8, bytes: &[u8]) {
        let step_ns = if c & ctl::SECONDS != 0 {
            dt as u64 * 1_000_000_000
        } else {
            dt as u64 * 10_000_000
        };
        self.now = Timestamp::from_nanos(self.now.as_nanos().saturating_add(step_ns));
        if c & ctl::RELOAD != 0 {
            self.current ^= 1;
            self.dp.apply_services(&self.configs[self.current]);
        }
        if c & ctl::FLUSH != 0 {
            self.dp.flush_nodest_conns();
        }
        if c & ctl::TICK != 0 {
            self.dp.tick(self.now);
        }
        let mut frame: Vec<u8> = if c & ctl::REFLECT != 0 {
            match &self.last_tx {
                Some(f) => reply_to(f, bytes.first().copied()),
                None => return,
            }
        } else {
            bytes.to_vec()
        };
        let strict = c & ctl::FIX != 0 || c & ctl::REFLECT != 0;
        if strict {
            fix_checksums(&mut frame);
        }
        if frame.len() + HEADROOM > BUF {
            self.dp.count_oversized();
            return;
        }
        let mut buf = [0u8; BUF];
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(&frame);
        let input_ok = checksums_valid(&frame);
        let mut fb = FrameBuf::new(&mut buf, HEADROOM, frame.len());
        let v = self.dp.process(&mut fb, self.now);
        if v == Verdict::Tx(0) {
            let out = fb.data().to_vec();
            if let Err(e) = check_emitted(&out, input_ok, self.knobs.mtu) {
                panic!(
                    "emitted frame is wrong: {e}\n input  {}\n output {}",
                    hex(&frame),
                    hex(&out)
                );
            }
            self.last_tx = Some(out);
        }
        if v == Verdict::Consumed {
            // Fragments (of a reassembled datagram or a tunnel packet): each
            // a well-formed frame within the MTU.
            for (out, nic) in self.dp.extra() {
                if nic == lvsfwd::dataplane::TO_KERNEL {
                    continue;
                }
                if let Err(e) = check_emitted(out, input_ok, self.knobs.mtu) {
                    panic!(
                        "emitted fragment is wrong: {e}\n input  {}\n output {}",
                        hex(&frame),
                        hex(out)
                    );
                }
            }
            self.dp.clear_extra();
        }
        let (held, bytes) = self.dp.frags_held();
        assert!(
            held <= lvsfwd::dataplane::reasm::SLOTS && bytes <= held * 65535,
            "reassembly over its pool"
        );
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
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---- independent header walking and checksums

/// RFC 1071 sum, the slow obvious way.
pub fn naive_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for c in chunks {
        for &b in c.iter() {
            match odd.take() {
                None => odd = Some(b),
                Some(h) => sum += u16::from_be_bytes([h, b]) as u64,
            }
        }
    }
    if let Some(h) = odd {
        sum += u16::from_be_bytes([h, 0]) as u64;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Where the IP packet starts and its ethertype, after any VLAN tags.
fn link(frame: &[u8]) -> Option<(usize, u16)> {
    let mut et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut off = 14;
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
        et = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
        off += 4;
    }
    Some((off, et))
}

/// An IP packet's layout, as this checker reads it.
#[derive(Debug)]
struct Ip {
    v4: bool,
    /// Header length (IPv4 with options; IPv6 fixed header only).
    hlen: usize,
    /// Total length of the IP packet.
    total: usize,
    /// Offset of the upper-layer header and its protocol.
    l4_off: usize,
    proto: u8,
    /// Part of a fragmented datagram: the L4 checksum cannot be checked.
    fragment: bool,
    ttl: u8,
}

fn ip_layout(p: &[u8], ethertype: u16) -> Result<Ip, String> {
    match ethertype {
        0x0800 => {
            let b0 = *p.first().ok_or("empty IPv4")?;
            if b0 >> 4 != 4 {
                return Err("IPv4 ethertype, version not 4".into());
            }
            let hlen = (b0 & 0x0f) as usize * 4;
            if hlen < 20 || p.len() < hlen {
                return Err(format!("IPv4 header length {hlen}, {} bytes", p.len()));
            }
            let total = u16::from_be_bytes([p[2], p[3]]) as usize;
            if total < hlen || total > p.len() {
                return Err(format!("IPv4 total length {total} (frame {})", p.len()));
            }
            let frag = u16::from_be_bytes([p[6], p[7]]);
            Ok(Ip {
                v4: true,
                hlen,
                total,
                l4_off: hlen,
                proto: p[9],
                fragment: frag & 0x3fff != 0,
                ttl: p[8],
            })
        }
        0x86dd => {
            if p.len() < 40 || p[0] >> 4 != 6 {
                return Err("IPv6 header short or version not 6".into());
            }
            let total = 40 + u16::from_be_bytes([p[4], p[5]]) as usize;
            if total > p.len() {
                return Err(format!("IPv6 payload beyond the frame ({total})"));
            }
            let (mut nh, mut off, mut fragment) = (p[6], 40usize, false);
            loop {
                match nh {
                    0 | 43 | 60 => {
                        let l = (*p.get(off + 1).ok_or("ext header")? as usize + 1) * 8;
                        nh = p[off];
                        off += l;
                    }
                    51 => {
                        let l = (*p.get(off + 1).ok_or("AH")? as usize + 2) * 4;
                        nh = p[off];
                        off += l;
                    }
                    44 => {
                        let fo = u16::from_be_bytes([
                            *p.get(off + 2).ok_or("frag")?,
                            *p.get(off + 3).ok_or("frag")?,
                        ]);
                        fragment |= fo != 0;
                        nh = p[off];
                        off += 8;
                    }
                    _ => break,
                }
                if off > total {
                    return Err("IPv6 extension headers beyond the payload".into());
                }
            }
            Ok(Ip {
                v4: false,
                hlen: 40,
                total,
                l4_off: off,
                proto: nh,
                fragment,
                ttl: p[7],
            })
        }
        other => Err(format!("not IP: ethertype {other:#06x}")),
    }
}

fn pseudo(p: &[u8], ip: &Ip, l4_len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    if ip.v4 {
        v.extend_from_slice(&p[12..20]);
        v.extend_from_slice(&[0, ip.proto]);
        v.extend_from_slice(&(l4_len as u16).to_be_bytes());
    } else {
        v.extend_from_slice(&p[8..40]);
        v.extend_from_slice(&(l4_len as u32).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, ip.proto]);
    }
    v
}

/// Offset of the L4 checksum field and whether the pseudo-header counts.
fn csum_field(proto: u8, v4: bool) -> Option<(usize, bool)> {
    match (proto, v4) {
        (6, _) => Some((16, true)),
        (17, _) => Some((6, true)),
        (1, true) => Some((2, false)),
        (58, false) => Some((2, true)),
        _ => None,
    }
}

/// Recomputes the IPv4 header checksum and the L4 checksum of an IP
/// packet (and of the quoted IPv4 header of an ICMP error). Leaves
/// anything it cannot lay out alone.
fn fix_ip(p: &mut [u8], ethertype: u16) {
    let Ok(ip) = ip_layout(p, ethertype) else {
        return;
    };
    if ip.v4 {
        p[10] = 0;
        p[11] = 0;
        let s = !naive_sum(&[&p[..ip.hlen]]);
        p[10..12].copy_from_slice(&s.to_be_bytes());
    }
    if ip.fragment {
        return;
    }
    let Some((at, with_pseudo)) = csum_field(ip.proto, ip.v4) else {
        return;
    };
    let l4_len = ip.total.saturating_sub(ip.l4_off);
    if l4_len < at + 2 {
        return;
    }
    // ICMP errors: repair the quoted IPv4 header first, it is summed too.
    if (ip.proto == 1 || ip.proto == 58) && l4_len > 8 {
        let quoted = &mut p[ip.l4_off + 8..ip.total];
        if ip.v4 && quoted.first().is_some_and(|b| b >> 4 == 4) {
            let qh = (quoted[0] & 0x0f) as usize * 4;
            if qh >= 20 && quoted.len() >= qh {
                quoted[10] = 0;
                quoted[11] = 0;
                let s = !naive_sum(&[&quoted[..qh]]);
                quoted[10..12].copy_from_slice(&s.to_be_bytes());
            }
        }
    }
    let udp_zero_v4 = ip.proto == 17 && ip.v4 && p[ip.l4_off + 6] == 0 && p[ip.l4_off + 7] == 0;
    if udp_zero_v4 {
        return;
    }
    p[ip.l4_off + at] = 0;
    p[ip.l4_off + at + 1] = 0;
    let ps = if with_pseudo {
        pseudo(p, &ip, l4_len)
    } else {
        Vec::new()
    };
    let mut s = !naive_sum(&[&ps, &p[ip.l4_off..ip.total]]);
    if ip.proto == 17 && s == 0 {
        s = 0xffff;
    }
    p[ip.l4_off + at..ip.l4_off + at + 2].copy_from_slice(&s.to_be_bytes());
}

/// Repairs every checksum of a frame the checker can lay out.
pub fn fix_checksums(frame: &mut [u8]) {
    if let Some((off, et)) = link(frame)
        && off <= frame.len()
    {
        fix_ip(&mut frame[off..], et);
    }
}

/// Whether every checksum [`check_emitted`] would verify holds on `frame`.
pub fn checksums_valid(frame: &[u8]) -> bool {
    match link(frame) {
        Some((off, et)) if off <= frame.len() => check_ip(&frame[off..], et, true, 0).is_ok(),
        _ => false,
    }
}

/// Verifies an IP packet; `strict` adds the L4 checksums. `depth` bounds
/// tunnel nesting.
fn check_ip(p: &[u8], ethertype: u16, strict: bool, depth: u8) -> Result<(), String> {
    let ip = ip_layout(p, ethertype)?;
    if ip.v4 && naive_sum(&[&p[..ip.hlen]]) != 0xffff {
        return Err("IPv4 header checksum".into());
    }
    if ip.fragment {
        return Ok(());
    }
    let l4 = &p[ip.l4_off..ip.total];
    match ip.proto {
        4 | 41 if depth < 2 => {
            let et = if ip.proto == 4 { 0x0800 } else { 0x86dd };
            return check_ip(l4, et, strict, depth + 1).map_err(|e| format!("inner: {e}"));
        }
        _ => {}
    }
    if !strict {
        return Ok(());
    }
    let Some((at, with_pseudo)) = csum_field(ip.proto, ip.v4) else {
        return Ok(());
    };
    if l4.len() < at + 2 {
        return Ok(());
    }
    if ip.proto == 17 && ip.v4 && l4[6] == 0 && l4[7] == 0 {
        return Ok(());
    }
    let ps = if with_pseudo {
        pseudo(p, &ip, l4.len())
    } else {
        Vec::new()
    };
    if naive_sum(&[&ps, l4]) != 0xffff {
        return Err(format!("L4 checksum (protocol {})", ip.proto));
    }
    if ip.proto == 1 && l4.len() > 8 && l4[8] >> 4 == 4 {
        let q = &l4[8..];
        let qh = (q[0] & 0x0f) as usize * 4;
        if qh >= 20 && q.len() >= qh && naive_sum(&[&q[..qh]]) != 0xffff {
            return Err("quoted IPv4 header checksum".into());
        }
    }
    Ok(())
}

/// Checks a frame the data plane transmitted; see the module docs.
pub fn check_emitted(frame: &[u8], strict: bool, mtu: u16) -> Result<(), String> {
    check_emitted_from(frame, strict, mtu, OWN_MAC)
}

/// [`check_emitted`] for a frame that must leave from `mac` (the MAC of the
/// NIC it is sent out of).
pub fn check_emitted_from(
    frame: &[u8],
    strict: bool,
    mtu: u16,
    mac: [u8; 6],
) -> Result<(), String> {
    if frame.len() > BUF {
        return Err(format!("{} bytes: larger than the buffer", frame.len()));
    }
    if frame.get(6..12) != Some(&mac[..]) {
        return Err("not sent from the director's MAC".into());
    }
    let (off, et) = link(frame).ok_or("truncated link header")?;
    let p = frame.get(off..).ok_or("truncated link header")?;
    let ip = ip_layout(p, et)?;
    if ip.ttl == 0 {
        return Err("TTL / hop limit 0".into());
    }
    if matches!(ip.proto, 4 | 41) && ip.total > mtu as usize {
        return Err(format!(
            "tunnel packet of {} bytes over MTU {mtu}",
            ip.total
        ));
    }
    // Whatever the director emits, its own parser takes back.
    if lvsfwd::wire::parse(frame).is_err() {
        return Err("lvsfwd's own parser refuses it".into());
    }
    check_ip(p, et, strict, 0)
}

/// The reply a real server (or client) would send to `frame`: MACs, IP
/// addresses and ports swapped; TCP flags replaced when given.
pub fn reply_to(frame: &[u8], flags: Option<u8>) -> Vec<u8> {
    let mut f = frame.to_vec();
    if f.len() < 14 {
        return f;
    }
    let (d, s) = (f[0..6].to_vec(), f[6..12].to_vec());
    f[0..6].copy_from_slice(&s);
    f[6..12].copy_from_slice(&d);
    let Some((off, et)) = link(&f) else { return f };
    let Some(p) = f.get_mut(off..) else { return f };
    let Ok(mut ip) = ip_layout(p, et) else {
        return f;
    };
    // A tunnel: reply to the inner packet, from the real server directly.
    let mut base = 0;
    if matches!(ip.proto, 4 | 41) {
        let inner_et = if ip.proto == 4 { 0x0800 } else { 0x86dd };
        base = ip.l4_off;
        match ip_layout(&p[base..], inner_et) {
            Ok(i) => ip = i,
            Err(_) => return f,
        }
    }
    let q = &mut p[base..];
    let (a, b, n) = if ip.v4 { (12, 16, 4) } else { (8, 24, 16) };
    for i in 0..n {
        q.swap(a + i, b + i);
    }
    if matches!(ip.proto, 6 | 17) && ip.total >= ip.l4_off + 4 {
        let l = ip.l4_off;
        for i in 0..2 {
            q.swap(l + i, l + 2 + i);
        }
        if ip.proto == 6
            && let Some(fl) = flags
            && ip.total >= l + 14
        {
            q[l + 13] = fl;
        }
    }
    if base > 0 {
        // Strip the tunnel header: the real server answers natively.
        let inner_et: u16 = if ip.v4 { 0x0800 } else { 0x86dd };
        let mut out = f[..off].to_vec();
        out[off - 2..off].copy_from_slice(&inner_et.to_be_bytes());
        out.extend_from_slice(&f[off + base..]);
        return out;
    }
    f
}

// ---- VRRP

/// The VRRP instances of the `vrrp` target, shaped after the keepalived
/// 2.2.7 adverts its seeds hold (src/wire/vrrp.rs): v2 VRID 51 with a
/// password, v3 IPv4 VRID 52 at 1.5 s, v3 IPv6 VRID 53, and v3 IPv4
/// VRID 52 unicast to the peer 198.18.0.3 (on another interface: a VRID is
/// unique per interface).
pub const VRRP_TOML: &str = r#"
[[vrrp_instance]]
name = "V2"
interface = "lf0"
virtual_router_id = 51
priority = 100
advert_int = 1
auth_type = "PASS"
auth_pass = "1111"
virtual_ipaddress = ["198.18.0.250/32"]

[[vrrp_instance]]
name = "V3"
state = "MASTER"
interface = "lf0"
virtual_router_id = 52
priority = 150
advert_int = 1.5
version = 3
virtual_ipaddress = ["198.18.0.251/32", "198.18.0.252/32"]

[[vrrp_instance]]
name = "V6"
interface = "lf0"
virtual_router_id = 53
priority = 200
advert_int = 1
version = 3
virtual_ipaddress = ["2001:2::250/128"]

[[vrrp_instance]]
name = "UNI"
interface = "lf1"
virtual_router_id = 52
priority = 255
advert_int = 1
version = 3
unicast_src_ip = "198.18.0.2"
unicast_peer = ["198.18.0.3"]
virtual_ipaddress = ["198.18.0.251/32"]
"#;

/// What a record of a `vrrp` input asks for (its control byte).
pub mod vrrp_ctl {
    /// Run the machine's timer instead of receiving an advert.
    pub const TIMER: u8 = 0x01;
    /// The socket reported no TTL.
    pub const NO_TTL: u8 = 0x02;
    /// Sent to our primary address (unicast) rather than the group.
    pub const UNICAST: u8 = 0x04;
}

/// Encodes one record of a `vrrp` input: control byte, time step in
/// 10 ms, TTL, source selector, length (LE), the VRRP message.
pub fn vrrp_record(ctl: u8, dt: u8, ttl: u8, src: u8, msg: &[u8]) -> Vec<u8> {
    let len = msg.len().min(u16::MAX as usize);
    let mut v = vec![ctl, dt, ttl, src];
    v.extend_from_slice(&(len as u16).to_le_bytes());
    v.extend_from_slice(&msg[..len]);
    v
}

/// The VRRP decoder and one state machine on an input: the first byte
/// picks the instance, then records until the bytes end. Checks: a message
/// the decoder accepts survives parse / emit / parse unchanged with a valid
/// checksum; every advert is counted exactly once (accepted or under one
/// reject reason); a rejected advert (wrong TTL, VRID, version, password,
/// ...) changes nothing: no state change, no action, same master.
pub fn check_vrrp(data: &[u8]) {
    use lvsfwd::control::vrrp::{RxMeta, VrrpMachine};
    use lvsfwd::wire::vrrp::{Family, VrrpPacket, VrrpRepr};

    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    static CFG: std::sync::OnceLock<config::Config> = std::sync::OnceLock::new();
    let cfg =
        CFG.get_or_init(|| config::parse_str(VRRP_TOML, "vrrp.toml").expect("harness config"));
    let inst = &cfg.vrrp_instances[pick as usize % cfg.vrrp_instances.len()];
    let v6 = inst.virtual_ipaddress[0].addr.is_ipv6();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let (primary, group, sources) = if v6 {
        (
            ip("fe80::1f:ff:fe00:2"),
            ip("ff02::12"),
            [
                ip("fe80::1f:ff:fe00:3"),
                ip("fe80::1f:ff:fe00:2"),
                ip("fe80::9"),
            ],
        )
    } else {
        (
            ip("198.18.0.2"),
            ip("224.0.0.18"),
            [ip("198.18.0.3"), ip("198.18.0.2"), ip("198.18.0.9")],
        )
    };
    let primary = inst.unicast_src_ip.unwrap_or(primary);
    let Ok(mut m) = VrrpMachine::new(inst, primary) else {
        panic!("harness instance refused");
    };
    let mut now = Timestamp::from_secs(1);
    let _ = m.start(now);
    while rest.len() >= 6 {
        let (c, dt, ttl, sel) = (rest[0], rest[1], rest[2], rest[3]);
        let len = u16::from_le_bytes([rest[4], rest[5]]) as usize;
        let body = &rest[6..];
        let len = len.min(body.len());
        let msg = &body[..len];
        rest = &body[len..];
        now = Timestamp::from_nanos(now.as_nanos() + dt as u64 * 10_000_000);
        if c & vrrp_ctl::TIMER != 0 {
            let _ = m.on_timer(now);
            continue;
        }
        let src = sources[sel as usize % sources.len()];
        let dst = if c & vrrp_ctl::UNICAST != 0 {
            primary
        } else {
            group
        };
        // The decoder alone.
        let fam = if v6 { Family::V6 } else { Family::V4 };
        if let Ok(p) = VrrpPacket::new_checked(msg, fam) {
            let repr = VrrpRepr::parse(&p);
            if let Ok(bytes) = repr.to_bytes(src, dst) {
                let q = VrrpPacket::new_checked(&bytes[..], fam)
                    .unwrap_or_else(|e| panic!("re-emitted advert refused: {e:?}"));
                assert_eq!(VrrpRepr::parse(&q), repr, "parse/emit round trip");
                assert!(q.verify_checksum(src, dst), "emitted checksum");
            }
        }
        // The state machine.
        let rx = RxMeta {
            src,
            dst,
            ttl: if c & vrrp_ctl::NO_TTL != 0 {
                None
            } else {
                Some(ttl)
            },
        };
        let before = (m.state(), m.master(), m.next_deadline(), m.stats().clone());
        let counted =
            |s: &lvsfwd::control::vrrp::VrrpStats| s.adverts_rx + s.rejected.iter().sum::<u64>();
        let a = m.on_advert(now, rx, msg);
        let after = m.stats();
        if before.0 == lvsfwd::control::vrrp::State::Initialize {
            continue;
        }
        assert_eq!(
            counted(after),
            counted(&before.3) + 1,
            "an advert was not counted exactly once"
        );
        if after.adverts_rx == before.3.adverts_rx {
            assert!(a.steps.is_empty(), "a rejected advert acted: {:?}", a.steps);
            assert_eq!(
                (m.state(), m.master(), m.next_deadline()),
                (before.0, before.1, before.2),
                "a rejected advert changed the machine"
            );
        }
        let multicast = inst.unicast_peer.is_empty();
        if multicast && rx.ttl.is_some_and(|t| t != 255) {
            assert_eq!(
                after.adverts_rx, before.3.adverts_rx,
                "a multicast advert with TTL {:?} was accepted",
                rx.ttl
            );
        }
        if lvsfwd::wire::vrrp::peek_vrid(msg) != Some(inst.virtual_router_id) {
            assert_eq!(
                after.adverts_rx, before.3.adverts_rx,
                "another VRID accepted"
            );
        }
    }
}

/// One fuzz target's checks on one input.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for replaying a corpus without libFuzzer.
pub const TARGETS: &[(&str, Target)] = &[
    ("frames", FrameRun::run),
    ("lb_toml", |d| {
        if let Ok(t) = std::str::from_utf8(d) {
            check_lb_toml(t)
        }
    }),
    ("keepalived", |d| {
        check_keepalived(&String::from_utf8_lossy(d))
    }),
    ("admin", check_admin),
    ("vrrp", check_vrrp),
    ("config_traffic", config_traffic::run),
];

// ---- lb.toml, keepalived.conf, admin protocol

/// The lb.toml loader on `text`: see fuzz_targets/lb_toml.rs.
pub fn check_lb_toml(text: &str) {
    match config::parse_str(text, "lb.toml") {
        Err(e) => {
            let (line, col) = e
                .position()
                .unwrap_or_else(|| panic!("error without a position: {e}"));
            let lines = text.matches('\n').count() + 1;
            assert!(
                line >= 1 && line <= lines && col >= 1,
                "error position {line}:{col} outside the text ({lines} lines): {e}"
            );
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("lb.toml:{line}:{col}: ")),
                "error not shown as PATH:LINE:COL: {shown}"
            );
        }
        Ok(cfg) => {
            let specs = cfg.service_specs();
            for (i, a) in specs.iter().enumerate() {
                assert!(
                    specs[i + 1..].iter().all(|b| b.key != a.key),
                    "two services share {:?}",
                    a.key
                );
                for (j, d) in a.dests.iter().enumerate() {
                    assert!(
                        a.dests[j + 1..]
                            .iter()
                            .all(|e| (e.addr, e.port) != (d.addr, d.port)),
                        "a service has {}:{} twice",
                        d.addr,
                        d.port
                    );
                }
            }
            // Whatever validates must run: a small data plane with it.
            let mut dcfg = cfg.dataplane_config();
            dcfg.conn_max = dcfg.conn_max.min(256);
            let mut dp = cfg.dataplane(dcfg);
            dp.apply_services(&specs);
            dp.apply_services(&[]);
            dp.apply_services(&specs);
        }
    }
}

/// The keepalived.conf importer on `text`: see fuzz_targets/keepalived.rs.
pub fn check_keepalived(text: &str) {
    let (toml_text, warnings) = config::keepalived::import(text);
    let lines = text.matches('\n').count() + 1;
    for w in &warnings {
        assert!(
            w.line >= 1 && w.line <= lines,
            "warning on line {} of a {lines}-line input: {w}",
            w.line
        );
    }
    if let Err(e) = toml_text.parse::<toml::Table>() {
        panic!("the importer wrote invalid TOML: {e}\n{toml_text}");
    }
    if config::parse_str(&toml_text, "imported.toml").is_ok() {
        check_lb_toml(&toml_text);
    }
}

/// A data plane as the admin protocol sees it: nothing live, fixed size.
struct NoLive;

impl lvsfwd::admin::proto::ListingSource for NoLive {
    fn conn_tab_size(&self) -> usize {
        4096
    }
    fn live(&self, _: &lvsfwd::service::ServiceKey) -> Option<lvsfwd::view::LiveService> {
        None
    }
    fn connections(&self) -> Vec<lvsfwd::view::ConnView> {
        Vec::new()
    }
    fn zero_counters(&self, _: Option<&lvsfwd::service::ServiceKey>) {}
    /// One served NIC, `fz0`, holding every test address (198.18.0.0/15,
    /// 2001:2::/48), so `-P/-Q` get past the NIC check to the pool edits.
    fn local_address_nic(&self, addr: std::net::IpAddr) -> Result<String, String> {
        let ours = match addr {
            std::net::IpAddr::V4(a) => a.octets()[..2] == [198, 18] || a.octets()[..2] == [198, 19],
            std::net::IpAddr::V6(a) => a.segments()[..3] == [0x2001, 2, 0],
        };
        if ours {
            Ok("fz0".into())
        } else {
            Err(format!("{addr} is not an address of a NIC lvsfwd serves"))
        }
    }
}

/// An in-memory admin connection: the request bytes in, the answer out.
struct Pipe<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl std::io::Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::Read::read(&mut self.input, buf)
    }
}

impl std::io::Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Separates requests in an argv-mode admin input.
pub const ADMIN_NEXT: u8 = 0x02;
/// Separates argv from stdin in one argv-mode request.
pub const ADMIN_STDIN: u8 = 0x01;

/// Encodes argv-mode admin requests (the inverse of [`check_admin`]'s
/// decoding): mode byte 1, then requests separated by [`ADMIN_NEXT`],
/// each its arguments NUL-separated, then [`ADMIN_STDIN`] and stdin.
pub fn admin_input(reqs: &[(&[&str], Option<&str>)]) -> Vec<u8> {
    let mut v = vec![1u8];
    for (i, (argv, stdin)) in reqs.iter().enumerate() {
        if i > 0 {
            v.push(ADMIN_NEXT);
        }
        v.extend_from_slice(argv.join("\0").as_bytes());
        if let Some(s) = stdin {
            v.push(ADMIN_STDIN);
            v.extend_from_slice(s.as_bytes());
        }
    }
    v
}

/// The admin protocol on `data`: see fuzz_targets/admin.rs.
pub fn check_admin(data: &[u8]) {
    use lvsfwd::admin::apply::AdminState;
    use lvsfwd::admin::cmd::{self, AdminCommand};
    use lvsfwd::admin::proto::{self, Request, Response};

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    static CFG: std::sync::OnceLock<config::Config> = std::sync::OnceLock::new();
    let cfg =
        CFG.get_or_init(|| config::parse_str(LB_TOML_A, "fuzz.toml").expect("harness config"));
    let mut state = AdminState {
        services: cfg.service_specs(),
        timeouts: cfg.timeouts,
    };
    let view = NoLive;
    let check_answer = |bytes: &[u8]| -> Response {
        assert_eq!(bytes.last(), Some(&b'\n'), "answer not a line");
        assert!(
            !bytes[..bytes.len() - 1].contains(&b'\n'),
            "answer spans lines"
        );
        let r: Response = serde_json::from_slice(bytes).expect("answer is not a Response");
        assert!(matches!(r.exit_code, 0 | 1), "exit code {}", r.exit_code);
        r
    };
    let mut requests: Vec<Request> = Vec::new();
    if mode & 1 == 0 {
        // The raw wire: whatever bytes a client sends.
        let mut pipe = Pipe {
            input: rest,
            output: Vec::new(),
        };
        let before = state.clone();
        let resp = proto::serve_stream(&mut pipe, &mut state, &view).expect("in-memory write");
        let back = check_answer(&pipe.output);
        assert_eq!(back.stdout, resp.stdout);
        if resp.exit_code != 0 && !resp.changed {
            assert_eq!(state, before, "a refused request changed the state");
        }
    } else {
        for r in rest.split(|b| *b == ADMIN_NEXT).take(16) {
            let (argv, stdin) = match r.iter().position(|b| *b == ADMIN_STDIN) {
                Some(i) => (
                    &r[..i],
                    Some(String::from_utf8_lossy(&r[i + 1..]).into_owned()),
                ),
                None => (r, None),
            };
            let argv: Vec<String> = argv
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            requests.push(Request::new(argv, stdin));
        }
    }
    for req in &requests {
        let before = state.clone();
        let resp = proto::serve_one(&mut state, req, &view);
        let mut line = Vec::new();
        proto::write_message(&mut line, &resp).expect("in-memory write");
        let back = check_answer(&line);
        assert_eq!(
            (back.stdout, back.stderr),
            (resp.stdout.clone(), resp.stderr.clone())
        );
        let restore = matches!(cmd::parse_args(&req.argv), Ok(AdminCommand::Restore));
        if resp.exit_code != 0 && !restore {
            assert_eq!(state, before, "refused {:?} changed the state", req.argv);
        }
        if state != before {
            assert!(resp.changed, "{:?} changed the state unannounced", req.argv);
        }
        // Whatever state a request left must still list and save.
        for list in [
            &["-L", "-n"][..],
            &["-S", "-n"][..],
            &["-L", "-n", "--stats"][..],
        ] {
            let argv = list.iter().map(|s| s.to_string()).collect();
            let r = proto::serve_one(&mut state, &Request::new(argv, None), &view);
            assert_eq!(
                r.exit_code, 0,
                "{list:?} after {:?}: {}",
                req.argv, r.stderr
            );
        }
        lvsfwd::service::ServiceTable::from_specs(&state.services);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configurations_load() {
        assert_eq!(specs(LB_TOML_A).len(), 7);
        assert_eq!(specs(LB_TOML_B).len(), 5);
    }

    /// The first captured TCP SYN to 198.18.0.250:80.
    fn captured_syn() -> Vec<u8> {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/rig.pcap");
        lvsfwd::replay::read_capture(std::path::Path::new(p))
            .unwrap()
            .into_iter()
            .map(|c| c.data)
            .find(|f| f.len() > 47 && f[23] == 6 && f[36..38] == [0, 80] && f[47] == 0x02)
            .expect("a SYN to port 80 in the capture")
    }

    #[test]
    fn a_captured_syn_is_nat_forwarded_with_valid_checksums_and_its_reply_returns() {
        let mut run = FrameRun::new(Knobs::from_byte(1));
        let syn = captured_syn();
        assert!(checksums_valid(&syn));
        run.step(0, 0, &syn);
        let out = run.last_tx.clone().unwrap_or_else(|| {
            panic!(
                "not forwarded: {:?} {:?}",
                run.dp.counters,
                run.dp.conn_views(Timestamp::ZERO),
            )
        });
        assert!(checksums_valid(&out));
        // NAT: to a real server's port 8080.
        assert_eq!(out[36..38], 8080u16.to_be_bytes());
        // The real server's SYN-ACK goes back to the client, from the VIP.
        run.step(ctl::REFLECT, 1, &[0x12]);
        let back = run.last_tx.clone().unwrap();
        assert_eq!(back[26..30], [198, 18, 0, 250]);
        assert_eq!(back[30..34], syn[26..30]);
        assert_eq!(back[34..36], [0, 80]);
        assert!(checksums_valid(&back));
        assert_eq!(run.dp.counters.tx, 2);
    }

    #[test]
    fn the_checker_catches_broken_emitted_frames() {
        let mut run = FrameRun::new(Knobs::from_byte(1));
        run.step(0, 0, &captured_syn());
        let out = run.last_tx.clone().unwrap();
        assert_eq!(check_emitted(&out, true, 1500), Ok(()));
        let mut bad_port = out.clone();
        bad_port[37] ^= 1;
        assert!(
            check_emitted(&bad_port, true, 1500)
                .unwrap_err()
                .contains("L4 checksum")
        );
        // Not strict: the L4 checksum is not looked at, the IP header is.
        assert_eq!(check_emitted(&bad_port, false, 1500), Ok(()));
        let mut bad_ttl = out.clone();
        bad_ttl[22] = 0;
        assert!(check_emitted(&bad_ttl, false, 1500).is_err());
        let mut bad_mac = out.clone();
        bad_mac[6] ^= 1;
        assert!(
            check_emitted(&bad_mac, false, 1500)
                .unwrap_err()
                .contains("MAC")
        );
        let mut long = out;
        long[16] = 0x0f;
        assert!(check_emitted(&long, false, 1500).is_err());
    }

    #[test]
    fn fix_checksums_repairs_what_the_checker_verifies() {
        let mut f = captured_syn();
        f[40] ^= 0xff; // sequence number: TCP checksum now wrong
        f[24] ^= 0xff; // IPv4 header checksum wrong
        assert!(!checksums_valid(&f));
        fix_checksums(&mut f);
        assert!(checksums_valid(&f));
    }
}
