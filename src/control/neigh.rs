//! Next hops for the real servers: out of which data-plane NIC and to which
//! MAC a frame for a real server goes, learnt from the kernel's routing and
//! neighbour tables.
//!
//! For each real server the kernel's route decides the NIC (a two-armed
//! director serves several; a server routed out of any other NIC is
//! refused, naming it) and the next hop (the real server itself when
//! on-link, else the gateway); the neighbour table of that NIC gives its
//! MAC unless lb.toml gives a static `mac`. A next hop the kernel does not know yet is
//! resolved by sending it one empty UDP datagram (port 9, discard): the
//! kernel then runs ARP / neighbour discovery itself, and a later refresh
//! picks the answer up. Nothing here runs on a worker: workers only ever see
//! the finished map in a snapshot, so a missing neighbour never stalls them
//! (the frame is dropped and counted as `no_next_hop` meanwhile).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::{Context, Result, bail};
use rustc_hash::FxHashMap;

use super::netlink::Netlink;
use crate::dest::{NextHop, NicId, is_local_addr};
use crate::service::{FwdMethod, ServiceSpec};
use crate::wire::MacAddr;

/// The data-plane NICs as the control plane addresses them: index (the
/// kernel's) and name, in [`NicId`] order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nics(pub Vec<(u32, String)>);

impl Nics {
    /// The [`NicId`] of kernel interface `ifindex`, if lvsfwd serves it.
    pub fn id_of(&self, ifindex: u32) -> Option<NicId> {
        self.0
            .iter()
            .position(|(i, _)| *i == ifindex)
            .and_then(|p| NicId::try_from(p).ok())
    }

    /// The names, comma-separated (for messages).
    pub fn names(&self) -> String {
        let n: Vec<&str> = self.0.iter().map(|(_, n)| n.as_str()).collect();
        n.join(", ")
    }
}

/// The real servers whose next hop must be learnt.
#[derive(Clone, Debug, Default)]
pub struct NextHops {
    targets: Vec<Target>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    addr: IpAddr,
    /// A static MAC (lb.toml `mac`): only the route's NIC is learnt.
    mac: Option<MacAddr>,
}

/// Where the kernel routes one real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// Out of data-plane NIC `nic`, to `hop` (the server or its gateway),
    /// from `src` (the kernel's source address for it, if it gave one).
    Via {
        nic: NicId,
        hop: IpAddr,
        src: Option<IpAddr>,
    },
    /// To the director itself (IPVS's Local forwarding: the kernel port).
    Local,
    /// Out of a NIC lvsfwd does not serve, named.
    Elsewhere(String),
}

/// Where the kernel routes `rs`, in terms of the data-plane NICs.
pub fn route_of(nl: &mut Netlink, nics: &Nics, rs: IpAddr) -> Result<Routed> {
    let r = nl.route_get(rs)?;
    if r.local || rs.is_loopback() {
        return Ok(Routed::Local);
    }
    Ok(match nics.id_of(r.oif) {
        Some(nic) => Routed::Via {
            nic,
            hop: r.gateway.unwrap_or(rs),
            src: r.src,
        },
        None => Routed::Elsewhere(nl.link_name(r.oif)),
    })
}

/// Refuses real servers the data plane could not reach: routed out of a
/// NIC lvsfwd does not serve (named), or with no route at all. Local ones
/// (the director's own addresses) are fine: the kernel port serves them.
/// Also refuses a FULLNAT local address on an interface lvsfwd does not
/// serve, and a TUN real server of a family no served NIC has a (not
/// link-local) address of: its tunnel would have no outer source. Run at
/// start, on reload and before an lvsadm edit is applied.
pub fn check_reachable(nl: &mut Netlink, nics: &Nics, specs: &[ServiceSpec]) -> Result<()> {
    let mut served = Vec::new();
    for (ifindex, _) in &nics.0 {
        served.extend(nl.addresses(*ifindex)?);
    }
    let mut seen = Vec::new();
    for d in specs.iter().flat_map(|s| s.dests.iter()) {
        if seen.contains(&(d.addr, d.fwd)) {
            continue;
        }
        seen.push((d.addr, d.fwd));
        let routed = route_of(nl, nics, d.addr);
        if d.fwd == FwdMethod::Tunnel
            && matches!(routed, Ok(Routed::Via { .. }))
            && !served.iter().any(|a| tunnel_source(a, &d.addr))
        {
            let fam = if d.addr.is_ipv4() { "IPv4" } else { "IPv6" };
            bail!(
                "TUN real server {} is {fam}, but no NIC lvsfwd serves has an {fam} address \
                 (interface = {}): its tunnel would have no outer source",
                d.addr,
                nics.names()
            );
        }
        match routed {
            Ok(Routed::Via { .. } | Routed::Local) => {}
            Ok(Routed::Elsewhere(name)) => bail!(
                "real server {} is routed through {name}, which lvsfwd does not serve \
                 (interface = {})",
                d.addr,
                nics.names()
            ),
            Err(e) => bail!("real server {}: {e:#}", d.addr),
        }
    }
    // FULLNAT's replies come back to its local addresses: one that is an
    // address of this host must be on a NIC lvsfwd serves, or the XDP
    // program never sees them. (One that is no address of the host at
    // all is routed to the director by someone else: fine.)
    for l in specs.iter().flat_map(|s| s.local_addrs.iter()) {
        if served.contains(l) {
            continue;
        }
        if nl.route_get(*l).is_ok_and(|r| r.local) {
            bail!(
                "FULLNAT local address {l} is an address of this host but of no NIC lvsfwd \
                 serves (interface = {}): replies to it would never reach lvsfwd",
                nics.names()
            );
        }
    }
    Ok(())
}

