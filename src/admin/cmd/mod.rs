//! ipvsadm 1.31's command line, parsed into a typed [`AdminCommand`].
//!
//! Mirrors `parse_options`, `process_options`, `generic_opt_check`,
//! `parse_service`, `parse_netmask`, `parse_timeout`, `parse_sched_flags`
//! and `config_stream_read` of ipvsadm.c (with popt's option scanning), so
//! that every command line ipvsadm accepts means the same here, and every
//! line it refuses is refused with the same message.
//!
//! Behaviour kept from ipvsadm on purpose (scripts depend on it):
//! - The command must be the first option (`-Ln` works, `-nL` does not);
//!   short options cluster (`-Ln`, `-At VIP:80`), long options take `=VAL`
//!   or the next word; positional words may appear anywhere.
//! - Defaults are filled in as ipvsadm does before it talks to the kernel:
//!   scheduler `wlc`, forwarding `-g` (DR), weight 1, persistence 360 s for
//!   a bare `-p` (libipvs' `IPVS_SVC_PERSISTENT_TIMEOUT`; ipvsadm(8) says
//!   300, the code says 360), a host-sized persistence mask. `-E` and `-e`
//!   therefore *reset* whatever is not given (scheduler back to wlc,
//!   persistence off, weight 1, DR), exactly like ipvsadm + the kernel.
//! - DR and TUN real servers take the service's port, whatever `-r` says.
//! - Addresses: `inet_aton` forms for IPv4 (`10.1` is 10.0.0.1), IPv6 bare
//!   or `[V6]:PORT`, ports as numbers or well-known service names.
//!
//! Where lvsfwd differs, and why:
//! - Every refusal exits 1 (interface.md §3), where ipvsadm exits 2 from
//!   `fail()` and 255 from popt errors and kernel errors: lvsadm's exit 2
//!   means "no daemon".
//! - Host names are not resolved (the daemon must not block on DNS): a
//!   name is refused with ipvsadm's message for an unknown host.
//! - fwmark and SCTP services, persistence engines, the sync daemon and
//!   GUE/GRE tunnels do not exist in lvsfwd: they are refused with a
//!   message saying so (an unknown `--pe` gets the kernel's message for a
//!   missing engine module). `--fullnat` selects lvsfwd's FULLNAT.
//! - An unknown scheduler is refused here with the kernel's message rather
//!   than after a round trip.
//! - A non-contiguous IPv4 persistence netmask (which IPVS would take and
//!   apply bitwise) is refused: services carry a prefix length.
//! - `--nosort` is accepted; listings are always sorted (the kernel's
//!   unsorted order is its hash-table order, which nothing can rely on).
//!   `--tun-info` is refused (every lvsfwd tunnel is plain IPIP).
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::admin::listing::ListOptions;
use crate::sched::{SchedFlags, SchedKind};
use crate::service::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};

/// The program name used in messages.
pub const PROGRAM: &str = "lvsadm";

/// ipvsadm's MAX_TIMEOUT: 31 days.
pub const MAX_TIMEOUT_SECS: u64 = 86400 * 31;

/// libipvs' IPVS_SVC_PERSISTENT_TIMEOUT: `-p` without a value.
pub const DEFAULT_PERSISTENCE_SECS: u64 = 360;

/// What `lvsadm -L|-l` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListWhat {
    /// Every service (also `lvsadm` without arguments).
    All,
    /// One service (`-L -t VIP:PORT`).
    Service(ServiceKey),
    /// `-L -c`: the connection table.
    Connections,
    /// `-L --timeout`.
    Timeouts,
}

/// One parsed lvsadm invocation (or one `-R` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// `-A`: a new service, without real servers.
    AddService(ServiceSpec),
    /// `-E`: replaces scheduler, flags, persistence and mask of an existing
    /// service (its `dests` and `local_addrs` are ignored: the service
    /// keeps its own).
    EditService(ServiceSpec),
    /// `-D`.
    DelService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-a`.
    AddDest { svc: ServiceKey, dest: DestSpec },
    /// `-e`: replaces forwarding, weight and thresholds of a real server.
    EditDest { svc: ServiceKey, dest: DestSpec },
    /// `-d`.
    DelDest {
        svc: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    /// `-L`/`-l`.
    List {
        what: ListWhat,
        opts: ListOptions,
        /// `--nosort` (accepted; listings stay sorted, see module doc).
        nosort: bool,
    },
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`; `None` (given as 0) leaves a value as is.
    SetTimeouts {
        tcp: Option<Duration>,
        tcp_fin: Option<Duration>,
        udp: Option<Duration>,
    },
    /// `-S [-n]`.
    Save { numeric: bool },
    /// `-R`: the rules come on stdin (see [`parse_restore`]).
    Restore,
    /// `-v`.
    Version,
    /// `-h`.
    Help,
}

/// Why a command line was refused: the text ipvsadm prints (without the
/// final newline) and lvsadm's exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdError {
    message: String,
}

