//! ipvsadm's `process_options` after the command: what each option of a
//! line sets, with ipvsadm's defaults and value checks (`parse_timeout`,
//! `parse_netmask`, `parse_sched_flags`).

use crate::dest::{TunCsum, TunType, TunnelSpec};
use std::net::IpAddr;

use super::addr::{AddrPort, atoi, inet_aton, parse_service, string_to_number};
use super::legal::OptSet;
use super::options::OptId;
use super::scan::Scanned;
use super::{
    CmdError, DEFAULT_PERSISTENCE_SECS, DaemonArgs, MAX_TIMEOUT_SECS, fail, not_supported,
};

/// ipvsadm's DEF_MCAST_IFN: `--start-daemon` without `--mcast-interface`.
const DEF_MCAST_IFN: &str = "eth0";
use crate::admin::listing::ListOptions;
use crate::sched::SchedFlags;
use crate::service::{FwdMethod, Protocol, ServiceKey};

/// The persistence granularity while parsing: ipvsadm keeps one netmask
/// field that `-t`/`-u` reset to 128 for IPv6 and `-M` sets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Mask {
    /// 0xffffffff: a host (IPv4 /32).
    Default,
    V4Prefix(u8),
    V6Prefix(u8),
}

impl Mask {
    /// The prefix length of the persistence mask for a service at `addr`.
    pub(super) fn prefix_for(self, addr: IpAddr) -> u8 {
        match (self, addr) {
            (Mask::V4Prefix(p), IpAddr::V4(_)) => p,
            (Mask::V6Prefix(p), IpAddr::V6(_)) => p,
            (_, IpAddr::V4(_)) => 32,
            (_, IpAddr::V6(_)) => 128,
        }
    }
}

/// Everything `process_options` accumulates.
pub(super) struct Entry {
    pub(super) options: OptSet,
    pub(super) proto: Option<Protocol>,
    pub(super) svc: AddrPort,
    /// `-f N`: the fwmark service of mark N (0: none).
    pub(super) fwmark: u32,
    /// `-6` after `-f`: the IPv6 fwmark service.
    pub(super) fwmark_v6: bool,
    sched_name: Option<String>,
    pub(super) persistence: Option<u64>,
    pub(super) mask: Mask,
    pub(super) ops: bool,
    sched_flags_arg: Option<String>,
    pub(super) dest: AddrPort,
    pub(super) fwd: FwdMethod,
    pub(super) weight: i32,
    pub(super) u_threshold: u32,
    pub(super) l_threshold: u32,
    /// `--tun-type`, `--tun-port`, `--tun-nocsum|--tun-csum|--tun-remcsum`.
    pub(super) tun: TunnelSpec,
    pub(super) list: ListOptions,
    pub(super) nosort: bool,
    /// `--start-daemon`'s options (`master` is set by the command).
    pub(super) daemon: DaemonArgs,
    /// `-z ADDR` (DPVS's `--laddr`): a FULLNAT local address.
    pub(super) laddr: Option<IpAddr>,
    /// `-F IFNAME` (DPVS's `--ifname`): the NIC it must be on.
    pub(super) ifname: Option<String>,
}

/// A whole number within bounds, or ipvsadm's "illegal WHAT specified".
fn bounded(arg: &str, min: i64, max: i64, what: &str) -> Result<i64, CmdError> {
    match string_to_number(arg, min, max) {
        Some(n) => Ok(n),
        None => fail(format!("illegal {what} specified")),
    }
}

/// A timeout value in seconds, at least `min` and at most 31 days.
pub(super) fn timeout_secs(s: &str, min: i64) -> Result<u64, CmdError> {
    match string_to_number(s, min, MAX_TIMEOUT_SECS as i64) {
        Some(n) => Ok(n as u64),
        None => fail(format!("invalid timeout value `{s}' specified")),
    }
}

impl Entry {
    /// ipvsadm's defaults: DR, weight 1, no thresholds, a host mask.
    pub(super) fn new() -> Entry {
        Entry {
            options: OptSet::default(),
            proto: None,
            svc: AddrPort::default(),
            fwmark: 0,
            fwmark_v6: false,
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
            tun: TunnelSpec::default(),
            list: ListOptions::default(),
            nosort: false,
            daemon: DaemonArgs {
                master: true,
                ifname: DEF_MCAST_IFN.to_string(),
                syncid: 0,
                maxlen: None,
                group: None,
                port: None,
                ttl: None,
            },
            laddr: None,
            ifname: None,
        }
    }

