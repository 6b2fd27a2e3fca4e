//! Semantic checks: raw lb.toml values to the typed [`Config`].
//!
//! Every check reports the byte offset of the value it refuses, so the user
//! sees `PATH:LINE:COL`. The rules are IPVS's (kernel + ipvsadm 1.31) and
//! keepalived's; where they differ or are silent, the choice is explained at
//! the check. We refuse rather than warn: a value that IPVS or keepalived
//! would silently ignore or rewrite is always a misunderstanding worth
//! stopping `lvsfwd check` for.
//!
//! One child a section: `global` (with `[timeouts]`), `vrrp`,
//! `virtual_server` (with its FULLNAT pool), `real_server` and `checkers`
//! (its health checks). What they share (the positioned error, range
//! checks, keywords, addresses, the family and listed-twice rules) is in
//! `common`. This file checks what spans instances: names, VRIDs and
//! services that must be unique.

mod checkers;
mod common;
mod fwmark;
mod global;
mod real_server;
mod virtual_server;
mod vrrp;

use std::collections::HashSet;

use super::Config;
use super::raw::RawConfig;
use common::{R, fail};

pub(crate) fn validate(mut raw: RawConfig) -> R<Config> {
    let sync_daemon = raw.global.lvs_sync_daemon.take();
    let mut global = global::global(raw.global)?;
    global.metrics_listen = match raw.metrics {
        Some(m) => Some(global::metrics_listen(&m.listen)?),
        None => None,
    };
    let timeouts = global::timeouts(raw.timeouts)?;
    let mut vrrp_scripts: Vec<super::VrrpScript> = Vec::with_capacity(raw.vrrp_script.len());
    for s in raw.vrrp_script {
        let span = s.get_ref().name.span();
        let script = vrrp::vrrp_script(s.into_inner())?;
        if vrrp_scripts.iter().any(|x| x.name == script.name) {
            return fail(
                span,
                format!("duplicate vrrp_script name `{}`", script.name),
            );
        }
        vrrp_scripts.push(script);
    }
    let mut vrrp_instances = Vec::with_capacity(raw.vrrp_instance.len());
    let mut names = HashSet::new();
    let mut vrids = HashSet::new();
    for v in raw.vrrp_instance {
        let name_span = v.get_ref().name.span();
        let vrid_span = v.get_ref().virtual_router_id.span();
        let track_spans: Vec<_> = v.get_ref().track_script.iter().map(|t| t.span()).collect();
        let inst = vrrp::vrrp(v.into_inner())?;
        for (t, span) in inst.track_script.iter().zip(track_spans) {
            if !vrrp_scripts.iter().any(|s| s.name == t.name) {
                return fail(
                    span,
                    format!("track_script `{}`: no [[vrrp_script]] of that name", t.name),
                );
            }
        }
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
    let mut vrrp_sync_groups: Vec<super::VrrpSyncGroup> = Vec::new();
    for g in raw.vrrp_sync_group {
        let name_span = g.get_ref().name.span();
        let member_spans: Vec<_> = g.get_ref().group.iter().map(|m| m.span()).collect();
        let group_span = name_span.clone();
        let sg = vrrp::sync_group(g.into_inner())?;
        if vrrp_sync_groups.iter().any(|x| x.name == sg.name) {
            return fail(
                name_span,
                format!("duplicate vrrp_sync_group name `{}`", sg.name),
            );
        }
        if sg.group.is_empty() {
            return fail(
                group_span,
                format!("vrrp_sync_group {} has no member", sg.name),
            );
        }
        for (m, span) in sg.group.iter().zip(member_spans) {
            if !vrrp_instances
                .iter()
                .any(|i: &super::VrrpInstance| i.name == *m)
            {
                return fail(
                    span,
                    format!("group member `{m}`: no vrrp_instance of that name"),
                );
            }
            // keepalived drops a sync-group member's weighted tracking
            // (without the deprecated sync_group_tracking_weight): say so.
            let inst = vrrp_instances.iter().find(|i| i.name == *m);
            let weighted = inst.and_then(|i| {
                let ifs = i.track_interface.iter().map(|t| (&t.name, t.weight));
                let scripts = i.track_script.iter().map(|t| {
                    let w = t.weight.or_else(|| {
                        vrrp_scripts
                            .iter()
                            .find(|s| s.name == t.name)
                            .map(|s| s.weight)
                    });
                    (&t.name, w.unwrap_or(0))
                });
                ifs.chain(scripts).find(|(_, w)| *w != 0)
            });
            if let Some((what, w)) = weighted {
                return fail(
                    span,
                    format!(
                        "vrrp_instance {m} tracks {what} with weight {w}: keepalived ignores \
                         weighted tracking in a vrrp_sync_group member; use weight 0 (a failure \
                         puts the whole group in FAULT)"
                    ),
                );
            }
            if let Some(other) = vrrp_sync_groups.iter().find(|x| x.group.contains(m)) {
                return fail(
                    span,
                    format!(
                        "vrrp_instance {m} is already in vrrp_sync_group {}",
                        other.name
                    ),
                );
            }
        }
        vrrp_sync_groups.push(sg);
    }
    if let Some(sd) = sync_daemon {
        global.lvs_sync_daemon = Some(global::sync_daemon(sd, |name| {
            vrrp_instances
                .iter()
                .find(|v: &&super::VrrpInstance| v.name == name)
                .map(|v| v.virtual_router_id)
        })?);
    }
    let fwmarks = fwmark::rules(raw.fwmark)?;
    let groups = fwmark::groups(raw.virtual_server_group)?;
    let mut used_groups = HashSet::new();
    let mut virtual_servers: Vec<super::VirtualServer> =
        Vec::with_capacity(raw.virtual_server.len());
    let mut keys = HashSet::new();
    for v in raw.virtual_server {
        let (vs_span, raw_vs) = (v.span(), v.into_inner());
        // Exactly one of address, fwmark and group says what it serves.
        let (targets, key_span) = match (&raw_vs.address, &raw_vs.fwmark, &raw_vs.group) {
            (Some(a), None, None) => (
                vec![fwmark::Target::Addr(common::parse_sockaddr(
                    a,
                    "virtual_server address",
                    None,
                )?)],
                a.span(),
            ),
            (None, Some(m), None) => {
                let mark = fwmark::mark(m, "fwmark")?;
                let v6 = fwmark::mark_family(&fwmarks, mark, m.span())?;
                (vec![fwmark::Target::Fwmark(mark, v6)], m.span())
            }
            (None, None, Some(g)) => {
                let Some(group) = groups.iter().find(|x| x.name == *g.get_ref()) else {
                    return fail(
                        g.span(),
                        format!(
                            "group `{}`: no [[virtual_server_group]] of that name",
                            g.get_ref()
                        ),
                    );
                };
                if !used_groups.insert(group.name.clone()) {
                    return fail(
                        g.span(),
                        format!(
                            "virtual_server_group {} is already served by another virtual_server",
                            group.name
                        ),
                    );
                }
                let mut targets = Vec::new();
                for m in &group.members {
                    let t = fwmark::member(m, &fwmarks)?;
                    if let Some(first) = targets.first().or(t.first()).copied()
                        && t.iter()
                            .any(|x| x.anchor().is_ipv4() != first.anchor().is_ipv4())
                    {
                        return fail(
                            m.span(),
                            format!(
                                "group member `{}` is not of the family of the group's first member",
                                m.get_ref()
                            ),
                        );
                    }
                    targets.extend(t);
                }
                (targets, g.span())
            }
            _ => {
                return fail(
                    vs_span,
                    "a virtual_server names exactly one of `address`, `fwmark` and `group`",
                );
            }
        };
        let first = virtual_server::virtual_server(raw_vs, targets[0], key_span.clone())?;
        for t in targets {
            let mut vs = first.clone();
            match t {
                fwmark::Target::Addr(a) => vs.address = a,
                fwmark::Target::Fwmark(m, _) => {
                    vs.fwmark = m;
                    vs.address = t.anchor();
                }
            }
            // DR and TUN keep the packet's port: each member's real servers
            // take that member's port, as ipvsadm gives them the service's.
            if matches!(
                vs.lb_kind,
                super::FwdMethod::Route | super::FwdMethod::Tunnel
            ) {
                let port = vs.address.port();
                for rs in &mut vs.real_servers {
                    rs.address.set_port(port);
                }
            }
            let key = vs.spec().key;
            if !keys.insert(key) {
                return fail(key_span, format!("duplicate virtual_server {key}"));
            }
            virtual_servers.push(vs);
        }
    }
    let announce = match raw.announce {
        Some(a) => Some(global::announce(a, &virtual_servers)?),
        None => None,
    };
    Ok(Config {
        global,
        timeouts,
        vrrp_instances,
        vrrp_scripts,
        vrrp_sync_groups,
        virtual_servers,
        announce,
        fwmarks,
    })
}