impl CmdError {
    fn new(message: impl Into<String>) -> CmdError {
        CmdError {
            message: message.into(),
        }
    }
    /// ipvsadm's `tryhelp_exit`.
    pub(crate) fn try_help() -> CmdError {
        CmdError::new(format!(
            "Try `{PROGRAM} -h' or '{PROGRAM} --help' for more information."
        ))
    }
    /// The message, as printed on stderr (a newline follows).
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Every refused command line exits 1 (interface.md §3).
    pub fn exit_code(&self) -> i32 {
        1
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CmdError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, CmdError> {
    Err(CmdError::new(msg))
}

/// ipvsadm's option classes (`OPTC_*`), in its order: `generic_opt_check`
/// walks them in this order, so the first complaint is the same.
// Classes lvsfwd refuses outright (sync daemon, --pe, --tun-info) are
// never set, but they keep their place: the bit numbers are the table's.
#[allow(dead_code)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Optc {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

const NOPT: usize = 34;

const OPT_NAMES: [&str; NOPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }

    /// Which option classes a command takes, one character per [`Optc`]:
    /// `+` required, `x` refused, `1` at most one of the `1`s, ` ` optional
    /// (ipvsadm's `commands_v_options`).
    fn legal(self) -> &'static [u8; NOPT] {
        match self {
            Cmd::Add | Cmd::Edit => b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
            Cmd::Del => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::List => b" 11xxxxxxxxx11       xxxxxxx xxxxx",
            Cmd::AddDest | Cmd::EditDest => b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
            Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Save => b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        }
    }
}

/// What an option of the table is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum OptId {
    Command(CmdOpt),
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gatewaying,
    FullNat,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum CmdOpt {
    Add,
    Edit,
    Del,
    Clear,
    List,
    Zero,
    AddDest,
    EditDest,
    DelDest,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ArgKind {
    None,
    Required,
    /// popt's `POPT_ARGFLAG_OPTIONAL`: the next word is taken only when it
    /// does not start with `-`.
    Optional,
}

struct OptDef {
    long: &'static str,
    short: Option<char>,
    arg: ArgKind,
    id: OptId,
}

const fn o(long: &'static str, short: Option<char>, arg: ArgKind, id: OptId) -> OptDef {
    OptDef {
        long,
        short,
        arg,
        id,
    }
}

use ArgKind::{None as N, Optional as Opt, Required as Req};

const OPTIONS: &[OptDef] = &[
    o("add-service", Some('A'), N, OptId::Command(CmdOpt::Add)),
    o("edit-service", Some('E'), N, OptId::Command(CmdOpt::Edit)),
    o("delete-service", Some('D'), N, OptId::Command(CmdOpt::Del)),
    o("clear", Some('C'), N, OptId::Command(CmdOpt::Clear)),
    o("list", Some('L'), N, OptId::Command(CmdOpt::List)),
    o("list", Some('l'), N, OptId::Command(CmdOpt::List)),
    o("zero", Some('Z'), N, OptId::Command(CmdOpt::Zero)),
    o("add-server", Some('a'), N, OptId::Command(CmdOpt::AddDest)),
    o(
        "edit-server",
        Some('e'),
        N,
        OptId::Command(CmdOpt::EditDest),
    ),
    o(
        "delete-server",
        Some('d'),
        N,
        OptId::Command(CmdOpt::DelDest),
    ),
    o("set", None, N, OptId::Command(CmdOpt::Set)),
    o("help", Some('h'), N, OptId::Command(CmdOpt::Help)),
    o("version", Some('v'), N, OptId::Command(CmdOpt::Version)),
    o("restore", Some('R'), N, OptId::Command(CmdOpt::Restore)),
    o("save", Some('S'), N, OptId::Command(CmdOpt::Save)),
    o(
        "start-daemon",
        None,
        Req,
        OptId::Command(CmdOpt::StartDaemon),
    ),
    o("stop-daemon", None, Req, OptId::Command(CmdOpt::StopDaemon)),
    o("tcp-service", Some('t'), Req, OptId::Tcp),
    o("udp-service", Some('u'), Req, OptId::Udp),
    o("sctp-service", None, Req, OptId::Sctp),
    o("fwmark-service", Some('f'), Req, OptId::Fwmark),
    o("scheduler", Some('s'), Req, OptId::Scheduler),
    o("persistent", Some('p'), Opt, OptId::Persistent),
    o("netmask", Some('M'), Req, OptId::Netmask),
    o("real-server", Some('r'), Req, OptId::RealServer),
    o("masquerading", Some('m'), N, OptId::Masq),
    o("ipip", Some('i'), N, OptId::Ipip),
    o("gatewaying", Some('g'), N, OptId::Gatewaying),
    o("fullnat", None, N, OptId::FullNat),
    o("weight", Some('w'), Req, OptId::Weight),
    o("u-threshold", Some('x'), Req, OptId::UThreshold),
    o("l-threshold", Some('y'), Req, OptId::LThreshold),
    o("numeric", Some('n'), N, OptId::Numeric),
    o("connection", Some('c'), N, OptId::Connection),
    o("mcast-interface", None, Req, OptId::McastInterface),
    o("syncid", None, Req, OptId::SyncId),
    o("timeout", None, N, OptId::Timeout),
    o("daemon", None, N, OptId::Daemon),
    o("stats", None, N, OptId::Stats),
    o("rate", None, N, OptId::Rate),
    o("thresholds", None, N, OptId::Thresholds),
    o("persistent-conn", None, N, OptId::PersistentConn),
    o("nosort", None, N, OptId::NoSort),
    o("sort", None, N, OptId::Sort),
    o("exact", Some('X'), N, OptId::Exact),
    o("ipv6", Some('6'), N, OptId::Ipv6),
    o("ops", Some('o'), N, OptId::Ops),
    o("pe", None, Req, OptId::Pe),
    o("sched-flags", Some('b'), Req, OptId::SchedFlags),
    o("mcast-group", None, Req, OptId::McastGroup),
    o("mcast-port", None, Req, OptId::McastPort),
    o("mcast-ttl", None, Req, OptId::McastTtl),
    o("sync-maxlen", None, Req, OptId::SyncMaxlen),
    o("tun-info", None, N, OptId::TunInfo),
    o("tun-type", None, Req, OptId::TunType),
    o("tun-port", None, Req, OptId::TunPort),
    o("tun-nocsum", None, N, OptId::TunNocsum),
    o("tun-csum", None, N, OptId::TunCsum),
    o("tun-remcsum", None, N, OptId::TunRemcsum),
];

/// One item of popt's scan: an option with its argument, or an error.
#[derive(Debug)]
struct Scanned<'a> {
    id: OptId,
    /// The option as written (for "invalid option" messages).
    text: String,
    arg: Option<&'a str>,
}

