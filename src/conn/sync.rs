//! Connection sync, the table's side (IPVS's `ip_vs_sync_conn` on a master,
//! `ip_vs_proc_conn` on a backup; the messages are `wire::ipvs_sync`).
//!
//! A master decides per client packet whether a conn (and then its
//! template) is to be sent, exactly as `ip_vs_sync_conn_needed` does:
//! - TCP conns only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and
//!   TIME_WAIT; a change into any of them but ESTABLISHED is sent at once;
//! - otherwise on the packet whose count, modulo `sync_period`, is
//!   `sync_threshold` (defaults 3 and 50: packets 3, 53, 103, ...), or, with
//!   `sync_period` 0, only on packet `sync_threshold` (or whenever
//!   `sync_refresh_period` says so);
//! - `sync_refresh_period` (seconds, default 0 = off): an entry whose
//!   deadline moved by less than that (and less than half its timeout, at
//!   least 10 s) since it was last sent is not sent again, except
//!   `sync_retries` times (0-3) at `refresh/8` intervals;
//! - a conn's template is looked at after the conn (with its own packet
//!   count, bumped each time), whether the conn was sent or not; one-packet
//!   conns are never sent, only their templates.
//!
//! The per-entry state this needs (`sync_endtime`, `old_state`, the packet
//! count) lives in [`SyncMeta`], a side array the table allocates only
//! when sync is switched on, so a table without sync is unchanged.
//!
//! A decision produces a [`SyncRecord`]: a fixed-size copy of what the
//! message needs. The data plane hands records to the sender over a
//! lock-free queue; the sender encodes them ([`SyncRecord::to_wire`]). A
//! backup turns each received entry back into a record
//! ([`SyncRecord::from_wire`]) and the worker owning the flow applies it
//! (`ConnTable::apply_synced`).

use std::net::IpAddr;

use super::ConnState;
use crate::service::{FwdMethod, Protocol};
use crate::wire::ipvs_sync::{SyncConn, flags};

/// IPVS's sync sysctls (`/proc/sys/net/ipv4/vs/sync_*`), kernel defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyncSysctls {
    /// `sync_threshold[0]` (default 3).
    pub threshold: u32,
    /// `sync_threshold[1]`, the period (default 50; 0: once).
    pub period: u32,
    /// `sync_refresh_period` in seconds (default 0: off).
    pub refresh_period: u32,
    /// `sync_retries` (0-3, default 0).
    pub retries: u32,
    /// `sync_persist_mode` (default 0): a conn controlled by a persistence
    /// template is not sent, only its template (`in_persistence`).
    pub persist_mode: bool,
    /// `sync_version` (default 1): 0 sends v0 messages (IPv4 only, no
    /// timeout, fwmark or options).
    pub version: u8,
    /// `sync_ports` (default 1, a power of two up to 64): a master sends
    /// over this many sockets to port, port + 1, ...; a backup listens
    /// on all of them.
    pub ports: u8,
    /// `sync_sock_size` (default 0: the system's): SO_SNDBUF of a master's
    /// sockets, SO_RCVBUF of a backup's.
    pub sock_size: u32,
}

/// `IPVS_SYNC_PORTS_MAX`.
pub const SYNC_PORTS_MAX: u8 = 64;

impl Default for SyncSysctls {
    fn default() -> SyncSysctls {
        SyncSysctls {
            threshold: 3,
            period: 50,
            refresh_period: 0,
            retries: 0,
            persist_mode: false,
            version: 1,
            ports: 1,
            sock_size: 0,
        }
    }
}

/// A master's per-entry sync state.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncMeta {
    /// `sync_endtime`: the deadline (ms) last sent, its low 2 bits the
    /// retries made.
    pub end: u64,
    /// Client packets seen while sync was on (`in_pkts`; a template counts
    /// the times its conns were looked at).
    pub pkts: u32,
    /// The state last sent (`old_state`).
    pub old_state: u8,
}

/// TCP states a master syncs.
const fn synced_tcp_state(s: ConnState) -> bool {
    matches!(
        s,
        ConnState::Established
            | ConnState::FinWait
            | ConnState::Close
            | ConnState::CloseWait
            | ConnState::TimeWait
    )
}

