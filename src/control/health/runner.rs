//! The health thread: drives the [`Engine`] with the real clock, runs due
//! probes on a pool of probe threads (each probe blocks at most its own
//! timeouts, so slow servers never delay the others' timers), runs the
//! notify scripts, and sends [`HealthEvent`]s to the control loop.
//!
//! Invariants: the engine lives on the health thread only; a result that
//! comes back after a reload (old checker ids) is dropped; every script
//! started is reaped; [`Health::stop`] joins every thread it started (a probe
//! still running is waited for, bounded by its timeouts).

use std::collections::HashMap;
use std::process::Child;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam::channel::{self, Receiver, Sender};

use super::engine::{Action, CheckerId, Engine, ProbeOutcome, ProbeSpec};
use super::{HealthEvent, HealthView, probe};
use crate::config::VirtualServer;
use crate::control::script::{self, RunAs};
use crate::time::Timestamp;

/// Upper bound on probe threads (the pool grows with the checkers).
pub const MAX_PROBE_THREADS: usize = 32;
/// The health thread wakes at least this often (reaping scripts).
const MAX_SLEEP: Duration = Duration::from_millis(200);
/// How long omega's shutdown notifies may run before they are killed.
const SHUTDOWN_NOTIFY_WAIT: Duration = Duration::from_secs(1);
/// How long [`Health::reload`] waits for the new state.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

enum Ctl {
    Reload(Vec<VirtualServer>, Sender<HealthView>),
    Stop,
}

struct Job {
    generation: u64,
    id: CheckerId,
    spec: Arc<ProbeSpec>,
    /// Whom a MISC_CHECK script runs as.
    run_as: Option<RunAs>,
}

/// A MISC_CHECK's own `user USER [GROUP]`.
type Account = (String, Option<String>);

/// `vss` without the MISC_CHECKs keepalived's script security check
/// disables (see [`script::security`]; `security` is
/// `enable_script_security`, `run_as` the global script user): keepalived
/// removes such a checker from its real server.
pub fn secure_checkers(
    vss: &[VirtualServer],
    run_as: Option<RunAs>,
    security: bool,
) -> Vec<VirtualServer> {
    let mut out = vss.to_vec();
    for rs in out.iter_mut().flat_map(|v| v.real_servers.iter_mut()) {
        rs.checks.retain(|c| {
            let crate::config::CheckKind::Misc(m) = &c.kind else {
                return true;
            };
            let who = match &m.user {
                // An unknown user is refused by `check` and by start.
                Some(u) => script::run_as(Some(u), m.group.as_deref()).unwrap_or(run_as),
                None => run_as,
            };
            let argv0 = crate::config::argv::split(&m.misc_path)
                .ok()
                .and_then(|a| a.into_iter().next())
                .unwrap_or_default();
            let what = format!("misc script {}", m.misc_path);
            script::security::allowed(&what, &argv0, who, m.user.is_some(), security)
        });
    }
    out
}

/// The uid and gid of every MISC_CHECK `user` in `vss`: keepalived resolves
/// them when it reads the configuration and never runs such a script as
/// another user.
fn misc_accounts(vss: &[VirtualServer]) -> (HashMap<Account, RunAs>, Vec<String>) {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    let users = vss
        .iter()
        .flat_map(|v| &v.real_servers)
        .flat_map(|r| &r.checks)
        .filter_map(|c| match &c.kind {
            crate::config::CheckKind::Misc(m) => m.user.clone().map(|u| (u, m.group.clone())),
            _ => None,
        });
    for a in users {
        if out.contains_key(&a) {
            continue;
        }
        match script::run_as(Some(&a.0), a.1.as_deref()) {
            Ok(Some(r)) => {
                out.insert(a, r);
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("MISC_CHECK user: {e}")),
        }
    }
    (out, errors)
}

struct Done {
    generation: u64,
    id: CheckerId,
    outcome: ProbeOutcome,
}

/// Handle of the running health thread.
pub struct Health {
    ctl: Sender<Ctl>,
    events: Receiver<HealthEvent>,
    thread: Option<JoinHandle<()>>,
}

/// The monotonic clock as the engine's [`Timestamp`].
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.0.elapsed().as_nanos().min(u64::MAX as u128) as u64)
    }
}

