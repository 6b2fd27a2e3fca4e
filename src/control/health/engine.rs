//! The health-check engine: every checker of every real server, the real
//! servers' up/down state and every virtual server's quorum and sorry
//! server, as keepalived's ipwrapper.c keeps them. Pure: results and `now`
//! in, [`Action`]s out; the probes themselves run elsewhere.
//!
//! Rules mirrored (keepalived function in brackets):
//! - a real server is alive while none of its checkers is down; it goes
//!   down when its first checker fails and up when its last failing checker
//!   succeeds [update_svr_checker_state]; one with no checker is always up;
//! - every change of a real server runs its notify_up / notify_down and
//!   re-evaluates the quorum [perform_svr_state];
//! - the quorum is the sum of the weights of the alive real servers
//!   (negative weights count 0) [weigh_live_realservers]; it is gained at
//!   `quorum + hysteresis` and lost below `quorum - hysteresis` or at 0
//!   [update_quorum_state]; gaining it runs quorum_up and takes the sorry
//!   server out, losing it runs quorum_down and, when a sorry server is
//!   configured, the sorry server replaces every real server; at start-up
//!   the quorum is evaluated from "down", so quorum_up runs when it is met;
//! - MISC_CHECK with misc_dynamic: exit 0 restores the configured weight,
//!   exit 2..=255 sets the weight to status - 2 (whatever the server's
//!   state), exit 1 or any other failure is a failed check; when the check
//!   finally fails the dynamic weight is forgotten [misc_check_child_thread];
//! - a reload keeps the state of every real server that stays and of every
//!   checker whose configuration did not change [clear_diff_services,
//!   migrate_checkers]; new real servers start as at start-up; a removed
//!   alive real server runs its notify_down;
//! - `omega`: at shutdown, the notify_down of every alive real server, then
//!   quorum_down [clear_services while stopping];
//! - `ha_suspend`: a virtual server's checkers probe only while its address
//!   is on the director; a suspended checker keeps its verdict and moves on
//!   by its delay_loop [update_checker_activity];
//! - a failure is logged when the checker was up, every failure with
//!   `log_all_failures`.
//!
//! Deliberately not done: SMTP alerts, notify FIFOs, SNMP traps, virtual
//! server groups, and keepalived's `rs_init_notifies` (no notify at
//! start-up, keepalived's default).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::checker::{Checker, CheckerParams, Transition};
use super::http::{Pattern, UrlCheck};
use super::{HealthEvent, HealthView, PoolView, ServerHealth};
use crate::config::argv;
use crate::config::{CheckKind, Connect, HealthCheck, HttpProtocol, UdpCheck, VirtualServer};
use crate::service::{FwdMethod, ServiceKey};
use crate::time::Timestamp;

/// Where and how a network probe connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub dst: SocketAddr,
    /// Source address (`bindto`).
    pub bind: Option<IpAddr>,
    /// Source port (`bind_port`).
    pub bind_port: Option<u16>,
    /// Device (`bind_if`, SO_BINDTODEVICE).
    pub bind_if: Option<String>,
    /// Firewall mark (`fwmark`, SO_MARK).
    pub fwmark: Option<u32>,
    /// Bound on the connection and on each read and write.
    pub timeout: Duration,
}

/// What one probe does; built once per checker, shared with the prober.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeSpec {
    /// TCP_CHECK: a connection is opened within the timeout, then closed.
    Tcp(Conn),
    /// HTTP_GET / SSL_GET: every url in order, each on its own connection.
    Http {
        conn: Conn,
        /// SSL_GET's TLS options; `None` for HTTP_GET.
        tls: Option<TlsSpec>,
        /// The checker's Host (a url's own takes precedence).
        virtualhost: Option<String>,
        protocol: HttpProtocol,
        urls: Vec<UrlCheck>,
    },
    /// DNS_CHECK: one query over UDP.
    Dns {
        conn: Conn,
        qtype: u16,
        name: String,
    },
    /// UDP_CHECK: one datagram, then an ICMP error or a reply.
    Udp { conn: Conn, check: UdpCheck },
    /// PING_CHECK: one ICMP / ICMPv6 echo.
    Ping(Conn),
    /// SMTP_CHECK: banner, HELO, QUIT.
    Smtp { conn: Conn, helo_name: String },
    /// MISC_CHECK: runs `argv` (no shell), killed after `timeout`.
    Misc {
        argv: Vec<String>,
        timeout: Duration,
        /// keepalived's `user USER [GROUP]` (names, resolved by the runner);
        /// `None`: the global script user.
        user: Option<(String, Option<String>)>,
    },
}

