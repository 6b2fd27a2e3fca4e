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

mod entry;
mod expire;
mod packet;
mod schedule;
mod storage;
mod sync;

pub use packet::InPacket;
pub use sync::{STUB, SYNC_OUTBOX, SyncApplied, UNBOUND, is_stub, is_unbound};

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

use self::entry::{Entry, M_C6, M_D6, M_L6, M_UDP, Raw};
use super::index::{Index, tuple_hash_raw};
use super::wheel::Wheel;
use super::{ConnState, ConnSysctls, F_TEMPLATE, F_TPL_INVALID, F_USED, Timeouts};
use crate::service::{Dest, DestRef, Protocol, ServiceTable};

/// The key spaces of the indexes (see [`Tuple`]).
const KIND_CONN: u8 = 0;
const KIND_TPL: u8 = 1;
const KIND_OUT: u8 = 2;
/// The hash seed of [`ConnTable::new`], `lvsfwd replay` and tests: public
/// (the code is), so anyone can precompute tuples that collide under it.
/// The daemon passes a seed drawn from the OS to [`ConnTable::with_seed`].
pub const FIXED_HASH_SEED: u64 = 0x6c76_7366_7764_636e;
/// The kernel gives FTP control services port-less templates.
const FTP_PORT: u16 = 21;
/// Slab indexes must leave room for the wheel's sentinels and `NO_LINK`.
const MAX_CAPACITY: usize = (u32::MAX - 1024) as usize;

/// The connection table. See the `conn` module doc.
pub struct ConnTable {
    slab: Box<[Entry]>,
    wheel: Wheel,
    /// The latest tick of `now` seen: what entries' deadlines are stored
    /// relative to (see `entry`).
    clock: u64,
    free_head: u32,
    len: usize,
    /// Client tuples of conns (not one-packet ones) and template keys.
    in_idx: Index,
    /// Reply tuples of NAT and FULLNAT conns.
    out_idx: Index,
    /// Conns filed in `out_idx` (gates `lookup_out` and prefetching it).
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
    /// Connection sync's master side is on (`sync`): the one flag the
    /// per-packet path reads for it.
    sync_master: bool,
    sync_state: sync::MasterSync,
    /// Synced NAT/FULLNAT conns may lack the client's MAC.
    learn_macs: bool,
    /// A backup created an entry without its real server (`sync::UNBOUND`)
    /// that may still be unbound.
    maybe_unbound: bool,
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

/// A `(proto, a:ap, b:bp)` tuple as the indexes file it, in one of three
/// key spaces (the `K` of the functions below, which is also the `kind` of
/// [`tuple_hash`]):
/// - [`KIND_CONN`], in `in_idx`: a conn's client tuple
///   `caddr:cport -> vaddr:vport`;
/// - [`KIND_TPL`], in `in_idx`: a template's key `snet:0 -> vaddr:vport`
///   (`ap` is always 0);
/// - [`KIND_OUT`], in `out_idx`: a conn's reply tuple
///   `daddr:dport -> laddr:lport`.
///
/// The address bytes are as entries store them (`entry::raw`), read as
/// native-endian `u128`s (scalars: the key stays in registers and compares
/// against an entry with two loads), with their families beside.
#[derive(Copy, Clone, PartialEq)]
struct Tuple {
    proto: Protocol,
    ap: u16,
    bp: u16,
    a6: bool,
    b6: bool,
    a: u128,
    b: u128,
}

#[inline(always)]
fn word(r: &Raw) -> u128 {
    u128::from_ne_bytes(*r)
}

/// `word(&entry::raw(a).0)` and the family, reading an IPv4 address as its 4
/// bytes (not the 16 of the enum's payload, which a packet's freshly
/// parsed headers do not hold as one store).
#[inline(always)]
fn addr_word(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v) => {
            let w = u128::from(u32::from_ne_bytes(v.octets()));
            // The 4 bytes first in memory, as `raw` puts them.
            let w = if cfg!(target_endian = "little") {
                w
            } else {
                w << 96
            };
            (w, false)
        }
        IpAddr::V6(v) => (u128::from_ne_bytes(v.octets()), true),
    }
}

impl Tuple {
    #[inline(always)]
    fn new(proto: Protocol, a: IpAddr, ap: u16, b: IpAddr, bp: u16) -> Tuple {
        let (a, a6) = addr_word(a);
        let (b, b6) = addr_word(b);
        Tuple {
            proto,
            ap,
            bp,
            a6,
            b6,
            a,
            b,
        }
    }

    /// The key entry `c` is filed under in space `K`.
    #[inline(always)]
    fn of<const K: u8>(c: &Entry) -> Tuple {
        let c6 = c.meta & M_C6 != 0;
        let (proto, a6, b6) = (c.proto(), c6, c6);
        match K {
            KIND_CONN => Tuple {
                proto,
                ap: c.cport,
                bp: c.vport,
                a6,
                b6,
                a: word(&c.caddr),
                b: word(&c.vaddr),
            },
            KIND_TPL => Tuple {
                proto,
                ap: 0,
                bp: c.vport,
                a6,
                b6,
                a: word(&c.caddr),
                b: word(&c.vaddr),
            },
            _ => Tuple {
                proto,
                ap: c.dport,
                bp: c.lport,
                a6: c.meta & M_D6 != 0,
                b6: c.meta & M_L6 != 0,
                a: word(&c.daddr),
                b: word(&c.laddr),
            },
        }
    }

