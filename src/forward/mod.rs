//! The forwarding rewrites: DR (MAC only), TUN (IPIP / IPv6-in-IPv6 and
//! between families), NAT and
//! FULLNAT (addresses and ports), ICMP errors about tracked connections, and
//! the ICMP "too big" reply a tunnel sends when the packet does not fit.
//!
//! Every function works in place on a [`FrameBuf`] whose [`Headers`] came from
//! [`crate::wire::parse`] of the same bytes, and allocates nothing.
//! Checksums are updated incrementally (RFC 1624 eqn. 3) wherever fields
//! change, so a packet that arrived with a bad TCP/UDP/ICMP checksum leaves
//! with a bad one (the receiver still drops it), as IPVS's incremental
//! `*_snat_handler` / `*_dnat_handler` paths do. A partial checksum (the
//! sender's checksum offload, unfinished) is completed first by
//! [`complete_partial_csum`], as the kernel's `skb_checksum_help` would.
//!
//! Invariants:
//! - Link headers keep their VLAN/QinQ tags byte for byte; only the two MAC
//!   addresses change (and, for TUN / ICMP replies, the tags move with them).
//! - An IPv4 UDP checksum of 0 ("none") stays 0; an updated UDP checksum that
//!   comes out as 0 is stored as 0xFFFF.
//! - Address families never change (config forbids it): debug-asserted,
//!   except by [`tunnel`], whose outer header is of the real server's family
//!   (IPv4-in-IPv6 and IPv6-in-IPv4 as IPVS builds them); it refuses an
//!   outer source and destination of different families
//!   ([`TunnelError::CrossFamily`]).
//!
//! Not done here: TTL/hop-limit expiry ICMP generation, route and neighbour
//! lookup, and SCTP CRC32c updates. Fragmentation is [`frag`]'s: the data
//! plane encapsulates a non-DF packet that [`tunnel`] refuses with
//! [`TunnelError::NeedsFragmentation`] (with no MTU limit) and fragments
//! the outer packet.

use std::net::IpAddr;

use crate::dest::{TunCsum, TunType, TunnelSpec};
use crate::wire::MacAddr;
use crate::wire::checksum;
use crate::wire::{
    Fragment, FrameBuf, Headers, IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP,
    IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN, IpVersion, L4, NoRoom, at,
    ethernet, icmp, icmpv6, ipv4, ipv6, tcp, udp,
};

pub mod frag;
#[cfg(test)]
mod tests;

/// Why a tunnel encapsulation was refused; the frame is left untouched.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TunnelError {
    /// The packet may not be fragmented (IPv4 DF, or IPv6) and does not fit
    /// once encapsulated: answer with [`icmp_too_big`] carrying `mtu`, the
    /// path MTU left for the inner packet.
    TooBig { mtu: u16 },
    /// Does not fit and has no DF: the outer packet must be fragmented, as
    /// IPVS leaves to `ip_fragment` (see [`frag`]).
    NeedsFragmentation,
    /// Not enough headroom in the buffer for the outer header.
    NoRoom,
    /// The outer source and destination are of different families (the
    /// director has no address of the real server's family picked).
    CrossFamily,
}

/// The TTL of the packet has run out; the caller drops it (and may answer
/// with ICMP time exceeded, as IPVS's `decrement_ttl` does).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TtlExceeded;

/// Addresses and ports to put into a NAT / FULLNAT packet; `None` keeps the
/// field as it is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Rewrite {
    pub src: Option<(IpAddr, u16)>,
    pub dst: Option<(IpAddr, u16)>,
}

/// Addresses of an ICMP error and of the packet it quotes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct IcmpRewrite {
    pub outer_src: Option<IpAddr>,
    pub outer_dst: Option<IpAddr>,
    pub inner_src: Option<(IpAddr, u16)>,
    pub inner_dst: Option<(IpAddr, u16)>,
}

/// A checksum field that follows a rewritten field.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// TCP, ICMP, IPv4 header: store the RFC 1624 result as is.
    Plain(usize),
    /// UDP: a result of 0 is stored as 0xFFFF.
    Udp(usize),
}

