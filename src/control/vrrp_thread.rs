//! The VRRP runtime: one thread that runs every configured
//! `[[vrrp_instance]]`'s [`VrrpMachine`] against the network.
//!
//! Per instance it owns a raw IP socket for protocol 112 on the instance's
//! interface (multicast group joined: `[global] vrrp_mcast_group4` /
//! `vrrp_mcast_group6`, default 224.0.0.18 / ff02::12, adverts sent to it;
//! or unicast to `unicast_peer`), sends adverts with TTL / hop limit 255 and the primary
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
//! Tracking (keepalived's vrrp_script, track_script, track_interface,
//! vrrp_sync_group; the rules are in `control::vrrp::track`): this thread
//! runs every tracked `[[vrrp_script]]` every `interval` as its user
//! (never through a shell, never on a worker), kills a run that outlives
//! `timeout` (SIGTERM to its process group, SIGKILL 2 s later, as
//! keepalived) and counts it as a failure; tracked interfaces are read
//! with the instance's own, every 200 ms, over rtnetlink. After every
//! change it applies the verdicts (FAULT, effective priority) and the sync
//! groups' moves, and runs the groups' notify scripts when a group's state
//! changes (keepalived's `notify` gets `GROUP NAME STATE`).
//!
//! Reload ([`VrrpReloader::reload`], on SIGHUP): an instance whose
//! configuration, tracked scripts and sync group are unchanged keeps
//! running as it is (state, timers, sockets: no advert or announcement
//! because of the reload); a changed one is stopped (priority 0 from a
//! master, VIPs removed) and started anew; a removed one is stopped; an
//! added one starts. Unchanged scripts keep their results. A changed
//! multicast group changes every multicast instance of its family (they
//! start anew on the new group); unicast instances do not care.
//!
//! Connection sync ([`VrrpSetup::table_hold`]): the instance
//! `[global.lvs_sync_daemon]` follows leaves FAULT only once the sync
//! master's table arrived, and preempts a live master only once that
//! master's table arrived (both bounded by the control thread).
//!
//! Deliberately not done: IPsec AH.

