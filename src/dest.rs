//! A real server ("destination" in IPVS): its forwarding method, weight,
//! thresholds and live counters, and the spec it is built from.
//!
//! Below the schedulers (which pick among [`Dest`]s) and the service table
//! (which owns them); see [`crate::service`] for the invariants the table
//! keeps about them.

use std::net::IpAddr;

use crate::wire::MacAddr;

/// The encapsulation of a TUN real server (`IP_VS_CONN_F_TUNNEL_TYPE_*`,
/// ipvsadm `--tun-type`, keepalived `lvs_method TUN type ...`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunType {
    /// IPIP / IPv6-in-IP: the packet right behind the outer header.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (Linux's fou, GUE version 0) to `port`.
    Gue,
    /// GRE (RFC 2784) carrying the packet's EtherType.
    Gre,
}

impl TunType {
    /// ipvsadm's and keepalived's name.
    pub fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }

    pub fn from_name(s: &str) -> Option<TunType> {
        match s {
            "ipip" => Some(TunType::Ipip),
            "gue" => Some(TunType::Gue),
            "gre" => Some(TunType::Gre),
            _ => None,
        }
    }
}

/// The tunnel checksum option (`IP_VS_TUNNEL_ENCAP_FLAG_*`, ipvsadm
/// `--tun-nocsum|--tun-csum|--tun-remcsum`, keepalived `nocsum|csum|remcsum`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunCsum {
    /// No checksum: GUE's UDP checksum 0, GRE without its checksum field.
    #[default]
    NoCsum,
    /// GUE: UDP checksum; GRE: the C flag and its checksum.
    Csum,
    /// GUE's remote checksum offload. The kernel adds the REMCSUM private
    /// option only to a packet whose checksum is still partial; this data
    /// plane completes every partial checksum before forwarding, so such a
    /// packet never remains and the UDP checksum is set, as the kernel does
    /// for a complete packet under this flag.
    RemCsum,
}

impl TunCsum {
    /// keepalived's word (`tun_flags` in lb.toml).
    pub fn name(self) -> &'static str {
        match self {
            TunCsum::NoCsum => "nocsum",
            TunCsum::Csum => "csum",
            TunCsum::RemCsum => "remcsum",
        }
    }

    pub fn from_name(s: &str) -> Option<TunCsum> {
        match s {
            "nocsum" => Some(TunCsum::NoCsum),
            "csum" => Some(TunCsum::Csum),
            "remcsum" => Some(TunCsum::RemCsum),
            _ => None,
        }
    }
}

/// How a TUN real server's packets are encapsulated (ignored for other
/// methods). Valid combinations, as ipvsadm and keepalived allow them:
/// ipip without port or checksum option, gue with a port (1-65535) and any
/// checksum option, gre without port and without remcsum.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelSpec {
    pub kind: TunType,
    /// GUE's UDP destination port; 0 otherwise.
    pub port: u16,
    pub csum: TunCsum,
}

impl TunnelSpec {
    /// Why this combination is refused (ipvsadm's and keepalived's rules),
    /// or `None` when it is valid.
    pub fn invalid(&self) -> Option<&'static str> {
        match (self.kind, self.port, self.csum) {
            (TunType::Gue, 0, _) => Some("gue tunnels require a port (tun_port)"),
            (TunType::Gue, _, _) => None,
            (_, p, _) if p != 0 => Some("only gue tunnels have a port (tun_port)"),
            (TunType::Ipip, _, TunCsum::NoCsum) => None,
            (TunType::Ipip, _, _) => Some("ipip tunnels do not support a checksum option"),
            (TunType::Gre, _, TunCsum::RemCsum) => {
                Some("gre tunnels do not support the remote checksum option")
            }
            (TunType::Gre, _, _) => None,
        }
    }
}

/// How packets reach a real server (ipvsadm `-m`, `-i`, `-g`, `--fullnat`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FwdMethod {
    /// NAT ("Masq"): destination rewritten to RIP:rport, replies come back.
    Masq,
    /// IP-in-IP tunnel ("Tunnel"); replies go straight to the client.
    Tunnel,
    /// Direct routing ("Route"): only the destination MAC changes.
    Route,
    /// Both addresses rewritten; the client side maps to a local address.
    FullNat,
    /// The real server is the director itself ("Local", IPVS's
    /// `IP_VS_CONN_F_LOCALNODE`): never configured, it replaces the
    /// configured method of a dest whose address is the director's own
    /// ([`is_local_addr`]), as `__ip_vs_update_dest` does; packets go to the
    /// director's own stack untouched (`ip_vs_null_xmit`: the destination
    /// stays VIP:vport, the dest's port is not used).
    Local,
}

