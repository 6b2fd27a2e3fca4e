//! Address announcements a new VRRP master sends for its virtual addresses:
//! gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6,
//! RFC 4861 section 7.2.6), as complete Ethernet frames.
//!
//! The frames are byte for byte what keepalived sends (`vrrp_arp.c`,
//! `vrrp_ndisc.c`): an ARP *request* broadcast whose sender and target
//! protocol addresses are both the VIP and whose target hardware address is
//! the broadcast address; an NA from the VIP to all-nodes (ff02::1) with hop
//! limit 255, the Override flag and a target link-layer address option.
//!
//! Deliberately not here: sending them (the VRRP runtime does, over a packet
//! socket) and the Router flag (lvsfwd never forwards for the kernel).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ethernet::{self, BROADCAST, ETH_HLEN, ETH_P_ARP, ETH_P_IPV6, MacAddr};
use super::{arp, at, checksum, icmpv6, ipv6};

/// Length of a gratuitous ARP frame (Ethernet + ARP, no padding).
pub const GARP_LEN: usize = ETH_HLEN + arp::HEADER_LEN;
/// Length of an unsolicited NA frame (Ethernet + IPv6 + 32 bytes of ICMPv6).
pub const UNSOLICITED_NA_LEN: usize = ETH_HLEN + ipv6::HEADER_LEN + NA_ICMP_LEN;
/// The NA message: 24 bytes of header and target, one 8-byte TLLA option.
const NA_ICMP_LEN: usize = icmpv6::field::NA_OPTIONS + 8;

/// Gratuitous ARP for `vip`, from `mac`.
pub fn garp(mac: MacAddr, vip: Ipv4Addr) -> [u8; GARP_LEN] {
    use arp::field as A;
    let mut f = [0u8; GARP_LEN];
    f[ethernet::field::DESTINATION].copy_from_slice(&BROADCAST);
    f[ethernet::field::SOURCE].copy_from_slice(&mac);
    f[ethernet::field::ETHERTYPE].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    let a = &mut f[ETH_HLEN..];
    // Ethernet, IPv4, 6-byte and 4-byte addresses, request.
    a[A::HTYPE].copy_from_slice(&arp::HTYPE_ETHERNET.to_be_bytes());
    a[A::PTYPE].copy_from_slice(&super::ETH_P_IPV4.to_be_bytes());
    a[A::HLEN] = 6;
    a[A::PLEN] = 4;
    a[A::OPER].copy_from_slice(&arp::OPER_REQUEST.to_be_bytes());
    a[A::SHA].copy_from_slice(&mac);
    a[A::SPA].copy_from_slice(&vip.octets());
    a[A::THA].copy_from_slice(&BROADCAST);
    a[A::TPA].copy_from_slice(&vip.octets());
    f
}

