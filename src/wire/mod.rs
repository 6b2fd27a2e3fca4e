//! Frame layouts: Ethernet (with 802.1Q / QinQ tags), IPv4, IPv6 (with its
//! extension header chain), TCP, UDP, ICMP and ICMPv6, plus checksums.
//!
//! [`parse`] turns a frame into a [`Headers`]: a small `Copy` summary of
//! offsets and header fields that the rest of the data plane reads, so no
//! borrow of the frame outlives the parse. [`FrameBuf`] is the mutable frame
//! with headroom that `forward` rewrites in place.
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
#![forbid(unsafe_code)]

pub mod announce;
pub mod checksum;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
pub mod vrrp;

use std::net::IpAddr;

use crate::counter::counter_enum;

use etherparse::err::{ipv4, ipv6, tcp};
use etherparse::{
    Ethernet2HeaderSlice, IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};

/// Ethertypes the parser knows.
pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still seen on some switches.
pub const ETH_P_QINQ_OLD: u16 = 0x9100;
pub const ETH_HLEN: usize = 14;

/// An Ethernet MAC address.
pub type MacAddr = [u8; 6];

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;

/// The frame does not fit: not enough headroom or tailroom in the buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NoRoom;

/// A frame in a buffer with headroom: the AF_XDP UMEM frame in production,
/// a `Vec` in replay and tests. The frame is `buf[head..head + len]`.
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
    /// whatever the buffer held there).
    pub fn push_front(&mut self, n: usize) -> Result<(), NoRoom> {
        if n > self.head {
            return Err(NoRoom);
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

/// TCP flag bits as on the wire (byte 13 of the header).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    #[inline]
    pub const fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
    #[inline]
    pub const fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    #[inline]
    pub const fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    #[inline]
    pub const fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    #[inline]
    pub const fn rst(self) -> bool {
        self.has(Self::RST)
    }
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
/// offset reads ([`parse_fast`]); everything else, malformed frames
/// included, goes through the general parser, which gives the same
/// `Headers` for the frames the fast path takes (tested over the fixtures
/// and random frames).
#[inline]
pub fn parse(frame: &[u8]) -> Result<Option<Headers>, ParseError> {
    match parse_fast(frame) {
        Some(p) => Ok(Some(p)),
        None => parse_full(frame),
    }
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at + 2) {
        Some(&[x, y]) => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

fn is_vlan_type(ethertype: u16) -> bool {
    matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_OLD)
}

/// The common case in one pass: Ethernet with at most two VLAN tags, then
/// IPv4 without options and not fragmented, or IPv6 without extension
/// headers, then a complete TCP or UDP header. `None` means "not this
/// shape": anything else, valid or not, is left to [`parse_full`], so the
/// fast path never has to produce an error itself.
#[inline(always)]
fn parse_fast(frame: &[u8]) -> Option<Headers> {
    let mut ethertype = be16(frame, 12)?;
    let mut off = ETH_HLEN;
    let (mut svlan, mut vlan) = (None, None);
    if is_vlan_type(ethertype) {
        let tci = be16(frame, 14)?;
        ethertype = be16(frame, 16)?;
        off = 18;
        if is_vlan_type(ethertype) {
            svlan = Some(tci);
            vlan = Some(be16(frame, 18)?);
            ethertype = be16(frame, 20)?;
            off = 22;
        } else {
            vlan = Some(tci);
        }
    }
    let ip = frame.get(off..)?;
    let (version, hlen, total, proto, src, dst, ttl, tos, df) = match ethertype {
        ETH_P_IPV4 => {
            let h: &[u8; IPV4_HLEN] = ip.get(..IPV4_HLEN)?.try_into().ok()?;
            // Version 4 with IHL 5: no options.
            if h[0] != 0x45 {
                return None;
            }
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            let flags_frag = u16::from_be_bytes([h[6], h[7]]);
            // MF or a fragment offset: a fragment.
            if total < IPV4_HLEN || total > ip.len() || flags_frag & 0x3fff != 0 {
                return None;
            }
            if !checksum::verify_ipv4_header(h) {
                return None;
            }
            let src = IpAddr::V4([h[12], h[13], h[14], h[15]].into());
            let dst = IpAddr::V4([h[16], h[17], h[18], h[19]].into());
            let df = flags_frag & 0x4000 != 0;
            (
                IpVersion::V4,
                IPV4_HLEN,
                total,
                h[9],
                src,
                dst,
                h[8],
                h[1],
                df,
            )
        }
        ETH_P_IPV6 => {
            let h: &[u8; IPV6_HLEN] = ip.get(..IPV6_HLEN)?.try_into().ok()?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let total = IPV6_HLEN + u16::from_be_bytes([h[4], h[5]]) as usize;
            if total > ip.len() || total > u16::MAX as usize {
                return None;
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&h[8..24]);
            d.copy_from_slice(&h[24..40]);
            let tos = (h[0] << 4) | (h[1] >> 4);
            (
                IpVersion::V6,
                IPV6_HLEN,
                total,
                h[6],
                IpAddr::V6(s.into()),
                IpAddr::V6(d.into()),
                h[7],
                tos,
                true,
            )
        }
        _ => return None,
    };
    // `hlen <= total <= ip.len()` was checked above.
    let l4data = ip.get(hlen..total)?;
    let l4 = match proto {
        IPPROTO_TCP => {
            let t = l4data.get(..20)?;
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 || doff > l4data.len() {
                return None;
            }
            L4::Tcp {
                sport: u16::from_be_bytes([t[0], t[1]]),
                dport: u16::from_be_bytes([t[2], t[3]]),
                flags: TcpFlags(t[13]),
                seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
                ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
            }
        }
        IPPROTO_UDP => {
            let u = l4data.get(..8)?;
            L4::Udp {
                sport: u16::from_be_bytes([u[0], u[1]]),
                dport: u16::from_be_bytes([u[2], u[3]]),
            }
        }
        _ => return None,
    };
    Some(Headers {
        svlan,
        vlan,
        l3_off: off,
        l4_off: off + hlen,
        ip_len: total as u16,
        version,
        src,
        dst,
        proto,
        ttl,
        tos,
        df,
        frag: Fragment::None,
        l4,
    })
}

/// The 5-tuple of a TCP or UDP frame, as far as a quick look can tell:
/// `(proto, src, sport, dst, dport)`.
pub type Tuple = (u8, IpAddr, u16, IpAddr, u16);

/// A guess at a frame's 5-tuple for prefetching ([`crate::hint`]): the
/// shapes [`parse_fast`] takes, without validating anything (checksums,
/// lengths, fragments). A wrong guess costs one useless prefetch, never a
/// wrong decision: the frame is parsed properly before anything uses it.
#[inline]
pub fn peek_tuple(frame: &[u8]) -> Option<Tuple> {
    let mut ethertype = be16(frame, 12)?;
    let mut off = ETH_HLEN;
    while is_vlan_type(ethertype) && off < 22 {
        ethertype = be16(frame, off + 2)?;
        off += 4;
    }
    let ip = frame.get(off..)?;
    let (hlen, proto, src, dst) = match ethertype {
        ETH_P_IPV4 => {
            let h: &[u8; IPV4_HLEN] = ip.get(..IPV4_HLEN)?.try_into().ok()?;
            (
                usize::from(h[0] & 0x0f) * 4,
                h[9],
                IpAddr::V4([h[12], h[13], h[14], h[15]].into()),
                IpAddr::V4([h[16], h[17], h[18], h[19]].into()),
            )
        }
        ETH_P_IPV6 => {
            let h: &[u8; IPV6_HLEN] = ip.get(..IPV6_HLEN)?.try_into().ok()?;
            let s: [u8; 16] = h[8..24].try_into().ok()?;
            let d: [u8; 16] = h[24..40].try_into().ok()?;
            (IPV6_HLEN, h[6], IpAddr::V6(s.into()), IpAddr::V6(d.into()))
        }
        _ => return None,
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    let sport = be16(ip, hlen)?;
    let dport = be16(ip, hlen + 2)?;
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
    while ntags < 2 && matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_OLD) {
        let rest = frame.get(off..).unwrap_or_default();
        let tag = SingleVlanHeaderSlice::from_slice(rest).map_err(|_| ParseError::TruncatedVlan)?;
        let s = tag.slice();
        tags[ntags] = Some(u16::from_be_bytes([s[0], s[1]]));
        ntags += 1;
        ethertype = tag.ether_type().0;
        off += 4;
    }
    let (svlan, vlan) = if ntags == 2 {
        (tags[0], tags[1])
    } else {
        (None, tags[0])
    };
    let l3 = frame.get(off..).unwrap_or_default();
    let p = match ethertype {
        ETH_P_IPV4 => parse_ipv4(l3, off)?,
        ETH_P_IPV6 => parse_ipv6(l3, off)?,
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

fn v4_header(ip: &[u8]) -> Result<IpInfo, ipv4::HeaderSliceError> {
    let h = Ipv4HeaderSlice::from_slice(ip)?;
    let fo = h.fragments_offset().value();
    let frag = if fo != 0 {
        Fragment::Later
    } else if h.more_fragments() {
        Fragment::First
    } else {
        Fragment::None
    };
    let s = h.slice();
    Ok(IpInfo {
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        proto: h.protocol().0,
        ttl: h.ttl(),
        tos: s[1],
        df: h.dont_fragment(),
        frag,
        hlen: s.len(),
        total: h.total_len() as usize,
    })
}

fn parse_ipv4(ip: &[u8], l3_off: usize) -> Result<Headers, ParseError> {
    use ipv4::HeaderError as HE;
    use ipv4::HeaderSliceError as E;
    let info = v4_header(ip).map_err(|e| match e {
        E::Len(_) => ParseError::Ipv4Truncated,
        E::Content(HE::UnexpectedVersion { .. }) => ParseError::Ipv4BadVersion,
        E::Content(HE::HeaderLengthSmallerThanHeader { .. }) => ParseError::Ipv4BadIhl,
    })?;
    if info.total < info.hlen || info.total > ip.len() {
        return Err(ParseError::Ipv4BadTotalLength);
    }
    if !checksum::verify(&ip[..info.hlen]) {
        return Err(ParseError::Ipv4BadChecksum);
    }
    finish_ip(ip, l3_off, IpVersion::V4, info)
}

fn parse_ipv6(ip: &[u8], l3_off: usize) -> Result<Headers, ParseError> {
    let h = Ipv6HeaderSlice::from_slice(ip).map_err(|e| match e {
        ipv6::HeaderSliceError::Len(_) => ParseError::Ipv6Truncated,
        ipv6::HeaderSliceError::Content(_) => ParseError::Ipv6BadVersion,
    })?;
    let total = IPV6_HLEN + h.payload_length() as usize;
    if total > ip.len() || total > u16::MAX as usize {
        return Err(ParseError::Ipv6BadPayloadLength);
    }
    let exts = walk_v6_exts(h.next_header().0, &ip[IPV6_HLEN..total])
        .map_err(|_| ParseError::Ipv6BadExtHeaders)?;
    let info = IpInfo {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        proto: exts.proto,
        ttl: h.hop_limit(),
        tos: h.traffic_class(),
        df: true,
        frag: exts.frag,
        hlen: IPV6_HLEN + exts.len,
        total,
    };
    finish_ip(ip, l3_off, IpVersion::V6, info)
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
    let l4 = if info.frag == Fragment::Later {
        L4::Other
    } else {
        parse_l4(l4data, l4_off, version, info.proto)?
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

fn parse_l4(l4: &[u8], l4_off: usize, version: IpVersion, proto: u8) -> Result<L4, ParseError> {
    match (proto, version) {
        (IPPROTO_TCP, _) => {
            let t = TcpHeaderSlice::from_slice(l4).map_err(|e| match e {
                tcp::HeaderSliceError::Len(_) => ParseError::TcpTruncated,
                tcp::HeaderSliceError::Content(_) => ParseError::TcpBadDataOffset,
            })?;
            Ok(L4::Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                flags: TcpFlags(t.slice()[13]),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
            })
        }
        (IPPROTO_UDP, _) => {
            let u = UdpHeaderSlice::from_slice(l4).map_err(|_| ParseError::UdpTruncated)?;
            Ok(L4::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
            })
        }
        (IPPROTO_ICMP, IpVersion::V4) | (IPPROTO_ICMPV6, IpVersion::V6) => {
            parse_icmp(l4, l4_off, version)
        }
        _ => Ok(L4::Other),
    }
}

/// ICMP types this parser treats as errors quoting a packet, as IPVS's
/// `ip_vs_in_icmp` / `ip_vs_in_icmp_v6` do (plus parameter problem, which
/// quotes the same way). Redirect and source quench are not related to
/// connections here.
fn is_icmp_error(version: IpVersion, ty: u8) -> bool {
    match version {
        IpVersion::V4 => matches!(ty, 3 | 11 | 12),
        IpVersion::V6 => matches!(ty, 1..=4),
    }
}

fn parse_icmp(l4: &[u8], l4_off: usize, version: IpVersion) -> Result<L4, ParseError> {
    let Some(hdr) = l4.get(..8) else {
        return Err(ParseError::IcmpTruncated);
    };
    let (ty, code) = (hdr[0], hdr[1]);
    let echo = match version {
        IpVersion::V4 => matches!(ty, 0 | 8),
        IpVersion::V6 => matches!(ty, 128 | 129),
    };
    if echo {
        return Ok(L4::IcmpEcho {
            ty,
            code,
            id: u16::from_be_bytes([hdr[4], hdr[5]]),
        });
    }
    if !is_icmp_error(version, ty) {
        return Ok(L4::IcmpOther { ty, code });
    }
    let mtu = match (version, ty, code) {
        (IpVersion::V4, 3, 4) => Some(u16::from_be_bytes([hdr[6], hdr[7]]) as u32),
        (IpVersion::V6, 2, _) => Some(u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]])),
        _ => None,
    };
    let quote = &l4[8..];
    let inner_l3_off = l4_off + 8;
    // The quote may be cut anywhere after the IP header: lengths it claims
    // are not checked against what is present.
    let info = match version {
        IpVersion::V4 => v4_header(quote).map_err(|e| match e {
            ipv4::HeaderSliceError::Len(_) => ParseError::IcmpInnerTruncated,
            ipv4::HeaderSliceError::Content(_) => ParseError::IcmpInnerBad,
        })?,
        IpVersion::V6 => {
            let h = Ipv6HeaderSlice::from_slice(quote).map_err(|e| match e {
                ipv6::HeaderSliceError::Len(_) => ParseError::IcmpInnerTruncated,
                ipv6::HeaderSliceError::Content(_) => ParseError::IcmpInnerBad,
            })?;
            let exts =
                walk_v6_exts(h.next_header().0, &quote[IPV6_HLEN..]).map_err(|e| match e {
                    ExtError::Truncated => ParseError::IcmpInnerTruncated,
                    ExtError::Bad => ParseError::IcmpInnerBad,
                })?;
            IpInfo {
                src: IpAddr::V6(h.source_addr()),
                dst: IpAddr::V6(h.destination_addr()),
                proto: exts.proto,
                ttl: h.hop_limit(),
                tos: h.traffic_class(),
                df: true,
                frag: exts.frag,
                hlen: IPV6_HLEN + exts.len,
                total: IPV6_HLEN + h.payload_length() as usize,
            }
        }
    };
    let inner_l4_off = inner_l3_off + info.hlen;
    let (inner_sport, inner_dport) = if info.frag != Fragment::Later
        && matches!(info.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
    {
        let ports = quote
            .get(info.hlen..info.hlen + 4)
            .ok_or(ParseError::IcmpInnerTruncated)?;
        (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        )
    } else {
        (0, 0)
    };
    Ok(L4::IcmpError(IcmpError {
        kind: (ty, code),
        mtu,
        inner_l3_off,
        inner_l4_off,
        inner_src: info.src,
        inner_dst: info.dst,
        inner_proto: info.proto,
        inner_frag: info.frag,
        inner_sport,
        inner_dport,
    }))
}

struct V6Exts {
    proto: u8,
    /// Bytes of extension headers.
    len: usize,
    frag: Fragment,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ExtError {
    Truncated,
    Bad,
}

/// Walks the IPv6 extension headers in `data` the way the kernel's
/// `ipv6_skip_exthdr` does: hop-by-hop (first only), routing, destination
/// options, fragment and AH are skipped; anything else (ESP, no-next-header,
/// upper layers) ends the chain. The walk also stops at a non-first
/// fragment's header, since what follows it is payload, not headers.
fn walk_v6_exts(first: u8, data: &[u8]) -> Result<V6Exts, ExtError> {
    let mut nh = first;
    let mut pos = 0;
    let mut frag = Fragment::None;
    let mut at_start = true;
    loop {
        let rest = data.get(pos..).unwrap_or_default();
        let (next, len) = match IpNumber(nh) {
            IpNumber::IPV6_HEADER_HOP_BY_HOP if !at_start => return Err(ExtError::Bad),
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS => {
                let h = Ipv6RawExtHeaderSlice::from_slice(rest).map_err(|_| ExtError::Truncated)?;
                (h.next_header().0, h.slice().len())
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                let h =
                    Ipv6FragmentHeaderSlice::from_slice(rest).map_err(|_| ExtError::Truncated)?;
                if h.fragment_offset().value() != 0 {
                    return Ok(V6Exts {
                        proto: h.next_header().0,
                        len: pos + h.slice().len(),
                        frag: Fragment::Later,
                    });
                }
                if h.more_fragments() {
                    frag = Fragment::First;
                }
                (h.next_header().0, h.slice().len())
            }
            IpNumber::AUTHENTICATION_HEADER => {
                let h = IpAuthHeaderSlice::from_slice(rest).map_err(|e| match e {
                    etherparse::err::ip_auth::HeaderSliceError::Len(_) => ExtError::Truncated,
                    etherparse::err::ip_auth::HeaderSliceError::Content(_) => ExtError::Bad,
                })?;
                (h.next_header().0, h.slice().len())
            }
            _ => {
                return Ok(V6Exts {
                    proto: nh,
                    len: pos,
                    frag,
                });
            }
        };
        at_start = false;
        nh = next;
        pos += len;
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
    let csum_at = match p.l4 {
        L4::Tcp { .. } => 16,
        L4::Udp { .. } => 6,
        L4::IcmpEcho { .. } | L4::IcmpOther { .. } | L4::IcmpError(_) => 2,
        L4::Other => return false,
    };
    if l4.len() < csum_at + 2 {
        return false;
    }
    if matches!(p.l4, L4::Udp { .. }) && p.version == IpVersion::V4 && l4[6..8] == [0, 0] {
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
