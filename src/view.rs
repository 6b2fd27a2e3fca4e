//! What the shell reads from the core, as plain values: connection views,
//! live counters of services and real servers, estimator rates. The admin
//! code only formats them (`lvsadm -L`), the daemon adds them up over
//! workers.

use std::net::IpAddr;
use std::time::Duration;

use crate::service::{FwdMethod, Protocol, Service, ServiceKey, Stats};

/// The estimator's rates of one service or real server (`--rate`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// Rates of one service and of its dests, indexed like `Service::dests`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRates {
    pub service: Rates,
    pub dests: Vec<Rates>,
}

/// One connection (or persistence template) as `ipvsadm -L -c` shows it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConnView {
    pub proto: Protocol,
    /// A fwmark service's persistence template: IPVS keys it with
    /// `IPPROTO_IP` and the mark as its virtual address; listed as `IP`.
    pub any_proto: bool,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// IPVS's state name ("ESTABLISHED", "FIN_WAIT", "NONE" for templates,
    /// "UDP", ...).
    pub state: &'static str,
    /// Time left on the connection's timer.
    pub expires_in: Duration,
    /// A FULLNAT connection's local address (its source toward the real
    /// server) and the service it belongs to, for `lvsadm -G`'s counts;
    /// `None` for any other connection and for templates.
    pub local: Option<(ServiceKey, IpAddr)>,
}

/// Live counters of one real server.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LiveDest {
    pub addr: IpAddr,
    pub port: u16,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    /// The data plane serves it locally ([`crate::dest::FwdMethod::Local`]):
    /// its address is the director's own.
    pub local: bool,
    pub stats: Stats,
    pub rates: Rates,
}

/// Live counters of one service and its real servers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveService {
    pub stats: Stats,
    pub rates: Rates,
    pub dests: Vec<LiveDest>,
    /// FULLNAT: each local address's port conflicts (`-G`'s CONFLICTS).
    pub laddr_conflicts: Vec<(IpAddr, u64)>,
}

impl LiveService {
    /// The counters of a running service (rates indexed like its dests).
    pub fn of(svc: &Service, rates: Option<&ServiceRates>) -> LiveService {
        LiveService {
            stats: svc.stats,
            rates: rates.map(|r| r.service).unwrap_or_default(),
            dests: svc
                .dests
                .iter()
                .enumerate()
                .filter(|(_, d)| d.available)
                .map(|(i, d)| LiveDest {
                    addr: d.addr,
                    port: d.port,
                    active_conns: d.active_conns,
                    inact_conns: d.inact_conns,
                    persist_conns: d.persist_conns,
                    local: d.fwd == FwdMethod::Local,
                    stats: d.stats,
                    rates: rates
                        .and_then(|r| r.dests.get(i))
                        .copied()
                        .unwrap_or_default(),
                })
                .collect(),
            laddr_conflicts: svc
                .local_addrs
                .iter()
                .copied()
                .zip(svc.laddr_conflicts.iter().copied())
                .collect(),
        }
    }

    /// The port conflicts counted for local address `laddr`.
    pub fn conflicts_of(&self, laddr: IpAddr) -> u64 {
        self.laddr_conflicts
            .iter()
            .find(|(a, _)| *a == laddr)
            .map_or(0, |(_, n)| *n)
    }
}
