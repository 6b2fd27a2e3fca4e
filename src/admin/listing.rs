//! ipvsadm 1.31's listings, column for column, as pure functions.
//!
//! Mirrors `list_all`, `print_title`, `print_service_entry`,
//! `print_largenum`, `print_sched_flags`, `list_conn`/`print_conn` and
//! `list_timeout` of ipvsadm.c so that scripts parsing ipvsadm keep working,
//! trailing spaces of the left-aligned columns included.
//!
//! Choices where lvsfwd differs from a kernel + ipvsadm pair:
//! - There is no resolver: without `-n` ipvsadm prints host and service
//!   names; we always print numbers (with the same column widths).
//! - FULLNAT, which ipvsadm lacks, lists as `FullNat` in the Forward column
//!   and saves as `--fullnat`.
//! - ipvsadm sorts by the sign of a wrapped 32-bit difference of addresses,
//!   which is a true order only for addresses less than 2^31 apart; we sort
//!   by the real numeric order, which gives the same result whenever
//!   ipvsadm's is well defined. IPv4 real servers of a tunnel service list
//!   before IPv6 ones (ipvsadm compares them with the first one's family).
//! - Removed real servers (`available == false`) are not listed, as IPVS
//!   moves them to its trash.
//!
//! Nothing here reads counters from the data plane or estimates rates: the
//! caller passes the table and, for `--rate`, a [`RateSnapshot`].

use std::cmp::Ordering;
use std::fmt::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::dest::{TunCsum, TunType};
use crate::sched::SchedKind;
use crate::service::{Dest, FwdMethod, Protocol, Service, ServiceSpec, ServiceTable};
use crate::view::{ConnView, Rates, ServiceRates};

/// ipvsadm's list options (`-n --stats --rate --exact --thresholds
/// --persistent-conn`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-n`. Names are never resolved, so this changes nothing; it is kept
    /// so that callers can pass ipvsadm's options through unchanged.
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub exact: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    /// `--tun-info`: each real server's tunnel (type, port, checksum).
    pub tun_info: bool,
}

/// Rates of a whole table, indexed like `ServiceTable::services`; missing
/// entries read as zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateSnapshot {
    pub services: Vec<ServiceRates>,
}

impl RateSnapshot {
    fn service(&self, svc: usize) -> Rates {
        self.services
            .get(svc)
            .map(|s| s.service)
            .unwrap_or_default()
    }
    fn dest(&self, svc: usize, dest: usize) -> Rates {
        self.services
            .get(svc)
            .and_then(|s| s.dests.get(dest))
            .copied()
            .unwrap_or_default()
    }
}

/// The IPVS version ipvsadm reports for every kernel since 2.6.
const IPVS_VERSION: &str = "1.2.1";

/// Which of ipvsadm's listing layouts the options select, in ipvsadm's
/// order of precedence.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Layout {
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
    Plain,
}

fn layout(o: &ListOptions) -> Layout {
    if o.stats {
        Layout::Stats
    } else if o.rate {
        Layout::Rate
    } else if o.thresholds {
        Layout::Thresholds
    } else if o.persistent_conn {
        Layout::PersistentConn
    } else if o.tun_info {
        Layout::TunInfo
    } else {
        Layout::Plain
    }
}

/// `ipvsadm -L`: the version line, the column titles, then every service
/// and its real servers in ipvsadm's order.
pub fn list_services(
    out: &mut impl Write,
    table: &ServiceTable,
    opts: &ListOptions,
    conn_tab_size: usize,
    rates: Option<&RateSnapshot>,
) -> fmt::Result {
    writeln!(
        out,
        "IP Virtual Server version {IPVS_VERSION} (size={conn_tab_size})"
    )?;
    print_title(out, opts)?;
    for i in sorted_services(table) {
        print_service(out, &table.services[i], i, opts, rates)?;
    }
    Ok(())
}

