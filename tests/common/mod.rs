//! Shared helpers of the replay tests: frame builders (etherparse's
//! `PacketBuilder`), pcap files, running the real `lvsfwd` binary, and an
//! independent checker that parses what lvsfwd emitted and verifies every
//! checksum with a naive RFC 1071 sum.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etherparse::{PacketBuilder, TcpHeader};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};

/// The director's NIC MAC used by every replay test (`--mac`).
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0xd1, 0, 0, 0, 0x01];
pub const DIRECTOR_MAC_STR: &str = "02:d1:00:00:00:01";
/// The client-side router / client MAC.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 0x01];

/// MAC of real server number `n` (as written in test configs).
pub fn rs_mac(n: u8) -> [u8; 6] {
    [0x02, 0x5e, 0, 0, 0, n]
}
pub fn rs_mac_str(n: u8) -> String {
    format!("02:5e:00:00:00:{n:02x}")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// TCP flags for [`tcp`].
#[derive(Copy, Clone, Debug, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}
pub const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
    psh: false,
};
pub const SYNACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: false,
};
pub const PSHACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
    psh: true,
};
pub const FINACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: true,
    rst: false,
    psh: false,
};
pub const RST: Flags = Flags {
    syn: false,
    ack: false,
    fin: false,
    rst: true,
    psh: false,
};

fn v4(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => panic!("mixed families in a test frame"),
    }
}
fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => panic!("mixed families in a test frame"),
    }
}

/// An Ethernet frame carrying a TCP segment.
pub fn tcp_frame(
    smac: [u8; 6],
    dmac: [u8; 6],
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
    f: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let mut out = Vec::new();
    let seq = 1000 + sport as u32;
    macro_rules! finish {
        ($b:expr) => {{
            let mut b = $b.tcp(sport, dport, seq, 64240);
            if f.syn {
                b = b.syn();
            }
            if f.ack {
                b = b.ack(1);
            }
            if f.fin {
                b = b.fin();
            }
            if f.rst {
                b = b.rst();
            }
            if f.psh {
                b = b.psh();
            }
            b.write(&mut out, payload).unwrap();
        }};
    }
    match src {
        IpAddr::V4(_) => finish!(eth.ipv4(v4(src), v4(dst), 64)),
        IpAddr::V6(_) => finish!(eth.ipv6(v6(src), v6(dst), 64)),
    }
    out
}

/// A client's TCP segment to the director.
pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16, f: Flags) -> Vec<u8> {
    let payload: &[u8] = if f.psh {
        b"GET / HTTP/1.0\r\n\r\n"
    } else {
        b""
    };
    tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC,
        (ip(src), sport),
        (ip(dst), dport),
        f,
        payload,
    )
}

/// An Ethernet frame carrying a UDP datagram.
pub fn udp_frame(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let mut out = Vec::new();
    match src {
        IpAddr::V4(_) => eth
            .ipv4(v4(src), v4(dst), 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap(),
        IpAddr::V6(_) => eth
            .ipv6(v6(src), v6(dst), 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap(),
    }
    out
}

/// A client's UDP datagram to the director.
pub fn udp(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC,
        ip(src),
        sport,
        ip(dst),
        dport,
        payload,
    )
}

/// Writes `frames` (timestamp in seconds, bytes) as a pcap.
pub fn write_pcap(path: &Path, frames: &[(f64, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(f, header).unwrap();
    for (ts, data) in frames {
        let ts = Duration::from_micros((ts * 1e6).round() as u64);
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, data))
            .unwrap();
    }
}

/// Reads a pcap back as (timestamp, bytes).
pub fn read_pcap(path: &Path) -> Vec<(Duration, Vec<u8>)> {
    let f = std::fs::File::open(path).unwrap();
    let mut r = PcapReader::new(f).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        v.push((p.timestamp, p.data.into_owned()));
    }
    v
}

/// What one `lvsfwd replay` run produced.
pub struct Replay {
    pub dir: tempfile::TempDir,
    pub out: Vec<(Duration, Vec<u8>)>,
    pub pass: Vec<(Duration, Vec<u8>)>,
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
}