/// popt's scanner: yields options in order and collects positional words.
struct Scanner<'a> {
    args: &'a [String],
    next: usize,
    /// Remaining characters of a short-option cluster, and its word.
    cluster: Option<(&'a str, usize)>,
    positional: Vec<&'a str>,
    rest_positional: bool,
}

impl<'a> Scanner<'a> {
    fn new(args: &'a [String]) -> Self {
        Scanner {
            args,
            next: 0,
            cluster: None,
            positional: Vec::new(),
            rest_positional: false,
        }
    }

    /// popt's error text for a missing argument.
    fn missing(text: &str) -> CmdError {
        CmdError::new(format!("{text}: missing argument"))
    }

    fn take_arg(&mut self, def: &OptDef, text: &str) -> Result<Option<&'a str>, CmdError> {
        match def.arg {
            ArgKind::None => Ok(None),
            ArgKind::Required => match self.args.get(self.next) {
                Some(a) => {
                    self.next += 1;
                    Ok(Some(a.as_str()))
                }
                None => Err(Self::missing(text)),
            },
            ArgKind::Optional => match self.args.get(self.next) {
                Some(a) if !a.starts_with('-') => {
                    self.next += 1;
                    Ok(Some(a.as_str()))
                }
                _ => Ok(None),
            },
        }
    }

    /// The next option, `Ok(None)` at the end.
    fn next_opt(&mut self) -> Result<Option<Scanned<'a>>, CmdError> {
        if let Some((word, pos)) = self.cluster.take() {
            return self.short(word, pos).map(Some);
        }
        loop {
            let Some(word) = self.args.get(self.next) else {
                return Ok(None);
            };
            let word = word.as_str();
            self.next += 1;
            if self.rest_positional || word == "-" || !word.starts_with('-') {
                self.positional.push(word);
                continue;
            }
            if word == "--" {
                self.rest_positional = true;
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let Some(def) = OPTIONS.iter().find(|d| d.long == name) else {
                    return Err(CmdError::new(format!("{word}: unknown option")));
                };
                let text = format!("--{name}");
                let arg = match (inline, def.arg) {
                    (Some(_), ArgKind::None) => {
                        return Err(CmdError::new(format!(
                            "{text}: option does not take an argument"
                        )));
                    }
                    (Some(v), _) => Some(v),
                    (None, _) => self.take_arg(def, &text)?,
                };
                return Ok(Some(Scanned {
                    id: def.id,
                    text,
                    arg,
                }));
            }
            return self.short(word, 1).map(Some);
        }
    }

    /// The short option at byte `pos` of the cluster `word`.
    fn short(&mut self, word: &'a str, pos: usize) -> Result<Scanned<'a>, CmdError> {
        let rest = &word[pos..];
        let Some(c) = rest.chars().next() else {
            return Err(CmdError::new(format!("{word}: unknown option")));
        };
        let after = pos + c.len_utf8();
        let text = format!("-{c}");
        let Some(def) = OPTIONS.iter().find(|d| d.short == Some(c)) else {
            return Err(CmdError::new(format!("{text}: unknown option")));
        };
        let tail = &word[after..];
        let arg = if def.arg != ArgKind::None && !tail.is_empty() {
            // popt: the rest of the cluster is the argument (`-p60`, `-ttcp`).
            Some(tail)
        } else {
            if !tail.is_empty() {
                self.cluster = Some((word, after));
            }
            self.take_arg(def, &text)?
        };
        Ok(Scanned {
            id: def.id,
            text,
            arg,
        })
    }
}

/// The service or real-server address being assembled, as ipvsadm's
/// `ipvs_service_t` (address family, address, port).
#[derive(Copy, Clone, Debug, Default)]
struct AddrPort {
    addr: Option<IpAddr>,
    port: u16,
}

/// ipvsadm's `SERVICE_ADDR | SERVICE_PORT` result of `parse_service`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Parsed {
    addr: IpAddr,
    port: Option<u16>,
}

