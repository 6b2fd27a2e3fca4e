//! The generator's packet format: IPv4 TCP or UDP frames to one virtual
//! service, from many client flows, each carrying the time it was sent.
//!
//! Sizes are Ethernet frame sizes as benchmarks quote them (RFC 2544: FCS
//! included), so a "64-byte" frame is 60 bytes on a veth, which has no FCS.
//! The transmit time is a 48-bit `CLOCK_MONOTONIC` nanosecond count (wraps
//! after 78 hours; differences are taken modulo 2^48) in the first
//! [`STAMP_LEN`] bytes of the L4 payload, the only place every forwarding
//! method leaves alone and the smallest TCP frame still has (60 - 54 = 6
//! bytes). The rest of the payload is zero, so checksums only need the
//! headers and the stamp.
//!
//! Flows: established flow `i` of a point comes from client
//! 198.19.(h >> 8).(h & 255), h = i mod 65534 + 1, port `sport_base + i /
//! 65534`; a point gets fresh 5-tuples by moving `sport_base`. Brand-new
//! connections (SYN mixes) come from 198.18.128.0/17 and never repeat within
//! a run. Every address is inside 198.18.0.0/15.
//!
//! Deliberately not here: IPv6, VLANs, IP options, fragments.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{bail, ensure};
use serde::{Deserialize, Serialize};

/// Bytes of the transmit stamp at the start of the L4 payload.
pub const STAMP_LEN: usize = 6;
/// Smallest frame size (FCS included) that holds a TCP header and a stamp.
pub const MIN_SIZE: usize = 64;
/// Largest frame size (FCS included) on a 1500-byte MTU.
pub const MAX_SIZE: usize = 1518;
const FCS: usize = 4;
const ETH: usize = 14;
const IP: usize = 20;
const TCP: usize = 20;
const UDP: usize = 8;
const STAMP_MASK: u64 = (1 << 48) - 1;
/// Clients of established flows: hosts of 198.19.0.0/16 (.0.0 and
/// .255.255 left out).
const CLIENT_HOSTS: u32 = 65534;
/// Clients of brand-new connections: hosts of 198.18.128.0/17.
const NEW_HOSTS: u32 = 32766;

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// What a point sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mix {
    /// Established TCP flows: each flow's first packet is a SYN, every later
    /// one an ACK; additionally `new_pct` percent of all packets are SYNs
    /// opening brand-new connections (0 = pure established traffic).
    Tcp { new_pct: u8 },
    /// Every packet a SYN of a brand-new connection (connection setup rate).
    Syn,
    /// UDP datagrams of established flows.
    Udp,
}

impl Mix {
    /// Short name for tables and command lines: `tcp`, `tcp+10%new`, `syn`,
    /// `udp`.
    pub fn label(self) -> String {
        match self {
            Mix::Tcp { new_pct: 0 } => "tcp".into(),
            Mix::Tcp { new_pct } => format!("tcp+{new_pct}%new"),
            Mix::Syn => "syn".into(),
            Mix::Udp => "udp".into(),
        }
    }

    /// Parses [`Mix::label`]'s output.
    pub fn parse(s: &str) -> anyhow::Result<Mix> {
        Ok(match s {
            "tcp" => Mix::Tcp { new_pct: 0 },
            "syn" => Mix::Syn,
            "udp" => Mix::Udp,
            _ => {
                let Some(p) = s.strip_prefix("tcp+").and_then(|r| r.strip_suffix("%new")) else {
                    bail!("unknown mix {s:?} (tcp, tcp+N%new, syn, udp)");
                };
                let new_pct: u8 = p.parse()?;
                ensure!(new_pct <= 100, "new_pct {new_pct} > 100");
                Mix::Tcp { new_pct }
            }
        })
    }

    /// Whether the frames are UDP.
    pub fn is_udp(self) -> bool {
        matches!(self, Mix::Udp)
    }
}

/// One packet's TCP flags (or UDP).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Syn,
    Ack,
    Udp,
}

