//! `lvsfwd --config lb.toml` / `lvsfwd --interface IF`: the load balancer in
//! the foreground.
//!
//! Start-up order: read and validate the configuration (nothing is touched
//! when it is wrong), learn the NIC from the kernel, attach lvsfwd's XDP
//! program (replacing a stale one), open one AF_XDP socket and one pinned
//! worker per RX queue, then print `lvsfwd: ready ...` on stderr. The main
//! thread then becomes the control thread: it refreshes next hops from the
//! kernel's tables, publishes them to the workers as snapshots, and handles
//! signals. SIGTERM / SIGINT stop cleanly: workers joined, XDP program
//! detached, exit 0.
//!
//! No half-alive daemon: a worker that dies (a panic, or its socket failed
//! for good) leaves its queue unserved, so the control loop checks the
//! engine on every turn (every 20 ms at most) and stops the same clean way,
//! then fails with `worker N (queue Q) died: CAUSE` (exit 1; systemd's
//! `Restart=` brings a new one up, nothing restarts in process).
//!
//! VRRP (`control::vrrp_thread`) starts after the engine and stops before
//! it (a master sends priority 0 and removes its VIPs). The XDP program
//! redirects a virtual service only while this director is master of the
//! VRRP instance holding its address ([`VipGate`]); services on other
//! addresses are always served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::admin::apply::AdminState;
use crate::admin::proto::{self, ListingSource};
use crate::config::{self, Config};
use crate::conn::ConnSysctls;
use crate::control::admin_socket::AdminSocket;
use crate::control::estimator::{self, Estimator};
use crate::control::health::{self, Health, HealthView};
use crate::control::neigh::{self, NextHops, Nics};
use crate::control::netlink::Netlink;
use crate::control::sync::SyncDaemon;
use crate::control::vrrp_thread::{self, VipGate, VrrpEvent, VrrpThread};
use crate::dataplane::Snapshot;
use crate::dataplane::query::{self, Query};
use crate::dataplane::{Dataplane, DataplaneConfig, HashSeeds};
use crate::service::ServiceKey;
use crate::service::ServiceSpec;
use crate::view::{ConnView, LiveService};
use crate::wire::MacAddr;
use crate::xsk::engine::{self, Engine, EngineConfig};
use crate::xsk::kport;
use crate::xsk::prog::{Filter, XdpProgram};
use crate::xsk::shared::Shared;

/// Where the services come from.
pub enum Source {
    /// `--config lb.toml`.
    Config(PathBuf),
    /// `--interface IF [--interface IF2 ...]`: an empty table (services
    /// come from lvsadm).
    Interfaces(Vec<String>),
}

/// How often next hops are re-read from the kernel, and how often while one
/// is still unresolved.
const NEIGH_REFRESH: Duration = Duration::from_secs(1);
/// How long a service-table change waits for the workers to apply it before
/// the XDP filter follows anyway (an idle worker wakes within 50 ms).
const APPLY_TIMEOUT: Duration = Duration::from_millis(500);
const NEIGH_RETRY: Duration = Duration::from_millis(100);
/// How long start-up waits for next hops before serving anyway.
const NEIGH_STARTUP_WAIT: Duration = Duration::from_secs(3);