impl Health {
    /// Starts checking `vss`; MISC_CHECK and notify scripts run as
    /// `run_as` (`None`: as the daemon, root; see [`script`]). Returns the
    /// handle and the state at start (real servers with checkers are up,
    /// or down in alpha mode).
    pub fn start(vss: &[VirtualServer], run_as: Option<RunAs>) -> Result<(Health, HealthView)> {
        let clock = Clock(Instant::now());
        let (accounts, errors) = misc_accounts(vss);
        if let Some(e) = errors.first() {
            anyhow::bail!("{e}");
        }
        // The warmup draws need no more than an OS-seeded value.
        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0u64)
        };
        let (engine, acts) = Engine::new(vss, clock.now(), seed);
        for w in engine.warnings() {
            log::warn!("health checks: {w}");
        }
        let view = engine.view();
        let (ctl_tx, ctl_rx) = channel::unbounded();
        let (ev_tx, ev_rx) = channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("lvsfwd-health".into())
            .spawn(move || {
                let mut t = Thread::new(engine, clock, ev_tx, run_as);
                t.accounts = accounts;
                t.act(acts);
                t.run(ctl_rx);
            })
            .context("starting the health-check thread")?;
        Ok((
            Health {
                ctl: ctl_tx,
                events: ev_rx,
                thread: Some(thread),
            },
            view,
        ))
    }

    /// Events since the last call (never blocks).
    pub fn events(&self) -> &Receiver<HealthEvent> {
        &self.events
    }

    /// Restarts the checkers from a new configuration, keeping the state of
    /// what stays; returns the new state (`None` if the thread is gone).
    pub fn reload(&self, vss: &[VirtualServer]) -> Option<HealthView> {
        let (tx, rx) = channel::bounded(1);
        self.ctl.send(Ctl::Reload(vss.to_vec(), tx)).ok()?;
        rx.recv_timeout(RELOAD_TIMEOUT).ok()
    }

    /// Stops the thread and its probe threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.ctl.send(Ctl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Thread {
    engine: Engine,
    clock: Clock,
    events: Sender<HealthEvent>,
    generation: u64,
    jobs: Option<Sender<Job>>,
    job_rx: Receiver<Job>,
    done_tx: Sender<Done>,
    done: Receiver<Done>,
    probers: Vec<JoinHandle<()>>,
    scripts: Vec<Child>,
    run_as: Option<RunAs>,
    /// MISC_CHECK users, resolved at start and at each reload.
    accounts: HashMap<Account, RunAs>,
}

impl Thread {
    fn new(
        engine: Engine,
        clock: Clock,
        events: Sender<HealthEvent>,
        run_as: Option<RunAs>,
    ) -> Thread {
        let (jobs, job_rx) = channel::unbounded();
        let (done_tx, done) = channel::unbounded();
        let mut t = Thread {
            engine,
            clock,
            events,
            generation: 0,
            jobs: Some(jobs),
            job_rx,
            done_tx,
            done,
            probers: Vec::new(),
            scripts: Vec::new(),
            run_as,
            accounts: HashMap::new(),
        };
        t.grow_pool();
        t
    }