impl FwdMethod {
    /// The name ipvsadm prints in its Forward column.
    pub const fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
            FwdMethod::FullNat => "FullNat",
            FwdMethod::Local => "Local",
        }
    }
    /// True when replies from the real server come back through the director.
    pub const fn sees_replies(self) -> bool {
        matches!(self, FwdMethod::Masq | FwdMethod::FullNat)
    }
}

/// Whether `addr` is the director's own, given its addresses `own`: a
/// loopback address (127.0.0.0/8, ::1) or one of `own` (IPVS asks the
/// kernel whether the address is `RTN_LOCAL`). A real server there is
/// served locally ([`FwdMethod::Local`]).
pub fn is_local_addr(addr: IpAddr, own: &[IpAddr]) -> bool {
    addr.is_loopback() || own.contains(&addr)
}

/// IPVS's per-service and per-dest traffic counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.conns += other.conns;
        self.inpkts += other.inpkts;
        self.outpkts += other.outpkts;
        self.inbytes += other.inbytes;
        self.outbytes += other.outbytes;
    }
}

/// A data-plane NIC: its position in lb.toml's `interface` list (0 for a
/// one-armed director).
pub type NicId = u8;

/// Where frames for a real server go: out of which NIC, to which MAC.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub nic: NicId,
    pub mac: MacAddr,
    /// The source address the kernel's route to the server picks (its
    /// preferred source, else an address of the outgoing NIC): a tunnel's
    /// outer source, as IPVS takes it from its route. `None`: unknown (the
    /// director's first address of the family is used).
    pub src: Option<IpAddr>,
}

/// The part of a [`NextHop`] the per-frame path reads: out of which NIC,
/// to which MAC. Seven bytes, so a conn's next hop travels in registers
/// from the lookup to the transmit; the route's source address, which only
/// a tunnel needs, stays beside it in [`Dest::route_src`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Egress {
    pub nic: NicId,
    pub mac: MacAddr,
}

/// A real server of one virtual service, with IPVS's connection counters.
#[derive(Clone, Debug, PartialEq)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    /// The method new connections take: `conf_fwd`, or
    /// [`FwdMethod::Local`] while the address is the director's own (what
    /// IPVS keeps in the dest's `conn_flags`; ipvsadm lists it).
    pub fwd: FwdMethod,
    /// The method as configured (lb.toml `lb_kind`, `lvsadm -g/-i/-m`).
    pub conf_fwd: FwdMethod,
    /// Scheduling weight; 0 quiesces the server (no new connections).
    pub weight: i32,
    /// Upper connection threshold (0 = none): at or above it the server is
    /// marked overloaded.
    pub u_threshold: u32,
    /// Lower threshold: below it an overloaded server is usable again
    /// (0 = use 3/4 of `u_threshold`, as IPVS does).
    pub l_threshold: u32,
    /// Static next-hop MAC; `None` = resolve through the neighbour table.
    pub mac: Option<MacAddr>,
    /// The encapsulation of a TUN dest.
    pub tun: TunnelSpec,
    /// Where frames for this server go: the NIC of the kernel's route to
    /// `addr` and `mac`, else the neighbour table's MAC for it. Kept by the
    /// data plane whenever either changes (`Dataplane::apply_snapshot`,
    /// `Dataplane::apply_services`), so the per-packet path reads it with
    /// the dest instead of hashing the address into the neighbour map.
    pub next_hop: Option<Egress>,
    /// The source address of the kernel's route to `addr` ([`NextHop::src`]):
    /// a tunnel's outer source. Kept with `next_hop`.
    pub route_src: Option<IpAddr>,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    /// `IP_VS_DEST_F_OVERLOAD`.
    pub overloaded: bool,
    /// `IP_VS_DEST_F_AVAILABLE`: false once removed from its service.
    pub available: bool,
    pub stats: Stats,
}

