//! Semantic checks: raw lb.toml values to the typed [`Config`].
//!
//! Every check reports the byte offset of the value it refuses, so the user
//! sees `PATH:LINE:COL`. The rules are IPVS's (kernel + ipvsadm 1.31) and
//! keepalived's; where they differ or are silent, the choice is explained at
//! the check. We refuse rather than warn: a value that IPVS or keepalived
//! would silently ignore or rewrite is always a misunderstanding worth
//! stopping `lvsfwd check` for.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{
    Granularity, Persistence, RawConfig, RawGlobal, RawHttpGet, RawMiscCheck, RawRealServer,
    RawTcpCheck, RawTimeouts, RawVirtualServer, RawVrrp, S, StatusCodes,
};
use super::*;

/// A semantic error at a byte offset of the document.
#[derive(Debug)]
pub(crate) struct VErr {
    pub offset: usize,
    pub msg: String,
}

type R<T> = Result<T, VErr>;

fn fail<T>(span: Range<usize>, msg: impl Into<String>) -> R<T> {
    Err(VErr {
        offset: span.start,
        msg: msg.into(),
    })
}

/// ipvsadm's MAX_TIMEOUT: 31 days, the bound of `-p` and `--set`.
const MAX_TIMEOUT_SECS: i64 = 86400 * 31;
/// IPVS_SVC_PERSISTENT_TIMEOUT: `-p` / `persistence_timeout` without a value.
const DEFAULT_PERSISTENCE_SECS: u64 = 360;
/// ipvsadm's `-w` bound (the kernel only refuses negative weights).
const MAX_WEIGHT: i64 = 65535;

fn int_in(v: &S<i64>, key: &str, lo: i64, hi: i64) -> R<i64> {
    let n = *v.get_ref();
    if n < lo || n > hi {
        return fail(v.span(), format!("{key} {n} is out of range {lo}..={hi}"));
    }
    Ok(n)
}

/// Seconds given as a TOML number (integer or float), `lo..=hi`.
fn secs_in(v: &S<f64>, key: &str, lo: f64, hi: f64, lo_inclusive: bool) -> R<Duration> {
    let x = *v.get_ref();
    let low_ok = if lo_inclusive { x >= lo } else { x > lo };
    if !x.is_finite() || !low_ok || x > hi {
        let open = if lo_inclusive { "" } else { " (exclusive)" };
        return fail(
            v.span(),
            format!("{key} {x} is out of range {lo}{open}..={hi} seconds"),
        );
    }
    Ok(Duration::from_secs_f64(x))
}

fn parse_ip(v: &S<String>, what: &str) -> R<IpAddr> {
    v.get_ref().parse().or_else(|_| {
        fail(
            v.span(),
            format!("{what} `{}` is not an IP address", v.get_ref()),
        )
    })
}

/// Parses `ADDR:PORT`, `[V6]:PORT`, or, when `default_port` is given, a bare
/// `ADDR` / `V6` / `[V6]` that takes that port.
fn parse_sockaddr(v: &S<String>, what: &str, default_port: Option<u16>) -> R<SocketAddr> {
    let s = v.get_ref().as_str();
    let bad = |why: String| fail(v.span(), format!("{what} `{s}`: {why}"));
    if let Some(p) = default_port {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, p));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
            && let Ok(ip) = inner.parse::<std::net::Ipv6Addr>()
        {
            return Ok(SocketAddr::new(IpAddr::V6(ip), p));
        }
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((h, p)) => (h, p),
            None => return bad("expected `[IPv6]:PORT`".into()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return bad("an IPv6 address with a port needs brackets: `[ADDR]:PORT`".into());
            }
            Some((h, p)) => (h, p),
            None if default_port.is_none() => return bad("expected `ADDR:PORT`".into()),
            None => return bad("not an IP address".into()),
        }
    };
    let ip: IpAddr = match host.parse() {
        Ok(ip) if s.starts_with('[') == matches!(ip, IpAddr::V6(_)) => ip,
        _ => return bad(format!("`{host}` is not an IP address")),
    };
    let port: u64 = match port.parse() {
        Ok(p) => p,
        Err(_) => return bad(format!("`{port}` is not a port number")),
    };
    if port > u16::MAX as u64 {
        return bad(format!("port {port} is out of range 0..=65535"));
    }
    Ok(SocketAddr::new(ip, port as u16))
}

