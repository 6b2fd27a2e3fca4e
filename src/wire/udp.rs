//! UDP header (RFC 768): `field` gives byte offsets relative to the start
//! of the UDP header.

use etherparse::UdpHeaderSlice;

use super::{L4, ParseError};

pub const HEADER_LEN: usize = 8;

/// Byte offsets of the UDP header.
pub mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    /// 0 over IPv4 means "no checksum".
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// The fast path's UDP header at the start of `l4data`.
#[inline(always)]
pub(super) fn fast(l4data: &[u8]) -> Option<L4> {
    let u = l4data.get(..HEADER_LEN)?;
    Some(L4::Udp {
        sport: u16::from_be_bytes([u[field::SRC_PORT.start], u[field::SRC_PORT.start + 1]]),
        dport: u16::from_be_bytes([u[field::DST_PORT.start], u[field::DST_PORT.start + 1]]),
    })
}

/// The general path's UDP header.
pub(super) fn parse(l4: &[u8]) -> Result<L4, ParseError> {
    let u = UdpHeaderSlice::from_slice(l4).map_err(|_| ParseError::UdpTruncated)?;
    Ok(L4::Udp {
        sport: u.source_port(),
        dport: u.destination_port(),
    })
}