/// SSL_GET's TLS options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSpec {
    /// Send SNI (`enable_sni`).
    pub enable_sni: bool,
    /// `sni_name`; without it the url's, then the checker's virtualhost.
    pub sni_name: Option<String>,
    /// Per url (in order): end the connection with close_notify
    /// (`tls_compliant` of the checker or of the url).
    pub close_notify: Vec<bool>,
}

/// The result of one probe.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// TCP/HTTP: the check passed.
    Success,
    /// Any failure: refused, timed out, wrong answer, script killed by a
    /// signal or by its timeout.
    Failure,
    /// MISC_CHECK: the script exited with this status.
    Exited(i32),
}

/// What the shell must do after an engine call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run this command (argument vector, no shell) and do not wait for it.
    Notify(Vec<String>),
    /// Tell the control loop.
    Event(HealthEvent),
}

/// Index of a checker in the engine (valid until the next reload).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckerId(pub usize);

struct Slot {
    pool: usize,
    rs: usize,
    config: HealthCheck,
    probe: Arc<ProbeSpec>,
    dynamic: bool,
    checker: Checker,
    in_flight: bool,
}

struct Rs {
    addr: SocketAddr,
    /// The configured weight.
    iweight: i32,
    inhibit: bool,
    notify_up: Option<Vec<String>>,
    notify_down: Option<Vec<String>>,
    alive: bool,
    /// Checkers currently down.
    failed: u32,
    /// misc_dynamic's offset from the configured weight.
    cur_weight: i64,
    /// misc_dynamic's last exit status.
    last_exit: Option<i32>,
}

impl Rs {
    fn effective(&self) -> i64 {
        (self.iweight as i64 + self.cur_weight).max(0)
    }

    fn health(&self) -> ServerHealth {
        ServerHealth {
            alive: self.alive,
            inhibit: self.inhibit,
            weight: (self.cur_weight != 0).then(|| self.effective().min(i32::MAX as i64) as i32),
        }
    }
}

struct Pool {
    key: ServiceKey,
    /// The sorry server's forwarding method.
    fwd: FwdMethod,
    sorry: Option<SocketAddr>,
    sorry_inhibit: bool,
    quorum: u32,
    hysteresis: u32,
    quorum_up_cmd: Option<Vec<String>>,
    quorum_down_cmd: Option<Vec<String>>,
    quorum_up: bool,
    sorry_active: bool,
    omega: bool,
    /// ha_suspend: the address whose presence enables the checkers.
    suspend_on: Option<IpAddr>,
    /// The checkers run (always true without ha_suspend).
    enabled: bool,
    rs: Vec<Rs>,
}

impl Pool {
    fn weigh_live(&self) -> i64 {
        self.rs.iter().filter(|r| r.alive).map(Rs::effective).sum()
    }

    /// keepalived's update_quorum_state.
    fn update_quorum(&mut self, init: bool, acts: &mut Vec<Action>) {
        let sum = self.weigh_live();
        let (q, h) = (self.quorum as i64, self.hysteresis as i64);
        let threshold = if self.quorum_up { q - h } else { q + h };
        if !self.quorum_up && sum >= threshold {
            self.quorum_up = true;
            self.sorry_active = false;
            if let Some(c) = &self.quorum_up_cmd {
                acts.push(Action::Notify(c.clone()));
            }
        } else if (self.quorum_up && (sum == 0 || sum < threshold))
            || (init && !self.quorum_up && self.sorry.is_some() && !self.sorry_active)
        {
            self.quorum_up = false;
            self.sorry_active = self.sorry.is_some();
            if let Some(c) = &self.quorum_down_cmd {
                acts.push(Action::Notify(c.clone()));
            }
        }
    }