/// Runs the daemon until SIGTERM / SIGINT.
pub fn run(source: Source) -> Result<()> {
    let cfg = match &source {
        Source::Config(p) => config::load_file(p).map_err(|e| anyhow::anyhow!("{e}"))?,
        Source::Interfaces(ifnames) => {
            // No lb.toml to name the admin socket: lvsadm's own lookup
            // ($LVSFWD_SOCKET, else the default) decides, so both agree.
            let mut c = Config::with_interfaces(ifnames);
            c.global.admin_socket = proto::socket_path(None);
            c
        }
    };
    let ifnames = cfg.global.interfaces.clone();
    let Some(ifname) = ifnames.first().cloned() else {
        bail!("no data-plane interface: set [global] interface in lb.toml");
    };
    let configured = cfg.service_specs();
    // Health checks: real servers start as keepalived starts them (up, or
    // down in alpha mode); what the data plane gets is the configuration
    // as health checking adjusts it.
    // Scripts (MISC_CHECK, notify) run as keepalived's script_user; a user
    // that does not exist stops the start-up rather than running as root.
    let run_as = crate::control::script::run_as(
        cfg.global.script_user.as_deref(),
        cfg.global.script_group.as_deref(),
    )?;
    match run_as {
        Some(r) => log::info!("scripts run as uid {} gid {}", r.uid, r.gid),
        None => log::warn!(
            "no script_user and no {} account: scripts run as root",
            crate::control::script::DEFAULT_SCRIPT_USER
        ),
    }
    let (health, health_view) = Health::start(&cfg.virtual_servers, run_as)?;
    let specs = health::effective_services(&configured, &health_view);

    let mut nl = Netlink::open()?;
    let mut links = Vec::with_capacity(ifnames.len());
    let mut own_addrs = Vec::new();
    for n in &ifnames {
        let link = nl
            .link(n)
            .with_context(|| format!("data-plane interface {n}"))?;
        own_addrs.extend(nl.addresses(link.ifindex)?);
        links.push(link);
    }
    let nics = Nics(links.iter().map(|l| (l.ifindex, l.name.clone())).collect());
    let queues = served_queues(&ifnames, cfg.global.queues.as_deref())?;
    // Every real server must be reachable through a NIC lvsfwd serves (or
    // be the director itself): refused here, naming the NIC, rather than
    // dropped at every packet.
    neigh::check_reachable(
        &mut nl,
        &nics,
        &health::with_sorry_servers(&configured, &health_view),
    )?;

    // One draw for the whole engine: every worker's connection index and
    // steering map is keyed with it (workers must agree on who owns a
    // flow). Drawn before the XDP program is attached, so a failure leaves
    // nothing behind; never a constant here, see `config::os_hash_seeds`.
    let seeds = config::os_hash_seeds().context("drawing the hash seeds from the OS")?;

    // Signals first, so that a stop during start-up is not lost.
    let mut signals =
        Signals::new([SIGTERM, SIGINT, SIGHUP]).context("installing signal handlers")?;

    let mut prog = Programs::attach(&ifnames, cfg.global.xdp_mode)?;
    // VRRP: no VIP is served before its instance is master.
    let vrrp_gate = VipGate::new(&cfg.vrrp_instances);
    prog.set_filter(&Filter::from_specs(
        &vrrp_thread::active_specs(&specs, &vrrp_gate.inactive()),
        &own_addrs,
    ))?;

    // Learn the real servers' next hops before serving, so that the first
    // packets are not dropped for want of a MAC; bounded, because a real
    // server that is down must not keep the director from starting.
    let next_hops = NextHops::for_specs(
        &health::with_sorry_servers(&configured, &health_view),
        &own_addrs,
    );
    let (mut neighbours, mut unresolved) =
        next_hops.refresh(&mut nl, &nics, &Default::default())?;
    let deadline = Instant::now() + NEIGH_STARTUP_WAIT;
    while unresolved > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        (neighbours, unresolved) = next_hops.refresh(&mut nl, &nics, &neighbours)?;
    }
    if unresolved > 0 {
        log::warn!(
            "{unresolved} real server next hops not resolved yet; retrying in the background"
        );
    }
    let shared = Shared::new(Snapshot {
        generation: 0,
        neighbours: Arc::new(neighbours),
        own_macs: Arc::new(links.iter().map(|l| l.mac).collect()),
        own_addrs: Arc::new(own_addrs.clone()),
        services: Some(Arc::new(specs.clone())),
        timeouts: Some(cfg.timeouts),
        sysctls: Some(cfg.dataplane_config().sysctls),
    });

    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores: Vec<usize> = match &cfg.global.cores {
        Some(c) => c.clone(),
        None => (0..queues.len()).map(|i| i % ncpu).collect(),
    };
    // The tunnels' MTU check uses the smallest MTU of the NICs.
    let mtu = links.iter().map(|l| l.mtu).min().unwrap_or(1500);
    let macs: Vec<MacAddr> = links.iter().map(|l| l.mac).collect();
    let dataplanes = (0..queues.len())
        .map(|_| {
            // The schedulers' randomness (twos) from the OS too, one draw
            // per worker.
            let sched = config::os_seed().context("drawing a seed from the OS")?;
            let mut dp =
                worker_dataplane(&cfg, &specs, &macs, &own_addrs, mtu, queues.len(), seeds);
            dp.reseed_schedulers(sched);
            Ok(dp)
        })
        .collect::<Result<Vec<_>>>()?;
    let ecfg = EngineConfig {
        ifnames: ifnames.clone(),
        queues: queues.clone(),
        cores,
        zero_copy: cfg.global.zero_copy,
        frames_per_queue: engine::DEFAULT_FRAMES_PER_QUEUE,
        batch: engine::DEFAULT_BATCH,
        idle_spin: cfg.global.idle_spin,
        kernel_port: Some(kport::port_name(&ifname)),
    };
    let engine = match Engine::start_with(
        &ecfg,
        &mut |nic, q, fd| prog.register_socket(nic, q, fd),
        shared.clone(),
        dataplanes,
    ) {
        Ok(e) => e,
        Err(e) => {
            let _ = prog.detach();
            return Err(e);
        }
    };
    // The control thread (and the VRRP thread it starts next) wakes every
    // few milliseconds: on a worker's core each wake-up preempts the
    // worker, a stall every frame behind it waits out.
    let worker_cores: Vec<usize> = engine.workers().iter().map(|w| w.core).collect();
    match engine::keep_off_worker_cores(&worker_cores) {
        Ok(c) if !c.is_empty() => log::info!("control plane on cores {c:?}"),
        Ok(_) => log::info!("the workers take every core: the control plane shares them"),
        Err(e) => log::warn!("keeping the control plane off the workers' cores: {e}"),
    }
    let admin = match AdminSocket::bind(&cfg.global.admin_socket) {
        Ok(a) => a,
        Err(e) => {
            engine.stop();
            let _ = prog.detach();
            return Err(e);
        }
    };
    // Connection sync: a backup until its VRRP instance is master.
    let mut sync = SyncDaemon::new(shared.clone());
    if let Err(e) = sync.follow(cfg.global.lvs_sync_daemon.clone()) {
        drop(admin);
        engine.stop();
        let _ = prog.detach();
        return Err(e.context("starting the connection sync daemon"));
    }
    // Fail-back without loss: a director coming (back) into a synced pair
    // first takes the current master's whole table, so that when VRRP
    // makes it master (preemption) its connections are there.
    if cfg.global.lvs_sync_daemon.is_some() {
        let t0 = Instant::now();
        if sync.request_table(crate::control::sync::TABLE_WAIT) {
            log::info!("sync: the master's table arrived in {:?}", t0.elapsed());
        } else {
            log::info!("sync: no table from a master within {:?}", t0.elapsed());
        }
    }
    // ---- VRRP: after the engine, so that a new master is served at once.
    let (vrrp_tx, vrrp_rx) = std::sync::mpsc::channel();
    let vrrp = match VrrpThread::start(&cfg.vrrp_instances, vrrp_tx, run_as) {
        Ok(v) => v,
        Err(e) => {
            drop(admin);
            engine.stop();
            let _ = prog.detach();
            return Err(e);
        }
    };
    // ---- end VRRP
    eprintln!(
        "lvsfwd: ready: {} virtual services on {} ({} queues, {} XDP), admin socket {}",
        specs.len(),
        ifnames.join(", "),
        queues.len(),
        prog.modes(),
        admin.path().display()
    );

    let mut ctl = Control {
        state: AdminState {
            services: configured,
            timeouts: cfg.timeouts,
        },
        health,
        health_view,
        shared: shared.clone(),
        prog: &mut prog,
        engine: &engine,
        own_addrs,
        next_hops,
        nl,
        nics,
        rates: RateTable::default(),
        conn_tab_size: cfg.global.conn_max,
        sysctls: cfg.dataplane_config().sysctls,
        vrrp_gate,
        sync: std::cell::RefCell::new(sync),
    };
    let mut last_refresh = Instant::now();
    let mut last_addrs = Instant::now();
    let mut last_estimate = Instant::now();
    let mut died = None;
    'control: loop {
        if let Some(d) = engine.dead_worker() {
            log::error!("{d}; stopping");
            died = Some(d);
            break 'control;
        }
        for sig in signals.pending() {
            match sig {
                SIGTERM | SIGINT => break 'control,
                SIGHUP => ctl.reload(&source),
                _ => {}
            }
        }
        ctl.follow_health();
        loop {
            match admin.accept() {
                Ok(Some(mut stream)) => ctl.serve_admin(&mut stream),
                Ok(None) => break,
                Err(e) => {
                    log::warn!("admin socket: {e}");
                    break;
                }
            }
        }
        if last_estimate.elapsed() >= Duration::from_secs(estimator::PERIOD_SECS) {
            last_estimate = Instant::now();
            ctl.sample_rates();
        }
        let wait = if unresolved > 0 {
            NEIGH_RETRY
        } else {
            NEIGH_REFRESH
        };
        if last_addrs.elapsed() >= NEIGH_REFRESH {
            last_addrs = Instant::now();
            // The NIC's addresses decide which real servers are the
            // director itself (Local); VRRP and operators change them.
            match nic_addresses(&mut ctl.nl, &ctl.nics) {
                Ok(addrs) if *shared.load().own_addrs != addrs => {
                    log::info!("{}: addresses now {addrs:?}", ctl.nics.names());
                    let mut next = (*shared.load()).clone();
                    next.own_addrs = Arc::new(addrs);
                    shared.publish(next);
                }
                Ok(_) => {}
                Err(e) => log::warn!("reading the NICs' addresses: {e:#}"),
            }
        }
        if !ctl.next_hops.is_empty() && last_refresh.elapsed() >= wait {
            last_refresh = Instant::now();
            let published = shared.load();
            match ctl
                .next_hops
                .refresh(&mut ctl.nl, &ctl.nics, &published.neighbours)
            {
                Ok((map, missing)) => {
                    unresolved = missing;
                    if *published.neighbours != map {
                        let mut next = (*published).clone();
                        next.neighbours = Arc::new(map);
                        shared.publish(next);
                    }
                }
                Err(e) => log::warn!("refreshing next hops: {e:#}"),
            }
        }
        // Also the loop's pace: returns at once when VRRP has news.
        ctl.vrrp_events(&vrrp_rx, Duration::from_millis(20));
        ctl.answer_table_request();
    }
    // VRRP before the engine: priority 0 goes out while we still serve.
    if let Some(v) = vrrp {
        v.stop();
    }
    drop(admin);

    eprintln!("lvsfwd: stopping");
    ctl.health.stop();
    let workers = engine.counters();
    let dps = engine.stop();
    let (rx, tx, drop, kernel) = dps.iter().fold((0, 0, 0, 0), |a, d| {
        (
            a.0 + d.counters.rx,
            a.1 + d.counters.tx,
            a.2 + d.counters.drop,
            a.3 + d.counters.kernel,
        )
    });
    let (partial_csum, too_big) = dps.iter().fold((0, 0), |a, d| {
        (a.0 + d.counters.partial_csum, a.1 + d.counters.icmp_too_big)
    });
    let (to_kernel, kport_drop) = workers.iter().fold((0, 0), |a, w| {
        (
            a.0 + w.to_kernel.load(std::sync::atomic::Ordering::Relaxed),
            a.1 + w
                .kernel_port_drop
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    });
    let mut reasons: std::collections::BTreeMap<&str, u64> = Default::default();
    for d in &dps {
        for (name, n) in d.counters.drop_reasons() {
            *reasons.entry(name).or_default() += n;
        }
        for (name, n) in d.counters.kernel_reasons() {
            *reasons.entry(name).or_default() += n;
        }
    }
    let detached = prog.detach().context("detaching the XDP program");
    if let Some(d) = died {
        // The death is the error to report; a failed detach (the interface
        // may be what went away) only adds to the log.
        if let Err(e) = detached {
            log::error!("{e:#}");
        }
        bail!("{d}");
    }
    detached?;
    let reasons: Vec<String> = reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "lvsfwd: stopped (rx {rx} tx {tx} drop {drop} kernel {kernel} to_kernel {to_kernel} \
         kernel_port_drop {kport_drop} partial_csum {partial_csum} icmp_too_big {too_big}{}{})",
        if reasons.is_empty() { "" } else { ": " },
        reasons.join(", ")
    );
    Ok(())
}