/// Unsolicited neighbour advertisement for `vip`, from `mac`.
pub fn unsolicited_na(mac: MacAddr, vip: Ipv6Addr) -> [u8; UNSOLICITED_NA_LEN] {
    const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    const L3: usize = ETH_HLEN;
    const L4: usize = L3 + ipv6::HEADER_LEN;
    const OPT: usize = L4 + icmpv6::field::NA_OPTIONS;
    use icmpv6::field as N;
    use ipv6::field as I;
    let mut f = [0u8; UNSOLICITED_NA_LEN];
    // The all-nodes multicast MAC 33:33:00:00:00:01 (RFC 2464 section 7).
    f[ethernet::field::DESTINATION].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[ethernet::field::SOURCE].copy_from_slice(&mac);
    f[ethernet::field::ETHERTYPE].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    // IPv6: version 6, payload 32, next header ICMPv6, hop limit 255.
    f[at(L3, I::VER_TC_FLOW)].copy_from_slice(&ipv6::ver_tc_flow(0, 0));
    f[at(L3, I::LENGTH)].copy_from_slice(&(NA_ICMP_LEN as u16).to_be_bytes());
    f[L3 + I::NXT_HDR] = super::IPPROTO_ICMPV6;
    f[L3 + I::HOP_LIMIT] = 255;
    f[at(L3, I::SRC)].copy_from_slice(&vip.octets());
    f[at(L3, I::DST)].copy_from_slice(&ALL_NODES.octets());
    // ICMPv6 NA: type 136, code 0, Override flag, target, TLLA option.
    f[L4 + N::TYPE] = icmpv6::NEIGHBOR_ADVERT;
    f[L4 + N::NA_FLAGS] = icmpv6::NA_FLAG_OVERRIDE;
    f[at(L4, N::NA_TARGET)].copy_from_slice(&vip.octets());
    f[OPT + icmpv6::opt_field::TYPE] = icmpv6::NDP_OPT_TARGET_LL_ADDR;
    f[OPT + icmpv6::opt_field::LENGTH] = 1;
    f[at(OPT, icmpv6::opt_field::LL_ADDR)].copy_from_slice(&mac);
    let sum = checksum::add(
        checksum::pseudo_v6(
            vip.octets(),
            ALL_NODES.octets(),
            super::IPPROTO_ICMPV6,
            NA_ICMP_LEN as u32,
        ),
        checksum::sum(&f[L4..]),
    );
    f[at(L4, N::CHECKSUM)].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = [0x02, 0x1f, 0, 0, 0, 0x03];

    #[test]
    fn garp_is_keepalived_s_frame() {
        // What keepalived 2.2.7 sent for 198.18.0.250 from 02:1f:00:00:00:03
        // (tcpdump: "Request who-has 198.18.0.250 (ff:ff:ff:ff:ff:ff) tell
        // 198.18.0.250").
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x1f, 0x00, 0x00, 0x00, 0x03, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // ARP request
            0x02, 0x1f, 0x00, 0x00, 0x00, 0x03, 0xc6, 0x12, 0x00, 0xfa, // sender
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc6, 0x12, 0x00, 0xfa, // target
        ];
        assert_eq!(garp(MAC, Ipv4Addr::new(198, 18, 0, 250)), want);
    }

    #[test]
    fn unsolicited_na_is_keepalived_s_frame() {
        // Captured from keepalived 2.2.7 for 2001:2::250 (checksum 0x0fd8).
        let want: [u8; 86] = [
            0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x1f, 0x00, 0x00, 0x00, 0x03, 0x86, 0xdd,
            0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, // IPv6 header
            0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x02, 0x50, // src 2001:2::250
            0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x01, // dst ff02::1
            0x88, 0x00, 0x0f, 0xd8, 0x20, 0x00, 0x00, 0x00, // NA, Override
            0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x02, 0x50, // target
            0x02, 0x01, 0x02, 0x1f, 0x00, 0x00, 0x00, 0x03, // TLLA option
        ];
        let got = unsolicited_na(MAC, "2001:2::250".parse().unwrap());
        assert_eq!(got, want);
    }

    #[test]
    fn na_checksum_verifies_for_other_addresses() {
        let vip: Ipv6Addr = "2001:2:0:7::abcd".parse().unwrap();
        let f = unsolicited_na([2, 0, 0, 0, 0, 9], vip);
        // Independent RFC 1071 sum over pseudo-header + ICMPv6 message.
        let mut bytes = Vec::new();
        let addrs = ipv6::field::SRC.start..ipv6::field::DST.end;
        let l4 = ETH_HLEN + ipv6::HEADER_LEN;
        bytes.extend_from_slice(&f[at(ETH_HLEN, addrs)]);
        bytes.extend_from_slice(&[0, 0, 0, 32, 0, 0, 0, 58]);
        bytes.extend_from_slice(&f[l4..]);
        let mut acc: u32 = 0;
        for w in bytes.chunks(2) {
            acc += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        assert_eq!(acc, 0xffff);
    }
}