fn family(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

fn same_family(a: &IpAddr, b: &IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// `52:54:00:00:00:11` (or with `-`); a next hop must be a unicast station.
fn parse_mac(v: &S<String>) -> R<MacAddr> {
    let s = v.get_ref();
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    let ok = parts.len() == 6
        && parts
            .iter()
            .zip(mac.iter_mut())
            .all(|(p, b)| p.len() == 2 && u8::from_str_radix(p, 16).map(|x| *b = x).is_ok());
    if !ok {
        return fail(
            v.span(),
            format!(
                "mac `{s}` is not a MAC address (expected six hex pairs like 52:54:00:00:00:11)"
            ),
        );
    }
    if mac == [0; 6] || mac[0] & 1 == 1 {
        return fail(
            v.span(),
            format!("mac `{s}` is not a unicast address and cannot be a next hop"),
        );
    }
    Ok(mac)
}

pub(crate) fn validate(raw: RawConfig) -> R<Config> {
    let global = global(raw.global)?;
    let timeouts = timeouts(raw.timeouts)?;
    let mut vrrp_instances = Vec::with_capacity(raw.vrrp_instance.len());
    let mut names = HashSet::new();
    let mut vrids = HashSet::new();
    for v in raw.vrrp_instance {
        let name_span = v.get_ref().name.span();
        let vrid_span = v.get_ref().virtual_router_id.span();
        let inst = vrrp(v.into_inner())?;
        if !names.insert(inst.name.clone()) {
            return fail(
                name_span,
                format!("duplicate vrrp_instance name `{}`", inst.name),
            );
        }
        // VRRP identifies a router by VRID on a link, separately per family.
        let v6 = inst
            .virtual_ipaddress
            .first()
            .is_some_and(|p| p.addr.is_ipv6());
        if !vrids.insert((inst.interface.clone(), inst.virtual_router_id, v6)) {
            return fail(
                vrid_span,
                format!(
                    "virtual_router_id {} is already used on interface {} by another vrrp_instance",
                    inst.virtual_router_id, inst.interface
                ),
            );
        }
        vrrp_instances.push(inst);
    }
    let mut virtual_servers = Vec::with_capacity(raw.virtual_server.len());
    let mut keys = HashSet::new();
    for v in raw.virtual_server {
        let addr_span = v.get_ref().address.span();
        let vs = virtual_server(v.into_inner())?;
        if !keys.insert((vs.protocol, vs.address)) {
            return fail(
                addr_span,
                format!(
                    "duplicate virtual_server {} {}",
                    vs.protocol.name(),
                    vs.address
                ),
            );
        }
        virtual_servers.push(vs);
    }
    Ok(Config {
        global,
        timeouts,
        vrrp_instances,
        virtual_servers,
    })
}

fn global(g: RawGlobal) -> R<Global> {
    let d = Global::default();
    let queues = match g.queues {
        None => None,
        Some(q) => {
            if q.get_ref().is_empty() {
                return fail(q.span(), "queues is empty; omit it to use every RX queue");
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for v in q.get_ref() {
                let n = int_in(v, "queue", 0, u32::MAX as i64)? as u32;
                if !seen.insert(n) {
                    return fail(v.span(), format!("queue {n} is listed twice"));
                }
                out.push(n);
            }
            Some(out)
        }
    };
    let cores = match g.cores {
        None => None,
        Some(c) => {
            if c.get_ref().is_empty() {
                return fail(c.span(), "cores is empty; omit it for the default pinning");
            }
            if let Some(q) = &queues
                && q.len() != c.get_ref().len()
            {
                return fail(
                    c.span(),
                    format!(
                        "cores has {} entries but queues has {}: one core per worker",
                        c.get_ref().len(),
                        q.len()
                    ),
                );
            }
            let mut out = Vec::new();
            for v in c.get_ref() {
                out.push(int_in(v, "core", 0, 65535)? as usize);
            }
            Some(out)
        }
    };
    let xdp_mode = match g.xdp_mode {
        None => d.xdp_mode,
        Some(s) => match s.get_ref().as_str() {
            "native" => XdpMode::Native,
            "generic" => XdpMode::Generic,
            "auto" => XdpMode::Auto,
            other => {
                return fail(
                    s.span(),
                    format!("unknown xdp_mode `{other}`, expected native, generic or auto"),
                );
            }
        },
    };
    let zero_copy = match g.zero_copy {
        None => d.zero_copy,
        Some(s) => match s.get_ref().as_str() {
            "on" => ZeroCopy::On,
            "off" => ZeroCopy::Off,
            "auto" => ZeroCopy::Auto,
            other => {
                return fail(
                    s.span(),
                    format!("unknown zero_copy `{other}`, expected on, off or auto"),
                );
            }
        },
    };
    let nonempty = |s: Option<S<String>>, key: &str| -> R<Option<String>> {
        match s {
            Some(v) if v.get_ref().is_empty() => fail(v.span(), format!("{key} is empty")),
            other => Ok(other.map(S::into_inner)),
        }
    };
    let admin_socket = match nonempty(g.admin_socket, "admin_socket")? {
        Some(p) => PathBuf::from(p),
        None => d.admin_socket,
    };
    let conn_max = match g.conn_max {
        Some(v) => int_in(&v, "conn_max", 1, u32::MAX as i64)? as usize,
        None => d.conn_max,
    };
    let idle_spin = match g.idle_spin_us {
        // At most a second: a worker must still sleep when idle.
        Some(v) => Duration::from_micros(int_in(&v, "idle_spin_us", 0, 1_000_000)? as u64),
        None => d.idle_spin,
    };
    Ok(Global {
        router_id: nonempty(g.router_id, "router_id")?,
        interface: nonempty(g.interface, "interface")?,
        queues,
        cores,
        xdp_mode,
        zero_copy,
        admin_socket,
        conn_max,
        idle_spin,
        expire_nodest_conn: g.expire_nodest_conn.unwrap_or(false),
        expire_quiescent_template: g.expire_quiescent_template.unwrap_or(false),
        drop_entry: g.drop_entry.unwrap_or(true),
        script_user: nonempty(g.script_user, "script_user")?,
        script_group: nonempty(g.script_group, "script_group")?,
    })
}

fn timeouts(t: RawTimeouts) -> R<Timeouts> {
    let d = Timeouts::default();
    // ipvsadm --set takes 0 as "leave unchanged"; in a file that describes
    // the whole state, leaving the key out says that, so 0 is refused.
    let one = |v: Option<S<i64>>, key: &str, def: Duration| -> R<Duration> {
        match v {
            None => Ok(def),
            Some(v) => Ok(Duration::from_secs(
                int_in(&v, key, 1, MAX_TIMEOUT_SECS)? as u64
            )),
        }
    };
    Ok(Timeouts {
        tcp: one(t.tcp, "tcp", d.tcp)?,
        tcp_fin: one(t.tcp_fin, "tcp_fin", d.tcp_fin)?,
        udp: one(t.udp, "udp", d.udp)?,
    })
}

fn vrrp(v: RawVrrp) -> R<VrrpInstance> {
    if v.name.get_ref().is_empty() {
        return fail(v.name.span(), "vrrp_instance name is empty");
    }
    if v.interface.get_ref().is_empty() {
        return fail(v.interface.span(), "interface is empty");
    }
    let state = match &v.state {
        None => VrrpState::Backup,
        Some(s) => match s.get_ref().as_str() {
            "MASTER" => VrrpState::Master,
            "BACKUP" => VrrpState::Backup,
            other => {
                return fail(
                    s.span(),
                    format!("unknown state `{other}`, expected MASTER or BACKUP"),
                );
            }
        },
    };
    let virtual_router_id = int_in(&v.virtual_router_id, "virtual_router_id", 1, 255)? as u8;
    // keepalived's default priority; 255 is reserved for the address owner
    // and 0 for "master is leaving", which is never configured.
    let priority = match &v.priority {
        None => 100,
        Some(p) => int_in(p, "priority", 1, 255)? as u8,
    };
    let version = match &v.version {
        None => VrrpVersion::V2,
        Some(n) => match *n.get_ref() {
            2 => VrrpVersion::V2,
            3 => VrrpVersion::V3,
            other => return fail(n.span(), format!("version {other} is not 2 or 3")),
        },
    };
    let advert_int = match &v.advert_int {
        None => Duration::from_secs(1),
        Some(a) => {
            let x = *a.get_ref();
            match version {
                // The v2 header carries whole seconds in 8 bits.
                VrrpVersion::V2 => {
                    if x.fract() != 0.0 {
                        return fail(
                            a.span(),
                            format!("advert_int {x}: fractions of a second need version = 3"),
                        );
                    }
                    Duration::from_secs(
                        int_in(&S::new(a.span(), x as i64), "advert_int", 1, 255)? as u64
                    )
                }
                // v3 carries centiseconds in 12 bits.
                VrrpVersion::V3 => {
                    let cs = (x * 100.0).round();
                    if !(1.0..=4095.0).contains(&cs) {
                        return fail(
                            a.span(),
                            format!("advert_int {x} is out of range 0.01..=40.95 seconds"),
                        );
                    }
                    Duration::from_millis(cs as u64 * 10)
                }
            }
        }
    };
    let preempt_delay = match &v.preempt_delay {
        None => Duration::ZERO,
        Some(p) => secs_in(p, "preempt_delay", 0.0, 1000.0, true)?,
    };
    let nopreempt = v.nopreempt.unwrap_or(false);
    let auth = match (&v.auth_type, &v.auth_pass) {
        (None, None) => None,
        (None, Some(p)) => return fail(p.span(), "auth_pass without auth_type"),
        (Some(t), None) => {
            return fail(t.span(), "auth_type needs auth_pass");
        }
        (Some(t), Some(p)) => {
            if version == VrrpVersion::V3 {
                return fail(t.span(), "VRRP version 3 has no authentication (RFC 5798)");
            }
            let pass = p.get_ref();
            if pass.is_empty() {
                return fail(p.span(), "auth_pass is empty");
            }
            // keepalived silently keeps the first 8 bytes; a longer password
            // would let two configs that look different interoperate (or
            // look equal and not), so say it instead.
            if pass.len() > 8 {
                return fail(
                    p.span(),
                    format!(
                        "auth_pass is {} bytes; VRRP carries at most 8 (keepalived would use `{}`)",
                        pass.len(),
                        String::from_utf8_lossy(&pass.as_bytes()[..8])
                    ),
                );
            }
            match t.get_ref().as_str() {
                "PASS" => Some(VrrpAuth::Pass(pass.clone())),
                "AH" => Some(VrrpAuth::Ah(pass.clone())),
                other => {
                    return fail(
                        t.span(),
                        format!("unknown auth_type `{other}`, expected PASS or AH"),
                    );
                }
            }
        }
    };
    let mut vips: Vec<IpPrefix> = Vec::new();
    for s in &v.virtual_ipaddress {
        let text = s.get_ref();
        let (a, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text.as_str(), None),
        };
        let addr: IpAddr = a.parse().or_else(|_| {
            fail(
                s.span(),
                format!("virtual_ipaddress `{text}` is not ADDR[/PREFIX]"),
            )
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return fail(
                        s.span(),
                        format!("virtual_ipaddress `{text}`: prefix length must be 0..={max}"),
                    );
                }
            },
        };
        if let Some(first) = vips.first()
            && !same_family(&first.addr, &addr)
        {
            return fail(
                s.span(),
                format!(
                    "virtual_ipaddress `{text}` is {} but this instance's first address is {}: \
                     one vrrp_instance serves one address family",
                    family(&addr),
                    family(&first.addr)
                ),
            );
        }
        if vips.iter().any(|p| p.addr == addr) {
            return fail(
                s.span(),
                format!("virtual_ipaddress {addr} is listed twice"),
            );
        }
        vips.push(IpPrefix { addr, len });
    }
    let unicast_src_ip = match &v.unicast_src_ip {
        None => None,
        Some(s) => {
            let ip = parse_ip(s, "unicast_src_ip")?;
            if let Some(first) = vips.first()
                && !same_family(&first.addr, &ip)
            {
                return fail(
                    s.span(),
                    format!(
                        "unicast_src_ip is {} but the virtual addresses are {}",
                        family(&ip),
                        family(&first.addr)
                    ),
                );
            }
            Some(ip)
        }
    };
    let mut unicast_peer = Vec::new();
    for s in &v.unicast_peer {
        let ip = parse_ip(s, "unicast_peer")?;
        let reference = unicast_src_ip.or(vips.first().map(|p| p.addr));
        if let Some(r) = reference
            && !same_family(&r, &ip)
        {
            return fail(
                s.span(),
                format!(
                    "unicast_peer {ip} is {} but this instance is {}",
                    family(&ip),
                    family(&r)
                ),
            );
        }
        if unicast_peer.contains(&ip) {
            return fail(s.span(), format!("unicast_peer {ip} is listed twice"));
        }
        unicast_peer.push(ip);
    }
    Ok(VrrpInstance {
        name: v.name.into_inner(),
        state,
        interface: v.interface.into_inner(),
        virtual_router_id,
        priority,
        advert_int,
        version,
        nopreempt,
        preempt_delay,
        auth,
        virtual_ipaddress: vips,
        unicast_src_ip,
        unicast_peer,
        notify_master: v.notify_master,
        notify_backup: v.notify_backup,
        notify_fault: v.notify_fault,
        notify: v.notify,
    })
}

fn lb_kind(s: &S<String>) -> R<FwdMethod> {
    Ok(match s.get_ref().as_str() {
        "NAT" => FwdMethod::Masq,
        "DR" => FwdMethod::Route,
        "TUN" => FwdMethod::Tunnel,
        "FULLNAT" => FwdMethod::FullNat,
        other => {
            return fail(
                s.span(),
                format!("unknown lb_kind `{other}`, expected DR, TUN, NAT or FULLNAT"),
            );
        }
    })
}

fn virtual_server(v: RawVirtualServer) -> R<VirtualServer> {
    let address = parse_sockaddr(&v.address, "virtual_server address", None)?;
    let vip = address.ip();
    let protocol = match &v.protocol {
        None => Protocol::Tcp,
        Some(s) => match s.get_ref().as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            other => {
                return fail(
                    s.span(),
                    format!("unknown protocol `{other}`, expected TCP or UDP"),
                );
            }
        },
    };
    let lb_algo = match &v.lb_algo {
        None => SchedKind::Wlc,
        Some(s) => s.get_ref().parse().or_else(|_| {
            fail(
                s.span(),
                format!(
                    "unknown lb_algo `{}`, expected one of: {}",
                    s.get_ref(),
                    SchedKind::ALL.map(|k| k.name()).join(" ")
                ),
            )
        })?,
    };
    let kind = match &v.lb_kind {
        None => FwdMethod::Masq,
        Some(s) => lb_kind(s)?,
    };
    let persistence_timeout = match &v.persistence_timeout {
        None => None,
        Some(p) => match *p.get_ref() {
            Persistence::Flag(false) => None,
            Persistence::Flag(true) => Some(Duration::from_secs(DEFAULT_PERSISTENCE_SECS)),
            Persistence::Secs(n) => Some(Duration::from_secs(int_in(
                &S::new(p.span(), n),
                "persistence_timeout",
                1,
                MAX_TIMEOUT_SECS,
            )? as u64)),
        },
    };
    let host_prefix = if vip.is_ipv4() { 32 } else { 128 };
    let persistence_prefix = match &v.persistence_granularity {
        None => host_prefix,
        Some(g) => {
            if persistence_timeout.is_none() {
                return fail(
                    g.span(),
                    "persistence_granularity without persistence_timeout has no effect",
                );
            }
            granularity(g, vip)?
        }
    };
    if address.port() == 0 && persistence_timeout.is_none() {
        // ipvsadm: a port-0 service matches every port, which only makes
        // sense when a client sticks to one server for all of them.
        return fail(
            v.address.span(),
            "port 0 (all ports) needs persistence_timeout, as in ipvsadm",
        );
    }
    let mut sched_flags = SchedFlags::default();
    for f in v.sched_flags.iter().flatten() {
        let name = f.get_ref().as_str();
        let own = |prefix: &str, k: SchedKind| -> R<()> {
            if lb_algo != k {
                return fail(
                    f.span(),
                    format!("sched_flags `{name}` only applies to lb_algo {prefix}, not {lb_algo}"),
                );
            }
            Ok(())
        };
        match name {
            "sh-fallback" => own("sh", SchedKind::Sh).map(|_| sched_flags.fallback = true)?,
            "sh-port" => own("sh", SchedKind::Sh).map(|_| sched_flags.port = true)?,
            "mh-fallback" => own("mh", SchedKind::Mh).map(|_| sched_flags.fallback = true)?,
            "mh-port" => own("mh", SchedKind::Mh).map(|_| sched_flags.port = true)?,
            "flag-1" => sched_flags.fallback = true,
            "flag-2" => sched_flags.port = true,
            "flag-3" => sched_flags.flag3 = true,
            other => {
                return fail(
                    f.span(),
                    format!(
                        "unknown sched_flags `{other}`, expected sh-fallback, sh-port, \
                         mh-fallback, mh-port, flag-1, flag-2 or flag-3"
                    ),
                );
            }
        }
    }
    let ops = match &v.ops {
        Some(o) if *o.get_ref() && protocol != Protocol::Udp => {
            return fail(
                o.span(),
                "ops (one-packet scheduling) is only for UDP services",
            );
        }
        o => o.as_ref().is_some_and(|o| *o.get_ref()),
    };
    let delay_loop = match &v.delay_loop {
        None => Duration::from_secs(60),
        Some(d) => secs_in(d, "delay_loop", 0.0, MAX_TIMEOUT_SECS as f64, false)?,
    };
    let sorry_server = match &v.sorry_server {
        None => None,
        Some(s) => {
            let a = parse_sockaddr(s, "sorry_server", Some(address.port()))?;
            if kind != FwdMethod::Tunnel && !same_family(&a.ip(), &vip) {
                return fail(
                    s.span(),
                    format!(
                        "sorry_server is {} but the virtual server is {}",
                        family(&a.ip()),
                        family(&vip)
                    ),
                );
            }
            Some(a)
        }
    };
    let quorum = match &v.quorum {
        None => 1,
        Some(q) => int_in(q, "quorum", 1, u32::MAX as i64)? as u32,
    };
    let hysteresis = match &v.hysteresis {
        None => 0,
        Some(h) => {
            let n = int_in(h, "hysteresis", 0, u32::MAX as i64)? as u32;
            // The pool goes down below quorum - hysteresis; at or beyond
            // quorum it could never go down (keepalived refuses this too).
            if n >= quorum {
                return fail(
                    h.span(),
                    format!("hysteresis {n} must be below quorum {quorum}"),
                );
            }
            n
        }
    };
    let mut local_address = Vec::new();
    if kind == FwdMethod::FullNat {
        if v.local_address.is_empty() {
            return fail(
                v.lb_kind.as_ref().map_or(v.address.span(), S::span),
                "lb_kind FULLNAT needs local_address (the source addresses toward the real servers)",
            );
        }
        for s in &v.local_address {
            let ip = parse_ip(s, "local_address")?;
            if let Some(first) = local_address.first()
                && !same_family(first, &ip)
            {
                return fail(
                    s.span(),
                    format!(
                        "local_address {ip} is {} but {first} is {}: one family per pool",
                        family(&ip),
                        family(first)
                    ),
                );
            }
            if local_address.contains(&ip) {
                return fail(s.span(), format!("local_address {ip} is listed twice"));
            }
            local_address.push(ip);
        }
    } else if let Some(s) = v.local_address.first() {
        return fail(s.span(), "local_address is only used with lb_kind FULLNAT");
    }
    let mut real_servers: Vec<RealServer> = Vec::with_capacity(v.real_server.len());
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    for rs in v.real_server {
        let addr_span = rs.get_ref().address.span();
        let r = real_server(rs.into_inner(), address, kind)?;
        let rip = r.address.ip();
        // The kernel forwards to another family only through a tunnel.
        if kind != FwdMethod::Tunnel && !same_family(&rip, &vip) {
            return fail(
                addr_span,
                format!(
                    "real_server {rip} is {} but the virtual server is {}; \
                     only TUN forwards between families",
                    family(&rip),
                    family(&vip)
                ),
            );
        }
        if kind == FwdMethod::FullNat
            && let Some(l) = local_address.first()
            && !same_family(l, &rip)
        {
            return fail(
                addr_span,
                format!(
                    "real_server {rip} is {} but local_address is {}",
                    family(&rip),
                    family(l)
                ),
            );
        }
        if !seen.insert(r.address) {
            return fail(
                addr_span,
                format!("duplicate real_server {} in this virtual_server", r.address),
            );
        }
        real_servers.push(r);
    }
    Ok(VirtualServer {
        protocol,
        address,
        lb_algo,
        lb_kind: kind,
        persistence_timeout,
        persistence_prefix,
        sched_flags,
        ops,
        delay_loop,
        sorry_server,
        quorum,
        hysteresis,
        quorum_up: v.quorum_up.clone(),
        quorum_down: v.quorum_down.clone(),
        alpha: v.alpha.unwrap_or(false),
        local_address,
        real_servers,
    })
}

