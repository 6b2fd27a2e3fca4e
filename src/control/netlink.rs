//! The kernel's view of the data-plane NIC, read over rtnetlink: its index,
//! MAC and MTU, its addresses, the neighbour table and route look-ups; and
//! the one change lvsfwd makes: adding and removing VRRP's virtual addresses.
//!
//! Control-plane only (allocates freely, blocks on the socket); the workers
//! never call it. Requests are plain dumps or single gets, answered in full
//! before the function returns.

use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rustc_hash::FxHashMap;

use crate::wire::MacAddr;

/// What the daemon needs to know about its NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u32,
    /// Administratively up and with carrier (IFF_UP and IFF_RUNNING).
    pub up: bool,
}

/// Where the kernel would send a packet to some address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The gateway, or `None` when the destination is on-link.
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    /// The destination is one of this host's own addresses (a `local`
    /// route: delivered to its stack, whatever `oif` says).
    pub local: bool,
    /// The source address the kernel picks for it (`RTA_PREFSRC` of the
    /// answer: the route's preferred source, else an address of `oif`).
    pub src: Option<IpAddr>,
}

/// An rtnetlink socket.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("opening an rtnetlink socket")?;
        sock.bind_auto().context("binding the rtnetlink socket")?;
        sock.connect(&SocketAddr::new(0, 0))
            .context("connecting the rtnetlink socket")?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends `msg` as a new request with `flags` besides NLM_F_REQUEST.
    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        req.header.flags = NLM_F_REQUEST | flags;
        req.header.sequence_number = self.seq;
        req.finalize();
        let mut buf = vec![0u8; req.header.length as usize];
        req.serialize(&mut buf);
        self.sock
            .send(&buf, 0)
            .context("sending an rtnetlink request")?;
        Ok(())
    }

    /// Hands each reply to the last request, in order, to `f` until it
    /// returns a value.
    fn read_until<T>(
        &mut self,
        mut f: impl FnMut(NetlinkPayload<RouteNetlinkMessage>) -> Result<Option<T>>,
    ) -> Result<T> {
        let mut rx: Vec<u8> = Vec::with_capacity(1 << 16);
        loop {
            rx.clear();
            self.sock
                .recv(&mut rx, 0)
                .context("reading an rtnetlink reply")?;
            let mut off = 0;
            while off < rx.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[off..])
                    .context("decoding an rtnetlink reply")?;
                let len = m.header.length as usize;
                if m.header.sequence_number == self.seq
                    && let Some(t) = f(m.payload)?
                {
                    return Ok(t);
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    /// Sends `msg` and collects every reply up to NLMSG_DONE (dumps) or the
    /// first answer (gets).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.send(msg, if dump { NLM_F_DUMP } else { 0 })?;
        let mut out = Vec::new();
        self.read_until(|p| match p {
            NetlinkPayload::Done(_) => Ok(Some(())),
            NetlinkPayload::Error(e) if e.code.is_none() => Ok(Some(())),
            NetlinkPayload::Error(e) => bail!("rtnetlink: {}", e.to_io()),
            NetlinkPayload::InnerMessage(inner) => {
                out.push(inner);
                Ok((!dump).then_some(()))
            }
            _ => Ok(None),
        })?;
        Ok(out)
    }

    /// Sends a change request and waits for the kernel's acknowledgement.
    /// The outer error is a transport failure; the inner one the errno the
    /// kernel refused the change with, for the caller to judge.
    fn change(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<std::result::Result<(), i32>> {
        self.send(msg, NLM_F_ACK | flags)?;
        self.read_until(|p| match p {
            NetlinkPayload::Error(e) => Ok(Some(match e.code {
                None => Ok(()),
                Some(c) => Err(-c.get()),
            })),
            _ => Ok(None),
        })
    }

    fn address_message(ifindex: u32, addr: IpAddr, prefix_len: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = if addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.header.prefix_len = prefix_len;
        m.header.index = ifindex;
        m.header.scope = AddressScope::Universe;
        m.attributes.push(AddressAttribute::Local(addr));
        m.attributes.push(AddressAttribute::Address(addr));
        if addr.is_ipv6() {
            // Usable at once: duplicate address detection would hold a
            // failover for a second or more (keepalived also skips it).
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        m
    }

    /// `ip addr add ADDR/LEN dev IFINDEX` (IPv6 without DAD). Returns false
    /// when the address was already there.
    pub fn add_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<bool> {
        let m = Netlink::address_message(ifindex, addr, prefix_len);
        match self.change(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )? {
            Ok(()) => Ok(true),
            Err(libc::EEXIST) => Ok(false),
            Err(e) => bail!(
                "adding {addr}/{prefix_len}: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }

    /// `ip addr del ADDR/LEN dev IFINDEX`. Returns false when the address
    /// was not there.
    pub fn del_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> Result<bool> {
        let m = Netlink::address_message(ifindex, addr, prefix_len);
        match self.change(RouteNetlinkMessage::DelAddress(m), 0)? {
            Ok(()) => Ok(true),
            Err(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ESRCH) => Ok(false),
            Err(e) => bail!(
                "removing {addr}/{prefix_len}: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }

    /// Index, MAC and MTU of interface `ifname`.
    pub fn link(&mut self, ifname: &str) -> Result<LinkInfo> {
        self.find_link(|l| {
            l.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(n) if n == ifname))
        })?
        .with_context(|| format!("no interface named {ifname}"))
    }

    /// The name of interface `ifindex` (for messages; the index when the
    /// interface is gone).
    pub fn link_name(&mut self, ifindex: u32) -> String {
        match self.find_link(|l| l.header.index == ifindex) {
            Ok(Some(l)) => l.name,
            _ => format!("interface {ifindex}"),
        }
    }

    /// Whether interface `ifindex` is up with carrier (VRRP's FAULT
    /// tracking polls it).
    pub fn link_up(&mut self, ifindex: u32) -> Result<bool> {
        Ok(self
            .find_link(|l| l.header.index == ifindex)?
            .with_context(|| format!("no interface with index {ifindex}"))?
            .up)
    }

    /// The first link `pick` accepts.
    fn find_link(&mut self, pick: impl Fn(&LinkMessage) -> bool) -> Result<Option<LinkInfo>> {
        let replies = self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)?;
        for r in replies {
            let RouteNetlinkMessage::NewLink(l) = r else {
                continue;
            };
            if !pick(&l) {
                continue;
            }
            let mut mac = [0u8; 6];
            let mut mtu = 1500;
            let mut name = String::new();
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name.clone_from(n),
                    LinkAttribute::Address(b) if b.len() == 6 => mac.copy_from_slice(b),
                    LinkAttribute::Mtu(m) => mtu = *m,
                    _ => {}
                }
            }
            return Ok(Some(LinkInfo {
                up: l.header.flags.contains(LinkFlags::Up | LinkFlags::Running),
                ifindex: l.header.index,
                name,
                mac,
                mtu,
            }));
        }
        Ok(None)
    }

    /// The addresses on interface `ifindex`: IPv4 first, then global IPv6,
    /// then link-local IPv6 (the order tunnel sources are picked in).
    pub fn addresses(&mut self, ifindex: u32) -> Result<Vec<IpAddr>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            true,
        )?;
        let mut addrs = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewAddress(a) = r else {
                continue;
            };
            if a.header.index != ifindex {
                continue;
            }
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(ip) = addr {
                addrs.push(ip);
            }
        }
        addrs.sort_by_key(|a| match a {
            IpAddr::V4(_) => 0,
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => 2,
            IpAddr::V6(_) => 1,
        });
        Ok(addrs)
    }

    /// Usable neighbour entries (reachable, stale, delay, probe, permanent)
    /// on interface `ifindex`, IPv4 and IPv6.
    pub fn neighbours(&mut self, ifindex: u32) -> Result<FxHashMap<IpAddr, MacAddr>> {
        let mut map = FxHashMap::default();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut m = NeighbourMessage::default();
            m.header.family = family;
            for r in self.request(RouteNetlinkMessage::GetNeighbour(m), true)? {
                let RouteNetlinkMessage::NewNeighbour(n) = r else {
                    continue;
                };
                if n.header.ifindex != ifindex
                    || !matches!(
                        n.header.state,
                        NeighbourState::Reachable
                            | NeighbourState::Stale
                            | NeighbourState::Delay
                            | NeighbourState::Probe
                            | NeighbourState::Permanent
                    )
                {
                    continue;
                }
                let mut ip = None;
                let mut mac = None;
                for a in &n.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                            ip = Some(IpAddr::V4(*v4))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                            ip = Some(IpAddr::V6(*v6))
                        }
                        NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                            let mut m = [0u8; 6];
                            m.copy_from_slice(b);
                            mac = Some(m);
                        }
                        _ => {}
                    }
                }
                if let (Some(ip), Some(mac)) = (ip, mac) {
                    map.insert(ip, mac);
                }
            }
        }
        Ok(map)
    }

    /// `ip route get DST`.
    pub fn route_get(&mut self, dst: IpAddr) -> Result<Route> {
        let mut m = RouteMessage::default();
        m.header.address_family = if dst.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let replies = self.request(RouteNetlinkMessage::GetRoute(m), false)?;
        for r in replies {
            let RouteNetlinkMessage::NewRoute(rt) = r else {
                continue;
            };
            let mut route = Route {
                gateway: None,
                oif: 0,
                local: rt.header.kind == RouteType::Local,
                src: None,
            };
            for a in &rt.attributes {
                match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => {
                        route.gateway = Some(IpAddr::V4(*g))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                        route.gateway = Some(IpAddr::V6(*g))
                    }
                    RouteAttribute::Oif(o) => route.oif = *o,
                    RouteAttribute::PrefSource(RouteAddress::Inet(s)) => {
                        route.src = Some(IpAddr::V4(*s))
                    }
                    RouteAttribute::PrefSource(RouteAddress::Inet6(s)) => {
                        route.src = Some(IpAddr::V6(*s))
                    }
                    _ => {}
                }
            }
            return Ok(route);
        }
        bail!("no route to {dst}")
    }
}