/// The data plane of one worker: the whole service table, its share of the
/// connection-table capacity, the engine's hash seeds.
fn worker_dataplane(
    cfg: &Config,
    specs: &[ServiceSpec],
    macs: &[MacAddr],
    own_addrs: &[IpAddr],
    mtu: u32,
    workers: usize,
    hash_seeds: HashSeeds,
) -> Dataplane {
    let base = cfg.dataplane_config();
    Dataplane::new(
        DataplaneConfig {
            own_macs: macs.to_vec(),
            own_addrs: own_addrs.to_vec(),
            mtu: mtu.clamp(576, u16::MAX as u32) as u16,
            conn_max: (base.conn_max / workers).max(1024),
            hash_seeds,
            ..base
        },
        crate::service::ServiceTable::from_specs(specs),
    )
}

/// The RX queues the workers serve: `configured` (lb.toml `queues`), each
/// of which every NIC must have, or every queue of the NICs, which must
/// then have as many each: worker i serves queue i of every NIC (one UMEM,
/// no copy between NICs), and RSS would put part of a NIC's traffic on
/// queues no worker serves.
fn served_queues(ifnames: &[String], configured: Option<&[u32]>) -> Result<Vec<u32>> {
    let mut counts = Vec::with_capacity(ifnames.len());
    for n in ifnames {
        counts.push((n, engine::rx_queue_count(n)?));
    }
    let queues: Vec<u32> = match configured {
        Some(q) => {
            for &(n, c) in &counts {
                if let Some(missing) = q.iter().find(|&&q| q >= c) {
                    bail!("{n} has {c} RX queues: it has no queue {missing} to serve");
                }
            }
            q.to_vec()
        }
        None => {
            let (first, c0) = counts[0];
            if let Some((n, c)) = counts.iter().find(|(_, c)| *c != c0) {
                bail!(
                    "{first} has {c0} RX queues and {n} has {c}: a director with several \
                     NICs serves queue i of each with worker i; give them as many queues \
                     (ethtool -L) or set [global] queues"
                );
            }
            (0..c0).collect()
        }
    };
    if queues.is_empty() {
        bail!("{}: no RX queue to serve", ifnames.join(", "));
    }
    Ok(queues)
}

