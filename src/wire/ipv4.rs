//! IPv4 header (RFC 791): `field` gives byte offsets relative to the start
//! of the IP header; the fast-path read and the general parse of the header.

use std::net::IpAddr;

use etherparse::Ipv4HeaderSlice;
use etherparse::err::ipv4::{HeaderError, HeaderSliceError};

use super::{FastIp, Fragment, Headers, IpInfo, IpVersion, ParseError, checksum, finish_ip};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Version 4, IHL 5: the first byte of a header without options.
pub const VER_IHL_NO_OPTIONS: u8 = 0x45;
/// Flag bits of the 16-bit flags + fragment offset word.
pub const DF: u16 = 0x4000;
pub const MF: u16 = 0x2000;
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;
/// Don't Fragment as a bit of byte [`field::FLG_OFF`]`.start`.
pub const DF_BYTE: u8 = 0x40;

/// Byte offsets of the IPv4 header.
pub mod field {
    use core::ops::Range;

    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const VER_IHL: usize = 0;
    /// DSCP + ECN (the old TOS byte).
    pub const DSCP_ECN: usize = 1;
    /// Total length.
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (3 bits) and fragment offset.
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    /// TTL and protocol: the 16-bit word the header checksum sees them in.
    pub const TTL_PROTOCOL: Range<usize> = 8..10;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

#[inline(always)]
fn addr(h: &[u8; HEADER_LEN], r: core::ops::Range<usize>) -> IpAddr {
    IpAddr::V4([h[r.start], h[r.start + 1], h[r.start + 2], h[r.start + 3]].into())
}

/// The fast path's IPv4 header: no options, not a fragment, total length
/// within `ip`, checksum verified. `None` for anything else.
#[inline(always)]
pub(super) fn fast(ip: &[u8]) -> Option<FastIp> {
    let h: &[u8; HEADER_LEN] = ip.get(..HEADER_LEN)?.try_into().ok()?;
    // Version 4 with IHL 5: no options.
    if h[field::VER_IHL] != VER_IHL_NO_OPTIONS {
        return None;
    }
    let total = u16::from_be_bytes([h[field::LENGTH.start], h[field::LENGTH.start + 1]]) as usize;
    let flags_frag = u16::from_be_bytes([h[field::FLG_OFF.start], h[field::FLG_OFF.start + 1]]);
    // MF or a fragment offset: a fragment.
    if total < HEADER_LEN || total > ip.len() || flags_frag & (MF | FRAG_OFFSET_MASK) != 0 {
        return None;
    }
    if !checksum::verify_ipv4_header(h) {
        return None;
    }
    Some(FastIp {
        version: IpVersion::V4,
        hlen: HEADER_LEN,
        total,
        proto: h[field::PROTOCOL],
        src: addr(h, field::SRC),
        dst: addr(h, field::DST),
        ttl: h[field::TTL],
        tos: h[field::DSCP_ECN],
        df: flags_frag & DF != 0,
    })
}

/// Header length (IHL * 4), protocol and addresses, unvalidated: for
/// [`super::peek_tuple`].
#[inline(always)]
pub(super) fn peek(ip: &[u8]) -> Option<(usize, u8, IpAddr, IpAddr)> {
    let h: &[u8; HEADER_LEN] = ip.get(..HEADER_LEN)?.try_into().ok()?;
    Some((
        usize::from(h[field::VER_IHL] & 0x0f) * 4,
        h[field::PROTOCOL],
        addr(h, field::SRC),
        addr(h, field::DST),
    ))
}

/// The header at the start of `ip` (options included), as far as it is
/// present; lengths it claims are not checked against `ip`.
pub(super) fn header(ip: &[u8]) -> Result<IpInfo, HeaderSliceError> {
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
        tos: s[field::DSCP_ECN],
        df: h.dont_fragment(),
        frag,
        hlen: s.len(),
        total: h.total_len() as usize,
    })
}

/// The general path's IPv4 packet at `ip` (= `frame[l3_off..]`).
pub(super) fn parse(ip: &[u8], l3_off: usize) -> Result<Headers, ParseError> {
    use HeaderError as HE;
    use HeaderSliceError as E;
    let info = header(ip).map_err(|e| match e {
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
