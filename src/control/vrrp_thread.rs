//! The VRRP runtime: one thread that runs every configured
//! `[[vrrp_instance]]`'s [`VrrpMachine`] against the network.
//!
//! Per instance it owns a raw IP socket for protocol 112 on the instance's
//! interface (multicast group 224.0.0.18 / ff02::12 joined, or unicast to
//! `unicast_peer`), sends adverts with TTL / hop limit 255 and the primary
//! address as source (IP_PKTINFO / IPV6_PKTINFO), reads the received TTL
//! from the IPv4 header the raw socket hands over and the IPv6 hop limit and
//! destination from ancillary data. Becoming master adds the virtual
//! addresses over rtnetlink and announces them (gratuitous ARP / unsolicited
//! NA over a packet socket, 5 times like keepalived's default
//! `vrrp_garp_master_repeat`); becoming backup removes them. Notify scripts
//! run as argument vectors (never through a shell) and are not waited for,
//! except STOP ones at shutdown (up to 1 s, as keepalived allows them).
//!
//! The daemon hears of every change through a channel ([`VrrpEvent`]).
//! Order matters for the data plane: on becoming master the thread reports
//! first and waits (bounded) for the daemon to open the XDP filter for the
//! VIPs, then adds and announces them; on becoming backup it removes them
//! first. [`VipGate`] is the daemon's side: which VIPs are served.
//!
//! Stop ([`VrrpThread::stop`]): a master sends priority 0 and removes its
//! VIPs, `notify` scripts get STOP, and each instance's counters are printed
//! on stderr (`lvsfwd: vrrp NAME: stopped: rx N tx N ... bad_ttl N ...`).
//!
//! Deliberately not done: interface tracking (no FAULT state), reloading
//! VRRP instances on SIGHUP (they run as started), IPsec AH.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IoSlice, IoSliceMut, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::socket::{
    self as nsock, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
};
use socket2::{Domain, Protocol, Socket, Type};

use super::netlink::Netlink;
use super::script::{self, RunAs};
use super::vrrp::{Action, NotifyState, RxMeta, VrrpMachine};
use crate::config::VrrpInstance;
use crate::service::ServiceSpec;
use crate::time::Timestamp;
use crate::wire::MacAddr;
use crate::wire::announce;
use crate::wire::vrrp::{Family, IPPROTO_VRRP, MCAST_V4, MCAST_V6, VRRP_TTL};
use crate::xsk::packet::PacketSender;

/// Announcements per VIP on becoming master (keepalived's default).
const GARP_REPEAT: usize = 5;
/// Longest sleep of the thread: how quickly it notices a stop request.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// How often each instance's interface state is read (FAULT tracking).
const LINK_CHECK: Duration = Duration::from_millis(200);
/// How long a new master waits for the daemon to open the data plane.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a stopping instance waits for its STOP notify scripts.
const STOP_SCRIPT_WAIT: Duration = Duration::from_secs(1);
/// IP type of service of adverts: internetwork control (keepalived's).
const TOS_INTERNETWORK_CONTROL: u32 = 0xc0;

/// A state change of one instance, for the daemon.
#[derive(Debug)]
pub struct VrrpEvent {
    pub instance: String,
    /// Whether the instance is now master (serves its VIPs).
    pub master: bool,
    /// Answer once the data plane follows the change.
    pub ack: Option<mpsc::Sender<()>>,
}

/// Which virtual addresses the data plane may serve: those of instances
/// that are master; a VIP no running instance is master of is inactive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VipGate {
    instances: BTreeMap<String, (Vec<IpAddr>, bool)>,
}

impl VipGate {
    /// Every instance starts as not master.
    pub fn new(instances: &[VrrpInstance]) -> VipGate {
        VipGate {
            instances: instances
                .iter()
                .map(|i| {
                    (
                        i.name.clone(),
                        (i.virtual_ipaddress.iter().map(|p| p.addr).collect(), false),
                    )
                })
                .collect(),
        }
    }

    /// Records `instance`'s state; true when that changes what is served.
    pub fn set(&mut self, instance: &str, master: bool) -> bool {
        let before = self.inactive();
        if let Some(e) = self.instances.get_mut(instance) {
            e.1 = master;
        }
        self.inactive() != before
    }

