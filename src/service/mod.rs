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
//!   lives, and a [`Service`] never leaves `ServiceTable::services`:
//!   connections refer to them by [`DestRef`] (service index, dest index).
//!   Removing a real server clears [`Dest::available`] instead, exactly as IPVS
//!   clears `IP_VS_DEST_F_AVAILABLE`; schedulers skip unavailable dests.
//!   Removing a service takes its key out of the lookup index (see
//!   [`ServiceTable::is_live`]) and makes all its dests unavailable.
//! - Within one service, at most one dest per real-server address + port, and
//!   within the table at most one slot per [`ServiceKey`], once the table is
//!   built by [`ServiceTable::from_specs`] / [`ServiceTable::apply_specs`]:
//!   a server or service that comes back reuses its old entry.
//! - Counters (`active_conns`, `inact_conns`, `persist_conns`) are maintained
//!   by the connection table (see `conn`), never by schedulers nor here.
//!
//! Live changes ([`ServiceTable::apply_specs`]) follow what IPVS does when
//! ipvsadm or keepalived edit a running table (`ip_vs_edit_service`,
//! `ip_vs_add_dest` / `ip_vs_edit_dest` / `ip_vs_del_dest`, the dest trash):
//! see that method for the rules and the one deliberate deviation (where a
//! runtime-added server sits in the scheduling order).
//!
//! Deliberately not here: connection handling (a removed server's
//! connections are the `conn` module's business, through `available`), and
//! freeing memory of removed entries: the table only grows, bounded by the
//! distinct service keys and real-server addresses ever configured.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::sched::{self, SchedFlags, SchedKind, Scheduler};

pub use crate::dest::{Dest, DestSpec, FwdMethod, Stats};
pub use fwmark::{FwmarkMatch, FwmarkRule, attach_rules};
pub use table::{ApplySummary, ServiceTable};

mod fwmark;
mod table;
#[cfg(test)]
mod tests;

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

/// Where a connection's real server lives in a [`ServiceTable`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DestRef {
    pub svc: u32,
    pub dest: u32,
}

/// Protocol + virtual address + port, or a firewall mark: what a virtual
/// service is keyed by (IPVS's `ip_vs_service_user`).
///
/// A fwmark service (`fwmark != 0`, ipvsadm's `-f N`, keepalived's
/// `virtual_server fwmark N`) is keyed by its mark and its family only:
/// [`ServiceKey::fwmark`] builds it with the family's unspecified address,
/// port 0 and a nominal `Tcp` (IPVS's `IPPROTO_IP`: it serves TCP and UDP
/// alike); always build one through that constructor so keys compare equal.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub proto: Protocol,
    pub addr: IpAddr,
    pub port: u16,
    /// The firewall mark of a fwmark service; 0 for an address service.
    pub fwmark: u32,
}

impl ServiceKey {
    /// The key of an address service.
    pub const fn addr(proto: Protocol, addr: IpAddr, port: u16) -> ServiceKey {
        ServiceKey {
            proto,
            addr,
            port,
            fwmark: 0,
        }
    }

    /// The key of the fwmark service of `mark` (non-zero) for IPv4 or
    /// IPv6 (`-f N` / `-f N -6`).
    pub const fn fwmark(mark: u32, v6: bool) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: if v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            },
            port: 0,
            fwmark: mark,
        }
    }

    /// A fwmark service's key.
    pub const fn is_fwmark(&self) -> bool {
        self.fwmark != 0
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_fwmark() {
            // ipvsadm's service name.
            return match self.addr {
                IpAddr::V4(_) => write!(f, "FWM  {}", self.fwmark),
                IpAddr::V6(_) => write!(f, "FWM  {} IPv6", self.fwmark),
            };
        }
        match self.addr {
            IpAddr::V4(a) => write!(f, "{} {}:{}", self.proto.name(), a, self.port),
            IpAddr::V6(a) => write!(f, "{} [{}]:{}", self.proto.name(), a, self.port),
        }
    }
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
    /// A fwmark service's classification rules (see [`attach_rules`]);
    /// empty for an address service.
    pub fwmark_matches: Vec<FwmarkMatch>,
    pub dests: Vec<DestSpec>,
}

impl ServiceSpec {
    /// A service with ipvsadm's defaults apart from the scheduler: not
    /// persistent (host granularity), no ops, no FULLNAT pool.
    pub fn new(key: ServiceKey, sched: SchedKind, dests: Vec<DestSpec>) -> ServiceSpec {
        ServiceSpec {
            key,
            sched,
            sched_flags: SchedFlags::default(),
            persistence: None,
            persistence_prefix: if key.addr.is_ipv4() { 32 } else { 128 },
            ops: false,
            local_addrs: Vec::new(),
            fwmark_matches: Vec::new(),
            dests,
        }
    }
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
    /// FULLNAT: per local address (indexed like `local_addrs`), the local
    /// ports tried for a new connection that another connection to the
    /// same real server already held (Alibaba LVS's `port_conflict`, `-G`'s
    /// CONFLICTS); counted since the address joined the pool.
    pub laddr_conflicts: Vec<u64>,
    /// A fwmark service's classification rules.
    pub fwmark_matches: Vec<FwmarkMatch>,
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
        let dests: Vec<Dest> = spec.dests.iter().rev().map(Dest::from_spec).collect();
        let mut sched = sched::new_scheduler(spec.sched, spec.sched_flags);
        sched.update(&dests);
        Service {
            key: spec.key,
            sched_flags: spec.sched_flags,
            persistence: spec.persistence,
            persistence_prefix: spec.persistence_prefix,
            ops: spec.ops,
            local_addrs: spec.local_addrs.clone(),
            laddr_conflicts: vec![0; spec.local_addrs.len()],
            fwmark_matches: spec.fwmark_matches.clone(),
            dests,
            sched,
            stats: Stats::default(),
        }
    }

    /// Takes `pool` as the FULLNAT local addresses: an address that stays
    /// keeps its conflict count, a new one starts at 0 (Alibaba LVS zeroes
    /// a local address's counters when it is added).
    pub fn set_local_addrs(&mut self, pool: &[IpAddr]) {
        if self.local_addrs == pool {
            return;
        }
        self.laddr_conflicts = pool
            .iter()
            .map(|a| {
                self.local_addrs
                    .iter()
                    .position(|b| b == a)
                    .and_then(|i| self.laddr_conflicts.get(i).copied())
                    .unwrap_or(0)
            })
            .collect();
        self.local_addrs = pool.to_vec();
    }

    /// Index of the available dest with this address and port.
    pub fn find_dest(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.available && d.addr == addr && d.port == port)
    }
}
