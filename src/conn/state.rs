//! IPVS's per-connection protocol state: the TCP state machine of
//! `ip_vs_proto_tcp.c` (tables `tcp_states`, `tcp_state_active_table`,
//! `tcp_timeouts`) and UDP's single state of `ip_vs_proto_udp.c`.
//!
//! Invariants: the transition tables are IPVS's default ones (secure_tcp
//! off); the enum discriminants of the TCP states follow the kernel's
//! `IP_VS_TCP_S_*` numbering so a state indexes the table columns directly.
//!
//! Deliberately not here: the `secure_tcp` ("dos") tables and SCTP.

use std::time::Duration;

/// A connection's protocol state, named as `ipvsadm -L -c` prints it.
///
/// Templates (persistence) always stay in [`ConnState::None`], which the
/// kernel lists as "NONE" for them too.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
    /// UDP's only state (`IP_VS_UDP_S_NORMAL`).
    Udp = 11,
}

impl ConnState {
    /// How many states there are.
    pub const COUNT: usize = 12;
    /// Every state, in discriminant order (`ALL[s as usize] == s`).
    pub const ALL: [ConnState; Self::COUNT] = [
        ConnState::None,
        ConnState::Established,
        ConnState::SynSent,
        ConnState::SynRecv,
        ConnState::FinWait,
        ConnState::TimeWait,
        ConnState::Close,
        ConnState::CloseWait,
        ConnState::LastAck,
        ConnState::Listen,
        ConnState::SynAck,
        ConnState::Udp,
    ];

    /// The state column of `/proc/net/ip_vs_conn` and `ipvsadm -L -c`.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// `tcp_state_active`: states a TCP connection is counted in the real
    /// server's ActiveConn for (since Linux 4.7 the handshake states count,
    /// not only ESTABLISHED). Everything else, UDP included, is InActConn.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            ConnState::Established | ConnState::SynSent | ConnState::SynRecv | ConnState::SynAck
        )
    }
}

/// The TCP flags IPVS's state machine looks at.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

impl TcpFlags {
    pub const SYN: TcpFlags = TcpFlags::from_byte(0x02);
    pub const SYN_ACK: TcpFlags = TcpFlags::from_byte(0x12);
    pub const ACK: TcpFlags = TcpFlags::from_byte(0x10);
    pub const FIN_ACK: TcpFlags = TcpFlags::from_byte(0x11);
    pub const RST: TcpFlags = TcpFlags::from_byte(0x04);

    /// From the flags byte of a TCP header (byte 13).
    pub const fn from_byte(b: u8) -> TcpFlags {
        TcpFlags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            ack: b & 0x10 != 0,
        }
    }
}

/// Which half of the kernel's transition table applies to a packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum TcpTable {
    /// Client to director, when replies are seen too (NAT, FULLNAT).
    Input = 0,
    /// Real server to director (NAT, FULLNAT replies).
    Output = 1,
    /// Client to director when replies bypass the director (DR, TUN):
    /// IPVS's `IP_VS_CONN_F_NOOUTPUT` conns.
    InputOnly = 2,
}

use ConnState as S;
const ES: S = S::Established;
const SS: S = S::SynSent;
const SR: S = S::SynRecv;
const FW: S = S::FinWait;
const TW: S = S::TimeWait;
const CL: S = S::Close;
const CW: S = S::CloseWait;
const LA: S = S::LastAck;
const LI: S = S::Listen;