fn granularity(g: &S<Granularity>, vip: IpAddr) -> R<u8> {
    match (g.get_ref(), vip) {
        (Granularity::Mask(m), IpAddr::V4(_)) => {
            let mask: std::net::Ipv4Addr = m.parse().or_else(|_| {
                fail(
                    g.span(),
                    format!("persistence_granularity `{m}` is not a netmask"),
                )
            })?;
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return fail(
                    g.span(),
                    format!("persistence_granularity `{m}` is not a contiguous netmask"),
                );
            }
            Ok(bits.leading_ones() as u8)
        }
        (Granularity::Prefix(n), IpAddr::V4(_)) => {
            Ok(int_in(&S::new(g.span(), *n), "persistence_granularity", 0, 32)? as u8)
        }
        // ipvsadm's -M for IPv6 accepts a prefix length 1..=128.
        (Granularity::Prefix(n), IpAddr::V6(_)) => {
            Ok(int_in(&S::new(g.span(), *n), "persistence_granularity", 1, 128)? as u8)
        }
        (Granularity::Mask(m), IpAddr::V6(_)) => fail(
            g.span(),
            format!(
                "persistence_granularity `{m}`: an IPv6 virtual server takes a prefix length (1..=128)"
            ),
        ),
    }
}

fn real_server(rs: RawRealServer, vip: SocketAddr, kind: FwdMethod) -> R<RealServer> {
    let address = parse_sockaddr(&rs.address, "real_server address", Some(vip.port()))?;
    // IPVS keeps the packet's destination port for DR and TUN (ipvsadm
    // overwrites the real server's port with the VIP's). A different port
    // here would be silently ignored, so it is refused: port mapping needs
    // NAT or FULLNAT.
    if matches!(kind, FwdMethod::Route | FwdMethod::Tunnel) && address.port() != vip.port() {
        let k = if kind == FwdMethod::Route {
            "DR"
        } else {
            "TUN"
        };
        return fail(
            rs.address.span(),
            format!(
                "real_server port {} differs from the virtual server's {}: {k} cannot map ports \
                 (IPVS would ignore it); use NAT or FULLNAT, or the same port",
                address.port(),
                vip.port()
            ),
        );
    }
    let weight = match &rs.weight {
        None => 1,
        Some(w) => int_in(w, "weight", 0, MAX_WEIGHT)? as i32,
    };
    let mac = rs.mac.as_ref().map(parse_mac).transpose()?;
    let uthreshold = match &rs.uthreshold {
        None => 0,
        Some(u) => int_in(u, "uthreshold", 0, i32::MAX as i64)? as u32,
    };
    let lthreshold = match &rs.lthreshold {
        None => 0,
        Some(l) => {
            let n = int_in(l, "lthreshold", 0, i32::MAX as i64)? as u32;
            // The kernel refuses l_threshold > u_threshold (ERANGE), even
            // when u_threshold is 0 (no limit).
            if n > uthreshold {
                return fail(
                    l.span(),
                    format!("lthreshold {n} is above uthreshold {uthreshold}"),
                );
            }
            n
        }
    };
    let mut checks = Vec::new();
    if let Some(t) = rs.tcp_check {
        checks.push(HealthCheck::Tcp(tcp_check(t, address)?));
    }
    if let Some(h) = rs.http_get {
        checks.push(HealthCheck::Http(http_get(h, address)?));
    }
    if let Some(m) = rs.misc_check {
        checks.push(HealthCheck::Misc(misc_check(m)?));
    }
    Ok(RealServer {
        address,
        weight,
        mac,
        inhibit_on_failure: rs.inhibit_on_failure.unwrap_or(false),
        uthreshold,
        lthreshold,
        notify_up: rs.notify_up,
        notify_down: rs.notify_down,
        checks,
    })
}

