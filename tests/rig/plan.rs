//! The rigs' address plan and the lb.toml written for them.
//!
//! One L2 segment, 198.18.0.0/24 and 2001:2::/64 (the "LAN"):
//!
//! | host       | DR / TUN                      | NAT / FULLNAT                          |
//! |------------|-------------------------------|----------------------------------------|
//! | client     | 198.18.0.100, 2001:2::100     | 198.18.100.2, 2001:2:0:100::2 (own subnet, default via the director) |
//! | peer       | (optional second director, for VRRP) 198.18.0.3, 2001:2::3 | not wired |
//! | director   | DIP 198.18.0.2, 2001:2::2; VIP 198.18.0.250/32, 2001:2::250/128 on its NIC | same, plus 198.18.100.1, 2001:2:0:100::1 (the client's gateway); FULLNAT also LIP 198.18.0.9, 2001:2::9 |
//! | rs n       | 198.18.0.(10+n), 2001:2::(10+n); VIP on lo, arp_ignore=1/arp_announce=2 | same RIPs; NAT: default via the DIP; FULLNAT: no route to the client |
//!
//! Pure functions only: no namespaces needed, so config generation can be
//! tested without root.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

use super::{IFACE, Mode, Role};

/// Address family.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fam {
    V4,
    V6,
}

fn a(s: &str) -> IpAddr {
    s.parse().expect("plan address")
}

pub fn vip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => a("198.18.0.250"),
        Fam::V6 => a("2001:2::250"),
    }
}

/// The director's own address on the segment.
pub fn dip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => a("198.18.0.2"),
        Fam::V6 => a("2001:2::2"),
    }
}

/// The second director's own address (VRRP peer rigs).
pub fn peer_ip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => a("198.18.0.3"),
        Fam::V6 => a("2001:2::3"),
    }
}

/// FULLNAT local address (source of the director's packets to real servers).
pub fn lip(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => a("198.18.0.9"),
        Fam::V6 => a("2001:2::9"),
    }
}

/// Real server `n` (1-based).
pub fn rip(n: usize, f: Fam) -> IpAddr {
    match f {
        Fam::V4 => a(&format!("198.18.0.{}", 10 + n)),
        Fam::V6 => a(&format!("2001:2::{}", 10 + n)),
    }
}

pub fn client(mode: Mode, f: Fam) -> IpAddr {
    match (mode, f) {
        (Mode::Nat | Mode::FullNat, Fam::V4) => a("198.18.100.2"),
        (Mode::Nat | Mode::FullNat, Fam::V6) => a("2001:2:0:100::2"),
        (_, Fam::V4) => a("198.18.0.100"),
        (_, Fam::V6) => a("2001:2::100"),
    }
}

/// The director's address in the client's subnet (NAT, FULLNAT).
pub fn client_gw(f: Fam) -> IpAddr {
    match f {
        Fam::V4 => a("198.18.100.1"),
        Fam::V6 => a("2001:2:0:100::1"),
    }
}

/// The client address a real server sees on a balanced connection.
pub fn seen_client(mode: Mode, f: Fam) -> IpAddr {
    match mode {
        Mode::FullNat => lip(f),
        _ => client(mode, f),
    }
}

/// Prefix length of the host's subnet for `ip`.
pub fn cidr(ip: IpAddr, len: u8) -> String {
    format!("{ip}/{len}")
}

/// Fixed MACs make captures and neighbour tables readable.
pub fn mac(role: Role) -> String {
    match role {
        Role::Client => "02:1f:00:00:00:64".into(),
        Role::Director => "02:1f:00:00:00:02".into(),
        Role::Peer => "02:1f:00:00:00:03".into(),
        Role::Real(n) => format!("02:1f:00:00:01:{n:02x}"),
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One virtual service: VIP of `fam`, `port`, balanced to every real server
/// on the same port.
#[derive(Copy, Clone, Debug)]
pub struct Svc {
    pub proto: Proto,
    pub fam: Fam,
    pub port: u16,
}

impl Svc {
    pub fn tcp(fam: Fam, port: u16) -> Svc {
        Svc {
            proto: Proto::Tcp,
            fam,
            port,
        }
    }
    pub fn udp(fam: Fam, port: u16) -> Svc {
        Svc {
            proto: Proto::Udp,
            fam,
            port,
        }
    }
    pub fn vaddr(&self) -> SocketAddr {
        SocketAddr::new(vip(self.fam), self.port)
    }
}

/// lb.toml for a rig of `mode` with `real_servers` servers: lb_algo rr,
/// weight 1, no `mac` (the daemon resolves next hops), no checkers (always up).
pub fn lb_toml(mode: Mode, real_servers: usize, services: &[Svc], admin_socket: &str) -> String {
    let mut s = format!(
        "# Written by the test rig for a {} rig.\n[global]\ninterface = \"{IFACE}\"\nadmin_socket = \"{admin_socket}\"\n",
        mode.lb_kind()
    );
    for svc in services {
        s += &format!(
            "\n[[virtual_server]]\naddress = \"{}\"\nprotocol = \"{}\"\nlb_algo = \"rr\"\nlb_kind = \"{}\"\n",
            svc.vaddr(),
            match svc.proto {
                Proto::Tcp => "TCP",
                Proto::Udp => "UDP",
            },
            mode.lb_kind()
        );
        if mode == Mode::FullNat {
            s += &format!("local_address = [\"{}\"]\n", lip(svc.fam));
        }
        for n in 1..=real_servers {
            s += &format!(
                "\n  [[virtual_server.real_server]]\n  address = \"{}\"\n  weight = 1\n",
                SocketAddr::new(rip(n, svc.fam), svc.port)
            );
        }
    }
    s
}
