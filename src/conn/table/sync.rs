//! Connection sync on the table (see `conn::sync` for the rules): a
//! master's per-packet decision, which leaves [`SyncRecord`]s in a
//! preallocated outbox; a backup's `ip_vs_proc_conn`.

use std::time::Duration;

use super::storage::conn_counter;
use super::{ConnTable, KIND_CONN, KIND_TPL, Tuple, dest_mut};
use crate::conn::sync::{SyncMeta, SyncRecord, SyncSysctls, sync_needed};

use crate::conn::{
    Conn, ConnId, F_INACTIVE, F_NO_OUTPUT, F_TEMPLATE, F_TPL_INVALID, F_TPL_LINGER, F_USED,
    NO_LINK, TEMPLATE_LINGER,
};
use crate::service::{DestRef, ServiceKey, ServiceTable};
use crate::time::Timestamp;

/// Records the outbox holds between two drains (a batch makes at most two
/// per packet: a conn and its template).
pub const SYNC_OUTBOX: usize = 1024;

/// What [`ConnTable::apply_synced`] did with a record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SyncApplied {
    Created,
    Updated,
    /// The expiry message of a conn already replaced (the kernel ignores
    /// it too).
    Ignored,
    /// No such virtual service or real server here: created unbound (as
    /// the kernel's backup does), its packets dropped until the server
    /// appears ([`ConnTable::bind_unbound`], or a later message).
    CreatedUnbound,
    /// The table is full.
    TableFull,
}

/// `DestRef::svc` of a conn or template a backup created without a real
/// server (the kernel's `cp->dest == NULL`); its `dest` holds the entry's
/// firewall mark, which finds the service when binding.
pub const UNBOUND: u32 = u32::MAX;

/// The `DestRef` of an unbound entry with firewall mark `fwmark`.
pub(crate) const fn unbound(fwmark: u32) -> DestRef {
    DestRef {
        svc: UNBOUND,
        dest: fwmark,
    }
}

/// Whether `r` is an unbound entry's.
#[inline(always)]
pub const fn is_unbound(r: DestRef) -> bool {
    r.svc == UNBOUND
}

/// `DestRef::svc` of a reply stub: a synced FULLNAT conn's reply side in
/// the worker its local port names, when another worker (in `dest`) owns
/// the conn (see [`ConnTable::stub_synced`]).
pub const STUB: u32 = u32::MAX - 1;

/// Whether `r` is a reply stub's.
#[inline(always)]
pub const fn is_stub(r: DestRef) -> bool {
    r.svc == STUB
}

/// What finds a synced entry's real server (`ip_vs_find_dest`'s arguments).
#[derive(Copy, Clone, Debug)]
struct DestKey {
    proto: crate::service::Protocol,
    v6: bool,
    vaddr: std::net::IpAddr,
    vport: u16,
    daddr: std::net::IpAddr,
    dport: u16,
    fwmark: u32,
    template: bool,
}

impl DestKey {
    fn of_record(r: &SyncRecord) -> DestKey {
        DestKey {
            proto: r.proto,
            v6: r.caddr.is_ipv6(),
            vaddr: r.vaddr,
            vport: r.vport,
            daddr: r.daddr,
            dport: r.dport,
            fwmark: r.fwmark,
            template: r.template,
        }
    }
}

/// A master's sync state on a table.
#[derive(Debug, Default)]
pub(super) struct MasterSync {
    pub(super) sysctls: SyncSysctls,
    /// Per slab entry (allocated when sync is first switched on).
    pub(super) meta: Box<[SyncMeta]>,
    pub(super) outbox: Vec<SyncRecord>,
    /// Records the outbox had no room for.
    pub(super) overflow: u64,
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

impl ConnTable {
    /// Switches the master side on or off (its sysctls are
    /// [`ConnSysctls::sync`](crate::conn::ConnSysctls)). The first switch-on
    /// allocates the per-entry state (16 bytes an entry) and the outbox;
    /// call it at a batch boundary.
    pub fn set_sync_master(&mut self, on: bool) {
        match on {
            true => {
                let n = self.slab.len();
                let m = &mut self.sync_state;
                if m.meta.len() != n {
                    m.meta = crate::hugemem::boxed_slice(n, |_| SyncMeta::default());
                    m.outbox = Vec::with_capacity(SYNC_OUTBOX);
                }
                m.sysctls = self.sysctls.sync;
                self.sync_master = true;
            }
            false => self.sync_master = false,
        }
    }