fn read_u16(f: &[u8], at: usize) -> Option<u16> {
    f.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn write_u16(f: &mut [u8], at: usize, v: u16) {
    if let Some(b) = f.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn update_slot<const N: usize>(f: &mut [u8], slot: Slot, old: &[u8; N], new: &[u8; N]) {
    let (at, udp) = match slot {
        Slot::Plain(at) => (at, false),
        Slot::Udp(at) => (at, true),
    };
    let Some(hc) = read_u16(f, at) else { return };
    let mut c = checksum::update_addr(hc, old, new);
    if udp {
        c = checksum::udp_fixup(c);
    }
    write_u16(f, at, c);
}

/// Overwrites `f[at..at + N]` (`N` even: a port, TTL word or address) and
/// carries the difference into every checksum in `slots`. The size is a
/// constant so the copies and the checksum update compile to straight-line
/// code (this runs several times per forwarded packet).
#[inline]
fn set_field<const N: usize>(f: &mut [u8], at: usize, new: &[u8; N], slots: &[Option<Slot>]) {
    let Some(cur) = f.get_mut(at..at + N) else {
        debug_assert!(false, "field beyond frame");
        return;
    };
    let mut old = [0u8; N];
    old.copy_from_slice(cur);
    if old == *new {
        return;
    }
    cur.copy_from_slice(new);
    for s in slots.iter().flatten() {
        update_slot(f, *s, &old, new);
    }
}

/// The octets of an address, on the stack.
fn octets(a: &IpAddr, buf: &mut [u8; 16]) -> usize {
    match a {
        IpAddr::V4(a) => {
            buf[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            buf.copy_from_slice(&a.octets());
            16
        }
    }
}

#[inline]
fn set_addr(f: &mut [u8], at: usize, a: &IpAddr, slots: &[Option<Slot>]) {
    match a {
        IpAddr::V4(a) => set_field(f, at, &a.octets(), slots),
        IpAddr::V6(a) => set_field(f, at, &a.octets(), slots),
    }
}

fn same_family(v: IpVersion, a: &IpAddr) -> bool {
    matches!(
        (v, a),
        (IpVersion::V4, IpAddr::V4(_)) | (IpVersion::V6, IpAddr::V6(_))
    )
}

/// Offsets of the source and destination address of the IP header at `l3`.
fn addr_offsets(v: IpVersion, l3: usize) -> (usize, usize) {
    match v {
        IpVersion::V4 => (l3 + ipv4::field::SRC.start, l3 + ipv4::field::DST.start),
        IpVersion::V6 => (l3 + ipv6::field::SRC.start, l3 + ipv6::field::DST.start),
    }
}

fn set_macs(f: &mut [u8], src: MacAddr, dst: MacAddr) {
    if let Some(h) = f.get_mut(ethernet::field::ADDRS) {
        h[ethernet::field::DESTINATION].copy_from_slice(&dst);
        h[ethernet::field::SOURCE].copy_from_slice(&src);
    }
}

/// The TCP/UDP checksum slot of a transport header at `l4` ending before
/// `end`, if that header carries one that must follow address/port changes.
fn l4_slot(f: &[u8], v: IpVersion, proto: u8, l4: usize, end: usize) -> Option<Slot> {
    match proto {
        IPPROTO_TCP if l4 + tcp::field::CHECKSUM.end <= end => {
            Some(Slot::Plain(l4 + tcp::field::CHECKSUM.start))
        }
        IPPROTO_UDP if l4 + udp::HEADER_LEN <= end => {
            let at = l4 + udp::field::CHECKSUM.start;
            let none = v == IpVersion::V4 && read_u16(f, at) == Some(0);
            (!none).then_some(Slot::Udp(at))
        }
        _ => None,
    }
}

/// Offsets of the source and destination port of the TCP or UDP header at
/// `l4` (the same in both).
fn port_offsets(l4: usize) -> (usize, usize) {
    debug_assert_eq!(tcp::field::SRC_PORT, udp::field::SRC_PORT);
    debug_assert_eq!(tcp::field::DST_PORT, udp::field::DST_PORT);
    (
        l4 + tcp::field::SRC_PORT.start,
        l4 + tcp::field::DST_PORT.start,
    )
}

/// The header checksum slot of an IPv4 header at `l3`; IPv6 has none.
fn ipv4_csum_slot(v: IpVersion, l3: usize) -> Option<Slot> {
    (v == IpVersion::V4).then_some(Slot::Plain(l3 + ipv4::field::CHECKSUM.start))
}

/// Completes a partial TCP/UDP checksum, as the NIC the sender counted on
/// would have: with checksum offload on (veth's default, so containers and
/// pods), Linux leaves the pseudo-header sum in the checksum field for the
/// device to finish, and an AF_XDP socket gets the frame as it is. Run it
/// before any rewrite: the incremental updates assume a complete checksum.
///
/// Recognised by the field equalling this packet's pseudo-header sum
/// (addresses, protocol, L4 length; [`checksum::maybe_partial`]), which
/// costs a few additions per frame; only then is the segment summed
/// ([`checksum::complete_partial`]), and a field that already verifies is
/// left alone. Fragments, ICMP (never offloaded) and UDP's checksum 0 are
/// not looked at. Returns whether the checksum was completed.
#[inline(always)]
pub fn complete_partial_csum(frame: &mut FrameBuf, p: &Headers) -> bool {
    let (at, udp) = match p.l4 {
        L4::Tcp { .. } => (tcp::field::CHECKSUM.start, false),
        L4::Udp { .. } => (udp::field::CHECKSUM.start, true),
        _ => return false,
    };
    if p.frag != Fragment::None {
        return false;
    }
    // The per-frame part: the field and the pseudo-header sum, with the
    // addresses read where the header holds them (one bounds check each).
    let f = frame.data();
    let Some(field) = read_u16(f, p.l4_off + at) else {
        return false;
    };
    let len = p.l3_end().wrapping_sub(p.l4_off);
    let pseudo = match p.version {
        IpVersion::V4 => {
            let Some(a) = f.get(crate::wire::at(
                p.l3_off,
                ipv4::field::SRC.start..ipv4::field::DST.end,
            )) else {
                return false;
            };
            let w = |i: usize| u64::from(u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]));
            checksum::fold(w(0) + w(4) + u64::from(p.proto) + len as u64)
        }
        IpVersion::V6 => match (p.src, p.dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_v6(s.octets(), d.octets(), p.proto, len as u32)
            }
            _ => return false,
        },
    };
    checksum::maybe_partial(field, pseudo, udp) && complete_partial_slow(frame, p, at, udp)
}