    fn notify(&self, rs: usize, acts: &mut Vec<Action>) {
        let r = &self.rs[rs];
        let cmd = if r.alive {
            &r.notify_up
        } else {
            &r.notify_down
        };
        if let Some(c) = cmd {
            acts.push(Action::Notify(c.clone()));
        }
    }

    /// keepalived's perform_svr_state.
    fn set_alive(&mut self, rs: usize, alive: bool, acts: &mut Vec<Action>) {
        if self.rs[rs].alive == alive {
            return;
        }
        self.rs[rs].alive = alive;
        self.notify(rs, acts);
        self.update_quorum(false, acts);
    }

    fn view(&self) -> PoolView {
        PoolView {
            fwd: self.fwd,
            sorry_server: self.sorry,
            sorry_inhibit: self.sorry_inhibit,
            sorry_active: self.sorry_active,
            quorum_up: self.quorum_up,
            servers: self.rs.iter().map(|r| (r.addr, r.health())).collect(),
        }
    }
}

/// The engine; see the module documentation.
pub struct Engine {
    pools: Vec<Pool>,
    slots: Vec<Slot>,
    rng: SmallRng,
    warnings: Vec<String>,
}

/// A command line from lb.toml as an argument vector; a line that cannot be
/// split is reported and treated as absent.
fn command(line: &Option<String>, what: &str, warnings: &mut Vec<String>) -> Option<Vec<String>> {
    let line = line.as_ref()?;
    match argv::split(line) {
        Ok(v) => Some(v),
        Err(e) => {
            warnings.push(format!("{what} `{line}`: {e}; ignored"));
            None
        }
    }
}

/// The timing and retry rules of `check`'s checker.
pub(super) fn params(check: &HealthCheck) -> CheckerParams {
    // HTTP_GET and SSL_GET wait the longer of their two delays while down
    // (keepalived's http epilog); the others their delay_loop.
    let down = match check.kind {
        CheckKind::Http(_) | CheckKind::Ssl(_) => check.delay_before_retry.max(check.delay_loop),
        _ => check.delay_loop,
    };
    CheckerParams {
        delay_loop: check.delay_loop,
        delay_before_retry: check.delay_before_retry,
        retry: check.retry,
        down_interval: down,
        alpha: check.alpha,
        warmup: check.warmup,
        confirm: match &check.kind {
            CheckKind::Http(h) | CheckKind::Ssl(h) if !h.fast_recovery => h.urls.len() as u32,
            _ => 0,
        },
    }
}

fn conn(c: &Connect) -> Conn {
    Conn {
        dst: SocketAddr::new(c.connect_ip, c.connect_port),
        bind: c.bindto,
        bind_port: c.bind_port,
        bind_if: c.bind_if.clone(),
        fwmark: c.fwmark,
        timeout: c.connect_timeout,
    }
}

/// Why a checker cannot be built (configuration `check` lets through only
/// what it cannot see: a script line is split here again).
#[derive(Debug)]
enum BuildError {
    Argv(argv::ArgvError),
    Regex(regex::Error),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Argv(e) => write!(f, "misc_path: {e}"),
            BuildError::Regex(e) => write!(f, "regex: {e}"),
        }
    }
}

