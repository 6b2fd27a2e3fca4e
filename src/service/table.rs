//! The service table: lookup by key, and live changes applied as IPVS
//! applies them (see [`ServiceTable::apply_specs`]).

use rustc_hash::FxHashMap;

use std::net::IpAddr;

use super::{Dest, DestRef, DestSpec, Service, ServiceKey, ServiceSpec, Stats};
use crate::sched::{self, SchedKind};

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
            || svc.local_addrs != spec.local_addrs
            || svc.fwmark_matches != spec.fwmark_matches;
        svc.sched_flags = spec.sched_flags;
        svc.persistence = spec.persistence;
        svc.persistence_prefix = spec.persistence_prefix;
        svc.ops = spec.ops;
        svc.set_local_addrs(&spec.local_addrs);
        svc.fwmark_matches.clone_from(&spec.fwmark_matches);
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
        svc.laddr_conflicts = vec![0; spec.local_addrs.len()];
        svc.fwmark_matches.clone_from(&spec.fwmark_matches);
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
