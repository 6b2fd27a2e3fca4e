//! `[global]` and `[timeouts]`: the daemon's own settings and IPVS's
//! connection timeouts (`ipvsadm --set`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::super::raw::{OneOrMany, RawAnnounce, RawGlobal, RawSyncDaemon, RawTimeouts, S};
use super::super::{
    Announce, DEFAULT_ANNOUNCE_PROTOCOL, Global, SyncDaemon, Timeouts, XdpMode, ZeroCopy,
};
use super::common::{MAX_TIMEOUT_SECS, R, fail, int_in, keyword, nonempty, once, parse_ip};
use crate::conn::SyncSysctls;

pub(super) fn global(g: RawGlobal) -> R<Global> {
    let d = Global::default();
    let sync = sync_sysctls(&g)?;
    let queues = match g.queues {
        None => None,
        Some(q) => {
            if q.get_ref().is_empty() {
                return fail(q.span(), "queues is empty; omit it to use every RX queue");
            }
            let mut out: Vec<u32> = Vec::new();
            for v in q.get_ref() {
                let n = int_in(v, "queue", 0, u32::MAX as i64)? as u32;
                out.push(once(out.iter().copied(), n, v.span(), "queue")?);
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
    let xdp_mode = match &g.xdp_mode {
        None => d.xdp_mode,
        Some(s) => keyword(
            s,
            "xdp_mode",
            &[
                ("native", XdpMode::Native),
                ("generic", XdpMode::Generic),
                ("auto", XdpMode::Auto),
            ],
        )?,
    };
    let zero_copy = match &g.zero_copy {
        None => d.zero_copy,
        Some(s) => keyword(
            s,
            "zero_copy",
            &[
                ("on", ZeroCopy::On),
                ("off", ZeroCopy::Off),
                ("auto", ZeroCopy::Auto),
            ],
        )?,
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
        interfaces: interfaces(g.interface)?,
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
        enable_script_security: g.enable_script_security.unwrap_or(false),
        // `[metrics]` is its own table: set by the caller.
        metrics_listen: None,
        sloppy_tcp: g.sloppy_tcp.unwrap_or(false),
        sync,
        backup_only: g.backup_only.unwrap_or(false),
        // Checked with the VRRP instances it names (`validate`).
        lvs_sync_daemon: None,
        vrrp_mcast_group4: match &g.vrrp_mcast_group4 {
            None => d.vrrp_mcast_group4,
            Some(v) => match vrrp_group(v, "vrrp_mcast_group4")? {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => {
                    return fail(
                        v.span(),
                        format!("vrrp_mcast_group4: `{}` is not IPv4", v.get_ref()),
                    );
                }
            },
        },
        vrrp_mcast_group6: match &g.vrrp_mcast_group6 {
            None => d.vrrp_mcast_group6,
            Some(v) => match vrrp_group(v, "vrrp_mcast_group6")? {
                IpAddr::V6(a) => a,
                IpAddr::V4(_) => {
                    return fail(
                        v.span(),
                        format!("vrrp_mcast_group6: `{}` is not IPv6", v.get_ref()),
                    );
                }
            },
        },
    })
}

/// A VRRP multicast group (keepalived's `vrrp_mcast_group4/6`): an IP
/// address that is multicast (any scope, as keepalived accepts).
fn vrrp_group(v: &S<String>, key: &str) -> R<IpAddr> {
    let a = parse_ip(v, key)?;
    if !a.is_multicast() {
        return fail(v.span(), format!("{key}: `{a}` is not a multicast address"));
    }
    Ok(a)
}

/// `[metrics] listen`: an `ADDR:PORT` to bind (`[v6]:PORT` for IPv6).
/// Nothing is guessed: no default port, no host names, and port 0 (some
/// port the kernel picks) is refused since nobody could scrape it.
pub(super) fn metrics_listen(v: &S<String>) -> R<std::net::SocketAddr> {
    match v.get_ref().parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() == 0 => fail(v.span(), "metrics listen: port 0 is not a port to scrape"),
        Ok(a) => Ok(a),
        Err(_) => fail(
            v.span(),
            format!(
                "metrics listen `{}` is not ADDR:PORT (e.g. \"127.0.0.1:9478\" or \"[::1]:9478\")",
                v.get_ref()
            ),
        ),
    }
}

/// The sync sysctls, with the kernel's ranges: `sync_threshold` below
/// `sync_period` unless the period is 0, `sync_retries` 0..=3.
fn sync_sysctls(g: &RawGlobal) -> R<SyncSysctls> {
    let d = SyncSysctls::default();
    let threshold = match &g.sync_threshold {
        Some(v) => int_in(v, "sync_threshold", 0, i64::from(i32::MAX))? as u32,
        None => d.threshold,
    };
    let period = match &g.sync_period {
        Some(v) => int_in(v, "sync_period", 0, i64::from(i32::MAX))? as u32,
        None => d.period,
    };
    if period != 0 && threshold >= period {
        let span = g
            .sync_threshold
            .as_ref()
            .or(g.sync_period.as_ref())
            .map_or(0..0, |v| v.span());
        return fail(
            span,
            format!(
                "sync_threshold {threshold} must be below sync_period {period} (or sync_period 0)"
            ),
        );
    }
    Ok(SyncSysctls {
        threshold,
        period,
        refresh_period: match &g.sync_refresh_period {
            Some(v) => int_in(v, "sync_refresh_period", 0, 86_400 * 365)? as u32,
            None => d.refresh_period,
        },
        retries: match &g.sync_retries {
            Some(v) => int_in(v, "sync_retries", 0, 3)? as u32,
            None => d.retries,
        },
        persist_mode: match &g.sync_persist_mode {
            Some(v) => int_in(v, "sync_persist_mode", 0, 1)? == 1,
            None => d.persist_mode,
        },
        version: match &g.sync_version {
            Some(v) => int_in(v, "sync_version", 0, 1)? as u8,
            None => d.version,
        },
        ports: match &g.sync_ports {
            Some(v) => {
                let n = int_in(
                    v,
                    "sync_ports",
                    1,
                    i64::from(crate::conn::sync::SYNC_PORTS_MAX),
                )?;
                if !(n as u64).is_power_of_two() {
                    return fail(v.span(), format!("sync_ports {n} is not a power of two"));
                }
                n as u8
            }
            None => d.ports,
        },
        sock_size: match &g.sync_sock_size {
            Some(v) => int_in(v, "sync_sock_size", 0, i64::from(i32::MAX))? as u32,
            None => d.sock_size,
        },
    })
}

/// `[global.lvs_sync_daemon]`; `vrid` gives the named instance's
/// virtual_router_id (`None`: no such instance).
pub(super) fn sync_daemon(
    raw: S<RawSyncDaemon>,
    vrid: impl Fn(&str) -> Option<u8>,
) -> R<SyncDaemon> {
    let span = raw.span();
    let r = raw.into_inner();
    let interface = r.interface.get_ref().clone();
    if interface.is_empty() || interface.len() >= libc::IFNAMSIZ || interface.contains('/') {
        return fail(
            r.interface.span(),
            format!("interface: `{interface}` is not a valid interface name"),
        );
    }
    if r.active_active == Some(true) {
        // Directors behind ECMP: master and backup at once, no VRRP.
        if let Some(inst) = &r.vrrp_instance {
            return fail(
                inst.span(),
                "vrrp_instance and active_active = true exclude each other: \
                 an active-active daemon is master and backup at once, whatever VRRP says",
            );
        }
        let Some(id) = &r.id else {
            return fail(
                span,
                "active_active = true needs id (the syncid: there is no VRRP instance to take it from)",
            );
        };
        let mut d = SyncDaemon::new(&interface, int_in(id, "id", 0, 255)? as u8);
        d.active_active = true;
        return sync_options(d, &r);
    }
    let Some(inst) = r.vrrp_instance.clone() else {
        return fail(
            span,
            "lvs_sync_daemon needs vrrp_instance (master while that instance is MASTER) \
             or active_active = true (master and backup at once)",
        );
    };
    let Some(id_default) = vrid(inst.get_ref()) else {
        return fail(
            inst.span(),
            format!("vrrp_instance `{}` is not defined", inst.get_ref()),
        );
    };
    let mut d = SyncDaemon::new(&interface, id_default);
    d.vrrp_instance = Some(inst.into_inner());
    if let Some(v) = &r.id {
        d.syncid = int_in(v, "id", 0, 255)? as u8;
    }
    sync_options(d, &r)
}

/// `[global.lvs_sync_daemon]`'s socket options.
fn sync_options(mut d: SyncDaemon, r: &RawSyncDaemon) -> R<SyncDaemon> {
    if let Some(v) = &r.maxlen {
        d.maxlen = Some(int_in(v, "maxlen", 1, 65535 - 28)? as u16);
    }
    if let Some(v) = &r.port {
        d.port = int_in(v, "port", 1, 65535)? as u16;
    }
    if let Some(v) = &r.ttl {
        d.ttl = int_in(v, "ttl", 1, 255)? as u8;
    }
    if let Some(g) = &r.group {
        match g.get_ref().parse::<std::net::IpAddr>() {
            Ok(a) if a.is_multicast() => d.group = a,
            _ => {
                return fail(
                    g.span(),
                    format!("group: `{}` is not a multicast address", g.get_ref()),
                );
            }
        }
    }
    Ok(d)
}

/// `interface`: one NIC or a list of them (a two-armed director), each
/// named once and none empty. IFNAMSIZ bounds a Linux interface name.
fn interfaces(v: Option<S<OneOrMany>>) -> R<Vec<String>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let span = v.span();
    let names = v.into_inner().into_vec();
    if names.is_empty() {
        return fail(span, "interface is an empty list");
    }
    if names.len() > crate::config::MAX_INTERFACES {
        return fail(
            span,
            format!(
                "interface lists {} NICs; lvsfwd serves at most {}",
                names.len(),
                crate::config::MAX_INTERFACES
            ),
        );
    }
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return fail(span, "interface: an empty name");
        }
        if n.len() >= libc::IFNAMSIZ || n.contains('/') || n.chars().any(char::is_whitespace) {
            return fail(
                span,
                format!("interface: `{n}` is not a valid interface name"),
            );
        }
        if names[..i].contains(n) {
            return fail(span, format!("interface: {n} is listed twice"));
        }
    }
    Ok(names)
}

