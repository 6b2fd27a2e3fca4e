//! Frame layouts: Ethernet (with 802.1Q / QinQ tags), IPv4, IPv6 (with its
//! extension header chain), TCP, UDP, ICMP and ICMPv6, plus checksums.
//!
//! [`parse`] turns a frame into a [`Headers`]: a small `Copy` summary of
//! offsets and header fields that the rest of the data plane reads, so no
//! borrow of the frame outlives the parse. [`FrameBuf`] is the mutable frame
//! that `forward` rewrites in place, growing it at the front into headroom
//! or, when there is too little (AF_XDP buffers have none), by moving it
//! toward the tail.
//!
//! Invariants of a `Headers` returned by [`parse`] for frame `f`:
//! - `l3_off + ip_len <= f.len()`; everything after that is link padding.
//! - `l3_off <= l4_off <= l3_off + ip_len`, and for TCP/UDP/ICMP the whole
//!   fixed L4 header (TCP: including options) lies before `l3_off + ip_len`.
//! - IPv4 header checksums have been verified; nothing else has.
//! - For an ICMP error the quoted IP header is complete and, for TCP, UDP
//!   and SCTP quotes that are not later fragments, the 4 port bytes are too.
//!
//! Deliberately not done here: TCP/UDP/ICMP checksum verification on the
//! hot path (IPVS trusts forwarded traffic; [`verify_l4_checksum`] exists
//! for tests and replay), reassembly, and anything that allocates.

pub mod announce;
pub mod arp;
pub mod checksum;
pub mod dns;
pub mod ethernet;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ipvs_sync;
pub mod tcp;
#[cfg(test)]
mod tests;
pub mod udp;
pub mod vlan;
pub mod vrrp;

use core::ops::Range;
use std::net::{IpAddr, Ipv4Addr};

use crate::counter::counter_enum;

use etherparse::{Ethernet2HeaderSlice, SingleVlanHeaderSlice};

pub use ethernet::{
    ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, ETH_P_QINQ_OLD, MacAddr,
};
pub use tcp::TcpFlags;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
/// Generic Routing Encapsulation (RFC 2784): a TUN real server's `gre` tunnels.
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

pub const IPV4_HLEN: usize = ipv4::HEADER_LEN;
pub const IPV6_HLEN: usize = ipv6::HEADER_LEN;

/// A `field` range moved to a header that starts at `base` in the frame:
/// `at(l3, ipv4::field::SRC)` is the source address of the IPv4 header at
/// `l3`.
#[inline(always)]
pub const fn at(base: usize, r: Range<usize>) -> Range<usize> {
    base + r.start..base + r.end
}

/// The frame does not fit: not enough headroom or tailroom in the buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NoRoom;

/// A frame in a buffer: the AF_XDP UMEM frame in production (which starts
/// at the packet: no headroom, the rest of the chunk as tailroom), a `Vec`
/// with headroom in replay and tests. The frame is `buf[head..head + len]`.
#[derive(Debug)]
pub struct FrameBuf<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> FrameBuf<'a> {
    /// Wraps `buf[head..head + len]`; out-of-range values are clamped to the
    /// buffer so a bad descriptor can never make later accesses panic.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Self {
        let head = head.min(buf.len());
        let len = len.min(buf.len() - head);
        FrameBuf { buf, head, len }
    }
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Offset of the frame's first byte in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.head - self.len
    }
    /// Grows the frame by `n` bytes at the front (the new bytes keep
    /// whatever the buffer held there). When the headroom is short, the
    /// frame is first moved toward the tail (a `memmove` inside the buffer)
    /// by exactly the missing bytes, so the grown frame starts at the
    /// buffer's first byte; [`NoRoom`] when headroom and tailroom together
    /// are too small (the frame is then left as it was).
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.head {
            let short = n - self.head;
            if short > self.tailroom() {
                return Err(NoRoom);
            }
            self.buf
                .copy_within(self.head..self.head + self.len, self.head + short);
            self.head += short;
        }
        self.head -= n;
        self.len += n;
        Ok(())
    }
    /// Drops up to `n` bytes from the front.
    pub fn pull_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head += n;
        self.len -= n;
    }
    /// Sets the frame length (truncating, or growing into tailroom).
    pub fn set_len(&mut self, len: usize) -> Result<(), NoRoom> {
        if len > self.buf.len() - self.head {
            return Err(NoRoom);
        }
        self.len = len;
        Ok(())
    }
}