    /// One probe thread per checker, up to [`MAX_PROBE_THREADS`].
    fn grow_pool(&mut self) {
        let want = self.engine.checkers().clamp(1, MAX_PROBE_THREADS);
        while self.probers.len() < want {
            let rx = self.job_rx.clone();
            let tx = self.done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("lvsfwd-probe".into())
                .spawn(move || {
                    for job in rx.iter() {
                        let outcome = probe::run_as(&job.spec, job.run_as);
                        let done = Done {
                            generation: job.generation,
                            id: job.id,
                            outcome,
                        };
                        if tx.send(done).is_err() {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(h) => self.probers.push(h),
                Err(e) => {
                    log::error!("starting a probe thread: {e}");
                    break;
                }
            }
        }
    }

    fn act(&mut self, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Event(ev) => {
                    let _ = self.events.send(ev);
                }
                Action::Notify(argv) => self.notify(&argv),
            }
        }
    }

    fn notify(&mut self, argv: &[String]) {
        let Some(mut cmd) = script::command(argv, self.run_as) else {
            return;
        };
        match cmd.spawn() {
            Ok(c) => self.scripts.push(c),
            Err(e) => log::warn!("notify script {}: {e}", argv[0]),
        }
    }

    /// omega's notifies at shutdown: run, given [`SHUTDOWN_NOTIFY_WAIT`]
    /// together, and killed past it (keepalived gives each 1 s).
    fn shutdown_notifies(&mut self, acts: Vec<Action>) {
        let mut children = Vec::new();
        for a in acts {
            if let Action::Notify(argv) = a
                && let Some(mut cmd) = script::command(&argv, self.run_as)
            {
                match cmd.spawn() {
                    Ok(c) => children.push(c),
                    Err(e) => log::warn!("notify script {}: {e}", argv[0]),
                }
            }
        }
        let deadline = Instant::now() + SHUTDOWN_NOTIFY_WAIT;
        while Instant::now() < deadline
            && children
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for mut c in children {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    fn reap(&mut self) {
        self.scripts
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }

    /// ha_suspend: which watched addresses the director has now.
    fn refresh_addresses(&mut self) {
        let watched = self.engine.suspend_addresses();
        if watched.is_empty() {
            return;
        }
        let local: Vec<std::net::IpAddr> = match nix::ifaddrs::getifaddrs() {
            Ok(it) => it
                .filter_map(|i| {
                    let a = i.address?;
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(std::net::IpAddr::V4(v4.ip()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
                    }
                })
                .collect(),
            Err(e) => {
                log::warn!("ha_suspend: cannot list the local addresses: {e}");
                return;
            }
        };
        for a in watched {
            self.engine.set_address_present(a, local.contains(&a));
        }
    }

    fn dispatch(&mut self) {
        self.refresh_addresses();
        let now = self.clock.now();
        for id in self.engine.due(now) {
            if let (Some(spec), Some(jobs)) = (self.engine.begin(id), &self.jobs) {
                let run_as = match &*spec {
                    ProbeSpec::Misc {
                        user: Some(a),
                        argv,
                        ..
                    } => match self.accounts.get(a) {
                        Some(r) => Some(*r),
                        None => {
                            // Its user is gone since the configuration
                            // was read: never run it as someone else.
                            log::warn!(
                                "MISC_CHECK {}: user {} unknown, not run",
                                argv.join(" "),
                                a.0
                            );
                            let _ = self.done_tx.send(Done {
                                generation: self.generation,
                                id,
                                outcome: ProbeOutcome::Failure,
                            });
                            continue;
                        }
                    },
                    _ => self.run_as,
                };
                let _ = jobs.send(Job {
                    generation: self.generation,
                    id,
                    spec,
                    run_as,
                });
            }
        }
    }

    fn run(&mut self, ctl: Receiver<Ctl>) {
        loop {
            self.dispatch();
            self.reap();
            let now = self.clock.now();
            let wait = self
                .engine
                .next_due()
                .map_or(MAX_SLEEP, |t| t.since(now).min(MAX_SLEEP));
            channel::select! {
                recv(self.done) -> d => {
                    let Ok(d) = d else { break };
                    if d.generation == self.generation {
                        let acts = self.engine.on_result(d.id, self.clock.now(), d.outcome);
                        self.act(acts);
                    }
                }
                recv(ctl) -> c => match c {
                    Ok(Ctl::Reload(vss, reply)) => {
                        self.generation += 1;
                        let (accounts, errors) = misc_accounts(&vss);
                        for e in errors {
                            log::error!("health checks: {e}; its checkers fail");
                        }
                        self.accounts = accounts;
                        let acts = self.engine.reload(&vss, self.clock.now());
                        for w in self.engine.warnings() {
                            log::warn!("health checks: {w}");
                        }
                        self.grow_pool();
                        let view = self.engine.view();
                        let _ = reply.send(view);
                        self.act(acts);
                    }
                    Ok(Ctl::Stop) | Err(_) => {
                        let acts = self.engine.shutdown();
                        self.shutdown_notifies(acts);
                        break;
                    }
                },
                default(wait) => {}
            }
        }
        // Closing the job channel ends the probe threads once their current
        // probe is done.
        self.jobs = None;
        let (_, dummy) = channel::unbounded::<Job>();
        self.job_rx = dummy;
        for h in self.probers.drain(..) {
            let _ = h.join();
        }
        for mut c in self.scripts.drain(..) {
            // Notify scripts are not ours to kill; only reap those done.
            let _ = c.try_wait();
        }
    }
}