/// RFC 1071 sum of `data` as big-endian 16-bit words (odd tail padded).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// A frame laid out once per point; [`Template::write`] copies it and fills
/// in the per-packet fields.
#[derive(Clone, Debug)]
pub struct Template {
    frame: Vec<u8>,
    udp: bool,
}

const L4: usize = ETH + IP;

impl Template {
    /// A frame of `size` bytes (FCS included) from `src_mac` to `dst_mac`,
    /// to `dst`, TCP unless `udp`.
    pub fn new(
        size: usize,
        udp: bool,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        dst: SocketAddrV4,
    ) -> anyhow::Result<Template> {
        ensure!(
            (MIN_SIZE..=MAX_SIZE).contains(&size),
            "frame size {size} outside {MIN_SIZE}..={MAX_SIZE}"
        );
        let len = size - FCS;
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[ETH..ETH + IP];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((len - ETH) as u16).to_be_bytes());
        ip[6] = 0x40; // DF: nothing on the way may fragment a test frame
        ip[8] = 64;
        ip[9] = if udp { 17 } else { 6 };
        ip[16..20].copy_from_slice(&dst.ip().octets());
        let l4 = &mut f[L4..];
        l4[2..4].copy_from_slice(&dst.port().to_be_bytes());
        if udp {
            l4[4..6].copy_from_slice(&((len - L4) as u16).to_be_bytes());
        } else {
            l4[4..8].copy_from_slice(&0x4c56_0001u32.to_be_bytes()); // seq
            l4[12] = ((TCP / 4) as u8) << 4;
            l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
        }
        Ok(Template { frame: f, udp })
    }

    /// Length of every frame written (FCS excluded).
    pub fn len(&self) -> usize {
        self.frame.len()
    }
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    fn l4_len(&self) -> usize {
        if self.udp { UDP } else { TCP }
    }

    /// Writes one frame into `buf` and returns its length (0 if `buf` is
    /// too small): source `src`, TCP flags (or UDP) per `kind`, the stamp
    /// and correct IPv4 and L4 checksums.
    pub fn write(&self, buf: &mut [u8], src: SocketAddrV4, kind: Kind, stamp_ns: u64) -> usize {
        let len = self.frame.len();
        let Some(out) = buf.get_mut(..len) else {
            return 0;
        };
        out.copy_from_slice(&self.frame);
        let sip = src.ip().octets();
        out[ETH + 12..ETH + 16].copy_from_slice(&sip);
        let ipsum = fold(sum16(&out[ETH..ETH + IP], 0));
        out[ETH + 10..ETH + 12].copy_from_slice(&ipsum.to_be_bytes());

        let hl = self.l4_len();
        out[L4..L4 + 2].copy_from_slice(&src.port().to_be_bytes());
        match kind {
            Kind::Syn => out[L4 + 13] = TCP_SYN,
            Kind::Ack => {
                out[L4 + 8..L4 + 12].copy_from_slice(&1u32.to_be_bytes());
                out[L4 + 13] = TCP_ACK;
            }
            Kind::Udp => {}
        }
        let stamp = (stamp_ns & STAMP_MASK).to_be_bytes();
        out[L4 + hl..L4 + hl + STAMP_LEN].copy_from_slice(&stamp[2..]);

        // Pseudo-header, then the header and the stamp: the rest of the
        // payload is zero and adds nothing.
        let l4_len = (len - L4) as u16;
        let mut acc = sum16(&out[ETH + 12..ETH + 20], 0);
        acc += u32::from(out[ETH + 9]) + u32::from(l4_len);
        acc = sum16(&out[L4..L4 + hl + STAMP_LEN], acc);
        let mut c = fold(acc);
        let at = if self.udp {
            if c == 0 {
                c = 0xffff; // RFC 768: zero means "no checksum"
            }
            L4 + 6
        } else {
            L4 + 16
        };
        out[at..at + 2].copy_from_slice(&c.to_be_bytes());
        len
    }
}