counter_enum! {
    /// Why a frame was dropped as malformed: one variant per drop counter.
    pub enum ParseError {
        /// Shorter than an Ethernet header.
        TruncatedEthernet => "truncated_ethernet",
        /// A VLAN ethertype with fewer than 4 tag bytes after it.
        TruncatedVlan => "truncated_vlan",
        /// IPv4 ethertype but fewer than 20 bytes, or fewer than IHL*4.
        Ipv4Truncated => "ipv4_truncated",
        /// IPv4 ethertype but the version nibble is not 4.
        Ipv4BadVersion => "ipv4_bad_version",
        /// IHL below 5.
        Ipv4BadIhl => "ipv4_bad_ihl",
        /// Total length below the header length or beyond the frame.
        Ipv4BadTotalLength => "ipv4_bad_total_length",
        /// The IPv4 header checksum does not verify.
        Ipv4BadChecksum => "ipv4_bad_checksum",
        /// IPv6 ethertype but fewer than 40 bytes.
        Ipv6Truncated => "ipv6_truncated",
        /// IPv6 ethertype but the version nibble is not 6.
        Ipv6BadVersion => "ipv6_bad_version",
        /// Payload length reaches beyond the frame.
        Ipv6BadPayloadLength => "ipv6_bad_payload_length",
        /// Extension header chain truncated, hop-by-hop not first, or a bad
        /// authentication header.
        Ipv6BadExtHeaders => "ipv6_bad_ext_headers",
        /// Fewer than 20 bytes of TCP header, or fewer than its data offset says.
        TcpTruncated => "tcp_truncated",
        /// TCP data offset below 5.
        TcpBadDataOffset => "tcp_bad_data_offset",
        /// Fewer than 8 bytes of UDP header.
        UdpTruncated => "udp_truncated",
        /// Fewer than 8 bytes of ICMP/ICMPv6 header.
        IcmpTruncated => "icmp_truncated",
        /// An ICMP error whose quote lacks a complete IP header or the ports.
        IcmpInnerTruncated => "icmp_inner_truncated",
        /// An ICMP error quoting something that is not an IP header of the
        /// same family (wrong version, IHL below 5, hop-by-hop misplaced).
        IcmpInnerBad => "icmp_inner_bad",
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    V4,
    V6,
}

/// Where a packet sits in a fragmented datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// Not fragmented (IPv6 atomic fragments count as not fragmented).
    None,
    /// Offset 0 with more fragments: carries the L4 header.
    First,
    /// Offset > 0: no L4 header, no ports.
    Later,
}

/// An ICMP/ICMPv6 error and the connection it quotes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// (type, code).
    pub kind: (u8, u8),
    /// Next-hop MTU of an ICMPv4 "fragmentation needed" (0 from pre-RFC 1191
    /// routers is kept as `Some(0)`) or the MTU of an ICMPv6 Headers Too Big.
    pub mtu: Option<u32>,
    pub inner_l3_off: usize,
    pub inner_l4_off: usize,
    pub inner_src: IpAddr,
    pub inner_dst: IpAddr,
    pub inner_proto: u8,
    /// Fragment position of the quoted packet; a later fragment has no ports.
    pub inner_frag: Fragment,
    /// Quoted ports (0 when the quote is not TCP/UDP/SCTP or a later fragment).
    pub inner_sport: u16,
    pub inner_dport: u16,
}