    /// VIPs of VRRP instances that no master instance covers.
    pub fn inactive(&self) -> BTreeSet<IpAddr> {
        let active: BTreeSet<IpAddr> = self
            .instances
            .values()
            .filter(|(_, m)| *m)
            .flat_map(|(v, _)| v.iter().copied())
            .collect();
        self.instances
            .values()
            .flat_map(|(v, _)| v.iter().copied())
            .filter(|a| !active.contains(a))
            .collect()
    }
}

/// The services the XDP program may redirect: those whose address is not
/// an inactive VIP.
pub fn active_specs(specs: &[ServiceSpec], inactive: &BTreeSet<IpAddr>) -> Vec<ServiceSpec> {
    specs
        .iter()
        .filter(|s| !inactive.contains(&s.key.addr))
        .cloned()
        .collect()
}

/// The election address of an instance on an interface with `addrs`: its
/// first IPv4 address that is not one of the instance's VIPs, or for IPv6
/// its first link-local address (RFC 5798 section 5.1.2.2).
pub fn pick_primary(addrs: &[IpAddr], family: Family, vips: &[IpAddr]) -> Option<IpAddr> {
    addrs.iter().copied().find(|a| match (family, a) {
        (Family::V4, IpAddr::V4(_)) => !vips.contains(a),
        (Family::V6, IpAddr::V6(v6)) => v6.segments()[0] & 0xffc0 == 0xfe80,
        _ => false,
    })
}

/// Splits what a raw IPv4 socket returns into the header's facts and where
/// the VRRP message lies (bounded by the header's total length). `None` for
/// bytes that are not a well-formed IPv4 header of protocol 112.
pub fn split_ipv4(datagram: &[u8]) -> Option<(RxMeta, std::ops::Range<usize>)> {
    let h = etherparse::Ipv4HeaderSlice::from_slice(datagram).ok()?;
    if h.protocol().0 != IPPROTO_VRRP {
        return None;
    }
    let start = h.slice().len();
    let end = (h.total_len() as usize).min(datagram.len());
    if end < start {
        return None;
    }
    Some((
        RxMeta {
            src: IpAddr::V4(h.source_addr()),
            dst: IpAddr::V4(h.destination_addr()),
            ttl: Some(h.ttl()),
        },
        start..end,
    ))
}

/// One instance and its sockets.
struct Running {
    m: VrrpMachine,
    ifindex: u32,
    mac: MacAddr,
    sock: Socket,
    packet: PacketSender,
    /// Where adverts go: the group, or every unicast peer.
    dsts: Vec<IpAddr>,
    /// Whom notify scripts run as (`script_user`; `None`: root).
    run_as: Option<RunAs>,
    /// The interface's state at the last check (FAULT tracking).
    link_up: bool,
}

/// The running VRRP thread.
pub struct VrrpThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl VrrpThread {
    /// Opens every instance's sockets (errors come back here, before any
    /// thread runs) and starts the thread; notify scripts run as `run_as`
    /// (see [`crate::control::script`]). `None` when there is no instance.
    pub fn start(
        instances: &[VrrpInstance],
        events: mpsc::Sender<VrrpEvent>,
        run_as: Option<RunAs>,
    ) -> Result<Option<VrrpThread>> {
        if instances.is_empty() {
            return Ok(None);
        }
        let mut nl = Netlink::open()?;
        let mut running = Vec::new();
        for inst in instances {
            let mut r = open_instance(&mut nl, inst)?;
            r.run_as = run_as;
            running.push(r);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("lvsfwd-vrrp".into())
            .spawn(move || run(running, nl, events, flag))
            .context("starting the VRRP thread")?;
        Ok(Some(VrrpThread { stop, handle }))
    }

    /// Shuts every instance down (priority 0 from a master, VIPs removed)
    /// and joins the thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.handle.join().is_err() {
            log::error!("the VRRP thread panicked");
        }
    }
}

