//! 802.1Q / 802.1ad VLAN tag: the 4 bytes after the MAC addresses whose
//! first two are the tag's ethertype (TPID). `field` gives byte ranges
//! relative to the end of the TPID, as a tag header is usually parsed: the
//! TCI, then the ethertype of what follows.

use super::ethernet::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_QINQ_OLD};

/// Length of one tag (TCI + next ethertype).
pub const HEADER_LEN: usize = 4;

/// Byte ranges of a VLAN tag.
pub mod field {
    use core::ops::Range;

    /// Priority, DEI and VLAN id.
    pub const TCI: Range<usize> = 0..2;
    /// Ethertype of what follows the tag.
    pub const ETHERTYPE: Range<usize> = 2..4;
}

/// Whether `ethertype` announces a VLAN tag.
#[inline(always)]
pub fn is_vlan_type(ethertype: u16) -> bool {
    matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_OLD)
}