/// What follows the IP header(s).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP echo request/reply (v4 8/0, v6 128/129).
    IcmpEcho {
        ty: u8,
        code: u8,
        id: u16,
    },
    /// Any other ICMP/ICMPv6 message that is not an error IPVS relates to a
    /// connection (redirects, source quench, neighbour discovery, ...).
    IcmpOther {
        ty: u8,
        code: u8,
    },
    IcmpError(IcmpError),
    /// Another protocol, or a later fragment.
    Other,
}

/// Everything the data plane needs from one frame, as offsets into it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Outer (service) tag TCI of a QinQ frame.
    pub svlan: Option<u16>,
    /// The 802.1Q (customer) tag TCI; for a single tag of any VLAN ethertype,
    /// that tag.
    pub vlan: Option<u16>,
    /// Start of the IP header = length of the link header including tags.
    pub l3_off: usize,
    /// Start of the upper-layer header (after IPv4 options / IPv6 extension
    /// headers).
    pub l4_off: usize,
    /// IP total length including the header, as claimed and checked to fit.
    pub ip_len: u16,
    pub version: IpVersion,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub proto: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// DSCP + ECN / traffic class.
    pub tos: u8,
    /// IPv4 DF; always true for IPv6, which routers never fragment.
    pub df: bool,
    pub frag: Fragment,
    pub l4: L4,
}

impl Headers {
    /// End of the IP packet in the frame (start of any link padding).
    #[inline]
    pub fn l3_end(&self) -> usize {
        self.l3_off + self.ip_len as usize
    }
}

/// Parses one Ethernet frame.
///
/// `Ok(None)`: not an IP frame the balancer looks at (ARP, LLDP, other
/// ethertypes): hand it to the kernel. `Ok(Some(p))`: an IPv4/IPv6 packet.
/// `Err(e)`: malformed: drop and count `e`.
///
/// The common shape of data traffic is recognised by a fast path of fixed-
/// offset reads ([`fast_headers`]); everything else, malformed frames
/// included, goes through the general parser, which gives the same
/// `Headers` for the frames the fast path takes (tested over the fixtures
/// and random frames).
#[inline]
pub fn parse(frame: &[u8]) -> Result<Option<Headers>, ParseError> {
    match fast_headers(frame) {
        Some(p) => Ok(Some(p)),
        None => parse_full(frame),
    }
}

