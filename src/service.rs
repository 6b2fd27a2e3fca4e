//! Runtime virtual services and real servers ("destinations" in IPVS).
//!
//! This is the validated, in-memory form of the service table that the data
//! plane consults: [`ServiceTable`] maps protocol + VIP + port to a
//! [`Service`], each holding its real servers ([`Dest`]) in IPVS's list order
//! and its scheduler. Configuration (lb.toml, lvsadm) is turned into
//! [`ServiceSpec`]s first and only then into a table, so nothing here parses
//! user input.
//!
//! Invariants:
//! - A [`Dest`] is never moved or removed from `Service::dests` while the table
//!   lives: connections refer to it by [`DestRef`] (service index, dest index).
//!   Removing a real server clears [`Dest::available`] instead, exactly as IPVS
//!   clears `IP_VS_DEST_F_AVAILABLE`; schedulers skip unavailable dests.
//! - Counters (`active_conns`, `inact_conns`, `persist_conns`) are maintained
//!   by the connection table (see `conn`), never by schedulers.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::sched::{self, SchedFlags, SchedKind, Scheduler};

/// An Ethernet MAC address.
pub type MacAddr = [u8; 6];

/// Transport protocol of a virtual service.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Protocol {
    Tcp = 6,
    Udp = 17,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        self as u8
    }
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
    /// The name ipvsadm prints ("TCP", "UDP").
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// How packets reach a real server (ipvsadm `-m`, `-i`, `-g`, `--fullnat`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FwdMethod {
    /// NAT ("Masq"): destination rewritten to RIP:rport, replies come back.
    Masq,
    /// IP-in-IP tunnel ("Tunnel"); replies go straight to the client.
    Tunnel,
    /// Direct routing ("Route"): only the destination MAC changes.
    Route,
    /// Both addresses rewritten; the client side maps to a local address.
    FullNat,
}

impl FwdMethod {
    /// The name ipvsadm prints in its Forward column.
    pub const fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
            FwdMethod::FullNat => "FullNat",
        }
    }
    /// True when replies from the real server come back through the director.
    pub const fn sees_replies(self) -> bool {
        matches!(self, FwdMethod::Masq | FwdMethod::FullNat)
    }
}

/// IPVS's per-service and per-dest traffic counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.conns += other.conns;
        self.inpkts += other.inpkts;
        self.outpkts += other.outpkts;
        self.inbytes += other.inbytes;
        self.outbytes += other.outbytes;
    }
}

/// A real server of one virtual service, with IPVS's connection counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: FwdMethod,
    /// Scheduling weight; 0 quiesces the server (no new connections).
    pub weight: i32,
    /// Upper connection threshold (0 = none): at or above it the server is
    /// marked overloaded.
    pub u_threshold: u32,
    /// Lower threshold: below it an overloaded server is usable again
    /// (0 = use 3/4 of `u_threshold`, as IPVS does).
    pub l_threshold: u32,
    /// Static next-hop MAC; `None` = resolve through the neighbour table.
    pub mac: Option<MacAddr>,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    /// `IP_VS_DEST_F_OVERLOAD`.
    pub overloaded: bool,
    /// `IP_VS_DEST_F_AVAILABLE`: false once removed from its service.
    pub available: bool,
    pub stats: Stats,
}

impl Dest {
    pub fn new(addr: IpAddr, port: u16, fwd: FwdMethod, weight: i32) -> Dest {
        Dest {
            addr,
            port,
            fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            mac: None,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            overloaded: false,
            available: true,
            stats: Stats::default(),
        }
    }

    /// IPVS's `ip_vs_dest_conn_overhead`: active connections weigh 256 times
    /// more than inactive ones.
    pub fn overhead(&self) -> u64 {
        (self.active_conns as u64) * 256 + self.inact_conns as u64
    }

    /// `ip_vs_dest_totalconns`: what the thresholds are compared with
    /// (active + inactive; persistence templates do not count).
    pub fn total_conns(&self) -> u32 {
        self.active_conns + self.inact_conns
    }

    /// Re-evaluates `overloaded` after a counter changed, as IPVS does in
    /// `ip_vs_bind_dest` (upper threshold) and `ip_vs_unbind_dest` (lower).
    pub fn update_overload(&mut self) {
        if self.u_threshold == 0 {
            self.overloaded = false;
            return;
        }
        let total = self.total_conns();
        if total >= self.u_threshold {
            self.overloaded = true;
        } else if self.overloaded {
            let below = if self.l_threshold != 0 {
                total < self.l_threshold
            } else {
                (total as u64) * 4 < (self.u_threshold as u64) * 3
            };
            if below {
                self.overloaded = false;
            }
        }
    }
}

/// Where a connection's real server lives in a [`ServiceTable`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DestRef {
    pub svc: u32,
    pub dest: u32,
}

