//! The option table popt scans with: every option's long name (its
//! counter name), short letter, argument and the ipvsadm option class it
//! sets.

use super::legal::Optc;

pub(super) use counters::{CmdOpt, OptId};

/// `counter_enum!` gives each enum `ALL`, `COUNT`, `index()` and `name()`
/// (its long option name); the scanner needs only some of them, and these
/// enums are private, so the rest would be dead code.
#[allow(dead_code)]
mod counters {
    use crate::counter::counter_enum;

    counter_enum! {
        /// The command options, named by their long form.
        pub enum CmdOpt {
            Add => "add-service",
            Edit => "edit-service",
            Del => "delete-service",
            Clear => "clear",
            List => "list",
            Zero => "zero",
            AddDest => "add-server",
            EditDest => "edit-server",
            DelDest => "delete-server",
            Set => "set",
            Help => "help",
            Version => "version",
            Restore => "restore",
            Save => "save",
            StartDaemon => "start-daemon",
            StopDaemon => "stop-daemon",
            AddLaddr => "add-laddr",
            DelLaddr => "del-laddr",
            GetLaddr => "get-laddr",
        }
    }

    counter_enum! {
        /// What an option of the table is, named by its long form.
        pub enum OptId {
            Command(CmdOpt),
            Tcp => "tcp-service",
            Udp => "udp-service",
            Sctp => "sctp-service",
            Fwmark => "fwmark-service",
            Scheduler => "scheduler",
            Persistent => "persistent",
            Netmask => "netmask",
            RealServer => "real-server",
            Masq => "masquerading",
            Ipip => "ipip",
            Gatewaying => "gatewaying",
            FullNat => "fullnat",
            Weight => "weight",
            UThreshold => "u-threshold",
            LThreshold => "l-threshold",
            Numeric => "numeric",
            Connection => "connection",
            McastInterface => "mcast-interface",
            SyncId => "syncid",
            Timeout => "timeout",
            Daemon => "daemon",
            Stats => "stats",
            Rate => "rate",
            Thresholds => "thresholds",
            PersistentConn => "persistent-conn",
            NoSort => "nosort",
            Sort => "sort",
            Exact => "exact",
            Ipv6 => "ipv6",
            Ops => "ops",
            Pe => "pe",
            SchedFlags => "sched-flags",
            McastGroup => "mcast-group",
            McastPort => "mcast-port",
            McastTtl => "mcast-ttl",
            SyncMaxlen => "sync-maxlen",
            TunInfo => "tun-info",
            TunType => "tun-type",
            TunPort => "tun-port",
            TunNocsum => "tun-nocsum",
            TunCsum => "tun-csum",
            TunRemcsum => "tun-remcsum",
            Laddr => "laddr",
            Ifname => "ifname",
        }
    }
}

/// Whether an option takes an argument.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum ArgKind {
    None,
    Required,
    /// popt's `POPT_ARGFLAG_OPTIONAL`: the next word is taken only when it
    /// does not start with `-`.
    Optional,
}

use CmdOpt as C;
use OptId as O;

impl OptId {
    /// The option `--name`.
    pub(super) fn from_long(name: &str) -> Option<OptId> {
        C::ALL
            .iter()
            .map(|&c| O::Command(c))
            .chain(O::OWN.iter().copied())
            .find(|o| o.name() == name)
    }

    /// The option `-c`.
    pub(super) fn from_short(c: char) -> Option<OptId> {
        Some(match c {
            'A' => O::Command(C::Add),
            'E' => O::Command(C::Edit),
            'D' => O::Command(C::Del),
            'C' => O::Command(C::Clear),
            'L' | 'l' => O::Command(C::List),
            'Z' => O::Command(C::Zero),
            'a' => O::Command(C::AddDest),
            'e' => O::Command(C::EditDest),
            'd' => O::Command(C::DelDest),
            'h' => O::Command(C::Help),
            'v' => O::Command(C::Version),
            'R' => O::Command(C::Restore),
            'S' => O::Command(C::Save),
            'P' => O::Command(C::AddLaddr),
            'Q' => O::Command(C::DelLaddr),
            'G' => O::Command(C::GetLaddr),
            'z' => O::Laddr,
            'F' => O::Ifname,
            't' => O::Tcp,
            'u' => O::Udp,
            'f' => O::Fwmark,
            's' => O::Scheduler,
            'p' => O::Persistent,
            'M' => O::Netmask,
            'r' => O::RealServer,
            'm' => O::Masq,
            'i' => O::Ipip,
            'g' => O::Gatewaying,
            'w' => O::Weight,
            'x' => O::UThreshold,
            'y' => O::LThreshold,
            'n' => O::Numeric,
            'c' => O::Connection,
            'X' => O::Exact,
            '6' => O::Ipv6,
            'o' => O::Ops,
            'b' => O::SchedFlags,
            _ => return None,
        })
    }