/// `ipvsadm -L -t|-u VIP:PORT`: titles and that one service (index `svc`
/// of `table`), without the version line.
pub fn list_service(
    out: &mut impl Write,
    table: &ServiceTable,
    svc: usize,
    opts: &ListOptions,
    rates: Option<&RateSnapshot>,
) -> fmt::Result {
    print_title(out, opts)?;
    match table.services.get(svc) {
        Some(s) => print_service(out, s, svc, opts, rates),
        None => Ok(()),
    }
}

/// `ipvsadm -S -n`: the table as ipvsadm commands (ipvsadm-restore input).
/// Thresholds are not saved, as in ipvsadm 1.31.
pub fn save_rules(out: &mut impl Write, table: &ServiceTable) -> fmt::Result {
    for i in sorted_services(table) {
        let s = &table.services[i];
        let opt = match s.key.proto {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        };
        let svc_name = match (s.key.fwmark, s.key.addr) {
            (0, _) => format!("{opt} {}", addr_port(s.key.addr, s.key.port)),
            (m, IpAddr::V4(_)) => format!("-f {m}"),
            (m, IpAddr::V6(_)) => format!("-f {m} -6"),
        };
        write!(out, "-A {svc_name} -s {}", s.sched.kind().name())?;
        if let Some(t) = s.persistence {
            write!(out, " -p {}", t.as_secs())?;
            write_mask(out, s, " -M ")?;
        }
        if s.ops {
            out.write_str(" -o")?;
        }
        let flags = sched_flags(s);
        if !flags.is_empty() {
            write!(out, " -b {flags}")?;
        }
        out.write_char('\n')?;
        for d in sorted_dests(s) {
            let d = &s.dests[d];
            let switch = match d.fwd {
                FwdMethod::Masq => "-m",
                FwdMethod::Tunnel => "-i",
                // ipvsadm's fwd_switch saves a Local dest as -g: restored,
                // it is Local again for as long as its address is ours.
                FwdMethod::Route | FwdMethod::Local => "-g",
                FwdMethod::FullNat => "--fullnat",
            };
            write!(
                out,
                "-a {svc_name} -r {} {switch} -w {}",
                addr_port(d.addr, d.port),
                d.weight
            )?;
            // 1.31 names the tunnel type of every tunnel dest, with GUE's
            // port and the checksum option of GUE and GRE
            // (`print_tunnel_rule`).
            if d.fwd == FwdMethod::Tunnel {
                write!(out, " --tun-type {}", d.tun.kind.name())?;
                if d.tun.kind == TunType::Gue {
                    write!(out, " --tun-port {}", d.tun.port)?;
                }
                if d.tun.kind != TunType::Ipip {
                    write!(out, " --tun-{}", d.tun.csum.name())?;
                }
            }
            out.write_char('\n')?;
        }
    }
    Ok(())
}

/// `ipvsadm --timeout`.
pub fn list_timeouts(
    out: &mut impl Write,
    tcp: Duration,
    tcp_fin: Duration,
    udp: Duration,
) -> fmt::Result {
    writeln!(
        out,
        "Timeout (tcp tcpfin udp): {} {} {}",
        tcp.as_secs(),
        tcp_fin.as_secs(),
        udp.as_secs()
    )
}

/// `ipvsadm -L --daemon` (1.31): one line per running sync daemon, master
/// first, with the settings the kernel reports (`maxlen` as resolved).
pub fn list_daemon(
    out: &mut impl Write,
    daemons: &[(bool, &crate::config::SyncDaemon)],
) -> fmt::Result {
    for (master, d) in daemons {
        write!(
            out,
            "{} sync daemon (mcast={}, syncid={}",
            if *master { "master" } else { "backup" },
            d.interface,
            d.syncid
        )?;
        if let Some(m) = d.maxlen.filter(|m| *m != 0) {
            write!(out, ", maxlen={m}")?;
        }
        write!(out, ", group={}, port={}, ttl={})", d.group, d.port, d.ttl)?;
        writeln!(out)?;
    }
    Ok(())
}