/// The keys shared by TCP_CHECK and HTTP_GET; keepalived's defaults are
/// connect_timeout 5 s and retry 1 for both, delay_before_retry differs.
struct Connect {
    ip: IpAddr,
    bindto: Option<IpAddr>,
    port: u16,
    timeout: Duration,
    retry: u32,
    delay_before_retry: Duration,
}

#[allow(clippy::too_many_arguments)]
fn connect(
    rs: SocketAddr,
    ip: &Option<S<String>>,
    bindto: &Option<S<String>>,
    port: &Option<S<i64>>,
    timeout: &Option<S<f64>>,
    retry: &Option<S<i64>>,
    delay: &Option<S<f64>>,
    default_delay: u64,
) -> R<Connect> {
    let ip = match ip {
        None => rs.ip(),
        Some(s) => parse_ip(s, "connect_ip")?,
    };
    let bindto = match bindto {
        None => None,
        Some(b) => {
            let a = parse_ip(b, "bindto")?;
            if a.is_ipv4() != ip.is_ipv4() {
                return fail(
                    b.span(),
                    format!("bindto {a} and the checked address {ip} are of different families"),
                );
            }
            Some(a)
        }
    };
    Ok(Connect {
        ip,
        bindto,
        port: match port {
            None => rs.port(),
            Some(p) => int_in(p, "connect_port", 1, 65535)? as u16,
        },
        timeout: match timeout {
            None => Duration::from_secs(5),
            Some(t) => secs_in(t, "connect_timeout", 0.0, MAX_TIMEOUT_SECS as f64, false)?,
        },
        retry: match retry {
            None => 1,
            Some(r) => int_in(r, "retry", 0, u32::MAX as i64)? as u32,
        },
        delay_before_retry: match delay {
            None => Duration::from_secs(default_delay),
            Some(d) => secs_in(d, "delay_before_retry", 0.0, MAX_TIMEOUT_SECS as f64, true)?,
        },
    })
}