/// `a` can be the outer source of a tunnel to `rs`: the same family and,
/// for IPv6, not link-local (a global real server cannot answer it).
fn tunnel_source(a: &IpAddr, rs: &IpAddr) -> bool {
    match (a, rs) {
        (IpAddr::V4(_), IpAddr::V4(_)) => true,
        (IpAddr::V6(a), IpAddr::V6(_)) => !a.is_unicast_link_local(),
        _ => false,
    }
}

impl NextHops {
    /// Every real server address of `specs` (with its static MAC, if any),
    /// but the director's own (Local: no next hop).
    pub fn for_specs(specs: &[ServiceSpec], own_addrs: &[IpAddr]) -> NextHops {
        let mut targets: Vec<Target> = specs
            .iter()
            .flat_map(|s| s.dests.iter())
            // A real server at a loopback or own address is the director
            // itself (Local): no next hop.
            .filter(|d| !is_local_addr(d.addr, own_addrs))
            .map(|d| Target {
                addr: d.addr,
                mac: d.mac,
            })
            .collect();
        targets.sort();
        targets.dedup();
        NextHops { targets }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// One pass: each target's next hop (the data-plane NIC of the
    /// kernel's route to it, and the MAC of the neighbour that route goes
    /// to, or its static MAC), keyed by the target. Returns the map and how
    /// many targets are still unresolved (each of which has been poked to
    /// make the kernel resolve it). A target routed out of a NIC lvsfwd
    /// does not serve, or to the director itself, gets no entry (start and
    /// lvsadm refuse the former, see [`check_reachable`]; the latter is
    /// the kernel port's).
    ///
    /// A target whose neighbour entry the kernel has dropped (garbage
    /// collection of unused entries, a FAILED probe) keeps its next hop
    /// from `known`, the map in use: the director itself rarely talks to a
    /// real server, so the kernel's entry can lapse while traffic for the
    /// server flows, and forgetting the MAC would drop that traffic until
    /// the entry is learnt again. It is poked and counted as unresolved, so
    /// the kernel re-learns it (and a new MAC replaces the old one).
    pub fn refresh(
        &self,
        nl: &mut Netlink,
        nics: &Nics,
        known: &FxHashMap<IpAddr, NextHop>,
    ) -> Result<(FxHashMap<IpAddr, NextHop>, usize)> {
        let mut neigh = Vec::with_capacity(nics.0.len());
        for (ifindex, name) in &nics.0 {
            neigh.push(
                nl.neighbours(*ifindex)
                    .with_context(|| format!("reading the neighbours of {name}"))?,
            );
        }
        let mut map = FxHashMap::default();
        let mut missing = 0;
        for t in &self.targets {
            let (nic, hop, src) = match route_of(nl, nics, t.addr) {
                Ok(Routed::Via { nic, hop, src }) => (nic, hop, src),
                // Refused when configured; a route that changed since is
                // reported once per change by the caller's diff of maps.
                Ok(Routed::Local | Routed::Elsewhere(_)) | Err(_) => continue,
            };
            if let Some(mac) = t.mac {
                map.insert(t.addr, NextHop { nic, mac, src });
                continue;
            }
            match neigh[usize::from(nic)].get(&hop) {
                Some(mac) => {
                    map.insert(
                        t.addr,
                        NextHop {
                            nic,
                            mac: *mac,
                            src,
                        },
                    );
                }
                None => {
                    missing += 1;
                    poke(hop);
                    if let Some(h) = known.get(&t.addr) {
                        map.insert(t.addr, *h);
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
    fn every_real_server_is_a_target_once() {
        let d = |a: &str, mac: Option<MacAddr>| DestSpec {
            mac,
            ..DestSpec::new(a.parse().unwrap(), 80, FwdMethod::Route)
        };
        let key = ServiceKey {
            proto: Protocol::Tcp,
            addr: "198.18.0.250".parse().unwrap(),
            port: 80,
            fwmark: 0,
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
        let addrs: Vec<(IpAddr, bool)> = n
            .targets
            .iter()
            .map(|t| (t.addr, t.mac.is_some()))
            .collect();
        assert_eq!(
            addrs,
            vec![
                ("198.18.0.11".parse().unwrap(), true),
                ("198.18.0.12".parse().unwrap(), false)
            ]
        );
    }
}