/// Protocol + virtual address + port: what a virtual service is keyed by.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub proto: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{} {}:{}", self.proto.name(), a, self.port),
            IpAddr::V6(a) => write!(f, "{} [{}]:{}", self.proto.name(), a, self.port),
        }
    }
}

/// A real server as configured (no runtime state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestSpec {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: FwdMethod,
    pub weight: i32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub mac: Option<MacAddr>,
}

/// A virtual service as configured (no runtime state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub sched: SchedKind,
    pub sched_flags: SchedFlags,
    /// `Some(timeout)` for a persistent service (`-p`, persistence_timeout).
    pub persistence: Option<Duration>,
    /// Persistence granularity as a prefix length (IPv4 netmask
    /// 255.255.255.0 = 24; IPv6 `-M 64` = 64). Default: a host (32 / 128).
    pub persistence_prefix: u8,
    /// One-packet scheduling (`-o`, ops): every UDP datagram is scheduled.
    pub ops: bool,
    /// FULLNAT source pool (local_address).
    pub local_addrs: Vec<IpAddr>,
    pub dests: Vec<DestSpec>,
}

/// A runtime virtual service.
#[derive(Debug)]
pub struct Service {
    pub key: ServiceKey,
    pub sched_flags: SchedFlags,
    pub persistence: Option<Duration>,
    pub persistence_prefix: u8,
    pub ops: bool,
    pub local_addrs: Vec<IpAddr>,
    /// Real servers in IPVS list order (newest first, as the kernel links
    /// them); removed ones stay with `available == false` (see module
    /// invariants). Listings sort them by address as ipvsadm does.
    pub dests: Vec<Dest>,
    pub sched: Box<dyn Scheduler>,
    pub stats: Stats,
}

impl Service {
    pub fn from_spec(spec: &ServiceSpec) -> Service {
        // The kernel links a new dest at the head of the service's list, so
        // after adding the configured servers in order its list (the order
        // every scheduler walks) is the reverse of the configuration's.
        let dests: Vec<Dest> = spec
            .dests
            .iter()
            .rev()
            .map(|d| {
                let mut dest = Dest::new(d.addr, d.port, d.fwd, d.weight);
                dest.u_threshold = d.u_threshold;
                dest.l_threshold = d.l_threshold;
                dest.mac = d.mac;
                dest
            })
            .collect();
        let mut sched = sched::new_scheduler(spec.sched, spec.sched_flags);
        sched.update(&dests);
        Service {
            key: spec.key,
            sched_flags: spec.sched_flags,
            persistence: spec.persistence,
            persistence_prefix: spec.persistence_prefix,
            ops: spec.ops,
            local_addrs: spec.local_addrs.clone(),
            dests,
            sched,
            stats: Stats::default(),
        }
    }

    /// Index of the available dest with this address and port.
    pub fn find_dest(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.available && d.addr == addr && d.port == port)
    }
}

/// Every virtual service, keyed for the data plane's lookup.
#[derive(Debug, Default)]
pub struct ServiceTable {
    pub services: Vec<Service>,
    index: FxHashMap<ServiceKey, u32>,
}

impl ServiceTable {
    /// Builds a table; later specs with a key already seen are refused by
    /// config validation, so here the first one wins.
    pub fn from_specs(specs: &[ServiceSpec]) -> ServiceTable {
        let mut t = ServiceTable::default();
        for s in specs {
            t.add(Service::from_spec(s));
        }
        t
    }

    /// Adds a service and returns its index.
    pub fn add(&mut self, svc: Service) -> u32 {
        let idx = self.services.len() as u32;
        self.index.entry(svc.key).or_insert(idx);
        self.services.push(svc);
        idx
    }

    /// The service for a packet's protocol, destination address and port.
    #[inline]
    pub fn lookup(&self, key: &ServiceKey) -> Option<u32> {
        self.index.get(key).copied()
    }

    pub fn dest(&self, r: DestRef) -> &Dest {
        &self.services[r.svc as usize].dests[r.dest as usize]
    }

    pub fn dest_mut(&mut self, r: DestRef) -> &mut Dest {
        &mut self.services[r.svc as usize].dests[r.dest as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_and_thresholds_follow_ipvs() {
        let mut d = Dest::new("198.18.0.11".parse().unwrap(), 80, FwdMethod::Route, 1);
        d.active_conns = 2;
        d.inact_conns = 3;
        assert_eq!(d.overhead(), 515);
        d.u_threshold = 8;
        d.persist_conns = 30;
        d.update_overload();
        assert!(!d.overloaded, "templates do not count against thresholds");
        d.inact_conns = 6;
        d.update_overload();
        assert!(d.overloaded);
        // below u_threshold but not below 3/4 of it: still overloaded
        d.inact_conns = 4;
        d.update_overload();
        assert!(d.overloaded, "total 6 is not below 6");
        d.inact_conns = 3;
        d.update_overload();
        assert!(!d.overloaded);
    }
}