/// C's `strtol(s, &end, 10)` accepted only when the whole word is a
/// number: leading white space and a sign are allowed.
fn strtol_whole(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// ipvsadm's `string_to_number`: a whole decimal number within bounds.
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    strtol_whole(s).filter(|n| (min..=max).contains(n))
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (leading 0)
/// or hex (0x); the last part fills the remaining bytes. Anything after
/// white space is ignored, as glibc does.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let s = match s.find([' ', '\t', '\n', '\r', '\x0b', '\x0c']) {
        Some(i) => &s[..i],
        None => s,
    };
    let mut parts = Vec::with_capacity(4);
    for p in s.split('.') {
        let v = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()?
        } else {
            return None;
        };
        if p.starts_with('+') || p.starts_with('-') {
            return None;
        }
        parts.push(v);
    }
    let n = parts.len();
    if n == 0 || n > 4 {
        return None;
    }
    let last_bits = 8 * (5 - n as u32);
    let (head, last) = parts.split_at(n - 1);
    if head.iter().any(|&v| v > 0xff) || last[0] >= (1u64 << last_bits) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, &h) in head.iter().enumerate() {
        v |= h << (24 - 8 * i);
    }
    v |= last[0];
    Some(Ipv4Addr::from(v as u32))
}

/// Well-known service names (`getservbyname`), so that `-t VIP:http`
/// works without reading /etc/services in the daemon.
const SERVICES: &[(&str, u16, bool, bool)] = &[
    // name, port, tcp, udp
    ("ftp-data", 20, true, false),
    ("ftp", 21, true, false),
    ("ssh", 22, true, false),
    ("telnet", 23, true, false),
    ("smtp", 25, true, false),
    ("domain", 53, true, true),
    ("tftp", 69, false, true),
    ("http", 80, true, false),
    ("www", 80, true, false),
    ("kerberos", 88, true, true),
    ("pop3", 110, true, false),
    ("ntp", 123, false, true),
    ("imap2", 143, true, false),
    ("imap", 143, true, false),
    ("snmp", 161, true, true),
    ("ldap", 389, true, true),
    ("https", 443, true, true),
    ("syslog", 514, false, true),
    ("submission", 587, true, false),
    ("ldaps", 636, true, true),
    ("imaps", 993, true, false),
    ("pop3s", 995, true, false),
    ("openvpn", 1194, true, true),
    ("mysql", 3306, true, false),
    ("postgresql", 5432, true, false),
    ("http-alt", 8080, true, false),
];

/// `None` protocol: no `-t`/`-u` seen yet on the line, which makes every
/// name unknown (ipvsadm looks names up for protocol 0).
fn service_to_port(name: &str, proto: Option<Protocol>) -> Option<u16> {
    SERVICES
        .iter()
        .find(|(n, _, tcp, udp)| {
            *n == name
                && match proto {
                    Some(Protocol::Tcp) => *tcp,
                    Some(Protocol::Udp) => *udp,
                    None => false,
                }
        })
        .map(|e| e.1)
}

/// ipvsadm's `parse_service`: `None` is its `SERVICE_NONE`.
fn parse_service(buf: &str, proto: Option<Protocol>) -> Option<Parsed> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, mut port_str): (&str, Option<&str>) = if let Some(rest) = buf.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, Some(after.strip_prefix(':')?))
    } else {
        (buf, None)
    };
    let addr = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        IpAddr::V6(v6)
    } else {
        // A bracketed non-IPv6 loses its port, as in ipvsadm (the port
        // pointer is re-taken from inside the brackets).
        let host = if port_str.is_some() {
            port_str = None;
            host
        } else {
            match host.rsplit_once(':') {
                Some((h, p)) => {
                    port_str = Some(p);
                    h
                }
                None => host,
            }
        };
        IpAddr::V4(inet_aton(host)?)
    };
    let port = match port_str {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => n as u16,
            None => service_to_port(p, proto)?,
        }),
    };
    Some(Parsed { addr, port })
}

/// `parse_timeout`: `None` = the option had no value.
fn parse_timeout(arg: Option<&str>, min: i64) -> Result<u64, CmdError> {
    match arg {
        None => Ok(DEFAULT_PERSISTENCE_SECS),
        Some(s) => match string_to_number(s, min, MAX_TIMEOUT_SECS as i64) {
            Some(n) => Ok(n as u64),
            None => fail(format!("invalid timeout value `{s}' specified")),
        },
    }
}

/// C's `atoi`: leading digits after white space and a sign, else 0.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(12)
        .collect();
    let v: i64 = digits.parse().unwrap_or(0);
    if neg { -v } else { v }
}

/// The persistence granularity while parsing: ipvsadm keeps one netmask
/// field that `-t`/`-u` reset to 128 for IPv6 and `-M` sets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Mask {
    /// 0xffffffff: a host (IPv4 /32).
    Default,
    V4Prefix(u8),
    V6Prefix(u8),
}

/// Everything `process_options` accumulates.
struct Entry {
    options: u64,
    numeric: bool,
    proto: Option<Protocol>,
    svc: AddrPort,
    sched_name: Option<String>,
    persistence: Option<u64>,
    mask: Mask,
    ops: bool,
    sched_flags_arg: Option<String>,
    dest: AddrPort,
    fwd: FwdMethod,
    weight: i32,
    u_threshold: u32,
    l_threshold: u32,
    list: ListOptions,
    nosort: bool,
}