fn tcp_check(t: RawTcpCheck, rs: SocketAddr) -> R<TcpCheck> {
    let c = connect(
        rs,
        &t.connect_ip,
        &t.bindto,
        &t.connect_port,
        &t.connect_timeout,
        &t.retry,
        &t.delay_before_retry,
        1,
    )?;
    Ok(TcpCheck {
        connect_ip: c.ip,
        bindto: c.bindto,
        connect_port: c.port,
        connect_timeout: c.timeout,
        retry: c.retry,
        delay_before_retry: c.delay_before_retry,
    })
}

fn http_get(h: RawHttpGet, rs: SocketAddr) -> R<HttpGet> {
    let c = connect(
        rs,
        &h.connect_ip,
        &h.bindto,
        &h.connect_port,
        &h.connect_timeout,
        &h.retry,
        &h.delay_before_retry,
        3,
    )?;
    if h.url.get_ref().is_empty() {
        return fail(h.url.span(), "http_get needs at least one url");
    }
    let mut urls = Vec::new();
    for u in h.url.into_inner() {
        let u = u.into_inner();
        if !u.path.get_ref().starts_with('/') {
            return fail(
                u.path.span(),
                format!("url path `{}` must start with /", u.path.get_ref()),
            );
        }
        let status_code = match &u.status_code {
            None => Vec::new(),
            Some(s) => status_codes(s)?,
        };
        let digest = match &u.digest {
            None => None,
            Some(d) => {
                let s = d.get_ref();
                let mut out = [0u8; 16];
                let ok = s.len() == 32
                    && s.is_ascii()
                    && out.iter_mut().enumerate().all(|(i, b)| {
                        u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                            .map(|x| *b = x)
                            .is_ok()
                    });
                if !ok {
                    return fail(
                        d.span(),
                        format!("digest `{s}` is not an MD5 sum (32 hex digits)"),
                    );
                }
                Some(out)
            }
        };
        urls.push(HttpUrl {
            path: u.path.into_inner(),
            status_code,
            digest,
        });
    }
    Ok(HttpGet {
        urls,
        connect_ip: c.ip,
        bindto: c.bindto,
        connect_port: c.port,
        connect_timeout: c.timeout,
        retry: c.retry,
        delay_before_retry: c.delay_before_retry,
        virtualhost: h.virtualhost,
    })
}