    /// Whether the option takes an argument.
    pub(super) fn arg(self) -> ArgKind {
        match self {
            O::Command(C::StartDaemon | C::StopDaemon)
            | O::Tcp
            | O::Udp
            | O::Sctp
            | O::Fwmark
            | O::Scheduler
            | O::Netmask
            | O::RealServer
            | O::Weight
            | O::UThreshold
            | O::LThreshold
            | O::McastInterface
            | O::SyncId
            | O::Pe
            | O::SchedFlags
            | O::McastGroup
            | O::McastPort
            | O::McastTtl
            | O::SyncMaxlen
            | O::TunType
            | O::TunPort
            | O::Laddr
            | O::Ifname => ArgKind::Required,
            O::Persistent => ArgKind::Optional,
            O::Command(_)
            | O::Masq
            | O::Ipip
            | O::Gatewaying
            | O::FullNat
            | O::Numeric
            | O::Connection
            | O::Timeout
            | O::Daemon
            | O::Stats
            | O::Rate
            | O::Thresholds
            | O::PersistentConn
            | O::NoSort
            | O::Sort
            | O::Exact
            | O::Ipv6
            | O::Ops
            | O::TunInfo
            | O::TunNocsum
            | O::TunCsum
            | O::TunRemcsum => ArgKind::None,
        }
    }

    /// The class the option sets before its value is read; `None` for a
    /// command, `--sort` (a no-op) and what lvsfwd refuses before ipvsadm
    /// would set anything.
    pub(super) fn class(self) -> Option<Optc> {
        Some(match self {
            O::Tcp | O::Udp | O::Fwmark => Optc::Service,
            O::Scheduler => Optc::Scheduler,
            O::Persistent => Optc::Persistent,
            O::Netmask => Optc::Netmask,
            O::RealServer => Optc::Server,
            O::Masq | O::Ipip | O::Gatewaying | O::FullNat => Optc::Forward,
            O::Weight => Optc::Weight,
            O::UThreshold => Optc::UThreshold,
            O::LThreshold => Optc::LThreshold,
            O::Connection => Optc::Connection,
            O::Numeric => Optc::Numeric,
            O::Timeout => Optc::Timeout,
            O::Stats => Optc::Stats,
            O::Rate => Optc::Rate,
            O::Thresholds => Optc::Thresholds,
            O::PersistentConn => Optc::PersistentConn,
            O::NoSort => Optc::NoSort,
            O::Exact => Optc::Exact,
            O::Ops => Optc::OnePacket,
            O::SchedFlags => Optc::SchedFlags,
            O::TunType => Optc::TunType,
            O::TunPort => Optc::TunPort,
            O::TunNocsum => Optc::TunNocsum,
            O::TunCsum => Optc::TunCsum,
            O::TunRemcsum => Optc::TunRemcsum,
            O::McastInterface => Optc::Mcast,
            O::SyncId => Optc::SyncId,
            O::Daemon => Optc::Daemon,
            O::McastGroup => Optc::McastGroup,
            O::McastPort => Optc::McastPort,
            O::McastTtl => Optc::McastTtl,
            O::SyncMaxlen => Optc::SyncMaxlen,
            O::TunInfo => Optc::TunInfo,
            O::Laddr => Optc::LocalAddress,
            O::Ifname => Optc::Ifname,
            O::Command(_) | O::Sctp | O::Sort | O::Ipv6 | O::Pe => {
                return None;
            }
        })
    }
}