    /// Takes one option of the line: sets its class, then reads its value.
    pub(super) fn take(&mut self, s: &Scanned<'_>) -> Result<(), CmdError> {
        if let Some(c) = s.id.class() {
            self.options.set(c)?;
        }
        let arg = s.arg.unwrap_or("");
        match s.id {
            OptId::Tcp => self.service(Protocol::Tcp, arg)?,
            OptId::Udp => self.service(Protocol::Udp, arg)?,
            OptId::Sctp => return not_supported("SCTP services are"),
            // ipvsadm's parse_fwmark: 1..=UINT_MAX (the service is IPv4
            // until -6 says otherwise).
            OptId::Fwmark => match string_to_number(arg, 1, u32::MAX as i64) {
                Some(n) => self.fwmark = n as u32,
                None => return fail(format!("invalid fwmark value `{arg}' specified")),
            },
            // ipvsadm copies at most IP_VS_SCHEDNAME_MAXLEN - 1 bytes.
            OptId::Scheduler => self.sched_name = Some(arg.chars().take(15).collect()),
            OptId::Persistent => {
                self.persistence = Some(match s.arg {
                    None => DEFAULT_PERSISTENCE_SECS,
                    Some(a) => timeout_secs(a, 1)?,
                })
            }
            OptId::Netmask => self.netmask(arg)?,
            OptId::RealServer => {
                let Some(p) = parse_service(arg, self.proto) else {
                    return fail("illegal real server address[:port] specified");
                };
                // Without a port the real server takes the service's port
                // as known at this point of the line (ipvsadm copies it).
                self.dest = AddrPort {
                    addr: Some(p.addr),
                    port: p.port.unwrap_or(self.svc.port),
                };
            }
            OptId::Masq => self.fwd = FwdMethod::Masq,
            OptId::Ipip => self.fwd = FwdMethod::Tunnel,
            OptId::Gatewaying => self.fwd = FwdMethod::Route,
            OptId::FullNat => self.fwd = FwdMethod::FullNat,
            OptId::Weight => self.weight = bounded(arg, 0, 65535, "weight")? as i32,
            OptId::UThreshold => {
                self.u_threshold = bounded(arg, 0, i32::MAX as i64, "u_threshold")? as u32
            }
            OptId::LThreshold => {
                self.l_threshold = bounded(arg, 0, i32::MAX as i64, "l_threshold")? as u32
            }
            OptId::Numeric => self.list.numeric = true,
            // ipvsadm copies at most IP_VS_IFNAME_MAXLEN - 1 bytes.
            OptId::McastInterface => self.daemon.ifname = arg.chars().take(15).collect(),
            OptId::SyncId => self.daemon.syncid = bounded(arg, 0, 255, "syncid")? as u8,
            OptId::SyncMaxlen => {
                self.daemon.maxlen = Some(bounded(arg, 1, 65535 - 20 - 8, "sync-maxlen")? as u16)
            }
            OptId::McastGroup => match arg.parse::<IpAddr>() {
                Ok(a) if a.is_multicast() => self.daemon.group = Some(a),
                _ => return fail("illegal mcast-group specified"),
            },
            OptId::McastPort => {
                self.daemon.port = Some(bounded(arg, 1, 65535, "mcast-port")? as u16)
            }
            OptId::McastTtl => self.daemon.ttl = Some(bounded(arg, 1, 255, "mcast-ttl")? as u8),
            OptId::Daemon => {}
            OptId::Stats => self.list.stats = true,
            OptId::Rate => self.list.rate = true,
            OptId::Thresholds => self.list.thresholds = true,
            OptId::PersistentConn => self.list.persistent_conn = true,
            OptId::NoSort => self.nosort = true,
            OptId::Exact => self.list.exact = true,
            // Set by their class alone.
            OptId::Connection | OptId::Timeout | OptId::Sort => {}
            // -6 only qualifies a fwmark service, which needs -f first;
            // it resets the persistence mask to an IPv6 host.
            OptId::Ipv6 if self.fwmark != 0 => {
                self.fwmark_v6 = true;
                self.mask = Mask::V6Prefix(128);
            }
            OptId::Ipv6 => return fail("-6 used before -f\n"),
            OptId::Ops => self.ops = true,
            // lvsfwd has no persistence engine: what the kernel answers
            // when the engine's module is missing.
            OptId::Pe => return fail("Scheduler or persistence engine not found"),
            OptId::SchedFlags => self.sched_flags_arg = Some(arg.to_string()),
            OptId::TunInfo => self.list.tun_info = true,
            OptId::TunType => match TunType::from_name(arg) {
                Some(t) => self.tun.kind = t,
                None => return fail("illegal tunnel type specified"),
            },
            OptId::TunPort => self.tun.port = bounded(arg, 1, 65535, "tunnel port")? as u16,
            // ipvsadm ORs the flag bits; the checks of build.rs allow one.
            OptId::TunNocsum => self.tun.csum = TunCsum::NoCsum,
            OptId::TunCsum => self.tun.csum = TunCsum::Csum,
            OptId::TunRemcsum => self.tun.csum = TunCsum::RemCsum,
            // DPVS's parse_service: an address, a port after it ignored.
            OptId::Laddr => match parse_service(arg, self.proto) {
                Some(p) => self.laddr = Some(p.addr),
                None => return fail("illegal local address"),
            },
            // DPVS copies at most IFNAMSIZ - 1 bytes.
            OptId::Ifname => self.ifname = Some(arg.chars().take(15).collect()),
            OptId::Command(_) => return fail(format!("invalid option `{}'", s.text)),
        }
        Ok(())
    }

