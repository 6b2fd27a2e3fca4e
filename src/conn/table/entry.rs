//! [`Entry`]: how the slab stores a [`Conn`], in 100 bytes.
//!
//! Layout (`size_of::<Entry>() == 100`, align 4, no padding), in this order (`repr(C)`; the first 61 bytes are what
//! an established packet reads):
//!
//! | offset | bytes | fields |
//! |------:|------:|--------|
//! | 0 | 8 | `cport`, `vport`, `dport`, `lport` |
//! | 8 | 8 | `dest` ([`DestRef`]) |
//! | 16 | 4 | `control`: a conn's template, a template's `n_control`, a free entry's next free |
//! | 20 | 5 | `exp_lo`, `exp_hi`: the deadline in wheel ticks, 40 bits (below) |
//! | 25 | 4 | `meta` (forwarding method, protocol, address families, deadline never), `state`, `flags`, `in_pkts` |
//! | 29 | 32 | `caddr`, `vaddr`: the address bytes only (an IPv4 address in the first 4, the rest zero; the families are bits of `meta`) |
//! | 61 | 6 | `client_mac` |
//! | 67 | 1 | `client_nic`: the NIC the client's packets arrive on |
//! | 68 | 32 | `daddr`, `laddr` (bytes, as above) |
//!
//! 100 bytes of fields, no padding.
//!
//! Deadlines are kept as the tick (1 ms, [`TICK_NS`]) they fall due in,
//! rounded up like the wheel rounds them, so expiry is exactly as with the
//! nanosecond deadline. 40 bits of ticks (34.8 years) are read relative to
//! the table's clock (the latest `now` it saw): a deadline within 17.4
//! years of it either way decodes exactly. Farther ones (only huge
//! timeouts: `ipvsadm --set` and `-p` stop at 31 days) are stored as
//! never (a bit of `meta`), read back as `Timestamp(u64::MAX)`, the value
//! a saturated `now + timeout` has.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conn::wheel::{TICK_NS, tick_ceil};
use crate::conn::{Conn, ConnState, F_TEMPLATE, NO_LINK};
use crate::dest::{FwdMethod, NicId};
use crate::service::{DestRef, Protocol};
use crate::time::Timestamp;
use crate::wire::MacAddr;

/// An address as an entry stores it: its bytes, and whether it is IPv6.
pub(super) type Raw = [u8; 16];

#[inline(always)]
pub(super) fn raw(a: IpAddr) -> (Raw, bool) {
    match a {
        IpAddr::V4(v) => {
            let mut r = [0u8; 16];
            r[..4].copy_from_slice(&v.octets());
            (r, false)
        }
        IpAddr::V6(v) => (v.octets(), true),
    }
}

#[inline(always)]
fn addr(r: &Raw, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*r))
    } else {
        IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], r[3]))
    }
}

/// `meta` bits 0-2: the forwarding method.
const M_FWD: u8 = 0b111;
/// `meta`: UDP (else TCP).
pub(super) const M_UDP: u8 = 1 << 3;
/// `meta`: `caddr` and `vaddr` are IPv6.
pub(super) const M_C6: u8 = 1 << 4;
/// `meta`: `daddr` is IPv6.
pub(super) const M_D6: u8 = 1 << 5;
/// `meta`: `laddr` is IPv6.
pub(super) const M_L6: u8 = 1 << 6;
/// `meta`: the deadline is never (a saturated one, or too far to store).
const M_NEVER: u8 = 1 << 7;

const EXP_BITS: u32 = 40;
const EXP_MASK: u64 = (1 << EXP_BITS) - 1;
/// A deadline farther from the clock than this is stored as never.
const HALF: u64 = 1 << (EXP_BITS - 1);

#[inline(always)]
const fn fwd_bits(f: FwdMethod) -> u8 {
    match f {
        FwdMethod::Masq => 0,
        FwdMethod::Tunnel => 1,
        FwdMethod::Route => 2,
        FwdMethod::FullNat => 3,
        FwdMethod::Local => 4,
    }
}

/// One slab entry: a conn, a template or a free entry. `repr(C)`: what an
/// established packet reads (the ports and addresses its lookup compares,
/// flags, state, dest, deadline) comes first, in 61 bytes.
#[derive(Clone, Debug)]
#[repr(C)]
pub(super) struct Entry {
    pub(super) cport: u16,
    pub(super) vport: u16,
    pub(super) dport: u16,
    pub(super) lport: u16,
    pub(super) dest: DestRef,
    /// Conn: its template (`NO_LINK` if none). Template: how many conns it
    /// controls. Free entry: the next free one.
    pub(super) control: u32,
    exp_lo: u32,
    exp_hi: u8,
    pub(super) meta: u8,
    pub(super) state: ConnState,
    pub(super) flags: u8,
    /// Client packets seen, saturating (`in_pkts`, for `drop_entry`).
    pub(super) in_pkts: u8,
    pub(super) caddr: Raw,
    pub(super) vaddr: Raw,
    pub(super) client_mac: MacAddr,
    pub(super) client_nic: NicId,
    pub(super) daddr: Raw,
    pub(super) laddr: Raw,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 100);

