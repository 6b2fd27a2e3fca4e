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

use rustc_hash::FxHashMap;

use crate::sched::{self, SchedFlags, SchedKind, Scheduler};

pub use crate::dest::{Dest, DestSpec, FwdMethod, Stats};

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

/// What one [`ServiceTable::apply_specs`] changed (for logs and tests).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// Services with a key never seen before (a new slot).
    pub services_added: u32,
    /// Removed services whose key came back (their slot reused).
    pub services_restored: u32,
    /// Services kept whose settings or real servers changed.
    pub services_updated: u32,
    /// Services taken out of the lookup index.
    pub services_removed: u32,
    /// Scheduler instances replaced in kept services (kind or flags edited).
    pub scheds_replaced: u32,
    /// Real servers appended to a service.
    pub dests_added: u32,
    /// Removed real servers made available again in place.
    pub dests_restored: u32,
    /// Kept real servers whose settings changed.
    pub dests_updated: u32,
    /// Real servers made unavailable (their service's removal included).
    pub dests_removed: u32,
}

impl ApplySummary {
    /// Nothing changed.
    pub fn is_noop(&self) -> bool {
        *self == ApplySummary::default()
    }
}

/// Every virtual service, keyed for the data plane's lookup.
#[derive(Debug, Default)]
pub struct ServiceTable {
    /// Every service slot ever created, removed ones included (see the
    /// module invariants); [`ServiceTable::is_live`] tells them apart.
    pub services: Vec<Service>,
    index: FxHashMap<ServiceKey, u32>,
}

/// Whether a scheduler reads the service's flags: IPVS's sh and mh look at
/// `svc->flags` on every packet, so editing the flags changes their
/// behaviour; our instances take them at construction, hence a new one.
fn reads_flags(kind: SchedKind) -> bool {
    matches!(kind, SchedKind::Sh | SchedKind::Mh)
}

/// Per-service counts [`reconcile_dests`] adds to the summary.
#[derive(Default)]
struct DestDiff {
    added: u32,
    restored: u32,
    updated: u32,
    removed: u32,
}

impl DestDiff {
    fn any(&self) -> bool {
        self.added + self.restored + self.updated + self.removed > 0
    }
}

/// Makes `dests` match `specs` in place: kept servers (same address and
/// port) take their new settings and keep their counters; unavailable ones
/// named again are revived in place (IPVS takes them back from its trash);
/// the others become unavailable; new ones are appended, in reverse spec
/// order so that among themselves they keep the kernel's head-insertion
/// order. A real server listed twice counts once (IPVS refuses the second
/// add with EEXIST). `zero_revived` clears the traffic stats of revived
/// dests (a re-created service: the kernel zeroes a trash dest's stats when
/// it binds to a different service struct).
fn reconcile_dests(dests: &mut Vec<Dest>, specs: &[DestSpec], zero_revived: bool) -> DestDiff {
    const NEW: usize = usize::MAX;
    let mut diff = DestDiff::default();
    let mut by_addr: FxHashMap<(IpAddr, u16), usize> =
        FxHashMap::with_capacity_and_hasher(dests.len() + specs.len(), Default::default());
    for (i, d) in dests.iter().enumerate() {
        by_addr.entry((d.addr, d.port)).or_insert(i);
    }
    let mut named = vec![false; dests.len()];
    let mut new: Vec<&DestSpec> = Vec::new();
    for s in specs {
        match by_addr.get(&(s.addr, s.port)).copied() {
            Some(NEW) => {}
            Some(i) if named[i] => {}
            Some(i) => {
                named[i] = true;
                let d = &mut dests[i];
                let changed = d.apply_spec(s);
                if !d.available {
                    d.available = true;
                    if zero_revived {
                        d.stats = Stats::default();
                    }
                    diff.restored += 1;
                } else if changed {
                    diff.updated += 1;
                }
            }
            None => {
                by_addr.insert((s.addr, s.port), NEW);
                new.push(s);
            }
        }
    }
    for (d, named) in dests.iter_mut().zip(named) {
        if d.available && !named {
            d.available = false;
            diff.removed += 1;
        }
    }
    diff.added = new.len() as u32;
    dests.extend(new.into_iter().rev().map(Dest::from_spec));
    diff
}