/// The addresses of every data-plane NIC, in NIC order.
fn nic_addresses(nl: &mut Netlink, nics: &Nics) -> Result<Vec<IpAddr>> {
    let mut all = Vec::new();
    for (ifindex, _) in &nics.0 {
        all.extend(nl.addresses(*ifindex)?);
    }
    Ok(all)
}

/// lvsfwd's XDP program on every data-plane NIC, in NIC order: the same
/// filter on each (a NIC sees client packets, real servers' replies, or
/// both), each with its own socket map.
struct Programs(Vec<XdpProgram>);

impl Programs {
    /// Attaches to every NIC; on a failure the ones attached are detached
    /// again.
    fn attach(ifnames: &[String], mode: config::XdpMode) -> Result<Programs> {
        let mut done = Vec::with_capacity(ifnames.len());
        for n in ifnames {
            match XdpProgram::attach(n, mode) {
                Ok(p) => done.push(p),
                Err(e) => {
                    for p in done {
                        let _ = p.detach();
                    }
                    return Err(e);
                }
            }
        }
        Ok(Programs(done))
    }

    fn set_filter(&mut self, f: &Filter) -> Result<()> {
        for p in &mut self.0 {
            p.set_filter(f)?;
        }
        Ok(())
    }

    /// Points NIC `nic`'s socket map entry for `queue` at `fd`.
    fn register_socket(&mut self, nic: usize, queue: u32, fd: std::os::fd::RawFd) -> Result<()> {
        match self.0.get_mut(nic) {
            Some(p) => p.register_socket(queue, fd),
            None => bail!("no XDP program for NIC {nic}"),
        }
    }

