//! `[[virtual_server]]`: the IPVS service (ipvsadm `-A`), its persistence
//! and scheduler flags, its FULLNAT source pool and its real servers.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::super::raw::{Granularity, Persistence, RawVirtualServer, S};
use super::super::{FwdMethod, Protocol, RealServer, SchedFlags, SchedKind, VirtualServer};
use super::checkers::{Inherited, TimerKeys};
use super::common::{
    MAX_TIMEOUT_SECS, R, fail, int_in, keyword, once, parse_ip, parse_sockaddr, same_family,
    script_line, timeout_secs,
};
use super::fwmark::Target;
use super::real_server::real_server;

/// IPVS_SVC_PERSISTENT_TIMEOUT: `-p` / `persistence_timeout` without a value.
const DEFAULT_PERSISTENCE_SECS: u64 = 360;

fn lb_kind(s: &S<String>) -> R<FwdMethod> {
    keyword(
        s,
        "lb_kind",
        &[
            ("DR", FwdMethod::Route),
            ("TUN", FwdMethod::Tunnel),
            ("NAT", FwdMethod::Masq),
            ("FULLNAT", FwdMethod::FullNat),
        ],
    )
}

/// The virtual server serving `target` (its first one for a group: the
/// caller copies it to the others); `key_span` is where its `address`,
/// `fwmark` or `group` is written.
pub(super) fn virtual_server(
    v: RawVirtualServer,
    target: Target,
    key_span: std::ops::Range<usize>,
) -> R<VirtualServer> {
    let address = target.anchor();
    let fwmark = match target {
        Target::Fwmark(m, _) => m,
        Target::Addr(_) => 0,
    };
    let vip = address.ip();
    let protocol = match &v.protocol {
        None => Protocol::Tcp,
        Some(s) => keyword(
            s,
            "protocol",
            &[("TCP", Protocol::Tcp), ("UDP", Protocol::Udp)],
        )?,
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
    if fwmark == 0 && address.port() == 0 && persistence_timeout.is_none() {
        // ipvsadm: a port-0 service matches every port, which only makes
        // sense when a client sticks to one server for all of them.
        return fail(
            key_span.clone(),
            "port 0 (all ports) needs persistence_timeout, as in ipvsadm",
        );
    }
    let sched_flags = sched_flags(v.sched_flags.iter().flatten(), lb_algo)?;
    let ops = match &v.ops {
        // A fwmark service serves TCP and UDP: ops applies to its UDP.
        Some(o) if *o.get_ref() && protocol != Protocol::Udp && fwmark == 0 => {
            return fail(
                o.span(),
                "ops (one-packet scheduling) is only for UDP services",
            );
        }
        o => o.as_ref().is_some_and(|o| *o.get_ref()),
    };
    let delay_loop = match &v.delay_loop {
        None => Duration::from_secs(60),
        Some(d) => timeout_secs(d, "delay_loop")?,
    };
    // The kernel forwards to another family only through a tunnel (IPv4 in
    // IPv6 or IPv6 in IPv4, since Linux 3.18): other methods keep every
    // real server (and the sorry server, checked below with its own
    // method) of the VIP's family.
    let family = (kind != FwdMethod::Tunnel).then_some(vip);
    let why = "only TUN forwards between families";
    let sorry_server = match &v.sorry_server {
        None => None,
        Some(s) => Some((
            parse_sockaddr(s, "sorry_server", Some(address.port()))?,
            s.span(),
        )),
    };
    let need_sorry = |span: std::ops::Range<usize>, key: &str| -> R<()> {
        if sorry_server.is_none() {
            return fail(span, format!("{key} needs a sorry_server"));
        }
        Ok(())
    };
    let sorry_server_inhibit = match &v.sorry_server_inhibit {
        None => false,
        Some(b) => {
            need_sorry(b.span(), "sorry_server_inhibit")?;
            *b.get_ref()
        }
    };
    let sorry_server_lvs_method = match &v.sorry_server_lvs_method {
        None => None,
        Some(m) => {
            need_sorry(m.span(), "sorry_server_lvs_method")?;
            let k = lb_kind(m)?;
            // FULLNAT needs the virtual server's local_address pool.
            if k == FwdMethod::FullNat && kind != FwdMethod::FullNat {
                return fail(
                    m.span(),
                    "sorry_server_lvs_method FULLNAT needs a FULLNAT virtual server \
                     (its local_address pool)",
                );
            }
            Some(k)
        }
    };
    let sorry_server = match sorry_server {
        None => None,
        Some((a, span)) => {
            let method = sorry_server_lvs_method.unwrap_or(kind);
            let family = (method != FwdMethod::Tunnel).then_some(vip);
            same_family(a.ip(), family, span, |this, vs, _| {
                format!("sorry_server is {this} but the virtual server is {vs}; {why}")
            })?;
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
    // ha_suspend waits for the virtual server's address on the director;
    // a fwmark service has none.
    if fwmark != 0 && v.ha_suspend == Some(true) {
        return fail(
            key_span.clone(),
            "ha_suspend needs the virtual server's address, which a fwmark service has not",
        );
    }
    let local_address = local_address(&v, kind, key_span.clone())?;
    let pool = local_address.first().copied();
    let mut real_servers: Vec<RealServer> = Vec::with_capacity(v.real_server.len());
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let check_defaults = Inherited {
        delay_loop,
        weight: match &v.weight {
            None => None,
            Some(w) => Some(int_in(w, "weight", 0, super::real_server::MAX_WEIGHT)? as i32),
        },
        inhibit_on_failure: v.inhibit_on_failure,
        ..Inherited::default()
    }
    .over(
        TimerKeys {
            retry: &v.retry,
            delay_before_retry: &v.delay_before_retry,
            warmup: &v.warmup,
            connect_timeout: Some(&v.connect_timeout),
            delay_loop: &None,
            alpha: v.alpha,
        },
        v.virtualhost.as_ref(),
    )?;
    for rs in v.real_server {
        let addr_span = rs.get_ref().address.span();
        let r = real_server(rs.into_inner(), address, kind, &check_defaults)?;
        let rip = r.address.ip();
        same_family(rip, family, addr_span.clone(), |this, vs, _| {
            format!(
                "real_server {rip} is {this} but the virtual server is {vs}; {}",
                why
            )
        })?;
        same_family(rip, pool, addr_span.clone(), |this, pool, _| {
            format!("real_server {rip} is {this} but local_address is {pool}")
        })?;
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
        fwmark,
        lb_algo,
        lb_kind: kind,
        persistence_timeout,
        persistence_prefix,
        sched_flags,
        ops,
        delay_loop,
        sorry_server,
        sorry_server_inhibit,
        sorry_server_lvs_method,
        omega: v.omega.unwrap_or(false),
        ha_suspend: v.ha_suspend.unwrap_or(false),
        quorum,
        hysteresis,
        quorum_up: script_line(v.quorum_up, "quorum_up")?,
        quorum_down: script_line(v.quorum_down, "quorum_down")?,
        alpha: v.alpha.unwrap_or(false),
        local_address,
        real_servers,
    })
}

/// The scheduler flags ipvsadm's `-b` takes: by the scheduler's own names,
/// which must then be the service's, or by number.
fn sched_flags<'a>(
    flags: impl Iterator<Item = &'a S<String>>,
    lb_algo: SchedKind,
) -> R<SchedFlags> {
    #[derive(Clone, Copy)]
    enum Flag {
        Fallback,
        Port,
        Three,
    }
    let mut out = SchedFlags::default();
    for f in flags {
        let (only, flag) = keyword(
            f,
            "sched_flags",
            &[
                ("sh-fallback", (Some(SchedKind::Sh), Flag::Fallback)),
                ("sh-port", (Some(SchedKind::Sh), Flag::Port)),
                ("mh-fallback", (Some(SchedKind::Mh), Flag::Fallback)),
                ("mh-port", (Some(SchedKind::Mh), Flag::Port)),
                ("flag-1", (None, Flag::Fallback)),
                ("flag-2", (None, Flag::Port)),
                ("flag-3", (None, Flag::Three)),
            ],
        )?;
        if let Some(k) = only
            && k != lb_algo
        {
            return fail(
                f.span(),
                format!(
                    "sched_flags `{}` only applies to lb_algo {k}, not {lb_algo}",
                    f.get_ref()
                ),
            );
        }
        match flag {
            Flag::Fallback => out.fallback = true,
            Flag::Port => out.port = true,
            Flag::Three => out.flag3 = true,
        }
    }
    Ok(out)
}

/// FULLNAT's source addresses toward the real servers: required there, one
/// family, none twice; refused with any other lb_kind.
fn local_address(
    v: &RawVirtualServer,
    kind: FwdMethod,
    key_span: std::ops::Range<usize>,
) -> R<Vec<IpAddr>> {
    if kind != FwdMethod::FullNat {
        return match v.local_address.first() {
            Some(s) => fail(s.span(), "local_address is only used with lb_kind FULLNAT"),
            None => Ok(Vec::new()),
        };
    }
    if v.local_address.is_empty() {
        return fail(
            v.lb_kind.as_ref().map_or(key_span, S::span),
            "lb_kind FULLNAT needs local_address (the source addresses toward the real servers)",
        );
    }
    let mut pool: Vec<IpAddr> = Vec::new();
    for s in &v.local_address {
        let ip = parse_ip(s, "local_address")?;
        same_family(
            ip,
            pool.first().copied(),
            s.span(),
            |this, first_f, first| {
                format!(
                    "local_address {ip} is {this} but {first} is {first_f}: one family per pool"
                )
            },
        )?;
        pool.push(once(pool.iter().copied(), ip, s.span(), "local_address")?);
    }
    Ok(pool)
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