/// [`parse`] handing the headers to `then` by reference, with the frame
/// back for rewriting: `then(frame, Ok(Some(&headers)))` for an IP packet,
/// `Ok(None)` for a frame that is not IP, `Err(e)` for a malformed one.
///
/// The data plane's per-frame entry. On the fast path the `Headers` is
/// built in this (inlined) frame and lent to `then`, never moved: a
/// returned `Result<Option<Headers>>` costs a copy of ~150 bytes a frame.
#[inline(always)]
pub fn parse_then<R>(
    frame: &mut FrameBuf<'_>,
    then: impl FnOnce(&mut FrameBuf<'_>, Result<Option<&Headers>, ParseError>) -> R,
) -> R {
    // By reference, so the headers stay where they were built.
    if let Some(h) = &fast_headers(frame.data()) {
        return then(frame, Ok(Some(h)));
    }
    match parse_full(frame.data()) {
        Ok(Some(h)) => then(frame, Ok(Some(&h))),
        Ok(None) => then(frame, Ok(None)),
        Err(e) => then(frame, Err(e)),
    }
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at + 2) {
        Some(&[x, y]) => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

/// What the fast path reads from an IP header ([`ipv4::fast`],
/// [`ipv6::fast`]).
struct FastIp {
    version: IpVersion,
    /// Header length (no options or extension headers on the fast path).
    hlen: usize,
    /// Total length, checked to be within the frame.
    total: usize,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tos: u8,
    df: bool,
}

/// The common case in one pass: Ethernet with at most two VLAN tags, then
/// IPv4 without options and not fragmented, or IPv6 without extension
/// headers, then a complete TCP or UDP header. `None` means "not this
/// shape": anything else, valid or not, is left to [`parse_full`], so the
/// fast path never has to produce an error itself.
#[inline(always)]
fn fast_headers(frame: &[u8]) -> Option<Headers> {
    const TAG1: usize = ETH_HLEN;
    const TAG2: usize = ETH_HLEN + vlan::HEADER_LEN;
    let mut ethertype = be16(frame, ethernet::field::ETHERTYPE.start)?;
    let mut off = ETH_HLEN;
    let (mut svlan, mut vlan) = (None, None);
    if vlan::is_vlan_type(ethertype) {
        let tci = be16(frame, TAG1 + vlan::field::TCI.start)?;
        ethertype = be16(frame, TAG1 + vlan::field::ETHERTYPE.start)?;
        off = TAG2;
        if vlan::is_vlan_type(ethertype) {
            svlan = Some(tci);
            vlan = Some(be16(frame, TAG2 + vlan::field::TCI.start)?);
            ethertype = be16(frame, TAG2 + vlan::field::ETHERTYPE.start)?;
            off = TAG2 + vlan::HEADER_LEN;
        } else {
            vlan = Some(tci);
        }
    }
    let ip = frame.get(off..)?;
    let h = match ethertype {
        ETH_P_IPV4 => ipv4::fast(ip)?,
        ETH_P_IPV6 => ipv6::fast(ip)?,
        _ => return None,
    };
    fast_l4(ip, off, svlan, vlan, h)
}

/// The rest of the fast path after the IP header `h` of `ip`, which starts
/// at `off` in the frame: a TCP or UDP header, and the `Headers`.
#[inline(always)]
fn fast_l4(
    ip: &[u8],
    off: usize,
    svlan: Option<u16>,
    vlan: Option<u16>,
    h: FastIp,
) -> Option<Headers> {
    // `hlen <= total <= ip.len()` was checked by `fast`.
    let l4data = ip.get(h.hlen..h.total)?;
    let l4 = match h.proto {
        IPPROTO_TCP => tcp::fast(l4data)?,
        IPPROTO_UDP => udp::fast(l4data)?,
        _ => return None,
    };
    Some(Headers {
        svlan,
        vlan,
        l3_off: off,
        l4_off: off + h.hlen,
        ip_len: h.total as u16,
        version: h.version,
        src: h.src,
        dst: h.dst,
        proto: h.proto,
        ttl: h.ttl,
        tos: h.tos,
        df: h.df,
        frag: Fragment::None,
        l4,
    })
}

/// Where [`untagged_ipv4`]'s shape puts the TCP/UDP header: after the
/// Ethernet header and an IPv4 header without options.
const UNTAGGED_L4: usize = ETH_HLEN + ipv4::HEADER_LEN;

/// [`fast_headers`] of the commonest shape only: untagged Ethernet, IPv4
/// without options, not fragmented, TCP or UDP (`None` for anything else,
/// which [`parse`] then takes). Gives what `parse` gives for such a frame.
#[inline(always)]
pub fn untagged_ipv4(frame: &[u8]) -> Option<Headers> {
    if be16(frame, ethernet::field::ETHERTYPE.start)? != ETH_P_IPV4 {
        return None;
    }
    let ip = frame.get(ETH_HLEN..)?;
    fast_l4(ip, ETH_HLEN, None, None, ipv4::fast(ip)?)
}

/// The `(proto, src, sport, dst, dport)` that [`untagged_ipv4`] reads from
/// a frame of its shape, read without validating anything (the frame may
/// be of another shape or malformed: the caller uses the tuple only once
/// `untagged_ipv4` accepted the frame). For hashing the tuple before the
/// validation, which then overlaps the lookup's latency.
#[inline(always)]
pub fn peek_untagged_ipv4(frame: &[u8]) -> Option<(u8, Ipv4Addr, u16, Ipv4Addr, u16)> {
    const IP: usize = ETH_HLEN;
    let b: &[u8; UNTAGGED_L4 + 4] = frame.get(..UNTAGGED_L4 + 4)?.try_into().ok()?;
    if be16(b, ethernet::field::ETHERTYPE.start)? != ETH_P_IPV4 {
        return None;
    }
    let addr = |at: Range<usize>| {
        Ipv4Addr::new(
            b[IP + at.start],
            b[IP + at.start + 1],
            b[IP + at.start + 2],
            b[IP + at.start + 3],
        )
    };
    Some((
        b[IP + ipv4::field::PROTOCOL],
        addr(ipv4::field::SRC),
        be16(b, UNTAGGED_L4 + tcp::field::SRC_PORT.start)?,
        addr(ipv4::field::DST),
        be16(b, UNTAGGED_L4 + tcp::field::DST_PORT.start)?,
    ))
}

/// The 5-tuple of a TCP or UDP frame, as far as a quick look can tell:
/// `(proto, src, sport, dst, dport)`.
pub type Tuple = (u8, IpAddr, u16, IpAddr, u16);

/// A guess at a frame's 5-tuple for prefetching ([`crate::hint`]): the
/// shapes [`fast_headers`] takes, without validating anything (checksums,
/// lengths, fragments). A wrong guess costs one useless prefetch, never a
/// wrong decision: the frame is parsed properly before anything uses it.
#[inline]
pub fn peek_tuple(frame: &[u8]) -> Option<Tuple> {
    let mut ethertype = be16(frame, ethernet::field::ETHERTYPE.start)?;
    let mut off = ETH_HLEN;
    while vlan::is_vlan_type(ethertype) && off < ETH_HLEN + 2 * vlan::HEADER_LEN {
        ethertype = be16(frame, off + vlan::field::ETHERTYPE.start)?;
        off += vlan::HEADER_LEN;
    }
    let ip = frame.get(off..)?;
    let (hlen, proto, src, dst) = match ethertype {
        ETH_P_IPV4 => ipv4::peek(ip)?,
        ETH_P_IPV6 => ipv6::peek(ip)?,
        _ => return None,
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    // TCP and UDP both start with the two ports.
    let sport = be16(ip, hlen + tcp::field::SRC_PORT.start)?;
    let dport = be16(ip, hlen + tcp::field::DST_PORT.start)?;
    Some((proto, src, sport, dst, dport))
}

/// The general parser behind [`parse`]: every header shape it supports and
/// every drop reason. Kept out of line: the fast path is what inlines.
#[inline(never)]
fn parse_full(frame: &[u8]) -> Result<Option<Headers>, ParseError> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| ParseError::TruncatedEthernet)?;
    let mut ethertype = eth.ether_type().0;
    let mut off = ETH_HLEN;
    let mut tags = [None::<u16>; 2];
    let mut ntags = 0;
    while ntags < 2 && vlan::is_vlan_type(ethertype) {
        let rest = frame.get(off..).unwrap_or_default();
        let tag = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| ParseError::TruncatedVlan)?;
        let s = tag.slice();
        let tci = vlan::field::TCI;
        tags[ntags] = Some(u16::from_be_bytes([s[tci.start], s[tci.start + 1]]));
        ntags += 1;
        ethertype = tag.ether_type().0;
        off += vlan::HEADER_LEN;
    }
    let (svlan, vlan) = if ntags == 2 {
        (tags[0], tags[1])
    } else {
        (None, tags[0])
    };
    let l3 = frame.get(off..).unwrap_or_default();
    let p = match ethertype {
        ETH_P_IPV4 => ipv4::parse(l3, off)?,
        ETH_P_IPV6 => ipv6::parse(l3, off)?,
        _ => return Ok(None),
    };
    Ok(Some(Headers { svlan, vlan, ..p }))
}