    /// The attach mode of each NIC, as `Native` or `Native/Generic`.
    fn modes(&self) -> String {
        let m: Vec<String> = self.0.iter().map(|p| format!("{:?}", p.mode())).collect();
        m.join("/")
    }

    /// Detaches from every NIC; the first failure is the error.
    fn detach(self) -> Result<()> {
        let mut first = None;
        for p in self.0 {
            if let Err(e) = p.detach() {
                log::error!("{e:#}");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// How long the control thread waits for the workers' answers.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The control thread's state: the canonical service table (what lb.toml or
/// lvsadm last said), and what it publishes to.
struct Control<'a> {
    /// What lb.toml and lvsadm say; the data plane gets it as health
    /// checking adjusts it ([`Control::services`]).
    state: AdminState,
    health: Health,
    health_view: HealthView,
    shared: Arc<Shared>,
    prog: &'a mut Programs,
    engine: &'a Engine,
    own_addrs: Vec<IpAddr>,
    next_hops: NextHops,
    nl: Netlink,
    /// The data-plane NICs (real servers must be reachable through them).
    nics: Nics,
    rates: RateTable,
    conn_tab_size: usize,
    /// lb.toml [global]'s connection sysctls (follow SIGHUP).
    sysctls: ConnSysctls,
    /// Which VRRP VIPs this director is master for.
    vrrp_gate: VipGate,
    /// Connection sync (lb.toml's `lvs_sync_daemon`, lvsadm; a cell: the
    /// admin view borrows it beside the rest).
    sync: std::cell::RefCell<SyncDaemon>,
}

/// The rate estimators, per service and per real server.
#[derive(Default)]
struct RateTable {
    services: HashMap<ServiceKey, Estimator>,
    dests: HashMap<(ServiceKey, IpAddr, u16), Estimator>,
}

impl Control<'_> {
    /// Makes the workers and the XDP program follow `self.state`. New
    /// services reach the workers before the XDP program sends them their
    /// traffic; removed ones leave the XDP program first.
    fn publish(&mut self) {
        let services = self.services();
        let filter = Filter::from_specs(
            &vrrp_thread::active_specs(&services, &self.vrrp_gate.inactive()),
            &self.own_addrs,
        );
        let mut next = (*self.shared.load()).clone();
        next.services = Some(Arc::new(services));
        next.timeouts = Some(self.state.timeouts);
        next.sysctls = Some(self.sysctls);
        let g = self.shared.publish(next);
        // The XDP program may only send a new service's traffic once every
        // worker runs the table that has it.
        if !self.engine.wait_applied(g, APPLY_TIMEOUT) {
            log::warn!("a worker has not applied the new service table within {APPLY_TIMEOUT:?}");
        }
        if let Err(e) = self.prog.set_filter(&filter) {
            log::error!("updating the XDP program's filter: {e:#}");
        }
        self.next_hops = NextHops::for_specs(
            &health::with_sorry_servers(&self.state.services, &self.health_view),
            &self.shared.load().own_addrs,
        );
    }

    /// The services as the data plane must run them: the canonical state
    /// adjusted by health checking (down servers out or at weight 0, sorry
    /// servers in, misc_dynamic weights).
    fn services(&self) -> Vec<ServiceSpec> {
        health::effective_services(&self.state.services, &self.health_view)
    }

    /// Takes the health thread's events; publishes when they change what
    /// the data plane runs.
    fn follow_health(&mut self) {
        let before = self.services();
        let mut any = false;
        for ev in self.health.events().try_iter() {
            log::info!("health: {}", describe(&ev));
            self.health_view.apply(&ev);
            any = true;
        }
        if any && self.services() != before {
            self.publish();
        }
    }

    /// Waits up to `wait` for VRRP state changes, then makes the XDP filter
    /// follow them; a new master's acknowledgement is sent only once the
    /// filter serves its VIPs (it adds and announces them after that).
    fn vrrp_events(&mut self, rx: &std::sync::mpsc::Receiver<VrrpEvent>, wait: Duration) {
        let first = match rx.recv_timeout(wait) {
            Ok(ev) => ev,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // No VRRP instance (or its thread is gone): keep the pace.
                std::thread::sleep(wait);
                return;
            }
        };
        let mut changed = false;
        let mut acks = Vec::new();
        for ev in std::iter::once(first).chain(rx.try_iter()) {
            changed |= self.vrrp_gate.set(&ev.instance, ev.master);
            self.sync.get_mut().vrrp_state(&ev.instance, ev.master);
            log::info!(
                "vrrp {}: {}; inactive VIPs now {:?}",
                ev.instance,
                if ev.master { "master" } else { "not master" },
                self.vrrp_gate.inactive()
            );
            acks.extend(ev.ack);
        }
        if changed {
            // Workers hold every service whatever VRRP says; only what the
            // XDP program sends them changes, so no snapshot and no wait.
            let filter = Filter::from_specs(
                &vrrp_thread::active_specs(&self.state.services, &self.vrrp_gate.inactive()),
                &self.own_addrs,
            );
            if let Err(e) = self.prog.set_filter(&filter) {
                log::error!("updating the XDP program's filter: {e:#}");
            }
        }
        for a in acks {
            let _ = a.send(());
        }
    }

    /// Connection sync: a returning director asked this master for its
    /// whole table; the workers list it and the sender sends it.
    fn answer_table_request(&mut self) {
        if !self.sync.get_mut().take_table_request() {
            return;
        }
        match self.engine.query(&Query::SyncTable, QUERY_TIMEOUT) {
            Ok(replies) => {
                let records: Vec<_> = replies
                    .into_iter()
                    .flat_map(|r| match r {
                        query::Reply::SyncTable(v) => v,
                        _ => Vec::new(),
                    })
                    .collect();
                self.sync.get_mut().send_table(records);
            }
            Err(e) => log::warn!("sync: listing the table for a returning director: {e:#}"),
        }
    }

    /// SIGHUP: re-read lb.toml; a bad file is refused and nothing changes.
    fn reload(&mut self, source: &Source) {
        let Source::Config(path) = source else {
            log::warn!("SIGHUP: running with --interface, there is no lb.toml to reload");
            return;
        };
        match config::load_file(path) {
            Ok(cfg) => {
                if let Err(e) =
                    neigh::check_reachable(&mut self.nl, &self.nics, &cfg.service_specs())
                {
                    log::error!("reload refused, configuration unchanged: {e:#}");
                    return;
                }
                self.state = AdminState {
                    services: cfg.service_specs(),
                    timeouts: cfg.timeouts,
                };
                let sysctls = cfg.dataplane_config().sysctls;
                if sysctls != self.sysctls {
                    log::info!("reload: connection sysctls now {sysctls:?}");
                    self.sysctls = sysctls;
                }
                match self.health.reload(&cfg.virtual_servers) {
                    Some(v) => self.health_view = v,
                    None => log::error!("reload: the health-check thread did not answer"),
                }
                self.publish();
                log::info!(
                    "reloaded {}: {} virtual services",
                    path.display(),
                    self.state.services.len()
                );
            }
            Err(e) => log::error!("reload refused, configuration unchanged: {e}"),
        }
    }

    /// One lvsadm request.
    fn serve_admin(&mut self, stream: &mut std::os::unix::net::UnixStream) {
        let live = match self.engine.query(&Query::Live, QUERY_TIMEOUT) {
            Ok(r) => query::merge(&r),
            Err(e) => {
                log::warn!("admin: {e:#}");
                Default::default()
            }
        };
        let view = View {
            ctl_rates: &self.rates,
            engine: self.engine,
            live,
            conn_tab_size: self.conn_tab_size,
            sync: &self.sync,
        };
        // Listings show what runs (health-adjusted, as ipvsadm shows the
        // kernel's table under keepalived); edits apply to the canonical
        // state, which health checking then adjusts again.
        let req = match proto::read_message::<proto::Request>(&mut *stream) {
            Ok(r) => r,
            Err(e) => {
                let resp = proto::Response {
                    version: proto::PROTOCOL_VERSION,
                    stderr: format!("lvsfwd: malformed admin request: {e}\n"),
                    exit_code: 1,
                    ..Default::default()
                };
                let _ = proto::write_message(stream, &resp);
                return;
            }
        };
        let listing = matches!(
            crate::admin::cmd::parse_args(&req.argv),
            Ok(crate::admin::cmd::AdminCommand::List { .. }
                | crate::admin::cmd::AdminCommand::Save { .. })
        );
        let mut state = if listing {
            AdminState {
                services: self.services(),
                timeouts: self.state.timeouts,
            }
        } else {
            self.state.clone()
        };
        let mut resp = proto::serve_one(&mut state, &req, &view);
        if resp.changed && !listing {
            // A real server the data plane could not reach is refused like
            // any bad argument, and nothing changes.
            if let Err(e) = neigh::check_reachable(&mut self.nl, &self.nics, &state.services) {
                resp = proto::Response {
                    version: proto::PROTOCOL_VERSION,
                    stderr: format!("{e:#}\n"),
                    exit_code: 1,
                    ..Default::default()
                };
            }
        }
        if let Err(e) = proto::write_message(stream, &resp) {
            log::warn!("admin connection: {e}");
        }
        if resp.changed && !listing {
            self.state = state;
            self.publish();
        }
    }

    /// One 2-second sample for `--rate`.
    fn sample_rates(&mut self) {
        let Ok(replies) = self.engine.query(&Query::Live, QUERY_TIMEOUT) else {
            return;
        };
        for (key, live) in query::merge(&replies) {
            self.rates
                .services
                .entry(key)
                .or_default()
                .sample(&live.stats);
            for d in &live.dests {
                self.rates
                    .dests
                    .entry((key, d.addr, d.port))
                    .or_default()
                    .sample(&d.stats);
            }
        }
    }
}

/// One health event as a log line.
fn describe(ev: &health::HealthEvent) -> String {
    match ev {
        health::HealthEvent::Server {
            service,
            server,
            health,
        } => format!(
            "real server {server} of {service} is {}{}",
            if health.alive { "up" } else { "down" },
            health
                .weight
                .map(|w| format!(", weight {w}"))
                .unwrap_or_default()
        ),
        health::HealthEvent::Pool {
            service,
            sorry_active,
        } => format!(
            "{service}: sorry server {}",
            if *sorry_active {
                "in (quorum lost)"
            } else {
                "out (quorum gained)"
            }
        ),
        health::HealthEvent::Reset(v) => format!("checking {} virtual servers", v.pools.len()),
    }
}

/// What a listing sees of the running data plane.
struct View<'a> {
    ctl_rates: &'a RateTable,
    engine: &'a Engine,
    live: rustc_hash::FxHashMap<ServiceKey, LiveService>,
    conn_tab_size: usize,
    sync: &'a std::cell::RefCell<SyncDaemon>,
}