/// `ip_vs_sync_conn_needed`: whether to send an entry now. `timeout_ms`:
/// the entry's timeout (its state's, or a template's); `now_ms`: the
/// clock; `pkts`: the count after this packet.
#[allow(clippy::too_many_arguments)]
pub fn sync_needed(
    s: &SyncSysctls,
    m: &mut SyncMeta,
    template: bool,
    proto: Protocol,
    state: ConnState,
    timeout_ms: u64,
    now_ms: u64,
    pkts: u32,
) -> bool {
    let orig = m.end;
    let mut n = (now_ms + timeout_ms) & !3;
    let mut check = true;
    if !template && proto == Protocol::Tcp {
        if !synced_tcp_state(state) {
            return false;
        }
        // A change into a closing state is sent at once; into
        // ESTABLISHED it still waits for the packet count.
        if state as u8 != m.old_state && state != ConnState::Established {
            check = false;
        }
    }
    if check {
        let refresh_ms = u64::from(s.refresh_period) * 1000;
        if refresh_ms > 0 {
            let diff = n.abs_diff(orig);
            let min_diff = (timeout_ms / 2).max(10_000);
            if diff < refresh_ms.min(min_diff) {
                let retries = orig & 3;
                if retries >= u64::from(s.retries) {
                    return false;
                }
                if now_ms < (orig + refresh_ms / 8).saturating_sub(timeout_ms) {
                    return false;
                }
                n |= retries + 1;
            }
        }
        if s.period > 0 {
            if !template && pkts % s.period != s.threshold {
                return false;
            }
        } else if refresh_ms == 0 && pkts != s.threshold {
            return false;
        }
    }
    m.old_state = state as u8;
    m.end = n;
    true
}

/// The kernel's state number of `s` (UDP's only state is 0).
pub const fn wire_state(s: ConnState) -> u16 {
    match s {
        ConnState::Udp => 0,
        s => s as u16,
    }
}

/// What a sync message says about one conn or template: fixed size, no
/// heap, what the workers hand to the sender and the receiver to the
/// workers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    pub proto: Protocol,
    pub fwd: FwdMethod,
    pub template: bool,
    /// `IP_VS_CONN_F_INACTIVE`.
    pub inactive: bool,
    /// `IP_VS_CONN_F_NOOUTPUT`.
    pub no_output: bool,
    pub state: ConnState,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// FULLNAT's local side.
    pub local: Option<(IpAddr, u16)>,
    pub fwmark: u32,
    /// Seconds (0: the receiver's default for the state).
    pub timeout: u32,
}

const fn fwd_flag(f: FwdMethod) -> u32 {
    match f {
        // FULLNAT goes out as NAT plus the FULLNAT option.
        FwdMethod::Masq | FwdMethod::FullNat => flags::MASQ,
        FwdMethod::Local => flags::LOCALNODE,
        FwdMethod::Tunnel => flags::TUNNEL,
        FwdMethod::Route => flags::DROUTE,
    }
}

impl SyncRecord {
    /// The message entry for this record.
    /// Whether IPVS's format can carry the entry: one address family for
    /// client, virtual and real server (an entry's type says the family of
    /// all three). A mixed-family conn (an IPv6 VIP tunnelled to an IPv4
    /// real server, or the reverse) cannot be: the kernel's
    /// `ip_vs_sync_conn` has no check and copies `cp->daddr` by the
    /// client's family (the IPv4 address zero-padded to 16 bytes, or the
    /// first 4 bytes of the IPv6 one), an entry no backup can bind. lvsfwd
    /// leaves such entries out and counts them instead.
    pub fn one_family(&self) -> bool {
        let v6 = self.caddr.is_ipv6();
        self.vaddr.is_ipv6() == v6 && self.daddr.is_ipv6() == v6
    }

