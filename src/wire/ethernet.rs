//! Ethernet II header: two MAC addresses and the ethertype.
//!
//! `field` gives byte ranges relative to the start of the frame.

/// Ethertypes the parser knows.
pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still seen on some switches.
pub const ETH_P_QINQ_OLD: u16 = 0x9100;
/// Length of an untagged Ethernet header.
pub const ETH_HLEN: usize = 14;

/// An Ethernet MAC address.
pub type MacAddr = [u8; 6];

/// The broadcast address.
pub const BROADCAST: MacAddr = [0xff; 6];

/// Byte ranges of the Ethernet header.
pub mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// Both addresses, destination first.
    pub const ADDRS: Range<usize> = 0..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}