/// The transmit stamp of a frame written by [`Template::write`] (after any
/// forwarding method's rewrite: DR, NAT, FULLNAT keep header lengths), as a
/// 48-bit nanosecond count; `None` when the frame is not IPv4 TCP/UDP with
/// room for one.
pub fn read_stamp(frame: &[u8]) -> Option<u64> {
    let mut l3 = ETH;
    let mut et = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    if et == 0x8100 {
        et = u16::from_be_bytes(frame.get(16..18)?.try_into().ok()?);
        l3 += 4;
    }
    if et != 0x0800 {
        return None;
    }
    let ip = frame.get(l3..l3 + IP)?;
    if ip[0] >> 4 != 4 {
        return None;
    }
    let l4 = l3 + usize::from(ip[0] & 0x0f) * 4;
    let payload = match ip[9] {
        6 => l4 + usize::from(frame.get(l4 + 12)? >> 4) * 4,
        17 => l4 + UDP,
        _ => return None,
    };
    let s = frame.get(payload..payload + STAMP_LEN)?;
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(s);
    Some(u64::from_be_bytes(b))
}

/// Nanoseconds from a 48-bit stamp to `now_ns` (modulo 2^48).
pub fn stamp_age(now_ns: u64, stamp48: u64) -> u64 {
    now_ns.wrapping_sub(stamp48) & STAMP_MASK
}

/// The established flows of a point.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Flows {
    pub count: u32,
    pub sport_base: u16,
}

impl Flows {
    pub fn new(count: u32, sport_base: u16) -> anyhow::Result<Flows> {
        ensure!(count > 0, "at least one flow");
        let last = u32::from(sport_base) + (count - 1) / CLIENT_HOSTS;
        ensure!(
            sport_base >= 1024 && last <= 65535,
            "{count} flows from port {sport_base} run past port 65535"
        );
        Ok(Flows { count, sport_base })
    }

    /// Client side of flow `i` (`i < count`).
    pub fn client(&self, i: u32) -> SocketAddrV4 {
        let h = i % CLIENT_HOSTS + 1;
        let port = u32::from(self.sport_base) + i / CLIENT_HOSTS;
        SocketAddrV4::new(
            Ipv4Addr::new(198, 19, (h >> 8) as u8, h as u8),
            port.min(65535) as u16,
        )
    }
}

/// Client side of brand-new connection number `k`.
pub fn new_client(k: u64) -> SocketAddrV4 {
    let h = (k % u64::from(NEW_HOSTS)) as u32 + 1;
    let port = 1024 + (k / u64::from(NEW_HOSTS)) % (65536 - 1024);
    SocketAddrV4::new(
        Ipv4Addr::new(198, 18, 128 | (h >> 8) as u8, h as u8),
        port as u16,
    )
}

/// The packet sequence of one transmit queue: queue `q` of `nq` sends the
/// flows `i ≡ q (mod nq)` round robin, and mixes in new connections per
/// [`Mix`].
#[derive(Clone, Debug)]
pub struct Generator {
    tpl: Template,
    flows: Flows,
    mix: Mix,
    first: u32,
    step: u32,
    mine: u32,
    sent: u64,
    established: u64,
    new_conns: u64,
    opening_kind: Kind,
}

impl Generator {
    /// `new_base` numbers this queue's first brand-new connection; give
    /// every queue and point its own range.
    pub fn new(tpl: Template, flows: Flows, mix: Mix, q: u32, nq: u32, new_base: u64) -> Generator {
        let nq = nq.max(1);
        // With fewer flows than queues, queue q shares flow q mod count.
        let first = q % flows.count;
        let mine = if flows.count >= nq {
            (flows.count - first).div_ceil(nq)
        } else {
            1
        };
        Generator {
            tpl,
            flows,
            mix,
            first,
            step: nq,
            mine,
            sent: 0,
            established: 0,
            new_conns: new_base,
            opening_kind: Kind::Syn,
        }
    }

    /// What an established TCP flow's first packet is: a SYN (default; what
    /// IPVS needs to schedule a connection), or an ACK (a connection picked
    /// up mid-stream, which is how conntrack accepts one-way traffic).
    pub fn open_with(mut self, kind: Kind) -> Generator {
        self.opening_kind = kind;
        self
    }

