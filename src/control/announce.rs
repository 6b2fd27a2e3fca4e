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
//! operator's view. Its weak side, a route left behind by a crashed
//! lvsfwd, is covered three ways: lvsfwd removes its protocol's routes
//! from the table at start, the guard below removes them when lvsfwd dies,
//! and the unit's `ExecStopPost` flushes the table (`configs/lvsfwd.service`);
//! a dead host takes its BGP session (and so its routes) with it. Why a
//! guard process rather than a route that expires (RTA_EXPIRES exists for
//! IPv6 routes only, and would need lvsfwd to refresh every route
//! constantly) or BFD/`check link` in BIRD (they follow links and
//! sessions, not a process): a pipe's end-of-file is the one signal the
//! kernel delivers whatever way a process dies.
//!
//! FULLNAT behind ECMP: real servers answer to the local address of the
//! director that opened the connection, so each director's local
//! addresses (every running service's pool: lb.toml's `local_address` and
//! what `lvsadm -P` added) are announced too, while lvsfwd runs; one that
//! leaves every pool (`lvsadm -Q`, a reload) is withdrawn. The other directors' (`peer_local_address`) are
//! announced as well, with kernel metric [`PEER_LOCAL_METRIC`], which the
//! director's BIRD turns into a longer AS path: the router prefers the
//! owner while it is there and, when it dies, sends its real servers'
//! replies to the survivors, which hold its connections by sync and whose
//! XDP program takes those addresses too.
//!
//! A crashed lvsfwd cannot remove its routes: a guard process
//! (`lvsfwd announce-guard`, started with the announcer) holds the read
//! end of a pipe whose write end only lvsfwd has; when lvsfwd dies,
//! however it dies, the guard reads end-of-file, removes every route of
//! `protocol` from `table` and exits.
//!
//! A VIP is served when ([`judge`]): VRRP (if the VIP is a VRRP address)
//! says this director is master for it, and every virtual server at that
//! address, as health checking leaves it, has its quorum of live weight
//! and no sorry server standing in. A virtual server that health checking
//! watches has its quorum as the checkers keep it (keepalived's
//! quorum_up/quorum_down, with `hysteresis`: gained at quorum +
//! hysteresis, lost below quorum - hysteresis) and some live weight; one
//! that only lvsadm feeds has its quorum while the sum of its real
//! servers' weights reaches `quorum` (default 1). The control loop judges every
//! [`PERIOD`] and the announcer adds or removes routes, logging why; at
//! stop and when a worker dies every route goes first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::net::IpAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::netlink::Netlink;
use crate::config::{Announce, PEER_LOCAL_METRIC};
use crate::service::{ServiceKey, ServiceSpec};

/// How often the control loop judges the VIPs.
pub const PERIOD: Duration = Duration::from_millis(100);

/// What health checking says of a virtual server's quorum
/// ([`judge`]'s `health`): `None` it does not watch it.
pub struct Quorum {
    /// keepalived's quorum state, with its hysteresis.
    pub up: bool,
    /// Quorum lost and its sorry server stands in.
    pub sorry_active: bool,
}

/// Whether each VIP is served: `None` yes, `Some(why not)`.
pub fn judge(
    vips: &[IpAddr],
    services: &[ServiceSpec],
    quorum: &HashMap<ServiceKey, u32>,
    health: impl Fn(&ServiceKey) -> Option<Quorum>,
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
                let name = || {
                    format!(
                        "{} {}",
                        s.key.proto.name(),
                        std::net::SocketAddr::new(s.key.addr, s.key.port)
                    )
                };
                match health(&s.key) {
                    Some(h) if h.sorry_active => {
                        return Some(format!(
                            "{}: quorum lost, its sorry server stands in",
                            name()
                        ));
                    }
                    Some(h) if !h.up => {
                        return Some(format!("{}: quorum lost (health checks)", name()));
                    }
                    Some(_) if live == 0 => {
                        return Some(format!("{}: no live weight", name()));
                    }
                    Some(_) => {}
                    None if live < i64::from(q) => {
                        return Some(format!("{}: live weight {live} below quorum {q}", name()));
                    }
                    None => {}
                }
            }
            (!any).then(|| "no virtual server at this address".to_string())
        })();
        out.insert(vip, why);
    }
    out
}

/// A reload's `[announce]` prepared ([`Announcer::prepare`]).
pub struct Reconfig {
    cfg: Announce,
    /// The guard of the table taken over, when it is another one.
    guard: Option<Guard>,
}

/// The routes in the table, as the judge says.
pub struct Announcer {
    cfg: Announce,
    nl: Netlink,
    /// Routes in place, with their metric.
    installed: BTreeMap<IpAddr, u32>,
    /// Last reason each VIP was not announced (logged once).
    why_not: BTreeMap<IpAddr, String>,
    guard: Option<Guard>,
}