    /// Whether this table decides what to sync.
    pub fn sync_master(&self) -> bool {
        self.sync_master
    }

    /// Takes the records decided since the last call.
    pub fn drain_sync(&mut self) -> std::vec::Drain<'_, SyncRecord> {
        self.sync_state.outbox.drain(..)
    }

    /// Records lost to a full outbox.
    pub fn sync_overflow(&self) -> u64 {
        self.sync_state.overflow
    }

    /// A fresh entry `i` starts with no sync history.
    #[inline]
    pub(super) fn reset_sync_meta(&mut self, i: u32) {
        if let Some(m) = self.sync_state.meta.get_mut(i as usize) {
            *m = SyncMeta::default();
        }
    }

    /// The timeout `ip_vs_sync_conn` sees for entry `i`: a conn's state's,
    /// a template's persistence (or its linger).
    fn sync_timeout_ns(&self, i: usize, services: &ServiceTable) -> u64 {
        let c = &self.slab[i];
        if c.is_template() {
            let d = if c.has(F_TPL_LINGER) {
                TEMPLATE_LINGER
            } else {
                services
                    .services
                    .get(c.dest.svc as usize)
                    .and_then(|s| s.persistence)
                    .unwrap_or(Duration::from_secs(180))
            };
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        } else {
            self.timeout_ns[c.state as usize]
        }
    }

    /// A client packet of conn `i` on a master (`ip_vs_sync_conn`): counts
    /// it and decides for the conn, then for its template.
    #[cold]
    pub(super) fn sync_packet(&mut self, i: u32, now: Timestamp, services: &ServiceTable) {
        let threshold = self.sync_state.sysctls.threshold;
        let mut cur = i as usize;
        let mut pkts = if self.slab[cur].is_one_packet() {
            threshold
        } else {
            let m = &mut self.sync_state.meta[cur];
            m.pkts = m.pkts.wrapping_add(1);
            m.pkts
        };
        loop {
            let c = &self.slab[cur];
            // `sync_persist_mode`: a conn under a template is left to it.
            let persisted =
                self.sync_state.sysctls.persist_mode && !c.is_template() && c.control != NO_LINK;
            if !c.is_one_packet() && !persisted {
                let (template, proto, state) = (c.is_template(), c.proto(), c.state);
                let t_ns = self.sync_timeout_ns(cur, services);
                let s = self.sync_state.sysctls;
                let send = sync_needed(
                    &s,
                    &mut self.sync_state.meta[cur],
                    template,
                    proto,
                    state,
                    ms(t_ns),
                    ms(now.0),
                    pkts,
                );
                if send {
                    let r = self.record(cur, t_ns, services);
                    let m = &mut self.sync_state;
                    if m.outbox.len() < SYNC_OUTBOX {
                        m.outbox.push(r);
                    } else {
                        m.overflow += 1;
                    }
                }
            }
            let c = &self.slab[cur];
            if c.is_template() || c.control == NO_LINK {
                return;
            }
            cur = c.control as usize;
            if !self.slab[cur].is_template() {
                pkts = threshold;
            } else {
                let m = &mut self.sync_state.meta[cur];
                m.pkts = m.pkts.wrapping_add(1);
                pkts = m.pkts;
            }
        }
    }

    /// Entry `i` as a sync record.
    fn record(&self, i: usize, timeout_ns: u64, services: &ServiceTable) -> SyncRecord {
        let c = self.slab[i].decode(self.clock);
        // A fwmark service's conns carry its mark (`cp->fwmark`).
        let fwmark = if is_unbound(c.dest) {
            c.dest.dest
        } else {
            services
                .services
                .get(c.dest.svc as usize)
                .map_or(0, |s| s.key.fwmark)
        };
        SyncRecord {
            proto: c.proto,
            fwd: c.fwd,
            template: c.is_template(),
            inactive: c.is_inactive(),
            no_output: c.has(F_NO_OUTPUT),
            state: c.state,
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
            local: Some((c.laddr, c.lport)),
            fwmark,
            timeout: u32::try_from(timeout_ns / 1_000_000_000).unwrap_or(u32::MAX),
        }
    }