use std::io::{IoSlice, IoSliceMut, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Child;
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
use super::vrrp::track::{self, GroupMove, Member, ScriptHealth, Status};
use super::vrrp::{
    Action, Actions, McastGroups, NotifyState, RxMeta, State, VrrpMachine, VrrpStats,
    advert_destinations, announcements, instance_family, pick_primary, poll_wait_ms, split_ipv4,
    v6_scope,
};
use crate::config::{Config, VrrpInstance, VrrpScript, VrrpSyncGroup};
use crate::time::Timestamp;
use crate::wire::MacAddr;
use crate::wire::vrrp::{Family, VRRP_TTL};

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
/// How long a timed-out script has after SIGTERM before SIGKILL
/// (keepalived's).
const SCRIPT_KILL_GRACE: Duration = Duration::from_secs(2);

/// What the VRRP thread runs: the instances, the scripts they track (each
/// with whom it runs as), the sync groups, and whom notify scripts run as.
#[derive(Clone, Debug)]
pub struct VrrpSetup {
    pub instances: Vec<VrrpInstance>,
    pub scripts: Vec<(VrrpScript, Option<RunAs>)>,
    pub groups: Vec<VrrpSyncGroup>,
    pub run_as: Option<RunAs>,
    /// The multicast groups (`[global] vrrp_mcast_group4/6`).
    pub mcast: McastGroups,
    /// Connection sync's fail-back hold (the daemon sets it): the instance
    /// sync follows leaves FAULT, or preempts a live master, only once the
    /// master's table arrived.
    pub table_hold: Option<Arc<crate::control::sync::TableHold>>,
}

/// What makes an instance "unchanged" on reload: its configuration, the
/// scripts it tracks, its sync group and its multicast group (`None` for a
/// unicast instance).
type Identity = (
    VrrpInstance,
    Vec<VrrpScript>,
    Option<VrrpSyncGroup>,
    Option<IpAddr>,
);

impl VrrpSetup {
    /// `cfg`'s VRRP part; scripts with their own `user` run as that user,
    /// the others as `run_as` (the global script user). A user that does
    /// not exist is an error, never root.
    /// Scripts keepalived's security check disables are left out, and
    /// taken off the instances tracking them (`script::security`).
    pub fn new(cfg: &Config, run_as: Option<RunAs>) -> Result<VrrpSetup> {
        let mut scripts = Vec::new();
        let mut disabled = Vec::new();
        for s in &cfg.vrrp_scripts {
            let who = match &s.user {
                Some(u) => script::run_as(Some(u), s.group.as_deref())
                    .with_context(|| format!("vrrp_script {}", s.name))?,
                None => run_as,
            };
            let argv0 = crate::config::argv::split(&s.script)
                .ok()
                .and_then(|a| a.into_iter().next())
                .unwrap_or_default();
            let what = format!("track script {}", s.name);
            let security = cfg.global.enable_script_security;
            if script::security::allowed(&what, &argv0, who, s.user.is_some(), security) {
                scripts.push((s.clone(), who));
            } else {
                disabled.push(s.name.clone());
            }
        }
        let mut instances = cfg.vrrp_instances.clone();
        for i in &mut instances {
            i.track_script.retain(|t| !disabled.contains(&t.name));
        }
        Ok(VrrpSetup {
            instances,
            scripts,
            groups: cfg.vrrp_sync_groups.clone(),
            run_as,
            mcast: McastGroups::of(&cfg.global),
            table_hold: None,
        })
    }

    fn identity(&self, inst: &VrrpInstance) -> Identity {
        let scripts = inst
            .track_script
            .iter()
            .filter_map(|t| self.scripts.iter().find(|(s, _)| s.name == t.name))
            .map(|(s, _)| s.clone())
            .collect();
        let group = self
            .groups
            .iter()
            .find(|g| g.group.contains(&inst.name))
            .cloned();
        let mcast = inst
            .unicast_peer
            .is_empty()
            .then(|| self.mcast.get(instance_family(inst)));
        (inst.clone(), scripts, group, mcast)
    }
}

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
    /// What it was started from (compared on reload).
    identity: Identity,
    /// `track_interface`: name, weight, up at the last check.
    tracked_ifs: Vec<(String, i32, bool)>,
    /// `track_script`: index in the thread's scripts, weight, reverse.
    tracked_scripts: Vec<(usize, i32, bool)>,
    /// Started (weight-0 scripts have all reported once).
    started: bool,
    /// FAULT from its own link or tracking, and why.
    own_fault: Option<String>,
    /// Index of its sync group.
    group: Option<usize>,
    /// The state at the last group check.
    last_state: State,
    /// Leaving FAULT waits for this connection-sync table request.
    held: Option<u64>,
    /// Preempting a live master waits for this table request.
    preempt_asked: Option<u64>,
}

/// One `[[vrrp_script]]` and its runs.
struct ScriptSlot {
    cfg: VrrpScript,
    run_as: Option<RunAs>,
    argv: Vec<String>,
    health: ScriptHealth,
    next_run: Instant,
    run: Option<ScriptRun>,
}

/// A script run in progress.
struct ScriptRun {
    child: Child,
    started: Instant,
    /// SIGTERM sent at this time (the run timed out).
    terminated: Option<Instant>,
}

/// One sync group and the state it last notified.
struct GroupSlot {
    cfg: VrrpSyncGroup,
    members: Vec<usize>,
    notified: Option<NotifyState>,
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
    reload: mpsc::Sender<VrrpSetup>,
    status: Arc<Mutex<Vec<VrrpStatus>>>,
}

/// Hands a new configuration to the VRRP thread (see the module docs).
#[derive(Clone)]
pub struct VrrpReloader(mpsc::Sender<VrrpSetup>);

impl VrrpReloader {
    /// Applies `setup` at the thread's next round.
    pub fn reload(&self, setup: VrrpSetup) {
        if self.0.send(setup).is_err() {
            log::error!("reload: the VRRP thread is gone");
        }
    }
}

