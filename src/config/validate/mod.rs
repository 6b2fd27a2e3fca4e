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
    let timeouts = global::timeouts(raw.timeouts)?;
    let mut vrrp_instances = Vec::with_capacity(raw.vrrp_instance.len());
    let mut names = HashSet::new();
    let mut vrids = HashSet::new();
    for v in raw.vrrp_instance {
        let name_span = v.get_ref().name.span();
        let vrid_span = v.get_ref().virtual_router_id.span();
        let inst = vrrp::vrrp(v.into_inner())?;
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
    if let Some(sd) = sync_daemon {
        global.lvs_sync_daemon = Some(global::sync_daemon(sd, |name| {
            vrrp_instances
                .iter()
                .find(|v: &&super::VrrpInstance| v.name == name)
                .map(|v| v.virtual_router_id)
        })?);
    }
    let mut virtual_servers = Vec::with_capacity(raw.virtual_server.len());
    let mut keys = HashSet::new();
    for v in raw.virtual_server {
        let addr_span = v.get_ref().address.span();
        let vs = virtual_server::virtual_server(v.into_inner())?;
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