fn set_option(options: &mut u64, c: Optc) -> Result<(), CmdError> {
    let bit = 1u64 << c as u8;
    if *options & bit != 0 {
        return fail(format!(
            "multiple '{}' options specified",
            OPT_NAMES[c as usize]
        ));
    }
    *options |= bit;
    Ok(())
}

fn has(options: u64, c: Optc) -> bool {
    options & (1u64 << c as u8) != 0
}

/// `generic_opt_check`.
fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), CmdError> {
    let legal = cmd.legal();
    let mut first_exclusive: Option<usize> = None;
    for (j, &rule) in legal.iter().enumerate() {
        let given = options & (1u64 << j) != 0;
        if !given {
            if rule == b'+' {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPT_NAMES[j],
                    cmd.name()
                ));
            }
            continue;
        }
        if rule == b'x' {
            return fail(format!(
                "Illegal '{}' option with the '{}' command",
                OPT_NAMES[j],
                cmd.name()
            ));
        }
        if rule == b'1' {
            match first_exclusive {
                None => first_exclusive = Some(j),
                Some(last) => {
                    return fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPT_NAMES[j],
                        OPT_NAMES[last],
                        cmd.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `parse_sched_flags`, for the scheduler named on the line (or wlc).
fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, CmdError> {
    let mut f = SchedFlags::default();
    let mut any = false;
    for flag in arg.split(',').filter(|s| !s.is_empty()) {
        any = true;
        let need = |s: &str| -> Result<(), CmdError> {
            if sched != s {
                return fail(format!("incompatible scheduler flag `{flag}'"));
            }
            Ok(())
        };
        match flag {
            "flag-1" => f.fallback = true,
            "flag-2" => f.port = true,
            "flag-3" => f.flag3 = true,
            "sh-fallback" => {
                f.fallback = true;
                need("sh")?
            }
            "sh-port" => {
                f.port = true;
                need("sh")?
            }
            "mh-fallback" => {
                f.fallback = true;
                need("mh")?
            }
            "mh-port" => {
                f.port = true;
                need("mh")?
            }
            other => return fail(format!("invalid scheduler flag `{other}'")),
        }
    }
    if !any {
        return fail(format!("invalid scheduler flag `{arg}'"));
    }
    Ok(f)
}

fn not_supported<T>(what: &str) -> Result<T, CmdError> {
    fail(format!("{what} not supported by lvsfwd"))
}

/// Parses one lvsadm command line (the words after the program name), as
/// ipvsadm 1.31 does. No words at all lists the table.
pub fn parse_args(args: &[String]) -> Result<AdminCommand, CmdError> {
    parse_line(args, false)
}

fn parse_line(args: &[String], in_restore: bool) -> Result<AdminCommand, CmdError> {
    if args.is_empty() {
        return Ok(AdminCommand::List {
            what: ListWhat::All,
            opts: ListOptions::default(),
            nosort: false,
        });
    }
    let mut sc = Scanner::new(args);
    let first = match sc.next_opt() {
        Ok(Some(s)) => s,
        Ok(None) | Err(_) => return Err(CmdError::try_help()),
    };
    let cmd = match first.id {
        OptId::Command(c) => match c {
            CmdOpt::Add => Cmd::Add,
            CmdOpt::Edit => Cmd::Edit,
            CmdOpt::Del => Cmd::Del,
            CmdOpt::Clear => Cmd::Flush,
            CmdOpt::List => Cmd::List,
            CmdOpt::Zero => Cmd::Zero,
            CmdOpt::AddDest => Cmd::AddDest,
            CmdOpt::EditDest => Cmd::EditDest,
            CmdOpt::DelDest => Cmd::DelDest,
            CmdOpt::Set => Cmd::Timeout,
            CmdOpt::Restore if in_restore => return Err(CmdError::try_help()),
            CmdOpt::Restore => Cmd::Restore,
            CmdOpt::Save => Cmd::Save,
            CmdOpt::Help => return Ok(AdminCommand::Help),
            CmdOpt::Version => return Ok(AdminCommand::Version),
            CmdOpt::StartDaemon | CmdOpt::StopDaemon => {
                return not_supported("the connection synchronization daemon is");
            }
        },
        _ => return Err(CmdError::try_help()),
    };
    let mut e = Entry {
        options: 0,
        numeric: false,
        proto: None,
        svc: AddrPort::default(),
        sched_name: None,
        persistence: None,
        mask: Mask::Default,
        ops: false,
        sched_flags_arg: None,
        dest: AddrPort::default(),
        fwd: FwdMethod::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        list: ListOptions::default(),
        nosort: false,
    };
    let mut tun_opts: Vec<Optc> = Vec::new();
    while let Some(s) = sc.next_opt()? {
        let arg = s.arg.unwrap_or("");
        match s.id {
            OptId::Tcp | OptId::Udp => {
                set_option(&mut e.options, Optc::Service)?;
                e.proto = Some(if s.id == OptId::Tcp {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                });
                let Some(p) = parse_service(arg, e.proto) else {
                    return fail("illegal virtual server address[:port] specified");
                };
                e.svc = AddrPort {
                    addr: Some(p.addr),
                    port: p.port.unwrap_or(e.svc.port),
                };
                if p.addr.is_ipv6() {
                    e.mask = Mask::V6Prefix(128);
                }
            }
            OptId::Sctp => return not_supported("SCTP services are"),
            OptId::Fwmark => return not_supported("fwmark services (-f) are"),
            OptId::Scheduler => {
                set_option(&mut e.options, Optc::Scheduler)?;
                // ipvsadm copies at most IP_VS_SCHEDNAME_MAXLEN - 1 bytes.
                e.sched_name = Some(arg.chars().take(15).collect());
            }
            OptId::Persistent => {
                set_option(&mut e.options, Optc::Persistent)?;
                e.persistence = Some(parse_timeout(s.arg, 1)?);
            }
            OptId::Netmask => {
                set_option(&mut e.options, Optc::Netmask)?;
                if e.svc.addr.is_some_and(|a| a.is_ipv6()) {
                    let n = atoi(arg);
                    if !(1..=128).contains(&n) {
                        return fail("illegal ipv6 netmask specified");
                    }
                    e.mask = Mask::V6Prefix(n as u8);
                } else {
                    let Some(m) = inet_aton(arg) else {
                        return fail("illegal virtual server persistent mask specified");
                    };
                    let bits = u32::from(m);
                    if bits.leading_ones() + bits.trailing_zeros() != 32 {
                        return fail("illegal virtual server persistent mask specified");
                    }
                    e.mask = Mask::V4Prefix(bits.leading_ones() as u8);
                }
            }
            OptId::RealServer => {
                set_option(&mut e.options, Optc::Server)?;
                let Some(p) = parse_service(arg, e.proto) else {
                    return fail("illegal real server address[:port] specified");
                };
                // Without a port the real server takes the service's port
                // as known at this point of the line (ipvsadm copies it).
                e.dest = AddrPort {
                    addr: Some(p.addr),
                    port: p.port.unwrap_or(e.svc.port),
                };
            }
            OptId::Masq | OptId::Ipip | OptId::Gatewaying | OptId::FullNat => {
                set_option(&mut e.options, Optc::Forward)?;
                e.fwd = match s.id {
                    OptId::Masq => FwdMethod::Masq,
                    OptId::Ipip => FwdMethod::Tunnel,
                    OptId::Gatewaying => FwdMethod::Route,
                    _ => FwdMethod::FullNat,
                };
            }
            OptId::Weight => {
                set_option(&mut e.options, Optc::Weight)?;
                match string_to_number(arg, 0, 65535) {
                    Some(w) => e.weight = w as i32,
                    None => return fail("illegal weight specified"),
                }
            }
            OptId::UThreshold => {
                set_option(&mut e.options, Optc::UThreshold)?;
                match string_to_number(arg, 0, i32::MAX as i64) {
                    Some(n) => e.u_threshold = n as u32,
                    None => return fail("illegal u_threshold specified"),
                }
            }
            OptId::LThreshold => {
                set_option(&mut e.options, Optc::LThreshold)?;
                match string_to_number(arg, 0, i32::MAX as i64) {
                    Some(n) => e.l_threshold = n as u32,
                    None => return fail("illegal l_threshold specified"),
                }
            }
            OptId::Connection => set_option(&mut e.options, Optc::Connection)?,
            OptId::Numeric => {
                set_option(&mut e.options, Optc::Numeric)?;
                e.numeric = true;
                e.list.numeric = true;
            }
            OptId::McastInterface
            | OptId::SyncId
            | OptId::Daemon
            | OptId::McastGroup
            | OptId::McastPort
            | OptId::McastTtl
            | OptId::SyncMaxlen => {
                return not_supported("the connection synchronization daemon is");
            }
            OptId::Timeout => set_option(&mut e.options, Optc::Timeout)?,
            OptId::Stats => {
                set_option(&mut e.options, Optc::Stats)?;
                e.list.stats = true;
            }
            OptId::Rate => {
                set_option(&mut e.options, Optc::Rate)?;
                e.list.rate = true;
            }
            OptId::Thresholds => {
                set_option(&mut e.options, Optc::Thresholds)?;
                e.list.thresholds = true;
            }
            OptId::PersistentConn => {
                set_option(&mut e.options, Optc::PersistentConn)?;
                e.list.persistent_conn = true;
            }
            OptId::NoSort => {
                set_option(&mut e.options, Optc::NoSort)?;
                e.nosort = true;
            }
            OptId::Sort => {}
            OptId::Exact => {
                set_option(&mut e.options, Optc::Exact)?;
                e.list.exact = true;
            }
            // -6 only qualifies a fwmark service, which needs -f first.
            OptId::Ipv6 => return fail("-6 used before -f\n"),
            OptId::Ops => {
                set_option(&mut e.options, Optc::OnePacket)?;
                e.ops = true;
            }
            // lvsfwd has no persistence engine: what the kernel answers
            // when the engine's module is missing.
            OptId::Pe => return fail("Scheduler or persistence engine not found"),
            OptId::SchedFlags => {
                set_option(&mut e.options, Optc::SchedFlags)?;
                e.sched_flags_arg = Some(arg.to_string());
            }
            OptId::TunInfo => return not_supported("--tun-info is"),
            OptId::TunType => {
                set_option(&mut e.options, Optc::TunType)?;
                match arg {
                    "ipip" => {}
                    "gue" | "gre" => {
                        return not_supported(&format!("tunnel type {arg} is"));
                    }
                    _ => return fail("illegal tunnel type specified"),
                }
            }
            OptId::TunPort => {
                set_option(&mut e.options, Optc::TunPort)?;
                if string_to_number(arg, 1, 65535).is_none() {
                    return fail("illegal tunnel port specified");
                }
                tun_opts.push(Optc::TunPort);
            }
            OptId::TunNocsum => {
                set_option(&mut e.options, Optc::TunNocsum)?;
                tun_opts.push(Optc::TunNocsum);
            }
            OptId::TunCsum => {
                set_option(&mut e.options, Optc::TunCsum)?;
                tun_opts.push(Optc::TunCsum);
            }
            OptId::TunRemcsum => {
                set_option(&mut e.options, Optc::TunRemcsum)?;
                tun_opts.push(Optc::TunRemcsum);
            }
            OptId::Command(_) => return fail(format!("invalid option `{}'", s.text)),
        }
    }

    let mut positional = sc.positional.iter();
    let mut timeouts = None;
    if cmd == Cmd::Timeout {
        let (Some(a), Some(b), Some(c)) = (positional.next(), positional.next(), positional.next())
        else {
            return fail("--set option requires 3 timeout values");
        };
        let t = |s: &str| -> Result<Option<Duration>, CmdError> {
            match string_to_number(s, 0, MAX_TIMEOUT_SECS as i64) {
                Some(0) => Ok(None),
                Some(n) => Ok(Some(Duration::from_secs(n as u64))),
                None => fail(format!("invalid timeout value `{s}' specified")),
            }
        };
        timeouts = Some((t(a)?, t(b)?, t(c)?));
    }
    if let Some(extra) = positional.next() {
        return fail(format!("unexpected argument {extra}"));
    }
    let sched_name = e.sched_name.clone().unwrap_or_else(|| "wlc".to_string());
    let sched_flags = match &e.sched_flags_arg {
        Some(a) => parse_sched_flags(&sched_name, a)?,
        None => SchedFlags::default(),
    };

    generic_opt_check(cmd, e.options)?;

    let svc_key = e.svc.addr.map(|addr| ServiceKey {
        proto: e.proto.unwrap_or(Protocol::Tcp),
        addr,
        port: e.svc.port,
    });

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if e.svc.port == 0 && e.persistence.is_none() {
            return fail("Zero port specified for non-persistent service");
        }
        if e.ops && e.proto != Some(Protocol::Udp) {
            return fail("One-Packet Scheduling is only for UDP virtual services");
        }
    }

    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if matches!(e.fwd, FwdMethod::Tunnel | FwdMethod::Route) {
            e.dest.port = e.svc.port;
        }
        if let (Some(sa), Some(da)) = (e.svc.addr, e.dest.addr)
            && sa.is_ipv4() != da.is_ipv4()
            && e.fwd != FwdMethod::Tunnel
        {
            return fail("Different address family is allowed only for tunneling servers");
        }
        let any_tun = has(e.options, Optc::TunType) || !tun_opts.is_empty();
        if any_tun && e.fwd != FwdMethod::Tunnel {
            return fail("Tunnel options conflict with forward method");
        }
        // Only ipip is left: every other tunnel option is illegal with it.
        for c in [
            Optc::TunPort,
            Optc::TunNocsum,
            Optc::TunCsum,
            Optc::TunRemcsum,
        ] {
            if has(e.options, c) {
                return fail(format!(
                    "Illegal '{}' option with the 'ipip' tunnel type",
                    OPT_NAMES[c as usize]
                ));
            }
        }
    }

    // `generic_opt_check` has refused every command that needs `-t`/`-r`
    // and lacks it, so these two never fail in practice.
    let required_key = || svc_key.ok_or_else(|| CmdError::new("missing service"));
    let dest_addr = e.dest.addr;
    let required_dest = || dest_addr.ok_or_else(|| CmdError::new("missing real server"));

    Ok(match cmd {
        Cmd::List => {
            let o = e.options;
            let table_fmt = has(o, Optc::Stats) || has(o, Optc::Rate) || has(o, Optc::Thresholds);
            if (has(o, Optc::Connection) || has(o, Optc::Timeout)) && table_fmt
                || has(o, Optc::Timeout) && has(o, Optc::PersistentConn)
            {
                return fail("options conflicts in the list command");
            }
            let what = if has(o, Optc::Connection) {
                ListWhat::Connections
            } else if let Some(k) = svc_key {
                ListWhat::Service(k)
            } else if has(o, Optc::Timeout) {
                ListWhat::Timeouts
            } else {
                ListWhat::All
            };
            AdminCommand::List {
                what,
                opts: e.list,
                nosort: e.nosort,
            }
        }
        Cmd::Add | Cmd::Edit => {
            let key = required_key()?;
            let Ok(sched) = sched_name.parse::<SchedKind>() else {
                return fail("Scheduler or persistence engine not found");
            };
            let persistence_prefix = match (e.mask, key.addr) {
                (Mask::V4Prefix(p), IpAddr::V4(_)) => p,
                (Mask::V6Prefix(p), IpAddr::V6(_)) => p,
                (_, IpAddr::V4(_)) => 32,
                (_, IpAddr::V6(_)) => 128,
            };
            let spec = ServiceSpec {
                key,
                sched,
                sched_flags,
                persistence: e.persistence.map(Duration::from_secs),
                persistence_prefix,
                ops: e.ops,
                local_addrs: Vec::new(),
                dests: Vec::new(),
            };
            if cmd == Cmd::Add {
                AdminCommand::AddService(spec)
            } else {
                AdminCommand::EditService(spec)
            }
        }
        Cmd::Del => AdminCommand::DelService(required_key()?),
        Cmd::Flush => AdminCommand::Clear,
        Cmd::AddDest | Cmd::EditDest => {
            let svc = required_key()?;
            let dest = DestSpec {
                addr: required_dest()?,
                port: e.dest.port,
                fwd: e.fwd,
                weight: e.weight,
                u_threshold: e.u_threshold,
                l_threshold: e.l_threshold,
                mac: None,
            };
            if cmd == Cmd::AddDest {
                AdminCommand::AddDest { svc, dest }
            } else {
                AdminCommand::EditDest { svc, dest }
            }
        }
        Cmd::DelDest => AdminCommand::DelDest {
            svc: required_key()?,
            addr: required_dest()?,
            port: e.dest.port,
        },
        Cmd::Timeout => {
            let (tcp, tcp_fin, udp) = timeouts.unwrap_or((None, None, None));
            AdminCommand::SetTimeouts { tcp, tcp_fin, udp }
        }
        Cmd::Restore => AdminCommand::Restore,
        Cmd::Save => AdminCommand::Save { numeric: e.numeric },
        Cmd::Zero => AdminCommand::Zero(svc_key),
    })
}

/// Splits one `-R` line into words as ipvsadm's `config_stream_read`
/// does (white space separated; a word `ipvsadm` is dropped so that saved
/// shell lines restore). lvsfwd also drops `lvsadm` and treats a word
/// starting with `#` as the start of a comment.
fn restore_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in line.split([' ', '\t', '\r']) {
        if w.is_empty() || w == "ipvsadm" || w == PROGRAM {
            continue;
        }
        if w.starts_with('#') {
            break;
        }
        out.push(w.to_string());
    }
    out
}