impl ServiceTable {
    /// Builds a table from configuration; a later spec with a key already
    /// seen is ignored (config validation refuses them anyway). Identical to
    /// [`ServiceTable::apply_specs`] on an empty table.
    pub fn from_specs(specs: &[ServiceSpec]) -> ServiceTable {
        let mut t = ServiceTable::default();
        t.apply_specs(specs);
        t
    }

    /// Adds a service and returns its index. A key already in the index
    /// keeps its old service (the new slot is then unreachable); tables that
    /// get live changes should be built with [`ServiceTable::from_specs`].
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

    /// Whether slot `idx` is a configured service (not a removed one kept
    /// for its connections).
    pub fn is_live(&self, idx: u32) -> bool {
        self.services
            .get(idx as usize)
            .is_some_and(|s| self.index.get(&s.key) == Some(&idx))
    }

    /// The configured services with their slot index, in slot order.
    pub fn live(&self) -> impl Iterator<Item = (u32, &Service)> + '_ {
        self.services
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
            .filter(|(i, _)| self.is_live(*i))
    }

    pub fn dest(&self, r: DestRef) -> &Dest {
        &self.services[r.svc as usize].dests[r.dest as usize]
    }

    pub fn dest_mut(&mut self, r: DestRef) -> &mut Dest {
        &mut self.services[r.svc as usize].dests[r.dest as usize]
    }

    /// Makes the table match `specs` (the whole new configuration) as a
    /// diff, the way IPVS applies ipvsadm / keepalived edits to a live
    /// table, so established connections keep their real servers and every
    /// counter survives. Call between packet batches: it allocates, in
    /// O(services + dests).
    ///
    /// - A kept service (same key) is edited in place (`ip_vs_edit_service`):
    ///   persistence, netmask, ops, FULLNAT pool and flags are taken; a
    ///   different scheduler kind gets a new instance, and so do flag edits
    ///   for sh and mh (the only schedulers that read the flags); any other
    ///   scheduler keeps its instance and state. Its stats survive.
    /// - Its real servers: see `reconcile_dests`. Kept ones keep ActiveConn,
    ///   InActConn, PersistConn and stats; removed ones become unavailable
    ///   (their connections then follow `expire_nodest_conn` in the `conn`
    ///   module) and are neither listed nor scheduled; one named again is
    ///   revived in place with its counters, never duplicated. When anything
    ///   about the dests changed the scheduler's `update` runs once
    ///   (`add_dest` / `upd_dest` / `del_dest`); weight 0 quiesces.
    /// - A service left out leaves the lookup index (no new connection is
    ///   scheduled to it) and all its dests become unavailable, like
    ///   `__ip_vs_del_service` unlinking them; the slot stays for the
    ///   connections that refer to it.
    /// - A key that comes back reuses its slot as a new service would be
    ///   created: a new scheduler, zero service stats; its dests are taken
    ///   back by address + port with their connection counters, their
    ///   traffic stats zeroed (the kernel's trash dests binding to a new
    ///   service struct).
    /// - A new key gets a new slot built by [`Service::from_spec`].
    ///
    /// Scheduling order (deviation): IPVS links every added or revived dest
    /// at the head of the service's list, which schedulers walk from the
    /// head. Dests cannot move here ([`DestRef`]s index them), so new ones
    /// are appended at the tail (in reverse spec order among themselves) and
    /// revived ones stay where they were. The initial table is exact
    /// (`from_spec` reverses the configuration), and rr's circular order is
    /// the same either way; schedulers that break ties by list position
    /// (wlc, lc, sed, nq, fo, ovf, wrr's rounds) or build tables from it (sh,
    /// mh, dh) may pick differently than a kernel that got the same runtime
    /// edits.
    pub fn apply_specs(&mut self, specs: &[ServiceSpec]) -> ApplySummary {
        let mut sum = ApplySummary::default();
        let mut slots: FxHashMap<ServiceKey, u32> =
            FxHashMap::with_capacity_and_hasher(self.services.len(), Default::default());
        slots.extend(self.index.iter().map(|(k, &i)| (*k, i)));
        for (i, s) in self.services.iter().enumerate() {
            slots.entry(s.key).or_insert(i as u32);
        }
        let mut named = vec![false; self.services.len()];
        for spec in specs {
            match slots.get(&spec.key).copied() {
                Some(i) if named[i as usize] => {}
                Some(i) if self.is_live(i) => {
                    named[i as usize] = true;
                    self.update_service(i as usize, spec, &mut sum);
                }
                Some(i) => {
                    named[i as usize] = true;
                    self.restore_service(i as usize, spec, &mut sum);
                    self.index.insert(spec.key, i);
                    sum.services_restored += 1;
                }
                None => {
                    let i = self.services.len() as u32;
                    self.services.push(Service::from_spec(spec));
                    self.index.insert(spec.key, i);
                    slots.insert(spec.key, i);
                    named.push(true);
                    sum.services_added += 1;
                }
            }
        }
        for (i, named) in named.iter().enumerate() {
            if !named && self.is_live(i as u32) {
                self.remove_service(i, &mut sum);
            }
        }
        sum
    }

    fn update_service(&mut self, i: usize, spec: &ServiceSpec, sum: &mut ApplySummary) {
        let svc = &mut self.services[i];
        let diff = reconcile_dests(&mut svc.dests, &spec.dests, false);
        let new_sched = svc.sched.kind() != spec.sched
            || (reads_flags(spec.sched) && svc.sched_flags != spec.sched_flags);
        let settings = svc.sched_flags != spec.sched_flags
            || svc.persistence != spec.persistence
            || svc.persistence_prefix != spec.persistence_prefix
            || svc.ops != spec.ops
            || svc.local_addrs != spec.local_addrs;
        svc.sched_flags = spec.sched_flags;
        svc.persistence = spec.persistence;
        svc.persistence_prefix = spec.persistence_prefix;
        svc.ops = spec.ops;
        svc.local_addrs.clone_from(&spec.local_addrs);
        if new_sched {
            svc.sched = sched::new_scheduler(spec.sched, spec.sched_flags);
            svc.sched.update(&svc.dests);
            sum.scheds_replaced += 1;
        } else if diff.any() {
            svc.sched.update(&svc.dests);
        }
        if new_sched || settings || diff.any() {
            sum.services_updated += 1;
        }
        sum.dests_added += diff.added;
        sum.dests_restored += diff.restored;
        sum.dests_updated += diff.updated;
        sum.dests_removed += diff.removed;
    }

    fn restore_service(&mut self, i: usize, spec: &ServiceSpec, sum: &mut ApplySummary) {
        let svc = &mut self.services[i];
        let diff = reconcile_dests(&mut svc.dests, &spec.dests, true);
        svc.sched_flags = spec.sched_flags;
        svc.persistence = spec.persistence;
        svc.persistence_prefix = spec.persistence_prefix;
        svc.ops = spec.ops;
        svc.local_addrs.clone_from(&spec.local_addrs);
        svc.stats = Stats::default();
        svc.sched = sched::new_scheduler(spec.sched, spec.sched_flags);
        svc.sched.update(&svc.dests);
        sum.dests_added += diff.added;
        sum.dests_restored += diff.restored;
    }

    fn remove_service(&mut self, i: usize, sum: &mut ApplySummary) {
        let svc = &mut self.services[i];
        self.index.remove(&svc.key);
        for d in svc.dests.iter_mut().filter(|d| d.available) {
            d.available = false;
            sum.dests_removed += 1;
        }
        svc.sched.update(&svc.dests);
        sum.services_removed += 1;
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

    // ---- live changes (apply_specs) ----

    use crate::sched::SchedInput;
    use crate::time::Timestamp;

    const VIP: &str = "198.18.0.250";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn rs(n: u8) -> IpAddr {
        ip(&format!("198.18.1.{n}"))
    }

    fn dspec(n: u8, weight: i32) -> DestSpec {
        DestSpec {
            addr: rs(n),
            port: 80,
            fwd: FwdMethod::Route,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            mac: None,
        }
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: ip(VIP),
            port,
        }
    }

    fn sspec(port: u16, sched: SchedKind, dests: &[(u8, i32)]) -> ServiceSpec {
        ServiceSpec {
            key: key(port),
            sched,
            sched_flags: SchedFlags::default(),
            persistence: None,
            persistence_prefix: 32,
            ops: false,
            local_addrs: Vec::new(),
            dests: dests.iter().map(|&(n, w)| dspec(n, w)).collect(),
        }
    }

    fn input(client: &str, sport: u16) -> SchedInput {
        SchedInput {
            src: ip(client),
            sport,
            dst: ip(VIP),
            dport: 80,
            now: Timestamp::from_secs(1),
            rand: 0,
        }
    }

    /// The real server (last octet) the service's scheduler picks next.
    fn pick_in(t: &mut ServiceTable, svc: u32, inp: &SchedInput) -> Option<u8> {
        let s = &mut t.services[svc as usize];
        let i = s.sched.schedule(&s.dests, inp)?;
        assert!(s.dests[i].available, "scheduled an unavailable dest");
        match s.dests[i].addr {
            IpAddr::V4(a) => Some(a.octets()[3]),
            IpAddr::V6(_) => None,
        }
    }

    fn picks(t: &mut ServiceTable, svc: u32, n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| pick_in(t, svc, &input("198.18.100.1", 1000 + i as u16)).unwrap())
            .collect()
    }

    fn idx(t: &ServiceTable, svc: u32, n: u8) -> usize {
        t.services[svc as usize]
            .dests
            .iter()
            .position(|d| d.addr == rs(n))
            .unwrap()
    }

    /// Counters as the conn table would have left them.
    fn load(t: &mut ServiceTable, svc: u32, n: u8, k: u32) {
        let i = idx(t, svc, n);
        let s = &mut t.services[svc as usize];
        let d = &mut s.dests[i];
        d.active_conns = k;
        d.inact_conns = k + 1;
        d.persist_conns = k + 2;
        d.stats.conns = u64::from(k) * 10;
        d.stats.inpkts = u64::from(k) * 100;
        s.stats.conns += u64::from(k) * 10;
    }

    fn counters(d: &Dest) -> (u32, u32, u32, Stats) {
        (d.active_conns, d.inact_conns, d.persist_conns, d.stats)
    }

    #[test]
    fn an_initial_apply_is_from_spec() {
        let specs = [
            sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)]),
            sspec(443, SchedKind::Wlc, &[(4, 1), (5, 2)]),
        ];
        let mut t = ServiceTable::default();
        let sum = t.apply_specs(&specs);
        assert_eq!(sum.services_added, 2);
        assert_eq!(sum.services_updated + sum.dests_added, 0);
        for (i, spec) in specs.iter().enumerate() {
            let direct = Service::from_spec(spec);
            assert_eq!(t.services[i].dests, direct.dests, "head insertion order");
            assert_eq!(t.lookup(&spec.key), Some(i as u32));
        }
        // the kernel's list for "1, 2, 3" added in order is 3, 2, 1
        assert_eq!(picks(&mut t, 0, 4), vec![3, 2, 1, 3]);
        let mut f = ServiceTable::from_specs(&specs);
        assert_eq!(picks(&mut f, 0, 4), vec![3, 2, 1, 3]);
    }

    #[test]
    fn reapplying_the_same_specs_changes_nothing_and_keeps_scheduler_state() {
        let specs = [sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)])];
        let mut t = ServiceTable::from_specs(&specs);
        assert_eq!(picks(&mut t, 0, 2), vec![3, 2]);
        let sum = t.apply_specs(&specs);
        assert!(sum.is_noop(), "{sum:?}");
        // rr's cursor survived: a new instance would start over at 3
        assert_eq!(picks(&mut t, 0, 2), vec![1, 3]);
    }

    #[test]
    fn a_kept_dest_takes_its_settings_and_keeps_counters() {
        let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Wlc, &[(1, 1), (2, 1)])]);
        load(&mut t, 0, 1, 5);
        let i = idx(&t, 0, 1);
        let before = counters(&t.services[0].dests[i]);
        let svc_stats = t.services[0].stats;
        let mut spec = sspec(80, SchedKind::Wlc, &[(1, 7), (2, 1)]);
        spec.dests[0].fwd = FwdMethod::Masq;
        spec.dests[0].u_threshold = 100;
        spec.dests[0].l_threshold = 50;
        spec.dests[0].mac = Some([2, 0, 0, 0, 0, 9]);
        let sum = t.apply_specs(&[spec]);
        assert_eq!(sum.dests_updated, 1);
        assert_eq!(sum.services_updated, 1);
        assert_eq!(sum.dests_added + sum.dests_removed + sum.scheds_replaced, 0);
        assert_eq!(idx(&t, 0, 1), i, "edited in place");
        let d = &t.services[0].dests[i];
        assert_eq!(
            (d.weight, d.fwd, d.u_threshold, d.l_threshold, d.mac),
            (7, FwdMethod::Masq, 100, 50, Some([2, 0, 0, 0, 0, 9]))
        );
        assert_eq!(counters(d), before);
        assert_eq!(t.services[0].stats, svc_stats);
        assert_eq!(t.services[0].dests.len(), 2);
    }

    #[test]
    fn overload_is_cleared_only_when_the_threshold_is_raised_or_removed() {
        let mut d = Dest::from_spec(&DestSpec {
            u_threshold: 10,
            ..dspec(1, 1)
        });
        d.overloaded = true;
        let lower = DestSpec {
            u_threshold: 5,
            ..dspec(1, 1)
        };
        assert!(d.apply_spec(&lower));
        assert!(d.overloaded, "a lower threshold waits for the next bind");
        let higher = DestSpec {
            u_threshold: 6,
            ..dspec(1, 1)
        };
        d.apply_spec(&higher);
        assert!(!d.overloaded);
        d.overloaded = true;
        assert!(!d.apply_spec(&higher), "same settings: no change");
        assert!(d.overloaded, "an unchanged threshold keeps the flag");
        d.apply_spec(&dspec(1, 1));
        assert!(!d.overloaded, "threshold removed");
    }

    #[test]
    fn weight_zero_quiesces_through_the_scheduler_update() {
        let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Wrr, &[(1, 1), (2, 1)])]);
        let all = picks(&mut t, 0, 4);
        assert!(all.contains(&1) && all.contains(&2));
        load(&mut t, 0, 1, 3);
        let sum = t.apply_specs(&[sspec(80, SchedKind::Wrr, &[(1, 0), (2, 1)])]);
        assert_eq!(sum.dests_updated, 1);
        assert_eq!(picks(&mut t, 0, 10), vec![2; 10]);
        let d = &t.services[0].dests[idx(&t, 0, 1)];
        assert!(d.available, "quiesced, not removed");
        assert_eq!(d.active_conns, 3);
    }

    #[test]
    fn a_removed_dest_is_unavailable_unscheduled_and_keeps_counters() {
        let mut t =
            ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)])]);
        load(&mut t, 0, 2, 4);
        let i = idx(&t, 0, 2);
        let before = counters(&t.services[0].dests[i]);
        let sum = t.apply_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (3, 1)])]);
        assert_eq!(sum.dests_removed, 1);
        assert_eq!(sum.services_updated, 1);
        let s = &t.services[0];
        assert_eq!(s.dests.len(), 3, "never removed from the Vec");
        assert!(!s.dests[i].available);
        assert_eq!(s.dests[i].addr, rs(2), "never moved");
        assert_eq!(counters(&s.dests[i]), before);
        assert_eq!(s.find_dest(rs(2), 80), None);
        let p = picks(&mut t, 0, 6);
        assert!(!p.contains(&2), "{p:?}");
        assert!(p.contains(&1) && p.contains(&3));
    }

    #[test]
    fn a_dest_named_again_is_revived_in_place() {
        let specs = [sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)])];
        let mut t = ServiceTable::from_specs(&specs);
        load(&mut t, 0, 2, 6);
        let i = idx(&t, 0, 2);
        let before = counters(&t.services[0].dests[i]);
        t.apply_specs(&[sspec(80, SchedKind::Rr, &[(1, 1)])]);
        let mut back = specs[0].clone();
        back.dests[1].weight = 3;
        let sum = t.apply_specs(&[back]);
        assert_eq!(sum.dests_restored, 1);
        assert_eq!(sum.dests_added, 0);
        let s = &t.services[0];
        assert_eq!(s.dests.len(), 2, "not duplicated");
        assert!(s.dests[i].available);
        assert_eq!(s.dests[i].weight, 3);
        assert_eq!(counters(&s.dests[i]), before, "counters and stats kept");
        assert_eq!(s.find_dest(rs(2), 80), Some(i));
        assert!(picks(&mut t, 0, 4).contains(&2));
    }

    #[test]
    fn new_dests_are_appended_and_scheduled_after_the_old_ones() {
        let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)])]);
        assert_eq!(picks(&mut t, 0, 1), vec![2]);
        let (i1, i2) = (idx(&t, 0, 1), idx(&t, 0, 2));
        let sum = t.apply_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1), (4, 1)])]);
        assert_eq!(sum.dests_added, 2);
        assert_eq!((idx(&t, 0, 1), idx(&t, 0, 2)), (i1, i2), "old refs stay");
        let order: Vec<IpAddr> = t.services[0].dests.iter().map(|d| d.addr).collect();
        // 3 then 4 added: among themselves the kernel's list has 4 first
        assert_eq!(order, vec![rs(2), rs(1), rs(4), rs(3)]);
        // rr's cycle is the kernel's: after 2 comes 1, then the new ones
        // (in the kernel they sit between the tail and the old head)
        assert_eq!(picks(&mut t, 0, 5), vec![1, 4, 3, 2, 1]);
    }

    #[test]
    fn a_scheduler_change_binds_a_new_instance_and_keeps_stats() {
        let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)])]);
        load(&mut t, 0, 2, 2);
        let stats = t.services[0].stats;
        let sum = t.apply_specs(&[sspec(80, SchedKind::Wlc, &[(1, 1), (2, 1)])]);
        assert_eq!(sum.scheds_replaced, 1);
        assert_eq!(sum.services_updated, 1);
        assert_eq!(t.services[0].sched.kind(), SchedKind::Wlc);
        assert_eq!(t.services[0].stats, stats);
        // wlc now sees the loaded server 2 and prefers the idle 1
        assert_eq!(picks(&mut t, 0, 3), vec![1, 1, 1]);
    }

    #[test]
    fn flag_edits_rebind_sh_and_mh_only() {
        let servers: Vec<(u8, i32)> = (1..=8).map(|n| (n, 1)).collect();
        let mut sh = sspec(80, SchedKind::Sh, &servers);
        let mut t = ServiceTable::from_specs(std::slice::from_ref(&sh));
        let spread = |t: &mut ServiceTable| {
            let mut seen: Vec<u8> = (0..64)
                .map(|p| pick_in(t, 0, &input("198.18.100.7", 2000 + p)).unwrap())
                .collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        assert_eq!(
            spread(&mut t),
            1,
            "sh without sh-port: one server per client"
        );
        sh.sched_flags.port = true;
        let sum = t.apply_specs(std::slice::from_ref(&sh));
        assert_eq!(sum.scheds_replaced, 1);
        assert!(t.services[0].sched_flags.port);
        assert!(spread(&mut t) > 1, "sh-port hashes the source port");

        let mut rr = sspec(80, SchedKind::Rr, &[(1, 1), (2, 1), (3, 1)]);
        let mut t = ServiceTable::from_specs(std::slice::from_ref(&rr));
        assert_eq!(picks(&mut t, 0, 1), vec![3]);
        rr.sched_flags.flag3 = true;
        let sum = t.apply_specs(std::slice::from_ref(&rr));
        assert_eq!(sum.scheds_replaced, 0);
        assert_eq!(sum.services_updated, 1);
        assert!(t.services[0].sched_flags.flag3, "listed flags follow");
        assert_eq!(picks(&mut t, 0, 1), vec![2], "rr kept its cursor");
    }

    #[test]
    fn service_settings_are_updated_in_place() {
        let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1)])]);
        t.services[0].stats.inpkts = 42;
        let mut spec = sspec(80, SchedKind::Rr, &[(1, 1)]);
        spec.persistence = Some(Duration::from_secs(300));
        spec.persistence_prefix = 24;
        spec.ops = true;
        spec.local_addrs = vec![ip("198.18.2.1")];
        let sum = t.apply_specs(std::slice::from_ref(&spec));
        assert_eq!(sum.services_updated, 1);
        assert_eq!(sum.scheds_replaced + sum.dests_updated, 0);
        let s = &t.services[0];
        assert_eq!(s.persistence, Some(Duration::from_secs(300)));
        assert_eq!(s.persistence_prefix, 24);
        assert!(s.ops);
        assert_eq!(s.local_addrs, vec![ip("198.18.2.1")]);
        assert_eq!(s.stats.inpkts, 42);
    }

    #[test]
    fn a_removed_service_leaves_the_index_and_keeps_its_slot() {
        let specs = [
            sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)]),
            sspec(443, SchedKind::Rr, &[(3, 1)]),
        ];
        let mut t = ServiceTable::from_specs(&specs);
        load(&mut t, 0, 1, 9);
        let before = counters(&t.services[0].dests[idx(&t, 0, 1)]);
        let sum = t.apply_specs(&specs[1..]);
        assert_eq!(sum.services_removed, 1);
        assert_eq!(sum.dests_removed, 2);
        assert_eq!(t.lookup(&key(80)), None);
        assert!(!t.is_live(0));
        assert!(t.is_live(1));
        assert_eq!(t.lookup(&key(443)), Some(1), "others keep their slot");
        assert_eq!(t.services.len(), 2);
        assert!(t.services[0].dests.iter().all(|d| !d.available));
        assert_eq!(counters(&t.services[0].dests[idx(&t, 0, 1)]), before);
        let live: Vec<u32> = t.live().map(|(i, _)| i).collect();
        assert_eq!(live, vec![1]);
        assert_eq!(pick_in(&mut t, 0, &input("198.18.100.1", 1)), None);
    }

    #[test]
    fn a_service_that_comes_back_reuses_its_slot_and_dests() {
        let specs = [
            sspec(80, SchedKind::Rr, &[(1, 1), (2, 1)]),
            sspec(443, SchedKind::Rr, &[(3, 1)]),
        ];
        let mut t = ServiceTable::from_specs(&specs);
        load(&mut t, 0, 2, 4);
        let i2 = idx(&t, 0, 2);
        t.apply_specs(&specs[1..]);
        let back = [
            sspec(443, SchedKind::Rr, &[(3, 1)]),
            sspec(80, SchedKind::Wlc, &[(2, 5), (7, 1)]),
        ];
        let sum = t.apply_specs(&back);
        assert_eq!(sum.services_restored, 1);
        assert_eq!(sum.services_added, 0);
        assert_eq!((sum.dests_restored, sum.dests_added), (1, 1));
        assert_eq!(t.services.len(), 2, "slot reused");
        assert_eq!(t.lookup(&key(80)), Some(0));
        let s = &t.services[0];
        assert_eq!(s.sched.kind(), SchedKind::Wlc);
        assert_eq!(s.stats, Stats::default(), "a new service's stats");
        let d = &s.dests[i2];
        assert!(d.available);
        assert_eq!(d.weight, 5);
        assert_eq!((d.active_conns, d.inact_conns, d.persist_conns), (4, 5, 6));
        assert_eq!(d.stats, Stats::default(), "stats zeroed on a new service");
        assert!(
            !s.dests[idx(&t, 0, 1)].available,
            "not named: stays removed"
        );
        assert_eq!(s.dests.len(), 3);
        // wlc: 2 carries 4 active conns at weight 5, 7 is idle
        assert_eq!(picks(&mut t, 0, 1), vec![7]);
    }

    #[test]
    fn a_new_service_is_added_to_a_live_table() {
        let mut t = ServiceTable::from_specs(&[sspec(80, SchedKind::Rr, &[(1, 1)])]);
        let sum = t.apply_specs(&[
            sspec(80, SchedKind::Rr, &[(1, 1)]),
            sspec(8080, SchedKind::Rr, &[(5, 1)]),
        ]);
        assert_eq!(sum.services_added, 1);
        assert_eq!(sum.services_updated, 0);
        assert_eq!(t.lookup(&key(8080)), Some(1));
        assert_eq!(picks(&mut t, 1, 1), vec![5]);
    }

    #[test]
    fn duplicates_in_specs_count_once() {
        let mut dup = sspec(80, SchedKind::Rr, &[(1, 1)]);
        let mut t = ServiceTable::from_specs(std::slice::from_ref(&dup));
        dup.dests.push(dspec(2, 1));
        dup.dests.push(dspec(2, 9));
        dup.dests.push(dspec(1, 9));
        let other = sspec(80, SchedKind::Wlc, &[]);
        let sum = t.apply_specs(&[dup, other]);
        assert_eq!(sum.dests_added, 1);
        assert_eq!(sum.scheds_replaced, 0, "second spec for the key ignored");
        let s = &t.services[0];
        assert_eq!(s.dests.len(), 2);
        assert_eq!(s.dests[idx(&t, 0, 2)].weight, 1, "first one wins");
        assert_eq!(s.dests[idx(&t, 0, 1)].weight, 1);
    }
}