    /// Every conn and template as a sync record (a returning director's
    /// table request; control side, allocates), templates first so a
    /// backup has them before their conns.
    pub fn sync_table(&self, services: &ServiceTable) -> Vec<SyncRecord> {
        let mut out: Vec<SyncRecord> = self
            .slab
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.used() && !c.is_one_packet() && !c.has(F_TPL_INVALID) && !is_stub(c.dest)
            })
            .map(|(i, _)| self.record(i, self.sync_timeout_ns(i, services), services))
            .collect();
        out.sort_by_key(|r| !r.template);
        out
    }

    /// `(svc, dest)` of real server `daddr:dport` of the virtual service
    /// `k` names (`ip_vs_find_dest`).
    fn synced_dest(k: &DestKey, services: &ServiceTable) -> Option<DestRef> {
        // A marked conn or template: the fwmark service of its mark and
        // family (`ip_vs_find_dest` with the fwmark).
        let by_mark = (k.fwmark != 0)
            .then(|| services.lookup(&ServiceKey::fwmark(k.fwmark, k.v6)))
            .flatten();
        let key = ServiceKey {
            proto: k.proto,
            addr: k.vaddr,
            port: k.vport,
            fwmark: 0,
        };
        let svc = by_mark
            .or_else(|| services.lookup(&key))
            .or_else(|| services.lookup(&ServiceKey { port: 0, ..key }))
            .or_else(|| {
                // A port-less (FTP) template: the service on port 21.
                (k.template && k.vport == 0)
                    .then(|| services.lookup(&ServiceKey { port: 21, ..key }))
                    .flatten()
            })?;
        let s = services.services.get(svc as usize)?;
        // A removed server (kept in its slot for its conns) is not found,
        // as the kernel's trash is not searched.
        let d = s.dests.iter().position(|d| {
            d.available && d.addr == k.daddr && (d.port == k.dport || d.port == 0 || k.dport == 0)
        })?;
        Some(DestRef {
            svc,
            dest: d as u32,
        })
    }

    /// Binds unbound entry `i` to its real server if this director has it
    /// now (`ip_vs_try_bind_dest`): counted on the server as
    /// `ip_vs_bind_dest` does (ActiveConn / InActConn by the entry's
    /// INACTIVE bit, PersistConn for a template). Returns whether it did.
    fn try_bind(&mut self, i: u32, services: &mut ServiceTable) -> bool {
        let e = &self.slab[i as usize];
        if !e.used() || !is_unbound(e.dest) {
            return false;
        }
        let c = e.decode(self.clock);
        let k = DestKey {
            proto: c.proto,
            v6: c.caddr.is_ipv6(),
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
            fwmark: c.dest.dest,
            template: c.is_template(),
        };
        let Some(dref) = Self::synced_dest(&k, services) else {
            return false;
        };
        let flags = c.flags;
        if let Some(d) = dest_mut(services, dref) {
            *conn_counter(d, flags) += 1;
            d.update_overload();
        }
        self.slab[i as usize].dest = dref;
        true
    }

    /// Binds every unbound entry whose real server this director has now
    /// (call after the service table changed: an lvsadm edit, a reload).
    /// Beyond the kernel, which binds only at the entry's next sync
    /// message; both are done here. Walks the table (O(capacity)) only
    /// while an unbound entry may exist. Returns how many were bound.
    pub fn bind_unbound(&mut self, services: &mut ServiceTable) -> usize {
        if !self.maybe_unbound {
            return 0;
        }
        let (mut bound, mut left) = (0, false);
        for i in 0..self.slab.len() as u32 {
            let c = &self.slab[i as usize];
            if !c.used() || !is_unbound(c.dest) {
                continue;
            }
            if self.try_bind(i, services) {
                bound += 1;
            } else {
                left = true;
            }
        }
        self.maybe_unbound = left;
        bound
    }

    /// Unbound conns and templates (synced for a real server this
    /// director does not have); control side, walks the table.
    pub fn unbound_len(&self) -> usize {
        self.slab
            .iter()
            .filter(|c| c.used() && is_unbound(c.dest))
            .count()
    }

    /// A backup applies one received entry (`ip_vs_proc_conn`):
    /// - a conn with the client tuple of an existing one bound to another
    ///   real server replaces it, unless the message is marked inactive
    ///   (the expiry of the replaced one: ignored);
    /// - an existing entry takes the message's INACTIVE bit (moving it
    ///   between ActiveConn and InActConn), its state and timeout;
    /// - a new entry is bound to the real server of the virtual service the
    ///   message names; without that server here it is created unbound
    ///   ([`SyncApplied::CreatedUnbound`], `ip_vs_conn_new` with no dest):
    ///   listed, updated and expiring as any, its client packets dropped
    ///   (`dest_unavailable`; the kernel routes them to `daddr` itself,
    ///   this data plane needs the server's next hop) until it is bound,
    ///   by a later message (`ip_vs_try_bind_dest`) or when the server is
    ///   added ([`ConnTable::bind_unbound`]); NAT/FULLNAT replies of it go
    ///   back to the client meanwhile, as in the kernel;
    /// - the timeout is the message's (v0: the state's; a template's 180 s).
    ///
    /// Synced conns are not linked to templates, as in the kernel.
    pub fn apply_synced(
        &mut self,
        r: &SyncRecord,
        services: &mut ServiceTable,
        now: Timestamp,
    ) -> SyncApplied {
        self.observe(now);
        let mut found = if r.template {
            self.find::<KIND_TPL>(Tuple::new(r.proto, r.caddr, 0, r.vaddr, r.vport))
        } else {
            self.find::<KIND_CONN>(Tuple::new(r.proto, r.caddr, r.cport, r.vaddr, r.vport))
        };
        if let Some(i) = found
            && !r.template
        {
            let c = &self.slab[i as usize];
            if c.dport != r.dport || c.daddr() != r.daddr {
                if r.inactive {
                    return SyncApplied::Ignored;
                }
                self.release(i, services);
                found = None;
            }
        }
        let outcome;
        let i = match found {
            Some(i) => {
                let c = &mut self.slab[i as usize];
                if !r.template && c.is_inactive() != r.inactive {
                    let dref = c.dest;
                    if r.inactive {
                        c.flags |= F_INACTIVE;
                    } else {
                        c.flags &= !F_INACTIVE;
                    }
                    if let Some(d) = dest_mut(services, dref) {
                        if r.inactive {
                            d.active_conns = d.active_conns.saturating_sub(1);
                            d.inact_conns += 1;
                        } else {
                            d.inact_conns = d.inact_conns.saturating_sub(1);
                            d.active_conns += 1;
                        }
                        d.update_overload();
                    }
                }
                outcome = SyncApplied::Updated;
                if is_unbound(c.dest) {
                    // The INACTIVE bit first: binding counts by it.
                    if !r.template {
                        c.flags = (c.flags & !F_INACTIVE) | if r.inactive { F_INACTIVE } else { 0 };
                    }
                    self.try_bind(i, services);
                }
                i
            }
            None => {
                let found = Self::synced_dest(&DestKey::of_record(r), services);
                if !self.ensure_room(1, services) {
                    return SyncApplied::TableFull;
                }
                let dref = found.unwrap_or(unbound(r.fwmark));
                let mut flags = F_USED;
                if r.template {
                    flags |= F_TEMPLATE;
                }
                if r.inactive {
                    flags |= F_INACTIVE;
                }
                if r.no_output && !r.template {
                    flags |= F_NO_OUTPUT;
                }
                let (laddr, lport) = match r.local {
                    Some(l) if r.fwd == crate::service::FwdMethod::FullNat => l,
                    _ => (r.caddr, r.cport),
                };
                let c = Conn {
                    proto: r.proto,
                    caddr: r.caddr,
                    cport: r.cport,
                    vaddr: r.vaddr,
                    vport: r.vport,
                    daddr: r.daddr,
                    dport: r.dport,
                    laddr,
                    lport,
                    dest: dref,
                    fwd: r.fwd,
                    state: r.state,
                    client_mac: [0; 6],
                    client_nic: 0,
                    expires: now,
                    flags,
                    in_pkts: 0,
                    control: NO_LINK,
                    n_control: 0,
                };
                let i = self.insert_entry(&c, services);
                if r.fwd.sees_replies() {
                    self.learn_macs = true;
                }
                outcome = if found.is_some() {
                    SyncApplied::Created
                } else {
                    self.maybe_unbound = true;
                    SyncApplied::CreatedUnbound
                };
                i
            }
        };
        let threshold = self.sync_state.sysctls.threshold;
        if let Some(m) = self.sync_state.meta.get_mut(i as usize) {
            m.pkts = threshold;
            m.old_state = r.state as u8;
        }
        let timeout = if r.timeout > 0 {
            Duration::from_secs(u64::from(r.timeout))
        } else if r.template {
            Duration::from_secs(180)
        } else {
            self.timeouts.for_state(r.state)
        };
        let clock = self.clock;
        let c = &mut self.slab[i as usize];
        if !r.template {
            c.state = r.state;
        }
        c.set_expires(now + timeout, clock);
        let due = c.due_tick(clock);
        self.wheel.insert(i, due);
        outcome
    }

    /// A synced FULLNAT conn `r` lives in worker `owner` (the worker of its
    /// client), but its real server answers to `laddr:lport`, and the
    /// engine steers such replies to the worker whose local-port slice
    /// holds `lport` (this table's, `xsk::steer`), since the master chose
    /// the port in its own worker. This table then keeps a reply stub: an
    /// entry filed by the reply tuple only, with no server (no counters,
    /// not listed, never synced), so that
    /// - the data plane's reply lookup finds it and names `owner`
    ///   ([`ConnTable::stub_reply`]), and the engine hands the reply over
    ///   to it (a mesh hand-over, as for any frame another worker owns),
    ///   and
    /// - this table's own FULLNAT port choice never takes that tuple.
    ///
    /// The stub lives as long as the message's timeout and is re-armed by
    /// each reply and each later message. Returns false when the reply
    /// tuple is a conn of this table's own (the stub is not made; the
    /// caller counts it) or the table is full.
    pub fn stub_synced(
        &mut self,
        r: &SyncRecord,
        owner: u32,
        services: &mut ServiceTable,
        now: Timestamp,
    ) -> bool {
        let Some((laddr, lport)) = r.local else {
            return false;
        };
        if r.fwd != crate::service::FwdMethod::FullNat || r.template {
            return false;
        }
        self.observe(now);
        let i = match self.lookup_out(r.proto, r.daddr, r.dport, laddr, lport) {
            Some(id) if is_stub(self.slab[id.0 as usize].dest) => {
                self.slab[id.0 as usize].dest.dest = owner;
                id.0
            }
            Some(_) => return false,
            None => {
                if !self.ensure_room(1, services) {
                    return false;
                }
                let c = Conn {
                    proto: r.proto,
                    caddr: r.caddr,
                    cport: r.cport,
                    vaddr: r.vaddr,
                    vport: r.vport,
                    daddr: r.daddr,
                    dport: r.dport,
                    laddr,
                    lport,
                    dest: DestRef {
                        svc: STUB,
                        dest: owner,
                    },
                    fwd: r.fwd,
                    state: r.state,
                    client_mac: [0; 6],
                    client_nic: 0,
                    expires: now,
                    flags: F_USED,
                    in_pkts: 0,
                    control: NO_LINK,
                    n_control: 0,
                };
                self.insert_entry(&c, services)
            }
        };
        let timeout = if r.timeout > 0 {
            Duration::from_secs(u64::from(r.timeout))
        } else {
            self.timeouts.for_state(r.state)
        };
        let clock = self.clock;
        let c = &mut self.slab[i as usize];
        c.state = r.state;
        c.set_expires(now + timeout, clock);
        let due = c.due_tick(clock);
        self.wheel.insert(i, due);
        true
    }

    /// A reply of the synced FULLNAT conn another worker holds, found by
    /// [`ConnTable::lookup_out`] as reply stub `id`: re-arms the stub as a
    /// reply re-arms a conn and names that worker (the hand-over's
    /// target). Call only for an `id` whose route [`is_stub`].
    pub fn stub_reply(&mut self, id: ConnId, now: Timestamp) -> u32 {
        let i = id.0 as usize;
        debug_assert!(is_stub(self.slab[i].dest));
        self.observe(now);
        self.rearm(i, now, true);
        self.slab[i].dest.dest
    }

    /// Whether conns synced from a master may still lack the client's MAC
    /// (NAT and FULLNAT replies go back to it): the data plane then tells
    /// the table about client packets ([`ConnTable::learn_client`]).
    #[inline(always)]
    pub fn learns_macs(&self) -> bool {
        self.learn_macs
    }

    /// A client packet from `mac` on `nic` for conn `id`: a synced conn
    /// without a client MAC takes it.
    pub fn learn_client(&mut self, id: ConnId, mac: crate::wire::MacAddr, nic: crate::dest::NicId) {
        if let Some(c) = self.slab.get_mut(id.0 as usize)
            && c.client_mac == [0; 6]
        {
            c.client_mac = mac;
            c.client_nic = nic;
        }
    }
}