/// Routes lvsfwd announces through (`[announce]`): a host route of the
/// VIP, type blackhole, in a table of its own with a protocol id of its
/// own, for a routing daemon (BIRD's `kernel` protocol with `learn`) to
/// import and announce. Never in the main table: the director's own
/// forwarding does not change.
impl Netlink {
    fn vip_route(table: u32, protocol: u8, vip: IpAddr, priority: u32) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = if vip.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.header.destination_prefix_length = if vip.is_ipv4() { 32 } else { 128 };
        m.header.table = u8::try_from(table).unwrap_or(0);
        m.header.protocol = protocol.into();
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::BlackHole;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(vip)));
        m.attributes.push(RouteAttribute::Table(table));
        if priority != 0 {
            m.attributes.push(RouteAttribute::Priority(priority));
        }
        m
    }

    /// `ip route replace blackhole VIP/32 table T proto P [metric M]`
    /// (`priority` 0: none given).
    pub fn add_vip_route(
        &mut self,
        table: u32,
        protocol: u8,
        vip: IpAddr,
        priority: u32,
    ) -> Result<()> {
        let m = Netlink::vip_route(table, protocol, vip, priority);
        match self.change(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )? {
            Ok(()) => Ok(()),
            Err(e) => bail!(
                "adding the route of {vip} to table {table}: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }

    /// `ip route del blackhole VIP/32 table T proto P` (any metric).
    /// Returns false when it was not there.
    pub fn del_vip_route(&mut self, table: u32, protocol: u8, vip: IpAddr) -> Result<bool> {
        let m = Netlink::vip_route(table, protocol, vip, 0);
        match self.change(RouteNetlinkMessage::DelRoute(m), 0)? {
            Ok(()) => Ok(true),
            Err(libc::ESRCH | libc::ENOENT) => Ok(false),
            Err(e) => bail!(
                "removing the route of {vip} from table {table}: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }

    /// The host routes of protocol `protocol` in table `table`, both
    /// families (what an earlier run left, or what runs now).
    pub fn vip_routes(&mut self, table: u32, protocol: u8) -> Result<Vec<IpAddr>> {
        let mut out = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut m = RouteMessage::default();
            m.header.address_family = fam;
            let replies = self.request(RouteNetlinkMessage::GetRoute(m), true)?;
            for r in replies {
                let RouteNetlinkMessage::NewRoute(rt) = r else {
                    continue;
                };
                let t = rt
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RouteAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(u32::from(rt.header.table));
                if t != table || u8::from(rt.header.protocol) != protocol {
                    continue;
                }
                let full = if fam == AddressFamily::Inet { 32 } else { 128 };
                if rt.header.destination_prefix_length != full {
                    continue;
                }
                for a in &rt.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => {
                            out.push(IpAddr::V4(*d))
                        }
                        RouteAttribute::Destination(RouteAddress::Inet6(d)) => {
                            out.push(IpAddr::V6(*d))
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the loopback interface of whatever namespace the test runs in:
    /// every namespace has one, with index 1 and 127.0.0.1 or ::1.
    #[test]
    fn reads_loopback() {
        let mut nl = Netlink::open().unwrap();
        let lo = nl.link("lo").unwrap();
        assert_eq!(lo.ifindex, 1);
        assert_eq!(lo.mac, [0; 6]);
        let addrs = nl.addresses(lo.ifindex).unwrap();
        assert!(
            addrs.iter().any(|a| a.is_loopback()),
            "loopback addresses: {addrs:?}"
        );
        let r = nl.route_get("127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(r.gateway, None);
        assert_eq!(r.oif, 1);
        assert!(r.local, "127.0.0.1 is the host's own");
        assert_eq!(nl.link_name(1), "lo");
        assert_eq!(lo.name, "lo");
        assert!(nl.link("lf-no-such-if").is_err());
    }
}