fn probe(check: &HealthCheck) -> Result<ProbeSpec, BuildError> {
    let http =
        |h: &crate::config::HttpGet, tls: Option<TlsSpec>| -> Result<ProbeSpec, BuildError> {
            let mut urls = Vec::with_capacity(h.urls.len());
            for u in &h.urls {
                urls.push(UrlCheck {
                    path: u.path.clone(),
                    status_code: u.status_code.clone(),
                    digest: u.digest,
                    virtualhost: u.virtualhost.clone(),
                    regex: match &u.regex {
                        None => None,
                        Some(r) => Some(Pattern(
                            regex::bytes::Regex::new(r).map_err(BuildError::Regex)?,
                        )),
                    },
                    regex_no_match: u.regex_no_match,
                });
            }
            Ok(ProbeSpec::Http {
                conn: conn(&h.connect),
                tls,
                virtualhost: h.virtualhost.clone(),
                protocol: h.http_protocol,
                urls,
            })
        };
    Ok(match &check.kind {
        CheckKind::Tcp(c) => ProbeSpec::Tcp(conn(c)),
        CheckKind::Http(h) => http(h, None)?,
        CheckKind::Ssl(h) => http(
            h,
            Some(TlsSpec {
                enable_sni: h.enable_sni,
                sni_name: h.sni_name.clone(),
                close_notify: h
                    .urls
                    .iter()
                    .map(|u| h.tls_compliant || u.tls_compliant)
                    .collect(),
            }),
        )?,
        CheckKind::Dns(d) => ProbeSpec::Dns {
            conn: conn(&d.connect),
            qtype: d.qtype,
            name: d.name.clone(),
        },
        CheckKind::Udp(u) => ProbeSpec::Udp {
            conn: conn(&u.connect),
            check: u.clone(),
        },
        CheckKind::Ping(c) => ProbeSpec::Ping(conn(c)),
        CheckKind::Smtp(m) => ProbeSpec::Smtp {
            conn: conn(&m.connect),
            helo_name: m.helo_name.clone(),
        },
        CheckKind::Misc(m) => ProbeSpec::Misc {
            argv: argv::split(&m.misc_path).map_err(BuildError::Argv)?,
            timeout: m.misc_timeout.unwrap_or(check.delay_loop),
            user: m.user.clone().map(|u| (u, m.group.clone())),
        },
    })
}

/// keepalived's name of a checker kind.
fn kind_name(k: &CheckKind) -> &'static str {
    match k {
        CheckKind::Tcp(_) => "TCP_CHECK",
        CheckKind::Http(_) => "HTTP_GET",
        CheckKind::Ssl(_) => "SSL_GET",
        CheckKind::Dns(_) => "DNS_CHECK",
        CheckKind::Udp(_) => "UDP_CHECK",
        CheckKind::Ping(_) => "PING_CHECK",
        CheckKind::Smtp(_) => "SMTP_CHECK",
        CheckKind::Misc(_) => "MISC_CHECK",
    }
}

/// The same checker across a reload: same kind and options, same retry
/// rules (keepalived compares the checker's own options, not delay_loop).
fn same_check(a: &HealthCheck, b: &HealthCheck) -> bool {
    a.kind == b.kind && a.retry == b.retry && a.delay_before_retry == b.delay_before_retry
}

impl Engine {
    /// The engine for `vss` started at `now`; `seed` drives the warmup
    /// draws. Returns the notifies of start-up (quorum_up / quorum_down).
    pub fn new(vss: &[VirtualServer], now: Timestamp, seed: u64) -> (Engine, Vec<Action>) {
        let mut e = Engine {
            pools: Vec::new(),
            slots: Vec::new(),
            rng: SmallRng::seed_from_u64(seed),
            warnings: Vec::new(),
        };
        e.build(vss, now);
        let mut acts = Vec::new();
        for p in e.pools.iter_mut() {
            for r in p.rs.iter_mut() {
                r.alive = r.failed == 0;
            }
            p.update_quorum(true, &mut acts);
        }
        (e, acts)
    }

