//! [`ConnTable`]: the slab, its indexes and timers, and the IPVS operations
//! on them (see the module doc of `conn` for the rules and invariants).
#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::index::{Index, tuple_hash};
use super::state::{TcpTable, tcp_next};
use super::wheel::{Wheel, tick_ceil, tick_floor};
use super::{
    Conn, ConnId, ConnState, ConnSysctls, DROP_ENTRY_MAX_PKTS, Direction, EVICT_SCAN, F_INACTIVE,
    F_NO_OUTPUT, F_ONE_PACKET, F_TEMPLATE, F_TPL_INVALID, F_TPL_LINGER, F_USED, InDecision,
    LPORT_TRIES, NO_LINK, NewFlow, ScheduleError, TEMPLATE_LINGER, TcpFlags, Timeouts,
};
use crate::sched::SchedInput;
use crate::service::{Dest, DestRef, FwdMethod, Protocol, Service, ServiceTable};
use crate::time::Timestamp;

const KIND_CONN: u8 = 0;
const KIND_TPL: u8 = 1;
const KIND_OUT: u8 = 2;
/// Used by [`ConnTable::new`]; pass a random seed with
/// [`ConnTable::with_seed`] in production.
const DEFAULT_SEED: u64 = 0x6c76_7366_7764_636e;
/// The kernel gives FTP control services port-less templates.
const FTP_PORT: u16 = 21;
/// Slab indexes must leave room for the wheel's sentinels and `NO_LINK`.
const MAX_CAPACITY: usize = (u32::MAX - 1024) as usize;

/// The connection table. See the `conn` module doc.
pub struct ConnTable {
    slab: Box<[Conn]>,
    wheel: Wheel,
    free_head: u32,
    len: usize,
    /// Client tuples of conns (not one-packet ones) and template keys.
    in_idx: Index,
    /// Reply tuples of NAT and FULLNAT conns.
    out_idx: Index,
    /// Conns filed in `out_idx` (only gates prefetching it).
    out_len: usize,
    seed: u64,
    timeouts: Timeouts,
    /// `timeouts.for_state(s)` in nanoseconds, indexed by `s as usize`:
    /// the per-packet re-arm reads one word instead of matching and
    /// converting a `Duration`.
    timeout_ns: [u64; ConnState::COUNT],
    sysctls: ConnSysctls,
    lports: RangeInclusive<u16>,
    evictions: u64,
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("capacity", &self.slab.len())
            .field("timeouts", &self.timeouts)
            .field("sysctls", &self.sysctls)
            .field("evictions", &self.evictions)
            .finish()
    }
}

fn dest_mut(services: &mut ServiceTable, r: DestRef) -> Option<&mut Dest> {
    services
        .services
        .get_mut(r.svc as usize)?
        .dests
        .get_mut(r.dest as usize)
}

fn dest_ref(services: &ServiceTable, r: DestRef) -> Option<&Dest> {
    services
        .services
        .get(r.svc as usize)?
        .dests
        .get(r.dest as usize)
}