/// keepalived's status_code_handler: codes and `min-max` ranges, each
/// within 100..=599.
fn status_codes(v: &S<StatusCodes>) -> R<Vec<RangeInclusive<u16>>> {
    fn code(v: &S<StatusCodes>, n: i64, shown: &str) -> R<u16> {
        if (100..=599).contains(&n) {
            Ok(n as u16)
        } else {
            fail(
                v.span(),
                format!("status_code {shown} is out of range 100..=599"),
            )
        }
    }
    fn walk(v: &S<StatusCodes>, c: &StatusCodes, out: &mut Vec<RangeInclusive<u16>>) -> R<()> {
        match c {
            StatusCodes::One(n) => {
                let n = code(v, *n, &n.to_string())?;
                out.push(n..=n);
            }
            StatusCodes::List(l) => {
                for x in l {
                    walk(v, x, out)?;
                }
            }
            StatusCodes::Text(t) => {
                for word in t.split_whitespace() {
                    let bad = || {
                        fail(
                            v.span(),
                            format!("status_code `{word}` is neither a code nor a range min-max"),
                        )
                    };
                    let (lo, hi) = match word.split_once('-') {
                        Some((a, b)) => (a, b),
                        None => (word, word),
                    };
                    let (Ok(lo), Ok(hi)) = (lo.parse::<i64>(), hi.parse::<i64>()) else {
                        return bad();
                    };
                    let (lo, hi) = (code(v, lo, word)?, code(v, hi, word)?);
                    if lo > hi {
                        return bad();
                    }
                    out.push(lo..=hi);
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(v, v.get_ref(), &mut out)?;
    if out.is_empty() {
        return fail(v.span(), "status_code is empty");
    }
    Ok(out)
}

fn misc_check(m: RawMiscCheck) -> R<MiscCheck> {
    if m.misc_path.get_ref().trim().is_empty() {
        return fail(m.misc_path.span(), "misc_path is empty");
    }
    let misc_timeout = match &m.misc_timeout {
        None => None,
        Some(t) => Some(secs_in(
            t,
            "misc_timeout",
            0.0,
            MAX_TIMEOUT_SECS as f64,
            false,
        )?),
    };
    Ok(MiscCheck {
        misc_path: m.misc_path.into_inner(),
        misc_timeout,
        misc_dynamic: m.misc_dynamic.unwrap_or(false),
    })
}
