//! The real server behind a two-armed director (tests/rig_two_arm.rs,
//! tests/rig_multiqueue.rs): rs1 on a second NIC of the director, with the
//! addresses of the kernel's IPVS self-test
//! (tools/testing/selftests/net/netfilter/ipvs.sh).

use std::time::Duration;

use super::{IFACE, Rig, python, script};

pub const VIP: &str = "198.18.5.110";
/// rs1's HTTP port (servers.py).
pub const PORT: u16 = 8080;
/// The director's address on the server-side NIC.
pub const DIP: &str = "198.18.1.1";
/// rs1's address on the server-side NIC.
pub const RIP: &str = "198.18.1.2";

/// Wires both ends of the server-side NIC `nic` (a veth pair from the
/// director to rs1, the same name at both ends) and starts rs1's server:
/// - the director: [`DIP`] on `nic`, the [`VIP`] on its lo, its kernel
///   forwarding nothing (every frame to rs1 is lvsfwd's);
/// - rs1: [`RIP`] on `nic`, the VIP on its lo without answering ARP for it
///   (as DR and TUN servers must), reverse-path filtering off (the client's
///   frames and its own replies take other ways than its routes say), and
///   servers.py answering HTTP on [`PORT`] as `rs1`, ready.
///
/// The forwarding method's own wiring (routes, a link down, a tunnel end)
/// is the caller's.
pub fn serving_rs(rig: &Rig, nic: &str) {
    let (d, rs) = (rig.director(), rig.rs(1));
    d.add_addr(nic, &format!("{DIP}/24"));
    d.add_addr("lo", &format!("{VIP}/32"));
    d.sysctl("net.ipv4.ip_forward", "0");
    rs.add_addr(nic, &format!("{RIP}/24"));
    rs.add_addr("lo", &format!("{VIP}/32"));
    rs.arp_quiet_lo();
    for dev in ["all", "default", IFACE, nic] {
        rs.sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0");
    }
    let port = PORT.to_string();
    rig.spawn_ready(
        rs,
        "servers",
        &[
            python(),
            &script("servers.py"),
            "--name",
            "rs1",
            "--http",
            &port,
        ],
        Duration::from_secs(10),
    );
    rs.wait_tcp_listen(PORT, Duration::from_secs(10));
}
