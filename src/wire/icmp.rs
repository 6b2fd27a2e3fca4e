//! ICMP for IPv4 (RFC 792): `field` gives byte offsets relative to the
//! start of the ICMP header; the parse of ICMP and ICMPv6 messages (the
//! ICMPv6 specifics are in [`super::icmpv6`]).

use super::{
    Fragment, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IcmpError, IpVersion, L4, ParseError, icmpv6,
    ipv4,
};

/// Length of the fixed header (type, code, checksum, 4 more bytes); an
/// error's quote starts right after it.
pub const HEADER_LEN: usize = 8;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACH: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAM_PROBLEM: u8 = 12;
/// Destination unreachable code: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Byte offsets of the ICMP header.
pub mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The 4 bytes after the checksum, whatever the type puts there.
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    /// Next-hop MTU of a "fragmentation needed" (RFC 1191).
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    /// Start of an error's quote of the offending packet.
    pub const QUOTE: usize = 8;
}

/// ICMP types this parser treats as errors quoting a packet, as IPVS's
/// `ip_vs_in_icmp` does (plus parameter problem, which quotes the same
/// way). Redirect and source quench are not related to connections here.
#[inline]
pub fn is_error(ty: u8) -> bool {
    matches!(ty, DEST_UNREACH | TIME_EXCEEDED | PARAM_PROBLEM)
}

#[inline]
pub fn is_echo(ty: u8) -> bool {
    matches!(ty, ECHO_REPLY | ECHO_REQUEST)
}

fn be16(h: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([h[r.start], h[r.start + 1]])
}

/// An ICMP (`version` V4) or ICMPv6 (V6) message at `l4` (the rest of the
/// IP packet), which starts at `l4_off` in the frame.
pub(super) fn parse(l4: &[u8], l4_off: usize, version: IpVersion) -> Result<L4, ParseError> {
    let Some(hdr) = l4.get(..HEADER_LEN) else {
        return Err(ParseError::IcmpTruncated);
    };
    let (ty, code) = (hdr[field::TYPE], hdr[field::CODE]);
    let echo = match version {
        IpVersion::V4 => is_echo(ty),
        IpVersion::V6 => icmpv6::is_echo(ty),
    };
    if echo {
        return Ok(L4::IcmpEcho {
            ty,
            code,
            id: be16(hdr, field::ECHO_IDENT),
        });
    }
    let error = match version {
        IpVersion::V4 => is_error(ty),
        IpVersion::V6 => icmpv6::is_error(ty),
    };
    if !error {
        return Ok(L4::IcmpOther { ty, code });
    }
    let mtu = match (version, ty, code) {
        (IpVersion::V4, DEST_UNREACH, CODE_FRAG_NEEDED) => {
            Some(be16(hdr, field::NEXT_HOP_MTU) as u32)
        }
        (IpVersion::V6, icmpv6::PKT_TOO_BIG, _) => {
            let m = icmpv6::field::MTU;
            Some(u32::from_be_bytes([
                hdr[m.start],
                hdr[m.start + 1],
                hdr[m.start + 2],
                hdr[m.start + 3],
            ]))
        }
        _ => None,
    };
    let quote = &l4[field::QUOTE..];
    let inner_l3_off = l4_off + field::QUOTE;
    // The quote may be cut anywhere after the IP header: lengths it claims
    // are not checked against what is present.
    let info = match version {
        IpVersion::V4 => ipv4::header(quote).map_err(|e| match e {
            etherparse::err::ipv4::HeaderSliceError::Len(_) => ParseError::IcmpInnerTruncated,
            etherparse::err::ipv4::HeaderSliceError::Content(_) => ParseError::IcmpInnerBad,
        })?,
        IpVersion::V6 => super::ipv6::quoted(quote)?,
    };
    let inner_l4_off = inner_l3_off + info.hlen;
    let (inner_sport, inner_dport) = if info.frag != Fragment::Later
        && matches!(info.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
    {
        // Source and destination port lead TCP, UDP and SCTP headers alike.
        let ports = quote
            .get(info.hlen..info.hlen + 4)
            .ok_or(ParseError::IcmpInnerTruncated)?;
        (be16(ports, 0..2), be16(ports, 2..4))
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