/// `ipvsadm -L -c -n`: connection entries in the order given.
pub fn list_conns(out: &mut impl Write, conns: &[ConnView], opts: &ListOptions) -> fmt::Result {
    out.write_str("IPVS connection entries\n")?;
    // ipvsadm pads these titles with printf widths 11, 18, 18 (, 18, 16).
    out.write_str(if opts.persistent_conn {
        "pro expire state       source             virtual            destination        pe name          pe_data\n"
    } else {
        "pro expire state       source             virtual            destination\n"
    })?;
    for c in conns {
        // The kernel reports whole seconds left; ipvsadm splits them into
        // minutes (unbounded) and seconds.
        let secs = c.expires_in.as_secs();
        let expire = format!("{:02}:{:02}", secs / 60, secs % 60);
        // Rows carry pe name/data only for connections of a persistence
        // engine (SIP), which lvsfwd does not have: even with
        // --persistent-conn they use the short layout, as in ipvsadm.
        writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            if c.any_proto { "IP" } else { c.proto.name() },
            expire,
            c.state,
            addr_port(c.caddr, c.cport),
            addr_port(c.vaddr, c.vport),
            addr_port(c.daddr, c.dport)
        )?;
    }
    Ok(())
}

fn print_title(out: &mut impl Write, opts: &ListOptions) -> fmt::Result {
    let remote = "  -> RemoteAddress:Port";
    let local = "Prot LocalAddress:Port";
    match layout(opts) {
        Layout::Stats => writeln!(
            out,
            "{local:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{remote}",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Layout::Rate => writeln!(
            out,
            "{local:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{remote}",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Layout::Thresholds => writeln!(
            out,
            "{local:<33} {:<10} {:<10} {:<10} {:<10}\n{remote}",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Layout::PersistentConn => writeln!(
            out,
            "{local:<33} {:<9} {:<11} {:<10} {:<10}\n{remote}",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        Layout::TunInfo => writeln!(
            out,
            "{local} Scheduler Flags\n{remote}           Forward TunnelInfo    Weight ActiveConn InActConn"
        ),
        Layout::Plain => writeln!(
            out,
            "{local} Scheduler Flags\n{remote}           Forward Weight ActiveConn InActConn"
        ),
    }
}

fn print_service(
    out: &mut impl Write,
    s: &Service,
    idx: usize,
    opts: &ListOptions,
    rates: Option<&RateSnapshot>,
) -> fmt::Result {
    let svc_name = if s.key.is_fwmark() {
        // "FWM  N" / "FWM  N IPv6", as ipvsadm's print_service_entry.
        s.key.to_string()
    } else {
        format!(
            "{:<4} {}",
            s.key.proto.name(),
            addr_port(s.key.addr, s.key.port)
        )
    };
    let lay = layout(opts);
    let zero = RateSnapshot::default();
    let rates = rates.unwrap_or(&zero);
    match lay {
        Layout::Stats => {
            write!(out, "{svc_name:<33}")?;
            for n in [
                s.stats.conns,
                s.stats.inpkts,
                s.stats.outpkts,
                s.stats.inbytes,
                s.stats.outbytes,
            ] {
                largenum(out, n, opts.exact)?;
            }
        }
        Layout::Rate => {
            write!(out, "{svc_name:<33}")?;
            let r = rates.service(idx);
            for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                largenum(out, n, opts.exact)?;
            }
        }
        _ => {
            write!(out, "{svc_name} {}", s.sched.kind().name())?;
            let flags = sched_flags(s);
            if !flags.is_empty() {
                write!(out, " ({flags})")?;
            }
            if let Some(t) = s.persistence {
                write!(out, " persistent {}", t.as_secs())?;
                write_mask(out, s, " mask ")?;
            }
            if s.ops {
                out.write_str(" ops")?;
            }
        }
    }
    out.write_char('\n')?;

    for di in sorted_dests(s) {
        let d = &s.dests[di];
        let dname = addr_port(d.addr, d.port);
        match lay {
            Layout::Stats => {
                write!(out, "  -> {dname:<28}")?;
                for n in [
                    d.stats.conns,
                    d.stats.inpkts,
                    d.stats.outpkts,
                    d.stats.inbytes,
                    d.stats.outbytes,
                ] {
                    largenum(out, n, opts.exact)?;
                }
                out.write_char('\n')?;
            }
            Layout::Rate => {
                // ipvsadm prints the three per-second counts of a dest in
                // full and abbreviates only the byte rates.
                let r = rates.dest(idx, di);
                write!(
                    out,
                    "  -> {dname:<28} {:>8} {:>8} {:>8}",
                    r.cps, r.inpps, r.outpps
                )?;
                largenum(out, r.inbps, opts.exact)?;
                largenum(out, r.outbps, opts.exact)?;
                out.write_char('\n')?;
            }
            Layout::Thresholds => writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.u_threshold, d.l_threshold, d.active_conns, d.inact_conns
            )?,
            Layout::PersistentConn => writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, d.persist_conns, d.active_conns, d.inact_conns
            )?,
            Layout::TunInfo => writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                d.fwd.name(),
                TunInfo(d),
                d.weight,
                d.active_conns,
                d.inact_conns
            )?,
            Layout::Plain => writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                d.fwd.name(),
                d.weight,
                d.active_conns,
                d.inact_conns
            )?,
        }
    }
    Ok(())
}

