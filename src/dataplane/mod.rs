//! The per-frame pipeline: frames and `now` in, verdicts and rewritten
//! frames out.
//!
//! [`Dataplane::process`] is the whole forwarding decision for one received
//! frame, in IPVS's order (`ip_vs_in` / `ip_vs_out`):
//!
//! 1. parse; malformed frames are dropped and counted by reason, frames that
//!    are not IP (ARP, LLDP, ...) are handed to the kernel;
//! 2. a packet of a known connection, client side (`lookup_in`), is
//!    forwarded to that connection's real server;
//! 3. a reply of a NAT/FULLNAT connection (`lookup_out`) is rewritten back
//!    and sent to the client;
//! 4. a packet to a virtual service that may open a connection is scheduled;
//! 5. ICMP errors quoting a tracked connection are rewritten for the other
//!    side (`ip_vs_in_icmp` / `ip_vs_out_icmp`);
//! 6. everything else is the kernel's.
//!
//! One frame in gives at most one frame out, written in place (TUN grows it
//! into the headroom; a packet too big for the tunnel becomes an ICMP error
//! back to the client), except for fragments: a fragment to a virtual
//! service (or of a NAT/FULLNAT real server's reply) is kept in
//! [`reasm`]'s fixed pool ([`Verdict::Consumed`]) until its datagram is
//! whole, which then goes the normal way and leaves refragmented in the
//! extra frames ([`Dataplane::extra`], one buffer allocated at start), as
//! does an IPv4 packet without DF too big for a tunnel. Nothing here allocates or locks per frame; the shell
//! calls [`Dataplane::tick`] once per batch to run the connection timers.
//!
//! Configuration changes arrive between batches: [`Dataplane::apply_services`]
//! applies a new service configuration as a diff (connections keep their real
//! servers, counters survive; see `ServiceTable::apply_specs`) and refreshes
//! what the per-packet path derives from the table (VIP set, port-0 flag);
//! [`Dataplane::set_timeouts`] and [`Dataplane::set_sysctls`] are `--set` and
//! the reloadable sysctls.
//!
//! Where IPVS hands a packet to the director's own stack (`NF_ACCEPT`), the
//! verdict is [`Verdict::Kernel`], counted by [`KernelReason`], and the
//! shell writes the frame to its kernel port (`xsk::kport`): packets of
//! connections to a real server that is the director itself
//! ([`FwdMethod::Local`], `local`: `ip_vs_null_xmit`), and TCP segments to a
//! virtual service that are neither a SYN nor part of a tracked connection
//! (`no_conn`), which the stack answers with a RST; but for a minute after
//! the connection table last evicted live entries (full table,
//! [`RECLAIM_QUIET`]) such segments are dropped (`no_conn_reclaim`): they
//! may belong to a connection lvsfwd evicted where IPVS would have kept it,
//! and the RST would kill it. A dest is Local while
//! its address is the director's own ([`crate::dest::is_local_addr`] over
//! the NIC's addresses and loopback), re-evaluated whenever the service
//! table or the addresses change. Like IPVS (`decrement_ttl` in ip_vs_xmit.c) every
//! forwarded packet leaves with its TTL / hop limit one lower; one that would
//! reach zero is dropped and counted (`ttl_exceeded`) where IPVS would also
//! send an ICMP time-exceeded. A forwarded TCP/UDP packet whose checksum
//! the sender left partial (checksum offload on veth or virtio, which an
//! AF_XDP socket receives unfinished) is completed before any rewrite and
//! counted (`partial_csum`), as the kernel would before forwarding it.

#[cfg(test)]
mod frag_tests;
#[cfg(test)]
mod fwmark_tests;
#[cfg(test)]
mod nics_tests;
pub mod query;
pub mod reasm;
pub mod snapshot;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::conn::{
    ConnId, ConnSysctls, ConnTable, Direction, FIXED_HASH_SEED, InDecision, InPacket, NewFlow,
    ScheduleError, SyncApplied, SyncRecord, TcpFlags, Timeouts,
};
use crate::counter::counter_enum;
use crate::dest::{Egress, NextHop, NicId, TunnelSpec, is_local_addr};
use crate::forward::frag::{self as fragout, ExtraTx};
use crate::forward::{self, IcmpRewrite, Rewrite, TunnelError};
use crate::service::{
    ApplySummary, FwdMethod, FwmarkMatch, Protocol, ServiceKey, ServiceSpec, ServiceTable,
};
use crate::time::Timestamp;
use crate::view::ConnView;
use crate::wire::MacAddr;
use crate::wire::{self, Fragment, FrameBuf, Headers, IcmpError, L4, ParseError};
pub use snapshot::Snapshot;

/// What to do with a frame after [`Dataplane::process`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame out of this NIC (the one of its next
    /// hop: the real server's route, or the NIC the client's packets
    /// arrive on).
    Tx(NicId),
    /// Not the balancer's: hand it to the kernel untouched.
    Pass,
    /// The balancer's, for the director's own stack (IPVS's `NF_ACCEPT`):
    /// hand it to the kernel untouched; the reason has been counted.
    Kernel(KernelReason),
    /// Drop it; the reason has been counted.
    Drop(DropReason),
    /// The data plane took what it needed from the frame (a fragment kept
    /// for reassembly, or a packet whose output went to the extra frames
    /// of [`Dataplane::extra`]): recycle the frame, then send the extra
    /// frames and [`Dataplane::clear_extra`].
    Consumed,
    /// A reply of a synced FULLNAT conn another worker holds (this data
    /// plane keeps a reply stub for it, its worker owning the local port):
    /// hand the frame, untouched, over to the worker named, which
    /// processes it.
    /// Not counted here, not even in `rx`: that worker counts it.
    HandOver(u32),
}

counter_enum! {
    /// Why a frame was dropped. Each variant is a counter.
    pub enum DropReason {
        /// The frame is malformed (see the parse error).
        Malformed(ParseError),
        /// Larger than any frame the NIC hands over.
        Oversized => "oversized",
        /// An IP fragment to a virtual service that is not TCP/UDP (not
        /// reassembled), or a reassembled datagram no service takes.
        Fragment => "fragment",
        /// A fragment partly overlapping data of its datagram already held:
        /// the whole datagram is dropped (RFC 5722; Linux for IPv4 too).
        FragOverlap => "frag_overlap",
        /// A fragment entirely inside data already held (a duplicate).
        FragDup => "frag_dup",
        /// A fragment that cannot belong to a valid datagram: empty, past the
        /// last fragment or 64 KiB, disagreeing last fragments, an IPv6
        /// non-last fragment not a multiple of 8 bytes.
        FragBad => "frag_bad",
        /// Every reassembly slot is busy (the kernel's ipfrag_high_thresh).
        FragNoRoom => "frag_no_room",
        /// A datagram whose fragments did not all come within ipfrag_time
        /// (30 s): counted once per datagram, not per frame.
        FragTimeout => "frag_timeout",
        /// A TCP segment to a virtual service that is not a SYN and matches no
        /// connection while the connection table is reclaiming entries
        /// ([`RECLAIM_QUIET`]): it may belong to a connection lvsfwd evicted,
        /// which the kernel's RST would kill, so it is dropped.
        NoConnReclaim => "no_conn_reclaim",
        /// The scheduler found no real server that can take a new connection.
        NoDest => "no_dest",
        /// The connection table is full and nothing could be reclaimed.
        TableFull => "table_full",
        /// The FULLNAT local address pool has no free address and port.
        NoLocalAddr => "no_local_addr",
        /// No next-hop MAC is known for the real server.
        NoNextHop => "no_next_hop",
        /// The connection's real server was removed (expire_nodest_conn rules).
        DestUnavailable => "dest_unavailable",
        /// The NIC has no address of the family needed for a tunnel or ICMP.
        NoSourceAddr => "no_source_addr",
        /// The frame buffer has no room for the rewrite.
        NoRoom => "no_room",
        /// TTL / hop limit would reach zero (IPVS decrements it on transmit).
        TtlExceeded => "ttl_exceeded",
        /// Too big for the tunnel and may be fragmented (IPv4 without DF), but
        /// the outer packet could not be fragmented (no room in the extra
        /// frames, or an MTU too small for 8 payload bytes).
        NeedsFragmentation => "needs_fragmentation",
        /// An ICMP error that quotes a packet without ports (a later fragment).
        IcmpUntracked => "icmp_untracked",
        /// A tunnel's outer source and destination of different families
        /// (the source is picked by the real server's family, so this counts
        /// a bug instead of building a broken header).
        TunnelFamily => "tunnel_family",
    }
}

