//! Announce only while serving (`[announce]`): lvsfwd does not speak BGP;
//! a routing daemon does (BIRD 2: `configs/bird-director.conf`). While this
//! director serves a VIP, the VIP's host route (`blackhole`, so the
//! director's own forwarding never uses it) is in kernel table `table`
//! with protocol id `protocol`; BIRD's `kernel` protocol on that table
//! (`learn`) imports it and BGP announces it, with the director's address
//! as next hop. When the route goes, BIRD withdraws it at once.
//!
//! Why a kernel table rather than BIRD's control socket: the kernel is the
//! only party both sides already trust and that outlives either of them; a
//! restarted BIRD reads the table again (a socket command would be lost
//! with BIRD's state), any daemon that imports kernel routes works the same
//! way (GoBGP's zebra/FRR `redistribute table`, ExaBGP with a process that
//! watches `ip monitor route table N`), and `ip route show table N` is the
//! operator's view. Its weak side: a route left behind by a crashed lvsfwd.
//! lvsfwd removes its protocol's routes from the table at start (and
//! systemd restarts it on failure), the unit's commented `ExecStopPost`
//! flushes them at once (`configs/lvsfwd.service`); a dead host takes its
//! BGP session (and so its routes) with it.
//!
//! A VIP is served when ([`judge`]): VRRP (if the VIP is a VRRP address)
//! says this director is master for it, and every virtual server at that
//! address, as health checking leaves it, has its quorum of live weight
//! (the sum of its real servers' weights, keepalived's quorum, default 1)
//! and no sorry server standing in. The control loop judges every
//! [`PERIOD`] and the announcer adds or removes routes, logging why; at
//! stop and when a worker dies every route goes first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Result;

use super::netlink::Netlink;
use crate::config::Announce;
use crate::service::{ServiceKey, ServiceSpec};

/// How often the control loop judges the VIPs.
pub const PERIOD: Duration = Duration::from_millis(100);

/// Whether each VIP is served: `None` yes, `Some(why not)`.
pub fn judge(
    vips: &[IpAddr],
    services: &[ServiceSpec],
    quorum: &HashMap<ServiceKey, u32>,
    sorry_active: impl Fn(&ServiceKey) -> bool,
    vrrp_inactive: &BTreeSet<IpAddr>,
) -> BTreeMap<IpAddr, Option<String>> {
    let mut out = BTreeMap::new();
    for &vip in vips {
        let why = (|| {
            if vrrp_inactive.contains(&vip) {
                return Some("VRRP: not master for it".to_string());
            }
            let mut any = false;
            for s in services.iter().filter(|s| s.key.addr == vip) {
                any = true;
                let q = quorum.get(&s.key).copied().unwrap_or(1);
                let live: i64 = s.dests.iter().map(|d| i64::from(d.weight.max(0))).sum();
                if sorry_active(&s.key) {
                    return Some(format!(
                        "{} {}: quorum lost, its sorry server stands in",
                        s.key.proto.name(),
                        std::net::SocketAddr::new(s.key.addr, s.key.port)
                    ));
                }
                if live < i64::from(q) {
                    return Some(format!(
                        "{} {}: live weight {live} below quorum {q}",
                        s.key.proto.name(),
                        std::net::SocketAddr::new(s.key.addr, s.key.port)
                    ));
                }
            }
            (!any).then(|| "no virtual server at this address".to_string())
        })();
        out.insert(vip, why);
    }
    out
}

/// The routes in the table, as the judge says.
pub struct Announcer {
    cfg: Announce,
    nl: Netlink,
    /// Routes in place.
    installed: BTreeSet<IpAddr>,
    /// Last reason each VIP was not announced (logged once).
    why_not: BTreeMap<IpAddr, String>,
}

impl Announcer {
    /// Takes over the table: routes of our protocol left there (an
    /// earlier run that did not stop) are removed.
    pub fn start(cfg: &Announce) -> Result<Announcer> {
        let mut nl = Netlink::open()?;
        for vip in nl.vip_routes(cfg.table, cfg.protocol)? {
            nl.del_vip_route(cfg.table, cfg.protocol, vip)?;
            log::info!(
                "announce: removed {vip} left in table {} by an earlier run",
                cfg.table
            );
        }
        log::info!(
            "announce: VIPs {:?} through table {} (protocol {}) while served",
            cfg.vips,
            cfg.table,
            cfg.protocol
        );
        Ok(Announcer {
            cfg: cfg.clone(),
            nl,
            installed: BTreeSet::new(),
            why_not: BTreeMap::new(),
        })
    }

