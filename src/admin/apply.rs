//! Applies an [`AdminCommand`] to the canonical service table, as the
//! kernel's IPVS control code (`ip_vs_genl_set_cmd`, `ip_vs_add_service`,
//! `ip_vs_edit_service`, `ip_vs_add_dest`, `ip_vs_edit_dest`,
//! `ip_vs_del_dest`, `ip_vs_set_timeout`) would, with the messages
//! ipvsadm 1.31 prints for its errors (libipvs' `ipvs_strerror`).
//!
//! Invariant: [`apply`] never modifies its input; it returns the new state,
//! so a refused command leaves the old one untouched by construction.
//!
//! Semantics kept from IPVS:
//! - `-E` replaces scheduler, scheduler flags, persistence, mask and ops
//!   with what the command carries (ipvsadm fills in its defaults for what
//!   is not given, so `-E -t VIP:80` alone makes the service `wlc`,
//!   non-persistent). Real servers and the FULLNAT pool are kept.
//! - `-e` replaces forwarding method, weight and thresholds (same
//!   defaulting); the static MAC, which lvsadm cannot express, is kept.
//! - New real servers are appended to the spec: `Service::from_spec` links
//!   them at the head of the kernel-order list, as `ip_vs_add_dest` does.
//! - `--set` changes only the values given as non-zero.
//!
//! Not done here: counters (`-Z` only checks that the service exists; the
//! daemon zeroes the live counters), listing, and publishing to workers.

use std::fmt;
use std::net::IpAddr;

use crate::admin::cmd::AdminCommand;
use crate::conn::Timeouts;
use crate::service::{DestSpec, FwdMethod, ServiceKey, ServiceSpec};

/// The canonical, configured state that lvsadm changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminState {
    pub services: Vec<ServiceSpec>,
    pub timeouts: Timeouts,
}

impl AdminState {
    /// The service with this key.
    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceSpec> {
        self.services.iter().find(|s| s.key == *key)
    }
    fn index(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|s| s.key == *key)
    }
}

/// Why IPVS refused a change. `Display` is what ipvsadm prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// EEXIST from `-A`.
    ServiceExists,
    /// ESRCH from `-E`, `-D`, `-Z`, `-L -t`.
    NoSuchService,
    /// ESRCH from `-a`, `-e`, `-d`.
    ServiceNotDefined,
    /// EEXIST from `-a`.
    DestExists,
    /// ENOENT from `-e`, `-d`.
    NoSuchDest,
    /// ERANGE: the lower threshold is above the upper one.
    ThresholdRange,
    /// EINVAL: the real server's address is not a unicast address, or its
    /// family differs from the service's without a tunnel.
    Invalid,
    /// lvsfwd: a FULLNAT real server on a service without a source pool.
    FullNatWithoutLocalAddress,
    /// lvsfwd: a FULLNAT real server of another family than the pool.
    FullNatFamily,
    /// EEXIST from DPVS's `-P`.
    LaddrExists,
    /// ENOENT from DPVS's `-Q`.
    NoSuchLaddr,
    /// lvsfwd: `-P` of an address of the other family than the pool's
    /// (one family per pool, as lb.toml's `local_address`).
    LaddrFamily,
    /// lvsfwd: `-Q` of the last local address of a service with FULLNAT
    /// real servers (they would have no source address).
    LastLaddr,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApplyError::ServiceExists => "Service already exists",
            ApplyError::NoSuchService => "No such service",
            ApplyError::ServiceNotDefined => "Service not defined",
            ApplyError::DestExists => "Destination already exists",
            ApplyError::NoSuchDest => "No such destination",
            ApplyError::ThresholdRange => "Numerical result out of range",
            ApplyError::Invalid => {
                "Invalid operation.  Possibly wrong module version, address not unicast, ..."
            }
            ApplyError::FullNatWithoutLocalAddress => {
                "FULLNAT needs the service's local_address (set it in lb.toml)"
            }
            ApplyError::FullNatFamily => {
                "FULLNAT real server and local_address must be of the same address family"
            }
            ApplyError::LaddrExists => "Local address already exists",
            ApplyError::NoSuchLaddr => "No such Local address",
            ApplyError::LaddrFamily => {
                "Local address must be of the same address family as the service's other local addresses"
            }
            ApplyError::LastLaddr => {
                "Local address is the last one of a service with FULLNAT real servers"
            }
        })
    }
}

impl std::error::Error for ApplyError {}

impl ApplyError {
    /// lvsadm's exit code for a refused change (see `cmd`'s module doc).
    pub fn exit_code(&self) -> i32 {
        1
    }
}

/// IPVS refuses real servers that are not unicast (`ip_vs_new_dest`:
/// `inet_addr_type` must be local or unicast; IPv6 must be unicast and
/// not link-local).
fn unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !(v.is_unspecified() || v.is_broadcast() || v.is_multicast()),
        IpAddr::V6(v) => !(v.is_unspecified() || v.is_multicast() || v.is_unicast_link_local()),
    }
}

/// The checks `ip_vs_add_dest`/`ip_vs_edit_dest` share, in their order:
/// a real server of another family than the service only through a
/// tunnel (`ip_vs_check_dest`'s rule since Linux 3.18).
fn check_dest(svc: &ServiceSpec, d: &DestSpec) -> Result<(), ApplyError> {
    if d.addr.is_ipv4() != svc.key.addr.is_ipv4() && d.fwd != FwdMethod::Tunnel {
        return Err(ApplyError::Invalid);
    }
    if d.l_threshold > d.u_threshold {
        return Err(ApplyError::ThresholdRange);
    }
    Ok(())
}

