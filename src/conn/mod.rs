//! The connection table: IPVS's `ip_vs_conn` entries, their TCP/UDP state,
//! timers, persistence templates and real-server accounting.
//!
//! Owns: every connection and template ([`Conn`]) in a slab preallocated by
//! [`ConnTable::new`]; the lookup indexes (client side, reply side,
//! templates); the timers; the ActiveConn / InActConn / PersistConn counters
//! and traffic stats of the [`Dest`](crate::service::Dest)s and services the
//! connections are bound to. It mirrors `ip_vs_conn.c` (new / bind / unbind /
//! expire), `ip_vs_proto_tcp.c` + `ip_vs_proto_udp.c` (state machine,
//! timeouts) and `ip_vs_core.c` (`ip_vs_schedule`, `ip_vs_sched_persist`,
//! conn reuse and `expire_nodest_conn` in `ip_vs_in`).
//!
//! The per-packet API, in the order a data plane uses it:
//! 1. client -> VIP: [`ConnTable::lookup_in`] then [`ConnTable::check_in`]
//!    (IPVS's reuse and dead-server rules). [`InDecision::Forward`] -> forward and call
//!    [`ConnTable::on_packet`]; [`InDecision::Schedule`] -> look up the
//!    service and call [`ConnTable::schedule`] (which also accounts for the
//!    packet); [`InDecision::DropNoDest`] -> drop. The data plane takes
//!    both steps in one, [`ConnTable::packet_in_hashed`], which also hands back
//!    the forwarding method and the server's next hop ([`InPacket`]): one
//!    lookup of the conn and of its server, no decode of the entry (the
//!    rest a rewrite needs: [`ConnTable::server`],
//!    [`ConnTable::local_side_of`]).
//! 2. real server -> director (NAT, FULLNAT): [`ConnTable::lookup_out`], then
//!    [`ConnTable::on_packet`] with [`Direction::Out`].
//! 3. once per batch: [`ConnTable::expire`]. Freeing an entry costs mostly
//!    the cache misses on its index slots, at random places; each run of
//!    timers prefetches them for a few entries due at the next tick (and
//!    those entries themselves for the tick after), so expiry on a busy
//!    table overlaps them with the packets in between.
//!
//! Invariants:
//! - Nothing on the per-packet path allocates: the slab, both indexes and the
//!   timing wheel are sized once for `capacity` entries (templates included):
//!   126 bytes an entry (a 100-byte slab entry without padding,
//!   `table/entry.rs`; an 8-byte timer link; 9 bytes in each of the two
//!   indexes).
//! - Every live entry is armed on exactly one timer list and is bound to its
//!   dest's counters exactly once: a conn in InActConn or ActiveConn (by its
//!   `INACTIVE` flag, which follows `ConnState::is_active` for TCP; UDP is
//!   always inactive), a template in PersistConn. Freeing undoes it and
//!   re-evaluates `Dest::update_overload`.
//! - A template lives while it controls a conn: when its timer fires with
//!   controlled conns left it is re-armed for 60 s, and from then on that
//!   60 s is also what a new conn refreshes it with, as the kernel's
//!   `ip_vs_conn_expire` leaves `cp->timeout` at 60 s.
//! - A [`ConnId`] is valid until the entry is freed: by [`ConnTable::expire`],
//!   by eviction inside [`ConnTable::schedule`], or by a reschedule in
//!   [`ConnTable::check_in`] / [`ConnTable::packet_in_hashed`]. Callers must not keep ids across those.
//!
//! Capacity policy (SYN-flood protection): when the slab is full, `schedule`
//! reclaims before refusing. It walks the timer wheel from now onwards (the
//! entries due soonest first) over at most [`EVICT_SCAN`] entries and frees
//! the one nearest to expiry that is neither a template nor ESTABLISHED
//! (half-open SYN_RECV conns, closing conns, UDP flows). Only when that scan
//! finds no candidate does it fail with [`ScheduleError::TableFull`]. So a
//! flood of spoofed SYNs recycles its own SYN_RECV entries and never pushes
//! out established flows or persistence.
//!
//! With `drop_entry` on (see [`ConnSysctls::drop_entry`]), a scan that finds
//! no such candidate may also take an ESTABLISHED conn that has carried at
//! most [`DROP_ENTRY_MAX_PKTS`] client packets, nearest to expiry first:
//! IPVS's `ip_vs_random_dropentry` / `todrop_entry` rule (drop established
//! entries with few incoming packets when memory runs low), made
//! deterministic and bounded like the rest of the scan. It matters where
//! the director sees only the client side (DR, TUN): a spoofed SYN followed
//! by a spoofed ACK is ESTABLISHED there, for the 900 s timeout, and
//! without this rule a flood of such pairs fills the table for good. Unlike
//! IPVS, which only drops entries idle for 60 s, the rule applies at once:
//! this table has a hard size where IPVS's grows until memory runs low.
//!
//! FULLNAT: the local side (`laddr:lport`) is taken from
//! `Service::local_addrs` (addresses of the real server's family) and a port
//! range (1024-65535 unless [`ConnTable::set_fullnat_ports`]), such that the
//! reply tuple `(proto, RIP, rport, laddr, lport)` is unique in the reply
//! index. The search starts at a random point of the (address x port) space
//! and probes at most [`LPORT_TRIES`] candidates, round-robin over the
//! addresses; the pool counts as exhausted ([`ScheduleError::NoLocalAddr`])
//! when none is free among them (exact for spaces up to that size).
//!
//! Deliberately not here: packet parsing and rewriting (`forward`), service
//! lookup (fwmark classification included), the schedulers themselves,
//! FTP/SIP helpers and `secure_tcp`. A fwmark service's persistence
//! templates are keyed by its mark (`table/schedule.rs`). Connection sync's
//! decisions are `sync` (with `table/sync.rs`); its sockets are the shell's.