impl VrrpThread {
    /// Opens every instance's sockets (errors come back here, before any
    /// thread runs) and starts the thread; notify scripts run as
    /// `setup.run_as` (see [`crate::control::script`]). The thread runs even
    /// without instances, so that a reload can add some.
    pub fn start(setup: VrrpSetup, events: mpsc::Sender<VrrpEvent>) -> Result<VrrpThread> {
        let mut nl = Netlink::open()?;
        let mut running = Vec::new();
        for inst in &setup.instances {
            let mut r = open_instance(&mut nl, inst, setup.mcast)?;
            r.run_as = setup.run_as;
            r.identity = setup.identity(inst);
            running.push(r);
        }
        let mut v = Vrrp {
            running,
            scripts: Vec::new(),
            groups: Vec::new(),
            nl,
            events,
            run_as: setup.run_as,
            warnings: super::ops::ratelimit::RateLimit::default(),
            table_hold: setup.table_hold.clone(),
        };
        v.scripts = script_slots(&setup, Vec::new());
        v.link_tracking()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (reload, reloads) = mpsc::channel();
        let status = Arc::new(Mutex::new(Vec::new()));
        publish_status(&v.running, &status);
        let board = Arc::clone(&status);
        let handle = std::thread::Builder::new()
            .name("lvsfwd-vrrp".into())
            .spawn(move || run(v, reloads, flag, board))
            .context("starting the VRRP thread")?;
        Ok(VrrpThread {
            stop,
            handle,
            reload,
            status,
        })
    }

    /// Every instance's state, priority and counters, as of the thread's
    /// last turn (at most [`MAX_WAIT`] old).
    pub fn status(&self) -> Vec<VrrpStatus> {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// A handle to reload the thread from elsewhere (the daemon's SIGHUP).
    pub fn reloader(&self) -> VrrpReloader {
        VrrpReloader(self.reload.clone())
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

fn open_instance(nl: &mut Netlink, inst: &VrrpInstance, groups: McastGroups) -> Result<Running> {
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
                    &groups.v4,
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
                sock.join_multicast_v6(&groups.v6, link.ifindex)
                    .with_context(ctx)?;
            }
        }
    }
    let packet = PacketSender::open(link.ifindex)
        .with_context(|| format!("vrrp_instance {}: packet socket", inst.name))?;
    let dsts = advert_destinations(inst, family, groups);
    log::info!(
        "vrrp {}: VRID {} priority {} v{} on {} from {primary}, {}",
        inst.name,
        inst.virtual_router_id,
        inst.priority,
        m.version().number(),
        inst.interface,
        if unicast {
            "unicast".to_string()
        } else {
            format!("multicast to {}", dsts[0])
        }
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
        identity: (inst.clone(), Vec::new(), None, None),
        tracked_ifs: inst
            .track_interface
            .iter()
            .map(|t| (t.name.clone(), t.weight, true))
            .collect(),
        tracked_scripts: Vec::new(),
        started: false,
        own_fault: None,
        group: None,
        last_state: State::Initialize,
        held: None,
        preempt_asked: None,
    })
}

/// The thread's state: the instances, the scripts, the sync groups.
struct Vrrp {
    running: Vec<Running>,
    scripts: Vec<ScriptSlot>,
    groups: Vec<GroupSlot>,
    nl: Netlink,
    events: mpsc::Sender<VrrpEvent>,
    /// Whom notify scripts run as.
    run_as: Option<RunAs>,
    /// Repeated warnings, rate-limited.
    warnings: super::ops::ratelimit::RateLimit,
    table_hold: Option<Arc<crate::control::sync::TableHold>>,
}

