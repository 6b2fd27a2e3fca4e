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
//! - SCTP services, persistence engines and
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
//!
//! Layout: `options` is the option table and `scan` popt's scanner over
//! it; `entry` takes each option of a line (`process_options`), with
//! `addr` for numbers, addresses and ports; `legal` is the legality
//! matrix (`generic_opt_check`); `build` runs a line through all of these
//! and has one builder per command; `restore` reads `-R` input and `usage`
//! holds `-h` and `-v`.

mod addr;
mod build;
mod entry;
mod legal;
mod options;
mod restore;
mod scan;
#[cfg(test)]
mod tests;
mod usage;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::admin::listing::ListOptions;
use crate::service::{DestSpec, ServiceKey, ServiceSpec};

pub use addr::inet_aton;
pub use restore::parse_restore;
pub use usage::{usage_text, version_text};

// What the tests (`use super::*`) name besides the above.
#[cfg(test)]
use {
    crate::sched::{SchedFlags, SchedKind},
    crate::service::{FwdMethod, Protocol},
    addr::{atoi, strtol_whole},
};

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
    /// `-L --daemon`: the sync daemon's state.
    Daemon,
}

/// `--start-daemon`'s settings (ipvsadm's `ipvs_daemon_t`); what is not
/// given is the kernel's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonArgs {
    /// `master` (else `backup`).
    pub master: bool,
    /// `--mcast-interface` (ipvsadm's default: eth0).
    pub ifname: String,
    /// `--syncid` (default 0).
    pub syncid: u8,
    pub maxlen: Option<u16>,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
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
    /// `--start-daemon master|backup` and its options.
    StartDaemon(DaemonArgs),
    /// `--stop-daemon master|backup` (`true`: master).
    StopDaemon(bool),
    /// `-P -t|u|f SERVICE -z ADDR [-F IFNAME]` (DPVS's `--add-laddr`): adds
    /// `addr` to the service's FULLNAT local address pool; it must be an
    /// address of a NIC lvsfwd serves (of `ifname`, when given).
    AddLaddr {
        svc: ServiceKey,
        addr: IpAddr,
        ifname: Option<String>,
    },
    /// `-Q -t|u|f SERVICE -z ADDR [-F IFNAME]` (`--del-laddr`): removes it.
    DelLaddr {
        svc: ServiceKey,
        addr: IpAddr,
        ifname: Option<String>,
    },
    /// `-G [-t|u|f SERVICE]` (`--get-laddr`): lists the pools (of every
    /// service, or of one).
    GetLaddr(Option<ServiceKey>),
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

fn not_supported<T>(what: &str) -> Result<T, CmdError> {
    fail(format!("{what} not supported by lvsfwd"))
}

/// Parses one lvsadm command line (the words after the program name), as
/// ipvsadm 1.31 does. No words at all lists the table.
pub fn parse_args(args: &[String]) -> Result<AdminCommand, CmdError> {
    build::parse_line(args, false)
}