    /// Whether `c` is a live entry of space `K` with this key.
    #[inline(always)]
    fn matches<const K: u8>(&self, c: &Entry) -> bool {
        // Field by field in the entry rather than `Tuple::of(c) == *self`:
        // the per-packet lookup compiles to plain compares (-6 ns on an
        // established hit). A conn's flags and meta bits in one compare
        // each.
        let udp = if self.proto == Protocol::Udp {
            M_UDP
        } else {
            0
        };
        match K {
            KIND_CONN => {
                c.flags & (F_USED | F_TEMPLATE) == F_USED
                    && c.meta & (M_UDP | M_C6) == udp | if self.a6 { M_C6 } else { 0 }
                    && c.cport == self.ap
                    && c.vport == self.bp
                    && word(&c.caddr) == self.a
                    && word(&c.vaddr) == self.b
            }
            _ => {
                c.used()
                    && match K {
                        KIND_TPL => {
                            c.is_template()
                                && !c.has(F_TPL_INVALID)
                                && c.proto() == self.proto
                                && c.vport == self.bp
                                && (c.meta & M_C6 != 0) == self.a6
                                && word(&c.caddr) == self.a
                                && word(&c.vaddr) == self.b
                        }
                        _ => {
                            !c.is_template()
                                && !c.is_one_packet()
                                && c.fwd().sees_replies()
                                && c.proto() == self.proto
                                && c.dport == self.ap
                                && c.lport == self.bp
                                && (c.meta & M_D6 != 0) == self.a6
                                && (c.meta & M_L6 != 0) == self.b6
                                && word(&c.daddr) == self.a
                                && word(&c.laddr) == self.b
                        }
                    }
            }
        }
    }
}

impl ConnTable {
    /// `t`'s hash in space `K`.
    #[inline(always)]
    fn hash<const K: u8>(&self, t: &Tuple) -> u64 {
        tuple_hash_raw(
            self.seed,
            K,
            t.proto.number(),
            (t.a, t.a6),
            t.ap,
            (t.b, t.b6),
            t.bp,
        )
    }

    /// The index of space `K`.
    #[inline(always)]
    fn index<const K: u8>(&self) -> &Index {
        if K == KIND_OUT {
            &self.out_idx
        } else {
            &self.in_idx
        }
    }

    /// The slab, and the index of space `K` to change.
    #[inline(always)]
    fn slab_and_index<const K: u8>(&mut self) -> (&[Entry], &mut Index) {
        let index = if K == KIND_OUT {
            &mut self.out_idx
        } else {
            &mut self.in_idx
        };
        (&self.slab, index)
    }

    /// The live entry filed under `t` in space `K`.
    #[inline(always)]
    fn find<const K: u8>(&self, t: Tuple) -> Option<u32> {
        let h = self.hash::<K>(&t);
        self.find_hashed::<K>(t, h)
    }

    /// [`ConnTable::find`] with `t`'s hash already computed.
    #[inline(always)]
    fn find_hashed<const K: u8>(&self, t: Tuple, h: u64) -> Option<u32> {
        // `move`: the closure holds the key by value, so it stays in
        // registers (a borrowed key went through the stack on every probe:
        // +10 ns on an established hit).
        let slab = &self.slab;
        self.index::<K>()
            .find(h, move |i| t.matches::<K>(&slab[i as usize]))
    }

    /// Files entry `i` under its key in space `K`, replacing an older entry
    /// with the same key.
    #[inline]
    fn file<const K: u8>(&mut self, i: u32) {
        let t = Tuple::of::<K>(&self.slab[i as usize]);
        let h = self.hash::<K>(&t);
        let (slab, index) = self.slab_and_index::<K>();
        index.insert(h, i, |j| j != i && t.matches::<K>(&slab[j as usize]));
    }

    /// Takes entry `i` out of space `K` (filed under its current key).
    #[inline]
    fn unfile<const K: u8>(&mut self, i: u32) {
        let h = self.hash::<K>(&Tuple::of::<K>(&self.slab[i as usize]));
        let (_, index) = self.slab_and_index::<K>();
        index.remove(h, i);
    }
}

#[cfg(test)]
mod tests {
    use super::entry::raw;
    use super::*;

    #[test]
    fn a_packets_address_word_is_the_stored_bytes() {
        for a in [
            "198.18.0.250",
            "10.1.2.3",
            "2001:db8::250",
            "::ffff:10.0.0.1",
        ] {
            let a: IpAddr = a.parse().unwrap();
            let (r, v6) = raw(a);
            assert_eq!(addr_word(a), (word(&r), v6), "{a}");
        }
    }

    /// A million conns' slab, indexes, timer links and sync state are
    /// marked for huge pages (`hugemem`): the kernel says each may take them.
    #[test]
    fn a_large_tables_memory_may_take_huge_pages() {
        use crate::hugemem::tests::{middle, thp_eligible, thp_on};
        let mut t = ConnTable::new(1 << 20, Timeouts::default());
        t.set_sync_master(true);
        let parts = [
            ("slab", middle(&t.slab)),
            ("in_idx", t.in_idx.middle()),
            ("out_idx", t.out_idx.middle()),
            ("wheel", t.wheel.middle()),
            ("sync meta", middle(&t.sync_state.meta)),
        ];
        if thp_on() {
            for (name, p) in parts {
                assert!(thp_eligible(p), "{name} not eligible for huge pages");
            }
        }
    }
}