impl Replay {
    /// The `rx N tx N pass N drop N` summary as numbers.
    pub fn summary(&self) -> (u64, u64, u64, u64) {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("rx "))
            .unwrap_or_else(|| panic!("no summary in stderr: {}", self.stderr));
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .step_by(2)
            .map(|x| x.parse().unwrap())
            .collect();
        (n[0], n[1], n[2], n[3])
    }

    /// A drop counter printed by `--counters` (0 when absent).
    pub fn drops(&self, reason: &str) -> u64 {
        self.counter("drop ", reason)
    }

    /// `--counters`' count of frames handed to the kernel for `reason`
    /// (`kernel REASON N`).
    pub fn kernel(&self, reason: &str) -> u64 {
        self.counter("kernel ", reason)
    }

    fn counter(&self, kind: &str, reason: &str) -> u64 {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix(kind))
            .filter_map(|l| l.split_once(' '))
            .find(|(name, _)| *name == reason)
            .map_or(0, |(_, n)| n.trim().parse().unwrap())
    }
}

pub fn lvsfwd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lvsfwd"))
}

/// Runs `lvsfwd replay` with `config` over `frames`, with `--mac` set to
/// [`DIRECTOR_MAC`], `--pass`, `--counters` and `extra` arguments.
pub fn replay(config: &str, frames: &[(f64, Vec<u8>)], extra: &[&str]) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lb.toml");
    std::fs::write(&cfg, config).unwrap();
    let inp = dir.path().join("in.pcap");
    let out = dir.path().join("out.pcap");
    let pass = dir.path().join("pass.pcap");
    write_pcap(&inp, frames);
    let o = Command::new(lvsfwd())
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .arg("--in")
        .arg(&inp)
        .arg("--out")
        .arg(&out)
        .arg("--pass")
        .arg(&pass)
        .args(["--mac", DIRECTOR_MAC_STR, "--counters"])
        .args(extra)
        .output()
        .unwrap();
    let ok = o.status.success();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(ok, "lvsfwd replay failed: {stderr}");
    Replay {
        out: read_pcap(&out),
        pass: read_pcap(&pass),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
        ok,
        dir,
    }
}

/// Ethernet + IP + L4 view of an emitted frame, checked independently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub ttl: u8,
    pub tos: u8,
    pub sport: u16,
    pub dport: u16,
    /// The IP packet after the link header.
    pub ip: Vec<u8>,
}