/// ipvsadm's `fwd_tun_info` column: `ipip`, `gue:PORT:FLAGS`, `gre:FLAGS`
/// with FLAGS `-c` (no checksum), `+c` (checksum) or `r+c` (remote
/// checksum offload); `n/a` for a real server that is not tunnelled.
struct TunInfo<'a>(&'a Dest);

impl fmt::Display for TunInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let flags = match d.tun.csum {
            TunCsum::NoCsum => "-c",
            TunCsum::Csum => "+c",
            TunCsum::RemCsum => "r+c",
        };
        let s = match (d.fwd, d.tun.kind) {
            (FwdMethod::Tunnel, TunType::Ipip) => "ipip".to_string(),
            (FwdMethod::Tunnel, TunType::Gue) => format!("gue:{}:{flags}", d.tun.port),
            (FwdMethod::Tunnel, TunType::Gre) => format!("gre:{flags}"),
            _ => "n/a".to_string(),
        };
        // Padding applies to the whole text, as printf's %-13s does.
        f.pad(&s)
    }
}

/// ipvsadm's `print_largenum`: a 9-character column, abbreviated to
/// thousands (K), millions (M), billions (G) or trillions (T) from 10^8 on;
/// with `--exact` the full number, the column widening as needed.
fn largenum(out: &mut impl Write, n: u64, exact: bool) -> fmt::Result {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return write!(out, "{digits:>width$}");
    }
    match n {
        0..100_000_000 => write!(out, "{n:>9}"),
        100_000_000..1_000_000_000 => write!(out, "{:>8}K", n / 1_000),
        1_000_000_000..100_000_000_000 => write!(out, "{:>8}M", n / 1_000_000),
        100_000_000_000..100_000_000_000_000 => write!(out, "{:>8}G", n / 1_000_000_000),
        _ => write!(out, "{:>8}T", n / 1_000_000_000_000),
    }
}