counter_enum! {
    /// Why a frame of the balancer's goes to the director's own stack. Each
    /// variant is a counter.
    pub enum KernelReason {
        /// A packet of a connection whose real server is the director
        /// itself ([`FwdMethod::Local`]).
        Local => "local",
        /// A TCP segment to a virtual service that is not a SYN and matches
        /// no connection: the stack answers it (a RST), as with IPVS.
        NoConn => "no_conn",
    }
}

/// How long after the connection table last reclaimed an entry (its
/// full-table policy, `drop_entry`) a TCP segment without a connection is
/// dropped (`no_conn_reclaim`) instead of handed to the kernel. IPVS has no
/// `conn_max`, so its entries go only when they expire; lvsfwd evicts live
/// ones under a flood, and in DR/TUN such a connection keeps working as
/// long as nobody answers its client's later segments (the replies do not
/// pass the director): the kernel's RST would kill it. A minute covers the
/// rest of the short connections the policy evicts (at most 8 client
/// packets).
pub const RECLAIM_QUIET: std::time::Duration = std::time::Duration::from_secs(60);

/// What becomes of a packet that could not open a connection;
/// `reclaiming`: the table evicted entries within [`RECLAIM_QUIET`].
fn schedule_failed(e: ScheduleError, reclaiming: bool) -> Verdict {
    match e {
        ScheduleError::NoDest => Verdict::Drop(DropReason::NoDest),
        ScheduleError::TableFull => Verdict::Drop(DropReason::TableFull),
        ScheduleError::NoLocalAddr => Verdict::Drop(DropReason::NoLocalAddr),
        ScheduleError::NotSyn if reclaiming => Verdict::Drop(DropReason::NoConnReclaim),
        ScheduleError::NotSyn => Verdict::Kernel(KernelReason::NoConn),
    }
}

/// Frame counters of one data plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx: u64,
    pub tx: u64,
    pub pass: u64,
    pub drop: u64,
    /// Frames of the balancer's handed to the director's own stack
    /// ([`Verdict::Kernel`]), by reason in `kernel_by`.
    pub kernel: u64,
    /// ICMP "fragmentation needed" / "packet too big" sent for tunnels.
    pub icmp_too_big: u64,
    /// Forwarded TCP/UDP frames that arrived with a partial checksum (the
    /// sender's checksum offload, unfinished: veth, virtio) and left with
    /// it completed. Not a drop.
    pub partial_csum: u64,
    /// Frames the data plane consumed ([`Verdict::Consumed`]); with them
    /// `rx = tx + pass + drop + kernel + consumed` (a frame handed over,
    /// [`Verdict::HandOver`], is not counted in `rx`). What a consumed frame
    /// leads to sending is counted in `frag_sent` and `frag_to_kernel`.
    pub consumed: u64,
    /// Datagrams reassembled from fragments to a virtual service.
    pub frag_reassembled: u64,
    /// Frames sent from [`Dataplane::extra`] out of a NIC: fragments of a
    /// reassembled datagram or of a tunnel packet (or a reassembled
    /// datagram that fits whole).
    pub frag_sent: u64,
    /// Frames from [`Dataplane::extra`] for the director's own stack: the
    /// fragments of a reassembled datagram no service takes.
    pub frag_to_kernel: u64,
    /// ICMP time exceeded (fragment reassembly) sent for datagrams that
    /// timed out after their first fragment came, and those the rate limit
    /// kept back.
    pub icmp_frag_time: u64,
    pub icmp_frag_time_limited: u64,
    parse: [u64; ParseError::COUNT],
    other: [u64; DropReason::COUNT],
    kernel_by: [u64; KernelReason::COUNT],
}

impl Counters {
    fn count_kernel(&mut self, r: KernelReason) {
        self.kernel += 1;
        self.kernel_by[r.index()] += 1;
    }

    /// How many frames went to the kernel for `r`.
    pub fn kernel(&self, r: KernelReason) -> u64 {
        self.kernel_by[r.index()]
    }

    /// Every non-zero [`KernelReason`] counter, by name.
    pub fn kernel_reasons(&self) -> Vec<(&'static str, u64)> {
        KernelReason::ALL
            .iter()
            .zip(self.kernel_by.iter())
            .map(|(r, n)| (r.name(), *n))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Counts `r` without a frame (a datagram timed out).
    fn count_reason(&mut self, r: DropReason) {
        if let Some(i) = r.index() {
            self.other[i] += 1;
        }
    }

    fn count_drop(&mut self, r: DropReason) {
        self.drop += 1;
        match r {
            DropReason::Malformed(e) => {
                if let Some(n) = self.parse.get_mut(e.index()) {
                    *n += 1;
                }
            }
            other => {
                if let Some(i) = other.index() {
                    self.other[i] += 1;
                }
            }
        }
    }

    /// How many drops were counted for `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        match r {
            DropReason::Malformed(e) => self.parse.get(e.index()).copied().unwrap_or(0),
            other => other.index().map_or(0, |i| self.other[i]),
        }
    }

    /// Every drop counter, zero or not, by name (parse errors first, in
    /// counter order): the stable set of series metrics export.
    pub fn all_drop_reasons(&self) -> Vec<(&'static str, u64)> {
        let parse = ParseError::ALL
            .iter()
            .zip(self.parse.iter())
            .map(|(e, n)| (e.name(), *n));
        let other = DropReason::NAMES
            .iter()
            .zip(self.other.iter())
            .map(|(name, n)| (*name, *n));
        parse.chain(other).collect()
    }

    /// Every [`KernelReason`] counter, zero or not, by name.
    pub fn all_kernel_reasons(&self) -> Vec<(&'static str, u64)> {
        KernelReason::ALL
            .iter()
            .zip(self.kernel_by.iter())
            .map(|(r, n)| (r.name(), *n))
            .collect()
    }

    /// Every non-zero drop counter, by name.
    pub fn drop_reasons(&self) -> Vec<(&'static str, u64)> {
        let parse = ParseError::ALL
            .iter()
            .zip(self.parse.iter())
            .map(|(e, n)| (e.name(), *n));
        let other = DropReason::NAMES
            .iter()
            .zip(self.other.iter())
            .map(|(name, n)| (*name, *n));
        parse.chain(other).filter(|(_, n)| *n > 0).collect()
    }
}

/// Settings of one data plane that do not come from the service table.
#[derive(Clone, Debug)]
pub struct DataplaneConfig {
    /// Each data-plane NIC's MAC, by [`NicId`]: the source of every frame
    /// sent out of that NIC. One entry for a one-armed director.
    pub own_macs: Vec<MacAddr>,
    /// The director's addresses on its data-plane NICs: outer source of
    /// tunnels (the first of the real server's family, which may differ
    /// from the client's: tunnels cross families as in IPVS).
    pub own_addrs: Vec<IpAddr>,
    pub mtu: u16,
    /// Bit `i` set: NIC `i` may deliver frames with a partial TCP/UDP
    /// checksum (a virtual or paravirtual NIC, see
    /// `xsk::nic::may_deliver_partial_csum`), which are completed before
    /// forwarding; clear: a physical NIC, whose frames are not tested.
    pub partial_csum_nics: u8,
    pub conn_max: usize,
    pub timeouts: Timeouts,
    /// IPVS's sysctls: expire_nodest_conn, conn_reuse_mode,
    /// expire_quiescent_template, drop_entry.
    pub sysctls: ConnSysctls,
    /// Seed of the randomness handed to schedulers (twos).
    pub seed: u64,
    /// Seeds of the connection index and of the steering hash.
    pub hash_seeds: HashSeeds,
}