mod index;
mod state;
pub mod sync;
mod table;
mod wheel;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

use crate::dest::NicId;
use crate::service::{DestRef, FwdMethod, Protocol};
use crate::time::Timestamp;
use crate::wire::MacAddr;

pub use state::{ConnState, TcpFlags};
pub use sync::{SyncRecord, SyncSysctls};
pub use table::{
    ConnTable, FIXED_HASH_SEED, InPacket, STUB, SYNC_OUTBOX, SyncApplied, UNBOUND, is_stub,
    is_unbound,
};

/// Most entries the eviction scan looks at when the table is full.
pub const EVICT_SCAN: usize = 64;
/// An ESTABLISHED conn with at most this many client packets may be
/// reclaimed by `drop_entry` (the in_pkts range of IPVS's `todrop_entry`).
pub const DROP_ENTRY_MAX_PKTS: u8 = 8;
/// Most FULLNAT `(laddr, lport)` candidates tried for one new conn.
pub const LPORT_TRIES: usize = 4096;
/// How long a template that still controls conns lingers after its timer
/// fired (the kernel's `expire_later`).
pub const TEMPLATE_LINGER: Duration = Duration::from_secs(60);

/// The timeouts `ipvsadm --set tcp tcpfin udp` controls. Every other TCP
/// state has IPVS's fixed timeout: NONE 2 s, SYN_SENT 120 s, SYN_RECV 60 s,
/// TIME_WAIT 120 s, CLOSE 10 s, CLOSE_WAIT 60 s, LAST_ACK 30 s,
/// LISTEN 120 s, SYNACK 120 s.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// ESTABLISHED.
    pub tcp: Duration,
    /// FIN_WAIT.
    pub tcp_fin: Duration,
    /// UDP.
    pub udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            tcp: Duration::from_secs(900),
            tcp_fin: Duration::from_secs(120),
            udp: Duration::from_secs(300),
        }
    }
}

impl Timeouts {
    /// The timeout a conn in `s` is armed with after a packet.
    pub fn for_state(&self, s: ConnState) -> Duration {
        match s {
            ConnState::Established => self.tcp,
            ConnState::FinWait => self.tcp_fin,
            ConnState::Udp => self.udp,
            other => state::tcp_fixed_timeout(other),
        }
    }
}

/// IPVS's sysctls that steer conn reuse and dead real servers
/// (`/proc/sys/net/ipv4/vs/*`), with the kernel's defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConnSysctls {
    /// `expire_nodest_conn` (default off): a packet for a conn whose real
    /// server was removed expires the conn at once and may be scheduled
    /// afresh; off, such packets are dropped until the conn times out. Also
    /// reschedules a SYN hitting a conn whose server has weight 0.
    pub expire_nodest_conn: bool,
    /// `conn_reuse_mode` (default 1). Bit 0: a SYN that hits a non-persistent
    /// conn in TIME_WAIT or CLOSE is scheduled afresh instead of reusing it.
    /// Bit 1: also one in FIN_WAIT when replies bypass the director (DR/TUN).
    /// 0: SYNs always reuse the old conn.
    pub conn_reuse_mode: u8,
    /// `expire_quiescent_template` (default off): a template whose real
    /// server has weight 0 is dropped instead of reused.
    pub expire_quiescent_template: bool,
    /// `drop_entry` (default on here; see the module's capacity policy):
    /// when the table is full and no half-open or closing conn can be
    /// reclaimed, reclaim an ESTABLISHED one that carried at most
    /// [`DROP_ENTRY_MAX_PKTS`] client packets. IPVS's sysctl defaults to
    /// off, but its table has no hard size.
    pub drop_entry: bool,
    /// `sloppy_tcp` (default off): any TCP segment without RST may create
    /// a conn, not only a SYN (directors behind ECMP taking over a flow
    /// mid-way, with mh or sh picking the same real server).
    pub sloppy_tcp: bool,
    /// Connection sync's sysctls (`sync_threshold`, `sync_period`,
    /// `sync_refresh_period`, `sync_retries`).
    pub sync: SyncSysctls,
    /// `backup_only` (default off): while the backup sync daemon runs, the
    /// director does not balance (the data plane passes every packet to
    /// the kernel), as IPVS with the sysctl set.
    pub backup_only: bool,
}