/// IP layer fields shared by the outer and the quoted (ICMP) header.
struct IpInfo {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    tos: u8,
    df: bool,
    frag: Fragment,
    /// Header length including IPv4 options / IPv6 extension headers.
    hlen: usize,
    /// Total length the header claims.
    total: usize,
}

/// Builds the packet once the IP header is known: parses the L4 header in
/// `ip[hlen..total]` unless this is a later fragment.
fn finish_ip(
    ip: &[u8],
    l3_off: usize,
    version: IpVersion,
    info: IpInfo,
) -> Result<Headers, ParseError> {
    let l4_off = l3_off + info.hlen;
    let l4data = ip.get(info.hlen..info.total).unwrap_or_default();
    let l4 = match info.frag {
        Fragment::Later => L4::Other,
        Fragment::None => parse_l4(l4data, l4_off, version, info.proto)?,
        // A first fragment too short for its upper header is still
        // reassembled, without ports, as the kernel does: IPv4 always
        // (ip_defrag), IPv6 when it holds the 20 TCP / 8 UDP / 8 ICMPv6
        // bytes `ipv6frag_thdr_truncated` asks of nf_ct_frag6_gather.
        Fragment::First => match parse_l4(l4data, l4_off, version, info.proto) {
            Err(_) if first_fragment_reassembles(version, info.proto, l4data.len()) => L4::Other,
            r => r?,
        },
    };
    Ok(Headers {
        svlan: None,
        vlan: None,
        l3_off,
        l4_off,
        ip_len: info.total as u16,
        version,
        src: info.src,
        dst: info.dst,
        proto: info.proto,
        ttl: info.ttl,
        tos: info.tos,
        df: info.df,
        frag: info.frag,
        l4,
    })
}