impl ListingSource for View<'_> {
    fn conn_tab_size(&self) -> usize {
        self.conn_tab_size
    }

    fn sync_daemon(&self, cmd: &crate::admin::cmd::AdminCommand) -> Result<String, String> {
        self.sync.borrow_mut().admin(cmd)
    }

    fn live(&self, key: &ServiceKey) -> Option<LiveService> {
        let mut l = self.live.get(key)?.clone();
        if let Some(e) = self.ctl_rates.services.get(key) {
            l.rates = e.rates();
        }
        for d in l.dests.iter_mut() {
            if let Some(e) = self.ctl_rates.dests.get(&(*key, d.addr, d.port)) {
                d.rates = e.rates();
            }
        }
        Some(l)
    }

    fn connections(&self) -> Vec<ConnView> {
        match self.engine.query(&Query::Conns, QUERY_TIMEOUT) {
            Ok(r) => query::merge_conns(r),
            Err(e) => {
                log::warn!("listing connections: {e:#}");
                Vec::new()
            }
        }
    }

    fn zero_counters(&self, svc: Option<&ServiceKey>) {
        if let Err(e) = self.engine.query(&Query::Zero(svc.copied()), QUERY_TIMEOUT) {
            log::warn!("zeroing counters: {e:#}");
        }
    }
}
