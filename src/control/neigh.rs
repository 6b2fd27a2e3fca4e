//! Next hops for the real servers: which MAC a frame for a real server goes
//! to, learnt from the kernel's routing and neighbour tables.
//!
//! For each real server without a static `mac` the kernel's route decides the
//! next hop (the real server itself when on-link, else the gateway), and the
//! neighbour table gives its MAC. A next hop the kernel does not know yet is
//! resolved by sending it one empty UDP datagram (port 9, discard): the
//! kernel then runs ARP / neighbour discovery itself, and a later refresh
//! picks the answer up. Nothing here runs on a worker: workers only ever see
//! the finished map in a snapshot, so a missing neighbour never stalls them
//! (the frame is dropped and counted as `no_next_hop` meanwhile).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::Result;
use rustc_hash::FxHashMap;

use super::netlink::Netlink;
use crate::dest::is_local_addr;
use crate::service::ServiceSpec;
use crate::wire::MacAddr;

/// The real servers whose next hop must be learnt.
#[derive(Clone, Debug, Default)]
pub struct NextHops {
    targets: Vec<IpAddr>,
}

impl NextHops {
    /// Every real server address of `specs` that has no static MAC.
    pub fn for_specs(specs: &[ServiceSpec], own_addrs: &[IpAddr]) -> NextHops {
        let mut targets: Vec<IpAddr> = specs
            .iter()
            .flat_map(|s| s.dests.iter())
            // A real server at a loopback or own address is the director
            // itself (Local): no next hop.
            .filter(|d| d.mac.is_none() && !is_local_addr(d.addr, own_addrs))
            .map(|d| d.addr)
            .collect();
        targets.sort();
        targets.dedup();
        NextHops { targets }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// One pass: the MAC of each target's next hop, keyed by the target.
    /// Returns the map and how many targets are still unresolved (each of
    /// which has been poked to make the kernel resolve it).
    ///
    /// A target whose neighbour entry the kernel has dropped (garbage
    /// collection of unused entries, a FAILED probe) keeps its MAC from
    /// `known`, the map in use: the director itself rarely talks to a real
    /// server, so the kernel's entry can lapse while traffic for the server
    /// flows, and forgetting the MAC would drop that traffic until the
    /// entry is learnt again. It is poked and counted as unresolved, so the
    /// kernel re-learns it (and a new MAC replaces the old one).
    pub fn refresh(
        &self,
        nl: &mut Netlink,
        ifindex: u32,
        known: &FxHashMap<IpAddr, MacAddr>,
    ) -> Result<(FxHashMap<IpAddr, MacAddr>, usize)> {
        let neigh = nl.neighbours(ifindex)?;
        let mut map = FxHashMap::default();
        let mut missing = 0;
        for &rs in &self.targets {
            let hop = match nl.route_get(rs) {
                Ok(r) if r.oif == ifindex => r.gateway.unwrap_or(rs),
                Ok(r) => {
                    log::warn!(
                        "real server {rs} is routed through interface {} , not the data-plane NIC",
                        r.oif
                    );
                    continue;
                }
                Err(e) => {
                    log::warn!("no route to real server {rs}: {e:#}");
                    continue;
                }
            };
            match neigh.get(&hop) {
                Some(mac) => {
                    map.insert(rs, *mac);
                }
                None => {
                    missing += 1;
                    poke(hop);
                    if let Some(mac) = known.get(&rs) {
                        map.insert(rs, *mac);
                    }
                }
            }
        }
        Ok((map, missing))
    }
}

/// Makes the kernel resolve `addr` by sending it an empty datagram.
fn poke(addr: IpAddr) {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    if let Ok(s) = UdpSocket::bind(bind) {
        let _ = s.send_to(&[], SocketAddr::new(addr, 9));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::SchedKind;
    use crate::service::{DestSpec, FwdMethod, Protocol, ServiceKey};

    #[test]
    fn only_real_servers_without_a_static_mac_are_targets() {
        let d = |a: &str, mac: Option<MacAddr>| DestSpec {
            mac,
            ..DestSpec::new(a.parse().unwrap(), 80, FwdMethod::Route)
        };
        let key = ServiceKey {
            proto: Protocol::Tcp,
            addr: "198.18.0.250".parse().unwrap(),
            port: 80,
        };
        let spec = ServiceSpec::new(
            key,
            SchedKind::Rr,
            vec![
                d("198.18.0.12", None),
                d("198.18.0.11", Some([2, 0, 0, 0, 0, 1])),
                d("198.18.0.12", None),
                // The director itself (Local): never a next hop.
                d("127.0.0.1", None),
                d("198.18.0.2", None),
            ],
        );
        let own = ["198.18.0.2".parse().unwrap()];
        let n = NextHops::for_specs(&[spec.clone(), spec], &own);
        assert_eq!(n.targets, vec!["198.18.0.12".parse::<IpAddr>().unwrap()]);
    }
}
