//! ARP for IPv4 over Ethernet (RFC 826): `field` gives byte ranges relative
//! to the start of the ARP header (after the Ethernet header). The parser
//! hands ARP to the kernel; [`super::announce`] builds gratuitous ARP.

/// Length of an ARP message for Ethernet + IPv4.
pub const HEADER_LEN: usize = 28;

pub const HTYPE_ETHERNET: u16 = 1;
pub const OPER_REQUEST: u16 = 1;
pub const OPER_REPLY: u16 = 2;

/// Byte ranges of an Ethernet/IPv4 ARP message.
pub mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    /// Sender hardware address.
    pub const SHA: Range<usize> = 8..14;
    /// Sender protocol address.
    pub const SPA: Range<usize> = 14..18;
    /// Target hardware address.
    pub const THA: Range<usize> = 18..24;
    /// Target protocol address.
    pub const TPA: Range<usize> = 24..28;
}
