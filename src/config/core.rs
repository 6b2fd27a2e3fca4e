//! lb.toml's settings as the core's own input types: the shell builds a
//! data plane from a [`Config`] here, so the core never reads lb.toml.

use super::Config;
use crate::conn::ConnSysctls;
use crate::dataplane::{Dataplane, DataplaneConfig};
use crate::service::ServiceTable;

impl Config {
    /// The data plane's settings from `[global]` and `[timeouts]`; the NIC's
    /// MAC, addresses and MTU are placeholders the shell fills in.
    pub fn dataplane_config(&self) -> DataplaneConfig {
        DataplaneConfig {
            own_mac: [0x02, 0, 0, 0, 0, 1],
            own_addrs: Vec::new(),
            mtu: 1500,
            conn_max: self.global.conn_max,
            timeouts: self.timeouts,
            sysctls: self.sysctls(),
            seed: 0x6c76_7366_7764,
        }
    }

    /// IPVS's connection sysctls from `[global]`.
    pub fn sysctls(&self) -> ConnSysctls {
        ConnSysctls {
            expire_nodest_conn: self.global.expire_nodest_conn,
            expire_quiescent_template: self.global.expire_quiescent_template,
            drop_entry: self.global.drop_entry,
            ..ConnSysctls::default()
        }
    }

    /// A data plane with this file's services.
    pub fn dataplane(&self, dp: DataplaneConfig) -> Dataplane {
        Dataplane::new(dp, ServiceTable::from_specs(&self.service_specs()))
    }
}