impl Dest {
    pub fn new(addr: IpAddr, port: u16, fwd: FwdMethod, weight: i32) -> Dest {
        Dest {
            addr,
            port,
            fwd,
            conf_fwd: fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            mac: None,
            tun: TunnelSpec::default(),
            next_hop: None,
            route_src: None,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            overloaded: false,
            available: true,
            stats: Stats::default(),
        }
    }

    /// A fresh dest as configured (no connections, no traffic).
    pub fn from_spec(s: &DestSpec) -> Dest {
        let mut d = Dest::new(s.addr, s.port, s.fwd, s.weight);
        d.u_threshold = s.u_threshold;
        d.l_threshold = s.l_threshold;
        d.mac = s.mac;
        d.tun = s.tun;
        d
    }

    /// Takes the configured settings of `s` (same address and port) and
    /// keeps every runtime counter, as `__ip_vs_update_dest` does for an
    /// edited or revived dest. Returns whether a setting changed.
    ///
    /// The overload flag is cleared only when the upper threshold is removed
    /// or raised, like the kernel; a lowered threshold takes effect at the
    /// next connection bound to or unbound from the dest.
    pub fn apply_spec(&mut self, s: &DestSpec) -> bool {
        let changed = self.conf_fwd != s.fwd
            || self.weight != s.weight
            || self.u_threshold != s.u_threshold
            || self.l_threshold != s.l_threshold
            || self.mac != s.mac
            || self.tun != s.tun;
        if s.u_threshold == 0 || s.u_threshold > self.u_threshold {
            self.overloaded = false;
        }
        self.conf_fwd = s.fwd;
        if self.fwd != FwdMethod::Local {
            self.fwd = s.fwd;
        }
        self.weight = s.weight;
        self.u_threshold = s.u_threshold;
        self.l_threshold = s.l_threshold;
        self.mac = s.mac;
        self.tun = s.tun;
        changed
    }

    /// Serves this dest locally ([`FwdMethod::Local`]) or by its configured
    /// method again, as its address is or is no longer the director's.
    /// Connections keep the method they were created with.
    pub fn set_local(&mut self, local: bool) {
        self.fwd = if local {
            FwdMethod::Local
        } else {
            self.conf_fwd
        };
    }

    /// IPVS's `ip_vs_dest_conn_overhead`: active connections weigh 256 times
    /// more than inactive ones.
    pub fn overhead(&self) -> u64 {
        (self.active_conns as u64) * 256 + self.inact_conns as u64
    }

    /// `ip_vs_dest_totalconns`: what the thresholds are compared with
    /// (active + inactive; persistence templates do not count).
    pub fn total_conns(&self) -> u32 {
        self.active_conns + self.inact_conns
    }

    /// Re-evaluates `overloaded` after a counter changed, as IPVS does in
    /// `ip_vs_bind_dest` (upper threshold) and `ip_vs_unbind_dest` (lower).
    pub fn update_overload(&mut self) {
        if self.u_threshold == 0 {
            self.overloaded = false;
            return;
        }
        let total = self.total_conns();
        if total >= self.u_threshold {
            self.overloaded = true;
        } else if self.overloaded {
            let below = if self.l_threshold != 0 {
                total < self.l_threshold
            } else {
                (total as u64) * 4 < (self.u_threshold as u64) * 3
            };
            if below {
                self.overloaded = false;
            }
        }
    }
}

/// A real server as configured (no runtime state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestSpec {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: FwdMethod,
    pub weight: i32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub mac: Option<MacAddr>,
    /// TUN only: the encapsulation (ipip by default).
    pub tun: TunnelSpec,
}

impl DestSpec {
    /// A real server with ipvsadm's defaults: weight 1, no thresholds, next
    /// hop from the neighbour table.
    pub fn new(addr: IpAddr, port: u16, fwd: FwdMethod) -> DestSpec {
        DestSpec {
            addr,
            port,
            fwd,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            mac: None,
            tun: TunnelSpec::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A conn's next hop goes from the lookup to the transmit in one
    /// register (see [`Egress`]): a field that grows it past 8 bytes, or
    /// that takes `Option<Egress>` past 8, fails here.
    #[test]
    fn the_per_frame_next_hop_fits_in_a_register() {
        assert!(size_of::<Egress>() <= 8, "{}", size_of::<Egress>());
        assert!(
            size_of::<Option<Egress>>() <= 8,
            "{}",
            size_of::<Option<Egress>>()
        );
    }
}
