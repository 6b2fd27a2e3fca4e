//! `[[vrrp_instance]]`: keepalived's VRRP keywords, within what the VRRP
//! headers (RFC 3768 for v2, RFC 5798 for v3) can carry.

use std::net::IpAddr;
use std::time::Duration;

use super::super::raw::{RawSyncGroup, RawTracked, RawVrrp, RawVrrpScript, S};
use super::super::{
    IpPrefix, TrackInterface, TrackScript, VrrpAuth, VrrpInstance, VrrpScript, VrrpState,
    VrrpSyncGroup, VrrpVersion,
};
use super::common::{
    R, fail, int_in, keyword, nonempty, once, parse_ip, same_family, script_line, secs_in,
};

/// keepalived's bound of tracking weights (it rewrites +/-254 to +/-253).
const MAX_WEIGHT: i64 = 253;

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
        track_script: tracked(&v.track_script, "track_script")?
            .into_iter()
            .map(|(name, weight, reverse)| TrackScript {
                name,
                weight,
                reverse,
            })
            .collect(),
        track_interface: tracked(&v.track_interface, "track_interface")?
            .into_iter()
            .map(|(name, weight, _)| TrackInterface {
                name,
                weight: weight.unwrap_or(0),
            })
            .collect(),
    })
}

fn weight(w: &S<i64>) -> R<i32> {
    Ok(int_in(w, "weight", -MAX_WEIGHT, MAX_WEIGHT)? as i32)
}

/// `track_script` / `track_interface` entries: names (none twice, none
/// empty) with their optional weight.
/// A name with a weight, and `reverse` when given.
type Tracked = (String, Option<i32>, Option<bool>);

fn tracked(list: &[S<RawTracked>], key: &str) -> R<Vec<Tracked>> {
    let mut out: Vec<Tracked> = Vec::new();
    for e in list {
        let (name, w, reverse) = match e.get_ref() {
            RawTracked::Name(n) => (n.clone(), None, None),
            RawTracked::Weighted(t) => (
                t.name.get_ref().clone(),
                t.weight.as_ref().map(weight).transpose()?,
                t.reverse,
            ),
        };
        if key == "track_interface" && reverse == Some(true) {
            return fail(
                e.span(),
                "track_interface: `reverse` is not supported by lvsfwd (track_script only)",
            );
        }
        if name.is_empty() {
            return fail(e.span(), format!("{key}: empty name"));
        }
        if out.iter().any(|(n, _, _)| *n == name) {
            return fail(e.span(), format!("{key} `{name}` is listed twice"));
        }
        out.push((name, w, reverse));
    }
    Ok(out)
}

/// `[[vrrp_script]]`, keepalived's defaults: interval 1 s, timeout = the
/// interval, weight 0, fall 1, rise 1.
pub(super) fn vrrp_script(v: RawVrrpScript) -> R<VrrpScript> {
    if v.name.get_ref().is_empty() {
        return fail(v.name.span(), "vrrp_script name is empty");
    }
    let script = match script_line(Some(v.script.clone()), "script")? {
        Some(s) => s,
        None => return fail(v.script.span(), "script is empty"),
    };
    let interval = match &v.interval {
        None => Duration::from_secs(1),
        Some(i) => secs_in(i, "interval", 0.0, 86400.0, false)?,
    };
    let timeout = match &v.timeout {
        None => interval,
        Some(t) => secs_in(t, "timeout", 0.0, 86400.0, false)?,
    };
    let count = |x: &Option<S<i64>>, key: &str| -> R<u32> {
        match x {
            None => Ok(1),
            Some(n) => Ok(int_in(n, key, 1, 1_000_000)? as u32),
        }
    };
    let (user, group) = script_account(&v.user, &v.group)?;
    Ok(VrrpScript {
        name: v.name.into_inner(),
        script,
        interval,
        timeout,
        weight: v.weight.as_ref().map(weight).transpose()?.unwrap_or(0),
        fall: count(&v.fall, "fall")?,
        rise: count(&v.rise, "rise")?,
        reverse: v.reverse.unwrap_or(false),
        init_fail: v.init_fail.unwrap_or(false),
        user,
        group,
    })
}

/// keepalived's `user USER [GROUP]` of a script (vrrp_script,
/// MISC_CHECK): both non-empty, no group without a user, and both existing.
pub(super) fn script_account(
    user: &Option<S<String>>,
    group: &Option<S<String>>,
) -> R<(Option<String>, Option<String>)> {
    let u = nonempty(user.clone(), "user")?;
    let g = nonempty(group.clone(), "group")?;
    if let (None, Some(g)) = (&u, group) {
        return fail(
            g.span(),
            "group without user (keepalived's `user USER [GROUP]`)",
        );
    }
    if let Some(u) = user {
        check_account(u, "user", "/etc/passwd")?;
    }
    if let Some(g) = group {
        check_account(g, "group", "/etc/group")?;
    }
    Ok((u, g))
}

/// A script's user or group must exist (a name in `db`, or a number), as
/// keepalived refuses the script otherwise; it never falls back to root.
fn check_account(v: &S<String>, key: &str, db: &str) -> R<()> {
    let name = v.get_ref().as_str();
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && name.parse::<u32>().is_ok() {
        return Ok(());
    }
    let text = std::fs::read_to_string(db).unwrap_or_default();
    if text.lines().any(|l| l.split(':').next() == Some(name)) {
        return Ok(());
    }
    fail(v.span(), format!("{key} `{name}`: no such {key} in {db}"))
}

/// `[[vrrp_sync_group]]`: members are checked against the instances by
/// the caller.
pub(super) fn sync_group(g: RawSyncGroup) -> R<VrrpSyncGroup> {
    if g.name.get_ref().is_empty() {
        return fail(g.name.span(), "vrrp_sync_group name is empty");
    }
    let mut group: Vec<String> = Vec::new();
    for m in &g.group {
        let name = m.get_ref().clone();
        group.push(once(group.iter().cloned(), name, m.span(), "group member")?);
    }
    Ok(VrrpSyncGroup {
        name: g.name.into_inner(),
        group,
        notify_master: script_line(g.notify_master, "notify_master")?,
        notify_backup: script_line(g.notify_backup, "notify_backup")?,
        notify_fault: script_line(g.notify_fault, "notify_fault")?,
        notify: script_line(g.notify, "notify")?,
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