/// lvsfwd's FULLNAT needs a source pool of the real server's family
/// (lb.toml's rule for `local_address`).
fn check_fullnat(svc: &ServiceSpec, d: &DestSpec) -> Result<(), ApplyError> {
    if d.fwd != FwdMethod::FullNat {
        return Ok(());
    }
    match svc.local_addrs.first() {
        None => Err(ApplyError::FullNatWithoutLocalAddress),
        Some(l) if l.is_ipv4() != d.addr.is_ipv4() => Err(ApplyError::FullNatFamily),
        Some(_) => Ok(()),
    }
}

/// Applies one command; returns the new state, or IPVS's refusal with the
/// old state untouched. Read-only commands (list, save, version, help,
/// restore, which the caller expands) return an equal state.
pub fn apply(state: &AdminState, cmd: &AdminCommand) -> Result<AdminState, ApplyError> {
    let mut next = state.clone();
    match cmd {
        AdminCommand::AddService(spec) => {
            if state.index(&spec.key).is_some() {
                return Err(ApplyError::ServiceExists);
            }
            let mut s = spec.clone();
            s.dests.clear();
            next.services.push(s);
        }
        AdminCommand::EditService(spec) => {
            let i = state.index(&spec.key).ok_or(ApplyError::NoSuchService)?;
            let s = &mut next.services[i];
            s.sched = spec.sched;
            s.sched_flags = spec.sched_flags;
            s.persistence = spec.persistence;
            s.persistence_prefix = spec.persistence_prefix;
            s.ops = spec.ops;
        }
        AdminCommand::DelService(key) => {
            let i = state.index(key).ok_or(ApplyError::NoSuchService)?;
            next.services.remove(i);
        }
        AdminCommand::Clear => next.services.clear(),
        AdminCommand::AddDest { svc, dest } => {
            let i = state.index(svc).ok_or(ApplyError::ServiceNotDefined)?;
            let s = &mut next.services[i];
            check_dest(s, dest)?;
            if s.dests
                .iter()
                .any(|d| d.addr == dest.addr && d.port == dest.port)
            {
                return Err(ApplyError::DestExists);
            }
            if !unicast(dest.addr) {
                return Err(ApplyError::Invalid);
            }
            check_fullnat(s, dest)?;
            s.dests.push(dest.clone());
        }
        AdminCommand::EditDest { svc, dest } => {
            let i = state.index(svc).ok_or(ApplyError::ServiceNotDefined)?;
            let s = &mut next.services[i];
            check_dest(s, dest)?;
            let j = s
                .dests
                .iter()
                .position(|d| d.addr == dest.addr && d.port == dest.port)
                .ok_or(ApplyError::NoSuchDest)?;
            check_fullnat(s, dest)?;
            let d = &mut s.dests[j];
            d.fwd = dest.fwd;
            d.weight = dest.weight;
            d.u_threshold = dest.u_threshold;
            d.l_threshold = dest.l_threshold;
            d.tun = dest.tun;
        }
        AdminCommand::DelDest { svc, addr, port } => {
            let i = state.index(svc).ok_or(ApplyError::ServiceNotDefined)?;
            let s = &mut next.services[i];
            let j = s
                .dests
                .iter()
                .position(|d| d.addr == *addr && d.port == *port)
                .ok_or(ApplyError::NoSuchDest)?;
            s.dests.remove(j);
        }
        AdminCommand::AddLaddr { svc, addr, .. } => {
            let i = state.index(svc).ok_or(ApplyError::ServiceNotDefined)?;
            let s = &mut next.services[i];
            if s.local_addrs.contains(addr) {
                return Err(ApplyError::LaddrExists);
            }
            if s.local_addrs
                .first()
                .is_some_and(|f| f.is_ipv4() != addr.is_ipv4())
            {
                return Err(ApplyError::LaddrFamily);
            }
            s.local_addrs.push(*addr);
        }
        AdminCommand::DelLaddr { svc, addr, .. } => {
            let i = state.index(svc).ok_or(ApplyError::ServiceNotDefined)?;
            let s = &mut next.services[i];
            let j = s
                .local_addrs
                .iter()
                .position(|l| l == addr)
                .ok_or(ApplyError::NoSuchLaddr)?;
            s.local_addrs.remove(j);
            if s.local_addrs.is_empty() && s.dests.iter().any(|d| d.fwd == FwdMethod::FullNat) {
                return Err(ApplyError::LastLaddr);
            }
        }
        AdminCommand::GetLaddr(Some(key)) => {
            state.index(key).ok_or(ApplyError::ServiceNotDefined)?;
        }
        AdminCommand::Zero(Some(key)) => {
            state.index(key).ok_or(ApplyError::NoSuchService)?;
        }
        AdminCommand::SetTimeouts { tcp, tcp_fin, udp } => {
            if let Some(t) = tcp {
                next.timeouts.tcp = *t;
            }
            if let Some(t) = tcp_fin {
                next.timeouts.tcp_fin = *t;
            }
            if let Some(t) = udp {
                next.timeouts.udp = *t;
            }
        }
        AdminCommand::Zero(None)
        | AdminCommand::GetLaddr(None)
        | AdminCommand::List { .. }
        | AdminCommand::Save { .. }
        | AdminCommand::Restore
        | AdminCommand::Version
        | AdminCommand::Help
        | AdminCommand::StartDaemon(_)
        | AdminCommand::StopDaemon(_) => {}
    }
    Ok(next)
}

#[cfg(test)]
mod tests;
