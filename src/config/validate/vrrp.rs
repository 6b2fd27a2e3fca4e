//! `[[vrrp_instance]]`: keepalived's VRRP keywords, within what the VRRP
//! headers (RFC 3768 for v2, RFC 5798 for v3) can carry.

use std::net::IpAddr;
use std::time::Duration;

use super::super::raw::{RawVrrp, S};
use super::super::{IpPrefix, VrrpAuth, VrrpInstance, VrrpState, VrrpVersion};
use super::common::{R, fail, int_in, keyword, once, parse_ip, same_family, script_line, secs_in};

pub(super) fn vrrp(v: RawVrrp) -> R<VrrpInstance> {
    if v.name.get_ref().is_empty() {
        return fail(v.name.span(), "vrrp_instance name is empty");
    }
    if v.interface.get_ref().is_empty() {
        return fail(v.interface.span(), "interface is empty");
    }
    let state = match &v.state {
        None => VrrpState::Backup,
        Some(s) => keyword(
            s,
            "state",
            &[("MASTER", VrrpState::Master), ("BACKUP", VrrpState::Backup)],
        )?,
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
        Some(a) => advert_int(a, version)?,
    };
    let preempt_delay = match &v.preempt_delay {
        None => Duration::ZERO,
        Some(p) => secs_in(p, "preempt_delay", 0.0, 1000.0, true)?,
    };
    let nopreempt = v.nopreempt.unwrap_or(false);
    let auth = auth(&v.auth_type, &v.auth_pass, version)?;
    let vips = virtual_ipaddress(&v.virtual_ipaddress)?;
    let family = vips.first().map(|p| p.addr);
    let unicast_src_ip = match &v.unicast_src_ip {
        None => None,
        Some(s) => {
            let ip = parse_ip(s, "unicast_src_ip")?;
            same_family(ip, family, s.span(), |this, vips, _| {
                format!("unicast_src_ip is {this} but the virtual addresses are {vips}")
            })?;
            Some(ip)
        }
    };
    let mut unicast_peer: Vec<IpAddr> = Vec::new();
    for s in &v.unicast_peer {
        let ip = parse_ip(s, "unicast_peer")?;
        same_family(ip, unicast_src_ip.or(family), s.span(), |this, inst, _| {
            format!("unicast_peer {ip} is {this} but this instance is {inst}")
        })?;
        unicast_peer.push(once(
            unicast_peer.iter().copied(),
            ip,
            s.span(),
            "unicast_peer",
        )?);
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
        notify_master: script_line(v.notify_master, "notify_master")?,
        notify_backup: script_line(v.notify_backup, "notify_backup")?,
        notify_fault: script_line(v.notify_fault, "notify_fault")?,
        notify: script_line(v.notify, "notify")?,
    })
}

fn advert_int(a: &S<f64>, version: VrrpVersion) -> R<Duration> {
    let x = *a.get_ref();
    Ok(match version {
        // The v2 header carries whole seconds in 8 bits.
        VrrpVersion::V2 => {
            if x.fract() != 0.0 {
                return fail(
                    a.span(),
                    format!("advert_int {x}: fractions of a second need version = 3"),
                );
            }
            Duration::from_secs(int_in(&S::new(a.span(), x as i64), "advert_int", 1, 255)? as u64)
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
    })
}

fn auth(
    auth_type: &Option<S<String>>,
    auth_pass: &Option<S<String>>,
    version: VrrpVersion,
) -> R<Option<VrrpAuth>> {
    let (t, p) = match (auth_type, auth_pass) {
        (None, None) => return Ok(None),
        (None, Some(p)) => return fail(p.span(), "auth_pass without auth_type"),
        (Some(t), None) => return fail(t.span(), "auth_type needs auth_pass"),
        (Some(t), Some(p)) => (t, p),
    };
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
    let kind: fn(String) -> VrrpAuth = keyword(
        t,
        "auth_type",
        &[("PASS", VrrpAuth::Pass as _), ("AH", VrrpAuth::Ah as _)],
    )?;
    Ok(Some(kind(pass.clone())))
}

/// `ADDR[/PREFIX]` each, one family per instance, none twice.
fn virtual_ipaddress(list: &[S<String>]) -> R<Vec<IpPrefix>> {
    let mut vips: Vec<IpPrefix> = Vec::new();
    for s in list {
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
        let first = vips.first().map(|p| p.addr);
        same_family(addr, first, s.span(), |this, first, _| {
            format!(
                "virtual_ipaddress `{text}` is {this} but this instance's first address is \
                 {first}: one vrrp_instance serves one address family"
            )
        })?;
        let addr = once(
            vips.iter().map(|p| p.addr),
            addr,
            s.span(),
            "virtual_ipaddress",
        )?;
        vips.push(IpPrefix { addr, len });
    }
    Ok(vips)
}