/// `[table][event][current state]`, events in the kernel's order syn, fin,
/// ack, rst; current-state columns in `IP_VS_TCP_S_*` order
/// (NONE ES SS SR FW TW CL CW LA LI SA).
const TCP_NEXT: [[[ConnState; 11]; 4]; 3] = [
    // Input
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // Output
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // InputOnly
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// `set_tcp_state`'s choice of the next state. RST wins over SYN, SYN over
/// FIN, FIN over ACK (`tcp_state_idx`); a segment with none of the four
/// flags sends the connection to CLOSE, as the kernel does.
pub(crate) fn tcp_next(table: TcpTable, cur: ConnState, f: TcpFlags) -> ConnState {
    let event = if f.rst {
        3
    } else if f.syn {
        0
    } else if f.fin {
        1
    } else if f.ack {
        2
    } else {
        return ConnState::Close;
    };
    let col = cur as usize;
    if col >= 11 {
        // Not a TCP state (a UDP conn never reaches here); keep it.
        return cur;
    }
    TCP_NEXT[table as usize][event][col]
}

/// IPVS's fixed TCP timeouts for the states `ipvsadm --set` cannot change.
pub(crate) fn tcp_fixed_timeout(s: ConnState) -> Duration {
    let secs = match s {
        ConnState::None => 2,
        ConnState::SynSent => 120,
        ConnState::SynRecv => 60,
        ConnState::TimeWait => 120,
        ConnState::Close => 10,
        ConnState::CloseWait => 60,
        ConnState::LastAck => 30,
        ConnState::Listen => 120,
        ConnState::SynAck => 120,
        // Established / FinWait come from `Timeouts`; Udp is not TCP.
        ConnState::Established => 900,
        ConnState::FinWait => 120,
        ConnState::Udp => 300,
    };
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_state_at_its_discriminant() {
        for (i, s) in ConnState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        // The last discriminant closes the range, so none is left out.
        assert_eq!(S::Udp as usize + 1, ConnState::COUNT);
    }
    const NO: S = S::None;
    const SA: S = S::SynAck;

    #[test]
    fn names_match_ipvsadm() {
        let all = [
            (S::None, "NONE"),
            (S::Established, "ESTABLISHED"),
            (S::SynSent, "SYN_SENT"),
            (S::SynRecv, "SYN_RECV"),
            (S::FinWait, "FIN_WAIT"),
            (S::TimeWait, "TIME_WAIT"),
            (S::Close, "CLOSE"),
            (S::CloseWait, "CLOSE_WAIT"),
            (S::LastAck, "LAST_ACK"),
            (S::Listen, "LISTEN"),
            (S::SynAck, "SYNACK"),
            (S::Udp, "UDP"),
        ];
        for (s, n) in all {
            assert_eq!(s.name(), n);
        }
    }

    #[test]
    fn flag_priority_and_flagless_segment() {
        // RST+SYN is an RST; SYN+FIN is a SYN; FIN+ACK is a FIN.
        let rst_syn = TcpFlags {
            rst: true,
            syn: true,
            ..TcpFlags::default()
        };
        assert_eq!(tcp_next(TcpTable::Input, ES, rst_syn), CL);
        let syn_fin = TcpFlags {
            syn: true,
            fin: true,
            ..TcpFlags::default()
        };
        assert_eq!(tcp_next(TcpTable::Input, NO, syn_fin), SR);
        assert_eq!(tcp_next(TcpTable::Input, ES, TcpFlags::FIN_ACK), CW);
        assert_eq!(tcp_next(TcpTable::Input, ES, TcpFlags::default()), CL);
    }

    #[test]
    fn from_byte_reads_the_four_flags() {
        let f = |syn, ack, fin, rst| TcpFlags { syn, ack, fin, rst };
        assert_eq!(TcpFlags::SYN, f(true, false, false, false));
        assert_eq!(TcpFlags::SYN_ACK, f(true, true, false, false));
        assert_eq!(TcpFlags::ACK, f(false, true, false, false));
        assert_eq!(TcpFlags::FIN_ACK, f(false, true, true, false));
        assert_eq!(TcpFlags::RST, f(false, false, false, true));
        assert_eq!(TcpFlags::from_byte(0x18), TcpFlags::ACK); // PSH+ACK
    }

    /// The input-only table (DR/TUN) differs from the input table in
    /// exactly three cells: a client FIN on ESTABLISHED or FIN_WAIT, and a
    /// client RST on SYNACK.
    #[test]
    fn input_only_differs_from_input_where_the_kernel_says() {
        let states = [NO, ES, SS, SR, FW, TW, CL, CW, LA, LI, SA];
        let events = [
            TcpFlags::SYN,
            TcpFlags::FIN_ACK,
            TcpFlags::ACK,
            TcpFlags::RST,
        ];
        let mut diff = Vec::new();
        for s in states {
            for (e, f) in events.iter().enumerate() {
                let a = tcp_next(TcpTable::Input, s, *f);
                let b = tcp_next(TcpTable::InputOnly, s, *f);
                if a != b {
                    diff.push((s, e, a, b));
                }
            }
        }
        assert_eq!(
            diff,
            vec![(ES, 1, CW, FW), (FW, 1, TW, FW), (SA, 3, SR, CL)]
        );
    }

    #[test]
    fn output_table_key_cells() {
        // Server SYN-ACK keeps SYN_RECV; server FIN on ESTABLISHED is
        // FIN_WAIT; server ACK on LISTEN establishes; server RST on
        // TIME_WAIT keeps TIME_WAIT.
        assert_eq!(tcp_next(TcpTable::Output, SR, TcpFlags::SYN_ACK), SR);
        assert_eq!(tcp_next(TcpTable::Output, ES, TcpFlags::FIN_ACK), FW);
        assert_eq!(tcp_next(TcpTable::Output, LI, TcpFlags::ACK), ES);
        assert_eq!(tcp_next(TcpTable::Output, TW, TcpFlags::RST), TW);
        assert_eq!(tcp_next(TcpTable::Output, NO, TcpFlags::SYN), SS);
        assert_eq!(tcp_next(TcpTable::Output, LA, TcpFlags::ACK), LA);
        assert_eq!(tcp_next(TcpTable::Input, LA, TcpFlags::ACK), CL);
    }

    #[test]
    fn active_states_follow_tcp_state_active_table() {
        let active: Vec<_> = [NO, ES, SS, SR, FW, TW, CL, CW, LA, LI, SA, S::Udp]
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, vec![ES, SS, SR, SA]);
    }
}