/// Whether a first fragment whose upper header does not parse from its
/// `len` bytes is reassembled all the same (see [`finish_ip`]).
fn first_fragment_reassembles(version: IpVersion, proto: u8, len: usize) -> bool {
    match version {
        IpVersion::V4 => true,
        IpVersion::V6 => {
            let need = match proto {
                IPPROTO_TCP => tcp::HEADER_LEN,
                IPPROTO_UDP => udp::HEADER_LEN,
                IPPROTO_ICMPV6 => icmpv6::HEADER_LEN,
                _ => 1,
            };
            len >= need
        }
    }
}

fn parse_l4(l4: &[u8], l4_off: usize, version: IpVersion, proto: u8) -> Result<L4, ParseError> {
    match (proto, version) {
        (IPPROTO_TCP, _) => tcp::parse(l4),
        (IPPROTO_UDP, _) => udp::parse(l4),
        (IPPROTO_ICMP, IpVersion::V4) | (IPPROTO_ICMPV6, IpVersion::V6) => {
            icmp::parse(l4, l4_off, version)
        }
        _ => Ok(L4::Other),
    }
}

/// Full TCP/UDP/ICMP/ICMPv6 checksum verification by recomputation (with
/// the pseudo-header where the protocol has one). Fragments cannot be
/// verified without reassembly and give `false`; IPv4 UDP with checksum 0
/// ("none") gives `true`. Not used on the hot path.
pub fn verify_l4_checksum(frame: &[u8], p: &Headers) -> bool {
    if p.frag != Fragment::None {
        return false;
    }
    let Some(l4) = frame.get(p.l4_off..p.l3_end()) else {
        return false;
    };
    let csum = match p.l4 {
        L4::Tcp { .. } => tcp::field::CHECKSUM,
        L4::Udp { .. } => udp::field::CHECKSUM,
        L4::IcmpEcho { .. } | L4::IcmpOther { .. } | L4::IcmpError(_) => icmp::field::CHECKSUM,
        L4::Other => return false,
    };
    if l4.len() < csum.end {
        return false;
    }
    if matches!(p.l4, L4::Udp { .. }) && p.version == IpVersion::V4 && l4[csum] == [0, 0] {
        return true;
    }
    let data_sum = checksum::sum(l4);
    let total = if p.version == IpVersion::V4 && p.proto == IPPROTO_ICMP {
        data_sum
    } else {
        checksum::add(
            data_sum,
            checksum::pseudo(p.src, p.dst, p.proto, l4.len() as u32),
        )
    };
    total == 0xFFFF
}
