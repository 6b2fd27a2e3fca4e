//! The data plane's input from the control plane: one immutable
//! [`Snapshot`] of everything a worker takes from outside (next hops, the
//! NIC's MAC and addresses, the service table, timeouts, sysctls), and the
//! one place it is applied ([`Dataplane::apply_snapshot`]).
//!
//! The shell publishes snapshots (`xsk::shared`); a worker compares the
//! generation at each batch boundary and applies a newer one here.

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Dataplane;
use crate::conn::{ConnSysctls, Timeouts};
use crate::service::{ApplySummary, ServiceSpec};
use crate::wire::MacAddr;

/// One consistent view of everything the workers take from the control
/// plane.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases with every publication.
    pub generation: u64,
    /// Next-hop MACs learnt from the kernel's neighbour table, by address.
    pub neighbours: Arc<FxHashMap<IpAddr, MacAddr>>,
    /// The data-plane NIC's own MAC.
    pub own_mac: MacAddr,
    /// The data-plane NIC's own addresses (tunnel sources).
    pub own_addrs: Arc<Vec<IpAddr>>,
    /// The virtual services (lb.toml, reloads, lvsadm), applied by each
    /// worker as a diff when the pointer changes; `None` keeps the table
    /// the workers' data planes were built with.
    pub services: Option<Arc<Vec<ServiceSpec>>>,
    /// Connection timeouts (lb.toml [timeouts], `lvsadm --set`); `None`
    /// keeps the data planes' own.
    pub timeouts: Option<Timeouts>,
    /// IPVS's connection sysctls (lb.toml [global], reloadable); `None`
    /// keeps the data planes' own.
    pub sysctls: Option<ConnSysctls>,
}

impl Dataplane {
    /// Takes everything in `s`: the next-hop map, the NIC's MAC (an all-zero
    /// MAC, published before the NIC's was known, keeps the configured one)
    /// and addresses, the connection sysctls and timeouts, and a new service
    /// table, applied as a diff (established connections keep their real
    /// servers) when its pointer differs from the last one applied. Returns
    /// the diff's summary when the service table was applied. Call at a
    /// batch boundary: it allocates (address list, service diff).
    pub fn apply_snapshot(&mut self, s: &Snapshot) -> Option<ApplySummary> {
        if !Arc::ptr_eq(&self.neighbours, &s.neighbours) {
            self.neighbours = Arc::clone(&s.neighbours);
            self.refresh_next_hops();
        }
        if s.own_mac != [0; 6] {
            self.cfg.own_mac = s.own_mac;
        }
        self.cfg.own_addrs.clone_from(&s.own_addrs);
        if let Some(sc) = s.sysctls {
            self.set_sysctls(sc);
        }
        if let Some(t) = s.timeouts {
            self.set_timeouts(t);
        }
        let services = s.services.as_ref()?;
        if self
            .applied_specs
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, services))
        {
            return None;
        }
        let sum = self.apply_services(services);
        self.applied_specs = Some(Arc::clone(services));
        Some(sum)
    }
}
