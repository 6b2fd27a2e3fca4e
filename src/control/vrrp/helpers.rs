//! The VRRP runtime's pure helpers: what `control::vrrp_thread` (the I/O
//! shell) and the daemon decide without a socket, thread, clock or netlink
//! call. Which VIPs the data plane serves ([`VipGate`], [`active_specs`]),
//! an instance's family, election address and advert destinations, what a
//! raw IPv4 socket's datagram says ([`split_ipv4`]), the announcement
//! frames of the VIPs, and how long the thread may sleep.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::machine::RxMeta;
use crate::config::{IpPrefix, VrrpInstance};
use crate::service::ServiceSpec;
use crate::time::Timestamp;
use crate::wire::MacAddr;
use crate::wire::announce;
use crate::wire::vrrp::{Family, IPPROTO_VRRP, MCAST_V4, MCAST_V6};

/// Which virtual addresses the data plane may serve: those of instances
/// that are master; a VIP no running instance is master of is inactive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VipGate {
    instances: BTreeMap<String, (Vec<IpAddr>, bool)>,
}

impl VipGate {
    /// Every instance starts as not master.
    pub fn new(instances: &[VrrpInstance]) -> VipGate {
        VipGate {
            instances: instances
                .iter()
                .map(|i| {
                    (
                        i.name.clone(),
                        (i.virtual_ipaddress.iter().map(|p| p.addr).collect(), false),
                    )
                })
                .collect(),
        }
    }

    /// A reloaded instance list: an instance of the same name and VIPs
    /// keeps its state (the VRRP thread reports any change), the others
    /// start as not master, removed ones are forgotten.
    pub fn reconfigure(&mut self, instances: &[VrrpInstance]) {
        let mut next = VipGate::new(instances);
        for (name, (vips, master)) in next.instances.iter_mut() {
            if let Some((old_vips, old_master)) = self.instances.get(name)
                && old_vips == vips
            {
                *master = *old_master;
            }
        }
        *self = next;
    }

    /// Records `instance`'s state; true when that changes what is served.
    pub fn set(&mut self, instance: &str, master: bool) -> bool {
        let before = self.inactive();
        if let Some(e) = self.instances.get_mut(instance) {
            e.1 = master;
        }
        self.inactive() != before
    }

    /// VIPs of VRRP instances that no master instance covers.
    pub fn inactive(&self) -> BTreeSet<IpAddr> {
        let active: BTreeSet<IpAddr> = self
            .instances
            .values()
            .filter(|(_, m)| *m)
            .flat_map(|(v, _)| v.iter().copied())
            .collect();
        self.instances
            .values()
            .flat_map(|(v, _)| v.iter().copied())
            .filter(|a| !active.contains(a))
            .collect()
    }
}

/// The services the XDP program may redirect: those whose address is not
/// an inactive VIP.
pub fn active_specs(specs: &[ServiceSpec], inactive: &BTreeSet<IpAddr>) -> Vec<ServiceSpec> {
    specs
        .iter()
        .filter(|s| !inactive.contains(&s.key.addr))
        .map(|s| {
            // A fwmark service's traffic is what its rules match: only the
            // rules to active VIPs stay.
            let mut s = s.clone();
            s.fwmark_matches.retain(|m| !inactive.contains(&m.addr));
            s
        })
        .collect()
}

/// The election address of an instance on an interface with `addrs`: its
/// first IPv4 address that is not one of the instance's VIPs, or for IPv6
/// its first link-local address (RFC 5798 section 5.1.2.2).
pub fn pick_primary(addrs: &[IpAddr], family: Family, vips: &[IpAddr]) -> Option<IpAddr> {
    addrs.iter().copied().find(|a| match (family, a) {
        (Family::V4, IpAddr::V4(_)) => !vips.contains(a),
        (Family::V6, IpAddr::V6(v6)) => v6.segments()[0] & 0xffc0 == 0xfe80,
        _ => false,
    })
}