impl DataplaneConfig {
    /// IPVS's defaults for a table of `conn_max` connections: default
    /// timeouts and sysctls, the fixed hash seeds (replay, tests), a
    /// placeholder MAC and MTU 1500 that the shell replaces.
    pub fn new(conn_max: usize) -> DataplaneConfig {
        DataplaneConfig {
            own_macs: vec![[0x02, 0, 0, 0, 0, 1]],
            own_addrs: Vec::new(),
            mtu: 1500,
            partial_csum_nics: u8::MAX,
            conn_max,
            timeouts: Timeouts::default(),
            sysctls: ConnSysctls::default(),
            seed: 0x6c76_7366_7764,
            hash_seeds: HashSeeds::FIXED,
        }
    }
}

/// The seeds of the data plane's hashes. The core reads no randomness: the
/// daemon draws these from the OS at start (`config::os_hash_seeds`), so
/// clients cannot precompute tuples that collide in the connection index
/// or all land on one worker; `lvsfwd replay` and tests use
/// [`HashSeeds::FIXED`], so their runs repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSeeds {
    /// The connection table's indexes ([`ConnTable::with_seed`]).
    pub conn: u64,
    /// Which worker owns a flow (the shell's steering map, built from
    /// [`Dataplane::hash_seeds`]). The workers of one engine must share it.
    pub steer: u64,
}

impl HashSeeds {
    /// Known to everyone: for replay and tests only.
    pub const FIXED: HashSeeds = HashSeeds {
        conn: FIXED_HASH_SEED,
        steer: 0x6c76_7366_7374_6572,
    };
}

/// One data plane: services, connections, counters.
#[derive(Debug)]
pub struct Dataplane {
    pub services: ServiceTable,
    pub conns: ConnTable,
    pub counters: Counters,
    /// Next hops learnt from the kernel (the shell fills it); a real
    /// server's static `mac` takes precedence. Shared with the control
    /// plane's snapshot, so applying one copies nothing.
    neighbours: Arc<FxHashMap<IpAddr, NextHop>>,
    cfg: DataplaneConfig,
    /// The NIC the frame being processed arrived on.
    in_nic: NicId,
    vips: FxHashSet<IpAddr>,
    /// NAT/FULLNAT real servers: their replies pass the director, and
    /// fragmented ones are reassembled like fragments to a VIP.
    nat_rips: FxHashSet<IpAddr>,
    has_port_zero: bool,
    /// The fwmark services' classification rules with their service, in
    /// service then rule order (what `iptables -t mangle ... -j MARK`
    /// does in front of IPVS); scanned for frames of new flows only.
    fwmarks: Vec<(FwmarkMatch, u32)>,
    rng: SmallRng,
    ip_id: u16,
    /// The service specs of the last snapshot applied (pointer identity
    /// says whether a snapshot brings a new table).
    applied_specs: Option<Arc<Vec<ServiceSpec>>>,
    /// The connection table's eviction count when last looked at, and
    /// when it last grew (see [`RECLAIM_QUIET`]).
    evictions_seen: u64,
    last_eviction: Option<Timestamp>,
    /// `backup_only` with the backup sync daemon running: pass everything.
    backup_only_active: bool,
    /// The backup sync daemon runs (see [`Dataplane::set_sync_mode`]).
    sync_backup: bool,
    pub sync_counters: SyncCounters,
    /// Fragments being reassembled.
    reasm: reasm::Reasm,
    /// Frames to send besides the received one (fragments).
    extra: ExtraTx,
    /// While a reassembled datagram goes through the path: its largest
    /// fragment (`frag_max_size`).
    whole_max_frag: Option<usize>,
    /// IPv6 fragment identification of the next fragmented packet.
    frag_id: u32,
    /// Rate limits of the ICMP errors reassembly timeouts send.
    icmp_limit: reasm::ErrorLimit,
    /// Whole datagrams wait in `parked` for the shell to say which worker
    /// processes them ([`Dataplane::set_park_whole`]).
    park_whole: bool,
    parked: Option<reasm::Whole>,
}

/// The NIC of an extra frame that goes to the director's own stack (the
/// shell's kernel port), as a [`Verdict::Pass`] frame would.
pub const TO_KERNEL: NicId = NicId::MAX;

/// Bytes and frames [`Dataplane::extra`] holds: a 64 KiB datagram cut at
/// IPv4's minimum MTU, with its headers repeated.
const EXTRA_BYTES: usize = 65_536 + 160 * 128;
const EXTRA_FRAMES: usize = 160;

/// What a backup's data plane did with received sync records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncCounters {
    pub created: u64,
    pub updated: u64,
    pub ignored: u64,
    /// Records naming a virtual service or real server this director does
    /// not have: created unbound (the kernel's backup does the same).
    pub no_dest: u64,
    pub table_full: u64,
}