    /// `-t`/`-u`: ipvsadm's `parse_service` for the virtual service.
    fn service(&mut self, proto: Protocol, arg: &str) -> Result<(), CmdError> {
        self.proto = Some(proto);
        let Some(p) = parse_service(arg, self.proto) else {
            return fail("illegal virtual server address[:port] specified");
        };
        self.svc = AddrPort {
            addr: Some(p.addr),
            port: p.port.unwrap_or(self.svc.port),
        };
        if p.addr.is_ipv6() {
            self.mask = Mask::V6Prefix(128);
        }
        Ok(())
    }

    /// `-M`: an IPv6 prefix length once the service is IPv6, else a
    /// contiguous IPv4 netmask.
    fn netmask(&mut self, arg: &str) -> Result<(), CmdError> {
        if self.svc.addr.is_some_and(|a| a.is_ipv6()) || (self.fwmark != 0 && self.fwmark_v6) {
            let n = atoi(arg);
            if !(1..=128).contains(&n) {
                return fail("illegal ipv6 netmask specified");
            }
            self.mask = Mask::V6Prefix(n as u8);
        } else {
            let Some(m) = inet_aton(arg) else {
                return fail("illegal virtual server persistent mask specified");
            };
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return fail("illegal virtual server persistent mask specified");
            }
            self.mask = Mask::V4Prefix(bits.leading_ones() as u8);
        }
        Ok(())
    }

    /// The scheduler named on the line, or ipvsadm's default `wlc`.
    pub(super) fn sched_name(&self) -> &str {
        self.sched_name.as_deref().unwrap_or("wlc")
    }

    /// `-b`, checked against the scheduler (`parse_sched_flags`).
    pub(super) fn sched_flags(&self) -> Result<SchedFlags, CmdError> {
        match &self.sched_flags_arg {
            Some(a) => parse_sched_flags(self.sched_name(), a),
            None => Ok(SchedFlags::default()),
        }
    }

    /// The virtual service given with `-t`/`-u`/`-f`, if any.
    pub(super) fn svc_key(&self) -> Option<ServiceKey> {
        if self.fwmark != 0 {
            return Some(ServiceKey::fwmark(self.fwmark, self.fwmark_v6));
        }
        self.svc.addr.map(|addr| ServiceKey {
            proto: self.proto.unwrap_or(Protocol::Tcp),
            addr,
            port: self.svc.port,
            fwmark: 0,
        })
    }

    // `generic_opt_check` has refused every command that needs `-t`/`-r`
    // and lacks it, so these two never fail in practice.

    /// The service of a command that requires one.
    pub(super) fn required_key(&self) -> Result<ServiceKey, CmdError> {
        self.svc_key()
            .ok_or_else(|| CmdError::new("missing service"))
    }

    /// The real server of a command that requires one.
    pub(super) fn required_dest(&self) -> Result<IpAddr, CmdError> {
        self.dest
            .addr
            .ok_or_else(|| CmdError::new("missing real server"))
    }
}

/// `parse_sched_flags`, for the scheduler named on the line (or wlc).
fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, CmdError> {
    let mut f = SchedFlags::default();
    let mut any = false;
    for flag in arg.split(',').filter(|s| !s.is_empty()) {
        any = true;
        let (bit, only_for) = match flag {
            "flag-1" => (&mut f.fallback, None),
            "flag-2" => (&mut f.port, None),
            "flag-3" => (&mut f.flag3, None),
            "sh-fallback" => (&mut f.fallback, Some("sh")),
            "sh-port" => (&mut f.port, Some("sh")),
            "mh-fallback" => (&mut f.fallback, Some("mh")),
            "mh-port" => (&mut f.port, Some("mh")),
            other => return fail(format!("invalid scheduler flag `{other}'")),
        };
        if only_for.is_some_and(|s| s != sched) {
            return fail(format!("incompatible scheduler flag `{flag}'"));
        }
        *bit = true;
    }
    if !any {
        return fail(format!("invalid scheduler flag `{arg}'"));
    }
    Ok(f)
}