impl Vrrp {
    /// Indexes every instance's scripts and group after a (re)start, and
    /// checks that tracked interfaces exist.
    fn link_tracking(&mut self) -> Result<()> {
        let groups: Vec<VrrpSyncGroup> = self
            .running
            .iter()
            .filter_map(|r| r.identity.2.clone())
            .fold(Vec::new(), |mut acc, g| {
                if !acc.iter().any(|x: &VrrpSyncGroup| x.name == g.name) {
                    acc.push(g);
                }
                acc
            });
        let old: Vec<(String, Option<NotifyState>)> = self
            .groups
            .iter()
            .map(|g| (g.cfg.name.clone(), g.notified))
            .collect();
        self.groups = groups
            .into_iter()
            .map(|cfg| GroupSlot {
                members: self
                    .running
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| cfg.group.contains(&r.m.name().to_string()))
                    .map(|(i, _)| i)
                    .collect(),
                notified: old
                    .iter()
                    .find(|(n, _)| *n == cfg.name)
                    .and_then(|(_, s)| *s),
                cfg,
            })
            .collect();
        for (gi, g) in self.groups.iter().enumerate() {
            for &m in &g.members {
                self.running[m].group = Some(gi);
                self.running[m].m.set_in_group(true);
            }
        }
        for r in self.running.iter_mut() {
            let inst = &r.identity.0;
            r.tracked_scripts = inst
                .track_script
                .iter()
                .filter_map(|t| {
                    let i = self.scripts.iter().position(|s| s.cfg.name == t.name)?;
                    let cfg = &self.scripts[i].cfg;
                    Some((
                        i,
                        t.weight.unwrap_or(cfg.weight),
                        t.reverse.unwrap_or(cfg.reverse),
                    ))
                })
                .collect();
            for (name, _, _) in &r.tracked_ifs {
                self.nl.link(name).with_context(|| {
                    format!("vrrp_instance {}: track_interface {name}", r.m.name())
                })?;
            }
        }
        Ok(())
    }

    /// Starts, reaps and times out script runs; true when a script's
    /// status changed.
    fn poll_scripts(&mut self) -> bool {
        let mut changed = false;
        let now = Instant::now();
        for s in self.scripts.iter_mut() {
            if let Some(run) = s.run.as_mut() {
                match run.child.try_wait() {
                    Ok(Some(status)) => {
                        let timed_out = run.terminated.is_some();
                        s.run = None;
                        if !timed_out {
                            changed |= record(s, status.success(), "");
                        }
                    }
                    Ok(None) => match run.terminated {
                        None if now.duration_since(run.started) >= s.cfg.timeout => {
                            run.terminated = Some(now);
                            signal_group(&run.child, nix::sys::signal::Signal::SIGTERM);
                            changed |= record(s, false, " (timed out)");
                        }
                        Some(t) if now.duration_since(t) >= SCRIPT_KILL_GRACE => {
                            signal_group(&run.child, nix::sys::signal::Signal::SIGKILL);
                        }
                        _ => {}
                    },
                    Err(e) => {
                        log::warn!("vrrp_script {}: waiting: {e}", s.cfg.name);
                        s.run = None;
                    }
                }
            }
            if s.run.is_none() && now >= s.next_run {
                s.next_run = now + s.cfg.interval;
                let spawned = script::command(&s.argv, s.run_as).map(|mut c| {
                    std::os::unix::process::CommandExt::process_group(&mut c, 0);
                    c.spawn()
                });
                match spawned {
                    Some(Ok(child)) => {
                        s.run = Some(ScriptRun {
                            child,
                            started: now,
                            terminated: None,
                        })
                    }
                    // keepalived counts a script it cannot run as failed.
                    Some(Err(e)) => {
                        log::warn!("vrrp_script {}: cannot run {:?}: {e}", s.cfg.name, s.argv);
                        changed |= record(s, false, " (cannot run)");
                    }
                    None => changed |= record(s, false, " (empty)"),
                }
            }
        }
        changed
    }

    /// Reads every instance's interface and tracked interfaces; true when
    /// one changed.
    fn poll_links(&mut self) -> bool {
        let mut changed = false;
        for r in self.running.iter_mut() {
            let up = match self.nl.link_up(r.ifindex) {
                Ok(up) => {
                    self.warnings.clear("interface state");
                    up
                }
                Err(e) => {
                    // Every 200 ms while it lasts: rate-limited.
                    self.warnings.warn("interface state", Instant::now(), || {
                        format!("vrrp {}: state of {}: {e:#}", r.m.name(), r.ifname)
                    });
                    false
                }
            };
            if up != r.link_up {
                r.link_up = up;
                changed = true;
            }
            for (name, _, was) in r.tracked_ifs.iter_mut() {
                // A tracked interface that disappears is down.
                let up = self.nl.link(name).map(|l| l.up).unwrap_or(false);
                if up != *was {
                    log::info!(
                        "vrrp {}: tracked interface {name} {}",
                        r.m.name(),
                        if up { "up" } else { "down" }
                    );
                    *was = up;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Applies what tracking says of every instance (start, FAULT,
    /// effective priority), then the sync groups.
    fn apply_tracking(&mut self, now: Timestamp) {
        for i in 0..self.running.len() {
            let r = &mut self.running[i];
            let statuses = r
                .tracked_ifs
                .iter()
                .map(|(_, w, up)| (*w, false, if *up { Status::Up } else { Status::Down }))
                .chain(
                    r.tracked_scripts
                        .iter()
                        .map(|&(s, w, rev)| (w, rev, self.scripts[s].health.status())),
                );
            let v = track::evaluate_reversible(r.m.base_priority(), statuses);
            let fault = if !r.link_up {
                Some("interface down".to_string())
            } else if v.fault {
                Some(fault_reason(r, &self.scripts))
            } else {
                None
            };
            r.own_fault = fault.clone();
            let a = r.m.set_priority(now, v.priority);
            execute(r, &mut self.nl, &self.events, a);
            if !r.started {
                if v.pending && fault.is_none() {
                    continue;
                }
                r.started = true;
                let a = match (&fault, r.group) {
                    (Some(why), None) => r.m.fault(now, why, false),
                    _ => r.m.start(now),
                };
                execute(r, &mut self.nl, &self.events, a);
                continue;
            }
            if r.group.is_some() {
                continue;
            }
            let a = match (&fault, r.m.state()) {
                (Some(why), s) if s != State::Fault => {
                    r.held = None;
                    r.m.fault(now, why, r.link_up)
                }
                (None, State::Fault) => {
                    // Connection sync: not before the master's table
                    // (bounded by the control thread).
                    if let Some(h) = self.table_hold.as_ref().filter(|h| h.follows(r.m.name())) {
                        match r.held {
                            None => {
                                r.held = Some(h.ask());
                                log::info!(
                                    "vrrp {}: leaving FAULT once the sync master's table is here",
                                    r.m.name()
                                );
                                continue;
                            }
                            Some(n) if !h.answered(n) => continue,
                            Some(_) => r.held = None,
                        }
                    }
                    r.m.clear_fault(now, "tracking OK")
                }
                _ => Actions::default(),
            };
            execute(r, &mut self.nl, &self.events, a);
        }
        self.settle_groups(now);
    }

    /// Connection sync: the instance sync follows, about to preempt a live
    /// master, first asks for that master's table (the control thread
    /// asks the group, bounded by `sync::TABLE_WAIT`) and takes over once
    /// it is answered; see the machine's hold. Every other instance, or
    /// every one without sync, preempts at once.
    fn serve_preempt_holds(&mut self, now: Timestamp) {
        for r in self.running.iter_mut() {
            let hold = self.table_hold.as_ref().filter(|h| h.follows(r.m.name()));
            r.m.set_preempt_hold(hold.is_some());
            if !r.m.holding() {
                r.preempt_asked = None;
                continue;
            }
            let ready = match (hold, r.preempt_asked) {
                (None, _) => true,
                (Some(h), None) => {
                    r.preempt_asked = Some(h.ask());
                    false
                }
                (Some(h), Some(n)) => h.answered(n),
            };
            if ready {
                r.preempt_asked = None;
                let a = r.m.table_ready(now);
                execute(r, &mut self.nl, &self.events, a);
            }
        }
    }

    /// keepalived's sync-group rules until nothing moves (bounded), then
    /// the groups' notify scripts.
    fn settle_groups(&mut self, now: Timestamp) {
        for _ in 0..4 {
            let mut moved = false;
            for gi in 0..self.groups.len() {
                let members = self.groups[gi].members.clone();
                if members.iter().any(|&m| !self.running[m].started) {
                    continue;
                }
                let view: Vec<Member> = members
                    .iter()
                    .map(|&m| {
                        let r = &self.running[m];
                        Member {
                            state: r.m.state(),
                            own_fault: r.own_fault.is_some(),
                            wants_master: r.m.wants_master(),
                        }
                    })
                    .collect();
                let demoted = members.iter().position(|&m| {
                    self.running[m].last_state == State::Master
                        && self.running[m].m.state() == State::Backup
                });
                let moves = track::group_moves(&view, demoted);
                let faulty = members
                    .iter()
                    .find(|&&m| self.running[m].own_fault.is_some())
                    .map(|&m| self.running[m].m.name().to_string());
                for (k, &m) in members.iter().enumerate() {
                    let group = self.groups[gi].cfg.name.clone();
                    let r = &mut self.running[m];
                    let a = match moves[k] {
                        GroupMove::Stay => continue,
                        GroupMove::Fault => {
                            let why = match (&r.own_fault, &faulty) {
                                (Some(w), _) => w.clone(),
                                (None, Some(f)) => {
                                    format!("sync group {group}: {f} is in FAULT")
                                }
                                (None, None) => format!("sync group {group}"),
                            };
                            r.m.fault(now, &why, r.link_up)
                        }
                        GroupMove::Recover => {
                            r.m.clear_fault(now, &format!("sync group {group} recovered"))
                        }
                        GroupMove::Master => r.m.force_master(now),
                        GroupMove::Backup => r.m.force_backup(now),
                    };
                    moved = true;
                    execute(r, &mut self.nl, &self.events, a);
                }
                for &m in &members {
                    let r = &mut self.running[m];
                    r.last_state = r.m.state();
                }
            }
            if !moved {
                break;
            }
        }
        self.notify_groups();
    }

    /// A group's notify scripts when all its members agree on a new state
    /// (MASTER, BACKUP) or one is in FAULT.
    fn notify_groups(&mut self) {
        for g in self.groups.iter_mut() {
            let states: Vec<State> = g
                .members
                .iter()
                .map(|&m| self.running[m].m.state())
                .collect();
            let now_state = if states.contains(&State::Fault) {
                Some(NotifyState::Fault)
            } else if states.iter().all(|s| *s == State::Master) {
                Some(NotifyState::Master)
            } else if states.iter().all(|s| *s == State::Backup) {
                Some(NotifyState::Backup)
            } else {
                None
            };
            let Some(st) = now_state else { continue };
            if g.notified == Some(st) {
                continue;
            }
            g.notified = Some(st);
            log::info!("vrrp group {}: {}", g.cfg.name, st.as_str());
            for argv in group_notify_commands(&g.cfg, st) {
                run_script(&g.cfg.name, &argv, self.run_as);
            }
        }
    }

    /// SIGHUP: see the module docs.
    fn reload(&mut self, setup: VrrpSetup, now: Timestamp) {
        self.run_as = setup.run_as;
        self.table_hold = setup.table_hold.clone();
        let old_scripts = std::mem::take(&mut self.scripts);
        self.scripts = script_slots(&setup, old_scripts);
        let mut keep: Vec<Running> = Vec::new();
        let old = std::mem::take(&mut self.running);
        for mut r in old {
            let unchanged = setup
                .instances
                .iter()
                .find(|i| i.name == r.m.name())
                .is_some_and(|i| setup.identity(i) == r.identity);
            if unchanged {
                r.run_as = setup.run_as;
                r.group = None;
                r.m.set_in_group(false);
                keep.push(r);
            } else {
                log::info!("vrrp {}: reload: stopping (changed or removed)", r.m.name());
                let a = r.m.shutdown(now);
                execute(&mut r, &mut self.nl, &self.events, a);
                eprintln!(
                    "lvsfwd: vrrp {}: stopped: {}",
                    r.m.name(),
                    r.m.stats().summary()
                );
            }
        }
        let mut running = Vec::new();
        for inst in &setup.instances {
            if let Some(i) = keep.iter().position(|r| r.m.name() == inst.name) {
                running.push(keep.swap_remove(i));
                continue;
            }
            match open_instance(&mut self.nl, inst, setup.mcast) {
                Ok(mut r) => {
                    log::info!("vrrp {}: reload: starting", inst.name);
                    r.run_as = setup.run_as;
                    r.identity = setup.identity(inst);
                    running.push(r);
                }
                Err(e) => log::error!("reload: {e:#}"),
            }
        }
        self.running = running;
        if let Err(e) = self.link_tracking() {
            log::error!("reload: {e:#}");
        }
        self.apply_tracking(now);
    }
}

/// The script table for `setup`; a script whose definition and user
/// are unchanged keeps its results and its run from `old`.
fn script_slots(setup: &VrrpSetup, mut old: Vec<ScriptSlot>) -> Vec<ScriptSlot> {
    let mut out = Vec::new();
    for (cfg, run_as) in &setup.scripts {
        // Only tracked scripts run (keepalived: an unused script is
        // not run).
        let used = setup
            .instances
            .iter()
            .any(|i| i.track_script.iter().any(|t| t.name == cfg.name));
        if !used {
            continue;
        }
        if let Some(i) = old
            .iter()
            .position(|o| o.cfg == *cfg && o.run_as == *run_as)
        {
            out.push(old.swap_remove(i));
            continue;
        }
        let argv = crate::config::argv::split(&cfg.script).unwrap_or_default();
        out.push(ScriptSlot {
            cfg: cfg.clone(),
            run_as: *run_as,
            argv,
            health: if cfg.init_fail {
                ScriptHealth::new_failed(cfg.rise, cfg.fall)
            } else {
                ScriptHealth::new(cfg.rise, cfg.fall)
            },
            next_run: Instant::now(),
            run: None,
        });
    }
    for o in old.iter_mut() {
        if let Some(run) = o.run.as_mut() {
            let _ = run.child.kill();
            let _ = run.child.wait();
        }
    }
    out
}

/// Records one script result; true (and a log line, keepalived's
/// wording) when the script's status changed.
fn record(s: &mut ScriptSlot, ok: bool, how: &str) -> bool {
    match s.health.record(ok) {
        Some(Status::Up) => {
            log::info!("VRRP_Script({}) succeeded", s.cfg.name);
            true
        }
        Some(_) => {
            log::info!("VRRP_Script({}) failed{how}", s.cfg.name);
            true
        }
        None => false,
    }
}

/// Signals the process group a script leads (it was started as one).
fn signal_group(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(pid, sig);
}

/// Why tracking puts `r` in FAULT (the first weight-0 object down).
fn fault_reason(r: &Running, scripts: &[ScriptSlot]) -> String {
    if let Some((name, _, _)) = r.tracked_ifs.iter().find(|(_, w, up)| *w == 0 && !up) {
        return format!("tracked interface {name} down");
    }
    if let Some(&(s, _, rev)) = r
        .tracked_scripts
        .iter()
        .find(|&&(s, w, rev)| w == 0 && track::is_fault(rev, scripts[s].health.status()))
    {
        let what = if rev { "succeeded (reverse)" } else { "failed" };
        return format!("tracked script {} {what}", scripts[s].cfg.name);
    }
    "tracking".into()
}

/// A sync group's notify commands for `state`: its own script, then the
/// generic `notify` with keepalived's `GROUP NAME STATE`.
fn group_notify_commands(g: &VrrpSyncGroup, state: NotifyState) -> Vec<Vec<String>> {
    let own = match state {
        NotifyState::Master => g.notify_master.as_ref(),
        NotifyState::Backup => g.notify_backup.as_ref(),
        NotifyState::Fault => g.notify_fault.as_ref(),
        NotifyState::Stop => None,
    };
    let mut out = Vec::new();
    if let Some(line) = own
        && let Ok(argv) = crate::config::argv::split(line)
    {
        out.push(argv);
    }
    if let Some(line) = &g.notify
        && let Ok(mut argv) = crate::config::argv::split(line)
    {
        argv.extend([
            "GROUP".to_string(),
            g.name.clone(),
            state.as_str().to_string(),
        ]);
        out.push(argv);
    }
    out
}

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

/// The thread's body: start, then scripts, links, timers and adverts until
/// the stop flag.
fn run(
    mut v: Vrrp,
    reloads: mpsc::Receiver<VrrpSetup>,
    stop: Arc<AtomicBool>,
    board: Arc<Mutex<Vec<VrrpStatus>>>,
) {
    let epoch = Instant::now();
    let now = || Timestamp::from_nanos(epoch.elapsed().as_nanos() as u64);
    // Scripts run once before anything starts; an instance waits for its
    // weight-0 scripts' first results (keepalived's init state).
    v.poll_scripts();
    v.poll_links();
    v.apply_tracking(now());
    let mut buf = vec![0u8; 65536];
    let mut last_link_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(setup) = reloads.try_recv() {
            v.reload(setup, now());
        }
        // keepalived tracks each instance's own interface: down (or without
        // carrier) is FAULT, up again starts the instance over; the same
        // for tracked interfaces and scripts.
        let mut dirty = v.poll_scripts();
        if last_link_check.elapsed() >= LINK_CHECK {
            last_link_check = Instant::now();
            dirty |= v.poll_links();
        }
        if dirty || v.running.iter().any(|r| !r.started || r.held.is_some()) {
            v.apply_tracking(now());
        }
        let next = v.running.iter().filter_map(|r| r.m.next_deadline()).min();
        let ms = poll_wait_ms(next, now(), MAX_WAIT);
        let readable: Vec<bool> = {
            let mut fds: Vec<nix::poll::PollFd> = v
                .running
                .iter()
                .map(|r| nix::poll::PollFd::new(r.sock.as_fd(), nix::poll::PollFlags::POLLIN))
                .collect();
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().is_some_and(|e| !e.is_empty()))
                    .collect(),
                Err(nix::errno::Errno::EINTR) => vec![false; v.running.len()],
                Err(e) => {
                    log::error!("vrrp: poll: {e}");
                    std::thread::sleep(MAX_WAIT);
                    vec![false; v.running.len()]
                }
            }
        };
        for (i, r) in v.running.iter_mut().enumerate() {
            if readable.get(i) == Some(&true) {
                // Bounded: a flood cannot keep the timers from running.
                for _ in 0..64 {
                    match receive(r, &mut buf) {
                        Ok(Some((rx, range))) => {
                            let payload = buf.get(range).unwrap_or(&[]);
                            let a = r.m.on_advert(now(), rx, payload);
                            execute(r, &mut v.nl, &v.events, a);
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
            execute(r, &mut v.nl, &v.events, a);
        }
        v.serve_preempt_holds(now());
        v.settle_groups(now());
        publish_status(&v.running, &board);
    }
    for s in v.scripts.iter_mut() {
        if let Some(run) = s.run.as_mut() {
            signal_group(&run.child, nix::sys::signal::Signal::SIGKILL);
            let _ = run.child.wait();
        }
    }
    for r in v.running.iter_mut() {
        let a = r.m.shutdown(now());
        execute(r, &mut v.nl, &v.events, a);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(global: &str) -> VrrpSetup {
        let text = format!(
            "[global]\n{global}\n\
             [[vrrp_instance]]\nname = \"M\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n\
             virtual_ipaddress = [\"198.18.0.250/32\"]\n\
             [[vrrp_instance]]\nname = \"U\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n\
             virtual_ipaddress = [\"198.18.0.251/32\"]\n\
             unicast_src_ip = \"198.18.0.2\"\nunicast_peer = [\"198.18.0.3\"]\n"
        );
        let cfg = crate::config::parse_str(&text, "lb.toml").unwrap();
        VrrpSetup::new(&cfg, None).unwrap()
    }

    /// A reload that changes the multicast group restarts the multicast
    /// instances of that family; unicast ones and the other family's keep
    /// running.
    #[test]
    fn a_changed_group_is_a_changed_multicast_instance() {
        let (old, new4, new6) = (
            setup(""),
            setup("vrrp_mcast_group4 = \"224.0.0.19\""),
            setup("vrrp_mcast_group6 = \"ff02::13\""),
        );
        let (m, u) = (&old.instances[0], &old.instances[1]);
        assert_eq!(old.identity(m).3, Some("224.0.0.18".parse().unwrap()));
        assert_ne!(old.identity(m), new4.identity(m));
        assert_eq!(new4.identity(m).3, Some("224.0.0.19".parse().unwrap()));
        assert_eq!(old.identity(m), new6.identity(m));
        assert_eq!(old.identity(u).3, None);
        assert_eq!(old.identity(u), new4.identity(u));
    }
}