impl Entry {
    pub(super) const EMPTY: Entry = Entry {
        caddr: [0; 16],
        vaddr: [0; 16],
        daddr: [0; 16],
        laddr: [0; 16],
        cport: 0,
        vport: 0,
        dport: 0,
        lport: 0,
        dest: DestRef { svc: 0, dest: 0 },
        control: NO_LINK,
        exp_lo: 0,
        exp_hi: 0,
        client_mac: [0; 6],
        client_nic: 0,
        meta: 0,
        state: ConnState::None,
        flags: 0,
        in_pkts: 0,
    };

    /// `c` as stored, its deadline read against clock tick `clock`.
    pub(super) fn encode(c: &Conn, clock: u64) -> Entry {
        let (caddr, c6) = raw(c.caddr);
        let (vaddr, _) = raw(c.vaddr);
        let (daddr, d6) = raw(c.daddr);
        let (laddr, l6) = raw(c.laddr);
        let mut meta = fwd_bits(c.fwd);
        debug_assert!(meta & !M_FWD == 0);
        if c.proto == Protocol::Udp {
            meta |= M_UDP;
        }
        for (on, bit) in [(c6, M_C6), (d6, M_D6), (l6, M_L6)] {
            if on {
                meta |= bit;
            }
        }
        let mut e = Entry {
            caddr,
            vaddr,
            daddr,
            laddr,
            cport: c.cport,
            vport: c.vport,
            dport: c.dport,
            lport: c.lport,
            dest: c.dest,
            control: if c.flags & F_TEMPLATE != 0 {
                c.n_control
            } else {
                c.control
            },
            exp_lo: 0,
            exp_hi: 0,
            client_mac: c.client_mac,
            client_nic: c.client_nic,
            meta,
            state: c.state,
            flags: c.flags,
            in_pkts: c.in_pkts,
        };
        e.set_expires(c.expires, clock);
        e
    }

    /// The conn this entry stores, its deadline read against `clock`.
    #[inline(always)]
    pub(super) fn decode(&self, clock: u64) -> Conn {
        let template = self.flags & F_TEMPLATE != 0;
        Conn {
            proto: self.proto(),
            caddr: addr(&self.caddr, self.meta & M_C6 != 0),
            cport: self.cport,
            vaddr: addr(&self.vaddr, self.meta & M_C6 != 0),
            vport: self.vport,
            daddr: self.daddr(),
            dport: self.dport,
            laddr: self.laddr(),
            lport: self.lport,
            dest: self.dest,
            fwd: self.fwd(),
            state: self.state,
            client_mac: self.client_mac,
            client_nic: self.client_nic,
            expires: self.expires(clock),
            flags: self.flags,
            in_pkts: self.in_pkts,
            control: if template { NO_LINK } else { self.control },
            n_control: if template { self.control } else { 0 },
        }
    }

    #[inline(always)]
    pub(super) fn daddr(&self) -> IpAddr {
        addr(&self.daddr, self.meta & M_D6 != 0)
    }

    #[inline(always)]
    pub(super) fn laddr(&self) -> IpAddr {
        addr(&self.laddr, self.meta & M_L6 != 0)
    }