    pub fn template(&self) -> &Template {
        &self.tpl
    }

    /// Whether some of this queue's established flows have not sent their
    /// first packet (the opening SYN) yet.
    pub fn opening(&self) -> bool {
        self.established < u64::from(self.mine)
    }

    /// The next packet's client and kind.
    pub fn next_packet(&mut self) -> (SocketAddrV4, Kind) {
        let n = self.sent;
        self.sent += 1;
        let fresh = match self.mix {
            Mix::Syn => true,
            Mix::Tcp { new_pct } => n % 100 < u64::from(new_pct),
            Mix::Udp => false,
        };
        if fresh {
            let c = new_client(self.new_conns);
            self.new_conns += 1;
            return (c, Kind::Syn);
        }
        // Established flows count only their own packets, so every flow's
        // first packet is its SYN whatever is mixed in.
        let e = self.established;
        self.established += 1;
        let round = e / u64::from(self.mine);
        let flow = self.first + self.step * (e % u64::from(self.mine)) as u32;
        let kind = if self.mix == Mix::Udp {
            Kind::Udp
        } else if round == 0 {
            self.opening_kind
        } else {
            Kind::Ack
        };
        (self.flows.client(flow), kind)
    }

    /// Writes the next packet into `buf`; see [`Template::write`].
    pub fn write_next(&mut self, buf: &mut [u8], stamp_ns: u64) -> usize {
        let (c, k) = self.next_packet();
        self.tpl.write(buf, c, k, stamp_ns)
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    use super::*;

    const SRC: [u8; 6] = [2, 0x1f, 0, 0, 0, 0x64];
    const DST: [u8; 6] = [2, 0x1f, 0, 0, 0, 0x02];

    fn vip() -> SocketAddrV4 {
        "198.18.0.250:80".parse().unwrap()
    }

    /// The same frame built by etherparse, for comparison.
    fn reference(size: usize, src: SocketAddrV4, kind: Kind, stamp: u64) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(SRC, DST).ipv4(src.ip().octets(), vip().ip().octets(), 64);
        let mut payload = vec![0u8; size - FCS - L4 - if kind == Kind::Udp { UDP } else { TCP }];
        payload[..STAMP_LEN].copy_from_slice(&(stamp & STAMP_MASK).to_be_bytes()[2..]);
        let mut v = Vec::new();
        match kind {
            Kind::Udp => b.udp(src.port(), 80).write(&mut v, &payload).unwrap(),
            Kind::Syn => b
                .tcp(src.port(), 80, 0x4c56_0001, 64240)
                .syn()
                .write(&mut v, &payload)
                .unwrap(),
            Kind::Ack => b
                .tcp(src.port(), 80, 0x4c56_0001, 64240)
                .ack(1)
                .write(&mut v, &payload)
                .unwrap(),
        }
        // etherparse leaves DF clear and the ID zero; ours sets DF.
        v[ETH + 6] = 0x40;
        let sum = fold(sum16(
            &[&v[ETH..ETH + 10], &v[ETH + 12..ETH + IP]].concat(),
            0,
        ));
        v[ETH + 10..ETH + 12].copy_from_slice(&sum.to_be_bytes());
        v
    }