/// The rare part of [`complete_partial_csum`]: the field may be partial,
/// so sum the segment.
#[inline(never)]
fn complete_partial_slow(frame: &mut FrameBuf, p: &Headers, at: usize, udp: bool) -> bool {
    match frame.data_mut().get_mut(p.l4_off..p.l3_end()) {
        Some(l4) => checksum::complete_partial(l4, at, udp),
        None => false,
    }
}

/// DR: only the Ethernet addresses change (dst = next hop of the real
/// server, src = our NIC), as in IPVS's `ip_vs_dr_xmit`.
#[inline]
pub fn route(frame: &mut FrameBuf, p: &Headers, src_mac: MacAddr, dst_mac: MacAddr) {
    debug_assert!(p.l3_off >= ethernet::ETH_HLEN && p.l3_end() <= frame.len());
    set_macs(frame.data_mut(), src_mac, dst_mac);
}

/// Decrements the TTL / hop limit before forwarding, as IPVS's
/// `decrement_ttl` does for every non-local transmit; refuses (and changes
/// nothing) when it is 1 or less.
#[inline]
pub fn decrement_ttl(frame: &mut FrameBuf, p: &Headers) -> Result<(), TtlExceeded> {
    let f = frame.data_mut();
    match p.version {
        IpVersion::V4 => {
            // One bounds check for TTL, protocol and the header checksum.
            const WORDS: core::ops::Range<usize> =
                ipv4::field::TTL_PROTOCOL.start..ipv4::field::CHECKSUM.end;
            const TTL: usize = ipv4::field::TTL - WORDS.start;
            const PROTO: usize = ipv4::field::PROTOCOL - WORDS.start;
            const CSUM: usize = ipv4::field::CHECKSUM.start - WORDS.start;
            let Some(h) = f.get_mut(at(p.l3_off, WORDS)) else {
                return Err(TtlExceeded);
            };
            let ttl = h[TTL];
            if ttl <= 1 {
                return Err(TtlExceeded);
            }
            h[TTL] = ttl - 1;
            // TTL shares its 16-bit word with the protocol byte: one word
            // of the header checksum changes (RFC 1624 eqn. 3).
            let old = u16::from_be_bytes([ttl, h[PROTO]]);
            let hc = u16::from_be_bytes([h[CSUM], h[CSUM + 1]]);
            let c = checksum::update_u16(hc, old, old - 0x0100);
            h[CSUM..CSUM + 2].copy_from_slice(&c.to_be_bytes());
        }
        IpVersion::V6 => {
            let Some(hop) = f.get_mut(p.l3_off + ipv6::field::HOP_LIMIT) else {
                return Err(TtlExceeded);
            };
            if *hop <= 1 {
                return Err(TtlExceeded);
            }
            *hop -= 1;
        }
    }
    Ok(())
}