fn open_instance(nl: &mut Netlink, inst: &VrrpInstance) -> Result<Running> {
    let link = nl
        .link(&inst.interface)
        .with_context(|| format!("vrrp_instance {}: interface", inst.name))?;
    let vips: Vec<IpAddr> = inst.virtual_ipaddress.iter().map(|p| p.addr).collect();
    let family = vips
        .first()
        .or(inst.unicast_src_ip.as_ref())
        .map_or(Family::V4, Family::of);
    let primary = match inst.unicast_src_ip {
        Some(a) => a,
        None => pick_primary(&nl.addresses(link.ifindex)?, family, &vips).ok_or_else(|| {
            anyhow!(
                "vrrp_instance {}: interface {} has no {} to advertise from",
                inst.name,
                inst.interface,
                match family {
                    Family::V4 => "IPv4 address",
                    Family::V6 => "IPv6 link-local address",
                }
            )
        })?,
    };
    let m = VrrpMachine::new(inst, primary)?;
    let unicast = !inst.unicast_peer.is_empty();
    let ctx = || {
        format!(
            "vrrp_instance {}: VRRP socket on {}",
            inst.name, inst.interface
        )
    };
    let sock = match family {
        Family::V4 => Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))),
        Family::V6 => Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112))),
    }
    .with_context(ctx)?;
    sock.bind_device(Some(inst.interface.as_bytes()))
        .with_context(ctx)?;
    sock.set_nonblocking(true).with_context(ctx)?;
    match family {
        Family::V4 => {
            let IpAddr::V4(p4) = primary else {
                bail!("vrrp_instance {}: primary {primary} is not IPv4", inst.name);
            };
            sock.set_multicast_if_v4(&p4).with_context(ctx)?;
            sock.set_multicast_ttl_v4(VRRP_TTL as u32)
                .with_context(ctx)?;
            sock.set_multicast_loop_v4(false).with_context(ctx)?;
            sock.set_ttl_v4(VRRP_TTL as u32).with_context(ctx)?;
            sock.set_tos_v4(TOS_INTERNETWORK_CONTROL)
                .with_context(ctx)?;
            if !unicast {
                sock.join_multicast_v4_n(
                    &MCAST_V4,
                    &socket2::InterfaceIndexOrAddress::Index(link.ifindex),
                )
                .with_context(ctx)?;
            }
        }
        Family::V6 => {
            sock.set_multicast_if_v6(link.ifindex).with_context(ctx)?;
            sock.set_multicast_hops_v6(VRRP_TTL as u32)
                .with_context(ctx)?;
            sock.set_multicast_loop_v6(false).with_context(ctx)?;
            sock.set_unicast_hops_v6(VRRP_TTL as u32)
                .with_context(ctx)?;
            sock.set_recv_hoplimit_v6(true).with_context(ctx)?;
            nsock::setsockopt(&sock, nsock::sockopt::Ipv6RecvPacketInfo, &true)
                .map_err(std::io::Error::from)
                .with_context(ctx)?;
            if !unicast {
                sock.join_multicast_v6(&MCAST_V6, link.ifindex)
                    .with_context(ctx)?;
            }
        }
    }
    let packet = PacketSender::open(link.ifindex)
        .with_context(|| format!("vrrp_instance {}: packet socket", inst.name))?;
    let dsts = if unicast {
        inst.unicast_peer.clone()
    } else {
        vec![match family {
            Family::V4 => IpAddr::V4(MCAST_V4),
            Family::V6 => IpAddr::V6(MCAST_V6),
        }]
    };
    log::info!(
        "vrrp {}: VRID {} priority {} v{} on {} from {primary}, {}",
        inst.name,
        inst.virtual_router_id,
        inst.priority,
        m.version().number(),
        inst.interface,
        if unicast { "unicast" } else { "multicast" }
    );
    Ok(Running {
        m,
        ifindex: link.ifindex,
        mac: link.mac,
        sock,
        packet,
        dsts,
        run_as: None,
        // Checked at once by the thread: a link down at start is FAULT.
        link_up: true,
    })
}