impl Announcer {
    /// Takes over the table: routes of our protocol left there (an
    /// earlier run that did not stop) are removed; the guard that removes
    /// ours if this process dies starts.
    pub fn start(cfg: &Announce) -> Result<Announcer> {
        let mut nl = Netlink::open()?;
        flush(&mut nl, cfg.table, cfg.protocol, "by an earlier run")?;
        let guard = Guard::spawn(cfg.table, cfg.protocol)?;
        log::info!(
            "announce: VIPs {:?} through table {} (protocol {}) while served; local addresses \
             {:?}, peers' {:?} (metric {PEER_LOCAL_METRIC}) while running",
            cfg.vips,
            cfg.table,
            cfg.protocol,
            cfg.local_addrs,
            cfg.peer_local_addrs,
        );
        Ok(Announcer {
            cfg: cfg.clone(),
            nl,
            installed: BTreeMap::new(),
            why_not: BTreeMap::new(),
            guard: Some(guard),
        })
    }

    pub fn vips(&self) -> &[IpAddr] {
        &self.cfg.vips
    }

    /// The other directors' FULLNAT local addresses, which this one takes
    /// too (the XDP program redirects them).
    pub fn peer_local_addrs(&self) -> &[IpAddr] {
        &self.cfg.peer_local_addrs
    }

    /// A reload's `[announce]` (SIGHUP), first part: what can fail, done
    /// while nothing that runs has changed. Another table or protocol is
    /// taken over now (our protocol's routes left there removed, its guard
    /// started); the routes in place stay until [`Announcer::reconfigure`].
    /// Dropped unused (the reload refused for another reason), the new
    /// guard exits with the new table empty of our routes.
    pub fn prepare(&mut self, cfg: &Announce) -> Result<Reconfig> {
        let guard = if (cfg.table, cfg.protocol) != (self.cfg.table, self.cfg.protocol) {
            flush(
                &mut self.nl,
                cfg.table,
                cfg.protocol,
                "before taking it over",
            )?;
            Some(Guard::spawn(cfg.table, cfg.protocol)?)
        } else {
            None
        };
        Ok(Reconfig {
            cfg: cfg.clone(),
            guard,
        })
    }

    /// A reload's `[announce]`, second part (cannot fail): routes of VIPs
    /// and addresses that stay are left alone (no flap); those no longer
    /// listed go; new ones come at the next [`Announcer::follow`]. Another
    /// table or protocol moves every route (and the guard) there.
    pub fn reconfigure(&mut self, r: Reconfig) {
        let Reconfig { cfg, guard } = r;
        if cfg == self.cfg {
            return;
        }
        if let Some(guard) = guard {
            self.withdraw_all("moving to another table or protocol");
            // The old guard, told nothing, would flush the old table: it
            // is stopped first (its table is empty now anyway).
            if let Some(g) = self.guard.replace(guard) {
                g.dismiss();
            }
            log::info!(
                "announce: now table {} (protocol {})",
                cfg.table,
                cfg.protocol
            );
        } else {
            // A route of metric 0 (a VIP, a local address of a running
            // pool, lvsadm's included) is left to the next `follow`, which
            // knows the pools; a peer's address must keep its metric.
            let keep = |a: &IpAddr, m: u32| {
                if cfg.peer_local_addrs.contains(a) {
                    m == PEER_LOCAL_METRIC
                } else {
                    m == 0
                }
            };
            for (a, m) in self.installed.clone() {
                if !keep(&a, m) {
                    self.withdraw(a, "no longer in [announce]");
                }
            }
        }
        self.why_not.clear();
        self.cfg = cfg;
    }

    /// Makes the table follow `judged`, keeps `local` (the FULLNAT local
    /// addresses of the running services' pools) and the peers' local
    /// addresses announced, and withdraws any other route of ours. A
    /// failed change is logged and tried again at the next call.
    pub fn follow(&mut self, judged: &BTreeMap<IpAddr, Option<String>>, local: &BTreeSet<IpAddr>) {
        for (&vip, why) in judged {
            match why {
                None => {
                    self.why_not.remove(&vip);
                    self.install(vip, 0, "served");
                }
                Some(why) => {
                    if self.installed.contains_key(&vip) {
                        self.withdraw(vip, why);
                    } else if self.why_not.get(&vip) != Some(why) {
                        log::info!("announce: {vip} not announced: {why}");
                    }
                    self.why_not.insert(vip, why.clone());
                }
            }
        }
        for &a in local {
            self.install(a, 0, "FULLNAT local address");
        }
        for a in self.cfg.peer_local_addrs.clone() {
            self.install(a, PEER_LOCAL_METRIC, "a peer's FULLNAT local address");
        }
        let stale: Vec<IpAddr> = self
            .installed
            .keys()
            .filter(|a| {
                !judged.contains_key(a)
                    && !local.contains(a)
                    && !self.cfg.peer_local_addrs.contains(a)
            })
            .copied()
            .collect();
        for a in stale {
            self.withdraw(a, "no longer a FULLNAT local address nor an announced VIP");
        }
    }