/// TUN: wraps the IP packet in an outer IPv4 or IPv6 header with
/// src = `outer_src` (the director), dst = `outer_dst` (the RIP), as
/// `ip_vs_tunnel_xmit(_v6)` does. The outer family is the real server's and
/// may differ from the packet's (IPVS tunnels between families since Linux
/// 3.18): IPv4 inside is protocol / next header 4 (IPIP), IPv6 inside is 41,
/// whatever the outer family. TTL/hop limit and the whole DS field (DSCP +
/// ECN) come from the inner header; an outer IPv4 header copies an IPv4
/// packet's DF (an IPv6 packet gets DF clear, as `ip_vs_prepare_tunneled_skb`
/// sets it), takes `ip_id` and gets its checksum; an outer IPv6 header has
/// flow label 0. The link header (with its tags) moves into the headroom;
/// link padding after the inner packet is dropped.
///
/// `mtu` is the link MTU towards the real server. If inner + outer header
/// exceeds it and the inner packet may not be fragmented (IPv4 DF, always
/// for IPv6), returns `TooBig { mtu: mtu - outer header }` (the MTU left for
/// the inner packet, to report in the inner family) and leaves the frame
/// untouched.
#[allow(clippy::too_many_arguments)]
pub fn tunnel(
    frame: &mut FrameBuf,
    p: &Headers,
    outer_src: IpAddr,
    outer_dst: IpAddr,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    mtu: u16,
    ip_id: u16,
) -> Result<(), TunnelError> {
    tunnel_encap(
        frame,
        p,
        outer_src,
        outer_dst,
        src_mac,
        dst_mac,
        mtu,
        ip_id,
        &TunnelSpec::default(),
    )
}

/// GUE's header (Linux's fou, version 0, no options) after the UDP header.
pub const GUE_HLEN: usize = 4;
/// GRE's base header (flags and version, protocol type).
pub const GRE_HLEN: usize = 4;
/// GRE's checksum field and its reserved half-word (the C flag).
pub const GRE_CSUM_LEN: usize = 4;
/// GRE's C flag: the checksum field is present.
pub const GRE_FLAG_CSUM: u16 = 0x8000;
/// Linux's default `ip_local_port_range` (32768 60999): the range
/// `udp_flow_src_port` picks GUE's UDP source port from.
pub const LOCAL_PORT_RANGE: (u16, u16) = (32768, 60999);

/// The bytes between the outer IP header and the packet: GUE's UDP and GUE
/// headers, GRE's header (with the checksum field under `csum`), none for
/// IPIP, as `ip_vs_tunnel_xmit` reserves them.
pub fn encap_len(tun: &TunnelSpec) -> usize {
    match tun.kind {
        TunType::Ipip => 0,
        TunType::Gue => udp::HEADER_LEN + GUE_HLEN,
        TunType::Gre if tun.csum == TunCsum::Csum => GRE_HLEN + GRE_CSUM_LEN,
        TunType::Gre => GRE_HLEN,
    }
}

/// GUE's UDP source port, as `udp_flow_src_port` picks it: a hash of the
/// packet's flow (addresses, protocol, ports) scaled into the local port
/// range, so one flow keeps one port (and one path through ECMP and RSS)
/// and flows spread over the range.
pub fn gue_source_port(p: &Headers) -> u16 {
    let (sport, dport) = match p.l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
        _ => (0, 0),
    };
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    octets(&p.src, &mut s);
    octets(&p.dst, &mut d);
    let w = |b: &[u8; 16], i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    // A multiply-xorshift mix of the tuple's words (the kernel's flow hash
    // is keyed per boot, so no two hosts agree on it anyway).
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for x in [
        w(&s, 0),
        w(&s, 8),
        w(&d, 0),
        w(&d, 8),
        (u64::from(sport) << 32) | (u64::from(dport) << 16) | u64::from(p.proto),
    ] {
        h = (h ^ x).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
    }
    let hash = (h >> 32) as u32;
    let (min, max) = LOCAL_PORT_RANGE;
    ((u64::from(hash) * u64::from(max - min)) >> 32) as u16 + min
}