/// Parses `-R` input: one command per line, as `-S` writes them. Blank
/// lines are skipped. The first bad line is returned with its 1-based
/// number; nothing is applied by parsing.
pub fn parse_restore(text: &str) -> Result<Vec<AdminCommand>, (usize, CmdError)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let words = restore_words(line);
        if words.is_empty() {
            continue;
        }
        out.push(parse_line(&words, true).map_err(|e| (i + 1, e))?);
    }
    Ok(out)
}

/// `lvsadm -v`.
pub fn version_text() -> String {
    format!(
        "{PROGRAM} v{} (ipvsadm v1.31 command line, IPVS v1.2.1 listings)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `lvsadm -h`: ipvsadm's usage, in lvsfwd's words.
pub fn usage_text() -> String {
    let p = PROGRAM;
    let mut s = version_text();
    s.push_str(&format!(
        "Usage:
  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags] [-o]
  {p} -D virtual-service
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e virtual-service -r server-address [options]
  {p} -d virtual-service -r server-address
  {p} -L|l [virtual-service] [options]
  {p} -Z [virtual-service]
  {p} --set tcp tcpfin udp
  {p} -h

Commands (long or short form):
  --add-service     -A        add a virtual service
  --edit-service    -E        change a virtual service (unset options revert to defaults)
  --delete-service  -D        remove a virtual service
  --clear           -C        remove every virtual service
  --restore         -R        read commands from stdin, one per line
  --save            -S        print the table as commands
  --add-server      -a        add a real server
  --edit-server     -e        change a real server (unset options revert to defaults)
  --delete-server   -d        remove a real server
  --list            -L|-l     list the table
  --zero            -Z        reset the counters of one or every service
  --set tcp tcpfin udp        set the connection timeouts (0 keeps a value)
  --help            -h        print this text
  --version         -v        print the version

virtual-service:
  --tcp-service|-t  host[:port]      TCP service (IPv6: [addr]:port)
  --udp-service|-u  host[:port]      UDP service

Options:
  --scheduler    -s scheduler    rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf twos (default wlc)
  --persistent   -p [timeout]    persistent service (default timeout {DEFAULT_PERSISTENCE_SECS} s)
  --netmask      -M netmask      persistence granularity (IPv6: prefix length)
  --sched-flags  -b flags        comma-separated scheduler flags
  --ops          -o              one-packet scheduling (UDP)
  --real-server  -r host[:port]  real server
  --gatewaying   -g              direct routing (default)
  --ipip         -i              IP-in-IP tunnel
  --masquerading -m              NAT
  --fullnat                      FULLNAT (lvsfwd)
  --weight       -w weight       0..65535 (default 1)
  --u-threshold  -x uthreshold   upper connection threshold
  --l-threshold  -y lthreshold   lower connection threshold
  --connection   -c              list connections
  --timeout                      list the timeouts
  --stats                        list counters
  --rate                         list rates
  --exact        -X              exact numbers
  --thresholds                   list thresholds
  --persistent-conn              list persistent connections
  --nosort / --sort              accepted; listings are sorted
  --numeric      -n              numeric output (always the case)
  --socket PATH                  the daemon's admin socket
"
    ));
    s
}

#[cfg(test)]
mod tests;
