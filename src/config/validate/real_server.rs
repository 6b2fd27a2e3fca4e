//! `[[virtual_server.real_server]]`: a destination (ipvsadm `-a`), its
//! next hop and thresholds, and the health checks that watch it.

use std::net::SocketAddr;

use super::super::raw::{RawRealServer, S};
use super::super::{FwdMethod, MacAddr, RealServer, TunCsum, TunType, TunnelSpec};
use super::checkers::{
    Inherited, TimerKeys, dns_check, http_get, misc_check, ping_check, smtp_check, tcp_check,
    udp_check,
};
use super::common::{R, fail, int_in, parse_sockaddr, script_line};

/// ipvsadm's `-w` bound (the kernel only refuses negative weights).
pub(super) const MAX_WEIGHT: i64 = 65535;

pub(super) fn real_server(
    rs: RawRealServer,
    vip: SocketAddr,
    kind: FwdMethod,
    vs_defaults: &Inherited,
) -> R<RealServer> {
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
        None => vs_defaults.weight.unwrap_or(1),
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
    let tun = tunnel(&rs, kind)?;
    let up = vs_defaults.over(
        TimerKeys {
            retry: &rs.retry,
            delay_before_retry: &rs.delay_before_retry,
            warmup: &rs.warmup,
            connect_timeout: Some(&rs.connect_timeout),
            delay_loop: &rs.delay_loop,
            alpha: rs.alpha,
        },
        rs.virtualhost.as_ref(),
    )?;
    // keepalived's checker list: every checker, in kind order here (the
    // order does not change the verdict: all must pass).
    let mut checks = Vec::new();
    for t in rs.tcp_check.0 {
        checks.push(tcp_check(t, address, &up)?);
    }
    for h in rs.http_get.0 {
        checks.push(http_get(h, address, &up, false)?);
    }
    for h in rs.ssl_get.0 {
        checks.push(http_get(h, address, &up, true)?);
    }
    for d in rs.dns_check.0 {
        checks.push(dns_check(d, address, &up)?);
    }
    for u in rs.udp_check.0 {
        checks.push(udp_check(u, address, &up)?);
    }
    for p in rs.ping_check.0 {
        checks.push(ping_check(p, address, &up)?);
    }
    for m in rs.smtp_check.0 {
        checks.push(smtp_check(m, address, &up)?);
    }
    for m in rs.misc_check.0 {
        checks.push(misc_check(m, &up)?);
    }
    Ok(RealServer {
        address,
        weight,
        mac,
        inhibit_on_failure: rs
            .inhibit_on_failure
            .or(vs_defaults.inhibit_on_failure)
            .unwrap_or(false),
        uthreshold,
        lthreshold,
        notify_up: script_line(rs.notify_up, "notify_up")?,
        notify_down: script_line(rs.notify_down, "notify_down")?,
        tun,
        checks,
    })
}

/// `tun_type`, `tun_port`, `tun_flags`: TUN only, in the combinations
/// ipvsadm and keepalived allow (see [`TunnelSpec::invalid`]).
fn tunnel(rs: &RawRealServer, kind: FwdMethod) -> R<TunnelSpec> {
    let keys = [
        rs.tun_type.as_ref().map(|v| ("tun_type", v.span())),
        rs.tun_port.as_ref().map(|v| ("tun_port", v.span())),
        rs.tun_flags.as_ref().map(|v| ("tun_flags", v.span())),
    ];
    if kind != FwdMethod::Tunnel
        && let Some((key, span)) = keys.iter().flatten().next()
    {
        return fail(span.clone(), format!("{key} needs lb_kind = \"TUN\""));
    }
    let mut t = TunnelSpec::default();
    if let Some(v) = &rs.tun_type {
        t.kind = TunType::from_name(v.get_ref()).map_or_else(
            || {
                fail(
                    v.span(),
                    format!("tun_type `{}` is not one of ipip, gue, gre", v.get_ref()),
                )
            },
            Ok,
        )?;
    }
    if let Some(v) = &rs.tun_port {
        t.port = int_in(v, "tun_port", 1, 65535)? as u16;
    }
    if let Some(v) = &rs.tun_flags {
        t.csum = TunCsum::from_name(v.get_ref()).map_or_else(
            || {
                fail(
                    v.span(),
                    format!(
                        "tun_flags `{}` is not one of nocsum, csum, remcsum",
                        v.get_ref()
                    ),
                )
            },
            Ok,
        )?;
    }
    if let Some(why) = t.invalid() {
        // At the key that makes the combination wrong: the port (missing
        // or extra) or the checksum option, else the type.
        let span = match (t.kind, &rs.tun_port, &rs.tun_flags, &rs.tun_type) {
            (TunType::Gue, _, _, Some(ty)) => ty.span(),
            (_, Some(p), _, _) => p.span(),
            (_, _, Some(f), _) => f.span(),
            (_, _, _, Some(ty)) => ty.span(),
            _ => rs.address.span(),
        };
        return fail(span, why);
    }
    Ok(t)
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
