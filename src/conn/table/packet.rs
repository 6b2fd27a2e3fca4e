//! The per-packet path: lookups (client side, reply side), prefetching,
//! IPVS's checks on a matched conn, and what a packet does to its conn
//! (stats, TCP state, timer).

use std::net::IpAddr;

use super::entry::Entry;
use super::{ConnTable, KIND_CONN, KIND_OUT, Tuple, dest_mut, dest_ref};
use crate::conn::state::{TcpTable, tcp_next};
use crate::conn::wheel::tick_ceil;
use crate::conn::{
    ConnId, ConnState, Direction, F_INACTIVE, F_NO_OUTPUT, InDecision, NO_LINK, TcpFlags,
};
use crate::dest::{Egress, FwdMethod};
use crate::service::{DestRef, Protocol, Service, ServiceTable, Stats};
use crate::time::Timestamp;

/// [`ConnTable::packet_in_hashed`]'s answer: [`InDecision`] with what sending the
/// packet takes, read from the entry as the checks went (no decode, no
/// second lookup of the conn or its server).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InPacket {
    /// Accounted (stats, TCP state, timer): send it by `fwd` to
    /// `next_hop` (the conn's server's, `None`: not known). For NAT,
    /// FULLNAT and TUN read the rest with [`ConnTable::server`] and
    /// [`ConnTable::local_side_of`].
    Forward {
        id: ConnId,
        fwd: FwdMethod,
        next_hop: Option<Egress>,
    },
    /// As [`InDecision::Schedule`].
    Schedule,
    /// As [`InDecision::DropNoDest`].
    DropNoDest,
}

/// `is_new_conn_expected`: a SYN on this conn starts a new connection.
fn new_conn_expected(c: &Entry, reuse_mode: u8) -> bool {
    if c.control != NO_LINK || c.proto() != Protocol::Tcp {
        return false;
    }
    matches!(c.state, ConnState::TimeWait | ConnState::Close)
        || (reuse_mode & 2 != 0 && c.state == ConnState::FinWait && c.has(F_NO_OUTPUT))
}

/// One packet of `bytes` going `dir` in `s`.
#[inline(always)]
fn add_traffic(s: &mut Stats, dir: Direction, bytes: u64) {
    match dir {
        Direction::In => {
            s.inpkts += 1;
            s.inbytes += bytes;
        }
        Direction::Out => {
            s.outpkts += 1;
            s.outbytes += bytes;
        }
    }
}