    pub fn to_wire(&self) -> SyncConn<'static> {
        let mut f = fwd_flag(self.fwd);
        if self.template {
            f |= flags::TEMPLATE;
            // Templates have no client port (`IP_VS_CONN_F_NO_CPORT` is
            // what the kernel sets on port-less persistence).
        }
        if self.inactive {
            f |= flags::INACTIVE;
        }
        if self.no_output {
            f |= flags::NOOUTPUT;
        }
        SyncConn {
            // A fwmark service's template is IPVS's IPPROTO_IP one.
            protocol: if self.template && self.fwmark != 0 {
                0
            } else {
                self.proto.number()
            },
            flags: f,
            state: if self.template {
                0
            } else {
                wire_state(self.state)
            },
            cport: self.cport,
            vport: self.vport,
            dport: self.dport,
            fwmark: self.fwmark,
            timeout: self.timeout,
            caddr: self.caddr,
            vaddr: self.vaddr,
            daddr: self.daddr,
            seq: None,
            pe_data: None,
            pe_name: None,
            fullnat_local: if self.fwd == FwdMethod::FullNat {
                self.local
            } else {
                None
            },
        }
    }

    /// A received entry as a record, or `None` for what a backup cannot
    /// hold, as the kernel refuses it: a protocol other than TCP or UDP, a
    /// state out of range, a BYPASS forwarding method, mixed families.
    pub fn from_wire(c: &SyncConn<'_>) -> Option<SyncRecord> {
        let fl = c.flags & flags::BACKUP_MASK;
        let template = fl & flags::TEMPLATE != 0;
        let proto = match c.protocol {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            // A fwmark service's template (`IPPROTO_IP`): held with the
            // nominal protocol of fwmark keys.
            0 if template && c.fwmark != 0 => Protocol::Tcp,
            _ => return None,
        };
        let state = if template {
            ConnState::None
        } else {
            match proto {
                Protocol::Udp if c.state == 0 => ConnState::Udp,
                Protocol::Udp => return None,
                // TCP: NONE .. SYNACK (the kernel's num_states).
                _ => *ConnState::ALL[..ConnState::COUNT - 1].get(usize::from(c.state))?,
            }
        };
        let fwd = match fl & flags::FWD_MASK {
            flags::MASQ if c.fullnat_local.is_some() => FwdMethod::FullNat,
            flags::MASQ => FwdMethod::Masq,
            flags::LOCALNODE => FwdMethod::Local,
            flags::TUNNEL => FwdMethod::Tunnel,
            flags::DROUTE => FwdMethod::Route,
            _ => return None,
        };
        let v6 = c.caddr.is_ipv6();
        if c.vaddr.is_ipv6() != v6 || c.daddr.is_ipv6() != v6 {
            return None;
        }
        Some(SyncRecord {
            proto,
            fwd,
            template,
            inactive: fl & flags::INACTIVE != 0,
            no_output: fl & flags::NOOUTPUT != 0,
            state,
            caddr: c.caddr,
            cport: c.cport,
            vaddr: c.vaddr,
            vport: c.vport,
            daddr: c.daddr,
            dport: c.dport,
            local: c.fullnat_local,
            fwmark: c.fwmark,
            timeout: c.timeout,
        })
    }
}