    pub fn vips(&self) -> &[IpAddr] {
        &self.cfg.vips
    }

    /// Makes the table follow `judged`. A failed change is logged and
    /// tried again at the next call.
    pub fn follow(&mut self, judged: &BTreeMap<IpAddr, Option<String>>) {
        for (&vip, why) in judged {
            match why {
                None => {
                    self.why_not.remove(&vip);
                    if self.installed.contains(&vip) {
                        continue;
                    }
                    match self
                        .nl
                        .add_vip_route(self.cfg.table, self.cfg.protocol, vip)
                    {
                        Ok(()) => {
                            self.installed.insert(vip);
                            log::info!("announce: {vip} announced: served");
                        }
                        Err(e) => log::error!("announce: {e:#}"),
                    }
                }
                Some(why) => {
                    if self.installed.contains(&vip) {
                        self.withdraw(vip, why);
                    } else if self.why_not.get(&vip) != Some(why) {
                        log::info!("announce: {vip} not announced: {why}");
                    }
                    self.why_not.insert(vip, why.clone());
                }
            }
        }
    }

    fn withdraw(&mut self, vip: IpAddr, why: &str) {
        match self
            .nl
            .del_vip_route(self.cfg.table, self.cfg.protocol, vip)
        {
            Ok(_) => {
                self.installed.remove(&vip);
                log::warn!("announce: {vip} withdrawn: {why}");
            }
            Err(e) => log::error!("announce: {e:#}"),
        }
    }

    /// Every route goes (stop, a dead worker).
    pub fn withdraw_all(&mut self, why: &str) {
        for vip in self.installed.clone() {
            self.withdraw(vip, why);
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.withdraw_all("stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::DestSpec;
    use crate::sched::SchedKind;
    use crate::service::{FwdMethod, Protocol};

    fn svc(addr: &str, port: u16, weights: &[i32]) -> ServiceSpec {
        let key = ServiceKey {
            proto: Protocol::Tcp,
            addr: addr.parse().unwrap(),
            port,
            fwmark: 0,
        };
        let dests = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let mut d = DestSpec::new(
                    format!("198.18.0.{}", 10 + i).parse().unwrap(),
                    port,
                    FwdMethod::Route,
                );
                d.weight = w;
                d
            })
            .collect();
        ServiceSpec::new(key, SchedKind::Mh, dests)
    }

    #[test]
    fn a_vip_is_served_while_each_of_its_services_has_quorum() {
        let a: IpAddr = "198.18.0.250".parse().unwrap();
        let b: IpAddr = "198.18.0.251".parse().unwrap();
        let c: IpAddr = "198.18.0.252".parse().unwrap();
        let services = vec![
            svc("198.18.0.250", 80, &[1, 1]),
            svc("198.18.0.250", 443, &[1, 0]),
            svc("198.18.0.251", 80, &[0, 0]),
        ];
        let mut quorum = HashMap::new();
        let none = BTreeSet::new();
        let j = judge(&[a, b, c], &services, &quorum, |_| false, &none);
        assert_eq!(j[&a], None);
        assert!(
            j[&b]
                .as_deref()
                .unwrap()
                .contains("live weight 0 below quorum 1")
        );
        assert!(j[&c].as_deref().unwrap().contains("no virtual server"));
        // Quorum 2 on :443, which has 1 live.
        quorum.insert(services[1].key, 2);
        let j = judge(&[a], &services, &quorum, |_| false, &none);
        assert!(j[&a].as_deref().unwrap().contains("TCP 198.18.0.250:443"));
        // A sorry server standing in, and VRRP, withdraw too.
        quorum.clear();
        let j = judge(&[a], &services, &quorum, |k| k.port == 80, &none);
        assert!(j[&a].as_deref().unwrap().contains("sorry server"));
        let j = judge(&[a], &services, &quorum, |_| false, &BTreeSet::from([a]));
        assert!(j[&a].as_deref().unwrap().contains("VRRP"));
    }
}