/// The thread's body: start, then timers and adverts until the stop flag.
fn run(
    mut running: Vec<Running>,
    mut nl: Netlink,
    events: mpsc::Sender<VrrpEvent>,
    stop: Arc<AtomicBool>,
) {
    let epoch = Instant::now();
    let now = || Timestamp::from_nanos(epoch.elapsed().as_nanos() as u64);
    for r in running.iter_mut() {
        let a = r.m.start(now());
        execute(r, &mut nl, &events, a);
    }
    let mut buf = vec![0u8; 65536];
    let mut last_link_check: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        // keepalived tracks each instance's own interface: down (or without
        // carrier) is FAULT, up again starts the instance over.
        if last_link_check.is_none_or(|t| t.elapsed() >= LINK_CHECK) {
            last_link_check = Some(Instant::now());
            for r in running.iter_mut() {
                let up = match nl.link_up(r.ifindex) {
                    Ok(up) => up,
                    Err(e) => {
                        log::warn!("vrrp {}: interface state: {e:#}", r.m.name());
                        false
                    }
                };
                if up != r.link_up {
                    r.link_up = up;
                    let a = if up {
                        r.m.link_up(now())
                    } else {
                        r.m.link_down(now())
                    };
                    execute(r, &mut nl, &events, a);
                }
            }
        }
        let t = now();
        let wait = running
            .iter()
            .filter_map(|r| r.m.next_deadline())
            .min()
            .map_or(MAX_WAIT, |d| d.since(t).min(MAX_WAIT));
        let ms = wait.as_millis().clamp(1, MAX_WAIT.as_millis()) as u16;
        let readable: Vec<bool> = {
            let mut fds: Vec<nix::poll::PollFd> = running
                .iter()
                .map(|r| nix::poll::PollFd::new(r.sock.as_fd(), nix::poll::PollFlags::POLLIN))
                .collect();
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().is_some_and(|e| !e.is_empty()))
                    .collect(),
                Err(nix::errno::Errno::EINTR) => vec![false; running.len()],
                Err(e) => {
                    log::error!("vrrp: poll: {e}");
                    std::thread::sleep(MAX_WAIT);
                    vec![false; running.len()]
                }
            }
        };
        for (i, r) in running.iter_mut().enumerate() {
            if readable.get(i) == Some(&true) {
                // Bounded: a flood cannot keep the timers from running.
                for _ in 0..64 {
                    match receive(r, &mut buf) {
                        Ok(Some((rx, range))) => {
                            let payload = buf.get(range).unwrap_or(&[]);
                            let a = r.m.on_advert(now(), rx, payload);
                            execute(r, &mut nl, &events, a);
                        }
                        Ok(None) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            log::warn!("vrrp {}: receiving: {e}", r.m.name());
                            break;
                        }
                    }
                }
            }
            let a = r.m.on_timer(now());
            execute(r, &mut nl, &events, a);
        }
    }
    for r in running.iter_mut() {
        let a = r.m.shutdown(now());
        execute(r, &mut nl, &events, a);
        eprintln!(
            "lvsfwd: vrrp {}: stopped: {}",
            r.m.name(),
            r.m.stats().summary()
        );
    }
}

/// Reads one datagram; `Ok(None)` for one that is not VRRP at all.
fn receive(
    r: &Running,
    buf: &mut [u8],
) -> std::io::Result<Option<(RxMeta, std::ops::Range<usize>)>> {
    match r.m.family() {
        Family::V4 => {
            let n = (&r.sock).read(buf)?;
            Ok(split_ipv4(buf.get(..n).unwrap_or(&[])))
        }
        Family::V6 => {
            let mut cmsg = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
            let mut iov = [IoSliceMut::new(buf)];
            let msg = nsock::recvmsg::<SockaddrIn6>(
                r.sock.as_raw_fd(),
                &mut iov,
                Some(cmsg.as_mut_slice()),
                MsgFlags::MSG_DONTWAIT,
            )
            .map_err(std::io::Error::from)?;
            let n = msg.bytes;
            let Some(src) = msg.address.map(|a| IpAddr::V6(a.ip())) else {
                return Ok(None);
            };
            let mut ttl = None;
            let mut dst = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
                        ControlMessageOwned::Ipv6PacketInfo(info) => {
                            dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)))
                        }
                        _ => {}
                    }
                }
            }
            // Without the destination the checksum cannot be verified; the
            // socket option asks for it on every datagram.
            let Some(dst) = dst else {
                return Ok(None);
            };
            Ok(Some((RxMeta { src, dst, ttl }, 0..n)))
        }
    }
}

