//! Storage: the slab, its free list, capacity, settings, iteration and
//! memory; filing an entry in (and out of) the slab, indexes and counters.

use std::ops::RangeInclusive;

use super::entry::Entry;
use super::{ConnTable, FIXED_HASH_SEED, KIND_CONN, KIND_OUT, KIND_TPL, MAX_CAPACITY, dest_mut};
use crate::conn::index::Index;
use crate::conn::wheel::{Wheel, tick_floor};
use crate::conn::{
    Conn, ConnId, ConnState, ConnSysctls, F_INACTIVE, F_ONE_PACKET, F_TEMPLATE, F_TPL_INVALID,
    NO_LINK, Timeouts,
};
use crate::service::{Dest, ServiceTable};
use crate::time::Timestamp;

/// Each state's timeout in nanoseconds (saturated to `u64`).
fn timeout_table(t: Timeouts) -> [u64; ConnState::COUNT] {
    ConnState::ALL.map(|s| u64::try_from(t.for_state(s).as_nanos()).unwrap_or(u64::MAX))
}

/// The counter of `d` an entry with `flags` is bound to: PersistConn for a
/// template, else InActConn or ActiveConn.
#[inline(always)]
pub(super) fn conn_counter(d: &mut Dest, flags: u8) -> &mut u32 {
    if flags & F_TEMPLATE != 0 {
        &mut d.persist_conns
    } else if flags & F_INACTIVE != 0 {
        &mut d.inact_conns
    } else {
        &mut d.active_conns
    }
}

impl ConnTable {
    /// A table for `capacity` entries (conns and templates) with a fixed
    /// hash seed; everything is allocated here.
    pub fn new(capacity: usize, timeouts: Timeouts) -> ConnTable {
        ConnTable::with_seed(capacity, timeouts, FIXED_HASH_SEED)
    }

    /// Like [`ConnTable::new`] with a hash seed (take it from a random
    /// source so tuple hashes cannot be predicted; the shell does, the core
    /// reads no randomness itself).
    pub fn with_seed(capacity: usize, timeouts: Timeouts, seed: u64) -> ConnTable {
        let cap = capacity.min(MAX_CAPACITY);
        // The free list runs through the slab in order.
        let slab = crate::hugemem::boxed_slice(cap, |i| {
            let mut e = Entry::EMPTY;
            e.control = if i + 1 < cap { i as u32 + 1 } else { NO_LINK };
            e
        });
        ConnTable {
            slab,
            wheel: Wheel::new(cap as u32),
            clock: 0,
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
            sync_master: false,
            sync_state: Default::default(),
            learn_macs: false,
            maybe_unbound: false,
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
        self.sync_state.sysctls = s.sync;
    }

    /// The FULLNAT local port range (default 1024-65535).
    pub fn set_fullnat_ports(&mut self, ports: RangeInclusive<u16>) {
        let (a, b) = (*ports.start(), *ports.end());
        self.lports = a.min(b)..=a.max(b);
    }

    /// The entry `id` names (decoded from the slab's compact form: take the
    /// fields needed). `id` must come from this table and still be valid
    /// (see the module invariants).
    #[inline(always)]
    pub fn get(&self, id: ConnId) -> Conn {
        self.slab[id.0 as usize].decode(self.clock)
    }

    /// Every live entry, templates included (`ipvsadm -L -c`).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, Conn)> + '_ {
        self.slab
            .iter()
            .enumerate()
            // Reply stubs are another worker's conns (`sync::STUB`).
            .filter(|(_, c)| c.used() && !super::sync::is_stub(c.dest))
            .map(|(i, c)| (ConnId(i as u32), c.decode(self.clock)))
    }

    /// Advances the clock deadlines are stored against to `now` (never
    /// back).
    #[inline(always)]
    pub(super) fn observe(&mut self, now: Timestamp) {
        self.clock = self.clock.max(tick_floor(now.0));
    }

    /// Takes a free entry, fills it with `c`, binds it to its dest
    /// (`ip_vs_bind_dest`) and hashes it.
    pub(super) fn insert_entry(&mut self, c: &Conn, services: &mut ServiceTable) -> u32 {
        let i = self.free_head;
        debug_assert!(i != NO_LINK, "ensure_room first");
        self.free_head = self.slab[i as usize].control;
        self.len += 1;
        let (template, one_packet, replies) =
            (c.is_template(), c.is_one_packet(), c.fwd.sees_replies());
        if let Some(d) = dest_mut(services, c.dest) {
            *conn_counter(d, c.flags) += 1;
            d.update_overload();
        }
        self.slab[i as usize] = Entry::encode(c, self.clock);
        self.reset_sync_meta(i);
        if template {
            self.file::<KIND_TPL>(i);
        } else if !one_packet {
            self.file::<KIND_CONN>(i);
            if replies {
                self.out_len += 1;
                self.file::<KIND_OUT>(i);
            }
        }
        i
    }

    /// Unhashes, unbinds (`ip_vs_unbind_dest`, `ip_vs_control_del`) and
    /// frees entry `i`.
    pub(super) fn release(&mut self, i: u32, services: &mut ServiceTable) {
        let c = &self.slab[i as usize];
        if !c.used() {
            return;
        }
        let (flags, control, dest, fwd) = (c.flags, c.control, c.dest, c.fwd());
        let template = flags & F_TEMPLATE != 0;
        if template {
            if flags & F_TPL_INVALID == 0 {
                self.unfile::<KIND_TPL>(i);
            }
        } else if flags & F_ONE_PACKET == 0 {
            self.unfile::<KIND_CONN>(i);
            if fwd.sees_replies() {
                self.unfile::<KIND_OUT>(i);
                self.out_len = self.out_len.saturating_sub(1);
            }
        }
        self.wheel.remove(i);
        if !template
            && control != NO_LINK
            && let Some(t) = self.slab.get_mut(control as usize)
        {
            t.control = t.control.saturating_sub(1);
        }
        if let Some(d) = dest_mut(services, dest) {
            let n = conn_counter(d, flags);
            *n = n.saturating_sub(1);
            d.update_overload();
        }
        let e = &mut self.slab[i as usize];
        e.flags = 0;
        e.control = self.free_head;
        self.free_head = i;
        self.len -= 1;
    }
}