    fn install(&mut self, a: IpAddr, metric: u32, what: &str) {
        if self.installed.contains_key(&a) {
            return;
        }
        match self
            .nl
            .add_vip_route(self.cfg.table, self.cfg.protocol, a, metric)
        {
            Ok(()) => {
                self.installed.insert(a, metric);
                log::info!("announce: {a} announced: {what}");
            }
            Err(e) => log::error!("announce: {e:#}"),
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
        for vip in self.installed.keys().copied().collect::<Vec<_>>() {
            self.withdraw(vip, why);
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.withdraw_all("stopping");
    }
}

/// Removes every host route of `protocol` from `table`.
fn flush(nl: &mut Netlink, table: u32, protocol: u8, by: &str) -> Result<()> {
    for a in nl.vip_routes(table, protocol)? {
        nl.del_vip_route(table, protocol, a)?;
        log::info!("announce: removed {a} left in table {table} {by}");
    }
    Ok(())
}

/// The guard process: `lvsfwd announce-guard TABLE PROTOCOL`, its stdin
/// the read end of a pipe only this process writes to (std's pipes are
/// close-on-exec, so no other child holds it).
struct Guard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guard {
    fn spawn(table: u32, protocol: u8) -> Result<Guard> {
        let exe = std::env::current_exe().context("finding lvsfwd's own executable")?;
        let mut child = Command::new(exe)
            .args(["announce-guard", &table.to_string(), &protocol.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the announce guard")?;
        let stdin = child.stdin.take();
        Ok(Guard { child, stdin })
    }

    /// Stops the guard without letting it flush: it is told by one byte
    /// before its pipe closes.
    fn dismiss(mut self) {
        use std::io::Write;
        if let Some(mut w) = self.stdin.take() {
            let _ = w.write_all(b"q");
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A clean stop: the routes are gone already; the guard finds
        // nothing to flush and exits.
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// `lvsfwd announce-guard TABLE PROTOCOL`: waits for its stdin to close
/// (lvsfwd gone, however) and then removes every host route of `protocol`
/// from `table`; a byte on stdin first (a reconfigured lvsfwd dismissing
/// it) makes it exit without. Stop signals are ignored: a service
/// manager stopping lvsfwd's group must not kill the guard before lvsfwd
/// is gone.
pub fn guard_main(table: u32, protocol: u8) -> Result<()> {
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        signal_hook::flag::register(sig, ignored.clone()).context("ignoring the stop signals")?;
    }
    let mut b = [0u8; 1];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut b) {
            Ok(0) => break,
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let mut nl = Netlink::open()?;
    for a in nl.vip_routes(table, protocol)? {
        if nl.del_vip_route(table, protocol, a)? {
            log::warn!("announce guard: lvsfwd is gone: {a} withdrawn from table {table}");
        }
    }
    Ok(())
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
        let j = judge(&[a, b, c], &services, &quorum, |_| None, &none);
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
        let j = judge(&[a], &services, &quorum, |_| None, &none);
        assert!(j[&a].as_deref().unwrap().contains("TCP 198.18.0.250:443"));
        // A sorry server standing in, and VRRP, withdraw too.
        quorum.clear();
        let sorry = |k: &ServiceKey| {
            (k.port == 80).then_some(Quorum {
                up: false,
                sorry_active: true,
            })
        };
        let j = judge(&[a], &services, &quorum, sorry, &none);
        assert!(j[&a].as_deref().unwrap().contains("sorry server"));
        let j = judge(&[a], &services, &quorum, |_| None, &BTreeSet::from([a]));
        assert!(j[&a].as_deref().unwrap().contains("VRRP"));
    }

    #[test]
    fn a_health_checked_service_follows_health_checkings_quorum_state() {
        let a: IpAddr = "198.18.0.250".parse().unwrap();
        // One live of quorum 2: below it, but health checking (with
        // hysteresis) still has the quorum up.
        let services = vec![svc("198.18.0.250", 80, &[1, 0, 0])];
        let quorum = HashMap::from([(services[0].key, 2)]);
        let none = BTreeSet::new();
        let up = |up| {
            move |_: &ServiceKey| {
                Some(Quorum {
                    up,
                    sorry_active: false,
                })
            }
        };
        assert_eq!(judge(&[a], &services, &quorum, up(true), &none)[&a], None);
        // Without health checking the same weights are below quorum.
        assert!(
            judge(&[a], &services, &quorum, |_| None, &none)[&a]
                .as_deref()
                .unwrap()
                .contains("live weight 1 below quorum 2")
        );
        // Two live of quorum 2 but health checking has not regained it
        // (quorum + hysteresis not reached).
        let two = vec![svc("198.18.0.250", 80, &[1, 1, 0])];
        assert!(
            judge(&[a], &two, &quorum, up(false), &none)[&a]
                .as_deref()
                .unwrap()
                .contains("quorum lost (health checks)")
        );
        // Nothing live is never served, whatever the state says.
        let zero = vec![svc("198.18.0.250", 80, &[0, 0, 0])];
        assert!(
            judge(&[a], &zero, &quorum, up(true), &none)[&a]
                .as_deref()
                .unwrap()
                .contains("no live weight")
        );
    }
}