/// [`wire::peek_tuple`] with the protocol as the connection table keys it.
#[inline]
fn peek(frame: &[u8]) -> Option<(Protocol, IpAddr, u16, IpAddr, u16)> {
    let (proto, src, sport, dst, dport) = wire::peek_tuple(frame)?;
    let proto = if proto == wire::IPPROTO_TCP {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    Some((proto, src, sport, dst, dport))
}

impl Dataplane {
    pub fn new(cfg: DataplaneConfig, services: ServiceTable) -> Dataplane {
        let mut conns = ConnTable::with_seed(cfg.conn_max, cfg.timeouts, cfg.hash_seeds.conn);
        conns.set_sysctls(cfg.sysctls);
        let mut dp = Dataplane {
            conns,
            services,
            counters: Counters::default(),
            neighbours: Arc::default(),
            in_nic: 0,
            vips: FxHashSet::default(),
            nat_rips: FxHashSet::default(),
            has_port_zero: false,
            fwmarks: Vec::new(),
            rng: SmallRng::seed_from_u64(cfg.seed),
            ip_id: 1,
            applied_specs: None,
            evictions_seen: 0,
            last_eviction: None,
            backup_only_active: false,
            sync_backup: false,
            sync_counters: SyncCounters::default(),
            reasm: reasm::Reasm::new(),
            extra: ExtraTx::with_capacity(EXTRA_BYTES, EXTRA_FRAMES),
            whole_max_frag: None,
            frag_id: 1,
            icmp_limit: reasm::ErrorLimit::new(),
            park_whole: false,
            parked: None,
            cfg,
        };
        dp.refresh_derived();
        dp
    }

    /// Reseeds the schedulers' randomness (twos) with `seed` (the daemon
    /// draws it from the OS; `DataplaneConfig::seed` is fixed for replay
    /// and tests).
    pub fn reseed_schedulers(&mut self, seed: u64) {
        self.cfg.seed = seed;
        self.rng = SmallRng::seed_from_u64(seed);
    }

    /// The seeds this data plane was built with (the shell builds its
    /// steering map from `steer`).
    pub fn hash_seeds(&self) -> HashSeeds {
        self.cfg.hash_seeds
    }

    /// Recomputes what the per-packet path derives from the service table:
    /// the VIPs (fragments and untracked ICMP errors to them are dropped
    /// rather than passed) and whether a port-0 service needs the second
    /// lookup. Removed services (kept for their connections) do not count.
    fn refresh_derived(&mut self) {
        self.vips.clear();
        self.vips.extend(
            self.services
                .live()
                .filter(|(_, s)| !s.key.is_fwmark())
                .map(|(_, s)| s.key.addr),
        );
        self.has_port_zero = self
            .services
            .live()
            .any(|(_, s)| s.key.port == 0 && !s.key.is_fwmark());
        self.fwmarks.clear();
        for (i, s) in self.services.live() {
            self.fwmarks
                .extend(s.fwmark_matches.iter().map(|m| (*m, i)));
        }
        self.vips.extend(self.fwmarks.iter().map(|(m, _)| m.addr));
        self.nat_rips.clear();
        self.nat_rips.extend(
            self.services
                .services
                .iter()
                .flat_map(|s| s.dests.iter())
                .filter(|d| matches!(d.fwd, FwdMethod::Masq | FwdMethod::FullNat))
                .map(|d| d.addr),
        );
        self.refresh_next_hops();
        self.refresh_local();
    }

    /// Every dest's method: Local while its address is the director's own
    /// (`__ip_vs_update_dest`'s `RTN_LOCAL` check), its configured one
    /// otherwise. Follows the service table and the NIC's addresses.
    fn refresh_local(&mut self) {
        let own = &self.cfg.own_addrs;
        for s in self.services.services.iter_mut() {
            for d in s.dests.iter_mut() {
                d.set_local(is_local_addr(d.addr, own));
            }
        }
    }

    /// Every dest's `next_hop` from the neighbour map, its static MAC
    /// taking precedence over the learnt one (removed dests too: their
    /// connections may still be forwarded). A static MAC leaves through the
    /// NIC of the kernel's route to the server (the map's NIC; NIC 0 when
    /// the map does not know the server: replay, a one-armed director).
    fn refresh_next_hops(&mut self) {
        let neighbours = &self.neighbours;
        for s in self.services.services.iter_mut() {
            for d in s.dests.iter_mut() {
                let learnt = neighbours.get(&d.addr).copied();
                d.next_hop = match d.mac {
                    Some(mac) => Some(Egress {
                        nic: learnt.map_or(0, |h| h.nic),
                        mac,
                    }),
                    None => learnt.map(|h| Egress {
                        nic: h.nic,
                        mac: h.mac,
                    }),
                };
                d.route_src = learnt.and_then(|h| h.src);
            }
        }
    }

    /// Applies a new complete service configuration (lb.toml reload, an
    /// lvsadm edit) as a diff, see [`ServiceTable::apply_specs`]: connections
    /// keep their real servers, counters survive, removed servers' and
    /// services' connections follow `expire_nodest_conn` on their next
    /// packet. Call at a batch boundary: it allocates, in O(services +
    /// dests), and leaves the connection table alone.
    pub fn apply_services(&mut self, specs: &[ServiceSpec]) -> ApplySummary {
        let sum = self.services.apply_specs(specs);
        self.refresh_derived();
        // Synced conns waiting for a server that is now here.
        self.conns.bind_unbound(&mut self.services);
        sum
    }

    /// `ipvsadm --set tcp tcpfin udp`: like IPVS, each connection takes the
    /// new timeout at its next state change or packet; timers already armed
    /// keep their expiry.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.cfg.timeouts = t;
        self.conns.set_timeouts(t);
    }

    /// The connection-handling sysctls (a reload of lb.toml's [global]).
    pub fn set_sysctls(&mut self, s: ConnSysctls) {
        self.cfg.sysctls = s;
        self.conns.set_sysctls(s);
        self.backup_only_active = self.sync_backup && s.backup_only;
    }

    /// Connection sync's roles: `master` decides what to send
    /// ([`Dataplane::drain_sync`] takes it), `backup` takes received
    /// entries ([`Dataplane::apply_synced`]) and, with `backup_only`, stops
    /// balancing. Call at a batch boundary.
    pub fn set_sync_mode(&mut self, master: bool, backup: bool) {
        self.conns.set_sync_master(master);
        self.sync_backup = backup;
        self.backup_only_active = backup && self.cfg.sysctls.backup_only;
    }

    /// The sync records decided since the last call (master).
    pub fn drain_sync(&mut self) -> std::vec::Drain<'_, SyncRecord> {
        self.conns.drain_sync()
    }

    /// A received sync entry (backup), counted in
    /// [`Dataplane::sync_counters`].
    pub fn apply_synced(&mut self, r: &SyncRecord, now: Timestamp) -> SyncApplied {
        let a = self.conns.apply_synced(r, &mut self.services, now);
        let c = &mut self.sync_counters;
        *match a {
            SyncApplied::Created => &mut c.created,
            SyncApplied::Updated => &mut c.updated,
            SyncApplied::Ignored => &mut c.ignored,
            SyncApplied::CreatedUnbound => &mut c.no_dest,
            SyncApplied::TableFull => &mut c.table_full,
        } += 1;
        a
    }

    /// A reply stub for synced FULLNAT conn `r`, which worker `owner` holds
    /// ([`ConnTable::stub_synced`]). False when not made.
    pub fn stub_synced(&mut self, r: &SyncRecord, owner: u32, now: Timestamp) -> bool {
        self.conns.stub_synced(r, owner, &mut self.services, now)
    }

    /// With `expire_nodest_conn` on, expires every connection whose real
    /// server is no longer available, as kernels since 5.9 do from a delayed
    /// work after a real server or service is deleted
    /// (`ip_vs_expire_nodest_conn_flush`); older kernels, and this data
    /// plane without the call, expire them at their next packet. Walks the
    /// whole connection table (O(capacity)): call it after an
    /// [`Dataplane::apply_services`] that removed servers, when a pause of
    /// one table walk is acceptable. Persistence templates are left to
    /// their timers (they can no longer be used, IPVS's
    /// `ip_vs_check_template` invalidates them). Returns how many
    /// connections were expired; does nothing with the sysctl off.
    pub fn flush_nodest_conns(&mut self) -> usize {
        if !self.conns.sysctls().expire_nodest_conn {
            return 0;
        }
        let services = &self.services;
        let gone: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_template() && !crate::conn::is_unbound(c.dest))
            .filter(|(_, c)| {
                services
                    .services
                    .get(c.dest.svc as usize)
                    .and_then(|s| s.dests.get(c.dest.dest as usize))
                    .is_none_or(|d| !d.available)
            })
            .map(|(id, _)| id)
            .collect();
        for &id in &gone {
            // With the sysctl on and the server unavailable, check_in
            // releases the conn (the packet-less form of ip_vs_in's check).
            let d = self.conns.check_in(id, None, &mut self.services);
            debug_assert_eq!(d, InDecision::Schedule);
        }
        gone.len()
    }

    /// The first NIC's MAC (the only one of a one-armed director).
    pub fn own_mac(&self) -> MacAddr {
        self.mac_of(0)
    }

    /// The MAC frames leave `nic` from.
    #[inline]
    fn mac_of(&self, nic: NicId) -> MacAddr {
        self.cfg
            .own_macs
            .get(usize::from(nic))
            .copied()
            .unwrap_or([0; 6])
    }

    /// Runs the connection timers due at `now`. Call once per batch.
    pub fn tick(&mut self, now: Timestamp) {
        self.tick_some(now, usize::MAX);
    }

    /// [`Dataplane::tick`] running at most `budget` timers (see
    /// [`ConnTable::expire_some`]): a worker's round. Returns whether due
    /// timers are left for the next call.
    pub fn tick_some(&mut self, now: Timestamp, budget: usize) -> bool {
        self.expire_frags(now);
        self.note_evictions(now);
        self.conns.expire_some(now, &mut self.services, budget);
        self.conns.expiry_pending()
    }

    /// Frees the datagrams whose fragments did not all come in time, and
    /// answers those whose first fragment came with an ICMP time exceeded
    /// into the extra frames, as the kernel's `ip_expire` /
    /// `ip6frag_expire_frag_queue`: from the VIP the datagram was sent to;
    /// for a NAT real server's reply to a client, IPv4 sends none (only an
    /// end host does, RFC 792: `frag_expire_skip_icmp`) and IPv6 sends it
    /// from the director's address. Never to a source that is not unicast.
    fn expire_frags(&mut self, now: Timestamp) {
        let Dataplane {
            reasm,
            extra,
            counters,
            icmp_limit,
            vips,
            cfg,
            ..
        } = self;
        let n = reasm.expire(now, |e| {
            let from = if vips.contains(&e.dst) {
                Some(e.dst)
            } else if e.dst.is_ipv6() {
                cfg.own_addrs
                    .iter()
                    .copied()
                    .find(|a| matches!(a, IpAddr::V6(a) if !a.is_unicast_link_local()))
            } else {
                None
            };
            let unicast = match e.src {
                IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
                IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
            };
            let Some(from) = from.filter(|_| unicast) else {
                return;
            };
            if !icmp_limit.allow(e.src, now) {
                counters.icmp_frag_time_limited += 1;
                return;
            }
            let mac = cfg
                .own_macs
                .get(usize::from(e.nic))
                .copied()
                .unwrap_or([0; 6]);
            let f = fragout::FirstFragment {
                link: e.link,
                ip: e.ip,
                frag_hdr: e.frag_hdr,
                data: e.data,
                to: e.src,
            };
            if fragout::time_exceeded(extra, &f, from, mac, e.nic).is_ok() {
                counters.icmp_frag_time += 1;
            }
        });
        for _ in 0..n {
            self.counters.count_reason(DropReason::FragTimeout);
        }
    }

    /// The frames to send besides the received one, after a
    /// [`Verdict::Consumed`], with their NICs.
    pub fn extra(&self) -> impl Iterator<Item = (&[u8], NicId)> {
        self.extra.iter()
    }

    /// How many extra frames there are.
    pub fn extra_len(&self) -> usize {
        self.extra.len()
    }

    /// Extra frame `i`, writable (the kernel port rewrites its MAC).
    pub fn extra_mut(&mut self, i: usize) -> Option<(&mut [u8], NicId)> {
        self.extra.get_mut(i)
    }

    /// Forgets the extra frames (the shell has sent or copied them).
    pub fn clear_extra(&mut self) {
        self.extra.clear();
    }

    /// Datagrams being reassembled, and the payload bytes they hold.
    pub fn frags_held(&self) -> (usize, usize) {
        (self.reasm.in_use(), self.reasm.bytes_held())
    }

    /// Counts a frame the shell could not even hand over.
    pub fn count_oversized(&mut self) {
        self.counters.rx += 1;
        self.counters.count_drop(DropReason::Oversized);
    }

    /// The whole forwarding decision for one frame received on the first
    /// (or only) NIC.
    #[inline]
    pub fn process(&mut self, frame: &mut FrameBuf, now: Timestamp) -> Verdict {
        self.process_on(frame, 0, now)
    }

    /// The whole forwarding decision for one frame received on NIC `nic`.
    pub fn process_on(&mut self, frame: &mut FrameBuf, nic: NicId, now: Timestamp) -> Verdict {
        self.counters.rx += 1;
        self.in_nic = nic;
        // The commonest shape (untagged IPv4, TCP or UDP) first, its tuple
        // hashed for the connection lookup before the frame is validated:
        // the lookup is a chain of dependent steps (the hash's multiplies,
        // the index slot, the entry) that now runs while the validation
        // does, and `ip` is inlined here for it (-10 ns on an established
        // hit in the bench, -12 ns on a new connection). The tuple is used
        // only if the frame turns out to be of that shape.
        let v = match self.in_hash_untagged_ipv4(frame.data()) {
            Some(hash) => match wire::untagged_ipv4(frame.data()) {
                Some(ref p) => self.ip_inline(frame, p, now, Some(hash)),
                None => self.parse_and_ip(frame, now),
            },
            None => self.parse_and_ip(frame, now),
        };
        match v {
            Verdict::Tx(_) => self.counters.tx += 1,
            Verdict::Pass => self.counters.pass += 1,
            Verdict::Kernel(r) => self.counters.count_kernel(r),
            Verdict::Drop(r) => self.counters.count_drop(r),
            Verdict::Consumed => self.counters.consumed += 1,
            // Counted where it is processed.
            Verdict::HandOver(_) => self.counters.rx -= 1,
        }
        v
    }

    /// A frame [`Verdict::HandOver`] named no worker to hand it to (this
    /// one, or none that exists): the shell gives it to the kernel as for
    /// [`Verdict::Pass`], and counts it so here.
    #[cold]
    pub fn count_not_handed(&mut self) {
        self.counters.rx += 1;
        self.counters.pass += 1;
    }

    /// First prefetch stage for a frame a few places ahead in the batch
    /// (its headers already prefetched): the connection index slots its
    /// lookup will read. See [`crate::hint`].
    #[inline]
    pub fn prefetch_slots(&self, frame: &[u8]) {
        if let Some((proto, src, sport, dst, dport)) = peek(frame) {
            self.conns.prefetch_slots(proto, src, sport, dst, dport);
        }
    }

    /// Second prefetch stage, for the next frame (its slots prefetched):
    /// the connection entry its lookup will most likely land on.
    #[inline]
    pub fn prefetch_entry(&self, frame: &[u8]) {
        if let Some((proto, src, sport, dst, dport)) = peek(frame) {
            self.conns.prefetch_entry(proto, src, sport, dst, dport);
        }
    }

    /// The connection lookup's hash of a frame's client-side tuple, if the
    /// frame looks like untagged IPv4 TCP/UDP ([`wire::peek_untagged_ipv4`]).
    #[inline(always)]
    fn in_hash_untagged_ipv4(&self, frame: &[u8]) -> Option<u64> {
        let (proto, src, sport, dst, dport) = wire::peek_untagged_ipv4(frame)?;
        let proto = Protocol::from_number(proto)?;
        Some(
            self.conns
                .in_hash(proto, IpAddr::V4(src), sport, IpAddr::V4(dst), dport),
        )
    }

    /// Every other frame: the general parse. The `Headers` is lent where
    /// the parse built it, never moved out of a `Result` (a copy of ~150
    /// bytes).
    #[inline(never)]
    fn parse_and_ip(&mut self, frame: &mut FrameBuf, now: Timestamp) -> Verdict {
        wire::parse_then(frame, |frame, parsed| match parsed {
            Err(e) => Verdict::Drop(DropReason::Malformed(e)),
            Ok(None) => Verdict::Pass,
            Ok(Some(p)) => self.ip(frame, p, now),
        })
    }

    fn ip(&mut self, frame: &mut FrameBuf, p: &Headers, now: Timestamp) -> Verdict {
        self.ip_inline(frame, p, now, None)
    }

    /// [`Dataplane::ip`]; `in_hash`: the client-side lookup's hash of `p`'s
    /// tuple, when the caller computed it ahead.
    #[inline(always)]
    fn ip_inline(
        &mut self,
        frame: &mut FrameBuf,
        p: &Headers,
        now: Timestamp,
        in_hash: Option<u64>,
    ) -> Verdict {
        if self.backup_only_active {
            return Verdict::Pass;
        }
        if p.frag != Fragment::None
            && matches!(p.proto, wire::IPPROTO_TCP | wire::IPPROTO_UDP)
            && (self.vips.contains(&p.dst)
                || (self.nat_rips.contains(&p.src) && !self.cfg.own_addrs.contains(&p.dst)))
        {
            return self.reassemble(frame, p, now);
        }
        let (proto, sport, dport, tcp) = match p.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                ..
            } => (
                Protocol::Tcp,
                sport,
                dport,
                Some(TcpFlags {
                    syn: flags.syn(),
                    ack: flags.ack(),
                    fin: flags.fin(),
                    rst: flags.rst(),
                }),
            ),
            L4::Udp { sport, dport } => (Protocol::Udp, sport, dport, None),
            L4::IcmpError(ref e) => return self.icmp_error(frame, p, e),
            _ => {
                return if p.frag == Fragment::Later && self.vips.contains(&p.dst) {
                    Verdict::Drop(DropReason::Fragment)
                } else {
                    Verdict::Pass
                };
            }
        };
        if p.frag != Fragment::None && self.vips.contains(&p.dst) {
            return Verdict::Drop(DropReason::Fragment);
        }
        let ip_len = p.ip_len as u32;

        // Client side of a known connection (with IPVS's conn-reuse and
        // expire_nodest_conn checks).
        let hash = match in_hash {
            Some(h) => h,
            None => self.conns.in_hash(proto, p.src, sport, p.dst, dport),
        };
        match self.conns.packet_in_hashed(
            hash,
            proto,
            p.src,
            sport,
            p.dst,
            dport,
            tcp,
            ip_len,
            now,
            &mut self.services,
        ) {
            InPacket::Forward { id, fwd, next_hop } => {
                if self.conns.learns_macs() {
                    self.conns
                        .learn_client(id, src_mac(frame.data()), self.in_nic);
                }
                return self.xmit_in_to(frame, p, id, fwd, next_hop);
            }
            InPacket::DropNoDest => return Verdict::Drop(DropReason::DestUnavailable),
            InPacket::Schedule => {}
        }
        self.ip_unknown(frame, p, proto, sport, dport, tcp, now)
    }

    /// The rest of [`Dataplane::ip`] for a segment of no known connection
    /// from the client side: a NAT/FULLNAT reply, a new connection, or
    /// the stack's. Out of line: the established hit above stays small.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn ip_unknown(
        &mut self,
        frame: &mut FrameBuf,
        p: &Headers,
        proto: Protocol,
        sport: u16,
        dport: u16,
        tcp: Option<TcpFlags>,
        now: Timestamp,
    ) -> Verdict {
        let ip_len = p.ip_len as u32;
        // Reply of a NAT/FULLNAT connection (a reply stub is another
        // worker's conn, never translated here: the engine hands the
        // frame, untouched, over to that worker).
        if let Some(id) = self.conns.lookup_out(proto, p.src, sport, p.dst, dport) {
            if crate::conn::is_stub(self.conns.route(id).1) {
                return Verdict::HandOver(self.conns.stub_reply(id, now));
            }
            self.conns
                .on_packet(id, Direction::Out, tcp, ip_len, now, &mut self.services);
            return self.xmit_out(frame, p, id);
        }
        // A new connection to a virtual service?
        let Some(svc) = self.find_service(proto, p.dst, dport) else {
            return Verdict::Pass;
        };
        let flow = NewFlow {
            proto,
            caddr: p.src,
            cport: sport,
            vaddr: p.dst,
            vport: dport,
            client_mac: src_mac(frame.data()),
            client_nic: self.in_nic,
            tcp,
        };
        let rand = self.rng.next_u64();
        match self
            .conns
            .schedule(&mut self.services, svc, &flow, ip_len, now, rand)
        {
            Ok(id) => self.xmit_in(frame, p, id),
            Err(e) => {
                let v = schedule_failed(e, self.reclaiming(now));
                if matches!(v, Verdict::Kernel(_)) {
                    self.complete_partial_csum(frame, p);
                }
                v
            }
        }
    }

    /// Whether the connection table evicted entries within
    /// [`RECLAIM_QUIET`] of `now` (checked only for segments without a
    /// connection).
    fn reclaiming(&mut self, now: Timestamp) -> bool {
        self.note_evictions(now);
        self.last_eviction
            .is_some_and(|t| now.since(t) < RECLAIM_QUIET)
    }

    /// Notes when the connection table's eviction count last grew (at
    /// most a batch late: `tick` looks too).
    fn note_evictions(&mut self, now: Timestamp) {
        let n = self.conns.evictions();
        if n != self.evictions_seen {
            self.evictions_seen = n;
            self.last_eviction = Some(now);
        }
    }

    /// `ip_vs_service_find`: the fwmark service of the frame's mark first
    /// (a frame matching a rule carries its service's mark), then the
    /// address service, then the port-0 one.
    fn find_service(&self, proto: Protocol, addr: IpAddr, port: u16) -> Option<u32> {
        if let Some(&(_, svc)) = self
            .fwmarks
            .iter()
            .find(|(m, _)| m.matches(proto, addr, port))
        {
            return Some(svc);
        }
        let key = ServiceKey::addr(proto, addr, port);
        self.services.lookup(&key).or_else(|| {
            if self.has_port_zero {
                self.services.lookup(&ServiceKey { port: 0, ..key })
            } else {
                None
            }
        })
    }

    #[inline]
    fn next_hop(&self, id: ConnId) -> Option<Egress> {
        self.bound_dest(id).and_then(|d| d.next_hop)
    }

    /// Conn `id`'s real server; `None` for a synced conn not bound yet.
    fn bound_dest(&self, id: ConnId) -> Option<&crate::dest::Dest> {
        let r = self.conns.route(id).1;
        self.services
            .services
            .get(r.svc as usize)
            .and_then(|s| s.dests.get(r.dest as usize))
    }

    /// A tunnel's outer source towards `like`: the director's first address
    /// of its family, never an IPv6 link-local one (a real server beyond
    /// the link could not be reached from it, nor answer it).
    fn own_addr(&self, like: IpAddr) -> Option<IpAddr> {
        self.cfg
            .own_addrs
            .iter()
            .copied()
            .find(|a| match (a, like) {
                (IpAddr::V4(_), IpAddr::V4(_)) => true,
                (IpAddr::V6(a), IpAddr::V6(_)) => !a.is_unicast_link_local(),
                _ => false,
            })
    }

    /// Sends a client-side packet of connection `id` to its real server.
    #[inline]
    fn xmit_in(&mut self, frame: &mut FrameBuf, p: &Headers, id: ConnId) -> Verdict {
        let (fwd, dest) = self.conns.route(id);
        let next_hop = self.services.dest(dest).next_hop;
        self.xmit_in_to(frame, p, id, fwd, next_hop)
    }

    /// The encapsulation of connection `id`'s real server (IPVS reads it
    /// from the conn's dest at every transmit, so an edited dest's
    /// connections follow the edit).
    #[inline]
    fn tunnel_of(&self, id: ConnId) -> TunnelSpec {
        self.services.dest(self.conns.route(id).1).tun
    }

    /// [`Dataplane::xmit_in`] with the conn's method and its server's next
    /// hop already read.
    #[inline]
    fn xmit_in_to(
        &mut self,
        frame: &mut FrameBuf,
        p: &Headers,
        id: ConnId,
        fwd: FwdMethod,
        next_hop: Option<Egress>,
    ) -> Verdict {
        if fwd == FwdMethod::Local {
            // ip_vs_null_xmit: the stack takes it as it came, but with a
            // complete checksum (a partial one would fail its check).
            self.complete_partial_csum(frame, p);
            return Verdict::Kernel(KernelReason::Local);
        }
        let Some(Egress { nic, mac: dmac }) = next_hop else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        if forward::decrement_ttl(frame, p).is_err() {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        self.complete_partial_csum(frame, p);
        let smac = self.mac_of(nic);
        match fwd {
            FwdMethod::Route => forward::route(frame, p, smac, dmac),
            FwdMethod::Masq => {
                let rw = Rewrite {
                    src: None,
                    dst: Some(self.conns.server(id)),
                };
                forward::rewrite(frame, p, &rw, smac, dmac);
            }
            FwdMethod::FullNat => {
                let rw = Rewrite {
                    src: Some(self.conns.local_side_of(id)),
                    dst: Some(self.conns.server(id)),
                };
                forward::rewrite(frame, p, &rw, smac, dmac);
            }
            FwdMethod::Tunnel => {
                let daddr = self.conns.server(id).0;
                // The source the kernel's route to the server picks (the
                // NIC it leaves by, or the route's preferred source), as
                // IPVS's tunnel xmit takes it; else the first of the family.
                let Some(outer_src) = self
                    .bound_dest(id)
                    .and_then(|d| d.route_src)
                    .filter(|s| s.is_ipv4() == daddr.is_ipv4())
                    .or_else(|| self.own_addr(daddr))
                else {
                    return Verdict::Drop(DropReason::NoSourceAddr);
                };
                self.ip_id = self.ip_id.wrapping_add(1);
                let tun = self.tunnel_of(id);
                match forward::tunnel_encap(
                    frame,
                    p,
                    outer_src,
                    daddr,
                    smac,
                    dmac,
                    self.cfg.mtu,
                    self.ip_id,
                    &tun,
                ) {
                    Ok(()) => {}
                    Err(TunnelError::TooBig { .. })
                        if self
                            .whole_max_frag
                            .is_some_and(|m| m + tunnel_hdr(p) <= usize::from(self.cfg.mtu)) =>
                    {
                        // A reassembled IPv6 datagram whose fragments fit
                        // once encapsulated (__mtu_check_toobig_v6 looks at
                        // frag_max_size): the outer packet is fragmented.
                        return self.tunnel_fragmented(frame, p, outer_src, daddr, smac, dmac, nic);
                    }
                    Err(TunnelError::TooBig { .. }) if matches!(p.l4, L4::IcmpError(_)) => {
                        // Never an ICMP error about an ICMP error (RFC 1122).
                        return Verdict::Drop(DropReason::NoRoom);
                    }
                    Err(TunnelError::TooBig { mtu }) => {
                        // Tell the client, from the VIP it talked to, out
                        // of the NIC its packet came in on, in the packet's
                        // family (ICMPv4 or ICMPv6) whatever the tunnel's,
                        // with the MTU the outer header leaves.
                        let back = self.in_nic;
                        let smac = self.mac_of(back);
                        return match forward::icmp_too_big(frame, p, p.dst, mtu, smac) {
                            Ok(()) => {
                                self.counters.icmp_too_big += 1;
                                Verdict::Tx(back)
                            }
                            Err(_) => Verdict::Drop(DropReason::NoRoom),
                        };
                    }
                    Err(TunnelError::NeedsFragmentation) => {
                        return self.tunnel_fragmented(frame, p, outer_src, daddr, smac, dmac, nic);
                    }
                    Err(TunnelError::NoRoom) => return Verdict::Drop(DropReason::NoRoom),
                    Err(TunnelError::CrossFamily) => {
                        return Verdict::Drop(DropReason::TunnelFamily);
                    }
                }
            }
            // Returned above, before the next hop and TTL.
            FwdMethod::Local => return Verdict::Kernel(KernelReason::Local),
        }
        Verdict::Tx(nic)
    }

    /// IPIP without DF too big for the link: encapsulates, then fragments
    /// the outer packet into the extra frames, as `ip_vs_tunnel_xmit`
    /// leaves it to `ip_fragment`.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn tunnel_fragmented(
        &mut self,
        frame: &mut FrameBuf,
        p: &Headers,
        outer_src: IpAddr,
        daddr: IpAddr,
        smac: MacAddr,
        dmac: MacAddr,
        nic: NicId,
    ) -> Verdict {
        match forward::tunnel(frame, p, outer_src, daddr, smac, dmac, u16::MAX, self.ip_id) {
            Ok(()) => {}
            Err(TunnelError::CrossFamily) => return Verdict::Drop(DropReason::TunnelFamily),
            Err(_) => return Verdict::Drop(DropReason::NoRoom),
        }
        let mtu = usize::from(self.cfg.mtu);
        match self.fragment_out(frame.data(), p.l3_off, mtu, nic) {
            Ok(()) => Verdict::Consumed,
            Err(_) => Verdict::Drop(DropReason::NeedsFragmentation),
        }
    }

    /// Fragments the packet at `data[l3..]` to `mtu` into the extra frames.
    fn fragment_out(
        &mut self,
        data: &[u8],
        l3: usize,
        mtu: usize,
        nic: NicId,
    ) -> Result<(), fragout::FragError> {
        let version = match data.get(l3).map(|b| b >> 4) {
            Some(4) => wire::IpVersion::V4,
            Some(6) => wire::IpVersion::V6,
            _ => return Err(fragout::FragError::Bad),
        };
        self.frag_id = self.frag_id.wrapping_add(1);
        let n = fragout::fragment(data, l3, version, mtu, self.frag_id, &mut self.extra, nic)?;
        self.counters.frag_sent += n as u64;
        Ok(())
    }

    /// A fragment to a virtual service: kept until its datagram is whole,
    /// which then goes the normal way (lookup, scheduling with its ports)
    /// and leaves refragmented to its largest fragment or the MTU, as IPVS
    /// behind nf_defrag does (the output path's `ip_fragment` /
    /// `ip6_fragment` use `frag_max_size`).
    #[cold]
    fn reassemble(&mut self, frame: &mut FrameBuf, p: &Headers, now: Timestamp) -> Verdict {
        let i = match self.reasm.add_on(frame.data(), p, self.in_nic, now) {
            reasm::Added::Held => return Verdict::Consumed,
            reasm::Added::Drop(r) => return Verdict::Drop(r),
            reasm::Added::Whole(i) => i,
        };
        self.counters.frag_reassembled += 1;
        let mut w = self.reasm.take(i);
        if self.park_whole {
            // The shell decides where it goes ([`Dataplane::parked`]).
            if let Some(old) = self.parked.replace(w) {
                self.reasm.give_back(old);
            }
            return Verdict::Consumed;
        }
        let v = self.whole(&mut w, now);
        self.reasm.give_back(w);
        v
    }

    /// With [`Dataplane::set_park_whole`]: the frame of the datagram the
    /// last fragment completed, not yet processed (after a
    /// [`Verdict::Consumed`]). The shell either processes it here
    /// ([`Dataplane::process_parked`]) or hands it to the worker that owns
    /// its flow ([`Dataplane::take_parked`], [`Dataplane::process_whole`]
    /// there, [`Dataplane::give_back`] here).
    pub fn parked(&self) -> Option<&[u8]> {
        self.parked
            .as_ref()
            .and_then(|w| w.buf.get(w.head..w.head + w.len))
    }

    /// Whole datagrams wait for the shell ([`Dataplane::parked`]) instead
    /// of being processed where their last fragment came: with several
    /// workers, the one that owns the flow must process them (IPVS
    /// defragments, then looks the connection up).
    pub fn set_park_whole(&mut self, on: bool) {
        self.park_whole = on;
    }

    /// Processes the parked datagram here, its extra frames as after a
    /// [`Verdict::Consumed`]; its verdict (`Consumed`, or why it was
    /// dropped: counted as a reason, its last fragment was counted
    /// `consumed`). `None` with nothing parked.
    #[cold]
    pub fn process_parked(&mut self, now: Timestamp) -> Option<Verdict> {
        let mut w = self.parked.take()?;
        let v = self.whole(&mut w, now);
        self.reasm.give_back(w);
        Some(self.count_whole(v))
    }

    /// Takes the parked datagram to hand it to another worker.
    pub fn take_parked(&mut self) -> Option<reasm::Whole> {
        self.parked.take()
    }

    /// Processes a datagram another worker reassembled, received on `nic`
    /// (as [`Dataplane::process_parked`]); `w` then goes back to that
    /// worker's [`Dataplane::give_back`].
    #[cold]
    pub fn process_whole(&mut self, w: &mut reasm::Whole, nic: NicId, now: Timestamp) -> Verdict {
        self.in_nic = nic;
        let v = self.whole(w, now);
        self.count_whole(v)
    }

    /// Takes back the buffer of a datagram this data plane lent
    /// ([`Dataplane::take_parked`]).
    pub fn give_back(&mut self, w: reasm::Whole) {
        self.reasm.give_back(w);
    }

    fn count_whole(&mut self, v: Verdict) -> Verdict {
        if let Verdict::Drop(r) = v {
            self.counters.count_reason(r);
        }
        v
    }

    /// A whole datagram through the normal path, out refragmented into the
    /// extra frames.
    fn whole(&mut self, w: &mut reasm::Whole, now: Timestamp) -> Verdict {
        let mut fb = FrameBuf::new(&mut w.buf, w.head, w.len);
        match wire::parse(fb.data()) {
            Err(e) => Verdict::Drop(DropReason::Malformed(e)),
            Ok(Some(q)) if q.frag == Fragment::None => {
                self.whole_max_frag = Some(w.max_frag);
                let v = self.ip(&mut fb, &q, now);
                self.whole_max_frag = None;
                match v {
                    Verdict::Tx(nic) => {
                        let mtu = usize::from(self.cfg.mtu).min(w.max_frag);
                        let data = fb.data();
                        if data.len() - q.l3_off <= mtu {
                            match self.extra.push_frame(data, nic) {
                                Ok(()) => {
                                    self.counters.frag_sent += 1;
                                    Verdict::Consumed
                                }
                                Err(_) => Verdict::Drop(DropReason::NoRoom),
                            }
                        } else {
                            match self.fragment_out(data, q.l3_off, mtu, nic) {
                                Ok(()) => Verdict::Consumed,
                                Err(_) => Verdict::Drop(DropReason::NoRoom),
                            }
                        }
                    }
                    // The director's own (a port no service has, a real
                    // server's packet of no connection): the kernel gets
                    // it as it came, in fragments it reassembles. So does
                    // a reply of another worker's synced conn (a stub
                    // here), as before: wholes go by their steering only.
                    Verdict::Pass | Verdict::Kernel(_) | Verdict::HandOver(_) => {
                        let data = fb.data();
                        let n = self.extra.len();
                        match fragout::fragment(
                            data,
                            q.l3_off,
                            q.version,
                            w.max_frag,
                            self.frag_id,
                            &mut self.extra,
                            TO_KERNEL,
                        ) {
                            Ok(_) => {
                                self.counters.frag_to_kernel += (self.extra.len() - n) as u64;
                                Verdict::Consumed
                            }
                            Err(_) => Verdict::Drop(DropReason::Fragment),
                        }
                    }
                    v => v,
                }
            }
            _ => Verdict::Drop(DropReason::FragBad),
        }
    }

    /// Sends a real server's reply of NAT/FULLNAT connection `id` to the client.
    fn xmit_out(&mut self, frame: &mut FrameBuf, p: &Headers, id: ConnId) -> Verdict {
        let c = self.conns.get(id);
        let rw = match c.fwd {
            FwdMethod::Masq => Rewrite {
                src: Some((c.vaddr, c.vport)),
                dst: None,
            },
            FwdMethod::FullNat => Rewrite {
                src: Some((c.vaddr, c.vport)),
                dst: Some((c.caddr, c.cport)),
            },
            // lookup_out only finds connections whose replies come back.
            FwdMethod::Route | FwdMethod::Tunnel | FwdMethod::Local => return Verdict::Pass,
        };
        let (client_mac, client_nic) = (c.client_mac, c.client_nic);
        if forward::decrement_ttl(frame, p).is_err() {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        self.complete_partial_csum(frame, p);
        forward::rewrite(frame, p, &rw, self.mac_of(client_nic), client_mac);
        Verdict::Tx(client_nic)
    }

    /// Completes a partial TCP/UDP checksum before the frame is rewritten
    /// and sent, and counts it (see [`forward::complete_partial_csum`]).
    #[inline]
    fn complete_partial_csum(&mut self, frame: &mut FrameBuf, p: &Headers) {
        let may_be_partial = (self.cfg.partial_csum_nics >> (self.in_nic & 7)) & 1 != 0;
        if may_be_partial && forward::complete_partial_csum(frame, p) {
            self.counters.partial_csum += 1;
        }
    }

    /// ICMP errors quoting a tracked connection (`ip_vs_in_icmp` and
    /// `ip_vs_out_icmp`): the quoted packet identifies the connection, and
    /// both the outer and the quoted headers are rewritten for the other
    /// side.
    fn icmp_error(&mut self, frame: &mut FrameBuf, p: &Headers, e: &IcmpError) -> Verdict {
        let Some(proto) = Protocol::from_number(e.inner_proto) else {
            return Verdict::Pass;
        };
        if e.inner_frag == Fragment::Later {
            return if self.vips.contains(&p.dst) {
                Verdict::Drop(DropReason::IcmpUntracked)
            } else {
                Verdict::Pass
            };
        }
        // The quoted packet went from the director towards the client: the
        // error comes from the client side, about our packet VIP -> client
        // (NAT/FULLNAT replies; for DR/TUN the real server's reply, which
        // carried the VIP). Forward it to the real server.
        if let Some(id) = self.conns.lookup_in(
            proto,
            e.inner_dst,
            e.inner_dport,
            e.inner_src,
            e.inner_sport,
        ) {
            let Some(Egress { nic, mac: dmac }) = self.next_hop(id) else {
                return Verdict::Drop(DropReason::NoNextHop);
            };
            let c = self.conns.get(id);
            let rw = match c.fwd {
                FwdMethod::Route | FwdMethod::Tunnel | FwdMethod::Local => None,
                FwdMethod::Masq => Some(IcmpRewrite {
                    outer_src: None,
                    outer_dst: Some(c.daddr),
                    inner_src: Some((c.daddr, c.dport)),
                    inner_dst: None,
                }),
                FwdMethod::FullNat => Some(IcmpRewrite {
                    outer_src: Some(c.laddr),
                    outer_dst: Some(c.daddr),
                    inner_src: Some((c.daddr, c.dport)),
                    inner_dst: Some((c.laddr, c.lport)),
                }),
            };
            return match rw {
                Some(rw) => {
                    if forward::decrement_ttl(frame, p).is_err() {
                        return Verdict::Drop(DropReason::TtlExceeded);
                    }
                    forward::icmp_rewrite(frame, p, &rw, self.mac_of(nic), dmac);
                    Verdict::Tx(nic)
                }
                None => self.xmit_in(frame, p, id),
            };
        }
        // The quoted packet went from the director to a real server: the
        // error comes from the real server side. Send it to the client.
        if let Some(id) = self.conns.lookup_out(
            proto,
            e.inner_dst,
            e.inner_dport,
            e.inner_src,
            e.inner_sport,
        ) {
            let c = self.conns.get(id);
            let rw = match c.fwd {
                FwdMethod::Masq => IcmpRewrite {
                    outer_src: Some(c.vaddr),
                    outer_dst: None,
                    inner_src: None,
                    inner_dst: Some((c.vaddr, c.vport)),
                },
                FwdMethod::FullNat => IcmpRewrite {
                    outer_src: Some(c.vaddr),
                    outer_dst: Some(c.caddr),
                    inner_src: Some((c.caddr, c.cport)),
                    inner_dst: Some((c.vaddr, c.vport)),
                },
                FwdMethod::Route | FwdMethod::Tunnel | FwdMethod::Local => return Verdict::Pass,
            };
            let (client_mac, client_nic) = (c.client_mac, c.client_nic);
            if forward::decrement_ttl(frame, p).is_err() {
                return Verdict::Drop(DropReason::TtlExceeded);
            }
            forward::icmp_rewrite(frame, p, &rw, self.mac_of(client_nic), client_mac);
            return Verdict::Tx(client_nic);
        }
        Verdict::Pass
    }

    /// The connection table as `lvsadm -L -c` lists it, expiry relative to
    /// `now`.
    pub fn conn_views(&self, now: Timestamp) -> Vec<ConnView> {
        self.conns
            .iter()
            .map(|(_, c)| ConnView {
                proto: c.proto,
                any_proto: c.is_template()
                    && self
                        .services
                        .services
                        .get(c.dest.svc as usize)
                        .is_some_and(|s| s.key.is_fwmark()),
                caddr: c.caddr,
                cport: c.cport,
                vaddr: c.vaddr,
                vport: c.vport,
                daddr: c.daddr,
                dport: c.dport,
                state: c.state.name(),
                expires_in: c.expires.since(now),
                local: (c.fwd == FwdMethod::FullNat && !c.is_template())
                    .then(|| self.services.services.get(c.dest.svc as usize))
                    .flatten()
                    .map(|s| (s.key, c.laddr)),
            })
            .collect()
    }
}

/// The outer header a tunnel adds to `p`.
fn tunnel_hdr(p: &Headers) -> usize {
    match p.version {
        wire::IpVersion::V4 => wire::IPV4_HLEN,
        wire::IpVersion::V6 => wire::IPV6_HLEN,
    }
}

/// The source MAC of an Ethernet frame (parse has checked its length).
fn src_mac(frame: &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    if let Some(s) = frame.get(6..12) {
        m.copy_from_slice(s);
    }
    m
}
