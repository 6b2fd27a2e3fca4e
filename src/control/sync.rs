//! The connection sync daemon's threads (IPVS's `ipvs-m` / `ipvs-b`
//! kernel threads): a master sender and a backup receiver of IPVS sync
//! messages (`wire::ipvs_sync`) over UDP multicast, and [`SyncDaemon`], which
//! runs them as lvsadm or a VRRP instance says.
//!
//! Master: the workers push [`SyncRecord`]s onto `SyncLink::out`; the
//! sender drains it every [`SEND_DELAY`] (the kernel's
//! `IPVS_SYNC_SEND_DELAY`, 20 ms), packs records into v1 messages of at
//! most `maxlen` bytes and sends each full one at once and a partial one
//! when its first record is [`FLUSH_TIME`] old (`IPVS_SYNC_FLUSH_TIME`,
//! 2 s). The socket is the kernel's: bound to the interface's address,
//! multicast out of that interface with the configured TTL, loopback off,
//! connected to group:port. `maxlen` defaults to 1500 minus the IP and UDP
//! headers (1472 over IPv4; the kernel's master ignores the MTU).
//!
//! Backup: a socket bound to group:port on the interface, joined to the
//! group there, reads datagrams of up to `maxlen` (default: the MTU, at
//! least 1500, minus the headers), drops and counts malformed ones and
//! those of another syncid (a syncid of 0 takes every one, as the
//! kernel's), and hands each entry to worker 0's inbound queue; a worker
//! passes a record on to the worker owning its flow.
//!
//! Fail-back without loss (beyond IPVS): a director that starts with a
//! sync daemon asks the group for the master's whole table
//! ([`SyncDaemon::request_table`], `wire::ipvs_sync::Control`) before it
//! joins VRRP; a master's sender also listens on the group, and the control
//! thread answers a request with every conn and template of every worker
//! ([`SyncDaemon::send_table`]), which the sender sends at once, then an
//! end marker. A running director asks the same way when the instance sync
//! follows leaves FAULT, and before it preempts a live master
//! ([`TableHold`]).
//!
//! The kernel's sysctls the threads follow ([`SyncSysctls`]): `sync_ports`
//! (one socket per port; the master spreads conns over them, a backup runs
//! a receiver on each), `sync_version` 0 (v0 messages) and
//! `sync_sock_size`. Deliberately not here: `sync_qlen_max` (refused by the
//! configuration: no message backlog to bound here).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use socket2::{Domain, Socket, Type};

use crate::admin::cmd::{AdminCommand, ListWhat};
use crate::admin::listing;
use crate::config::SyncDaemon as SyncConfig;
use crate::conn::{SyncRecord, SyncSysctls};
use crate::wire::ipvs_sync::{self, SyncError, Writer};
use crate::xsk::shared::{SYNC_BACKUP, SYNC_MASTER, Shared};

/// How often the sender drains the workers' queue.
pub const SEND_DELAY: Duration = Duration::from_millis(20);
/// A partial message waits at most this long.
pub const FLUSH_TIME: Duration = Duration::from_secs(2);
/// How long a returning director waits for the master's table before it
/// takes part in VRRP (and may preempt), and the longest a master spends
/// queueing a table.
pub const TABLE_WAIT: Duration = Duration::from_secs(3);
/// IPv4 + UDP headers.
const HLEN_V4: u16 = 28;
/// IPv6 + UDP headers.
const HLEN_V6: u16 = 48;

/// Which side of sync.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// What the sync threads counted.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Master: messages, entries and bytes (UDP payload) sent.
    pub sent_msgs: AtomicU64,
    pub sent_conns: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub send_errors: AtomicU64,
    /// Backup: datagrams and entries taken.
    pub recv_msgs: AtomicU64,
    pub recv_conns: AtomicU64,
    /// Datagrams of another syncid.
    pub wrong_syncid: AtomicU64,
    /// Master: mixed-family entries left out ([`SyncRecord::one_family`]).
    pub mixed_family: AtomicU64,
    /// Master with `sync_version = 0`: IPv6 and FULLNAT entries, which v0
    /// cannot carry, left out.
    pub not_v0: AtomicU64,
    /// Datagrams (or their rest) dropped as malformed, by reason.
    pub malformed: [AtomicU64; SyncError::COUNT],
    /// Entries left out: an unknown mandatory option, or what a backup
    /// cannot hold (another protocol, a state out of range).
    pub refused_conns: AtomicU64,
    /// Master: a table request arrived and the control thread has not
    /// taken it yet.
    pub table_wanted: AtomicBool,
    /// Master: the control thread queued a whole table; the sender sends
    /// what it holds at once, then the end marker.
    pub table_queued: AtomicBool,
    /// Master: tables sent in answer to requests.
    pub tables_sent: AtomicU64,
    /// Backup: end markers of tables received.
    pub tables_done: AtomicU64,
}