    /// Configuration problems found while building (command lines that
    /// cannot be split); each is also why a checker or script is skipped.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn build(&mut self, vss: &[VirtualServer], now: Timestamp) {
        for vs in vss {
            let pi = self.pools.len();
            let mut pool = Pool {
                key: vs.spec().key,
                fwd: vs.sorry_server_lvs_method.unwrap_or(vs.lb_kind),
                sorry: vs.sorry_server,
                sorry_inhibit: vs.sorry_server_inhibit,
                quorum: vs.quorum,
                hysteresis: vs.hysteresis,
                quorum_up_cmd: command(&vs.quorum_up, "quorum_up", &mut self.warnings),
                quorum_down_cmd: command(&vs.quorum_down, "quorum_down", &mut self.warnings),
                quorum_up: false,
                sorry_active: false,
                omega: vs.omega,
                suspend_on: vs.ha_suspend.then_some(vs.address.ip()),
                enabled: true,
                rs: Vec::new(),
            };
            for rsc in &vs.real_servers {
                let ri = pool.rs.len();
                let mut failed = 0;
                for check in &rsc.checks {
                    let spec = match probe(check) {
                        Ok(s) => s,
                        Err(e) => {
                            // keepalived drops a checker whose script it
                            // cannot run.
                            self.warnings.push(format!(
                                "real server {} of {}: {e}; checker dropped",
                                rsc.address, pool.key
                            ));
                            continue;
                        }
                    };
                    let draw = self.rng.random::<f64>();
                    let checker = Checker::new(params(check), now, draw);
                    if !checker.is_up() {
                        failed += 1;
                    }
                    self.slots.push(Slot {
                        pool: pi,
                        rs: ri,
                        config: check.clone(),
                        probe: Arc::new(spec),
                        dynamic: matches!(&check.kind, CheckKind::Misc(m) if m.misc_dynamic),
                        checker,
                        in_flight: false,
                    });
                }
                let what = format!("real server {}", rsc.address);
                pool.rs.push(Rs {
                    addr: rsc.address,
                    iweight: rsc.weight,
                    inhibit: rsc.inhibit_on_failure,
                    notify_up: command(
                        &rsc.notify_up,
                        &format!("{what} notify_up"),
                        &mut self.warnings,
                    ),
                    notify_down: command(
                        &rsc.notify_down,
                        &format!("{what} notify_down"),
                        &mut self.warnings,
                    ),
                    alive: false,
                    failed,
                    cur_weight: 0,
                    last_exit: None,
                });
            }
            self.pools.push(pool);
        }
    }

    /// A new configuration: state carries over as described in the module
    /// documentation. Returns the notifies it causes; the whole new state is
    /// [`Engine::view`]. Checker ids change: results of probes started
    /// before must be dropped.
    pub fn reload(&mut self, vss: &[VirtualServer], now: Timestamp) -> Vec<Action> {
        let old_pools = std::mem::take(&mut self.pools);
        let old_slots = std::mem::take(&mut self.slots);
        self.warnings.clear();
        self.build(vss, now);
        let mut acts = Vec::new();
        let old_index: HashMap<ServiceKey, usize> = old_pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key, i))
            .collect();
        let mut kept_pools = vec![false; old_pools.len()];
        for pi in 0..self.pools.len() {
            let Some(&opi) = old_index.get(&self.pools[pi].key) else {
                let p = &mut self.pools[pi];
                for r in p.rs.iter_mut() {
                    r.alive = r.failed == 0;
                }
                p.update_quorum(true, &mut acts);
                continue;
            };
            kept_pools[opi] = true;
            let op = &old_pools[opi];
            let p = &mut self.pools[pi];
            p.quorum_up = op.quorum_up;
            p.sorry_active = op.sorry_active && op.sorry == p.sorry;
            let mut kept_rs = vec![false; op.rs.len()];
            for ri in 0..p.rs.len() {
                let Some(ori) = op.rs.iter().position(|o| o.addr == p.rs[ri].addr) else {
                    p.rs[ri].alive = p.rs[ri].failed == 0;
                    continue;
                };
                kept_rs[ori] = true;
                let or = &op.rs[ori];
                p.rs[ri].alive = or.alive;
                p.rs[ri].last_exit = or.last_exit;
                // The dynamic weight is the script's, whatever the new
                // configured weight (keepalived's migrate_misc_check).
                p.rs[ri].cur_weight = match or.last_exit {
                    Some(s) if (2..=255).contains(&s) && or.cur_weight != 0 => {
                        (s - 2) as i64 - p.rs[ri].iweight as i64
                    }
                    _ => 0,
                };
                let mine: Vec<usize> = (0..self.slots.len())
                    .filter(|&s| self.slots[s].pool == pi && self.slots[s].rs == ri)
                    .collect();
                for &s in &mine {
                    // Same check = same checker keys (keepalived compares
                    // the checker's own options, not delay_loop).
                    let old = old_slots.iter().find(|o| {
                        o.pool == opi && o.rs == ori && same_check(&o.config, &self.slots[s].config)
                    });
                    if let Some(o) = old {
                        self.slots[s].checker.migrate_from(&o.checker, now);
                    }
                }
                // A checker that has not run yet on a server that is known
                // down counts as down until it has run (alpha) and needs
                // only one failure.
                let failed_now = mine
                    .iter()
                    .filter(|&&s| !self.slots[s].checker.is_up())
                    .count() as u32;
                p.rs[ri].failed = failed_now;
                if failed_now == 0 && !p.rs[ri].alive {
                    p.set_alive(ri, true, &mut acts);
                } else if failed_now > 0 && p.rs[ri].alive {
                    // keepalived takes it out without a notify.
                    p.rs[ri].alive = false;
                }
            }
            for (ori, kept) in kept_rs.iter().enumerate() {
                if !kept
                    && op.rs[ori].alive
                    && let Some(c) = &op.rs[ori].notify_down
                {
                    acts.push(Action::Notify(c.clone()));
                }
            }
            p.update_quorum(true, &mut acts);
        }
        for (opi, kept) in kept_pools.iter().enumerate() {
            if *kept {
                continue;
            }
            let op = &old_pools[opi];
            for r in op.rs.iter().filter(|r| r.alive) {
                if let Some(c) = &r.notify_down {
                    acts.push(Action::Notify(c.clone()));
                }
            }
            if op.quorum_up
                && let Some(c) = &op.quorum_down_cmd
            {
                acts.push(Action::Notify(c.clone()));
            }
        }
        acts
    }

    /// The notifies of a shutdown (keepalived's clear_services while
    /// stopping): for every virtual server with `omega`, the notify_down of
    /// each alive real server, then quorum_down (whatever the quorum's
    /// state). Without omega, nothing. Every real server is down afterwards.
    pub fn shutdown(&mut self) -> Vec<Action> {
        let mut acts = Vec::new();
        for p in self.pools.iter_mut() {
            for r in p.rs.iter_mut() {
                let was = std::mem::replace(&mut r.alive, false);
                if was
                    && p.omega
                    && let Some(c) = &r.notify_down
                {
                    acts.push(Action::Notify(c.clone()));
                }
            }
            p.quorum_up = false;
            if p.omega
                && let Some(c) = &p.quorum_down_cmd
            {
                acts.push(Action::Notify(c.clone()));
            }
        }
        acts
    }

    /// Everything the control loop needs to compute the services.
    pub fn view(&self) -> HealthView {
        HealthView {
            pools: self.pools.iter().map(|p| (p.key, p.view())).collect(),
        }
    }

    /// Number of checkers.
    pub fn checkers(&self) -> usize {
        self.slots.len()
    }

    /// The addresses ha_suspend watches (each virtual server's with it).
    pub fn suspend_addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<_> = self.pools.iter().filter_map(|p| p.suspend_on).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Whether `addr` is configured on the director: the checkers of the
    /// virtual servers with ha_suspend on it run only while it is
    /// (keepalived's update_checker_activity). Their state is kept while
    /// suspended.
    pub fn set_address_present(&mut self, addr: IpAddr, present: bool) {
        for p in self.pools.iter_mut().filter(|p| p.suspend_on == Some(addr)) {
            if p.enabled != present {
                log::info!(
                    "{} health checkers of {}",
                    if present { "activating" } else { "suspending" },
                    p.key
                );
                p.enabled = present;
            }
        }
    }

    /// The checkers due at `now` that have no probe running. A suspended
    /// checker that falls due is moved on by its delay_loop without a
    /// probe, as keepalived's disabled checkers are.
    pub fn due(&mut self, now: Timestamp) -> Vec<CheckerId> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.in_flight || s.checker.next_due() > now {
                continue;
            }
            if self.pools[s.pool].enabled {
                out.push(CheckerId(i));
            } else {
                s.checker.skip(now);
            }
        }
        out
    }

    /// The earliest time a checker without a running probe is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.slots
            .iter()
            .filter(|s| !s.in_flight)
            .map(|s| s.checker.next_due())
            .min()
    }

    /// Marks `id`'s probe as running and returns what to probe.
    pub fn begin(&mut self, id: CheckerId) -> Option<Arc<ProbeSpec>> {
        let s = self.slots.get_mut(id.0)?;
        s.in_flight = true;
        Some(Arc::clone(&s.probe))
    }

    /// The checker `id` itself (tests, diagnostics).
    pub fn checker(&self, id: CheckerId) -> Option<&Checker> {
        self.slots.get(id.0).map(|s| &s.checker)
    }

    /// Takes the result of `id`'s probe, finished at `now`.
    pub fn on_result(
        &mut self,
        id: CheckerId,
        now: Timestamp,
        outcome: ProbeOutcome,
    ) -> Vec<Action> {
        let mut acts = Vec::new();
        let Some(slot) = self.slots.get_mut(id.0) else {
            return acts;
        };
        slot.in_flight = false;
        let (pi, ri, dynamic) = (slot.pool, slot.rs, slot.dynamic);
        let before = self.pools[pi].view();
        let (ok, status) = match outcome {
            ProbeOutcome::Success => (true, None),
            ProbeOutcome::Failure => (false, None),
            ProbeOutcome::Exited(0) => (true, Some(0)),
            ProbeOutcome::Exited(s) if dynamic && (2..=255).contains(&s) => (true, Some(s)),
            ProbeOutcome::Exited(s) => (false, Some(s)),
        };
        let pool = &mut self.pools[pi];
        if ok && dynamic && status != pool.rs[ri].last_exit {
            // keepalived's update_svr_wgt: the new weight holds whether or
            // not the server is up, and may move the quorum.
            let r = &mut pool.rs[ri];
            let old = r.effective();
            r.cur_weight = match status {
                Some(s) if s >= 2 => (s - 2) as i64 - r.iweight as i64,
                _ => 0,
            };
            r.last_exit = status;
            if r.effective() != old {
                pool.update_quorum(false, &mut acts);
            }
        }
        let slot = &self.slots[id.0];
        if !ok && (slot.checker.is_up() || slot.config.log_all_failures) {
            // keepalived logs a failure of an up checker, and every one
            // with log_all_failures (the probe's reason is at debug level).
            log::info!(
                "{} check of real server {} of {} failed",
                kind_name(&slot.config.kind),
                self.pools[pi].rs[ri].addr,
                self.pools[pi].key
            );
        }
        let tr = self.slots[id.0].checker.on_result(now, ok);
        let pool = &mut self.pools[pi];
        if !ok && matches!(tr, Transition::Down | Transition::StaysDown) && dynamic {
            pool.rs[ri].cur_weight = 0;
            pool.rs[ri].last_exit = status;
        }
        match tr {
            Transition::None => {}
            Transition::Up => {
                if pool.rs[ri].failed <= 1 {
                    pool.set_alive(ri, true, &mut acts);
                }
                pool.rs[ri].failed = pool.rs[ri].failed.saturating_sub(1);
            }
            Transition::Down => {
                if pool.rs[ri].failed == 0 {
                    pool.set_alive(ri, false, &mut acts);
                }
                pool.rs[ri].failed += 1;
            }
            Transition::StaysDown => pool.notify(ri, &mut acts),
        }
        let after = pool.view();
        let key = pool.key;
        for (addr, h) in &after.servers {
            if before.servers.get(addr) != Some(h) {
                acts.push(Action::Event(HealthEvent::Server {
                    service: key,
                    server: *addr,
                    health: *h,
                }));
            }
        }
        if (before.sorry_active, before.quorum_up) != (after.sorry_active, after.quorum_up) {
            acts.push(Action::Event(HealthEvent::Pool {
                service: key,
                sorry_active: after.sorry_active,
                quorum_up: after.quorum_up,
            }));
        }
        acts
    }
}
