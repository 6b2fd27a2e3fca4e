//! IPv6 header (RFC 8200) and its extension header chain: `field` gives
//! byte offsets relative to the start of the IPv6 header, `ext_field` and
//! `frag_field` relative to the start of an extension header.

use std::net::IpAddr;

use etherparse::err::ipv6::HeaderSliceError;
use etherparse::{
    IpAuthHeaderSlice, IpNumber, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice,
};

use super::{FastIp, Fragment, Headers, IpInfo, IpVersion, ParseError, finish_ip};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Byte offsets of the fixed IPv6 header.
pub mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    /// Payload length (everything after the fixed header).
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Byte offsets shared by hop-by-hop, routing and destination options
/// headers (length in 8-byte units, not counting the first 8).
pub mod ext_field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
}

/// Byte offsets of the fragment header.
pub mod frag_field {
    use core::ops::Range;

    pub const NXT_HDR: usize = 0;
    /// Fragment offset (13 bits, in 8-byte units) and the M flag (bit 0).
    pub const FRAG_OFF: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..8;
}

/// The traffic class from the first two header bytes.
#[inline(always)]
pub fn traffic_class(h: &[u8]) -> u8 {
    (h[0] << 4) | (h[1] >> 4)
}

/// The first four header bytes ([`field::VER_TC_FLOW`]) for version 6,
/// traffic class `tc` and flow label `flow` (its low 20 bits).
#[inline]
pub fn ver_tc_flow(tc: u8, flow: u32) -> [u8; 4] {
    ((6u32 << 28) | (u32::from(tc) << 20) | (flow & 0xf_ffff)).to_be_bytes()
}

#[inline(always)]
fn addr(h: &[u8; HEADER_LEN], r: core::ops::Range<usize>) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&h[r]);
    IpAddr::V6(a.into())
}

/// The fast path's IPv6 header: payload length within `ip` (whether the
/// next header is one the fast path takes is the caller's business).
#[inline(always)]
pub(super) fn fast(ip: &[u8]) -> Option<FastIp> {
    let h: &[u8; HEADER_LEN] = ip.get(..HEADER_LEN)?.try_into().ok()?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let total = HEADER_LEN
        + u16::from_be_bytes([h[field::LENGTH.start], h[field::LENGTH.start + 1]]) as usize;
    if total > ip.len() || total > u16::MAX as usize {
        return None;
    }
    Some(FastIp {
        version: IpVersion::V6,
        hlen: HEADER_LEN,
        total,
        proto: h[field::NXT_HDR],
        src: addr(h, field::SRC),
        dst: addr(h, field::DST),
        ttl: h[field::HOP_LIMIT],
        tos: traffic_class(h),
        df: true,
    })
}

/// Header length, next header and addresses, unvalidated: for
/// [`super::peek_tuple`].
#[inline(always)]
pub(super) fn peek(ip: &[u8]) -> Option<(usize, u8, IpAddr, IpAddr)> {
    let h: &[u8; HEADER_LEN] = ip.get(..HEADER_LEN)?.try_into().ok()?;
    Some((
        HEADER_LEN,
        h[field::NXT_HDR],
        addr(h, field::SRC),
        addr(h, field::DST),
    ))
}

/// The general path's IPv6 packet at `ip` (= `frame[l3_off..]`).
pub(super) fn parse(ip: &[u8], l3_off: usize) -> Result<Headers, ParseError> {
    let h = Ipv6HeaderSlice::from_slice(ip).map_err(|e| match e {
        HeaderSliceError::Len(_) => ParseError::Ipv6Truncated,
        HeaderSliceError::Content(_) => ParseError::Ipv6BadVersion,
    })?;
    let total = HEADER_LEN + h.payload_length() as usize;
    if total > ip.len() || total > u16::MAX as usize {
        return Err(ParseError::Ipv6BadPayloadLength);
    }
    let exts = walk_exts(h.next_header().0, &ip[HEADER_LEN..total])
        .map_err(|_| ParseError::Ipv6BadExtHeaders)?;
    finish_ip(ip, l3_off, IpVersion::V6, info(&h, exts, total))
}

/// The quoted IPv6 header of an ICMPv6 error: the chain is walked over
/// what is quoted, whatever the payload length claims.
pub(super) fn quoted(quote: &[u8]) -> Result<IpInfo, ParseError> {
    let h = Ipv6HeaderSlice::from_slice(quote).map_err(|e| match e {
        HeaderSliceError::Len(_) => ParseError::IcmpInnerTruncated,
        HeaderSliceError::Content(_) => ParseError::IcmpInnerBad,
    })?;
    let exts = walk_exts(h.next_header().0, &quote[HEADER_LEN..]).map_err(|e| match e {
        ExtError::Truncated => ParseError::IcmpInnerTruncated,
        ExtError::Bad => ParseError::IcmpInnerBad,
    })?;
    let total = HEADER_LEN + h.payload_length() as usize;
    Ok(info(&h, exts, total))
}

fn info(h: &Ipv6HeaderSlice<'_>, exts: Exts, total: usize) -> IpInfo {
    IpInfo {
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        proto: exts.proto,
        ttl: h.hop_limit(),
        tos: h.traffic_class(),
        df: true,
        frag: exts.frag,
        hlen: HEADER_LEN + exts.len,
        total,
    }
}

/// What the extension header walk found.
pub(super) struct Exts {
    /// The upper-layer protocol (or the header the walk stopped at).
    pub proto: u8,
    /// Bytes of extension headers.
    pub len: usize,
    pub frag: Fragment,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum ExtError {
    Truncated,
    Bad,
}

/// Walks the IPv6 extension headers in `data` the way the kernel's
/// `ipv6_skip_exthdr` does: hop-by-hop (first only), routing, destination
/// options, fragment and AH are skipped; anything else (ESP, no-next-header,
/// upper layers) ends the chain. The walk also stops at a non-first
/// fragment's header, since what follows it is payload, not headers.
pub(super) fn walk_exts(first: u8, data: &[u8]) -> Result<Exts, ExtError> {
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
                    return Ok(Exts {
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
                return Ok(Exts {
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