impl SyncStats {
    pub fn malformed_total(&self) -> u64 {
        self.malformed
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// One running sync thread.
#[derive(Debug)]
pub struct SyncThread {
    pub role: Role,
    /// As running (`maxlen` resolved).
    pub cfg: SyncConfig,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl SyncThread {
    fn stop(self) {
        drop(self);
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The interface's index, MTU and first address of the family (`v6`).
fn interface(name: &str, v6: bool) -> Result<(u32, u16, Option<IpAddr>)> {
    let index = nix::net::if_::if_nametoindex(name)
        .with_context(|| format!("Unknown mcast interface: {name}"))?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1500);
    let addr = nix::ifaddrs::getifaddrs()
        .context("reading the interfaces' addresses")?
        .filter(|a| a.interface_name == name)
        .filter_map(|a| a.address)
        .find_map(|s| {
            if v6 {
                s.as_sockaddr_in6().map(|x| IpAddr::V6(x.ip()))
            } else {
                s.as_sockaddr_in().map(|x| IpAddr::V4(x.ip()))
            }
        });
    Ok((index, mtu, addr))
}

/// `maxlen` as the kernel resolves it for `role` (`start_sync_thread`).
pub fn resolve_maxlen(cfg: &SyncConfig, role: Role, mtu: u16) -> u16 {
    let hlen = if cfg.group.is_ipv6() {
        HLEN_V6
    } else {
        HLEN_V4
    };
    let (mtu, min) = match role {
        Role::Backup => (mtu.max(1500), 1024),
        Role::Master => (1500, 1),
    };
    match cfg.maxlen {
        Some(m) => m.clamp(min, u16::MAX - hlen),
        None => mtu - hlen,
    }
}

fn master_socket(cfg: &SyncConfig) -> Result<(Socket, u16)> {
    let v6 = cfg.group.is_ipv6();
    let (index, _, addr) = interface(&cfg.interface, v6)?;
    let s = Socket::new(
        if v6 { Domain::IPV6 } else { Domain::IPV4 },
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if v6 {
        s.set_multicast_if_v6(index)?;
        s.set_multicast_loop_v6(false)?;
        s.set_multicast_hops_v6(u32::from(cfg.ttl))?;
    } else {
        let Some(IpAddr::V4(a)) = addr else {
            bail!(
                "{}: no IPv4 address to send sync messages from",
                cfg.interface
            );
        };
        s.set_multicast_if_v4(&a)?;
        s.set_multicast_loop_v4(false)?;
        s.set_multicast_ttl_v4(u32::from(cfg.ttl))?;
        s.bind(&SocketAddr::new(IpAddr::V4(a), 0).into())
            .context("binding the sync socket to the interface's address")?;
    }
    s.connect(&SocketAddr::new(cfg.group, cfg.port).into())
        .context("connecting to the sync group")?;
    Ok((s, resolve_maxlen(cfg, Role::Master, 1500)))
}

fn backup_socket(cfg: &SyncConfig) -> Result<(Socket, u16)> {
    let v6 = cfg.group.is_ipv6();
    let (index, mtu, _) = interface(&cfg.interface, false)?;
    let s = Socket::new(
        if v6 { Domain::IPV6 } else { Domain::IPV4 },
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(cfg.interface.as_bytes()))
        .context("binding the sync socket to its interface")?;
    s.bind(&SocketAddr::new(cfg.group, cfg.port).into())
        .context("binding to the sync group and port")?;
    match cfg.group {
        IpAddr::V4(g) => s.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(index)),
        IpAddr::V6(g) => s.join_multicast_v6(&g, index),
    }
    .context("joining the sync group")?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok((s, resolve_maxlen(cfg, Role::Backup, mtu)))
}

/// The entry a master sends for `r`, or `None` (counted) for one the
/// format cannot carry ([`SyncRecord::one_family`]).
fn wire_entry(r: &SyncRecord, stats: &SyncStats) -> Option<ipvs_sync::SyncConn<'static>> {
    if !r.one_family() {
        stats.mixed_family.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    Some(r.to_wire())
}

/// The sync socket `i` of `sysctls.ports` (the kernel's thread `i`): the
/// group's port + `i`.
fn nth(cfg: &SyncConfig, i: u8) -> SyncConfig {
    let mut c = cfg.clone();
    c.port = cfg.port.wrapping_add(u16::from(i));
    c
}

/// Which of `n` (a power of two) master sockets sends `r`: the same one
/// for every message about a conn (`select_master_thread_id` spreads conns
/// by their address; here by their client and virtual address and ports).
pub fn master_socket_of(r: &SyncRecord, n: u8) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut h = rustc_hash::FxHasher::default();
    std::hash::Hash::hash(&(r.caddr, r.cport, r.vaddr, r.vport), &mut h);
    (std::hash::Hasher::finish(&h) as usize) & (usize::from(n) - 1)
}

/// One master socket and the message it is filling.
struct Out {
    sock: Socket,
    w: Writer,
    /// When the message's first entry came.
    first: Option<Instant>,
}

/// Starts the sender: records from `shared`'s queue go out to the group,
/// over `sysctls.ports` sockets, in `sysctls.version` messages, with
/// `sysctls.sock_size` as their send buffer.
pub fn start_master(
    cfg: &SyncConfig,
    sysctls: SyncSysctls,
    shared: Arc<Shared>,
    stats: Arc<SyncStats>,
) -> Result<SyncThread> {
    let ports = sysctls.ports.max(1);
    let mut outs = Vec::with_capacity(usize::from(ports));
    let mut maxlen = 0;
    for i in 0..ports {
        let (sock, m) = master_socket(&nth(cfg, i))?;
        if sysctls.sock_size > 0 {
            sock.set_send_buffer_size(sysctls.sock_size as usize)
                .context("sync_sock_size")?;
        }
        maxlen = m;
        let w = if sysctls.version == 0 {
            Writer::new_v0(cfg.syncid, usize::from(m))
        } else {
            Writer::new(cfg.syncid, usize::from(m))
        };
        outs.push(Out {
            sock,
            w,
            first: None,
        });
    }
    // Table requests of returning directors come to the group too (its
    // first port).
    let (listener, _) = backup_socket(cfg)?;
    listener.set_nonblocking(true)?;
    let listener: std::net::UdpSocket = listener.into();
    let mut cfg = cfg.clone();
    cfg.maxlen = Some(maxlen);
    // Records decided while no master ran are stale.
    while shared.sync.out.pop().is_some() {}
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let syncid = cfg.syncid;
    let handle = std::thread::Builder::new()
        .name("lvsfwd-sync-m".into())
        .spawn(move || {
            let send = |o: &mut Out| {
                match o.sock.send(o.w.bytes()) {
                    Ok(n) => {
                        stats.sent_msgs.fetch_add(1, Ordering::Relaxed);
                        stats
                            .sent_conns
                            .fetch_add(u64::from(o.w.count()), Ordering::Relaxed);
                        stats.sent_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.send_errors.fetch_add(1, Ordering::Relaxed);
                        log::debug!("sync: send: {e}");
                    }
                }
                o.w.reset(syncid);
                o.first = None;
            };
            let mut rbuf = [0u8; 64];
            let drain = |outs: &mut [Out]| {
                while let Some(r) = shared.sync.out.pop() {
                    let Some(c) = wire_entry(&r, &stats) else {
                        continue;
                    };
                    let o = &mut outs[master_socket_of(&r, ports)];
                    if !o.w.carries(&c) {
                        // v0: IPv6 and FULLNAT entries cannot be sent.
                        stats.not_v0.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if !o.w.push(&c) {
                        send(o);
                        o.w.push(&c);
                    }
                    o.first.get_or_insert_with(Instant::now);
                }
            };
            while !flag.load(Ordering::Relaxed) {
                drain(&mut outs);
                let whole_table = stats.table_queued.swap(false, Ordering::Acquire);
                if whole_table {
                    // Everything queued before the flag is there now.
                    drain(&mut outs);
                }
                for o in outs.iter_mut() {
                    if !o.w.is_empty()
                        && (whole_table || o.first.is_some_and(|t| t.elapsed() >= FLUSH_TIME))
                    {
                        send(o);
                    }
                }
                if whole_table {
                    let done = ipvs_sync::Control::TableDone.encode(syncid);
                    if outs[0].sock.send(&done).is_ok() {
                        stats.tables_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                while let Ok(n) = listener.recv(&mut rbuf) {
                    if let Some((ipvs_sync::Control::TableRequest, id)) =
                        ipvs_sync::Control::decode(&rbuf[..n])
                        && (syncid == 0 || id == syncid)
                    {
                        stats.table_wanted.store(true, Ordering::Release);
                    }
                }
                std::thread::sleep(SEND_DELAY);
            }
        })
        .context("spawning the sync master thread")?;
    log::info!(
        "sync thread started: state = MASTER, mcast_ifn = {}, syncid = {}, maxlen = {maxlen}, \
         ports = {ports}, version = {}",
        cfg.interface,
        cfg.syncid,
        sysctls.version
    );
    Ok(SyncThread {
        role: Role::Master,
        cfg,
        stop,
        handles: vec![handle],
    })
}

/// Takes one received datagram: checks it, hands its entries to the
/// workers (through worker 0's queue).
pub fn receive(buf: &[u8], syncid: u8, shared: &Shared, stats: &SyncStats) {
    if let Some((c, id)) = ipvs_sync::Control::decode(buf) {
        // A backup takes the end of a table it asked for; requests are
        // the master's business.
        if c == ipvs_sync::Control::TableDone && (syncid == 0 || id == syncid) {
            stats.tables_done.fetch_add(1, Ordering::Release);
        }
        return;
    }
    match ipvs_sync::header(buf) {
        Ok(h) if syncid != 0 && h.syncid != syncid => {
            stats.wrong_syncid.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Ok(_) => {}
        Err(e) => {
            stats.malformed[e.index()].fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    stats.recv_msgs.fetch_add(1, Ordering::Relaxed);
    let r = ipvs_sync::parse(buf, |c| match SyncRecord::from_wire(&c) {
        Some(r) => {
            stats.recv_conns.fetch_add(1, Ordering::Relaxed);
            let n = shared.sync.inbound.get().map_or(1, |q| q.len());
            shared
                .sync
                .to_worker(crate::xsk::sync_steer::first_worker(&r, n), r);
        }
        None => {
            stats.refused_conns.fetch_add(1, Ordering::Relaxed);
        }
    });
    match r {
        Ok((_, skipped)) => {
            stats
                .refused_conns
                .fetch_add(u64::from(skipped.entries), Ordering::Relaxed);
        }
        Err(e) => {
            stats.malformed[e.index()].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the receivers: one thread per port of `sysctls.ports` (the
/// group's port + i), `sysctls.sock_size` as their receive buffer.
pub fn start_backup(
    cfg: &SyncConfig,
    sysctls: SyncSysctls,
    shared: Arc<Shared>,
    stats: Arc<SyncStats>,
) -> Result<SyncThread> {
    let ports = sysctls.ports.max(1);
    let mut socks = Vec::with_capacity(usize::from(ports));
    let mut maxlen = 0;
    for i in 0..ports {
        let (sock, m) = backup_socket(&nth(cfg, i))?;
        if sysctls.sock_size > 0 {
            sock.set_recv_buffer_size(sysctls.sock_size as usize)
                .context("sync_sock_size")?;
        }
        maxlen = m;
        socks.push(sock);
    }
    let mut cfg = cfg.clone();
    cfg.maxlen = Some(maxlen);
    let stop = Arc::new(AtomicBool::new(false));
    let syncid = cfg.syncid;
    let mut handles = Vec::with_capacity(socks.len());
    for sock in socks {
        let flag = Arc::clone(&stop);
        let shared = Arc::clone(&shared);
        let stats = Arc::clone(&stats);
        let spawned = std::thread::Builder::new()
            .name("lvsfwd-sync-b".into())
            .spawn(move || {
                let sock: std::net::UdpSocket = sock.into();
                let mut buf = vec![0u8; usize::from(maxlen)];
                while !flag.load(Ordering::Relaxed) {
                    match sock.recv(&mut buf) {
                        Ok(n) => receive(&buf[..n], syncid, &shared, &stats),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => {
                            log::warn!("sync: receive: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(e).context("spawning the sync backup thread");
            }
        }
    }
    log::info!(
        "sync thread started: state = BACKUP, mcast_ifn = {}, syncid = {}, maxlen = {maxlen}, \
         ports = {ports}",
        cfg.interface,
        cfg.syncid
    );
    Ok(SyncThread {
        role: Role::Backup,
        cfg,
        stop,
        handles,
    })
}

/// Fail-back of a *running* director (beyond IPVS): the VRRP instance
/// `[global.lvs_sync_daemon]` follows, leaving FAULT (its link back, its
/// tracking OK again), stays there until the current master's whole table
/// has arrived, or [`TABLE_WAIT`] passed, so that it cannot preempt before
/// (as a director starting does). The VRRP thread asks
/// ([`TableHold::ask`]) and waits for its answer ([`TableHold::answered`]);
/// the control thread asks the group ([`SyncDaemon::poll_table_hold`]).
/// The same hold serves a running Backup of that instance about to
/// preempt a live master (its priority rose, or the master's fell): it
/// takes over once the table arrived or [`TABLE_WAIT`] passed (a master
/// that stopped advertising is taken over at once: the VRRP machine).
#[derive(Debug, Default)]
pub struct TableHold {
    /// The VRRP instance sync follows (none: no hold).
    instance: std::sync::Mutex<Option<String>>,
    /// The last request's number (0: none yet).
    asked: AtomicU64,
    /// The last request answered (the table arrived or the wait ran out).
    answered: AtomicU64,
}

impl TableHold {
    /// Whether `instance` waits for the table when it leaves FAULT.
    pub fn follows(&self, instance: &str) -> bool {
        let g = self.instance.lock().unwrap_or_else(|p| p.into_inner());
        g.as_deref() == Some(instance)
    }

    fn set_instance(&self, instance: Option<String>) {
        *self.instance.lock().unwrap_or_else(|p| p.into_inner()) = instance;
    }

    /// Asks for the table; returns the request's number.
    pub fn ask(&self) -> u64 {
        self.asked.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether request `n` has been answered.
    pub fn answered(&self, n: u64) -> bool {
        self.answered.load(Ordering::Acquire) >= n
    }
}

/// A table request under way for [`TableHold`].
#[derive(Debug)]
struct Asking {
    /// The request's number.
    n: u64,
    sock: Option<Socket>,
    /// `tables_done` when it started.
    before: u64,
    /// Once the end marker arrived: the records received by then.
    received: Option<u64>,
    started: Instant,
    next_ask: Instant,
}

/// The sync daemon as lvsadm and VRRP drive it: at most one master and one
/// backup thread (as the kernel: both may run at once with lvsadm).
#[derive(Debug)]
pub struct SyncDaemon {
    shared: Arc<Shared>,
    pub stats: Arc<SyncStats>,
    master: Option<SyncThread>,
    backup: Option<SyncThread>,
    /// From lb.toml: follows this VRRP instance.
    vrrp: Option<SyncConfig>,
    /// Shared with the VRRP thread.
    hold: Arc<TableHold>,
    asking: Option<Asking>,
    /// VRRP instances last reported MASTER (a reload that names another
    /// instance starts in that one's role).
    masters: std::collections::BTreeSet<String>,
    /// `[global]`'s sync sysctls; the threads use `version`, `ports` and
    /// `sock_size` (the workers the others).
    sysctls: SyncSysctls,
}

impl SyncDaemon {
    pub fn new(shared: Arc<Shared>) -> SyncDaemon {
        SyncDaemon {
            shared,
            stats: Arc::default(),
            master: None,
            backup: None,
            vrrp: None,
            hold: Arc::default(),
            asking: None,
            masters: Default::default(),
            sysctls: SyncSysctls::default(),
        }
    }

    /// `[global]`'s sync sysctls, for threads started from now on (see
    /// [`SyncDaemon::reload`] for running ones).
    pub fn set_sysctls(&mut self, s: SyncSysctls) {
        self.sysctls = s;
    }

    /// The sysctls the threads read.
    fn threads_sysctls(s: SyncSysctls) -> (u8, u8, u32) {
        (s.version, s.ports, s.sock_size)
    }

    /// The hold the VRRP thread consults (see [`TableHold`]).
    pub fn table_hold(&self) -> Arc<TableHold> {
        Arc::clone(&self.hold)
    }

    /// Control thread, every turn: serves the VRRP thread's table request
    /// without blocking: asks the group (again every 500 ms: a datagram
    /// may be lost) until the table's end marker arrived and the records
    /// received with it are in the workers' tables, or [`TABLE_WAIT`]
    /// passed, then answers. Without a backup thread (no master to ask)
    /// it answers at once.
    pub fn poll_table_hold(&mut self) {
        let asked = self.hold.asked.load(Ordering::Acquire);
        if self.hold.answered(asked) {
            return;
        }
        let now = Instant::now();
        let link = &self.shared.sync;
        let settled: u64 = [
            &link.created,
            &link.updated,
            &link.no_dest,
            &link.refused,
            &link.in_drops,
        ]
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .sum();
        let a = match &mut self.asking {
            Some(a) if a.n == asked => a,
            _ => {
                let sock = self
                    .backup
                    .as_ref()
                    .and_then(|b| match master_socket(&b.cfg) {
                        Ok((s, _)) => Some(s),
                        Err(e) => {
                            log::warn!("sync: asking for the table: {e:#}");
                            None
                        }
                    });
                log::info!("sync: asking the master for its whole table");
                self.asking.insert(Asking {
                    n: asked,
                    sock,
                    before: self.stats.tables_done.load(Ordering::Acquire),
                    received: None,
                    started: now,
                    next_ask: now,
                })
            }
        };
        if a.received.is_none() && self.stats.tables_done.load(Ordering::Acquire) != a.before {
            a.received = Some(self.stats.recv_conns.load(Ordering::Acquire));
            log::info!(
                "sync: the master's table arrived in {:?}",
                a.started.elapsed()
            );
        }
        // Answered once every record received with the table is in the
        // workers' tables (applied, refused or dropped): a director that
        // turns master stops applying what is still queued.
        let in_place = a.received.is_some_and(|n| settled >= n);
        let Some(sock) = a.sock.as_ref().filter(|_| !in_place) else {
            if in_place {
                log::info!(
                    "sync: the master's table is in place after {:?}",
                    a.started.elapsed()
                );
            }
            self.hold.answered.store(a.n, Ordering::Release);
            self.asking = None;
            return;
        };
        if now.duration_since(a.started) >= TABLE_WAIT {
            match a.received {
                None => log::info!("sync: no table from a master within {TABLE_WAIT:?}"),
                Some(_) => log::warn!("sync: the master's table not applied within {TABLE_WAIT:?}"),
            }
            self.hold.answered.store(a.n, Ordering::Release);
            self.asking = None;
            return;
        }
        if a.received.is_none() && now >= a.next_ask {
            let syncid = self.backup.as_ref().map_or(0, |b| b.cfg.syncid);
            let _ = sock.send(&ipvs_sync::Control::TableRequest.encode(syncid));
            a.next_ask = now + Duration::from_millis(500);
        }
    }

    fn publish_mode(&self) {
        let mut m = 0;
        if self.master.is_some() {
            m |= SYNC_MASTER;
        }
        if self.backup.is_some() {
            m |= SYNC_BACKUP;
        }
        self.shared.sync.mode.store(m, Ordering::Relaxed);
    }

    /// `--start-daemon`: fails as the kernel does when that role runs.
    pub fn start(&mut self, role: Role, cfg: &SyncConfig) -> Result<()> {
        let slot = match role {
            Role::Master => &self.master,
            Role::Backup => &self.backup,
        };
        if slot.is_some() {
            bail!("the {} sync daemon is already running", role.name());
        }
        let t = match role {
            Role::Master => start_master(
                cfg,
                self.sysctls,
                Arc::clone(&self.shared),
                Arc::clone(&self.stats),
            )?,
            Role::Backup => start_backup(
                cfg,
                self.sysctls,
                Arc::clone(&self.shared),
                Arc::clone(&self.stats),
            )?,
        };
        match role {
            Role::Master => self.master = Some(t),
            Role::Backup => self.backup = Some(t),
        }
        self.publish_mode();
        Ok(())
    }

    /// `--stop-daemon`: fails when that role does not run.
    pub fn stop(&mut self, role: Role) -> Result<()> {
        let t = match role {
            Role::Master => self.master.take(),
            Role::Backup => self.backup.take(),
        };
        let Some(t) = t else {
            bail!("no {} sync daemon is running", role.name());
        };
        // Workers stop deciding before the sender goes.
        self.publish_mode();
        log::info!("stopping {} sync thread", role.name());
        t.stop();
        Ok(())
    }

    /// The running threads, master first (`-L --daemon`).
    pub fn running(&self) -> Vec<(Role, SyncConfig)> {
        self.master
            .iter()
            .chain(self.backup.iter())
            .map(|t| (t.role, t.cfg.clone()))
            .collect()
    }

    /// Master: whether a returning director asked for the whole table
    /// since the last call (the control thread then answers with
    /// [`SyncDaemon::send_table`]).
    pub fn take_table_request(&self) -> bool {
        self.master.is_some() && self.stats.table_wanted.swap(false, Ordering::Acquire)
    }

    /// Master: queues every record of the table for the sender, which
    /// sends them at once and then the end marker. Waits (control thread)
    /// while the sender's queue is full, at most [`TABLE_WAIT`] in all.
    pub fn send_table(&self, records: Vec<SyncRecord>) {
        let deadline = Instant::now() + TABLE_WAIT;
        let n = records.len();
        for mut r in records {
            while let Err(back) = self.shared.sync.out.push(r) {
                if Instant::now() >= deadline {
                    log::warn!("sync: table of {n} entries cut short: the sender is stuck");
                    self.stats.table_queued.store(true, Ordering::Release);
                    return;
                }
                r = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.stats.table_queued.store(true, Ordering::Release);
        log::info!("sync: sending the whole table ({n} entries) to a returning director");
    }

    /// Backup (a director coming back): asks the group for the master's
    /// whole table and waits until its end marker arrived, at most
    /// `wait`. Returns whether it did.
    pub fn request_table(&self, wait: Duration) -> bool {
        let Some(b) = &self.backup else {
            return false;
        };
        let before = self.stats.tables_done.load(Ordering::Acquire);
        let sock = match master_socket(&b.cfg) {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("sync: asking for the table: {e:#}");
                return false;
            }
        };
        let req = ipvs_sync::Control::TableRequest.encode(b.cfg.syncid);
        let deadline = Instant::now() + wait;
        let mut next_ask = Instant::now();
        while Instant::now() < deadline {
            if self.stats.tables_done.load(Ordering::Acquire) != before {
                return true;
            }
            // Asked again every 500 ms: a datagram may be lost.
            if Instant::now() >= next_ask {
                let _ = sock.send(&req);
                next_ask = Instant::now() + Duration::from_millis(500);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// lvsadm's `--start-daemon`, `--stop-daemon` and `-L --daemon`: what
    /// to print, or ipvsadm's message for the kernel's refusal.
    pub fn admin(&mut self, cmd: &AdminCommand) -> Result<String, String> {
        match cmd {
            AdminCommand::StartDaemon(a) => {
                let role = if a.master { Role::Master } else { Role::Backup };
                if self.running().iter().any(|(r, _)| *r == role) {
                    return Err("Daemon has already run".into());
                }
                let mut c = SyncConfig::new(&a.ifname, a.syncid);
                c.maxlen = a.maxlen;
                if let Some(g) = a.group {
                    c.group = g;
                }
                if let Some(p) = a.port {
                    c.port = p;
                }
                if let Some(t) = a.ttl {
                    c.ttl = t;
                }
                self.start(role, &c)
                    .map(|()| String::new())
                    .map_err(|e| format!("{e:#}"))
            }
            AdminCommand::StopDaemon(master) => {
                let role = if *master { Role::Master } else { Role::Backup };
                self.stop(role)
                    .map(|()| String::new())
                    .map_err(|_| "No daemon is running".into())
            }
            AdminCommand::List {
                what: ListWhat::Daemon,
                ..
            } => {
                let running = self.running();
                let rows: Vec<(bool, &SyncConfig)> = running
                    .iter()
                    .map(|(r, c)| (*r == Role::Master, c))
                    .collect();
                let mut out = String::new();
                let _ = listing::list_daemon(&mut out, &rows);
                Ok(out)
            }
            _ => Err("not a sync daemon command".into()),
        }
    }

    /// lb.toml's `[global.lvs_sync_daemon]`: starts as backup, as
    /// keepalived does until its instance is master; with `active_active`
    /// as master and backup at once (VRRP never changes it).
    pub fn follow(&mut self, cfg: Option<SyncConfig>) -> Result<()> {
        self.hold.set_instance(
            cfg.as_ref()
                .filter(|c| !c.active_active)
                .and_then(|c| c.vrrp_instance.clone()),
        );
        self.vrrp = cfg;
        if let Some(c) = self.vrrp.clone() {
            let _ = self.stop(Role::Master);
            let _ = self.stop(Role::Backup);
            self.start(Role::Backup, &c)?;
            if c.active_active {
                // Behind ECMP every director is a master (its connections
                // go out) and a backup (the others' come in), for good.
                self.start(Role::Master, &c)?;
            }
        }
        Ok(())
    }

    /// SIGHUP: `[global.lvs_sync_daemon]` as reloaded. Unchanged: nothing
    /// happens (the threads, their sockets and queued records stay).
    /// Added, edited or removed: the threads it ran stop and the new ones
    /// start in the role their VRRP instance has now (master while it is
    /// MASTER; both with `active_active`). A new interface is checked
    /// first: an error leaves the running daemon as it was. Returns whether
    /// anything changed.
    pub fn reload(&mut self, cfg: Option<SyncConfig>, sysctls: SyncSysctls) -> Result<bool> {
        if !self.reload_changes(cfg.as_ref(), sysctls) {
            self.sysctls = sysctls;
            return Ok(false);
        }
        self.check_reload(cfg.as_ref(), sysctls)?;
        let old_sysctls = self.sysctls;
        self.sysctls = sysctls;
        let old = self.vrrp.clone();
        self.stop_all();
        match self.run_config(cfg) {
            Ok(()) => Ok(true),
            Err(e) => {
                // Back to what ran.
                self.stop_all();
                self.sysctls = old_sysctls;
                if let Err(e2) = self.run_config(old) {
                    log::error!("sync: restarting the previous daemon: {e2:#}");
                }
                Err(e)
            }
        }
    }

    /// Whether [`SyncDaemon::reload`] with these would restart the threads.
    fn reload_changes(&self, cfg: Option<&SyncConfig>, sysctls: SyncSysctls) -> bool {
        cfg != self.vrrp.as_ref()
            || (cfg.is_some()
                && Self::threads_sysctls(sysctls) != Self::threads_sysctls(self.sysctls))
    }

    /// SIGHUP, before anything changes: whether [`SyncDaemon::reload`]
    /// could start the threads `cfg` asks for. The interface and its
    /// address are checked and the sockets the threads would use (the
    /// role's, one per port, their buffer size) opened and closed again;
    /// nothing running is touched.
    pub fn check_reload(&self, cfg: Option<&SyncConfig>, sysctls: SyncSysctls) -> Result<()> {
        if !self.reload_changes(cfg, sysctls) {
            return Ok(());
        }
        let Some(c) = cfg else {
            return Ok(());
        };
        let (_, _, addr) = interface(&c.interface, c.group.is_ipv6())?;
        if addr.is_none() && !c.group.is_ipv6() {
            bail!(
                "{}: no IPv4 address to send sync messages from",
                c.interface
            );
        }
        let master = c
            .vrrp_instance
            .as_ref()
            .is_some_and(|i| self.masters.contains(i));
        for i in 0..sysctls.ports.max(1) {
            let nth = nth(c, i);
            if c.active_active || !master {
                let (sock, _) = backup_socket(&nth)?;
                if sysctls.sock_size > 0 {
                    sock.set_recv_buffer_size(sysctls.sock_size as usize)
                        .context("sync_sock_size")?;
                }
            }
            if c.active_active || master {
                let (sock, _) = master_socket(&nth)?;
                if sysctls.sock_size > 0 {
                    sock.set_send_buffer_size(sysctls.sock_size as usize)
                        .context("sync_sock_size")?;
                }
            }
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        self.asking = None;
        for role in [Role::Master, Role::Backup] {
            let _ = self.stop(role);
        }
    }

    /// Starts what `cfg` says, in its instance's current role.
    fn run_config(&mut self, cfg: Option<SyncConfig>) -> Result<()> {
        self.hold.set_instance(
            cfg.as_ref()
                .filter(|c| !c.active_active)
                .and_then(|c| c.vrrp_instance.clone()),
        );
        self.vrrp = cfg;
        let Some(c) = self.vrrp.clone() else {
            return Ok(());
        };
        let master = c
            .vrrp_instance
            .as_ref()
            .is_some_and(|i| self.masters.contains(i));
        if c.active_active || !master {
            self.start(Role::Backup, &c)?;
        }
        if c.active_active || master {
            self.start(Role::Master, &c)?;
        }
        Ok(())
    }

    /// A VRRP instance changed state: master while `instance` is MASTER,
    /// backup otherwise (keepalived's `ipvs_syncd_master` /
    /// `ipvs_syncd_backup`).
    pub fn vrrp_state(&mut self, instance: &str, master: bool) {
        if master {
            self.masters.insert(instance.to_string());
        } else {
            self.masters.remove(instance);
        }
        let Some(c) = self.vrrp.clone() else {
            return;
        };
        if c.vrrp_instance.as_deref() != Some(instance) {
            return;
        }
        let (stop, start) = if master {
            (Role::Backup, Role::Master)
        } else {
            (Role::Master, Role::Backup)
        };
        let _ = self.stop(stop);
        if self.running().iter().any(|(r, _)| *r == start) {
            return;
        }
        if let Err(e) = self.start(start, &c) {
            log::error!("sync: starting the {} thread: {e:#}", start.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxlen_defaults_as_the_kernels() {
        let c = SyncConfig::new("eth0", 1);
        assert_eq!(resolve_maxlen(&c, Role::Master, 9000), 1472);
        assert_eq!(resolve_maxlen(&c, Role::Backup, 9000), 8972);
        assert_eq!(resolve_maxlen(&c, Role::Backup, 1400), 1472);
        let mut c6 = c.clone();
        c6.group = "ff02::81".parse().unwrap();
        assert_eq!(resolve_maxlen(&c6, Role::Master, 1500), 1452);
        let mut small = c.clone();
        small.maxlen = Some(100);
        assert_eq!(resolve_maxlen(&small, Role::Master, 1500), 100);
        assert_eq!(resolve_maxlen(&small, Role::Backup, 1500), 1024);
    }

    #[test]
    fn a_backup_drops_malformed_and_foreign_datagrams_and_counts_them() {
        let shared = Shared::new(Default::default());
        let _ = shared
            .sync
            .inbound
            .set(vec![crossbeam::queue::ArrayQueue::new(16)].into_boxed_slice());
        let stats = SyncStats::default();
        let r = SyncRecord::sample();
        let mut w = Writer::new(5, 1472);
        w.push(&r.to_wire());
        receive(w.bytes(), 5, &shared, &stats);
        receive(w.bytes(), 6, &shared, &stats);
        receive(&w.bytes()[..20], 5, &shared, &stats);
        // syncid 0 takes any.
        receive(w.bytes(), 0, &shared, &stats);
        assert_eq!(stats.recv_msgs.load(Ordering::Relaxed), 2);
        assert_eq!(stats.wrong_syncid.load(Ordering::Relaxed), 1);
        assert_eq!(
            stats.malformed[SyncError::BadSize.index()].load(Ordering::Relaxed),
            1
        );
        let q = &shared.sync.inbound.get().unwrap()[0];
        assert_eq!(q.pop(), Some(r));
        assert_eq!(q.len(), 1);
    }

    /// A table request is answered once the table's end marker arrived
    /// and every record received by then settled in the workers (a
    /// director that turns master stops applying queued records), or
    /// once the wait ran out.
    #[test]
    fn the_hold_is_answered_once_the_table_is_in_the_workers() {
        let shared = Shared::new(Default::default());
        let mut d = SyncDaemon::new(Arc::clone(&shared));
        let hold = d.table_hold();
        let n = hold.ask();
        let udp = || Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let later = Instant::now() + Duration::from_secs(60);
        d.asking = Some(Asking {
            n,
            sock: Some(udp()),
            before: 0,
            received: None,
            started: Instant::now(),
            next_ask: later,
        });
        d.poll_table_hold();
        assert!(!hold.answered(n), "answered before the table arrived");
        // Four records, then the end marker: not yet in the workers.
        d.stats.recv_conns.store(4, Ordering::Relaxed);
        d.stats.tables_done.store(1, Ordering::Relaxed);
        d.poll_table_hold();
        assert!(!hold.answered(n), "answered before the records applied");
        shared.sync.created.store(2, Ordering::Relaxed);
        shared.sync.updated.store(1, Ordering::Relaxed);
        d.poll_table_hold();
        assert!(!hold.answered(n));
        // Records arriving after the marker do not delay it.
        d.stats.recv_conns.store(9, Ordering::Relaxed);
        shared.sync.in_drops.store(1, Ordering::Relaxed);
        d.poll_table_hold();
        assert!(hold.answered(n));
        assert!(d.asking.is_none());
        // Not applied within the wait: answered all the same.
        let n = hold.ask();
        d.asking = Some(Asking {
            n,
            sock: Some(udp()),
            before: 0,
            received: None,
            started: Instant::now() - TABLE_WAIT,
            next_ask: later,
        });
        d.stats.tables_done.store(2, Ordering::Relaxed);
        d.poll_table_hold();
        assert!(hold.answered(n));
    }

    /// Mixed-family conns (TUN between families) are left out and
    /// counted: the entry's one type byte gives all three addresses one
    /// family (the kernel would send a garbled real-server address).
    #[test]
    fn a_master_leaves_mixed_family_entries_out_and_counts_them() {
        let stats = SyncStats::default();
        let r = SyncRecord {
            fwd: crate::service::FwdMethod::Tunnel,
            caddr: "2001:2::1".parse().unwrap(),
            vaddr: "2001:2::250".parse().unwrap(),
            ..SyncRecord::sample()
        };
        assert!(wire_entry(&r, &stats).is_none());
        let v4 = SyncRecord {
            caddr: "198.18.1.1".parse().unwrap(),
            vaddr: "198.18.0.250".parse().unwrap(),
            daddr: "2001:2::11".parse().unwrap(),
            ..r
        };
        assert!(wire_entry(&v4, &stats).is_none());
        assert_eq!(stats.mixed_family.load(Ordering::Relaxed), 2);
        let same = SyncRecord {
            daddr: "2001:2::11".parse().unwrap(),
            ..r
        };
        let c = wire_entry(&same, &stats).expect("one family is sent");
        assert_eq!(c.daddr, same.daddr);
        assert_eq!(stats.mixed_family.load(Ordering::Relaxed), 2);
    }
}