impl ConnTable {
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
        self.find::<KIND_CONN>(Tuple::new(proto, src, sport, dst, dport))
            .map(ConnId)
    }

    /// The hash the client-side index files `src:sport -> dst:dport` under
    /// with this table's seed (its upper 32 bits pick the home slot). For
    /// tests and benches that build colliding tuples; not the packet path.
    pub fn hash_in(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> u64 {
        self.hash::<KIND_CONN>(&Tuple::new(proto, src, sport, dst, dport))
    }

    /// How many index slots [`ConnTable::lookup_in`] of this tuple examines
    /// (1: at its home slot): the probe distance that collisions lengthen.
    /// For tests and benches; not the packet path.
    pub fn probes_in(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> usize {
        let t = Tuple::new(proto, src, sport, dst, dport);
        let slab = &self.slab;
        self.in_idx.probes(self.hash::<KIND_CONN>(&t), move |i| {
            t.matches::<KIND_CONN>(&slab[i as usize])
        })
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
        let t = Tuple::new(proto, src, sport, dst, dport);
        self.in_idx.prefetch(self.hash::<KIND_CONN>(&t));
        if self.has_reply_conns() {
            self.out_idx.prefetch(self.hash::<KIND_OUT>(&t));
        }
    }

    /// Prefetch, second stage (once the slots are cached): the entry the
    /// client-side lookup will most likely land on (not its timer link:
    /// only a state change reads that).
    #[inline]
    pub fn prefetch_entry(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) {
        let t = Tuple::new(proto, src, sport, dst, dport);
        let i = match self.in_idx.first_with_tag(self.hash::<KIND_CONN>(&t)) {
            Some(i) => Some(i),
            None if self.has_reply_conns() => {
                self.out_idx.first_with_tag(self.hash::<KIND_OUT>(&t))
            }
            None => None,
        };
        if let Some(c) = i.and_then(|i| self.slab.get(i as usize)) {
            // Its first 61 bytes, on one or two cache lines.
            crate::hint::prefetch(c);
            crate::hint::prefetch(&c.vaddr);
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
        self.find::<KIND_OUT>(Tuple::new(proto, src, sport, dst, dport))
            .map(ConnId)
    }

    /// [`ConnTable::lookup_in`] followed by [`ConnTable::check_in`]: the
    /// two-step form of [`ConnTable::packet_in_hashed`]'s decision, which the
    /// tests hold it to.
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
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
        if self.live_conn(id.0 as usize).is_none() {
            return InDecision::Schedule;
        }
        match self.check_entry(id.0, tcp, services) {
            Ok(_) => InDecision::Forward(id),
            Err(d) => d,
        }
    }

    /// [`ConnTable::check_in`]'s checks on live conn entry `i` (the one
    /// place they are written): `Ok` with its server's next hop when the
    /// packet goes on, else what to do instead (`Schedule`, after
    /// releasing the conn, or `DropNoDest`).
    #[inline(always)]
    fn check_entry(
        &mut self,
        i: u32,
        tcp: Option<TcpFlags>,
        services: &mut ServiceTable,
    ) -> Result<Option<Egress>, InDecision> {
        let c = &self.slab[i as usize];
        let dest = dest_ref(services, c.dest);
        let syn = c.proto() == Protocol::Tcp && tcp.is_some_and(|f| f.syn);
        if syn {
            let quiesced = self.sysctls.expire_nodest_conn && dest.is_some_and(|d| d.weight == 0);
            let reuse = self.sysctls.conn_reuse_mode != 0
                && new_conn_expected(c, self.sysctls.conn_reuse_mode);
            if quiesced || reuse {
                self.release(i, services);
                return Err(InDecision::Schedule);
            }
        }
        match dest.filter(|d| d.available) {
            Some(d) => Ok(d.next_hop),
            // A synced conn not bound yet is kept (the kernel's check is
            // `cp->dest && !available`), its packets dropped.
            None if self.sysctls.expire_nodest_conn && !super::sync::is_unbound(c.dest) => {
                self.release(i, services);
                Err(InDecision::Schedule)
            }
            None => Err(InDecision::DropNoDest),
        }
    }

    /// [`ConnTable::packet_in_hashed`] hashing the tuple itself: for tests,
    /// which have no hash at hand (the data plane always has one).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub fn packet_in(
        &mut self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        tcp: Option<TcpFlags>,
        ip_len: u32,
        now: Timestamp,
        services: &mut ServiceTable,
    ) -> InPacket {
        let hash = self.in_hash(proto, src, sport, dst, dport);
        self.packet_in_hashed(
            hash, proto, src, sport, dst, dport, tcp, ip_len, now, services,
        )
    }

    /// The lookup, [`ConnTable::check_in`] and, for a conn to forward on,
    /// [`ConnTable::on_packet`] (`Direction::In`) with one lookup: the
    /// per-packet path of an established flow. `hash` is the lookup's hash
    /// computed ahead by the caller ([`ConnTable::in_hash`] of the same
    /// tuple): the data plane hashes a frame's tuple before it validates
    /// the frame, so the lookup's chain of dependent operations overlaps
    /// the validation.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn packet_in_hashed(
        &mut self,
        hash: u64,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        tcp: Option<TcpFlags>,
        ip_len: u32,
        now: Timestamp,
        services: &mut ServiceTable,
    ) -> InPacket {
        // A conn the key space matched: live, not a template.
        let t = Tuple::new(proto, src, sport, dst, dport);
        debug_assert_eq!(hash, self.hash::<KIND_CONN>(&t), "hash of another tuple");
        let Some(i) = self.find_hashed::<KIND_CONN>(t, hash) else {
            return InPacket::Schedule;
        };
        let next_hop = match self.check_entry(i, tcp, services) {
            Ok(next_hop) => next_hop,
            Err(InDecision::DropNoDest) => return InPacket::DropNoDest,
            Err(_) => return InPacket::Schedule,
        };
        let fwd = self.slab[i as usize].fwd();
        self.packet(i as usize, Direction::In, tcp, ip_len, now, services);
        if self.sync_master {
            self.sync_packet(i, now, services);
        }
        InPacket::Forward {
            id: ConnId(i),
            fwd,
            next_hop,
        }
    }

    /// The hash [`ConnTable::packet_in_hashed`] looks this client side up
    /// under.
    #[inline(always)]
    pub fn in_hash(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> u64 {
        self.hash::<KIND_CONN>(&Tuple::new(proto, src, sport, dst, dport))
    }

    /// Conn `id`'s forwarding method and server, without decoding it.
    #[inline(always)]
    pub fn route(&self, id: ConnId) -> (FwdMethod, DestRef) {
        let c = &self.slab[id.0 as usize];
        (c.fwd(), c.dest)
    }

    /// Conn `id`'s `daddr:dport`, without decoding the rest.
    #[inline(always)]
    pub fn server(&self, id: ConnId) -> (IpAddr, u16) {
        let c = &self.slab[id.0 as usize];
        (c.daddr(), c.dport)
    }

    /// Conn `id`'s `laddr:lport` (FULLNAT), without decoding the rest.
    #[inline(always)]
    pub fn local_side_of(&self, id: ConnId) -> (IpAddr, u16) {
        let c = &self.slab[id.0 as usize];
        (c.laddr(), c.lport)
    }

    /// Entry `i` if it is a live conn (not a template).
    #[inline(always)]
    fn live_conn(&self, i: usize) -> Option<&Entry> {
        self.slab.get(i).filter(|c| c.used() && !c.is_template())
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
        if self.live_conn(i).is_none() {
            return;
        }
        self.packet(i, dir, tcp, ip_len, now, services);
    }

    /// [`ConnTable::on_packet`] on live conn entry `i`.
    #[inline(always)]
    fn packet(
        &mut self,
        i: usize,
        dir: Direction,
        tcp: Option<TcpFlags>,
        ip_len: u32,
        now: Timestamp,
        services: &mut ServiceTable,
    ) {
        self.account(i, dir, ip_len, services);
        let before = self.slab[i].state;
        self.transition(i, dir, tcp, services);
        let same_state = self.slab[i].state == before;
        self.rearm(i, now, same_state);
    }

    #[inline(always)]
    pub(super) fn account(
        &mut self,
        i: usize,
        dir: Direction,
        bytes: u32,
        services: &mut ServiceTable,
    ) {
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
        add_traffic(&mut d.stats, dir, b);
        add_traffic(stats, dir, b);
    }

    /// `set_tcp_state`.
    #[inline(always)]
    pub(super) fn transition(
        &mut self,
        i: usize,
        dir: Direction,
        tcp: Option<TcpFlags>,
        services: &mut ServiceTable,
    ) {
        let c = &mut self.slab[i];
        if c.proto() != Protocol::Tcp {
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
    #[inline(always)]
    pub(super) fn rearm(&mut self, i: usize, now: Timestamp, same_state: bool) {
        let clock = self.clock;
        let c = &mut self.slab[i];
        if c.is_one_packet() {
            c.set_expires(now, clock);
            self.wheel.insert_immediate(i as u32);
        } else {
            // Saturating, as `Timestamp + Duration` is.
            let next = now.0.saturating_add(self.timeout_ns[c.state as usize]);
            let tick = (next != u64::MAX).then(|| tick_ceil(next));
            // Lazy re-arm: a packet that keeps the state (the common case,
            // every packet of an established flow) pushes the deadline out
            // and leaves the armed timer where it is, earlier; when it
            // fires, `expire` sees the real deadline and re-places the
            // entry. A state change (or a new, unarmed entry) moves the
            // timer at once, so the wheel's order, which the eviction scan
            // walks, stays close to the real deadlines. Invariant: an armed
            // entry's timer tick is never later than its deadline's tick.
            // (Every live conn is armed between calls: no need to read its
            // link, a cache line of its own, to know.)
            let lazy = same_state && c.not_before(tick);
            debug_assert!(!lazy || self.wheel.is_armed(i as u32));
            c.set_expires_tick(tick, clock);
            let due = tick.unwrap_or(const { tick_ceil(u64::MAX) });
            if !lazy {
                self.wheel.insert(i as u32, due);
            }
        }
    }
}