/// Splits what a raw IPv4 socket returns into the header's facts and where
/// the VRRP message lies (bounded by the header's total length). `None` for
/// bytes that are not a well-formed IPv4 header of protocol 112.
pub fn split_ipv4(datagram: &[u8]) -> Option<(RxMeta, std::ops::Range<usize>)> {
    let h = etherparse::Ipv4HeaderSlice::from_slice(datagram).ok()?;
    if h.protocol().0 != IPPROTO_VRRP {
        return None;
    }
    let start = h.slice().len();
    let end = (h.total_len() as usize).min(datagram.len());
    if end < start {
        return None;
    }
    Some((
        RxMeta {
            src: IpAddr::V4(h.source_addr()),
            dst: IpAddr::V4(h.destination_addr()),
            ttl: Some(h.ttl()),
        },
        start..end,
    ))
}

/// The family an instance runs in: its first VIP's, else its
/// `unicast_src_ip`'s, else IPv4.
pub fn instance_family(inst: &VrrpInstance) -> Family {
    inst.virtual_ipaddress
        .first()
        .map(|p| p.addr)
        .or(inst.unicast_src_ip)
        .map_or(Family::V4, |a| Family::of(&a))
}

/// The VRRP multicast groups (`[global] vrrp_mcast_group4/6`, keepalived's
/// keywords; RFC 5798's 224.0.0.18 and ff02::12 by default).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct McastGroups {
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

impl Default for McastGroups {
    fn default() -> McastGroups {
        McastGroups {
            v4: MCAST_V4,
            v6: MCAST_V6,
        }
    }
}

impl McastGroups {
    /// The groups `[global]` names.
    pub fn of(g: &crate::config::Global) -> McastGroups {
        McastGroups {
            v4: g.vrrp_mcast_group4,
            v6: g.vrrp_mcast_group6,
        }
    }

    /// The group of `family`.
    pub fn get(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(self.v4),
            Family::V6 => IpAddr::V6(self.v6),
        }
    }
}

/// Where an instance's adverts go: every `unicast_peer`, or the family's
/// VRRP multicast group of `groups`.
pub fn advert_destinations(
    inst: &VrrpInstance,
    family: Family,
    groups: McastGroups,
) -> Vec<IpAddr> {
    if !inst.unicast_peer.is_empty() {
        inst.unicast_peer.clone()
    } else {
        vec![groups.get(family)]
    }
}

/// The scope id an IPv6 advert to `dst` is sent with: the interface for a
/// link-local or multicast destination, none otherwise.
pub fn v6_scope(dst: Ipv6Addr, ifindex: u32) -> u32 {
    if dst.is_unicast_link_local() || dst.is_multicast() {
        ifindex
    } else {
        0
    }
}

/// One announcement frame per VIP, sent from `mac`: a gratuitous ARP for
/// IPv4, an unsolicited neighbour advertisement for IPv6.
pub fn announcements(mac: MacAddr, vips: &[IpPrefix]) -> Vec<(IpAddr, Vec<u8>)> {
    vips.iter()
        .map(|p| {
            let frame = match p.addr {
                IpAddr::V4(a) => announce::garp(mac, a).to_vec(),
                IpAddr::V6(a) => announce::unsolicited_na(mac, a).to_vec(),
            };
            (p.addr, frame)
        })
        .collect()
}

/// How long the thread may wait in poll, in ms: until the earliest
/// deadline, at least 1 ms and at most `max` (how quickly it notices a stop
/// request).
pub fn poll_wait_ms(next_deadline: Option<Timestamp>, now: Timestamp, max: Duration) -> u16 {
    let max_ms = max.as_millis().clamp(1, u16::MAX.into());
    let wait = next_deadline.map_or(max, |d| d.since(now));
    wait.as_millis().clamp(1, max_ms) as u16
}

#[cfg(test)]
mod tests;