    #[inline(always)]
    pub(super) fn proto(&self) -> Protocol {
        if self.meta & M_UDP != 0 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        }
    }

    #[inline(always)]
    pub(super) fn fwd(&self) -> FwdMethod {
        match self.meta & M_FWD {
            0 => FwdMethod::Masq,
            1 => FwdMethod::Tunnel,
            2 => FwdMethod::Route,
            3 => FwdMethod::FullNat,
            _ => FwdMethod::Local,
        }
    }

    #[inline(always)]
    pub(super) fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    #[inline(always)]
    pub(super) fn used(&self) -> bool {
        self.has(crate::conn::F_USED)
    }

    #[inline(always)]
    pub(super) fn is_template(&self) -> bool {
        self.has(F_TEMPLATE)
    }

    #[inline(always)]
    pub(super) fn is_one_packet(&self) -> bool {
        self.has(crate::conn::F_ONE_PACKET)
    }

    #[inline(always)]
    pub(super) fn is_inactive(&self) -> bool {
        self.has(crate::conn::F_INACTIVE)
    }

    /// The deadline's tick; `None`: never.
    #[inline(always)]
    pub(super) fn expires_tick(&self, clock: u64) -> Option<u64> {
        if self.meta & M_NEVER != 0 {
            return None;
        }
        let v = u64::from(self.exp_lo) | (u64::from(self.exp_hi) << 32);
        // Sign-extend the 40-bit distance from the clock.
        let d = v.wrapping_sub(clock) & EXP_MASK;
        Some(if d < HALF {
            clock.wrapping_add(d)
        } else {
            clock.wrapping_sub(EXP_MASK + 1 - d)
        })
    }

    /// Whether `tick` (`None`: never) is not before the deadline, without
    /// decoding it: the two are within the window of the module doc of
    /// each other.
    #[inline(always)]
    pub(super) fn not_before(&self, tick: Option<u64>) -> bool {
        match tick {
            None => true,
            Some(_) if self.meta & M_NEVER != 0 => false,
            Some(t) => {
                let v = u64::from(self.exp_lo) | (u64::from(self.exp_hi) << 32);
                t.wrapping_sub(v) & EXP_MASK < HALF
            }
        }
    }

    /// The tick the wheel arms the entry for (`tick_ceil` of the deadline).
    #[inline(always)]
    pub(super) fn due_tick(&self, clock: u64) -> u64 {
        self.expires_tick(clock)
            .unwrap_or(const { tick_ceil(u64::MAX) })
    }

    #[inline(always)]
    pub(super) fn expires(&self, clock: u64) -> Timestamp {
        match self.expires_tick(clock) {
            Some(t) => Timestamp(t.saturating_mul(TICK_NS)),
            None => Timestamp(u64::MAX),
        }
    }

    #[inline(always)]
    pub(super) fn set_expires(&mut self, at: Timestamp, clock: u64) {
        self.set_expires_tick(
            if at.0 == u64::MAX {
                None
            } else {
                Some(tick_ceil(at.0))
            },
            clock,
        );
    }

    /// Sets the deadline to `tick` (`None`: never).
    #[inline(always)]
    pub(super) fn set_expires_tick(&mut self, tick: Option<u64>, clock: u64) {
        let v = match tick {
            Some(t) if t.abs_diff(clock) < HALF => {
                self.meta &= !M_NEVER;
                t & EXP_MASK
            }
            _ => {
                self.meta |= M_NEVER;
                0
            }
        };
        self.exp_lo = v as u32;
        self.exp_hi = (v >> 32) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_and_protocol_round_trips_through_meta() {
        let methods = [
            FwdMethod::Masq,
            FwdMethod::Tunnel,
            FwdMethod::Route,
            FwdMethod::FullNat,
            FwdMethod::Local,
        ];
        for fwd in methods {
            for proto in [Protocol::Tcp, Protocol::Udp] {
                let mut e = Entry::EMPTY;
                e.meta = fwd_bits(fwd) | if proto == Protocol::Udp { M_UDP } else { 0 };
                assert_eq!((e.fwd(), e.proto()), (fwd, proto));
            }
        }
    }

    #[test]
    fn deadlines_round_trip_around_the_clock() {
        let mut e = Entry::EMPTY;
        for clock in [0u64, 1_000, 1 << 40, 1_733_000_000_000, u64::MAX / TICK_NS] {
            for d in [0i64, 1, -1, 900_000, 86_400_000 * 31, -86_400_000 * 31] {
                let t = clock.saturating_add_signed(d);
                e.set_expires_tick(Some(t), clock);
                assert_eq!(e.expires_tick(clock), Some(t), "clock {clock} d {d}");
                // Read against a clock that moved on a year.
                let later = clock.saturating_add(86_400_000 * 365);
                assert_eq!(e.expires_tick(later), Some(t), "clock {clock} d {d}");
            }
        }
        e.set_expires_tick(Some(1_000), 900);
        assert!(e.not_before(Some(1_000)) && e.not_before(Some(1_001)) && e.not_before(None));
        assert!(!e.not_before(Some(999)));
        e.set_expires(Timestamp(u64::MAX), 5);
        assert!(!e.not_before(Some(u64::MAX / TICK_NS)) && e.not_before(None));
        assert_eq!(e.expires(5), Timestamp(u64::MAX));
        e.set_expires(Timestamp(1_500_000), 0);
        assert_eq!(e.expires(0), Timestamp(2_000_000), "rounded up to a tick");
    }

    #[test]
    fn the_layout_is_100_bytes_of_fields_without_padding() {
        use std::mem::size_of;
        let fields = 4 * size_of::<Raw>()
            + 4 * size_of::<u16>()
            + size_of::<DestRef>()
            + size_of::<u32>() // control
            + size_of::<u32>() + size_of::<u8>() // deadline
            + size_of::<MacAddr>()
            + size_of::<NicId>()
            + 4; // meta, state, flags, in_pkts
        assert_eq!(fields, 100);
        assert_eq!(size_of::<Entry>(), 100, "no padding");
        assert_eq!(std::mem::align_of::<Entry>(), 4);
    }
}
