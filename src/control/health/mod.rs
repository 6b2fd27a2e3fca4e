//! Health checking of real servers, with keepalived's semantics and key
//! names (TCP_CHECK, HTTP_GET, SSL_GET, DNS_CHECK, UDP_CHECK, PING_CHECK,
//! SMTP_CHECK, MISC_CHECK, quorum, hysteresis, sorry_server with
//! sorry_server_inhibit / sorry_server_lvs_method, inhibit_on_failure,
//! notify_up / notify_down, alpha, omega, ha_suspend).
//!
//! Layers:
//! - pure core, no clock and no socket: [`checker`] (one checker's timers
//!   and retries), [`engine`] (real servers, quorum, sorry server,
//!   notifies), [`http`] (HTTP_GET's request and verdict; DNS_CHECK's
//!   messages are [`crate::wire::dns`]), [`argv`] (script
//!   command lines), and here the [`HealthView`] the control loop keeps and
//!   [`effective_services`], the one function by which health results reach
//!   the data plane;
//! - shell: [`probe`] (the probes, through the kernel's own stack) and
//!   [`runner`] (the health thread: timers, a pool of probe threads,
//!   scripts, events to the control loop).
//!
//! Invariants: health state only ever narrows what the configuration says
//! (it removes real servers, sets weights, or puts the configured sorry
//! server in); real servers not in lb.toml (added with lvsadm) and services
//! unknown to the engine pass through untouched; a real server without a
//! checker is always up.

pub mod checker;
pub mod engine;
pub mod genhash;
pub mod http;
pub mod probe;
pub mod runner;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::service::{DestSpec, FwdMethod, ServiceKey, ServiceSpec};

pub use checker::{Checker, CheckerParams, Transition};
pub use engine::{Action, CheckerId, Engine, ProbeOutcome, ProbeSpec};
pub use runner::{Health, secure_checkers};

/// The weight keepalived gives a sorry server (its real_server default).
pub const SORRY_WEIGHT: i32 = 1;

/// What health checking says about one configured real server.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ServerHealth {
    /// Every checker passes (always true without checkers).
    pub alive: bool,
    /// `inhibit_on_failure`: kept with weight 0 instead of removed.
    pub inhibit: bool,
    /// A weight set by misc_dynamic; `None` = the configured one.
    pub weight: Option<i32>,
}

/// One virtual server's pool as health checking sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolView {
    /// The sorry server's forwarding method (sorry_server_lvs_method, else
    /// the virtual server's).
    pub fwd: FwdMethod,
    pub sorry_server: Option<SocketAddr>,
    /// sorry_server_inhibit: listed with weight 0 while not active.
    pub sorry_inhibit: bool,
    /// Quorum is lost and the sorry server replaces the real servers.
    pub sorry_active: bool,
    /// keepalived's quorum state (gained at quorum + hysteresis, lost
    /// below quorum - hysteresis).
    pub quorum_up: bool,
    pub servers: HashMap<SocketAddr, ServerHealth>,
}

/// Health state of every virtual server of lb.toml.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthView {
    pub pools: HashMap<ServiceKey, PoolView>,
}

/// What the health thread tells the control loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// Real server `server` of service `service` is now up/down/weighted so.
    Server {
        service: ServiceKey,
        server: SocketAddr,
        health: ServerHealth,
    },
    /// The quorum of `service` was gained or lost (its sorry server, if
    /// any, went out or in).
    Pool {
        service: ServiceKey,
        sorry_active: bool,
        quorum_up: bool,
    },
    /// The whole state, after a (re)start of the checkers.
    Reset(HealthView),
}

impl HealthView {
    /// Follows one event.
    pub fn apply(&mut self, ev: &HealthEvent) {
        match ev {
            HealthEvent::Server {
                service,
                server,
                health,
            } => {
                if let Some(p) = self.pools.get_mut(service) {
                    p.servers.insert(*server, *health);
                }
            }
            HealthEvent::Pool {
                service,
                sorry_active,
                quorum_up,
            } => {
                if let Some(p) = self.pools.get_mut(service) {
                    p.sorry_active = *sorry_active;
                    p.quorum_up = *quorum_up;
                }
            }
            HealthEvent::Reset(v) => *self = v.clone(),
        }
    }
}

/// The services to publish: `configured` (lb.toml plus lvsadm's edits) as
/// health checking adjusts them, keepalived's way:
/// - a real server that is down is removed, or kept with weight 0 when it
///   has inhibit_on_failure;
/// - an alive one keeps its weight, or misc_dynamic's;
/// - while the sorry server is active, it is the only server with a weight:
///   every configured real server is removed (weight 0 with
///   inhibit_on_failure) and the sorry server is added with weight 1 and
///   its forwarding method (sorry_server_lvs_method, else the virtual
///   server's); while it is not, it is absent, or listed with weight 0
///   with sorry_server_inhibit.
pub fn effective_services(configured: &[ServiceSpec], view: &HealthView) -> Vec<ServiceSpec> {
    configured
        .iter()
        .map(|spec| {
            let Some(pool) = view.pools.get(&spec.key) else {
                return spec.clone();
            };
            let mut out = spec.clone();
            out.dests = spec
                .dests
                .iter()
                .filter_map(|d| {
                    let Some(h) = pool.servers.get(&SocketAddr::new(d.addr, d.port)) else {
                        return Some(d.clone());
                    };
                    let serving = h.alive && !pool.sorry_active;
                    match (serving, h.inhibit) {
                        (true, _) => Some(DestSpec {
                            weight: h.weight.unwrap_or(d.weight),
                            ..d.clone()
                        }),
                        (false, true) => Some(DestSpec {
                            weight: 0,
                            ..d.clone()
                        }),
                        (false, false) => None,
                    }
                })
                .collect();
            if let Some(sorry) = pool.sorry_server {
                let listed = out
                    .dests
                    .iter_mut()
                    .find(|d| d.addr == sorry.ip() && d.port == sorry.port());
                match (pool.sorry_active, listed) {
                    (true, Some(d)) => d.weight = SORRY_WEIGHT,
                    (true, None) => out.dests.push(sorry_dest(sorry, pool.fwd)),
                    (false, None) if pool.sorry_inhibit => out.dests.push(DestSpec {
                        weight: 0,
                        ..sorry_dest(sorry, pool.fwd)
                    }),
                    (false, _) => {}
                }
            }
            out
        })
        .collect()
}

fn sorry_dest(sorry: SocketAddr, fwd: FwdMethod) -> DestSpec {
    DestSpec {
        addr: sorry.ip(),
        port: sorry.port(),
        fwd,
        weight: SORRY_WEIGHT,
        u_threshold: 0,
        l_threshold: 0,
        mac: None,
        tun: Default::default(),
    }
}

/// `configured` with every sorry server added as if active: the set of
/// real servers whose next hops must be known ahead, so that the sorry
/// server serves from its first packet.
pub fn with_sorry_servers(configured: &[ServiceSpec], view: &HealthView) -> Vec<ServiceSpec> {
    let mut all = configured.to_vec();
    for s in all.iter_mut() {
        if let Some(p) = view.pools.get(&s.key)
            && let Some(sorry) = p.sorry_server
            && !s
                .dests
                .iter()
                .any(|d| d.addr == sorry.ip() && d.port == sorry.port())
        {
            s.dests.push(sorry_dest(sorry, p.fwd));
        }
    }
    all
}