/// The client network a template is keyed by (`svc->netmask`).
fn mask_addr(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let p = u32::from(prefix.min(32));
            let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let p = u32::from(prefix.min(128));
            let m = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

fn matches_in(
    c: &Conn,
    proto: Protocol,
    caddr: IpAddr,
    cport: u16,
    vaddr: IpAddr,
    vport: u16,
) -> bool {
    c.used()
        && !c.is_template()
        && c.proto == proto
        && c.cport == cport
        && c.vport == vport
        && c.caddr == caddr
        && c.vaddr == vaddr
}

fn matches_tpl(c: &Conn, proto: Protocol, snet: IpAddr, vaddr: IpAddr, vport: u16) -> bool {
    c.used()
        && c.is_template()
        && !c.has(F_TPL_INVALID)
        && c.proto == proto
        && c.vport == vport
        && c.caddr == snet
        && c.vaddr == vaddr
}

fn matches_out(
    c: &Conn,
    proto: Protocol,
    daddr: IpAddr,
    dport: u16,
    laddr: IpAddr,
    lport: u16,
) -> bool {
    c.used()
        && !c.is_template()
        && !c.is_one_packet()
        && c.fwd.sees_replies()
        && c.proto == proto
        && c.dport == dport
        && c.lport == lport
        && c.daddr == daddr
        && c.laddr == laddr
}

/// Each state's timeout in nanoseconds (saturated to `u64`).
fn timeout_table(t: Timeouts) -> [u64; ConnState::COUNT] {
    ConnState::ALL.map(|s| u64::try_from(t.for_state(s).as_nanos()).unwrap_or(u64::MAX))
}

/// `is_new_conn_expected`: a SYN on this conn starts a new connection.
fn new_conn_expected(c: &Conn, reuse_mode: u8) -> bool {
    if c.control != NO_LINK || c.proto != Protocol::Tcp {
        return false;
    }
    matches!(c.state, ConnState::TimeWait | ConnState::Close)
        || (reuse_mode & 2 != 0 && c.state == ConnState::FinWait && c.has(F_NO_OUTPUT))
}

impl ConnTable {
    /// A table for `capacity` entries (conns and templates) with a fixed
    /// hash seed; everything is allocated here.
    pub fn new(capacity: usize, timeouts: Timeouts) -> ConnTable {
        ConnTable::with_seed(capacity, timeouts, DEFAULT_SEED)
    }

    /// Like [`ConnTable::new`] with a hash seed (take it from a random
    /// source so tuple hashes cannot be predicted).
    pub fn with_seed(capacity: usize, timeouts: Timeouts, seed: u64) -> ConnTable {
        let cap = capacity.min(MAX_CAPACITY);
        let mut slab = vec![Conn::EMPTY; cap].into_boxed_slice();
        for (i, c) in slab.iter_mut().enumerate() {
            c.control = if i + 1 < cap { i as u32 + 1 } else { NO_LINK };
        }
        ConnTable {
            slab,
            wheel: Wheel::new(cap as u32),
            free_head: if cap > 0 { 0 } else { NO_LINK },
            len: 0,
            in_idx: Index::with_capacity(cap),
            out_idx: Index::with_capacity(cap),
            out_len: 0,
            seed,
            timeouts,
            timeout_ns: timeout_table(timeouts),
            sysctls: ConnSysctls::default(),
            lports: 1024..=65535,
            evictions: 0,
        }
    }

    /// Live entries, templates included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slab.len()
    }

    /// Conns reclaimed by the full-table policy so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Bytes held by the table (slab, timer links, both indexes).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slab)
            + self.wheel.bytes()
            + self.in_idx.bytes()
            + self.out_idx.bytes()
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// `ipvsadm --set`: applies from each conn's next packet on, as in IPVS.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
        self.timeout_ns = timeout_table(t);
    }

    pub fn sysctls(&self) -> ConnSysctls {
        self.sysctls
    }

    pub fn set_sysctls(&mut self, s: ConnSysctls) {
        self.sysctls = s;
    }

    /// The FULLNAT local port range (default 1024-65535).
    pub fn set_fullnat_ports(&mut self, ports: RangeInclusive<u16>) {
        let (a, b) = (*ports.start(), *ports.end());
        self.lports = a.min(b)..=a.max(b);
    }

    /// The entry `id` names. `id` must come from this table and still be
    /// valid (see the module invariants).
    pub fn get(&self, id: ConnId) -> &Conn {
        &self.slab[id.0 as usize]
    }

    /// Every live entry, templates included (`ipvsadm -L -c`).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, c)| c.used())
            .map(|(i, c)| (ConnId(i as u32), c))
    }

    fn in_hash(
        &self,
        proto: Protocol,
        caddr: IpAddr,
        cport: u16,
        vaddr: IpAddr,
        vport: u16,
    ) -> u64 {
        tuple_hash(
            self.seed,
            KIND_CONN,
            proto.number(),
            caddr,
            cport,
            vaddr,
            vport,
        )
    }

    fn tpl_hash(&self, proto: Protocol, snet: IpAddr, vaddr: IpAddr, vport: u16) -> u64 {
        tuple_hash(self.seed, KIND_TPL, proto.number(), snet, 0, vaddr, vport)
    }

    fn out_hash(
        &self,
        proto: Protocol,
        daddr: IpAddr,
        dport: u16,
        laddr: IpAddr,
        lport: u16,
    ) -> u64 {
        tuple_hash(
            self.seed,
            KIND_OUT,
            proto.number(),
            daddr,
            dport,
            laddr,
            lport,
        )
    }

    /// The conn of a client -> VIP packet (`ip_vs_conn_in_get`); never a
    /// template, never a one-packet conn.
    #[inline]
    pub fn lookup_in(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> Option<ConnId> {
        let h = self.in_hash(proto, src, sport, dst, dport);
        self.in_idx
            .find(h, |i| {
                matches_in(&self.slab[i as usize], proto, src, sport, dst, dport)
            })
            .map(ConnId)
    }

    /// Prefetch, first stage, for a packet `src:sport -> dst:dport` to come:
    /// the index slots its lookups start at (the client side, and the reply
    /// side while NAT or FULLNAT conns exist).
    #[inline]
    pub fn prefetch_slots(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) {
        self.in_idx
            .prefetch(self.in_hash(proto, src, sport, dst, dport));
        if self.has_reply_conns() {
            self.out_idx
                .prefetch(self.out_hash(proto, src, sport, dst, dport));
        }
    }

    /// Prefetch, second stage (once the slots are cached): the entry the
    /// client-side lookup will most likely land on, and its timer link.
    #[inline]
    pub fn prefetch_entry(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) {
        let h = self.in_hash(proto, src, sport, dst, dport);
        let i = match self.in_idx.first_with_tag(h) {
            Some(i) => Some(i),
            None if self.has_reply_conns() => self
                .out_idx
                .first_with_tag(self.out_hash(proto, src, sport, dst, dport)),
            None => None,
        };
        if let Some(c) = i.and_then(|i| self.slab.get(i as usize)) {
            crate::hint::prefetch(c);
            self.wheel.prefetch(i.unwrap_or_default());
        }
    }

    /// Whether any conn routes its replies through the director (NAT,
    /// FULLNAT).
    #[inline]
    pub fn has_reply_conns(&self) -> bool {
        self.out_len > 0
    }

    /// The conn of a reply: `RIP:rport -> client` (NAT) or
    /// `RIP:rport -> laddr:lport` (FULLNAT). Only conns whose forwarding
    /// method routes replies through the director.
    #[inline(always)]
    pub fn lookup_out(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> Option<ConnId> {
        // Without reply conns nothing can match: no cold index slot read
        // (every new DR/TUN connection asks).
        if self.out_len == 0 {
            return None;
        }
        let h = self.out_hash(proto, src, sport, dst, dport);
        self.out_idx
            .find(h, |i| {
                matches_out(&self.slab[i as usize], proto, src, sport, dst, dport)
            })
            .map(ConnId)
    }

    fn find_template(
        &self,
        proto: Protocol,
        snet: IpAddr,
        vaddr: IpAddr,
        vport: u16,
    ) -> Option<u32> {
        let h = self.tpl_hash(proto, snet, vaddr, vport);
        self.in_idx.find(h, |i| {
            matches_tpl(&self.slab[i as usize], proto, snet, vaddr, vport)
        })
    }

    /// [`ConnTable::lookup_in`] followed by [`ConnTable::check_in`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn resolve_in(
        &mut self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        tcp: Option<TcpFlags>,
        services: &mut ServiceTable,
    ) -> InDecision {
        match self.lookup_in(proto, src, sport, dst, dport) {
            Some(id) => self.check_in(id, tcp, services),
            None => InDecision::Schedule,
        }
    }

    /// IPVS's checks (`ip_vs_in`) on a client packet that matched conn
    /// `id`, in the kernel's order:
    /// 1. A TCP SYN reschedules when `expire_nodest_conn` is on and the
    ///    conn's server has weight 0, or when `conn_reuse_mode` says the old
    ///    conn is finished (`is_new_conn_expected`: TIME_WAIT / CLOSE, with
    ///    bit 1 also FIN_WAIT of DR/TUN conns; never a persistence-controlled
    ///    conn, which keeps its server and takes the SYN through the state
    ///    table instead).
    /// 2. A conn whose server was removed (or whose `DestRef` no longer
    ///    resolves in `services`): with `expire_nodest_conn` it is
    ///    expired and the packet may be scheduled afresh (UDP moves to a live
    ///    server at once; a non-SYN TCP segment then gets
    ///    [`ScheduleError::NotSyn`]); without it the packet is dropped and the
    ///    conn lives until its timer.
    ///
    /// Where the kernel expires the old conn "now" (next jiffy) this frees it
    /// immediately, so the new conn never shares a tuple with it; a template
    /// it was controlled by stays.
    #[inline]
    pub fn check_in(
        &mut self,
        id: ConnId,
        tcp: Option<TcpFlags>,
        services: &mut ServiceTable,
    ) -> InDecision {
        let i = id.0;
        let Some(c) = self
            .slab
            .get(i as usize)
            .filter(|c| c.used() && !c.is_template())
        else {
            return InDecision::Schedule;
        };
        let dest = dest_ref(services, c.dest);
        let syn = c.proto == Protocol::Tcp && tcp.is_some_and(|f| f.syn);
        if syn {
            let quiesced = self.sysctls.expire_nodest_conn && dest.is_some_and(|d| d.weight == 0);
            let reuse = self.sysctls.conn_reuse_mode != 0
                && new_conn_expected(c, self.sysctls.conn_reuse_mode);
            if quiesced || reuse {
                self.release(i, services);
                return InDecision::Schedule;
            }
        }
        if !dest.is_some_and(|d| d.available) {
            if self.sysctls.expire_nodest_conn {
                self.release(i, services);
                return InDecision::Schedule;
            }
            return InDecision::DropNoDest;
        }
        InDecision::Forward(id)
    }

    /// One packet of an existing conn: traffic stats (only while the server
    /// is available, as `ip_vs_in_stats` / `ip_vs_out_stats`), the TCP state
    /// transition with its ActiveConn/InActConn move, and the timer re-armed
    /// for the (new) state. `tcp` = `None` on a TCP conn (e.g. an ICMP error
    /// about it) re-arms without a transition; flags with none of
    /// SYN/FIN/ACK/RST move it to CLOSE, as the kernel does.
    #[inline]
    pub fn on_packet(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp: Option<TcpFlags>,
        ip_len: u32,
        now: Timestamp,
        services: &mut ServiceTable,
    ) {
        let i = id.0 as usize;
        if !self
            .slab
            .get(i)
            .is_some_and(|c| c.used() && !c.is_template())
        {
            return;
        }
        self.account(i, dir, ip_len, services);
        let before = self.slab[i].state;
        self.transition(i, dir, tcp, services);
        let same_state = self.slab[i].state == before;
        self.rearm(i, now, same_state);
    }

    #[inline]
    fn account(&mut self, i: usize, dir: Direction, bytes: u32, services: &mut ServiceTable) {
        if dir == Direction::In {
            let c = &mut self.slab[i];
            c.in_pkts = c.in_pkts.saturating_add(1);
        }
        let r = self.slab[i].dest;
        let Some(Service { dests, stats, .. }) = services.services.get_mut(r.svc as usize) else {
            return;
        };
        let Some(d) = dests.get_mut(r.dest as usize) else {
            return;
        };
        if !d.available {
            return;
        }
        let b = u64::from(bytes);
        match dir {
            Direction::In => {
                d.stats.inpkts += 1;
                d.stats.inbytes += b;
                stats.inpkts += 1;
                stats.inbytes += b;
            }
            Direction::Out => {
                d.stats.outpkts += 1;
                d.stats.outbytes += b;
                stats.outpkts += 1;
                stats.outbytes += b;
            }
        }
    }

    /// `set_tcp_state`.
    #[inline]
    fn transition(
        &mut self,
        i: usize,
        dir: Direction,
        tcp: Option<TcpFlags>,
        services: &mut ServiceTable,
    ) {
        let c = &mut self.slab[i];
        if c.proto != Protocol::Tcp {
            return;
        }
        let Some(f) = tcp else {
            return;
        };
        let table = match dir {
            Direction::Out => {
                c.flags &= !F_NO_OUTPUT;
                TcpTable::Output
            }
            Direction::In if c.has(F_NO_OUTPUT) => TcpTable::InputOnly,
            Direction::In => TcpTable::Input,
        };
        let new = tcp_next(table, c.state, f);
        if new == c.state {
            return;
        }
        if let Some(d) = dest_mut(services, c.dest) {
            if !c.is_inactive() && !new.is_active() {
                d.active_conns = d.active_conns.saturating_sub(1);
                d.inact_conns += 1;
                c.flags |= F_INACTIVE;
            } else if c.is_inactive() && new.is_active() {
                d.active_conns += 1;
                d.inact_conns = d.inact_conns.saturating_sub(1);
                c.flags &= !F_INACTIVE;
            }
            d.update_overload();
        }
        c.state = new;
    }

    /// Sets entry `i`'s deadline for its state from `now`. `same_state`:
    /// the packet left the state as it was (see the lazy case below).
    #[inline]
    fn rearm(&mut self, i: usize, now: Timestamp, same_state: bool) {
        let c = &mut self.slab[i];
        if c.is_one_packet() {
            c.expires = now;
            self.wheel.insert_immediate(i as u32);
        } else {
            // Saturating, as `Timestamp + Duration` is.
            let next = Timestamp(now.0.saturating_add(self.timeout_ns[c.state as usize]));
            // Lazy re-arm: a packet that keeps the state (the common case,
            // every packet of an established flow) pushes the deadline out
            // and leaves the armed timer where it is, earlier; when it
            // fires, `expire` sees the real deadline and re-places the
            // entry. A state change (or a new, unarmed entry) moves the
            // timer at once, so the wheel's order, which the eviction scan
            // walks, stays close to the real deadlines. Invariant: an armed
            // entry's timer tick is never later than `tick_ceil(expires)`.
            let lazy = same_state && next >= c.expires && self.wheel.is_armed(i as u32);
            c.expires = next;
            if !lazy {
                self.wheel.insert(i as u32, tick_ceil(next.0));
            }
        }
    }

    /// Runs every timer due at `now`: frees expired conns and templates
    /// (unbinding them from their dest) and re-arms templates that still
    /// control conns for [`TEMPLATE_LINGER`]. Returns how many entries were
    /// freed. O(1) when nothing is due.
    pub fn expire(&mut self, now: Timestamp, services: &mut ServiceTable) -> usize {
        let now_tick = tick_floor(now.0);
        if self.wheel.idle(now_tick) {
            return 0;
        }
        let slab = &self.slab;
        self.wheel
            .collect_due(now_tick, |i| tick_ceil(slab[i as usize].expires.0));
        let mut freed = 0;
        // Round 0 runs every due timer. A template that still controls conns
        // is re-armed for TEMPLATE_LINGER after its own deadline, as the
        // kernel's timer would have been; when `now` is already past that
        // (a sparse clock: replay, an idle worker), it is deferred to round 1,
        // after every conn due by `now` has been freed, so it sees what the
        // kernel would see at that later deadline.
        let mut deferred = false;
        for round in 0..2 {
            if round == 1 {
                if !deferred {
                    break;
                }
                let slab = &self.slab;
                self.wheel
                    .collect_due(now_tick, |i| tick_ceil(slab[i as usize].expires.0));
            }
            while let Some(i) = self.wheel.pop_due() {
                let c = &mut self.slab[i as usize];
                // Re-armed lazily (`rearm`): not due yet, file it by its
                // real deadline.
                let due = tick_ceil(c.expires.0);
                if due > now_tick {
                    self.wheel.insert(i, due);
                    continue;
                }
                if c.is_template() && c.n_control > 0 {
                    c.flags |= F_TPL_LINGER;
                    let mut next = c.expires + TEMPLATE_LINGER;
                    if round == 0 && next <= now {
                        c.expires = next;
                        self.wheel.insert_immediate(i);
                        deferred = true;
                        continue;
                    }
                    if next <= now {
                        // Still controlling live conns: the kernel re-armed
                        // it every TEMPLATE_LINGER until now.
                        let periods = now.since(next).as_nanos() / TEMPLATE_LINGER.as_nanos() + 1;
                        next = next + TEMPLATE_LINGER * periods as u32;
                    }
                    c.expires = next;
                    self.wheel.insert(i, tick_ceil(next.0));
                    continue;
                }
                self.release(i, services);
                freed += 1;
            }
        }
        freed
    }

    /// Unhashes, unbinds (`ip_vs_unbind_dest`, `ip_vs_control_del`) and
    /// frees entry `i`.
    fn release(&mut self, i: u32, services: &mut ServiceTable) {
        let c = &self.slab[i as usize];
        if !c.used() {
            return;
        }
        let (proto, flags, control, dest, fwd) = (c.proto, c.flags, c.control, c.dest, c.fwd);
        let template = flags & F_TEMPLATE != 0;
        if template {
            if flags & F_TPL_INVALID == 0 {
                let h = self.tpl_hash(proto, c.caddr, c.vaddr, c.vport);
                self.in_idx.remove(h, i);
            }
        } else if flags & F_ONE_PACKET == 0 {
            let h = self.in_hash(proto, c.caddr, c.cport, c.vaddr, c.vport);
            let ho = self.out_hash(proto, c.daddr, c.dport, c.laddr, c.lport);
            self.in_idx.remove(h, i);
            if fwd.sees_replies() {
                self.out_idx.remove(ho, i);
                self.out_len = self.out_len.saturating_sub(1);
            }
        }
        self.wheel.remove(i);
        if !template
            && control != NO_LINK
            && let Some(t) = self.slab.get_mut(control as usize)
        {
            t.n_control = t.n_control.saturating_sub(1);
        }
        if let Some(d) = dest_mut(services, dest) {
            if template {
                d.persist_conns = d.persist_conns.saturating_sub(1);
            } else if flags & F_INACTIVE != 0 {
                d.inact_conns = d.inact_conns.saturating_sub(1);
            } else {
                d.active_conns = d.active_conns.saturating_sub(1);
            }
            d.update_overload();
        }
        let e = &mut self.slab[i as usize];
        e.flags = 0;
        e.n_control = 0;
        e.control = self.free_head;
        self.free_head = i;
        self.len -= 1;
    }

    /// Makes `n` (at most 2) entries free, evicting the best candidates of
    /// one bounded scan (see the module doc). Evicts nothing and returns
    /// false when the scan cannot supply enough candidates.
    fn ensure_room(&mut self, n: usize, services: &mut ServiceTable) -> bool {
        let missing = n.saturating_sub(self.slab.len() - self.len);
        if missing == 0 {
            return true;
        }
        debug_assert!(missing <= 2);
        // The `missing` candidates nearest to expiry, soonest first: first
        // among the half-open and closing conns, then (drop_entry) among
        // the established ones with few client packets.
        let mut best: [[Option<(u32, Timestamp)>; 2]; 2] = [[None; 2]; 2];
        let slab = &self.slab;
        let drop_entry = self.sysctls.drop_entry;
        self.wheel.scan(EVICT_SCAN, |i| {
            let c = &slab[i as usize];
            let tier = if c.is_template() {
                return;
            } else if c.state != ConnState::Established {
                0
            } else if drop_entry && c.in_pkts <= DROP_ENTRY_MAX_PKTS {
                1
            } else {
                return;
            };
            let cand = (i, c.expires);
            let best = &mut best[tier];
            match *best {
                [None, _] => best[0] = Some(cand),
                [Some(a), _] if cand.1 < a.1 => *best = [Some(cand), best[0]],
                [Some(_), None] => best[1] = Some(cand),
                [Some(_), Some(b)] if cand.1 < b.1 => best[1] = Some(cand),
                _ => {}
            }
        });
        let mut ranked = best.into_iter().flatten().flatten();
        let chosen = [ranked.next(), ranked.next()];
        if chosen.iter().take(missing).any(Option::is_none) {
            return false;
        }
        for (i, _) in chosen.into_iter().take(missing).flatten() {
            self.release(i, services);
            self.evictions += 1;
        }
        true
    }

    /// Takes a free entry, fills it with `c`, binds it to its dest
    /// (`ip_vs_bind_dest`) and hashes it.
    fn insert_entry(&mut self, c: Conn, services: &mut ServiceTable) -> u32 {
        let i = self.free_head;
        debug_assert!(i != NO_LINK, "ensure_room first");
        self.free_head = self.slab[i as usize].control;
        self.len += 1;
        let (proto, template, one_packet) = (c.proto, c.is_template(), c.is_one_packet());
        if let Some(d) = dest_mut(services, c.dest) {
            if template {
                d.persist_conns += 1;
            } else if c.is_inactive() {
                d.inact_conns += 1;
            } else {
                d.active_conns += 1;
            }
            d.update_overload();
        }
        let (caddr, cport, vaddr, vport) = (c.caddr, c.cport, c.vaddr, c.vport);
        let (daddr, dport, laddr, lport, fwd) = (c.daddr, c.dport, c.laddr, c.lport, c.fwd);
        self.slab[i as usize] = c;
        let slab = &self.slab;
        if template {
            let h = self.tpl_hash(proto, caddr, vaddr, vport);
            self.in_idx.insert(h, i, |j| {
                j != i && matches_tpl(&slab[j as usize], proto, caddr, vaddr, vport)
            });
        } else if !one_packet {
            let h = self.in_hash(proto, caddr, cport, vaddr, vport);
            self.in_idx.insert(h, i, |j| {
                j != i && matches_in(&slab[j as usize], proto, caddr, cport, vaddr, vport)
            });
            if fwd.sees_replies() {
                self.out_len += 1;
                let h = self.out_hash(proto, daddr, dport, laddr, lport);
                self.out_idx.insert(h, i, |j| {
                    j != i && matches_out(&slab[j as usize], proto, daddr, dport, laddr, lport)
                });
            }
        }
        i
    }

    /// `ip_vs_check_template` failing: unhash the template so it is never
    /// found again and let it die on its own timer (it keeps its
    /// PersistConn until then). Listed with ports 65535 like the kernel's.
    fn invalidate_template(&mut self, t: u32) {
        let c = &self.slab[t as usize];
        let h = self.tpl_hash(c.proto, c.caddr, c.vaddr, c.vport);
        self.in_idx.remove(h, t);
        let c = &mut self.slab[t as usize];
        c.flags |= F_TPL_INVALID;
        c.vport = 0xffff;
        c.dport = 0xffff;
        c.cport = 0;
    }

    /// FULLNAT: a local address and port that make the reply tuple unique.
    #[allow(clippy::too_many_arguments)]
    fn local_side(
        &self,
        proto: Protocol,
        fwd: FwdMethod,
        client: (IpAddr, u16),
        daddr: IpAddr,
        dport: u16,
        pool: &[IpAddr],
        rand: u64,
    ) -> Result<(IpAddr, u16), ScheduleError> {
        if fwd != FwdMethod::FullNat {
            return Ok(client);
        }
        let v6 = daddr.is_ipv6();
        let family = || pool.iter().copied().filter(move |a| a.is_ipv6() == v6);
        let k = family().count() as u64;
        if k == 0 {
            return Err(ScheduleError::NoLocalAddr);
        }
        let lo = *self.lports.start();
        let nports = u64::from(*self.lports.end() - lo) + 1;
        let space = k * nports;
        // Decorrelate from the bits the scheduler saw.
        let start = (rand.rotate_left(23) ^ 0x5851_f42d_4c95_7f2d)
            .wrapping_mul(0x2545_f491_4f6c_dd1d)
            % space;
        for s in 0..space.min(LPORT_TRIES as u64) {
            let x = (start + s) % space;
            let Some(laddr) = family().nth((x % k) as usize) else {
                break;
            };
            let lport = lo + (x / k) as u16;
            if self.lookup_out(proto, daddr, dport, laddr, lport).is_none() {
                return Ok((laddr, lport));
            }
        }
        Err(ScheduleError::NoLocalAddr)
    }

    /// Creates the conn for the first packet of a flow to service `svc`
    /// (`ip_vs_schedule`, or `ip_vs_sched_persist` for a persistent
    /// service), already accounted for that packet (stats, SYN transition,
    /// timer): do not call [`ConnTable::on_packet`] for it.
    ///
    /// - TCP: only a segment with SYN and without RST may create a conn
    ///   (`tcp_conn_schedule`, `sloppy_tcp` = 0; like the kernel, ACK is not
    ///   looked at). UDP: any datagram.
    /// - Persistence: the template `<proto, client & prefix, 0, vaddr, vport>`
    ///   (vport 0 for an FTP service on port 21) picks the server while that
    ///   server is available (and, with `expire_quiescent_template`, has a
    ///   weight); otherwise the scheduler picks one and a new template is
    ///   made. Each new conn re-arms the template for the service's
    ///   persistence timeout (or [`TEMPLATE_LINGER`] once it lingered).
    /// - One-packet services (ops, UDP only): the conn is not hashed and is
    ///   freed at the next [`ConnTable::expire`].
    /// - FULLNAT: `laddr:lport` as described in the module doc.
    /// - Counters: InActConn (then the SYN moves it to ActiveConn),
    ///   PersistConn for a new template, `conns` of dest and service.
    pub fn schedule(
        &mut self,
        services: &mut ServiceTable,
        svc: u32,
        flow: &NewFlow,
        ip_len: u32,
        now: Timestamp,
        rand: u64,
    ) -> Result<ConnId, ScheduleError> {
        if flow.proto == Protocol::Tcp && !flow.tcp.is_some_and(|f| f.syn && !f.rst) {
            return Err(ScheduleError::NotSyn);
        }
        let Some(service) = services.services.get_mut(svc as usize) else {
            return Err(ScheduleError::NoDest);
        };
        let one_packet = service.ops && flow.proto == Protocol::Udp;
        let persistence = service.persistence;
        let svc_port = service.key.port;

        // Persistence: find a usable template first.
        let mut tpl: Option<u32> = None;
        let mut tpl_key = None;
        if persistence.is_some() {
            let snet = mask_addr(flow.caddr, service.persistence_prefix);
            let tvport = if svc_port == FTP_PORT { 0 } else { flow.vport };
            tpl_key = Some((snet, tvport));
            if let Some(t) = self.find_template(flow.proto, snet, flow.vaddr, tvport) {
                let usable = service
                    .dests
                    .get(self.slab[t as usize].dest.dest as usize)
                    .is_some_and(|d| {
                        d.available && !(self.sysctls.expire_quiescent_template && d.weight == 0)
                    });
                if usable {
                    tpl = Some(t);
                } else {
                    self.invalidate_template(t);
                }
            }
        }

        let d = match tpl {
            Some(t) => self.slab[t as usize].dest.dest as usize,
            None => {
                let input = SchedInput {
                    src: flow.caddr,
                    sport: flow.cport,
                    dst: flow.vaddr,
                    dport: flow.vport,
                    now,
                    rand,
                };
                service
                    .sched
                    .schedule(&service.dests, &input)
                    .filter(|&d| service.dests.get(d).is_some_and(|x| x.available))
                    .ok_or(ScheduleError::NoDest)?
            }
        };
        let dest = &service.dests[d];
        let (daddr, fwd) = (dest.addr, dest.fwd);
        let dport = if flow.vport == svc_port && dest.port != 0 {
            dest.port
        } else {
            flow.vport
        };
        let (laddr, lport) = self.local_side(
            flow.proto,
            fwd,
            (flow.caddr, flow.cport),
            daddr,
            dport,
            &service.local_addrs,
            rand,
        )?;
        let tpl_dport = if svc_port == FTP_PORT { 0 } else { dest.port };

        let need = if tpl_key.is_some() && tpl.is_none() {
            2
        } else {
            1
        };
        if !self.ensure_room(need, services) {
            return Err(ScheduleError::TableFull);
        }
        let dref = DestRef {
            svc,
            dest: d as u32,
        };

        if let (Some((snet, tvport)), None) = (tpl_key, tpl) {
            let t = Conn {
                proto: flow.proto,
                caddr: snet,
                cport: 0,
                vaddr: flow.vaddr,
                vport: tvport,
                daddr,
                dport: tpl_dport,
                laddr: snet,
                lport: 0,
                dest: dref,
                fwd,
                state: ConnState::None,
                client_mac: flow.client_mac,
                expires: now,
                flags: F_USED | F_TEMPLATE | F_INACTIVE,
                in_pkts: 0,
                control: NO_LINK,
                n_control: 0,
            };
            tpl = Some(self.insert_entry(t, services));
        }

        let mut flags = F_USED | F_INACTIVE;
        if !fwd.sees_replies() {
            flags |= F_NO_OUTPUT;
        }
        if one_packet {
            flags |= F_ONE_PACKET;
        }
        let c = Conn {
            proto: flow.proto,
            caddr: flow.caddr,
            cport: flow.cport,
            vaddr: flow.vaddr,
            vport: flow.vport,
            daddr,
            dport,
            laddr,
            lport,
            dest: dref,
            fwd,
            state: if flow.proto == Protocol::Udp {
                ConnState::Udp
            } else {
                ConnState::None
            },
            client_mac: flow.client_mac,
            expires: now,
            flags,
            in_pkts: 0,
            control: tpl.unwrap_or(NO_LINK),
            n_control: 0,
        };
        let i = self.insert_entry(c, services);

        if let (Some(t), Some(p)) = (tpl, persistence) {
            let e = &mut self.slab[t as usize];
            e.n_control += 1;
            let timeout: Duration = if e.has(F_TPL_LINGER) {
                TEMPLATE_LINGER
            } else {
                p
            };
            e.expires = now + timeout;
            self.wheel.insert(t, tick_ceil(e.expires.0));
        }

        if let Some(Service { dests, stats, .. }) = services.services.get_mut(svc as usize) {
            stats.conns += 1;
            if let Some(x) = dests.get_mut(d) {
                x.stats.conns += 1;
            }
        }
        self.account(i as usize, Direction::In, ip_len, services);
        self.transition(i as usize, Direction::In, flow.tcp, services);
        self.rearm(i as usize, now, false);
        Ok(ConnId(i))
    }
}