    #[test]
    fn frames_match_etherparse_byte_for_byte_with_valid_checksums() {
        let src: SocketAddrV4 = "198.19.3.7:4321".parse().unwrap();
        let stamp = 0x0123_4567_89ab_cdefu64;
        for (size, kind) in [
            (64, Kind::Syn),
            (64, Kind::Ack),
            (64, Kind::Udp),
            (512, Kind::Ack),
            (1518, Kind::Udp),
            (1500, Kind::Syn),
        ] {
            let t = Template::new(size, kind == Kind::Udp, SRC, DST, vip()).unwrap();
            let mut buf = vec![0xeeu8; 2048];
            let n = t.write(&mut buf, src, kind, stamp);
            assert_eq!(n, size - FCS);
            assert_eq!(
                &buf[..n],
                &reference(size, src, kind, stamp)[..],
                "{size} {kind:?}"
            );
            let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
            let ip = match p.net.unwrap() {
                etherparse::NetSlice::Ipv4(ip) => ip,
                _ => panic!("not IPv4"),
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            match p.transport.unwrap() {
                TransportSlice::Tcp(t) => assert_eq!(
                    t.checksum(),
                    t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap()
                ),
                TransportSlice::Udp(u) => assert_eq!(
                    u.checksum(),
                    u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap()
                ),
                other => panic!("{other:?}"),
            }
            assert_eq!(read_stamp(&buf[..n]), Some(stamp & STAMP_MASK));
        }
    }

    #[test]
    fn the_smallest_tcp_frame_still_carries_the_stamp() {
        let t = Template::new(64, false, SRC, DST, vip()).unwrap();
        assert_eq!(t.len(), ETH + IP + TCP + STAMP_LEN);
        let mut small = [0u8; 59];
        assert_eq!(
            t.write(&mut small, vip(), Kind::Ack, 1),
            0,
            "buffer too small"
        );
        assert!(Template::new(63, false, SRC, DST, vip()).is_err());
        assert!(Template::new(1519, true, SRC, DST, vip()).is_err());
    }

    #[test]
    fn stamps_survive_forwarding_rewrites_and_vlan_tags() {
        let t = Template::new(128, false, SRC, DST, vip()).unwrap();
        let mut f = vec![0u8; 256];
        let n = t.write(&mut f, "198.19.0.1:2000".parse().unwrap(), Kind::Ack, 777);
        f.truncate(n);
        // DR rewrites MACs, NAT the destination: neither moves the payload.
        let mut dr = f.clone();
        dr[0..12].copy_from_slice(&[9; 12]);
        assert_eq!(read_stamp(&dr), Some(777));
        let mut nat = f.clone();
        nat[ETH + 16..ETH + 20].copy_from_slice(&[198, 18, 0, 11]);
        nat[L4 + 2..L4 + 4].copy_from_slice(&8080u16.to_be_bytes());
        assert_eq!(read_stamp(&nat), Some(777));
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(read_stamp(&tagged), Some(777));
        // Not ours: ARP, truncated, ICMP.
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(read_stamp(&arp), None);
        assert_eq!(read_stamp(&f[..L4 + TCP + 2]), None);
        let mut icmp = f.clone();
        icmp[ETH + 9] = 1;
        assert_eq!(read_stamp(&icmp), None);
    }

    #[test]
    fn stamp_age_wraps_at_48_bits() {
        assert_eq!(stamp_age(1_000, 400), 600);
        let now = (1u64 << 48) + 5; // the clock passed a wrap
        assert_eq!(stamp_age(now, STAMP_MASK - 4), 10);
        assert_eq!(stamp_age(now & STAMP_MASK, (now - 10) & STAMP_MASK), 10);
    }

    #[test]
    fn flows_stay_in_the_benchmark_range_and_are_distinct() {
        let f = Flows::new(1_000_000, 1024).unwrap();
        assert_eq!(f.client(0), "198.19.0.1:1024".parse().unwrap());
        assert_eq!(f.client(65533), "198.19.255.254:1024".parse().unwrap());
        assert_eq!(f.client(65534), "198.19.0.1:1025".parse().unwrap());
        assert_eq!(f.client(999_999).port(), 1024 + 15);
        let mut seen = std::collections::HashSet::new();
        for i in (0..1_000_000).step_by(997) {
            assert!(seen.insert(f.client(i)));
        }
        assert!(Flows::new(1_000_000, 65530).is_err());
        assert!(Flows::new(0, 1024).is_err());
        for k in [0u64, 1, 32765, 32766, 5_000_000_000] {
            let c = new_client(k);
            let o = c.ip().octets();
            assert_eq!((o[0], o[1]), (198, 18));
            assert!(o[2] >= 128 && c.port() >= 1024, "{c}");
        }
        assert_ne!(new_client(0), new_client(32766));
    }

    fn kinds(mix: Mix, flows: u32, q: u32, nq: u32, n: usize) -> Vec<(SocketAddrV4, Kind)> {
        let t = Template::new(64, mix == Mix::Udp, SRC, DST, vip()).unwrap();
        let mut g = Generator::new(t, Flows::new(flows, 2000).unwrap(), mix, q, nq, 0);
        (0..n).map(|_| g.next_packet()).collect()
    }

    #[test]
    fn tcp_flows_open_with_a_syn_then_send_acks() {
        let t = Template::new(64, false, SRC, DST, vip()).unwrap();
        let mut g = Generator::new(
            t,
            Flows::new(3, 2000).unwrap(),
            Mix::Tcp { new_pct: 0 },
            0,
            1,
            0,
        );
        for _ in 0..3 {
            assert!(g.opening());
            g.next_packet();
        }
        assert!(!g.opening(), "every flow has sent its SYN");
        let v = kinds(Mix::Tcp { new_pct: 0 }, 3, 0, 1, 7);
        let clients: Vec<u16> = v.iter().map(|(c, _)| c.ip().octets()[3].into()).collect();
        assert_eq!(clients, [1, 2, 3, 1, 2, 3, 1]);
        let k: Vec<Kind> = v.iter().map(|p| p.1).collect();
        use Kind::*;
        assert_eq!(k, [Syn, Syn, Syn, Ack, Ack, Ack, Ack]);
        assert!(kinds(Mix::Udp, 3, 0, 1, 5).iter().all(|p| p.1 == Udp));
        let t = Template::new(64, false, SRC, DST, vip()).unwrap();
        let mut g = Generator::new(
            t,
            Flows::new(2, 2000).unwrap(),
            Mix::Tcp { new_pct: 0 },
            0,
            1,
            0,
        )
        .open_with(Ack);
        assert!((0..4).all(|_| g.next_packet().1 == Ack));
    }

    #[test]
    fn queues_split_the_flows_and_new_connections_are_mixed_in() {
        // Queue 1 of 2 over 5 flows sends flows 1 and 3.
        let v = kinds(Mix::Tcp { new_pct: 0 }, 5, 1, 2, 4);
        let hosts: Vec<u8> = v.iter().map(|(c, _)| c.ip().octets()[3]).collect();
        assert_eq!(hosts, [2, 4, 2, 4]);
        // One flow, two queues: both send it.
        assert_eq!(
            kinds(Mix::Udp, 1, 1, 2, 1)[0].0,
            kinds(Mix::Udp, 1, 0, 2, 1)[0].0
        );
        // 10 % new connections: 10 of every 100 packets, all SYNs from the
        // new-connection range, all distinct.
        let v = kinds(Mix::Tcp { new_pct: 10 }, 1000, 0, 1, 300);
        let fresh: Vec<_> = v
            .iter()
            .filter(|(c, _)| c.ip().octets()[2] >= 128)
            .collect();
        assert_eq!(fresh.len(), 30);
        assert!(fresh.iter().all(|p| p.1 == Kind::Syn));
        let set: std::collections::HashSet<_> = fresh.iter().map(|p| p.0).collect();
        assert_eq!(set.len(), 30);
        // ...and no established flow loses its opening SYN to them.
        let est: Vec<_> = v.iter().filter(|(c, _)| c.ip().octets()[2] < 128).collect();
        assert_eq!(est.len(), 270);
        for (i, (c, k)) in est.iter().enumerate() {
            assert_eq!(
                (*c, *k),
                (Flows::new(1000, 2000).unwrap().client(i as u32), Kind::Syn)
            );
        }
        assert!(
            kinds(Mix::Syn, 10, 0, 1, 50)
                .iter()
                .all(|(c, k)| *k == Kind::Syn && c.ip().octets()[2] >= 128)
        );
    }

    #[test]
    fn mix_labels_round_trip() {
        for m in [
            Mix::Tcp { new_pct: 0 },
            Mix::Tcp { new_pct: 10 },
            Mix::Syn,
            Mix::Udp,
        ] {
            assert_eq!(Mix::parse(&m.label()).unwrap(), m);
        }
        assert!(Mix::parse("icmp").is_err());
        assert!(Mix::parse("tcp+101%new").is_err());
    }
}
