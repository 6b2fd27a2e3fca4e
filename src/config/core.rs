//! lb.toml's settings as the core's own input types: the shell builds a
//! data plane from a [`Config`] here, so the core never reads lb.toml.

use super::Config;
use crate::conn::ConnSysctls;
use crate::dataplane::{Dataplane, DataplaneConfig, HashSeeds};
use crate::service::ServiceTable;

impl Config {
    /// The data plane's settings from `[global]` and `[timeouts]`; the NIC's
    /// MAC, addresses and MTU are placeholders the shell fills in. The hash
    /// seeds are [`HashSeeds::FIXED`] (replay, tests): the daemon replaces
    /// them with [`os_hash_seeds`].
    pub fn dataplane_config(&self) -> DataplaneConfig {
        DataplaneConfig {
            timeouts: self.timeouts,
            sysctls: self.sysctls(),
            ..DataplaneConfig::new(self.global.conn_max)
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

/// Hash seeds drawn from the OS (`getrandom(2)`, through rand's `OsRng`):
/// the daemon calls this once at start and hands the same seeds to every
/// worker (they must agree on steering). A fixed seed is public, since the
/// code is, and lets clients precompute tuples that pile into one probe
/// chain of the connection index or onto one worker.
pub fn os_hash_seeds() -> Result<HashSeeds, rand::rand_core::OsError> {
    use rand::TryRngCore;
    let mut os = rand::rngs::OsRng;
    Ok(HashSeeds {
        conn: os.try_next_u64()?,
        steer: os.try_next_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::config::parse_str;
    use crate::conn::{NewFlow, TcpFlags};
    use crate::service::Protocol;
    use crate::time::Timestamp;

    const VIP: [u8; 4] = [198, 18, 0, 100];

    fn config() -> Config {
        parse_str(
            "[global]\nconn_max = 4096\n\n[[virtual_server]]\naddress = \"198.18.0.100:80\"\n\
             protocol = \"TCP\"\nlb_algo = \"rr\"\nlb_kind = \"DR\"\n\
             [[virtual_server.real_server]]\naddress = \"198.18.1.11:80\"\n\
             mac = \"02:00:00:00:00:11\"\n",
            "t.toml",
        )
        .unwrap()
    }

    /// Mean probe distance of looking up `clients` in a data plane built
    /// with `seeds`, after opening a conn for each.
    fn mean_probes(cfg: &Config, seeds: HashSeeds, clients: &[(IpAddr, u16)]) -> f64 {
        let mut dp = cfg.dataplane(DataplaneConfig {
            hash_seeds: seeds,
            ..cfg.dataplane_config()
        });
        let vip = IpAddr::from(VIP);
        for (k, &(caddr, cport)) in clients.iter().enumerate() {
            let f = NewFlow {
                proto: Protocol::Tcp,
                caddr,
                cport,
                vaddr: vip,
                vport: 80,
                client_mac: [2, 0, 0, 0, 0, 1],
                client_nic: 0,
                tcp: Some(TcpFlags::SYN),
            };
            let now = Timestamp::from_secs(1);
            dp.conns
                .schedule(&mut dp.services, 0, &f, 60, now, k as u64)
                .expect("room");
        }
        let total: usize = clients
            .iter()
            .map(|&(c, p)| dp.conns.probes_in(Protocol::Tcp, c, p, vip, 80))
            .sum();
        total as f64 / clients.len() as f64
    }

    /// The daemon's seeds: fresh from the OS on every start, so tuples a
    /// client built to collide under the public fixed seed (here 400 whose
    /// home slot is one of the first two of the 6145) probe like ordinary
    /// clients in a data plane built with them.
    #[test]
    fn os_seeds_are_fresh_and_flatten_a_fixed_seed_flood() {
        let a = os_hash_seeds().unwrap();
        let b = os_hash_seeds().unwrap();
        assert_ne!(a, b, "two draws, two seeds");
        for s in [a, b] {
            assert_ne!(s.conn, HashSeeds::FIXED.conn);
            assert_ne!(s.steer, HashSeeds::FIXED.steer);
            assert_ne!(s.conn, s.steer);
        }
        let cfg = config();
        // What the data plane hashes under when built from this config with
        // the fixed seeds (replay, tests).
        let fixed = cfg.dataplane(cfg.dataplane_config());
        assert_eq!(fixed.hash_seeds(), HashSeeds::FIXED);
        let vip = IpAddr::from(VIP);
        let flood: Vec<(IpAddr, u16)> = (0u32..)
            .map(|i| {
                (
                    IpAddr::from((0x0a00_0000 | (i >> 6)).to_be_bytes()),
                    1024 + (i & 63) as u16,
                )
            })
            .filter(|&(c, p)| fixed.conns.hash_in(Protocol::Tcp, c, p, vip, 80) >> 52 == 0)
            .take(400)
            .collect();
        let ordinary: Vec<(IpAddr, u16)> = (0..400u32)
            .map(|i| {
                (
                    IpAddr::from((0x0b00_0000 | (i >> 6)).to_be_bytes()),
                    1024 + (i & 63) as u16,
                )
            })
            .collect();
        let under_fixed = mean_probes(&cfg, HashSeeds::FIXED, &flood);
        let under_os = mean_probes(&cfg, a, &flood);
        let baseline = mean_probes(&cfg, a, &ordinary);
        assert!(under_fixed > 100.0, "fixed seed: mean {under_fixed}");
        assert!(baseline < 1.5, "ordinary clients: mean {baseline}");
        assert!(
            under_os < baseline + 0.5,
            "OS seed: mean {under_os} vs {baseline}"
        );
    }
}