/// [`tunnel`] with the real server's encapsulation: IPIP, GUE (UDP to
/// `tun.port` from [`gue_source_port`], GUE version 0 with the packet's
/// protocol (4 or 41) as `proto_ctype`, the UDP checksum under csum or
/// remcsum, else 0) or GRE (the packet's EtherType; the C flag and the
/// checksum over the GRE header and packet under csum), as `ipvs_gue_encap`
/// / `ipvs_gre_encap` build them. The MTU check counts these bytes too.
#[allow(clippy::too_many_arguments)]
pub fn tunnel_encap(
    frame: &mut FrameBuf,
    p: &Headers,
    outer_src: IpAddr,
    outer_dst: IpAddr,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    mtu: u16,
    ip_id: u16,
    tun: &TunnelSpec,
) -> Result<(), TunnelError> {
    if outer_src.is_ipv4() != outer_dst.is_ipv4() {
        return Err(TunnelError::CrossFamily);
    }
    let outer_v4 = outer_dst.is_ipv4();
    let ip_hdr = if outer_v4 { IPV4_HLEN } else { IPV6_HLEN };
    let elen = encap_len(tun);
    // Everything put in front of the packet.
    let hdr = ip_hdr + elen;
    let inner_hdr = match p.version {
        IpVersion::V4 => IPV4_HLEN,
        IpVersion::V6 => IPV6_HLEN,
    };
    let inner_len = p.ip_len as usize;
    let l2 = p.l3_off;
    // Read TTL/DS/DF from the bytes, not `p`: decrement_ttl may have run.
    // `no_frag`: the packet may not be fragmented on its way (IPv4 DF;
    // IPv6 is never fragmented by a router).
    let (ttl, tos, no_frag, next) = {
        let f = frame.data();
        let Some(h) = f.get(l2..l2 + inner_hdr) else {
            debug_assert!(false, "packet does not match frame");
            return Err(TunnelError::NoRoom);
        };
        match p.version {
            IpVersion::V4 => (
                h[ipv4::field::TTL],
                h[ipv4::field::DSCP_ECN],
                h[ipv4::field::FLG_OFF.start] & ipv4::DF_BYTE != 0,
                IPPROTO_IPIP,
            ),
            IpVersion::V6 => (
                h[ipv6::field::HOP_LIMIT],
                ipv6::traffic_class(h),
                true,
                IPPROTO_IPV6,
            ),
        }
    };
    // The outer IPv4 header's DF: copied from an IPv4 packet, clear for IPv6.
    let outer_df = no_frag && p.version == IpVersion::V4;
    if inner_len + hdr > mtu as usize {
        return Err(if no_frag {
            TunnelError::TooBig {
                mtu: mtu.saturating_sub(hdr as u16),
            }
        } else {
            TunnelError::NeedsFragmentation
        });
    }
    if p.l3_end() > frame.len() {
        return Err(TunnelError::NoRoom);
    }
    frame.set_len(p.l3_end()).map_err(|_| TunnelError::NoRoom)?;
    // Into the headroom, or (an AF_XDP buffer has none) by moving the
    // packet toward the tail: `push_front`.
    frame.push_front(hdr).map_err(|_| TunnelError::NoRoom)?;
    let f = frame.data_mut();
    f.copy_within(hdr..hdr + l2, 0);
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    let ns = octets(&outer_src, &mut s);
    let nd = octets(&outer_dst, &mut d);
    let outer_proto = match tun.kind {
        TunType::Ipip => next,
        TunType::Gue => IPPROTO_UDP,
        TunType::Gre => IPPROTO_GRE,
    };
    // The encapsulation header first: its checksums need the outer
    // addresses only, and the packet behind it is in place already.
    let payload_len = elen + inner_len;
    let e = &mut f[l2 + ip_hdr..l2 + hdr + inner_len];
    match tun.kind {
        TunType::Ipip => {}
        TunType::Gue => {
            e[udp::field::SRC_PORT].copy_from_slice(&gue_source_port(p).to_be_bytes());
            e[udp::field::DST_PORT].copy_from_slice(&tun.port.to_be_bytes());
            e[udp::field::LENGTH].copy_from_slice(&(payload_len as u16).to_be_bytes());
            e[udp::field::CHECKSUM].fill(0);
            // Version 0, no control, no options (hlen 0), no flags.
            let g = udp::HEADER_LEN;
            e[g..g + GUE_HLEN].copy_from_slice(&[0, next, 0, 0]);
            if tun.csum != TunCsum::NoCsum {
                let ph = checksum::pseudo(outer_src, outer_dst, IPPROTO_UDP, payload_len as u32);
                let c = checksum::finish(checksum::add(ph, checksum::sum(e)));
                e[udp::field::CHECKSUM].copy_from_slice(&checksum::udp_fixup(c).to_be_bytes());
            }
        }
        TunType::Gre => {
            let et = match p.version {
                IpVersion::V4 => ethernet::ETH_P_IPV4,
                IpVersion::V6 => ethernet::ETH_P_IPV6,
            };
            let flags = if tun.csum == TunCsum::Csum {
                GRE_FLAG_CSUM
            } else {
                0
            };
            e[0..2].copy_from_slice(&flags.to_be_bytes());
            e[2..4].copy_from_slice(&et.to_be_bytes());
            if tun.csum == TunCsum::Csum {
                e[4..8].fill(0);
                let c = checksum::checksum(e);
                e[4..6].copy_from_slice(&c.to_be_bytes());
            }
        }
    }
    let h = &mut f[l2..l2 + ip_hdr];
    if outer_v4 {
        use ipv4::field as F;
        h[F::VER_IHL] = ipv4::VER_IHL_NO_OPTIONS;
        h[F::DSCP_ECN] = tos;
        h[F::LENGTH].copy_from_slice(&((hdr + inner_len) as u16).to_be_bytes());
        h[F::IDENT].copy_from_slice(&ip_id.to_be_bytes());
        h[F::FLG_OFF].copy_from_slice(&(if outer_df { ipv4::DF } else { 0 }).to_be_bytes());
        h[F::TTL] = ttl;
        h[F::PROTOCOL] = outer_proto;
        h[F::CHECKSUM].fill(0);
        h[F::SRC].copy_from_slice(&s[..ns]);
        h[F::DST].copy_from_slice(&d[..nd]);
        let c = checksum::checksum(h);
        h[F::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    } else {
        use ipv6::field as F;
        h[F::VER_TC_FLOW].copy_from_slice(&ipv6::ver_tc_flow(tos, 0));
        h[F::LENGTH].copy_from_slice(&(payload_len as u16).to_be_bytes());
        h[F::NXT_HDR] = outer_proto;
        h[F::HOP_LIMIT] = ttl;
        h[F::SRC].copy_from_slice(&s[..ns]);
        h[F::DST].copy_from_slice(&d[..nd]);
    }
    // The link header's EtherType (after any tags) names the outer family.
    if outer_v4 != (p.version == IpVersion::V4) {
        let et = if outer_v4 {
            ethernet::ETH_P_IPV4
        } else {
            ethernet::ETH_P_IPV6
        };
        f[l2 - 2..l2].copy_from_slice(&et.to_be_bytes());
    }
    set_macs(f, src_mac, dst_mac);
    Ok(())
}

/// NAT / FULLNAT: rewrites any of source address/port and destination
/// address/port, sets the MACs and fixes the IPv4 header checksum and the
/// TCP/UDP (pseudo-header covered) checksum incrementally, as IPVS's
/// `tcp_snat_handler` / `tcp_dnat_handler` (and the UDP ones) do. Ports are
/// only written for TCP/UDP headers that are present (not for later
/// fragments); for other protocols only addresses change (services are
/// TCP/UDP only, so SCTP's CRC32c is never needed). ICMPv6's checksum
/// covers the addresses and follows them too.
pub fn rewrite(
    frame: &mut FrameBuf,
    p: &Headers,
    rw: &Rewrite,
    src_mac: MacAddr,
    dst_mac: MacAddr,
) {
    let f = frame.data_mut();
    let end = p.l3_end().min(f.len());
    let ip_slot = ipv4_csum_slot(p.version, p.l3_off);
    let has_ports = matches!(p.l4, L4::Tcp { .. } | L4::Udp { .. });
    let l4 = match p.l4 {
        L4::Tcp { .. } | L4::Udp { .. } => l4_slot(f, p.version, p.proto, p.l4_off, end),
        L4::IcmpEcho { .. } | L4::IcmpOther { .. } | L4::IcmpError(_)
            if p.version == IpVersion::V6 =>
        {
            Some(Slot::Plain(p.l4_off + icmpv6::field::CHECKSUM.start))
        }
        _ => None,
    };
    let (src_at, dst_at) = addr_offsets(p.version, p.l3_off);
    let (sport_at, dport_at) = port_offsets(p.l4_off);
    for (field, addr_at, port_at) in [(rw.src, src_at, sport_at), (rw.dst, dst_at, dport_at)] {
        let Some((addr, port)) = field else { continue };
        debug_assert!(same_family(p.version, &addr), "address family change");
        set_addr(f, addr_at, &addr, &[ip_slot, l4]);
        if has_ports {
            set_field(f, port_at, &port.to_be_bytes(), &[l4]);
        }
    }
    set_macs(f, src_mac, dst_mac);
}

/// Turns the frame into an ICMPv4 "fragmentation needed" (type 3 code 4
/// with the next-hop MTU) or ICMPv6 Headers Too Big addressed back to the
/// sender of `p`: Ethernet dst = the frame's source MAC, src = `our_mac`
/// (tags kept); IP src = `from` (the VIP the client talked to, so its PMTU
/// cache accepts it), TTL 64. The quote is as much of the original IP packet
/// as fits in 576 bytes (IPv4, RFC 1812 4.3.2.3, as Linux's `icmp_send`) or
/// 1280 bytes (IPv6, RFC 4443 2.4(c)). The IPv4 header takes the original's
/// TOS bits with internetwork-control precedence like `icmp_send`, and is
/// sent with DF and ID 0 (an atomic datagram per RFC 6864).
///
/// Uses headroom when there is enough (the link header moves), else
/// tailroom (the quote moves); `NoRoom` leaves the frame untouched. For
/// IPv6 `mtu` should be at least 1280; callers must not answer ICMP errors
/// or later fragments with this (RFC 1122 3.2.2, RFC 4443 2.4(e)).
pub fn icmp_too_big(
    frame: &mut FrameBuf,
    p: &Headers,
    from: IpAddr,
    mtu: u16,
    our_mac: MacAddr,
) -> Result<(), NoRoom> {
    debug_assert!(same_family(p.version, &from));
    let (hdr, cap) = match p.version {
        IpVersion::V4 => (IPV4_HLEN, 576),
        IpVersion::V6 => (IPV6_HLEN, 1280),
    };
    let l2 = p.l3_off;
    if p.l3_end() > frame.len() || l2 < ethernet::field::ADDRS.end {
        return Err(NoRoom);
    }
    // ICMP and ICMPv6 quote after the same 8-byte header.
    let grow = hdr + icmp::HEADER_LEN;
    let quote = (p.ip_len as usize).min(cap - grow);
    // IPv4's DS field (the IPv6 reply does not use it).
    let orig_tos = frame
        .data()
        .get(l2 + ipv4::field::DSCP_ECN)
        .copied()
        .unwrap_or(0);
    // Room for the new headers: the headroom, or (an AF_XDP buffer has
    // none) the tailroom, `push_front` moving the quote toward the tail.
    if l2 + grow + quote > frame.headroom() + frame.len() + frame.tailroom() {
        return Err(NoRoom);
    }
    frame.set_len(l2 + quote)?;
    frame.push_front(grow)?;
    frame.data_mut().copy_within(grow..grow + l2, 0);
    let f = frame.data_mut();
    // Back to the sender: its MAC becomes the destination.
    f.copy_within(ethernet::field::SOURCE, ethernet::field::DESTINATION.start);
    f[ethernet::field::SOURCE].copy_from_slice(&our_mac);
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    let ns = octets(&from, &mut s);
    let nd = octets(&p.src, &mut d);
    let msg_len = icmp::HEADER_LEN + quote;
    let (iph, rest) = f[l2..].split_at_mut(hdr);
    let msg = &mut rest[..msg_len];
    match p.version {
        IpVersion::V4 => {
            use ipv4::field as F;
            iph[F::VER_IHL] = ipv4::VER_IHL_NO_OPTIONS;
            iph[F::DSCP_ECN] = (orig_tos & 0x1e) | 0xc0;
            iph[F::LENGTH].copy_from_slice(&((hdr + msg_len) as u16).to_be_bytes());
            iph[F::IDENT].fill(0);
            iph[F::FLG_OFF].copy_from_slice(&ipv4::DF.to_be_bytes());
            iph[F::TTL] = 64;
            iph[F::PROTOCOL] = IPPROTO_ICMP;
            iph[F::CHECKSUM].fill(0);
            iph[F::SRC].copy_from_slice(&s[..ns]);
            iph[F::DST].copy_from_slice(&d[..nd]);
            let c = checksum::checksum(iph);
            iph[F::CHECKSUM].copy_from_slice(&c.to_be_bytes());
            msg[..icmp::HEADER_LEN].fill(0);
            msg[icmp::field::TYPE] = icmp::DEST_UNREACH;
            msg[icmp::field::CODE] = icmp::CODE_FRAG_NEEDED;
            msg[icmp::field::NEXT_HOP_MTU].copy_from_slice(&mtu.to_be_bytes());
            let c = checksum::checksum(msg);
            msg[icmp::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        }
        IpVersion::V6 => {
            use ipv6::field as F;
            iph[F::VER_TC_FLOW].copy_from_slice(&ipv6::ver_tc_flow(0, 0));
            iph[F::LENGTH].copy_from_slice(&(msg_len as u16).to_be_bytes());
            iph[F::NXT_HDR] = IPPROTO_ICMPV6;
            iph[F::HOP_LIMIT] = 64;
            iph[F::SRC].copy_from_slice(&s[..ns]);
            iph[F::DST].copy_from_slice(&d[..nd]);
            msg[..icmpv6::HEADER_LEN].fill(0);
            msg[icmpv6::field::TYPE] = icmpv6::PKT_TOO_BIG;
            msg[icmpv6::field::MTU].copy_from_slice(&(mtu as u32).to_be_bytes());
            let ph = checksum::pseudo_v6(s, d, IPPROTO_ICMPV6, msg_len as u32);
            let c = checksum::finish(checksum::add(ph, checksum::sum(msg)));
            msg[icmpv6::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        }
    }
    Ok(())
}

/// Rewrites an ICMP error that quotes a tracked connection, as IPVS's
/// `ip_vs_nat_icmp` / `ip_vs_nat_icmp_v6`: the outer source/destination, and
/// the quoted header's addresses and ports. The outer IPv4 header checksum
/// and the ICMP checksum (with ICMPv6's pseudo-header) are updated
/// incrementally; the quoted IPv4 header checksum is recomputed.
///
/// Unlike IPVS, which leaves the quoted TCP/UDP checksum as it was, the
/// quoted checksum gets the same incremental address/port delta when the
/// quote contains it (UDP: always within the first 8 bytes; TCP: when at
/// least 18 bytes are quoted), so the quote is byte for byte the packet the
/// receiver sent. A quoted IPv4 UDP checksum of 0 stays 0.
pub fn icmp_rewrite(
    frame: &mut FrameBuf,
    p: &Headers,
    rw: &IcmpRewrite,
    src_mac: MacAddr,
    dst_mac: MacAddr,
) {
    let L4::IcmpError(e) = p.l4 else {
        debug_assert!(false, "icmp_rewrite on a non-ICMP-error packet");
        return;
    };
    let f = frame.data_mut();
    let end = p.l3_end().min(f.len());
    // ICMP and ICMPv6 keep their checksum at the same place.
    let icmp = Some(Slot::Plain(p.l4_off + icmp::field::CHECKSUM.start));
    let ip_slot = ipv4_csum_slot(p.version, p.l3_off);
    // ICMPv6's checksum covers the outer addresses through its pseudo-header.
    let outer_icmp = if p.version == IpVersion::V6 {
        icmp
    } else {
        None
    };
    let (src_at, dst_at) = addr_offsets(p.version, p.l3_off);
    for (addr, at) in [(rw.outer_src, src_at), (rw.outer_dst, dst_at)] {
        if let Some(a) = addr {
            debug_assert!(same_family(p.version, &a), "address family change");
            set_addr(f, at, &a, &[ip_slot, outer_icmp]);
        }
    }

    let has_l4 = e.inner_frag != crate::wire::Fragment::Later;
    let has_ports = has_l4 && matches!(e.inner_proto, IPPROTO_TCP | IPPROTO_UDP);
    let inner_l4 = if has_l4 {
        l4_slot(f, p.version, e.inner_proto, e.inner_l4_off, end)
    } else {
        None
    };
    let (isrc_at, idst_at) = addr_offsets(p.version, e.inner_l3_off);
    let (isport_at, idport_at) = port_offsets(e.inner_l4_off);
    for (field, addr_at, port_at) in [
        (rw.inner_src, isrc_at, isport_at),
        (rw.inner_dst, idst_at, idport_at),
    ] {
        let Some((addr, port)) = field else { continue };
        debug_assert!(same_family(p.version, &addr), "address family change");
        // The inner L4 checksum is updated first so its own change can be
        // carried into the ICMP checksum below.
        let before = inner_l4.and_then(|s| read_u16(f, slot_at(s)));
        set_addr(f, addr_at, &addr, &[icmp, inner_l4]);
        if has_ports && port_at + 2 <= end {
            set_field(f, port_at, &port.to_be_bytes(), &[icmp, inner_l4]);
        }
        carry_inner_csum(f, inner_l4, before, icmp);
    }

    if p.version == IpVersion::V4 && (rw.inner_src.is_some() || rw.inner_dst.is_some()) {
        let ihl = e.inner_l4_off - e.inner_l3_off;
        let csum_at = e.inner_l3_off + ipv4::field::CHECKSUM.start;
        if let (Some(old), Some(hdr)) = (
            read_u16(f, csum_at),
            f.get_mut(e.inner_l3_off..e.inner_l4_off),
        ) {
            debug_assert_eq!(hdr.len(), ihl);
            hdr[ipv4::field::CHECKSUM].fill(0);
            let new = checksum::checksum(hdr);
            hdr[ipv4::field::CHECKSUM].copy_from_slice(&new.to_be_bytes());
            if let Some(Slot::Plain(c)) = icmp
                && let Some(hc) = read_u16(f, c)
            {
                write_u16(f, c, checksum::update_u16(hc, old, new));
            }
        }
    }
    set_macs(f, src_mac, dst_mac);
}

fn slot_at(s: Slot) -> usize {
    match s {
        Slot::Plain(at) | Slot::Udp(at) => at,
    }
}

/// The quoted L4 checksum lies inside the ICMP message: its change is part
/// of the ICMP checksum's delta as well.
fn carry_inner_csum(f: &mut [u8], inner: Option<Slot>, before: Option<u16>, icmp: Option<Slot>) {
    let (Some(s), Some(old), Some(Slot::Plain(c))) = (inner, before, icmp) else {
        return;
    };
    let Some(new) = read_u16(f, slot_at(s)) else {
        return;
    };
    if let Some(hc) = read_u16(f, c) {
        write_u16(f, c, checksum::update_u16(hc, old, new));
    }
}