#[cfg(test)]
impl SyncRecord {
    /// The record unit tests start from, stating only the fields they
    /// change (`SyncRecord { fwd, ..SyncRecord::sample() }`): client
    /// 198.18.1.1:1 of the VIP 198.18.0.250:80, ESTABLISHED on the real
    /// server 198.18.0.11:80 by DR, TCP, 900 s, no flag, no mark, no local
    /// side.
    pub(crate) fn sample() -> SyncRecord {
        SyncRecord {
            proto: Protocol::Tcp,
            fwd: FwdMethod::Route,
            template: false,
            inactive: false,
            no_output: false,
            state: ConnState::Established,
            caddr: IpAddr::from([198, 18, 1, 1]),
            cport: 1,
            vaddr: IpAddr::from([198, 18, 0, 250]),
            vport: 80,
            daddr: IpAddr::from([198, 18, 0, 11]),
            dport: 80,
            local: None,
            fwmark: 0,
            timeout: 900,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: SyncSysctls = SyncSysctls {
        threshold: 3,
        period: 50,
        refresh_period: 0,
        retries: 0,
        persist_mode: false,
        version: 1,
        ports: 1,
        sock_size: 0,
    };

    fn tcp(m: &mut SyncMeta, s: &SyncSysctls, state: ConnState, now: u64, pkts: u32) -> bool {
        sync_needed(s, m, false, Protocol::Tcp, state, 900_000, now, pkts)
    }

    #[test]
    fn established_tcp_is_sent_on_packet_3_53_103() {
        let mut m = SyncMeta::default();
        let sent: Vec<u32> = (1..=120)
            .filter(|&p| {
                let st = if p == 1 {
                    ConnState::SynRecv
                } else {
                    ConnState::Established
                };
                tcp(&mut m, &S, st, u64::from(p), p)
            })
            .collect();
        assert_eq!(sent, vec![3, 53, 103]);
    }

    #[test]
    fn closing_states_are_sent_at_once_and_half_open_never() {
        let mut m = SyncMeta::default();
        assert!(!tcp(&mut m, &S, ConnState::SynRecv, 0, 3));
        assert!(tcp(&mut m, &S, ConnState::Established, 0, 3));
        assert!(!tcp(&mut m, &S, ConnState::Established, 0, 4));
        assert!(tcp(&mut m, &S, ConnState::FinWait, 0, 5), "state change");
        assert!(!tcp(&mut m, &S, ConnState::FinWait, 0, 6), "same state");
        assert!(tcp(&mut m, &S, ConnState::TimeWait, 0, 7));
        assert!(!tcp(&mut m, &S, ConnState::LastAck, 0, 3));
    }

    #[test]
    fn udp_follows_the_threshold_and_period_zero_sends_once() {
        let mut m = SyncMeta::default();
        let udp = |m: &mut SyncMeta, s: &SyncSysctls, p| {
            sync_needed(s, m, false, Protocol::Udp, ConnState::Udp, 300_000, 0, p)
        };
        let sent: Vec<u32> = (1..=60).filter(|&p| udp(&mut m, &S, p)).collect();
        assert_eq!(sent, vec![3, 53]);
        let once = SyncSysctls { period: 0, ..S };
        let mut m = SyncMeta::default();
        let sent: Vec<u32> = (1..=200).filter(|&p| udp(&mut m, &once, p)).collect();
        assert_eq!(sent, vec![3]);
    }

    #[test]
    fn templates_go_with_every_look_unless_refresh_limits_them() {
        let mut m = SyncMeta::default();
        let t = |m: &mut SyncMeta, s: &SyncSysctls, now, p| {
            sync_needed(s, m, true, Protocol::Tcp, ConnState::None, 360_000, now, p)
        };
        assert!((1..10).all(|p| t(&mut m, &S, 0, p)));
        // sync_refresh_period 60 s: not again while the deadline moved by
        // less than 60 s, then again.
        let r = SyncSysctls {
            refresh_period: 60,
            ..S
        };
        let mut m = SyncMeta::default();
        assert!(t(&mut m, &r, 1_000, 1));
        assert!(!t(&mut m, &r, 30_000, 2));
        assert!(t(&mut m, &r, 62_000, 3));
    }

    #[test]
    fn refresh_retries_resend_a_few_times() {
        let r = SyncSysctls {
            refresh_period: 80,
            retries: 2,
            ..S
        };
        let mut m = SyncMeta::default();
        let u = |m: &mut SyncMeta, now, p| {
            sync_needed(&r, m, false, Protocol::Udp, ConnState::Udp, 300_000, now, p)
        };
        assert!(u(&mut m, 0, 3));
        // Within the refresh period: retried twice, 10 s (80/8) apart.
        assert!(!u(&mut m, 5_000, 53));
        assert!(u(&mut m, 10_000, 103));
        assert!(u(&mut m, 21_000, 153));
        assert!(!u(&mut m, 31_000, 203), "retries used up");
    }

    #[test]
    fn records_round_trip_through_the_wire_form() {
        let r = SyncRecord {
            fwd: FwdMethod::FullNat,
            caddr: "198.18.1.2".parse().unwrap(),
            cport: 40000,
            local: Some(("198.18.9.1".parse().unwrap(), 2000)),
            ..SyncRecord::sample()
        };
        let w = r.to_wire();
        assert_eq!(w.flags & flags::FWD_MASK, flags::MASQ);
        assert_eq!(SyncRecord::from_wire(&w), Some(r));
        for (fwd, tpl) in [
            (FwdMethod::Route, true),
            (FwdMethod::Masq, false),
            (FwdMethod::Tunnel, false),
            (FwdMethod::Local, false),
        ] {
            let x = SyncRecord {
                fwd,
                template: tpl,
                inactive: tpl,
                state: if tpl {
                    ConnState::None
                } else {
                    ConnState::FinWait
                },
                cport: if tpl { 0 } else { 1 },
                local: None,
                ..r
            };
            assert_eq!(SyncRecord::from_wire(&x.to_wire()), Some(x));
        }
        let mut bad = r.to_wire();
        bad.protocol = 132;
        assert_eq!(SyncRecord::from_wire(&bad), None);
        bad.protocol = 6;
        bad.state = 11;
        assert_eq!(SyncRecord::from_wire(&bad), None);
    }
}
