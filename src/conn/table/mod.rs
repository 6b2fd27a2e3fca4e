//! [`ConnTable`]: the slab, its indexes and timers, and the IPVS operations
//! on them (see the module doc of `conn` for the rules and invariants).
//!
//! This file holds the table's fields and the keys its indexes file
//! entries under; each child adds one part of `impl ConnTable`:
//! - `storage`: construction, settings, iteration, memory; taking and
//!   freeing slab entries (free list, indexes, dest counters);
//! - `packet`: the per-packet path (lookups, prefetching, IPVS's checks on
//!   a matched conn, stats, TCP state and timer updates);
//! - `expire`: the timers and eviction when the slab is full;
//! - `schedule`: a new conn (scheduler, persistence templates, FULLNAT
//!   local side).
#![forbid(unsafe_code)]

mod expire;
mod packet;
mod schedule;
mod storage;

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::index::{Index, tuple_hash};
use super::wheel::Wheel;
use super::{Conn, ConnState, ConnSysctls, F_TPL_INVALID, Timeouts};
use crate::service::{Dest, DestRef, Protocol, ServiceTable};

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

impl ConnTable {
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
}
