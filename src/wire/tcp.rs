//! TCP header (RFC 9293): `field` gives byte offsets relative to the start
//! of the TCP header.

use etherparse::TcpHeaderSlice;
use etherparse::err::tcp::HeaderSliceError;

use super::{L4, ParseError};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Byte offsets of the TCP header.
pub mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (high nibble, in 32-bit words).
    pub const DATA_OFF: usize = 12;
    /// The flag bits ([`super::TcpFlags`]).
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// TCP flag bits as on the wire (byte [`field::FLAGS`] of the header).
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

#[inline(always)]
fn be32(t: &[u8], r: core::ops::Range<usize>) -> u32 {
    u32::from_be_bytes([t[r.start], t[r.start + 1], t[r.start + 2], t[r.start + 3]])
}

#[inline(always)]
fn be16(t: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([t[r.start], t[r.start + 1]])
}

/// The fast path's TCP header at the start of `l4data` (the rest of the IP
/// packet): complete with its options, data offset at least 5.
#[inline(always)]
pub(super) fn fast(l4data: &[u8]) -> Option<L4> {
    let t = l4data.get(..HEADER_LEN)?;
    let doff = usize::from(t[field::DATA_OFF] >> 4) * 4;
    if doff < HEADER_LEN || doff > l4data.len() {
        return None;
    }
    Some(L4::Tcp {
        sport: be16(t, field::SRC_PORT),
        dport: be16(t, field::DST_PORT),
        flags: TcpFlags(t[field::FLAGS]),
        seq: be32(t, field::SEQ_NUM),
        ack: be32(t, field::ACK_NUM),
    })
}

/// The general path's TCP header.
pub(super) fn parse(l4: &[u8]) -> Result<L4, ParseError> {
    let t = TcpHeaderSlice::from_slice(l4).map_err(|e| match e {
        HeaderSliceError::Len(_) => ParseError::TcpTruncated,
        HeaderSliceError::Content(_) => ParseError::TcpBadDataOffset,
    })?;
    Ok(L4::Tcp {
        sport: t.source_port(),
        dport: t.destination_port(),
        flags: TcpFlags(t.slice()[field::FLAGS]),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
    })
}