/// ipvsadm's `print_sched_flags`: sh and mh name their flags, every other
/// scheduler lists them as flag-N; comma separated, no spaces.
fn sched_flags(s: &Service) -> String {
    let f = s.sched_flags;
    let names: [(bool, &str); 3] = match s.sched.kind() {
        SchedKind::Sh => [
            (f.fallback, "sh-fallback"),
            (f.port, "sh-port"),
            (false, ""),
        ],
        SchedKind::Mh => [
            (f.fallback, "mh-fallback"),
            (f.port, "mh-port"),
            (false, ""),
        ],
        _ => [
            (f.fallback, "flag-1"),
            (f.port, "flag-2"),
            (f.flag3, "flag-3"),
        ],
    };
    names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// The persistence granularity, when it is not a single host: a dotted
/// netmask for IPv4, a prefix length for IPv6.
fn write_mask(out: &mut impl Write, s: &Service, lead: &str) -> fmt::Result {
    match s.key.addr {
        IpAddr::V4(_) if s.persistence_prefix < 32 => {
            let bits = u32::MAX
                .checked_shl(32 - s.persistence_prefix as u32)
                .unwrap_or(0);
            write!(out, "{lead}{}", Ipv4Addr::from(bits))
        }
        IpAddr::V6(_) if s.persistence_prefix < 128 => {
            write!(out, "{lead}{}", s.persistence_prefix)
        }
        _ => Ok(()),
    }
}

/// `ADDR:PORT`, IPv6 in brackets, as ipvsadm's `addrport_to_anyname -n`.
/// `lvsadm -G` (DPVS's `--get-laddr`): each service's FULLNAT local
/// address pool, in DPVS ipvsadm's columns (`list_laddrs_print_*`): a
/// title, then per service its address and pool size, then per local
/// address the connections using it (FULLNAT connections of that service
/// in `conns`) and `CONFLICTS`, what `conflicts` says of it: local ports
/// tried for a new connection that another connection to the same real
/// server already held (Alibaba LVS's `port_conflict`; DPVS prints 0).
pub fn list_laddrs(
    out: &mut impl Write,
    services: &[&ServiceSpec],
    conns: &[ConnView],
    conflicts: &dyn Fn(&ServiceSpec, IpAddr) -> u64,
) -> fmt::Result {
    writeln!(
        out,
        "{:<20} {:<8} {:<20} {:<10} {:<10}",
        "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
    )?;
    for s in services {
        let name = if s.key.is_fwmark() {
            s.key.to_string()
        } else {
            addr_port(s.key.addr, s.key.port)
        };
        writeln!(out, "{name:<20} {:<8} ", s.local_addrs.len())?;
        for l in &s.local_addrs {
            let n = conns
                .iter()
                .filter(|c| c.local == Some((s.key, *l)))
                .count();
            writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {n:<10}",
                "",
                "",
                l.to_string(),
                conflicts(s, *l)
            )?;
        }
    }
    Ok(())
}

fn addr_port(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// IPv4 before IPv6 (AF_INET < AF_INET6), then address, then port.
fn cmp_addr_port(a: (IpAddr, u16), b: (IpAddr, u16)) -> Ordering {
    let rank = |ip: &IpAddr| match ip {
        IpAddr::V4(_) => 0u8,
        IpAddr::V6(_) => 1,
    };
    rank(&a.0)
        .cmp(&rank(&b.0))
        .then_with(|| a.0.cmp(&b.0))
        .then(a.1.cmp(&b.1))
}

/// ipvsadm's `ipvs_cmp_services`: family, protocol number, address, port.
fn sorted_services(table: &ServiceTable) -> Vec<usize> {
    // Removed services keep their slot for the connections that refer to
    // them; they are not listed.
    let mut idx: Vec<usize> = (0..table.services.len())
        .filter(|&i| table.is_live(i as u32))
        .collect();
    idx.sort_by(|&i, &j| {
        let (a, b) = (&table.services[i].key, &table.services[j].key);
        let fam = |ip: &IpAddr| ip.is_ipv6();
        // The mark first, compared as ipvsadm's `int` difference.
        (a.fwmark.wrapping_sub(b.fwmark) as i32)
            .cmp(&0)
            .then(fam(&a.addr).cmp(&fam(&b.addr)))
            .then(a.proto.number().cmp(&b.proto.number()))
            .then_with(|| cmp_addr_port((a.addr, a.port), (b.addr, b.port)))
    });
    idx
}

/// ipvsadm's `ipvs_cmp_dests` over the dests IPVS would still list.
fn sorted_dests(s: &Service) -> Vec<usize> {
    let mut idx: Vec<usize> = s
        .dests
        .iter()
        .enumerate()
        .filter(|(_, d)| d.available)
        .map(|(i, _)| i)
        .collect();
    let key = |d: &Dest| (d.addr, d.port);
    idx.sort_by(|&i, &j| cmp_addr_port(key(&s.dests[i]), key(&s.dests[j])));
    idx
}

#[cfg(test)]
mod tests;