/// Carries out a machine's actions, in order.
fn execute(
    r: &mut Running,
    nl: &mut Netlink,
    events: &mpsc::Sender<VrrpEvent>,
    a: super::vrrp::Actions,
) {
    for line in &a.log {
        log::info!("vrrp {}: {line}", r.m.name());
    }
    for step in a.steps {
        match step {
            Action::Advertise { priority } => send_advert(r, priority),
            Action::AddVips => {
                // The data plane first, then the address and the world.
                let (tx, rx) = mpsc::channel();
                let _ = events.send(VrrpEvent {
                    instance: r.m.name().to_string(),
                    master: true,
                    ack: Some(tx),
                });
                if rx.recv_timeout(ACK_TIMEOUT).is_err() {
                    log::warn!(
                        "vrrp {}: the data plane did not confirm within {ACK_TIMEOUT:?}",
                        r.m.name()
                    );
                }
                for p in r.m.vips().to_vec() {
                    if let Err(e) = nl.add_address(r.ifindex, p.addr, p.len) {
                        log::error!("vrrp {}: {e:#}", r.m.name());
                    }
                }
            }
            Action::Announce => announce(r),
            Action::RemoveVips => {
                for p in r.m.vips().to_vec() {
                    if let Err(e) = nl.del_address(r.ifindex, p.addr, p.len) {
                        log::error!("vrrp {}: {e:#}", r.m.name());
                    }
                }
            }
            Action::Notify(state) => {
                if state != NotifyState::Master {
                    let _ = events.send(VrrpEvent {
                        instance: r.m.name().to_string(),
                        master: false,
                        ack: None,
                    });
                }
                for argv in r.m.notify_commands(state) {
                    let reaper = run_script(r.m.name(), &argv, r.run_as);
                    // keepalived gives STOP scripts a second before it exits.
                    if state == NotifyState::Stop
                        && let Some(h) = reaper
                    {
                        let t0 = Instant::now();
                        while !h.is_finished() && t0.elapsed() < STOP_SCRIPT_WAIT {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            }
        }
    }
}

fn send_advert(r: &Running, priority: u8) {
    let repr = r.m.advert(priority);
    let src = r.m.primary();
    for &dst in &r.dsts {
        let bytes = match repr.to_bytes(src, dst) {
            Ok(b) => b,
            Err(e) => {
                log::error!("vrrp {}: cannot build an advert: {e:?}", r.m.name());
                return;
            }
        };
        let iov = [IoSlice::new(&bytes)];
        let fd = r.sock.as_raw_fd();
        let sent = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: r.ifindex as libc::c_int,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(s.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let to = SockaddrIn::from(SocketAddrV4::new(d, 0));
                nsock::sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: r.ifindex,
                };
                let scope = if d.is_unicast_link_local() || d.is_multicast() {
                    r.ifindex
                } else {
                    0
                };
                let to = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, scope));
                nsock::sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )
            }
            _ => Err(nix::errno::Errno::EAFNOSUPPORT),
        };
        if let Err(e) = sent {
            log::warn!("vrrp {}: sending an advert to {dst}: {e}", r.m.name());
        }
    }
}

fn announce(r: &Running) {
    for p in r.m.vips() {
        let frame: Vec<u8> = match p.addr {
            IpAddr::V4(a) => announce::garp(r.mac, a).to_vec(),
            IpAddr::V6(a) => announce::unsolicited_na(r.mac, a).to_vec(),
        };
        for _ in 0..GARP_REPEAT {
            if let Err(e) = r.packet.send(&frame) {
                log::warn!("vrrp {}: announcing {}: {e}", r.m.name(), p.addr);
                break;
            }
        }
    }
}

