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
//! first. [`VipGate`] (in `control::vrrp::helpers`, re-exported here) is
//! the daemon's side: which VIPs are served.
//!
//! This is the I/O shell only: the state machine and every decision that
//! needs no socket, thread, clock or netlink live in `control::vrrp`.
//!
//! Stop ([`VrrpThread::stop`]): a master sends priority 0 and removes its
//! VIPs, `notify` scripts get STOP, and each instance's counters are printed
//! on stderr (`lvsfwd: vrrp NAME: stopped: rx N tx N ... bad_ttl N ...`).
//!
//! Each instance's interface is read every 200 ms: down or without carrier
//! is FAULT (see the machine), up again starts the instance over.
//!
//! Deliberately not done: reloading VRRP instances on SIGHUP (they run as
//! started), IPsec AH.

use std::io::{IoSlice, IoSliceMut, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::socket::{
    self as nsock, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6,
};
use socket2::{Domain, Protocol, Socket, Type};

use super::netlink::Netlink;
use super::script::{self, RunAs};
use super::vrrp::{
    Action, Actions, NotifyState, RxMeta, State, VrrpMachine, VrrpStats, advert_destinations,
    announcements, instance_family, pick_primary, poll_wait_ms, split_ipv4, v6_scope,
};
use crate::config::VrrpInstance;
use crate::time::Timestamp;
use crate::wire::MacAddr;
use crate::wire::vrrp::{Family, MCAST_V4, MCAST_V6, VRRP_TTL};

pub use super::vrrp::{VipGate, active_specs};
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

/// One instance and its sockets.
struct Running {
    m: VrrpMachine,
    ifindex: u32,
    /// The interface's name (logs, metrics).
    ifname: String,
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

/// One instance as metrics and dumps show it, refreshed by the VRRP thread
/// at every turn of its loop.
#[derive(Clone, Debug)]
pub struct VrrpStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub state: State,
    /// The priority the instance advertises.
    pub priority: u8,
    /// The master heard last (address, priority), when not us.
    pub master: Option<(IpAddr, u8)>,
    pub vips: Vec<IpAddr>,
    pub stats: VrrpStats,
}

/// The running VRRP thread.
pub struct VrrpThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    status: Arc<Mutex<Vec<VrrpStatus>>>,
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
        let status = Arc::new(Mutex::new(Vec::new()));
        publish_status(&running, &status);
        let board = Arc::clone(&status);
        let handle = std::thread::Builder::new()
            .name("lvsfwd-vrrp".into())
            .spawn(move || run(running, nl, events, flag, board))
            .context("starting the VRRP thread")?;
        Ok(Some(VrrpThread {
            stop,
            handle,
            status,
        }))
    }

    /// Every instance's state, priority and counters, as of the thread's
    /// last turn (at most [`MAX_WAIT`] old).
    pub fn status(&self) -> Vec<VrrpStatus> {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
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
    let family = instance_family(inst);
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
    let dsts = advert_destinations(inst, family);
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
        ifname: inst.interface.clone(),
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
/// Copies every instance's state to the board metrics and dumps read (a
/// few instances: the copy is cheap, and the lock is never held long).
fn publish_status(running: &[Running], board: &Mutex<Vec<VrrpStatus>>) {
    let now: Vec<VrrpStatus> = running
        .iter()
        .map(|r| VrrpStatus {
            name: r.m.name().to_string(),
            interface: r.ifname.clone(),
            vrid: r.m.vrid(),
            state: r.m.state(),
            priority: r.m.priority(),
            master: r.m.master(),
            vips: r.m.vips().iter().map(|p| p.addr).collect(),
            stats: r.m.stats().clone(),
        })
        .collect();
    match board.lock() {
        Ok(mut b) => *b = now,
        Err(p) => *p.into_inner() = now,
    }
}

fn run(
    mut running: Vec<Running>,
    mut nl: Netlink,
    events: mpsc::Sender<VrrpEvent>,
    stop: Arc<AtomicBool>,
    board: Arc<Mutex<Vec<VrrpStatus>>>,
) {
    let epoch = Instant::now();
    let now = || Timestamp::from_nanos(epoch.elapsed().as_nanos() as u64);
    for r in running.iter_mut() {
        let a = r.m.start(now());
        execute(r, &mut nl, &events, a);
    }
    let mut buf = vec![0u8; 65536];
    let mut last_link_check: Option<Instant> = None;
    let mut warnings = super::ops::ratelimit::RateLimit::default();
    while !stop.load(Ordering::Relaxed) {
        // keepalived tracks each instance's own interface: down (or without
        // carrier) is FAULT, up again starts the instance over.
        if last_link_check.is_none_or(|t| t.elapsed() >= LINK_CHECK) {
            last_link_check = Some(Instant::now());
            for r in running.iter_mut() {
                let up = match nl.link_up(r.ifindex) {
                    Ok(up) => {
                        warnings.clear("interface state");
                        up
                    }
                    Err(e) => {
                        // Every 200 ms while it lasts: rate-limited.
                        warnings.warn("interface state", Instant::now(), || {
                            format!("vrrp {}: state of {}: {e:#}", r.m.name(), r.ifname)
                        });
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
        let next = running.iter().filter_map(|r| r.m.next_deadline()).min();
        let ms = poll_wait_ms(next, now(), MAX_WAIT);
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
        publish_status(&running, &board);
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
fn execute(r: &mut Running, nl: &mut Netlink, events: &mpsc::Sender<VrrpEvent>, a: Actions) {
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
                        log::error!("vrrp {}: on {}: {e:#}", r.m.name(), r.ifname);
                    }
                }
            }
            Action::Announce => announce(r),
            Action::RemoveVips => {
                for p in r.m.vips().to_vec() {
                    if let Err(e) = nl.del_address(r.ifindex, p.addr, p.len) {
                        log::error!("vrrp {}: on {}: {e:#}", r.m.name(), r.ifname);
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
                let to = SockaddrIn6::from(SocketAddrV6::new(d, 0, 0, v6_scope(d, r.ifindex)));
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
    for (vip, frame) in announcements(r.mac, r.m.vips()) {
        for _ in 0..GARP_REPEAT {
            if let Err(e) = r.packet.send(&frame) {
                log::warn!("vrrp {}: announcing {vip}: {e}", r.m.name());
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