impl Default for ConnSysctls {
    fn default() -> ConnSysctls {
        ConnSysctls {
            expire_nodest_conn: false,
            conn_reuse_mode: 1,
            expire_quiescent_template: false,
            drop_entry: true,
            sloppy_tcp: false,
            sync: SyncSysctls::default(),
            backup_only: false,
        }
    }
}

/// Which way a packet of an existing conn travels.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client -> director.
    In,
    /// Real server -> director (replies of NAT and FULLNAT conns).
    Out,
}

/// A slab index. See the module invariants for how long it stays valid.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u32);

const F_USED: u8 = 1;
const F_TEMPLATE: u8 = 1 << 1;
const F_INACTIVE: u8 = 1 << 2;
const F_ONE_PACKET: u8 = 1 << 3;
const F_NO_OUTPUT: u8 = 1 << 4;
/// Template unhashed by `ip_vs_check_template` (its server went away).
const F_TPL_INVALID: u8 = 1 << 5;
/// Template whose timeout became `TEMPLATE_LINGER`.
const F_TPL_LINGER: u8 = 1 << 6;

const NO_LINK: u32 = u32::MAX;

/// One connection or persistence template, as `ipvsadm -L -c` lists it.
///
/// Templates are keyed `<proto, client network, 0, vaddr, vport>` and point
/// at `daddr:dport`; their `state` is always [`ConnState::None`].
///
/// This is the table's view of an entry, decoded by [`ConnTable::get`]: the
/// slab stores it in 100 bytes (addresses without their `IpAddr` tags, the
/// deadline in 40 bits of wheel ticks, rounded up to a tick; see
/// `table/entry.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Conn {
    pub proto: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// FULLNAT local side; equals `caddr:cport` for other methods.
    pub laddr: IpAddr,
    pub lport: u16,
    pub dest: DestRef,
    pub fwd: FwdMethod,
    pub state: ConnState,
    /// Source MAC of the client's packets (NAT replies go back to it).
    pub client_mac: MacAddr,
    /// The NIC the client's packets arrive on (NAT replies leave by it).
    pub client_nic: NicId,
    /// When the timer fires.
    pub expires: Timestamp,
    flags: u8,
    /// Client packets seen, saturating (`in_pkts`, for `drop_entry`).
    in_pkts: u8,
    /// Conn: its template (`NO_LINK` if none). Free entry: next free.
    control: u32,
    /// Template: how many conns it controls.
    n_control: u32,
}

impl Conn {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Client packets seen (saturating at 255).
    pub fn in_pkts(&self) -> u8 {
        self.in_pkts
    }
    /// A persistence template (`IP_VS_CONN_F_TEMPLATE`).
    pub fn is_template(&self) -> bool {
        self.has(F_TEMPLATE)
    }
    /// Counted in InActConn rather than ActiveConn (`IP_VS_CONN_F_INACTIVE`).
    pub fn is_inactive(&self) -> bool {
        self.has(F_INACTIVE)
    }
    /// One-packet scheduling conn (`IP_VS_CONN_F_ONE_PACKET`): never looked
    /// up, freed at the next expire.
    pub fn is_one_packet(&self) -> bool {
        self.has(F_ONE_PACKET)
    }
    /// The template controlling this conn (persistent services).
    pub fn control(&self) -> Option<ConnId> {
        (self.control != NO_LINK && !self.is_template()).then_some(ConnId(self.control))
    }
    /// For a template: how many conns it controls.
    pub fn n_control(&self) -> u32 {
        self.n_control
    }
}

/// The first packet of a flow with no conn.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NewFlow {
    pub proto: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub client_mac: MacAddr,
    /// The NIC it arrived on.
    pub client_nic: NicId,
    /// TCP flags (`None` for UDP).
    pub tcp: Option<TcpFlags>,
}

/// Why no conn was created; each is a drop counter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ScheduleError {
    /// The scheduler found no usable real server (IPVS: "no destination
    /// available"; the kernel answers with ICMP unreachable).
    #[error("no destination available")]
    NoDest,
    /// The table is full and no conn could be reclaimed.
    #[error("connection table full")]
    TableFull,
    /// FULLNAT: no free local address and port for this real server.
    #[error("FULLNAT local address pool exhausted")]
    NoLocalAddr,
    /// A TCP segment that may not create a conn: not a SYN, or an RST
    /// (`tcp_conn_schedule` with `sloppy_tcp` = 0).
    #[error("TCP segment without SYN cannot create a connection")]
    NotSyn,
}

/// What to do with a client packet, after IPVS's checks on an existing conn
/// (`ip_vs_in`: conn reuse, `expire_nodest_conn`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InDecision {
    /// Forward on this conn, then call [`ConnTable::on_packet`].
    Forward(ConnId),
    /// No usable conn (none existed, or the old one was just released for a
    /// reschedule): look the service up and call [`ConnTable::schedule`].
    Schedule,
    /// The conn's real server is gone and `expire_nodest_conn` is off: drop
    /// the packet; the conn lives on until its timer.
    DropNoDest,
}