/// RFC 1071 sum, done the slow obvious way.
pub fn naive_sum(chunks: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for c in chunks {
        bytes.extend_from_slice(c);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u64 = 0;
    for w in bytes.chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u64;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Parses an emitted frame and asserts every checksum in it is right
/// (IPv4 header, TCP/UDP/ICMP/ICMPv6 with pseudo-headers; for an IPIP or
/// IPv6-in-IPv6 frame, the outer header and the inner packet too).
pub fn emitted(frame: &[u8]) -> Emitted {
    assert!(frame.len() >= 14, "runt frame");
    let mut dmac = [0u8; 6];
    let mut smac = [0u8; 6];
    dmac.copy_from_slice(&frame[0..6]);
    smac.copy_from_slice(&frame[6..12]);
    let mut et = u16::from_be_bytes([frame[12], frame[13]]);
    let mut off = 14;
    let mut vlan = None;
    if et == 0x8100 {
        vlan = Some(u16::from_be_bytes([frame[14], frame[15]]));
        et = u16::from_be_bytes([frame[16], frame[17]]);
        off = 18;
    }
    let ipb = &frame[off..];
    let (src, dst, proto, ttl, tos, sport, dport) = check_ip(ipb, et);
    Emitted {
        smac,
        dmac,
        vlan,
        src,
        dst,
        proto,
        ttl,
        tos,
        sport,
        dport,
        ip: ipb.to_vec(),
    }
}

/// Verifies an IP packet's checksums; returns its header fields and ports.
pub fn check_ip(ipb: &[u8], ethertype: u16) -> (IpAddr, IpAddr, u8, u8, u8, u16, u16) {
    let (src, dst, proto, ttl, tos, l4, pseudo): (IpAddr, IpAddr, u8, u8, u8, &[u8], Vec<u8>) =
        match ethertype {
            0x0800 => {
                let ihl = (ipb[0] & 0x0f) as usize * 4;
                assert_eq!(ipb[0] >> 4, 4);
                assert_eq!(naive_sum(&[&ipb[..ihl]]), 0xffff, "IPv4 header checksum");
                let total = u16::from_be_bytes([ipb[2], ipb[3]]) as usize;
                assert!(total <= ipb.len(), "IPv4 total length beyond frame");
                let s: [u8; 4] = ipb[12..16].try_into().unwrap();
                let d: [u8; 4] = ipb[16..20].try_into().unwrap();
                let proto = ipb[9];
                let l4 = &ipb[ihl..total];
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&s);
                pseudo.extend_from_slice(&d);
                pseudo.extend_from_slice(&[0, proto]);
                pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                (s.into(), d.into(), proto, ipb[8], ipb[1], l4, pseudo)
            }
            0x86dd => {
                assert_eq!(ipb[0] >> 4, 6);
                let plen = u16::from_be_bytes([ipb[4], ipb[5]]) as usize;
                let s: [u8; 16] = ipb[8..24].try_into().unwrap();
                let d: [u8; 16] = ipb[24..40].try_into().unwrap();
                let proto = ipb[6];
                let l4 = &ipb[40..40 + plen];
                let mut pseudo = Vec::new();
                pseudo.extend_from_slice(&s);
                pseudo.extend_from_slice(&d);
                pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, proto]);
                let tc = ((ipb[0] & 0x0f) << 4) | (ipb[1] >> 4);
                (s.into(), d.into(), proto, ipb[7], tc, l4, pseudo)
            }
            other => panic!("not IP: ethertype {other:#06x}"),
        };
    let (sport, dport) = match proto {
        6 => {
            assert_eq!(naive_sum(&[&pseudo, l4]), 0xffff, "TCP checksum");
            let h = TcpHeader::from_slice(l4).unwrap().0;
            (h.source_port, h.destination_port)
        }
        17 => {
            let ck = u16::from_be_bytes([l4[6], l4[7]]);
            if !(ck == 0 && src.is_ipv4()) {
                assert_eq!(naive_sum(&[&pseudo, l4]), 0xffff, "UDP checksum");
            }
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            )
        }
        1 => {
            assert_eq!(naive_sum(&[l4]), 0xffff, "ICMP checksum");
            (0, 0)
        }
        58 => {
            assert_eq!(naive_sum(&[&pseudo, l4]), 0xffff, "ICMPv6 checksum");
            (0, 0)
        }
        4 => {
            check_ip(l4, 0x0800);
            (0, 0)
        }
        41 => {
            check_ip(l4, 0x86dd);
            (0, 0)
        }
        _ => (0, 0),
    };
    (src, dst, proto, ttl, tos, sport, dport)
}

/// A test config: `[global]` plus the given virtual servers.
pub fn config(body: &str) -> String {
    format!("[global]\nrouter_id = \"test\"\ninterface = \"lf0\"\n\n{body}")
}

/// A `[[virtual_server]]` block with real servers 198.18.1.N (N in `rs`),
/// their MACs set.
pub fn vs4(addr: &str, algo: &str, kind: &str, rs: &[(u8, u16, u32)], extra: &str) -> String {
    let mut s = format!(
        "[[virtual_server]]\naddress = \"{addr}\"\nprotocol = \"TCP\"\nlb_algo = \"{algo}\"\nlb_kind = \"{kind}\"\n{extra}\n"
    );
    for (n, port, w) in rs {
        s += &format!(
            "  [[virtual_server.real_server]]\n  address = \"198.18.1.{n}:{port}\"\n  weight = {w}\n  mac = \"{}\"\n",
            rs_mac_str(*n)
        );
    }
    s
}

/// `--stats` output: (real server "addr:port", Conns) for every dest line.
pub fn stats_conns(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("-> "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = w.next()?.to_string();
            let conns = w.next()?.parse().ok()?;
            Some((addr, conns))
        })
        .collect()
}

/// One `-L -c -n` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRow {
    pub proto: String,
    pub expire: String,
    pub state: String,
    pub source: String,
    pub virt: String,
    pub dest: String,
}

/// `--dump-conns` output rows.
pub fn conn_rows(stdout: &str) -> Vec<ConnRow> {
    stdout
        .lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() != 6 {
                return None;
            }
            Some(ConnRow {
                proto: w[0].into(),
                expire: w[1].into(),
                state: w[2].into(),
                source: w[3].into(),
                virt: w[4].into(),
                dest: w[5].into(),
            })
        })
        .collect()
}

/// Real server number (last octet / last group of the MAC) each emitted
/// frame went to.
pub fn rs_of(out: &[(Duration, Vec<u8>)]) -> Vec<u8> {
    out.iter().map(|(_, f)| f[5]).collect()
}
