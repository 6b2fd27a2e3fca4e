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
use crate::dest::NextHop;
use crate::service::{ApplySummary, ServiceSpec};
use crate::wire::MacAddr;

/// One consistent view of everything the workers take from the control
/// plane.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases with every publication.
    pub generation: u64,
    /// Next hops of the real servers learnt from the kernel (the NIC of
    /// its route, the MAC from its neighbour table), by address.
    pub neighbours: Arc<FxHashMap<IpAddr, NextHop>>,
    /// Each data-plane NIC's own MAC, by [`NicId`](crate::dest::NicId).
    pub own_macs: Arc<Vec<MacAddr>>,
    /// The director's addresses on its data-plane NICs (tunnel sources).
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
    /// Takes everything in `s`: the next-hop map, the NICs' MACs (an empty
    /// list, published before the NICs were known, keeps the configured
    /// ones) and addresses, the connection sysctls and timeouts, and a new service
    /// table, applied as a diff (established connections keep their real
    /// servers) when its pointer differs from the last one applied. Returns
    /// the diff's summary when the service table was applied. Call at a
    /// batch boundary: it allocates (address list, service diff).
    pub fn apply_snapshot(&mut self, s: &Snapshot) -> Option<ApplySummary> {
        if !Arc::ptr_eq(&self.neighbours, &s.neighbours) {
            self.neighbours = Arc::clone(&s.neighbours);
            self.refresh_next_hops();
        }
        if !s.own_macs.is_empty() {
            self.cfg.own_macs.clone_from(&s.own_macs);
        }
        if self.cfg.own_addrs != *s.own_addrs {
            self.cfg.own_addrs.clone_from(&s.own_addrs);
            self.refresh_local();
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dataplane::DataplaneConfig;
    use crate::dest::{DestSpec, FwdMethod};
    use crate::sched::SchedKind;
    use crate::service::{Protocol, ServiceKey, ServiceTable};

    fn spec(port: u16) -> ServiceSpec {
        let key = ServiceKey {
            proto: Protocol::Tcp,
            addr: "198.18.0.250".parse().unwrap(),
            port,
            fwmark: 0,
        };
        let d = DestSpec::new("198.18.0.11".parse().unwrap(), port, FwdMethod::Route);
        ServiceSpec::new(key, SchedKind::Rr, vec![d])
    }

    #[test]
    fn a_snapshot_applies_its_service_table_once_and_its_settings_every_time() {
        let mut dp = Dataplane::new(
            DataplaneConfig::new(64),
            ServiceTable::from_specs(&[spec(80)]),
        );
        let table = Arc::new(vec![spec(80), spec(443)]);
        let timeouts = Timeouts {
            tcp: Duration::from_secs(7),
            ..Timeouts::default()
        };
        let snap = Snapshot {
            services: Some(Arc::clone(&table)),
            timeouts: Some(timeouts),
            sysctls: Some(ConnSysctls {
                expire_nodest_conn: true,
                ..ConnSysctls::default()
            }),
            ..Snapshot::default()
        };
        let sum = dp.apply_snapshot(&snap).expect("a new table is applied");
        assert_eq!(sum.services_added, 1);
        assert_eq!(dp.services.live().count(), 2);
        assert_eq!(dp.conns.timeouts(), timeouts);
        assert!(dp.conns.sysctls().expire_nodest_conn);

        // The same table again (a snapshot that changed only next hops):
        // no diff is computed.
        assert_eq!(dp.apply_snapshot(&snap), None);
        // No table at all keeps the one applied.
        assert_eq!(dp.apply_snapshot(&Snapshot::default()), None);
        assert_eq!(dp.services.live().count(), 2);

        // A new table is a diff: the removed service leaves the index.
        let next = Snapshot {
            services: Some(Arc::new(vec![spec(443)])),
            ..Snapshot::default()
        };
        assert_eq!(
            dp.apply_snapshot(&next).map(|s| s.services_removed),
            Some(1)
        );
        assert_eq!(dp.services.live().count(), 1);
    }
}
