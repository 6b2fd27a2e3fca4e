//! ICMPv6 (RFC 4443) and the neighbour advertisement of RFC 4861: `field`
//! gives byte offsets relative to the start of the ICMPv6 header. Parsed by
//! [`super::icmp::parse`].

pub const HEADER_LEN: usize = 8;

pub const DST_UNREACH: u8 = 1;
pub const PKT_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAM_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const NEIGHBOR_ADVERT: u8 = 136;

/// Neighbour advertisement flags (byte [`field::NA_FLAGS`]).
pub const NA_FLAG_ROUTER: u8 = 0x80;
pub const NA_FLAG_SOLICITED: u8 = 0x40;
pub const NA_FLAG_OVERRIDE: u8 = 0x20;
/// Neighbour discovery option: target link-layer address.
pub const NDP_OPT_TARGET_LL_ADDR: u8 = 2;

/// Byte offsets of the ICMPv6 header and of a neighbour advertisement.
pub mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    /// MTU of a packet too big.
    pub const MTU: Range<usize> = 4..8;
    /// Start of an error's quote of the offending packet.
    pub const QUOTE: usize = 8;
    /// Neighbour advertisement: R, S, O flags.
    pub const NA_FLAGS: usize = 4;
    pub const NA_TARGET: Range<usize> = 8..24;
    /// Neighbour advertisement: first option.
    pub const NA_OPTIONS: usize = 24;
}

/// Byte offsets of a neighbour discovery option, relative to its start.
pub mod opt_field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    /// In units of 8 bytes.
    pub const LENGTH: usize = 1;
    /// The link-layer address of a (source/target) link-layer address option.
    pub const LL_ADDR: Range<usize> = 2..8;
}

/// ICMPv6 errors that quote a packet, as IPVS's `ip_vs_in_icmp_v6`.
#[inline]
pub fn is_error(ty: u8) -> bool {
    matches!(
        ty,
        DST_UNREACH | PKT_TOO_BIG | TIME_EXCEEDED | PARAM_PROBLEM
    )
}

#[inline]
pub fn is_echo(ty: u8) -> bool {
    matches!(ty, ECHO_REQUEST | ECHO_REPLY)
}