/// Starts a notify script; a thread reaps it so no zombie is left. Returns
/// that thread, which ends with the script.
fn run_script(instance: &str, argv: &[String], run_as: Option<RunAs>) -> Option<JoinHandle<()>> {
    match script::command(argv, run_as)?.spawn() {
        Ok(mut child) => std::thread::Builder::new()
            .name("lvsfwd-notify".into())
            .spawn(move || {
                let _ = child.wait();
            })
            .ok(),
        Err(e) => {
            log::error!("vrrp {instance}: cannot run {argv:?}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IpPrefix, VrrpAuth, VrrpState, VrrpVersion};
    use crate::sched::{SchedFlags, SchedKind};
    use crate::service::{Protocol as L4, ServiceKey};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn inst(name: &str, vips: &[&str]) -> VrrpInstance {
        VrrpInstance {
            name: name.into(),
            state: VrrpState::Backup,
            interface: "lfeth0".into(),
            virtual_router_id: 51,
            priority: 100,
            advert_int: Duration::from_secs(1),
            version: VrrpVersion::V2,
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            auth: Some(VrrpAuth::Pass("x".into())),
            virtual_ipaddress: vips
                .iter()
                .map(|v| IpPrefix {
                    addr: ip(v),
                    len: 32,
                })
                .collect(),
            unicast_src_ip: None,
            unicast_peer: vec![],
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify: None,
        }
    }

    #[test]
    fn gate_serves_only_vips_of_master_instances() {
        let mut g = VipGate::new(&[
            inst("A", &["198.18.0.250", "198.18.0.251"]),
            inst("B", &["198.18.0.251", "198.18.0.252"]),
        ]);
        let set = |v: &[&str]| v.iter().map(|s| ip(s)).collect::<BTreeSet<_>>();
        assert_eq!(
            g.inactive(),
            set(&["198.18.0.250", "198.18.0.251", "198.18.0.252"])
        );
        assert!(g.set("A", true));
        assert_eq!(g.inactive(), set(&["198.18.0.252"]));
        // B master too: .251 is served by both; nothing changes for A's.
        assert!(g.set("B", true));
        assert!(g.inactive().is_empty());
        assert!(!g.set("B", true));
        assert!(g.set("A", false));
        assert_eq!(g.inactive(), set(&["198.18.0.250"]));
        // Unknown names change nothing.
        assert!(!g.set("C", true));
    }

    fn spec(addr: &str, port: u16) -> ServiceSpec {
        ServiceSpec {
            key: ServiceKey {
                proto: L4::Tcp,
                addr: ip(addr),
                port,
            },
            sched: SchedKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            persistence_prefix: 32,
            ops: false,
            local_addrs: vec![],
            dests: vec![],
        }
    }

    #[test]
    fn active_specs_drop_services_on_inactive_vips() {
        let specs = vec![
            spec("198.18.0.250", 80),
            spec("198.18.0.250", 443),
            spec("198.18.0.9", 80),
        ];
        let inactive: BTreeSet<IpAddr> = [ip("198.18.0.250")].into();
        let got = active_specs(&specs, &inactive);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key.addr, ip("198.18.0.9"));
        assert_eq!(active_specs(&specs, &BTreeSet::new()), specs);
    }

    #[test]
    fn primary_is_the_first_non_vip_ipv4_or_the_link_local() {
        let addrs = [
            ip("198.18.0.250"),
            ip("198.18.0.2"),
            ip("2001:2::2"),
            ip("fe80::1"),
        ];
        let vips = [ip("198.18.0.250")];
        assert_eq!(
            pick_primary(&addrs, Family::V4, &vips),
            Some(ip("198.18.0.2"))
        );
        assert_eq!(pick_primary(&addrs, Family::V6, &[]), Some(ip("fe80::1")));
        assert_eq!(pick_primary(&addrs[..3], Family::V6, &[]), None);
        assert_eq!(pick_primary(&addrs[..1], Family::V4, &vips), None);
    }

    #[test]
    fn splits_a_raw_ipv4_datagram() {
        // keepalived's advert as a raw socket returns it (IP header
        // included), TTL 255, tot_len 40.
        let d: [u8; 40] = [
            0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x14, 0x7d, 0xc6, 0x12,
            0x00, 0x03, 0xe0, 0x00, 0x00, 0x12, // IPv4
            0x21, 0x33, 0x64, 0x01, 0x01, 0x01, 0x50, 0x5b, 0xc6, 0x12, 0x00, 0xfa, 0x31, 0x31,
            0x31, 0x31, 0x00, 0x00, 0x00, 0x00,
        ];
        let (rx, payload) = split_ipv4(&d).unwrap();
        assert_eq!(rx.src, ip("198.18.0.3"));
        assert_eq!(rx.dst, ip("224.0.0.18"));
        assert_eq!(rx.ttl, Some(255));
        assert_eq!(payload, 20..40);
        // Link padding after tot_len is cut off.
        let mut padded = d.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(split_ipv4(&padded).unwrap().1, 20..40);
        // Options: the message starts after them (IHL 6, tot_len 44).
        let mut opt = d[..20].to_vec();
        opt[0] = 0x46;
        opt[3] = 44;
        opt.extend_from_slice(&[1, 1, 1, 0]);
        opt.extend_from_slice(&d[20..]);
        assert_eq!(split_ipv4(&opt).unwrap().1, 24..44);
        // Not VRRP, or not IPv4 at all.
        let mut tcp = d;
        tcp[9] = 6;
        assert!(split_ipv4(&tcp).is_none());
        assert!(split_ipv4(&d[..19]).is_none());
    }
}