pub(super) fn timeouts(t: RawTimeouts) -> R<Timeouts> {
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

/// `[announce]`: `table` a kernel routing table that is none of the
/// kernel's own (0 unspec, 253 default, 254 main, 255 local); `protocol`
/// a route protocol id a routing daemon learns (not 0-3, the kernel's and
/// redirects', which BIRD does not learn, nor 12, BIRD's own, which BIRD
/// removes as stale at start); `vips` addresses of virtual servers, each
/// once.
pub(super) fn announce(raw: S<RawAnnounce>, vss: &[super::super::VirtualServer]) -> R<Announce> {
    let r = raw.into_inner();
    let table = int_in(&r.table, "table", 1, i64::from(u32::MAX))? as u32;
    if matches!(table, 253..=255) {
        return fail(
            r.table.span(),
            format!("table {table} is one of the kernel's own (253 default, 254 main, 255 local)"),
        );
    }
    let protocol = match &r.protocol {
        Some(p) => {
            let v = int_in(p, "protocol", 0, 255)? as u8;
            if v <= 3 || v == 12 {
                return fail(
                    p.span(),
                    format!(
                        "protocol {v} is not for announced routes (0-3: unspec, redirect, \
                         kernel, boot; 12: BIRD's own, which BIRD deletes)"
                    ),
                );
            }
            v
        }
        None => DEFAULT_ANNOUNCE_PROTOCOL,
    };
    let mut known: Vec<std::net::IpAddr> = Vec::new();
    for vs in vss {
        if !known.contains(&vs.address.ip()) {
            known.push(vs.address.ip());
        }
    }
    let vips = match &r.vips {
        None => known.clone(),
        Some(list) => {
            let mut v = Vec::new();
            for s in list.get_ref() {
                let a = parse_ip(s, "vips")?;
                if !known.contains(&a) {
                    return fail(
                        s.span(),
                        format!("vips: {a} is no virtual_server's address"),
                    );
                }
                if v.contains(&a) {
                    return fail(s.span(), format!("vips: {a} is listed twice"));
                }
                v.push(a);
            }
            v
        }
    };
    let mut local_addrs: Vec<std::net::IpAddr> = Vec::new();
    for vs in vss {
        for l in &vs.local_address {
            if !local_addrs.contains(l) {
                local_addrs.push(*l);
            }
        }
    }
    let mut peer_local_addrs = Vec::new();
    for s in r.peer_local_address.iter().flat_map(|l| l.get_ref()) {
        let a = parse_ip(s, "peer_local_address")?;
        let why = if local_addrs.contains(&a) {
            Some("is this director's own local_address")
        } else if known.contains(&a) {
            Some("is a virtual_server's address")
        } else if peer_local_addrs.contains(&a) {
            Some("is listed twice")
        } else {
            None
        };
        if let Some(why) = why {
            return fail(s.span(), format!("peer_local_address: {a} {why}"));
        }
        peer_local_addrs.push(a);
    }
    Ok(Announce {
        table,
        protocol,
        vips,
        local_addrs,
        peer_local_addrs,
    })
}
