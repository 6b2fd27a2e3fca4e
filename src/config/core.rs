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
            sloppy_tcp: self.global.sloppy_tcp,
            sync: self.global.sync,
            backup_only: self.global.backup_only,
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

/// One seed from the OS (the schedulers' randomness in the daemon; replay
/// and tests keep `DataplaneConfig::seed`'s fixed one).
pub fn os_seed() -> Result<u64, rand::rand_core::OsError> {
    use rand::TryRngCore;
    rand::rngs::OsRng.try_next_u64()
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

#[cfg(test)]
mod sched_seed_tests {
    use std::net::IpAddr;

    use crate::config::parse_str;
    use crate::dataplane::{Dataplane, Verdict};
    use crate::time::Timestamp;
    use crate::wire::FrameBuf;

    /// Which of 8 twos real servers each of 48 SYNs goes to.
    fn picks(dp: &mut Dataplane) -> Vec<IpAddr> {
        for i in 0..48u16 {
            let mut v = Vec::new();
            etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1])
                .ipv4([198, 18, 5, 1], [198, 18, 0, 100], 64)
                .tcp(20_000 + i, 80, 1, 64_000)
                .syn()
                .write(&mut v, &[])
                .unwrap();
            let len = v.len();
            v.resize(len + 64, 0);
            let mut fb = FrameBuf::new(&mut v, 0, len);
            assert_eq!(dp.process(&mut fb, Timestamp::from_secs(1)), Verdict::Tx(0));
        }
        let mut conns: Vec<_> = dp.conns.iter().map(|(_, c)| (c.cport, c.daddr)).collect();
        conns.sort();
        conns.into_iter().map(|(_, d)| d).collect()
    }

    /// The daemon reseeds the schedulers' randomness from the OS: twos
    /// then picks differently from one start to the next, and alike for
    /// the same seed.
    #[test]
    fn reseeding_changes_what_twos_picks() {
        let mut text = String::from(
            "[[virtual_server]]\naddress = \"198.18.0.100:80\"\nlb_algo = \"twos\"\nlb_kind = \"DR\"\n",
        );
        for n in 11..19 {
            text += &format!(
                "[[virtual_server.real_server]]\naddress = \"198.18.1.{n}:80\"\nmac = \"02:00:00:00:00:{n}\"\n"
            );
        }
        let cfg = parse_str(&text, "t.toml").unwrap();
        let run = |seed: Option<u64>| {
            let mut dp = cfg.dataplane(cfg.dataplane_config());
            if let Some(s) = seed {
                dp.reseed_schedulers(s);
            }
            picks(&mut dp)
        };
        assert_eq!(run(None), run(None), "the fixed seed repeats");
        assert_eq!(run(Some(7)), run(Some(7)));
        assert_ne!(run(Some(7)), run(Some(8)));
        assert_ne!(run(None), run(Some(super::os_seed().unwrap())));
    }
}
